// Unit tests for the reference kernels of the com.microsoft quantized ops. Every expected value
// is worked by hand from the op's formula; scales are powers of two so that the reals (and the
// rounding ties) are exact.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "op_suite_util.h"
#include "op_test_util.h"
#include "passes/shape_inference.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::f32;
using testing::f32_scalar;
using testing::i32;
using testing::run_op;
using testing::s8;
using testing::u8;
using testing::values_of;

using Attrs = std::map<std::string, Attribute>;

Status run_ms(const std::string& op, const std::vector<Tensor>& in, const Attrs& attrs, Tensor* out) {
  std::vector<Value> outs;
  Status s = run_op(op, in, attrs, &outs, 1, 1, "com.microsoft");
  if (s.is_ok() && out) *out = outs[0].tensor;
  return s;
}

Tensor ms(const std::string& op, const std::vector<Tensor>& in, const Attrs& attrs = {}) {
  Tensor out;
  Status s = run_ms(op, in, attrs, &out);
  EXPECT_TRUE(s.is_ok()) << op << ": " << s.to_string();
  return out;
}

// The error of a run that must fail; names the op and node.
std::string ms_error(const std::string& op, const std::vector<Tensor>& in, const Attrs& attrs = {}) {
  Status s = run_ms(op, in, attrs, nullptr);
  EXPECT_FALSE(s.is_ok()) << op << " accepted bad inputs";
  EXPECT_NE(s.message().find("[" + op + " 'test']"), std::string::npos) << s.message();
  return s.message();
}

Tensor u8_scalar(uint8_t v) { return Tensor::scalar<uint8_t>(v); }
Tensor s8_scalar(int8_t v) { return Tensor::scalar<int8_t>(v); }
const Tensor kNone;

// ---- QuantizeLinear / DequantizeLinear ------------------------------------------------------------

TEST(QuantizeContribTest, QuantizeAndDequantizeLinearInTheMicrosoftDomain) {
  // x / 2 = 0, 1.5 -> 2, 2.5 -> 2, 500, -127; + 128, saturated.
  Tensor q = ms("QuantizeLinear", {f32({5}, {0, 3, 5, 1000, -254}), f32_scalar(2), u8_scalar(128)});
  EXPECT_EQ(values_of<uint8_t>(q), (std::vector<uint8_t>{128, 130, 130, 255, 1}));
  // Per axis 1: (x - zp[c]) * scale[c].
  Tensor d = ms("DequantizeLinear", {s8({2, 2}, {-3, 10, 5, -128}), f32({2}, {0.5f, 2}), s8({2}, {1, -2})},
                {{"axis", attr_int(1)}});
  EXPECT_EQ(d.dtype(), DataType::float32);
  EXPECT_EQ(values_of<float>(d), (std::vector<float>{-2, 24, 2, -252}));
}

// ---- QLinearAdd / QLinearMul ----------------------------------------------------------------------

TEST(QuantizeContribTest, QLinearAddRoundsHalfToEvenAndSaturates) {
  // A reals 0.5 (A - 10): 0, 5, 10, 122.5; B reals 0.25 B: 0, 0.25, 0.75, 0.
  // Sums / 0.5: 0, 10.5, 21.5, 245 -> 0, 10, 22, 245; + 20 -> 20, 30, 42, 265 (saturates).
  Tensor c = ms("QLinearAdd", {u8({4}, {10, 20, 30, 255}), f32_scalar(0.5f), u8_scalar(10), u8({4}, {0, 1, 3, 0}),
                               f32_scalar(0.25f), u8_scalar(0), f32_scalar(0.5f), u8_scalar(20)});
  EXPECT_EQ(c.dtype(), DataType::uint8);
  EXPECT_EQ(values_of<uint8_t>(c), (std::vector<uint8_t>{20, 30, 42, 255}));
}

