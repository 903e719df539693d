// cpu_qlayout_test.cpp (CpuBackendInt8Layouts, also run under each TANDEM_CPU_ISA cap by ctest):
// the 8-bit values between the backend's own integer products stay channels-last, which the
// float32 route reads straight into its blocked layout and writes back without a transpose, and
// a DequantizeLinear of them writes blocked floats; DynamicQuantizeLinear and QuantizeLinear
// quantize a float convolution's blocked output straight into them. Channel counts that leave a partial block
// (5, 12, 7), signed and unsigned data; every result must equal the reference's exactly.
#include <gtest/gtest.h>

#include <string>

#include "backends/cpu/runtime_env.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "op_test_util.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_ints;

// Two QLinearConvs with uint8 weights whose per-channel zero points alternate between 0 and 255
// (their differences span [-255, 255]: they leave int8; with the weight-offset route turned off,
// every ISA path from AVX2 up takes the float32 route, and the baseline the direct loops), the
// first one's output also dequantized (a second graph output, so it stays 8-bit between the
// two).
Tensor alternating_zero_points(int64_t channels) {
  std::vector<uint8_t> z;
  for (int64_t o = 0; o < channels; ++o) z.push_back(o % 2 == 0 ? 0 : 255);
  return Tensor::from_vector<uint8_t>({channels}, z);
}

GraphBuilder two_products(DataType act, uint32_t seed, int64_t mid) {  // mid: channels of y
  const bool s8 = act == DataType::int8;
  auto zero_point = [&](int v) { return s8 ? Tensor::scalar<int8_t>(static_cast<int8_t>(v - 128)) : Tensor::scalar<uint8_t>(static_cast<uint8_t>(v)); };
  GraphBuilder q;
  q.input("x", s8 ? random_ints<int8_t>({2, 5, 9, 11}, -128, 127, seed) : random_ints<uint8_t>({2, 5, 9, 11}, 0, 255, seed))
      .init("xs", Tensor::scalar<float>(0.02f))
      .init("xz", zero_point(120))
      .init("w1", random_ints<uint8_t>({mid, 5, 3, 3}, 0, 255, seed + 1))
      .init("w1s", Tensor::scalar<float>(0.004f))
      .init("wz1", alternating_zero_points(mid))
      .init("wz2", alternating_zero_points(7))
      .init("ys", Tensor::scalar<float>(1.7f))
      .init("yz", zero_point(110))
      .init("w2", random_ints<uint8_t>({7, mid, 1, 1}, 0, 255, seed + 2))
      .init("w2s", Tensor::scalar<float>(0.003f))
      .init("zs", Tensor::scalar<float>(0.9f))
      .init("zz", zero_point(100))
      .node("QLinearConv", {"x", "xs", "xz", "w1", "w1s", "wz1", "ys", "yz"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("QLinearConv", {"y", "ys", "yz", "w2", "w2s", "wz2", "zs", "zz"}, {"z"})
      .node("DequantizeLinear", {"y", "ys", "yz"}, {"yf"})
      .output("z")
      .output("yf");
  return q;
}

TEST(CpuBackendInt8Layouts, ProductsPassChannelsLastBytesAndMatchTheReference) {
  REQUIRE_CPU();
  const testing::ScopedEnv no_offset_route("TANDEM_CPU_QOFFSET", "0");
  // y of 12 channels (one partial block) and of 20 (a whole 16-lane block and a partial one).
  for (const int64_t mid : {int64_t{12}, int64_t{20}})
    for (DataType act : {DataType::uint8, DataType::int8}) {
      SCOPED_TRACE(std::string(dtype_name(act)) + ", y of " + std::to_string(mid) + " channels");
      const GraphBuilder q = two_products(act, act == DataType::uint8 ? 61 : 71, mid);
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      if (cpu_isa_level_of(text) >= 1) {
        // y is written channels-last and read from there into the blocked float32 layout.
        EXPECT_NE(text.find("[QLinearConv 'QLinearConv1'] (to float32, blocked)"), std::string::npos) << text;
        EXPECT_EQ(text.find("layout reorder of 'y'"), std::string::npos) << text;
        EXPECT_NE(
            text.find("[DequantizeLinear 'DequantizeLinear2'] (table)  -> 2x" + std::to_string(mid) + "x9x11 nChw"),
            std::string::npos)
            << text;
      } else {
        EXPECT_NE(text.find("[QLinearConv 'QLinearConv1'] (own integer kernel)"), std::string::npos) << text;
      }
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 2u);
        EXPECT_EQ(expect_within_units(r.ref[0], r.cpu[0], 0, "second product"), 0);
        expect_same_floats(r.ref[1], r.cpu[1], "dequantized first product");
      }
    }
}

