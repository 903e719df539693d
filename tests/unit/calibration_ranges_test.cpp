// calibration_ranges_test.cpp: the range searches of calibration (engine/calibration_ranges.h),
// on value sets whose best 8-bit range is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/calibration_ranges.h"

namespace tandem {
namespace {

ValueHistogram histogram_of(const std::vector<float>& values) {
  ValueHistogram h;
  for (float v : values) {
    h.lo = std::min(h.lo, static_cast<double>(v));
    h.hi = std::max(h.hi, static_cast<double>(v));
  }
  h.add(values.data(), static_cast<int64_t>(values.size()));
  return h;
}

TEST(CalibrationRanges, LeastSquaresKeepsTheWholeRangeOfEvenlySpreadValues) {
  std::vector<float> values;
  for (int i = 0; i <= 20000; ++i) values.push_back(-1.0f + 3.0f * static_cast<float>(i) / 20000);  // [-1, 2]
  float a = 0, b = 0;
  least_squares_range(histogram_of(values), &a, &b);
  // Clipping any of a uniform spread costs more than the finer steps save.
  EXPECT_LE(a, -0.95f);
  EXPECT_GE(b, 1.9f);
}

// The squared error of rounding `values` to the uint8 grid of [a, b], exactly.
double grid_error(const std::vector<float>& values, float a, float b) {
  const double lo = std::min(0.0f, a), hi = std::max(0.0f, b);
  const double s = (hi - lo) / 255;
  const double z = std::nearbyint(-lo / s);
  double sum = 0;
  for (float v : values) {
    const double q = (std::clamp(std::nearbyint(v / s) + z, 0.0, 255.0) - z) * s;
    sum += (q - v) * (q - v);
  }
  return sum;
}

TEST(CalibrationRanges, LeastSquaresClipsAHeavyTail) {
  // Laplace-like values (scale 0.1): most within +-0.3, a thin tail out to about +-1.2.
  std::vector<float> values;
  for (int i = 1; i < 100000; ++i) {
    const double u = static_cast<double>(i) / 100000;  // (0, 1)
    values.push_back(static_cast<float>(u < 0.5 ? 0.1 * std::log(2 * u) : -0.1 * std::log(2 * (1 - u))));
  }
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  float a = 0, b = 0;
  least_squares_range(histogram_of(values), &a, &b);
  EXPECT_GT(a, 0.9f * *lo);  // clipped at both ends
  EXPECT_LT(b, 0.9f * *hi);
  // ... and it is what the search claims: a smaller error than the whole range.
  EXPECT_LT(grid_error(values, a, b), 0.9 * grid_error(values, *lo, *hi));
}

TEST(CalibrationRanges, LeastSquaresCountsExactZerosAsExact) {
  // Nine in ten values are exactly 0 (a ReLU output); the rest spread over [0, 1]. The zeros
  // cost nothing at any scale, so the range still covers the spread.
  std::vector<float> values(90000, 0.0f);
  for (int i = 0; i < 10000; ++i) values.push_back(static_cast<float>(i) / 10000);
  float a = 1, b = 0;
  least_squares_range(histogram_of(values), &a, &b);
  EXPECT_EQ(a, 0.0f);
  EXPECT_GE(b, 0.9f);
}

TEST(CalibrationRanges, EqualEndsAreReturnedUnchanged) {
  ValueHistogram h;  // nothing seen: lo = hi = 0
  float a = 5, b = 5;
  least_squares_range(h, &a, &b);
  EXPECT_EQ(a, 0.0f);
  EXPECT_EQ(b, 0.0f);
}

TEST(CalibrationRanges, PercentileOfAbsoluteValues) {
  AbsHistogram h;
  h.limit = 10;
  std::vector<float> values;
  for (int i = 0; i < 1000; ++i) values.push_back(static_cast<float>(i % 100) / 100);  // |x| < 1
  values.push_back(-10.0f);
  h.add(values.data(), static_cast<int64_t>(values.size()));
  EXPECT_LE(h.percentile(99.9), 1.01);
  EXPECT_DOUBLE_EQ(h.percentile(100), 10.0);
}

}  // namespace
}  // namespace tandem