TEST(QuantizeContribTest, QLinearAddBroadcastsAndDefaultsZeroPoints) {
  // [2,1] + [3]: sums 5 6 7 / 9 10 11, halved: 2.5 3 3.5 / 4.5 5 5.5 -> 2 3 4 / 4 5 6.
  Tensor c = ms("QLinearAdd", {u8({2, 1}, {4, 8}), f32_scalar(1), kNone, u8({3}, {1, 2, 3}), f32_scalar(1), kNone,
                               f32_scalar(2), kNone});
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<uint8_t>(c), (std::vector<uint8_t>{2, 3, 4, 4, 5, 6}));
  // int8: -200 and 200 saturate to -128 and 127.
  Tensor s = ms("QLinearAdd", {s8({3}, {-100, 0, 100}), f32_scalar(1), kNone, s8({3}, {-100, -1, 100}), f32_scalar(1),
                               kNone, f32_scalar(1), s8_scalar(0)});
  EXPECT_EQ(s.dtype(), DataType::int8);
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{-128, -1, 127}));
}

TEST(QuantizeContribTest, QLinearMul) {
  // A reals 0.5 (A - 128): 1, 0, -4, 63.5, 0.5, 0.5; B reals 0.5 (B - 128): 1.5, 36, 0.5, 63.5, 2.5, 3.5.
  // Products / 0.5: 3, 0, -4, 8064.5, 2.5, 3.5 -> 3, 0, -4, 8064, 2, 4; + 100, saturated.
  Tensor c = ms("QLinearMul", {u8({6}, {130, 128, 120, 255, 129, 129}), f32_scalar(0.5f), u8_scalar(128),
                               u8({6}, {131, 200, 129, 255, 133, 135}), f32_scalar(0.5f), u8_scalar(128),
                               f32_scalar(0.5f), u8_scalar(100)});
  EXPECT_EQ(values_of<uint8_t>(c), (std::vector<uint8_t>{103, 100, 96, 255, 102, 104}));
  // int8, broadcast of a [1] operand: (-3 * 2, 5 * 2) / 4 = -1.5 -> -2, 2.5 -> 2.
  Tensor s = ms("QLinearMul", {s8({2}, {-3, 5}), f32_scalar(1), kNone, s8({1}, {2}), f32_scalar(1), kNone,
                               f32_scalar(4), s8_scalar(0)});
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{-2, 2}));
}

TEST(QuantizeContribTest, QLinearBinaryErrors) {
  const Tensor a = u8({2}, {1, 2});
  // Mixed 8-bit types.
  ms_error("QLinearAdd", {a, f32_scalar(1), kNone, s8({2}, {1, 2}), f32_scalar(1), kNone, f32_scalar(1), kNone});
  // A zero point of the wrong type.
  ms_error("QLinearAdd", {a, f32_scalar(1), s8_scalar(0), a, f32_scalar(1), kNone, f32_scalar(1), kNone});
  // Per-tensor scales only.
  ms_error("QLinearMul", {a, f32({2}, {1, 1}), kNone, a, f32_scalar(1), kNone, f32_scalar(1), kNone});
  // A zero output scale.
  const std::string zero =
      ms_error("QLinearMul", {a, f32_scalar(1), kNone, a, f32_scalar(1), kNone, f32_scalar(0), kNone});
  EXPECT_NE(zero.find("C_scale is zero"), std::string::npos) << zero;
  // Shapes that do not broadcast; float data.
  ms_error("QLinearAdd", {a, f32_scalar(1), kNone, u8({3}, {1, 2, 3}), f32_scalar(1), kNone, f32_scalar(1), kNone});
  ms_error("QLinearAdd", {f32({2}, {1, 2}), f32_scalar(1), kNone, a, f32_scalar(1), kNone, f32_scalar(1), kNone});
}

// ---- QLinearSigmoid / QLinearLeakyRelu -----------------------------------------------------------

TEST(QuantizeContribTest, QLinearSigmoid) {
  // Reals X - 128: 0, -128, 127, 1, -1, 2. Sigmoid * 256: 128, ~0, ~256 (saturates),
  // 187.15, 68.85, 225.48 -> 128, 0, 255, 187, 69, 225.
  Tensor y = ms("QLinearSigmoid", {u8({6}, {128, 0, 255, 129, 127, 130}), f32_scalar(1), u8_scalar(128),
                                   f32_scalar(1.0f / 256), u8_scalar(0)});
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{128, 0, 255, 187, 69, 225}));
  // int8 output around zero point -128: 0.5 * 256 - 128 = 0, 187 - 128 = 59.
  Tensor s = ms("QLinearSigmoid", {s8({2}, {0, 1}), f32_scalar(1), kNone, f32_scalar(1.0f / 256), s8_scalar(-128)});
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{0, 59}));
  ms_error("QLinearSigmoid", {s8({2}, {0, 1}), f32_scalar(1), u8_scalar(0), f32_scalar(1), kNone});
}

