// cpu_qconv_offset_test.cpp (CpuQConvOffset, also run under each TANDEM_CPU_ISA cap by ctest):
// integer convolutions whose uint8 weights sit around a zero point far from 128, as asymmetric
// quantizers write them (src/backends/cpu/qconv_offset.cpp): the product runs on the weights'
// int8 part and a post-op adds the offsets' share, against the reference backend. Zero
// points 0, 60 and 200 (offsets of both signs and the largest one), windows with padding,
// strides and dilations, a runtime dynamic-quantization scale and a known one, a float tail
// whose per-channel head oneDNN takes as output scales and one that opens with an activation (no
// head: the share joins the accumulator), and zero points spread over 0..255 per channel (an
// offset per channel); QLinearConv with
// uint8 or int8 sources, per-tensor and per-channel scales, destination zero points 0 and 110;
// QDQ convolutions of such weights, with one group and depthwise.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "cpu_offset_test_util.h"
#include "graph_build_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::GraphBuilder;

using namespace int8_test;

struct Layer {
  int64_t C = 24, O = 20, K = 3, stride = 1, dilation = 1, pad = 1;
  int zero_point = 60;            // of the weights; -1: one per channel, spread over 0..255
  bool runtime_scale = true;      // DynamicQuantizeLinear's scale; else a known uint8 input's
  bool relu_first = false;        // the tail opens with Relu (no affine head)
  bool quantized_output = false;  // the tail ends in QuantizeLinear (an 8-bit destination)
  int64_t batch = 1;
};

std::string trace(const Layer& l) {
  return "C=" + std::to_string(l.C) + " O=" + std::to_string(l.O) + " K=" + std::to_string(l.K) +
         " stride=" + std::to_string(l.stride) + " dilation=" + std::to_string(l.dilation) +
         " pad=" + std::to_string(l.pad) + " w_zero_point=" + std::to_string(l.zero_point) +
         (l.runtime_scale ? " runtime scale" : " known scale") + (l.relu_first ? ", Relu first" : "") +
         (l.quantized_output ? ", quantized output" : "") + ", batch " + std::to_string(l.batch);
}

// [DynamicQuantizeLinear ->] ConvInteger -> Cast -> Mul(scale) -> Add(bias) -> Relu, or with the
// Relu right after the Cast. Weights uniform over 0..255.
GraphBuilder layer(const Layer& l) {
  std::vector<float> ws, bias;
  for (int64_t o = 0; o < l.O; ++o) {
    // Scales of both signs: whichever sign the products take, some channels stay positive.
    ws.push_back((o % 2 == 1 ? -1.0f : 1.0f) * (0.002f + 0.0003f * static_cast<float>(o % 7)));
    bias.push_back(-0.2f + 0.03f * static_cast<float>(o));
  }
  Tensor zp;
  if (l.zero_point >= 0) {
    zp = Tensor::scalar<uint8_t>(static_cast<uint8_t>(l.zero_point));
  } else {
    std::vector<uint8_t> z;
    for (int64_t o = 0; o < l.O; ++o) z.push_back(static_cast<uint8_t>((o * 97) % 256));
    zp = Tensor::from_vector<uint8_t>({l.O}, z);
  }
  const Shape xshape = {l.batch, l.C, 13, 11};
  GraphBuilder q;
  q.init("w", random_ints<uint8_t>({l.O, l.C, l.K, l.K}, 0, 255, 41))
      .init("wz", zp)
      .init("ws", Tensor::from_vector<float>({l.O, 1, 1}, ws))
      .init("b", Tensor::from_vector<float>({l.O, 1, 1}, bias));
  if (l.runtime_scale) {
    q.input("x", random_floats(xshape, 43, -0.7f, 1.3f))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .node("Mul", {"xs", "ws"}, {"s"});
  } else {
    std::vector<float> s;
    for (float w : ws) s.push_back(w * 0.01f);
    q.input("xq", random_ints<uint8_t>(xshape, 0, 255, 47))
        .init("xz", Tensor::scalar<uint8_t>(100))
        .init("s", Tensor::from_vector<float>({l.O, 1, 1}, s));
  }
  q.node("ConvInteger", {"xq", "w", "xz", "wz"}, {"c"},
         {{"pads", attr_ints(std::vector<int64_t>(4, l.pad))},
          {"strides", attr_ints({l.stride, l.stride})},
          {"dilations", attr_ints({l.dilation, l.dilation})}})
      .node("Cast", {"c"}, {"cf"}, {{"to", attr_int(1)}});
  if (l.relu_first) {
    q.node("Relu", {"cf"}, {"r"}).node("Mul", {"r", "s"}, {"y"}).node("Add", {"y", "b"}, {"out"});
  } else {
    q.node("Mul", {"cf", "s"}, {"y"}).node("Add", {"y", "b"}, {"yb"}).node("Relu", {"yb"}, {"out"});
  }
  if (l.quantized_output) {
    q.init("ys", Tensor::scalar<float>(0.02f))
        .init("yz", Tensor::scalar<uint8_t>(3))
        .node("QuantizeLinear", {"out", "ys", "yz"}, {"outq"})
        .output("outq");
  } else {
    q.output("out");
  }
  return q;
}

