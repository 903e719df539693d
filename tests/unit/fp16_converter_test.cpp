// fp16_converter_test.cpp: the float32 -> float16 model converter. Models are built in memory
// with the onnx protobuf API; converted models are checked structurally (dtypes, Casts, names,
// order) and run through tandem against the original. The PaddleOCR classifier is converted
// and must stay within 1e-2 of its float32 output on the golden input.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "core/compare.h"
#include "core/npy.h"
#include "engine/inputs.h"
#include "engine/placement.h"
#include "onnx/fp16_converter.h"
#include "onnx/loader.h"
#include "onnx_build_util.h"
#include "tensor_build_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using onnx::TensorProto;

// --- building models ----------------------------------------------------------------------

using testing_util::add_node;
using testing_util::set_info;
using testing::to_float;
using testing::to_half;

TensorProto float_tensor(const std::vector<int64_t>& dims, const std::vector<float>& values) {
  TensorProto t;
  t.set_data_type(TensorProto::FLOAT);
  for (int64_t d : dims) t.add_dims(d);
  for (float v : values) t.add_float_data(v);
  return t;
}

void add_initializer(onnx::GraphProto* g, const std::string& name, TensorProto t) {
  t.set_name(name);
  *g->add_initializer() = std::move(t);
}

void add_int_attr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

// An empty model of the given opset with one float input X of shape `dims`.
onnx::ModelProto empty_model(int64_t opset, const std::vector<int64_t>& dims) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(opset);
  auto* g = m.mutable_graph();
  g->set_name("main");
  set_info(g->add_input(), "X", TensorProto::FLOAT, dims);
  return m;
}

// --- inspecting converted models -------------------------------------------------------------

const onnx::NodeProto* producer_of(const onnx::GraphProto& g, const std::string& value) {
  for (const auto& n : g.node())
    for (const auto& o : n.output())
      if (o == value) return &n;
  return nullptr;
}

const onnx::NodeProto* node_named(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& n : g.node())
    if (n.name() == name) return &n;
  return nullptr;
}

const TensorProto* initializer_named(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

int64_t attr_int(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return -1;
}

// The half bits stored in a FLOAT16 tensor (raw_data or int32_data).
std::vector<uint16_t> half_bits(const TensorProto& t) {
  std::vector<uint16_t> bits;
  if (t.has_raw_data()) {
    bits.resize(t.raw_data().size() / 2);
    std::memcpy(bits.data(), t.raw_data().data(), bits.size() * 2);
  } else {
    for (int32_t v : t.int32_data()) bits.push_back(static_cast<uint16_t>(v));
  }
  return bits;
}

// The Cast node that feeds `value`, checking its target type; null if `value` is not a Cast's.
const onnx::NodeProto* cast_into(const onnx::GraphProto& g, const std::string& value, int to) {
  const onnx::NodeProto* n = producer_of(g, value);
  if (!n || n->op_type() != "Cast") return nullptr;
  EXPECT_EQ(attr_int(*n, "to"), to) << "Cast into " << value;
  return n;
}

// Every node reads only values defined before it, and every name is defined once.
void expect_valid_order_and_unique_names(const onnx::GraphProto& g) {
  std::set<std::string> defined, node_names;
  for (const auto& vi : g.input()) defined.insert(vi.name());
  for (const auto& t : g.initializer()) EXPECT_TRUE(defined.insert(t.name()).second) << t.name() << " twice";
  for (const auto& n : g.node()) {
    for (const auto& in : n.input()) EXPECT_TRUE(in.empty() || defined.count(in)) << in << " read before defined";
    for (const auto& out : n.output()) EXPECT_TRUE(defined.insert(out).second) << out << " defined twice";
    if (!n.name().empty()) {
      EXPECT_TRUE(node_names.insert(n.name()).second) << "node name " << n.name() << " twice";
    }
  }
  for (const auto& vi : g.output()) EXPECT_TRUE(defined.count(vi.name())) << "output " << vi.name() << " undefined";
}

Fp16Conversion convert(const onnx::ModelProto& m, Fp16ConvertOptions options = {}) {
  auto r = convert_model_to_fp16(m, options);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  expect_valid_order_and_unique_names(r->model.graph());
  return std::move(r).value();
}

// Runs a model through tandem (the build's preferred backend, reference fallback).
std::vector<Value> run(const onnx::ModelProto& m, const std::map<std::string, Tensor>& inputs) {
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  auto model = load_model_from_bytes(bytes, {}, "test");
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model.is_ok()) return {};
  std::map<std::string, Value> provided;
  for (const auto& [name, t] : inputs) provided[name] = Value::of(t);
  auto bound = bind_inputs(*model->graph, provided);
  EXPECT_TRUE(bound.is_ok()) << bound.status().to_string();
  if (!bound.is_ok()) return {};
  std::vector<Backend*> backends;
  for (auto name : available_backends()) backends.push_back(find_backend(name));
  auto placed = PlacedModel::create(model->graph, backends);
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  if (!placed.is_ok()) return {};
  std::vector<Value> outputs;
  Status s = (*placed)->run(*bound, &outputs);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return outputs;
}

