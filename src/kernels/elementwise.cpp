// Reference kernels: elementwise ops.
//
//   unary math      Abs Neg Exp Log Sqrt Reciprocal Sin Cos Tan Asin Acos Atan Sinh Cosh Asinh
//                   Acosh Atanh Ceil Floor Round Sign Erf IsNaN IsInf Not
//   binary          Add Sub Mul Div Pow Mod BitShift (numpy broadcasting)
//   compare/logic   Equal Greater Less GreaterOrEqual LessOrEqual And Or Xor
//   variadic        Max Min Sum Mean (broadcasting across all inputs)
//   other           Where Clip Cast CastLike
//
// Floating-point math is done in double and rounded once to the element type (exact for
// + - * / and sqrt, correctly rounded or within an ulp for the transcendental functions).
// Integer math stays in integers and wraps on overflow like two's-complement hardware;
// integer division or modulo by zero is an error rather than undefined behavior.
//
// Opsets before 7 did not broadcast implicitly: binary ops took `broadcast` and `axis`
// attributes, which align B with A starting at dimension `axis`. Both forms are accepted.
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

// ---- element type traits and conversions ------------------------------------------------


// The type an element computes and compares in: halves widen to double, others stay as they are.
template <class T>
auto widen(T v) {
  if constexpr (is_half_v<T>) return static_cast<double>(static_cast<float>(v));
  else return v;
}

// Back from the widened type to T.
template <class T, class W>
T narrow(W v) {
  if constexpr (is_half_v<T>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

// double -> T. Floats round to nearest; integers truncate toward zero and saturate (NaN -> 0).
template <class T>
T store(double v) {
  if constexpr (is_int_v<T>) {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::min())) return std::numeric_limits<T>::min();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return from_double<T>(v);
  }
}

// Two's-complement wrapping arithmetic for every integer width (no signed-overflow UB).
template <class T>
T wrap_add(T a, T b) { return static_cast<T>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }
template <class T>
T wrap_sub(T a, T b) { return static_cast<T>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
template <class T>
T wrap_mul(T a, T b) { return static_cast<T>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); }

std::string dt(DataType t) { return std::string(dtype_name(t)); }

// ---- input and shape validation ----------------------------------------------------------

Status require_inputs(const KernelContext& ctx, size_t n) {
  for (size_t i = 0; i < n; ++i)
    if (!ctx.input(i).defined()) return ctx.invalid("required input " + std::to_string(i) + " is missing or not a tensor");
  return Status::ok();
}

Status bad_dtype(const KernelContext& ctx, DataType t) {
  return ctx.invalid("does not support dtype " + dt(t));
}

Status same_dtype(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) return ctx.invalid("input dtypes differ: " + dt(a.dtype()) + " vs " + dt(b.dtype()));
  return Status::ok();
}

// Rejects broadcast results whose element count would overflow int64.
Status check_numel(const KernelContext& ctx, const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) return ctx.invalid("negative dimension in shape " + shape_to_string(s));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      return ctx.invalid("output shape " + shape_to_string(s) + " has too many elements");
    n *= d;
  }
  return Status::ok();
}

// Shapes of a two-input broadcasting op: B's shape as laid against A, and the output shape.
Status binary_shapes(const KernelContext& ctx, const Tensor& a, const Tensor& b, Shape* b_shape, Shape* out) {
  *b_shape = b.shape();
  if (ctx.opset() > 0 && ctx.opset() < 7 && a.shape() != b.shape()) {
    // Legacy broadcasting: B (a suffix of A, or a run of A's dims starting at `axis`) -> A.
    if (ctx.node().attr_int("broadcast", 0) == 0)
      return ctx.invalid("shapes " + shape_to_string(a.shape()) + " and " + shape_to_string(b.shape()) +
                         " differ and attribute broadcast is 0");
    if (ctx.node().has_attr("axis")) {
      const int64_t ra = static_cast<int64_t>(a.rank()), rb = static_cast<int64_t>(b.rank());
      int64_t axis = ctx.node().attr_int("axis", 0);
      if (axis < 0) axis += ra;
      if (axis < 0 || axis + rb > ra)
        return ctx.invalid("broadcast axis " + std::to_string(ctx.node().attr_int("axis", 0)) + " does not fit B " +
                           shape_to_string(b.shape()) + " into A " + shape_to_string(a.shape()));
      Shape s(static_cast<size_t>(ra), 1);
      for (int64_t i = 0; i < rb; ++i) s[static_cast<size_t>(axis + i)] = b.dim(static_cast<size_t>(i));
      *b_shape = s;
    }
  }
  Result<Shape> r = broadcast_shapes(a.shape(), *b_shape);
  if (!r.is_ok()) return ctx.invalid(r.status().message());
  *out = r.value();
  return check_numel(ctx, *out);
}

