// Unit tests of the reference pooling kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Tensor square(int n, float first = 1.0f) {
  std::vector<float> v(n * n);
  std::iota(v.begin(), v.end(), first);
  return Tensor::from_vector<float>({1, 1, n, n}, v);
}

TEST(PoolKernels, MaxPoolWithIndicesStorageOrder) {
  std::vector<Value> outs;
  Status s = run_op("MaxPool", {square(5)},
                    {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}, {"storage_order", attr_int(1)}},
                    &outs, 2, 12);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{7, 9, 17, 19}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{6, 16, 8, 18}));
  s = run_op("MaxPool", {square(5)}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}}, &outs, 2, 12);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{6, 8, 16, 18}));
}

TEST(PoolKernels, MaxPoolCeilModeDilationsAndUint8) {
  Tensor y = run_op1("MaxPool", {square(4)},
                     {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"ceil_mode", attr_int(1)}}, 12);
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{11, 12, 15, 16}));
  Tensor yd = run_op1("MaxPool", {square(4)}, {{"kernel_shape", attr_ints({2, 2})}, {"dilations", attr_ints({2, 2})}}, 12);
  EXPECT_EQ(values_of<float>(yd), (std::vector<float>{11, 12, 15, 16}));
  // A last window that would start inside the end padding is dropped in ceil mode.
  Tensor x1 = Tensor::from_vector<float>({1, 1, 4}, {1, 2, 3, 4});
  Tensor yc = run_op1("MaxPool", {x1},
                      {{"kernel_shape", attr_ints({1})}, {"strides", attr_ints({2})}, {"pads", attr_ints({0, 1})},
                       {"ceil_mode", attr_int(1)}},
                      12);
  EXPECT_EQ(values_of<float>(yc), (std::vector<float>{1, 3}));
  Tensor xu = Tensor::from_vector<uint8_t>({1, 1, 4}, {9, 250, 3, 4});
  Tensor yu = run_op1("MaxPool", {xu}, {{"kernel_shape", attr_ints({2})}, {"pads", attr_ints({1, 0})}}, 12);
  EXPECT_EQ(values_of<uint8_t>(yu), (std::vector<uint8_t>{9, 250, 250, 4}));
}

TEST(PoolKernels, MaxPoolSameUpperAndErrors) {
  Tensor y = run_op1("MaxPool", {square(5)},
                     {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"auto_pad", attr_string("SAME_UPPER")}}, 12);
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{7, 9, 10, 17, 19, 20, 22, 24, 25}));
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("MaxPool", {square(5)}, {}, &outs).is_ok());  // kernel_shape required
  EXPECT_FALSE(run_op("MaxPool", {square(5)}, {{"kernel_shape", attr_ints({2})}}, &outs).is_ok());
  EXPECT_FALSE(run_op("MaxPool", {square(2)}, {{"kernel_shape", attr_ints({3, 3})}}, &outs).is_ok());
  EXPECT_FALSE(run_op("MaxPool", {square(5)}, {{"kernel_shape", attr_ints({2, 2})}, {"pads", attr_ints({1, 1})}}, &outs).is_ok());
}

TEST(PoolKernels, AveragePoolCountIncludePad) {
  Tensor ones = Tensor::from_vector<float>({1, 1, 3, 3}, std::vector<float>(9, 1.0f));
  Tensor y = run_op1("AveragePool", {ones}, {{"kernel_shape", attr_ints({3, 3})}, {"pads", attr_ints({1, 1, 1, 1})}}, 11);
  EXPECT_EQ(values_of<float>(y), std::vector<float>(9, 1.0f));
  Tensor yi = run_op1("AveragePool", {ones},
                      {{"kernel_shape", attr_ints({3, 3})}, {"pads", attr_ints({1, 1, 1, 1})}, {"count_include_pad", attr_int(1)}}, 11);
  std::vector<float> v = values_of<float>(yi);
  ASSERT_EQ(v.size(), 9u);
  EXPECT_FLOAT_EQ(v[0], 4.0f / 9.0f);
  EXPECT_FLOAT_EQ(v[1], 6.0f / 9.0f);
  EXPECT_FLOAT_EQ(v[4], 1.0f);
  // Ceil mode: the partial last window averages only what it covers.
  Tensor yc = run_op1("AveragePool", {square(4)},
                      {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}, {"ceil_mode", attr_int(1)}}, 11);
  EXPECT_EQ(values_of<float>(yc), (std::vector<float>{6, 7.5, 12, 13.5}));
  std::vector<Value> outs;
  Tensor xi = Tensor::from_vector<int32_t>({1, 1, 2}, {1, 2});
  EXPECT_FALSE(run_op("AveragePool", {xi}, {{"kernel_shape", attr_ints({1})}}, &outs).is_ok());
}

