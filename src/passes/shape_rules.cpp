// shape_rules.cpp: Dim helpers, the RuleContext accessors, and the rules for elementwise ops,
// data movement (Reshape, Concat, Slice, Gather, ...), reductions, constant producers,
// sequences and optionals. See shape_rules.h for the contract of a rule.
#include "passes/shape_rules.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "core/tensor_util.h"

namespace tandem::shape_detail {

// ---- Dim helpers ------------------------------------------------------------------------------

bool literal_negative(const Dim& d, int64_t* v) {
  if (d.fixed() || d.symbol.size() < 2 || d.symbol.size() > 19 || d.symbol[0] != '-') return false;
  for (size_t i = 1; i < d.symbol.size(); ++i)
    if (d.symbol[i] < '0' || d.symbol[i] > '9') return false;
  *v = std::stoll(d.symbol);
  return true;
}

bool all_fixed(const Dims& d) {
  return std::all_of(d.begin(), d.end(), [](const Dim& x) { return x.fixed(); });
}

Shape to_shape(const Dims& d) {
  Shape s;
  s.reserve(d.size());
  for (const Dim& x : d) s.push_back(x.fixed() ? x.value : -1);
  return s;
}

Dims from_shape(const Shape& s) {
  Dims d;
  d.reserve(s.size());
  for (int64_t v : s) d.push_back(v >= 0 ? fixed_dim(v) : unknown_dim());
  return d;
}

std::string dim_to_string(const Dim& d) {
  if (d.fixed()) return std::to_string(d.value);
  return d.symbol.empty() ? std::string("?") : d.symbol;
}

std::string dims_to_string(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) {
    if (i) s += ',';
    s += dim_to_string(d[i]);
  }
  return s + "]";
}

namespace {
constexpr int64_t kDimLimit = int64_t{1} << 62;
}

Dim dim_add(const Dim& a, const Dim& b) {
  if (a.fixed() && b.fixed()) {
    if (a.value > kDimLimit - b.value) return unknown_dim();
    return fixed_dim(a.value + b.value);
  }
  if (a.value == 0) return b;
  if (b.value == 0) return a;
  return unknown_dim();
}

Dim dim_mul(const Dim& a, const Dim& b) {
  if (a.value == 0 || b.value == 0) return fixed_dim(0);
  if (a.fixed() && b.fixed()) {
    if (a.value > kDimLimit / b.value) return unknown_dim();
    return fixed_dim(a.value * b.value);
  }
  if (a.value == 1) return b;
  if (b.value == 1) return a;
  return unknown_dim();
}

Dim dims_product(const Dims& d, size_t begin, size_t end) {
  Dim p = fixed_dim(1);
  for (size_t i = begin; i < end && i < d.size(); ++i) p = dim_mul(p, d[i]);
  return p;
}

bool unify_dim(const Dim& a, const Dim& b, Dim* out) {
  if (a.fixed() && b.fixed()) {
    *out = a;
    return a.value == b.value;
  }
  if (a.fixed()) *out = a;
  else if (b.fixed()) *out = b;
  else if (!a.symbol.empty()) *out = a;
  else *out = b;
  return true;
}

Dim join_dim(const Dim& a, const Dim& b) { return same_dim(a, b) ? a : unknown_dim(); }

TypeInfo join_types(const TypeInfo& a, const TypeInfo& b) {
  if (a.kind == TypeInfo::Kind::unknown) return b;
  if (b.kind == TypeInfo::Kind::unknown) return a;
  if (a.kind != b.kind) return TypeInfo{};
  TypeInfo r = a;
  if (a.kind == TypeInfo::Kind::tensor) {
    if (r.elem == DataType::undefined) r.elem = b.elem;
    if (!a.has_shape || !b.has_shape || a.dims.size() != b.dims.size()) {
      r.has_shape = false;
      r.dims.clear();
      return r;
    }
    for (size_t i = 0; i < r.dims.size(); ++i) r.dims[i] = join_dim(a.dims[i], b.dims[i]);
    return r;
  }
  if (a.inner && b.inner) r.inner = std::make_shared<TypeInfo>(join_types(*a.inner, *b.inner));
  else if (!r.inner) r.inner = b.inner;
  return r;
}

TypeInfo tensor_type(DataType dtype, Dims dims) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dtype;
  t.has_shape = true;
  t.dims = std::move(dims);
  return t;
}

TypeInfo unranked_type(DataType dtype) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dtype;
  return t;
}

TypeInfo type_of_value(const Value& v) {
  if (v.is_tensor()) return tensor_type(v.tensor.dtype(), from_shape(v.tensor.shape()));
  TypeInfo t;
  if (v.is_sequence()) {
    t.kind = TypeInfo::Kind::sequence;
    TypeInfo inner = unranked_type(v.sequence_dtype);
    for (size_t i = 0; i < v.sequence.size(); ++i) {
      TypeInfo e = tensor_type(v.sequence[i].dtype(), from_shape(v.sequence[i].shape()));
      inner = i == 0 ? e : join_types(inner, e);
    }
    t.inner = std::make_shared<TypeInfo>(std::move(inner));
    return t;
  }
  t.kind = TypeInfo::Kind::optional;  // an empty optional: its element type is not known here
  return t;
}

// ---- RuleContext --------------------------------------------------------------------------------

