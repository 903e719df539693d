// qconv_narrow.cpp: the int8 convolution with pixels across the lanes (qconv_narrow.h).
#include "backends/cpu/qconv_narrow.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/threads.h"
#include "backends/cpu/transpose16.h"

// GCC 12 reports the undefined upper halves inside its own AVX-512 conversion intrinsics as
// "may be used uninitialized" (a false positive of its headers).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace tandem::cpu {

namespace {

constexpr int64_t kLanes = 16;        // output pixels per register
constexpr int64_t kMaxGroups = 6;     // four-channel groups per pass: 24 accumulators
constexpr int64_t kMaxKernel = 16;    // rows in a thread's ring
constexpr int64_t kMaxChannels = 48;  // beyond this oneDNN's padding costs little

#define TANDEM_TARGET_VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,fma")))

// Output channels [o0, o0 + count) computed together: `groups` four-channel groups, packed
// weights at `w` in [kh][kw][quad][groups * 4] order (32-bit words of four int8 weights, one per
// input channel of the quad; channels past `count` hold zero weights).
struct Pass {
  int64_t o0 = 0, count = 0, groups = 0, w = 0;
};

struct Narrow {
  int64_t N = 0, C = 0, H = 0, W = 0, O = 0, OH = 0, OW = 0, KH = 0, KW = 0, pad_top = 0, pad_left = 0;
  int64_t quads = 0;  // C / 4
  int64_t width = 0;  // pixels per ring row: the output row rounded up to the lanes, plus KW - 1
  std::vector<int32_t> w;
  std::vector<Pass> passes;
  std::vector<double> shift, factor;  // per output channel: bias - x_zp * sum(w), multiplier
  uint32_t x_zero_word = 0;           // four copies of the source zero point (as stored in the ring)
  uint32_t flip = 0;                  // int8 sources: 0x80808080, the ring holds x + 128 as uint8
  int32_t y_zero_point = 0, y_lo = 0, y_hi = 255;
  // ConvInteger with a float tail (float_out): per output channel sum(w); the source zero point
  // (as the ring holds it) known, or read at each run from x_zp_value (a uint8 or int8 scalar);
  // the tail (NarrowFloatTail).
  bool float_out = false;
  std::vector<int64_t> weight_sums;
  int32_t x_zero_point = 0;
  int x_zp_value = -1;
  NarrowFloatTail tail;
};

// What one run of a float-tail kernel reads: the int32 shift per channel -x_zp * sum(w) (the
// source zero point's share, exact) and each channel op's factors or terms (one, or one per
// output channel).
struct FloatRun {
  int32_t shift[kMaxChannels + 4] = {};
  const float* values[kMaxChannelOps] = {};
};

// Four accumulators take the dot products of `v` (16 pixels x 4 source bytes) with four output
// channels' weight words at w[0..3], each broadcast from memory. Inline assembly: GCC spills
// two dozen accumulators written with intrinsics to the stack (the 3x3 96 -> 24 layer then
// took 2.8 ms instead of 1.4).
TANDEM_TARGET_VNNI __attribute__((always_inline)) inline void dot4(__m512i& a0, __m512i& a1, __m512i& a2, __m512i& a3,
                                                                  __m512i v, const int32_t* w) {
  asm("vpdpbusd 0(%[w])%{1to16%}, %[v], %[a0]\n\t"
      "vpdpbusd 4(%[w])%{1to16%}, %[v], %[a1]\n\t"
      "vpdpbusd 8(%[w])%{1to16%}, %[v], %[a2]\n\t"
      "vpdpbusd 12(%[w])%{1to16%}, %[v], %[a3]"
      : [a0] "+v"(a0), [a1] "+v"(a1), [a2] "+v"(a2), [a3] "+v"(a3)
      : [v] "v"(v), [w] "r"(w), "m"(*reinterpret_cast<const int32_t(*)[4]>(w)));
}

// Ring row for source row `ih` of the image at `img` (channels-last bytes): quad-major words,
// the zero point (`zero_word`, four copies) where the window reaches past the source; int8 bytes with their sign bit
// flipped (x + 128, the uint8 operand vpdpbusd takes).
TANDEM_TARGET_VNNI void fill_row(const Narrow& p, const uint8_t* img, int64_t ih, uint32_t zero_word, uint32_t* row) {
  if (ih < 0 || ih >= p.H) {
    std::fill(row, row + p.quads * p.width, zero_word);
    return;
  }
  const uint8_t* s = img + ih * p.W * p.C;
  // The next source row is filled one output row later: fetch it into L2 meanwhile.
  if (ih + 1 < p.H)
    for (int64_t i = 0; i < p.W * p.C; i += 64) _mm_prefetch(reinterpret_cast<const char*>(s + p.W * p.C + i), _MM_HINT_T1);
  const int64_t right = std::min(p.width, p.pad_left + p.W);
  for (int64_t q = 0; q < p.quads; ++q) {
    uint32_t* r = row + q * p.width;
    std::fill(r, r + p.pad_left, zero_word);
    std::fill(r + right, r + p.width, zero_word);
  }
  // Blocks of 16 pixels x 16 quads, transposed in registers; the last pixels one by one.
  int64_t j = p.pad_left;
  for (; j + 16 <= right; j += 16, s += 16 * p.C)
    for (int64_t q0 = 0; q0 < p.quads; q0 += 16) {
      const int64_t n = std::min<int64_t>(16, p.quads - q0);
      const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1);
      __m512i r[16];
      const __m512i flip = _mm512_set1_epi32(static_cast<int>(p.flip));
      for (int i = 0; i < 16; ++i) r[i] = _mm512_xor_si512(_mm512_maskz_loadu_epi32(mask, s + i * p.C + q0 * 4), flip);
      transpose16(r);
      for (int64_t q = 0; q < n; ++q) _mm512_storeu_si512(row + (q0 + q) * p.width + j, r[q]);
    }
  for (; j < right; ++j, s += p.C)
    for (int64_t q = 0; q < p.quads; ++q) {
      uint32_t word;
      std::memcpy(&word, s + q * 4, 4);
      row[q * p.width + j] = word ^ p.flip;
    }
}

