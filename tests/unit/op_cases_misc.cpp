// op_cases_misc.cpp: op-suite cases for sequences, optionals, control flow, quantization, random generators,
// detection, losses, signal processing, text and the training domain. Most of these ops run
// on the reference backend only: one or two small cases each, checked against shape inference
// and against any other backend that accepts them.
#include "op_suite_util.h"

namespace tandem::testing {
namespace {

const DataType kF32 = DataType::float32;

Tensor strings(Shape s, std::vector<std::string> v) {
  Tensor t(DataType::string, std::move(s));
  for (size_t i = 0; i < v.size() && static_cast<int64_t>(i) < t.numel(); ++i) t.data<std::string>()[i] = v[i];
  return t;
}
Tensor flag(bool b) { return Tensor::scalar<bool>(b); }

}  // namespace

std::vector<OpCase> sequence_and_control_cases() {
  CaseRng rng(7007);
  std::vector<OpCase> cases;
  const Value seq = Value::of_sequence({rng.tensor({2, 3}), rng.tensor({4, 3}), rng.tensor({1, 3})});
  cases.push_back(op_case("SequenceConstruct", {rng.tensor({2, 3}), rng.tensor({5, 3})}));
  cases.push_back(op_case("SequenceEmpty", {}, {{"dtype", attr_int(static_cast<int64_t>(DataType::int64))}}));
  cases.push_back(value_case("SequenceLength", {seq}));
  cases.push_back(value_case("SequenceAt", {seq, Value::of(i64_scalar(-1))}));
  cases.push_back(value_case("SequenceInsert", {seq, Value::of(rng.tensor({7, 3})), Value::of(i64_scalar(1))}));
  cases.push_back(value_case("SequenceInsert", {seq, Value::of(rng.tensor({7, 3}))}, {}, "at the end"));
  cases.push_back(value_case("SequenceErase", {seq, Value::of(i64_scalar(0))}));
  cases.push_back(value_case("SequenceErase", {seq}, {}, "the last"));
  cases.push_back(op_case("SplitToSequence", {rng.tensor({5, 4}), i64({2, 3})}, {{"axis", attr_int(0)}}));
  cases.push_back(op_case("SplitToSequence", {rng.tensor({3, 4})}, {{"axis", attr_int(-1)}, {"keepdims", attr_int(0)}},
                          "no split, keepdims 0"));
  cases.push_back(value_case("ConcatFromSequence", {seq}, {{"axis", attr_int(0)}}));
  cases.push_back(value_case("ConcatFromSequence", {Value::of_sequence({rng.tensor({2, 3}), rng.tensor({2, 3})})},
                             {{"axis", attr_int(-1)}, {"new_axis", attr_int(1)}}, "new axis"));
  cases.push_back(value_case(
      "SequenceMap", {seq},
      {{"body", attr_graph(body_graph({tensor_info("e", kF32, {}, false)}, {{"Relu", {"e"}, {"o"}}}, {"o"}))}}));
  cases.push_back(with_opset(op_case("Optional", {rng.tensor({2, 2})}), 18));
  cases.push_back(with_opset(op_case("OptionalHasElement", {rng.tensor({3})}), 18));
  cases.push_back(with_opset(op_case("OptionalGetElement", {rng.tensor({3, 1})}), 18));
  // If: both branches, each reading values of the enclosing graph.
  {
    const Attrs branches{
        {"then_branch", attr_graph(body_graph({}, {{"Add", {"a", "b"}, {"t"}}}, {"t"}))},
        {"else_branch", attr_graph(body_graph({}, {{"Mul", {"a", "b"}, {"e"}}}, {"e"}))},
    };
    for (bool cond : {true, false}) {
      OpCase c = op_case("If", {flag(cond)}, branches, cond ? "then" : "else");
      c.outer = {{"a", Value::of(rng.tensor({2, 3}))}, {"b", Value::of(rng.tensor({2, 3}))}};
      cases.push_back(c);
    }
  }
  // Loop: trip count 4, a loop-carried value and a scan output.
  {
    auto body = body_graph(
        {tensor_info("i", DataType::int64), tensor_info("c_in", DataType::boolean), tensor_info("v_in", kF32, {2})},
        {{"Add", {"v_in", "step"}, {"v_out"}}, {"Identity", {"c_in"}, {"c_out"}}, {"Neg", {"v_out"}, {"s"}}},
        {"c_out", "v_out", "s"});
    OpCase c =
        with_outputs(op_case("Loop", {i64_scalar(4), flag(true), rng.tensor({2})}, {{"body", attr_graph(body)}}), 2);
    c.outer = {{"step", Value::of(rng.tensor({2}))}};
    cases.push_back(c);
  }
  // Scan: a running sum over axis 0.
  {
    auto body = body_graph({tensor_info("s_in", kF32, {3}), tensor_info("x_in", kF32, {3})},
                           {{"Add", {"s_in", "x_in"}, {"s_out"}}, {"Identity", {"s_out"}, {"y"}}}, {"s_out", "y"});
    cases.push_back(with_outputs(op_case("Scan", {rng.tensor({3}), rng.tensor({4, 3})},
                                         {{"body", attr_graph(body)}, {"num_scan_inputs", attr_int(1)}}),
                                 2));
  }
  return cases;
}

std::vector<OpCase> misc_cases() {
  CaseRng rng(8008);
  std::vector<OpCase> cases;
  // Quantization.
  cases.push_back(
      op_case("QuantizeLinear", {rng.tensor({2, 5}, -3, 3), f32_scalar(0.02f), Tensor::scalar<uint8_t>(128)}));
  cases.push_back(
      op_case("QuantizeLinear",
              {rng.tensor({2, 3}, -3, 3), f32({3}, {0.01f, 0.05f, 0.1f}), Tensor::from_vector<int8_t>({3}, {0, -4, 7})},
              {{"axis", attr_int(1)}}, "per axis, int8"));
  cases.push_back(
      op_case("DequantizeLinear", {u8({5}, {0, 3, 128, 255, 17}), f32_scalar(0.1f), Tensor::scalar<uint8_t>(10)}));
  cases.push_back(op_case("DequantizeLinear", {Tensor::from_vector<int32_t>({4}, {-9, 0, 7, 1000}), f32_scalar(0.5f)},
                          {}, "int32"));
  cases.push_back(with_outputs(op_case("DynamicQuantizeLinear", {rng.tensor({3, 4}, -2, 5)}), 3));
  // Random generators: types and shapes only.
  cases.push_back(
      nondeterministic(op_case("RandomUniform", {}, {{"shape", attr_ints({2, 3})}, {"seed", attr_float(1)}})));
  cases.push_back(nondeterministic(op_case("RandomNormal", {}, {{"shape", attr_ints({4})}, {"mean", attr_float(2)}})));
  cases.push_back(nondeterministic(op_case("RandomUniformLike", {rng.tensor({3, 4})}, {{"low", attr_float(-2)}})));
  cases.push_back(nondeterministic(op_case("RandomNormalLike", {rng.tensor({2, 5})})));
  cases.push_back(nondeterministic(op_case("Bernoulli", {rng.tensor({4, 5}, 0, 1)})));
  cases.push_back(
      nondeterministic(op_case("Multinomial", {rng.tensor({2, 5}, -2, 0)}, {{"sample_size", attr_int(3)}})));
  // Detection: the ONNX reference boxes, one class.
  cases.push_back(op_case("NonMaxSuppression", {f32({1, 6, 4}, {0, 0,  1, 1,  0, 0.1f,  1, 1.1f,  0, -0.1f, 1, 0.9f,
                                                                0, 10, 1, 11, 0, 10.1f, 1, 11.1f, 0, 100,   1, 101}),
                                                f32({1, 1, 6}, {0.9f, 0.75f, 0.6f, 0.95f, 0.5f, 0.3f}), i64({3}),
                                                f32({1}, {0.5f}), f32({1}, {0})}));
  // Losses.
  cases.push_back(op_case("NegativeLogLikelihoodLoss", {rng.tensor({3, 5}, -3, 0), i64({3}, {0, 4, 2})}));
  cases.push_back(op_case("NegativeLogLikelihoodLoss",
                          {rng.tensor({2, 4, 3}, -3, 0), i64({2, 3}, {1, 0, 3, 2, 2, 1}), rng.tensor({4}, 0.5f, 1)},
                          {{"reduction", attr_string("none")}}, "weights, no reduction"));
  cases.push_back(with_outputs(op_case("SoftmaxCrossEntropyLoss", {rng.tensor({3, 5}), i64({3}, {1, 4, 0})}), 2));
  cases.push_back(op_case("SoftmaxCrossEntropyLoss", {rng.tensor({2, 3}), i64({2}, {2, -1})},
                          {{"ignore_index", attr_int(-1)}, {"reduction", attr_string("sum")}}, "ignore_index"));
  // Signal processing.
  cases.push_back(op_case("DFT", {rng.tensor({1, 8, 1})}, {{"axis", attr_int(1)}}));
  cases.push_back(
      op_case("DFT", {rng.tensor({2, 6, 2})}, {{"axis", attr_int(1)}, {"inverse", attr_int(1)}}, "inverse, complex"));
  cases.push_back(op_case("STFT", {rng.tensor({1, 16, 1}), i64_scalar(4), rng.tensor({8}, 0, 1)}));
  for (const char* op : {"HannWindow", "HammingWindow", "BlackmanWindow"}) {
    cases.push_back(op_case(op, {i64_scalar(8)}));
    cases.push_back(op_case(op, {i64_scalar(5)}, {{"periodic", attr_int(0)}}, "symmetric"));
  }
  cases.push_back(
      op_case("MelWeightMatrix", {i64_scalar(4), i64_scalar(16), i64_scalar(8000), f32_scalar(0), f32_scalar(4000)}));
  // Text.
  cases.push_back(op_case("StringNormalizer", {strings({3}, {"Hello", "World", "the"})},
                          {{"case_change_action", attr_string("LOWER")}, {"stopwords", attr_strings({"the"})}}));
  cases.push_back(op_case("TfIdfVectorizer", {i64({2, 6}, {1, 1, 3, 3, 3, 7, 8, 6, 7, 5, 6, 8})},
                          {{"mode", attr_string("TF")},
                           {"min_gram_length", attr_int(2)},
                           {"max_gram_length", attr_int(2)},
                           {"max_skip_count", attr_int(0)},
                           {"ngram_counts", attr_ints({0, 4})},
                           {"ngram_indexes", attr_ints({0, 1, 2, 3, 4, 5, 6})},
                           {"pool_int64s", attr_ints({2, 3, 5, 4, 5, 6, 7, 8, 6, 7})}}));
  // Training optimizers (ai.onnx.preview.training).
  const std::string training = "ai.onnx.preview.training";
  cases.push_back(with_outputs(
      with_opset(with_domain(
                     op_case("Adagrad",
                             {f32_scalar(0.1f), i64_scalar(3), rng.tensor({4}), rng.tensor({4}), rng.tensor({4}, 0, 1)},
                             {{"decay_factor", attr_float(0.1f)}, {"epsilon", attr_float(1e-6f)}}),
                     training),
                 1),
      2));
  cases.push_back(with_outputs(with_opset(with_domain(op_case("Momentum",
                                                              {f32_scalar(0.1f), i64_scalar(2), rng.tensor({3}),
                                                               rng.tensor({3}), rng.tensor({3})},
                                                              {{"alpha", attr_float(0.9f)},
                                                               {"beta", attr_float(0.5f)},
                                                               {"mode", attr_string("standard")},
                                                               {"norm_coefficient", attr_float(0.01f)}}),
                                                      training),
                                          1),
                               2));
  cases.push_back(
      with_outputs(with_opset(with_domain(op_case("Adam",
                                                  {f32_scalar(0.1f), i64_scalar(2), rng.tensor({3}), rng.tensor({3}),
                                                   rng.tensor({3}), rng.tensor({3}, 0, 1)},
                                                  {{"alpha", attr_float(0.9f)}, {"beta", attr_float(0.99f)}}),
                                          training),
                              1),
                   3));
  return cases;
}

}  // namespace tandem::testing