// out[i] = f(a[...], b[...]) over the broadcast output.
template <class TA, class TB, class TO, class F>
void map2(const Tensor& a, const Shape& sa, const Tensor& b, const Shape& sb, Tensor& out, F&& f) {
  const TA* pa = a.data<TA>();
  const TB* pb = b.data<TB>();
  TO* po = out.data<TO>();
  BroadcastIterator it(out.shape(), {sa, sb});
  for (int64_t i = 0; i < out.numel(); ++i) {
    po[i] = f(pa[it.offset(0)], pb[it.offset(1)]);
    it.next();
  }
}

// out[i] = f(x[i]), same shape.
template <class TI, class TO, class F>
void map1(const Tensor& x, Tensor& out, F&& f) {
  const TI* px = x.data<TI>();
  TO* po = out.data<TO>();
  for (int64_t i = 0; i < x.numel(); ++i) po[i] = f(px[i]);
}

// ---- unary ops ---------------------------------------------------------------------------

// Float math through double; `allow_int` also accepts integer inputs (result truncated).
Status unary_math(KernelContext& ctx, double (*f)(double), bool allow_int = false) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  const bool ok_type = is_float_type(x.dtype()) || (allow_int && is_integer_type(x.dtype()));
  if (!ok_type) return bad_dtype(ctx, x.dtype());
  Tensor out(x.dtype(), x.shape());
  visit_numeric(x.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) map1<T, T>(x, out, [&](T v) { return store<T>(f(to_double(v))); });
  });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// Round half to even, independent of the floating-point environment's rounding mode.
double round_half_even(double x) {
  if (!std::isfinite(x)) return x;
  const double f = std::floor(x);
  const double d = x - f;  // exact
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return std::fmod(f, 2.0) == 0 ? f : f + 1;
}

Status abs_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    map1<T, T>(x, out, [](T v) -> T {
      if constexpr (is_float_v<T>) return from_double<T>(std::fabs(to_double(v)));
      else if constexpr (std::is_signed_v<T>) return v < 0 ? wrap_sub<T>(T(0), v) : v;
      else return v;
    });
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status neg_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    map1<T, T>(x, out, [](T v) -> T {
      if constexpr (is_float_v<T>) return from_double<T>(-to_double(v));
      else return wrap_sub<T>(T(0), v);
    });
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status sign_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    map1<T, T>(x, out, [](T v) -> T {
      if constexpr (is_float_v<T>) {
        double d = to_double(v);
        return from_double<T>(std::isnan(d) ? d : (d > 0 ? 1.0 : (d < 0 ? -1.0 : 0.0)));
      } else {
        if constexpr (std::is_signed_v<T>) return static_cast<T>(v > T(0) ? 1 : (v < T(0) ? -1 : 0));
        else return static_cast<T>(v > T(0) ? 1 : 0);
      }
    });
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status isnan_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  Tensor out(DataType::boolean, x.shape());
  bool ok = visit_float(x.dtype(), [&]<class T>() {
    map1<T, bool>(x, out, [](T v) { return std::isnan(to_double(v)); });
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status isinf_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  const bool pos = ctx.node().attr_int("detect_positive", 1) != 0;
  const bool neg = ctx.node().attr_int("detect_negative", 1) != 0;
  Tensor out(DataType::boolean, x.shape());
  bool ok = visit_float(x.dtype(), [&]<class T>() {
    map1<T, bool>(x, out, [&](T v) {
      double d = to_double(v);
      return std::isinf(d) && ((d > 0 && pos) || (d < 0 && neg));
    });
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status not_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::boolean) return bad_dtype(ctx, x.dtype());
  Tensor out(DataType::boolean, x.shape());
  map1<bool, bool>(x, out, [](bool v) { return !v; });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status exp_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::exp(v); }); }
