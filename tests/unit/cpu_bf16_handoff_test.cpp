// cpu_bf16_handoff_test.cpp: precision=bf16 convolutions hand their results to the bf16
// convolutions that read them in bfloat16 (conv.cpp, "bf16 hand-off"). A chain must compute on
// each intermediate rounded to bf16 once, as the reference does on an explicitly rounded graph;
// a value with a reader that cannot read bf16 stays float32; one that cannot run in bf16 gets a float32
// copy; an elementwise kernel and a channel Concat hand their results off as a convolution does;
// an elementwise kernel (also gathering an upsampled source) and a global pooling read a result
// held in bf16; and
// TANDEM_CPU_BF16_HANDOFF=0 turns the hand-off off.
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "engine/placement.h"
#include "bf16_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "tandem/compare.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::GraphBuilder;

Backend* cpu() { return find_backend("cpu"); }
Backend* ref() { return find_backend("reference"); }

using testing::random_tensor;
using testing::rounded_to_bf16;

using testing::ScopedEnv;

struct Weights {
  Tensor x = random_tensor({1, 24, 20, 20}, 41, -1.0f, 1.0f);
  Tensor wa = random_tensor({32, 24, 3, 3}, 42, -0.2f, 0.2f);   // dense 3x3
  Tensor wb = random_tensor({32, 1, 3, 3}, 43, -0.5f, 0.5f);    // depthwise 3x3
  Tensor wc = random_tensor({16, 32, 1, 1}, 44, -0.3f, 0.3f);   // 1x1
  Tensor wg = random_tensor({32, 4, 3, 3}, 45, -0.3f, 0.3f);    // 8 groups of 4 channels
};

// Relu -> Conv (dense) -> Relu -> Conv (depthwise) -> Conv (1x1). `round` inserts Casts to
// bfloat16 and back after each convolution whose result the next one reads (and on the
// weights and source), which is what the hand-off computes; `extra` makes the dense
// convolution's result also the input of a MaxPool (a reader that does not read bf16), or with
// `extra_add` of an Add (an elementwise kernel, which widens a bf16 operand as it reads it);
// `grouped` puts a grouped convolution of 4 channels per group second.
GraphBuilder chain(const Weights& t, bool round, bool extra, bool grouped, bool extra_add = false) {
  GraphBuilder b(13);
  auto r = [&](const Tensor& v) { return round ? rounded_to_bf16(v) : v; };
  b.input("x", r(t.x)).init("wa", r(t.wa)).init("wb", r(grouped ? t.wg : t.wb)).init("wc", r(t.wc));
  auto cast_round = [&](const std::string& in, const std::string& out) {
    if (!round) return in;
    b.node("Cast", {in}, {out + "_h"}, {{"to", attr_int(static_cast<int64_t>(DataType::bfloat16))}});
    b.node("Cast", {out + "_h"}, {out}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}});
    return out;
  };
  b.node("Relu", {"x"}, {"r0"});
  b.node("Conv", {"r0", "wa"}, {"a"}, {{"pads", attr_ints({1, 1, 1, 1})}});
  b.node("Relu", {"a"}, {"ar"});
  const std::string ar = cast_round("ar", "ar_r");
  b.node("Conv", {ar, "wb"}, {"bv"}, {{"pads", attr_ints({1, 1, 1, 1})}, {"group", attr_int(grouped ? 8 : 32)}});
  const std::string bv = cast_round("bv", "bv_r");
  b.node("Conv", {bv, "wc"}, {"y"}).output("y");
  if (extra && extra_add) b.node("Add", {ar, ar}, {"twice"}).output("twice");
  else if (extra) b.node("MaxPool", {"ar"}, {"pooled"}, {{"kernel_shape", attr_ints({2, 2})}}).output("pooled");
  return b;
}

struct Bf16Run {
  std::vector<Value> out;
  std::string text;
};

Bf16Run run_bf16(const GraphBuilder& g) {
  CompileOptions bf16;
  bf16.precision = Precision::bf16;
  Bf16Run r;
  auto placed = PlacedModel::create(g.graph(), {cpu()}, bf16);
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  if (!placed.is_ok()) return r;
  EXPECT_TRUE((*placed)->run(g.feeds(), &r.out).is_ok());
  r.text = (*placed)->describe();
  return r;
}

std::vector<Value> run_reference(const GraphBuilder& g) {
  std::vector<Value> out;
  auto placed = PlacedModel::create(g.graph(), {ref()});
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  if (placed.is_ok()) {
    EXPECT_TRUE((*placed)->run(g.feeds(), &out).is_ok());
  }
  return out;
}