// --- float -> half ------------------------------------------------------------------------------

TEST(Fp16Rounding, RoundsToNearestEven) {
  auto half = [](float f) { return float_to_half_clamped(f, nullptr); };
  EXPECT_EQ(half(1.0f), 0x3c00);
  EXPECT_EQ(half(-2.0f), 0xc000);
  EXPECT_EQ(half(0.1f), 0x2e66);                            // 0.0999755859375, the nearer neighbour
  EXPECT_EQ(half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);   // halfway: down to the even 0x3c00
  EXPECT_EQ(half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // halfway: up to the even 0x3c02
  EXPECT_EQ(half(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);  // just above halfway
  // Subnormals: steps of 2^-24.
  EXPECT_EQ(half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(half(std::ldexp(1.0f, -25)), 0x0000);      // halfway between 0 and the smallest: even 0
  EXPECT_EQ(half(3 * std::ldexp(1.0f, -25)), 0x0002);  // halfway between 1 and 2 units: even 2
  EXPECT_EQ(half(std::ldexp(1.0f, -25) * 1.001f), 0x0001);
  EXPECT_EQ(half(-std::ldexp(1023.0f, -24)), 0x83ff);          // the largest subnormal
  EXPECT_EQ(half(std::ldexp(1023.5f, -24)), 0x0400);           // rounds up into the smallest normal
  EXPECT_EQ(half(std::ldexp(1.0f, -30)), 0x0000);
  EXPECT_EQ(half(NAN) & 0x7c00, 0x7c00);
  EXPECT_NE(half(NAN) & 0x03ff, 0);
}

TEST(Fp16Rounding, ClampsFiniteValuesBeyondTheRange) {
  bool clamped = false;
  EXPECT_EQ(float_to_half_clamped(65504.0f, &clamped), 0x7bff);
  EXPECT_FALSE(clamped);
  EXPECT_EQ(float_to_half_clamped(65504.5f, &clamped), 0x7bff);
  EXPECT_TRUE(clamped);
  clamped = false;
  EXPECT_EQ(float_to_half_clamped(-3.0e38f, &clamped), 0xfbff);
  EXPECT_TRUE(clamped);
  clamped = false;
  EXPECT_EQ(float_to_half_clamped(INFINITY, &clamped), 0x7c00);  // infinity is meant, not clamped
  EXPECT_EQ(float_to_half_clamped(-INFINITY, &clamped), 0xfc00);
  EXPECT_FALSE(clamped);
}

// --- conversions ----------------------------------------------------------------------------------

// Y = (X + W) * C with W an initializer and C a Constant (value_floats).
onnx::ModelProto add_mul_model() {
  onnx::ModelProto m = empty_model(17, {3});
  auto* g = m.mutable_graph();
  add_initializer(g, "W", float_tensor({3}, {0.5f, -1.25f, 4.0f}));
  auto* c = add_node(g, "Constant", "c", {}, {"C"});
  auto* a = c->add_attribute();
  a->set_name("value_floats");
  a->set_type(onnx::AttributeProto::FLOATS);
  for (float f : {2.0f, 0.1f, 0.25f}) a->add_floats(f);
  add_node(g, "Add", "add", {"X", "W"}, {"S"});
  add_node(g, "Mul", "mul", {"S", "C"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {3});
  set_info(g->add_value_info(), "S", TensorProto::FLOAT, {3});
  return m;
}

TEST(Fp16Converter, ConvertsInitializersConstantsAndDeclaredTypes) {
  const onnx::ModelProto original = add_mul_model();
  Fp16Conversion c = convert(original);
  const onnx::GraphProto& g = c.model.graph();
  EXPECT_EQ(g.input(0).type().tensor_type().elem_type(), TensorProto::FLOAT16);
  EXPECT_EQ(g.output(0).type().tensor_type().elem_type(), TensorProto::FLOAT16);
  EXPECT_EQ(g.value_info(0).type().tensor_type().elem_type(), TensorProto::FLOAT16);
  const TensorProto* w = initializer_named(g, "W");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(half_bits(*w), (std::vector<uint16_t>{0x3800, 0xbd00, 0x4400}));
  const onnx::NodeProto* constant = producer_of(g, "C");
  ASSERT_NE(constant, nullptr);
  ASSERT_EQ(constant->attribute_size(), 1);
  EXPECT_EQ(constant->attribute(0).name(), "value");
  EXPECT_EQ(constant->attribute(0).t().data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(half_bits(constant->attribute(0).t()), (std::vector<uint16_t>{0x4000, 0x2e66, 0x3400}));
  EXPECT_EQ(c.report.clamped_values, 0);
  EXPECT_EQ(c.report.converted_tensors, 2);
  EXPECT_EQ(c.report.inserted_casts, 0);
  EXPECT_TRUE(c.report.blocked_nodes.empty());
  EXPECT_EQ(c.model.ir_version(), original.ir_version());
  ASSERT_EQ(c.model.opset_import_size(), 1);
  EXPECT_EQ(c.model.opset_import(0).version(), 17);

  const Tensor x = Tensor::from_vector<float>({3}, {1.0f, 2.0f, 3.0f});
  auto expected = run(original, {{"X", x}});
  auto actual = run(c.model, {{"X", to_half(x)}});
  ASSERT_EQ(actual.size(), 1u);
  ASSERT_EQ(actual[0].tensor.dtype(), DataType::float16);
  const Tensor y = to_float(actual[0].tensor);
  EXPECT_FLOAT_EQ(y.data<float>()[0], 3.0f);
  EXPECT_NEAR(y.data<float>()[1], expected[0].tensor.data<float>()[1], 1e-3);
  EXPECT_FLOAT_EQ(y.data<float>()[2], 1.75f);
}

// X -> Relu -> ReduceSum (blocked) -> Neg -> Y
onnx::ModelProto reduce_model() {
  onnx::ModelProto m = empty_model(13, {2, 3});
  auto* g = m.mutable_graph();
  TensorProto axes;
  axes.set_data_type(TensorProto::INT64);
  axes.add_dims(1);
  axes.add_int64_data(1);
  add_initializer(g, "axes", axes);
  add_node(g, "Relu", "relu", {"X"}, {"R"});
  add_node(g, "ReduceSum", "sum", {"R", "axes"}, {"S"});
  add_node(g, "Neg", "neg", {"S"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {2, 1});
  return m;
}

TEST(Fp16Converter, CastsAroundBlockedOps) {
  Fp16Conversion c = convert(reduce_model());
  const onnx::GraphProto& g = c.model.graph();
  const onnx::NodeProto* sum = node_named(g, "sum");
  ASSERT_NE(sum, nullptr);
  const onnx::NodeProto* before = cast_into(g, sum->input(0), TensorProto::FLOAT);
  ASSERT_NE(before, nullptr) << "ReduceSum reads " << sum->input(0);
  EXPECT_EQ(before->input(0), "R");
  EXPECT_EQ(sum->input(1), "axes");
  EXPECT_EQ(initializer_named(g, "axes")->data_type(), TensorProto::INT64);
  const onnx::NodeProto* neg = node_named(g, "neg");
  const onnx::NodeProto* after = cast_into(g, neg->input(0), TensorProto::FLOAT16);
  ASSERT_NE(after, nullptr) << "Neg reads " << neg->input(0);
  EXPECT_EQ(after->input(0), sum->output(0));
  EXPECT_EQ(c.report.inserted_casts, 2);
  ASSERT_EQ(c.report.blocked_nodes.size(), 1u);
  EXPECT_EQ(c.report.blocked_nodes[0].rfind("[ReduceSum 'sum'] ", 0), 0u) << c.report.blocked_nodes[0];

  const Tensor x = Tensor::from_vector<float>({2, 3}, {1, -2, 3, 4, 5, -6});
  auto y = run(c.model, {{"X", to_half(x)}});
  ASSERT_EQ(y.size(), 1u);
  const Tensor yf = to_float(y[0].tensor);
  EXPECT_EQ(yf.data<float>()[0], -4.0f);
  EXPECT_EQ(yf.data<float>()[1], -9.0f);
}

TEST(Fp16Converter, BlockedNeighboursShareFloat32WithoutCasts) {
  Fp16ConvertOptions options;
  options.extra_blocked_ops = {"Relu"};
  Fp16Conversion c = convert(reduce_model(), options);
  const onnx::GraphProto& g = c.model.graph();
  EXPECT_EQ(node_named(g, "sum")->input(0), "R");  // Relu and ReduceSum both float32: no Cast between
  const onnx::NodeProto* relu = node_named(g, "relu");
  ASSERT_NE(cast_into(g, relu->input(0), TensorProto::FLOAT), nullptr);
  EXPECT_EQ(c.report.inserted_casts, 2);  // X to float32, the sum back to float16
  EXPECT_EQ(c.report.blocked_nodes.size(), 2u);
}

TEST(Fp16Converter, KeepIoTypesCastsAtTheBoundary) {
  Fp16ConvertOptions options;
  options.keep_io_types = true;
  const onnx::ModelProto original = add_mul_model();
  Fp16Conversion c = convert(original, options);
  const onnx::GraphProto& g = c.model.graph();
  EXPECT_EQ(g.input(0).type().tensor_type().elem_type(), TensorProto::FLOAT);
  EXPECT_EQ(g.output(0).type().tensor_type().elem_type(), TensorProto::FLOAT);
  EXPECT_EQ(g.output(0).name(), "Y");
  const onnx::NodeProto* add = node_named(g, "add");
  const onnx::NodeProto* in_cast = cast_into(g, add->input(0), TensorProto::FLOAT16);
  ASSERT_NE(in_cast, nullptr);
  EXPECT_EQ(in_cast->input(0), "X");
  const onnx::NodeProto* out_cast = cast_into(g, "Y", TensorProto::FLOAT);
  ASSERT_NE(out_cast, nullptr);
  EXPECT_EQ(producer_of(g, out_cast->input(0)), node_named(g, "mul"));
  EXPECT_EQ(initializer_named(g, "W")->data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(c.report.inserted_casts, 2);

  const Tensor x = Tensor::from_vector<float>({3}, {1.0f, 2.0f, 3.0f});
  auto expected = run(original, {{"X", x}});
  auto actual = run(c.model, {{"X", x}});
  ASSERT_EQ(actual.size(), 1u);
  ASSERT_EQ(actual[0].tensor.dtype(), DataType::float32);
  EXPECT_NEAR(actual[0].tensor.data<float>()[0], expected[0].tensor.data<float>()[0], 1e-3);
  EXPECT_NEAR(actual[0].tensor.data<float>()[1], expected[0].tensor.data<float>()[1], 1e-3);
}

// Clip's bounds beyond the range are clamped (and counted); they clip float16 values the same.
TEST(Fp16Converter, ClampsAndCountsOutOfRangeClipBounds) {
  onnx::ModelProto m = empty_model(13, {3});
  auto* g = m.mutable_graph();
  add_initializer(g, "lo", float_tensor({}, {-1e5f}));
  add_initializer(g, "hi", float_tensor({}, {3.0e38f}));
  add_initializer(g, "W", float_tensor({5}, {70000.0f, -65504.0f, 65519.0f, INFINITY, 3.0f}));
  add_node(g, "Clip", "clip", {"X", "lo", "hi"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {3});
  set_info(g->add_output(), "W", TensorProto::FLOAT, {5});  // a constant only a graph output reads
  Fp16Conversion c = convert(m);
  const onnx::GraphProto& cg = c.model.graph();
  EXPECT_TRUE(c.report.blocked_nodes.empty()) << c.report.blocked_nodes[0];
  EXPECT_EQ(half_bits(*initializer_named(cg, "lo")), (std::vector<uint16_t>{0xfbff}));
  EXPECT_EQ(half_bits(*initializer_named(cg, "hi")), (std::vector<uint16_t>{0x7bff}));
  EXPECT_EQ(half_bits(*initializer_named(cg, "W")), (std::vector<uint16_t>{0x7bff, 0xfbff, 0x7bff, 0x7c00, 0x4200}));
  EXPECT_EQ(c.report.clamped_values, 4);  // -1e5, 3e38, 70000, 65519; not -65504 nor infinity
  auto y = run(c.model, {{"X", to_half(Tensor::from_vector<float>({3}, {-60000.0f, 1.0f, 60000.0f}))}});
  ASSERT_EQ(y.size(), 2u);
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[0]), -60000.0f);
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[2]), 60000.0f);
}

// Anything but a Clip bound: the reader keeps float32 and the constant its exact values.
TEST(Fp16Converter, ReadersOfOutOfRangeConstantsKeepFloat32) {
  onnx::ModelProto m = empty_model(17, {2});
  auto* g = m.mutable_graph();
  add_initializer(g, "var", float_tensor({2}, {4.8e7f, 1.0f}));
  add_node(g, "Div", "div", {"X", "var"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {2});
  Fp16Conversion c = convert(m);
  const onnx::GraphProto& cg = c.model.graph();
  const TensorProto* var = initializer_named(cg, "var");
  EXPECT_EQ(var->data_type(), TensorProto::FLOAT);
  EXPECT_EQ(var->float_data(0), 4.8e7f);
  EXPECT_EQ(c.report.clamped_values, 0);
  ASSERT_EQ(c.report.blocked_nodes.size(), 1u);
  EXPECT_NE(c.report.blocked_nodes[0].find("[Div 'div'] reads 'var'"), std::string::npos) << c.report.blocked_nodes[0];
  auto y = run(c.model, {{"X", to_half(Tensor::from_vector<float>({2}, {4.8e4f, 3.0f}))}});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_NEAR(static_cast<float>(y[0].tensor.data<Float16>()[0]), 1e-3f, 1e-6f);
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[1]), 3.0f);
}

// An initializer read by a converted and a blocked node: one copy per precision, each exact.
TEST(Fp16Converter, SharedInitializerKeepsOneCopyPerPrecision) {
  onnx::ModelProto m = empty_model(17, {2});
  auto* g = m.mutable_graph();
  add_initializer(g, "W", float_tensor({2}, {0.1f, 3.0f}));
  TensorProto taken;  // occupies the name the float32 copy would get first
  taken.set_data_type(TensorProto::INT64);
  taken.add_dims(1);
  taken.add_int64_data(7);
  add_initializer(g, "fp16_W_fp32", taken);
  add_node(g, "Add", "add", {"X", "W"}, {"A"});
  add_node(g, "Sub", "sub", {"X", "W"}, {"B"});
  set_info(g->add_output(), "A", TensorProto::FLOAT, {2});
  set_info(g->add_output(), "B", TensorProto::FLOAT, {2});
  Fp16ConvertOptions options;
  options.extra_blocked_ops = {"Sub"};
  Fp16Conversion c = convert(m, options);
  const onnx::GraphProto& cg = c.model.graph();
  EXPECT_EQ(node_named(cg, "add")->input(1), "W");
  EXPECT_EQ(initializer_named(cg, "W")->data_type(), TensorProto::FLOAT16);
  const onnx::NodeProto* sub = node_named(cg, "sub");
  const TensorProto* copy = initializer_named(cg, sub->input(1));
  ASSERT_NE(copy, nullptr) << sub->input(1);
  EXPECT_NE(copy->name(), "fp16_W_fp32");
  EXPECT_EQ(copy->data_type(), TensorProto::FLOAT);
  ASSERT_EQ(copy->float_data_size(), 2);
  EXPECT_EQ(copy->float_data(0), 0.1f);  // the original value, not a rounded one
  EXPECT_EQ(initializer_named(cg, "fp16_W_fp32")->data_type(), TensorProto::INT64);
  EXPECT_EQ(c.report.constant_copies, 1);
  // B (a blocked node's float32 result) reaches its float16 graph output through a Cast.
  const onnx::NodeProto* out_cast = cast_into(cg, "B", TensorProto::FLOAT16);
  ASSERT_NE(out_cast, nullptr);
  EXPECT_EQ(out_cast->input(0), sub->output(0));
}

// Resize's scales stay float32 (tensor(float) in the spec) while X goes float16.
TEST(Fp16Converter, ResizeScalesStayFloat32) {
  onnx::ModelProto m = empty_model(13, {1, 1, 2, 2});
  auto* g = m.mutable_graph();
  auto* c = add_node(g, "Constant", "scales", {}, {"scales"});
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = float_tensor({4}, {1, 1, 2, 2});
  add_node(g, "Resize", "resize", {"X", "", "scales"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {1, 1, 4, 4});
  Fp16Conversion conv = convert(m);
  const onnx::GraphProto& cg = conv.model.graph();
  const onnx::NodeProto* resize = node_named(cg, "resize");
  EXPECT_EQ(resize->input(0), "X");
  EXPECT_EQ(resize->input(2), "scales");
  EXPECT_EQ(producer_of(cg, "scales")->attribute(0).t().data_type(), TensorProto::FLOAT);
  EXPECT_EQ(conv.report.inserted_casts, 0);
  EXPECT_EQ(cg.output(0).type().tensor_type().elem_type(), TensorProto::FLOAT16);
  auto y = run(conv.model, {{"X", to_half(Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4}))}});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(y[0].tensor.shape(), (Shape{1, 1, 4, 4}));
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[15]), 4.0f);
}