TEST(QuantizeContribTest, QLinearLeakyRelu) {
  // Reals 0.5 (X - 100): 0, 5, -5, -50, 77.5, -0.5; alpha 0.25: 0, 5, -1.25, -12.5, 77.5, -0.125.
  // / 0.5: 0, 10, -2.5, -25, 155, -0.25 -> 0, 10, -2, -25, 155, 0; + 50.
  Tensor y = ms("QLinearLeakyRelu", {u8({6}, {100, 110, 90, 0, 255, 99}), f32_scalar(0.5f), u8_scalar(100),
                                     f32_scalar(0.5f), u8_scalar(50)},
                {{"alpha", attr_float(0.25f)}});
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{50, 60, 48, 25, 205, 50}));
  // Default alpha 0.01: -100 -> -1, 127 stays.
  Tensor s = ms("QLinearLeakyRelu", {s8({2}, {-100, 127}), f32_scalar(1), kNone, f32_scalar(1), kNone});
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{-1, 127}));
  // 127 * 4 = 508 saturates to 127.
  Tensor t = ms("QLinearLeakyRelu", {s8({1}, {127}), f32_scalar(4), kNone, f32_scalar(1), kNone});
  EXPECT_EQ(values_of<int8_t>(t), (std::vector<int8_t>{127}));
  ms_error("QLinearLeakyRelu", {s8({1}, {1}), f32_scalar(1), kNone, f32_scalar(0), kNone});
  ms_error("QLinearLeakyRelu", {s8({1}, {1}), f32_scalar(1), kNone});
}

// ---- pools --------------------------------------------------------------------------------------

TEST(QuantizeContribTest, QLinearGlobalAveragePool) {
  // Channel 0: 1 2 3 4 (mean 2.5 -> 2), channel 1: 10 10 10 11 (mean 10.25 -> 10).
  Tensor y = ms("QLinearGlobalAveragePool", {u8({1, 2, 2, 2}, {1, 2, 3, 4, 10, 10, 10, 11}), f32_scalar(1),
                                             u8_scalar(0), f32_scalar(1), u8_scalar(0)});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{2, 10}));
  // Channels last, the same planes interleaved. Means 0.5 * 2.5 = 1.25, 0.5 * 10.25 = 5.125;
  // / 0.25: 5, 20.5 -> 5, 20; + 3.
  Tensor l = ms("QLinearGlobalAveragePool", {u8({1, 2, 2, 2}, {1, 10, 2, 10, 3, 10, 4, 11}), f32_scalar(0.5f),
                                             u8_scalar(0), f32_scalar(0.25f), u8_scalar(3)},
                {{"channels_last", attr_int(1)}});
  EXPECT_EQ(l.shape(), (Shape{1, 1, 1, 2}));
  EXPECT_EQ(values_of<uint8_t>(l), (std::vector<uint8_t>{8, 23}));
  // int8 with a zero point: (127 + 125) / 2 - 1 = 125, / 0.5 saturates; (-128 - 128) / 2 - 1 = -129 -> -128.
  Tensor s = ms("QLinearGlobalAveragePool", {s8({2, 1, 2}, {127, 125, -128, -128}), f32_scalar(1), s8_scalar(1),
                                             f32_scalar(0.5f), s8_scalar(0)});
  EXPECT_EQ(s.shape(), (Shape{2, 1, 1}));
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{127, -128}));
  ms_error("QLinearGlobalAveragePool", {u8({1, 2, 2}, {1, 2, 3, 4}), f32_scalar(1), kNone, f32_scalar(1), kNone},
           {{"channels_last", attr_int(2)}});
  ms_error("QLinearGlobalAveragePool", {u8({2}, {1, 2}), f32_scalar(1), kNone, f32_scalar(1), kNone});
}

