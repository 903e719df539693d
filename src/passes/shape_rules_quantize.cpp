// shape_rules_quantize.cpp: shape rules for the quantized operators of the com.microsoft domain
// (kernels in kernels/quantize_contrib.cpp and kernels/quantize.cpp): QuantizeLinear,
// DequantizeLinear, QLinearAdd/Mul, QLinearSigmoid/LeakyRelu, the quantized pools,
// QLinearConcat, QGemm, DynamicQuantizeMatMul and MatMulIntegerToFloat.
// See shape_rules.h for the contract of a rule.
#include "graph/window_geometry.h"
#include "passes/shape_rules.h"

namespace tandem::shape_detail {

namespace {

const char* const kMicrosoft = "com.microsoft";

// Elementwise binary ops: numpy broadcast of A (0) and B (3); the type of A.
Status qlinear_binary_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0) || !ctx.ranked(3)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&ctx.dims(0), &ctx.dims(3)}));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status qlinear_unary_rule(RuleContext& ctx) { return same_as_input(ctx, 0); }

// Splits the dims of a pooling input into batch, channels and spatial dims by channels_last.
Result<bool> channels_last(const RuleContext& ctx) {
  const int64_t v = ctx.node().attr_int("channels_last", 0);
  if (v != 0 && v != 1) return ctx.invalid("channels_last " + std::to_string(v) + " must be 0 or 1");
  return v == 1;
}

Dims pooled_dims(const Dims& x, const Dims& spatial, bool last) {
  Dims out{x[0]};
  if (!last) out.push_back(x[1]);
  out.insert(out.end(), spatial.begin(), spatial.end());
  if (last) out.push_back(x.back());
  return out;
}

Status qlinear_global_pool_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  TANDEM_ASSIGN_OR_RETURN(bool last, channels_last(ctx));
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& x = ctx.dims(0);
  if (x.size() < 2) return ctx.invalid("input has rank " + std::to_string(x.size()) + ", expected at least 2");
  ctx.set_tensor(0, dt, pooled_dims(x, Dims(x.size() - 2, fixed_dim(1)), last));
  return Status::ok();
}

Status qlinear_average_pool_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  TANDEM_ASSIGN_OR_RETURN(bool last, channels_last(ctx));
  if (!ctx.node().has_attr("kernel_shape")) return ctx.invalid("missing attribute 'kernel_shape'");
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& x = ctx.dims(0);
  const std::vector<int64_t> kernel = ctx.node().attr_ints("kernel_shape");
  if (x.size() < 3 || x.size() != kernel.size() + 2)
    return ctx.invalid("input has rank " + std::to_string(x.size()) + ", expected " + std::to_string(kernel.size() + 2) +
                       " (at least 3) for a kernel_shape of " + std::to_string(kernel.size()) + " values");
  const size_t r = kernel.size();
  WindowOptions options;
  options.has_dilations = false;
  options.has_ceil_mode = true;
  TANDEM_ASSIGN_OR_RETURN(WindowAttributes a, read_window_attributes(ctx.node(), r, options));
  TANDEM_RETURN_IF_ERROR(check_kernel_shape(ctx.node(), kernel, r));
  Dims spatial(r);
  for (size_t d = 0; d < r; ++d) {
    const Dim& in = x[(last ? 1 : 2) + d];
    if (!in.fixed()) {
      spatial[d] = a.same() && a.strides[d] == 1 ? in : unknown_dim();
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(WindowDim w, window_dim(ctx.node(), a, d, in.value, kernel[d]));
    spatial[d] = fixed_dim(w.out);
  }
  ctx.set_tensor(0, dt, pooled_dims(x, spatial, last));
  return Status::ok();
}

