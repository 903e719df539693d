// deconv_patch.cpp: the backend's own ConvTranspose for non-overlapping patches
// (deconv_patch.h): AVX-512 or AVX2 accumulation of each input pixel's k x k x O patch, a portable path,
// the store into the blocked or plain output, and the kernel that runs one stage or two
// (the chained second stage: deconv_chain.cpp).
#include "backends/cpu/deconv_patch.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/cast.h"
#include "backends/cpu/deconv_chain.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

using deconv::chain_row;
using deconv::chain_row_bf16;
using deconv::chain_row_lanes;
using deconv::chain_takes_lanes;
using deconv::MidRow;
using deconv::pair_at;
using deconv::PatchDeconv;

// Pixel (n, y, x)'s channels from cb * block on, and the step between neighbouring pixels'
// channels: in blocks of `block` lanes, or channels-last.
inline const float* in_pixel(const PatchDeconv& p, const float* in, int64_t n, int64_t cb, int64_t y, int64_t x,
                             int64_t block) {
  if (p.nhwc_in) return in + ((n * p.H + y) * p.W + x) * p.C + cb * block;
  return in + (((n * ((p.C + block - 1) / block) + cb) * p.H + y) * p.W + x) * block;
}
inline int64_t in_pixel_step(const PatchDeconv& p, int64_t block) { return p.nhwc_in ? p.C : block; }

// P pixels x V vectors of accumulators; the weights are padded to whole 16-channel blocks.
template <int V, int P>
__attribute__((target("avx512f"), always_inline)) inline void patch_px(const PatchDeconv& p, const float* in, int64_t n,
                                                                      int64_t y, int64_t x0, float* acc_row) {
  const int64_t cbc = (p.C + 15) / 16;
  const float* bp = p.bias.data<float>();
  const float* wbase = p.wp.data<float>();
  __m512 a[P][V];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) a[q][v] = _mm512_loadu_ps(bp + 16 * v);
  const int64_t step = in_pixel_step(p, 16);
  for (int64_t cb = 0; cb < cbc; ++cb) {
    const float* px = in_pixel(p, in, n, cb, y, x0, 16);
    const float* w = wbase + cb * 16 * (V * 16);
    const int lanes = static_cast<int>(std::min<int64_t>(16, p.C - cb * 16));  // the last block's real channels
    for (int l = 0; l < lanes; ++l) {
      __m512 wv[V];
      for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_ps(w + l * V * 16 + 16 * v);
      for (int q = 0; q < P; ++q) {
        const __m512 b = _mm512_set1_ps(px[q * step + l]);
        for (int v = 0; v < V; ++v) a[q][v] = _mm512_fmadd_ps(b, wv[v], a[q][v]);
      }
    }
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc_row + (x0 + q) * V * 16 + 16 * v, a[q][v]);
}

template <int V>
__attribute__((target("avx512f"), always_inline)) inline void patch_row_v(const PatchDeconv& p, const float* in,
                                                                         int64_t n, int64_t y, float* acc_row) {
  // Pixels per step: as many as the 32 vector registers hold (P x V accumulators, V weights and
  // a broadcast), up to 8; each weight load then serves P pixels.
  constexpr int P = std::min(8, std::max(1, (30 - V) / V));
  int64_t x = 0;
  for (; x + P <= p.W; x += P) patch_px<V, P>(p, in, n, y, x, acc_row);
  for (; x < p.W; ++x) patch_px<V, 1>(p, in, n, y, x, acc_row);
}

__attribute__((target("avx512f"))) void patch_row_avx512(const PatchDeconv& p, const float* in, int64_t n, int64_t y,
                                                         float* acc_row) {
  switch (p.M / 16) {
    case 1: patch_row_v<1>(p, in, n, y, acc_row); return;
    case 2: patch_row_v<2>(p, in, n, y, acc_row); return;
    case 3: patch_row_v<3>(p, in, n, y, acc_row); return;
    case 4: patch_row_v<4>(p, in, n, y, acc_row); return;
    case 5: patch_row_v<5>(p, in, n, y, acc_row); return;
    case 6: patch_row_v<6>(p, in, n, y, acc_row); return;
    case 7: patch_row_v<7>(p, in, n, y, acc_row); return;
    default: patch_row_v<8>(p, in, n, y, acc_row); return;
  }
}

