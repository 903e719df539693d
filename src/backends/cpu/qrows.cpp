// qrows.cpp: the 8-bit conversions of QuantizeLinear and DequantizeLinear on runs and rows of
// values (int8.h), compiled per ISA level (runtime_env.h). Their results are the reference
// kernels': round(x / scale) with x / scale divided in float32 (the AVX-512 code multiplies by
// the reciprocal and divides wherever that could round differently: RecipQuant below), rounding
// follows the default FP environment (ties to even), NaN quantizes to the zero point, and int32
// data is dequantized in double so that large values are not rounded before the product.
// quantize.cpp's kernels and the elementwise kernel's 8-bit operands and outputs
// (ew_kernel.cpp) call them; also DynamicQuantizeLinear's range (min_max).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "backends/cpu/int8.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

template <class Q>
TANDEM_ISA_BODY void quantize_run_body(const float* x, Q* y, int64_t n, float scale, float zp, float lo, float hi) {
  for (int64_t i = 0; i < n; ++i) {
    float q = x[i] / scale;
    q = q == q ? q : 0.0f;  // NaN -> the zero point
    float r = __builtin_rintf(q) + zp;
    r = std::min(std::max(r, lo), hi);
    y[i] = static_cast<Q>(static_cast<int32_t>(r));
  }
}

template <class Q>
TANDEM_ISA_BODY void dequantize_run_body(const Q* x, float* y, int64_t n, float scale, int32_t zp) {
  if constexpr (sizeof(Q) == 4) {
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<double>(x[i]) * static_cast<double>(scale));
  } else {
    // (x - zp) has at most 9 bits: the float32 product is the correctly rounded exact product.
    for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(static_cast<int32_t>(x[i]) - zp) * scale;
  }
}

template <class Q>
TANDEM_ISA_BODY void quantize_rows_body(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, Q* y, int64_t y_rs,
                                        float scale, float zp) {
  constexpr bool u8 = std::is_same_v<Q, uint8_t>;
  for (int64_t r = 0; r < rows; ++r)
    quantize_run_body<Q>(x + r * x_rs, y + r * y_rs, lanes, scale, zp, u8 ? 0.0f : -128.0f, u8 ? 255.0f : 127.0f);
}
template <class Q>
TANDEM_ISA_BODY void dequantize_rows_body(const Q* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y,
                                          int64_t y_rs, float scale, int32_t zp) {
  for (int64_t r = 0; r < rows; ++r) dequantize_run_body<Q>(x + r * x_rs, y + r * y_rs, lanes, scale, zp);
}

}  // namespace

TANDEM_ISA_BODY void quantize_u8_any_body(const float* x, uint8_t* y, int64_t n, float s, float zp) {
  quantize_run_body<uint8_t>(x, y, n, s, zp, 0.0f, 255.0f);
}
TANDEM_ISA_BODY void quantize_s8_any_body(const float* x, int8_t* y, int64_t n, float s, float zp) {
  quantize_run_body<int8_t>(x, y, n, s, zp, -128.0f, 127.0f);
}
TANDEM_ISA_DISPATCH(quantize_u8_any, (const float* x, uint8_t* y, int64_t n, float s, float zp), (x, y, n, s, zp))
TANDEM_ISA_DISPATCH(quantize_s8_any, (const float* x, int8_t* y, int64_t n, float s, float zp), (x, y, n, s, zp))

TANDEM_ISA_BODY void dequantize_u8_body(const uint8_t* x, float* y, int64_t n, float s, int32_t zp) {
  dequantize_run_body<uint8_t>(x, y, n, s, zp);
}
TANDEM_ISA_BODY void dequantize_s8_body(const int8_t* x, float* y, int64_t n, float s, int32_t zp) {
  dequantize_run_body<int8_t>(x, y, n, s, zp);
}
TANDEM_ISA_BODY void dequantize_s32_body(const int32_t* x, float* y, int64_t n, float s, int32_t zp) {
  dequantize_run_body<int32_t>(x, y, n, s, zp);
}
TANDEM_ISA_DISPATCH(dequantize_u8, (const uint8_t* x, float* y, int64_t n, float s, int32_t zp), (x, y, n, s, zp))
TANDEM_ISA_DISPATCH(dequantize_s8, (const int8_t* x, float* y, int64_t n, float s, int32_t zp), (x, y, n, s, zp))
TANDEM_ISA_DISPATCH(dequantize_s32, (const int32_t* x, float* y, int64_t n, float s, int32_t zp), (x, y, n, s, zp))

