// ew_math.h: branch-free float math the compiler can vectorize (no library calls), used by the
// cpu backend's elementwise kernels. Accuracy: exp/sigmoid/tanh within a few ulp of float
// (relative 2e-7), erf absolute 1.5e-7. Inputs outside the float range are clamped where the
// result saturates anyway. Pure functions, thread-safe. Each must vectorize in a plain loop
// (ctest ew_math_vectorizes checks it): some selects leave GCC's loop scalar where a product by
// a 0/1 factor does not.
#pragma once

#include <cstdint>
#include <cstring>

namespace tandem::cpu::math {

__attribute__((always_inline)) inline float bits_to_float(int32_t i) {
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
}

// Cephes-style expf: range reduction by ln2 and a degree-6 polynomial. Below -87.3 (where
// e^x leaves the normal floats) the result is 0, never subnormal.
__attribute__((always_inline)) inline float exp(float x) {
  const float kept = x < -87.3f ? 0.0f : 1.0f;  // (a product, not a select: it vectorizes)
  x = x < -87.3f ? -87.3f : x;
  x = x > 88.7f ? 88.7f : x;
  float fx = x * 1.44269504088896341f + 0.5f;
  // floor without a library call (vectorizes): truncate, then step down for negatives.
  int32_t t = static_cast<int32_t>(fx);
  t -= static_cast<int32_t>(fx < static_cast<float>(t));
  const float fl = static_cast<float>(t);
  float r = x - fl * 0.693359375f + fl * 2.12194440e-4f;
  float r2 = r * r;
  float y = 1.9875691500E-4f;
  y = y * r + 1.3981999507E-3f;
  y = y * r + 8.3334519073E-3f;
  y = y * r + 4.1665795894E-2f;
  y = y * r + 1.6666665459E-1f;
  y = y * r + 5.0000001201E-1f;
  y = y * r2 + r + 1.0f;
  int32_t n = t;
  // Split the scale in two so that n = 128 (x near 88.7) does not overflow the exponent.
  int32_t n1 = n >> 1, n2 = n - n1;
  const float e = y * bits_to_float((n1 + 127) << 23) * bits_to_float((n2 + 127) << 23);
  return e * kept;
}

// Below -87.3 the result is 0 (e^x is, and 1 / (1 + e^-x) would be subnormal).
__attribute__((always_inline)) inline float sigmoid(float x) {
  return 1.0f / (1.0f + exp(-x)) * (x < -87.3f ? 0.0f : 1.0f);
}

__attribute__((always_inline)) inline float tanh(float x) {
  int32_t bits;
  std::memcpy(&bits, &x, sizeof bits);
  const int32_t sign = bits & static_cast<int32_t>(0x80000000u);
  const float ax = __builtin_fabsf(x);
  const float t = exp(-2.0f * ax);
  const float big = (1.0f - t) / (1.0f + t);
  const float x2 = ax * ax;
  const float small = ax * (1.0f + x2 * (-0.333333333f + x2 * (0.133333333f + x2 * -0.0539682540f)));
  const float m = static_cast<float>(ax < 0.1f);  // 1: use the series near 0
  const float r = big + m * (small - big);
  int32_t rb;
  std::memcpy(&rb, &r, sizeof rb);
  return bits_to_float(rb | sign);
}

// Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7).
__attribute__((always_inline)) inline float erf(float x) {
  float ax = x < 0 ? -x : x;
  float t = 1.0f / (1.0f + 0.3275911f * ax);
  float y = 1.061405429f;
  y = y * t - 1.453152027f;
  y = y * t + 1.421413741f;
  y = y * t - 0.284496736f;
  y = y * t + 0.254829592f;
  y = 1.0f - y * t * exp(-ax * ax);
  return x < 0 ? -y : y;
}

__attribute__((always_inline)) inline float expm1_ish(float x) { return exp(x) - 1.0f; }

}  // namespace tandem::cpu::math
