// op_cases_shape.cpp: op-suite cases for reductions, softmax, data movement (views, transposes,
// slices, concatenation, padding, tiling) and indexing: negative axes and indices, several
// element types, shape and axis operands both constant and given at run time.
#include <cmath>
#include <limits>
#include <set>

#include "op_suite_util.h"

namespace tandem::testing {

std::vector<OpCase> reduce_cases() {
  CaseRng rng(4004);
  std::vector<OpCase> cases;
  for (int64_t opset : {11, 13})
    for (const char* op : {"Softmax", "LogSoftmax", "Hardmax"})
      for (int64_t axis : {-1, 0, 1, 2})
        cases.push_back(
            on_every_backend(with_opset(op_case(op, {rng.tensor({3, 4, 37}, -5, 5)}, {{"axis", attr_int(axis)}},
                                                "opset " + std::to_string(opset) + " axis " + std::to_string(axis)),
                                        opset),
                             std::string(op) != "Hardmax"));
  cases.push_back(op_case("Softmax", {rng.tensor(rng.shape(2, 1, 70), -5, 5)}, {}, "random rows"));
  // Attribute axes (opset 11): every reduction, several axis sets, keepdims both ways; all but
  // ReduceLogSumExp run on every backend.
  const std::set<std::string> kCoreReductions = {"ReduceMean", "ReduceSum",  "ReduceMax",    "ReduceMin",      "ReduceProd",
                                                 "ReduceL1",   "ReduceL2",   "ReduceLogSum", "ReduceSumSquare"};
  for (const char* op : {"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
                         "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"}) {
    const bool positive = std::string(op) == "ReduceLogSum" || std::string(op) == "ReduceProd";
    for (const std::vector<int64_t>& axes : {std::vector<int64_t>{-1}, {1, 2}, {0}, {}})
      for (int64_t keep : {0, 1}) {
        Attrs a{{"keepdims", attr_int(keep)}};
        if (!axes.empty()) a["axes"] = attr_ints(axes);
        cases.push_back(on_every_backend(
            with_opset(op_case(op, {rng.tensor({2, 3, 4, 5}, positive ? 0.5f : -1.f, positive ? 1.5f : 1.f)}, a,
                               "axes " + shape_to_string(axes) + " keepdims " + std::to_string(keep)),
                       11),
            kCoreReductions.count(op) > 0));
      }
    // Axes as an input (opset 18), constant and at run time, and the empty-axes no-op.
    cases.push_back(with_constants(
        with_opset(op_case(op, {rng.tensor({3, 5, 7}, 0.5f, 1.5f), i64({-2})}, {}, "opset 18 axes input"), 18), 2));
    cases.push_back(with_opset(
        op_case(op, {rng.tensor({4, 3}, 0.5f, 1.5f), i64({0, 1})}, {{"keepdims", attr_int(0)}}, "runtime axes"), 18));
    cases.push_back(with_opset(
        op_case(op, {rng.tensor({4, 3}, 0.5f, 1.5f)}, {{"noop_with_empty_axes", attr_int(1)}}, "no-op"), 18));
  }
  cases.push_back(with_opset(op_case("ReduceSum", {rng.ints({3, 4}, -9, 9), i64({1})}, {}, "int64"), 13));
  cases.push_back(with_opset(
      op_case("ReduceMax", {rng.ints({3, 4}, -9, 9, DataType::int32)}, {{"axes", attr_ints({0})}}, "int32"), 11));
  for (const char* op : {"ArgMax", "ArgMin"}) {
    cases.push_back(op_case(op, {rng.tensor({3, 4, 5})}, {{"axis", attr_int(-1)}}));
    cases.push_back(
        op_case(op, {rng.tensor({3, 4, 5})}, {{"axis", attr_int(1)}, {"keepdims", attr_int(0)}}, "keepdims 0"));
    cases.push_back(op_case(op, {rng.ints({2, 9}, 0, 2)}, {{"axis", attr_int(1)}, {"select_last_index", attr_int(1)}},
                            "ties, last"));
  }
  {
    // float32 ties and NaNs, which every backend orders alike: a NaN beats any number (the first
    // NaN wins), ties keep the first index, or the last with select_last_index.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Tensor ties = Tensor::from_vector<float>({3, 4}, {1, 3, 3, 2, nan, 1, nan, 5, -2, -2, -7, -7});
    for (const char* op : {"ArgMax", "ArgMin"})
      for (int last : {0, 1})
        cases.push_back(on_every_backend(op_case(op, {ties}, {{"axis", attr_int(1)}, {"select_last_index", attr_int(last)}},
                                                 last ? "float ties and NaN, last" : "float ties and NaN")));
  }
  // TopK: both directions, an inner axis, k from 1 to the whole axis, a long row (selection
  // before the sort), and the reference's order of ties, NaN and signed zeros.
  for (int largest : {1, 0}) {
    const Attrs dir{{"largest", attr_int(largest)}};
    const std::string which = largest ? "largest" : "smallest";
    auto topk = [&](Tensor x, int64_t k, int64_t axis, const std::string& note) {
      Attrs a = dir;
      a["axis"] = attr_int(axis);
      return on_every_backend(
          with_constants(with_outputs(op_case("TopK", {std::move(x), i64({k})}, a, which + ", " + note), 2), 2));
    };
    cases.push_back(topk(rng.tensor({3, 11}), 4, -1, "last axis"));
    cases.push_back(topk(rng.tensor({6, 5, 7}), 3, 1, "inner axis"));
    cases.push_back(topk(rng.tensor({4, 9}), 9, 1, "k = n"));
    cases.push_back(topk(rng.tensor({2, 1000}), 10, 1, "long rows"));
    Tensor ties = rng.tensor({3, 40}, -3, 3);
    for (int64_t i = 0; i < ties.numel(); ++i) ties.data<float>()[i] = std::round(ties.data<float>()[i]);
    cases.push_back(topk(ties, 7, 1, "many ties"));
    const float nan = std::numeric_limits<float>::quiet_NaN();
    cases.push_back(topk(Tensor::from_vector<float>({2, 6}, {1, nan, -0.0f, 0.0f, nan, 1, -2, 0.0f, 5, -0.0f, nan, 5}), 4, 1,
                         "NaN and signed zeros"));
  }
  cases.push_back(with_outputs(with_opset(op_case("TopK", {rng.tensor({3, 8})}, {{"k", attr_int(2)}}, "opset 1 attribute"), 1), 2));
  cases.push_back(with_outputs(op_case("TopK", {rng.ints({3, 11}, -9, 9), i64({4})}, {}, "int64"), 2));
  // CumSum: the cpu backend takes a constant axis (input 1 a constant: mask 2).
  cases.push_back(on_every_backend(with_constants(op_case("CumSum", {rng.tensor({3, 5}), i64_scalar(1)}), 2)));
  cases.push_back(on_every_backend(
      with_constants(op_case("CumSum", {rng.ints({4, 3}, -9, 9, DataType::int32), Tensor::scalar<int32_t>(-2)},
                             {{"exclusive", attr_int(1)}, {"reverse", attr_int(1)}}, "exclusive reverse int32"),
                     2)));
  cases.push_back(on_every_backend(with_constants(
      op_case("CumSum", {rng.ints({2, 300, 3}, 0, 1, DataType::int64), i64_scalar(1)}, {}, "int64 mask positions"), 2)));
  cases.push_back(on_every_backend(with_constants(
      op_case("CumSum", {rng.tensor({2, 7, 600}), i64_scalar(-2)}, {{"reverse", attr_int(1)}}, "wide inner"), 2)));
  cases.push_back(op_case("CumSum", {rng.tensor({3, 5}), i64_scalar(0)}, {}, "axis given at run time"));
  return cases;
}

std::vector<OpCase> shape_cases() {
  CaseRng rng(5005);
  std::vector<OpCase> cases;
  // Views: constant and run-time shapes and axes.
  cases.push_back(on_every_backend(with_constants(op_case("Reshape", {rng.tensor({2, 3, 4, 5}), i64({2, -1, 5})}), 2)));
  cases.push_back(
      on_every_backend(with_constants(op_case("Reshape", {rng.tensor({2, 3, 4}), i64({0, 12})}, {}, "copied dim"), 2)));
  cases.push_back(op_case("Reshape", {rng.ints({6, 2}, -9, 9), i64({3, 4})}, {}, "int64, runtime shape"));
  cases.push_back(
      with_opset(op_case("Reshape", {rng.tensor({0, 3}), i64({3, 0})}, {{"allowzero", attr_int(1)}}, "allowzero"), 14));
  for (int64_t axis : {0, 1, 2, -1})
    cases.push_back(on_every_backend(
        op_case("Flatten", {rng.tensor({2, 3, 4, 5})}, {{"axis", attr_int(axis)}}, "axis " + std::to_string(axis))));
  cases.push_back(
      on_every_backend(with_constants(with_opset(op_case("Squeeze", {rng.tensor({1, 3, 1, 5}), i64({-2})}), 13), 2)));
  cases.push_back(with_opset(op_case("Squeeze", {rng.tensor({1, 3, 1, 5})}, {}, "all unit dims"), 13));
  cases.push_back(
      with_opset(op_case("Squeeze", {rng.tensor({1, 4, 1})}, {{"axes", attr_ints({0})}}, "opset 11 attribute"), 11));
  cases.push_back(
      on_every_backend(with_constants(with_opset(op_case("Unsqueeze", {rng.tensor({3, 5}), i64({0, -1})}), 13), 2)));
  cases.push_back(
      with_opset(op_case("Unsqueeze", {rng.ints({4}, 0, 9, DataType::int32), i64({1})}, {}, "runtime axes"), 13));
  cases.push_back(on_every_backend(op_case("Identity", {rng.tensor(rng.shape(3))})));
  cases.push_back(op_case("Identity", {rng.ints({5}, 0, 1, DataType::boolean)}, {}, "bool"));
  cases.push_back(on_every_backend(op_case("Dropout", {rng.tensor({3, 7})}, {}, "inference")));
  cases.push_back(with_outputs(op_case("Dropout", {rng.tensor({3, 7})}, {}, "inference with mask"), 2));
  cases.push_back(op_case("Shape", {rng.tensor(rng.shape(4))}));
  cases.push_back(with_opset(
      op_case("Shape", {rng.tensor({2, 3, 4, 5})}, {{"start", attr_int(1)}, {"end", attr_int(-1)}}, "start/end"), 15));
  cases.push_back(op_case("Size", {rng.tensor({2, 3, 7})}));
  // Transpose, Slice, Concat, Split.
  for (const std::vector<int64_t>& perm :
       {std::vector<int64_t>{0, 2, 1, 3}, {3, 2, 1, 0}, {0, 1, 3, 2}, {1, 0, 2, 3}, {}})
    cases.push_back(on_every_backend(op_case("Transpose", {rng.tensor(rng.shape(4, 1, 7))},
                                             perm.empty() ? Attrs{} : Attrs{{"perm", attr_ints(perm)}},
                                             "perm " + shape_to_string(perm))));
  cases.push_back(op_case("Transpose", {rng.ints({3, 5}, -9, 9)}, {}, "int64"));
  cases.push_back(on_every_backend(
      with_constants(op_case("Slice", {rng.tensor({4, 10, 6}), i64({1, -1}), i64({9, -100}), i64({1, 2}), i64({3, -2})},
                             {}, "negative step"),
                     30)));
  cases.push_back(with_constants(op_case("Slice", {rng.tensor({5, 7}), i64({-3}), i64({100})}, {}, "clamped end"), 6));
  cases.push_back(op_case("Slice", {rng.ints({6, 4}, -9, 9), i64({1, 0}), i64({5, 3}), i64({0, -1}), i64({2, 1})}, {},
                          "runtime, int64"));
  cases.push_back(with_opset(
      op_case("Slice", {rng.tensor({6, 4})}, {{"starts", attr_ints({1})}, {"ends", attr_ints({4})}}, "opset 9"), 9));
  for (int64_t axis : {0, 1, 2, -1}) {
    Shape a{2, 3, 4, 5}, b = a;
    b[static_cast<size_t>(axis < 0 ? 3 : axis)] = 2;
    cases.push_back(on_every_backend(
        op_case("Concat", {rng.tensor(a), rng.tensor(b)}, {{"axis", attr_int(axis)}}, "axis " + std::to_string(axis))));
  }
  cases.push_back(op_case("Concat", {rng.ints({2}, -9, 9), rng.ints({1}, -9, 9), rng.ints({3}, -9, 9)},
                          {{"axis", attr_int(0)}}, "int64"));
  cases.push_back(with_constants(
      op_case("Concat", {rng.tensor({3, 2}), rng.tensor({3, 5})}, {{"axis", attr_int(1)}}, "constant operand"), 2));
  cases.push_back(
      with_outputs(with_opset(op_case("Split", {rng.tensor({7, 4}), i64({2, 5})}, {{"axis", attr_int(0)}}), 13), 2));
  cases.push_back(
      with_outputs(with_opset(op_case("Split", {rng.tensor({3, 10})},
                                      {{"axis", attr_int(-1)}, {"num_outputs", attr_int(3)}}, "uneven num_outputs"),
                              18),
                   3));
  // Expand, Tile, Pad and generators.
  cases.push_back(op_case("Expand", {rng.tensor({3, 1}), i64({2, 1, 4})}));
  cases.push_back(op_case("Expand", {rng.ints({1, 5}, 0, 9), i64({3, 1})}, {}, "int64, smaller shape"));
  cases.push_back(op_case("Tile", {rng.tensor({2, 3}), i64({3, 2})}));
  for (const char* mode : {"constant", "reflect", "edge"})
    cases.push_back(with_opset(op_case("Pad", {rng.tensor({3, 4, 5}), i64({0, 2, 1, 1, 0, 3}), f32_scalar(0.5f)},
                                       {{"mode", attr_string(mode)}}, mode),
                               13));
  cases.push_back(with_opset(op_case("Pad", {rng.tensor({3, 4}), i64({-1, 1, 0, 2})}, {}, "negative pad"), 13));
  cases.push_back(
      with_opset(op_case("Pad", {rng.tensor({3, 4, 5}), i64({1, 2}), Tensor(), i64({-1})}, {}, "axes"), 18));
  cases.push_back(op_case("Constant", {}, {{"value", attr_tensor(rng.tensor({2, 3}))}}));
  cases.push_back(op_case("Constant", {}, {{"value_ints", attr_ints({4, -1, 7})}}, "value_ints"));
  cases.push_back(op_case("Constant", {}, {{"value_float", attr_float(2.5f)}}, "value_float"));
  // ConstantOfShape and Range: values the cpu backend computes when the instance is built.
  cases.push_back(
      on_every_backend(op_case("ConstantOfShape", {i64({2, 3})}, {{"value", attr_tensor(f32({1}, {1.5f}))}})));
  cases.push_back(on_every_backend(op_case("ConstantOfShape", {i64({4})}, {}, "default zero")));
  cases.push_back(on_every_backend(op_case("Range", {f32_scalar(1), f32_scalar(4.5f), f32_scalar(0.75f)})));
  cases.push_back(
      on_every_backend(op_case("Range", {i64_scalar(10), i64_scalar(-3), i64_scalar(-4)}, {}, "int64, negative delta")));
  cases.push_back(op_case("EyeLike", {rng.tensor({3, 5})}, {{"k", attr_int(1)}}));
  cases.push_back(
      op_case("EyeLike", {rng.tensor({4, 3})}, {{"k", attr_int(-1)}, {"dtype", attr_int(7)}}, "int64 below"));
  cases.push_back(op_case("OneHot", {i64({2, 3}, {0, 2, -1, 1, 3, 0}), i64_scalar(4), f32({2}, {-1, 5})},
                          {{"axis", attr_int(-1)}}));
  cases.push_back(
      op_case("OneHot", {i64({3}, {1, 0, 2}), i64_scalar(3), i64({2}, {0, 1})}, {{"axis", attr_int(0)}}, "axis 0"));
  cases.push_back(op_case("DepthToSpace", {rng.tensor({1, 8, 2, 3})}, {{"blocksize", attr_int(2)}}, "DCR"));
  cases.push_back(op_case("DepthToSpace", {rng.tensor({2, 12, 2, 2})},
                          {{"blocksize", attr_int(2)}, {"mode", attr_string("CRD")}}, "CRD"));
  cases.push_back(op_case("SpaceToDepth", {rng.tensor({1, 3, 4, 6})}, {{"blocksize", attr_int(2)}}));
  // Rows of 8 or more over a short last dim: the cpu gather copies the two dims together.
  cases.push_back(op_case("DepthToSpace", {rng.tensor({1, 8, 3, 10})}, {{"blocksize", attr_int(2)}}, "DCR, wide"));
  cases.push_back(op_case("DepthToSpace", {rng.tensor({1, 18, 2, 9})},
                          {{"blocksize", attr_int(3)}, {"mode", attr_string("CRD")}}, "CRD, blocksize 3, wide"));
  cases.push_back(op_case("Transpose", {rng.tensor({2, 5, 12})}, {{"perm", attr_ints({0, 2, 1})}}, "short last dim"));
  cases.push_back(on_every_backend(op_case("Trilu", {rng.tensor({2, 4, 5})})));
  cases.push_back(on_every_backend(
      op_case("Trilu", {rng.tensor({5, 3}), i64_scalar(-1)}, {{"upper", attr_int(0)}}, "lower, k=-1")));
  cases.push_back(on_every_backend(
      with_constants(op_case("Trilu", {rng.ints({3, 4, 6}, -9, 9), i64_scalar(2)}, {}, "int64, constant k=2"), 2)));
  for (int64_t k : {-7, 9})  // the whole matrix zeroed or kept
    cases.push_back(on_every_backend(op_case("Trilu", {rng.tensor({4, 5}), i64_scalar(k)}, {{"upper", attr_int(0)}},
                                             "lower, k=" + std::to_string(k))));
  return cases;
}

std::vector<OpCase> indexing_cases() {
  CaseRng rng(6006);
  std::vector<OpCase> cases;
  cases.push_back(op_case("Gather", {rng.tensor({5, 4}), i64({2, 3}, {0, 4, -1, 2, 2, -5})}, {{"axis", attr_int(0)}}));
  cases.push_back(
      op_case("Gather", {rng.tensor({3, 6, 2}), i64({4}, {5, 0, -2, 1})}, {{"axis", attr_int(-2)}}, "negative axis"));
  cases.push_back(op_case("Gather", {rng.ints({7}, -9, 9), i64_scalar(3)}, {}, "scalar index, int64"));
  // GatherElements, GatherND, ScatterElements, ScatterND: on every backend.
  cases.push_back(on_every_backend(
      op_case("GatherElements", {rng.tensor({3, 4}), i64({2, 4}, {0, 2, 1, -1, 2, 0, 0, 1})}, {{"axis", attr_int(0)}})));
  cases.push_back(on_every_backend(op_case("GatherElements",
                                           {rng.tensor({2, 3, 5}), rng.ints({2, 2, 4}, -5, 4, DataType::int32)},
                                           {{"axis", attr_int(-1)}}, "last axis, smaller indices, int32")));
  cases.push_back(on_every_backend(op_case("GatherElements",
                                           {rng.ints({4, 3, 2}, -9, 9, DataType::int64), rng.ints({7, 3, 2}, -4, 3)},
                                           {{"axis", attr_int(0)}}, "int64 data, more indices than data")));
  cases.push_back(on_every_backend(op_case("GatherND", {rng.tensor({2, 3, 4}), i64({2, 2}, {0, 1, 1, -1})})));
  cases.push_back(on_every_backend(op_case("GatherND", {rng.tensor({2, 3, 4}), i64({2, 1, 1}, {2, 0})},
                                           {{"batch_dims", attr_int(1)}}, "batch_dims 1")));
  cases.push_back(on_every_backend(op_case("GatherND", {rng.tensor({3, 4, 5}), rng.ints({2, 2, 3}, -3, 2)}, {},
                                           "whole tuples, element slices")));
  cases.push_back(on_every_backend(with_opset(
      op_case("Scatter", {rng.tensor({3, 3}), i64({1, 2}, {1, 0}), rng.tensor({1, 2})}, {{"axis", attr_int(1)}}), 10)));
  cases.push_back(on_every_backend(op_case("ScatterElements",
                                           {rng.tensor({3, 4}), i64({2, 2}, {1, -1, 0, 2}), rng.tensor({2, 2})},
                                           {{"axis", attr_int(0)}})));
  for (const char* red : {"add", "mul", "max", "min"}) {
    cases.push_back(on_every_backend(
        with_opset(op_case("ScatterElements", {rng.tensor({1, 5}), i64({1, 3}, {1, 1, 4}), rng.tensor({1, 3})},
                           {{"axis", attr_int(1)}, {"reduction", attr_string(red)}}, red),
                   18)));
    cases.push_back(on_every_backend(
        with_opset(op_case("ScatterND", {rng.ints({5, 2}, -9, 9), i64({3, 1}, {0, 4, 0}), rng.ints({3, 2}, -9, 9)},
                           {{"reduction", attr_string(red)}}, std::string(red) + " int64"),
                   18)));
  }
  cases.push_back(on_every_backend(op_case("ScatterND", {rng.tensor({4, 3}), i64({2, 1}, {3, 1}), rng.tensor({2, 3})})));
  cases.push_back(on_every_backend(op_case("ScatterND", {rng.tensor({4, 3}), i64({3, 2}, {3, 1, 0, -1, 3, 1}),
                                                         rng.tensor({3})},
                                           {}, "element updates, a repeated index")));
  cases.push_back(on_every_backend(with_opset(op_case("ScatterND", {rng.tensor({5}), i64({3, 1}, {0, 4, 0}), rng.tensor({3})},
                                                      {{"reduction", attr_string("mul")}}, "mul"),
                                              18)));
  cases.push_back(op_case("Compress", {rng.tensor({3, 4}), Tensor::from_vector<bool>({3}, {true, false, true})},
                          {{"axis", attr_int(0)}}));
  cases.push_back(op_case("Compress", {rng.tensor({2, 3}), Tensor::from_vector<bool>({4}, {false, true, true, false})},
                          {}, "flattened"));
  cases.push_back(op_case("NonZero", {rng.ints({3, 4}, 0, 1, DataType::float32)}));
  cases.push_back(with_outputs(op_case("Unique", {f32({7}, {2, 1, 1, 3, 4, 3, 2})}), 4));
  cases.push_back(with_outputs(
      op_case("Unique", {i64({2, 3}, {1, 0, 1, 1, 0, 1})}, {{"axis", attr_int(0)}, {"sorted", attr_int(1)}}, "rows"),
      4));
  cases.push_back(op_case("ReverseSequence", {rng.tensor({4, 3, 2}), i64({3}, {4, 1, 3})},
                          {{"batch_axis", attr_int(1)}, {"time_axis", attr_int(0)}}));
  return cases;
}

}  // namespace tandem::testing
