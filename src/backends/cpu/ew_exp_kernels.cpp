// ew_exp_kernels.cpp: see ew_exp_kernels.h. e^y = 2^n * e^r with n = round(y / ln2) and
// r = y - n ln2 in [-ln2/2, ln2/2] (ln2 in two parts), e^r by ew_math.h's degree-6 polynomial.
// The argument is clamped to [-87.3, 87.3], so 2^n is a normal float built from its exponent
// bits; the lanes where that clamp changes the logistic's value (x below -87.3) are zeroed.
#include "backends/cpu/ew_exp_kernels.h"

#include <immintrin.h>

#include "backends/cpu/ew_math.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

constexpr float kLimit = 87.3f;
constexpr float kLog2e = 1.44269504088896341f;
constexpr float kLn2High = 0.693359375f;
constexpr float kLn2Low = -2.12194440e-4f;
constexpr float kP0 = 1.9875691500E-4f, kP1 = 1.3981999507E-3f, kP2 = 8.3334519073E-3f, kP3 = 4.1665795894E-2f,
                kP4 = 1.6666665459E-1f, kP5 = 5.0000001201E-1f;

// e^y for y in [-kLimit, kLimit] (the caller clamps; a NaN lane stays NaN).
TANDEM_TARGET_AVX512 inline __m512 exp_avx512(__m512 y) {
  const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(y, _mm512_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2High), y);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Low), r);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(kP0), r, _mm512_set1_ps(kP1));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP2));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP3));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP4));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kP5));
  p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  return _mm512_scalef_ps(p, n);
}
TANDEM_TARGET_AVX512 inline __m512 one_plus_exp_neg_avx512(__m512 x) {
  return _mm512_add_ps(exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), x)), _mm512_set1_ps(1.0f));
}

// Sigmoid: 1 / (1 + e^-x) where x >= -kLimit, else 0. Swish: x times that (so -0 below the
// limit, and NaN at -inf, as the exact x * Sigmoid(x) gives).
template <bool kSwish>
TANDEM_TARGET_AVX512 inline __m512 logistic16(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-kLimit), hi = _mm512_set1_ps(kLimit);
  const __mmask16 kept = _mm512_cmp_ps_mask(x, lo, _CMP_NLT_UQ);  // x >= -kLimit, or NaN
  const __m512 c = _mm512_min_ps(hi, _mm512_max_ps(lo, x));       // NaN stays (second operand)
  const __m512 s = _mm512_maskz_div_ps(kept, _mm512_set1_ps(1.0f), one_plus_exp_neg_avx512(c));
  return kSwish ? _mm512_mul_ps(x, s) : s;
}

template <bool kSwish>
TANDEM_TARGET_AVX512 void logistic_avx512(float* p, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) _mm512_storeu_ps(p + i, logistic16<kSwish>(_mm512_loadu_ps(p + i)));
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    _mm512_mask_storeu_ps(p + i, tail, logistic16<kSwish>(_mm512_maskz_loadu_ps(tail, p + i)));
  }
}

TANDEM_TARGET_AVX2 inline __m256 exp_avx2(__m256 y) {
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(y, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2High), y);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Low), r);
  __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(kP0), r, _mm256_set1_ps(kP1));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP2));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP3));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP4));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kP5));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  // 2^n from its exponent bits: |n| <= 126 after the clamp. (A NaN lane's bits are garbage
  // here; its p is NaN, so the product is too.)
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(bits));
}
TANDEM_TARGET_AVX2 inline __m256 one_plus_exp_neg_avx2(__m256 x) {
  return _mm256_add_ps(exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), x)), _mm256_set1_ps(1.0f));
}

template <bool kSwish>
TANDEM_TARGET_AVX2 inline __m256 logistic8(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-kLimit), hi = _mm256_set1_ps(kLimit);
  const __m256 kept = _mm256_cmp_ps(x, lo, _CMP_NLT_UQ);
  const __m256 c = _mm256_min_ps(hi, _mm256_max_ps(lo, x));
  const __m256 s = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0f), one_plus_exp_neg_avx2(c)), kept);
  return kSwish ? _mm256_mul_ps(x, s) : s;
}

// The tail goes through a vector too, so that a value's result does not depend on its position.
template <bool kSwish>
TANDEM_TARGET_AVX2 void logistic_avx2(float* p, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(p + i, logistic8<kSwish>(_mm256_loadu_ps(p + i)));
  if (i < n) {
    alignas(32) float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = p[j];
    _mm256_store_ps(tail, logistic8<kSwish>(_mm256_load_ps(tail)));
    for (int64_t j = i; j < n; ++j) p[j] = tail[j - i];
  }
}

template <bool kSwish>
void logistic_baseline(float* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = kSwish ? p[i] * math::sigmoid(p[i]) : math::sigmoid(p[i]);
}

template <bool kSwish>
void logistic(float* p, int64_t n) {
  static const int level = cpu_isa_level();
  if (level >= 2) logistic_avx512<kSwish>(p, n);
  else if (level == 1) logistic_avx2<kSwish>(p, n);
  else logistic_baseline<kSwish>(p, n);
}