const TypeInfo& RuleContext::type(size_t i) const {
  static const TypeInfo kUnknown;
  return has_input(i) ? *in_types_[i] : kUnknown;
}

const Tensor* RuleContext::value(size_t i) const {
  const Value* v = known_value(i);
  return v && v->is_tensor() ? &v->tensor : nullptr;
}

std::optional<std::vector<int64_t>> RuleContext::ints(size_t i) const {
  if (const Tensor* t = value(i)) {
    if (is_integer_type(t->dtype())) return to_int64_vector(*t);
    return std::nullopt;
  }
  if (const Dims* d = dim_values(i); d && all_fixed(*d)) return to_shape(*d);
  return std::nullopt;
}

std::optional<std::vector<double>> RuleContext::floats(size_t i) const {
  const Tensor* t = value(i);
  if (!t || t->dtype() == DataType::string || t->dtype() == DataType::complex64 || t->dtype() == DataType::complex128)
    return std::nullopt;
  return to_double_vector(*t);
}

int64_t RuleContext::length_of(size_t i) const {
  if (const Tensor* t = value(i)) return t->numel();
  if (!ranked(i)) return -1;
  if (rank(i) == 0) return 1;
  if (rank(i) == 1 && dims(i)[0].fixed()) return dims(i)[0].value;
  return -1;
}

std::optional<std::vector<int64_t>> RuleContext::ints_attr_or_input(const std::string& attr, size_t input) const {
  if (node_.has_attr(attr)) return node_.attr_ints(attr);
  if (has_input(input)) return ints(input);
  return std::vector<int64_t>{};
}

