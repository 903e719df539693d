#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

TEST(NormalizationOps, BatchNormInference) {
  Tensor x = Tensor::from_vector<float>({1, 2, 1, 2}, {1, 2, 3, 4});
  Tensor scale = Tensor::from_vector<float>({2}, {1, 2});
  Tensor bias = Tensor::from_vector<float>({2}, {0, 1});
  Tensor mean = Tensor::from_vector<float>({2}, {1, 3});
  Tensor var = Tensor::from_vector<float>({2}, {4, 1});
  Tensor y = run_op1("BatchNormalization", {x, scale, bias, mean, var}, {{"epsilon", attr_float(0)}}, 15);
  std::vector<float> v = values_of<float>(y);
  EXPECT_NEAR(v[0], 0, 1e-6);
  EXPECT_NEAR(v[1], 0.5, 1e-6);
  EXPECT_NEAR(v[2], 1, 1e-6);
  EXPECT_NEAR(v[3], 3, 1e-6);
}

TEST(NormalizationOps, BatchNormTrainingMode) {
  Tensor x = Tensor::from_vector<float>({2, 1, 1, 1}, {1, 3});
  Tensor one = Tensor::from_vector<float>({1}, {1});
  Tensor zero = Tensor::from_vector<float>({1}, {0});
  std::vector<Value> outs;
  Status s = run_op("BatchNormalization", {x, one, zero, zero, one},
                    {{"epsilon", attr_float(0)}, {"training_mode", attr_int(1)}, {"momentum", attr_float(0.5f)}},
                    &outs, 3, 15);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{-1, 1}));
  EXPECT_FLOAT_EQ(values_of<float>(outs[1].tensor)[0], 1.0f);  // 0 * 0.5 + 2 * 0.5
  EXPECT_FLOAT_EQ(values_of<float>(outs[2].tensor)[0], 1.0f);  // 1 * 0.5 + 1 * 0.5
}

TEST(NormalizationOps, BatchNormBadParamShape) {
  Tensor x(DataType::float32, {1, 3, 2});
  Tensor p(DataType::float32, {2});
  std::vector<Value> outs;
  EXPECT_EQ(run_op("BatchNormalization", {x, p, p, p, p}, {}, &outs, 1, 15).code(), StatusCode::invalid_argument);
}

TEST(NormalizationOps, InstanceNorm) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2}, {1, 3});
  Tensor y = run_op1("InstanceNormalization",
                     {x, Tensor::from_vector<float>({1}, {2}), Tensor::from_vector<float>({1}, {1})},
                     {{"epsilon", attr_float(0)}}, 6);
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{-1, 3}));
}

TEST(NormalizationOps, LayerNormWithStats) {
  Tensor x = Tensor::from_vector<float>({2, 2}, {1, 3, 2, 2});
  Tensor scale = Tensor::from_vector<float>({2}, {1, 2});
  std::vector<Value> outs;
  Status s = run_op("LayerNormalization", {x, scale}, {{"epsilon", attr_float(0.0f)}}, &outs, 3, 17);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(outs[1].tensor.shape(), (Shape{2, 1}));
  EXPECT_EQ(values_of<float>(outs[1].tensor), (std::vector<float>{2, 2}));
  EXPECT_FLOAT_EQ(values_of<float>(outs[2].tensor)[0], 1.0f);
  EXPECT_TRUE(std::isinf(values_of<float>(outs[2].tensor)[1]));
  std::vector<float> y = values_of<float>(outs[0].tensor);
  EXPECT_FLOAT_EQ(y[0], -1);
  EXPECT_FLOAT_EQ(y[1], 2);
}

TEST(NormalizationOps, LayerNormBadScale) {
  Tensor x(DataType::float32, {2, 3});
  std::vector<Value> outs;
  EXPECT_EQ(run_op("LayerNormalization", {x, Tensor(DataType::float32, {2})}, {}, &outs, 1, 17).code(),
            StatusCode::invalid_argument);
}

TEST(NormalizationOps, Lrn) {
  Tensor x = Tensor::from_vector<float>({1, 3, 1, 1}, {1, 2, 3});
  Tensor y = run_op1("LRN", {x}, {{"size", attr_int(3)}, {"alpha", attr_float(3)}, {"beta", attr_float(1)}, {"bias", attr_float(1)}}, 13);
  std::vector<float> v = values_of<float>(y);
  EXPECT_NEAR(v[0], 1.0 / (1 + 5), 1e-6);
  EXPECT_NEAR(v[1], 2.0 / (1 + 14), 1e-6);
  EXPECT_NEAR(v[2], 3.0 / (1 + 13), 1e-6);
  std::vector<Value> outs;
  EXPECT_EQ(run_op("LRN", {x}, {}, &outs, 1, 13).code(), StatusCode::invalid_argument);
}

