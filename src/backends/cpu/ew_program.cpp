// ew_program.cpp: evaluation of elementwise programs (ew_program.h): the scalar semantics of
// every op, and one kernel that runs a chain of ops (arithmetic with broadcasting operands or
// immediates, activations) over the output in tiles that stay in L1; plain and blocked
// (nChw16c or nChw8c) layouts; OpenMP across tiles.
#include "backends/cpu/ew_program.h"

#include <algorithm>
#include <array>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "backends/cpu/ew_math.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

bool ew_is_unary(Ew c) { return c >= Ew::relu; }

const char* ew_name(Ew c) {
  static const char* names[] = {"load", "add", "sub", "rsub", "mul", "div", "rdiv", "max", "min", "pow", "rpow",
                                "prelu", "relu", "leaky_relu", "clip", "sigmoid", "tanh", "hardsigmoid",
                                "hardswish", "swish", "exp", "log", "sqrt", "abs", "neg", "reciprocal", "erf",
                                "softplus", "softsign", "elu", "selu", "celu", "gelu", "gelu_tanh", "floor", "ceil",
                                "round", "square", "linear", "fake_quant_u8", "fake_quant_s8",
                                "identity"};
  return names[static_cast<int>(c)];
}

namespace {

// --- scalar semantics, shared by the vector loops --------------------------------------------

inline float fmax_nan(float a, float b) { return (a > b || a != a) ? a : b; }
inline float fmin_nan(float a, float b) { return (a < b || a != a) ? a : b; }

// Ew::fake_quant_*: the arithmetic of QuantizeLinear (x / scale divided in float32, ties to
// even, NaN to the zero point, saturation) and then DequantizeLinear ((q - zp) * scale, whose
// float32 product is exact: q - zp has at most 9 bits).
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
    case Ew::linear: return a * x + b;
    case Ew::fake_quant_u8: return fake_quant(x, a, b, 0.0f, 255.0f);
    case Ew::fake_quant_s8: return fake_quant(x, a, b, -128.0f, 127.0f);
    default: return x;
  }
}

namespace {

// --- the vector loops ---------------------------------------------------------------------------

constexpr int kMaxDims = 8;
constexpr int64_t kTile = 1024;  // floats per tile (4 KiB)

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

struct TileArgs {
  float* acc;
  int64_t rows, lanes;
  const float* const* base;  // per operand, at the tile's first element
  const int64_t* rs;         // per operand row stride
  const int64_t* ls;         // per operand lane stride
};

// Applies one op to the tile (one variant per ISA path, see TANDEM_ISA_DISPATCH).
TANDEM_ISA_BODY void apply_op_body(const EwOp& op, const TileArgs& t) {
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
    case Ew::sigmoid: map_unary(acc, n, [](float x) { return math::sigmoid(x); }); return;
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
    case Ew::swish: map_unary(acc, n, [](float x) { return x * math::sigmoid(x); }); return;
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
    case Ew::linear: map_unary(acc, n, [a, b](float x) { return a * x + b; }); return;
    case Ew::fake_quant_u8: map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, 0.0f, 255.0f); }); return;
    case Ew::fake_quant_s8: map_unary(acc, n, [a, b](float x) { return fake_quant(x, a, b, -128.0f, 127.0f); }); return;
    case Ew::identity: return;
    default: {
      EwOp o = op;
      for (int64_t i = 0; i < n; ++i) acc[i] = ew_apply_scalar(o, acc[i], 0.0f);
      return;
    }
  }
}
TANDEM_ISA_DISPATCH(apply_op, (const EwOp& op, const TileArgs& t), (op, t))

