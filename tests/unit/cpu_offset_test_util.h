// cpu_offset_test_util.h: what the weight-offset route's tests share (cpu_qconv_offset_test.cpp,
// cpu_qmatmul_offset_test.cpp): whether the plan takes the route, and the cpu backend's results
// against the reference backend's, float32 or 8-bit, at one and two threads.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>

#include "core/compare.h"
#include "cpu_int8_test_util.h"

namespace tandem::int8_test {

// True when `describe` names a weight-offset share kernel.
inline bool offset_route(const std::string& describe_text) {
  return describe_text.find("weight offset") != std::string::npos;
}

// The cpu backend's one float32 output at one and two threads against the reference's, all on
// cpu. The accumulator reaches the float tail as two float32 terms (the int8 part's product and
// the offsets' share) instead of one exact integer: a rounding of each, relative to their size.
// At least `distinct_share` of the outputs must differ from each other (so that the arithmetic is
// exercised, not clipped away by an activation).
inline void expect_floats_match_reference(const GraphBuilder& q, double distinct_share) {
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0);
    ASSERT_EQ(r.cpu.size(), 1u);
    ASSERT_EQ(r.ref.size(), 1u);
    const Status close = compare_values(r.ref[0], r.cpu[0], Tolerance{2e-5, 2e-5});
    EXPECT_TRUE(close.is_ok()) << threads << " thread(s): " << close.to_string();
    const Tensor& y = r.cpu[0].tensor;
    const std::set<float> distinct(y.data<float>(), y.data<float>() + y.numel());
    EXPECT_GT(static_cast<double>(distinct.size()), distinct_share * static_cast<double>(y.numel()))
        << "the outputs exercise the arithmetic";
  }
}

// The cpu backend's one uint8 output at one and two threads against the reference's: within one
// unit (oneDNN rounds the requantized float32 value, the reference a double), under 1% of them
// off. Returns the smallest share, over the runs, of the reference's outputs in (lo, hi).
inline double expect_8bit_matches_reference(const GraphBuilder& q, const std::string& what, int lo, int hi) {
  double share = 1;
  for (int threads : {1, 2}) {
    Runs r = run_both(q, threads);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0);
    if (r.cpu.size() != 1 || r.ref.size() != 1) {
      ADD_FAILURE() << what << ": no output";
      return 0;
    }
    const int64_t n = r.ref[0].tensor.numel();
    EXPECT_LT(expect_within_units(r.ref[0], r.cpu[0], 1, what), n / 100);
    int64_t inside = 0;
    for (int64_t i = 0; i < n; ++i) {
      const int v = r.ref[0].tensor.data<uint8_t>()[i];
      inside += v > lo && v < hi;
    }
    share = std::min(share, static_cast<double>(inside) / static_cast<double>(n));
  }
  return share;
}

}  // namespace tandem::int8_test
