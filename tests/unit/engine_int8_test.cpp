// The int8 route: precision=int8 on a float32 model makes the engine compile a dynamically
// quantized rewrite (per-channel int8 weights, activations per call) on the cpu backend, with
// the cpu float32 route and the reference behind it; parity holds it to the int8 budget and
// telemetry labels every route with its precision. Also OnnxModel::compile at int8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <set>

#include <nlohmann/json.hpp>

#include "backends/backend.h"
#include "engine/routes.h"
#include "engine_test_util.h"
#include "onnx_build_util.h"
#include "tandem/engine.h"
#include "tandem/model.h"

namespace tandem {
namespace {

using testing_util::add_node;
using testing_util::make_engine;
using testing_util::prepare_model;
using testing_util::route_telemetry;
using testing_util::set_info;
using testing_util::tiny_inputs;

// A deterministic value in [-scale, scale).
float wave(int i, float scale) { return scale * std::sin(0.37f * static_cast<float>(i) + 0.11f); }

void add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<int64_t>& dims, float scale,
                           int seed) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : dims) {
    t->add_dims(d);
    n *= d;
  }
  for (int64_t i = 0; i < n; ++i) t->add_float_data(wave(static_cast<int>(i) * 7 + seed, scale));
}

// x float[1,3,8,8] -> Conv(4x3x3x3, bias, pad 1) -> Relu -> Flatten -> MatMul(256x10) -> Add -> y float[1,10].
std::string conv_matmul_model_bytes() {
  onnx::ModelProto m = testing_util::new_model("conv_matmul", 17);
  auto* g = m.mutable_graph();
  set_info(g->add_input(), "x", onnx::TensorProto::FLOAT, {1, 3, 8, 8});
  set_info(g->add_output(), "y", onnx::TensorProto::FLOAT, {1, 10});
  add_float_initializer(g, "conv_w", {4, 3, 3, 3}, 0.3f, 1);
  add_float_initializer(g, "conv_b", {4}, 0.1f, 2);
  add_float_initializer(g, "mm_w", {256, 10}, 0.1f, 3);
  add_float_initializer(g, "mm_b", {10}, 0.1f, 4);
  auto* conv = add_node(g, "Conv", "conv", {"x", "conv_w", "conv_b"}, {"c"});
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int k = 0; k < 4; ++k) pads->add_ints(1);
  add_node(g, "Relu", "relu", {"c"}, {"r"});
  add_node(g, "Flatten", "flatten", {"r"}, {"f"});
  add_node(g, "MatMul", "matmul", {"f", "mm_w"}, {"mm"});
  add_node(g, "Add", "bias", {"mm", "mm_b"}, {"y"});
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

