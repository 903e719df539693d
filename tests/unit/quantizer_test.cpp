// quantizer_test.cpp: the 8-bit quantizer (onnx/quantizer.h, tandem/quantize.h) and the opset
// raise it relies on (onnx/opset_upgrade.h). Models are built in memory; quantized models are
// checked structurally (nodes, types, weights worked out here from the float values) and run
// through the public API on the reference backend against the float model.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "onnx/opset_upgrade.h"
#include "onnx/quantizer.h"
#include "onnx_build_util.h"
#include "quantizer_test_util.h"
#include "tandem/model.h"
#include "tandem/quantize.h"

namespace tandem {
namespace {

using onnx::TensorProto;
using testing_util::add_node;
using testing_util::set_info;
using testing_util::add_float_initializer;
using testing_util::bytes_of;

void add_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

void add_attr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

void add_attr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

onnx::ModelProto empty_model(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(7);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  m.mutable_graph()->set_name("main");
  return m;
}

// A deterministic spread of values in [-scale, scale].
std::vector<float> wave(size_t n, float scale, float phase = 0.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = scale * std::sin(0.7f * static_cast<float>(i) + phase);
  return v;
}

// X[1,2,5,5] -> Conv(W[3,2,3,3], B[3], pad 1) -> Relu -> Flatten -> Gemm(B[75,4], C[4]) -> Y[1,4]
onnx::ModelProto conv_gemm_model(int64_t opset = 13) {
  onnx::ModelProto m = empty_model(opset);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 2, 5, 5});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 4});
  std::vector<float> w = wave(54, 0.5f);
  for (size_t i = 18; i < 36; ++i) w[i] *= 0.01f;  // channel 1 is tiny: per-channel scales differ
  add_float_initializer(g, "W", {3, 2, 3, 3}, w);
  add_float_initializer(g, "B", {3}, {0.1f, -0.2f, 0.05f});
  add_float_initializer(g, "G", {75, 4}, wave(300, 0.2f, 1.0f));
  add_float_initializer(g, "C", {4}, {0.5f, -0.5f, 0.25f, 0.0f});
  auto* conv = add_node(g, "Conv", "conv", {"X", "W", "B"}, {"conv_out"});
  add_attr(conv, "pads", std::vector<int64_t>{1, 1, 1, 1});
  add_node(g, "Relu", "relu", {"conv_out"}, {"relu_out"});
  add_node(g, "Flatten", "flatten", {"relu_out"}, {"flat"});
  auto* gemm = add_node(g, "Gemm", "fc", {"flat", "G", "C"}, {"Y"});
  add_attr(gemm, "alpha", 0.5f);
  return m;
}

onnx::ModelProto parse(const std::string& bytes) {
  onnx::ModelProto m;
  EXPECT_TRUE(m.ParseFromString(bytes));
  return m;
}

Tensor input_tensor(const Shape& shape, float phase) {
  Tensor t(DataType::float32, shape);
  const std::vector<float> v = wave(static_cast<size_t>(t.numel()), 1.0f, phase);
  std::copy(v.begin(), v.end(), t.data<float>());
  return t;
}

// Runs serialized `bytes` on the reference backend; the first output.
Tensor run_model(const std::string& bytes, const std::map<std::string, Tensor>& inputs) {
  auto outputs = testing_util::run_on_reference(bytes, inputs);
  return outputs.empty() ? Tensor() : outputs[0];
}

std::multiset<std::string> op_types(const onnx::GraphProto& g) {
  std::multiset<std::string> ops;
  for (const auto& n : g.node()) ops.insert(n.op_type());
  return ops;
}

const TensorProto* initializer(const onnx::GraphProto& g, const std::string& name) {
  return testing_util::find_initializer(g, name);
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  double m = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    m = std::max(m, std::fabs(static_cast<double>(a.data<float>()[i]) - static_cast<double>(b.data<float>()[i])));
  return m;
}

std::vector<std::map<std::string, Tensor>> calibration_sets() {
  return {{{"X", input_tensor({1, 2, 5, 5}, 0.0f)}}, {{"X", input_tensor({1, 2, 5, 5}, 1.0f)}},
          {{"X", input_tensor({1, 2, 5, 5}, 2.0f)}}};
}

