// Latency per input shape (engine/shape_latency.h): what a route's figures are at a shape it
// has answered, at one it has not, and after many; and, through the engine, that a model with
// free dims keeps its large requests on the fast route instead of abandoning them against a
// budget measured at the warm-up's tiny shape, and that a route slow at a large fixed shape is
// warmed within PrepareOptions::warmup_time_cap_ms.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>

#include <chrono>

#include "engine/shape_latency.h"
#include "engine_test_util.h"
#include "tandem/engine.h"

namespace tandem {
namespace {

using engine_internal::ShapeKey;
using engine_internal::ShapeLatency;
using testing_util::make_engine;
using testing_util::prepare_model;
using testing_util::route_telemetry;
using testing_util::tiny_inputs;
using testing_util::tiny_model_bytes;

ShapeKey key_of(std::vector<Shape> shapes) {
  std::vector<Value> inputs;
  for (Shape& s : shapes) inputs.push_back(Value::of(Tensor(DataType::float32, std::move(s))));
  return ShapeKey::of(inputs);
}

TEST(ShapeLatency, KeysTellShapesApartAndCountElements) {
  const ShapeKey a = key_of({{1, 3, 32, 32}});
  EXPECT_EQ(a.elements, 3 * 32 * 32);
  EXPECT_TRUE(a == key_of({{1, 3, 32, 32}}));
  EXPECT_FALSE(a == key_of({{1, 3, 64, 16}}));  // as many elements, another shape
  EXPECT_FALSE(a == key_of({{3, 32, 32}}));
  EXPECT_FALSE(a == key_of({{1, 3, 32, 32}, {1}}));
  EXPECT_EQ(key_of({{4, 8}, {2}}).elements, 34);
  EXPECT_EQ(key_of({{0, 8}}).elements, 1);  // never 0: elements divide
}

TEST(ShapeLatency, UnseenShapesScaleTheNearestMeasuredShape) {
  ShapeLatency l;
  const ShapeKey small = key_of({{1, 100}}), large = key_of({{1, 10000}});
  EXPECT_FALSE(l.view(small, 0.95).measured);
  EXPECT_EQ(l.view(small, 0.95).estimate_ms, 0);  // nothing measured: unknown
  l.set_warm(small, 2.0, 1.0);
  auto v = l.view(small, 0.95);
  EXPECT_TRUE(v.measured);
  EXPECT_DOUBLE_EQ(v.estimate_ms, 2.0);
  EXPECT_DOUBLE_EQ(v.typical_ms, 1.0);
  EXPECT_DOUBLE_EQ(v.hedge_after_ms, 2.0);
  v = l.view(large, 0.95);  // 100x the elements: 100x the time, no hedging
  EXPECT_FALSE(v.measured);
  EXPECT_DOUBLE_EQ(v.estimate_ms, 200.0);
  EXPECT_DOUBLE_EQ(v.typical_ms, 100.0);
  EXPECT_EQ(v.hedge_after_ms, 0);
  // One answer at the large shape: its own figures from then on, and the nearer base for others.
  l.record(large, 30.0);
  v = l.view(large, 0.95);
  EXPECT_TRUE(v.measured);
  EXPECT_NEAR(v.estimate_ms, 30.0, 30.0 * 0.04);  // histogram buckets: within 4%
  v = l.view(key_of({{1, 20000}}), 0.95);
  EXPECT_NEAR(v.estimate_ms, 60.0, 60.0 * 0.04);
  v = l.view(key_of({{1, 50}}), 0.95);  // smaller than both: the small shape, halved
  EXPECT_DOUBLE_EQ(v.estimate_ms, 1.0);
}

TEST(ShapeLatency, UnseenLargerShapesGrowAsSteeplyAsTheMeasuredOnes) {
  // Quadratic cost (attention over a sequence): 4 ms at 512 elements, 16 ms at 1,024, each
  // answered kGrowthAnswers times (its first answer alone, which may have built the shape's
  // plan, fits nothing).
  ShapeLatency quadratic;
  auto answer = [](ShapeLatency& l, const ShapeKey& k, double ms) {
    for (uint64_t i = 0; i < ShapeLatency::kGrowthAnswers; ++i) l.record(k, ms);
  };
  quadratic.record(key_of({{1, 512}}), 4.0);
  quadratic.record(key_of({{1, 1024}}), 16.0);
  EXPECT_NEAR(quadratic.view(key_of({{1, 4096}}), 0.95).typical_ms, 64.0, 64.0 * 0.1);  // one answer each: linear
  answer(quadratic, key_of({{1, 512}}), 4.0);
  answer(quadratic, key_of({{1, 1024}}), 16.0);
  auto v = quadratic.view(key_of({{1, 4096}}), 0.95);  // 4x the nearest: 16x its time, not 4x
  EXPECT_FALSE(v.measured);
  EXPECT_NEAR(v.typical_ms, 256.0, 256.0 * 0.1);
  EXPECT_NEAR(v.estimate_ms, 256.0, 256.0 * 0.1);
  // A smaller unseen shape still scales linearly (the longer guess).
  EXPECT_NEAR(quadratic.view(key_of({{1, 256}}), 0.95).typical_ms, 2.0, 2.0 * 0.1);
  // Shapes closer than kGrowthSpan apart fit nothing: linear.
  ShapeLatency close;
  answer(close, key_of({{1, 1000}}), 4.0);
  answer(close, key_of({{1, 1500}}), 9.0);
  EXPECT_NEAR(close.view(key_of({{1, 3000}}), 0.95).typical_ms, 18.0, 18.0 * 0.1);
  // Growth flatter than linear (a fixed overhead at small shapes) is not used, nor growth
  // steeper than cubic.
  ShapeLatency flat;
  answer(flat, key_of({{1, 100}}), 10.0);
  answer(flat, key_of({{1, 1000}}), 20.0);
  EXPECT_NEAR(flat.view(key_of({{1, 4000}}), 0.95).typical_ms, 80.0, 80.0 * 0.1);
  ShapeLatency steep;
  answer(steep, key_of({{1, 100}}), 1.0);
  answer(steep, key_of({{1, 200}}), 100.0);
  EXPECT_NEAR(steep.view(key_of({{1, 400}}), 0.95).typical_ms, 800.0, 800.0 * 0.1);
}

TEST(ShapeLatency, QuantilesReplaceTheWarmUpAfterEnoughAnswers) {
  ShapeLatency l;
  const ShapeKey k = key_of({{1, 8}});
  l.set_warm(k, 1.0, 0.5);
  for (uint64_t i = 0; i + 1 < ShapeLatency::kMinAnswers; ++i) l.record(k, 10.0);
  EXPECT_DOUBLE_EQ(l.view(k, 0.95).typical_ms, 0.5);  // too few answers: the warm-up's
  l.record(k, 10.0);
  auto v = l.view(k, 0.95);
  EXPECT_NEAR(v.typical_ms, 10.0, 0.4);
  EXPECT_NEAR(v.estimate_ms, 10.0, 0.4);
  EXPECT_NEAR(v.hedge_after_ms, 10.0, 0.4);
  // The first answer at a shape (a backend building for that shape) stays a floor.
  ShapeLatency built;
  built.record(k, 40.0);
  for (uint64_t i = 0; i < 2 * ShapeLatency::kMinAnswers; ++i) built.record(k, 2.0);
  EXPECT_NEAR(built.view(k, 0.95).estimate_ms, 40.0, 40.0 * 0.04);
  EXPECT_NEAR(built.view(k, 0.95).typical_ms, 2.0, 0.08);
  // Answers faster than the warm-up never pull the estimate below its slowest warm run.
  ShapeLatency fast;
  fast.set_warm(k, 5.0, 4.0);
  for (uint64_t i = 0; i < ShapeLatency::kMinAnswers; ++i) fast.record(k, 1.0);
  EXPECT_DOUBLE_EQ(fast.view(k, 0.95).estimate_ms, 5.0);
  EXPECT_NEAR(fast.view(k, 0.95).typical_ms, 1.0, 0.04);
}

TEST(ShapeLatency, KeepsTheWarmUpShapeWhenFull) {
  ShapeLatency l(4);
  const ShapeKey warm = key_of({{1, 1}});
  l.set_warm(warm, 1.0, 1.0);
  for (int64_t n = 2; n < 40; ++n) l.record(key_of({{1, n}}), static_cast<double>(n));
  EXPECT_EQ(l.shapes(), 4u);
  EXPECT_TRUE(l.view(warm, 0.95).measured);
  EXPECT_TRUE(l.view(key_of({{1, 39}}), 0.95).measured);  // the latest shapes stay
  EXPECT_TRUE(l.view(key_of({{1, 37}}), 0.95).measured);
  EXPECT_FALSE(l.view(key_of({{1, 36}}), 0.95).measured);  // the oldest went
}

// y = Conv(x, w) with 16 channels in and out, 3x3, padding 1; x float[1, 16, H, W] with H and
// W free. The reference kernel computes 2,304 multiply-adds per output pixel, so the warm-up's
// 1x1 input answers in microseconds and a 256x256 one takes some 100 ms or more.
std::string free_size_conv_bytes() {
  constexpr int c = 16;
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("conv");
  auto declare = [](onnx::ValueInfoProto* vi, const std::string& name) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    auto* shape = tt->mutable_shape();
    shape->add_dim()->set_dim_value(1);
    shape->add_dim()->set_dim_value(c);
    shape->add_dim()->set_dim_param("h");
    shape->add_dim()->set_dim_param("w");
  };
  declare(g->add_input(), "x");
  declare(g->add_output(), "y");
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int d : {c, c, 3, 3}) w->add_dims(d);
  for (int i = 0; i < c * c * 9; ++i) w->add_float_data(static_cast<float>(i % 7) * 0.01f);
  auto* conv = g->add_node();
  conv->set_op_type("Conv");
  conv->set_name("conv");
  conv->add_input("x");
  conv->add_input("w");
  conv->add_output("y");
  auto* pads = conv->add_attribute();
  pads->set_name("pads");
  pads->set_type(onnx::AttributeProto::INTS);
  for (int k = 0; k < 4; ++k) pads->add_ints(1);
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

TEST(EngineShapeLatency, LargeInputsOfAFreeSizeModelStayOnTheirRoute) {
  auto engine = make_engine({"reference"});
  PrepareOptions o;
  o.fault_injection = "latency_ms=1";  // a second route in front of the plain reference
  auto model = prepare_model(*engine, o, free_size_conv_bytes());
  ASSERT_TRUE(model);
  const double warm_budget = route_telemetry(model->telemetry(), "faulty(reference)").attempt_budget_ms;
  EXPECT_DOUBLE_EQ(warm_budget, o.min_attempt_budget_ms);  // the 1x1 warm-up is fast
  for (int64_t side : {256, 256, 320}) {
    std::map<std::string, Value> in;
    in["x"] = Value::of(Tensor(DataType::float32, {1, 16, side, side}));
    auto r = model->infer(in);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    // Far beyond the warm-up's budget, yet neither abandoned nor moved to the next route.
    EXPECT_GT(r->timings.compute_ms, warm_budget);
    EXPECT_EQ(r->backend, "faulty(reference)") << side << ": " << r->fallback_reason;
    EXPECT_EQ(r->fallback_reason, "");
  }
  const auto t = route_telemetry(model->telemetry(), "faulty(reference)");
  EXPECT_EQ(t.served, 3u);
  EXPECT_TRUE(t.failures.empty());
}

TEST(EngineShapeLatency, AGuessScaledFromATinyWarmUpStillCatchesAHang) {
  auto engine = make_engine({"reference"});
  PrepareOptions o;
  o.fault_injection = "hang=1,hang_ms=5000";  // every call after warm-up hangs for 5 s
  o.unmeasured_budget_ms = 20;                // so at most 600 ms at a shape not answered yet
  auto model = prepare_model(*engine, o, tiny_model_bytes(8, true));
  ASSERT_TRUE(model);
  // 200,000 times the warm-up's rows: scaled, its estimate would allow many seconds.
  const auto t0 = std::chrono::steady_clock::now();
  auto r = model->infer(tiny_inputs(8, 0.f, 200000));
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->backend, "reference");
  EXPECT_NE(r->fallback_reason.find("abandoned after 600 ms"), std::string::npos) << r->fallback_reason;
  EXPECT_LT(ms, 4000);  // not the 5 s hang
}

