// shape_rules_elementwise.cpp: shape rules for elementwise ops (unary, binary with broadcast,
// comparisons, Where, Cast), the value producers (Shape, Size, Constant, ConstantOfShape,
// Range), reductions with ArgMax/ArgMin/TopK, random generators and quantization.
// See shape_rules.h for the contract of a rule.
#include "passes/shape_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/tensor_util.h"

namespace tandem::shape_detail {

namespace {

// ---- elementwise ----------------------------------------------------------------------------------

Status unary_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  for (size_t i = 1; i < ctx.num_outputs(); ++i) ctx.set(i, ctx.type(0));
  return Status::ok();
}

Status bool_unary_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = DataType::boolean;
  ctx.set(0, t);
  return Status::ok();
}

// Element-wise int arithmetic on traced shape values (Add/Sub/Mul/Div of shape pieces).
std::optional<Dims> dimval_arith(const std::string& op, const Dims& a, const Dims& b) {
  if (a.empty() || b.empty() || (a.size() != b.size() && a.size() != 1 && b.size() != 1)) return std::nullopt;
  const size_t n = std::max(a.size(), b.size());
  Dims out(n);
  for (size_t i = 0; i < n; ++i) {
    const Dim& x = a[a.size() == 1 ? 0 : i];
    const Dim& y = b[b.size() == 1 ? 0 : i];
    if (op == "Add") out[i] = dim_add(x, y);
    else if (op == "Mul") out[i] = dim_mul(x, y);
    else if (op == "Sub") out[i] = x.fixed() && y.fixed() ? fixed_dim(x.value - y.value) : (y.value == 0 ? x : unknown_dim());
    else if (op == "Div") {
      if (x.fixed() && y.fixed() && y.value != 0) out[i] = fixed_dim(x.value / y.value);
      else out[i] = y.value == 1 ? x : unknown_dim();
    } else return std::nullopt;
    if (out[i].fixed() && out[i].value < 0) out[i] = unknown_dim();
  }
  return out;
}

Status broadcast_into(RuleContext& ctx, DataType out_dtype) {
  std::vector<const Dims*> shapes;
  bool all_ranked = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (!ctx.ranked(i)) all_ranked = false;
    else shapes.push_back(&ctx.dims(i));
  }
  if (!all_ranked || shapes.empty()) {
    // Still check what is ranked; the result rank is unknown.
    if (shapes.size() > 1) TANDEM_RETURN_IF_ERROR(broadcast(ctx, shapes).status());
    ctx.set_unranked(0, out_dtype);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, shapes));
  ctx.set_tensor(0, out_dtype, std::move(out));
  return Status::ok();
}

// Before opset 7 binary ops broadcast only with broadcast=1, aligning B into A: A's dims.
bool legacy_broadcast(RuleContext& ctx, DataType dt) {
  if (ctx.opset() <= 0 || ctx.opset() >= 7 || ctx.num_inputs() != 2 || ctx.node().attr_int("broadcast", 0) == 0)
    return false;
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dt;
  ctx.set(0, t);
  return true;
}

Status binary_rule(RuleContext& ctx) {
  DataType dt = ctx.dtype(0);
  for (size_t i = 1; dt == DataType::undefined && i < ctx.num_inputs(); ++i) dt = ctx.dtype(i);
  if (legacy_broadcast(ctx, dt)) return Status::ok();
  TANDEM_RETURN_IF_ERROR(broadcast_into(ctx, dt));
  const std::string& op = ctx.node().op_type;
  if (ctx.num_inputs() == 2 && ctx.dim_values(0) && ctx.dim_values(1) && is_integer_type(dt) && ctx.rank(0) <= 1 &&
      ctx.rank(1) <= 1) {
    if (auto d = dimval_arith(op, *ctx.dim_values(0), *ctx.dim_values(1))) ctx.set_dimvals(0, std::move(*d));
  }
  return Status::ok();
}

Status compare_rule(RuleContext& ctx) {
  if (legacy_broadcast(ctx, DataType::boolean)) return Status::ok();
  return broadcast_into(ctx, DataType::boolean);
}

