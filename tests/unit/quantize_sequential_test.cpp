// quantize_sequential_test.cpp: sequential bias correction (BiasCorrection::sequential,
// engine/quantize_calibration.h) against local correction, on a model where the error that
// reaches a node from the quantized node before it changes the node's output mean (a Relu of a
// coarsely rounded value), and onnx_util::keep_only_outputs, which cuts each of its
// measurement models down.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "onnx/onnx_tensor_util.h"
#include "onnx_build_util.h"
#include "quantizer_test_util.h"
#include "tandem/quantize.h"

namespace tandem {
namespace {

using onnx::TensorProto;
using testing_util::add_float_initializer;
using testing_util::add_node;
using testing_util::bytes_of;
using testing_util::new_model;
using testing_util::set_info;

// X[1,3,8,8] -> Conv A (W[4,3,3,3], B[4], pad 1) -> T -> Relu -> R -> Conv 1x1 B (W[2,4,1,1],
// B[2]) -> Y. T's channel 0 is 60 times larger than the others, so T's one 8-bit step is
// coarse for channels 1-3, whose values lie around 0: rounding them and then the Relu lowers
// their mean, which B adds up into Y. Local correction sees only each node's own rounding (A's
// weights and X; B's weights and R), not the Relu of A's rounded output.
onnx::ModelProto relu_chain_model() {
  onnx::ModelProto m = new_model("main", 13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 3, 8, 8});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 2, 8, 8});
  std::vector<float> wa(108);
  for (size_t i = 0; i < wa.size(); ++i)
    wa[i] = (i < 27 ? 20.0f : 0.3f) * std::sin(1.7f * static_cast<float>(i) + 0.3f);
  add_float_initializer(g, "WA", {4, 3, 3, 3}, wa);
  add_float_initializer(g, "BA", {4}, {0.5f, 0.0f, 0.01f, -0.01f});
  add_float_initializer(g, "WB", {2, 4, 1, 1}, {0.01f, 0.9f, 0.8f, 0.7f, -0.02f, 0.6f, -0.5f, 0.9f});
  add_float_initializer(g, "BB", {2}, {0.1f, -0.1f});
  auto* a = add_node(g, "Conv", "A", {"X", "WA", "BA"}, {"T"});
  auto* pads = a->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int k = 0; k < 4; ++k) pads->add_ints(1);
  add_node(g, "Relu", "relu", {"T"}, {"R"});
  add_node(g, "Conv", "B", {"R", "WB", "BB"}, {"Y"});
  return m;
}

// Normally distributed values (sigma 2), seeded.
Tensor input(uint32_t seed) {
  std::mt19937 random(seed);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  Tensor t(DataType::float32, {1, 3, 8, 8});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = normal(random);
  return t;
}

// The mean over the output's positions and its channels of |mean error of the channel|.
double mean_abs_channel_error(const Tensor& got, const Tensor& want) {
  const int64_t channels = got.shape()[1];
  const int64_t inner = got.numel() / channels;
  double total = 0;
  for (int64_t c = 0; c < channels; ++c) {
    double sum = 0;
    for (int64_t p = 0; p < inner; ++p)
      sum += static_cast<double>(got.data<float>()[c * inner + p]) - want.data<float>()[c * inner + p];
    total += std::fabs(sum / static_cast<double>(inner));
  }
  return total / static_cast<double>(channels);
}

// Quantizes `bytes` as `options` say, with local and with sequential bias correction.
void quantize_both(const std::string& bytes, QuantizeOptions options, QuantizedModel* local, QuantizedModel* sequential) {
  options.bias_correction = BiasCorrection::local;
  auto l = quantize_model(bytes, options);
  options.bias_correction = BiasCorrection::sequential;
  auto s = quantize_model(bytes, options);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  *local = std::move(l).value();
  *sequential = std::move(s).value();
}

