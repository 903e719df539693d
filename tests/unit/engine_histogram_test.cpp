// The log-linear latency histogram: bucket arithmetic, quantile accuracy against exact order
// statistics, merging, and fixed size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "tandem/telemetry.h"

namespace tandem {
namespace {

TEST(EngineHistogram, BucketsTileTheRange) {
  // Every bucket starts right after the previous one ends, and values map into their bucket.
  for (int b = 1; b < LatencyHistogram::kBuckets; ++b)
    ASSERT_EQ(LatencyHistogram::bucket_low(b), LatencyHistogram::bucket_high(b - 1) + 1) << b;
  std::mt19937_64 rng(1);
  for (int i = 0; i < 100000; ++i) {
    const uint64_t v = rng() >> (rng() % 64);
    const int b = LatencyHistogram::bucket_of(v);
    if (v >= (uint64_t{1} << LatencyHistogram::kMaxExp)) {
      EXPECT_EQ(b, LatencyHistogram::kBuckets - 1);
      continue;
    }
    ASSERT_LE(LatencyHistogram::bucket_low(b), v);
    ASSERT_GE(LatencyHistogram::bucket_high(b), v);
    // Relative width of a bucket is at most 1/32.
    const double width = static_cast<double>(LatencyHistogram::bucket_high(b) - LatencyHistogram::bucket_low(b) + 1);
    if (v >= 32) {
      ASSERT_LE(width / static_cast<double>(LatencyHistogram::bucket_low(b)), 1.0 / 32 + 1e-12);
    }
  }
}

double exact_quantile(std::vector<uint64_t> v, double q) {
  std::sort(v.begin(), v.end());
  size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(v.size())));
  rank = std::clamp<size_t>(rank, 1, v.size());
  return static_cast<double>(v[rank - 1]);
}

TEST(EngineHistogram, QuantilesWithinOneSixtyFourth) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> dist(std::log(2e6), 1.0);  // ~2 ms median, heavy tail
  std::vector<uint64_t> values;
  LatencyHistogram h;
  for (int i = 0; i < 200000; ++i) {
    const uint64_t v = static_cast<uint64_t>(dist(rng));
    values.push_back(v);
    h.record(v);
  }
  ASSERT_EQ(h.count(), values.size());
  for (double q : {0.01, 0.1, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0}) {
    const double exact = exact_quantile(values, q);
    EXPECT_NEAR(h.quantile_ns(q), exact, exact / 64 + 1) << "q=" << q;
  }
  EXPECT_EQ(h.max_ns(), *std::max_element(values.begin(), values.end()));
  EXPECT_EQ(h.min_ns(), *std::min_element(values.begin(), values.end()));
  double sum = 0;
  for (uint64_t v : values) sum += static_cast<double>(v);
  EXPECT_NEAR(h.mean_ns(), sum / static_cast<double>(values.size()), 1e-6 * sum / static_cast<double>(values.size()));
}

TEST(EngineHistogram, SmallValuesAreExact) {
  LatencyHistogram h;
  for (uint64_t v = 0; v < 32; ++v) h.record(v);
  EXPECT_EQ(h.quantile_ns(0.5), 15);
  EXPECT_EQ(h.quantile_ns(1.0), 31);
}

TEST(EngineHistogram, MergeEqualsRecordingEverything) {
  std::mt19937_64 rng(3);
  LatencyHistogram a, b, all;
  for (int i = 0; i < 50000; ++i) {
    const uint64_t v = rng() % 100000000;
    (i % 3 ? a : b).record(v);
    all.record(v);
  }
  LatencyHistogram merged = a;
  merged.merge(b);
  EXPECT_EQ(merged.count(), all.count());
  EXPECT_EQ(merged.min_ns(), all.min_ns());
  EXPECT_EQ(merged.max_ns(), all.max_ns());
  EXPECT_DOUBLE_EQ(merged.sum_ns(), all.sum_ns());
  for (double q : {0.5, 0.9, 0.99, 0.999}) EXPECT_EQ(merged.quantile_ns(q), all.quantile_ns(q));
  // Merging an empty histogram changes nothing.
  LatencyHistogram empty;
  merged.merge(empty);
  EXPECT_EQ(merged.quantile_ns(0.5), all.quantile_ns(0.5));
  EXPECT_EQ(merged.min_ns(), all.min_ns());
}

TEST(EngineHistogram, FixedSizeAndEdgeCases) {
  static_assert(sizeof(LatencyHistogram) < 16 * 1024, "the histogram must stay small and fixed");
  LatencyHistogram h;
  EXPECT_EQ(h.quantile_ns(0.5), 0);
  EXPECT_EQ(h.min_ns(), 0u);
  h.record(UINT64_MAX);  // clamped into the top bucket, max still exact
  h.record_seconds(-1);  // negative counts as 0
  h.record_seconds(0.0015);
  EXPECT_EQ(h.count(), 3u);
  EXPECT_EQ(h.max_ns(), UINT64_MAX);
  EXPECT_EQ(h.min_ns(), 0u);
  EXPECT_NEAR(h.quantile_ns(0.5), 1.5e6, 1.5e6 / 64);
}

}  // namespace
}  // namespace tandem
