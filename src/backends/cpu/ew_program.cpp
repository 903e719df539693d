// ew_program.cpp: the semantics of elementwise ops (ew_program.h): each op on one value
// (ew_apply_scalar) and on a tile of the accumulator (ew_apply_to_tile, vectorized, one variant
// per ISA). The kernel that runs a whole program over an output is ew_kernel.cpp.
#include "backends/cpu/ew_program.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "backends/cpu/ew_exp_kernels.h"
#include "backends/cpu/ew_math.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

bool ew_is_unary(Ew c) { return c >= Ew::relu; }

const char* ew_name(Ew c) {
  static const char* names[] = {
      "load",     "add",       "sub",      "rsub",  "mul",     "div",         "rdiv",    "max",
      "min",      "pow",       "rpow",     "prelu", "fmod",    "rfmod",       "relu",    "leaky_relu",
      "clip",     "sigmoid",   "tanh",     "hardsigmoid",      "hardswish",   "swish",   "exp",
      "log",      "sqrt",      "abs",      "neg",   "reciprocal",             "erf",     "softplus",
      "softsign", "elu",       "selu",     "celu",  "gelu",    "gelu_tanh",   "floor",   "ceil",
      "round",    "square",    "cube",     "mish",  "sin",     "cos",         "sign",    "thresholded_relu",
      "shrink",   "linear",   "fake_quant_u8",         "fake_quant_s8",    "fake_quant_u16",
      "fake_quant_s16",      "identity"};
  static_assert(sizeof(names) / sizeof(names[0]) == static_cast<size_t>(Ew::identity) + 1, "one name per op");
  return names[static_cast<int>(c)];
}

namespace {

// --- scalar semantics, shared by the vector loops --------------------------------------------

inline float fmax_nan(float a, float b) { return (a > b || a != a) ? a : b; }
inline float fmin_nan(float a, float b) { return (a < b || a != a) ? a : b; }

// Ew::fake_quant_*: the arithmetic of QuantizeLinear (x / scale divided in float32, ties to
// even, NaN to the zero point, saturation) and then DequantizeLinear ((q - zp) * scale: q - zp,
// of at most 17 bits, is exact in float32, so the float32 product is the reference's double
// product rounded once).
inline float fake_quant(float x, float scale, float zp, float lo, float hi) {
  float q = x / scale;
  q = q == q ? q : 0.0f;
  float r = __builtin_rintf(q) + zp;
  r = r < lo ? lo : r;
  r = r > hi ? hi : r;
  return (r - zp) * scale;
}

inline float binary_op(Ew c, float x, float y) {
  switch (c) {
    case Ew::load: return y;
    case Ew::add: return x + y;
    case Ew::sub: return x - y;
    case Ew::rsub: return y - x;
    case Ew::mul: return x * y;
    case Ew::div: return x / y;
    case Ew::rdiv: return y / x;
    case Ew::max: return fmax_nan(x, y);
    case Ew::min: return fmin_nan(x, y);
    case Ew::pow: return std::pow(x, y);
    case Ew::rpow: return std::pow(y, x);
    case Ew::prelu: return x < 0 ? x * y : x;
    case Ew::fmod: return std::fmod(x, y);
    case Ew::rfmod: return std::fmod(y, x);
    default: return x;
  }
}

}  // namespace