TEST(QuantizeContribTest, QLinearAveragePoolPadsAndCountIncludePad) {
  // 3x3 input 1..9, 2x2 window, stride 2, one row and column of padding at the start.
  // Windows inside the input: {1}, {2,3}, {4,7}, {5,6,8,9}: sums 1, 5, 11, 28.
  const Tensor x = u8({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  const Attrs window{{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}, {"pads", attr_ints({1, 1, 0, 0})}};
  // Excluding the padding: 1, 2.5, 5.5, 7 -> 1, 2, 6, 7.
  Tensor y = ms("QLinearAveragePool", {x, f32_scalar(1), kNone, f32_scalar(1), kNone}, window);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{1, 2, 6, 7}));
  // Counting it: 0.25, 1.25, 2.75, 7 -> 0, 1, 3, 7.
  Attrs include = window;
  include["count_include_pad"] = attr_int(1);
  Tensor z = ms("QLinearAveragePool", {x, f32_scalar(1), kNone, f32_scalar(1), kNone}, include);
  EXPECT_EQ(values_of<uint8_t>(z), (std::vector<uint8_t>{0, 1, 3, 7}));
  // A zero point of 1: the reals are 0..8 and the padding is the real 0.
  // Excluding: 0, 1.5, 4.5, 6 -> 0, 2, 4, 6. Including: 0, 0.75, 2.25, 6 -> 0, 1, 2, 6.
  Tensor w = ms("QLinearAveragePool", {x, f32_scalar(1), u8_scalar(1), f32_scalar(1), kNone}, window);
  EXPECT_EQ(values_of<uint8_t>(w), (std::vector<uint8_t>{0, 2, 4, 6}));
  Tensor v = ms("QLinearAveragePool", {x, f32_scalar(1), u8_scalar(1), f32_scalar(1), kNone}, include);
  EXPECT_EQ(values_of<uint8_t>(v), (std::vector<uint8_t>{0, 1, 2, 6}));
}

TEST(QuantizeContribTest, QLinearAveragePoolCeilModeDivisorStopsAtThePaddedExtent) {
  // 4x4 of 100, kernel 3, stride 2, ceil_mode: 2x2 outputs whose last windows run one past the
  // input (there is no padding). count_include_pad counts the padded extent only, as AveragePool
  // does, so every window averages to 100 (divisors 9, 6, 6, 4).
  Tensor y = ms("QLinearAveragePool", {u8({1, 1, 4, 4}, std::vector<uint8_t>(16, 100)), f32_scalar(1), kNone,
                                       f32_scalar(1), kNone},
                {{"kernel_shape", attr_ints({3, 3})},
                 {"strides", attr_ints({2, 2})},
                 {"ceil_mode", attr_int(1)},
                 {"count_include_pad", attr_int(1)}});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 2, 2}));
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{100, 100, 100, 100}));
}

TEST(QuantizeContribTest, QLinearAveragePoolChannelsLast) {
  // Channel 0 is 1..9, channel 1 is 10..90, interleaved (N x H x W x C). Same windows as above:
  // channel 1 gives 10, 25, 55, 70.
  std::vector<uint8_t> data;
  for (uint8_t v = 1; v <= 9; ++v) {
    data.push_back(v);
    data.push_back(static_cast<uint8_t>(10 * v));
  }
  Tensor y = ms("QLinearAveragePool", {u8({1, 3, 3, 2}, data), f32_scalar(1), kNone, f32_scalar(1), kNone},
                {{"kernel_shape", attr_ints({2, 2})},
                 {"strides", attr_ints({2, 2})},
                 {"pads", attr_ints({1, 1, 0, 0})},
                 {"channels_last", attr_int(1)}});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 2, 2}));
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{1, 10, 2, 25, 6, 55, 7, 70}));
}

