// resize_bytes.cpp: linear Resize of 8-bit tensors over the two spatial dims (resize.h), in the
// two arithmetics 8-bit models ask for:
//   truncating    Resize's own on 8-bit data (a QOperator model's uint8 Resize): the reference
//                 kernel's sum over the taps in double, truncated as it converts it;
//   requantizing  a QDQ model's DequantizeLinear -> Resize -> QuantizeLinear: the float path's
//                 three steps, one output row at a time in a thread's buffers (with the same
//                 quantization on both sides, as ONNX Runtime's tool writes it: in quantization
//                 units, without the division by the scale; see `in_units`).
// Each gives the bytes of what it stands for (in units: within one unit, at exact half-integers).
// This file is compiled without contracted multiply-adds (CMakeLists.txt): its AVX2 and AVX-512
// variants round every product and sum as the baseline code of the reference kernel and of the
// float Resize kernel does.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstring>
#include <type_traits>

#include "backends/cpu/int8.h"
#include "backends/cpu/resize.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

// Below this many output bytes a resize runs on one thread.
constexpr int64_t kSerialBytes = 65536;

// Per output row or column: the first and second tap's index and weight; a missing second tap
// has weight 0 (and the first tap's index).
struct TapTable {
  std::vector<int64_t> i0, i1;
  std::vector<double> w0, w1;
};

TapTable tap_table(const std::vector<LinearTaps>& taps) {
  TapTable t;
  for (const LinearTaps& lt : taps) {
    t.i0.push_back(lt.tap[0].index);
    t.w0.push_back(lt.tap[0].weight);
    t.i1.push_back(lt.count > 1 ? lt.tap[1].index : lt.tap[0].index);
    t.w1.push_back(lt.count > 1 ? lt.tap[1].weight : 0.0);
  }
  return t;
}

// One output row of the truncating arithmetic from input rows r0 (weight wy0) and r1 (wy1).
// The terms are added in the reference's order (row tap outer, column tap inner), each weight
// the product of the two taps' as the reference forms it. A missing tap's term is a product
// with weight 0: it adds a zero and changes no sum, and its absence from the first term does
// not matter either (the reference's 0 + v is v, or a zero of the other sign: truncated alike).
template <class T>
TANDEM_ISA_BODY void truncating_row(const T* __restrict r0, const T* __restrict r1, double wy0, double wy1,
                                    const TapTable& c, int64_t ow, int64_t lanes, T* __restrict dst) {
  const int64_t *c0 = c.i0.data(), *c1 = c.i1.data();
  const double *w0 = c.w0.data(), *w1 = c.w1.data();
  if (lanes == 1) {
    for (int64_t o = 0; o < ow; ++o) {
      double acc = (wy0 * w0[o]) * static_cast<double>(r0[c0[o]]);
      acc += (wy0 * w1[o]) * static_cast<double>(r0[c1[o]]);
      acc += (wy1 * w0[o]) * static_cast<double>(r1[c0[o]]);
      acc += (wy1 * w1[o]) * static_cast<double>(r1[c1[o]]);
      dst[o] = static_cast<T>(acc);
    }
    return;
  }
  for (int64_t o = 0; o < ow; ++o) {
    const T *a0 = r0 + c0[o] * lanes, *a1 = r0 + c1[o] * lanes, *b0 = r1 + c0[o] * lanes, *b1 = r1 + c1[o] * lanes;
    const double w00 = wy0 * w0[o], w01 = wy0 * w1[o], w10 = wy1 * w0[o], w11 = wy1 * w1[o];
    T* d = dst + o * lanes;
    for (int64_t l = 0; l < lanes; ++l) {
      double acc = w00 * static_cast<double>(a0[l]);
      acc += w01 * static_cast<double>(a1[l]);
      acc += w10 * static_cast<double>(b0[l]);
      acc += w11 * static_cast<double>(b1[l]);
      d[l] = static_cast<T>(acc);
    }
  }
}

