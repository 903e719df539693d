// control_flow_test.cpp: the reference backend on If, Loop and Scan and on the sequence ops,
// with expected values worked out by hand from the ONNX operator specs.
#include <gtest/gtest.h>

#include "op_suite_util.h"

namespace tandem::testing {
namespace {

const DataType kF32 = DataType::float32;
const DataType kI64 = DataType::int64;

// Runs `c` on the reference backend; fails the test (and returns empty) on error.
std::vector<Value> run(const OpCase& c) {
  std::vector<Value> out;
  Status s = run_on_reference(c, &out);
  EXPECT_TRUE(s.is_ok()) << c.label() << ": " << s.to_string();
  return s.is_ok() ? out : std::vector<Value>{};
}

template <class T>
void expect_tensor(const Value& v, const Shape& shape, const std::vector<T>& want) {
  ASSERT_TRUE(v.is_tensor());
  ASSERT_EQ(v.tensor.dtype(), dtype_of<T>());
  EXPECT_EQ(v.tensor.shape(), shape);
  EXPECT_EQ(values_of<T>(v.tensor), want);
}
void expect_floats(const Value& v, const Shape& shape, const std::vector<float>& want) {
  expect_tensor<float>(v, shape, want);
}

// --- If -----------------------------------------------------------------------------------------

TEST(ControlFlowReference, IfRunsTheBranchTheConditionPicksWithOuterScopeReads) {
  const Attrs branches{{"then_branch", attr_graph(body_graph({}, {{"Add", {"a", "b"}, {"t"}}}, {"t"}))},
                       {"else_branch", attr_graph(body_graph({}, {{"Mul", {"a", "b"}, {"e"}}}, {"e"}))}};
  for (bool cond : {true, false}) {
    OpCase c = op_case("If", {Tensor::scalar<bool>(cond)}, branches);
    c.outer = {{"a", Value::of(f32({3}, {1, 2, 3}))}, {"b", Value::of(f32({3}, {10, 20, 30}))}};
    auto out = run(c);
    ASSERT_EQ(out.size(), 1u);
    if (cond)
      expect_floats(out[0], {3}, {11, 22, 33});
    else
      expect_floats(out[0], {3}, {10, 40, 90});
  }
}

// --- Loop ---------------------------------------------------------------------------------------

// Body: v_out = v_in + step (step read from the enclosing graph), cond passes through, and the
// scan output is -v_out.
std::shared_ptr<Graph> add_step_body() {
  return body_graph(
      {tensor_info("i", kI64), tensor_info("c_in", DataType::boolean), tensor_info("v_in", kF32, {2})},
      {{"Add", {"v_in", "step"}, {"v_out"}}, {"Identity", {"c_in"}, {"c_out"}}, {"Neg", {"v_out"}, {"s"}}},
      {"c_out", "v_out", "s"});
}

TEST(ControlFlowReference, LoopRunsTheTripCountWithCarriedAndScanOutputs) {
  OpCase c = with_outputs(op_case("Loop", {i64_scalar(3), Tensor::scalar<bool>(true), f32({2}, {1, 2})},
                                  {{"body", attr_graph(add_step_body())}}),
                          2);
  c.outer = {{"step", Value::of(f32({2}, {0.5f, -1}))}};
  auto out = run(c);
  ASSERT_EQ(out.size(), 2u);
  // v: [1, 2] -> [1.5, 1] -> [2, 0] -> [2.5, -1]; the scan output stacks -v per iteration.
  expect_floats(out[0], {2}, {2.5f, -1});
  expect_floats(out[1], {3, 2}, {-1.5f, -1, -2, 0, -2.5f, 1});
}

// Body: v_out = v_in + 1, cond_out = v_out < limit; the scan output is the iteration number.
std::shared_ptr<Graph> count_to_limit_body() {
  return body_graph(
      {tensor_info("i", kI64), tensor_info("c_in", DataType::boolean), tensor_info("v_in", kI64)},
      {{"Add", {"v_in", "one"}, {"v_out"}}, {"Less", {"v_out", "limit"}, {"c_out"}}, {"Identity", {"i"}, {"k"}}},
      {"c_out", "v_out", "k"});
}

TEST(ControlFlowReference, LoopStopsWhenTheBodyConditionTurnsFalse) {
  // No trip count: runs until v reaches the limit 4. The iteration that makes the condition
  // false still runs and adds its scan output: four iterations, v = 4.
  OpCase c = with_outputs(op_case("Loop", {Tensor(), Tensor::scalar<bool>(true), i64_scalar(0)},
                                  {{"body", attr_graph(count_to_limit_body())}}),
                          2);
  c.outer = {{"one", Value::of(i64_scalar(1))}, {"limit", Value::of(i64_scalar(4))}};
  auto out = run(c);
  ASSERT_EQ(out.size(), 2u);
  expect_tensor<int64_t>(out[0], {}, {4});
  expect_tensor<int64_t>(out[1], {4}, {0, 1, 2, 3});
  // Trip count and condition together: whichever ends first (the condition, after 2).
  c.inputs[0] = Value::of(i64_scalar(5));
  c.outer[1].second = Value::of(i64_scalar(2));
  out = run(c);
  ASSERT_EQ(out.size(), 2u);
  expect_tensor<int64_t>(out[0], {}, {2});
  expect_tensor<int64_t>(out[1], {2}, {0, 1});
  // A false initial condition runs no iteration: the carried value comes back unchanged.
  c.inputs[1] = Value::of(Tensor::scalar<bool>(false));
  c.inputs[2] = Value::of(i64_scalar(7));
  c.outputs = 1;
  auto body = count_to_limit_body();
  body->outputs.pop_back();
  c.attrs["body"] = attr_graph(body);
  out = run(c);
  ASSERT_EQ(out.size(), 1u);
  expect_tensor<int64_t>(out[0], {}, {7});
}

// --- Scan ---------------------------------------------------------------------------------------

// Body: a running sum; the scan output is the sum after each step.
std::shared_ptr<Graph> running_sum_body() {
  return body_graph({tensor_info("s_in", kF32, {2}), tensor_info("x_in", kF32, {2})},
                    {{"Add", {"s_in", "x_in"}, {"s_out"}}, {"Identity", {"s_out"}, {"y"}}}, {"s_out", "y"});
}

OpCase scan_case(Tensor x, Attrs extra = {}) {
  Attrs a{{"body", attr_graph(running_sum_body())}, {"num_scan_inputs", attr_int(1)}};
  for (auto& [k, v] : extra) a[k] = v;
  return with_outputs(op_case("Scan", {f32({2}, {0, 0}), std::move(x)}, a), 2);
}

TEST(ControlFlowReference, ScanForwardAndReverse) {
  const Tensor x = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  auto out = run(scan_case(x));
  ASSERT_EQ(out.size(), 2u);
  expect_floats(out[0], {2}, {9, 12});
  expect_floats(out[1], {3, 2}, {1, 2, 4, 6, 9, 12});
  // Rows taken last to first; outputs stacked in iteration order.
  out = run(scan_case(x, {{"scan_input_directions", attr_ints({1})}}));
  ASSERT_EQ(out.size(), 2u);
  expect_floats(out[0], {2}, {9, 12});
  expect_floats(out[1], {3, 2}, {5, 6, 8, 10, 9, 12});
  // Reversed output too: the last iteration's value comes first.
  out = run(scan_case(x, {{"scan_input_directions", attr_ints({1})}, {"scan_output_directions", attr_ints({1})}}));
  ASSERT_EQ(out.size(), 2u);
  expect_floats(out[1], {3, 2}, {9, 12, 8, 10, 5, 6});
}

TEST(ControlFlowReference, ScanAlongOtherAxes) {
  // Columns [1, 4], [2, 5], [3, 6] summed; outputs stacked along axis 1.
  auto out = run(scan_case(f32({2, 3}, {1, 2, 3, 4, 5, 6}),
                           {{"scan_input_axes", attr_ints({1})}, {"scan_output_axes", attr_ints({-1})}}));
  ASSERT_EQ(out.size(), 2u);
  expect_floats(out[0], {2}, {6, 15});
  expect_floats(out[1], {2, 3}, {1, 3, 6, 4, 9, 15});
}

// --- Sequences ----------------------------------------------------------------------------------

const Tensor kA = f32({1, 2}, {1, 2});
const Tensor kB = f32({2, 2}, {3, 4, 5, 6});
const Tensor kC = f32({1, 2}, {7, 8});
Value abc() { return Value::of_sequence({kA, kB, kC}); }

// `v` is a sequence of tensors equal to `want`.
void expect_sequence(const Value& v, const std::vector<Tensor>& want) {
  ASSERT_TRUE(v.is_sequence());
  ASSERT_EQ(v.sequence.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i)
    EXPECT_TRUE(compare_tensors(want[i], v.sequence[i], Tolerance{0, 0}).is_ok()) << "element " << i;
}

TEST(SequenceReference, ConstructEmptyAndLength) {
  auto out = run(op_case("SequenceConstruct", {kA, kB}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {kA, kB});
  out = run(op_case("SequenceEmpty", {}, {{"dtype", attr_int(static_cast<int64_t>(kI64))}}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {});
  EXPECT_EQ(out[0].sequence_dtype, kI64);
  out = run(value_case("SequenceLength", {abc()}));
  ASSERT_EQ(out.size(), 1u);
  expect_tensor<int64_t>(out[0], {}, {3});
}

TEST(SequenceReference, AtInsertErase) {
  auto at = [](int64_t pos) {
    auto out = run(value_case("SequenceAt", {abc(), Value::of(i64_scalar(pos))}));
    return out.empty() ? Value{} : out[0];
  };
  expect_floats(at(1), {2, 2}, {3, 4, 5, 6});
  expect_floats(at(-1), {1, 2}, {7, 8});
  expect_floats(at(-3), {1, 2}, {1, 2});
  const Tensor t = f32({3, 2}, {0, 0, 0, 0, 0, 0});
  auto out = run(value_case("SequenceInsert", {abc(), Value::of(t), Value::of(i64_scalar(1))}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {kA, t, kB, kC});
  out = run(value_case("SequenceInsert", {abc(), Value::of(t)}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {kA, kB, kC, t});
  out = run(value_case("SequenceErase", {abc(), Value::of(i64_scalar(-3))}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {kB, kC});
  out = run(value_case("SequenceErase", {abc()}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {kA, kB});
}

TEST(SequenceReference, SplitToSequence) {
  const Tensor x = f32({3, 2}, {1, 2, 3, 4, 5, 6});
  auto out = run(op_case("SplitToSequence", {x, i64({1, 2})}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {f32({1, 2}, {1, 2}), f32({2, 2}, {3, 4, 5, 6})});
  // A scalar split: chunks of 2, the last one shorter.
  out = run(op_case("SplitToSequence", {x, i64_scalar(2)}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {f32({2, 2}, {1, 2, 3, 4}), f32({1, 2}, {5, 6})});
  // No split: one element per index along the axis, keepdims 0 drops it.
  out = run(op_case("SplitToSequence", {x}, {{"axis", attr_int(-1)}, {"keepdims", attr_int(0)}}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {f32({3}, {1, 3, 5}), f32({3}, {2, 4, 6})});
}

TEST(SequenceReference, ConcatFromSequence) {
  auto out = run(value_case("ConcatFromSequence", {abc()}, {{"axis", attr_int(0)}}));
  ASSERT_EQ(out.size(), 1u);
  expect_floats(out[0], {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Value pair = Value::of_sequence({f32({2}, {1, 2}), f32({2}, {3, 4})});
  out = run(value_case("ConcatFromSequence", {pair}, {{"axis", attr_int(0)}, {"new_axis", attr_int(1)}}));
  ASSERT_EQ(out.size(), 1u);
  expect_floats(out[0], {2, 2}, {1, 2, 3, 4});
  out = run(value_case("ConcatFromSequence", {pair}, {{"axis", attr_int(-1)}, {"new_axis", attr_int(1)}}));
  ASSERT_EQ(out.size(), 1u);
  expect_floats(out[0], {2, 2}, {1, 3, 2, 4});
}

TEST(SequenceReference, SequenceMapRunsTheBodyOnEachElement) {
  const Value seq = Value::of_sequence({f32({2}, {-1, 2}), f32({3}, {3, -4, 0})});
  auto body = body_graph({tensor_info("e", kF32, {}, false)}, {{"Relu", {"e"}, {"o"}}}, {"o"});
  auto out = run(value_case("SequenceMap", {seq}, {{"body", attr_graph(body)}}));
  ASSERT_EQ(out.size(), 1u);
  expect_sequence(out[0], {f32({2}, {0, 2}), f32({3}, {3, 0, 0})});
}

}  // namespace
}  // namespace tandem::testing
