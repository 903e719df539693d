// qtable.cpp: the byte lookup tables of the quantized contrib kernels (qtable.h).
#include "backends/cpu/qtable.h"

#include <immintrin.h>

#include <algorithm>
#include <array>

#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

constexpr std::array<uint8_t, 256> make_bytes() {
  std::array<uint8_t, 256> b{};
  for (int i = 0; i < 256; ++i) b[static_cast<size_t>(i)] = static_cast<uint8_t>(i);
  return b;
}
alignas(64) constexpr std::array<uint8_t, 256> kBytes = make_bytes();

void lut_scalar(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table) {
  for (int64_t i = 0; i < n; ++i) y[i] = table[x[i]];
}
// 64 lookups per step: two two-register byte permutes (index bits 0-6) and a blend on bit 7.
__attribute__((target("avx512f,avx512bw,avx512vbmi"))) void lut_vbmi(const uint8_t* x, uint8_t* y, int64_t n,
                                                                      const uint8_t* table) {
  const __m512i t0 = _mm512_loadu_si512(table), t1 = _mm512_loadu_si512(table + 64);
  const __m512i t2 = _mm512_loadu_si512(table + 128), t3 = _mm512_loadu_si512(table + 192);
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const __m512i v = _mm512_loadu_si512(x + i);
    const __m512i low = _mm512_permutex2var_epi8(t0, v, t1), high = _mm512_permutex2var_epi8(t2, v, t3);
    _mm512_storeu_si512(y + i, _mm512_mask_blend_epi8(_mm512_movepi8_mask(v), low, high));
  }
  lut_scalar(x + i, y + i, n - i, table);
}
// 32 lookups per step. VPSHUFB indexes a row of 16 bytes by the low nibble and gives 0 where
// the index has bit 7 set. The low half of the table (rows 0-7) is read with x, the high half
// (rows 8-15) with x ^ 0x80, so each half sees its own bytes below 128 and the other half's
// with bit 7 set. Within a half, row k is wanted when x < 16 (k + 1): x + 112 - 16 k (unsigned,
// saturating) keeps x's low nibble and has bit 7 clear exactly then (row 7 takes x as it is).
// The rows are stored as differences from the row above (D_k = row_k ^ row_(k+1), D_7 = row_7),
// so the XOR over the rows wanted, k = h .. 7, telescopes to row_h.
TANDEM_TARGET_AVX2 void lut_avx2(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table) {
  auto row = [&](int k) { return _mm_loadu_si128(reinterpret_cast<const __m128i*>(table + 16 * k)); };
  __m256i lo[8], hi[8];
  for (int k = 0; k < 8; ++k) {
    lo[k] = _mm256_broadcastsi128_si256(k < 7 ? _mm_xor_si128(row(k), row(k + 1)) : row(k));
    hi[k] = _mm256_broadcastsi128_si256(k < 7 ? _mm_xor_si128(row(8 + k), row(9 + k)) : row(8 + k));
  }
  const __m256i top = _mm256_set1_epi8(static_cast<char>(0x80));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i));
    const __m256i w = _mm256_xor_si256(v, top);
    __m256i r = _mm256_xor_si256(_mm256_shuffle_epi8(lo[7], v), _mm256_shuffle_epi8(hi[7], w));
    for (int k = 0; k < 7; ++k) {
      const __m256i c = _mm256_set1_epi8(static_cast<char>(112 - 16 * k));
      r = _mm256_xor_si256(r, _mm256_shuffle_epi8(lo[k], _mm256_adds_epu8(v, c)));
      r = _mm256_xor_si256(r, _mm256_shuffle_epi8(hi[k], _mm256_adds_epu8(w, c)));
    }
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), r);
  }
  lut_scalar(x + i, y + i, n - i, table);
}

void pair_map_scalar(const uint8_t* a, const uint8_t* b, uint8_t* c, int64_t n, const uint8_t* table) {
  for (int64_t i = 0; i < n; ++i) c[i] = table[(static_cast<uint32_t>(a[i]) << 8) | b[i]];
}
// 16 lookups per step: a 4-byte gather at each pair's index (the table is padded), low bytes kept.
TANDEM_TARGET_AVX512 void pair_map_avx512(const uint8_t* a, const uint8_t* b, uint8_t* c, int64_t n,
                                          const uint8_t* table) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    // Zero-masked forms: the unmasked ones start from an undefined register GCC warns about.
    const __m512i va = _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m512i vb = _mm512_maskz_cvtepu8_epi32(0xFFFF, _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    const __m512i idx = _mm512_or_si512(_mm512_maskz_slli_epi32(0xFFFF, va, 8), vb);
    const __m512i got = _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xFFFF, idx, table, 1);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(c + i), _mm512_maskz_cvtepi32_epi8(0xFFFF, got));
  }
  pair_map_scalar(a + i, b + i, c + i, n - i, table);
}