// The accumulators of 16 output pixels from w0 on, for pass `ps` (see pass_row), stored to
// `sums` (K x 16 int32). Kept apart from the requantization, whose registers would otherwise
// push the accumulators out to the stack in the inner loop.
template <int G>
TANDEM_TARGET_VNNI __attribute__((noinline)) void accumulate(const Narrow& p, const Pass& ps,
                                                              const uint32_t* const* rows, int64_t w0, __m512i* sums) {
  constexpr int K = 4 * G;
  // (Every index into acc is a constant once the loops over it unroll: it stays in registers.)
  __m512i acc[K];
#pragma GCC unroll 24
  for (int i = 0; i < K; ++i) acc[i] = _mm512_setzero_si512();
  const int32_t* wp = p.w.data() + ps.w;
  for (int64_t kh = 0; kh < p.KH; ++kh) {
    const uint32_t* row = rows[kh] + w0;
    for (int64_t kw = 0; kw < p.KW; ++kw)
      for (int64_t q = 0; q < p.quads; ++q, wp += K) {
        const __m512i v = _mm512_loadu_si512(row + q * p.width + kw);
#pragma GCC unroll 6
        for (int g = 0; g < G; ++g) dot4(acc[4 * g], acc[4 * g + 1], acc[4 * g + 2], acc[4 * g + 3], v, wp + 4 * g);
      }
  }
#pragma GCC unroll 24
  for (int i = 0; i < K; ++i) _mm512_store_si512(sums + i, acc[i]);
}

