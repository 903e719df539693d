// cpu_qdq16_test.cpp (CpuBackendQdq16, also run under each TANDEM_CPU_ISA cap by ctest):
// 16-bit QuantizeLinear and DequantizeLinear on the cpu backend, in the standard domain (opset
// 21) and ONNX Runtime's com.microsoft one, as models with 16-bit activations and 8-bit weights
// ("A16W8") write them. A QuantizeLinear -> DequantizeLinear pair is one float step with the
// reference's arithmetic (bit for bit on the same input), a convolution before it takes it into
// its output pass, and lone ones run the 16-bit kernels; nothing goes to the reference backend.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;

Tensor zero_point16(bool is_signed, int v) {
  return is_signed ? Tensor::scalar<int16_t>(static_cast<int16_t>(v)) : Tensor::scalar<uint16_t>(static_cast<uint16_t>(v));
}

// Values around the grid's ties and ends, far outside the range, and NaN.
Tensor awkward_floats(float scale) {
  Tensor x = random_floats({2, 3, 40}, 130, -7.0f, 7.0f);
  float* v = x.data<float>();
  for (int i = 0; i < 20; ++i) v[i] = (static_cast<float>(i) - 10.0f + 0.5f) * scale;  // ties
  v[20] = 1e9f;
  v[21] = -1e9f;
  v[22] = std::numeric_limits<float>::quiet_NaN();
  v[23] = 40000.0f * scale;
  return x;
}

TEST(CpuBackendQdq16, RoundTripsAreOneFloatStepBitForBit) {
  REQUIRE_CPU();
  for (const char* domain : {"", "com.microsoft"}) {
    for (bool is_signed : {false, true}) {
      SCOPED_TRACE(std::string(domain) + (is_signed ? " int16" : " uint16"));
      const float scale = 3.0e-4f;
      GraphBuilder q(std::string(domain).empty() ? 21 : 13);
      q.input("x", awkward_floats(scale))
          .init("s", Tensor::scalar<float>(scale))
          .init("z", zero_point16(is_signed, is_signed ? -1200 : 30000))
          .node("QuantizeLinear", {"x", "s", "z"}, {"q"}, {}, domain)
          .node("DequantizeLinear", {"q", "s", "z"}, {"y"}, {}, domain)
          .output("y");
      const std::string text = describe_cpu(q);
      EXPECT_NE(text.find("fused: QuantizeLinear + DequantizeLinear"), std::string::npos) << text;
      EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        expect_same_floats(r.ref[0], r.cpu[0], "round trip");
      }
    }
  }
}

TEST(CpuBackendQdq16, LoneQuantizeAndDequantizeRunTheSixteenBitKernels) {
  REQUIRE_CPU();
  for (bool is_signed : {false, true}) {
    SCOPED_TRACE(is_signed ? "int16" : "uint16");
    // Per axis with a runtime (graph input) scale, so that no pair or constant folds it away.
    GraphBuilder q(21);
    q.input("x", awkward_floats(2.0e-4f))
        .input("s", Tensor::from_vector<float>({3}, {2.0e-4f, 5.0e-4f, 1.0e-3f}))
        .init("z", is_signed ? Tensor::from_vector<int16_t>({3}, {-5, 0, 300})
                             : Tensor::from_vector<uint16_t>({3}, {100, 32768, 65000}))
        .node("QuantizeLinear", {"x", "s", "z"}, {"q"}, {{"axis", attr_int(1)}})
        .output("q");
    EXPECT_EQ(nodes_on(run_both(q, 1).report, "cpu"), 1) << describe_cpu(q);
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      expect_within_units(r.ref[0], r.cpu[0], 0, "QuantizeLinear");
    }
    GraphBuilder d(21);
    d.input("q", is_signed ? random_ints<int16_t>({2, 3, 50}, -32768, 32767, 131)
                              : random_ints<uint16_t>({2, 3, 50}, 0, 65535, 131))
        .input("s", Tensor::scalar<float>(7.0e-5f))
        .init("z", zero_point16(is_signed, is_signed ? 17 : 40000))
        .node("DequantizeLinear", {"q", "s", "z"}, {"y"})
        .output("y");
    EXPECT_EQ(nodes_on(run_both(d, 1).report, "cpu"), 1);
    Runs r = run_both(d, 2);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_same_floats(r.ref[0], r.cpu[0], "DequantizeLinear");
  }
}

TEST(CpuBackendQdq16, AConvolutionBetweenSixteenBitPairsKeepsThemInItsOutputPass) {
  REQUIRE_CPU();
  // x -> Q/DQ (uint16) -> Conv (int8 weights, dequantized) -> Relu -> Q/DQ (uint16), in both
  // domains: the convolution's float result differs from the reference's by float rounding, so
  // a value next to a step of the 16-bit grid may land one step away; nothing more.
  const float step = 2.0e-4f;
  for (const std::string domain : {"", "com.microsoft"}) {
    SCOPED_TRACE(domain.empty() ? "ai.onnx" : domain);
    GraphBuilder q(domain.empty() ? 21 : 13);
    q.input("x", random_floats({1, 8, 12, 12}, 132, -1.0f, 1.0f))
        .init("s", Tensor::scalar<float>(step))
        .init("z", Tensor::scalar<uint16_t>(32768))
        .init("w8", random_ints<int8_t>({16, 8, 3, 3}, -127, 127, 133))
        .init("ws", Tensor::from_vector<float>({16}, std::vector<float>(16, 0.004f)))
        .init("wz", Tensor::from_vector<int8_t>({16}, std::vector<int8_t>(16, 0)))
        .node("QuantizeLinear", {"x", "s", "z"}, {"xq"}, {}, domain)
        .node("DequantizeLinear", {"xq", "s", "z"}, {"xd"}, {}, domain)
        .node("DequantizeLinear", {"w8", "ws", "wz"}, {"w"}, {{"axis", attr_int(0)}}, domain)
        .node("Conv", {"xd", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}})
        .node("Relu", {"c"}, {"r"})
        .node("QuantizeLinear", {"r", "s", "z"}, {"rq"}, {}, domain)
        .node("DequantizeLinear", {"rq", "s", "z"}, {"y"}, {}, domain)
        .output("y");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Conv + Relu + QuantizeLinear + DequantizeLinear"), std::string::npos) << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    for (int threads : {1, 2}) {
      Runs r = run_both(q, threads);
      ASSERT_EQ(r.cpu.size(), 1u);
      EXPECT_EQ(nodes_on(r.report, "reference"), 0);
      const float* a = r.ref[0].tensor.data<float>();
      const float* b = r.cpu[0].tensor.data<float>();
      int64_t moved = 0;
      for (int64_t i = 0; i < r.ref[0].tensor.numel(); ++i) {
        EXPECT_LE(std::fabs(a[i] - b[i]), step * 1.001f) << "at " << i;
        moved += a[i] != b[i];
      }
      EXPECT_LT(moved, r.ref[0].tensor.numel() / 100) << "values a grid step away";
    }
  }
}

}  // namespace
}  // namespace tandem
