// Unit tests for the reference activation kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_string;
using testing::f32;
using testing::run_op1;
using testing::run_op;
using testing::values_of;

void expect_near_all(const Tensor& t, const std::vector<double>& want) {
  std::vector<float> got = values_of<float>(t);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-6) << "at " << i;
}

TEST(ActivationTest, ReluFloatAndInt) {
  expect_near_all(run_op1("Relu", {f32({3}, {-1, 0, 2})}), {0, 0, 2});
  Tensor i = Tensor::from_vector<int32_t>({2}, {-5, 5});
  EXPECT_EQ(values_of<int32_t>(run_op1("Relu", {i})), (std::vector<int32_t>{0, 5}));
}

TEST(ActivationTest, ParameterizedActivations) {
  Tensor x = f32({3}, {-1, 0, 1});
  expect_near_all(run_op1("LeakyRelu", {x}, {{"alpha", attr_float(0.1f)}}), {-0.1f, 0, 1});
  expect_near_all(run_op1("Elu", {x}, {{"alpha", attr_float(2.0f)}}), {2 * (std::exp(-1.0) - 1), 0, 1});
  expect_near_all(run_op1("Selu", {x}),
                  {1.05070102214813232421875 * 1.67326319217681884765625 * (std::exp(-1.0) - 1), 0,
                   1.05070102214813232421875});
  expect_near_all(run_op1("Celu", {x}, {{"alpha", attr_float(2.0f)}}), {2 * (std::exp(-0.5) - 1), 0, 1});
  expect_near_all(run_op1("ThresholdedRelu", {f32({3}, {0.5f, 1, 2})}), {0, 0, 2});
  expect_near_all(run_op1("HardSigmoid", {f32({3}, {-5, 0, 5})}), {0, 0.5, 1});
  expect_near_all(run_op1("HardSwish", {f32({3}, {-4, 1, 4})}), {0, 1 * (1 / 6.0 + 0.5), 4});
}

TEST(ActivationTest, SmoothActivations) {
  Tensor x = f32({3}, {-100, 0, 100});
  expect_near_all(run_op1("Sigmoid", {x}), {0, 0.5, 1});
  expect_near_all(run_op1("Softplus", {x}), {0, std::log(2.0), 100});
  expect_near_all(run_op1("Softsign", {f32({2}, {-1, 3})}), {-0.5, 0.75});
  expect_near_all(run_op1("Tanh", {f32({1}, {0.5f})}), {std::tanh(0.5)});
  expect_near_all(run_op1("Mish", {f32({1}, {1})}), {std::tanh(std::log1p(std::exp(1.0)))});
  expect_near_all(run_op1("Gelu", {f32({1}, {1})}), {0.5 * (1 + std::erf(1 / std::sqrt(2.0)))});
  Tensor g = run_op1("Gelu", {f32({1}, {1})}, {{"approximate", attr_string("tanh")}});
  EXPECT_NEAR(values_of<float>(g)[0], 0.841192, 1e-5);
}

TEST(ActivationTest, Shrink) {
  Tensor x = f32({5}, {-2, -1, 0, 1, 2});
  expect_near_all(run_op1("Shrink", {x}, {{"lambd", attr_float(1.5f)}}), {-2, 0, 0, 0, 2});
  expect_near_all(run_op1("Shrink", {x}, {{"lambd", attr_float(0.5f)}, {"bias", attr_float(0.5f)}}),
                  {-1.5, -0.5, 0, 0.5, 1.5});
  Tensor i = Tensor::from_vector<int8_t>({3}, {-3, 0, 3});
  EXPECT_EQ(values_of<int8_t>(run_op1("Shrink", {i}, {{"lambd", attr_float(1.0f)}, {"bias", attr_float(1.0f)}})),
            (std::vector<int8_t>{-2, 0, 2}));
}

TEST(ActivationTest, PReluBroadcast) {
  Tensor x = f32({2, 2}, {-1, -1, 1, -2});
  expect_near_all(run_op1("PRelu", {x, f32({2}, {0.1f, 0.2f})}), {-0.1f, -0.2f, 1, -0.4f});
  // Opset 6: a 1-D slope of length C applies per channel (dim 1).
  Tensor y = f32({1, 2, 2}, {-1, -1, -1, -1});
  expect_near_all(run_op1("PRelu", {y, f32({2}, {0.1f, 0.2f})}, {}, 6), {-0.1f, -0.1f, -0.2f, -0.2f});
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("PRelu", {x, f32({3}, {1, 2, 3})}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("PRelu", {x, f32({2, 2, 2}, {})}, {}, &outs).is_ok());  // slope bigger than X
}

TEST(ActivationTest, RejectsBadInputs) {
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("Sigmoid", {Tensor::from_vector<int32_t>({1}, {1})}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("Sigmoid", {}, {}, &outs).is_ok());
  EXPECT_FALSE(run_op("Gelu", {f32({1}, {1})}, {{"approximate", attr_string("erf")}}, &outs).is_ok());
  EXPECT_EQ(run_op1("Elu", {f32({0, 4}, {})}).numel(), 0);
}

}  // namespace
}  // namespace tandem