// AVX2 (8-channel input blocks): the accumulators of P pixels x V vectors for the columns
// [m0, m0 + 8V) of M; 16 registers hold P x V accumulators, V weights and a broadcast.
template <int V, int P>
__attribute__((target("avx2,fma"), always_inline)) inline void patch_px_avx2(const PatchDeconv& p, const float* in,
                                                                            int64_t n, int64_t y, int64_t x0,
                                                                            int64_t m0, float* acc_row) {
  const int64_t cbc = (p.C + 7) / 8;
  const float* bp = p.bias.data<float>() + m0;
  const float* wbase = p.wp.data<float>() + m0;
  __m256 a[P][V];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) a[q][v] = _mm256_loadu_ps(bp + 8 * v);
  const int64_t step = in_pixel_step(p, 8);
  for (int64_t cb = 0; cb < cbc; ++cb) {
    const float* px = in_pixel(p, in, n, cb, y, x0, 8);
    const int lanes = static_cast<int>(std::min<int64_t>(8, p.C - cb * 8));  // the last block's real channels
    for (int l = 0; l < lanes; ++l) {
      const float* w = wbase + (cb * 8 + l) * p.M;
      __m256 wv[V];
      for (int v = 0; v < V; ++v) wv[v] = _mm256_loadu_ps(w + 8 * v);
      for (int q = 0; q < P; ++q) {
        const __m256 b = _mm256_broadcast_ss(px + q * step + l);
        for (int v = 0; v < V; ++v) a[q][v] = _mm256_fmadd_ps(b, wv[v], a[q][v]);
      }
    }
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) _mm256_storeu_ps(acc_row + (x0 + q) * p.M + m0 + 8 * v, a[q][v]);
}

template <int V, int P>
__attribute__((target("avx2,fma"), always_inline)) inline void patch_cols_avx2(const PatchDeconv& p, const float* in,
                                                                              int64_t n, int64_t y, int64_t m0,
                                                                              float* acc_row) {
  int64_t x = 0;
  for (; x + P <= p.W; x += P) patch_px_avx2<V, P>(p, in, n, y, x, m0, acc_row);
  for (; x < p.W; ++x) patch_px_avx2<V, 1>(p, in, n, y, x, m0, acc_row);
}

// M (a multiple of 16) in chunks of two vectors, six pixels at a time.
__attribute__((target("avx2,fma"))) void patch_row_avx2(const PatchDeconv& p, const float* in, int64_t n, int64_t y,
                                                       float* acc_row) {
  for (int64_t m0 = 0; m0 < p.M; m0 += 16) patch_cols_avx2<2, 6>(p, in, n, y, m0, acc_row);
}

// Portable path (the baseline, and M > 128 on AVX-512), compiled per ISA level; the input's channel block
// is `lanes` (channel_block()).
TANDEM_ISA_BODY void patch_row_generic_body(const PatchDeconv& p, const float* in, int64_t n, int64_t y,
                                            float* acc_row, int64_t lanes) {
  const float* bias = p.bias.data<float>();
  for (int64_t xx = 0; xx < p.W; ++xx) {
    float* acc = acc_row + xx * p.M;
    for (int64_t m = 0; m < p.M; ++m) acc[m] = bias[m];
    for (int64_t c = 0; c < p.C; ++c) {
      const float v = in_pixel(p, in, n, c / lanes, y, xx, lanes)[c % lanes];
      const float* w = p.wp.data<float>() + c * p.M;
      for (int64_t m = 0; m < p.M; ++m) acc[m] += v * w[m];
    }
  }
}
TANDEM_ISA_DISPATCH(patch_row_generic,
                    (const PatchDeconv& p, const float* in, int64_t n, int64_t y, float* acc_row, int64_t lanes),
                    (p, in, n, y, acc_row, lanes))

void patch_row(const PatchDeconv& p, const float* in, int64_t n, int64_t y, float* acc_row) {
  static const bool avx512 = cpu_isa_level() >= 2;
  static const bool avx2 = cpu_isa_level() == 1;  // 8-channel input blocks
  if (avx512 && p.M <= 128) patch_row_avx512(p, in, n, y, acc_row);
  else if (avx2) patch_row_avx2(p, in, n, y, acc_row);
  else patch_row_generic(p, in, n, y, acc_row, channel_block());
}