// Adds `x` to `sum` (empty: becomes a copy), element by element.
void accumulate(Tensor* sum, const Tensor& x) {
  if (sum->numel() == 0) {
    *sum = Tensor(DataType::float32, x.shape());
  }
  for (int64_t i = 0; i < x.numel(); ++i) sum->data<float>()[i] += x.data<float>()[i];
}

TEST(QuantizeSequentialBiasCorrection, TakesOutTheShiftThatComesFromTheNodesBefore) {
  const std::string float_bytes = bytes_of(relu_chain_model());
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.backend = "reference";
    for (uint32_t seed = 1; seed <= 8; ++seed) options.calibration_inputs.push_back({{"X", input(seed)}});
    QuantizedModel local, sequential;
    ASSERT_NO_FATAL_FAILURE(quantize_both(float_bytes, options, &local, &sequential));
    EXPECT_EQ(sequential.report.bias_corrected_nodes, 2);
    EXPECT_EQ(local.report.bias_corrected_nodes, 2);
    // The mean error per channel over the calibration inputs, and over inputs the models were
    // not calibrated on.
    for (uint32_t first_seed : {1u, 101u}) {
      SCOPED_TRACE(first_seed);
      Tensor want, got_local, got_sequential;
      for (uint32_t seed = first_seed; seed < first_seed + 8; ++seed) {
        const std::map<std::string, Tensor> x = {{"X", input(seed)}};
        accumulate(&want, testing_util::run_on_reference(float_bytes, x)[0]);
        accumulate(&got_local, testing_util::run_on_reference(local.model_bytes, x)[0]);
        accumulate(&got_sequential, testing_util::run_on_reference(sequential.model_bytes, x)[0]);
      }
      const double before = mean_abs_channel_error(got_local, want);
      const double after = mean_abs_channel_error(got_sequential, want);
      // On the calibration inputs sequential correction takes out nearly all of it; on others
      // the Relu's shift differs somewhat, and most of it still goes.
      EXPECT_GT(before, 0.1);
      EXPECT_LT(after, (first_seed == 1 ? 0.3 : 0.7) * before) << "local " << before << " sequential " << after;
    }
  }
}