TANDEM_ISA_BODY void truncating_row_u8_body(const uint8_t* r0, const uint8_t* r1, double wy0, double wy1,
                                            const TapTable& c, int64_t ow, int64_t lanes, uint8_t* dst) {
  truncating_row(r0, r1, wy0, wy1, c, ow, lanes, dst);
}
TANDEM_ISA_BODY void truncating_row_s8_body(const int8_t* r0, const int8_t* r1, double wy0, double wy1,
                                            const TapTable& c, int64_t ow, int64_t lanes, int8_t* dst) {
  truncating_row(r0, r1, wy0, wy1, c, ow, lanes, dst);
}
TANDEM_ISA_DISPATCH(truncating_row_u8,
                    (const uint8_t* r0, const uint8_t* r1, double wy0, double wy1, const TapTable& c, int64_t ow,
                     int64_t lanes, uint8_t* dst),
                    (r0, r1, wy0, wy1, c, ow, lanes, dst))
TANDEM_ISA_DISPATCH(truncating_row_s8,
                    (const int8_t* r0, const int8_t* r1, double wy0, double wy1, const TapTable& c, int64_t ow,
                     int64_t lanes, int8_t* dst),
                    (r0, r1, wy0, wy1, c, ow, lanes, dst))

class TruncatingLinearResizeKernel final : public Kernel {
 public:
  ByteImages g;
  bool is_signed = false;
  int x = -1, out = -1;
  TapTable rows, cols;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* in = static_cast<const std::byte*>(ctx.ptr[x]);
    auto* o = static_cast<std::byte*>(ctx.ptr[out]);
    const int64_t in_row = g.iw * g.lanes, out_row = g.ow * g.lanes;
    const int threads = g.images * g.oh * out_row < kSerialBytes ? 1 : ctx.threads;
    parallel_range(threads, g.images * g.oh, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t img = t / g.oh, y = t % g.oh;
        const std::byte* plane = in + img * g.ih * in_row;
        const std::byte *r0 = plane + rows.i0[y] * in_row, *r1 = plane + rows.i1[y] * in_row;
        std::byte* dst = o + t * out_row;
        if (is_signed)
          truncating_row_s8(reinterpret_cast<const int8_t*>(r0), reinterpret_cast<const int8_t*>(r1), rows.w0[y],
                            rows.w1[y], cols, g.ow, g.lanes, reinterpret_cast<int8_t*>(dst));
        else
          truncating_row_u8(reinterpret_cast<const uint8_t*>(r0), reinterpret_cast<const uint8_t*>(r1), rows.w0[y],
                            rows.w1[y], cols, g.ow, g.lanes, reinterpret_cast<uint8_t*>(dst));
      }
    });
    return Status::ok();
  }
};

// The float Resize kernel's linear blend (resize.cpp), split where it splits: along a row,
// h = r[i0] + (r[i1] - r[i0]) * w (its "top" of row r0, its "bottom" of r1), then between two
// such rows, top + (bottom - top) * wy. Each input row's h is made once and serves every
// output row that reads it.
TANDEM_ISA_BODY void blend_along_any_body(const float* __restrict r, const ResizeAxis& c, int64_t ow, int64_t lanes,
                                          float* __restrict h) {
  const int64_t *c0 = c.i0.data(), *c1 = c.i1.data();
  const float* w = c.w1.data();
  if (lanes == 1) {
    for (int64_t o = 0; o < ow; ++o) h[o] = r[c0[o]] + (r[c1[o]] - r[c0[o]]) * w[o];
    return;
  }
  for (int64_t o = 0; o < ow; ++o) {
    const float *a = r + c0[o] * lanes, *k = r + c1[o] * lanes;
    const float wx = w[o];
    float* d = h + o * lanes;
    for (int64_t l = 0; l < lanes; ++l) d[l] = a[l] + (k[l] - a[l]) * wx;
  }
}
TANDEM_ISA_BODY void blend_between_body(const float* __restrict top, const float* __restrict bottom, float wy,
                                        int64_t n, float* __restrict d) {
  for (int64_t i = 0; i < n; ++i) d[i] = top[i] + (bottom[i] - top[i]) * wy;
}
TANDEM_ISA_DISPATCH(blend_along_any, (const float* r, const ResizeAxis& c, int64_t ow, int64_t lanes, float* h),
                    (r, c, ow, lanes, h))