// bf16 products (AVX512_BF16): one input row's channels as bfloat16, [channel block][W][16]
// (cb_stride elements between blocks), the weight as channel pairs; each vdpbf16ps adds two
// channels' products to 16 accumulators.

template <int V, int P>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void patch_px_bf16(const PatchDeconv& p,
                                                                                      const uint16_t* row,
                                                                                      int64_t cb_stride, int64_t x0,
                                                                                      float* acc_row) {
  const int64_t cbc = (p.C + 15) / 16;
  const float* bp = p.bias.data<float>();
  const uint16_t* wbase = static_cast<const uint16_t*>(p.wpb.raw_data());
  __m512 a[P][V];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) a[q][v] = _mm512_loadu_ps(bp + 16 * v);
  for (int64_t cb = 0; cb < cbc; ++cb) {
    const uint16_t* px = row + cb * cb_stride + x0 * 16;
    const uint16_t* w = wbase + cb * 8 * (V * 32);
    const int pairs = static_cast<int>((std::min<int64_t>(16, p.C - cb * 16) + 1) / 2);  // the last block's real pairs
    for (int l = 0; l < pairs; ++l) {
      __m512i wv[V];
      for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + l * V * 32 + 32 * v);
      for (int q = 0; q < P; ++q) {
        const __m512i b = _mm512_set1_epi32(static_cast<int>(pair_at(px + q * 16 + 2 * l)));
        for (int v = 0; v < V; ++v) a[q][v] = _mm512_dpbf16_ps(a[q][v], (__m512bh)b, (__m512bh)wv[v]);
      }
    }
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc_row + (x0 + q) * V * 16 + 16 * v, a[q][v]);
}

template <int V>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void patch_row_bf16_v(const PatchDeconv& p,
                                                                                         const uint16_t* row,
                                                                                         int64_t cb_stride,
                                                                                         float* acc_row) {
  constexpr int P = std::min(8, std::max(1, (30 - V) / V));
  int64_t x = 0;
  for (; x + P <= p.W; x += P) patch_px_bf16<V, P>(p, row, cb_stride, x, acc_row);
  for (; x < p.W; ++x) patch_px_bf16<V, 1>(p, row, cb_stride, x, acc_row);
}

__attribute__((target("avx512f,avx512bf16"))) void patch_row_bf16(const PatchDeconv& p, const uint16_t* row,
                                                                  int64_t cb_stride, float* acc_row) {
  switch (p.M / 16) {
    case 1: patch_row_bf16_v<1>(p, row, cb_stride, acc_row); return;
    case 2: patch_row_bf16_v<2>(p, row, cb_stride, acc_row); return;
    case 3: patch_row_bf16_v<3>(p, row, cb_stride, acc_row); return;
    case 4: patch_row_bf16_v<4>(p, row, cb_stride, acc_row); return;
    case 5: patch_row_bf16_v<5>(p, row, cb_stride, acc_row); return;
    case 6: patch_row_bf16_v<6>(p, row, cb_stride, acc_row); return;
    case 7: patch_row_bf16_v<7>(p, row, cb_stride, acc_row); return;
    default: patch_row_bf16_v<8>(p, row, cb_stride, acc_row); return;
  }
}