TANDEM_ISA_BODY void store_tile_body(float* __restrict out, int64_t out_rs, const float* __restrict acc, int64_t rows,
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
TANDEM_ISA_DISPATCH(store_tile, (float* __restrict out, int64_t out_rs, const float* __restrict acc, int64_t rows,
                                 int64_t lanes),
                    (out, out_rs, acc, rows, lanes))

// --- the kernel ---------------------------------------------------------------------------------

class EwKernel final : public Kernel {
 public:
  int nd = 1;
  std::array<int64_t, kMaxDims> dims{};
  std::vector<EwOp> ops;
  std::vector<int> opnd;                                   // instance value per operand
  std::vector<std::array<int64_t, kMaxDims>> opnd_strides;  // per operand, per dim (elements)
  int out = -1;
  std::array<int64_t, kMaxDims> out_strides{};
  // Blocked outputs whose channels are not a multiple of the block: lanes >= tail of the last channel
  // block are zeroed. cb_dim: the dim indexing channel blocks (-2: every element is in it).
  int cb_dim = -1;
  int64_t cb_last = 0, tail = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const int64_t lanes = dims[nd - 1];
    const int64_t rows = nd >= 2 ? dims[nd - 2] : 1;
    const int outer_nd = std::max(nd - 2, 0);
    int64_t outer = 1;
    for (int i = 0; i < outer_nd; ++i) outer *= dims[i];
    int64_t lane_chunk = lanes, rows_per_tile = 1;
    if (lanes >= kTile) lane_chunk = kTile;
    else rows_per_tile = std::max<int64_t>(1, kTile / lanes);
    const int64_t lane_tiles = (lanes + lane_chunk - 1) / lane_chunk;
    const int64_t row_tiles = (rows + rows_per_tile - 1) / rows_per_tile;
    const int64_t tasks = outer * row_tiles * lane_tiles;
    const int64_t total = outer * rows * lanes;
    const int threads = total < 32768 ? 1 : ctx.threads;
    void** ptr = ctx.ptr;
    parallel_range(threads, tasks, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float acc[kTile];
      const size_t no = opnd.size();
      std::array<const float*, 16> base_small;
      std::array<int64_t, 16> rs_small, ls_small;
      std::vector<const float*> base_big;
      std::vector<int64_t> rs_big, ls_big;
      const float** base = base_small.data();
      int64_t* rs = rs_small.data();
      int64_t* ls = ls_small.data();
      if (no > 16) {
        base_big.resize(no);
        rs_big.resize(no);
        ls_big.resize(no);
        base = base_big.data();
        rs = rs_big.data();
        ls = ls_big.data();
      }
      for (size_t k = 0; k < no; ++k) {
        rs[k] = nd >= 2 ? opnd_strides[k][nd - 2] : 0;
        ls[k] = opnd_strides[k][nd - 1];
      }
      const int64_t out_rs = nd >= 2 ? out_strides[nd - 2] : 0;
      for (int64_t task = begin; task < end; ++task) {
        int64_t lt = task % lane_tiles;
        int64_t rest = task / lane_tiles;
        int64_t rt = rest % row_tiles;
        int64_t o = rest / row_tiles;
        const int64_t r0 = rt * rows_per_tile;
        const int64_t nr = std::min(rows_per_tile, rows - r0);
        const int64_t l0 = lt * lane_chunk;
        const int64_t nl = std::min(lane_chunk, lanes - l0);
        // Offsets of the tile's first element.
        int64_t out_off = r0 * out_rs + l0 * out_strides[nd - 1];
        int64_t cb_index = -1;
        std::array<int64_t, 16> off_small{};
        std::vector<int64_t> off_big;
        int64_t* off = off_small.data();
        if (no > 16) {
          off_big.assign(no, 0);
          off = off_big.data();
        }
        for (size_t k = 0; k < no; ++k) off[k] = r0 * rs[k] + l0 * ls[k];
        int64_t rem = o;
        for (int i = outer_nd - 1; i >= 0; --i) {
          int64_t idx = rem % dims[i];
          rem /= dims[i];
          if (i == cb_dim) cb_index = idx;
          out_off += idx * out_strides[i];
          for (size_t k = 0; k < no; ++k) off[k] += idx * opnd_strides[k][i];
        }
        for (size_t k = 0; k < no; ++k) base[k] = static_cast<const float*>(ptr[opnd[k]]) + off[k];
        TileArgs ta{acc, nr, nl, base, rs, ls};
        for (const EwOp& op : ops) apply_op(op, ta);
        if (cb_dim != -1) {
          const bool rows_are_cb = cb_dim == nd - 2;
          const int64_t block = channel_block();
          for (int64_t r = 0; r < nr; ++r) {
            bool last_block = cb_dim == -2 || (rows_are_cb ? r0 + r == cb_last : cb_index == cb_last);
            if (!last_block) continue;
            float* a = acc + r * nl;
            for (int64_t l = 0; l < nl; ++l)
              if (((l0 + l) & (block - 1)) >= tail) a[l] = 0.0f;
          }
        }
        store_tile(static_cast<float*>(ptr[out]) + out_off, out_rs, acc, nr, nl);
      }
    });
    return Status::ok();
  }
};

