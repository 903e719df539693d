// quantizer_adjust_test.cpp: the quantizer's adjustments of the float model (onnx/quantizer.h):
// bias correction (QuantizeOptions::bias_correction) and activation equalization
// (QuantizeOptions::equalize). The probes are checked against the shift worked out here from
// the rounding of the weights, the corrected and equalized plans against the shifts and ranges
// they were given (and the equalized float model against the original), and the quantized
// models against the float one: their error must shrink.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "onnx/quantizer.h"
#include "onnx_build_util.h"
#include "quantizer_test_util.h"
#include "tandem/model.h"
#include "tandem/quantize.h"

namespace tandem {
namespace {

using onnx::TensorProto;
using testing_util::add_node;
using testing_util::new_model;
using testing_util::set_info;
using testing_util::add_float_initializer;
using testing_util::bytes_of;


// Channel 0's weights set the per-tensor scale (0.9 / 127); channel 1's are so small that
// rounding moves each of them by a large part of themselves, always in the same direction here.
const std::vector<float> kWeights = {0.9f, -0.7f, 0.5f, 0.0131f, 0.0042f, -0.0093f};

// X[1,3,8,8] -> Conv 1x1 (W[2,3,1,1], no bias) -> Y[1,2,8,8]
onnx::ModelProto conv_model() {
  onnx::ModelProto m = new_model("main", 13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 3, 8, 8});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 2, 8, 8});
  add_float_initializer(g, "W", {2, 3, 1, 1}, kWeights);
  add_node(g, "Conv", "conv", {"X", "W"}, {"Y"});
  return m;
}

// X[4,3] -> MatMul(B[3,2]) -> Add(C[2]) -> Y, and the same product read by a Relu (no bias:
// not correctable) -> Z.
onnx::ModelProto matmul_model() {
  onnx::ModelProto m = new_model("main", 13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {4, 3});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {4, 2});
  set_info(g->add_output(), "Z", TensorProto::FLOAT, {4, 2});
  // B[k][n] = kWeights[n * 3 + k]: column 1 holds the small weights.
  std::vector<float> b(6);
  for (int k = 0; k < 3; ++k)
    for (int n = 0; n < 2; ++n) b[static_cast<size_t>(k * 2 + n)] = kWeights[static_cast<size_t>(n * 3 + k)];
  add_float_initializer(g, "B", {3, 2}, b);
  add_float_initializer(g, "C", {2}, {0.25f, -0.5f});
  add_node(g, "MatMul", "linear", {"X", "B"}, {"product"});
  add_node(g, "Add", "linear_bias", {"product", "C"}, {"Y"});
  add_node(g, "MatMul", "bare", {"X", "B"}, {"bare_product"});
  add_node(g, "Relu", "relu", {"bare_product"}, {"Z"});
  return m;
}

// Input values around `mean` per channel (channel c of NCHW, or column c of a matrix), spread by
// +-3 so that the outputs cross many 8-bit steps and their rounding averages out.
Tensor input(const Shape& shape, const std::vector<float>& mean, float phase, bool channels_second) {
  Tensor t(DataType::float32, shape);
  const int64_t inner = channels_second ? shape[2] * shape[3] : 1;
  const int64_t channels = channels_second ? shape[1] : shape.back();
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = mean[static_cast<size_t>((i / inner) % channels)] + 3.0f * std::sin(0.9f * static_cast<float>(i) + phase);
  return t;
}

// The outputs of serialized `bytes` on the reference backend.
std::vector<Tensor> run(const std::string& bytes, const std::map<std::string, Tensor>& inputs) {
  return testing_util::run_on_reference(bytes, inputs);
}

// What rounding weight i (one scale for all) moves it by: q * s - w, s = max|w| / 127.
float rounding_error(size_t i) {
  float largest = 0;
  for (float w : kWeights) largest = std::max(largest, std::fabs(w));
  const float s = largest / 127.0f;
  return static_cast<float>(std::nearbyint(kWeights[i] / s)) * s - kWeights[i];
}

const onnx::TensorProto* initializer(const onnx::GraphProto& g, const std::string& name) {
  return testing_util::find_initializer(g, name);
}

std::vector<float> floats(const onnx::TensorProto* t) {
  if (!t) return {};
  if (t->float_data_size() > 0) return {t->float_data().begin(), t->float_data().end()};
  std::vector<float> v(t->raw_data().size() / sizeof(float));
  std::memcpy(v.data(), t->raw_data().data(), v.size() * sizeof(float));
  return v;
}