Result<int64_t> RuleContext::axis(int64_t a, int64_t r, const char* what) const {
  if (a < -r || a >= r)
    return invalid(std::string(what) + " " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
  return a < 0 ? a + r : a;
}

// ---- shared rule helpers ------------------------------------------------------------------------

Result<Dims> broadcast(const RuleContext& ctx, const std::vector<const Dims*>& shapes) {
  size_t r = 0;
  for (const Dims* s : shapes) r = std::max(r, s->size());
  Dims out(r, fixed_dim(1));
  for (size_t k = 0; k < r; ++k) {
    Dim cur = fixed_dim(1);
    bool first = true;
    for (const Dims* s : shapes) {
      if (s->size() + k < r) continue;
      const Dim& d = (*s)[s->size() - r + k];
      if (first) {
        cur = d;
        first = false;
        continue;
      }
      if (is_one(d)) continue;
      if (is_one(cur)) {
        cur = d;
      } else if (cur.fixed() && d.fixed()) {
        if (cur.value != d.value) {
          std::string msg = "cannot broadcast shapes";
          for (size_t i = 0; i < shapes.size(); ++i) msg += (i ? " and " : " ") + dims_to_string(*shapes[i]);
          return ctx.invalid(msg);
        }
      } else if (cur.fixed()) {
        // d is 1 or cur: cur stands
      } else if (d.fixed()) {
        cur = d;
      } else if (!same_dim(cur, d)) {
        cur = unknown_dim();
      }
    }
    out[k] = cur;
  }
  return out;
}

Status same_as_input(RuleContext& ctx, size_t from) {
  for (size_t i = 0; i < ctx.num_outputs(); ++i) ctx.set(i, ctx.type(from));
  return Status::ok();
}

namespace {

bool is_int_dtype(DataType t) { return is_integer_type(t); }

// Dims of input i, or null when its rank is unknown.
const Dims* ranked_dims(const RuleContext& ctx, size_t i) { return ctx.ranked(i) ? &ctx.dims(i) : nullptr; }

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
  if (ctx.num_inputs() == 2 && ctx.dim_values(0) && ctx.dim_values(1) && is_int_dtype(dt) && ctx.rank(0) <= 1 &&
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
  if (is_int_dtype(to) && ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
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

// The target shape given by a 1-D shape input: fixed/symbolic elements where traced, unknown
// elements where only the length is known; nullopt when even the length is unknown.
std::optional<Dims> shape_operand(const RuleContext& ctx, size_t i) {
  if (auto v = ctx.ints(i)) {
    Dims d;
    for (int64_t x : *v) d.push_back(int_dim(x));
    return d;
  }
  if (const Dims* d = ctx.dim_values(i)) return *d;
  int64_t len = ctx.length_of(i);
  if (len >= 0 && ctx.ranked(i) && ctx.rank(i) == 1) return Dims(static_cast<size_t>(len), unknown_dim());
  return std::nullopt;
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

// ---- Reshape, Flatten, Transpose, Squeeze, Unsqueeze ---------------------------------------------

// Resolves the -1 entry of a Reshape: element count of `in` divided by the product of the other
// output dims, cancelling matching symbols.
Result<Dim> infer_minus_one(const RuleContext& ctx, const Dims& in, const Dims& out, size_t skip) {
  int64_t in_fixed = 1, out_fixed = 1;
  std::multiset<std::string> in_sym, out_sym;
  bool unknown = false;
  auto acc = [&](const Dim& d, int64_t& f, std::multiset<std::string>& sym) {
    if (d.fixed()) {
      if (d.value != 0 && f > kDimLimit / d.value) unknown = true;
      else f *= d.value;
    } else if (!d.symbol.empty()) sym.insert(d.symbol);
    else unknown = true;
  };
  for (const Dim& d : in) acc(d, in_fixed, in_sym);
  for (size_t i = 0; i < out.size(); ++i)
    if (i != skip) acc(out[i], out_fixed, out_sym);
  if (unknown) return unknown_dim();
  for (auto it = out_sym.begin(); it != out_sym.end();) {
    auto m = in_sym.find(*it);
    if (m == in_sym.end()) return unknown_dim();
    in_sym.erase(m);
    it = out_sym.erase(it);
  }
  if (out_fixed == 0) {
    if (in_fixed == 0 && in_sym.empty()) return unknown_dim();
    return ctx.invalid("cannot infer -1 with a zero-sized dimension in the target shape");
  }
  if (in_fixed % out_fixed != 0) {
    if (!in_sym.empty()) return unknown_dim();
    return ctx.invalid("cannot reshape " + dims_to_string(in) + " to " + dims_to_string(out) + ": " +
                       std::to_string(in_fixed) + " elements are not divisible by " + std::to_string(out_fixed));
  }
  if (in_sym.empty()) return fixed_dim(in_fixed / out_fixed);
  if (in_sym.size() == 1 && in_fixed == out_fixed) return symbol_dim(*in_sym.begin());
  return unknown_dim();
}

// Element-count check of a Reshape without -1 when both sides are comparable.
Status check_reshape_count(const RuleContext& ctx, const Dims& in, const Dims& out) {
  int64_t a = 1, b = 1;
  std::multiset<std::string> sa, sb;
  for (const Dim& d : in) {
    if (d.fixed()) a = d.value != 0 && a > kDimLimit / d.value ? -1 : a * d.value;
    else if (!d.symbol.empty()) sa.insert(d.symbol);
    else return Status::ok();
    if (a < 0) return Status::ok();
  }
  for (const Dim& d : out) {
    if (d.fixed()) b = d.value != 0 && b > kDimLimit / d.value ? -1 : b * d.value;
    else if (!d.symbol.empty()) sb.insert(d.symbol);
    else return Status::ok();
    if (b < 0) return Status::ok();
  }
  if (sa != sb) return Status::ok();
  if (a != b)
    return ctx.invalid("cannot reshape " + dims_to_string(in) + " (" + std::to_string(a) + " elements) to " +
                       dims_to_string(out) + " (" + std::to_string(b) + " elements)");
  return Status::ok();
}

Status reshape_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  std::optional<Dims> target;
  if (ctx.opset() < 5 || !ctx.has_input(1)) {
    if (ctx.node().has_attr("shape")) {
      target = Dims();
      for (int64_t x : ctx.node().attr_ints("shape")) target->push_back(int_dim(x));
    }
  } else {
    target = shape_operand(ctx, 1);
  }
  if (!target) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const bool allowzero = ctx.node().attr_int("allowzero", 0) != 0;
  const Dims* in = ranked_dims(ctx, 0);
  Dims out = *target;
  int minus_one = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    int64_t neg = 0;
    if (literal_negative(out[i], &neg)) {
      if (neg != -1) return ctx.invalid("shape entry " + std::to_string(neg) + " is invalid");
      if (minus_one >= 0) return ctx.invalid("shape has more than one -1");
      minus_one = static_cast<int>(i);
      out[i] = unknown_dim();
    } else if (out[i].value == 0 && !allowzero) {
      if (in && i >= in->size())
        return ctx.invalid("shape entry " + std::to_string(i) + " is 0 (copy) but the input has rank " +
                           std::to_string(in->size()));
      out[i] = in ? (*in)[i] : unknown_dim();
    }
  }
  if (minus_one >= 0) {
    if (in) {
      TANDEM_ASSIGN_OR_RETURN(out[minus_one], infer_minus_one(ctx, *in, out, static_cast<size_t>(minus_one)));
    }
  } else if (in) {
    TANDEM_RETURN_IF_ERROR(check_reshape_count(ctx, *in, out));
  }
  if (const Dims* dv = ctx.dim_values(0); dv && out.size() <= 1 && all_fixed(out) &&
                                          shape_numel(to_shape(out)) == static_cast<int64_t>(dv->size()))
    ctx.set_dimvals(0, *dv);
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status flatten_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_tensor(0, dt, {unknown_dim(), unknown_dim()});
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  int64_t a = ctx.node().attr_int("axis", 1);
  if (a < -r || a > r) return ctx.invalid("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(r));
  if (a < 0) a += r;
  const Dims& d = ctx.dims(0);
  ctx.set_tensor(0, dt, {dims_product(d, 0, a), dims_product(d, a, d.size())});
  return Status::ok();
}

Status transpose_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    if (ctx.node().has_attr("perm")) ctx.set_tensor(0, dt, Dims(ctx.node().attr_ints("perm").size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  std::vector<int64_t> perm = ctx.node().attr_ints("perm");
  if (!ctx.node().has_attr("perm"))
    for (int64_t i = r - 1; i >= 0; --i) perm.push_back(i);
  if (static_cast<int64_t>(perm.size()) != r)
    return ctx.invalid("perm has " + std::to_string(perm.size()) + " entries, the input has rank " + std::to_string(r));
  std::vector<bool> seen(r, false);
  Dims out;
  for (int64_t p : perm) {
    TANDEM_ASSIGN_OR_RETURN(int64_t q, ctx.axis(p, r, "perm entry"));
    if (seen[q]) return ctx.invalid("perm repeats axis " + std::to_string(q));
    seen[q] = true;
    out.push_back(d[q]);
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// Normalizes and de-duplicates axes against rank r.
Result<std::vector<int64_t>> norm_axes(const RuleContext& ctx, const std::vector<int64_t>& axes, int64_t r) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    TANDEM_ASSIGN_OR_RETURN(int64_t n, ctx.axis(a, r));
    if (std::find(out.begin(), out.end(), n) != out.end()) return ctx.invalid("axis " + std::to_string(a) + " is repeated");
    out.push_back(n);
  }
  return out;
}

Status squeeze_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto axes = ctx.ints_attr_or_input("axes", 1);
  if (!ctx.ranked(0) || !axes) {
    const int64_t n = ctx.node().has_attr("axes") ? -1 : ctx.length_of(1);
    if (ctx.ranked(0) && n > 0 && n <= ctx.rank(0)) ctx.set_tensor(0, dt, Dims(static_cast<size_t>(ctx.rank(0) - n), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  Dims out;
  if (axes->empty()) {
    if (!all_fixed(d)) {
      // Which unknown dims are 1 is not known; only fixed non-1 dims certainly stay.
      ctx.set_unranked(0, dt);
      return Status::ok();
    }
    for (const Dim& x : d)
      if (x.value != 1) out.push_back(x);
  } else {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
    for (int64_t a : ax)
      if (d[a].fixed() && d[a].value != 1)
        return ctx.invalid("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(d[a].value));
    for (int64_t i = 0; i < r; ++i)
      if (std::find(ax.begin(), ax.end(), i) == ax.end()) out.push_back(d[i]);
  }
  if (ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status unsqueeze_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto axes = ctx.ints_attr_or_input("axes", 1);
  if (!ctx.ranked(0) || !axes) {
    // Unknown axes: the output rank is still known when their count is.
    const int64_t n = ctx.node().has_attr("axes") ? -1 : ctx.length_of(1);
    if (ctx.ranked(0) && n >= 0) ctx.set_tensor(0, dt, Dims(static_cast<size_t>(ctx.rank(0) + n), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0) + static_cast<int64_t>(axes->size());
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
  Dims out;
  size_t k = 0;
  for (int64_t i = 0; i < r; ++i) {
    if (std::find(ax.begin(), ax.end(), i) != ax.end()) out.push_back(fixed_dim(1));
    else out.push_back(d[k++]);
  }
  if (ctx.dim_values(0)) ctx.set_dimvals(0, *ctx.dim_values(0));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- Concat, Split, Slice --------------------------------------------------------------------------

Status concat_rule(RuleContext& ctx) {
  DataType dt = DataType::undefined;
  const Dims* first = nullptr;
  bool all_ranked = true;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.has_input(i)) continue;
    if (dt == DataType::undefined) dt = ctx.dtype(i);
    if (!ctx.ranked(i)) all_ranked = false;
    else if (!first) first = &ctx.dims(i);
  }
  if (!first) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = static_cast<int64_t>(first->size());
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), r));
  Dims out = *first;
  out[axis] = fixed_dim(0);
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.ranked(i)) continue;
    const Dims& d = ctx.dims(i);
    if (static_cast<int64_t>(d.size()) != r)
      return ctx.invalid("input " + std::to_string(i) + " has rank " + std::to_string(d.size()) + ", input 0 has rank " +
                         std::to_string(r));
    for (int64_t k = 0; k < r; ++k) {
      if (k == axis) {
        out[k] = dim_add(out[k], d[k]);
        continue;
      }
      Dim u;
      if (!unify_dim(out[k], d[k], &u))
        return ctx.invalid("input " + std::to_string(i) + " has shape " + dims_to_string(d) + ", which differs from " +
                           dims_to_string(out) + " outside axis " + std::to_string(axis));
      out[k] = u;
    }
  }
  if (!all_ranked) out[axis] = unknown_dim();
  // Traced shape values concatenate.
  if (r == 1 && all_ranked) {
    Dims vals;
    bool ok = true;
    for (size_t i = 0; i < ctx.num_inputs() && ok; ++i) {
      if (!ctx.has_input(i)) continue;
      const Dims* dv = ctx.dim_values(i);
      if (!dv) ok = false;
      else vals.insert(vals.end(), dv->begin(), dv->end());
    }
    if (ok) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status split_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  const size_t n = ctx.num_outputs();
  if (!ctx.ranked(0)) {
    for (size_t i = 0; i < n; ++i) ctx.set_unranked(i, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  std::optional<std::vector<int64_t>> sizes = ctx.ints_attr_or_input("split", 1);
  std::vector<Dim> parts(n, unknown_dim());
  if (sizes && !sizes->empty()) {
    if (sizes->size() != n)
      return ctx.invalid("split has " + std::to_string(sizes->size()) + " entries but the node has " +
                         std::to_string(n) + " outputs");
    int64_t sum = 0;
    for (int64_t s : *sizes) {
      if (s < 0 || s > kDimLimit) return ctx.invalid("split has an out-of-range entry " + std::to_string(s));
      sum = std::min(sum + s, kDimLimit);
    }
    if (d[axis].fixed() && sum != d[axis].value)
      return ctx.invalid("split sizes sum to " + std::to_string(sum) + " but axis " + std::to_string(axis) + " has size " +
                         std::to_string(d[axis].value));
    for (size_t i = 0; i < n; ++i) parts[i] = fixed_dim((*sizes)[i]);
  } else if (sizes && d[axis].fixed()) {
    const int64_t total = d[axis].value;
    const int64_t k = static_cast<int64_t>(n);
    if (ctx.node().has_attr("num_outputs")) {
      const int64_t chunk = (total + k - 1) / k;
      for (int64_t i = 0; i < k; ++i) parts[i] = fixed_dim(std::max<int64_t>(0, std::min(chunk, total - i * chunk)));
    } else {
      if (total % k != 0)
        return ctx.invalid("axis " + std::to_string(axis) + " of size " + std::to_string(total) +
                           " does not split evenly into " + std::to_string(k) + " outputs");
      for (int64_t i = 0; i < k; ++i) parts[i] = fixed_dim(total / k);
    }
  } else if (sizes && n == 1) {
    parts[0] = d[axis];
  }
  for (size_t i = 0; i < n; ++i) {
    Dims o = d;
    o[axis] = parts[i];
    ctx.set_tensor(i, dt, std::move(o));
  }
  // Traced values split too.
  if (const Dims* dv = ctx.dim_values(0); dv && d.size() == 1 && std::all_of(parts.begin(), parts.end(), [](const Dim& p) { return p.fixed(); })) {
    size_t off = 0;
    for (size_t i = 0; i < n && off + parts[i].value <= dv->size(); ++i) {
      ctx.set_dimvals(i, Dims(dv->begin() + off, dv->begin() + off + parts[i].value));
      off += parts[i].value;
    }
  }
  return Status::ok();
}

// ONNX slice arithmetic on one axis of a fixed size.
int64_t slice_length(int64_t dim, int64_t start, int64_t end, int64_t step, int64_t* first) {
  if (start < 0) start += dim;
  if (end < 0) end += dim;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    *first = start;
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = std::clamp<int64_t>(start, 0, dim - 1);
  end = std::clamp<int64_t>(end, -1, dim - 1);
  *first = start;
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}

Status slice_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  const int64_t r = ctx.rank(0);
  std::optional<std::vector<int64_t>> starts, ends, axes, steps;
  if (ctx.opset() < 10) {
    starts = ctx.node().attr_ints("starts");
    ends = ctx.node().attr_ints("ends");
    axes = ctx.node().attr_ints("axes");
    steps = std::vector<int64_t>{};
  } else {
    starts = ctx.ints(1);
    ends = ctx.ints(2);
    axes = ctx.has_input(3) ? ctx.ints(3) : std::vector<int64_t>{};
    steps = ctx.has_input(4) ? ctx.ints(4) : std::vector<int64_t>{};
  }
  Dims out = d;
  if (!starts || !ends || !steps) {
    if (axes && !axes->empty()) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
      for (int64_t a : ax) out[a] = unknown_dim();
    } else {
      for (Dim& x : out) x = unknown_dim();
    }
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  }
  if (starts->size() != ends->size())
    return ctx.invalid("starts has " + std::to_string(starts->size()) + " entries, ends " + std::to_string(ends->size()));
  std::vector<int64_t> ax_raw = *axes;
  if (!axes->empty() && axes->size() != starts->size())
    return ctx.invalid("axes has " + std::to_string(axes->size()) + " entries, starts " + std::to_string(starts->size()));
  if (axes->empty())
    for (size_t i = 0; i < starts->size(); ++i) ax_raw.push_back(static_cast<int64_t>(i));
  if (!steps->empty() && steps->size() != starts->size())
    return ctx.invalid("steps has " + std::to_string(steps->size()) + " entries, starts " + std::to_string(starts->size()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, ax_raw, r));
  const int64_t big = std::numeric_limits<int32_t>::max();
  std::vector<int64_t> firsts(ax.size(), 0), stepv(ax.size(), 1);
  for (size_t i = 0; i < ax.size(); ++i) {
    const int64_t st = steps->empty() ? 1 : std::max<int64_t>((*steps)[i], -kDimLimit);
    if (st == 0) return ctx.invalid("step is 0");
    stepv[i] = st;
    const int64_t s = (*starts)[i], e = (*ends)[i];
    const Dim& dim = d[ax[i]];
    if (dim.fixed()) {
      out[ax[i]] = fixed_dim(slice_length(dim.value, s, e, st, &firsts[i]));
    } else if (st == 1 && s == 0 && e >= big) {
      out[ax[i]] = dim;  // the whole axis
    } else if (st == -1 && s >= big && e <= -big) {
      out[ax[i]] = dim;  // the whole axis, reversed
    } else {
      out[ax[i]] = unknown_dim();
    }
  }
  if (const Dims* dv = ctx.dim_values(0); dv && r == 1 && out[0].fixed() && !ax.empty()) {
    Dims vals;
    for (int64_t k = 0; k < out[0].value; ++k) {
      int64_t idx = firsts[0] + k * stepv[0];
      if (idx < 0 || idx >= static_cast<int64_t>(dv->size())) break;
      vals.push_back((*dv)[idx]);
    }
    if (static_cast<int64_t>(vals.size()) == out[0].value) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

// ---- Gather family, Scatter, Expand, Tile, Pad ------------------------------------------------

Status gather_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0) || !ctx.ranked(1)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const Dims& d = ctx.dims(0);
  TANDEM_ASSIGN_OR_RETURN(int64_t axis, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims out(d.begin(), d.begin() + axis);
  out.insert(out.end(), ctx.dims(1).begin(), ctx.dims(1).end());
  out.insert(out.end(), d.begin() + axis + 1, d.end());
  auto idx = ctx.ints(1);
  if (idx && d[axis].fixed()) {
    for (int64_t i : *idx)
      if (i < -d[axis].value || i >= d[axis].value)
        return ctx.invalid("index " + std::to_string(i) + " is out of range for axis " + std::to_string(axis) +
                           " of size " + std::to_string(d[axis].value));
  }
  if (const Dims* dv = ctx.dim_values(0); dv && idx && d.size() == 1 && ctx.rank(1) <= 1) {
    Dims vals;
    const int64_t n = static_cast<int64_t>(dv->size());
    for (int64_t i : *idx) {
      int64_t j = i < 0 ? i + n : i;
      if (j < 0 || j >= n) break;
      vals.push_back((*dv)[j]);
    }
    if (vals.size() == idx->size()) ctx.set_dimvals(0, std::move(vals));
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status gather_elements_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(1);
  t.kind = TypeInfo::Kind::tensor;
  t.elem = ctx.dtype(0);
  if (ctx.ranked(0) && ctx.ranked(1) && ctx.rank(0) != ctx.rank(1))
    return ctx.invalid("indices have rank " + std::to_string(ctx.rank(1)) + ", data rank " + std::to_string(ctx.rank(0)));
  ctx.set(0, t);
  return Status::ok();
}

Status gather_nd_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0) || !ctx.ranked(1) || ctx.rank(1) == 0 || !ctx.dims(1).back().fixed()) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t b = ctx.node().attr_int("batch_dims", 0);
  const Dims& d = ctx.dims(0);
  const Dims& id = ctx.dims(1);
  const int64_t last = id.back().value;
  if (b < 0 || b > ctx.rank(0)) return ctx.invalid("batch_dims " + std::to_string(b) + " is out of range");
  if (b + last > ctx.rank(0))
    return ctx.invalid("indices last dim " + std::to_string(last) + " + batch_dims " + std::to_string(b) +
                       " exceeds the data rank " + std::to_string(ctx.rank(0)));
  Dims out(id.begin(), id.end() - 1);
  out.insert(out.end(), d.begin() + b + last, d.end());
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status expand_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  auto target = shape_operand(ctx, 1);
  if (!target || !ctx.ranked(0)) {
    if (target) ctx.set_tensor(0, dt, Dims(target->size(), unknown_dim()));
    else ctx.set_unranked(0, dt);
    return Status::ok();
  }
  for (const Dim& d : *target)
    if (int64_t neg = 0; literal_negative(d, &neg))
      return ctx.invalid("shape has a negative dimension " + std::to_string(neg));
  TANDEM_ASSIGN_OR_RETURN(Dims out, broadcast(ctx, {&ctx.dims(0), &*target}));
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status tile_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  Dims out = ctx.dims(0);
  auto reps = ctx.ints(1);
  if (!reps) {
    for (Dim& x : out) x = x.value == 0 ? x : unknown_dim();
  } else {
    if (static_cast<int64_t>(reps->size()) != ctx.rank(0))
      return ctx.invalid("repeats has " + std::to_string(reps->size()) + " entries, the input has rank " +
                         std::to_string(ctx.rank(0)));
    for (size_t i = 0; i < out.size(); ++i) {
      if ((*reps)[i] < 0) return ctx.invalid("repeats has a negative entry");
      out[i] = dim_mul(out[i], fixed_dim((*reps)[i]));
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status pad_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0);
  std::optional<std::vector<int64_t>> pads;
  if (ctx.opset() < 11) pads = ctx.node().attr_ints(ctx.node().has_attr("pads") ? "pads" : "paddings");
  else pads = ctx.ints(1);
  std::optional<std::vector<int64_t>> axes = std::vector<int64_t>{};
  if (ctx.opset() >= 18 && ctx.has_input(3)) axes = ctx.ints(3);
  Dims out = ctx.dims(0);
  if (!pads || !axes) {
    for (Dim& x : out) x = unknown_dim();
    if (axes && !axes->empty()) {
      out = ctx.dims(0);
      TANDEM_ASSIGN_OR_RETURN(std::vector<int64_t> ax, norm_axes(ctx, *axes, r));
      for (int64_t a : ax) out[a] = unknown_dim();
    }
    ctx.set_tensor(0, dt, std::move(out));
    return Status::ok();
  }
  std::vector<int64_t> ax = *axes;
  if (ax.empty())
    for (int64_t i = 0; i < r; ++i) ax.push_back(i);
  else {
    TANDEM_ASSIGN_OR_RETURN(ax, norm_axes(ctx, ax, r));
  }
  const size_t k = ax.size();
  if (pads->size() != 2 * k)
    return ctx.invalid("pads has " + std::to_string(pads->size()) + " entries, expected " + std::to_string(2 * k));
  for (int64_t p : *pads)
    if (p < -kDimLimit / 2 || p > kDimLimit / 2) return ctx.invalid("pads entry " + std::to_string(p) + " is out of range");
  for (size_t i = 0; i < k; ++i) {
    const int64_t total = (*pads)[i] + (*pads)[i + k];
    Dim& x = out[ax[i]];
    if (x.fixed()) {
      if (x.value + total < 0) return ctx.invalid("pads make axis " + std::to_string(ax[i]) + " negative");
      x = fixed_dim(x.value + total);
    } else if (total != 0) {
      x = unknown_dim();
    }
  }
  ctx.set_tensor(0, dt, std::move(out));
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

// ---- misc data movement -------------------------------------------------------------------------

Status compress_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.node().has_attr("axis")) {
    ctx.set_tensor(0, dt, {unknown_dim()});
    return Status::ok();
  }
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims out = ctx.dims(0);
  out[a] = unknown_dim();
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status nonzero_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {ctx.ranked(0) ? fixed_dim(ctx.rank(0)) : unknown_dim(), unknown_dim()});
  return Status::ok();
}

Status unique_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (ctx.node().has_attr("axis") && ctx.ranked(0)) {
    TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
    Dims y = ctx.dims(0);
    y[a] = unknown_dim();
    ctx.set_tensor(0, dt, std::move(y));
    ctx.set_tensor(2, DataType::int64, {ctx.dims(0)[a]});
  } else {
    ctx.set_tensor(0, dt, {unknown_dim()});
    Dim n = ctx.ranked(0) ? dims_product(ctx.dims(0), 0, ctx.dims(0).size()) : unknown_dim();
    ctx.set_tensor(2, DataType::int64, {ctx.node().has_attr("axis") ? unknown_dim() : n});
  }
  ctx.set_tensor(1, DataType::int64, {unknown_dim()});
  ctx.set_tensor(3, DataType::int64, {unknown_dim()});
  return Status::ok();
}

Status onehot_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(2);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  const int64_t r = ctx.rank(0) + 1;
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", -1), r));
  Dim depth = unknown_dim();
  if (auto v = ctx.floats(1); v && v->size() == 1 && (*v)[0] >= 0 && (*v)[0] < 1e15) depth = fixed_dim(static_cast<int64_t>((*v)[0]));
  Dims out = ctx.dims(0);
  out.insert(out.begin() + a, depth);
  ctx.set_tensor(0, dt, std::move(out));
  return Status::ok();
}

Status depth_space_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set_unranked(0, dt);
    return Status::ok();
  }
  if (ctx.rank(0) != 4) return ctx.invalid("input has rank " + std::to_string(ctx.rank(0)) + ", expected 4");
  const int64_t b = ctx.node().attr_int("blocksize", 0);
  if (b <= 0) return ctx.invalid("blocksize must be positive");
  Dims d = ctx.dims(0);
  const bool to_space = ctx.node().op_type == "DepthToSpace";
  const Dim bb = fixed_dim(b * b), bd = fixed_dim(b);
  auto divide = [&](const Dim& x, int64_t by, const char* what) -> Result<Dim> {
    if (!x.fixed()) return unknown_dim();
    if (x.value % by != 0)
      return ctx.invalid(std::string(what) + " " + std::to_string(x.value) + " is not divisible by " + std::to_string(by));
    return fixed_dim(x.value / by);
  };
  if (to_space) {
    TANDEM_ASSIGN_OR_RETURN(d[1], divide(d[1], b * b, "channels"));
    d[2] = dim_mul(d[2], bd);
    d[3] = dim_mul(d[3], bd);
  } else {
    d[1] = dim_mul(d[1], bb);
    TANDEM_ASSIGN_OR_RETURN(d[2], divide(d[2], b, "height"));
    TANDEM_ASSIGN_OR_RETURN(d[3], divide(d[3], b, "width"));
  }
  ctx.set_tensor(0, dt, std::move(d));
  return Status::ok();
}