TEST(CpuBf16Handoff, AChainComputesOnEachResultRoundedOnce) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Bf16Run got = run_bf16(chain(t, false, false, false));
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_NE(got.text.find("bf16 hand-off: 2 values"), std::string::npos) << got.text;
  const std::vector<Value> exact = run_reference(chain(t, true, false, false));
  const std::vector<Value> wide = run_reference(chain(t, false, false, false));
  ASSERT_EQ(exact.size(), 1u);
  ASSERT_EQ(wide.size(), 1u);
  const ErrorStats e = error_stats(exact[0].tensor, got.out[0].tensor);
  const ErrorStats f = error_stats(wide[0].tensor, got.out[0].tensor);
  // Accumulation order may move a sum across a bf16 rounding boundary now and then (one bf16
  // step of the intermediate), so the bound is on the RMSE as well as a loose max.
  EXPECT_LT(e.rmse, 2e-4) << "the chain does not compute on its intermediates rounded to bf16";
  EXPECT_LT(e.max_abs, 1e-2);
  EXPECT_GT(f.rmse, 5 * e.rmse) << "the intermediates were not rounded (float32 answer)";
}

TEST(CpuBf16Handoff, AResultWithAnotherReaderStaysFloat32) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Bf16Run got = run_bf16(chain(t, false, true, false));
  ASSERT_EQ(got.out.size(), 2u);
  // Only the depthwise result is handed off: the dense one is also read by the MaxPool.
  EXPECT_NE(got.text.find("bf16 hand-off: 1 values"), std::string::npos) << got.text;
  // The MaxPool reads the dense convolution's float32 result, computed on bf16 operands with
  // float32 sums: the reference on the rounded operands, without rounding the result.
  const std::vector<Value> exact = run_reference(chain(t, true, true, false));
  ASSERT_EQ(exact.size(), 2u);
  EXPECT_LT(error_stats(exact[1].tensor, got.out[1].tensor).max_abs, 1e-4) << "the MaxPool read a rounded result";
  EXPECT_LT(error_stats(exact[0].tensor, got.out[0].tensor).rmse, 2e-4);
}

// The same with an Add as the other reader: the elementwise kernel reads the result held in
// bf16 (widening it exactly), so both results are handed off and the Add's sum is that of the
// rounded values.
TEST(CpuBf16Handoff, AnElementwiseReaderReadsTheResultInBf16) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Bf16Run got = run_bf16(chain(t, false, true, false, true));
  ASSERT_EQ(got.out.size(), 2u);
  EXPECT_NE(got.text.find("bf16 hand-off: 2 values"), std::string::npos) << got.text;
  const std::vector<Value> exact = run_reference(chain(t, true, true, false, true));
  const std::vector<Value> wide = run_reference(chain(t, false, true, false, true));
  ASSERT_EQ(exact.size(), 2u);
  ASSERT_EQ(wide.size(), 2u);
  const ErrorStats e = error_stats(exact[1].tensor, got.out[1].tensor);
  EXPECT_LT(e.rmse, 1e-4) << "the Add did not read the rounded result";
  EXPECT_GT(error_stats(wide[1].tensor, got.out[1].tensor).rmse, 5 * e.rmse) << "the Add read a float32 result";
  EXPECT_LT(error_stats(exact[0].tensor, got.out[0].tensor).rmse, 2e-4);
}

TEST(CpuBf16Handoff, AReaderInFloat32GetsAWidenedCopy) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Bf16Run got = run_bf16(chain(t, false, false, true));
  ASSERT_EQ(got.out.size(), 1u);
  const std::vector<Value> wide = run_reference(chain(t, false, false, true));
  ASSERT_EQ(wide.size(), 1u);
  EXPECT_LT(error_stats(wide[0].tensor, got.out[0].tensor).max_abs, 5e-2) << got.text;
  // oneDNN has no bf16 kernel for 4 channels per group in the blocked layout: the grouped
  // convolution runs in float32 on a widened copy of the handed-off result (or, where it does
  // run in bf16, reads it as it lies).
  const bool widened = got.text.find("float32 copy of bf16") != std::string::npos;
  const bool handed = got.text.find("bf16 hand-off: 2 values") != std::string::npos;
  EXPECT_TRUE(widened != handed) << got.text;
}