// QLinearConcat: Y_scale, Y_zero_point, then (tensor, scale, zero point) triples.
Status qlinear_concat_rule(RuleContext& ctx) {
  const size_t n = ctx.num_inputs();
  if (n < 5 || (n - 2) % 3 != 0)
    return ctx.invalid("expects Y_scale, Y_zero_point and (tensor, scale, zero point) triples, got " + std::to_string(n) +
                       " inputs");
  const DataType dt = ctx.has_input(1) ? ctx.dtype(1) : ctx.dtype(2);
  if (!ctx.node().has_attr("axis")) return ctx.invalid("missing attribute 'axis'");
  int64_t rank = -1;
  for (size_t i = 2; i < n; i += 3)
    if (ctx.ranked(i)) {
      if (rank >= 0 && ctx.rank(i) != rank) return ctx.invalid("inputs differ in rank");
      rank = ctx.rank(i);
    }
  if (rank < 0) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  if (rank == 0) return ctx.invalid("inputs must not be scalars");
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), rank));
  Dims out(static_cast<size_t>(rank), unknown_dim());
  Dim total = fixed_dim(0);
  bool first = true;
  for (size_t i = 2; i < n; i += 3) {
    if (!ctx.ranked(i)) {
      total = unknown_dim();
      continue;
    }
    const Dims& d = ctx.dims(i);
    for (int64_t k = 0; k < rank; ++k) {
      if (k == axis) continue;
      if (first) out[k] = d[k];
      else if (!unify_dim(out[k], d[k], &out[k]))
        return ctx.invalid("inputs differ in dim " + std::to_string(k) + ": " + dims_to_string(d) + " vs " +
                           dims_to_string(out));
    }
    first = false;
    total = dim_add(total, d[axis]);
  }
  out[axis] = total;
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// QGemm: [M, N] from A (0) and B (3) with transA/transB; uint8/int8 as y_zero_point, float32
// without it.
Status qgemm_rule(RuleContext& ctx) {
  const DataType dt = ctx.has_input(8) ? ctx.dtype(8) : DataType::float32;
  const bool ta = ctx.node().attr_int("transA", 0) != 0, tb = ctx.node().attr_int("transB", 0) != 0;
  Dim m = unknown_dim(), ka = unknown_dim(), kb = unknown_dim(), n = unknown_dim();
  if (ctx.ranked(0)) {
    if (ctx.rank(0) != 2) return ctx.invalid("A has rank " + std::to_string(ctx.rank(0)) + ", expected 2");
    m = ctx.dims(0)[ta ? 1 : 0];
    ka = ctx.dims(0)[ta ? 0 : 1];
  }
  if (ctx.ranked(3)) {
    if (ctx.rank(3) != 2) return ctx.invalid("B has rank " + std::to_string(ctx.rank(3)) + ", expected 2");
    kb = ctx.dims(3)[tb ? 1 : 0];
    n = ctx.dims(3)[tb ? 0 : 1];
  }
  if (ka.fixed() && kb.fixed() && ka.value != kb.value)
    return ctx.invalid("inner dimensions differ: " + std::to_string(ka.value) + " vs " + std::to_string(kb.value));
  ctx.set_tensor(0, dt, {m, n});
  return Status::ok();
}

// numpy matmul dims of inputs 0 and 1.
Status product_dims(RuleContext& ctx, DataType dt) {
  if (!ctx.ranked(0) || !ctx.ranked(1)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dims a = ctx.dims(0), b = ctx.dims(1);
  if (a.empty() || b.empty()) return ctx.invalid("A and B must not be scalars");
  const bool a_vector = a.size() == 1, b_vector = b.size() == 1;
  if (a_vector) a.insert(a.begin(), fixed_dim(1));
  if (b_vector) b.push_back(fixed_dim(1));
  const Dim& ka = a.back();
  const Dim& kb = b[b.size() - 2];
  if (ka.fixed() && kb.fixed() && ka.value != kb.value)
    return ctx.invalid("inner dimensions differ: " + std::to_string(ka.value) + " vs " + std::to_string(kb.value));
  const Dims a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&a_batch, &b_batch}));
  if (!a_vector) out.push_back(a[a.size() - 2]);
  if (!b_vector) out.push_back(b.back());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status dynamic_quantize_matmul_rule(RuleContext& ctx) { return product_dims(ctx, DataType::float32); }

// The output has a_scale's (input 2) float type.
Status matmul_integer_to_float_rule(RuleContext& ctx) {
  return product_dims(ctx, ctx.has_input(2) ? ctx.dtype(2) : DataType::float32);
}

// com.microsoft QuantizeLinear: x's dims, the zero point's type (uint8 without one).
Status quantize_linear_rule(RuleContext& ctx) {
  const DataType dt = ctx.has_input(2) ? ctx.dtype(2) : DataType::uint8;
  if (ctx.ranked(0)) ctx.set_tensor(0, dt, ctx.dims(0));
  else ctx.set_unranked(0, dt);
  return Status::ok();
}

// com.microsoft DequantizeLinear: x's dims, the scale's float type.
Status dequantize_linear_rule(RuleContext& ctx) {
  const DataType dt = ctx.has_input(1) ? ctx.dtype(1) : DataType::float32;
  if (ctx.ranked(0)) ctx.set_tensor(0, dt, ctx.dims(0));
  else ctx.set_unranked(0, dt);
  return Status::ok();
}

}  // namespace

void register_quantize_rules(RuleTable& t) {
  t.add(kMicrosoft, "QuantizeLinear", quantize_linear_rule);
  t.add(kMicrosoft, "DequantizeLinear", dequantize_linear_rule);
  t.add(kMicrosoft, "QLinearAdd", qlinear_binary_rule);
  t.add(kMicrosoft, "QLinearMul", qlinear_binary_rule);
  t.add(kMicrosoft, "QLinearSigmoid", qlinear_unary_rule);
  t.add(kMicrosoft, "QLinearLeakyRelu", qlinear_unary_rule);
  t.add(kMicrosoft, "QLinearGlobalAveragePool", qlinear_global_pool_rule);
  t.add(kMicrosoft, "QLinearAveragePool", qlinear_average_pool_rule);
  t.add(kMicrosoft, "QLinearConcat", qlinear_concat_rule);
  t.add(kMicrosoft, "QGemm", qgemm_rule);
  t.add(kMicrosoft, "DynamicQuantizeMatMul", dynamic_quantize_matmul_rule);
  t.add(kMicrosoft, "MatMulIntegerToFloat", matmul_integer_to_float_rule);
}

}  // namespace tandem::shape_detail
