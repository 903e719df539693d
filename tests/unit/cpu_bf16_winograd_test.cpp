// cpu_bf16_winograd_test.cpp: with precision=bf16 a 3x3 stride-1 convolution runs the backend's
// Winograd F(2x2, 3x3) kernel on bf16 products (conv_winograd.h). Its transformed operands are
// rounded, not the graph's, so each case is held to the error of oneDNN's direct bf16 kernel on
// the same graph (TANDEM_CPU_BF16_WINOGRAD=0), against the float32 reference: a tile or channel
// out of place would be off by the values themselves, hundreds of times that. The cases cover
// channel counts off the 16-lane blocks, odd and even output sizes, zero and uneven padding, two
// images, every output-block grouping of the products, a bfloat16 source and result (hand-offs),
// a program after the bias and many chunks of tiles on two threads; geometries it does not take
// stay on oneDNN.
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

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::GraphBuilder;
using testing::random_tensor;
using testing::ScopedEnv;

Backend* cpu() { return find_backend("cpu"); }

struct Case {
  int64_t N, C, H, W, O;
  std::vector<int64_t> pads;  // top, left, bottom, right
  bool handed_in = false;     // a 1x1 bf16 convolution hands the source off in bf16
  bool handed_out = false;    // a 1x1 bf16 convolution reads the result in bf16
  const char* act = "Relu";   // after the bias
};

GraphBuilder graph(const Case& c) {
  GraphBuilder b(13);
  b.input("x", random_tensor({c.N, c.C, c.H, c.W}, 71, -1.0f, 1.0f));
  b.init("w", random_tensor({c.O, c.C, 3, 3}, 72, -0.15f, 0.15f)).init("bias", random_tensor({c.O}, 73, -0.2f, 0.2f));
  std::string src = "x";
  if (c.handed_in) {
    b.init("w_in", random_tensor({c.C, c.C, 1, 1}, 74, -0.3f, 0.3f));
    b.node("Conv", {"x", "w_in"}, {"a"});
    b.node("Relu", {"a"}, {"ar"});
    src = "ar";
  }
  b.node("Conv", {src, "w", "bias"}, {"y"}, {{"pads", attr_ints({c.pads[0], c.pads[1], c.pads[2], c.pads[3]})}});
  std::map<std::string, Attribute> act_attrs;
  if (std::string(c.act) == "HardSigmoid") act_attrs = {{"alpha", attr_float(0.2f)}, {"beta", attr_float(0.5f)}};
  b.node(c.act, {"y"}, {"z"}, act_attrs);
  if (!c.handed_out) {
    b.output("z");
    return b;
  }
  b.init("w_out", random_tensor({8, c.O, 1, 1}, 75, -0.3f, 0.3f));
  b.node("Conv", {"z", "w_out"}, {"out"}).output("out");
  return b;
}

using Outcome = testing::Bf16Outcome;
// Two threads where the model is large enough for the backend to take them: the kernel's chunks
// of tiles then run concurrently, each in its own scratch.
Outcome run(const GraphBuilder& g, bool bf16) { return testing::run_bf16_or_reference(g, bf16, 2); }

std::string where(const Case& c) {
  std::string s = "N " + std::to_string(c.N) + " C " + std::to_string(c.C) + " " + std::to_string(c.H) + "x" +
                  std::to_string(c.W) + " O " + std::to_string(c.O) + " pads";
  for (int64_t p : c.pads) s += " " + std::to_string(p);
  return s + (c.handed_in ? ", source handed off" : "") + (c.handed_out ? ", result handed off" : "") + ", " + c.act;
}