// e^(x - shift), 0 below -kLimit (x - shift <= 0 for a softmax, so the upper clamp only guards
// other callers).
TANDEM_TARGET_AVX512 inline __m512 exp_shifted16(__m512 x, __m512 shift) {
  const __m512 lo = _mm512_set1_ps(-kLimit), hi = _mm512_set1_ps(kLimit);
  const __m512 d = _mm512_sub_ps(x, shift);
  const __mmask16 kept = _mm512_cmp_ps_mask(d, lo, _CMP_NLT_UQ);
  return _mm512_maskz_mov_ps(kept, exp_avx512(_mm512_min_ps(hi, _mm512_max_ps(lo, d))));
}

// The sum of the 16 lanes, in the pairwise order of _mm512_reduce_add_ps (lanes i + 8, then
// i + 4, i + 2, i + 1), so the same bits; written with shuffles because GCC 12's
// _mm512_reduce_add_ps and unmasked shuffles read an undefined vector (a -Wuninitialized
// warning in its header); the all-lanes masked forms take `v` instead and compile the same.
TANDEM_TARGET_AVX512 inline float sum_lanes16(__m512 v) {
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(2, 3, 0, 1)));
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(1, 0, 3, 2)));
  v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(2, 3, 0, 1)));
  return _mm512_cvtss_f32(v);
}

TANDEM_TARGET_AVX512 float exp_shifted_sum_avx512(const float* x, float* y, int64_t n, float shift) {
  const __m512 s = _mm512_set1_ps(shift);
  __m512 sum = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512 e = exp_shifted16(_mm512_loadu_ps(x + i), s);
    if (y) _mm512_storeu_ps(y + i, e);
    sum = _mm512_add_ps(sum, e);
  }
  if (i < n) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (n - i)) - 1u);
    const __m512 e = _mm512_maskz_mov_ps(tail, exp_shifted16(_mm512_maskz_loadu_ps(tail, x + i), s));
    if (y) _mm512_mask_storeu_ps(y + i, tail, e);
    sum = _mm512_add_ps(sum, e);
  }
  return sum_lanes16(sum);
}

TANDEM_TARGET_AVX2 inline __m256 exp_shifted8(__m256 x, __m256 shift) {
  const __m256 lo = _mm256_set1_ps(-kLimit), hi = _mm256_set1_ps(kLimit);
  const __m256 d = _mm256_sub_ps(x, shift);
  const __m256 kept = _mm256_cmp_ps(d, lo, _CMP_NLT_UQ);
  return _mm256_and_ps(exp_avx2(_mm256_min_ps(hi, _mm256_max_ps(lo, d))), kept);
}

TANDEM_TARGET_AVX2 float exp_shifted_sum_avx2(const float* x, float* y, int64_t n, float shift) {
  const __m256 s = _mm256_set1_ps(shift);
  __m256 sum = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 e = exp_shifted8(_mm256_loadu_ps(x + i), s);
    if (y) _mm256_storeu_ps(y + i, e);
    sum = _mm256_add_ps(sum, e);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, sum);
  float total = ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) + ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
  if (i < n) {  // the tail through a vector too (see logistic_avx2)
    alignas(32) float tail[8] = {};
    for (int64_t j = i; j < n; ++j) tail[j - i] = x[j];
    _mm256_store_ps(tail, exp_shifted8(_mm256_load_ps(tail), s));
    for (int64_t j = i; j < n; ++j) {
      if (y) y[j] = tail[j - i];
      total += tail[j - i];
    }
  }
  return total;
}

float exp_shifted_sum_baseline(const float* x, float* y, int64_t n, float shift) {
  constexpr int64_t kLanes = 16;  // independent partial sums, so that the loop vectorizes
  float lane[kLanes] = {};
  const int64_t whole = n - n % kLanes;
  for (int64_t i = 0; i < whole; i += kLanes)
    for (int64_t l = 0; l < kLanes; ++l) {
      const float e = math::exp(x[i + l] - shift);
      if (y) y[i + l] = e;
      lane[l] += e;
    }
  float total = 0;
  for (int64_t l = 0; l < kLanes; ++l) total += lane[l];
  for (int64_t i = whole; i < n; ++i) {
    const float e = math::exp(x[i] - shift);
    if (y) y[i] = e;
    total += e;
  }
  return total;
}

}  // namespace

float exp_shifted_sum(const float* x, float* y, int64_t n, float shift) {
  static const int level = cpu_isa_level();
  if (level >= 2) return exp_shifted_sum_avx512(x, y, n, shift);
  if (level == 1) return exp_shifted_sum_avx2(x, y, n, shift);
  return exp_shifted_sum_baseline(x, y, n, shift);
}

void sigmoid_in_place(float* x, int64_t n) { logistic<false>(x, n); }
void swish_in_place(float* x, int64_t n) { logistic<true>(x, n); }

}  // namespace tandem::cpu
