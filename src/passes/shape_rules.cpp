// shape_rules.cpp: Dim helpers, the RuleContext accessors, the shared rule helpers and the
// rule table. The rules themselves live in shape_rules_{elementwise,movement,sequence,nn,quantize}.cpp
// and in shape_inference.cpp (control flow). See shape_rules.h for the contract of a rule.
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

Result<std::vector<int64_t>> norm_axes(const RuleContext& ctx, const std::vector<int64_t>& axes, int64_t r) {
  std::vector<int64_t> out;
  for (int64_t a : axes) {
    TANDEM_ASSIGN_OR_RETURN(int64_t n, ctx.axis(a, r));
    if (std::find(out.begin(), out.end(), n) != out.end()) return ctx.invalid("axis " + std::to_string(a) + " is repeated");
    out.push_back(n);
  }
  return out;
}

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

Status same_as_input(RuleContext& ctx, size_t from) {
  for (size_t i = 0; i < ctx.num_outputs(); ++i) ctx.set(i, ctx.type(from));
  return Status::ok();
}


const RuleTable& shape_rules() {
  static const RuleTable table = [] {
    RuleTable t;
    register_elementwise_rules(t);
    register_movement_rules(t);
    register_sequence_rules(t);
    register_nn_rules(t);
    register_control_rules(t);
    register_quantize_rules(t);
    return t;
  }();
  return table;
}

}  // namespace tandem::shape_detail
