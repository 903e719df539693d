#include <gtest/gtest.h>

#include <cmath>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::attr_string;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Tensor log_probs() { return Tensor::from_vector<float>({2, 3}, {-1, -2, -3, -4, -5, -6}); }

TEST(LossOps, NllReductions) {
  Tensor target = Tensor::from_vector<int64_t>({2}, {2, 0});
  Tensor none = run_op1("NegativeLogLikelihoodLoss", {log_probs(), target}, {{"reduction", attr_string("none")}}, 13);
  EXPECT_EQ(values_of<float>(none), (std::vector<float>{3, 4}));
  Tensor sum = run_op1("NegativeLogLikelihoodLoss", {log_probs(), target}, {{"reduction", attr_string("sum")}}, 13);
  EXPECT_EQ(sum.shape(), Shape{});
  EXPECT_FLOAT_EQ(values_of<float>(sum)[0], 7);
  Tensor weight = Tensor::from_vector<float>({3}, {1, 0, 3});
  Tensor mean = run_op1("NegativeLogLikelihoodLoss", {log_probs(), target, weight}, {}, 13);
  EXPECT_FLOAT_EQ(values_of<float>(mean)[0], (9.0f + 4.0f) / 4.0f);
}

TEST(LossOps, NllIgnoreIndex) {
  Tensor target = Tensor::from_vector<int64_t>({2}, {-1, 1});
  Tensor mean = run_op1("NegativeLogLikelihoodLoss", {log_probs(), target}, {{"ignore_index", attr_int(-1)}}, 13);
  EXPECT_FLOAT_EQ(values_of<float>(mean)[0], 5);
}

TEST(LossOps, NllBadTargets) {
  std::vector<Value> outs;
  EXPECT_EQ(run_op("NegativeLogLikelihoodLoss", {log_probs(), Tensor::from_vector<int64_t>({2}, {3, 0})}, {}, &outs).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(run_op("NegativeLogLikelihoodLoss", {log_probs(), Tensor::from_vector<int64_t>({3}, {0, 0, 0})}, {}, &outs).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(run_op("NegativeLogLikelihoodLoss", {log_probs(), Tensor::from_vector<float>({2}, {0, 0})}, {}, &outs).code(),
            StatusCode::invalid_argument);
}

TEST(LossOps, SoftmaxCrossEntropyWithLogProb) {
  Tensor scores = Tensor::from_vector<float>({1, 2, 2}, {0, 1, 0, 1});  // N=1, C=2, D=2
  Tensor labels = Tensor::from_vector<int64_t>({1, 2}, {0, 1});
  std::vector<Value> outs;
  Status s = run_op("SoftmaxCrossEntropyLoss", {scores, labels}, {{"reduction", attr_string("none")}}, &outs, 2, 13);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(outs[0].tensor.shape(), (Shape{1, 2}));
  std::vector<float> loss = values_of<float>(outs[0].tensor);
  EXPECT_NEAR(loss[0], std::log(2.0), 1e-6);
  EXPECT_NEAR(loss[1], std::log(2.0), 1e-6);
  EXPECT_EQ(outs[1].tensor.shape(), (Shape{1, 2, 2}));
  EXPECT_NEAR(values_of<float>(outs[1].tensor)[0], -std::log(2.0), 1e-6);
}

}  // namespace
}  // namespace tandem