// --- scales -------------------------------------------------------------------------------

TEST(Quantizer, ActivationScaleCoversTheRangeWidenedToZero) {
  float scale = 0;
  uint8_t zero_point = 0;
  activation_scale({-1.0f, 3.0f}, &scale, &zero_point);
  EXPECT_FLOAT_EQ(scale, 4.0f / 255.0f);
  EXPECT_EQ(zero_point, 64);  // round(1 / (4 / 255)) = round(63.75)
  activation_scale({2.0f, 5.0f}, &scale, &zero_point);  // widened to [0, 5]
  EXPECT_FLOAT_EQ(scale, 5.0f / 255.0f);
  EXPECT_EQ(zero_point, 0);
  activation_scale({-4.0f, -1.0f}, &scale, &zero_point);  // widened to [-4, 0]
  EXPECT_EQ(zero_point, 255);
  activation_scale({0.0f, 0.0f}, &scale, &zero_point);
  EXPECT_FLOAT_EQ(scale, 1.0f);
  EXPECT_EQ(zero_point, 0);
}

// --- the plan -----------------------------------------------------------------------------

TEST(Quantizer, PlanSplitsGemmAndListsActivations) {
  QuantizeOptions options;
  auto plan = plan_quantization(conv_gemm_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(op_types(plan->prepared.graph()).count("Gemm"), 0u);
  EXPECT_EQ(op_types(plan->prepared.graph()).count("MatMul"), 1u);
  EXPECT_EQ(plan->nodes.size(), 2u);
  EXPECT_EQ(plan->report.quantized_nodes.at("Conv"), 1);
  EXPECT_EQ(plan->report.quantized_nodes.at("Gemm"), 1);
  const std::vector<std::string> want = {"X", "conv_out", "flat", "Y_product"};
  EXPECT_EQ(plan->activations, want);
  // The prepared model computes what the original does.
  const Tensor x = input_tensor({1, 2, 5, 5}, 0.5f);
  const Tensor a = run_model(bytes_of(conv_gemm_model()), {{"X", x}});
  const Tensor b = run_model(bytes_of(plan->prepared), {{"X", x}});
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LT(max_abs_diff(a, b), 1e-5);
}

TEST(Quantizer, ExclusionsKeepNodesFloatAndSayWhy) {
  QuantizeOptions options;
  options.exclude_nodes = {"conv"};
  options.exclude_ops = {"Gemm"};
  auto plan = plan_quantization(conv_gemm_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_TRUE(plan->nodes.empty());
  EXPECT_TRUE(plan->activations.empty());
  const std::vector<std::string> want = {"[Gemm 'fc'] is excluded", "[Conv 'conv'] is excluded"};
  EXPECT_EQ(plan->report.skipped_nodes, want);
}

// X -> Conv(W, B) -> BatchNormalization -> Y; with `tap`, the Conv's output is a graph output too.
onnx::ModelProto conv_bn_model(bool tap) {
  onnx::ModelProto m = empty_model(13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 2, 4, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 3, 4, 4});
  if (tap) set_info(g->add_output(), "conv_out", TensorProto::FLOAT, {1, 3, 4, 4});
  add_float_initializer(g, "W", {3, 2, 1, 1}, wave(6, 0.8f));
  add_float_initializer(g, "B", {3}, {0.1f, 0.2f, -0.3f});
  add_float_initializer(g, "gamma", {3}, {1.5f, 0.5f, 2.0f});
  add_float_initializer(g, "beta", {3}, {0.0f, 1.0f, -1.0f});
  add_float_initializer(g, "mean", {3}, {0.2f, -0.1f, 0.4f});
  add_float_initializer(g, "var", {3}, {0.25f, 4.0f, 1.0f});
  add_node(g, "Conv", "conv", {"X", "W", "B"}, {"conv_out"});
  auto* bn = add_node(g, "BatchNormalization", "bn", {"conv_out", "gamma", "beta", "mean", "var"}, {"Y"});
  add_attr(bn, "epsilon", 1e-3f);
  return m;
}

TEST(Quantizer, BatchNormalizationAfterAConvIsFoldedIntoIt) {
  auto plan = plan_quantization(conv_bn_model(false), QuantizeOptions{});
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  EXPECT_EQ(plan->report.folded_batch_norms, 1);
  EXPECT_EQ(op_types(plan->prepared.graph()), std::multiset<std::string>{"Conv"});
  for (const char* gone : {"W", "B", "gamma", "beta", "mean", "var"})
    EXPECT_EQ(initializer(plan->prepared.graph(), gone), nullptr) << gone;
  const Tensor x = input_tensor({1, 2, 4, 4}, 0.4f);
  const Tensor a = run_model(bytes_of(conv_bn_model(false)), {{"X", x}});
  const Tensor b = run_model(bytes_of(plan->prepared), {{"X", x}});
  ASSERT_EQ(a.shape(), b.shape());
  EXPECT_LT(max_abs_diff(a, b), 1e-5);
  // A Conv whose output something else reads keeps its BatchNormalization.
  auto tapped = plan_quantization(conv_bn_model(true), QuantizeOptions{});
  ASSERT_TRUE(tapped.is_ok()) << tapped.status().to_string();
  EXPECT_EQ(tapped->report.folded_batch_norms, 0);
  EXPECT_EQ(op_types(tapped->prepared.graph()).count("BatchNormalization"), 1u);
}

// --- the formats --------------------------------------------------------------------------

TEST(Quantizer, QdqPerChannelWeightsAreSymmetricInt8PerOutputChannel) {
  QuantizeOptions options;
  options.per_channel = true;
  options.calibration_inputs = calibration_sets();
  auto q = quantize_model(bytes_of(conv_gemm_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  const onnx::ModelProto m = parse(q->model_bytes);
  const auto ops = op_types(m.graph());
  EXPECT_EQ(ops.count("QuantizeLinear"), 4u);  // X, conv_out, flat, Y_product
  EXPECT_EQ(ops.count("DequantizeLinear"), 4u + 3u);  // activations, W, G, B
  EXPECT_EQ(m.opset_import(0).version(), 13);
  EXPECT_EQ(initializer(m.graph(), "W"), nullptr);  // the float weight is gone
  const TensorProto* w = initializer(m.graph(), "W_quantized");
  const TensorProto* scale = initializer(m.graph(), "W_scale");
  ASSERT_TRUE(w && scale);
  EXPECT_EQ(w->data_type(), TensorProto::INT8);
  ASSERT_EQ(scale->dims_size(), 1);
  EXPECT_EQ(scale->dims(0), 3);
  // Worked out here from the float weights: scale_c = max|w_c| / 127, q = round(w / scale_c).
  const std::vector<float> floats = [] {
    std::vector<float> v = wave(54, 0.5f);
    for (size_t i = 18; i < 36; ++i) v[i] *= 0.01f;
    return v;
  }();
  std::vector<float> scales(3);
  std::memcpy(scales.data(), scale->raw_data().data(), 3 * sizeof(float));
  for (int c = 0; c < 3; ++c) {
    float m_abs = 0;
    for (int i = 0; i < 18; ++i) m_abs = std::max(m_abs, std::fabs(floats[static_cast<size_t>(c * 18 + i)]));
    EXPECT_FLOAT_EQ(scales[static_cast<size_t>(c)], m_abs / 127.0f);
    for (int i = 0; i < 18; ++i) {
      const size_t k = static_cast<size_t>(c * 18 + i);
      EXPECT_EQ(static_cast<int8_t>(w->raw_data()[k]), static_cast<int8_t>(std::nearbyint(floats[k] / scales[static_cast<size_t>(c)])));
    }
  }
  const TensorProto* bias = initializer(m.graph(), "B_quantized");
  ASSERT_TRUE(bias);
  EXPECT_EQ(bias->data_type(), TensorProto::INT32);
  // The accuracy report: one float output, within a few activation steps of the float model.
  ASSERT_EQ(q->report.accuracy.size(), 1u);
  EXPECT_EQ(q->report.accuracy[0].name, "Y");
  EXPECT_GT(q->report.accuracy[0].max_abs, 0);
  EXPECT_LT(q->report.accuracy[0].max_abs, 0.05);
  EXPECT_EQ(q->report.accuracy[0].positions, 3);  // [1, 4]: one position per run
  EXPECT_EQ(q->report.calibration_runs, 3);
  EXPECT_EQ(q->report.calibrated_values, 4);
}

// reduce_range: the same per-channel weights in 7 bits (scale max|w| / 63, |q| <= 63, the
// largest weight of each channel at +-63), in every format that writes int8 or shifted
// uint8 weights, and the model still close to the float one.
TEST(Quantizer, ReduceRangeWritesSevenBitWeights) {
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.per_channel = true;
    options.reduce_range = true;
    options.calibration_inputs = calibration_sets();
    auto q = quantize_model(bytes_of(conv_gemm_model()), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    const onnx::ModelProto m = parse(q->model_bytes);
    const TensorProto* w = initializer(m.graph(), "W_quantized");
    const TensorProto* scale = initializer(m.graph(), "W_scale");
    ASSERT_TRUE(w && scale);
    const int shift = w->data_type() == TensorProto::UINT8 ? 128 : 0;  // dynamic: uint8, zero point 128
    std::vector<float> scales(3);
    std::memcpy(scales.data(), scale->raw_data().data(), 3 * sizeof(float));
    const std::vector<float> floats = [] {
      std::vector<float> v = wave(54, 0.5f);
      for (size_t i = 18; i < 36; ++i) v[i] *= 0.01f;
      return v;
    }();
    for (int c = 0; c < 3; ++c) {
      float m_abs = 0;
      int q_max = 0;
      for (int i = 0; i < 18; ++i) {
        const size_t k = static_cast<size_t>(c * 18 + i);
        m_abs = std::max(m_abs, std::fabs(floats[k]));
        const int value = (shift ? static_cast<int>(static_cast<uint8_t>(w->raw_data()[k]))
                                 : static_cast<int>(static_cast<int8_t>(w->raw_data()[k]))) - shift;
        EXPECT_LE(std::abs(value), 63);
        q_max = std::max(q_max, std::abs(value));
      }
      EXPECT_FLOAT_EQ(scales[static_cast<size_t>(c)], m_abs / 63.0f);
      EXPECT_EQ(q_max, 63) << "channel " << c;
    }
    const Tensor x = input_tensor({1, 2, 5, 5}, 1.0f);
    const Tensor want = run_model(bytes_of(conv_gemm_model()), {{"X", x}});
    EXPECT_LT(max_abs_diff(run_model(q->model_bytes, {{"X", x}}), want), 0.1);
  }
}

// X[1,2,5,5] -> Conv(W[3,2,1,1], B[3]) -> Y: output channel 1 is a dead filter (weights ~1e-15)
// with a bias of 0.75, as trained models have.
onnx::ModelProto dead_channel_model() {
  onnx::ModelProto m = empty_model(13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 2, 5, 5});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 3, 5, 5});
  add_float_initializer(g, "W", {3, 2, 1, 1}, {0.5f, -0.25f, 1e-15f, -2e-15f, 0.125f, 0.75f});
  add_float_initializer(g, "B", {3}, {0.1f, 0.75f, -0.2f});
  add_node(g, "Conv", "conv", {"X", "W", "B"}, {"Y"});
  return m;
}