// One output row of pass `ps`: rows[kh] is the ring row of source row oh - pad_top + kh, `dst`
// the output row's first pixel (channels-last, O bytes per pixel).
template <int G>
TANDEM_TARGET_VNNI void pass_row(const Narrow& p, const Pass& ps, const uint32_t* const* rows, uint8_t* dst) {
  constexpr int K = 4 * G;
  const __m512d big = _mm512_set1_pd(1e9), neg_big = _mm512_set1_pd(-1e9);
  const __m512i y_zp = _mm512_set1_epi32(p.y_zero_point), y_lo = _mm512_set1_epi32(p.y_lo),
                y_hi = _mm512_set1_epi32(p.y_hi);
  for (int64_t w0 = 0; w0 < p.OW; w0 += kLanes) {
    __m512i acc[K];
    accumulate<G>(p, ps, rows, w0, acc);
    // Requantize in double, as the reference does, then saturate into the output type.
    __m128i bytes[K];  // per output channel, its 16 pixels
#pragma GCC unroll 24
    for (int o = 0; o < K; ++o) {  // (channels past the pass's count: zeros, not stored)
      const __m512d shift = _mm512_set1_pd(p.shift[static_cast<size_t>(ps.o0 + o)]);
      const __m512d factor = _mm512_set1_pd(p.factor[static_cast<size_t>(ps.o0 + o)]);
      __m512d lo = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(acc[o])), shift), factor);
      __m512d hi = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(acc[o], 1)), shift), factor);
      lo = _mm512_min_pd(_mm512_max_pd(lo, neg_big), big);
      hi = _mm512_min_pd(_mm512_max_pd(hi, neg_big), big);
      __m512i q = _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(lo)), _mm512_cvtpd_epi32(hi), 1);
      q = _mm512_min_epi32(_mm512_max_epi32(_mm512_add_epi32(q, y_zp), y_lo), y_hi);
      bytes[o] = _mm512_cvtepi32_epi8(q);
    }
    // Four channels at a time into one 32-bit word per pixel, stored at the pixel's channels.
    const int64_t n = std::min(kLanes, p.OW - w0);
#pragma GCC unroll 6
    for (int g = 0; g < G; ++g) {
      const __m128i t0 = _mm_unpacklo_epi8(bytes[4 * g], bytes[4 * g + 1]);
      const __m128i t1 = _mm_unpackhi_epi8(bytes[4 * g], bytes[4 * g + 1]);
      const __m128i t2 = _mm_unpacklo_epi8(bytes[4 * g + 2], bytes[4 * g + 3]);
      const __m128i t3 = _mm_unpackhi_epi8(bytes[4 * g + 2], bytes[4 * g + 3]);
      alignas(16) uint32_t words[kLanes];
      _mm_store_si128(reinterpret_cast<__m128i*>(words), _mm_unpacklo_epi16(t0, t2));
      _mm_store_si128(reinterpret_cast<__m128i*>(words + 4), _mm_unpackhi_epi16(t0, t2));
      _mm_store_si128(reinterpret_cast<__m128i*>(words + 8), _mm_unpacklo_epi16(t1, t3));
      _mm_store_si128(reinterpret_cast<__m128i*>(words + 12), _mm_unpackhi_epi16(t1, t3));
      uint8_t* d = dst + w0 * p.O + ps.o0 + 4 * g;
      const int64_t used = std::min<int64_t>(4, ps.count - 4 * g);
      if (used == 4)
        for (int64_t px = 0; px < n; ++px) std::memcpy(d + px * p.O, words + px, 4);
      else
        for (int64_t px = 0; px < n; ++px) std::memcpy(d + px * p.O, words + px, static_cast<size_t>(used));
    }
  }
}

using PassRow = void (*)(const Narrow&, const Pass&, const uint32_t* const*, uint8_t*);
constexpr PassRow kPassRows[kMaxGroups + 1] = {nullptr,     &pass_row<1>, &pass_row<2>, &pass_row<3>,
                                               &pass_row<4>, &pass_row<5>, &pass_row<6>};

