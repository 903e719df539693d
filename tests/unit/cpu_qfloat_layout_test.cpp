// cpu_qfloat_layout_test.cpp (CpuBackendChannelsLastFloats, also run under each TANDEM_CPU_ISA
// cap by ctest): the float32 output of an integer convolution (ConvInteger's Cast/Mul tail),
// which oneDNN writes channels-last, stays channels-last where every reader takes it so:
// elementwise programs (a per-channel gate, a residual, a nearest upsampling of another such
// output), global pooling, DynamicQuantizeLinear and a dynamically quantized Concat. No reorder
// to the float path's blocked layout runs, and the results match the reference.
// So does a patch ConvTranspose (the text-detection head). Also: a grouped integer
// convolution's per-channel float tail lands on its own channels, and so does a depthwise one's
// of any channel count.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;

// x [2, 6, H, W] -> DynamicQuantizeLinear -> ConvInteger (C outputs, `k` x `k`) -> Cast -> Mul:
// the float32 value `out`.
void integer_conv(GraphBuilder& q, const std::string& x, const std::string& out, int64_t C, int64_t k, uint32_t seed) {
  const std::vector<int64_t> pads(4, k / 2);
  q.init(out + "_w", random_ints<int8_t>({C, 6, k, k}, -onednn_weight_max(), onednn_weight_max(), seed))
      .init(out + "_wz", Tensor::scalar<int8_t>(0))
      .init(out + "_k", Tensor::scalar<float>(0.0125f))
      .node("DynamicQuantizeLinear", {x}, {x + "_q", x + "_s", x + "_z"})
      .node("ConvInteger", {x + "_q", out + "_w", x + "_z", out + "_wz"}, {out + "_acc"}, {{"pads", attr_ints(pads)}})
      .node("Cast", {out + "_acc"}, {out + "_f"}, {{"to", attr_int(1)}})
      .node("Mul", {out + "_f", out + "_k"}, {out});
}

TEST(CpuBackendChannelsLastFloats, ElementwiseAndPoolingReadersKeepAConvIntegerOutputChannelsLast) {
  REQUIRE_CPU();
  // A squeeze-and-excitation block with a residual and an upsampled neighbour, as PaddleOCR's
  // dynamically quantized neck has it: t = y + y * sigmoid(mean(y)) + upsample(v), then
  // quantized. 24 channels (a 16-lane block and a partial one) and 5.
  for (int64_t C : {24, 5}) {
    SCOPED_TRACE(std::to_string(C) + " channels");
    GraphBuilder q;
    q.input("x", random_floats({2, 6, 8, 10}, 101, -3.0f, 3.0f))
        .input("x2", random_floats({2, 6, 4, 5}, 102, -2.0f, 4.0f))
        .init("roi", Tensor::from_vector<float>({0}, {}))
        .init("by2", Tensor::from_vector<float>({4}, {1, 1, 2, 2}));
    integer_conv(q, "x", "y", C, 3, 103);
    integer_conv(q, "x2", "v", C, 1, 104);
    q.node("GlobalAveragePool", {"y"}, {"g"})
        .node("GlobalMaxPool", {"y"}, {"gm"})
        .node("Sigmoid", {"g"}, {"s"})
        .node("Mul", {"y", "s"}, {"m"})
        .node("Add", {"y", "m"}, {"z"})
        .node("Resize", {"v", "roi", "by2"}, {"uv"}, {{"mode", attr_string("nearest")}})
        .node("Add", {"z", "uv"}, {"t"})
        .node("DynamicQuantizeLinear", {"t"}, {"tq", "ts", "tz"})
        .output("tq")
        .output("ts")
        .output("tz")
        .output("g")
        .output("gm");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    if (cpu_isa_level_of(text) >= 1) {
      EXPECT_EQ(text.find("(to blocked)"), std::string::npos) << "a ConvInteger output is converted:\n" << text;
      EXPECT_EQ(text.find("layout reorder of 'y'"), std::string::npos) << text;
      EXPECT_EQ(text.find("layout reorder of 'v'"), std::string::npos) << text;
      EXPECT_NE(text.find("(upsampled operand)  -> 2x" + std::to_string(C) + "x8x10 nhwc"), std::string::npos) << text;
    }
    EXPECT_NE(text.find("(range from the producer)"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::to_string(threads) + " threads");
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 5u);
      // The pooled sums add in another order: the gate, and so t, may move by an ulp, and a byte
      // that lies on a rounding boundary by one unit.
      const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "quantized t");
      EXPECT_LE(differ, r.cpu[0].tensor.numel() / 100) << "more than 1% of the bytes off by one";
      EXPECT_NEAR(r.cpu[1].tensor.data<float>()[0], r.ref[1].tensor.data<float>()[0],
                  1e-6 * std::abs(r.ref[1].tensor.data<float>()[0]))
          << "scale";
      expect_within_units(r.ref[2], r.cpu[2], 0, "zero point");
      Status mean = compare_values(r.ref[3], r.cpu[3], Tolerance{1e-5, 1e-5});
      EXPECT_TRUE(mean.is_ok()) << "GlobalAveragePool: " << mean.message();
      expect_same_floats(r.ref[4], r.cpu[4], "GlobalMaxPool");
    }
  }
}