TEST(QuantizeContribTest, QLinearAveragePoolSameUpperAndErrors) {
  // 1-D, SAME_UPPER, kernel 2: windows {1,2}, {3,4}, {5} (the end padding excluded) -> 1.5, 3.5, 5 -> 2, 4, 5.
  Tensor y = ms("QLinearAveragePool", {s8({1, 1, 5}, {1, 2, 3, 4, 5}), f32_scalar(1), kNone, f32_scalar(1), kNone},
                {{"kernel_shape", attr_ints({2})}, {"strides", attr_ints({2})}, {"auto_pad", attr_string("SAME_UPPER")}});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3}));
  EXPECT_EQ(values_of<int8_t>(y), (std::vector<int8_t>{2, 4, 5}));
  const Tensor x = u8({1, 1, 3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  ms_error("QLinearAveragePool", {x, f32_scalar(1), kNone, f32_scalar(1), kNone});  // no kernel_shape
  ms_error("QLinearAveragePool", {x, f32_scalar(1), kNone, f32_scalar(1), kNone}, {{"kernel_shape", attr_ints({2})}});
  ms_error("QLinearAveragePool", {x, f32_scalar(1), kNone, f32_scalar(1), kNone}, {{"kernel_shape", attr_ints({4, 4})}});
}

// ---- QLinearConcat --------------------------------------------------------------------------------

TEST(QuantizeContribTest, QLinearConcatRequantizesEachInput) {
  // Input 0 already has Y's parameters (copied). Input 1 reals 0.25 (x - 1): -0.25, 0.75, 63.5, 0.5;
  // / 0.5: -0.5, 1.5, 127, 1 -> 0, 2, 127, 1; + 10.
  const std::vector<Tensor> in{f32_scalar(0.5f), u8_scalar(10),  u8({1, 2}, {10, 11}), f32_scalar(0.5f),
                               u8_scalar(10),    u8({1, 4}, {0, 4, 255, 3}),         f32_scalar(0.25f), u8_scalar(1)};
  for (int64_t axis : {1, -1}) {
    Tensor y = ms("QLinearConcat", in, {{"axis", attr_int(axis)}});
    EXPECT_EQ(y.shape(), (Shape{1, 6}));
    EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{10, 11, 10, 12, 137, 11}));
  }
  // Axis 0, int8: 100 / 0.5 and -100 / 0.5 saturate; the second input's zero point is omitted.
  Tensor s = ms("QLinearConcat", {f32_scalar(0.5f), s8_scalar(0), s8({1, 2}, {100, -100}), f32_scalar(1), s8_scalar(0),
                                  s8({2, 2}, {1, 2, 3, 4}), f32_scalar(0.5f), kNone},
                {{"axis", attr_int(0)}});
  EXPECT_EQ(s.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{127, -128, 1, 2, 3, 4}));
}

TEST(QuantizeContribTest, QLinearConcatErrors) {
  const Attrs axis1{{"axis", attr_int(1)}};
  // Not a whole number of triples.
  ms_error("QLinearConcat", {f32_scalar(1), u8_scalar(0), u8({1, 2}, {1, 2}), f32_scalar(1)}, axis1);
  // Dims other than the axis differ.
  ms_error("QLinearConcat", {f32_scalar(1), u8_scalar(0), u8({1, 2}, {1, 2}), f32_scalar(1), u8_scalar(0),
                             u8({2, 2}, {1, 2, 3, 4}), f32_scalar(1), u8_scalar(0)},
           axis1);
  // An input of another 8-bit type than Y.
  ms_error("QLinearConcat", {f32_scalar(1), u8_scalar(0), s8({1, 2}, {1, 2}), f32_scalar(1), s8_scalar(0)}, axis1);
  // Axis missing or out of range.
  const std::vector<Tensor> one{f32_scalar(1), u8_scalar(0), u8({1, 2}, {1, 2}), f32_scalar(1), u8_scalar(0)};
  ms_error("QLinearConcat", one);
  ms_error("QLinearConcat", one, {{"axis", attr_int(2)}});
}

// ---- QGemm ----------------------------------------------------------------------------------------
// A = [[1,2,3],[4,5,6]], a_scale 0.5, a_zp 1; B = [[1,2],[3,4],[5,6]], b_scale [1, 0.25], b_zp
// [1, 2]. (A - 1) (B - b_zp) = [[10, 10], [28, 28]]; with C = [2, -3]: [[12, 7], [30, 25]].
// Reals acc * 0.5 * b_scale[n]: [[6, 0.875], [15, 3.125]].