TEST(CpuBf16Winograd, MatchesTheDirectKernelsError) {
  SKIP_UNLESS_BF16_BLOCKED_ROUTE(cpu());
  ScopedEnv always("TANDEM_CPU_BF16", "always");
  // (Each large enough for the backend to take bf16 at all: 2e6 multiply-adds, 64 per value.)
  const Case cases[] = {
      {1, 96, 20, 20, 24, {1, 1, 1, 1}},                             // a text detector's head: two output blocks
      {1, 20, 17, 19, 40, {1, 1, 1, 1}},                            // channels off the blocks, odd sizes, three blocks
      {1, 32, 28, 26, 12, {0, 0, 0, 0}},                             // no padding, one block, four lanes idle
      {1, 16, 23, 25, 24, {2, 1, 0, 2}},                             // uneven padding
      {2, 16, 12, 12, 80, {1, 1, 1, 1}},                             // two images, five blocks (one at a time)
      {1, 64, 10, 12, 128, {1, 1, 1, 1}},                            // eight blocks (two at a time)
      {1, 48, 14, 18, 24, {1, 1, 1, 1}, true, false},                // a bf16 source
      {1, 48, 14, 18, 20, {1, 1, 1, 1}, true, true, "HardSigmoid"},  // bf16 both ways, a program off zero
      {1, 96, 80, 80, 24, {1, 1, 1, 1}},                             // many chunks, on two threads
  };
  for (const Case& c : cases) {
    const GraphBuilder g = graph(c);
    const Outcome exact = run(g, false);
    const Outcome got = run(g, true);
    Outcome direct;
    {
      ScopedEnv off("TANDEM_CPU_BF16_WINOGRAD", "0");
      direct = run(g, true);
    }
    ASSERT_EQ(got.out.size(), 1u);
    ASSERT_EQ(exact.out.size(), 1u);
    ASSERT_EQ(direct.out.size(), 1u);
    const std::string at = where(c) + "\n" + got.text;
    EXPECT_NE(got.text.find(c.handed_in ? "(bf16 Winograd, source handed off)" : "(bf16 Winograd)"), std::string::npos)
        << at;
    EXPECT_EQ(direct.text.find("Winograd"), std::string::npos) << direct.text;
    const ErrorStats e = error_stats(exact.out[0].tensor, got.out[0].tensor);
    const ErrorStats d = error_stats(exact.out[0].tensor, direct.out[0].tensor);
    EXPECT_GT(e.rmse, 0.0) << "no bf16 rounding at all: " << at;
    EXPECT_LT(e.rmse, 3 * d.rmse + 1e-6) << "direct bf16 RMSE " << d.rmse << ": " << at;
    EXPECT_LT(e.max_abs, 4 * d.max_abs + 1e-5) << "direct bf16 max-abs " << d.max_abs << ": " << at;
    EXPECT_LT(e.max_abs, 3e-2) << at;
  }
}

TEST(CpuBf16Winograd, OtherGeometriesAndTheSwitchKeepOneDnn) {
  if (!cpu() || !cpu::has_native_bf16() || cpu::cpu_isa_level() < 2) GTEST_SKIP() << "no AVX512_BF16 cpu backend";
  ScopedEnv always("TANDEM_CPU_BF16", "always");
  struct Other {
    const char* what;
    std::map<std::string, Attribute> attrs;
    int64_t group;
  };
  const Other others[] = {
      {"stride 2", {{"pads", attr_ints({1, 1, 1, 1})}, {"strides", attr_ints({2, 2})}}, 1},
      {"dilation 2", {{"pads", attr_ints({2, 2, 2, 2})}, {"dilations", attr_ints({2, 2})}}, 1},
      {"two groups", {{"pads", attr_ints({1, 1, 1, 1})}, {"group", attr_int(2)}}, 2},
  };
  for (const Other& o : others) {
    GraphBuilder g(13);
    g.input("x", random_tensor({1, 32, 12, 12}, 81, -1.0f, 1.0f));
    g.init("w", random_tensor({32, 32 / o.group, 3, 3}, 82, -0.15f, 0.15f));
    g.node("Conv", {"x", "w"}, {"y"}, o.attrs).output("y");
    const Outcome got = run(g, true);
    const Outcome exact = run(g, false);
    ASSERT_EQ(got.out.size(), 1u) << o.what;
    EXPECT_EQ(got.text.find("Winograd"), std::string::npos) << o.what << "\n" << got.text;
    EXPECT_LT(error_stats(exact.out[0].tensor, got.out[0].tensor).max_abs, 3e-2) << o.what;
  }
  const Case c{1, 32, 12, 12, 24, {1, 1, 1, 1}};
  ScopedEnv off("TANDEM_CPU_BF16_WINOGRAD", "0");
  const Outcome got = run(graph(c), true);
  ASSERT_EQ(got.out.size(), 1u);
  EXPECT_EQ(got.text.find("Winograd"), std::string::npos) << got.text;
}

}  // namespace
}  // namespace tandem