// PRelu: the slope broadcasts into X (before opset 7, a [C] slope applies along axis 1).
Status prelu_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  if (ctx.opset() >= 7 && ctx.ranked(0) && ctx.ranked(1)) {
    TANDEM_ASSIGN_OR_RETURN(Dims b, broadcast(ctx, {&ctx.dims(0), &ctx.dims(1)}));
    const Dims& x = ctx.dims(0);
    for (size_t i = 0; i < b.size(); ++i)
      if (b.size() != x.size() || (b[i].fixed() && x[i].fixed() && b[i].value != x[i].value))
        return ctx.invalid("slope shape " + dims_to_string(ctx.dims(1)) + " does not broadcast to input shape " +
                           dims_to_string(x));
  }
  return Status::ok();
}

Status where_rule(RuleContext& ctx) {
  DataType dt = ctx.dtype(1) != DataType::undefined ? ctx.dtype(1) : ctx.dtype(2);
  return broadcast_into(ctx, dt);
}

Status cast_rule(RuleContext& ctx) {
  DataType to = ctx.node().op_type == "CastLike" ? ctx.dtype(1) : static_cast<DataType>(ctx.node().attr_int("to", 0));
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = to;
  ctx.set(0, t);
  if (is_integer_type(to) && ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  return Status::ok();
}

Status identity_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  if (ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  return Status::ok();
}

Status dropout_rule(RuleContext& ctx) {
  ctx.set(0, ctx.type(0));
  TypeInfo mask = ctx.type(0);
  mask.kind = TypeInfo::Kind::tensor;
  mask.elem = ctx.opset() < 10 ? ctx.dtype(0) : DataType::boolean;  // T until opset 10, bool since
  ctx.set(1, mask);
  return Status::ok();
}

// Output 0 keeps input 0's dims; dtype from the `dtype` attribute (if present) or input 0.
Status like_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  if (ctx.node().has_attr("dtype")) t.elem = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  ctx.set(0, t);
  return Status::ok();
}

// ---- Shape, Size, Constant, ConstantOfShape, Range ----------------------------------------------

Status shape_rule(RuleContext& ctx) {
  if (!ctx.ranked(0)) {
    ctx.set_tensor(0, DataType::int64, {unknown_dim()});
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  int64_t start = ctx.node().attr_int("start", 0), end = ctx.node().attr_int("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, 0, r);
  Dims vals;
  for (int64_t i = start; i < end; ++i) vals.push_back(ctx.dims(0)[i]);
  ctx.set_tensor(0, DataType::int64, {fixed_dim(static_cast<int64_t>(vals.size()))});
  if (all_fixed(vals)) {
    Shape s = to_shape(vals);
    ctx.set_value(0, Value::of(Tensor::from_vector<int64_t>({static_cast<int64_t>(s.size())}, s)));
  }
  ctx.set_dimvals(0, std::move(vals));
  return Status::ok();
}

Status size_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {});
  if (!ctx.ranked(0)) return Status::ok();
  Dim p = dims_product(ctx.dims(0), 0, ctx.dims(0).size());
  if (p.fixed()) ctx.set_value(0, Value::of(Tensor::scalar<int64_t>(p.value)));
  ctx.set_dimvals(0, {p});
  return Status::ok();
}

Status constant_rule(RuleContext& ctx) {
  const Node& n = ctx.node();
  if (const Attribute* a = n.attr("value")) ctx.set_tensor(0, a->t.dtype(), from_shape(a->t.shape()));
  else if (n.has_attr("value_float")) ctx.set_tensor(0, DataType::float32, {});
  else if (const Attribute* a = n.attr("value_floats")) ctx.set_tensor(0, DataType::float32, {fixed_dim(static_cast<int64_t>(a->floats.size()))});
  else if (n.has_attr("value_int")) ctx.set_tensor(0, DataType::int64, {});
  else if (const Attribute* a = n.attr("value_ints")) ctx.set_tensor(0, DataType::int64, {fixed_dim(static_cast<int64_t>(a->ints.size()))});
  else if (n.has_attr("value_string")) ctx.set_tensor(0, DataType::string, {});
  else if (const Attribute* a = n.attr("value_strings")) ctx.set_tensor(0, DataType::string, {fixed_dim(static_cast<int64_t>(a->strings.size()))});
  else if (const Attribute* a = n.attr("sparse_value")) ctx.set_tensor(0, a->t.dtype(), from_shape(a->t.shape()));
  else return ctx.invalid("has none of the value attributes");
  return Status::ok();
}

