#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_ints;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Tensor data_3x2x2() {
  return Tensor::from_vector<float>({3, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
}

TEST(ReduceOps, SumAxesAttributeOldOpset) {
  Tensor y = run_op1("ReduceSum", {data_3x2x2()}, {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}, 11);
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{4, 6, 12, 14, 20, 22}));
}

TEST(ReduceOps, SumAxesInputKeepdims) {
  Tensor axes = Tensor::from_vector<int64_t>({1}, {-2});
  Tensor y = run_op1("ReduceSum", {data_3x2x2(), axes}, {}, 13);
  EXPECT_EQ(y.shape(), (Shape{3, 1, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{4, 6, 12, 14, 20, 22}));
}

TEST(ReduceOps, EmptyAxesReducesAllOrNoop) {
  Tensor axes = Tensor::from_vector<int64_t>({0}, {});
  Tensor all = run_op1("ReduceSum", {data_3x2x2(), axes}, {}, 13);
  EXPECT_EQ(all.shape(), (Shape{1, 1, 1}));
  EXPECT_EQ(values_of<float>(all), (std::vector<float>{78}));
  Tensor noop = run_op1("ReduceSum", {data_3x2x2(), axes}, {{"noop_with_empty_axes", attr_int(1)}}, 13);
  EXPECT_EQ(noop.shape(), (Shape{3, 2, 2}));
  EXPECT_EQ(values_of<float>(noop), values_of<float>(data_3x2x2()));
  Tensor omitted = run_op1("ReduceMax", {data_3x2x2()}, {{"keepdims", attr_int(0)}}, 13);
  EXPECT_EQ(omitted.shape(), Shape{});
  EXPECT_EQ(values_of<float>(omitted), (std::vector<float>{12}));
}

TEST(ReduceOps, AllKindsOnOneRow) {
  Tensor x = Tensor::from_vector<float>({1, 3}, {1, -2, 3});
  auto r = [&](const char* op) {
    return values_of<float>(run_op1(op, {x}, {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}, 13))[0];
  };
  EXPECT_FLOAT_EQ(r("ReduceSum"), 2);
  EXPECT_FLOAT_EQ(r("ReduceMean"), 2.0f / 3);
  EXPECT_FLOAT_EQ(r("ReduceMax"), 3);
  EXPECT_FLOAT_EQ(r("ReduceMin"), -2);
  EXPECT_FLOAT_EQ(r("ReduceProd"), -6);
  EXPECT_FLOAT_EQ(r("ReduceL1"), 6);
  EXPECT_FLOAT_EQ(r("ReduceL2"), std::sqrt(14.0f));
  EXPECT_FLOAT_EQ(r("ReduceSumSquare"), 14);
  EXPECT_FLOAT_EQ(r("ReduceLogSum"), std::log(2.0f));
  EXPECT_NEAR(r("ReduceLogSumExp"), std::log(std::exp(1.0) + std::exp(-2.0) + std::exp(3.0)), 1e-6);
}

TEST(ReduceOps, Opset18AxesInputForAll) {
  Tensor axes = Tensor::from_vector<int64_t>({1}, {0});
  Tensor y = run_op1("ReduceMin", {data_3x2x2(), axes}, {{"keepdims", attr_int(0)}}, 18);
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{1, 2, 3, 4}));
}

TEST(ReduceOps, EmptySetIdentities) {
  Tensor x(DataType::float32, {2, 0});
  auto r = [&](const char* op) {
    Tensor y = run_op1(op, {x}, {{"axes", attr_ints({1})}, {"keepdims", attr_int(0)}}, 13);
    EXPECT_EQ(y.shape(), (Shape{2}));
    return values_of<float>(y)[0];
  };
  EXPECT_EQ(r("ReduceSum"), 0.0f);
  EXPECT_EQ(r("ReduceProd"), 1.0f);
  EXPECT_EQ(r("ReduceMax"), -std::numeric_limits<float>::infinity());
  EXPECT_EQ(r("ReduceMin"), std::numeric_limits<float>::infinity());
  EXPECT_EQ(r("ReduceLogSumExp"), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(r("ReduceMean")));
  Tensor xi(DataType::int32, {0, 3});
  Tensor yi = run_op1("ReduceMax", {xi}, {{"axes", attr_ints({0})}, {"keepdims", attr_int(1)}}, 13);
  EXPECT_EQ(yi.shape(), (Shape{1, 3}));
  EXPECT_EQ(values_of<int32_t>(yi)[0], std::numeric_limits<int32_t>::lowest());
}