Status eye_like_rule(RuleContext& ctx) {
  TypeInfo t = ctx.type(0);
  t.kind = TypeInfo::Kind::tensor;
  if (ctx.node().has_attr("dtype")) t.elem = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  ctx.set(0, t);
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

// ---- sequences and optionals -----------------------------------------------------------------

TypeInfo seq_of(TypeInfo inner) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::sequence;
  t.inner = std::make_shared<TypeInfo>(std::move(inner));
  return t;
}

TypeInfo inner_of(const TypeInfo& t) { return t.inner ? *t.inner : TypeInfo{}; }

Status sequence_empty_rule(RuleContext& ctx) {
  ctx.set(0, seq_of(unranked_type(static_cast<DataType>(ctx.node().attr_int("dtype", 1)))));
  return Status::ok();
}

Status sequence_construct_rule(RuleContext& ctx) {
  TypeInfo inner;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) inner = i == 0 ? ctx.type(i) : join_types(inner, ctx.type(i));
  ctx.set(0, seq_of(inner));
  return Status::ok();
}

Status sequence_insert_rule(RuleContext& ctx) {
  const TypeInfo& s = ctx.type(0);
  TypeInfo inner = s.inner ? join_types(*s.inner, ctx.type(1)) : ctx.type(1);
  // An empty sequence's element dims say nothing; the inserted tensor decides then.
  if (const Value* v = ctx.known_value(0); v && v->is_sequence() && v->sequence.empty()) inner = ctx.type(1);
  ctx.set(0, seq_of(inner));
  return Status::ok();
}