// Cast to FLOAT and ConstantOfShape's (default) value follow the conversion; shape arithmetic
// in float stays float32.
TEST(Fp16Converter, RewritesResultTypesAndKeepsShapeArithmetic) {
  onnx::ModelProto m = empty_model(17, {3, 2});
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "N", TensorProto::INT64, {2});
  add_node(g, "ConstantOfShape", "fill", {"N"}, {"F"});
  add_node(g, "Add", "add", {"X", "F"}, {"A"});
  add_int_attr(add_node(g, "Cast", "n_to_float", {"N"}, {"NF"}), "to", TensorProto::FLOAT);
  add_node(g, "Shape", "shape", {"X"}, {"S"});
  add_int_attr(add_node(g, "Cast", "shape_to_float", {"S"}, {"SF"}), "to", TensorProto::FLOAT);
  add_node(g, "Add", "shape_add", {"SF", "NF"}, {"D"});
  add_node(g, "Add", "y", {"A", "D"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {3, 2});
  Fp16Conversion c = convert(m);
  const onnx::GraphProto& cg = c.model.graph();
  const onnx::NodeProto* fill = node_named(cg, "fill");
  ASSERT_EQ(fill->attribute_size(), 1);
  EXPECT_EQ(fill->attribute(0).t().data_type(), TensorProto::FLOAT16);
  EXPECT_EQ(attr_int(*node_named(cg, "n_to_float"), "to"), TensorProto::FLOAT16);
  EXPECT_EQ(attr_int(*node_named(cg, "shape_to_float"), "to"), TensorProto::FLOAT);  // from Shape: static
  auto y = run(c.model, {{"X", to_half(Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6}))},
                         {"N", Tensor::from_vector<int64_t>({2}, {3, 2})}});
  ASSERT_EQ(y.size(), 1u);
  ASSERT_EQ(y[0].tensor.dtype(), DataType::float16);
  // Y = X + 0 + (shape [3,2] + N [3,2]) = X + [6, 4]
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[0]), 7.0f);
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[5]), 10.0f);
}