void planar_scalar(const uint8_t* x, float* y, int64_t pixels, int64_t channels, const float* table, int64_t p0,
                   int64_t p1) {
  constexpr int64_t kRun = 64;  // pixels per pass over the channels (their bytes stay in L1)
  for (int64_t b = p0; b < p1; b += kRun) {
    const int64_t e = std::min(p1, b + kRun);
    for (int64_t c = 0; c < channels; ++c) {
      float* out = y + c * pixels;
      for (int64_t p = b; p < e; ++p) out[p] = table[x[p * channels + c]];
    }
  }
}
// 16 pixels per step: a 4-byte gather of each pixel's channel byte (kept low), then a gather
// from the float table. The byte gathers read 3 bytes past the channel, so the last pixel
// block goes to the scalar loop.
TANDEM_TARGET_AVX512 void planar_avx512(const uint8_t* x, float* y, int64_t pixels, int64_t channels,
                                        const float* table, int64_t p0, int64_t p1) {
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  const __m512i offsets = _mm512_mullo_epi32(lane, _mm512_set1_epi32(static_cast<int32_t>(channels)));
  const __m512i low = _mm512_set1_epi32(0xFF);
  // Tiles of up to 256 pixels: their bytes stay in L1 while each channel's outputs are written
  // as one contiguous run.
  const int64_t vector_end = std::min(p1, pixels - 1) - 16 + 1;  // last p with p + 16 < pixels
  int64_t p = p0;
  while (p < vector_end) {
    const int64_t tile_end = std::min(vector_end, p + 256);
    for (int64_t c = 0; c < channels; ++c) {
      float* out = y + c * pixels;
      for (int64_t q = p; q < tile_end; q += 16) {
        const __m512i got =
            _mm512_mask_i32gather_epi32(_mm512_setzero_si512(), 0xFFFF, offsets, x + q * channels + c, 1);
        const __m512i idx = _mm512_and_si512(got, low);
        _mm512_storeu_ps(out + q, _mm512_mask_i32gather_ps(_mm512_setzero_ps(), 0xFFFF, idx, table, 4));
      }
    }
    p += ((tile_end - p + 15) / 16) * 16;
  }
  planar_scalar(x, y, pixels, channels, table, p, p1);
}

// The AVX2 form of planar_avx512: 8 pixels per step.
TANDEM_TARGET_AVX2 void planar_avx2(const uint8_t* x, float* y, int64_t pixels, int64_t channels, const float* table,
                                    int64_t p0, int64_t p1) {
  const __m256i offsets =
      _mm256_mullo_epi32(_mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7), _mm256_set1_epi32(static_cast<int32_t>(channels)));
  const __m256i low = _mm256_set1_epi32(0xFF);
  const int64_t vector_end = std::min(p1, pixels - 1) - 8 + 1;  // last p with p + 8 < pixels
  int64_t p = p0;
  while (p < vector_end) {
    const int64_t tile_end = std::min(vector_end, p + 256);
    for (int64_t c = 0; c < channels; ++c) {
      float* out = y + c * pixels;
      for (int64_t q = p; q < tile_end; q += 8) {
        const __m256i got = _mm256_i32gather_epi32(reinterpret_cast<const int*>(x + q * channels + c), offsets, 1);
        _mm256_storeu_ps(out + q, _mm256_i32gather_ps(table, _mm256_and_si256(got, low), 4));
      }
    }
    p += ((tile_end - p + 7) / 8) * 8;
  }
  planar_scalar(x, y, pixels, channels, table, p, p1);
}

}  // namespace

void lut_to_planar_float(const uint8_t* x, float* y, int64_t pixels, int64_t channels, const float* table,
                         int64_t p_begin, int64_t p_end) {
  static const int level = cpu_isa_level();
  if (level >= 2 && channels >= 4 && pixels * channels < (int64_t{1} << 31)) {
    planar_avx512(x, y, pixels, channels, table, p_begin, p_end);
  } else if (level == 1 && channels >= 4 && pixels * channels < (int64_t{1} << 31)) {
    planar_avx2(x, y, pixels, channels, table, p_begin, p_end);
  } else {
    planar_scalar(x, y, pixels, channels, table, p_begin, p_end);
  }
}

const uint8_t* all_bytes() { return kBytes.data(); }

void lut_map(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table) {
  static const int level = cpu_isa_level();
  if (has_vbmi()) lut_vbmi(x, y, n, table);
  else if (level >= 1) lut_avx2(x, y, n, table);
  else lut_scalar(x, y, n, table);
}

bool is_identity(const uint8_t* table) {
  for (int v = 0; v < 256; ++v)
    if (table[v] != v) return false;
  return true;
}

void pair_map(const uint8_t* a, const uint8_t* b, uint8_t* c, int64_t n, const uint8_t* table) {
  static const int level = cpu_isa_level();
  if (level >= 2) pair_map_avx512(a, b, c, n, table);
  else pair_map_scalar(a, b, c, n, table);
}

}  // namespace tandem::cpu