// A plain row's taps in blocks of 16 outputs for AVX-512: where a block's taps lie within 32
// input elements from `base` (any upsampling, and downsampling by up to about 2), the block
// reads them with two loads and two permutes; `rel0`, `rel1` are the taps' offsets from base.
// Other blocks (base -1) and the last partial block run the scalar formula.
struct PermutedTaps {
  std::vector<int64_t> base;        // per block of 16 outputs
  std::vector<int32_t> rel0, rel1;  // per output
};

PermutedTaps permuted_taps(const ResizeAxis& c) {
  PermutedTaps p;
  const int64_t n = static_cast<int64_t>(c.i0.size());
  p.rel0.assign(static_cast<size_t>(n), 0);
  p.rel1.assign(static_cast<size_t>(n), 0);
  for (int64_t b = 0; b + 16 <= n; b += 16) {
    int64_t lo = c.i0[b], hi = c.i0[b];
    for (int64_t o = b; o < b + 16; ++o) {
      lo = std::min({lo, c.i0[o], c.i1[o]});
      hi = std::max({hi, c.i0[o], c.i1[o]});
    }
    const bool fits = hi - lo < 32;
    p.base.push_back(fits ? lo : -1);
    for (int64_t o = b; o < b + 16 && fits; ++o) {
      p.rel0[o] = static_cast<int32_t>(c.i0[o] - lo);
      p.rel1[o] = static_cast<int32_t>(c.i1[o] - lo);
    }
  }
  return p;
}

TANDEM_TARGET_AVX512 void blend_along_permuted_avx512(const float* r, int64_t iw, const ResizeAxis& c,
                                                      const PermutedTaps& p, int64_t ow, float* h) {
  const float* w = c.w1.data();
  int64_t o = 0;
  for (size_t blk = 0; blk < p.base.size(); ++blk, o += 16) {
    const int64_t base = p.base[blk];
    if (base < 0) {
      for (int64_t k = o; k < o + 16; ++k) h[k] = r[c.i0[k]] + (r[c.i1[k]] - r[c.i0[k]]) * w[k];
      continue;
    }
    const int64_t left = iw - base;  // elements of the row from base on (>= 1)
    const __mmask16 m_lo = left >= 16 ? 0xFFFF : static_cast<__mmask16>((1u << left) - 1);
    const __mmask16 m_hi = left >= 32 ? 0xFFFF : left <= 16 ? 0 : static_cast<__mmask16>((1u << (left - 16)) - 1);
    const __m512 lo = _mm512_maskz_loadu_ps(m_lo, r + base), hi = _mm512_maskz_loadu_ps(m_hi, r + base + 16);
    const __m512 a = _mm512_permutex2var_ps(lo, _mm512_loadu_si512(p.rel0.data() + o), hi);
    const __m512 k = _mm512_permutex2var_ps(lo, _mm512_loadu_si512(p.rel1.data() + o), hi);
    _mm512_storeu_ps(h + o, _mm512_add_ps(a, _mm512_mul_ps(_mm512_sub_ps(k, a), _mm512_loadu_ps(w + o))));
  }
  for (; o < ow; ++o) h[o] = r[c.i0[o]] + (r[c.i1[o]] - r[c.i0[o]]) * w[o];
}
TANDEM_ISA_DISPATCH(blend_between, (const float* top, const float* bottom, float wy, int64_t n, float* d),
                    (top, bottom, wy, n, d))