std::map<std::string, Value> conv_inputs(int seed = 0) {
  std::vector<float> x(3 * 8 * 8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.5f + wave(static_cast<int>(i) + seed * 101, 0.5f);
  return {{"x", Value::of(Tensor::from_vector<float>({1, 3, 8, 8}, x))}};
}

// The float32 answer of the reference backend alone.
std::vector<float> reference_answer(const std::map<std::string, Value>& inputs) {
  auto engine = make_engine({"reference"});
  PrepareOptions o;
  o.routes = {"reference"};
  auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
  if (!m) return {};
  auto r = m->infer(inputs);
  EXPECT_TRUE(r.is_ok()) << r.status().to_string();
  if (!r.is_ok()) return {};
  const Tensor& y = r->outputs.at("y").tensor;
  return std::vector<float>(y.data<float>(), y.data<float>() + y.numel());
}

double max_abs_diff(const Tensor& a, const std::vector<float>& b) {
  double d = 0;
  for (int64_t i = 0; i < a.numel(); ++i) d = std::max(d, std::fabs(double(a.data<float>()[i]) - double(b[size_t(i)])));
  return d;
}

bool has_cpu() { return find_backend("cpu") != nullptr; }

TEST(EngineInt8, PrecisionNamesBudgetAndWhoHonoursIt) {
  auto p = parse_precision("int8");
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(*p, Precision::int8);
  EXPECT_EQ(precision_name(Precision::int8), "int8");
  EXPECT_NE(parse_precision("int4").status().message().find("int8"), std::string::npos);  // listed in the error
  const ParityBudget b = default_parity_budget(Precision::int8);
  EXPECT_DOUBLE_EQ(b.max_abs, 5e-2);
  EXPECT_DOUBLE_EQ(b.rmse, 1e-2);
  EXPECT_EQ(parse_route("cpu@int8")->name(), "cpu@int8");
  // The reference backend stays the float32 ground truth.
  Status ref = reference_backend()->supports_precision(Precision::int8);
  EXPECT_EQ(ref.code(), StatusCode::unsupported);
  EXPECT_NE(ref.message().find("ground truth"), std::string::npos) << ref.message();
  if (!has_cpu()) return;
  EXPECT_TRUE(find_backend("cpu")->supports_precision(Precision::int8).is_ok());
  std::vector<std::string> notes;
  auto chain = default_chain({find_backend("cpu")}, Precision::int8, &notes);
  ASSERT_EQ(chain.size(), 3u);
  EXPECT_EQ(chain[0].name(), "cpu@int8");
  EXPECT_EQ(chain[1].name(), "cpu");
  EXPECT_EQ(chain[2].name(), "reference");
  EXPECT_TRUE(notes.empty());
}

TEST(EngineInt8, PrepareQuantizesAndAnswersWithinTheBudget) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  o.precision = Precision::int8;
  o.input_shapes = {{"x", {1, 3, 8, 8}}};
  auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
  ASSERT_TRUE(m);
  EXPECT_EQ(m->capabilities().routes, (std::vector<std::string>{"cpu@int8", "cpu", "reference"}));
  EXPECT_EQ(m->capabilities().precision, "int8");

  // The int8 route compiles the rewritten graph: the integer products run on the cpu backend.
  const PlacementInfo& placement = m->placement();
  ASSERT_EQ(placement.routes.size(), 3u);
  EXPECT_EQ(placement.routes[0].backend, "cpu@int8");
  std::map<std::string, std::string> where;
  for (const auto& n : placement.routes[0].nodes) where[n.op_type] = n.backend;
  EXPECT_EQ(where["ConvInteger"], "cpu") << placement.to_string();
  EXPECT_EQ(where["MatMulInteger"], "cpu") << placement.to_string();
  EXPECT_EQ(where["DynamicQuantizeLinear"], "cpu") << placement.to_string();
  EXPECT_EQ(where.count("Conv"), 0u);
  // The float32 routes keep the original graph.
  std::set<std::string> fp32_ops;
  for (const auto& n : placement.routes[1].nodes) fp32_ops.insert(n.op_type);
  EXPECT_TRUE(fp32_ops.count("Conv") && fp32_ops.count("MatMul") && !fp32_ops.count("ConvInteger"));
  const std::string report = placement.to_string();
  EXPECT_NE(report.find("route chain: cpu@int8 -> cpu -> reference"), std::string::npos) << report;
  EXPECT_NE(report.find("int8: 2 nodes quantized (Conv 1, MatMul 1)"), std::string::npos) << report;
  EXPECT_NE(m->cache_key_text().find("precision=int8"), std::string::npos);

  for (int k = 0; k < 3; ++k) {
    const auto inputs = conv_inputs(k);
    const std::vector<float> expected = reference_answer(inputs);
    ASSERT_EQ(expected.size(), 10u);
    auto r = m->infer(inputs);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "cpu@int8");
    const Tensor& y = r->outputs.at("y").tensor;
    ASSERT_EQ(y.shape(), (Shape{1, 10}));
    const double err = max_abs_diff(y, expected);
    EXPECT_LE(err, 5e-2) << "input set " << k;
    EXPECT_GT(err, 0.0) << "the int8 route gave the float32 answer bit for bit: nothing was quantized";
  }
}

