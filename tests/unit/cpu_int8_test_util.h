// cpu_int8_test_util.h: what the cpu backend's quantized-op tests share (cpu_int8_test.cpp,
// cpu_qdq_ops_test.cpp): random 8-bit and float tensors, running a graph on the cpu backend and
// on the reference backend alone, and comparing 8-bit results unit by unit.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/int8.h"
#include "engine/placement.h"
#include "graph_build_util.h"

namespace tandem::int8_test {

using testing::GraphBuilder;

inline Backend* cpu_backend() { return find_backend("cpu"); }
inline Backend* ref() { return find_backend("reference"); }

#define REQUIRE_CPU() \
  if (!cpu_backend()) GTEST_SKIP() << "this build has no cpu backend"

template <class T>
inline Tensor random_ints(const Shape& shape, int lo, int hi, uint32_t seed) {
  Tensor t(dtype_of<T>(), shape);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

// The largest int8 weight magnitude oneDNN's int8 kernels multiply exactly on this CPU: 127
// with VNNI, kNoVnniWeightMax without (there u8 x s8 pairs are summed in saturating int16, and
// wider weights take the float32 route or the own integer kernel, which other tests cover).
// Tests of the oneDNN int8 path draw their weights within it.
// The cpu backend's ISA level as `describe` names it: 2 avx512, 1 avx2, 0 baseline.
inline int cpu_isa_level_of(const std::string& describe_text) {
  if (describe_text.find("cpu isa: avx512") != std::string::npos) return 2;
  return describe_text.find("cpu isa: avx2") != std::string::npos ? 1 : 0;
}

inline int onednn_weight_max() { return tandem::cpu::onednn_has_vnni() ? 127 : tandem::cpu::kNoVnniWeightMax; }

inline Tensor random_floats(const Shape& shape, uint32_t seed, float lo, float hi) {
  Tensor t(DataType::float32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

// 1x1 convolution weights [C, C, 1, 1] that pass the input through: a float convolution's
// output is then exactly its input, in the layout the convolution writes.
inline Tensor identity_conv_weights(int64_t C) {
  Tensor w(DataType::float32, {C, C, 1, 1});
  for (int64_t o = 0; o < C; ++o)
    for (int64_t i = 0; i < C; ++i) w.data<float>()[o * C + i] = o == i ? 1.0f : 0.0f;
  return w;
}

inline Tensor f32(std::vector<float> v) { return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v); }

// Runs `q` on cpu (with the reference backend behind it) and on the reference backend alone.
// `cpu_nodes` is how many nodes must be placed on the cpu backend.
struct Runs {
  std::vector<Value> cpu, ref;
  PlacementReport report;
};
inline Runs run_both(const GraphBuilder& q, int threads = 0) {
  Runs r;
  CompileOptions opts;
  opts.threads = threads;
  auto fast = PlacedModel::create(q.graph(), {cpu_backend(), ref()}, opts);
  EXPECT_TRUE(fast.is_ok()) << fast.status().to_string();
  auto slow = PlacedModel::create(q.graph(), {ref()});
  EXPECT_TRUE(slow.is_ok()) << slow.status().to_string();
  if (!fast.is_ok() || !slow.is_ok()) return r;
  r.report = (*fast)->report();
  Status s = (*fast)->run(q.feeds(), &r.cpu);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  s = (*slow)->run(q.feeds(), &r.ref);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return r;
}

inline int nodes_on(const PlacementReport& r, const std::string& backend) {
  auto it = r.nodes_per_backend.find(backend);
  return it == r.nodes_per_backend.end() ? 0 : it->second;
}

// Integer tensors: same type and shape, every element within `units`; returns how many differ.
inline int64_t expect_within_units(const Value& want, const Value& got, int64_t units, const std::string& what) {
  EXPECT_TRUE(want.is_tensor() && got.is_tensor()) << what;
  if (!want.is_tensor() || !got.is_tensor()) return -1;
  const Tensor &a = want.tensor, &b = got.tensor;
  EXPECT_EQ(a.dtype(), b.dtype()) << what;
  EXPECT_EQ(a.shape(), b.shape()) << what;
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return -1;
  auto at = [](const Tensor& t, int64_t i) -> int64_t {
    switch (t.dtype()) {
      case DataType::uint8: return t.data<uint8_t>()[i];
      case DataType::int8: return t.data<int8_t>()[i];
      case DataType::uint16: return t.data<uint16_t>()[i];
      case DataType::int16: return t.data<int16_t>()[i];
      default: return t.data<int32_t>()[i];
    }
  };
  int64_t differ = 0, worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t d = std::llabs(at(a, i) - at(b, i));
    differ += d != 0;
    worst = std::max(worst, d);
  }
  EXPECT_LE(worst, units) << what << ": " << differ << " of " << a.numel() << " elements differ";
  return differ;
}

// Runs `q`, whose three outputs are a DynamicQuantizeLinear's (or integers computed from its
// bytes, then its scale and zero point), at 1 and 2 threads: the integers, the scale and the
// zero point must equal the reference's exactly.
inline void expect_same_dynamic_quantization(const GraphBuilder& q, const std::string& what) {
  for (int threads : {1, 2}) {
    SCOPED_TRACE(std::to_string(threads) + " threads");
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 3u);
    expect_within_units(r.ref[0], r.cpu[0], 0, what);
    EXPECT_EQ(r.ref[1].tensor.data<float>()[0], r.cpu[1].tensor.data<float>()[0]) << what << ": scale";
    expect_within_units(r.ref[2], r.cpu[2], 0, what + ": zero point");
  }
}

// Float tensors: same shape, every element the same bits (NaN included).
inline void expect_same_floats(const Value& want, const Value& got, const std::string& what) {
  ASSERT_TRUE(want.is_tensor() && got.is_tensor()) << what;
  ASSERT_EQ(want.tensor.shape(), got.tensor.shape()) << what;
  const float *a = want.tensor.data<float>(), *b = got.tensor.data<float>();
  int64_t differ = 0, first = -1;
  for (int64_t i = 0; i < want.tensor.numel(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0 && differ++ == 0) first = i;
  EXPECT_EQ(differ, 0) << what << ": first at " << first << ": " << (first >= 0 ? a[first] : 0.0f) << " vs "
                       << (first >= 0 ? b[first] : 0.0f);
}

// What the cpu backend's plan says it runs for `q` (placed on cpu alone).
inline std::string describe_cpu(const GraphBuilder& q) {
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  return placed.is_ok() ? (*placed)->describe() : std::string();
}

}  // namespace tandem::int8_test
