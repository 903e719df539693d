// reference_backend.h: the exact, deliberately simple backend every other one is checked
// against. It runs every op tandem knows, on the host, one node at a time.
#pragma once

#include "backends/backend.h"

namespace tandem {

class ReferenceBackend final : public Backend {
 public:
  std::string_view name() const override { return "reference"; }
  DeviceKind device_kind() const override { return DeviceKind::cpu; }
  bool is_reference() const override { return true; }
  std::string_view version() const override { return TANDEM_VERSION; }
  Status supports(const Node& node, const NodeTypes& types) const override;
  // Always ok: the reference backend computes exactly whatever precision is asked for.
  Status supports_precision(Precision) const override { return Status::ok(); }
  Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) override;
  Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
             const RunControl& control) override;
};

}  // namespace tandem