// Global pooling of channels-last images of many pixels sums runs of pixels (pool.cpp): the
// means and maxima match the reference, and the same bits come out at one and two threads.
TEST(CpuBackendChannelsLastFloats, GlobalPoolingOfLargeImagesSumsRunsOfPixels) {
  REQUIRE_CPU();
  for (int64_t C : {24, 5}) {
    SCOPED_TRACE(std::to_string(C) + " channels");
    GraphBuilder q;
    q.input("x", random_floats({2, 6, 64, 72}, 111, -3.0f, 3.0f));
    integer_conv(q, "x", "y", C, 3, 112);
    q.node("GlobalAveragePool", {"y"}, {"g"}).node("GlobalMaxPool", {"y"}, {"gm"}).output("g").output("gm");
    if (cpu_isa_level_of(describe_cpu(q)) >= 1) {
      EXPECT_EQ(describe_cpu(q).find("layout reorder of 'y'"), std::string::npos) << "the pools read y as it lies";
    }
    std::vector<Value> first;
    for (int threads : {1, 2}) {
      SCOPED_TRACE(std::to_string(threads) + " threads");
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 2u);
      Status mean = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
      EXPECT_TRUE(mean.is_ok()) << "GlobalAveragePool: " << mean.message();
      expect_same_floats(r.ref[1], r.cpu[1], "GlobalMaxPool");
      if (first.empty()) first = r.cpu;
      else expect_same_floats(first[0], r.cpu[0], "GlobalAveragePool at one and two threads");
    }
  }
}

TEST(CpuBackendChannelsLastFloats, OperandsOfALowerRankJoinTheChannelsLastWalkOnlyWhereTheyFit) {
  REQUIRE_CPU();
  // y + p with p of rank 3: [C, 1, 1] (constant along the pixels) is read along the channels-last
  // walk; [C, H, W] (varies along both) has no channels-last form of its rank, so the walk is
  // plain and y is converted. Both must match the reference.
  const int64_t C = 20;
  for (bool per_channel : {true, false}) {
    SCOPED_TRACE(per_channel ? "[C, 1, 1]" : "[C, H, W]");
    GraphBuilder q;
    q.input("x", random_floats({1, 6, 8, 10}, 141, -3.0f, 3.0f))
        .input("p", random_floats(per_channel ? Shape{C, 1, 1} : Shape{C, 8, 10}, 142, -2.0f, 2.0f));
    integer_conv(q, "x", "y", C, 3, 143);
    q.node("Add", {"y", "p"}, {"t"})
        .node("DynamicQuantizeLinear", {"t"}, {"tq", "ts", "tz"})
        .output("tq")
        .output("ts")
        .output("tz");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    if (cpu_isa_level_of(text) >= 1) {
      EXPECT_EQ(text.find("[Add 'Add4']  -> 1x20x8x10 nhwc") != std::string::npos, per_channel) << text;
    }
    expect_same_dynamic_quantization(q, "quantized sum");
  }
}

TEST(CpuBackendChannelsLastFloats, AnElementwiseStepHandsDynamicQuantizeLinearTheRangeOfWhatItWrote) {
  REQUIRE_CPU();
  // Plain values over many tiles and range pieces, the extremes in the first and the last
  // element, and a program whose output is all zero (scale 0: every byte the zero point).
  for (bool zeros : {false, true}) {
    SCOPED_TRACE(zeros ? "all zero" : "random");
    Tensor a = random_floats({3, 40, 50, 60}, 121, -1.0f, 1.0f);
    a.data<float>()[0] = -6.5f;
    a.data<float>()[a.numel() - 1] = 9.25f;
    GraphBuilder q;
    q.input("a", a)
        .input("b", random_floats({60}, 122, 0.5f, 1.5f))
        .init("zero", Tensor::scalar<float>(zeros ? 0.0f : 1.0f))
        .node("Mul", {"a", "b"}, {"m"})
        .node("Mul", {"m", "zero"}, {"t"})
        .node("DynamicQuantizeLinear", {"t"}, {"y", "ys", "yz"})
        .output("y")
        .output("ys")
        .output("yz");
    EXPECT_NE(describe_cpu(q).find("(range from the producer)"), std::string::npos);
    expect_same_dynamic_quantization(q, "quantized product");
  }
}