// An If node keeps float32 as a whole; its branches read the float32 copy of outer values.
TEST(Fp16Converter, SubgraphHoldersAreBlockedAndTheirOuterReadsCast) {
  onnx::ModelProto m = empty_model(17, {2});
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "cond", TensorProto::BOOL, {});
  add_node(g, "Relu", "relu", {"X"}, {"R"});
  auto* if_node = add_node(g, "If", "if", {"cond"}, {"Z"});
  for (const char* branch : {"then_branch", "else_branch"}) {
    auto* a = if_node->add_attribute();
    a->set_name(branch);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* body = a->mutable_g();
    body->set_name(branch);
    add_node(body, std::string(branch) == "then_branch" ? "Identity" : "Neg", std::string(branch) + "_op", {"R"},
             {std::string(branch) + "_out"});
    set_info(body->add_output(), std::string(branch) + "_out", TensorProto::FLOAT, {2});
  }
  add_node(g, "Abs", "abs", {"Z"}, {"Y"});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {2});
  Fp16Conversion c = convert(m);
  const onnx::GraphProto& cg = c.model.graph();
  const onnx::NodeProto* if_conv = node_named(cg, "if");
  const std::string read = if_conv->attribute(0).g().node(0).input(0);
  const onnx::NodeProto* cast = cast_into(cg, read, TensorProto::FLOAT);
  ASSERT_NE(cast, nullptr) << "the branch reads " << read;
  EXPECT_EQ(cast->input(0), "R");
  EXPECT_EQ(if_conv->attribute(1).g().node(0).input(0), read);
  EXPECT_EQ(if_conv->attribute(0).g().output(0).type().tensor_type().elem_type(), TensorProto::FLOAT);
  ASSERT_NE(cast_into(cg, node_named(cg, "abs")->input(0), TensorProto::FLOAT16), nullptr);
  auto y = run(c.model, {{"X", to_half(Tensor::from_vector<float>({2}, {-1.5f, 2.0f}))},
                         {"cond", Tensor::scalar<bool>(false)}});
  ASSERT_EQ(y.size(), 1u);
  EXPECT_EQ(static_cast<float>(y[0].tensor.data<Float16>()[1]), 2.0f);
}