std::vector<Tensor> qgemm_inputs(bool trans_a, bool trans_b) {
  Tensor a = trans_a ? u8({3, 2}, {1, 4, 2, 5, 3, 6}) : u8({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = trans_b ? u8({2, 3}, {1, 3, 5, 2, 4, 6}) : u8({3, 2}, {1, 2, 3, 4, 5, 6});
  return {a, f32_scalar(0.5f), u8_scalar(1), b, f32({2}, {1, 0.25f}), u8({2}, {1, 2}), i32({2}, {2, -3})};
}

TEST(QuantizeContribTest, QGemmFloatOutput) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) {
      Tensor y = ms("QGemm", qgemm_inputs(ta, tb), {{"transA", attr_int(ta)}, {"transB", attr_int(tb)}});
      EXPECT_EQ(y.dtype(), DataType::float32);
      EXPECT_EQ(y.shape(), (Shape{2, 2}));
      EXPECT_EQ(values_of<float>(y), (std::vector<float>{6, 0.875f, 15, 3.125f})) << ta << tb;
    }
  // Without C, a [2,1] C, and a scalar C.
  std::vector<Tensor> in = qgemm_inputs(false, false);
  in[6] = Tensor();
  EXPECT_EQ(values_of<float>(ms("QGemm", in)), (std::vector<float>{5, 1.25f, 14, 3.5f}));
  in[6] = i32({2, 1}, {2, 4});
  EXPECT_EQ(values_of<float>(ms("QGemm", in)), (std::vector<float>{6, 1.5f, 16, 4}));
  in[6] = Tensor::scalar<int32_t>(-10);
  EXPECT_EQ(values_of<float>(ms("QGemm", in)), (std::vector<float>{0, 0, 9, 2.25f}));
}

TEST(QuantizeContribTest, QGemmQuantizedOutput) {
  // / 0.25: 24, 3.5, 60, 12.5 -> 24, 4, 60, 12; + 100.
  std::vector<Tensor> in = qgemm_inputs(false, false);
  in.push_back(f32_scalar(0.25f));
  in.push_back(u8_scalar(100));
  Tensor y = ms("QGemm", in);
  EXPECT_EQ(y.dtype(), DataType::uint8);
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{124, 104, 160, 112}));
  // alpha 2 into int8 at scale 0.125: 96, 14, 240 (saturates), 50.
  in[7] = f32_scalar(0.125f);
  in[8] = s8_scalar(0);
  Tensor s = ms("QGemm", in, {{"alpha", attr_float(2)}});
  EXPECT_EQ(s.dtype(), DataType::int8);
  EXPECT_EQ(values_of<int8_t>(s), (std::vector<int8_t>{96, 14, 127, 50}));
}

TEST(QuantizeContribTest, QGemmInt8OperandsPerTensor) {
  // A = [[-1, 2]], B = [[3], [-4]] with b_zp -1: (-1)(4) + 2(-3) = -10; * 1 * 0.5 = -5.
  Tensor y = ms("QGemm", {s8({1, 2}, {-1, 2}), f32_scalar(1), s8_scalar(0), s8({2, 1}, {3, -4}), f32_scalar(0.5f),
                          s8_scalar(-1)});
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{-5}));
}

TEST(QuantizeContribTest, QGemmErrors) {
  std::vector<Tensor> in = qgemm_inputs(false, false);
  std::vector<Tensor> bad = in;
  bad.push_back(f32_scalar(0.25f));  // y_scale without y_zero_point
  ms_error("QGemm", bad);
  bad = in;
  bad[6] = i32({3}, {1, 2, 3});  // C does not broadcast to [2, 2]
  ms_error("QGemm", bad);
  bad[6] = f32({2}, {1, 2});  // C must be int32
  ms_error("QGemm", bad);
  bad = in;
  bad[4] = f32({3}, {1, 1, 1});  // b_scale per column needs 2 values
  ms_error("QGemm", bad);
  bad = in;
  bad[5] = s8({2}, {1, 2});  // b_zero_point of another type than B
  ms_error("QGemm", bad);
  ms_error("QGemm", in, {{"transA", attr_int(1)}});  // K = 2 vs 3
  bad = in;
  bad[0] = u8({2, 3, 1}, {1, 2, 3, 4, 5, 6});
  ms_error("QGemm", bad);
}