TEST(CpuBackendChannelsLastFloats, ADynamicallyQuantizedConcatReadsUpsampledChannelsLastSources) {
  REQUIRE_CPU();
  // Two ConvInteger outputs left channels-last, nearest-resized into a dynamically quantized
  // Concat: one upsampled by 2 (every source pixel read), one downsampled by 2, whose largest
  // value lies in a skipped pixel and must not count in the range.
  const int64_t C = 20;
  Tensor far = random_floats({1, 6, 16, 20}, 111, -1.0f, 1.0f);
  for (int64_t c = 0; c < 6; ++c) far.data<float>()[(c * 16 + 1) * 20 + 1] = 900.0f;  // row 1, column 1: skipped
  GraphBuilder q;
  q.input("x", random_floats({1, 6, 4, 5}, 112, -2.0f, 2.0f))
      .input("far", far)
      .input("p", random_floats({1, 3, 8, 10}, 113, -0.5f, 0.5f))
      .init("roi", Tensor::from_vector<float>({0}, {}))
      .init("by2", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
      .init("half", Tensor::from_vector<float>({4}, {1, 1, 0.5f, 0.5f}));
  integer_conv(q, "x", "a", C, 3, 114);
  integer_conv(q, "far", "d", C, 1, 115);
  q.node("Resize", {"a", "roi", "by2"}, {"ua"}, {{"mode", attr_string("nearest")}})
      .node("Resize", {"d", "roi", "half"}, {"ud"}, {{"mode", attr_string("nearest")}})
      .node("Concat", {"ua", "p", "ud"}, {"cat"}, {{"axis", attr_int(1)}})
      .node("DynamicQuantizeLinear", {"cat"}, {"y", "ys", "yz"})
      .output("y")
      .output("ys")
      .output("yz");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("fused: Resize + Resize + Concat + DynamicQuantizeLinear"), std::string::npos) << text;
  EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
  if (cpu_isa_level_of(text) >= 1) {
    EXPECT_EQ(text.find("(to blocked)"), std::string::npos) << "a ConvInteger output is converted:\n" << text;
    EXPECT_EQ(text.find("layout reorder of 'a'"), std::string::npos) << text;
    EXPECT_EQ(text.find("layout reorder of 'd'"), std::string::npos) << text;
  }
  expect_same_dynamic_quantization(q, "quantized concatenation");
}

// The text-detection head: a ConvInteger output read by a patch ConvTranspose (kernel = stride
// 2), alone or chained through a Relu with a second one to 1 channel. The patch kernel reads the
// channels-last float output as it lies.
TEST(CpuBackendChannelsLastFloats, APatchConvTransposeReadsAConvIntegerOutputChannelsLast) {
  REQUIRE_CPU();
  for (const int64_t C : {24, 5, 20}) {
    for (const bool chained : {false, true}) {
      SCOPED_TRACE(std::to_string(C) + " channels" + (chained ? ", chained" : ""));
      GraphBuilder q;
      q.input("x", random_floats({2, 6, 7, 9}, 131, -2.0f, 2.0f))
          .init("dw", random_floats({C, 8, 2, 2}, 132, -0.5f, 0.5f))
          .init("db", random_floats({8}, 133, -0.2f, 0.2f))
          .init("ew", random_floats({8, 1, 2, 2}, 134, -0.5f, 0.5f));
      integer_conv(q, "x", "y", C, 3, 135);
      q.node("ConvTranspose", {"y", "dw", "db"}, {"up"}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}});
      if (chained) {
        q.node("Relu", {"up"}, {"r"})
            .node("ConvTranspose", {"r", "ew"}, {"z"}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}})
            .output("z");
      } else {
        q.output("up");
      }
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      if (cpu_isa_level_of(text) >= 1) {
        EXPECT_EQ(text.find("(to blocked)"), std::string::npos) << "the ConvInteger output is converted:\n" << text;
      }
      Runs r = run_both(q);
      ASSERT_EQ(r.cpu.size(), 1u);
      // Float32 sums of 8-bit products in the hundreds: rounding relative to the values' size.
      const Tensor& want = r.ref[0].tensor;
      double peak = 1;
      for (int64_t i = 0; i < want.numel(); ++i) peak = std::max(peak, std::fabs(static_cast<double>(want.data<float>()[i])));
      EXPECT_LT(error_stats(want, r.cpu[0].tensor).max_abs, 1e-5 * peak);
    }
  }
}