Status log_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::log(v); }); }
Status sqrt_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::sqrt(v); }); }
Status reciprocal_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return 1.0 / v; }); }
Status sin_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::sin(v); }); }
Status cos_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::cos(v); }); }
Status tan_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::tan(v); }); }
Status asin_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::asin(v); }); }
Status acos_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::acos(v); }); }
Status atan_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::atan(v); }); }
Status sinh_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::sinh(v); }); }
Status cosh_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::cosh(v); }); }
Status asinh_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::asinh(v); }); }
Status acosh_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::acosh(v); }); }
Status atanh_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::atanh(v); }); }
Status ceil_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::ceil(v); }); }
Status floor_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::floor(v); }); }
Status round_kernel(KernelContext& ctx) { return unary_math(ctx, &round_half_even); }
Status erf_kernel(KernelContext& ctx) { return unary_math(ctx, [](double v) { return std::erf(v); }, true); }

// ---- binary arithmetic -------------------------------------------------------------------

enum class Arith { add, sub, mul, div, mod_floor, mod_trunc };

// One element of an arithmetic op. Returns false for an integer division/modulo by zero.
template <class T>
bool arith(Arith op, T a, T b, T* out) {
  if constexpr (is_float_v<T>) {
    const double x = to_double(a), y = to_double(b);
    double r = 0;
    switch (op) {
      case Arith::add: r = x + y; break;
      case Arith::sub: r = x - y; break;
      case Arith::mul: r = x * y; break;
      case Arith::div: r = x / y; break;
      case Arith::mod_trunc: r = std::fmod(x, y); break;
      case Arith::mod_floor:  // numpy.mod: the remainder takes the divisor's sign
        r = std::fmod(x, y);
        if (r != 0 && ((r < 0) != (y < 0))) r += y;
        break;
    }
    *out = from_double<T>(r);
    return true;
  } else {
    switch (op) {
      case Arith::add: *out = wrap_add(a, b); return true;
      case Arith::sub: *out = wrap_sub(a, b); return true;
      case Arith::mul: *out = wrap_mul(a, b); return true;
      case Arith::div:  // truncates toward zero
        if (b == T(0)) return false;
        if constexpr (std::is_signed_v<T>) {
          if (b == T(-1)) { *out = wrap_sub(T(0), a); return true; }  // MIN / -1 wraps
        }
        *out = static_cast<T>(a / b);
        return true;
      case Arith::mod_floor:
      case Arith::mod_trunc: {
        if (b == T(0)) return false;
        if constexpr (std::is_signed_v<T>) {
          if (b == T(-1)) { *out = T(0); return true; }
        }
        T r = static_cast<T>(a % b);  // C remainder: sign of the dividend
        if constexpr (std::is_signed_v<T>) {
          if (op == Arith::mod_floor && r != 0 && ((r < 0) != (b < 0))) r = static_cast<T>(r + b);
        }
        *out = r;
        return true;
      }
    }
    return true;
  }
}

Status arith_kernel(KernelContext& ctx, Arith op) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  TANDEM_RETURN_IF_ERROR(same_dtype(ctx, a, b));
  if (a.dtype() == DataType::boolean) return bad_dtype(ctx, a.dtype());
  Shape sb, so;
  TANDEM_RETURN_IF_ERROR(binary_shapes(ctx, a, b, &sb, &so));
  Tensor out(a.dtype(), so);
  bool divided_by_zero = false;
  bool ok = visit_numeric(a.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      map2<T, T, T>(a, a.shape(), b, sb, out, [&](T x, T y) {
        T r{};
        if (!arith(op, x, y, &r)) divided_by_zero = true;
        return r;
      });
    }
  });
  if (!ok) return bad_dtype(ctx, a.dtype());
  if (divided_by_zero) return ctx.invalid("integer division by zero");
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status add_kernel(KernelContext& ctx) { return arith_kernel(ctx, Arith::add); }
Status sub_kernel(KernelContext& ctx) { return arith_kernel(ctx, Arith::sub); }
Status mul_kernel(KernelContext& ctx) { return arith_kernel(ctx, Arith::mul); }
Status div_kernel(KernelContext& ctx) { return arith_kernel(ctx, Arith::div); }
Status mod_kernel(KernelContext& ctx) {
  // fmod=0: integer-style mod (sign of the divisor); fmod=1: C fmod (sign of the dividend).
  return arith_kernel(ctx, ctx.node().attr_int("fmod", 0) != 0 ? Arith::mod_trunc : Arith::mod_floor);
}

