// Unit tests of the reference conv kernels: Conv, ConvTranspose, ConvInteger, QLinearConv.
#include <gtest/gtest.h>

#include <numeric>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

std::vector<float> iota_floats(int n) {
  std::vector<float> v(n);
  std::iota(v.begin(), v.end(), 0.0f);
  return v;
}

Tensor x5x5() { return Tensor::from_vector<float>({1, 1, 5, 5}, iota_floats(25)); }
Tensor ones3x3() { return Tensor::from_vector<float>({1, 1, 3, 3}, std::vector<float>(9, 1.0f)); }

TEST(ConvKernels, Conv2dWithPadding) {
  Tensor y = run_op1("Conv", {x5x5(), ones3x3()}, {{"kernel_shape", attr_ints({3, 3})}, {"pads", attr_ints({1, 1, 1, 1})}});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 5, 5}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{12, 21, 27, 33, 24, 33, 54, 63, 72, 51, 63, 99, 108, 117, 81,
                                                     93, 144, 153, 162, 111, 72, 111, 117, 123, 84}));
}

TEST(ConvKernels, Conv2dAutoPadSameLowerStrided) {
  // kernel_shape inferred from the weight.
  Tensor y = run_op1("Conv", {x5x5(), ones3x3()}, {{"auto_pad", attr_string("SAME_LOWER")}, {"strides", attr_ints({2, 2})}});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 3, 3}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{12, 27, 24, 63, 108, 81, 72, 117, 84}));
}

TEST(ConvKernels, Conv1dGroupsBiasDilation) {
  Tensor x = Tensor::from_vector<float>({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor w = Tensor::from_vector<float>({2, 1, 1}, {2, 3});
  Tensor b = Tensor::from_vector<float>({2}, {1, -1});
  Tensor y = run_op1("Conv", {x, w, b}, {{"group", attr_int(2)}});
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{3, 5, 7, 11, 14, 17}));
  // Dilation 2 over 5 elements with a 2-tap kernel: x[i] + x[i + 2].
  Tensor x2 = Tensor::from_vector<float>({1, 1, 5}, {1, 2, 3, 4, 5});
  Tensor w2 = Tensor::from_vector<float>({1, 1, 2}, {1, 1});
  Tensor y2 = run_op1("Conv", {x2, w2}, {{"dilations", attr_ints({2})}});
  EXPECT_EQ(values_of<float>(y2), (std::vector<float>{4, 6, 8}));
}

TEST(ConvKernels, Conv3dAndFloat16) {
  Tensor x = Tensor::from_vector<double>({1, 1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor w = Tensor::from_vector<double>({1, 1, 2, 2, 2}, std::vector<double>(8, 0.5));
  Tensor y = run_op1("Conv", {x, w});
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1, 1, 1}));
  EXPECT_EQ(values_of<double>(y), (std::vector<double>{18}));
  Tensor xh = Tensor::from_vector<Float16>({1, 1, 2}, {Float16(1.5f), Float16(2.0f)});
  Tensor wh = Tensor::from_vector<Float16>({1, 1, 1}, {Float16(2.0f)});
  Tensor yh = run_op1("Conv", {xh, wh});
  ASSERT_EQ(yh.dtype(), DataType::float16);
  EXPECT_EQ(static_cast<float>(yh.data<Float16>()[0]), 3.0f);
  EXPECT_EQ(static_cast<float>(yh.data<Float16>()[1]), 4.0f);
}

