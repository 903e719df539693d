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
  // The reference backend computes exactly whatever float precision is asked for (ok); int8
  // is refused: it asks for a quantized rewrite of the model, and the reference backend stays
  // the float32 ground truth that routes are judged by. (Nodes an int8 route's backend
  // declines still run here, exactly, inside that route.)
  Status supports_precision(Precision p) const override {
    if (p == Precision::int8)
      return unsupported("reference: precision int8 is not offered; the reference backend is the float32 ground truth "
                         "(use an int8 route on the cpu backend, e.g. cpu@int8)");
    return Status::ok();
  }
  Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) override;
  Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
             const RunControl& control) override;
};

}  // namespace tandem
