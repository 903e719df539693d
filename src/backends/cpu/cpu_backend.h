// cpu_backend.h: the fast host backend: oneDNN for convolutions, matrix products and pooling,
// tandem's own vectorized kernels for the rest (elementwise chains, softmax, data movement).
//
// supports(node) accepts the ops and attributes listed by the op families in this folder (see
// op_table.h for the table); everything else is placed on the reference backend. compile()
// packs weights and fuses (Conv + BatchNormalization + activation + ..., MatMul + bias, chains
// of elementwise ops); shape-dependent work (oneDNN primitives, layouts, the memory plan)
// happens at the first run with each input signature and is cached (plan.h).
//
// Threads: CompileOptions::threads (0: the number of physical cores) sets the OpenMP team size
// used by oneDNN and by the backend's own kernels for runs of that plan.
// Thread-safety: the backend is stateless apart from process-wide singletons (the oneDNN
// engine, the op table); all methods are thread-safe; run() may be called concurrently.
#pragma once

#include "backends/backend.h"

namespace tandem {

class CpuBackend final : public Backend {
 public:
  std::string_view name() const override { return "cpu"; }
  DeviceKind device_kind() const override { return DeviceKind::cpu; }
  std::string_view version() const override { return TANDEM_VERSION; }
  Status supports(const Node& node, const NodeTypes& types) const override;
  // ok for fp32 and int8 everywhere (int8: the graph comes already quantized, see
  // tandem/precision.h) and for bf16 where the CPU has AVX512_BF16 (and TANDEM_CPU_ISA allows
  // AVX-512); `unsupported`, saying why, otherwise. compile() checks it first.
  Status supports_precision(Precision p) const override;
  Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) override;
  Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
             const RunControl& control) override;
};

}  // namespace tandem