Status constant_of_shape_rule(RuleContext& ctx) {
  DataType dt = DataType::float32;
  if (const Attribute* a = ctx.node().attr("value"); a && a->t.defined()) dt = a->t.dtype();
  auto target = shape_operand(ctx, 0);
  if (!target) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  for (const Dim& d : *target)
    if (int64_t neg = 0; literal_negative(d, &neg))
      return ctx.invalid("shape has a negative dimension " + std::to_string(neg));
  ctx.set_tensor(0, dt, std::move(*target));
  return Status::ok();
}

Status range_rule(RuleContext& ctx) {
  DataType dt = ctx.dtype(0);
  auto s = ctx.floats(0), l = ctx.floats(1), d = ctx.floats(2);
  if (s && l && d && s->size() == 1 && l->size() == 1 && d->size() == 1) {
    if ((*d)[0] == 0) return ctx.invalid("delta is zero");
    double n = std::ceil(((*l)[0] - (*s)[0]) / (*d)[0]);
    if (std::isnan(n)) return ctx.invalid("range length is not a number");
    ctx.set_tensor(0, dt, {n < 1e15 ? fixed_dim(static_cast<int64_t>(std::max(0.0, n))) : unknown_dim()});
    return Status::ok();
  }
  ctx.set_tensor(0, dt, {unknown_dim()});
  return Status::ok();
}

// ---- reductions, ArgMax, TopK -------------------------------------------------------------------

Status reduce_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const bool keep = ctx.node().attr_int("keepdims", 1) != 0;
  auto axes = ctx.ints_attr_or_input("axes", 1);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  if (!axes) {
    if (keep) ctx.set_tensor(0, dt, Dims(d.size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  std::vector<int64_t> ax;
  if (axes->empty()) {
    if (ctx.node().attr_int("noop_with_empty_axes", 0) != 0) {
      ctx.set(0, ctx.type(0));
      return Status::ok();
    }
    for (int64_t i = 0; i < r; ++i) ax.push_back(i);
  } else {
    TANDEM_ASSIGN_OR_RETURN(ax, norm_axes(ctx, *axes, r));
  }
  Dims out;
  for (int64_t i = 0; i < r; ++i) {
    bool reduced = std::find(ax.begin(), ax.end(), i) != ax.end();
    if (!reduced) out.push_back(d[i]);
    else if (keep) out.push_back(fixed_dim(1));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status arg_rule(RuleContext& ctx) {
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, DataType::int64);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims out = ctx.dims(0);
  if (ctx.node().attr_int("keepdims", 1) != 0) out[a] = fixed_dim(1);
  else out.erase(out.begin() + a);
  ctx.set_tensor(0, DataType::int64, std::move(out));
  return Status::ok();
}

Status topk_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    ctx.set_unranked(1, DataType::int64);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", -1), ctx.rank(0)));
  Dims out = ctx.dims(0);
  Dim k = unknown_dim();
  if (ctx.opset() < 10 || !ctx.has_input(1)) {
    if (ctx.node().has_attr("k")) k = fixed_dim(ctx.node().attr_int("k", 0));
  } else if (auto v = ctx.ints(1); v && v->size() == 1) {
    k = fixed_dim((*v)[0]);
  } else if (const Dims* dv = ctx.dim_values(1); dv && dv->size() == 1) {
    k = plain_dim((*dv)[0]);
  }
  if (k.fixed() && k.value < 0) return ctx.invalid("k is negative");
  if (k.fixed() && out[a].fixed() && k.value > out[a].value)
    return ctx.invalid("k " + std::to_string(k.value) + " exceeds axis " + std::to_string(a) + " of size " +
                       std::to_string(out[a].value));
  out[a] = k;
  ctx.set_tensor(0, dt, out);
  ctx.set_tensor(1, DataType::int64, std::move(out));
  return Status::ok();
}

// ---- random ----------------------------------------------------------------------------------------

Status random_rule(RuleContext& ctx) {
  const DataType dt = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  ctx.set_tensor(0, dt, from_shape(ctx.node().attr_ints("shape")));
  return Status::ok();
}

Status multinomial_rule(RuleContext& ctx) {
  const DataType dt = static_cast<DataType>(ctx.node().attr_int("dtype", 6));
  Dim batch = ctx.ranked(0) && ctx.rank(0) == 2 ? ctx.dims(0)[0] : unknown_dim();
  ctx.set_tensor(0, dt, {batch, fixed_dim(ctx.node().attr_int("sample_size", 1))});
  return Status::ok();
}

// ---- quantization ------------------------------------------------------------------------------

Status quantize_rule(RuleContext& ctx) {
  DataType dt = DataType::uint8;
  if (ctx.has_input(2) && ctx.dtype(2) != DataType::undefined) dt = ctx.dtype(2);
  else if (ctx.node().attr_int("output_dtype", 0) != 0) dt = static_cast<DataType>(ctx.node().attr_int("output_dtype", 0));
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dt;
  ctx.set(0, t);
  return Status::ok();
}

Status dequantize_rule(RuleContext& ctx) {
  DataType dt = DataType::float32;
  if (ctx.opset() >= 19 && ctx.dtype(1) != DataType::undefined) dt = ctx.dtype(1);
  if (ctx.opset() >= 21 && ctx.node().attr_int("output_dtype", 0) != 0) dt = static_cast<DataType>(ctx.node().attr_int("output_dtype", 0));
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dt;
  ctx.set(0, t);
  return Status::ok();
}

Status dynamic_quantize_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = DataType::uint8;
  ctx.set(0, t);
  ctx.set_tensor(1, DataType::float32, {});
  ctx.set_tensor(2, DataType::uint8, {});
  return Status::ok();
}

}  // namespace