TEST(Quantizer, ADeadChannelKeepsItsBias) {
  // With a weight scale of max|w| / 127 ~ 1e-17, the int32 bias at x_scale * w_scale cannot
  // hold 0.75: it would saturate and the channel would output ~0. Its scale has a floor.
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator}) {
    SCOPED_TRACE(format == QuantizeFormat::qdq ? "qdq" : "qoperator");
    QuantizeOptions options;
    options.per_channel = true;
    options.format = format;
    options.calibration_inputs = calibration_sets();
    auto q = quantize_model(bytes_of(dead_channel_model()), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    const Tensor x = input_tensor({1, 2, 5, 5}, 0.3f);
    const Tensor want = run_model(bytes_of(dead_channel_model()), {{"X", x}});
    const Tensor got = run_model(q->model_bytes, {{"X", x}});
    ASSERT_EQ(got.shape(), want.shape());
    for (int64_t i = 25; i < 50; ++i) EXPECT_NEAR(got.data<float>()[i], 0.75f, 0.01f) << "channel 1, pixel " << i - 25;
    EXPECT_LT(max_abs_diff(got, want), 0.05);
  }
}

// Each format runs on the reference backend close to the float model (within a few 8-bit
// steps of the output's range of about 0.55) on one of its calibration inputs.
TEST(Quantizer, EveryFormatStaysCloseToTheFloatModel) {
  const Tensor x = input_tensor({1, 2, 5, 5}, 1.0f);
  const Tensor expected = run_model(bytes_of(conv_gemm_model()), {{"X", x}});
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    double errors[2] = {0, 0};
    for (int per_channel : {0, 1}) {
      SCOPED_TRACE(std::to_string(static_cast<int>(format)) + (per_channel ? " per-channel" : " per-tensor"));
      QuantizeOptions options;
      options.format = format;
      options.per_channel = per_channel != 0;
      options.bias_correction = BiasCorrection::off;  // compares the weight granularities alone
      options.calibration_inputs = calibration_sets();
      auto q = quantize_model(bytes_of(conv_gemm_model()), options);
      ASSERT_TRUE(q.is_ok()) << q.status().to_string();
      const auto ops = op_types(parse(q->model_bytes).graph());
      EXPECT_EQ(ops.count("Conv") + ops.count("Gemm") + ops.count("MatMul"), format == QuantizeFormat::qdq ? 2u : 0u);
      if (format == QuantizeFormat::qoperator) {
        EXPECT_EQ(ops.count("QLinearConv"), 1u);
        EXPECT_EQ(ops.count("QLinearMatMul"), 1u);
      }
      if (format == QuantizeFormat::dynamic) {
        EXPECT_EQ(ops.count("DynamicQuantizeLinear"), 2u);
        EXPECT_EQ(ops.count("ConvInteger"), 1u);
        EXPECT_EQ(ops.count("MatMulInteger"), 1u);
      }
      const Tensor actual = run_model(q->model_bytes, {{"X", x}});
      ASSERT_EQ(actual.shape(), expected.shape());
      const double err = max_abs_diff(expected, actual);
      EXPECT_GT(err, 0);  // it did change the arithmetic
      EXPECT_LT(err, 0.01);
      errors[per_channel] = err;
    }
    // Conv channel 1's weights are 100 times smaller than the others': their own scale helps.
    if (format != QuantizeFormat::dynamic) {
      EXPECT_LT(errors[1], errors[0]);
    }
  }
}

