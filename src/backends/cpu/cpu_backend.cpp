#include "backends/cpu/cpu_backend.h"

#include <algorithm>
#include <iterator>
#include <new>

#include "backends/cpu/cast.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/op_table.h"
#include "backends/cpu/plan.h"
#include "backends/cpu/runtime_env.h"

namespace tandem {

namespace cpu {
const OpTable& cpu_ops() {
  static const OpTable table = [] {
    OpTable t;
    register_activation_ops(t);
    register_cast_ops(t);
    register_conv_ops(t);
    register_elementwise_ops(t);
    register_einsum_ops(t);
    register_indexing_ops(t);
    register_matmul_ops(t);
    register_normalization_ops(t);
    register_pool_ops(t);
    register_qconv_ops(t);
    register_qelementwise_ops(t);
    register_qgemm_ops(t);
    register_qpool_ops(t);
    register_qmatmul_ops(t);
    register_quantize_ops(t);
    register_reduce_ops(t);
    register_resize_ops(t);
    register_rnn_ops(t);
    register_scatter_ops(t);
    register_shape_ops(t);
    register_shape_copy_ops(t);
    return t;
  }();
  return table;
}
}  // namespace cpu

namespace {

// Ops that only move or relabel data: any element type of fixed size runs on their own path.
bool moves_data_only(const std::string& op) {
  static const char* const ops[] = {"Reshape", "Flatten", "Squeeze",      "Unsqueeze",    "Identity", "Dropout",
                                    "Transpose", "Slice", "Concat",       "Shape",        "Constant", "Split",
                                    "Expand",    "Tile",  "DepthToSpace", "SpaceToDepth", "Gather",   "Pad",
                                    "GatherElements", "GatherND", "ScatterElements", "Scatter", "ScatterND", "Trilu"};
  return std::any_of(std::begin(ops), std::end(ops), [&](const char* o) { return op == o; });
}

// float32 runs as is; float16 is widened to float32 at compile (fp16_lowering.cpp).
bool computes_on(DataType t) { return t == DataType::float32 || t == DataType::float16; }


bool fixed_size(DataType t) { return t != DataType::undefined && t != DataType::string && dtype_size(t) > 0; }

std::string type_text(DataType t) { return std::string(dtype_name(t)); }

// The dtype rule of the cpu backend: which element types each op runs on its own path.
Status supports_types(const Node& n, const NodeTypes& types) {
  const std::string& op = n.op_type;
  if (op == "Cast") {
    const DataType from = types.input(0), to = types.output(0);
    if (from == DataType::undefined || to == DataType::undefined) return Status::ok();
    if (from == to && fixed_size(from)) return Status::ok();
    if (cpu::castable(from) && cpu::castable(to)) return Status::ok();
    return unsupported(n.label() + " Cast from " + type_text(from) + " to " + type_text(to) +
                       " (the cpu backend casts between float32, float16, int32, int64, bool, uint8 and int8)");
  }
  // Quantized ops: 8-bit data, float32 scales, int32 bias and integer-product outputs (int8.h).
  if (cpu::is_int8_op(canonical_domain(n.domain), op)) return cpu::supports_int8_types(n, types);
  // Comparisons, logic and Where (elementwise.cpp): bool results or conditions. float16
  // operands are compared after widening to float32, which is exact.
  static const char* const kBoolOps[] = {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual",
                                          "And",   "Or",      "Xor",  "Not",            "Where"};
  if (std::any_of(std::begin(kBoolOps), std::end(kBoolOps), [&](const char* o) { return op == o; })) {
    const bool where = op == "Where", logic = op == "And" || op == "Or" || op == "Xor" || op == "Not";
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const DataType t = types.input(i);
      if (n.inputs[i].empty() || t == DataType::undefined) continue;
      const bool ok = where ? (i == 0 ? t == DataType::boolean : fixed_size(t))
                            : logic ? t == DataType::boolean
                                    : computes_on(t) || t == DataType::int32 || t == DataType::int64;
      if (!ok)
        return unsupported(n.label() + " input " + std::to_string(i) + " is " + type_text(t) +
                           " (the cpu backend compares float32, float16 (widened exactly), int32 and int64, and "
                           "combines bool)");
    }
    return Status::ok();
  }
  // ArgMax, ArgMin, TopK: float32 (or float16, widened) data, int64 indices out (and TopK's
  // values in the data's type; its K is an int64 parameter).
  if (op == "ArgMax" || op == "ArgMin" || op == "TopK") {
    const DataType t = types.input(0);
    if (t != DataType::undefined && !computes_on(t))
      return unsupported(n.label() + " input 0 is " + type_text(t) + " (the cpu backend computes on float32 and float16)");
    return Status::ok();
  }
  // Values computed when the instance is built (shape.cpp): any numeric type.
  if (op == "Range" || op == "ConstantOfShape") return Status::ok();
  // Scatters that combine (reduction add, mul, max, min) and CumSum compute on float32, int32
  // and int64 (scatter.cpp, reduce.cpp).
  const bool combines = op.rfind("Scatter", 0) == 0 && n.attr_string("reduction", "none") != "none";
  if (combines || op == "CumSum") {
    const DataType t = types.input(0);
    if (t != DataType::undefined && t != DataType::float32 && t != DataType::int32 && t != DataType::int64)
      return unsupported(n.label() + " " + type_text(t) + " data (the cpu backend " +
                         (combines ? "combines scatter updates" : "sums") + " in float32, int32 and int64)");
    return Status::ok();
  }
  // MaxPool (without Indices) and Resize (nearest, and linear: resize_bytes.cpp) also take 8-bit
  // values: QOperator models keep them on uint8 between quantized layers (pool.cpp, resize.cpp).
  const std::string resize_mode = n.attr_string("mode", "nearest");
  const bool selects = (op == "MaxPool" && (n.outputs.size() < 2 || n.outputs[1].empty())) ||
                       ((op == "Resize" || op == "Upsample") &&
                        (resize_mode == "nearest" || resize_mode == "linear" || resize_mode == "bilinear"));
  if (selects && (types.input(0) == DataType::uint8 || types.input(0) == DataType::int8)) {
    if (types.output(0) != DataType::undefined && types.output(0) != types.input(0))
      return unsupported(n.label() + " output type differs from the input's");
    return Status::ok();
  }
  if (moves_data_only(op)) {
    const DataType t = types.input(0);
    if (t != DataType::undefined && !fixed_size(t))
      return unsupported(n.label() + " " + type_text(t) + " data (the cpu backend moves fixed-size types only)");
    return Status::ok();
  }
  // Computing ops: every floating-point input and output must be float32 or float16. Integer
  // inputs are parameters (axes, shapes, sizes) the backend reads at build time.
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const DataType t = types.input(i);
    if (n.inputs[i].empty() || t == DataType::undefined) continue;
    if (i == 0 ? !computes_on(t) : (is_float_type(t) && !computes_on(t)))
      return unsupported(n.label() + " input " + std::to_string(i) + " is " + type_text(t) +
                         " (the cpu backend computes on float32 and float16)");
  }
  for (size_t i = 0; i < n.outputs.size(); ++i) {
    const DataType t = types.output(i);
    if (n.outputs[i].empty() || t == DataType::undefined) continue;
    if (!computes_on(t))
      return unsupported(n.label() + " output " + std::to_string(i) + " is " + type_text(t) +
                         " (the cpu backend computes on float32 and float16)");
  }
  return Status::ok();
}

}  // namespace