void register_elementwise_rules(RuleTable& t) {
  for (const char* op :
       {"Abs", "Neg", "Exp", "Log", "Sqrt", "Reciprocal", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh",
        "Asinh", "Acosh", "Atanh", "Ceil", "Floor", "Round", "Sign", "Erf", "Not", "BitwiseNot", "Relu", "LeakyRelu",
        "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus", "Softsign", "Tanh", "ThresholdedRelu",
        "Shrink", "Gelu", "Mish", "Softmax", "LogSoftmax", "Hardmax", "Clip", "CumSum", "Trilu", "ReverseSequence",
        "Scatter", "ScatterElements", "ScatterND", "LRN", "MeanVarianceNormalization", "LpNormalization",
        "InstanceNormalization", "GroupNormalization"})
    t.add("", op, unary_rule);
  t.add("", "Bernoulli", like_rule);
  t.add("", "RandomUniformLike", like_rule);
  t.add("", "RandomNormalLike", like_rule);
  t.add("", "RandomUniform", random_rule);
  t.add("", "RandomNormal", random_rule);
  t.add("", "Multinomial", multinomial_rule);
  t.add("", "IsNaN", bool_unary_rule);
  t.add("", "IsInf", bool_unary_rule);
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Mod", "BitShift", "And", "Or", "Xor", "BitwiseAnd",
                         "BitwiseOr", "BitwiseXor", "Max", "Min", "Sum", "Mean"})
    t.add("", op, binary_rule);
  for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}) t.add("", op, compare_rule);
  t.add("", "PRelu", prelu_rule);
  t.add("", "Where", where_rule);
  t.add("", "Cast", cast_rule);
  t.add("", "CastLike", cast_rule);
  t.add("", "Identity", identity_rule);
  t.add("", "Dropout", dropout_rule);
  t.add("", "Shape", shape_rule);
  t.add("", "Size", size_rule);
  t.add("", "Constant", constant_rule);
  t.add("", "ConstantOfShape", constant_of_shape_rule);
  t.add("", "Range", range_rule);
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    t.add("", op, reduce_rule);
  t.add("", "ArgMax", arg_rule);
  t.add("", "ArgMin", arg_rule);
  t.add("", "TopK", topk_rule);
  t.add("", "QuantizeLinear", quantize_rule);
  t.add("", "DequantizeLinear", dequantize_rule);
  t.add("", "DynamicQuantizeLinear", dynamic_quantize_rule);
}

}  // namespace tandem::shape_detail