namespace {

TANDEM_ISA_BODY void quantize_rows_u8_body(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, uint8_t* y,
                                           int64_t y_rs, float s, float zp) {
  quantize_rows_body<uint8_t>(x, x_rs, rows, lanes, y, y_rs, s, zp);
}
TANDEM_ISA_BODY void quantize_rows_s8_body(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, int8_t* y,
                                           int64_t y_rs, float s, float zp) {
  quantize_rows_body<int8_t>(x, x_rs, rows, lanes, y, y_rs, s, zp);
}
TANDEM_ISA_DISPATCH(quantize_rows_u8,
                    (const float* x, int64_t x_rs, int64_t rows, int64_t lanes, uint8_t* y, int64_t y_rs, float s,
                     float zp),
                    (x, x_rs, rows, lanes, y, y_rs, s, zp))
TANDEM_ISA_DISPATCH(quantize_rows_s8,
                    (const float* x, int64_t x_rs, int64_t rows, int64_t lanes, int8_t* y, int64_t y_rs, float s,
                     float zp),
                    (x, x_rs, rows, lanes, y, y_rs, s, zp))
TANDEM_ISA_BODY void dequantize_rows_u8_body(const uint8_t* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y,
                                             int64_t y_rs, float s, int32_t zp) {
  dequantize_rows_body<uint8_t>(x, x_rs, rows, lanes, y, y_rs, s, zp);
}
TANDEM_ISA_BODY void dequantize_rows_s8_body(const int8_t* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y,
                                             int64_t y_rs, float s, int32_t zp) {
  dequantize_rows_body<int8_t>(x, x_rs, rows, lanes, y, y_rs, s, zp);
}
TANDEM_ISA_DISPATCH(dequantize_rows_u8,
                    (const uint8_t* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y, int64_t y_rs, float s,
                     int32_t zp),
                    (x, x_rs, rows, lanes, y, y_rs, s, zp))
TANDEM_ISA_DISPATCH(dequantize_rows_s8,
                    (const int8_t* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y, int64_t y_rs, float s,
                     int32_t zp),
                    (x, x_rs, rows, lanes, y, y_rs, s, zp))

// AVX2, rows of exactly 8 lanes: the arithmetic of quantize_run_body on one row per step.
template <class Q>
TANDEM_TARGET_AVX2 void quantize_rows8_avx2(const float* x, int64_t x_rs, int64_t rows, Q* y, int64_t y_rs,
                                            float scale, float zp) {
  constexpr bool u8 = std::is_same_v<Q, uint8_t>;
  const __m256 vs = _mm256_set1_ps(scale), vz = _mm256_set1_ps(zp);
  const __m256 lo = _mm256_set1_ps(u8 ? 0.0f : -128.0f), hi = _mm256_set1_ps(u8 ? 255.0f : 127.0f);
  for (int64_t row = 0; row < rows; ++row) {
    __m256 q = _mm256_div_ps(_mm256_loadu_ps(x + row * x_rs), vs);
    q = _mm256_and_ps(q, _mm256_cmp_ps(q, q, _CMP_ORD_Q));  // NaN -> 0
    q = _mm256_add_ps(_mm256_round_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), vz);
    q = _mm256_min_ps(_mm256_max_ps(q, lo), hi);
    const __m256i i = _mm256_cvtps_epi32(q);  // an integer within the range already
    const __m128i w = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + row * y_rs), u8 ? _mm_packus_epi16(w, w) : _mm_packs_epi16(w, w));
  }
}