TEST(ReduceOps, IntegerExactness) {
  Tensor x = Tensor::from_vector<int64_t>({2}, {(int64_t{1} << 53) + 1, 1});
  Tensor y = run_op1("ReduceSum", {x, Tensor::from_vector<int64_t>({1}, {0})}, {{"keepdims", attr_int(0)}}, 13);
  EXPECT_EQ(values_of<int64_t>(y)[0], (int64_t{1} << 53) + 2);
  Tensor m = run_op1("ReduceMean", {Tensor::from_vector<int32_t>({3}, {1, 2, 4})}, {{"keepdims", attr_int(0)}}, 13);
  EXPECT_EQ(values_of<int32_t>(m)[0], 2);
}

TEST(ReduceOps, Float16) {
  Tensor x = Tensor::from_vector<Float16>({2}, {Float16(1.5f), Float16(2.0f)});
  Tensor y = run_op1("ReduceSum", {x}, {{"keepdims", attr_int(0)}}, 11);
  EXPECT_EQ(static_cast<float>(y.data<Float16>()[0]), 3.5f);
}

TEST(ReduceOps, BadAxisIsInvalid) {
  std::vector<Value> outs;
  Status s = run_op("ReduceSum", {data_3x2x2()}, {{"axes", attr_ints({3})}}, &outs, 1, 11);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  s = run_op("ReduceMean", {data_3x2x2(), Tensor::from_vector<float>({1}, {0})}, {}, &outs, 1, 18);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
  s = run_op("ReduceMean", {}, {}, &outs, 1, 13);
  EXPECT_FALSE(s.is_ok());
}

TEST(SoftmaxOps, Opset13AlongOneAxis) {
  Tensor x = Tensor::from_vector<float>({2, 2}, {0, 0, 1, 3});
  Tensor y = run_op1("Softmax", {x}, {{"axis", attr_int(0)}}, 13);
  std::vector<float> v = values_of<float>(y);
  EXPECT_NEAR(v[0], 1 / (1 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(v[2], std::exp(1.0) / (1 + std::exp(1.0)), 1e-6);
  EXPECT_NEAR(v[1] + v[3], 1.0, 1e-6);
}

TEST(SoftmaxOps, LegacyCoercesTo2D) {
  // opset 11, axis 1 on [1, 2, 2]: one row of 4 elements.
  Tensor x = Tensor::from_vector<float>({1, 2, 2}, {1, 1, 1, 1});
  Tensor y = run_op1("Softmax", {x}, {}, 11);
  for (float v : values_of<float>(y)) EXPECT_NEAR(v, 0.25, 1e-6);
  Tensor y13 = run_op1("Softmax", {x}, {{"axis", attr_int(1)}}, 13);
  for (float v : values_of<float>(y13)) EXPECT_NEAR(v, 0.5, 1e-6);
}

TEST(SoftmaxOps, LogSoftmaxLargeNumbersAndHardmax) {
  Tensor x = Tensor::from_vector<double>({1, 3}, {1000, 1000, 999});
  Tensor y = run_op1("LogSoftmax", {x}, {}, 13);
  double lse = 1000 + std::log(2 + std::exp(-1.0));
  EXPECT_NEAR(values_of<double>(y)[0], 1000 - lse, 1e-12);
  EXPECT_NEAR(values_of<double>(y)[2], 999 - lse, 1e-12);
  Tensor h = run_op1("Hardmax", {x}, {}, 13);
  EXPECT_EQ(values_of<double>(h), (std::vector<double>{1, 0, 0}));
}

TEST(SoftmaxOps, RejectsIntegersAndBadAxis) {
  std::vector<Value> outs;
  EXPECT_EQ(run_op("Softmax", {Tensor::from_vector<int32_t>({2}, {1, 2})}, {}, &outs).code(), StatusCode::invalid_argument);
  EXPECT_EQ(run_op("Softmax", {Tensor::from_vector<float>({2}, {1, 2})}, {{"axis", attr_int(2)}}, &outs).code(),
            StatusCode::invalid_argument);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(ReduceOps, HugeOutputFromEmptyInputIsInvalid) {
  Tensor x(DataType::float32, {0, int64_t{1} << 40, int64_t{1} << 40});
  std::vector<Value> outs;
  Status s = testing::run_op("ReduceSum", {x}, {{"axes", testing::attr_ints({0})}}, &outs, 1, 11);
  EXPECT_EQ(s.code(), StatusCode::invalid_argument);
}

TEST(SoftmaxOps, ZeroSizeInputs) {
  for (Shape shape : {Shape{0, 3}, Shape{3, 0}}) {
    for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"}) {
      Tensor y = testing::run_op1(op, {Tensor(DataType::float32, shape)}, {}, 13);
      EXPECT_EQ(y.shape(), shape);
    }
  }
}

}  // namespace
}  // namespace tandem