Status CpuBackend::supports(const Node& node, const NodeTypes& types) const {
  const std::string domain = canonical_domain(node.domain);
  const cpu::OpEntry* e = cpu::cpu_ops().find(domain, node.op_type);
  if (!e && !domain.empty())
    return unsupported(node.label() + " op '" + node.op_type + "' of domain '" + node.domain +
                       "' is not run by the cpu backend");
  if (!e) return unsupported(node.label() + " op '" + node.op_type + "' is not implemented by the cpu backend");
  TANDEM_RETURN_IF_ERROR(supports_types(node, types));
  return e->supports(node);
}

Status CpuBackend::supports_precision(Precision p) const {
  switch (p) {
    case Precision::fp32: return Status::ok();
    case Precision::bf16:
      if (cpu::has_native_bf16()) return Status::ok();
      return unsupported("cpu: precision bf16 needs AVX512_BF16, which this CPU (or TANDEM_CPU_ISA) does not offer; "
                         "the cpu backend does not emulate it");
    case Precision::fp16:
      return unsupported("cpu: precision fp16 needs native float16 arithmetic, which x86 CPUs before AVX512_FP16 lack; "
                         "use bf16, or fp32 (float16 models run in float32)");
    case Precision::int8:
      // The caller hands over a graph already rewritten with integer ops (DynamicQuantizeLinear,
      // ConvInteger, MatMulInteger, QLinear*); they run on oneDNN's int8 kernels, the rest in float32.
      return Status::ok();
  }
  return unsupported("cpu: unknown precision");
}

Result<std::unique_ptr<Plan>> CpuBackend::compile(const Graph& graph, const CompileOptions& options) {
  TANDEM_RETURN_IF_ERROR(supports_precision(options.precision));
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
