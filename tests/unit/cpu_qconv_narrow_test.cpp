// cpu_qconv_narrow_test.cpp (CpuQConvNarrow, also run under each TANDEM_CPU_ISA cap by ctest):
// QLinearConvs with output channel counts that oneDNN's 16-lane blocks would pad (8, 12, 20, 24,
// 36), which the cpu backend runs on its own int8 kernel with pixels across the lanes
// (src/backends/cpu/qconv_narrow.cpp) where the CPU has AVX512_VNNI. Its requantization is the
// reference kernel's own, so every output byte must equal the reference's: windows of 1x1, 3x3
// and 5x3 with symmetric, asymmetric, no padding and padding past the window, rows whose width is
// not a multiple of 16, one and two passes over the channels, uint8 and int8 outputs, uint8 and
// int8 sources, source zero points 0, 200 and -68 (padding must hold it), a batch of two, one and
// two threads. Counts oneDNN fills, strides and the switch TANDEM_CPU_QNARROW=0 stay on oneDNN.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu_int8_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using testing::attr_ints;
using testing::GraphBuilder;
using testing::ScopedEnv;

using namespace int8_test;

struct Layer {
  int64_t C = 32, O = 24, KH = 3, KW = 3;
  std::vector<int64_t> pads = {1, 1, 1, 1};  // top, left, bottom, right
  int64_t H = 9, W = 37, batch = 1, stride = 1;
  int x_zero_point = 200;
  bool signed_output = false;
  bool signed_input = false;  // an int8 source (x_zero_point - 128 then)
};

std::string trace(const Layer& l) {
  return "C=" + std::to_string(l.C) + " O=" + std::to_string(l.O) + " window " + std::to_string(l.KH) + "x" +
         std::to_string(l.KW) + " pads " + std::to_string(l.pads[0]) + "," + std::to_string(l.pads[1]) + "," +
         std::to_string(l.pads[2]) + "," + std::to_string(l.pads[3]) + " input " + std::to_string(l.H) + "x" +
         std::to_string(l.W) + " batch " + std::to_string(l.batch) + " stride " + std::to_string(l.stride) +
         " x_zero_point " + std::to_string(l.x_zero_point) + (l.signed_output ? " int8 output" : " uint8 output") +
         (l.signed_input ? ", int8 source" : "");
}

// The 8-bit source "x" and its zero point "xz" of layer `l`.
void add_source(const Layer& l, GraphBuilder* q) {
  if (l.signed_input) {
    q->input("x", random_ints<int8_t>({l.batch, l.C, l.H, l.W}, -128, 127, 7))
        .init("xz", Tensor::scalar<int8_t>(static_cast<int8_t>(l.x_zero_point - 128)));
  } else {
    q->input("x", random_ints<uint8_t>({l.batch, l.C, l.H, l.W}, 0, 255, 7))
        .init("xz", Tensor::scalar<uint8_t>(static_cast<uint8_t>(l.x_zero_point)));
  }
}