TEST(EngineShapeLatency, ASlowRouteIsWarmedWithinTheTimeCap) {
  auto engine = make_engine({"reference"});
  PrepareOptions o;
  o.fault_injection = "latency_ms=1";  // two routes: faulty(reference), reference
  o.warmup_concurrency = 2;
  o.warmup_time_cap_ms = 50;
  o.input_shapes = {{"x", {1, 16, 8, 8}}};  // fast: every run made
  auto fast = prepare_model(*engine, o, free_size_conv_bytes());
  ASSERT_TRUE(fast);
  for (const auto& [route, runs] : fast->sla_estimate().per_backend_runs) EXPECT_EQ(runs, o.warmup_runs) << route;
  EXPECT_EQ(fast->sla_estimate().per_backend_runs.size(), 2u);
  o.input_shapes = {{"x", {1, 16, 256, 256}}};  // some 100 ms or more a run: one run each
  auto slow = prepare_model(*engine, o, free_size_conv_bytes());
  ASSERT_TRUE(slow);
  const SlaEstimate& sla = slow->sla_estimate();
  EXPECT_TRUE(sla.measured);
  EXPECT_EQ(sla.per_backend_runs.size(), 2u);
  for (const auto& [route, runs] : sla.per_backend_runs) {
    EXPECT_EQ(runs, 1) << route;
    EXPECT_GE(sla.per_backend_ms.at(route), o.warmup_time_cap_ms) << route;  // that run is the estimate
  }
  o.warmup_time_cap_ms = -1;
  auto refused = engine->prepare_bytes(free_size_conv_bytes(), o);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::invalid_argument);
  o.warmup_time_cap_ms = 50;
  o.shape_cache_mb = -1;  // the bound on plans kept per shape (CpuBackendPlanShapes tests it)
  refused = engine->prepare_bytes(free_size_conv_bytes(), o);
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("shape_cache_mb"), std::string::npos);
  // Judged by that run, a request is neither abandoned nor moved on.
  std::map<std::string, Value> in;
  in["x"] = Value::of(Tensor(DataType::float32, {1, 16, 256, 256}));
  auto r = slow->infer(in);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->backend, "faulty(reference)") << r->fallback_reason;
}

}  // namespace
}  // namespace tandem