Status sequence_at_rule(RuleContext& ctx) {
  TypeInfo t = inner_of(ctx.type(0));
  if (t.kind == TypeInfo::Kind::unknown) t = unranked_type(DataType::undefined);
  ctx.set(0, t);
  return Status::ok();
}

Status sequence_length_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::int64, {});
  return Status::ok();
}

Status split_to_sequence_rule(RuleContext& ctx) {
  const DataType dt = ctx.dtype(0);
  if (!ctx.ranked(0)) {
    ctx.set(0, seq_of(unranked_type(dt)));
    return Status::ok();
  }
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), ctx.rank(0)));
  Dims d = ctx.dims(0);
  if (!ctx.has_input(1)) {
    if (ctx.node().attr_int("keepdims", 1) != 0) d[a] = fixed_dim(1);
    else d.erase(d.begin() + a);
  } else {
    auto split = ctx.ints(1);
    Dim part = unknown_dim();
    if (split && ctx.rank(1) == 0 && d[a].fixed() && (*split)[0] > 0 && d[a].value % (*split)[0] == 0)
      part = fixed_dim((*split)[0]);
    else if (split && ctx.rank(1) == 1 && !split->empty() &&
             std::all_of(split->begin(), split->end(), [&](int64_t v) { return v == (*split)[0]; }))
      part = fixed_dim((*split)[0]);
    d[a] = part;
  }
  ctx.set(0, seq_of(tensor_type(dt, std::move(d))));
  return Status::ok();
}