TEST(QuantizeSequentialBiasCorrection, OffAndLocalAndSequentialDifferOnlyInTheBiases) {
  const std::string float_bytes = bytes_of(relu_chain_model());
  QuantizeOptions options;
  options.per_channel = true;
  options.backend = "reference";
  options.calibration_inputs.push_back({{"X", input(1)}});
  std::map<BiasCorrection, onnx::ModelProto> models;
  for (BiasCorrection b : {BiasCorrection::off, BiasCorrection::local, BiasCorrection::sequential}) {
    options.bias_correction = b;
    auto q = quantize_model(float_bytes, options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    ASSERT_TRUE(models[b].ParseFromString(q->model_bytes));
  }
  // The same nodes and weights; the int32 biases are what moves.
  auto node_ops = [](const onnx::ModelProto& m) {
    std::vector<std::string> ops;
    for (const auto& n : m.graph().node()) ops.push_back(n.op_type() + ":" + n.name());
    return ops;
  };
  EXPECT_EQ(node_ops(models[BiasCorrection::off]), node_ops(models[BiasCorrection::sequential]));
  EXPECT_EQ(node_ops(models[BiasCorrection::local]), node_ops(models[BiasCorrection::sequential]));
  int differing_biases = 0;
  for (const auto& t : models[BiasCorrection::sequential].graph().initializer()) {
    const auto* local = testing_util::find_initializer(models[BiasCorrection::local].graph(), t.name());
    ASSERT_NE(local, nullptr) << t.name();
    if (t.data_type() == TensorProto::INT32)
      differing_biases += t.raw_data() != local->raw_data();
    else
      EXPECT_EQ(t.SerializeAsString(), local->SerializeAsString()) << t.name();
  }
  EXPECT_GE(differing_biases, 1);
}

double worst_max_abs(const QuantizeReport& r) {
  double worst = 0;
  for (const auto& a : r.accuracy) worst = std::max(worst, a.max_abs);
  return worst;
}

// With an accuracy target the search runs on local corrections; sequential correction of the
// node set it ends with is kept only when it does not raise the worst max-abs on the
// calibration inputs, so the result is never worse by that measure than local correction's.
TEST(QuantizeSequentialBiasCorrection, AccuracyTargetResultIsNeverWorseThanLocal) {
  const std::string float_bytes = bytes_of(relu_chain_model());
  for (double target : {2.5, 1.0}) {
    SCOPED_TRACE(target);
    QuantizeOptions options;
    options.backend = "reference";
    options.accuracy_target = target;
    for (uint32_t seed = 1; seed <= 4; ++seed) options.calibration_inputs.push_back({{"X", input(seed)}});
    QuantizedModel local, sequential;
    ASSERT_NO_FATAL_FAILURE(quantize_both(float_bytes, options, &local, &sequential));
    // Fully quantized the chain is off by about 3: 2.5 keeps one Conv float, 1.0 both.
    EXPECT_GT(local.report.max_abs_all_quantized, 2.5);
    EXPECT_EQ(local.report.kept_for_accuracy.size(), target > 2 ? 1u : 2u);
    EXPECT_EQ(sequential.report.kept_for_accuracy.size(), local.report.kept_for_accuracy.size());
    EXPECT_LE(worst_max_abs(sequential.report), worst_max_abs(local.report));
  }
}

// X -> Neg -> a -> Relu -> b (output); X -> Abs -> c (output); X -> Sigmoid -> d -> If, whose
// branch reads d -> e (output).
TEST(OnnxUtilKeepOnlyOutputs, KeepsWhatTheOutputsNeedThroughNestedGraphsToo) {
  onnx::ModelProto m = new_model("main", 13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {2});
  set_info(g->add_input(), "cond", TensorProto::BOOL, {});
  for (const char* out : {"b", "c", "e"}) set_info(g->add_output(), out, TensorProto::FLOAT, {2});
  add_node(g, "Neg", "neg", {"X"}, {"a"});
  add_node(g, "Relu", "relu", {"a"}, {"b"});
  add_node(g, "Abs", "abs", {"X"}, {"c"});
  add_node(g, "Sigmoid", "sigmoid", {"X"}, {"d"});
  auto* branch_if = add_node(g, "If", "if", {"cond"}, {"e"});
  for (const char* name : {"then_branch", "else_branch"}) {
    auto* attr = branch_if->add_attribute();
    attr->set_name(name);
    attr->set_type(onnx::AttributeProto::GRAPH);
    auto* body = attr->mutable_g();
    body->set_name(name);
    set_info(body->add_output(), "e_body", TensorProto::FLOAT, {2});
    add_node(body, "Identity", "copy", {"d"}, {"e_body"});
  }
  auto names = [](const onnx::GraphProto& graph) {
    std::vector<std::string> out;
    for (const auto& n : graph.node()) out.push_back(n.name());
    return out;
  };

  onnx::GraphProto just_b = m.graph();
  onnx_util::keep_only_outputs(just_b, {{"b", TensorProto::FLOAT}});
  EXPECT_EQ(names(just_b), (std::vector<std::string>{"neg", "relu"}));
  ASSERT_EQ(just_b.output_size(), 1);
  EXPECT_EQ(just_b.output(0).name(), "b");
  EXPECT_EQ(just_b.input_size(), 2);

  onnx::GraphProto just_e = m.graph();
  onnx_util::keep_only_outputs(just_e, {{"e", TensorProto::FLOAT}});
  EXPECT_EQ(names(just_e), (std::vector<std::string>{"sigmoid", "if"}));

  onnx::GraphProto a_and_c = m.graph();
  onnx_util::keep_only_outputs(a_and_c, {{"a", TensorProto::FLOAT}, {"c", TensorProto::FLOAT}});
  EXPECT_EQ(names(a_and_c), (std::vector<std::string>{"neg", "abs"}));
  EXPECT_EQ(a_and_c.output_size(), 2);
}

}  // namespace
}  // namespace tandem