// Float outputs: at least a tenth of them distinct (the Relu leaves enough positive ones).
void expect_matches_reference(const GraphBuilder& q) { expect_floats_match_reference(q, 0.1); }

TEST(CpuQConvOffset, AsymmetricUint8WeightsRunOnTheInt8PartPlusTheOffsetsShare) {
  REQUIRE_CPU();
  std::vector<Layer> layers;
  for (int zp : {0, 60, 200})
    for (bool runtime : {true, false}) {
      Layer l;
      l.zero_point = zp;
      l.runtime_scale = runtime;
      layers.push_back(l);
    }
  // Window geometry: 1x1, stride 2, dilation 2 with padding, no padding, a wider window; a batch.
  // (Layer: C, O, K, stride, dilation, pad, weight zero point, runtime scale, ..., batch.)
  layers.push_back(Layer{16, 32, 1, 1, 1, 0, 30});
  layers.push_back(Layer{24, 20, 3, 2, 1, 1, 60});
  layers.push_back(Layer{24, 20, 3, 1, 2, 2, 200});
  layers.push_back(Layer{24, 20, 3, 1, 1, 0, 60, false});
  layers.push_back(Layer{8, 48, 5, 1, 1, 2, 10});
  layers.push_back(Layer{24, 20, 3, 2, 1, 1, 60, true, false, false, 3});
  for (const Layer& l : layers) {
    SCOPED_TRACE(trace(l));
    const GraphBuilder q = layer(l);
    const std::string text = describe_cpu(q);
    // Without VNNI oneDNN's int8 kernels need 7-bit weights: these take the float32 route.
    if (tandem::cpu::onednn_has_vnni()) {
      EXPECT_TRUE(offset_route(text)) << text;
    }
    expect_matches_reference(q);
  }
}

TEST(CpuQConvOffset, ATailWithoutAnAffineHeadTakesTheShareInAccumulatorUnits) {
  REQUIRE_CPU();
  for (bool runtime : {true, false}) {
    Layer l;
    l.runtime_scale = runtime;
    l.relu_first = true;
    SCOPED_TRACE(trace(l));
    expect_matches_reference(layer(l));
  }
}

// A tail that ends quantized writes 8 bits: the share comes from a map of its own (a binary
// post-op) instead of the destination. oneDNN rounds the requantized float32 value itself,
// the reference in double: a value within a rounding of a half-integer may land one unit away.
TEST(CpuQConvOffset, AQuantizedTailReadsTheShareFromAMap) {
  REQUIRE_CPU();
  for (bool runtime : {true, false}) {
    Layer l;
    l.runtime_scale = runtime;
    l.quantized_output = true;
    SCOPED_TRACE(trace(l));
    const GraphBuilder q = layer(l);
    const std::string text = describe_cpu(q);
    if (tandem::cpu::onednn_has_vnni()) {
      EXPECT_TRUE(offset_route(text)) << text;
    }
    EXPECT_GT(expect_8bit_matches_reference(q, "quantized output", 3, 256), 0.1)
        << "the outputs exercise the arithmetic";
  }
}

// QLinearConv (QOperator files written with uint8 weights): the share is scaled by the
// requantization x_scale * w_scale[o] / y_scale and added before the result is rounded.
GraphBuilder qlinear_layer(bool signed_source, bool per_channel_scales, uint8_t y_zero_point, uint32_t seed) {
  const int64_t C = 16, O = 24;
  std::vector<float> ws;
  for (int64_t o = 0; o < O; ++o)
    ws.push_back(per_channel_scales ? 0.002f + 0.0004f * static_cast<float>(o % 5) : 0.003f);
  std::vector<int32_t> bias;
  for (int64_t o = 0; o < O; ++o) bias.push_back(static_cast<int32_t>(o * 997 % 4001) - 2000);
  GraphBuilder q;
  if (signed_source) {
    q.input("x", random_ints<int8_t>({1, C, 10, 12}, -128, 127, seed)).init("xz", Tensor::scalar<int8_t>(-8));
  } else {
    q.input("x", random_ints<uint8_t>({1, C, 10, 12}, 0, 255, seed)).init("xz", Tensor::scalar<uint8_t>(120));
  }
  q.init("xs", Tensor::scalar<float>(0.02f))
      .init("w", random_ints<uint8_t>({O, C, 3, 3}, 0, 255, seed + 1))
      .init("ws", per_channel_scales ? Tensor::from_vector<float>({O}, ws) : Tensor::scalar<float>(ws[0]))
      .init("wz", Tensor::scalar<uint8_t>(60))
      .init("ys", Tensor::scalar<float>(0.5f))
      .init("yz", Tensor::scalar<uint8_t>(y_zero_point))
      .init("b", Tensor::from_vector<int32_t>({O}, bias))
      .node("QLinearConv", {"x", "xs", "xz", "w", "ws", "wz", "ys", "yz", "b"}, {"y"},
            {{"pads", attr_ints({1, 1, 1, 1})}})
      .output("y");
  return q;
}