TEST(ConvKernels, ConvRejectsBadShapes) {
  std::vector<Value> outs;
  Tensor w3 = Tensor::from_vector<float>({1, 1, 3}, {1, 1, 1});
  Status s = run_op("Conv", {x5x5(), w3}, {}, &outs);
  ASSERT_FALSE(s.is_ok());
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  EXPECT_NE(s.message().find("[Conv"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("weight has 3 dims, expected 4"), std::string::npos) << s.message();
  Tensor w2c = Tensor::from_vector<float>({1, 2, 3, 3}, std::vector<float>(18, 1.0f));
  s = run_op("Conv", {x5x5(), w2c}, {}, &outs);
  EXPECT_NE(s.message().find("channels"), std::string::npos) << s.message();
  // Groups must divide the channels.
  Tensor x3 = Tensor::from_vector<float>({1, 3, 4}, std::vector<float>(12, 1.0f));
  Tensor wg = Tensor::from_vector<float>({2, 1, 1}, {1, 1});
  EXPECT_FALSE(run_op("Conv", {x3, wg}, {{"group", attr_int(2)}}, &outs).is_ok());
  // Kernel larger than the input.
  Tensor big = Tensor::from_vector<float>({1, 1, 7, 7}, std::vector<float>(49, 1.0f));
  EXPECT_FALSE(run_op("Conv", {x5x5(), big}, {}, &outs).is_ok());
  // kernel_shape that disagrees with the weight, a bias of the wrong size, int inputs.
  EXPECT_FALSE(run_op("Conv", {x5x5(), ones3x3()}, {{"kernel_shape", attr_ints({2, 2})}}, &outs).is_ok());
  EXPECT_FALSE(run_op("Conv", {x5x5(), ones3x3(), Tensor::from_vector<float>({2}, {1, 2})}, {}, &outs).is_ok());
  Tensor xi = Tensor::from_vector<int32_t>({1, 1, 3}, {1, 2, 3});
  Tensor wi = Tensor::from_vector<int32_t>({1, 1, 1}, {1});
  EXPECT_FALSE(run_op("Conv", {xi, wi}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("Conv", {x5x5(), ones3x3()}, {{"strides", attr_ints({0, 1})}}, &outs).is_ok());
  EXPECT_FALSE(run_op("Conv", {x5x5(), ones3x3()}, {{"auto_pad", attr_string("BOGUS")}}, &outs).is_ok());
}

TEST(ConvKernels, ConvZeroBatch) {
  Tensor x(DataType::float32, {0, 1, 5, 5});
  Tensor y = run_op1("Conv", {x, ones3x3()});
  EXPECT_EQ(y.shape(), (Shape{0, 1, 3, 3}));
}

TEST(ConvKernels, ConvTranspose1dAndOutputShape) {
  Tensor x = Tensor::from_vector<float>({1, 1, 3}, {0, 1, 2});
  Tensor w = Tensor::from_vector<float>({1, 2, 3}, std::vector<float>(6, 1.0f));
  Tensor y = run_op1("ConvTranspose", {x, w});
  EXPECT_EQ(y.shape(), (Shape{1, 2, 5}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{0, 1, 3, 3, 2, 0, 1, 3, 3, 2}));
  // Stride 2: full size 7; output_shape 8 appends a zero, SAME_UPPER crops the end.
  Tensor y8 = run_op1("ConvTranspose", {x, w}, {{"strides", attr_ints({2})}, {"output_shape", attr_ints({8})}});
  EXPECT_EQ(values_of<float>(y8), (std::vector<float>{0, 0, 1, 1, 3, 2, 2, 0, 0, 0, 1, 1, 3, 2, 2, 0}));
  Tensor ys = run_op1("ConvTranspose", {x, w}, {{"strides", attr_ints({2})}, {"auto_pad", attr_string("SAME_UPPER")}});
  EXPECT_EQ(values_of<float>(ys), (std::vector<float>{0, 0, 1, 1, 3, 2, 0, 0, 1, 1, 3, 2}));
  // pads crop both ends; output_padding appends; bias adds.
  Tensor yp = run_op1("ConvTranspose", {x, w, Tensor::from_vector<float>({2}, {1, 2})},
                      {{"strides", attr_ints({2})}, {"pads", attr_ints({1, 1})}, {"output_padding", attr_ints({1})}});
  EXPECT_EQ(values_of<float>(yp), (std::vector<float>{1, 2, 2, 4, 3, 3, 2, 3, 3, 5, 4, 4}));
}

TEST(ConvKernels, ConvTransposeGroupsAndErrors) {
  // 2 input channels, group 2, one output channel per group: each channel is scaled.
  Tensor x = Tensor::from_vector<float>({1, 2, 2}, {1, 2, 3, 4});
  Tensor w = Tensor::from_vector<float>({2, 1, 1}, {10, 100});
  Tensor y = run_op1("ConvTranspose", {x, w}, {{"group", attr_int(2)}});
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{10, 20, 300, 400}));
  std::vector<Value> outs;
  Tensor wbad = Tensor::from_vector<float>({3, 1, 1}, {1, 1, 1});
  EXPECT_FALSE(run_op("ConvTranspose", {x, wbad}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("ConvTranspose", {x, w}, {{"group", attr_int(2)}, {"pads", attr_ints({3, 3})}}, &outs).is_ok());
}

TEST(ConvKernels, ConvIntegerWithPadding) {
  Tensor x = Tensor::from_vector<uint8_t>({1, 1, 3, 3}, {2, 3, 4, 5, 6, 7, 8, 9, 10});
  Tensor w = Tensor::from_vector<uint8_t>({1, 1, 2, 2}, {1, 1, 1, 1});
  Tensor zp = Tensor::scalar<uint8_t>(1);
  Tensor y = run_op1("ConvInteger", {x, w, zp}, {{"pads", attr_ints({1, 1, 1, 1})}}, 10);
  ASSERT_EQ(y.dtype(), DataType::int32);
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9}));
  // Per-channel weight zero points, int8 weights.
  Tensor xs = Tensor::from_vector<uint8_t>({1, 1, 2}, {3, 5});
  Tensor ws = Tensor::from_vector<int8_t>({2, 1, 1}, {-2, 4});
  Tensor wzp = Tensor::from_vector<int8_t>({2}, {-1, 1});
  Tensor y2 = run_op1("ConvInteger", {xs, ws, Tensor(), wzp}, {}, 10);
  EXPECT_EQ(values_of<int32_t>(y2), (std::vector<int32_t>{-3, -5, 9, 15}));
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("ConvInteger", {xs, ws, Tensor::scalar<int8_t>(1)}, {}, &outs, 1, 10).is_ok());
}

