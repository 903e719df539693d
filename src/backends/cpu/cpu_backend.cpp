#include "backends/cpu/cpu_backend.h"

#include <cstring>
#include <new>

#include "backends/cpu/executor.h"

namespace tandem {

namespace cpu {
const OpTable& cpu_ops() {
  static const OpTable table = [] {
    OpTable t;
    register_activation_ops(t);
    register_conv_ops(t);
    register_elementwise_ops(t);
    register_matmul_ops(t);
    register_normalization_ops(t);
    register_pool_ops(t);
    register_reduce_ops(t);
    register_resize_ops(t);
    register_shape_ops(t);
    return t;
  }();
  return table;
}
}  // namespace cpu

Status CpuBackend::supports(const Node& node) const {
  if (!canonical_domain(node.domain).empty())
    return unsupported(node.label() + " domain '" + node.domain + "' is not run by the cpu backend");
  const cpu::OpEntry* e = cpu::cpu_ops().find(node.op_type);
  if (!e) return unsupported(node.label() + " op '" + node.op_type + "' is not implemented by the cpu backend");
  return e->supports(node);
}

Result<std::unique_ptr<Plan>> CpuBackend::compile(const Graph& graph, const CompileOptions& options) {
  try {
    auto p = cpu::compile_graph(graph, options);
    if (!p) return p.status();
    return std::unique_ptr<Plan>(std::move(p).value());
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::out_of_memory, "cpu: out of memory while compiling");
  } catch (const dnnl::error& e) {
    return Status(StatusCode::device_error, std::string("cpu: oneDNN error while compiling: ") + e.what());
  }
}

Result<Buffer> CpuBackend::alloc(size_t bytes) {
  auto mem = std::shared_ptr<std::byte[]>(new (std::nothrow) std::byte[bytes ? bytes : 1]);
  if (!mem) return Status(StatusCode::out_of_memory, "cpu: cannot allocate " + std::to_string(bytes) + " bytes");
  Buffer b;
  b.data = mem.get();
  b.bytes = bytes;
  b.owner = mem;
  return b;
}

Status CpuBackend::copy(const Buffer& src, Buffer& dst) {
  std::memcpy(dst.data, src.data, std::min(src.bytes, dst.bytes));
  return Status::ok();
}

Status CpuBackend::run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
                       const RunControl& control) {
  const auto* p = dynamic_cast<const cpu::CpuPlan*>(&plan);
  if (!p) return internal_error("cpu: plan was compiled by another backend");
  try {
    return p->run(inputs, outputs, control);
  } catch (const std::bad_alloc&) {
    return Status(StatusCode::out_of_memory, "cpu: out of memory");
  } catch (const dnnl::error& e) {
    return Status(StatusCode::device_error, std::string("cpu: oneDNN error: ") + e.what());
  }
}

}  // namespace tandem