TEST(CpuQConvOffset, AQLinearConvAddsTheShareBeforeItRounds) {
  REQUIRE_CPU();
  uint32_t seed = 50;
  for (bool signed_source : {false, true})
    for (bool per_channel : {false, true})
      for (uint8_t yz : {uint8_t{0}, uint8_t{110}}) {
        SCOPED_TRACE(std::string(signed_source ? "int8" : "uint8") + " source, " +
                     (per_channel ? "per-channel" : "per-tensor") + " scales, y zero point " + std::to_string(yz));
        const GraphBuilder q = qlinear_layer(signed_source, per_channel, yz, seed += 3);
        const std::string text = describe_cpu(q);
        if (tandem::cpu::onednn_has_vnni()) {
          EXPECT_TRUE(offset_route(text)) << text;
        }
        // Neither saturated, for most of them.
        EXPECT_GT(expect_8bit_matches_reference(q, "QLinearConv output", 0, 255), 0.5)
            << "the outputs exercise the arithmetic";
      }
}

// QDQ files with asymmetric uint8 weights: DequantizeLinear(x) and DequantizeLinear(w, zero
// point 60) into a Conv (one group, or depthwise), then QuantizeLinear, or a float output
// through Relu. The fusion recovers the uint8 grid from the folded float weights; the products
// run in 8 bits (one group: the weight-offset route) and agree with the reference within a unit
// (8-bit output) or a float32 rounding (float output).
GraphBuilder qdq_layer(int64_t group, bool float_output, uint32_t seed, bool per_channel = false) {
  const int64_t C = 16, O = 16;
  std::vector<uint8_t> zero_points;
  for (int64_t o = 0; o < O; ++o) zero_points.push_back(static_cast<uint8_t>(10 + (o * 37) % 230));
  GraphBuilder q;
  q.input("x", random_floats({1, C, 9, 10}, seed, -1.0f, 2.0f))
      .init("xs", Tensor::scalar<float>(0.012f))
      .init("xz", Tensor::scalar<uint8_t>(85))
      .init("wq", random_ints<uint8_t>({O, C / group, 3, 3}, 0, 255, seed + 1))
      // outputs mostly inside the 8-bit range
      .init("ws", per_channel ? Tensor::from_vector<float>({O}, std::vector<float>(O, 0.0003f))
                              : Tensor::scalar<float>(0.0003f))
      .init("wz", per_channel ? Tensor::from_vector<uint8_t>({O}, zero_points) : Tensor::scalar<uint8_t>(60))
      .init("ys", Tensor::scalar<float>(0.05f))
      .init("yz", Tensor::scalar<uint8_t>(100))
      .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
      .node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
      .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"}, {{"axis", attr_int(0)}})  // per output channel
      .node("Conv", {"xf", "wf"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}, {"group", attr_int(group)}});
  if (float_output) {
    q.node("Relu", {"c"}, {"y"}).output("y");
  } else {
    q.node("QuantizeLinear", {"c", "ys", "yz"}, {"y"}).output("y");
  }
  return q;
}

TEST(CpuQConvOffset, QdqConvolutionsWithAsymmetricUint8WeightsRunIn8Bits) {
  REQUIRE_CPU();
  uint32_t seed = 90;
  for (int64_t group : {int64_t{1}, int64_t{16}})
    for (bool float_output : {false, true})
      for (bool per_channel : {false, true}) {
        SCOPED_TRACE("group " + std::to_string(group) + (float_output ? ", float output" : ", 8-bit output") +
                     (per_channel ? ", per-channel zero points" : ""));
        const GraphBuilder q = qdq_layer(group, float_output, seed += 5, per_channel);
        const std::string text = describe_cpu(q);
        EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
        if (tandem::cpu::onednn_has_vnni()) {
          EXPECT_NE(text.find(float_output ? "ConvInteger" : "QLinearConv"), std::string::npos) << text;
          EXPECT_EQ(offset_route(text), group == 1) << text;
        }
        if (float_output) {
          expect_matches_reference(q);
        } else {
          EXPECT_GT(expect_8bit_matches_reference(q, "QDQ output", 0, 255), 0.5)
              << "the outputs exercise the arithmetic";
        }
      }
}

// Zero points spread over 0..255, one per channel: each channel's weights minus its zero point
// still span at most 256 values, so each channel takes an offset of its own.
TEST(CpuQConvOffset, PerChannelZeroPointsTakeAnOffsetEach) {
  REQUIRE_CPU();
  for (bool quantized_output : {false, true}) {
    Layer l;
    l.zero_point = -1;
    l.quantized_output = quantized_output;
    SCOPED_TRACE(trace(l));
    const GraphBuilder q = layer(l);
    EXPECT_EQ(offset_route(describe_cpu(q)), tandem::cpu::onednn_has_vnni());
    if (quantized_output) {
      EXPECT_GT(expect_8bit_matches_reference(q, "quantized output", 3, 256), 0.1)
          << "the outputs exercise the arithmetic";
    } else {
      expect_matches_reference(q);
    }
  }
}

}  // namespace
}  // namespace tandem
