// reference_backend.h: the exact, deliberately simple backend every other one is checked
// against. It runs every op tandem knows, on the host, one node at a time.
#pragma once

#include "backends/backend.h"

namespace tandem {

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }
  Status supports(const Node& node, const NodeTypes& types) const override;
  // Always ok: the reference backend computes exactly whatever precision is asked for.
  Status supports_precision(Precision) const override { return Status::ok(); }
  Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) override;
  Result<Buffer> alloc(size_t bytes) override;
  Status copy(const Buffer& src, Buffer& dst) override;
  Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
             const RunControl& control) override;
  Status sync() override { return Status::ok(); }
};

}  // namespace tandem