TEST(QuantizerBiasCorrection, ProbesMeasureTheRoundingShiftOfEachChannel) {
  QuantizeOptions options;  // one scale per tensor
  auto plan = plan_quantization(conv_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  onnx::ModelProto probe_model = plan->prepared;
  auto probes = add_bias_probes(*plan, options, nullptr, &probe_model);
  ASSERT_TRUE(probes.is_ok()) << probes.status().to_string();
  ASSERT_EQ(probes->size(), 1u);
  EXPECT_EQ((*probes)[0].node, plan->nodes[0]);
  EXPECT_EQ((*probes)[0].channel_axis, 1);
  const std::vector<float> mean = {1.0f, 2.0f, -0.5f};
  const Tensor x = input({1, 3, 8, 8}, mean, 0.0f, true);
  const auto outputs = run(bytes_of(probe_model), {{"X", x}});
  ASSERT_EQ(outputs.size(), 2u);  // Y, then the probe
  const Tensor& probe = outputs[1];
  ASSERT_EQ(probe.shape(), (Shape{1, 2, 8, 8}));
  for (int64_t o = 0; o < 2; ++o) {
    double want = 0, got = 0;
    for (int64_t p = 0; p < 64; ++p) {
      for (int64_t i = 0; i < 3; ++i)
        want += static_cast<double>(rounding_error(static_cast<size_t>(o * 3 + i))) * x.data<float>()[i * 64 + p];
      got += probe.data<float>()[o * 64 + p];
    }
    EXPECT_NEAR(got / 64, want / 64, 1e-6) << "channel " << o;
    EXPECT_GT(std::fabs(want / 64), 1e-4);  // a shift worth correcting
  }
}

TEST(QuantizerBiasCorrection, CorrectedPlanLowersTheBiasesItWasGiven) {
  QuantizeOptions options;
  auto plan = plan_quantization(conv_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const int conv = plan->nodes[0];
  // A Conv without bias gets one holding the negated shifts.
  auto corrected = with_bias_correction(*plan, {{conv, {0.5f, -0.25f}}});
  ASSERT_TRUE(corrected.is_ok()) << corrected.status().to_string();
  EXPECT_EQ(corrected->report.bias_corrected_nodes, 1);
  const auto& n = corrected->prepared.graph().node(conv);
  ASSERT_EQ(n.input_size(), 3);
  EXPECT_EQ(floats(initializer(corrected->prepared.graph(), n.input(2))), (std::vector<float>{-0.5f, 0.25f}));
  // No shift for a node: nothing changes.
  auto untouched = with_bias_correction(*plan, {});
  ASSERT_TRUE(untouched.is_ok());
  EXPECT_EQ(untouched->report.bias_corrected_nodes, 0);
  EXPECT_EQ(untouched->prepared.graph().node(conv).input_size(), 2);
  // A shift of the wrong length is an internal error, not a silent partial correction.
  EXPECT_FALSE(with_bias_correction(*plan, {{conv, {0.5f}}}).is_ok());
}

TEST(QuantizerBiasCorrection, MatMulIsCorrectedThroughItsBiasAddOnly) {
  QuantizeOptions options;
  options.per_channel = true;
  auto plan = plan_quantization(matmul_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  ASSERT_EQ(plan->nodes.size(), 2u);
  onnx::ModelProto probe_model = plan->prepared;
  auto probes = add_bias_probes(*plan, options, nullptr, &probe_model);
  ASSERT_TRUE(probes.is_ok()) << probes.status().to_string();
  ASSERT_EQ(probes->size(), 1u);  // 'bare' feeds a Relu: no bias to hold a correction
  EXPECT_EQ(plan->prepared.graph().node((*probes)[0].node).name(), "linear");
  EXPECT_EQ((*probes)[0].channel_axis, -1);
  std::map<int, std::vector<float>> shifts;
  for (int index : plan->nodes) shifts[index] = {0.125f, 0.0625f};
  auto corrected = with_bias_correction(*plan, shifts);
  ASSERT_TRUE(corrected.is_ok()) << corrected.status().to_string();
  EXPECT_EQ(corrected->report.bias_corrected_nodes, 1);
  EXPECT_EQ(floats(initializer(corrected->prepared.graph(), "C")), (std::vector<float>{0.125f, -0.5625f}));
}

TEST(QuantizerBiasCorrection, SharedBiasIsCopiedNotChangedForTheOtherReader) {
  onnx::ModelProto m = conv_model();
  auto* g = m.mutable_graph();
  add_float_initializer(g, "shared", {2}, {1.0f, 2.0f});
  g->mutable_node(0)->add_input("shared");
  set_info(g->add_output(), "S", TensorProto::FLOAT, {2});
  add_node(g, "Identity", "other_reader", {"shared"}, {"S"});
  QuantizeOptions options;
  auto plan = plan_quantization(m, options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  auto corrected = with_bias_correction(*plan, {{plan->nodes[0], {0.5f, 0.5f}}});
  ASSERT_TRUE(corrected.is_ok()) << corrected.status().to_string();
  const auto& cg = corrected->prepared.graph();
  EXPECT_EQ(floats(initializer(cg, "shared")), (std::vector<float>{1.0f, 2.0f}));
  const std::string& own = cg.node(plan->nodes[0]).input(2);
  EXPECT_NE(own, "shared");
  EXPECT_EQ(floats(initializer(cg, own)), (std::vector<float>{0.5f, 1.5f}));
}

// The mean error of output channel `c` of `got` against `want` (NCHW).
double channel_mean_error(const Tensor& got, const Tensor& want, int64_t c) {
  const int64_t inner = got.shape()[2] * got.shape()[3];
  double sum = 0;
  for (int64_t p = 0; p < inner; ++p)
    sum += static_cast<double>(got.data<float>()[c * inner + p]) - want.data<float>()[c * inner + p];
  return sum / static_cast<double>(inner);
}

TEST(QuantizerBiasCorrection, QuantizedModelLosesItsMeanErrorInEveryFormat) {
  const std::vector<float> mean = {4.0f, 8.0f, -2.0f};
  const std::string float_bytes = bytes_of(conv_model());
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.backend = "reference";
    for (float phase : {0.0f, 1.0f, 2.0f}) options.calibration_inputs.push_back({{"X", input({1, 3, 8, 8}, mean, phase, true)}});
    auto plain_options = options;
    plain_options.bias_correction = BiasCorrection::off;
    auto corrected = quantize_model(float_bytes, options);
    auto plain = quantize_model(float_bytes, plain_options);
    ASSERT_TRUE(corrected.is_ok()) << corrected.status().to_string();
    ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
    EXPECT_EQ(corrected->report.bias_corrected_nodes, 1);
    EXPECT_EQ(plain->report.bias_corrected_nodes, 0);
    // An input the model was not calibrated on, with the same channel means.
    const Tensor x = input({1, 3, 8, 8}, mean, 5.0f, true);
    const Tensor want = run(float_bytes, {{"X", x}})[0];
    const double before = channel_mean_error(run(plain->model_bytes, {{"X", x}})[0], want, 1);
    const double after = channel_mean_error(run(corrected->model_bytes, {{"X", x}})[0], want, 1);
    EXPECT_GT(std::fabs(before), 2e-3);  // the small channel's rounding adds up, all one way
    EXPECT_LT(std::fabs(after), 0.2 * std::fabs(before)) << "before " << before << " after " << after;
  }
}

TEST(QuantizerBiasCorrection, DynamicWithoutCalibrationIsLeftAlone) {
  QuantizeOptions options;
  options.format = QuantizeFormat::dynamic;
  auto q = quantize_model(bytes_of(conv_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_EQ(q->report.bias_corrected_nodes, 0);
}

// --- activation equalization ---------------------------------------------------------------

// X[1,2,6,6] -> Conv P (W[3,2,3,3], B[3], pad 1) -> T -> depthwise Conv R (W[3,1,3,3], group 3,
// pad 1) -> Y. P's output channels span very different ranges: filter 0 is 40 times filter 2,
// and R's filters make up for it, so that Y's channels are alike and T's rounding is what
// decides Y's error.
// With `second_reader`, T also goes to a Relu (then it cannot be equalized).
onnx::ModelProto depthwise_model(bool second_reader = false, int64_t reader_group = 3) {
  onnx::ModelProto m = new_model("main", 13);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {1, 2, 6, 6});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 3, 6, 6});
  std::vector<float> wp(54);
  for (size_t i = 0; i < wp.size(); ++i)
    wp[i] = (i < 18 ? 1.0f : i < 36 ? 0.2f : 0.025f) * std::sin(1.3f * static_cast<float>(i));
  add_float_initializer(g, "WP", {3, 2, 3, 3}, wp);
  add_float_initializer(g, "BP", {3}, {0.5f, -0.1f, 0.02f});
  std::vector<float> wr(reader_group == 3 ? 27 : 81);
  const float make_up[3] = {1.0f, 5.0f, 40.0f};
  for (size_t i = 0; i < wr.size(); ++i)
    wr[i] = 0.3f * make_up[i / (wr.size() / 3)] * std::cos(0.7f * static_cast<float>(i));
  add_float_initializer(g, "WR", {3, reader_group == 3 ? 1 : 3, 3, 3}, wr);
  auto* p = add_node(g, "Conv", "P", {"X", "WP", "BP"}, {"T"});
  p->add_attribute()->CopyFrom(onnx::AttributeProto());
  p->mutable_attribute(0)->set_name("pads");
  p->mutable_attribute(0)->set_type(onnx::AttributeProto::INTS);
  for (int k = 0; k < 4; ++k) p->mutable_attribute(0)->add_ints(1);
  auto* r = add_node(g, "Conv", "R", {"T", "WR"}, {"Y"});
  r->add_attribute()->CopyFrom(p->attribute(0));
  auto* group = r->add_attribute();
  group->set_name("group");
  group->set_type(onnx::AttributeProto::INT);
  group->set_i(reader_group);
  if (second_reader) {
    set_info(g->add_output(), "Z", TensorProto::FLOAT, {1, 3, 6, 6});
    add_node(g, "Relu", "relu", {"T"}, {"Z"});
  }
  return m;
}

TEST(QuantizerEqualization, PairsAreAConvAndTheDepthwiseConvThatAloneReadsIt) {
  QuantizeOptions options;
  options.per_channel = true;
  auto plan = plan_quantization(depthwise_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const auto pairs = equalization_pairs(*plan, options);
  ASSERT_EQ(pairs.size(), 1u);
  EXPECT_EQ(pairs[0].value, "T");
  EXPECT_EQ(pairs[0].channels, 3);
  EXPECT_EQ(plan->prepared.graph().node(pairs[0].producer).name(), "P");
  EXPECT_EQ(plan->prepared.graph().node(pairs[0].reader).name(), "R");
  // Per-tensor weights would be distorted by the rescaling; a second reader of T or a reader
  // that mixes channels would see different values.
  QuantizeOptions per_tensor;
  EXPECT_TRUE(equalization_pairs(*plan, per_tensor).empty());
  auto shared = plan_quantization(depthwise_model(true), options);
  ASSERT_TRUE(shared.is_ok());
  EXPECT_TRUE(equalization_pairs(*shared, options).empty());
  auto dense = plan_quantization(depthwise_model(false, 1), options);
  ASSERT_TRUE(dense.is_ok());
  EXPECT_TRUE(equalization_pairs(*dense, options).empty());
  // A graph output, or a read inside a nested graph, sees T too.
  onnx::ModelProto output = depthwise_model();
  set_info(output.mutable_graph()->add_output(), "T", TensorProto::FLOAT, {1, 3, 6, 6});
  auto as_output = plan_quantization(output, options);
  ASSERT_TRUE(as_output.is_ok()) << as_output.status().to_string();
  EXPECT_TRUE(equalization_pairs(*as_output, options).empty());
  onnx::ModelProto nested = depthwise_model();
  auto* g = nested.mutable_graph();
  set_info(g->add_input(), "cond", TensorProto::BOOL, {});
  set_info(g->add_output(), "Z", TensorProto::FLOAT, {1, 3, 6, 6});
  auto* if_node = add_node(g, "If", "if", {"cond"}, {"Z"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* a = if_node->add_attribute();
    a->set_name(branch);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* body = a->mutable_g();
    body->set_name(branch);
    add_node(body, std::string(branch) == "then_branch" ? "Identity" : "Neg", std::string(branch) + "_op", {"T"},
             {std::string(branch) + "_out"});
    set_info(body->add_output(), std::string(branch) + "_out", TensorProto::FLOAT, {1, 3, 6, 6});
  }
  auto in_branch = plan_quantization(nested, options);
  ASSERT_TRUE(in_branch.is_ok()) << in_branch.status().to_string();
  EXPECT_TRUE(equalization_pairs(*in_branch, options).empty());
}

TEST(QuantizerEqualization, ChannelsScaleToTheTensorRangeAndTheModelStaysExact) {
  QuantizeOptions options;
  options.per_channel = true;
  auto plan = plan_quantization(depthwise_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  const auto pairs = equalization_pairs(*plan, options);
  // Channel 0 sets the range [-10, 20]; channel 1 can grow 10 times (its min reaches -10),
  // channel 2 (never negative) 40 times.
  const std::map<std::string, std::vector<ActivationRange>> ranges = {{"T", {{-10, 20}, {-1, 2}, {0, 0.5f}}}};
  auto equalized = with_equalized_channels(*plan, pairs, ranges);
  ASSERT_TRUE(equalized.is_ok()) << equalized.status().to_string();
  EXPECT_EQ(equalized->report.equalized_values, 1);
  const auto& g0 = plan->prepared.graph();
  const auto& g1 = equalized->prepared.graph();
  const std::vector<float> factor = {1, 10, 40};
  const auto wp0 = floats(initializer(g0, "WP")), wp1 = floats(initializer(g1, "WP"));
  const auto bp0 = floats(initializer(g0, "BP")), bp1 = floats(initializer(g1, "BP"));
  const auto wr0 = floats(initializer(g0, "WR")), wr1 = floats(initializer(g1, "WR"));
  ASSERT_EQ(wp1.size(), 54u);
  ASSERT_EQ(wr1.size(), 27u);
  for (size_t i = 0; i < 54; ++i) EXPECT_FLOAT_EQ(wp1[i], wp0[i] * factor[i / 18]) << i;
  for (size_t c = 0; c < 3; ++c) EXPECT_FLOAT_EQ(bp1[c], bp0[c] * factor[c]);
  for (size_t i = 0; i < 27; ++i) EXPECT_FLOAT_EQ(wr1[i], wr0[i] / factor[i / 9]) << i;
  const Tensor x = input({1, 2, 6, 6}, {0.5f, -0.5f}, 0.3f, true);
  const Tensor before = run(bytes_of(plan->prepared), {{"X", x}})[0];
  const Tensor after = run(bytes_of(equalized->prepared), {{"X", x}})[0];
  ASSERT_EQ(before.shape(), after.shape());
  for (int64_t i = 0; i < before.numel(); ++i)
    EXPECT_NEAR(after.data<float>()[i], before.data<float>()[i], 1e-4 * (1 + std::fabs(before.data<float>()[i])));
  // Ranges of the wrong length are an internal error.
  EXPECT_FALSE(with_equalized_channels(*plan, pairs, {{"T", {{-1, 1}}}}).is_ok());
}

TEST(QuantizerEqualization, QuantizedModelIsCloserToTheFloatOne) {
  const std::string float_bytes = bytes_of(depthwise_model());
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.per_channel = true;
    options.bias_correction = BiasCorrection::off;  // equalization alone
    options.backend = "reference";
    for (float phase : {0.0f, 1.0f, 2.0f, 3.0f})
      options.calibration_inputs.push_back({{"X", input({1, 2, 6, 6}, {0.5f, -0.5f}, phase, true)}});
    auto plain_options = options;
    plain_options.equalize = false;
    auto equalized = quantize_model(float_bytes, options);
    auto plain = quantize_model(float_bytes, plain_options);
    ASSERT_TRUE(equalized.is_ok()) << equalized.status().to_string();
    ASSERT_TRUE(plain.is_ok()) << plain.status().to_string();
    EXPECT_EQ(equalized->report.equalized_values, 1);
    EXPECT_EQ(plain->report.equalized_values, 0);
    const Tensor x = input({1, 2, 6, 6}, {0.5f, -0.5f}, 7.0f, true);
    const Tensor want = run(float_bytes, {{"X", x}})[0];
    auto rmse = [&](const std::string& bytes) {
      const Tensor got = run(bytes, {{"X", x}})[0];
      double sum = 0;
      for (int64_t i = 0; i < want.numel(); ++i) {
        const double d = static_cast<double>(got.data<float>()[i]) - want.data<float>()[i];
        sum += d * d;
      }
      return std::sqrt(sum / static_cast<double>(want.numel()));
    };
    const double before = rmse(plain->model_bytes), after = rmse(equalized->model_bytes);
    EXPECT_LT(after, 0.5 * before) << "before " << before << " after " << after;
  }
}

}  // namespace
}  // namespace tandem