Status concat_from_sequence_rule(RuleContext& ctx) {
  TypeInfo e = inner_of(ctx.type(0));
  if (e.kind != TypeInfo::Kind::tensor || !e.has_shape) {
    ctx.set_unranked(0, e.elem);
    return Status::ok();
  }
  const bool new_axis = ctx.node().attr_int("new_axis", 0) != 0;
  Dims d = e.dims;
  const int64_t r = static_cast<int64_t>(d.size()) + (new_axis ? 1 : 0);
  TANDEM_ASSIGN_OR_RETURN(int64_t a, ctx.axis(ctx.node().attr_int("axis", 0), r));
  if (new_axis) d.insert(d.begin() + a, unknown_dim());
  else d[a] = unknown_dim();
  ctx.set_tensor(0, e.elem, std::move(d));
  return Status::ok();
}

Status optional_rule(RuleContext& ctx) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::optional;
  if (ctx.has_input(0)) t.inner = std::make_shared<TypeInfo>(ctx.type(0));
  else if (const Attribute* a = ctx.node().attr("type"); a && a->tp) t.inner = a->tp;
  ctx.set(0, t);
  return Status::ok();
}

Status optional_has_element_rule(RuleContext& ctx) {
  ctx.set_tensor(0, DataType::boolean, {});
  return Status::ok();
}