// Physical dims of a value in its layout: plain = shape; blocked = [N, C/B, H, W, B] with B =
// channel_block().
std::vector<int64_t> physical_dims(const IValue& v) {
  const int64_t block = channel_block();
  if (v.layout == Layout::blocked)
    return {v.shape[0], round_up(v.shape[1], block) / block, v.shape[2], v.shape[3], block};
  if (v.shape.empty()) return {1};
  return v.shape;
}

// Strides of operand `ov` iterated over the physical dims of `out` (broadcast dims get 0).
// Empty result when the operand needs a layout conversion first.
std::vector<int64_t> operand_strides(const IValue& ov, const IValue& outv) {
  const size_t r = outv.shape.size();
  Shape os(r, 1);
  if (ov.shape.size() > r) return {};
  std::copy(ov.shape.begin(), ov.shape.end(), os.begin() + (r - ov.shape.size()));
  if (outv.layout == Layout::plain) {
    if (ov.layout != Layout::plain) return {};
    std::vector<int64_t> st(std::max<size_t>(r, 1), 0);
    int64_t s = 1;
    for (size_t i = r; i-- > 0;) {
      st[i] = (os[i] == 1 && outv.shape[i] != 1) ? 0 : s;
      s *= os[i];
    }
    return st;
  }
  // Blocked output [N, C, H, W].
  const int64_t C = outv.shape[1];
  if (ov.layout == Layout::blocked) {
    const int64_t block = channel_block();
    const int64_t cb = round_up(ov.shape[1], block) / block;
    const int64_t sw = block, sh = os[3] * block, scb = os[2] * os[3] * block, sn = cb * scb;
    const bool cbc = os[1] == 1 && C != 1;
    return {os[0] == 1 ? 0 : sn, cbc ? 0 : scb, os[2] == 1 ? 0 : sh, os[3] == 1 ? 0 : sw, cbc ? 0 : 1};
  }
  if (os[1] != 1) return {};
  // Plain operand constant along channels.
  const int64_t sw = 1, sh = os[3], sn = os[1] * os[2] * os[3];
  return {os[0] == 1 ? 0 : sn, 0, os[2] == 1 ? 0 : sh, os[3] == 1 ? 0 : sw, 0};
}

// Pads a plain constant to rank 4 and reorders it to the blocked layout.
Result<int> blocked_constant(Builder& b, int v) {
  IValue& ov = b.val(v);
  if (ov.shape.size() > 4) return unsupported("operand of rank > 4 in a blocked op");
  Shape s4(4, 1);
  std::copy(ov.shape.begin(), ov.shape.end(), s4.begin() + (4 - ov.shape.size()));
  Tensor t = ov.holder.reshaped(s4);
  int c = b.add_constant(t);
  return b.require(c, Layout::blocked);
}

}  // namespace

