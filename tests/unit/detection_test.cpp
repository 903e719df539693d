// Unit tests for the reference NonMaxSuppression kernel.
#include <gtest/gtest.h>

#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Tensor six_boxes() {
  return Tensor::from_vector<float>({1, 6, 4}, {0, 0, 1, 1, 0, 0.1f, 1, 1.1f, 0, -0.1f, 1, 0.9f,
                                                0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100, 1, 101});
}
Tensor six_scores() { return Tensor::from_vector<float>({1, 1, 6}, {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f}); }

TEST(NonMaxSuppressionKernel, SuppressByIou) {
  Tensor y = run_op1("NonMaxSuppression",
                     {six_boxes(), six_scores(), Tensor::from_vector<int64_t>({1}, {3}),
                      Tensor::from_vector<float>({1}, {0.5f}), Tensor::from_vector<float>({1}, {0.0f})},
                     {}, 11);
  EXPECT_EQ(y.shape(), (Shape{3, 3}));
  EXPECT_EQ(values_of<int64_t>(y), (std::vector<int64_t>{0, 0, 3, 0, 0, 0, 0, 0, 5}));
}

TEST(NonMaxSuppressionKernel, ScoreThresholdAndLimit) {
  Tensor y = run_op1("NonMaxSuppression",
                     {six_boxes(), six_scores(), Tensor::from_vector<int64_t>({}, {2}),
                      Tensor::from_vector<float>({}, {0.5f}), Tensor::from_vector<float>({}, {0.92f})},
                     {}, 11);
  EXPECT_EQ(values_of<int64_t>(y), (std::vector<int64_t>{0, 0, 3}));
}

TEST(NonMaxSuppressionKernel, OptionalInputsOmitted) {
  // No max_output_boxes_per_class: nothing is selected.
  Tensor none = run_op1("NonMaxSuppression", {six_boxes(), six_scores()}, {}, 11);
  EXPECT_EQ(none.shape(), (Shape{0, 3}));
  // No iou_threshold (0): any overlap suppresses; no score_threshold: every score counts.
  Tensor y = run_op1("NonMaxSuppression", {six_boxes(), six_scores(), Tensor::from_vector<int64_t>({1}, {10})}, {}, 11);
  EXPECT_EQ(values_of<int64_t>(y), (std::vector<int64_t>{0, 0, 3, 0, 0, 0, 0, 0, 5}));
}

TEST(NonMaxSuppressionKernel, CenterPointBoxesAndTies) {
  Tensor boxes = Tensor::from_vector<float>({1, 3, 4}, {0.5f, 0.5f, 1, 1, 0.5f, 0.5f, 1, 1, 5, 5, 1, 1});
  Tensor scores = Tensor::from_vector<float>({1, 1, 3}, {0.9f, 0.9f, 0.9f});
  Tensor y = run_op1("NonMaxSuppression",
                     {boxes, scores, Tensor::from_vector<int64_t>({1}, {5}), Tensor::from_vector<float>({1}, {0.5f})},
                     {{"center_point_box", attr_int(1)}}, 11);
  EXPECT_EQ(values_of<int64_t>(y), (std::vector<int64_t>{0, 0, 0, 0, 0, 2}));
}

TEST(NonMaxSuppressionKernel, RejectsBadShapes) {
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("NonMaxSuppression", {Tensor(DataType::float32, {1, 6, 3}), six_scores()}, {}, &outs, 1, 11).is_ok());
  EXPECT_FALSE(run_op("NonMaxSuppression", {six_boxes(), Tensor(DataType::float32, {1, 1, 5})}, {}, &outs, 1, 11).is_ok());
  EXPECT_FALSE(run_op("NonMaxSuppression", {six_boxes()}, {}, &outs, 1, 11).is_ok());
  EXPECT_FALSE(run_op("NonMaxSuppression", {six_boxes(), six_scores(), Tensor::from_vector<int64_t>({2}, {1, 2})}, {},
                      &outs, 1, 11)
                   .is_ok());
}

TEST(NonMaxSuppressionKernel, EmptyInputs) {
  Tensor y = run_op1("NonMaxSuppression",
                     {Tensor(DataType::float32, {0, 0, 4}), Tensor(DataType::float32, {0, 2, 0}),
                      Tensor::from_vector<int64_t>({1}, {3})},
                     {}, 11);
  EXPECT_EQ(y.shape(), (Shape{0, 3}));
}

}  // namespace
}  // namespace tandem