// AVX-512 quantization that multiplies by the reciprocal of the scale and still gives the
// division's result. r = fl(1 / scale) and q = fl(x * r) are each within half an ulp, so q lies
// within 3 * 2^-24 * |x / scale| of fl(x / scale). Values clamped to |q| <= 1024 saturate
// whichever way they round (the zero point lies in the 8-bit range), so below that bound q
// differs from fl(x / scale) by less than 2^-11, and both round to the same integer unless q
// lies within 2^-11 of a half-integer. A vector with such a lane (or a NaN) takes the division
// instead; on real data that is about one vector in a hundred. Needs a normal scale whose
// reciprocal is normal (recip_exact); the zero point must lie in the 8-bit type's range.
struct RecipQuant {
  __m512 r, scale, zero_point, lo, hi;
  __m512i bias;  // the magic number's bits minus the zero point
};
inline bool recip_exact(float scale) {
  return std::isnormal(scale) && std::isnormal(1.0f / scale);
}
template <class Q>
TANDEM_TARGET_AVX512 RecipQuant recip_quant(float scale, float zp) {
  constexpr bool u8 = std::is_same_v<Q, uint8_t>;
  return {_mm512_set1_ps(1.0f / scale), _mm512_set1_ps(scale), _mm512_set1_ps(zp),
          _mm512_set1_ps(u8 ? 0.0f : -128.0f), _mm512_set1_ps(u8 ? 255.0f : 127.0f),
          _mm512_set1_epi32(0x4B400000 - static_cast<int32_t>(zp))};
}
// quantize_run_body's arithmetic on 16 lanes: saturated integers.
TANDEM_TARGET_AVX512 inline __m512i quantize16_div(__m512 x, const RecipQuant& c) {
  __m512 q = _mm512_div_ps(x, c.scale);
  q = _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(q, q, _CMP_ORD_Q), q);  // NaN -> 0
  q = _mm512_add_ps(_mm512_roundscale_ps(q, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), c.zero_point);
  return _mm512_cvtps_epi32(_mm512_min_ps(_mm512_max_ps(q, c.lo), c.hi));
}
// The same integers, unsaturated when the reciprocal decides (|q| + |zp| < 1400: the packs
// that store them saturate).
TANDEM_TARGET_AVX512 inline __m512i quantize16(__m512 x, const RecipQuant& c) {
  const __m512 bound = _mm512_set1_ps(1024.0f), magic = _mm512_set1_ps(12582912.0f);  // 1.5 * 2^23
  // max/min return their second operand when either is NaN: a NaN product stays NaN.
  const __m512 q = _mm512_min_ps(bound, _mm512_max_ps(_mm512_sub_ps(_mm512_setzero_ps(), bound), _mm512_mul_ps(x, c.r)));
  const __m512 t = _mm512_add_ps(q, magic);  // rint(q) + magic, ties to even
  const __m512 frac = _mm512_sub_ps(q, _mm512_sub_ps(t, magic));
  const __mmask16 near_half = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), _mm512_set1_ps(0.5f - 1.0f / 2048), _CMP_NLT_UQ);
  if (__builtin_expect(near_half != 0, 0)) return quantize16_div(x, c);
  return _mm512_sub_epi32(_mm512_castps_si512(t), c.bias);
}
template <class Q>
TANDEM_TARGET_AVX512 inline __m128i narrow16(__m512i v) {
  if constexpr (std::is_same_v<Q, uint8_t>) return _mm512_cvtusepi32_epi8(_mm512_max_epi32(v, _mm512_setzero_si512()));
  else return _mm512_cvtsepi32_epi8(v);
}

// AVX-512, rows of at most 16 lanes, loaded and stored under a mask (nothing past `lanes` is
// read or written).
template <class Q>
TANDEM_TARGET_AVX512 void quantize_rows16_avx512(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, Q* y,
                                                 int64_t y_rs, float scale, float zp) {
  const __mmask16 m = static_cast<__mmask16>((1u << lanes) - 1u);
  const RecipQuant c = recip_quant<Q>(scale, zp);
  if (recip_exact(scale)) {
    for (int64_t r = 0; r < rows; ++r)
      _mm_mask_storeu_epi8(y + r * y_rs, m, narrow16<Q>(quantize16(_mm512_maskz_loadu_ps(m, x + r * x_rs), c)));
  } else {
    for (int64_t r = 0; r < rows; ++r)
      _mm_mask_storeu_epi8(y + r * y_rs, m, narrow16<Q>(quantize16_div(_mm512_maskz_loadu_ps(m, x + r * x_rs), c)));
  }
}

