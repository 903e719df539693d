#include "backends/reference/reference_backend.h"

#include "backends/reference/executor.h"

namespace tandem {

namespace {
class ReferencePlan final : public Plan {
 public:
  explicit ReferencePlan(std::shared_ptr<const ExecutionPlan> p) : plan(std::move(p)) {}
  std::shared_ptr<const ExecutionPlan> plan;
};
}  // namespace

Status ReferenceBackend::supports(const Node& node, const NodeTypes&) const {
  if (reference_kernels().find(node.domain, node.op_type)) return Status::ok();
  return unsupported(node.label() + " op '" + node.op_type + "' is not implemented by the reference backend");
}

Result<std::unique_ptr<Plan>> ReferenceBackend::compile(const Graph& graph, const CompileOptions&) {
  auto p = compile_plan(graph, reference_kernels());
  if (!p) return p.status();
  return std::unique_ptr<Plan>(new ReferencePlan(std::move(p).value()));
}

Status ReferenceBackend::run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
                             const RunControl& control) {
  const auto* p = dynamic_cast<const ReferencePlan*>(&plan);
  if (!p) return internal_error("reference: plan was compiled by another backend");
  auto out = run_plan(*p->plan, inputs, control);
  if (!out) return out.status();
  *outputs = std::move(out).value();
  return Status::ok();
}

}  // namespace tandem