// Integer power with wrapping; negative exponents give the truncated value of 1/base^-e.
template <class T>
T int_pow(T base, int64_t e) {
  if (e < 0) {
    if (base == T(1)) return T(1);
    if constexpr (std::is_signed_v<T>) {
      if (base == T(-1)) return (e % 2 == 0) ? T(1) : T(-1);
    }
    return T(0);
  }
  T result = T(1);
  T p = base;
  while (e > 0) {
    if (e & 1) result = wrap_mul(result, p);
    e >>= 1;
    if (e > 0) p = wrap_mul(p, p);
  }
  return result;
}

// Pow: the output has the base's dtype; the exponent may have any numeric dtype.
Status pow_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() == DataType::boolean) return bad_dtype(ctx, a.dtype());
  if (b.dtype() == DataType::boolean) return bad_dtype(ctx, b.dtype());
  Shape sb, so;
  TANDEM_RETURN_IF_ERROR(binary_shapes(ctx, a, b, &sb, &so));
  Tensor out(a.dtype(), so);
  bool ok_b = true;
  bool ok = visit_numeric(a.dtype(), [&]<class TA>() {
    if constexpr (!std::is_same_v<TA, bool>) {
      ok_b = visit_numeric(b.dtype(), [&]<class TB>() {
        if constexpr (!std::is_same_v<TB, bool>) {
          map2<TA, TB, TA>(a, a.shape(), b, sb, out, [](TA x, TB y) -> TA {
            if constexpr (is_float_v<TA> || is_float_v<TB>) {
              return store<TA>(std::pow(to_double(x), to_double(y)));
            } else {
              int64_t e;
              if constexpr (std::is_same_v<TB, uint64_t>) {
                e = y > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? std::numeric_limits<int64_t>::max()
                                                                                  : static_cast<int64_t>(y);
              } else {
                e = static_cast<int64_t>(y);
              }
              return int_pow<TA>(x, e);
            }
          });
        }
      });
    }
  });
  if (!ok) return bad_dtype(ctx, a.dtype());
  if (!ok_b) return bad_dtype(ctx, b.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status bitshift_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  TANDEM_RETURN_IF_ERROR(same_dtype(ctx, a, b));
  const std::string dir = ctx.node().attr_string("direction", "");
  if (dir != "LEFT" && dir != "RIGHT") return ctx.invalid("attribute direction must be LEFT or RIGHT, got '" + dir + "'");
  const bool left = dir == "LEFT";
  if (!is_integer_type(a.dtype()) || is_signed_integer_type(a.dtype())) return bad_dtype(ctx, a.dtype());
  Shape sb, so;
  TANDEM_RETURN_IF_ERROR(binary_shapes(ctx, a, b, &sb, &so));
  Tensor out(a.dtype(), so);
  visit_numeric(a.dtype(), [&]<class T>() {
    if constexpr (is_int_v<T> && std::is_unsigned_v<T>) {
      map2<T, T, T>(a, a.shape(), b, sb, out, [&](T x, T s) -> T {
        if (static_cast<uint64_t>(s) >= sizeof(T) * 8) return T(0);  // shifting everything out
        const uint64_t v = static_cast<uint64_t>(x);
        return static_cast<T>(left ? (v << s) : (v >> s));
      });
    }
  });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// ---- comparisons and logic ---------------------------------------------------------------

enum class Cmp { eq, gt, lt, ge, le };

template <class T>
bool compare(Cmp op, T a, T b) {
  const auto x = widen(a);
  const auto y = widen(b);
  switch (op) {
    case Cmp::eq: return x == y;
    case Cmp::gt: return x > y;
    case Cmp::lt: return x < y;
    case Cmp::ge: return x >= y;
    case Cmp::le: return x <= y;
  }
  return false;
}

Status compare_kernel(KernelContext& ctx, Cmp op) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  TANDEM_RETURN_IF_ERROR(same_dtype(ctx, a, b));
  Shape sb, so;
  TANDEM_RETURN_IF_ERROR(binary_shapes(ctx, a, b, &sb, &so));
  Tensor out(DataType::boolean, so);
  if (a.dtype() == DataType::string) {
    if (op != Cmp::eq) return bad_dtype(ctx, a.dtype());
    map2<std::string, std::string, bool>(a, a.shape(), b, sb, out,
                                         [](const std::string& x, const std::string& y) { return x == y; });
  } else {
    bool ok = visit_numeric(a.dtype(), [&]<class T>() {
      map2<T, T, bool>(a, a.shape(), b, sb, out, [&](T x, T y) { return compare(op, x, y); });
    });
    if (!ok) return bad_dtype(ctx, a.dtype());
  }
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

enum class Logic { and_, or_, xor_ };

Status logic_kernel(KernelContext& ctx, Logic op) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != DataType::boolean) return bad_dtype(ctx, a.dtype());
  if (b.dtype() != DataType::boolean) return bad_dtype(ctx, b.dtype());
  Shape sb, so;
  TANDEM_RETURN_IF_ERROR(binary_shapes(ctx, a, b, &sb, &so));
  Tensor out(DataType::boolean, so);
  map2<bool, bool, bool>(a, a.shape(), b, sb, out, [op](bool x, bool y) {
    switch (op) {
      case Logic::and_: return x && y;
      case Logic::or_: return x || y;
      case Logic::xor_: return x != y;
    }
    return false;
  });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status equal_kernel(KernelContext& ctx) { return compare_kernel(ctx, Cmp::eq); }