// AVX-512, a contiguous run: 64 values per step, narrowed by saturating packs (three shuffles
// where four 16-lane narrowings take eight), the rest as a masked row.
template <class Q>
TANDEM_TARGET_AVX512 void quantize_run_avx512(const float* x, Q* y, int64_t n, float scale, float zp) {
  int64_t i = 0;
  if (recip_exact(scale)) {
    const RecipQuant c = recip_quant<Q>(scale, zp);
    const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    for (; i + 64 <= n; i += 64) {
      const __m512i a = _mm512_packs_epi32(quantize16(_mm512_loadu_ps(x + i), c),
                                           quantize16(_mm512_loadu_ps(x + i + 16), c));
      const __m512i b = _mm512_packs_epi32(quantize16(_mm512_loadu_ps(x + i + 32), c),
                                           quantize16(_mm512_loadu_ps(x + i + 48), c));
      const __m512i bytes = std::is_same_v<Q, uint8_t> ? _mm512_packus_epi16(a, b) : _mm512_packs_epi16(a, b);
      _mm512_storeu_si512(y + i, _mm512_permutexvar_epi32(order, bytes));
    }
  }
  for (; i < n; i += 16) quantize_rows16_avx512(x + i, 0, 1, std::min<int64_t>(16, n - i), y + i, 0, scale, zp);
}

template <class Q>
TANDEM_TARGET_AVX512 void dequantize_rows16_avx512(const Q* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y,
                                                   int64_t y_rs, float scale, int32_t zp) {
  const __mmask16 m = static_cast<__mmask16>((1u << lanes) - 1u);
  const __m512 vs = _mm512_set1_ps(scale);
  const __m512i vz = _mm512_set1_epi32(zp);
  for (int64_t r = 0; r < rows; ++r) {
    const __m128i bytes = _mm_maskz_loadu_epi8(m, x + r * x_rs);
    const __m512i i = std::is_same_v<Q, int8_t> ? _mm512_cvtepi8_epi32(bytes) : _mm512_cvtepu8_epi32(bytes);
    _mm512_mask_storeu_ps(y + r * y_rs, m, _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(i, vz)), vs));
  }
}

// Rows of any length: 16 lanes at a time, the last ones under a mask.
template <class Q>
TANDEM_TARGET_AVX512 void dequantize_rows_avx512(const Q* x, int64_t x_rs, int64_t rows, int64_t lanes, float* y,
                                                 int64_t y_rs, float scale, int32_t zp) {
  if (lanes <= 16) return dequantize_rows16_avx512(x, x_rs, rows, lanes, y, y_rs, scale, zp);
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t l = 0; l < lanes; l += 16)
      dequantize_rows16_avx512(x + r * x_rs + l, 0, 1, std::min<int64_t>(16, lanes - l), y + r * y_rs + l, 0, scale, zp);
}

}  // namespace

// A run as quantize_run_avx512 or as rows of 8 (AVX2) values and a last partial row: the
// explicit vector code is two to three times as fast as the compiler's vectorization of
// quantize_run_body in cache.
namespace {
bool quantize_as_rows(const float* x, void* y, int64_t n, bool to_signed, float s, float zp) {
  static const int level = cpu_isa_level();
  if (level >= 2) {
    if (to_signed) quantize_run_avx512(x, static_cast<int8_t*>(y), n, s, zp);
    else quantize_run_avx512(x, static_cast<uint8_t*>(y), n, s, zp);
    return true;
  }
  const int64_t width = level == 1 ? 8 : 0;
  if (width == 0) return false;
  const int64_t full = n / width * width;
  quantize_rows(x, width, n / width, width, y, width, to_signed, s, zp);
  if (full < n) quantize_rows(x + full, 0, 1, n - full, static_cast<uint8_t*>(y) + full, 0, to_signed, s, zp);
  return true;
}
}  // namespace
void quantize_u8(const float* x, uint8_t* y, int64_t n, float s, float zp) {
  if (!quantize_as_rows(x, y, n, false, s, zp)) quantize_u8_any(x, y, n, s, zp);
}
void quantize_s8(const float* x, int8_t* y, int64_t n, float s, float zp) {
  if (!quantize_as_rows(x, y, n, true, s, zp)) quantize_s8_any(x, y, n, s, zp);
}