TEST(EngineInt8, ParitySamplesHoldTheRouteToTheInt8Budget) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  // A clean int8 route: every sample is compared, none violates the int8 budget, and the
  // measured error is the quantization error (above the float32 budget of 1e-3 is allowed).
  {
    PrepareOptions o;
    o.precision = Precision::int8;
    o.parity_sample_rate = 1.0;
    auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
    ASSERT_TRUE(m);
    for (int k = 0; k < 6; ++k) {
      auto r = m->infer(conv_inputs(k));
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      EXPECT_EQ(r->backend, "cpu@int8");
    }
    ASSERT_TRUE(m->drain_parity(10000));
    const ModelTelemetry telemetry = m->telemetry();
    const BackendTelemetry& t = route_telemetry(telemetry, "cpu@int8");
    EXPECT_EQ(t.parity.samples, 6u);
    EXPECT_EQ(t.parity.violations, 0u);
    EXPECT_GT(t.parity.max_abs, 0.0);
    EXPECT_LE(t.parity.max_abs, 5e-2);
  }
  // The same route with its outputs pushed 0.2 off: parity flags every sample, the third trips
  // the breaker, and the cpu float32 route serves from then on (not the reference). A manual
  // clock keeps the breaker open however slow the machine is.
  set_engine_clock(*engine, std::make_shared<testing_util::ManualClock>());
  PrepareOptions o;
  o.precision = Precision::int8;
  o.parity_sample_rate = 1.0;
  o.breaker.min_requests = 1000;  // only parity can trip it
  o.fault_injection = "route=cpu@int8,offset=0.2";
  auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
  ASSERT_TRUE(m);
  ASSERT_EQ(m->capabilities().routes, (std::vector<std::string>{"faulty(cpu@int8)", "cpu", "reference"}));
  std::vector<std::string> served;
  for (int k = 0; k < 6; ++k) {
    auto r = m->infer(conv_inputs(k));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    served.push_back(r->backend);
    ASSERT_TRUE(m->drain_parity(10000));  // each sample is judged before the next request
  }
  EXPECT_EQ(served, (std::vector<std::string>{"faulty(cpu@int8)", "faulty(cpu@int8)", "faulty(cpu@int8)", "cpu", "cpu",
                                              "cpu"}));
  const ModelTelemetry t = m->telemetry();
  const BackendTelemetry& f = route_telemetry(t, "faulty(cpu@int8)");
  EXPECT_EQ(f.precision, "int8");
  EXPECT_EQ(f.parity.violations, 3u);
  EXPECT_GT(f.parity.max_abs, 5e-2);
  EXPECT_EQ(f.breaker.state, BreakerState::open);
  EXPECT_EQ(route_telemetry(t, "cpu").parity.violations, 0u);
}

TEST(EngineInt8, AFailingInt8RouteFallsBackToCpuFloat32) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  o.precision = Precision::int8;
  o.fault_injection = "route=cpu@int8,error=1.0";
  auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
  ASSERT_TRUE(m);
  const auto inputs = conv_inputs();
  const std::vector<float> expected = reference_answer(inputs);
  auto r = m->infer(inputs);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_NE(r->fallback_reason.find("faulty(cpu@int8)"), std::string::npos) << r->fallback_reason;
  EXPECT_LE(max_abs_diff(r->outputs.at("y").tensor, expected), 1e-3);  // the float32 answer
}

