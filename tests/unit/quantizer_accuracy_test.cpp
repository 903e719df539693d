// quantizer_accuracy_test.cpp: QuantizeOptions::accuracy_target (tandem/quantize.h) and the
// plan surgery it rests on (without_nodes, onnx/quantizer.h). The model has two independent
// MatMul branches; the calibration input of one holds an outlier, so quantizing that branch's
// activation (one uint8 step of about 1000 / 255) wipes out its small values while the other
// branch stays within a step of its range of 1. The target must keep exactly the sensitive
// MatMul in float32, in every format, and say so in the report.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "onnx/quantizer.h"
#include "onnx_build_util.h"
#include "tandem/model.h"
#include "tandem/quantize.h"

namespace tandem {
namespace {

using onnx::TensorProto;
using testing_util::add_node;
using testing_util::set_info;

constexpr int64_t kRows = 500;

// The 4x4 identity as initializer "I".
void add_identity(onnx::GraphProto* g) {
  auto* t = g->add_initializer();
  t->set_name("I");
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(4);
  t->add_dims(4);
  for (int i = 0; i < 16; ++i) t->add_float_data(i % 5 == 0 ? 1.0f : 0.0f);
}

// X1[500,4] -> MatMul(I) "sensitive" -> Y1;  X2[500,4] -> MatMul(I) "benign" -> Y2.
onnx::ModelProto two_branch_model() {
  onnx::ModelProto m = testing_util::new_model("main", 13, 7);
  auto* g = m.mutable_graph();
  for (const char* x : {"X1", "X2"}) set_info(g->add_input(), x, TensorProto::FLOAT, {kRows, 4});
  for (const char* y : {"Y1", "Y2"}) set_info(g->add_output(), y, TensorProto::FLOAT, {kRows, 4});
  add_identity(g);
  add_node(g, "MatMul", "sensitive", {"X1", "I"}, {"Y1"});
  add_node(g, "MatMul", "benign", {"X2", "I"}, {"Y2"});
  return m;
}

std::string bytes_of(const onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// Values spread over [0, 1); with `outlier`, one element is 1000.
Tensor ramp(bool outlier) {
  Tensor t(DataType::float32, {kRows, 4});
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>((i * 37) % 101) / 101.0f;
  if (outlier) t.data<float>()[7] = 1000.0f;
  return t;
}

std::vector<std::map<std::string, Tensor>> calibration() { return {{{"X1", ramp(true)}, {"X2", ramp(false)}}}; }

const onnx::NodeProto* node_named(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& n : g.node())
    if (n.name() == name) return &n;
  return nullptr;
}

double worst_max_abs(const QuantizeReport& r) {
  double worst = 0;
  for (const auto& a : r.accuracy) worst = std::max(worst, a.max_abs);
  return worst;
}

TEST(QuantizerAccuracy, TargetKeepsTheSensitiveNodeFloatInEveryFormat) {
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.calibration_inputs = calibration();
    options.accuracy_target = 0.05;
    auto q = quantize_model(bytes_of(two_branch_model()), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    const QuantizeReport& r = q->report;
    // Fully quantized, the outlier's step (about 4) swallows the sensitive branch's values.
    EXPECT_GT(r.max_abs_all_quantized, 0.3);
    ASSERT_EQ(r.kept_for_accuracy.size(), 1u);
    EXPECT_NE(r.kept_for_accuracy[0].find("'sensitive'"), std::string::npos) << r.kept_for_accuracy[0];
    EXPECT_EQ(r.quantized_nodes.at("MatMul"), 1);
    ASSERT_EQ(r.skipped_nodes.size(), 1u);
    EXPECT_NE(r.skipped_nodes[0].find("accuracy target"), std::string::npos) << r.skipped_nodes[0];
    // What is left meets the target, and the benign branch is still quantized (not exact).
    EXPECT_LE(worst_max_abs(r), 0.05);
    ASSERT_EQ(r.accuracy.size(), 2u);
    EXPECT_EQ(r.accuracy[0].max_abs, 0) << "Y1 comes from the float MatMul";
    EXPECT_GT(r.accuracy[1].max_abs, 0) << "Y2 comes from the quantized one";
    onnx::ModelProto m;
    ASSERT_TRUE(m.ParseFromString(q->model_bytes));
    const onnx::NodeProto* sensitive = node_named(m.graph(), "sensitive");
    ASSERT_TRUE(sensitive);
    EXPECT_EQ(sensitive->op_type(), "MatMul");
    EXPECT_EQ(sensitive->input(0), "X1") << "the float node reads its input as it was, not dequantized";
    EXPECT_EQ(sensitive->input(1), "I");
    int quantized_ops = 0;
    for (const auto& n : m.graph().node()) {
      quantized_ops += n.op_type() == "QLinearMatMul" || n.op_type() == "MatMulInteger";
      if (n.op_type() == "QuantizeLinear" || n.op_type() == "DynamicQuantizeLinear") {
        EXPECT_NE(n.input(0), "X1") << "nothing quantizes the float node's input";
      }
    }
    EXPECT_EQ(quantized_ops, format == QuantizeFormat::qdq ? 0 : 1);
  }
}

TEST(QuantizerAccuracy, TargetAlreadyMetKeepsEverythingQuantized) {
  QuantizeOptions options;
  options.calibration_inputs = calibration();
  options.accuracy_target = 10.0;  // above the sensitive branch's error
  auto q = quantize_model(bytes_of(two_branch_model()), options);
  ASSERT_TRUE(q.is_ok()) << q.status().to_string();
  EXPECT_TRUE(q->report.kept_for_accuracy.empty());
  EXPECT_TRUE(q->report.skipped_nodes.empty());
  EXPECT_EQ(q->report.quantized_nodes.at("MatMul"), 2);
  EXPECT_GT(worst_max_abs(q->report), 0.3);
  EXPECT_EQ(q->report.max_abs_all_quantized, worst_max_abs(q->report));
}

TEST(QuantizerAccuracy, TargetNeedsCalibrationAndAFiniteBound) {
  QuantizeOptions options;
  options.format = QuantizeFormat::dynamic;  // needs no calibration, but the target does
  options.accuracy_target = 0.05;
  auto q = quantize_model(bytes_of(two_branch_model()), options);
  ASSERT_FALSE(q.is_ok());
  EXPECT_EQ(q.status().code(), StatusCode::invalid_argument);
  options.calibration_inputs = calibration();
  for (double bad : {-1.0, static_cast<double>(INFINITY), static_cast<double>(NAN)}) {
    options.accuracy_target = bad;
    auto r = quantize_model(bytes_of(two_branch_model()), options);
    ASSERT_FALSE(r.is_ok()) << bad;
    EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
  }
}

// without_nodes drops a node with its reason and the activations only it reads or writes.
TEST(QuantizerAccuracy, WithoutNodesDropsTheNodeAndItsOwnActivations) {
  QuantizeOptions options;
  auto plan = plan_quantization(two_branch_model(), options);
  ASSERT_TRUE(plan.is_ok()) << plan.status().to_string();
  ASSERT_EQ(plan->nodes.size(), 2u);
  EXPECT_EQ(plan->activations, (std::vector<std::string>{"X1", "Y1", "X2", "Y2"}));
  const QuantizationPlan rest = without_nodes(*plan, {{0, "because"}});
  ASSERT_EQ(rest.nodes.size(), 1u);
  EXPECT_EQ(rest.nodes[0], plan->nodes[1]);
  EXPECT_EQ(rest.node_ops, (std::vector<std::string>{"MatMul"}));
  EXPECT_EQ(rest.activations, (std::vector<std::string>{"X2", "Y2"}));
  EXPECT_EQ(rest.report.quantized_nodes.at("MatMul"), 1);
  ASSERT_EQ(rest.report.skipped_nodes.size(), 1u);
  EXPECT_NE(rest.report.skipped_nodes[0].find("'sensitive'"), std::string::npos);
  EXPECT_NE(rest.report.skipped_nodes[0].find("because"), std::string::npos);
  const QuantizationPlan none = without_nodes(*plan, {{0, ""}, {1, ""}});
  EXPECT_TRUE(none.nodes.empty());
  EXPECT_TRUE(none.activations.empty());
  EXPECT_TRUE(none.report.quantized_nodes.empty());
}

// X[500,4] -> MatMul(I) "mm" -> Y, and Y's values above 0.5 -> K (Compress: as many as there
// are). Many values lie within a quantization step of 0.5, so the quantized model keeps another
// number of them: K's shape depends on the values, as the boxes of a NonMaxSuppression do.
onnx::ModelProto value_dependent_model() {
  onnx::ModelProto m = testing_util::new_model("main", 13, 7);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "X", TensorProto::FLOAT, {kRows, 4});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {kRows, 4});
  set_info(g->add_output(), "K", TensorProto::FLOAT, {-1});
  add_identity(g);
  auto* half = g->add_initializer();
  half->set_name("half");
  half->set_data_type(TensorProto::FLOAT);
  half->add_float_data(0.5f);
  auto* flat = g->add_initializer();
  flat->set_name("flat");
  flat->set_data_type(TensorProto::INT64);
  flat->add_dims(1);
  flat->add_int64_data(-1);
  add_node(g, "MatMul", "mm", {"X", "I"}, {"Y"});
  add_node(g, "Reshape", "rs", {"Y", "flat"}, {"Yf"});
  add_node(g, "Greater", "gt", {"Yf", "half"}, {"above"});
  add_node(g, "Compress", "keep", {"Yf", "above"}, {"K"});
  return m;
}