TEST(PoolKernels, LpPool) {
  Tensor x = Tensor::from_vector<float>({1, 1, 3}, {3, -4, 0});
  Tensor y = run_op1("LpPool", {x}, {{"kernel_shape", attr_ints({2})}}, 11);
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{5, 4}));
  Tensor y1 = run_op1("LpPool", {x}, {{"kernel_shape", attr_ints({2})}, {"p", attr_int(1)}}, 11);
  EXPECT_EQ(values_of<float>(y1), (std::vector<float>{7, 4}));
  Tensor yf = run_op1("LpPool", {x}, {{"kernel_shape", attr_ints({3})}, {"p", attr_float(2.0f)}}, 1);
  EXPECT_EQ(values_of<float>(yf), (std::vector<float>{5}));
}

TEST(PoolKernels, GlobalPools) {
  Tensor x = Tensor::from_vector<float>({1, 2, 2, 2}, {1, 2, 3, 4, -3, 0, 0, 4});
  Tensor ya = run_op1("GlobalAveragePool", {x});
  EXPECT_EQ(ya.shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(values_of<float>(ya), (std::vector<float>{2.5f, 0.25f}));
  EXPECT_EQ(values_of<float>(run_op1("GlobalMaxPool", {x})), (std::vector<float>{4, 4}));
  Tensor yl = run_op1("GlobalLpPool", {x});
  EXPECT_FLOAT_EQ(yl.data<float>()[0], std::sqrt(30.0f));
  EXPECT_FLOAT_EQ(yl.data<float>()[1], 5.0f);
  Tensor xd = Tensor::from_vector<double>({1, 1, 3}, {1, 2, 6});
  EXPECT_EQ(values_of<double>(run_op1("GlobalAveragePool", {xd})), (std::vector<double>{3}));
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("GlobalMaxPool", {Tensor::from_vector<float>({2}, {1, 2})}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("GlobalMaxPool", {Tensor(DataType::float32, {1, 1, 0})}, {}, &outs).is_ok());
}

TEST(PoolKernels, MaxUnpool) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {5, 6, 7, 8});
  Tensor i = Tensor::from_vector<int64_t>({1, 1, 2, 2}, {5, 7, 13, 15});
  std::map<std::string, Attribute> attrs{{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}};
  Tensor y = run_op1("MaxUnpool", {x, i}, attrs, 11);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{0, 0, 0, 0, 0, 5, 0, 6, 0, 0, 0, 0, 0, 7, 0, 8}));
  Tensor ys = run_op1("MaxUnpool", {x, i, Tensor::from_vector<int64_t>({4}, {1, 1, 5, 5})}, attrs, 11);
  EXPECT_EQ(ys.shape(), (Shape{1, 1, 5, 5}));
  std::vector<float> expect(25, 0.0f);
  expect[6] = 5;
  expect[8] = 6;
  expect[16] = 7;
  expect[18] = 8;
  EXPECT_EQ(values_of<float>(ys), expect);
  std::vector<Value> outs;
  Tensor bad = Tensor::from_vector<int64_t>({1, 1, 2, 2}, {5, 7, 13, 16});
  EXPECT_FALSE(run_op("MaxUnpool", {x, bad}, attrs, &outs, 1, 11).is_ok());
  EXPECT_FALSE(run_op("MaxUnpool", {x, i, Tensor::from_vector<int64_t>({4}, {1, 2, 5, 5})}, attrs, &outs, 1, 11).is_ok());
}

}  // namespace
}  // namespace tandem
