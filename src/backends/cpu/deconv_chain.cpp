// deconv_chain.cpp: the second of two chained patch ConvTransposes (deconv_chain.h): it reads
// each row of the first stage's patches from the first's accumulators in the thread's
// scratchpad, so the first's output is never written to memory.
#include "backends/cpu/deconv_chain.h"

#include <immintrin.h>

#include <algorithm>

#include "backends/cpu/op_family.h"
#include "backends/cpu/transpose16.h"

namespace tandem::cpu::deconv {


template <int V, int P>
__attribute__((target("avx512f"), always_inline)) inline void chain_px(const PatchDeconv& p, const MidRow& mid,
                                                                      int64_t X0, float* acc_row) {
  const float* px[P];
  for (int q = 0; q < P; ++q) px[q] = mid.pixel(X0 + q);
  const float* bp = p.bias.data<float>();
  const float* w = p.wp.data<float>();
  __m512 a[P][V];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) a[q][v] = _mm512_loadu_ps(bp + 16 * v);
  for (int64_t c = 0; c < p.C; ++c, w += V * 16) {
    __m512 wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_ps(w + 16 * v);
    for (int q = 0; q < P; ++q) {
      const __m512 b = _mm512_set1_ps(px[q][c]);
      for (int v = 0; v < V; ++v) a[q][v] = _mm512_fmadd_ps(b, wv[v], a[q][v]);
    }
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc_row + (X0 + q) * V * 16 + 16 * v, a[q][v]);
}

template <int V>
__attribute__((target("avx512f"), always_inline)) inline void chain_row_v(const PatchDeconv& p, const MidRow& mid,
                                                                         float* acc_row) {
  constexpr int P = std::min(8, std::max(1, (30 - V) / V));
  int64_t x = 0;
  for (; x + P <= p.W; x += P) chain_px<V, P>(p, mid, x, acc_row);
  for (; x < p.W; ++x) chain_px<V, 1>(p, mid, x, acc_row);
}

__attribute__((target("avx512f"))) void chain_row_avx512(const PatchDeconv& p, const MidRow& mid, float* acc_row) {
  switch (p.M / 16) {
    case 1: chain_row_v<1>(p, mid, acc_row); return;
    case 2: chain_row_v<2>(p, mid, acc_row); return;
    case 3: chain_row_v<3>(p, mid, acc_row); return;
    case 4: chain_row_v<4>(p, mid, acc_row); return;
    case 5: chain_row_v<5>(p, mid, acc_row); return;
    case 6: chain_row_v<6>(p, mid, acc_row); return;
    case 7: chain_row_v<7>(p, mid, acc_row); return;
    default: chain_row_v<8>(p, mid, acc_row); return;
  }
}