// Worked from the spec: X [1, 4, 2] in 2 groups of 2 channels. Group 0 holds 1, 3, 5, 7 (mean 4,
// variance 5), group 1 holds 0, 0, 2, 2 (mean 1, variance 1).
TEST(NormalizationOps, GroupNormalization) {
  Tensor x = Tensor::from_vector<float>({1, 4, 2}, {1, 3, 5, 7, 0, 0, 2, 2});
  const std::map<std::string, Attribute> attrs = {{"num_groups", attr_int(2)}, {"epsilon", attr_float(0)}};
  const double r5 = std::sqrt(5.0);
  // Opset 18: one scale and bias per group.
  std::vector<float> g = values_of<float>(run_op1(
      "GroupNormalization", {x, Tensor::from_vector<float>({2}, {2, 1}), Tensor::from_vector<float>({2}, {1, 0})}, attrs, 18));
  const double want18[] = {2 * -3 / r5 + 1, 2 * -1 / r5 + 1, 2 * 1 / r5 + 1, 2 * 3 / r5 + 1, -1, -1, 1, 1};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(g[i], want18[i], 1e-5) << i;
  // Opset 21: one per channel.
  std::vector<float> c = values_of<float>(run_op1("GroupNormalization",
                                                  {x, Tensor::from_vector<float>({4}, {1, 2, 3, 4}),
                                                   Tensor::from_vector<float>({4}, {0, 1, 0, 1})},
                                                  attrs, 21));
  const double want21[] = {-3 / r5, -1 / r5, 2 * 1 / r5 + 1, 2 * 3 / r5 + 1, -3, -3, 4 + 1, 4 + 1};
  for (int i = 0; i < 8; ++i) EXPECT_NEAR(c[i], want21[i], 1e-5) << i;
  std::vector<Value> outs;
  EXPECT_EQ(run_op("GroupNormalization", {x, Tensor::from_vector<float>({3}, {1, 1, 1}), Tensor::from_vector<float>({3}, {0, 0, 0})},
                   {{"num_groups", attr_int(3)}}, &outs, 1, 18).code(),
            StatusCode::invalid_argument);  // 3 groups do not divide 4 channels
  EXPECT_EQ(run_op("GroupNormalization", {x, Tensor::from_vector<float>({2}, {1, 1}), Tensor::from_vector<float>({2}, {0, 0})},
                   attrs, &outs, 1, 21).code(),
            StatusCode::invalid_argument);  // opset 21 wants one value per channel
}

// Worked from the spec: rows [3, 4] and [-1, 0] along the last axis; columns along axis 0.
TEST(NormalizationOps, LpNormalization) {
  Tensor x = Tensor::from_vector<float>({2, 2}, {3, 4, -1, 0});
  std::vector<float> l2 = values_of<float>(run_op1("LpNormalization", {x}, {}, 13));
  EXPECT_NEAR(l2[0], 0.6, 1e-6);
  EXPECT_NEAR(l2[1], 0.8, 1e-6);
  EXPECT_NEAR(l2[2], -1, 1e-6);
  EXPECT_NEAR(l2[3], 0, 1e-6);
  std::vector<float> l1 = values_of<float>(run_op1("LpNormalization", {x}, {{"axis", attr_int(0)}, {"p", attr_int(1)}}, 13));
  EXPECT_NEAR(l1[0], 0.75, 1e-6);  // 3 / (3 + 1)
  EXPECT_NEAR(l1[1], 1, 1e-6);     // 4 / (4 + 0)
  EXPECT_NEAR(l1[2], -0.25, 1e-6);
  EXPECT_NEAR(l1[3], 0, 1e-6);
  std::vector<Value> outs;
  EXPECT_EQ(run_op("LpNormalization", {x}, {{"p", attr_int(3)}}, &outs, 1, 13).code(), StatusCode::invalid_argument);
  EXPECT_EQ(run_op("LpNormalization", {x}, {{"axis", attr_int(2)}}, &outs, 1, 13).code(), StatusCode::invalid_argument);
}

TEST(NormalizationOps, MeanVarianceNormalization) {
  Tensor x = Tensor::from_vector<float>({1, 2}, {1, 3});
  Tensor y = run_op1("MeanVarianceNormalization", {x}, {{"axes", attr_ints({1})}}, 13);
  std::vector<float> v = values_of<float>(y);
  EXPECT_NEAR(v[0], -1, 1e-6);
  EXPECT_NEAR(v[1], 1, 1e-6);
}

}  // namespace
}  // namespace tandem

namespace tandem {
namespace {

TEST(NormalizationOps, ZeroSizeInputsDoNotCrash) {
  std::vector<Value> outs;
  Tensor empty(DataType::float32, {0, 2, 3});
  Tensor p = Tensor::from_vector<float>({2}, {1, 1});
  EXPECT_TRUE(testing::run_op("BatchNormalization", {empty, p, p, p, p}, {{"training_mode", testing::attr_int(1)}}, &outs, 3, 15).is_ok());
  EXPECT_TRUE(testing::run_op("InstanceNormalization", {Tensor(DataType::float32, {1, 2, 0}), p, p}, {}, &outs, 1, 6).is_ok());
  EXPECT_TRUE(testing::run_op("LayerNormalization", {Tensor(DataType::float32, {2, 0}), Tensor(DataType::float32, {0})}, {}, &outs, 3, 17).is_ok());
  EXPECT_TRUE(testing::run_op("LRN", {empty}, {{"size", testing::attr_int(3)}}, &outs, 1, 13).is_ok());
  EXPECT_TRUE(testing::run_op("MeanVarianceNormalization", {Tensor(DataType::float32, {0, 2, 1, 1})}, {}, &outs, 1, 13).is_ok());
  EXPECT_TRUE(testing::run_op("SoftmaxCrossEntropyLoss", {Tensor(DataType::float32, {0, 3}), Tensor(DataType::int64, {0})}, {}, &outs, 2, 13).is_ok());
}

}  // namespace
}  // namespace tandem
