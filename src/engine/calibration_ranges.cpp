// Histograms and range searches for calibration (calibration_ranges.h).
#include "engine/calibration_ranges.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "onnx/quantizer.h"  // activation_scale

namespace tandem {

void AbsHistogram::add(const float* x, int64_t n) {
  const double width = limit > 0 ? limit / kBins : 1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    const int bin = std::min(kBins - 1, static_cast<int>(std::fabs(x[i]) / width));
    ++counts[static_cast<size_t>(bin)];
    ++total;
  }
}

double AbsHistogram::percentile(double percent) const {
  const double wanted = percent / 100.0 * static_cast<double>(total);
  int64_t cumulative = 0;
  for (int b = 0; b < kBins; ++b) {
    cumulative += counts[static_cast<size_t>(b)];
    if (static_cast<double>(cumulative) >= wanted) return limit * (b + 1) / kBins;
  }
  return limit;
}

void ValueHistogram::add(const float* x, int64_t n) {
  const double width = hi > lo ? (hi - lo) / kBins : 1;
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(x[i])) continue;
    if (x[i] == 0) {
      ++zeros;
      continue;
    }
    const int bin = std::clamp(static_cast<int>((static_cast<double>(x[i]) - lo) / width), 0, kBins - 1);
    ++counts[static_cast<size_t>(bin)];
  }
}

void least_squares_range(const ValueHistogram& h, float* a, float* b) {
  *a = static_cast<float>(h.lo);
  *b = static_cast<float>(h.hi);
  if (!(h.hi > h.lo)) return;
  constexpr int kBins = ValueHistogram::kBins;
  const double width = (h.hi - h.lo) / kBins;
  // Prefix sums over the bins (value = the bin's centre) of the count, value and value^2, so
  // that the clipping error below or above any edge is O(1).
  std::vector<double> n(kBins + 1, 0), s1(kBins + 1, 0), s2(kBins + 1, 0);
  for (int i = 0; i < kBins; ++i) {
    const double c = static_cast<double>(h.counts[static_cast<size_t>(i)]);
    const double v = h.lo + (i + 0.5) * width;
    n[i + 1] = n[i] + c;
    s1[i + 1] = s1[i] + c * v;
    s2[i + 1] = s2[i] + c * v * v;
  }
  // The bins whose centre lies below `edge`: [0, first_at_or_above(edge)).
  auto first_at_or_above = [&](double edge) {
    const double k = std::ceil((edge - h.lo) / width - 0.5);
    return static_cast<int>(std::clamp(k, 0.0, static_cast<double>(kBins)));
  };
  double best = std::numeric_limits<double>::infinity();
  constexpr int kSteps = 64;
  for (int i = 8; i <= kSteps; ++i) {
    const double lo = h.lo * i / kSteps;
    for (int j = 8; j <= kSteps; ++j) {
      const double hi = h.hi * j / kSteps;
      float scale = 1;
      uint8_t zero_point = 0;
      activation_scale(ActivationRange{static_cast<float>(lo), static_cast<float>(hi)}, &scale, &zero_point);
      const double s = scale;
      const double q_lo = -static_cast<double>(zero_point) * s;
      const double q_hi = (255.0 - zero_point) * s;
      const int below = first_at_or_above(q_lo);
      const int above = first_at_or_above(q_hi);  // bins from here on lie above the grid
      const double err_below = s2[below] - 2 * q_lo * s1[below] + q_lo * q_lo * n[below];
      const double s1_up = s1[kBins] - s1[above], s2_up = s2[kBins] - s2[above], n_up = n[kBins] - n[above];
      const double err_above = s2_up - 2 * q_hi * s1_up + q_hi * q_hi * n_up;
      const double inside = n[above] - n[below];
      const double err = err_below + err_above + inside * s * s / 12.0;
      if (err < best) {
        best = err;
        *a = static_cast<float>(lo);
        *b = static_cast<float>(hi);
      }
    }
  }
}

}  // namespace tandem