TEST(ConvKernels, QLinearConvRoundsHalfToEvenAndSaturates) {
  Tensor x = Tensor::from_vector<uint8_t>({1, 1, 1, 3}, {10, 11, 200});
  Tensor w = Tensor::from_vector<uint8_t>({1, 1, 1, 1}, {4});
  // acc = x * (4 - 2) = 20, 22, 400; multiplier = 0.5 * 0.25 / 0.5 = 0.25 -> 5, 5.5 -> 6, 100.
  Tensor y = run_op1("QLinearConv",
                     {x, Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(0), w, Tensor::scalar<float>(0.25f),
                      Tensor::scalar<uint8_t>(2), Tensor::scalar<float>(0.5f), Tensor::scalar<int8_t>(30)},
                     {}, 10);
  ASSERT_EQ(y.dtype(), DataType::int8);
  EXPECT_EQ(values_of<int8_t>(y), (std::vector<int8_t>{35, 36, 127}));
  // With an int32 bias.
  Tensor yb = run_op1("QLinearConv",
                      {x, Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(0), w, Tensor::scalar<float>(0.25f),
                       Tensor::scalar<uint8_t>(2), Tensor::scalar<float>(0.5f), Tensor::scalar<uint8_t>(0),
                       Tensor::from_vector<int32_t>({1}, {-4})},
                      {}, 10);
  EXPECT_EQ(values_of<uint8_t>(yb), (std::vector<uint8_t>{4, 4, 99}));
}

}  // namespace
}  // namespace tandem