void quantize_rows(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, void* y, int64_t y_rs, bool to_signed,
                   float scale, float zero_point) {
  static const int level = cpu_isa_level();
  // Longer rows on AVX-512: each row as a contiguous run (explicit vector code; the compiler's
  // vectorization of the masked clamps runs at about half its speed).
  if (to_signed) {
    auto* yq = static_cast<int8_t*>(y);
    if (level >= 2 && lanes <= 16) quantize_rows16_avx512(x, x_rs, rows, lanes, yq, y_rs, scale, zero_point);
    else if (level >= 2)
      for (int64_t r = 0; r < rows; ++r) quantize_run_avx512(x + r * x_rs, yq + r * y_rs, lanes, scale, zero_point);
    else if (level == 1 && lanes == 8) quantize_rows8_avx2(x, x_rs, rows, yq, y_rs, scale, zero_point);
    else quantize_rows_s8(x, x_rs, rows, lanes, yq, y_rs, scale, zero_point);
  } else {
    auto* yq = static_cast<uint8_t*>(y);
    if (level >= 2 && lanes <= 16) quantize_rows16_avx512(x, x_rs, rows, lanes, yq, y_rs, scale, zero_point);
    else if (level >= 2)
      for (int64_t r = 0; r < rows; ++r) quantize_run_avx512(x + r * x_rs, yq + r * y_rs, lanes, scale, zero_point);
    else if (level == 1 && lanes == 8) quantize_rows8_avx2(x, x_rs, rows, yq, y_rs, scale, zero_point);
    else quantize_rows_u8(x, x_rs, rows, lanes, yq, y_rs, scale, zero_point);
  }
}

namespace {
template <class Q>
TANDEM_TARGET_AVX512 void quantize_rows_indexed16(const float* x, const int64_t* x_offsets, int64_t rows,
                                                  int64_t lanes, Q* y, int64_t y_rs, float scale, float zp) {
  const __mmask16 m = static_cast<__mmask16>((1u << lanes) - 1u);
  const RecipQuant c = recip_quant<Q>(scale, zp);
  const bool recip = recip_exact(scale);
  for (int64_t r = 0; r < rows; ++r) {
    const __m512 v = _mm512_maskz_loadu_ps(m, x + x_offsets[r]);
    _mm_mask_storeu_epi8(y + r * y_rs, m, narrow16<Q>(recip ? quantize16(v, c) : quantize16_div(v, c)));
  }
}
}  // namespace

void quantize_rows_indexed(const float* x, const int64_t* x_offsets, int64_t rows, int64_t lanes, void* y,
                           int64_t y_rs, bool to_signed, float scale, float zero_point) {
  static const int level = cpu_isa_level();
  if (level >= 2 && lanes <= 16) {
    if (to_signed) quantize_rows_indexed16(x, x_offsets, rows, lanes, static_cast<int8_t*>(y), y_rs, scale, zero_point);
    else quantize_rows_indexed16(x, x_offsets, rows, lanes, static_cast<uint8_t*>(y), y_rs, scale, zero_point);
    return;
  }
  for (int64_t r = 0; r < rows; ++r)
    quantize_rows(x + x_offsets[r], 0, 1, lanes, static_cast<uint8_t*>(y) + r * y_rs, 0, to_signed, scale, zero_point);
}

