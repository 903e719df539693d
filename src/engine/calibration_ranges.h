// calibration_ranges.h: how the quantizer's calibration (engine/quantize.cpp) turns the values an
// activation took on the calibration inputs into the range its 8-bit scale covers, for the
// methods that look past the smallest and largest value (tandem/quantize.h, CalibrationMethod).
//
// Both histograms are filled in a second pass over the calibration inputs, once the first pass
// has found each activation's [min, max]; non-finite values are skipped. Units: the
// activation's own.
// Thread-safety: plain values; one thread fills and reads each.
#pragma once

#include <cstdint>
#include <vector>

namespace tandem {

// A histogram of |x| over [0, limit], for CalibrationMethod::percentile.
struct AbsHistogram {
  static constexpr int kBins = 8192;
  double limit = 0;
  std::vector<int64_t> counts = std::vector<int64_t>(kBins, 0);
  int64_t total = 0;

  void add(const float* x, int64_t n);
  // The upper edge of the bin where the cumulative count reaches `percent` of the total.
  double percentile(double percent) const;
};

// A histogram of x over [lo, hi] (lo <= 0 <= hi: the minmax range widened to include 0), and the
// count of exact zeros, which every range represents exactly. For CalibrationMethod::mse.
struct ValueHistogram {
  static constexpr int kBins = 4096;
  double lo = 0;
  double hi = 0;
  std::vector<int64_t> counts = std::vector<int64_t>(kBins, 0);
  int64_t zeros = 0;

  void add(const float* x, int64_t n);
};

// The range [a, b] (lo <= a <= 0 <= b <= hi) whose uint8 grid (activation_scale in
// onnx/quantizer.h: 255 steps, a zero point) loses the least on the histogram's values: the sum
// of squared errors, counting each value inside the grid as rounding noise of step^2 / 12
// (exact zeros: none) and each value outside it as its distance to the nearer end, squared.
// Searched over a = lo * i / 64 and b = hi * j / 64 for i, j in 8..64. Returns {lo, hi}
// unchanged when they are equal.
void least_squares_range(const ValueHistogram& h, float* a, float* b);

}  // namespace tandem