// The chained stage when it computes few values per pixel (T = O k^2 <= 8 taps, a plain output:
// a text-detection head's last ConvTranspose of one channel computes 4): 16 pixels of the middle
// row across the lanes and one accumulator per tap, where the layout above fills M = 16 lanes
// per pixel with T real ones. The pixels' channels are transposed into channel rows 16 at a
// time; each row then meets each tap's weight, broadcast. The taps are written to output rows
// y * k .. y * k + k - 1 of image n (OH rows high) and the program runs over those rows.
template <int T>
__attribute__((target("avx512f"))) void chain_row_lanes_t(const PatchDeconv& p, const MidRow& mid, float* o, int64_t n,
                                                          int64_t y, int64_t OH) {
  const int64_t k = p.k, OW = p.W * k, C = p.C;
  const float* w = p.wp.data<float>();  // [C][M], tap t at column t
  const float* bias = p.bias.data<float>();
  const __m512i lo_pairs = _mm512_set_epi32(23, 7, 22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
  const __m512i hi_pairs = _mm512_set_epi32(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8);
  for (int64_t X0 = 0; X0 < p.W; X0 += 16) {
    const int64_t np = std::min<int64_t>(16, p.W - X0);
    __m512 acc[T];
    for (int t = 0; t < T; ++t) acc[t] = _mm512_set1_ps(bias[t]);
    for (int64_t c0 = 0; c0 < C; c0 += 16) {
      const int64_t nc = std::min<int64_t>(16, C - c0);
      const __mmask16 lanes = static_cast<__mmask16>((1u << nc) - 1u);
      __m512i v[16];
      // Pixel X lies at acc1 + (X / k1) * M1 + (i * k1 + X % k1) * O1 (MidRow::pixel), walked
      // without a division per pixel.
      const float* first = mid.pixel(X0) + c0;
      int64_t j = X0 % mid.k1, step = 0;
      for (int q = 0; q < 16; ++q) {
        v[q] = q < np ? _mm512_castps_si512(_mm512_maskz_loadu_ps(lanes, first + step)) : _mm512_setzero_si512();
        step += ++j < mid.k1 ? mid.O1 : mid.M1 - (mid.k1 - 1) * mid.O1;
        j = j < mid.k1 ? j : 0;
      }
      transpose16(v);  // v[c]: channel c0 + c of the 16 pixels
      for (int64_t c = 0; c < nc; ++c) {
        const float* wc = w + (c0 + c) * p.M;
        for (int t = 0; t < T; ++t) acc[t] = _mm512_fmadd_ps(_mm512_castsi512_ps(v[c]), _mm512_set1_ps(wc[t]), acc[t]);
      }
    }
    // Tap t = (oc, i, j) goes to output row y * k + i of channel oc, columns (X0 + lane) * k + j.
    alignas(64) float taps[T][16];
    for (int t = 0; t < T; ++t) _mm512_store_ps(taps[t], acc[t]);
    for (int64_t oc = 0; oc < p.O; ++oc)
      for (int64_t i = 0; i < k; ++i) {
        float* d = o + ((n * p.O + oc) * OH + y * k + i) * OW + X0 * k;
        const int64_t t0 = (oc * k + i) * k;
        if (T >= 4 && k == 2 && np == 16) {  // two taps side by side: interleaved by two permutes (k 2: T >= 4)
          const __m512 a = _mm512_load_ps(taps[t0]), b = _mm512_load_ps(taps[t0 + 1]);
          _mm512_storeu_ps(d, _mm512_permutex2var_ps(a, lo_pairs, b));
          _mm512_storeu_ps(d + 16, _mm512_permutex2var_ps(a, hi_pairs, b));
          continue;
        }
        for (int64_t l = 0; l < np; ++l)
          for (int64_t j = 0; j < k; ++j) d[l * k + j] = taps[t0 + j][l];
      }
  }
  if (p.post.empty()) return;
  for (int64_t oc = 0; oc < p.O; ++oc) ew_apply_pointwise(p.post, o + ((n * p.O + oc) * OH + y * k) * OW, k * OW);
}

// True when chain_row_lanes takes the chained stage `p`.
bool chain_takes_lanes(const PatchDeconv& p) {
  return cpu_isa_level() >= 2 && !p.bf16 && !p.blocked_out && p.O * p.k * p.k <= 8;
}

void chain_row_lanes(const PatchDeconv& p, const MidRow& mid, float* o, int64_t n, int64_t y, int64_t OH) {
  switch (p.O * p.k * p.k) {
    case 1: chain_row_lanes_t<1>(p, mid, o, n, y, OH); return;
    case 2: chain_row_lanes_t<2>(p, mid, o, n, y, OH); return;
    case 3: chain_row_lanes_t<3>(p, mid, o, n, y, OH); return;
    case 4: chain_row_lanes_t<4>(p, mid, o, n, y, OH); return;
    case 5: chain_row_lanes_t<5>(p, mid, o, n, y, OH); return;
    case 6: chain_row_lanes_t<6>(p, mid, o, n, y, OH); return;
    case 7: chain_row_lanes_t<7>(p, mid, o, n, y, OH); return;
    default: chain_row_lanes_t<8>(p, mid, o, n, y, OH); return;
  }
}

// The chained stage on bf16 products: the first stage's row, after its program, rounded to
// bfloat16 in `mid16` (the accumulators' layout, so a pixel's channels stay contiguous; a pair
// past the last channel meets a zero weight).
template <int V, int P>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void chain_px_bf16(const PatchDeconv& p,
                                                                                      const uint16_t* mid16,
                                                                                      const MidRow& mid, int64_t X0,
                                                                                      float* acc_row) {
  const uint16_t* px[P];
  for (int q = 0; q < P; ++q) px[q] = mid16 + (mid.pixel(X0 + q) - mid.acc1);
  const float* bp = p.bias.data<float>();
  const uint16_t* w = static_cast<const uint16_t*>(p.wpb.raw_data());
  __m512 a[P][V];
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) a[q][v] = _mm512_loadu_ps(bp + 16 * v);
  const int64_t pairs = (p.C + 1) / 2;
  for (int64_t c = 0; c < pairs; ++c, w += V * 32) {
    __m512i wv[V];
    for (int v = 0; v < V; ++v) wv[v] = _mm512_loadu_si512(w + 32 * v);
    for (int q = 0; q < P; ++q) {
      const __m512i b = _mm512_set1_epi32(static_cast<int>(pair_at(px[q] + 2 * c)));
      for (int v = 0; v < V; ++v) a[q][v] = _mm512_dpbf16_ps(a[q][v], (__m512bh)b, (__m512bh)wv[v]);
    }
  }
  for (int q = 0; q < P; ++q)
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc_row + (X0 + q) * V * 16 + 16 * v, a[q][v]);
}

