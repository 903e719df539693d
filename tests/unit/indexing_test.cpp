// Unit tests for the reference indexing kernels (src/kernels/indexing.cpp).
#include <cmath>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem::testing {
namespace {

Status run_expect_error(const std::string& op, const std::vector<Tensor>& in,
                        const std::map<std::string, Attribute>& attrs = {}, size_t outs = 1, int64_t opset = 17) {
  std::vector<Value> out;
  return run_op(op, in, attrs, &out, outs, opset);
}

TEST(IndexingGather, NegativeIndicesAxis1) {
  Tensor data = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor out = run_op1("Gather", {data, i64({2}, {-1, 0})}, {{"axis", attr_int(1)}});
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{3, 1, 6, 4}));
}

TEST(IndexingGather, ScalarIndexDropsAxis) {
  Tensor data = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor out = run_op1("Gather", {data, i32({}, {2})});
  EXPECT_EQ(out.shape(), (Shape{2}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{5, 6}));
}

TEST(IndexingGather, Strings) {
  Tensor data = Tensor::from_vector<std::string>({3}, {"a", "bb", "ccc"});
  Tensor out = run_op1("Gather", {data, i64({2, 2}, {2, 0, 1, 1})});
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<std::string>(out), (std::vector<std::string>{"ccc", "a", "bb", "bb"}));
}

TEST(IndexingGather, OutOfRangeIsInvalid) {
  Tensor data = f32({3}, {1, 2, 3});
  EXPECT_EQ(run_expect_error("Gather", {data, i64({1}, {3})}).code(), StatusCode::invalid_argument);
  EXPECT_EQ(run_expect_error("Gather", {data, i64({1}, {-4})}).code(), StatusCode::invalid_argument);
  EXPECT_EQ(run_expect_error("Gather", {data, i64({1}, {0})}, {{"axis", attr_int(1)}}).code(),
            StatusCode::invalid_argument);
  EXPECT_EQ(run_expect_error("Gather", {data, f32({1}, {0})}).code(), StatusCode::invalid_argument);
}

TEST(IndexingGatherElements, Basic) {
  Tensor data = f32({2, 2}, {1, 2, 3, 4});
  Tensor out = run_op1("GatherElements", {data, i64({2, 2}, {0, 0, 1, 0})}, {{"axis", attr_int(1)}});
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{1, 1, 4, 3}));
  Tensor out2 = run_op1("GatherElements", {data, i64({1, 2}, {-1, 0})}, {{"axis", attr_int(0)}});
  EXPECT_EQ(out2.shape(), (Shape{1, 2}));
  EXPECT_EQ(values_of<float>(out2), (std::vector<float>{3, 2}));
  EXPECT_FALSE(run_expect_error("GatherElements", {data, i64({2, 2}, {0, 2, 0, 0})}, {{"axis", attr_int(1)}}).is_ok());
  EXPECT_FALSE(run_expect_error("GatherElements", {data, i64({2, 3}, {0, 0, 0, 0, 0, 0})}, {{"axis", attr_int(0)}}).is_ok());
}

TEST(IndexingGatherND, BatchDims) {
  Tensor data = i32({2, 2, 2}, {0, 1, 2, 3, 4, 5, 6, 7});
  Tensor out = run_op1("GatherND", {data, i64({2, 1}, {1, 0})}, {{"batch_dims", attr_int(1)}});
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<int32_t>(out), (std::vector<int32_t>{2, 3, 4, 5}));
  Tensor out2 = run_op1("GatherND", {data, i64({2, 3}, {0, 1, 1, 1, 0, -1})});
  EXPECT_EQ(out2.shape(), (Shape{2}));
  EXPECT_EQ(values_of<int32_t>(out2), (std::vector<int32_t>{3, 5}));
  EXPECT_FALSE(run_expect_error("GatherND", {data, i64({1, 3}, {0, 2, 0})}).is_ok());
  EXPECT_FALSE(run_expect_error("GatherND", {data, i64({1, 4}, {0, 0, 0, 0})}).is_ok());
}

TEST(IndexingScatterElements, Reductions) {
  Tensor data = f32({1, 5}, {1, 2, 3, 4, 5});
  Tensor idx = i64({1, 3}, {1, 1, -1});
  Tensor upd = f32({1, 3}, {1.5f, 2.5f, 10});
  Tensor none = run_op1("ScatterElements", {data, idx, upd}, {{"axis", attr_int(1)}});
  EXPECT_EQ(values_of<float>(none), (std::vector<float>{1, 2.5f, 3, 4, 10}));
  Tensor add = run_op1("ScatterElements", {data, idx, upd}, {{"axis", attr_int(1)}, {"reduction", attr_string("add")}});
  EXPECT_EQ(values_of<float>(add), (std::vector<float>{1, 6, 3, 4, 15}));
  Tensor mul = run_op1("ScatterElements", {data, idx, upd}, {{"axis", attr_int(1)}, {"reduction", attr_string("mul")}});
  EXPECT_EQ(values_of<float>(mul), (std::vector<float>{1, 7.5f, 3, 4, 50}));
  Tensor mx = run_op1("ScatterElements", {data, idx, upd}, {{"axis", attr_int(1)}, {"reduction", attr_string("max")}});
  EXPECT_EQ(values_of<float>(mx), (std::vector<float>{1, 2.5f, 3, 4, 10}));
  Tensor mn = run_op1("ScatterElements", {data, idx, upd}, {{"axis", attr_int(1)}, {"reduction", attr_string("min")}});
  EXPECT_EQ(values_of<float>(mn), (std::vector<float>{1, 1.5f, 3, 4, 5}));
  // Input must not be mutated.
  EXPECT_EQ(values_of<float>(data), (std::vector<float>{1, 2, 3, 4, 5}));
}