// A language model's tied output projection: E[6, 4] is a table another node reads (Gather) and
// the MatMul's weight through a Transpose. X[3,4] -> MatMul(Transpose(E)) -> Y[3,6].
onnx::ModelProto tied_weights_model() {
  onnx::ModelProto m = empty_model(13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {3, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {3, 6});
  set_info(g->add_output(), "R", TensorProto::FLOAT, {2, 4});
  add_float_initializer(g, "E", {6, 4}, wave(24, 0.8f, 0.3f));
  auto* rows = g->add_initializer();
  rows->set_name("ids");
  rows->set_data_type(TensorProto::INT64);
  rows->add_dims(2);
  rows->add_int64_data(5);
  rows->add_int64_data(1);
  add_node(g, "Gather", "embed", {"E", "ids"}, {"R"});
  auto* t = add_node(g, "Transpose", "tie", {"E"}, {"Et"});
  add_attr(t, "perm", std::vector<int64_t>{1, 0});
  add_node(g, "MatMul", "head", {"X", "Et"}, {"Y"});
  return m;
}

TEST(Quantizer, ATransposedInitializerIsQuantizedAsAWeight) {
  const Tensor x = input_tensor({3, 4}, 0.5f);
  const Tensor expected = run_model(bytes_of(tied_weights_model()), {{"X", x}});
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.per_channel = true;
    options.calibration_inputs = {{{"X", x}}};
    auto q = quantize_model(bytes_of(tied_weights_model()), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    EXPECT_TRUE(q->report.skipped_nodes.empty()) << q->report.skipped_nodes[0];
    const onnx::ModelProto m = parse(q->model_bytes);
    const auto ops = op_types(m.graph());
    EXPECT_EQ(ops.count("Transpose"), 0u);
    EXPECT_EQ(ops.count("Gather"), 1u);
    ASSERT_TRUE(initializer(m.graph(), "E")) << "the table stays for the Gather";
    // The weight, transposed to [4, 6], quantized per output column as int8.
    const TensorProto* w = nullptr;
    for (const auto& t : m.graph().initializer())
      if (t.data_type() == TensorProto::INT8 && t.dims_size() == 2) w = &t;
    ASSERT_TRUE(w) << "no int8 weight";
    EXPECT_EQ(w->dims(0), 4);
    EXPECT_EQ(w->dims(1), 6);
    const Tensor actual = run_model(q->model_bytes, {{"X", x}});
    ASSERT_EQ(actual.shape(), expected.shape());
    EXPECT_LT(max_abs_diff(expected, actual), 0.05);
  }
}

// X -> conv1 -> c1 -> conv2 -> Y, and c1 -> Relu -> R: c1 has a quantized and a float reader.
onnx::ModelProto conv_chain_model() {
  onnx::ModelProto m = empty_model(13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 2, 4, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 2, 4, 4});
  set_info(g->add_output(), "R", TensorProto::FLOAT, {1, 2, 4, 4});
  add_float_initializer(g, "W1", {2, 2, 1, 1}, {0.5f, -0.25f, 0.75f, 0.1f});
  add_float_initializer(g, "W2", {2, 2, 1, 1}, {-0.3f, 0.6f, 0.2f, 0.9f});
  add_node(g, "Conv", "conv1", {"X", "W1"}, {"c1"});
  add_node(g, "Conv", "conv2", {"c1", "W2"}, {"Y"});
  add_node(g, "Relu", "relu", {"c1"}, {"R"});
  return m;
}

