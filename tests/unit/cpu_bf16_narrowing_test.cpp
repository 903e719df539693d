// cpu_bf16_narrowing_test.cpp: the narrowing of float32 activations to bfloat16 that
// precision=bf16 products read (cast.h). The loop must round exactly as the bfloat16 type does
// (to nearest even, every tail length), and a bf16 convolution reading a narrowed blocked value
// whose channel count leaves padded lanes must give the answer of its operands rounded to bf16.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cast.h"
#include "backends/cpu/runtime_env.h"
#include "tandem/compare.h"
#include "engine/placement.h"
#include "bf16_test_util.h"
#include "graph_build_util.h"
#include "scoped_env.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_ints;
using testing::GraphBuilder;

Backend* cpu() { return find_backend("cpu"); }
Backend* ref() { return find_backend("reference"); }

using testing::random_tensor;
using testing::rounded_to_bf16;

TEST(CpuBf16Narrowing, RoundsToNearestEvenAtEveryLength) {
  if (!cpu::has_native_bf16()) GTEST_SKIP() << "no native bf16 on this CPU";
  std::mt19937 gen(7);
  std::uniform_int_distribution<uint32_t> bits;
  std::vector<float> values;
  // Ties in both directions, the largest finite value (rounds to infinity), denormals, zeros,
  // infinities, and random bit patterns that are not NaN.
  for (uint32_t b : {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x7f7fffffu, 0x00000001u, 0x80000000u, 0x7f800000u,
                     0xff800000u, 0x00800000u})
    values.push_back(std::bit_cast<float>(b));
  while (values.size() < 200) {
    const float f = std::bit_cast<float>(bits(gen));
    if (!std::isnan(f)) values.push_back(f);
  }
  for (size_t n = 1; n <= 70; ++n) {
    std::vector<uint16_t> got(n + 1, 0xabcd);
    cpu::narrow_to_bf16(values.data(), got.data(), static_cast<int64_t>(n));
    for (size_t i = 0; i < n; ++i) {
      const float v = values[i];
      // vcvtne2ps2bf16 treats denormal inputs as zero (keeping the sign), as oneDNN's
      // reorders on this ISA do.
      const bool denormal = std::fpclassify(v) == FP_SUBNORMAL;
      const uint16_t want = denormal ? static_cast<uint16_t>(std::signbit(v) ? 0x8000 : 0) : BFloat16(v).bits;
      ASSERT_EQ(got[i], want) << "n " << n << ", element " << i << " (" << v << ")";
    }
    EXPECT_EQ(got[n], 0xabcd) << "wrote past the end at n " << n;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint16_t out = 0;
  cpu::narrow_to_bf16(&nan, &out, 1);
  EXPECT_TRUE(std::isnan(static_cast<float>(std::bit_cast<BFloat16>(out))));
}

// 24 channels (one and a half blocks of 16): the narrowed copy's padded lanes are read by the
// bf16 convolution. The Relu in front makes the convolution's source an activation the backend
// narrows at run time (a graph input would be narrowed the same way, but a Relu output is what
// the models have).
TEST(CpuBf16Narrowing, ABf16ConvolutionSeesItsSourceRoundedToBf16) {
  if (!cpu() || !cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU";
  const testing::ExactBf16Scope exact_bf16;
  const Tensor x = random_tensor({1, 24, 40, 40}, 31, -1.0f, 1.0f);
  const Tensor w = random_tensor({32, 24, 3, 3}, 32, -0.2f, 0.2f);
  auto graph = [&](const Tensor& xv, const Tensor& wv) {
    GraphBuilder b(13);
    b.input("x", xv).init("w", wv);
    b.node("Relu", {"x"}, {"r"});
    b.node("Conv", {"r", "w"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}}).output("y");
    return b;
  };
  CompileOptions bf16;
  bf16.precision = Precision::bf16;
  const GraphBuilder fast_graph = graph(x, w);
  auto fast = PlacedModel::create(fast_graph.graph(), {cpu()}, bf16);
  ASSERT_TRUE(fast.is_ok()) << fast.status().to_string();
  // The answer with both operands rounded to bf16 first (Relu commutes with the rounding).
  const GraphBuilder exact_graph = graph(rounded_to_bf16(x), rounded_to_bf16(w));
  auto exact = PlacedModel::create(exact_graph.graph(), {ref()});
  ASSERT_TRUE(exact.is_ok()) << exact.status().to_string();
  std::vector<Value> got, want;
  ASSERT_TRUE((*fast)->run(fast_graph.feeds(), &got).is_ok());
  ASSERT_TRUE((*exact)->run(exact_graph.feeds(), &want).is_ok());
  const ErrorStats e = error_stats(want[0].tensor, got[0].tensor);
  EXPECT_LT(e.max_abs, 1e-4) << "the bf16 path does not compute on the bf16-rounded operands";
  // And it is not the float32 answer: the operands really were rounded.
  const GraphBuilder float_graph = graph(x, w);
  auto plain = PlacedModel::create(float_graph.graph(), {ref()});
  ASSERT_TRUE(plain.is_ok());
  std::vector<Value> f32;
  ASSERT_TRUE((*plain)->run(float_graph.feeds(), &f32).is_ok());
  EXPECT_GT(error_stats(f32[0].tensor, got[0].tensor).max_abs, 10 * e.max_abs);
}

}  // namespace
}  // namespace tandem