// Writes one input row's patches (after the pointwise program) to output rows y * k .. y * k +
// k - 1 of image n of an output OH rows high.
TANDEM_ISA_BODY void patch_store_any_body(const PatchDeconv& p, float* acc_row, float* o, int64_t n, int64_t y,
                                          int64_t OH) {
  const int64_t OW = p.W * p.k, k = p.k, O = p.O;
  if (p.blocked_out) {
    const int64_t lanes = channel_block();
    const int64_t ob_count = round_up(O, lanes) / lanes;
    for (int64_t xx = 0; xx < p.W; ++xx) {
      const float* acc = acc_row + xx * p.M;
      for (int64_t i = 0; i < k; ++i)
        for (int64_t j = 0; j < k; ++j) {
          const float* src = acc + (i * k + j) * O;
          for (int64_t ob = 0; ob < ob_count; ++ob) {
            float* d = o + (((n * ob_count + ob) * OH + y * k + i) * OW + xx * k + j) * lanes;
            const int64_t real = std::min<int64_t>(lanes, O - ob * lanes);
            for (int64_t l = 0; l < real; ++l) d[l] = src[ob * lanes + l];
            for (int64_t l = real; l < lanes; ++l) d[l] = 0.0f;  // channel padding stays zero
          }
        }
    }
  } else {
    for (int64_t oc = 0; oc < O; ++oc)
      for (int64_t i = 0; i < k; ++i) {
        float* d = o + ((n * O + oc) * OH + y * k + i) * OW;
        const float* src = acc_row + (oc * k + i) * k;
        if (k == 2) {  // the common upsampling kernel: one 8-byte move per pixel
          for (int64_t xx = 0; xx < p.W; ++xx) std::memcpy(d + xx * 2, src + xx * p.M, 2 * sizeof(float));
          continue;
        }
        for (int64_t xx = 0; xx < p.W; ++xx)
          for (int64_t j = 0; j < k; ++j) d[xx * k + j] = src[xx * p.M + j];
      }
  }
}
TANDEM_ISA_DISPATCH(patch_store_any,
                    (const PatchDeconv& p, float* acc_row, float* o, int64_t n, int64_t y, int64_t OH),
                    (p, acc_row, o, n, y, OH))

// AVX-512 store into 16-lane blocks: output row by output row (for each channel block and patch
// row i, the row's patches in order), one masked load of a patch pixel's real channels (the
// padding lanes read as zeros) and one full store each.
TANDEM_TARGET_AVX512 void patch_store_blocked16(const PatchDeconv& p, const float* acc_row, float* o, int64_t n,
                                                int64_t y, int64_t OH) {
  const int64_t OW = p.W * p.k, k = p.k, O = p.O;
  const int64_t ob_count = (O + 15) / 16;
  for (int64_t ob = 0; ob < ob_count; ++ob) {
    const __mmask16 real = static_cast<__mmask16>((1u << std::min<int64_t>(16, O - ob * 16)) - 1u);
    for (int64_t i = 0; i < k; ++i) {
      float* row = o + ((n * ob_count + ob) * OH + y * k + i) * OW * 16;
      for (int64_t xx = 0; xx < p.W; ++xx)
        for (int64_t j = 0; j < k; ++j)
          _mm512_storeu_ps(row + (xx * k + j) * 16,
                           _mm512_maskz_loadu_ps(real, acc_row + xx * p.M + (i * k + j) * O + ob * 16));
    }
  }
}

void patch_store(const PatchDeconv& p, float* acc_row, float* o, int64_t n, int64_t y, int64_t OH) {
  static const bool blocks16 = cpu_isa_level() >= 2 && channel_block() == 16;
  if (p.blocked_out && blocks16) patch_store_blocked16(p, acc_row, o, n, y, OH);
  else patch_store_any(p, acc_row, o, n, y, OH);
}

// One row of a stage's accumulators through the stage's program and into output rows
// y_out * k .. of image n_out of an output OH rows high.
void patch_finish_row(const PatchDeconv& p, float* acc, float* o, int64_t n_out, int64_t y_out, int64_t OH) {
  // A blocked output takes the program on the accumulators (its channel padding is then
  // zeroed); a plain one on the output rows, where no lane is padding.
  if (!p.post.empty() && p.blocked_out) ew_apply_pointwise(p.post, acc, p.W * p.M);
  patch_store(p, acc, o, n_out, y_out, OH);
  if (!p.post.empty() && !p.blocked_out) {
    const int64_t OW = p.W * p.k;
    for (int64_t oc = 0; oc < p.O; ++oc)
      ew_apply_pointwise(p.post, o + ((n_out * p.O + oc) * OH + y_out * p.k) * OW, p.k * OW);
  }
}

class PatchDeconvKernel final : public Kernel {
 public:
  int x = -1, out = -1;
  PatchDeconv p;
  // Chained: `p2` reads the first stage's output row by row from the first's accumulators
  // (MidRow; p2.W = p.W * p.k, p2.C = p.O); `out` is p2's output.
  bool chained = false;
  PatchDeconv p2;
  bool src_bf16 = false;       // the source is blocked and held in bfloat16 (p.bf16)
  int64_t scratch_floats = 0;  // per thread