TEST(CpuBackendInt8Layouts, DynamicQuantizationOfABlockedValueWritesChannelsLastBytes) {
  REQUIRE_CPU();
  // A 1x1 convolution with identity weights passes x through exactly (in the blocked layout),
  // DynamicQuantizeLinear quantizes it for a ConvInteger whose uint8 weights leave int8.
  const int64_t C = 12;
  const Tensor eye = identity_conv_weights(C);
  GraphBuilder q;
  q.input("x", random_floats({2, C, 7, 9}, 81, -3.0f, 5.0f))
      .init("eye", eye)
      .init("w", random_ints<uint8_t>({5, C, 3, 3}, 0, 255, 82))
      .init("wz", Tensor::scalar<uint8_t>(0))
      .node("Conv", {"x", "eye"}, {"c"}, {{"kernel_shape", attr_ints({1, 1})}})
      .node("DynamicQuantizeLinear", {"c"}, {"cq", "cs", "cz"})
      .node("ConvInteger", {"cq", "w", "cz", "wz"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .output("y")
      .output("cs")
      .output("cz");
  const std::string text = describe_cpu(q);
  EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
  if (cpu_isa_level_of(text) >= 1) {
    EXPECT_NE(text.find("[DynamicQuantizeLinear 'DynamicQuantizeLinear1']  -> 2x12x7x9 nhwc uint8"), std::string::npos)
        << text;
    EXPECT_EQ(text.find("layout reorder of 'c'"), std::string::npos) << text;
  }
  expect_same_dynamic_quantization(q, "ConvInteger of the quantized value");
}

TEST(CpuBackendInt8Layouts, QuantizeLinearOfABlockedValueWritesChannelsLastValues) {
  REQUIRE_CPU();
  // The identity convolution's blocked output, quantized (uint8, then int8) for a QLinearConv
  // that passes its input through (identity weights, the same scale and zero point out), so the
  // output is the quantized values themselves: on the grid's ties, and past both ends. (The
  // int8 case also holds the backend to the exact routes for a signed source on CPUs without
  // VNNI: oneDNN's convolutions would halve these weights of 1 to 0 there.)
  // 12 channels: one partial block; 28: a whole 16-lane block and a partial one.
  for (const int64_t C : {int64_t{12}, int64_t{28}}) {
    SCOPED_TRACE("C = " + std::to_string(C));
    Tensor pass(DataType::uint8, {C, C, 1, 1});
    for (int64_t o = 0; o < C; ++o)
      for (int64_t i = 0; i < C; ++i) pass.data<uint8_t>()[o * C + i] = o == i ? 1 : 0;
    for (DataType t : {DataType::uint8, DataType::int8}) {
      SCOPED_TRACE(dtype_name(t));
      const bool s8 = t == DataType::int8;
      GraphBuilder q;
      Tensor x = random_floats({2, C, 5, 7}, 91, -50.0f, 70.0f);
      for (int64_t i = 0; i < x.numel(); i += 3)
        x.data<float>()[i] = (static_cast<float>(i % 200) - 60.0f + 0.5f) * 0.25f;
      q.input("x", x)
          .init("eye", identity_conv_weights(C))
          .init("s", Tensor::scalar<float>(0.25f))
          .init("z", s8 ? Tensor::scalar<int8_t>(-20) : Tensor::scalar<uint8_t>(30))
          .init("w", pass)
          .init("ws", Tensor::scalar<float>(1.0f))
          .init("wz", Tensor::scalar<uint8_t>(0))
          .node("Conv", {"x", "eye"}, {"c"}, {{"kernel_shape", attr_ints({1, 1})}})
          .node("QuantizeLinear", {"c", "s", "z"}, {"cq"})
          .node("QLinearConv", {"cq", "s", "z", "w", "ws", "wz", "s", "z"}, {"y"})
          .output("y");
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      if (cpu_isa_level_of(text) >= 1) {
        EXPECT_NE(text.find("[QuantizeLinear 'QuantizeLinear1']  -> 2x" + std::to_string(C) + "x5x7 nhwc " +
                            std::string(dtype_name(t))),
                  std::string::npos)
            << text;
        EXPECT_EQ(text.find("layout reorder of 'c'"), std::string::npos) << text;
      }
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        EXPECT_EQ(expect_within_units(r.ref[0], r.cpu[0], 0, "the quantized values"), 0);
        const Tensor& y = r.cpu[0].tensor;
        int64_t low = 0, high = 0;
        for (int64_t i = 0; i < y.numel(); ++i) {
          const int v = s8 ? y.data<int8_t>()[i] : y.data<uint8_t>()[i];
          low += v == (s8 ? -128 : 0);
          high += v == (s8 ? 127 : 255);
        }
        EXPECT_GT(low, 0) << "values saturated at the low end";
        EXPECT_GT(high, 0) << "values saturated at the high end";
      }
    }
  }
}

TEST(CpuBackendInt8Layouts, APlainImageOfFewChannelsIsQuantizedStraightIntoChannelsLastBytes) {
  REQUIRE_CPU();
  // A network's input (plain, 1 to 4 channels; 5 is left to the planar quantizer and a reorder)
  // quantized for the first convolution: DynamicQuantizeLinear -> ConvInteger and QuantizeLinear
  // (uint8 and int8) -> QLinearConv. 7x9 pixels: 63, not a multiple of the 16 taken at once.
  for (int64_t C : {1, 3, 4, 5}) {
    SCOPED_TRACE(std::to_string(C) + " channels");
    const bool direct = C <= 4 && cpu::has_vbmi();
    const Tensor x = random_floats({2, C, 7, 9}, 131, -3.0f, 5.0f);
    GraphBuilder d;
    d.input("x", x)
        .init("w", random_ints<int8_t>({6, C, 3, 3}, -onednn_weight_max(), onednn_weight_max(), 132))
        .init("wz", Tensor::scalar<int8_t>(0))
        .node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"})
        .node("ConvInteger", {"xq", "w", "xz", "wz"}, {"y"}, {{"pads", attr_ints({1, 1, 1, 1})}})
        .output("y")
        .output("xs")
        .output("xz");
    const std::string text = describe_cpu(d);
    if (direct) {
      EXPECT_EQ(text.find("layout reorder of 'xq'"), std::string::npos) << text;
    } else if (cpu_isa_level_of(text) >= 2) {
      EXPECT_NE(text.find("layout reorder of 'xq'"), std::string::npos) << text;
    }
    expect_same_dynamic_quantization(d, "ConvInteger of the dynamically quantized image");
    for (DataType t : {DataType::uint8, DataType::int8}) {
      SCOPED_TRACE(dtype_name(t));
      const bool s8 = t == DataType::int8;
      // Weights that pass the first channel through: the output is its quantized values.
      Tensor pass(DataType::uint8, {1, C, 1, 1});
      for (int64_t i = 0; i < C; ++i) pass.data<uint8_t>()[i] = i == 0 ? 1 : 0;
      GraphBuilder q;
      q.input("x", x)
          .init("s", Tensor::scalar<float>(0.03125f))
          .init("z", s8 ? Tensor::scalar<int8_t>(-20) : Tensor::scalar<uint8_t>(30))
          .init("w", pass)
          .init("ws", Tensor::scalar<float>(1.0f))
          .init("wz", Tensor::scalar<uint8_t>(0))
          .node("QuantizeLinear", {"x", "s", "z"}, {"xq"})
          .node("QLinearConv", {"xq", "s", "z", "w", "ws", "wz", "s", "z"}, {"y"})
          .output("y");
      if (direct) {
        EXPECT_EQ(describe_cpu(q).find("layout reorder of 'xq'"), std::string::npos);
      }
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        expect_within_units(r.ref[0], r.cpu[0], 0, "the quantized first channel");
      }
    }
  }
}