// Conv -> Add (a full-size second operand: an elementwise kernel, not a post-op) -> Conv: the
// elementwise kernel writes its result in bf16 for the 1x1 convolution.
TEST(CpuBf16Handoff, AnElementwiseResultIsHandedOffToo) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Tensor other = random_tensor({1, 32, 20, 20}, 46, -1.0f, 1.0f);
  auto graph = [&](bool round) {
    GraphBuilder b(13);
    auto r = [&](const Tensor& v) { return round ? rounded_to_bf16(v) : v; };
    b.input("x", r(t.x)).input("o", other).init("wa", r(t.wa)).init("wc", r(t.wc));
    b.node("Conv", {"x", "wa"}, {"a"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    b.node("Add", {"a", "o"}, {"s"});
    std::string s = "s";
    if (round) {
      b.node("Cast", {"s"}, {"s_h"}, {{"to", attr_int(static_cast<int64_t>(DataType::bfloat16))}});
      b.node("Cast", {"s_h"}, {"s_r"}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}});
      s = "s_r";
    }
    b.node("Conv", {s, "wc"}, {"y"}).output("y");
    return b;
  };
  const Bf16Run got = run_bf16(graph(false));
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_NE(got.text.find("bf16 hand-off: 1 values"), std::string::npos) << got.text;
  const std::vector<Value> exact = run_reference(graph(true));
  const std::vector<Value> wide = run_reference(graph(false));
  ASSERT_EQ(exact.size(), 1u);
  const ErrorStats e = error_stats(exact[0].tensor, got.out[0].tensor);
  EXPECT_LT(e.rmse, 2e-4) << "the 1x1 convolution does not read the sum rounded to bf16";
  EXPECT_LT(e.max_abs, 1e-2);
  EXPECT_GT(error_stats(wide[0].tensor, got.out[0].tensor).rmse, 5 * e.rmse);
}

// Conv, Conv -> Concat along channels -> Conv: the Concat writes bf16 for the last convolution,
// both where its inputs' channels fill whole blocks (16 + 16) and where they do not (24 + 24,
// lanes gathered across blocks).
TEST(CpuBf16Handoff, AConcatenationIsHandedOffToo) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  for (int64_t c : {16, 24}) {
    const Tensor w1 = random_tensor({c, 24, 1, 1}, 47, -0.2f, 0.2f), w2 = random_tensor({c, 24, 1, 1}, 48, -0.3f, 0.3f);
    const Tensor w3 = random_tensor({8, 2 * c, 3, 3}, 49, -0.1f, 0.1f);
    auto graph = [&](bool round) {
      GraphBuilder b(13);
      // The two 1x1 convolutions are too small for bf16 (float32, as their only reader is the
      // Concat): only the last one computes on bf16 operands.
      b.input("x", t.x).init("w1", w1).init("w2", w2).init("w3", round ? rounded_to_bf16(w3) : w3);
      b.node("Conv", {"x", "w1"}, {"a"});
      b.node("Relu", {"x"}, {"xr"});
      b.node("Conv", {"xr", "w2"}, {"bv"});
      b.node("Concat", {"a", "bv"}, {"cat"}, {{"axis", attr_int(1)}});
      std::string cat = "cat";
      if (round) {
        b.node("Cast", {"cat"}, {"cat_h"}, {{"to", attr_int(static_cast<int64_t>(DataType::bfloat16))}});
        b.node("Cast", {"cat_h"}, {"cat_r"}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}});
        cat = "cat_r";
      }
      b.node("Conv", {cat, "w3"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}}).output("y");
      return b;
    };
    const Bf16Run got = run_bf16(graph(false));
    ASSERT_EQ(got.out.size(), 1u);
    EXPECT_NE(got.text.find("bf16 hand-off: 1 values"), std::string::npos) << c << " channels each\n" << got.text;
    const std::vector<Value> exact = run_reference(graph(true));
    const std::vector<Value> wide = run_reference(graph(false));
    ASSERT_EQ(exact.size(), 1u);
    const ErrorStats e = error_stats(exact[0].tensor, got.out[0].tensor);
    EXPECT_LT(e.rmse, 2e-4) << c << " channels each: the convolution does not read the concatenation rounded to bf16";
    EXPECT_LT(e.max_abs, 1e-2);
    EXPECT_GT(error_stats(wide[0].tensor, got.out[0].tensor).rmse, 5 * e.rmse) << c << " channels each";
  }
}