  Status run(RunCtx& ctx, KernelState*) const override {
    const float* in = static_cast<const float*>(ctx.ptr[x]);
    const auto* in16 = static_cast<const uint16_t*>(ctx.ptr[x]);
    float* o = static_cast<float*>(ctx.ptr[out]);
    const int64_t rows = p.N * p.H;
    const int64_t cbc = (p.C + 15) / 16;
    const int64_t work = rows * p.W * p.C * p.M + (chained ? rows * p.k * p2.W * p2.C * p2.M : 0);
    const int threads = work < (1 << 20) ? 1 : ctx.threads;
    float* scratch = static_cast<float*>(ctx.scratch);
    const bool lanes = chained && chain_takes_lanes(p2);
    parallel_range(threads, rows, 1, [&](int64_t b, int64_t e) {
      const int64_t slot = omp_get_thread_num() % std::max(ctx.threads, 1);  // also inside a caller's team
      float* acc = scratch + slot * scratch_floats;
      float* acc2 = acc + p.W * p.M;
      // bf16 products: the source row ([cb][W][16]) and the first stage's rounded row.
      auto* row16 = reinterpret_cast<uint16_t*>(acc2 + (chained ? p2.W * p2.M : 0));
      uint16_t* mid16 = row16 + (src_bf16 ? 0 : cbc * p.W * 16);
      for (int64_t r = b; r < e; ++r) {
        const int64_t n = r / p.H, y = r % p.H;
        if (p.bf16 && src_bf16) {
          patch_row_bf16(p, in16 + (n * cbc * p.H + y) * p.W * 16, p.H * p.W * 16, acc);
        } else if (p.bf16) {
          for (int64_t cb = 0; cb < cbc; ++cb)
            narrow_to_bf16(in_pixel(p, in, n, cb, y, 0, 16), row16 + cb * p.W * 16, p.W * 16);
          patch_row_bf16(p, row16, p.W * 16, acc);
        } else {
          patch_row(p, in, n, y, acc);
        }
        if (!chained) {
          patch_finish_row(p, acc, o, n, y, p.H * p.k);
          continue;
        }
        if (!p.post.empty()) ew_apply_pointwise(p.post, acc, p.W * p.M);
        if (p2.bf16) narrow_to_bf16(acc, mid16, p.W * p.M);
        for (int64_t i = 0; i < p.k; ++i) {
          const MidRow mid{acc, p.M, p.k, p.O, i};
          if (lanes) {
            chain_row_lanes(p2, mid, o, n, y * p.k + i, p.H * p.k * p2.k);
            continue;
          }
          if (p2.bf16) chain_row_bf16(p2, mid16, mid, acc2);
          else chain_row(p2, mid, acc2);
          patch_finish_row(p2, acc2, o, n, y * p.k + i, p.H * p.k * p2.k);
        }
      }
    });
    return Status::ok();
  }
};

// Packs one stage's weight [C][O][k][k] as [C rounded to 16][M] and its bias as [M], in the
// order of the accumulators: m = (i, j, o) for a blocked output or the first of a chained pair,
// (o, i, j) for a plain output. With bf16 products also as bfloat16 channel pairs,
// [C rounded to 16 / 2][M][2].
void pack_stage(PatchDeconv* kr, const PatchStage& s, bool chained_first, bool bf16) {
  const int64_t C = kr->C, O = s.O, k = s.k;
  kr->O = O;
  kr->k = k;
  kr->blocked_out = O >= 8 || chained_first;
  kr->M = round_up(O * k * k, 16);
  const int64_t rows = round_up(C, 16);
  kr->wp = Tensor(DataType::float32, {rows, kr->M});  // zero rows pad the last block
  kr->bias = Tensor(DataType::float32, {kr->M});
  const float* wsrc = s.weight->data<float>();
  float* wdst = kr->wp.data<float>();
  float* bdst = kr->bias.data<float>();
  const bool has_bias = s.bias && s.bias->defined();
  for (int64_t oc = 0; oc < O; ++oc)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        const int64_t m = kr->blocked_out ? (i * k + j) * O + oc : (oc * k + i) * k + j;
        for (int64_t c = 0; c < C; ++c) wdst[c * kr->M + m] = wsrc[((c * O + oc) * k + i) * k + j];
        bdst[m] = has_bias ? s.bias->data<float>()[oc] : 0.0f;
      }
  kr->post = *s.post;
  kr->bf16 = bf16;
  if (!bf16) return;
  std::vector<float> pairs(static_cast<size_t>(rows * kr->M));
  for (int64_t c = 0; c < rows; ++c)
    for (int64_t m = 0; m < kr->M; ++m) pairs[static_cast<size_t>(((c / 2) * kr->M + m) * 2 + c % 2)] = wdst[c * kr->M + m];
  kr->wpb = Tensor(DataType::bfloat16, {rows * kr->M});
  narrow_to_bf16(pairs.data(), static_cast<uint16_t*>(kr->wpb.raw_data()), rows * kr->M);
}

}  // namespace

