// cpu_exp_kernels_test.cpp: the cpu backend's exponential kernels (sigmoid_in_place,
// swish_in_place, exp_shifted_sum, backends/cpu/ew_exp_kernels.h) against the exact functions
// in double, on a dense sweep of the float range where they change, on the edges of their
// clamps, on NaN and the infinities, and on lengths that leave partial vectors. Named CpuBackend* so that ctest
// also runs it under each lower instruction-set cap (the AVX2 and scalar variants).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "backends/cpu/ew_exp_kernels.h"

namespace tandem::cpu {
namespace {

double exact_sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// |got - want| within `rel` of |want|, or below the smallest normal float (where the kernels
// flush to 0, as the header says).
void expect_close(float got, double want, double rel, float x, const char* what) {
  if (std::fabs(want) < std::numeric_limits<float>::min()) {
    EXPECT_LE(std::fabs(got), std::numeric_limits<float>::min()) << what << " at x = " << x;
    return;
  }
  EXPECT_LE(std::fabs(got - want), rel * std::fabs(want)) << what << " at x = " << x << ": " << got << " vs " << want;
}

std::vector<float> sweep() {
  std::vector<float> xs;
  for (float x = -100.0f; x <= 100.0f; x += 0.0137f) xs.push_back(x);
  // The clamp edges and their neighbours, zero of both signs, tiny and huge magnitudes.
  for (float e : {-87.3f, 87.3f, -88.7f, 88.7f, 0.0f, -0.0f, 1e-30f, -1e-30f, 1e30f, -1e30f}) {
    xs.push_back(e);
    xs.push_back(std::nextafter(e, 1e38f));
    xs.push_back(std::nextafter(e, -1e38f));
  }
  return xs;
}

TEST(CpuBackendExpKernels, SigmoidAndSwishAreWithinTwoUlpOfExact) {
  const std::vector<float> xs = sweep();
  std::vector<float> s = xs, w = xs;
  sigmoid_in_place(s.data(), static_cast<int64_t>(s.size()));
  swish_in_place(w.data(), static_cast<int64_t>(w.size()));
  for (size_t i = 0; i < xs.size(); ++i) {
    const double x = xs[i];
    if (xs[i] < -87.3f) {  // documented: 0 below the limit, swish x * 0
      EXPECT_EQ(s[i], 0.0f) << "sigmoid at " << x;
      EXPECT_EQ(w[i], 0.0f) << "swish at " << x;
      EXPECT_TRUE(std::signbit(w[i])) << "swish at " << x << " is -0";
      continue;
    }
    expect_close(s[i], exact_sigmoid(x), 2.5e-7, xs[i], "sigmoid");
    expect_close(w[i], x * exact_sigmoid(x), 2.5e-7, xs[i], "swish");
  }
}

TEST(CpuBackendExpKernels, NanAndInfinitiesFollowTheExactProduct) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  std::vector<float> s = {nan, inf, -inf}, w = s;
  sigmoid_in_place(s.data(), 3);
  swish_in_place(w.data(), 3);
  EXPECT_TRUE(std::isnan(s[0]));
  EXPECT_EQ(s[1], 1.0f);
  EXPECT_EQ(s[2], 0.0f);
  EXPECT_TRUE(std::isnan(w[0]));
  EXPECT_EQ(w[1], inf);
  EXPECT_TRUE(std::isnan(w[2]));  // -inf * Sigmoid(-inf) = -inf * 0
}

TEST(CpuBackendExpKernels, EveryLengthAndOffsetLeavesTheRestUntouched) {
  // Lengths around the vector widths (8, 16) from unaligned starts: exactly [off, off + n)
  // changes, and it matches the same values computed in one long call.
  std::vector<float> base(80);
  for (size_t i = 0; i < base.size(); ++i) base[i] = -6.0f + 0.157f * static_cast<float>(i);
  std::vector<float> whole = base;
  swish_in_place(whole.data(), static_cast<int64_t>(whole.size()));
  for (int64_t off : {0, 1, 3}) {
    for (int64_t n = 0; n <= 40; ++n) {
      std::vector<float> v = base;
      swish_in_place(v.data() + off, n);
      for (int64_t i = 0; i < static_cast<int64_t>(v.size()); ++i) {
        const bool inside = i >= off && i < off + n;
        EXPECT_EQ(v[static_cast<size_t>(i)], inside ? whole[static_cast<size_t>(i)] : base[static_cast<size_t>(i)])
            << "offset " << off << " length " << n << " index " << i;
      }
    }
  }
}

TEST(CpuBackendExpKernels, ShiftedExponentialsAndTheirSumAtEveryLength) {
  // Softmax rows: x - shift in [-100, 0] (exponents that flush to 0 included), lengths around
  // the vector widths, into another array, in place, and the sum alone.
  for (int64_t n = 0; n <= 70; ++n) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = 3.0f - 103.0f * static_cast<float>((i * 37) % 71) / 70.0f;
    const float shift = 3.0f;
    std::vector<float> y(x.size(), -1.0f), in_place = x;
    const float sum = exp_shifted_sum(x.data(), y.data(), n, shift);
    const float sum_in_place = exp_shifted_sum(in_place.data(), in_place.data(), n, shift);
    const float sum_alone = exp_shifted_sum(x.data(), nullptr, n, shift);
    double want_sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const size_t k = static_cast<size_t>(i);
      const float d = x[k] - shift;
      const double want = d < -87.3f ? 0.0 : std::exp(static_cast<double>(d));
      want_sum += want;
      if (want == 0.0) EXPECT_EQ(y[k], 0.0f) << "length " << n << " at " << d;
      else expect_close(y[k], want, 2.5e-7, d, "exp");
      EXPECT_EQ(in_place[k], y[k]) << "length " << n << " index " << i;
    }
    EXPECT_NEAR(sum, want_sum, 1e-6 * std::max(1.0, want_sum)) << "length " << n;
    EXPECT_EQ(sum_in_place, sum) << "length " << n;
    EXPECT_EQ(sum_alone, sum) << "length " << n;
  }
}

}  // namespace
}  // namespace tandem::cpu