// x (uint8) -> QLinearConv with per-channel int8 weights (zero point 0) and an int32 bias.
GraphBuilder layer(const Layer& l) {
  std::vector<float> ws;
  std::vector<int32_t> bias;
  for (int64_t o = 0; o < l.O; ++o) {
    ws.push_back(0.0004f + 0.00007f * static_cast<float>(o % 5));
    bias.push_back(static_cast<int32_t>((o % 3 - 1) * 700 + o * 13));
  }
  GraphBuilder q;
  add_source(l, &q);
  q.init("xs", Tensor::scalar<float>(0.05f))
      .init("w", random_ints<int8_t>({l.O, l.C, l.KH, l.KW}, -127, 127, 11))
      .init("ws", Tensor::from_vector<float>({l.O}, ws))
      .init("wz", Tensor::from_vector<int8_t>({l.O}, std::vector<int8_t>(static_cast<size_t>(l.O), 0)))
      .init("ys", Tensor::scalar<float>(0.9f))
      .init("b", Tensor::from_vector<int32_t>({l.O}, bias));
  if (l.signed_output) q.init("yz", Tensor::scalar<int8_t>(-5));
  else q.init("yz", Tensor::scalar<uint8_t>(120));
  q.node("QLinearConv", {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"}, {"y"},
         {{"pads", attr_ints({l.pads[0], l.pads[1], l.pads[2], l.pads[3]})},
          {"strides", attr_ints({l.stride, l.stride})}})
      .output("y");
  return q;
}

// True when this machine and ISA cap run the kernel (AVX-512 with VNNI).
bool narrow_kernel_here(const std::string& text) {
  return cpu_isa_level_of(text) == 2 && __builtin_cpu_supports("avx512vnni");
}

void expect_exact(const GraphBuilder& q, int threads) {
  const Runs r = run_both(q, threads);
  ASSERT_EQ(r.cpu.size(), 1u);
  ASSERT_EQ(r.ref.size(), 1u);
  EXPECT_EQ(nodes_on(r.report, "cpu"), 1);
  expect_within_units(r.ref[0], r.cpu[0], 0, "QLinearConv output");
}

TEST(CpuQConvNarrow, FewOutputChannelsMatchTheReferenceBitForBit) {
  REQUIRE_CPU();
  std::vector<Layer> layers;
  layers.push_back(Layer{});                                                   // 24: one pass of six groups
  layers.push_back(Layer{96, 24, 3, 3, {1, 1, 1, 1}, 12, 160});                // det's layer, ten full vectors
  layers.push_back(Layer{16, 8, 1, 3, {0, 1, 0, 1}, 5, 16});                   // 1x3, one vector exactly
  layers.push_back(Layer{32, 12, 5, 3, {2, 1, 2, 1}, 11, 21});                 // 5x3, a partial vector
  layers.push_back(Layer{8, 36, 3, 3, {1, 1, 1, 1}, 6, 17, 1, 1, 0});          // two passes, zero point 0
  layers.push_back(Layer{12, 20, 3, 3, {0, 0, 0, 0}, 7, 40});                  // no padding: 38 wide
  layers.push_back(Layer{32, 24, 3, 3, {2, 0, 0, 1}, 8, 30, 2, 1, 200, true}); // asymmetric pads, batch, int8
  layers.push_back(Layer{16, 20, 3, 3, {1, 1, 1, 1}, 7, 33, 1, 1, 60, false, true});  // int8 source
  layers.push_back(Layer{8, 12, 3, 1, {1, 0, 1, 0}, 4, 16, 1, 1, 128, true, true});  // 3x1, int8 source, zero point 0
  layers.push_back(Layer{8, 12, 3, 3, {7, 1, 0, 2}, 6, 18, 3});  // top padding past the window, three images
  for (const Layer& l : layers) {
    SCOPED_TRACE(trace(l));
    const GraphBuilder q = layer(l);
    const std::string text = describe_cpu(q);
    if (narrow_kernel_here(text)) {
      EXPECT_NE(text.find("(narrow int8)"), std::string::npos) << text;
    }
    expect_exact(q, 1);
  }
}

TEST(CpuQConvNarrow, TwoThreadsSplitTheRowsExactly) {
  REQUIRE_CPU();
  for (const Layer& l : {Layer{32, 24, 3, 3, {1, 1, 1, 1}, 23, 50, 2}, Layer{8, 12, 3, 3, {1, 1, 1, 1}, 3, 16}}) {
    SCOPED_TRACE(trace(l));
    expect_exact(layer(l), 2);
  }
}

TEST(CpuQConvNarrow, FilledBlocksStridesPointwiseAndTheSwitchStayOnOneDnn) {
  REQUIRE_CPU();
  Layer sixteen;
  sixteen.O = 16;
  Layer strided;
  strided.stride = 2;
  // A 1x1 window: the ring's rewrite of every source row costs more than the padded lanes
  // (12 channels at 160x160: 0.15 ms against oneDNN's 0.11).
  Layer pointwise;
  pointwise.KH = pointwise.KW = 1;
  pointwise.pads = {0, 0, 0, 0};
  Layer narrow;
  for (const Layer* l : {&sixteen, &strided, &pointwise, &narrow}) {
    SCOPED_TRACE(trace(*l));
    const GraphBuilder q = layer(*l);
    ScopedEnv off{"TANDEM_CPU_QNARROW", l == &narrow ? "0" : "1"};
    const std::string text = describe_cpu(q);
    EXPECT_EQ(text.find("(narrow int8)"), std::string::npos) << text;
    // oneDNN rounds a float32 product: within one unit of the reference.
    const Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    ASSERT_EQ(r.ref.size(), 1u);
    expect_within_units(r.ref[0], r.cpu[0], 1, "QLinearConv output");
  }
}

// x -> [DynamicQuantizeLinear] -> ConvInteger -> Cast -> Mul(s) -> Add(bias) -> Sub(shift) ->
// Relu, the dynamic product's s = x_scale * w_scale[o] a runtime [O, 1, 1] value; or, with a
// known 8-bit source and zero point, s a constant.
GraphBuilder integer_layer(const Layer& l, bool dynamic) {
  std::vector<float> ws, bias;
  for (int64_t o = 0; o < l.O; ++o) {
    ws.push_back(0.003f + 0.0002f * static_cast<float>(o % 7));
    bias.push_back(-0.2f + 0.03f * static_cast<float>(o % 9));
  }
  GraphBuilder q;
  q.init("w", random_ints<int8_t>({l.O, l.C, l.KH, l.KW}, -127, 127, 13))
      .init("ws", Tensor::from_vector<float>({l.O, 1, 1}, ws))
      .init("b", Tensor::from_vector<float>({1, l.O, 1, 1}, bias))
      .init("t", Tensor::scalar<float>(0.05f));
  if (dynamic) {
    q.input("xf", random_floats({l.batch, l.C, l.H, l.W}, 17, -0.7f, 1.9f))
        .node("DynamicQuantizeLinear", {"xf"}, {"x", "xs", "xz"})
        .node("Mul", {"xs", "ws"}, {"s"});
  } else {
    add_source(l, &q);
    for (float& v : ws) v *= 0.02f;
    q.init("s", Tensor::from_vector<float>({l.O, 1, 1}, ws));
  }
  q.node("ConvInteger", {"x", "w", "xz"}, {"c"},
         {{"pads", attr_ints({l.pads[0], l.pads[1], l.pads[2], l.pads[3]})},
          {"strides", attr_ints({l.stride, l.stride})}})
      .node("Cast", {"c"}, {"cf"}, {{"to", testing::attr_int(1)}})
      .node("Mul", {"cf", "s"}, {"v"})
      .node("Add", {"v", "b"}, {"vb"})
      .node("Sub", {"vb", "t"}, {"vt"})
      .node("Relu", {"vt"}, {"y"})
      .output("y");
  return q;
}

TEST(CpuQConvNarrow, ConvIntegerFloatTailsMatchTheReferenceBitForBit) {
  REQUIRE_CPU();
  // The accumulator converted to float32 and each product and sum rounded as the separate
  // nodes round them: every float equals the reference's, with a runtime source zero point and
  // scale (dynamic quantization) or known ones, at one and two threads.
  std::vector<Layer> layers;
  layers.push_back(Layer{96, 24, 3, 3, {1, 1, 1, 1}, 12, 160});                // det's layer
  layers.push_back(Layer{32, 12, 5, 3, {2, 1, 2, 1}, 11, 21});                 // 5x3, a partial vector
  layers.push_back(Layer{8, 36, 3, 3, {1, 1, 1, 1}, 6, 17, 2});                // two passes, two images
  layers.push_back(Layer{16, 20, 3, 3, {1, 1, 1, 1}, 7, 33, 1, 1, 60, false, true});  // int8 source
  for (const Layer& l : layers)
    for (bool dynamic : {true, false}) {
      if (dynamic && l.signed_input) continue;
      SCOPED_TRACE(trace(l) + (dynamic ? ", dynamic" : ", known scale"));
      const GraphBuilder q = integer_layer(l, dynamic);
      const std::string text = describe_cpu(q);
      if (narrow_kernel_here(text)) {
        EXPECT_NE(text.find("(narrow int8)"), std::string::npos) << text;
      }
      for (int threads : {1, 2}) {
        const Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        ASSERT_EQ(r.ref.size(), 1u);
        EXPECT_EQ(nodes_on(r.report, "reference"), 0);
        expect_same_floats(r.ref[0], r.cpu[0], "ConvInteger's float tail");
      }
    }
}

}  // namespace
}  // namespace tandem