template <int V>
__attribute__((target("avx512f,avx512bf16"), always_inline)) inline void chain_row_bf16_v(const PatchDeconv& p,
                                                                                         const uint16_t* mid16,
                                                                                         const MidRow& mid,
                                                                                         float* acc_row) {
  constexpr int P = std::min(8, std::max(1, (30 - V) / V));
  int64_t x = 0;
  for (; x + P <= p.W; x += P) chain_px_bf16<V, P>(p, mid16, mid, x, acc_row);
  for (; x < p.W; ++x) chain_px_bf16<V, 1>(p, mid16, mid, x, acc_row);
}

__attribute__((target("avx512f,avx512bf16"))) void chain_row_bf16(const PatchDeconv& p, const uint16_t* mid16,
                                                                  const MidRow& mid, float* acc_row) {
  switch (p.M / 16) {
    case 1: chain_row_bf16_v<1>(p, mid16, mid, acc_row); return;
    case 2: chain_row_bf16_v<2>(p, mid16, mid, acc_row); return;
    case 3: chain_row_bf16_v<3>(p, mid16, mid, acc_row); return;
    case 4: chain_row_bf16_v<4>(p, mid16, mid, acc_row); return;
    case 5: chain_row_bf16_v<5>(p, mid16, mid, acc_row); return;
    case 6: chain_row_bf16_v<6>(p, mid16, mid, acc_row); return;
    case 7: chain_row_bf16_v<7>(p, mid16, mid, acc_row); return;
    default: chain_row_bf16_v<8>(p, mid16, mid, acc_row); return;
  }
}

TANDEM_ISA_BODY void chain_row_generic_body(const PatchDeconv& p, const MidRow& mid, float* acc_row) {
  const float* bias = p.bias.data<float>();
  for (int64_t X = 0; X < p.W; ++X) {
    float* acc = acc_row + X * p.M;
    const float* v = mid.pixel(X);
    for (int64_t m = 0; m < p.M; ++m) acc[m] = bias[m];
    for (int64_t c = 0; c < p.C; ++c) {
      const float* w = p.wp.data<float>() + c * p.M;
      for (int64_t m = 0; m < p.M; ++m) acc[m] += v[c] * w[m];
    }
  }
}
TANDEM_ISA_DISPATCH(chain_row_generic, (const PatchDeconv& p, const MidRow& mid, float* acc_row), (p, mid, acc_row))

void chain_row(const PatchDeconv& p, const MidRow& mid, float* acc_row) {
  static const bool avx512 = cpu_isa_level() >= 2;
  if (avx512 && p.M <= 128) chain_row_avx512(p, mid, acc_row);
  else chain_row_generic(p, mid, acc_row);
}


}  // namespace tandem::cpu::deconv