// The oneDNN implementation describe() names for the kernel whose line starts with `label`, or "".
std::string implementation_of(const std::string& text, const std::string& label) {
  const size_t at = text.find(label + "  -> ", text.find("\n  instance "));
  if (at == std::string::npos) return "";
  const size_t end = text.find('\n', at);
  const std::string line = text.substr(at, end - at);
  const size_t impl = line.find("(oneDNN ");
  return impl == std::string::npos ? "" : line.substr(impl + 8, line.size() - impl - 9);
}

// QLinearConv (8-bit output, then a byte table for a chain after it) and a QDQ Conv with a float
// output, over 1-D, 2-D and 3-D activations: all run on oneDNN's channels-last int8 kernels
// (plain 1-D and 3-D ones would run its reference loops, about a thousand times slower), 1-D
// and 3-D values reordered in and out within the step, and match the reference.
TEST(CpuBackendInt8Layouts, ConvolutionsOfEveryRankRunOnChannelsLastKernels) {
  REQUIRE_CPU();
  const int64_t C = 8, O = 12;
  for (size_t dims : {1, 2, 3}) {
    const Shape spatial(dims, 9);
    Shape xs = {1, C}, ws = {O, C};
    for (int64_t d : spatial) xs.push_back(d);
    ws.resize(2 + dims, 3);
    const std::vector<int64_t> pads(2 * dims, 1);
    for (bool float_output : {false, true}) {
      SCOPED_TRACE(std::to_string(dims) + "-D" + (float_output ? ", QDQ with a float output" : ", QLinearConv"));
      GraphBuilder q;
      q.input("x", random_floats(xs, 5, -1.0f, 1.0f))
          .init("xs", Tensor::scalar<float>(1.0f / 127))
          .init("xz", Tensor::scalar<uint8_t>(128))
          .init("wq", random_ints<int8_t>(ws, -onednn_weight_max(), onednn_weight_max(), 6))
          .init("ws", Tensor::scalar<float>(0.002f))
          .init("wz", Tensor::scalar<int8_t>(0))
          .init("ys", Tensor::scalar<float>(0.05f))
          .init("yz", Tensor::scalar<uint8_t>(100))
          .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"});
      std::string conv;
      if (float_output) {
        q.node("DequantizeLinear", {"xq", "xs", "xz"}, {"xf"})
            .node("DequantizeLinear", {"wq", "ws", "wz"}, {"wf"})
            .node("Conv", {"xf", "wf"}, {"c"}, {{"pads", attr_ints(pads)}})
            .node("Relu", {"c"}, {"y"})
            .output("y");
        conv = "[ConvInteger 'Conv3']";
      } else {
        // The chain after it (DequantizeLinear -> HardSigmoid -> QuantizeLinear) becomes a byte
        // table.
        q.node("QLinearConv", {"xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"}, {"yq"}, {{"pads", attr_ints(pads)}})
            .node("DequantizeLinear", {"yq", "ys", "yz"}, {"yf"})
            .node("HardSigmoid", {"yf"}, {"g"})
            .init("gs", Tensor::scalar<float>(1.0f / 255))
            .init("gz", Tensor::scalar<uint8_t>(0))
            .node("QuantizeLinear", {"g", "gs", "gz"}, {"y"})
            .output("y");
        conv = "[QLinearConv 'QLinearConv1']";
      }
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      const std::string impl = implementation_of(text, conv);
      EXPECT_FALSE(impl.empty()) << "the product runs on oneDNN:\n" << text;
      EXPECT_NE(impl.rfind("ref", 0), 0u) << "not its reference loops:\n" << text;
      Runs r = run_both(q);
      ASSERT_EQ(r.cpu.size(), 1u);
      if (float_output) {
        Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-5, 1e-5});
        EXPECT_TRUE(c.is_ok()) << c.message();
      } else {
        const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, "QLinearConv and its chain");
        EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50) << "more than 2% of outputs off by one";
      }
      EXPECT_EQ(r.cpu[0].tensor.shape(), r.ref[0].tensor.shape());
    }
  }
}

}  // namespace
}  // namespace tandem