TEST(EngineInt8, TelemetryLabelsEveryRouteWithItsPrecision) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  o.name = "q";
  o.precision = Precision::int8;
  auto m = prepare_model(*engine, o, conv_matmul_model_bytes());
  ASSERT_TRUE(m);
  ASSERT_TRUE(m->infer(conv_inputs()).is_ok());
  auto j = nlohmann::json::parse(telemetry_to_json(m->telemetry()));
  std::map<std::string, std::string> precision_of;
  for (const auto& b : j.at("backends")) precision_of[b.at("backend").get<std::string>()] = b.at("precision").get<std::string>();
  EXPECT_EQ(precision_of, (std::map<std::string, std::string>{{"cpu@int8", "int8"}, {"cpu", "fp32"}, {"reference", "fp32"}}));
  const std::string prom = engine->metrics_prometheus();
  EXPECT_NE(prom.find("tandem_backend_served_total{model=\"q\",backend=\"cpu@int8\",precision=\"int8\"} 1"),
            std::string::npos)
      << prom;
  EXPECT_NE(prom.find("tandem_backend_served_total{model=\"q\",backend=\"cpu\",precision=\"fp32\"} 0"), std::string::npos);
}

TEST(EngineInt8, NothingToQuantizeLeavesTheRouteOutOrFailsWhenNamed) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  // The tiny model (Add, Relu) has no Conv, MatMul or Gemm. The default chain leaves the int8
  // route out and says why ...
  PrepareOptions o;
  o.precision = Precision::int8;
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->capabilities().routes, (std::vector<std::string>{"cpu", "reference"}));
  ASSERT_EQ(m->placement().notes.size(), 1u);
  EXPECT_NE(m->placement().notes[0].find("route cpu@int8 left out: int8 quantization: nothing in the model can be quantized"),
            std::string::npos)
      << m->placement().notes[0];
  EXPECT_TRUE(m->infer(tiny_inputs()).is_ok());
  // ... a chain that names it fails, in one line.
  o.routes = {"cpu@int8", "cpu"};
  auto failed = engine->prepare_bytes(testing_util::tiny_model_bytes(), o);
  ASSERT_FALSE(failed.is_ok());
  EXPECT_EQ(failed.status().code(), StatusCode::unsupported);
  EXPECT_NE(failed.status().message().find("nothing in the model can be quantized"), std::string::npos)
      << failed.status().message();
  EXPECT_EQ(failed.status().message().find('\n'), std::string::npos);
  // The reference backend refuses int8 routes.
  o.routes = {"reference@int8"};
  auto ref = engine->prepare_bytes(conv_matmul_model_bytes(), o);
  ASSERT_FALSE(ref.is_ok());
  EXPECT_EQ(ref.status().code(), StatusCode::unsupported);
  EXPECT_NE(ref.status().message().find("route reference@int8"), std::string::npos) << ref.status().message();
}

TEST(EngineInt8, OnnxModelCompilesTheQuantizedGraph) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend in this build";
  auto model = OnnxModel::from_bytes(conv_matmul_model_bytes(), {}, "conv_matmul");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  CompileSettings settings;
  settings.backend = "cpu";
  settings.precision = Precision::int8;
  auto compiled = model->compile(settings);
  ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
  bool integer = false;
  for (const auto& n : compiled->placement().nodes) integer |= n.op_type == "MatMulInteger" && n.backend == "cpu";
  EXPECT_TRUE(integer);
  const auto inputs = conv_inputs(1);
  auto bound = compiled->bind(inputs);
  ASSERT_TRUE(bound.is_ok());
  std::vector<Value> out;
  ASSERT_TRUE(compiled->run(*bound, &out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  EXPECT_LE(max_abs_diff(out[0].tensor, reference_answer(inputs)), 5e-2);
  // int8 is refused by the reference backend, and when nothing can be quantized.
  settings.backend = "reference";
  EXPECT_EQ(model->compile(settings).status().code(), StatusCode::unsupported);
  auto tiny = OnnxModel::from_bytes(testing_util::tiny_model_bytes(), {}, "tiny");
  ASSERT_TRUE(tiny.is_ok());
  settings.backend = "cpu";
  EXPECT_EQ(tiny->compile(settings).status().code(), StatusCode::unsupported);
}

}  // namespace
}  // namespace tandem