// The blend between two rows of values in quantization units (q - zero point), rounded half to
// even, the zero point added back and saturated: the output when the input and output
// quantization are the same, without a division by the scale.
template <class Q>
TANDEM_ISA_BODY void blend_round(const float* __restrict top, const float* __restrict bottom, float wy, int64_t n,
                                 float zp, Q* __restrict d) {
  constexpr float lo = std::is_signed_v<Q> ? -128.0f : 0.0f, hi = std::is_signed_v<Q> ? 127.0f : 255.0f;
  for (int64_t i = 0; i < n; ++i) {
    const float v = std::nearbyint(top[i] + (bottom[i] - top[i]) * wy) + zp;
    d[i] = static_cast<Q>(static_cast<int32_t>(std::min(std::max(v, lo), hi)));
  }
}
TANDEM_ISA_BODY void blend_round_u8_body(const float* top, const float* bottom, float wy, int64_t n, float zp,
                                         uint8_t* d) {
  blend_round(top, bottom, wy, n, zp, d);
}
TANDEM_ISA_BODY void blend_round_s8_body(const float* top, const float* bottom, float wy, int64_t n, float zp,
                                         int8_t* d) {
  blend_round(top, bottom, wy, n, zp, d);
}
TANDEM_ISA_DISPATCH(blend_round_u8, (const float* top, const float* bottom, float wy, int64_t n, float zp, uint8_t* d),
                    (top, bottom, wy, n, zp, d))
TANDEM_ISA_DISPATCH(blend_round_s8, (const float* top, const float* bottom, float wy, int64_t n, float zp, int8_t* d),
                    (top, bottom, wy, n, zp, d))

class RequantizingLinearResizeKernel final : public Kernel {
 public:
  ByteImages g;
  ByteQuant in_q, out_q;
  int x = -1, out = -1;
  ResizeAxis rows, cols;
  PermutedTaps permuted;  // a plain row on AVX-512 (`permute`): blend_along_permuted_avx512
  bool permute = false;
  // The input's and output's quantization are the same: the rows are blended in quantization
  // units and rounded (blend_round). Real arithmetic gives the same bytes; float32's roundings
  // in the other order can move a value that lies within one of them of a half-integer by one
  // unit.
  bool in_units = false;
  // Per thread: one dequantized input row, two rows blended along, one output row (floats).
  int64_t slot_floats = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* in = static_cast<const std::byte*>(ctx.ptr[x]);
    auto* o = static_cast<std::byte*>(ctx.ptr[out]);
    const int64_t in_row = g.iw * g.lanes, out_row = g.ow * g.lanes;
    const int threads = g.images * g.oh * out_row < kSerialBytes ? 1 : ctx.threads;
    auto* scratch = static_cast<float*>(ctx.scratch);
    parallel_range(threads, g.images * g.oh, 1, [&](int64_t b, int64_t e) {
      float* slot = scratch + (omp_get_thread_num() % std::max(ctx.threads, 1)) * slot_floats;
      float* dequantized = slot;
      // Two input rows blended along (tags: image * ih + row; -1: none). A thread's output
      // rows are consecutive, so an upsampling makes each input row's blend once or twice.
      float* held[2] = {slot + in_row, slot + in_row + out_row};
      int64_t tag[2] = {-1, -1};
      float* blended = slot + in_row + 2 * out_row;
      auto fetch = [&](int64_t want, int64_t keep) {
        for (int i = 0; i < 2; ++i)
          if (tag[i] == want) return held[i];
        const int v = tag[0] == keep ? 1 : 0;
        const std::byte* src = in + want * in_row;
        const float scale = in_units ? 1.0f : in_q.scale;
        if (in_q.is_signed)
          dequantize_s8(reinterpret_cast<const int8_t*>(src), dequantized, in_row, scale, in_q.zero_point);
        else
          dequantize_u8(reinterpret_cast<const uint8_t*>(src), dequantized, in_row, scale, in_q.zero_point);
        if (permute)
          blend_along_permuted_avx512(dequantized, g.iw, cols, permuted, g.ow, held[v]);
        else
          blend_along_any(dequantized, cols, g.ow, g.lanes, held[v]);
        tag[v] = want;
        return held[v];
      };
      const float zp = static_cast<float>(out_q.zero_point);
      for (int64_t t = b; t < e; ++t) {
        const int64_t img = t / g.oh, y = t % g.oh;
        const int64_t t0 = img * g.ih + rows.i0[y], t1 = img * g.ih + rows.i1[y];
        const float* top = fetch(t0, t1);
        const float* bottom = fetch(t1, t0);
        std::byte* dst = o + t * out_row;
        if (in_units) {
          if (out_q.is_signed)
            blend_round_s8(top, bottom, rows.w1[y], out_row, zp, reinterpret_cast<int8_t*>(dst));
          else
            blend_round_u8(top, bottom, rows.w1[y], out_row, zp, reinterpret_cast<uint8_t*>(dst));
          continue;
        }
        blend_between(top, bottom, rows.w1[y], out_row, blended);
        if (out_q.is_signed)
          quantize_s8(blended, reinterpret_cast<int8_t*>(dst), out_row, out_q.scale, zp);
        else
          quantize_u8(blended, reinterpret_cast<uint8_t*>(dst), out_row, out_q.scale, zp);
      }
    });
    return Status::ok();
  }
};