TEST(IndexingScatterElements, ScatterAliasAndErrors) {
  Tensor data = f32({3, 3}, {0, 0, 0, 0, 0, 0, 0, 0, 0});
  Tensor idx = i64({2, 3}, {1, 0, 2, 0, 2, 1});
  Tensor upd = f32({2, 3}, {1, 1.1f, 1.2f, 2, 2.1f, 2.2f});
  Tensor out = run_op1("Scatter", {data, idx, upd}, {}, 10);
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{2, 1.1f, 0, 1, 0, 2.2f, 0, 2.1f, 1.2f}));
  EXPECT_FALSE(run_expect_error("ScatterElements", {data, i64({2, 3}, {1, 0, 3, 0, 2, 1}), upd}).is_ok());
  EXPECT_FALSE(run_expect_error("ScatterElements", {data, idx, f32({3}, {1, 2, 3})}).is_ok());
  EXPECT_FALSE(
      run_expect_error("ScatterElements", {data, idx, upd}, {{"reduction", attr_string("bogus")}}).is_ok());
}

TEST(IndexingScatterND, SlicesAndMul) {
  Tensor data = i64({2, 2}, {1, 2, 3, 4});
  Tensor out = run_op1("ScatterND", {data, i64({1, 1}, {1}), i64({1, 2}, {7, 8})});
  EXPECT_EQ(values_of<int64_t>(out), (std::vector<int64_t>{1, 2, 7, 8}));
  Tensor mul = run_op1("ScatterND", {data, i64({2, 2}, {0, 1, 0, 1}), i64({2}, {3, 5})},
                       {{"reduction", attr_string("mul")}});
  EXPECT_EQ(values_of<int64_t>(mul), (std::vector<int64_t>{1, 30, 3, 4}));
  EXPECT_FALSE(run_expect_error("ScatterND", {data, i64({1, 1}, {2}), i64({1, 2}, {7, 8})}).is_ok());
  EXPECT_FALSE(run_expect_error("ScatterND", {data, i64({1, 1}, {1}), i64({1, 3}, {7, 8, 9})}).is_ok());
}

TEST(IndexingCompress, AxisAndFlatten) {
  Tensor data = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor cond = Tensor::from_vector<bool>({3}, {false, true, true});
  Tensor out = run_op1("Compress", {data, cond}, {{"axis", attr_int(0)}});
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{3, 4, 5, 6}));
  Tensor flat = run_op1("Compress", {data, cond});
  EXPECT_EQ(flat.shape(), (Shape{2}));
  EXPECT_EQ(values_of<float>(flat), (std::vector<float>{2, 3}));
  Tensor too_long = Tensor::from_vector<bool>({3}, {false, true, true});
  EXPECT_FALSE(run_expect_error("Compress", {data, too_long}, {{"axis", attr_int(1)}}).is_ok());
}

TEST(IndexingNonZero, Basic) {
  Tensor x = Tensor::from_vector<bool>({2, 2}, {true, false, true, true});
  Tensor out = run_op1("NonZero", {x});
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<int64_t>(out), (std::vector<int64_t>{0, 1, 1, 0, 0, 1}));
  Tensor empty = run_op1("NonZero", {f32({0, 3}, {})});
  EXPECT_EQ(empty.shape(), (Shape{2, 0}));
}

TEST(IndexingUnique, NotSortedWithoutAxis) {
  std::vector<Value> outs;
  Status s = run_op("Unique", {f32({6}, {2, 1, 1, 3, 4, 3})}, {{"sorted", attr_int(0)}}, &outs, 4, 11);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{2, 1, 3, 4}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{0, 1, 3, 4}));
  EXPECT_EQ(values_of<int64_t>(outs[2].tensor), (std::vector<int64_t>{0, 1, 1, 2, 3, 2}));
  EXPECT_EQ(values_of<int64_t>(outs[3].tensor), (std::vector<int64_t>{1, 2, 2, 1}));
}