Status greater_kernel(KernelContext& ctx) { return compare_kernel(ctx, Cmp::gt); }
Status less_kernel(KernelContext& ctx) { return compare_kernel(ctx, Cmp::lt); }
Status greater_equal_kernel(KernelContext& ctx) { return compare_kernel(ctx, Cmp::ge); }
Status less_equal_kernel(KernelContext& ctx) { return compare_kernel(ctx, Cmp::le); }
Status and_kernel(KernelContext& ctx) { return logic_kernel(ctx, Logic::and_); }
Status or_kernel(KernelContext& ctx) { return logic_kernel(ctx, Logic::or_); }
Status xor_kernel(KernelContext& ctx) { return logic_kernel(ctx, Logic::xor_); }

// ---- variadic ----------------------------------------------------------------------------

enum class Variadic { max, min, sum, mean };

// Max/Min propagate NaN (like numpy.maximum); Sum/Mean of floats accumulate in double.
Status variadic_kernel(KernelContext& ctx, Variadic op) {
  std::vector<const Tensor*> ins;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    if (!ctx.input(i).defined()) return ctx.invalid("input " + std::to_string(i) + " is missing or not a tensor");
    ins.push_back(&ctx.input(i));
  }
  if (ins.empty()) return ctx.invalid("needs at least one input");
  const DataType dtype = ins[0]->dtype();
  std::vector<Shape> shapes;
  for (const Tensor* t : ins) {
    if (t->dtype() != dtype) return ctx.invalid("input dtypes differ: " + dt(dtype) + " vs " + dt(t->dtype()));
    shapes.push_back(t->shape());
  }
  if (dtype == DataType::boolean) return bad_dtype(ctx, dtype);
  Result<Shape> so = broadcast_shapes(shapes);
  if (!so.is_ok()) return ctx.invalid(so.status().message());
  TANDEM_RETURN_IF_ERROR(check_numel(ctx, so.value()));
  Tensor out(dtype, so.value());
  bool ok = visit_numeric(dtype, [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      T* po = out.data<T>();
      BroadcastIterator it(out.shape(), shapes);
      const size_t n = ins.size();
      for (int64_t i = 0; i < out.numel(); ++i) {
        if constexpr (is_float_v<T>) {
          double acc = to_double(ins[0]->data<T>()[it.offset(0)]);
          for (size_t k = 1; k < n; ++k) {
            const double v = to_double(ins[k]->data<T>()[it.offset(k)]);
            switch (op) {
              case Variadic::max: if (std::isnan(v) || v > acc) acc = v; break;
              case Variadic::min: if (std::isnan(v) || v < acc) acc = v; break;
              case Variadic::sum: case Variadic::mean: acc += v; break;
            }
          }
          if (op == Variadic::mean) acc /= static_cast<double>(n);
          po[i] = from_double<T>(acc);
        } else {
          T acc = ins[0]->data<T>()[it.offset(0)];
          double dsum = static_cast<double>(acc);
          for (size_t k = 1; k < n; ++k) {
            const T v = ins[k]->data<T>()[it.offset(k)];
            switch (op) {
              case Variadic::max: if (v > acc) acc = v; break;
              case Variadic::min: if (v < acc) acc = v; break;
              case Variadic::sum: acc = wrap_add(acc, v); break;
              case Variadic::mean: dsum += static_cast<double>(v); break;
            }
          }
          po[i] = op == Variadic::mean ? store<T>(dsum / static_cast<double>(n)) : acc;
        }
        it.next();
      }
    }
  });
  if (!ok) return bad_dtype(ctx, dtype);
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status max_kernel(KernelContext& ctx) { return variadic_kernel(ctx, Variadic::max); }
Status min_kernel(KernelContext& ctx) { return variadic_kernel(ctx, Variadic::min); }
Status sum_kernel(KernelContext& ctx) { return variadic_kernel(ctx, Variadic::sum); }
Status mean_kernel(KernelContext& ctx) { return variadic_kernel(ctx, Variadic::mean); }