// oneDNN 2.6's gemm-based int8 convolution (which it picks for groups of odd widths) reads the
// operands of per-channel binary post-ops at the wrong channels: a grouped QLinearConv whose
// float tail multiplies and adds per channel must not fuse those ops there. Groups of 23 and
// 17 output channels, 1x1 and 3x3; before the fix the results were off by up to 6.
TEST(CpuBackendChannelsLastFloats, AGroupedIntegerConvolutionsPerChannelTailMatchesTheReference) {
  REQUIRE_CPU();
  struct Case {
    int64_t groups, in_c, out_c, k;
  };
  for (const Case c : {Case{4, 40, 92, 1}, Case{2, 40, 34, 3}, Case{4, 40, 68, 1}}) {
    SCOPED_TRACE("groups " + std::to_string(c.groups) + ", " + std::to_string(c.out_c) + " outputs, k " +
                 std::to_string(c.k));
    const std::vector<int64_t> pads(4, c.k / 2);
    GraphBuilder q(13);
    q.input("x", random_floats({1, c.in_c, 8, 12}, 71, -2.0f, 2.0f))
        .init("xs", Tensor::scalar<float>(0.02f))
        .init("xz", Tensor::scalar<uint8_t>(128))
        .init("w", random_ints<int8_t>({c.out_c, c.in_c / c.groups, c.k, c.k}, -onednn_weight_max(),
                                       onednn_weight_max(), 72))
        .init("ws", random_floats({c.out_c}, 73, 0.001f, 0.01f))
        .init("wz", Tensor(DataType::int8, {c.out_c}))
        .init("ys", Tensor::scalar<float>(0.05f))
        .init("yz", Tensor::scalar<uint8_t>(120))
        .init("m", random_floats({1, c.out_c, 1, 1}, 74, 0.5f, 1.5f))
        .init("a", random_floats({1, c.out_c, 1, 1}, 75, -1.0f, 1.0f))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("QLinearConv", {"xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"}, {"yq"},
              {{"group", attr_int(c.groups)}, {"pads", attr_ints(pads)}})
        .node("DequantizeLinear", {"yq", "ys", "yz"}, {"y"})
        .node("Mul", {"y", "m"}, {"ym"})
        .node("Add", {"ym", "a"}, {"z"})
        .output("z");
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    EXPECT_EQ(nodes_on(r.report, "cpu"), 5);
    EXPECT_LT(error_stats(r.ref[0].tensor, r.cpu[0].tensor).max_abs, 1e-5);
  }
}

// oneDNN 2.6's AVX2 and SSE4.1 int8 kernel (jit_uni_int8) applies binary post-ops wrongly to
// depthwise convolutions whose channels are not a multiple of its vector: a dynamically
// quantized depthwise ConvInteger, whose tail multiplies by the runtime scale and per channel,
// must keep such post-ops off it. Meant for the ctest entries under TANDEM_CPU_ISA=avx2 and
// baseline (off by up to 1.2 of values of size 2 there before the fix; the AVX-512 kernels are
// right); 24 and 64 channels fill whole vectors.
TEST(CpuBackendChannelsLastFloats, ADepthwiseIntegerConvolutionsFloatTailMatchesTheReference) {
  REQUIRE_CPU();
  for (const int64_t C : {30, 60, 20, 24, 64}) {
    for (const int64_t k : {1, 3}) {
      SCOPED_TRACE(std::to_string(C) + " channels, k " + std::to_string(k));
      const std::vector<int64_t> pads(4, k / 2);
      GraphBuilder q(13);
      q.input("x", random_floats({1, C, 9, 9}, 81, 0.0f, 1.0f))
          .init("w", random_ints<uint8_t>({C, 1, k, k}, 128 - onednn_weight_max(), 128 + onednn_weight_max(), 82))
          .init("wz", Tensor::scalar<uint8_t>(128))
          .init("ws", random_floats({C}, 83, 0.001f, 0.01f))
          .init("bias", random_floats({C, 1, 1}, 84, -0.5f, 0.5f))
          .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
          .node("ConvInteger", {"xq", "w", "xz", "wz"}, {"acc"},
                {{"group", attr_int(C)}, {"pads", attr_ints(pads)}})
          .node("Cast", {"acc"}, {"f"}, {{"to", attr_int(1)}})
          .node("Mul", {"xs", "ws"}, {"scale"})
          .node("Reshape", {"scale", "shape"}, {"scale3"})
          .init("shape", Tensor::from_vector<int64_t>({3}, {C, 1, 1}))
          .node("Mul", {"f", "scale3"}, {"unbiased"})
          .node("Add", {"unbiased", "bias"}, {"b"})
          .node("Relu", {"b"}, {"y"})
          .output("y");
      Runs r = run_both(q);
      ASSERT_EQ(r.cpu.size(), 1u);
      EXPECT_LT(error_stats(r.ref[0].tensor, r.cpu[0].tensor).max_abs, 1e-5);
    }
  }
}

}  // namespace
}  // namespace tandem