bool patch_computes_bf16(int64_t out_channels, int64_t k, int64_t out_channels2, int64_t k2) {
  return has_native_bf16() && channel_block() == 16 && out_channels > 0 && k > 0 &&
         round_up(out_channels * k * k, 16) <= 128 && (out_channels2 <= 0 || round_up(out_channels2 * k2 * k2, 16) <= 128) &&
         feature_enabled_now("BF16_DECONV");
}

Status add_patch_deconv(Builder& b, int src, int out, const Shape& xs, const PatchStage& first,
                        const PatchStage* second, const std::string& label, bool bf16) {
  auto kernel = std::make_unique<PatchDeconvKernel>();
  PatchDeconv* kr = &kernel->p;
  kr->N = xs[0];
  kr->C = xs[1];
  kr->H = xs[2];
  kr->W = xs[3];
  const IValue& sv = b.val(src);
  kr->nhwc_in = sv.layout == Layout::nhwc;
  kernel->src_bf16 = sv.dtype == DataType::bfloat16;
  // bf16 products read a blocked source (rounded row by row, or held in bfloat16).
  bf16 = bf16 && sv.layout == Layout::blocked &&
         patch_computes_bf16(first.O, first.k, second ? second->O : 0, second ? second->k : 0);
  if (kernel->src_bf16 && !bf16) return internal_error(label + " a bfloat16 source without bf16 products");
  pack_stage(kr, first, second != nullptr, bf16);
  kernel->scratch_floats = kr->W * kr->M;
  double work = static_cast<double>(shape_numel(xs)) * static_cast<double>(kr->M);
  bool blocked_out = kr->blocked_out;
  int64_t bf16_halves = bf16 && !kernel->src_bf16 ? ((kr->C + 15) / 16) * kr->W * 16 : 0;  // the source row
  if (second) {
    PatchDeconv* k2 = &kernel->p2;
    kernel->chained = true;
    k2->N = 1;
    k2->C = first.O;
    k2->H = 1;
    k2->W = kr->W * first.k;
    // The chained stage's pairs must not reach into a neighbouring pixel: an even channel count.
    pack_stage(k2, *second, false, bf16 && first.O % 2 == 0);
    kernel->scratch_floats += k2->W * k2->M;
    if (k2->bf16) bf16_halves += kr->W * kr->M;  // the first stage's rounded row
    work += static_cast<double>(kr->N * kr->H * first.k * k2->W * k2->C) * static_cast<double>(k2->M);
    blocked_out = k2->blocked_out;
  }
  kernel->scratch_floats += (bf16_halves + 1) / 2;
  kernel->x = src;
  kernel->out = out;
  kernel->label = bf16 ? label + (kernel->src_bf16 ? " (bf16 products, source handed off)" : " (bf16 products)") : label;
  if (second && chain_takes_lanes(kernel->p2)) kernel->label += " (second stage: pixels across the lanes)";
  b.define(out, blocked_out ? Layout::blocked : Layout::plain);
  b.need_scratch(static_cast<int64_t>(b.threads()) * kernel->scratch_floats * static_cast<int64_t>(sizeof(float)));
  b.add_work(bf16 ? work / 2 : work);
  kernel->reads = {src};
  kernel->writes = {out};
  b.add_kernel(std::move(kernel));
  return Status::ok();
}

}  // namespace tandem::cpu