// ---- DynamicQuantizeMatMul, MatMulIntegerToFloat --------------------------------------------------

TEST(QuantizeContribTest, DynamicQuantizeMatMul) {
  // A spans [-1, 0.9921875]: scale 1.9921875 / 255 = 1/128, zero point 128. A * 128 = -128, 0,
  // 127, 64, 32, 0.5 (a tie: 0); quantized minus the zero point: -128, 0, 127, 64, 32, 0.
  // B - b_zp per column: [0, 20, 40] in both columns. acc = [[5080, 5080], [640, 640]].
  // Y = acc / 128 * b_scale[n] + bias[n]: [[19.84375 + 1, 79.375 - 1], [2.5 + 1, 10 - 1]].
  Tensor y = ms("DynamicQuantizeMatMul",
                {f32({2, 3}, {-1, 0, 0.9921875f, 0.5f, 0.25f, 0.00390625f}), u8({3, 2}, {10, 20, 30, 40, 50, 60}),
                 f32({2}, {0.5f, 2}), u8({2}, {10, 20}), f32({2}, {1, -1})});
  EXPECT_EQ(y.dtype(), DataType::float32);
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{20.84375f, 78.375f, 3.5f, 9}));
  // Per-tensor int8 B without zero point or bias, batched A [2, 1, 2] against B [2, 1].
  // A spans [0, 2.55]: scale 2.55 / 255 (0.01 up to float32 rounding), zero point 0;
  // 2.55 -> 255, 1 -> 100. Y = 255 * 2 * 0.01 = 5.1 and 100 * -1 * 0.01 = -1.
  Tensor z = ms("DynamicQuantizeMatMul", {f32({2, 1, 2}, {2.55f, 0, 0, 1}), s8({2, 1}, {2, -1}), f32_scalar(1)});
  EXPECT_EQ(z.shape(), (Shape{2, 1, 1}));
  ASSERT_EQ(z.numel(), 2);
  EXPECT_NEAR(values_of<float>(z)[0], 5.1, 1e-5);
  EXPECT_NEAR(values_of<float>(z)[1], -1.0, 1e-5);
  ms_error("DynamicQuantizeMatMul", {f32({1, 2}, {1, 2}), u8({2, 2}, {1, 2, 3, 4})});  // no b_scale
  ms_error("DynamicQuantizeMatMul", {f32({1, 2}, {1, 2}), u8({2, 2}, {1, 2, 3, 4}), f32({3}, {1, 1, 1})});
  ms_error("DynamicQuantizeMatMul", {f32({1, 2}, {1, 2}), u8({2, 2}, {1, 2, 3, 4}), f32_scalar(1), kNone, f32({3}, {1, 1, 1})});
  ms_error("DynamicQuantizeMatMul", {f32({1, 3}, {1, 2, 3}), u8({2, 2}, {1, 2, 3, 4}), f32_scalar(1)});
}