void dequantize_rows(const void* x, int64_t x_rs, bool from_signed, int64_t rows, int64_t lanes, float* y,
                     int64_t y_rs, float scale, int32_t zero_point) {
  static const int level = cpu_isa_level();
  if (from_signed) {
    const auto* xq = static_cast<const int8_t*>(x);
    if (level >= 2) dequantize_rows_avx512(xq, x_rs, rows, lanes, y, y_rs, scale, zero_point);
    else dequantize_rows_s8(xq, x_rs, rows, lanes, y, y_rs, scale, zero_point);
  } else {
    const auto* xq = static_cast<const uint8_t*>(x);
    if (level >= 2) dequantize_rows_avx512(xq, x_rs, rows, lanes, y, y_rs, scale, zero_point);
    else dequantize_rows_u8(xq, x_rs, rows, lanes, y, y_rs, scale, zero_point);
  }
}

namespace {

// min(0, x...) and max(0, x...), NaN ignored: MINPS/MAXPS return their second operand when
// either is NaN, so the running extremes keep their value.
void min_max_scalar(const float* x, int64_t n, float* lo, float* hi) {
  for (int64_t i = 0; i < n; ++i) {
    *lo = x[i] < *lo ? x[i] : *lo;
    *hi = x[i] > *hi ? x[i] : *hi;
  }
}
TANDEM_TARGET_AVX512 void min_max_avx512(const float* x, int64_t n, float* lo, float* hi) {
  // Two pairs of running extremes, so that the loop is not bound by their latency.
  __m512 a = _mm512_setzero_ps(), b = _mm512_setzero_ps(), c = _mm512_setzero_ps(), d = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 v = _mm512_loadu_ps(x + i), w = _mm512_loadu_ps(x + i + 16);
    a = _mm512_mask_min_ps(a, 0xFFFF, v, a);  // the masked form: no undefined pass-through
    b = _mm512_mask_max_ps(b, 0xFFFF, v, b);
    c = _mm512_mask_min_ps(c, 0xFFFF, w, c);
    d = _mm512_mask_max_ps(d, 0xFFFF, w, d);
  }
  a = _mm512_min_ps(a, c);  // NaN never reaches the running extremes
  b = _mm512_max_ps(b, d);
  for (; i + 16 <= n; i += 16) {
    const __m512 v = _mm512_loadu_ps(x + i);
    a = _mm512_mask_min_ps(a, 0xFFFF, v, a);
    b = _mm512_mask_max_ps(b, 0xFFFF, v, b);
  }
  alignas(64) float la[16], lb[16];
  _mm512_store_ps(la, a);
  _mm512_store_ps(lb, b);
  *lo = 0.0f;
  *hi = 0.0f;
  float unused = 0.0f;
  min_max_scalar(la, 16, lo, &unused);
  min_max_scalar(lb, 16, &unused, hi);
  min_max_scalar(x + i, n - i, lo, hi);
}
TANDEM_TARGET_AVX2 void min_max_avx2(const float* x, int64_t n, float* lo, float* hi) {
  __m256 a = _mm256_setzero_ps(), b = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 v = _mm256_loadu_ps(x + i);
    a = _mm256_min_ps(v, a);
    b = _mm256_max_ps(v, b);
  }
  alignas(32) float la[8], lb[8];
  _mm256_store_ps(la, a);
  _mm256_store_ps(lb, b);
  *lo = 0.0f;
  *hi = 0.0f;
  float unused = 0.0f;
  min_max_scalar(la, 8, lo, &unused);
  min_max_scalar(lb, 8, &unused, hi);
  min_max_scalar(x + i, n - i, lo, hi);
}
}  // namespace

void min_max(const float* x, int64_t n, float* lo, float* hi) {
  static const int level = cpu_isa_level();
  if (level >= 2) return min_max_avx512(x, n, lo, hi);
  if (level == 1) return min_max_avx2(x, n, lo, hi);
  *lo = 0.0f;
  *hi = 0.0f;
  min_max_scalar(x, n, lo, hi);
}