// Adds kernel `k` of either arithmetic: it reads `x` in its channels-last layout, or plain
// when it has another, and writes `out` in the same layout.
template <class K>
Status add_byte_resize(Builder& b, std::unique_ptr<K> k, const ByteImages& g, int x, int out,
                       const std::string& label) {
  if (b.val(x).layout == Layout::nhwc) {
    k->x = x;
  } else {
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, Layout::plain));
  }
  k->g = g;
  k->out = out;
  k->label = label;
  b.define(out, b.val(k->x).layout == Layout::nhwc ? Layout::nhwc : Layout::plain);
  k->reads = {k->x};
  k->writes = {out};
  b.add_work(static_cast<double>(g.images * g.oh * g.ow * g.lanes) * 4.0);
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace

Status add_truncating_linear_resize(Builder& b, const ByteImages& g, std::vector<LinearTaps> rows,
                                    std::vector<LinearTaps> cols, bool is_signed, int x, int out,
                                    const std::string& label) {
  if (static_cast<int64_t>(rows.size()) != g.oh || static_cast<int64_t>(cols.size()) != g.ow)
    return unsupported(label + " tap tables do not match the output");
  auto k = std::make_unique<TruncatingLinearResizeKernel>();
  k->is_signed = is_signed;
  k->rows = tap_table(rows);
  k->cols = tap_table(cols);
  return add_byte_resize(b, std::move(k), g, x, out, label + " (8-bit linear)");
}

Status add_requantizing_linear_resize(Builder& b, const ByteImages& g, ResizeAxis rows, ResizeAxis cols, ByteQuant in,
                                      ByteQuant out_quant, int x, int out, const std::string& label) {
  if (static_cast<int64_t>(rows.i0.size()) != g.oh || static_cast<int64_t>(cols.i0.size()) != g.ow)
    return unsupported(label + " tables do not match the output");
  auto k = std::make_unique<RequantizingLinearResizeKernel>();
  k->in_q = in;
  k->out_q = out_quant;
  k->rows = std::move(rows);
  k->cols = std::move(cols);
  k->permute = g.lanes == 1 && cpu_isa_level() >= 2;
  if (k->permute) k->permuted = permuted_taps(k->cols);
  k->in_units = in.is_signed == out_quant.is_signed && in.zero_point == out_quant.zero_point &&
                std::memcmp(&in.scale, &out_quant.scale, sizeof(float)) == 0;
  k->slot_floats = round_up(g.iw * g.lanes + 3 * g.ow * g.lanes, 16);
  b.need_scratch(static_cast<int64_t>(b.threads()) * k->slot_floats * static_cast<int64_t>(sizeof(float)));
  const std::string how = k->in_units ? " (8-bit linear, in quantization units)" : " (8-bit linear, requantized)";
  return add_byte_resize(b, std::move(k), g, x, out, label + how);
}

}  // namespace tandem::cpu