// ---- Where, Clip -------------------------------------------------------------------------

Status where_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 3));
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  if (c.dtype() != DataType::boolean) return ctx.invalid("condition must be bool, got " + dt(c.dtype()));
  TANDEM_RETURN_IF_ERROR(same_dtype(ctx, x, y));
  const std::vector<Shape> shapes = {c.shape(), x.shape(), y.shape()};
  Result<Shape> so = broadcast_shapes(shapes);
  if (!so.is_ok()) return ctx.invalid(so.status().message());
  TANDEM_RETURN_IF_ERROR(check_numel(ctx, so.value()));
  Tensor out(x.dtype(), so.value());
  bool ok = visit_any(x.dtype(), [&]<class T>() {
    const bool* pc = c.data<bool>();
    const T* px = x.data<T>();
    const T* py = y.data<T>();
    T* po = out.data<T>();
    BroadcastIterator it(out.shape(), shapes);
    for (int64_t i = 0; i < out.numel(); ++i) {
      po[i] = pc[it.offset(0)] ? px[it.offset(1)] : py[it.offset(2)];
      it.next();
    }
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// Clip: bounds are attributes `min`/`max` before opset 11 and optional scalar inputs after.
// NaN inputs stay NaN; when min > max every element becomes max.
Status clip_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::boolean) return bad_dtype(ctx, x.dtype());
  const bool legacy = ctx.opset() > 0 && ctx.opset() < 11;
  for (size_t i = 1; i <= 2 && !legacy; ++i) {
    if (!ctx.has_input(i)) continue;
    const Tensor& bound = ctx.input(i);
    if (!bound.defined()) return ctx.invalid("input " + std::to_string(i) + " is not a tensor");
    if (bound.dtype() != x.dtype())
      return ctx.invalid(std::string(i == 1 ? "min" : "max") + " has dtype " + dt(bound.dtype()) + ", expected " +
                         dt(x.dtype()));
    if (bound.numel() != 1)
      return ctx.invalid(std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " +
                         shape_to_string(bound.shape()));
  }
  Tensor out(x.dtype(), x.shape());
  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    if constexpr (!std::is_same_v<T, bool>) {
      using W = decltype(widen(T{}));
      W lo, hi;
      if constexpr (std::is_floating_point_v<W>) {
        lo = -std::numeric_limits<W>::infinity();
        hi = std::numeric_limits<W>::infinity();
      } else {
        lo = std::numeric_limits<W>::lowest();
        hi = std::numeric_limits<W>::max();
      }
      if (legacy) {
        // Attribute bounds are float32; integer inputs saturate them into range.
        if (ctx.node().has_attr("min")) lo = widen(store<T>(ctx.node().attr_float("min", 0)));
        if (ctx.node().has_attr("max")) hi = widen(store<T>(ctx.node().attr_float("max", 0)));
      } else {
        if (ctx.has_input(1)) lo = widen(ctx.input(1).data<T>()[0]);
        if (ctx.has_input(2)) hi = widen(ctx.input(2).data<T>()[0]);
      }
      map1<T, T>(x, out, [&](T v) -> T {
        W w = widen(v);
        if (w < lo) w = lo;
        if (w > hi) w = hi;
        return narrow<T>(w);
      });
    }
  });
  if (!ok) return bad_dtype(ctx, x.dtype());
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// ---- Cast, CastLike ----------------------------------------------------------------------