float ew_apply_scalar(const EwOp& op, float x, float y) {
  const float a = op.a, b = op.b;
  if (!ew_is_unary(op.code)) return binary_op(op.code, x, op.operand >= 0 ? y : a);
  switch (op.code) {
    case Ew::relu: return x < 0 ? 0.0f : x;
    case Ew::leaky_relu: return x < 0 ? a * x : x;
    case Ew::clip: { float t = x < a ? a : x; return t > b ? b : t; }
    case Ew::sigmoid: return 1.0f / (1.0f + std::exp(-x));
    case Ew::tanh: return std::tanh(x);
    case Ew::hardsigmoid: return std::max(0.0f, std::min(1.0f, a * x + b));
    case Ew::hardswish: return x * std::max(0.0f, std::min(1.0f, x / 6.0f + 0.5f));
    case Ew::swish: return x / (1.0f + std::exp(-x));
    case Ew::exp: return std::exp(x);
    case Ew::log: return std::log(x);
    case Ew::sqrt: return std::sqrt(x);
    case Ew::abs: return std::fabs(x);
    case Ew::neg: return -x;
    case Ew::reciprocal: return 1.0f / x;
    case Ew::erf: return std::erf(x);
    case Ew::softplus: return x > 20.0f ? x : std::log1p(std::exp(x));
    case Ew::softsign: return x / (1.0f + std::fabs(x));
    case Ew::elu: return x < 0 ? a * (std::exp(x) - 1.0f) : x;
    case Ew::selu: return x <= 0 ? b * (a * std::exp(x) - a) : b * x;
    case Ew::celu: return std::max(0.0f, x) + std::min(0.0f, a * (std::exp(x / a) - 1.0f));
    case Ew::gelu: return 0.5f * x * (1.0f + std::erf(x * 0.70710678118654752f));
    case Ew::gelu_tanh:
      return 0.5f * x * (1.0f + std::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
    case Ew::floor: return std::floor(x);
    case Ew::ceil: return std::ceil(x);
    case Ew::round: return std::nearbyint(x);
    case Ew::square: return x * x;
    case Ew::cube: return x * x * x;
    case Ew::mish: return x * std::tanh(x > 20.0f ? x : std::log1p(std::exp(x)));
    case Ew::sin: return std::sin(x);
    case Ew::cos: return std::cos(x);
    case Ew::sign: return x > 0 ? 1.0f : x < 0 ? -1.0f : x == x ? 0.0f : x;
    case Ew::thresholded_relu: return x > a ? x : 0.0f;
    case Ew::shrink: return x < -a ? x + b : x > a ? x - b : 0.0f;
    case Ew::linear: return a * x + b;
    case Ew::fake_quant_u8: return fake_quant(x, a, b, 0.0f, 255.0f);
    case Ew::fake_quant_s8: return fake_quant(x, a, b, -128.0f, 127.0f);
    case Ew::fake_quant_u16: return fake_quant(x, a, b, 0.0f, 65535.0f);
    case Ew::fake_quant_s16: return fake_quant(x, a, b, -32768.0f, 32767.0f);
    default: return x;
  }
}

namespace {

// --- the vector loops ---------------------------------------------------------------------------

template <class F>
__attribute__((always_inline)) inline void map_unary(float* __restrict acc, int64_t n, F f) {
  for (int64_t i = 0; i < n; ++i) acc[i] = f(acc[i]);
}

// Rows of exactly L lanes (a channel block) against one row of the operand repeated (a
// per-channel operand of a blocked output): the row loop has a constant trip count, so each row
// is one or two vector operations.
template <int L, class F>
__attribute__((always_inline)) inline void map_block_rows(float* __restrict acc, int64_t rows, const float* __restrict q,
                                                          F f) {
  float row[L];
  for (int l = 0; l < L; ++l) row[l] = q[l];
  for (int64_t r = 0; r < rows; ++r)
    for (int l = 0; l < L; ++l) acc[r * L + l] = f(acc[r * L + l], row[l]);
}

template <class F>
__attribute__((always_inline)) inline void map_binary(float* __restrict acc, int64_t rows, int64_t lanes, const float* __restrict p, int64_t rs,
                       int64_t ls, F f) {
  if (ls == 1 && rs == lanes) {  // the operand is contiguous over the tile
    const int64_t n = rows * lanes;
    for (int64_t i = 0; i < n; ++i) acc[i] = f(acc[i], p[i]);
    return;
  }
  if (ls == 1 && rs == 0 && lanes == 8) return map_block_rows<8>(acc, rows, p, f);
  if (ls == 1 && rs == 0 && lanes == 16) return map_block_rows<16>(acc, rows, p, f);
  for (int64_t r = 0; r < rows; ++r) {
    float* a = acc + r * lanes;
    const float* q = p + r * rs;
    if (ls == 1) {
      for (int64_t l = 0; l < lanes; ++l) a[l] = f(a[l], q[l]);
    } else if (ls == 0) {
      const float s = *q;
      for (int64_t l = 0; l < lanes; ++l) a[l] = f(a[l], s);
    } else {
      for (int64_t l = 0; l < lanes; ++l) a[l] = f(a[l], q[l * ls]);
    }
  }
}

template <class F>
__attribute__((always_inline)) inline void map_imm(float* __restrict acc, int64_t n, float s, F f) {
  for (int64_t i = 0; i < n; ++i) acc[i] = f(acc[i], s);
}

}  // namespace

// One variant per ISA path, see TANDEM_ISA_DISPATCH.
TANDEM_ISA_BODY void ew_apply_to_tile_body(const EwOp& op, const EwTile& t) {
  const int64_t n = t.rows * t.lanes;
  float* acc = t.acc;
  const float a = op.a, b = op.b;
  if (!ew_is_unary(op.code)) {
    if (op.operand >= 0) {
      const float* p = t.base[op.operand];
      const int64_t rs = t.rs[op.operand], ls = t.ls[op.operand];
      switch (op.code) {
        case Ew::load: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float, float y) { return y; }); return;
        case Ew::add: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return x + y; }); return;
        case Ew::sub: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return x - y; }); return;
        case Ew::rsub: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return y - x; }); return;
        case Ew::mul: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return x * y; }); return;
        case Ew::div: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return x / y; }); return;
        case Ew::rdiv: map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return y / x; }); return;
        case Ew::max: map_binary(acc, t.rows, t.lanes, p, rs, ls, fmax_nan); return;
        case Ew::min: map_binary(acc, t.rows, t.lanes, p, rs, ls, fmin_nan); return;
        case Ew::prelu:
          map_binary(acc, t.rows, t.lanes, p, rs, ls, [](float x, float y) { return x < 0 ? x * y : x; });
          return;
        default:
          map_binary(acc, t.rows, t.lanes, p, rs, ls, [&](float x, float y) { return binary_op(op.code, x, y); });
          return;
      }
    }
    switch (op.code) {
      case Ew::load: map_imm(acc, n, a, [](float, float y) { return y; }); return;
      case Ew::add: map_imm(acc, n, a, [](float x, float y) { return x + y; }); return;
      case Ew::sub: map_imm(acc, n, a, [](float x, float y) { return x - y; }); return;
      case Ew::rsub: map_imm(acc, n, a, [](float x, float y) { return y - x; }); return;
      case Ew::mul: map_imm(acc, n, a, [](float x, float y) { return x * y; }); return;
      case Ew::div: map_imm(acc, n, a, [](float x, float y) { return x / y; }); return;
      case Ew::rdiv: map_imm(acc, n, a, [](float x, float y) { return y / x; }); return;
      case Ew::max: map_imm(acc, n, a, fmax_nan); return;
      case Ew::min: map_imm(acc, n, a, fmin_nan); return;
      case Ew::prelu: map_imm(acc, n, a, [](float x, float y) { return x < 0 ? x * y : x; }); return;
      default: map_imm(acc, n, a, [&](float x, float y) { return binary_op(op.code, x, y); }); return;
    }
  }
  switch (op.code) {
    case Ew::relu: map_unary(acc, n, [](float x) { return x < 0 ? 0.0f : x; }); return;
    case Ew::leaky_relu: map_unary(acc, n, [a](float x) { return x < 0 ? a * x : x; }); return;
    case Ew::clip:
      map_unary(acc, n, [a, b](float x) {
        float c = x < a ? a : x;
        return c > b ? b : c;
      });
      return;
    case Ew::sigmoid: sigmoid_in_place(acc, n); return;  // explicit intrinsics (ew_exp_kernels.h)
    case Ew::tanh: map_unary(acc, n, [](float x) { return math::tanh(x); }); return;
    case Ew::hardsigmoid:
      map_unary(acc, n, [a, b](float x) {
        float v = a * x + b;
        v = v < 0.0f ? 0.0f : v;
        return v > 1.0f ? 1.0f : v;
      });
      return;
    case Ew::hardswish:
      map_unary(acc, n, [](float x) {
        float v = x * (1.0f / 6.0f) + 0.5f;
        v = v < 0.0f ? 0.0f : v;
        v = v > 1.0f ? 1.0f : v;
        return x * v;
      });
      return;
    case Ew::swish: swish_in_place(acc, n); return;
    case Ew::exp: map_unary(acc, n, [](float x) { return math::exp(x); }); return;
    case Ew::sqrt: map_unary(acc, n, [](float x) { return __builtin_sqrtf(x); }); return;
    case Ew::abs: map_unary(acc, n, [](float x) { return __builtin_fabsf(x); }); return;
    case Ew::neg: map_unary(acc, n, [](float x) { return -x; }); return;
    case Ew::reciprocal: map_unary(acc, n, [](float x) { return 1.0f / x; }); return;
    case Ew::erf: map_unary(acc, n, [](float x) { return math::erf(x); }); return;
    case Ew::softsign: map_unary(acc, n, [](float x) { return x / (1.0f + __builtin_fabsf(x)); }); return;
    case Ew::elu: map_unary(acc, n, [a](float x) { return x < 0 ? a * (math::exp(x) - 1.0f) : x; }); return;
    case Ew::selu:
      map_unary(acc, n, [a, b](float x) { return x <= 0 ? b * (a * math::exp(x) - a) : b * x; });
      return;
    case Ew::gelu:
      map_unary(acc, n, [](float x) { return 0.5f * x * (1.0f + math::erf(x * 0.70710678118654752f)); });
      return;
    case Ew::gelu_tanh:
      map_unary(acc, n, [](float x) {
        return 0.5f * x * (1.0f + math::tanh(0.79788456080286536f * (x + 0.044715f * x * x * x)));
      });
      return;
    case Ew::floor: map_unary(acc, n, [](float x) { return __builtin_floorf(x); }); return;
    case Ew::ceil: map_unary(acc, n, [](float x) { return __builtin_ceilf(x); }); return;
    case Ew::square: map_unary(acc, n, [](float x) { return x * x; }); return;
    case Ew::cube: map_unary(acc, n, [](float x) { return x * x * x; }); return;
    case Ew::mish:  // tanh(log(1 + e)) = m / (m + 2) with m = e (e + 2), e = exp(x)
      map_unary(acc, n, [](float x) {
        const float e = math::exp(x < 20.0f ? x : 20.0f), m = e * (e + 2.0f);
        return x * (m / (m + 2.0f));
      });
      return;
    case Ew::sign: map_unary(acc, n, [](float x) { return x > 0 ? 1.0f : x < 0 ? -1.0f : x == x ? 0.0f : x; }); return;
    case Ew::thresholded_relu: map_unary(acc, n, [a](float x) { return x > a ? x : 0.0f; }); return;
    case Ew::shrink: map_unary(acc, n, [a, b](float x) { return x < -a ? x + b : x > a ? x - b : 0.0f; }); return;
    case Ew::linear: map_unary(acc, n, [a, b](float x) { return a * x + b; }); return;
    case Ew::fake_quant_u8: map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, 0.0f, 255.0f); }); return;
    case Ew::fake_quant_s8: map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, -128.0f, 127.0f); }); return;
    case Ew::fake_quant_u16: map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, 0.0f, 65535.0f); }); return;
    case Ew::fake_quant_s16:
      map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, -32768.0f, 32767.0f); });
      return;
    case Ew::identity: return;
    default: {
      EwOp o = op;
      for (int64_t i = 0; i < n; ++i) acc[i] = ew_apply_scalar(o, acc[i], 0.0f);
      return;
    }
  }
}
TANDEM_ISA_DISPATCH(ew_apply_to_tile, (const EwOp& op, const EwTile& t), (op, t))

TANDEM_ISA_BODY void ew_store_tile_body(float* __restrict out, int64_t out_rs, const float* __restrict acc, int64_t rows,
                                     int64_t lanes) {
  if (out_rs == lanes) {
    const int64_t n = rows * lanes;
    for (int64_t i = 0; i < n; ++i) out[i] = acc[i];
    return;
  }
  for (int64_t r = 0; r < rows; ++r) {
    float* o = out + r * out_rs;
    const float* a = acc + r * lanes;
    for (int64_t l = 0; l < lanes; ++l) o[l] = a[l];
  }
}
TANDEM_ISA_DISPATCH(ew_store_tile, (float* __restrict out, int64_t out_rs, const float* __restrict acc, int64_t rows,
                                 int64_t lanes),
                    (out, out_rs, acc, rows, lanes))

bool ew_pointwise(const EwProgram& p) {
  for (const EwOp& op : p.ops)
    if (op.operand >= 0 || op.code == Ew::load) return false;
  return true;
}

void ew_apply_pointwise(const EwProgram& p, float* data, int64_t n) {
  EwTile t{data, 1, n, nullptr, nullptr, nullptr};
  for (const EwOp& op : p.ops) ew_apply_to_tile(op, t);
}

}  // namespace tandem::cpu