const onnx::NodeProto* node_named(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& n : g.node())
    if (n.name() == name) return &n;
  return nullptr;
}

const onnx::NodeProto* producer_of(const onnx::GraphProto& g, const std::string& value) {
  for (const auto& n : g.node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

TEST(Quantizer, QOperatorPassesUint8BetweenQuantizedNodesAndDequantizesForFloatReaders) {
  QuantizeOptions options;
  options.format = QuantizeFormat::qoperator;
  options.calibration_inputs = {{{"X", input_tensor({1, 2, 4, 4}, 0.0f)}}};
  auto q = quantize_model(bytes_of(conv_chain_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  const onnx::ModelProto m = parse(q->model_bytes);
  const auto ops = op_types(m.graph());
  EXPECT_EQ(ops.count("QLinearConv"), 2u);
  EXPECT_EQ(ops.count("QuantizeLinear"), 1u);    // X only
  EXPECT_EQ(ops.count("DequantizeLinear"), 2u);  // c1 for the Relu, Y for the graph output
  const onnx::NodeProto* conv1 = node_named(m.graph(), "conv1");
  const onnx::NodeProto* conv2 = node_named(m.graph(), "conv2");
  ASSERT_TRUE(conv1 && conv2);
  EXPECT_EQ(conv1->op_type(), "QLinearConv");
  EXPECT_EQ(conv2->input(0), conv1->output(0));  // uint8 straight from conv1
  const onnx::NodeProto* c1 = producer_of(m.graph(), "c1");
  ASSERT_TRUE(c1);
  EXPECT_EQ(c1->op_type(), "DequantizeLinear");
  EXPECT_EQ(c1->input(0), conv1->output(0));
  EXPECT_EQ(node_named(m.graph(), "relu")->input(0), "c1");  // the float reader is unchanged
  ASSERT_TRUE(producer_of(m.graph(), "Y"));
  EXPECT_EQ(producer_of(m.graph(), "Y")->op_type(), "DequantizeLinear");
  EXPECT_EQ(q->report.accuracy.size(), 2u);
}

TEST(Quantizer, QdqEveryReaderOfAQuantizedActivationReadsItDequantized) {
  QuantizeOptions options;
  options.calibration_inputs = {{{"X", input_tensor({1, 2, 4, 4}, 0.0f)}}};
  auto q = quantize_model(bytes_of(conv_chain_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  const onnx::ModelProto m = parse(q->model_bytes);
  const auto ops = op_types(m.graph());
  EXPECT_EQ(ops.count("Conv"), 2u);
  EXPECT_EQ(ops.count("QuantizeLinear"), 3u);    // X, c1, Y
  EXPECT_EQ(ops.count("DequantizeLinear"), 7u);  // X, c1, Y, W1, W2, and the biases bias correction gave both Convs
  const std::string c1 = node_named(m.graph(), "conv2")->input(0);
  EXPECT_EQ(producer_of(m.graph(), c1)->op_type(), "DequantizeLinear");
  EXPECT_EQ(node_named(m.graph(), "relu")->input(0), c1);
  EXPECT_EQ(producer_of(m.graph(), "Y")->op_type(), "Conv");  // graph outputs keep the float value
  for (const auto& o : m.graph().output()) EXPECT_TRUE(producer_of(m.graph(), o.name())) << o.name();
}

TEST(Quantizer, QdqWithoutOutputQuantizationRoundsOnlyWhatQuantizedNodesRead) {
  QuantizeOptions options;
  options.calibration_inputs = {{{"X", input_tensor({1, 2, 4, 4}, 0.0f)}}};
  options.quantize_outputs = false;
  auto q = quantize_model(bytes_of(conv_chain_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->report.calibrated_values, 2);  // X and c1 (conv2 reads it); not Y
  const onnx::ModelProto m = parse(q->model_bytes);
  const auto ops = op_types(m.graph());
  EXPECT_EQ(ops.count("Conv"), 2u);
  EXPECT_EQ(ops.count("QuantizeLinear"), 2u);    // X, c1
  EXPECT_EQ(ops.count("DequantizeLinear"), 6u);  // X, c1, W1, W2 and the two biases
  EXPECT_EQ(producer_of(m.graph(), "Y")->op_type(), "Conv");
  // qoperator's QLinearConv has a quantized output whatever the option says.
  options.format = QuantizeFormat::qoperator;
  auto qop = quantize_model(bytes_of(conv_chain_model()), options);
  ASSERT_TRUE(qop.is_ok()) << qop.status().to_string();
  EXPECT_EQ(op_types(parse(qop->model_bytes).graph()).count("QLinearConv"), 2u);
  EXPECT_EQ(qop->report.calibrated_values, 3);
}

// One outlier stretches a minmax range so that the small values all round to one step; the
// percentile range clips it and keeps them apart.
TEST(Quantizer, PercentileClipsOutliersThatMinmaxKeeps) {
  onnx::ModelProto m = empty_model(13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1000, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1000, 4});
  add_float_initializer(g, "I", {4, 4}, {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1});
  add_node(g, "MatMul", "mm", {"X", "I"}, {"Y"});
  Tensor clean(DataType::float32, {1000, 4});
  for (int64_t i = 0; i < clean.numel(); ++i) clean.data<float>()[i] = static_cast<float>(i % 97) / 97.0f;
  Tensor x = clean.clone();
  x.data<float>()[5] = 1000.0f;
  double error[2];
  for (int p = 0; p < 2; ++p) {
    QuantizeOptions options;
    options.method = p ? CalibrationMethod::percentile : CalibrationMethod::minmax;
    options.percentile = 99.9;
    options.calibration_inputs = {{{"X", x}}};
    auto q = quantize_model(bytes_of(m), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    // Measured on the values without the outlier (which percentile clips, by design).
    error[p] = max_abs_diff(clean, run_model(q->model_bytes, {{"X", clean}}));
  }
  EXPECT_LT(error[1], 0.01) << "percentile";
  EXPECT_GT(error[0], 0.5) << "minmax: a step of 1000 / 255 swallows the values in [0, 1)";
}

// --- opset and errors ---------------------------------------------------------------------

TEST(Quantizer, OpsetNineAttributesBecomeInputs) {
  onnx::ModelProto m = empty_model(9);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {2, 6});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {3});
  auto* clip = add_node(g, "Clip", "clip", {"X"}, {"c"});
  add_attr(clip, "min", -0.5f);
  add_attr(clip, "max", 0.5f);
  auto* slice = add_node(g, "Slice", "slice", {"c"}, {"s"});
  add_attr(slice, "starts", std::vector<int64_t>{1, 2});
  add_attr(slice, "ends", std::vector<int64_t>{2, 5});
  auto* squeeze = add_node(g, "Squeeze", "squeeze", {"s"}, {"q"});
  add_attr(squeeze, "axes", std::vector<int64_t>{0});
  auto* softmax = add_node(g, "Softmax", "softmax", {"q"}, {"Y"});
  add_attr(softmax, "axis", int64_t{0});
  onnx::ModelProto raised = m;
  std::set<std::string> names = {"X", "Y", "c", "s", "q"};
  ASSERT_TRUE(raise_opset(raised, 13, {{"q", 1}}, names).is_ok());
  EXPECT_EQ(default_opset_of(raised), 13);
  for (const auto& n : raised.graph().node()) {
    const std::map<std::string, int> inputs = {{"Clip", 3}, {"Slice", 3}, {"Squeeze", 2}, {"Softmax", 1}};
    EXPECT_EQ(n.input_size(), inputs.at(n.op_type())) << n.op_type();
    EXPECT_EQ(n.attribute_size(), n.op_type() == "Softmax" ? 1 : 0) << n.op_type();
  }
  const Tensor x = input_tensor({2, 6}, 0.3f);
  const Tensor a = run_model(bytes_of(m), {{"X", x}});
  const Tensor b = run_model(bytes_of(raised), {{"X", x}});
  ASSERT_EQ(b.shape(), Shape({3}));
  EXPECT_EQ(max_abs_diff(a, b), 0);
}

TEST(Quantizer, SoftmaxOverLeadingAxesCannotBeRaised) {
  onnx::ModelProto m = empty_model(11);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {2, 3, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {2, 3, 4});
  add_node(g, "Softmax", "sm", {"X"}, {"Y"});  // axis 1 of 3: flattens [3, 4] before opset 13
  QuantizeOptions options;
  options.format = QuantizeFormat::dynamic;
  auto q = quantize_model(bytes_of(m), options);
  ASSERT_FALSE(q.is_ok());
  EXPECT_EQ(q.status().code(), StatusCode::unsupported);
  EXPECT_NE(q.status().message().find("[Softmax 'sm']"), std::string::npos) << q.status().message();
}

TEST(Quantizer, BadRequestsGiveOneLineErrors) {
  QuantizeOptions options;
  auto no_calibration = quantize_model(bytes_of(conv_gemm_model()), options);
  ASSERT_FALSE(no_calibration.is_ok());
  EXPECT_EQ(no_calibration.status().code(), StatusCode::invalid_argument);
  auto garbage = quantize_model("not a model", options);
  ASSERT_FALSE(garbage.is_ok());
  EXPECT_EQ(garbage.status().code(), StatusCode::invalid_model);
  options.calibration_inputs = {{{"Z", input_tensor({1, 2, 5, 5}, 0.0f)}}};
  auto wrong_input = quantize_model(bytes_of(conv_gemm_model()), options);
  ASSERT_FALSE(wrong_input.is_ok());
  EXPECT_EQ(wrong_input.status().message().find('\n'), std::string::npos);
}

TEST(Quantizer, ABiasOfTheWrongLengthIsRefusedNamingTheNode) {
  onnx::ModelProto m = conv_gemm_model();
  auto* bias = m.mutable_graph()->mutable_initializer(1);
  ASSERT_EQ(bias->name(), "B");
  bias->clear_dims();
  bias->add_dims(2);
  bias->mutable_float_data()->RemoveLast();
  QuantizeOptions options;
  options.format = QuantizeFormat::dynamic;
  auto q = quantize_model(bytes_of(m), options);
  ASSERT_FALSE(q.is_ok());
  EXPECT_NE(q.status().message().find("[Conv 'conv']"), std::string::npos) << q.status().message();
}

}  // namespace
}  // namespace tandem