TEST(IndexingUnique, SortedWithAxis3d) {
  std::vector<Value> outs;
  Tensor x = f32({2, 4, 2}, {1, 1, 0, 1, 2, 1, 0, 1, 1, 1, 0, 1, 2, 1, 0, 1});
  Status s = run_op("Unique", {x}, {{"sorted", attr_int(1)}, {"axis", attr_int(1)}}, &outs, 4, 11);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  EXPECT_EQ(outs[0].tensor.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{0, 1, 1, 1, 2, 1, 0, 1, 1, 1, 2, 1}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(values_of<int64_t>(outs[2].tensor), (std::vector<int64_t>{1, 0, 2, 0}));
  EXPECT_EQ(values_of<int64_t>(outs[3].tensor), (std::vector<int64_t>{2, 1, 1}));
}

TEST(IndexingUnique, Strings) {
  std::vector<Value> outs;
  Tensor x = Tensor::from_vector<std::string>({4}, {"b", "a", "b", "c"});
  ASSERT_TRUE(run_op("Unique", {x}, {}, &outs, 4, 11).is_ok());
  EXPECT_EQ(values_of<std::string>(outs[0].tensor), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{1, 0, 3}));
}

TEST(IndexingTopK, AttributeAndInputForms) {
  Tensor x = f32({2, 4}, {1, 3, 3, 2, 4, 0, 4, -1});
  std::vector<Value> outs;
  ASSERT_TRUE(run_op("TopK", {x}, {{"k", attr_int(2)}}, &outs, 2, 1).is_ok());
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{3, 3, 4, 4}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{1, 2, 0, 2}));
  ASSERT_TRUE(run_op("TopK", {x, i64({1}, {3})}, {{"largest", attr_int(0)}}, &outs, 2, 11).is_ok());
  EXPECT_EQ(outs[0].tensor.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{1, 2, 3, -1, 0, 4}));
  EXPECT_EQ(values_of<int64_t>(outs[1].tensor), (std::vector<int64_t>{0, 3, 1, 3, 1, 0}));
  EXPECT_FALSE(run_op("TopK", {x, i64({1}, {5})}, {}, &outs, 2, 11).is_ok());
  EXPECT_FALSE(run_op("TopK", {x}, {}, &outs, 2, 11).is_ok());
}

TEST(IndexingArg, MaxMinKeepdimsLastIndex) {
  Tensor x = f32({2, 3}, {1, 5, 5, 2, 2, 0});
  Tensor a = run_op1("ArgMax", {x}, {{"axis", attr_int(1)}});
  EXPECT_EQ(a.shape(), (Shape{2, 1}));
  EXPECT_EQ(values_of<int64_t>(a), (std::vector<int64_t>{1, 0}));
  Tensor b = run_op1("ArgMax", {x}, {{"axis", attr_int(-1)}, {"keepdims", attr_int(0)}, {"select_last_index", attr_int(1)}});
  EXPECT_EQ(b.shape(), (Shape{2}));
  EXPECT_EQ(values_of<int64_t>(b), (std::vector<int64_t>{2, 1}));
  Tensor c = run_op1("ArgMin", {x}, {{"axis", attr_int(0)}});
  EXPECT_EQ(c.shape(), (Shape{1, 3}));
  EXPECT_EQ(values_of<int64_t>(c), (std::vector<int64_t>{0, 1, 1}));
  EXPECT_FALSE(run_expect_error("ArgMax", {x}, {{"axis", attr_int(2)}}).is_ok());
}

TEST(IndexingReverseSequence, TimeAxis0) {
  Tensor x = f32({4, 4}, {0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15});
  Tensor out = run_op1("ReverseSequence", {x, i64({4}, {4, 3, 2, 1})},
                       {{"time_axis", attr_int(0)}, {"batch_axis", attr_int(1)}});
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{3, 6, 9, 12, 2, 5, 8, 13, 1, 4, 10, 14, 0, 7, 11, 15}));
  EXPECT_FALSE(run_expect_error("ReverseSequence", {x, i64({4}, {5, 1, 1, 1})}).is_ok());
  EXPECT_FALSE(run_expect_error("ReverseSequence", {x, i64({3}, {1, 1, 1})}).is_ok());
}

TEST(IndexingCumSum, ExclusiveReverse) {
  Tensor x = f32({5}, {1, 2, 3, 4, 5});
  EXPECT_EQ(values_of<float>(run_op1("CumSum", {x, i32({}, {0})})), (std::vector<float>{1, 3, 6, 10, 15}));
  EXPECT_EQ(values_of<float>(run_op1("CumSum", {x, i32({}, {0})}, {{"exclusive", attr_int(1)}})),
            (std::vector<float>{0, 1, 3, 6, 10}));
  EXPECT_EQ(values_of<float>(run_op1("CumSum", {x, i64({}, {-1})}, {{"reverse", attr_int(1)}, {"exclusive", attr_int(1)}})),
            (std::vector<float>{14, 12, 9, 5, 0}));
  Tensor y = i64({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(values_of<int64_t>(run_op1("CumSum", {y, i64({1}, {0})})), (std::vector<int64_t>{1, 2, 3, 5, 7, 9}));
  EXPECT_FALSE(run_expect_error("CumSum", {y, i64({}, {2})}).is_ok());
}

}  // namespace
}  // namespace tandem::testing