Status add_elementwise(Builder& b, const EwProgram& program, int acc, int out, const std::string& label) {
  EwProgram p;
  if (acc >= 0) {
    p.operands.push_back(acc);
    p.ops.push_back(EwOp{Ew::load, 0, 0, 0});
  }
  const int shift = static_cast<int>(p.operands.size());
  for (int v : program.operands) p.operands.push_back(v);
  for (EwOp op : program.ops) {
    if (op.operand >= 0) op.operand += shift;
    p.ops.push_back(op);
  }
  if (p.ops.empty() || p.ops.front().code != Ew::load || p.ops.front().operand < 0)
    return internal_error(label + " elementwise program does not start with a load");
  if (!b.typed(out)) return unsupported(label + " output shape unknown");
  for (int v : p.operands) {
    if (!b.typed(v) || b.val(v).dtype != DataType::float32) return unsupported(label + " operand is not float32");
    if (b.val(v).kind == IValue::Kind::none) return unsupported(label + " operand missing");
  }
  IValue& ov = b.val(out);
  if (ov.dtype != DataType::float32) return unsupported(label + " output is not float32");
  if (shape_numel(ov.shape) == 0) return unsupported(label + " empty output");
  if (ov.shape.size() > kMaxDims - 1) return unsupported(label + " rank too large");

  // Layout: blocked when a full-size operand is blocked.
  if (!ov.defined) {
    Layout l = Layout::plain;
    if (ov.shape.size() == 4)
      for (int v : p.operands)
        if (b.val(v).layout == Layout::blocked && b.val(v).shape == ov.shape) l = Layout::blocked;
    b.define(out, l);
  }
  const IValue outv = b.val(out);
  auto k = std::make_unique<EwKernel>();
  k->label = label;
  k->ops = p.ops;
  k->out = out;
  std::vector<int64_t> pd = physical_dims(outv);
  const int r = static_cast<int>(pd.size());
  std::vector<std::vector<int64_t>> strides;
  for (size_t i = 0; i < p.operands.size(); ++i) {
    int v = p.operands[i];
    std::vector<int64_t> st = operand_strides(b.val(v), outv);
    if (st.empty()) {
      // Convert the operand to the output's layout.
      int cv = -1;
      if (outv.layout == Layout::blocked) {
        if (b.val(v).kind == IValue::Kind::constant) {
          TANDEM_ASSIGN_OR_RETURN(cv, blocked_constant(b, v));
        } else if (b.val(v).shape.size() == 4) {
          TANDEM_ASSIGN_OR_RETURN(cv, b.require(v, Layout::blocked));
        } else {
          return unsupported(label + " operand of rank " + std::to_string(b.val(v).shape.size()) +
                             " cannot join a blocked op");
        }
      } else {
        TANDEM_ASSIGN_OR_RETURN(cv, b.require(v, Layout::plain));
      }
      p.operands[i] = cv;
      st = operand_strides(b.val(cv), outv);
      if (st.empty()) return internal_error(label + " operand layout conversion failed");
    }
    strides.push_back(std::move(st));
  }
  std::vector<int64_t> ost(r);
  {
    int64_t s = 1;
    for (int i = r; i-- > 0;) {
      ost[i] = s;
      s *= pd[i];
    }
  }
  // Blocked tail handling.
  int cb_dim = -1;
  int64_t tail = 0;
  if (outv.layout == Layout::blocked && outv.shape[1] % channel_block() != 0) {
    cb_dim = 1;
    tail = outv.shape[1] % channel_block();
  }
  // Drop size-1 dims and merge contiguous neighbours (the channel-block dim stays alone).
  std::vector<int64_t> dims;
  std::vector<int64_t> os;
  std::vector<std::vector<int64_t>> ops(strides.size());
  int cb_pos = -1;
  for (int i = 0; i < r; ++i) {
    if (pd[i] == 1 && !(i == r - 1 && dims.empty())) continue;
    bool can_merge = !dims.empty() && i != cb_dim && cb_pos != static_cast<int>(dims.size()) - 1;
    if (can_merge) {
      can_merge = os.back() == ost[i] * pd[i];
      for (size_t k2 = 0; k2 < ops.size() && can_merge; ++k2) can_merge = ops[k2].back() == strides[k2][i] * pd[i];
    }
    if (can_merge) {
      dims.back() *= pd[i];
      os.back() = ost[i];
      for (size_t k2 = 0; k2 < ops.size(); ++k2) ops[k2].back() = strides[k2][i];
    } else {
      if (i == cb_dim) cb_pos = static_cast<int>(dims.size());
      dims.push_back(pd[i]);
      os.push_back(ost[i]);
      for (size_t k2 = 0; k2 < ops.size(); ++k2) ops[k2].push_back(strides[k2][i]);
    }
  }
  const int new_cb = cb_dim < 0 ? -1 : (pd[cb_dim] == 1 ? -2 : cb_pos);
  if (dims.empty()) {
    dims.push_back(1);
    os.push_back(1);
    for (auto& s : ops) s.push_back(0);
  }
  if (static_cast<int>(dims.size()) > kMaxDims) return unsupported(label + " too many dims");
  k->nd = static_cast<int>(dims.size());
  for (int i = 0; i < k->nd; ++i) {
    k->dims[i] = dims[i];
    k->out_strides[i] = os[i];
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    std::array<int64_t, kMaxDims> a{};
    for (int d = 0; d < k->nd; ++d) a[d] = ops[i][d];
    k->opnd_strides.push_back(a);
  }
  if (cb_dim >= 0) {
    k->cb_dim = new_cb;
    k->cb_last = pd[1] - 1;
    k->tail = tail;
    if (new_cb >= 0 && new_cb == k->nd - 1) return internal_error(label + " channel-block dim became the lane dim");
  }
  k->opnd = p.operands;
  k->reads = p.operands;
  k->writes = {out};
  b.add_kernel(std::move(k));
  return Status::ok();
}

bool ew_pointwise(const EwProgram& p) {
  for (const EwOp& op : p.ops)
    if (op.operand >= 0 || op.code == Ew::load) return false;
  return true;
}

void ew_apply_pointwise(const EwProgram& p, float* data, int64_t n) {
  TileArgs t{data, 1, n, nullptr, nullptr, nullptr};
  for (const EwOp& op : p.ops) apply_op(op, t);
}

}  // namespace tandem::cpu