// One output row of pass `ps` with the float tail's channel ops (a ConvInteger): each channel's
// 16 pixels converted and computed in a register, 16 channels turned into 16 pixels by a
// transpose and stored at the pixels' channels (float32, O per pixel).
template <int G>
TANDEM_TARGET_VNNI void pass_row_float(const Narrow& p, const Pass& ps, const uint32_t* const* rows,
                                       const FloatRun& fr, float* dst) {
  constexpr int K = 4 * G;
  const size_t ops = p.tail.channel_ops.size();
  for (int64_t w0 = 0; w0 < p.OW; w0 += kLanes) {
    __m512i acc[K];
    accumulate<G>(p, ps, rows, w0, acc);
    const int64_t n = std::min(kLanes, p.OW - w0);
    for (int c0 = 0; c0 < K && c0 < ps.count; c0 += 16) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        const int64_t o = ps.o0 + c0 + i;
        if (c0 + i >= K || o >= p.O) {
          r[i] = _mm512_setzero_si512();
          continue;
        }
        __m512 v = _mm512_cvtepi32_ps(_mm512_add_epi32(acc[c0 + i], _mm512_set1_epi32(fr.shift[o])));
        for (size_t k = 0; k < ops; ++k) {
          const NarrowFloatTail::ChannelOp& op = p.tail.channel_ops[k];
          const __m512 c = _mm512_set1_ps(fr.values[k][op.per_channel ? o : 0]);
          v = op.code == Ew::mul ? _mm512_mul_ps(v, c) : op.code == Ew::add ? _mm512_add_ps(v, c) : _mm512_sub_ps(v, c);
        }
        r[i] = _mm512_castps_si512(v);
      }
      transpose16(r);  // r[px]: the 16 channels of pixel px
      const int64_t used = std::min<int64_t>(16, ps.count - c0);
      const __mmask16 keep = static_cast<__mmask16>((1u << used) - 1u);
      float* d = dst + w0 * p.O + ps.o0 + c0;
      for (int64_t px = 0; px < n; ++px) _mm512_mask_storeu_ps(d + px * p.O, keep, _mm512_castsi512_ps(r[px]));
    }
  }
}

using PassRowFloat = void (*)(const Narrow&, const Pass&, const uint32_t* const*, const FloatRun&, float*);
constexpr PassRowFloat kPassRowsFloat[kMaxGroups + 1] = {nullptr,           &pass_row_float<1>, &pass_row_float<2>,
                                                         &pass_row_float<3>, &pass_row_float<4>, &pass_row_float<5>,
                                                         &pass_row_float<6>};

class NarrowQConvKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  Narrow p;
  int64_t scratch_bytes = 0;  // per thread: the ring

  Status run(RunCtx& ctx, KernelState*) const override {
    const auto* src = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* dst = static_cast<uint8_t*>(ctx.ptr[out]);
    auto* scratch = static_cast<char*>(ctx.scratch);
    // A float tail's run-time parts: the source zero point's share and the ops' values.
    FloatRun fr;
    uint32_t zero_word = p.x_zero_word;
    if (p.float_out) {
      int32_t zp = p.x_zero_point;
      if (p.x_zp_value >= 0)
        zp = p.flip ? static_cast<const int8_t*>(ctx.ptr[p.x_zp_value])[0] + 128
                    : static_cast<const uint8_t*>(ctx.ptr[p.x_zp_value])[0];
      zero_word = 0x01010101u * static_cast<uint8_t>(zp);
      for (int64_t o = 0; o < p.O; ++o) fr.shift[o] = static_cast<int32_t>(-zp * p.weight_sums[static_cast<size_t>(o)]);
      for (size_t k = 0; k < p.tail.channel_ops.size(); ++k) {
        const NarrowFloatTail::ChannelOp& op = p.tail.channel_ops[k];
        fr.values[k] = op.value >= 0 ? static_cast<const float*>(ctx.ptr[op.value]) : op.constant.data();
      }
    }
    const int64_t rows_total = p.N * p.OH;
    const int threads = rows_total < 2 ? 1 : ctx.threads;
    parallel_range(threads, rows_total, 1, [&](int64_t b, int64_t e) {
      const int64_t slot = omp_get_thread_num() % std::max(ctx.threads, 1);  // also inside a caller's team
      auto* ring = reinterpret_cast<uint32_t*>(scratch + slot * scratch_bytes);
      // The source row each ring slot holds: image * H + row, or -2 for the zero-point row that
      // every row past the source shares; -1 for none yet.
      std::array<int64_t, kMaxKernel> held;
      held.fill(-1);
      std::array<const uint32_t*, kMaxKernel> rows{};
      for (int64_t t = b; t < e; ++t) {
        const int64_t img = t / p.OH, oh = t % p.OH;
        const uint8_t* image = src + img * p.H * p.W * p.C;
        for (int64_t kh = 0; kh < p.KH; ++kh) {
          const int64_t ih = oh - p.pad_top + kh;
          const int64_t slot_row = ((ih % p.KH) + p.KH) % p.KH;
          uint32_t* r = ring + slot_row * p.quads * p.width;
          const int64_t tag = ih < 0 || ih >= p.H ? -2 : img * p.H + ih;
          if (held[static_cast<size_t>(slot_row)] != tag) {
            fill_row(p, image, ih, zero_word, r);
            held[static_cast<size_t>(slot_row)] = tag;
          }
          rows[static_cast<size_t>(kh)] = r;
        }
        const int64_t at = (img * p.OH + oh) * p.OW * p.O;
        if (p.float_out) {
          float* row_out = reinterpret_cast<float*>(dst) + at;
          for (const Pass& ps : p.passes) kPassRowsFloat[ps.groups](p, ps, rows.data(), fr, row_out);
          if (!p.tail.pointwise.empty()) ew_apply_pointwise(p.tail.pointwise, row_out, p.OW * p.O);
          continue;
        }
        for (const Pass& ps : p.passes) kPassRows[ps.groups](p, ps, rows.data(), dst + at);
      }
    });
    return Status::ok();
  }
};

