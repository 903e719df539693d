// cpu_qconcat_test.cpp (CpuBackendQuantizedConcat, also run under each TANDEM_CPU_ISA cap by
// ctest): Concat -> DynamicQuantizeLinear, as dynamically quantized FPN necks write it, runs as
// one step that takes the range from the concatenation's inputs (an upsampled input's from the
// source pixels it reads) and quantizes them into their places of the 8-bit output. The bytes,
// the scale and the zero point must equal the reference's exactly.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;

TEST(CpuBackendQuantizedConcat, ADynamicallyQuantizedConcatenationTakesItsRangeFromItsInputs) {
  REQUIRE_CPU();
  // Along channels: a float convolution's blocked output, a ConvInteger's float output (left
  // channels-last for the concatenation), a plain graph input, two nearest upsamplings (by 2,
  // whose sources are read whole, and by 0.5, which skips every other source row and column:
  // its largest source value is in a skipped pixel and must not count), at channel offsets
  // that are not multiples of the channel block.
  for (int64_t C : {24, 5}) {
    SCOPED_TRACE(std::to_string(C) + " channels per part");
    Tensor down = random_floats({2, C, 16, 20}, 94, -2.0f, 3.0f);
    down.data<float>()[1 * 20 + 1] = 1.0e7f;  // image 0, channel 0, row 1, column 1: skipped
    GraphBuilder q;
    q.input("f", random_floats({2, C, 8, 10}, 90, -3.0f, 3.0f))
        .init("eye", identity_conv_weights(C))
        .input("i", random_floats({2, 6, 8, 10}, 91, -1.0f, 1.0f))
        .init("w", random_ints<int8_t>({C, 6, 3, 3}, -onednn_weight_max(), onednn_weight_max(), 92))
        .init("wz", Tensor::scalar<int8_t>(0))
        .input("p", random_floats({2, 3, 8, 10}, 93, -4.0f, 2.0f))
        .input("a", random_floats({2, C, 4, 5}, 95, -3.0f, 3.0f))
        .input("d", down)
        .init("roi", Tensor::from_vector<float>({0}, {}))
        .init("x2", Tensor::from_vector<float>({4}, {1, 1, 2, 2}))
        .init("half", Tensor::from_vector<float>({4}, {1, 1, 0.5f, 0.5f}))
        .node("Conv", {"f", "eye"}, {"cf"}, {{"kernel_shape", attr_ints({1, 1})}})
        .node("DynamicQuantizeLinear", {"i"}, {"iq", "is", "iz"})
        .node("ConvInteger", {"iq", "w", "iz", "wz"}, {"acc"}, {{"pads", attr_ints({1, 1, 1, 1})}})
        .node("Cast", {"acc"}, {"ci"}, {{"to", attr_int(1)}})
        .node("Resize", {"a", "roi", "x2"}, {"ua"}, {{"mode", attr_string("nearest")}})
        .node("Resize", {"d", "roi", "half"}, {"ud"}, {{"mode", attr_string("nearest")}})
        .node("Concat", {"cf", "ua", "ci", "p", "ud"}, {"cat"}, {{"axis", attr_int(1)}})
        .node("DynamicQuantizeLinear", {"cat"}, {"y", "ys", "yz"})
        .output("y")
        .output("ys")
        .output("yz");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("fused: Resize + Resize + Concat + DynamicQuantizeLinear"), std::string::npos) << text;
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    EXPECT_EQ(text.find("(to blocked)"), std::string::npos) << "the ConvInteger output is converted:\n" << text;
    expect_same_dynamic_quantization(q, "concatenation along channels");
  }
}

TEST(CpuBackendQuantizedConcat, PlainValuesAndAllZeroInputsQuantizeLikeTheReference) {
  REQUIRE_CPU();
  // Plain values along a middle axis; then inputs that are all zero, whose scale is 0 (every
  // byte the zero point 0).
  for (bool zeros : {false, true}) {
    SCOPED_TRACE(zeros ? "all zero" : "random");
    GraphBuilder q;
    Tensor a = random_floats({3, 4, 50}, 96, -1.0f, 0.5f), b = random_floats({3, 7, 50}, 97, -0.25f, 2.0f);
    if (zeros) {
      std::fill(a.data<float>(), a.data<float>() + a.numel(), 0.0f);
      std::fill(b.data<float>(), b.data<float>() + b.numel(), 0.0f);
    }
    q.input("a", a)
        .input("b", b)
        .node("Concat", {"a", "b"}, {"cat"}, {{"axis", attr_int(-2)}})
        .node("DynamicQuantizeLinear", {"cat"}, {"y", "ys", "yz"})
        .output("y")
        .output("ys")
        .output("yz");
    EXPECT_NE(describe_cpu(q).find("fused: Concat + DynamicQuantizeLinear"), std::string::npos);
    expect_same_dynamic_quantization(q, "plain concatenation");
  }
}

TEST(CpuBackendQuantizedConcat, ALargeConcatenationSplitsItsRangeAcrossThreads) {
  REQUIRE_CPU();
  // Large enough for many range pieces: the extremes sit in the last piece of one input and the
  // first of another.
  GraphBuilder q;
  Tensor a = random_floats({1, 32, 64, 64}, 98, -1.0f, 1.0f), b = random_floats({1, 16, 64, 64}, 99, -1.0f, 1.0f);
  a.data<float>()[a.numel() - 1] = 7.5f;
  b.data<float>()[0] = -2.25f;
  q.input("a", a)
      .input("b", b)
      .init("eye", identity_conv_weights(32))
      .node("Conv", {"a", "eye"}, {"ca"}, {{"kernel_shape", attr_ints({1, 1})}})
      .node("Concat", {"ca", "b"}, {"cat"}, {{"axis", attr_int(1)}})
      .node("DynamicQuantizeLinear", {"cat"}, {"y", "ys", "yz"})
      .output("y")
      .output("ys")
      .output("yz");
  EXPECT_NE(describe_cpu(q).find("fused: Concat + DynamicQuantizeLinear"), std::string::npos);
  expect_same_dynamic_quantization(q, "large concatenation");
}

}  // namespace
}  // namespace tandem
