// cpu_bf16_deconv_test.cpp: with precision=bf16 the backend's patch ConvTranspose (kernel equal
// to stride, deconv_patch.h) computes on bfloat16 products: its weights and source rounded to
// bf16, a chained second stage reading the first's results rounded, float32 sums. Each case is
// checked against the reference on a graph that rounds the same values explicitly (Casts to
// bfloat16 and back), and against the unrounded graph to show the rounding happened; a source
// that a bf16 convolution hands off is read as it lies, a float32 source is rounded row by row,
// and TANDEM_CPU_BF16_DECONV=0 keeps the float32 products.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "bf16_test_util.h"
#include "engine/placement.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "scoped_env.h"
#include "tandem/compare.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::GraphBuilder;
using testing::random_tensor;
using testing::rounded_to_bf16;
using testing::ScopedEnv;

Backend* cpu() { return find_backend("cpu"); }

// x [1, C, 12, 10] -> (a 3x3 convolution to D channels and Relu, when `conv`) -> ConvTranspose
// to D2 channels, k = s = 2, with bias -> Relu -> (when O2 > 0: ConvTranspose to O2 channels,
// k = s = 2, with bias -> Sigmoid).
struct Case {
  int64_t C, D, D2, O2;
  bool conv;
  const char* expect;  // in describe()
};

struct Tensors {
  Tensor x, wa, w1, b1, w2, b2;
  explicit Tensors(const Case& c)
      : x(random_tensor({1, c.C, 12, 10}, 61, -1.0f, 1.0f)),
        wa(random_tensor({c.D, c.C, 3, 3}, 62, -0.2f, 0.2f)),
        w1(random_tensor({c.conv ? c.D : c.C, c.D2, 2, 2}, 63, -0.3f, 0.3f)),
        b1(random_tensor({c.D2}, 64, -0.1f, 0.1f)),
        w2(random_tensor({c.D2, c.O2 > 0 ? c.O2 : 1, 2, 2}, 65, -0.3f, 0.3f)),
        b2(random_tensor({c.O2 > 0 ? c.O2 : 1}, 66, -0.1f, 0.1f)) {}
};

GraphBuilder graph(const Case& c, const Tensors& t, bool round) {
  GraphBuilder b(13);
  auto r = [&](const Tensor& v) { return round ? rounded_to_bf16(v) : v; };
  auto cast_round = [&](const std::string& in) { return round ? testing::cast_through_bf16(b, in) : in; };
  b.input("x", c.conv ? t.x : r(t.x)).init("w1", r(t.w1)).init("b1", t.b1);
  std::string src = "x";
  if (c.conv) {
    b.init("wa", r(t.wa));
    b.node("Conv", {cast_round("x"), "wa"}, {"a"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    b.node("Relu", {"a"}, {"ar"});
    src = cast_round("ar");
  }
  const std::map<std::string, Attribute> patch = {{"kernel_shape", attr_ints({2, 2})},
                                                  {"strides", attr_ints({2, 2})}};
  b.node("ConvTranspose", {src, "w1", "b1"}, {"t1"}, patch);
  b.node("Relu", {"t1"}, {"r1"});
  if (c.O2 == 0) {
    b.output("r1");
    return b;
  }
  b.init("w2", r(t.w2)).init("b2", t.b2);
  b.node("ConvTranspose", {cast_round("r1"), "w2", "b2"}, {"t2"}, patch);
  b.node("Sigmoid", {"t2"}, {"y"}).output("y");
  return b;
}

using Outcome = testing::Bf16Outcome;
Outcome run(const GraphBuilder& g, bool bf16) { return testing::run_bf16_or_reference(g, bf16); }

TEST(CpuBf16Deconv, PatchStagesComputeOnRoundedOperands) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Case cases[] = {
      {24, 24, 24, 1, true, "(bf16 products, source handed off)"},  // a text detector's head
      {24, 19, 6, 3, true, "(bf16 products, source handed off)"},  // an odd channel pair in the block
      {21, 0, 8, 0, false, "(bf16 products)"},                     // alone, on a float32 source
      {40, 0, 32, 4, false, "(bf16 products)"},                    // three source blocks, 128 + 16 lanes
  };
  for (const Case& c : cases) {
    const Tensors t(c);
    const Outcome got = run(graph(c, t, false), true);
    ASSERT_EQ(got.out.size(), 1u);
    const std::string at = "C " + std::to_string(c.C) + ", D2 " + std::to_string(c.D2) + "\n" + got.text;
    EXPECT_NE(got.text.find(c.expect), std::string::npos) << at;
    const Outcome exact = run(graph(c, t, true), false);
    const Outcome wide = run(graph(c, t, false), false);
    ASSERT_EQ(exact.out.size(), 1u);
    ASSERT_EQ(wide.out.size(), 1u);
    const ErrorStats e = error_stats(exact.out[0].tensor, got.out[0].tensor);
    EXPECT_LT(e.rmse, 2e-4) << "not the bf16 products of the rounded operands: " << at;
    EXPECT_LT(e.max_abs, 1e-2) << at;
    EXPECT_GT(error_stats(wide.out[0].tensor, got.out[0].tensor).rmse, 5 * e.rmse) << "float32 products: " << at;
  }
}

TEST(CpuBf16Deconv, OffWhenTheEnvironmentSaysSo) {
  if (!cpu() || !cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU";
  const testing::ExactBf16Scope exact_bf16;
  ScopedEnv off("TANDEM_CPU_BF16_DECONV", "0");
  const Case c{24, 24, 24, 1, true, ""};
  const Tensors t(c);
  const Outcome got = run(graph(c, t, false), true);
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.text.find("bf16 products"), std::string::npos) << got.text;
  const Outcome wide = run(graph(c, t, false), false);
  EXPECT_LT(error_stats(wide.out[0].tensor, got.out[0].tensor).max_abs, 5e-2);
}

}  // namespace
}  // namespace tandem