bool has_avx512_vnni() {
  static const bool yes = cpu_isa_level() >= 2 && __builtin_cpu_supports("avx512vnni");
  return yes;
}

}  // namespace

bool narrow_qconv_fits(const Shape& xs, const Shape& ws, const Shape& dst, const std::vector<int64_t>& strides,
                       const std::vector<int64_t>& dilations, int64_t groups, DataType x_type) {
  if (xs.size() != 4 || ws.size() != 4 || dst.size() != 4 || groups != 1 || !is_8bit(x_type)) return false;
  for (size_t i = 0; i < 2; ++i)
    if (strides.size() != 2 || dilations.size() != 2 || strides[i] != 1 || dilations[i] != 1) return false;
  const int64_t O = ws[0], C = xs[1];
  const int64_t padded = round_up(O, 16);
  return C % 4 == 0 && ws[1] == C && ws[2] * ws[3] > 1 && O <= kMaxChannels && (padded - O) * 5 >= padded && ws[2] <= kMaxKernel &&
         dst[3] >= kLanes && has_avx512_vnni() && feature_enabled_now("QNARROW");
}

namespace {

// The kernel for `c`; with `tail`, a ConvInteger's float tail (x_zp_value: its runtime zero
// point, or -1), c.out float32.
Status add_narrow_kernel(Builder& b, NarrowQConv c, const Shape& xs, const Shape& ws, const Shape& dst,
                         const NarrowFloatTail* tail, int x_zp_value) {
  const IValue& sv = b.val(c.src);
  if (sv.layout != Layout::nhwc || !is_8bit(sv.dtype))
    return internal_error(c.label + " narrow int8 source is not channels-last 8-bit");
  const bool x_signed = sv.dtype == DataType::int8;
  const DataType y_type = b.val(c.out).dtype;
  auto k = std::make_unique<NarrowQConvKernel>();
  Narrow& p = k->p;
  p.N = xs[0];
  p.C = xs[1];
  p.H = xs[2];
  p.W = xs[3];
  p.O = ws[0];
  p.KH = ws[2];
  p.KW = ws[3];
  p.OH = dst[2];
  p.OW = dst[3];
  p.pad_top = c.pad_top;
  p.pad_left = c.pad_left;
  p.quads = p.C / 4;
  p.width = round_up(p.OW, kLanes) + p.KW - 1;
  // An int8 source is read as x + 128 (uint8): its zero point likewise, and the shift below
  // subtracts (x_zp + 128) * sum(w).
  const int32_t x_zp = c.x_zero_point + (x_signed ? 128 : 0);
  p.flip = x_signed ? 0x80808080u : 0u;
  p.x_zero_word = 0x01010101u * static_cast<uint8_t>(x_zp);
  p.y_zero_point = c.y_zero_point;
  p.y_lo = y_type == DataType::uint8 ? 0 : -128;
  p.y_hi = y_type == DataType::uint8 ? 255 : 127;
  // Passes of at most kMaxGroups four-channel groups, as even as they come.
  const int64_t groups = (p.O + 3) / 4;
  const int64_t pass_count = (groups + kMaxGroups - 1) / kMaxGroups;
  const int64_t taps = p.KH * p.KW * p.quads;
  for (int64_t i = 0, g0 = 0; i < pass_count; ++i) {
    const int64_t g1 = groups * (i + 1) / pass_count;
    Pass ps;
    ps.o0 = g0 * 4;
    ps.count = std::min(p.O, g1 * 4) - ps.o0;
    ps.groups = g1 - g0;
    ps.w = static_cast<int64_t>(p.w.size());
    p.w.resize(p.w.size() + static_cast<size_t>(taps * ps.groups * 4), 0);
    for (int64_t o = 0; o < ps.count; ++o)
      for (int64_t kh = 0; kh < p.KH; ++kh)
        for (int64_t kw = 0; kw < p.KW; ++kw)
          for (int64_t q = 0; q < p.quads; ++q) {
            uint32_t word = 0;
            for (int64_t j = 0; j < 4; ++j) {
              const int8_t v = c.weights[static_cast<size_t>((((ps.o0 + o) * p.C + q * 4 + j) * p.KH + kh) * p.KW + kw)];
              word |= static_cast<uint32_t>(static_cast<uint8_t>(v)) << (8 * j);
            }
            const int64_t at = ps.w + ((kh * p.KW + kw) * p.quads + q) * ps.groups * 4 + o;
            p.w[static_cast<size_t>(at)] = static_cast<int32_t>(word);
          }
    p.passes.push_back(ps);
    g0 = g1;
  }
  const int64_t per_channel = p.C * p.KH * p.KW;
  for (int64_t o = 0; o < p.O; ++o) {
    int64_t sum = 0;
    for (int64_t i = 0; i < per_channel; ++i) sum += c.weights[static_cast<size_t>(o * per_channel + i)];
    const int64_t bias = c.bias.empty() ? 0 : c.bias[static_cast<size_t>(o)];
    p.shift.push_back(static_cast<double>(bias - static_cast<int64_t>(x_zp) * sum));
    p.factor.push_back(tail ? 1.0 : c.factors[static_cast<size_t>(o)]);
    p.weight_sums.push_back(sum);
  }
  p.shift.resize(static_cast<size_t>(groups * 4), 0.0);  // the last group's unused channels
  p.factor.resize(static_cast<size_t>(groups * 4), 0.0);
  k->scratch_bytes = round_up(p.KH * p.quads * p.width * 4, 64);
  k->x = c.src;
  k->out = c.out;
  k->label = c.label;
  b.define(c.out, Layout::nhwc);
  b.need_scratch(static_cast<int64_t>(b.threads()) * k->scratch_bytes);
  b.add_work(static_cast<double>(shape_numel(dst)) * static_cast<double>(per_channel));
  k->reads = {c.src};
  k->writes = {c.out};
  if (tail) {
    p.float_out = true;
    p.tail = *tail;
    p.x_zero_point = x_zp;
    p.x_zp_value = x_zp_value;
    if (x_zp_value >= 0) k->reads.push_back(x_zp_value);
    for (const NarrowFloatTail::ChannelOp& op : p.tail.channel_ops)
      if (op.value >= 0) k->reads.push_back(op.value);
  }
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace

Status add_narrow_qconv(Builder& b, NarrowQConv c, const Shape& xs, const Shape& ws, const Shape& dst) {
  return add_narrow_kernel(b, std::move(c), xs, ws, dst, nullptr, -1);
}

Status add_narrow_qlinear_conv(Builder& b, const NarrowQConvValues& v, const Tensor& w8, const Tensor& bias,
                               const std::vector<int64_t>& pads_begin, const Shape& xs, const Shape& ws,
                               const Shape& dst, const uint8_t* table, const float* float_table, DataType y_type,
                               const std::string& label) {
  const int64_t O = ws[0];
  NarrowQConv c;
  c.label = label + " (narrow int8)";
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> xz, known_zero_points(b, v.x_zero_point, 1, label + " x_zero_point"));
  TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> yz, known_zero_points(b, v.y_zero_point, 1, label + " y_zero_point"));
  TANDEM_ASSIGN_OR_RETURN(c.factors, requantization_factors(b, v.x_scale, v.w_scale, v.y_scale, O, label));
  c.x_zero_point = xz[0];
  c.y_zero_point = yz[0];
  c.weights.assign(w8.data<int8_t>(), w8.data<int8_t>() + w8.numel());
  if (bias.defined()) c.bias.assign(bias.data<int32_t>(), bias.data<int32_t>() + O);
  c.pad_top = pads_begin[0];
  c.pad_left = pads_begin[1];
  TANDEM_ASSIGN_OR_RETURN(c.src, b.require(v.x, Layout::nhwc));
  const bool mapped = table || float_table;
  c.out = mapped ? b.add_temp(y_type, dst, Layout::nhwc) : v.y;
  const int yq = c.out;
  TANDEM_RETURN_IF_ERROR(add_narrow_qconv(b, std::move(c), xs, ws, dst));
  if (table) return add_byte_map(b, yq, v.y, table, label + " (byte table)");
  if (float_table) return add_byte_to_float(b, yq, v.y, float_table, label + " (float table)");
  return Status::ok();
}

}  // namespace tandem::cpu