Status optional_get_element_rule(RuleContext& ctx) {
  const TypeInfo& t = ctx.type(0);
  if (t.kind == TypeInfo::Kind::optional) ctx.set(0, t.inner ? *t.inner : TypeInfo{});
  else ctx.set(0, t);
  return Status::ok();
}

}  // namespace

void register_tensor_rules(RuleTable& t) {
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
  t.add("", "Reshape", reshape_rule);
  t.add("", "Flatten", flatten_rule);
  t.add("", "Transpose", transpose_rule);
  t.add("", "Squeeze", squeeze_rule);
  t.add("", "Unsqueeze", unsqueeze_rule);
  t.add("", "Concat", concat_rule);
  t.add("", "Split", split_rule);
  t.add("", "Slice", slice_rule);
  t.add("", "Gather", gather_rule);
  t.add("", "GatherElements", gather_elements_rule);
  t.add("", "GatherND", gather_nd_rule);
  t.add("", "Expand", expand_rule);
  t.add("", "Tile", tile_rule);
  t.add("", "Pad", pad_rule);
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"})
    t.add("", op, reduce_rule);
  t.add("", "ArgMax", arg_rule);
  t.add("", "ArgMin", arg_rule);
  t.add("", "TopK", topk_rule);
  t.add("", "Compress", compress_rule);
  t.add("", "NonZero", nonzero_rule);
  t.add("", "Unique", unique_rule);
  t.add("", "OneHot", onehot_rule);
  t.add("", "DepthToSpace", depth_space_rule);
  t.add("", "SpaceToDepth", depth_space_rule);
  t.add("", "EyeLike", eye_like_rule);
  t.add("", "QuantizeLinear", quantize_rule);
  t.add("", "DequantizeLinear", dequantize_rule);
  t.add("", "DynamicQuantizeLinear", dynamic_quantize_rule);
  t.add("", "SequenceEmpty", sequence_empty_rule);
  t.add("", "SequenceConstruct", sequence_construct_rule);
  t.add("", "SequenceInsert", sequence_insert_rule);
  t.add("", "SequenceErase", identity_rule);
  t.add("", "SequenceAt", sequence_at_rule);
  t.add("", "SequenceLength", sequence_length_rule);
  t.add("", "SplitToSequence", split_to_sequence_rule);
  t.add("", "ConcatFromSequence", concat_from_sequence_rule);
  t.add("", "Optional", optional_rule);
  t.add("", "OptionalHasElement", optional_has_element_rule);
  t.add("", "OptionalGetElement", optional_get_element_rule);
}

const RuleTable& shape_rules() {
  static const RuleTable table = [] {
    RuleTable t;
    register_tensor_rules(t);
    register_nn_rules(t);
    register_control_rules(t);
    return t;
  }();
  return table;
}

}  // namespace tandem::shape_detail