TEST(QuantizerAccuracy, AnOutputWhoseShapeDependsOnTheValuesIsComparedOnlyWhereItMatches) {
  // Two calibration runs: one whose values are all far from 0.5 (the same count), one with
  // 100 values packed around 0.5 (another count after quantization).
  Tensor far(DataType::float32, {kRows, 4}), near(DataType::float32, {kRows, 4});
  for (int64_t i = 0; i < far.numel(); ++i) {
    far.data<float>()[i] = i % 2 ? 0.9f : 0.1f;
    near.data<float>()[i] = i < 100 ? 0.49f + 0.0002f * static_cast<float>(i) : static_cast<float>(i % 3) * 0.45f;
  }
  for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
    SCOPED_TRACE(static_cast<int>(format));
    QuantizeOptions options;
    options.format = format;
    options.calibration_inputs = {{{"X", far}}, {{"X", near}}};
    auto q = quantize_model(bytes_of(value_dependent_model()), options);
    ASSERT_TRUE(q.is_ok()) << q.status().to_string();
    const QuantizeReport& r = q->report;
    ASSERT_EQ(r.accuracy.size(), 2u);
    EXPECT_EQ(r.accuracy[0].name, "Y");
    EXPECT_EQ(r.accuracy[0].runs, 2);
    EXPECT_EQ(r.accuracy[0].shape_mismatches, 0);
    EXPECT_GT(r.accuracy[0].max_abs, 0);
    EXPECT_EQ(r.accuracy[1].name, "K");
    EXPECT_EQ(r.accuracy[1].runs, 1) << "the run far from 0.5 keeps the same values";
    EXPECT_EQ(r.accuracy[1].shape_mismatches, 1) << "the run near 0.5 keeps another number";
  }
}

}  // namespace
}  // namespace tandem