TEST(Fp16Converter, ErrorsAreOneLine) {
  onnx::ModelProto m = add_mul_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(TensorProto::EXTERNAL);
  auto* entry = w->add_external_data();
  entry->set_key("location");
  entry->set_value("weights.bin");
  auto r = convert_model_to_fp16(m, {});
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::unsupported);
  EXPECT_NE(r.status().message().find("initializer 'W'"), std::string::npos) << r.status().message();
  EXPECT_EQ(r.status().message().find('\n'), std::string::npos);

  auto no_graph = convert_model_to_fp16(onnx::ModelProto(), {});
  ASSERT_FALSE(no_graph.is_ok());
  EXPECT_EQ(no_graph.status().code(), StatusCode::invalid_model);
}

// The PaddleOCR direction classifier: converted, it loads and runs in tandem and its output
// stays within 1e-2 of the float32 model's on the golden input.
TEST(Fp16Converter, PaddleOcrClassifierStaysClose) {
  const fs::path model_path = fs::path(TANDEM_SOURCE_DIR) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx";
  ASSERT_TRUE(fs::exists(model_path)) << model_path.string() << " is missing: run scripts/setup";
  std::ifstream in(model_path, std::ios::binary);
  std::stringstream bytes;
  bytes << in.rdbuf();
  onnx::ModelProto original;
  ASSERT_TRUE(original.ParseFromString(bytes.str()));
  auto x = read_npy(fs::path(TANDEM_SOURCE_DIR) / "tests" / "golden" / "cls" / "input_x.npy");
  ASSERT_TRUE(x.is_ok()) << x.status().to_string();

  for (bool keep_io : {false, true}) {
    SCOPED_TRACE(keep_io ? "keep io types" : "float16 io");
    Fp16ConvertOptions options;
    options.keep_io_types = keep_io;
    Fp16Conversion c = convert(original, options);
    EXPECT_GT(c.report.converted_tensors, 50);
    EXPECT_LT(c.model.ByteSizeLong(), original.ByteSizeLong() * 6 / 10);
    auto expected = run(original, {{"x", *x}});
    auto actual = run(c.model, {{"x", keep_io ? *x : to_half(*x)}});
    ASSERT_EQ(expected.size(), 1u);
    ASSERT_EQ(actual.size(), 1u);
    EXPECT_EQ(actual[0].tensor.dtype(), keep_io ? DataType::float32 : DataType::float16);
    const Tensor a = to_float(actual[0].tensor);
    ASSERT_EQ(a.shape(), expected[0].tensor.shape());
    const ErrorStats e = error_stats(expected[0].tensor, a);
    EXPECT_LE(e.max_abs, 1e-2) << "rmse " << e.rmse;
  }
}

}  // namespace
}  // namespace tandem