TEST(QuantizeContribTest, MatMulIntegerToFloat) {
  // A - 1 = [[-4, 3], [4, -7]]; B - b_zp per column: [0, 3], [2, 5], [4, 7].
  // acc = [[9, 7, 5], [-21, -27, -33]]; * 0.5 * [1, 0.5, 0.25] + [0.5, 0, -0.5].
  const std::vector<Tensor> in{s8({2, 2}, {-3, 4, 5, -6}), s8({2, 3}, {1, 2, 3, 4, 5, 6}), f32_scalar(0.5f),
                               f32({3}, {1, 0.5f, 0.25f}), s8_scalar(1), s8({3}, {1, 0, -1}), f32({3}, {0.5f, 0, -0.5f})};
  Tensor y = ms("MatMulIntegerToFloat", in);
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  const std::vector<float> want{5, 1.75f, 0.125f, -10, -6.75f, -4.625f};
  EXPECT_EQ(values_of<float>(y), want);
  // The same rows as a batch of [1, 2] matrices.
  std::vector<Tensor> batched = in;
  batched[0] = s8({2, 1, 2}, {-3, 4, 5, -6});
  Tensor b = ms("MatMulIntegerToFloat", batched);
  EXPECT_EQ(b.shape(), (Shape{2, 1, 3}));
  EXPECT_EQ(values_of<float>(b), want);
  // uint8, 1-D A, no zero points or bias: [1, 2] . [3, 4] = 11.
  Tensor v = ms("MatMulIntegerToFloat", {u8({2}, {1, 2}), u8({2, 1}, {3, 4}), f32_scalar(1), f32_scalar(1)});
  EXPECT_EQ(v.shape(), (Shape{1}));
  EXPECT_EQ(values_of<float>(v), (std::vector<float>{11}));
  std::vector<Tensor> bad = in;
  bad[4] = u8_scalar(1);  // a_zero_point of another type than A
  ms_error("MatMulIntegerToFloat", bad);
  bad = in;
  bad[2] = f32({2}, {1, 1});  // a_scale is per tensor
  ms_error("MatMulIntegerToFloat", bad);
  bad = in;
  bad[6] = f32({2}, {1, 1});  // bias needs one value per column
  ms_error("MatMulIntegerToFloat", bad);
  ms_error("MatMulIntegerToFloat", {s8({2, 2}, {1, 2, 3, 4}), s8({3, 1}, {1, 2, 3}), f32_scalar(1), f32_scalar(1)});
}

// ---- shape inference ------------------------------------------------------------------------------

// For every com.microsoft case of the op suite (inputs of known shapes, at least one of them a
// graph input, so the rule rather than folding decides), shape inference gives the exact dtype
// and dims the reference kernel produces.
TEST(QuantizeContribTest, ShapeRulesGiveTheKernelsTypesAndDims) {
  int checked = 0;
  for (const testing::OpCase& c : testing::quantize_cases()) {
    if (c.domain != "com.microsoft") continue;
    std::vector<Value> outs;
    ASSERT_TRUE(testing::run_on_reference(c, &outs).is_ok()) << c.label();
    ASSERT_EQ(outs.size(), 1u) << c.label();
    auto inferred = infer_shapes(*testing::case_graph(c));
    ASSERT_TRUE(inferred.is_ok()) << c.label() << ": " << inferred.status().to_string();
    const TypeInfo* t = inferred->type_of("y0");
    ASSERT_NE(t, nullptr) << c.label();
    EXPECT_EQ(t->elem, outs[0].tensor.dtype()) << c.label();
    ASSERT_TRUE(t->has_shape) << c.label();
    Shape dims;
    for (const Dim& d : t->dims) dims.push_back(d.fixed() ? d.value : -1);
    EXPECT_EQ(dims, outs[0].tensor.shape()) << c.label();
    ++checked;
  }
  EXPECT_GT(checked, 40);
}

TEST(QuantizeContribTest, ShapeRulesRejectCertainErrors) {
  testing::OpCase bad_gemm = testing::with_domain(
      testing::with_opset(testing::op_case("QGemm", {u8({2, 3}, {1, 2, 3, 4, 5, 6}), f32_scalar(1), u8_scalar(0),
                                                     u8({2, 2}, {1, 2, 3, 4}), f32_scalar(1), u8_scalar(0)}),
                          1),
      "com.microsoft");
  auto r = infer_shapes(*testing::case_graph(bad_gemm));
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("inner dimensions differ"), std::string::npos) << r.status().message();
  testing::OpCase bad_concat = testing::with_domain(
      testing::with_opset(testing::op_case("QLinearConcat", {f32_scalar(1), u8_scalar(0), u8({1, 2}, {1, 2}), f32_scalar(1),
                                                             u8_scalar(0), u8({2, 2}, {1, 2, 3, 4}), f32_scalar(1), u8_scalar(0)},
                                           {{"axis", attr_int(1)}}),
                          1),
      "com.microsoft");
  EXPECT_FALSE(infer_shapes(*testing::case_graph(bad_concat)).is_ok());
}

}  // namespace
}  // namespace tandem