// A squeeze-excite block: Conv -> GlobalAveragePool -> 1x1 Conv -> HardSigmoid -> Mul with the
// first convolution's result -> Conv. The pooling sums that result held in bf16 and the
// gate's elementwise kernel widens it, so it is handed off; so is the gated product the last
// convolution reads.
TEST(CpuBf16Handoff, ASqueezeExciteBlockReadsItsActivationsInBf16) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Tensor ws = random_tensor({32, 32, 1, 1}, 50, -0.5f, 0.5f);
  auto graph = [&](bool round) {
    GraphBuilder b(13);
    auto r = [&](const Tensor& v) { return round ? rounded_to_bf16(v) : v; };
    auto cast_round = [&](const std::string& in) { return round ? testing::cast_through_bf16(b, in) : in; };
    b.input("x", r(t.x)).init("wa", r(t.wa)).init("ws", ws).init("wc", r(t.wc));
    b.node("Conv", {"x", "wa"}, {"a"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    const std::string a = cast_round("a");
    b.node("GlobalAveragePool", {a}, {"pooled"});
    b.node("Conv", {"pooled", "ws"}, {"s"});
    b.node("HardSigmoid", {"s"}, {"gate"});
    b.node("Mul", {a, "gate"}, {"gated"});
    b.node("Conv", {cast_round("gated"), "wc"}, {"y"}).output("y");
    return b;
  };
  const Bf16Run got = run_bf16(graph(false));
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_NE(got.text.find("bf16 hand-off: 2 values"), std::string::npos) << got.text;
  const std::vector<Value> exact = run_reference(graph(true));
  const std::vector<Value> wide = run_reference(graph(false));
  ASSERT_EQ(exact.size(), 1u);
  const ErrorStats e = error_stats(exact[0].tensor, got.out[0].tensor);
  EXPECT_LT(e.rmse, 2e-4) << "the block does not compute on its activations rounded to bf16";
  EXPECT_LT(e.max_abs, 1e-2);
  EXPECT_GT(error_stats(wide[0].tensor, got.out[0].tensor).rmse, 5 * e.rmse);
}

// A convolution's result that a bf16 convolution reads and a nearest Resize upsamples into a
// sum (a feature pyramid's top-down path): the sum gathers the upsampled pixels from the
// result held in bf16, widening them, so the result is handed off to both.
TEST(CpuBf16Handoff, AnUpsampledSourceIsGatheredInBf16) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  const testing::ExactBf16Scope exact_bf16;
  const Weights t;
  const Tensor y = random_tensor({1, 32, 40, 40}, 51, -1.0f, 1.0f);
  auto graph = [&](bool round) {
    GraphBuilder b(13);
    auto r = [&](const Tensor& v) { return round ? rounded_to_bf16(v) : v; };
    b.input("x", r(t.x)).input("y", y).init("wa", r(t.wa)).init("wc", r(t.wc));
    b.init("roi", Tensor::from_vector<float>({0}, {})).init("scales", Tensor::from_vector<float>({4}, {1, 1, 2, 2}));
    b.node("Conv", {"x", "wa"}, {"a"}, {{"pads", attr_ints({1, 1, 1, 1})}});
    const std::string a = round ? testing::cast_through_bf16(b, "a") : "a";
    b.node("Conv", {a, "wc"}, {"z"}).output("z");
    b.node("Resize", {a, "roi", "scales"}, {"up"}, {{"mode", attr_string("nearest")}});
    b.node("Add", {"up", "y"}, {"s"}).output("s");
    return b;
  };
  const Bf16Run got = run_bf16(graph(false));
  ASSERT_EQ(got.out.size(), 2u);
  EXPECT_NE(got.text.find("bf16 hand-off: 1 values"), std::string::npos) << got.text;
  EXPECT_NE(got.text.find("(upsampled operand)"), std::string::npos) << got.text;
  const std::vector<Value> exact = run_reference(graph(true));
  const std::vector<Value> wide = run_reference(graph(false));
  ASSERT_EQ(exact.size(), 2u);
  const ErrorStats e = error_stats(exact[1].tensor, got.out[1].tensor);
  EXPECT_LT(e.rmse, 1e-4) << "the sum did not gather the rounded result";
  EXPECT_GT(error_stats(wide[1].tensor, got.out[1].tensor).rmse, 5 * e.rmse) << "the sum gathered float32";
  EXPECT_LT(error_stats(exact[0].tensor, got.out[0].tensor).rmse, 2e-4);
}

TEST(CpuBf16Handoff, OffWhenTheEnvironmentSaysSo) {
  if (!cpu() || !cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU";
  const testing::ExactBf16Scope exact_bf16;
  ScopedEnv off("TANDEM_CPU_BF16_HANDOFF", "0");
  const Weights t;
  const Bf16Run got = run_bf16(chain(t, false, false, false));
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.text.find("bf16 hand-off"), std::string::npos) << got.text;
  const std::vector<Value> wide = run_reference(chain(t, false, false, false));
  EXPECT_LT(error_stats(wide[0].tensor, got.out[0].tensor).max_abs, 5e-2);
}

}  // namespace
}  // namespace tandem