namespace tandem::cpu {

bool narrow_float_tail(Builder& b, const EwProgram& p, int64_t O, NarrowFloatTail* tail) {
  NarrowFloatTail t;
  size_t i = 0;
  // Products and sums by per-tensor or per-channel operands ([O], [O, 1, 1], [1, O, 1, 1]).
  for (; i < p.ops.size(); ++i) {
    const EwOp& op = p.ops[i];
    if (op.operand < 0 || (op.code != Ew::mul && op.code != Ew::add && op.code != Ew::sub)) break;
    const int v = p.operands[static_cast<size_t>(op.operand)];
    if (!b.typed(v) || b.val(v).dtype != DataType::float32) return false;
    const Shape& vs = b.val(v).shape;
    const int64_t count = shape_numel(vs);
    int64_t before_channel = 0;  // dims after the channel's (right-aligned to [N, O, H, W])
    for (size_t d = vs.size(); d-- > 0 && vs[d] == 1;) ++before_channel;
    if (count != 1 && !(count == O && vs.size() >= 3 && before_channel == 2 && vs[vs.size() - 3] == O)) return false;
    if (static_cast<int>(t.channel_ops.size()) == kMaxChannelOps) return false;
    NarrowFloatTail::ChannelOp c;
    c.code = op.code;
    c.per_channel = count != 1;
    if (const Tensor* known = b.known(v)) {
      c.constant.assign(known->data<float>(), known->data<float>() + count);
    } else {
      Result<int> plain = b.require(v, Layout::plain);
      if (!plain) return false;
      c.value = *plain;
    }
    t.channel_ops.push_back(std::move(c));
  }
  // Then pointwise ops only.
  for (; i < p.ops.size(); ++i) {
    if (p.ops[i].operand >= 0 || p.ops[i].code == Ew::load) return false;
    t.pointwise.ops.push_back(p.ops[i]);
  }
  *tail = std::move(t);
  return true;
}

Status add_narrow_conv_integer(Builder& b, int x, int x_zero_point, const Tensor& w8, NarrowFloatTail tail,
                               const std::vector<int64_t>& pads_begin, const Shape& xs, const Shape& ws,
                               const Shape& dst, int out, const std::string& label) {
  NarrowQConv c;
  c.label = label + " (narrow int8)";
  int x_zp_value = -1;
  if (x_zero_point >= 0 && !b.known(x_zero_point)) {
    if (!b.typed(x_zero_point) || shape_numel(b.val(x_zero_point).shape) != 1 || !is_8bit(b.val(x_zero_point).dtype))
      return unsupported(label + " x_zero_point is not an 8-bit scalar");
    TANDEM_ASSIGN_OR_RETURN(x_zp_value, b.require(x_zero_point, Layout::plain));
  } else {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> xz, known_zero_points(b, x_zero_point, 1, label + " x_zero_point"));
    c.x_zero_point = xz[0];
  }
  c.weights.assign(w8.data<int8_t>(), w8.data<int8_t>() + w8.numel());
  c.factors.assign(static_cast<size_t>(ws[0]), 1.0);
  c.pad_top = pads_begin[0];
  c.pad_left = pads_begin[1];
  TANDEM_ASSIGN_OR_RETURN(c.src, b.require(x, Layout::nhwc));
  if (x_zp_value >= 0 && b.val(x_zp_value).dtype != b.val(c.src).dtype)
    return unsupported(label + " x_zero_point's type differs from x's");
  c.out = out;
  return add_narrow_kernel(b, std::move(c), xs, ws, dst, &tail, x_zp_value);
}

}  // namespace tandem::cpu