// Cast-1 named the target type with a string ("FLOAT", "INT64", ...); later opsets use the enum.
Result<DataType> cast_target(const KernelContext& ctx) {
  const Attribute* a = ctx.node().attr("to");
  if (!a) return ctx.invalid("missing required attribute 'to'");
  if (a->type == AttrType::s) {
    std::string s;
    for (char ch : a->s) s += static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
    static const std::pair<const char*, DataType> kNames[] = {
        {"FLOAT", DataType::float32},   {"UINT8", DataType::uint8},       {"INT8", DataType::int8},
        {"UINT16", DataType::uint16},   {"INT16", DataType::int16},       {"INT32", DataType::int32},
        {"INT64", DataType::int64},     {"STRING", DataType::string},     {"BOOL", DataType::boolean},
        {"FLOAT16", DataType::float16}, {"DOUBLE", DataType::float64},    {"UINT32", DataType::uint32},
        {"UINT64", DataType::uint64},   {"BFLOAT16", DataType::bfloat16}, {"FLOAT32", DataType::float32},
        {"FLOAT64", DataType::float64}};
    for (const auto& [name, type] : kNames)
      if (s == name) return type;
    return ctx.invalid("attribute 'to' names unknown type '" + a->s + "'");
  }
  const int64_t v = a->i;
  if (v <= 0 || v > static_cast<int64_t>(DataType::bfloat16))
    return ctx.invalid("attribute 'to' is not a known data type: " + std::to_string(v));
  return static_cast<DataType>(v);
}

Status cast_into(KernelContext& ctx, const Tensor& x, DataType to) {
  Result<Tensor> r = cast_tensor(x, to);
  if (!r.is_ok()) return ctx.fail(r.status().code(), r.status().message());
  ctx.set_output(0, std::move(r).value());
  return Status::ok();
}

Status cast_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 1));
  TANDEM_ASSIGN_OR_RETURN(DataType to, cast_target(ctx));
  return cast_into(ctx, ctx.input(0), to);
}

Status castlike_kernel(KernelContext& ctx) {
  TANDEM_RETURN_IF_ERROR(require_inputs(ctx, 2));
  return cast_into(ctx, ctx.input(0), ctx.input(1).dtype());
}

}  // namespace

void register_elementwise_kernels(KernelTable& t) {
  t.add("", "Abs", &abs_kernel);
  t.add("", "Neg", &neg_kernel);
  t.add("", "Exp", &exp_kernel);
  t.add("", "Log", &log_kernel);
  t.add("", "Sqrt", &sqrt_kernel);
  t.add("", "Reciprocal", &reciprocal_kernel);
  t.add("", "Sin", &sin_kernel);
  t.add("", "Cos", &cos_kernel);
  t.add("", "Tan", &tan_kernel);
  t.add("", "Asin", &asin_kernel);
  t.add("", "Acos", &acos_kernel);
  t.add("", "Atan", &atan_kernel);
  t.add("", "Sinh", &sinh_kernel);
  t.add("", "Cosh", &cosh_kernel);
  t.add("", "Asinh", &asinh_kernel);
  t.add("", "Acosh", &acosh_kernel);
  t.add("", "Atanh", &atanh_kernel);
  t.add("", "Ceil", &ceil_kernel);
  t.add("", "Floor", &floor_kernel);
  t.add("", "Round", &round_kernel);
  t.add("", "Sign", &sign_kernel);
  t.add("", "Erf", &erf_kernel);
  t.add("", "IsNaN", &isnan_kernel);
  t.add("", "IsInf", &isinf_kernel);
  t.add("", "Not", &not_kernel);

  t.add("", "Add", &add_kernel);
  t.add("", "Sub", &sub_kernel);
  t.add("", "Mul", &mul_kernel);
  t.add("", "Div", &div_kernel);
  t.add("", "Pow", &pow_kernel);
  t.add("", "Mod", &mod_kernel);
  t.add("", "BitShift", &bitshift_kernel);

  t.add("", "Equal", &equal_kernel);
  t.add("", "Greater", &greater_kernel);
  t.add("", "Less", &less_kernel);
  t.add("", "GreaterOrEqual", &greater_equal_kernel);
  t.add("", "LessOrEqual", &less_equal_kernel);
  t.add("", "And", &and_kernel);
  t.add("", "Or", &or_kernel);
  t.add("", "Xor", &xor_kernel);

  t.add("", "Max", &max_kernel);
  t.add("", "Min", &min_kernel);
  t.add("", "Sum", &sum_kernel);
  t.add("", "Mean", &mean_kernel);

  t.add("", "Where", &where_kernel);
  t.add("", "Clip", &clip_kernel);
  t.add("", "Cast", &cast_kernel);
  t.add("", "CastLike", &castlike_kernel);
}

}  // namespace tandem