namespace {
// Pixels [s0, s1) of one image: 16 pixels per step, each channel's 16 values quantized to 16
// bytes, the C x 16 bytes interleaved to 16 x C by one byte permute.
template <class Q>
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,fma,f16c"))) void planar_to_channels_last(
    const float* x, Q* y, int64_t C, int64_t S, int64_t s0, int64_t s1, float scale, float zp) {
  const RecipQuant c = recip_quant<Q>(scale, zp);
  const bool recip = recip_exact(scale);
  alignas(64) uint8_t order[64];  // byte j of the output: pixel j / C, channel j % C
  for (int j = 0; j < 64; ++j) order[j] = static_cast<uint8_t>(j < 16 * C ? (j % C) * 16 + j / C : 0);
  const __m512i index = _mm512_load_si512(order);
  for (int64_t s = s0; s < s1; s += 16) {
    const int64_t m = std::min<int64_t>(16, s1 - s);
    const __mmask16 lanes = static_cast<__mmask16>((1u << m) - 1u);
    __m512i bytes = _mm512_setzero_si512();
    for (int64_t ch = 0; ch < C; ++ch) {
      const __m512 v = _mm512_maskz_loadu_ps(lanes, x + ch * S + s);
      const __m128i q = narrow16<Q>(recip ? quantize16(v, c) : quantize16_div(v, c));
      switch (ch) {
        case 0: bytes = _mm512_inserti32x4(bytes, q, 0); break;
        case 1: bytes = _mm512_inserti32x4(bytes, q, 1); break;
        case 2: bytes = _mm512_inserti32x4(bytes, q, 2); break;
        default: bytes = _mm512_inserti32x4(bytes, q, 3); break;
      }
    }
    const int64_t n = m * C;
    const __mmask64 keep = n == 64 ? ~__mmask64{0} : (__mmask64{1} << n) - 1;
    _mm512_mask_storeu_epi8(y + s * C, keep, _mm512_permutexvar_epi8(index, bytes));
  }
}
}  // namespace

bool planar_to_channels_last_quantizes(int64_t C) { return C >= 1 && C <= 4 && has_vbmi(); }

void quantize_planar_to_channels_last(int threads, const float* x, void* y, bool to_signed, int64_t N, int64_t C,
                                      int64_t S, float scale, float zero_point) {
  constexpr int64_t kChunk = 4096;  // pixels per task
  const int64_t chunks = (S + kChunk - 1) / kChunk;
  parallel_range(threads, N * chunks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t img = t / chunks, s0 = (t % chunks) * kChunk, s1 = std::min(S, s0 + kChunk);
      const float* xi = x + img * C * S;
      if (to_signed)
        planar_to_channels_last(xi, static_cast<int8_t*>(y) + img * S * C, C, S, s0, s1, scale, zero_point);
      else
        planar_to_channels_last(xi, static_cast<uint8_t*>(y) + img * S * C, C, S, s0, s1, scale, zero_point);
    }
  });
}

void quantize_blocked(int threads, const float* x, void* y, bool to_signed, int64_t N, int64_t C, int64_t S,
                      int64_t block, float scale, float zero_point, int64_t y_channels, int64_t y_channel0) {
  // Tasks of kChunk pixels, all channel blocks of a chunk in turn: each block writes a strip of
  // every pixel's bytes, and the chunk's bytes (kChunk * y_channels) stay in cache meanwhile.
  constexpr int64_t kChunk = 256;
  const int64_t blocks = (C + block - 1) / block, chunks = (S + kChunk - 1) / kChunk;
  parallel_range(threads, N * chunks * blocks, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t t = lo; t < hi; ++t) {
      const int64_t cb = t % blocks, c = (t / blocks) % chunks, img = t / blocks / chunks;
      const int64_t s0 = c * kChunk, s1 = std::min(S, s0 + kChunk);
      const float* xb = x + ((img * blocks + cb) * S + s0) * block;
      uint8_t* yb = static_cast<uint8_t*>(y) + (img * S + s0) * y_channels + y_channel0 + cb * block;
      quantize_rows(xb, block, s1 - s0, std::min(block, C - cb * block), yb, y_channels, to_signed, scale, zero_point);
    }
  });
}

}  // namespace tandem::cpu
