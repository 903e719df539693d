// The engine end to end on a tiny in-memory model: prepare, routing, fallback, strict mode,
// deadlines with real hangs, cancellation, parity sampling, the output guard, concurrency
// and lifecycle. Fault injection stands in for a misbehaving backend; manual clocks stand in
// for waiting out cooldowns.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <set>
#include <thread>

#include "engine/sha256.h"
#include "engine_test_util.h"
#include "tandem/engine.h"

namespace tandem {
namespace {

using testing_util::make_engine;
using testing_util::ManualClock;
using testing_util::prepare_model;
using testing_util::route_telemetry;
using testing_util::tiny_expected;
using testing_util::tiny_inputs;
using testing_util::tiny_model_bytes;
using Ms = std::chrono::duration<double, std::milli>;

class EngineTest : public ::testing::Test {
 protected:
  void SetUp() override { engine_ = make_engine({"reference"}); }
  std::shared_ptr<PreparedModel> prepare(PrepareOptions o = {}, const std::string& bytes = tiny_model_bytes()) {
    return prepare_model(*engine_, o, bytes);
  }
  static void expect_tiny_output(const InferResult& r, float offset = 0.f) {
    const Tensor& y = r.outputs.at("y").tensor;
    const auto want = tiny_expected(8, offset);
    ASSERT_EQ(y.numel(), 8);
    for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(y.data<float>()[i], want[static_cast<size_t>(i)]) << i;
  }
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineTest, DefaultOrderEndsWithReference) {
  auto e = Engine::create({});
  ASSERT_TRUE(e.is_ok());
  ASSERT_FALSE((*e)->backends().empty());
  EXPECT_EQ((*e)->backends().back(), "reference");
  EngineOptions bad;
  bad.backends = {"no-such-backend"};
  auto b = Engine::create(bad);
  ASSERT_FALSE(b.is_ok());
  EXPECT_EQ(b.status().code(), StatusCode::invalid_argument);
}

TEST_F(EngineTest, PrepareReportsSchemaKeyEstimateAndPlacement) {
  const std::string bytes = tiny_model_bytes();
  auto m = prepare({}, bytes);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->io_schema().inputs.size(), 1u);
  const IoInfo& x = m->io_schema().inputs[0];
  EXPECT_EQ(x.name, "x");
  EXPECT_EQ(x.dtype, DataType::float32);
  ASSERT_EQ(x.dims.size(), 2u);
  EXPECT_EQ(x.dims[1].value, 8);
  EXPECT_EQ(m->io_schema().outputs.at(0).name, "y");
  EXPECT_EQ(m->cache_key().size(), 64u);
  EXPECT_EQ(m->cache_key(), sha256_hex(m->cache_key_text()));
  EXPECT_NE(m->cache_key_text().find("model_sha256=" + sha256_hex(bytes)), std::string::npos);
  for (const char* field : {"tandem_version=", "backends=reference@", "compute_units=all", "precision=fp32", "shapes=x:",
                            "cpu_isa=", "os="})
    EXPECT_NE(m->cache_key_text().find(field), std::string::npos) << field;
  EXPECT_TRUE(m->sla_estimate().measured);
  EXPECT_GT(m->sla_estimate().estimate_ms, 0);
  EXPECT_EQ(m->sla_estimate().warmup_shapes, (std::map<std::string, std::vector<int64_t>>{{"x", {1, 8}}}));
  // One route: nothing to keep back for falling back.
  EXPECT_EQ(m->sla_estimate().deadline_margin_ms, m->sla_estimate().estimate_ms);
  ASSERT_EQ(m->placement().routes.size(), 1u);
  EXPECT_EQ(m->placement().routes[0].nodes_per_backend.at("reference"), 2);
  EXPECT_NE(m->placement().to_string().find("route reference"), std::string::npos);
  EXPECT_EQ(m->name(), "model");
}

TEST_F(EngineTest, CacheKeyCoversOptionsAndShapes) {
  auto base = prepare();
  auto same = prepare();
  EXPECT_EQ(base->cache_key(), same->cache_key());
  PrepareOptions fp16;
  fp16.precision = Precision::fp16;
  EXPECT_NE(prepare(fp16)->cache_key(), base->cache_key());
  PrepareOptions cpu;
  cpu.compute_units = ComputeUnits::cpu_only;
  EXPECT_NE(prepare(cpu)->cache_key(), base->cache_key());
  EXPECT_NE(prepare({}, tiny_model_bytes(16))->cache_key(), base->cache_key());
  const std::string sym = tiny_model_bytes(8, true);
  PrepareOptions b1, b4;
  b1.input_shapes["x"] = {1, 8};
  b4.input_shapes["x"] = {4, 8};
  EXPECT_NE(prepare(b1, sym)->cache_key(), prepare(b4, sym)->cache_key());
}

TEST_F(EngineTest, FixedShapesAreValidatedAndEnforced) {
  const std::string sym = tiny_model_bytes(8, true);
  PrepareOptions o;
  o.input_shapes["x"] = {4, 8};
  auto m = prepare(o, sym);
  ASSERT_TRUE(m);
  EXPECT_EQ(m->io_schema().inputs[0].dims[0].value, 4);
  EXPECT_TRUE(m->infer(tiny_inputs(8, 0, 4)).is_ok());
  auto wrong = m->infer(tiny_inputs(8, 0, 2));
  ASSERT_FALSE(wrong.is_ok());
  EXPECT_EQ(wrong.status().code(), StatusCode::invalid_argument);
  PrepareOptions bad;
  bad.input_shapes["x"] = {4, 9};
  auto b = engine_->prepare_bytes(sym, bad);
  EXPECT_EQ(b.status().code(), StatusCode::invalid_argument);
  PrepareOptions unknown;
  unknown.input_shapes["nope"] = {1};
  EXPECT_EQ(engine_->prepare_bytes(sym, unknown).status().code(), StatusCode::invalid_argument);
}

TEST_F(EngineTest, MinusOneLeavesADimAsDeclared) {
  const std::string sym = tiny_model_bytes(8, true);
  PrepareOptions o;
  o.input_shapes["x"] = {-1, 8};
  auto m = prepare(o, sym);
  ASSERT_TRUE(m);
  EXPECT_LT(m->io_schema().inputs[0].dims[0].value, 0);  // still free
  EXPECT_EQ(m->io_schema().inputs[0].dims[1].value, 8);
  auto r = m->infer(tiny_inputs(8, 0, 3));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->outputs.at("y").tensor.shape(), (Shape{3, 8}));
  PrepareOptions below;
  below.input_shapes["x"] = {-2, 8};
  EXPECT_EQ(engine_->prepare_bytes(sym, below).status().code(), StatusCode::invalid_argument);
  PrepareOptions wrong;
  wrong.input_shapes["x"] = {-1, 9};  // dim 1 is declared 8
  EXPECT_EQ(engine_->prepare_bytes(sym, wrong).status().code(), StatusCode::invalid_argument);
}

TEST_F(EngineTest, WarmUpRunsTheBatchSizesItIsGiven) {
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  o.warmup_runs = 1;
  o.warmup_concurrency = 2;
  o.warmup_batch_sizes = {3, 5};
  auto m = prepare_model(*engine, o, tiny_model_bytes(8, true));
  ASSERT_TRUE(m);
  EXPECT_EQ(m->sla_estimate().warmed_batch_sizes, (std::vector<int64_t>{3, 5}));
  auto r = m->infer(tiny_inputs(8, 0, 5));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->outputs.at("y").tensor.shape(), (Shape{5, 8}));
  // A model whose first dim is fixed has no batch size to warm, and says nothing of it.
  auto fixed = prepare_model(*engine, o, tiny_model_bytes(8, false));
  ASSERT_TRUE(fixed);
  EXPECT_TRUE(fixed->sla_estimate().warmed_batch_sizes.empty());
  EXPECT_TRUE(fixed->sla_estimate().note.empty()) << fixed->sla_estimate().note;
  PrepareOptions bad;
  bad.warmup_batch_sizes = {0};
  EXPECT_EQ(engine->prepare_bytes(tiny_model_bytes(8, true), bad).status().code(), StatusCode::invalid_argument);
}

TEST_F(EngineTest, TheDeadlineMarginKeepsTimeForTheNextRoute) {
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  o.warmup_runs = 3;
  auto m = prepare_model(*engine, o, tiny_model_bytes(8, true));
  ASSERT_TRUE(m);
  const SlaEstimate& sla = m->sla_estimate();
  ASSERT_TRUE(sla.measured);
  ASSERT_GT(sla.per_backend_ms.at("reference"), 0);
  // The cpu route's estimate, and the reference's usual time twice over plus 0.5 ms.
  EXPECT_GT(sla.deadline_margin_ms, sla.estimate_ms + 0.5);
  EXPECT_LE(sla.deadline_margin_ms, sla.estimate_ms + 2 * sla.per_backend_ms.at("reference") + 0.5 + 1e-9);
  o.fallback_reserve_multiplier = 20;
  auto wider = prepare_model(*engine, o, tiny_model_bytes(8, true));
  ASSERT_TRUE(wider);
  const SlaEstimate& w = wider->sla_estimate();
  EXPECT_GT(w.deadline_margin_ms, w.estimate_ms + 0.5);
  EXPECT_LE(w.deadline_margin_ms, w.estimate_ms + 20 * w.per_backend_ms.at("reference") + 0.5 + 1e-9);
}

TEST_F(EngineTest, InferMatchesReferenceAndReportsTimings) {
  auto m = prepare();
  auto r = engine_->infer(*m, tiny_inputs(8, 0.5f));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  expect_tiny_output(*r, 0.5f);
  EXPECT_EQ(r->backend, "reference");
  EXPECT_EQ(r->fallback_reason, "");
  EXPECT_EQ(r->attempts, 1);
  EXPECT_GE(r->timings.total_ms, r->timings.compute_ms);
  EXPECT_GE(r->timings.queue_ms, 0);
  EXPECT_EQ(r->output_order, std::vector<std::string>{"y"});
}

TEST_F(EngineTest, RequestErrorsAreNotBackendFaults) {
  PrepareOptions o;
  o.fault_injection = "latency_ms=0.01";
  auto m = prepare(o);
  std::map<std::string, Value> unknown{{"z", tiny_inputs().at("x")}};
  auto r = m->infer(unknown);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
  auto shape = m->infer({{"x", Value::of(Tensor(DataType::float32, {1, 3}))}});
  EXPECT_EQ(shape.status().code(), StatusCode::invalid_argument);
  auto dtype = m->infer({{"x", Value::of(Tensor(DataType::int64, {1, 8}))}});
  EXPECT_EQ(dtype.status().code(), StatusCode::invalid_argument);
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 3u);
  EXPECT_EQ(t.failures.at("invalid_argument"), 3u);
  for (const auto& b : t.backends) {
    EXPECT_EQ(b.requests, 0u);
    EXPECT_EQ(b.breaker.state, BreakerState::closed);
  }
}

TEST_F(EngineTest, FallbackServesEveryRequestAndTripsTheBreaker) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "error=1.0";
  auto m = prepare(o);
  ASSERT_EQ(m->placement().routes.size(), 2u);
  EXPECT_EQ(m->placement().routes[0].backend, "faulty(reference)");
  // Each of the first 10 requests makes two failed calls (the call and its retry, both
  // device_error) before the reference answers; the 20th failure trips the breaker.
  for (int i = 0; i < 100; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_tiny_output(*r);
    EXPECT_EQ(r->backend, "reference");
    if (i < 10) {
      EXPECT_NE(r->fallback_reason.find("device_error"), std::string::npos) << r->fallback_reason;
      EXPECT_EQ(r->attempts, 3);
    } else {
      EXPECT_NE(r->fallback_reason.find("breaker_open"), std::string::npos) << r->fallback_reason;
      EXPECT_EQ(r->attempts, 1);
    }
  }
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.succeeded, 100u);
  EXPECT_EQ(t.failed, 0u);
  EXPECT_EQ(t.fallbacks, 100u);
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(f.breaker.state, BreakerState::open);
  EXPECT_EQ(f.breaker.trips, 1u);
  EXPECT_EQ(f.failures.at("device_error"), 20u);
  EXPECT_EQ(f.retries, 10u);
  EXPECT_EQ(f.fallbacks.at("device_error"), 10u);
  EXPECT_EQ(f.fallbacks.at("breaker_open"), 90u);
  EXPECT_EQ(route_telemetry(t, "reference").served, 100u);
  EXPECT_DOUBLE_EQ(route_telemetry(t, "reference").dispatch_share, 1.0);
}

TEST_F(EngineTest, ErrorRateFallbackThenRecoveryClosesTheBreaker) {
  auto clock = std::make_shared<ManualClock>();
  PrepareOptions o;
  // Most calls fail (0.7, above the 0.5 trip rate): the breaker trips; at 0.3 it would not.
  o.fault_injection = "error=0.7,recover_after_s=5,seed=1";
  set_engine_clock(*engine_, clock);
  o.parity_sample_rate = 0.5;
  auto m = prepare(o);
  for (int i = 0; i < 500; ++i) {
    auto r = m->infer(tiny_inputs(8, static_cast<float>(i % 5)));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    expect_tiny_output(*r, static_cast<float>(i % 5));
  }
  ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 0u);
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_GE(f.breaker.trips, 1u);
  EXPECT_GT(f.served, 0u);
  // Time passes: the faults stop and the cooldown (at most 30 s) ends.
  clock->advance_ms(60000);
  int requests = 0;
  while (m->telemetry().backends[0].breaker.state != BreakerState::closed && requests < 100) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok());
    requests++;
  }
  t = m->telemetry();
  EXPECT_EQ(route_telemetry(t, "faulty(reference)").breaker.state, BreakerState::closed);
  EXPECT_LE(requests, 5);  // half_open_calls good probes
  auto r = m->infer(tiny_inputs());
  EXPECT_EQ(r->backend, "faulty(reference)");
  ASSERT_TRUE(m->drain_parity(10000));
  t = m->telemetry();
  EXPECT_GT(route_telemetry(t, "faulty(reference)").parity.samples, 0u);
  EXPECT_EQ(route_telemetry(t, "faulty(reference)").parity.violations, 0u);
}

TEST_F(EngineTest, StrictModeReturnsTypedErrorsAndNeverFallsBack) {
  PrepareOptions o;
  o.fault_injection = "error=0.3,seed=2";
  o.fallback = FallbackPolicy::strict;
  auto m = prepare(o);
  int failed = 0;
  const int n = 1000;
  for (int i = 0; i < n; ++i) {
    auto r = m->infer(tiny_inputs());
    if (r.is_ok()) {
      EXPECT_EQ(r->backend, "faulty(reference)");
      EXPECT_EQ(r->fallback_reason, "");
    } else {
      failed++;
      EXPECT_EQ(r.status().code(), StatusCode::device_error) << r.status().to_string();
    }
  }
  // A request fails only when its call and the call's retry both fail: 0.3 x 0.3.
  EXPECT_GE(failed, n * 5 / 100);
  EXPECT_LE(failed, n * 14 / 100);
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(route_telemetry(t, "reference").requests, 0u);
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(f.breaker.trips, 0u);
  EXPECT_EQ(f.failures.at("device_error"), f.retries + static_cast<uint64_t>(failed));
  EXPECT_EQ(f.requests, static_cast<uint64_t>(n) + f.retries);
}

TEST_F(EngineTest, StrictModeWithOpenBreakerIsUnavailable) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "error=1.0";
  o.fallback = FallbackPolicy::strict;
  o.breaker.min_requests = 5;
  o.same_route_retries = 0;  // one call per request: five requests trip the breaker
  auto m = prepare(o);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(m->infer(tiny_inputs()).status().code(), StatusCode::device_error);
  auto r = m->infer(tiny_inputs());
  EXPECT_EQ(r.status().code(), StatusCode::unavailable);
  EXPECT_NE(r.status().message().find("circuit breaker open"), std::string::npos);
  EXPECT_EQ(route_telemetry(m->telemetry(), "reference").requests, 0u);
}

TEST_F(EngineTest, HungBackendIsAbandonedWithinTheDeadline) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "hang=1.0,hang_ms=60000";
  o.default_deadline_ms = 200;
  auto m = prepare(o);
  for (int i = 0; i < 25; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = m->infer(tiny_inputs());
    const double ms = Ms(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference");
    EXPECT_LE(ms, 250) << "request " << i;
    expect_tiny_output(*r);
  }
  const ModelTelemetry t = m->telemetry();
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(t.failed, 0u);
  EXPECT_GE(f.abandoned_calls, 16u);
  EXPECT_LE(f.hung_calls, 16u);  // the cap
  EXPECT_GE(f.failures.at("timeout"), 16u);
  EXPECT_GE(f.breaker.trips, 1u);
  EXPECT_LE(f.worker_threads, f.hung_calls + 64);
  // Destroying the model releases the hung calls promptly.
  const auto t0 = std::chrono::steady_clock::now();
  m.reset();
  EXPECT_LT(Ms(std::chrono::steady_clock::now() - t0).count(), 3000);
}

TEST_F(EngineTest, HungCallsAreCappedAndCounted) {
  engine_ = make_engine({"reference"}, /*max_hung=*/3);
  PrepareOptions o;
  o.fault_injection = "hang=1.0,hang_ms=60000";
  o.min_attempt_budget_ms = 20;
  o.breaker.min_requests = 1000;  // keep the breaker closed: the cap must do the work
  auto m = prepare(o);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(m->infer(tiny_inputs()).is_ok());
  const ModelTelemetry t = m->telemetry();
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(f.hung_calls, 3u);
  EXPECT_EQ(f.abandoned_calls, 3u);
  EXPECT_EQ(f.failures.at("timeout"), 3u);
  EXPECT_EQ(f.failures.at("unavailable"), 7u);  // refused at once: the cap is reached
  EXPECT_LE(f.worker_threads, 3u + 4u);
}

TEST_F(EngineTest, PastDeadlineTimesOutAndCancelStops) {
  auto m = prepare();
  InferOptions late;
  late.deadline = std::chrono::steady_clock::now() - std::chrono::milliseconds(1);
  EXPECT_EQ(m->infer(tiny_inputs(), late).status().code(), StatusCode::timeout);
  std::atomic<bool> cancel{true};
  InferOptions c;
  c.cancel = &cancel;
  EXPECT_EQ(m->infer(tiny_inputs(), c).status().code(), StatusCode::cancelled);
}

TEST_F(EngineTest, CancelReachesAHungCall) {
  PrepareOptions o;
  o.fault_injection = "hang=1.0,hang_ms=60000";
  o.min_attempt_budget_ms = 30000;
  auto m = prepare(o);
  std::atomic<bool> cancel{false};
  std::thread canceller([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(30));  // a trigger, not work
    cancel = true;
  });
  InferOptions io;
  io.cancel = &cancel;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = m->infer(tiny_inputs(), io);
  canceller.join();
  EXPECT_EQ(r.status().code(), StatusCode::cancelled);
  EXPECT_LT(Ms(std::chrono::steady_clock::now() - t0).count(), 5000);
}

// The calling thread's own interrupt check (how the Python bindings notice Ctrl-C): it is
// polled while the thread waits, and a true answer cancels a hung call.
TEST_F(EngineTest, TheCallersInterruptCheckCancelsAHungCall) {
  PrepareOptions o;
  o.fault_injection = "hang=1.0,hang_ms=60000";
  o.min_attempt_budget_ms = 30000;
  auto m = prepare(o);
  struct Poll {
    std::thread::id caller = std::this_thread::get_id();
    int calls = 0;
    bool other_thread = false;
  } poll;
  InferOptions io;
  io.interrupted = [](void* p) {
    auto* s = static_cast<Poll*>(p);
    s->other_thread = s->other_thread || std::this_thread::get_id() != s->caller;
    return ++s->calls >= 5;
  };
  io.interrupted_context = &poll;
  const auto t0 = std::chrono::steady_clock::now();
  auto r = m->infer(tiny_inputs(), io);
  EXPECT_EQ(r.status().code(), StatusCode::cancelled);
  EXPECT_EQ(poll.calls, 5);  // polled until it said so, then never again
  EXPECT_FALSE(poll.other_thread);
  EXPECT_LT(Ms(std::chrono::steady_clock::now() - t0).count(), 5000);
  // A check that never fires changes nothing.
  auto ok = prepare();
  io.interrupted = [](void*) { return false; };
  EXPECT_TRUE(ok->infer(tiny_inputs(), io).is_ok());
}

TEST_F(EngineTest, ParitySamplingCountsViolationsAndTripsTheBreaker) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "nan=1.0";
  o.parity_sample_rate = 1.0;
  o.breaker.min_requests = 1000;  // only parity can trip it
  auto m = prepare(o);
  for (int i = 0; i < 10; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok());
    ASSERT_TRUE(m->drain_parity(10000));  // sequential: each sample is compared before the next request
  }
  const ModelTelemetry t = m->telemetry();
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(f.parity.violations, 3u);  // the third trips the breaker; later requests go to reference
  EXPECT_EQ(f.parity.samples, 3u);
  EXPECT_TRUE(std::isinf(f.parity.max_abs));
  EXPECT_EQ(f.breaker.trips, 1u);
  EXPECT_EQ(f.breaker.state, BreakerState::open);
  EXPECT_EQ(route_telemetry(t, "reference").served, 7u);
  EXPECT_EQ(route_telemetry(t, "reference").parity.samples, 0u);  // reference answers are not sampled
}

TEST_F(EngineTest, ParityOfAHealthyBackendIsClean) {
  PrepareOptions o;
  o.fault_injection = "latency_ms=0.01";
  o.parity_sample_rate = 1.0;
  o.parity_queue_capacity = 1000;
  auto m = prepare(o);
  for (int i = 0; i < 50; ++i) ASSERT_TRUE(m->infer(tiny_inputs(8, static_cast<float>(i))).is_ok());
  ASSERT_TRUE(m->drain_parity(10000));
  const ModelTelemetry t = m->telemetry();
  const auto& p = route_telemetry(t, "faulty(reference)").parity;
  EXPECT_EQ(p.samples, 50u);
  EXPECT_EQ(p.violations, 0u);
  EXPECT_EQ(p.dropped, 0u);
  EXPECT_EQ(p.max_abs, 0);
}

TEST_F(EngineTest, OutputGuardTurnsNonFiniteOutputsIntoFallback) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "nan=1.0";
  o.output_guard = true;
  auto m = prepare(o);
  for (int i = 0; i < 30; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok());
    EXPECT_EQ(r->backend, "reference");
    expect_tiny_output(*r);
  }
  const ModelTelemetry t = m->telemetry();
  const auto& f = route_telemetry(t, "faulty(reference)");
  EXPECT_EQ(f.failures.at("device_error"), 20u);
  EXPECT_EQ(f.breaker.trips, 1u);
}

TEST_F(EngineTest, ConcurrentInferIsSafeAndCountsAddUp) {
  PrepareOptions o;
  o.fault_injection = "error=0.3,seed=3";
  o.parity_sample_rate = 0.5;
  auto m = prepare(o);
  constexpr int kThreads = 8, kEach = 100;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        const float off = static_cast<float>((t + i) % 4);
        auto r = m->infer(tiny_inputs(8, off));
        if (!r.is_ok()) {
          failures++;
          continue;
        }
        const auto want = tiny_expected(8, off);
        const Tensor& y = r->outputs.at("y").tensor;
        for (int k = 0; k < 8; ++k)
          if (y.data<float>()[k] != want[static_cast<size_t>(k)]) failures++;
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  m->drain_parity(10000);
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.requests, static_cast<uint64_t>(kThreads * kEach));
  uint64_t served = 0;
  for (const auto& b : t.backends) served += b.served;
  EXPECT_EQ(served, t.succeeded);
  EXPECT_EQ(t.latency.count(), t.succeeded);
  EXPECT_EQ(route_telemetry(t, "faulty(reference)").parity.violations, 0u);
}

TEST_F(EngineTest, CapabilitiesDescribeTheRoutes) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // cooldowns never end on their own
  o.fault_injection = "error=1.0";
  auto m = prepare(o);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(m->infer(tiny_inputs()).is_ok());
  const Capabilities c = engine_->capabilities(*m);
  EXPECT_EQ(c.requested_backend, "faulty(reference)");
  EXPECT_EQ(c.actual_backend, "reference");
  EXPECT_EQ(c.routes, (std::vector<std::string>{"faulty(reference)", "reference"}));
  double share = 0;
  for (const auto& [b, s] : c.node_share) share += s;
  EXPECT_DOUBLE_EQ(share, 1.0);
  EXPECT_GT(c.p50_ms, 0);
  EXPECT_GE(c.p99_ms, c.p50_ms);
  EXPECT_EQ(c.dtypes, std::vector<DataType>{DataType::float32});
  EXPECT_EQ(c.device.rfind("cpu ", 0), 0u);
}

TEST_F(EngineTest, ComputeUnitsAndBadOptions) {
  PrepareOptions ne;
  ne.compute_units = ComputeUnits::cpu_and_ne;
  EXPECT_EQ(engine_->prepare_bytes(tiny_model_bytes(), ne).status().code(), StatusCode::unsupported);
  PrepareOptions cpu;
  cpu.compute_units = ComputeUnits::cpu_only;
  auto m = prepare(cpu);
  ASSERT_TRUE(m);
  EXPECT_TRUE(m->infer(tiny_inputs()).is_ok());
  PrepareOptions bad;
  bad.fault_injection = "error=2";
  EXPECT_EQ(engine_->prepare_bytes(tiny_model_bytes(), bad).status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(engine_->prepare_bytes("not a model").status().code(), StatusCode::invalid_model);
  EXPECT_EQ(parse_compute_units("gpu_only").status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(*parse_compute_units("cpu_and_gpu"), ComputeUnits::cpu_and_gpu);
  EXPECT_EQ(*parse_precision("bf16"), Precision::bf16);
}

TEST_F(EngineTest, MetricsOfLiveModels) {
  auto a = prepare();
  PrepareOptions named;
  named.name = "second";
  auto b = prepare(named);
  ASSERT_TRUE(a->infer(tiny_inputs()).is_ok());
  std::string text = engine_->metrics_prometheus();
  EXPECT_NE(text.find("tandem_requests_total{model=\"model\"} 1"), std::string::npos) << text;
  EXPECT_NE(text.find("tandem_requests_total{model=\"second\"} 0"), std::string::npos);
  b.reset();
  text = engine_->metrics_prometheus();
  EXPECT_EQ(text.find("model=\"second\""), std::string::npos);
}

// Many prepare / infer / destroy cycles: run under ASan/LSan to show nothing leaks.
// TANDEM_ENGINE_CYCLES overrides the count (default 10,000).
TEST_F(EngineTest, ManyPrepareInferDestroyCycles) {
  const char* env = std::getenv("TANDEM_ENGINE_CYCLES");
  const int cycles = env ? std::atoi(env) : 10000;
  const std::string bytes = tiny_model_bytes();
  PrepareOptions o;
  o.warmup_runs = 1;
  for (int i = 0; i < cycles; ++i) {
    auto m = engine_->prepare_bytes(bytes, o);
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    auto r = (*m)->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok());
  }
  // And some with fault injection, parity sampling and hung calls alive at destruction.
  PrepareOptions f;
  f.warmup_runs = 1;
  f.fault_injection = "hang=0.5,hang_ms=60000,nan=0.5,seed=5";
  f.min_attempt_budget_ms = 5;
  f.parity_sample_rate = 1.0;
  for (int i = 0; i < std::min(cycles, 50); ++i) {
    auto m = engine_->prepare_bytes(bytes, f);
    ASSERT_TRUE(m.is_ok());
    for (int k = 0; k < 4; ++k) ASSERT_TRUE((*m)->infer(tiny_inputs()).is_ok());
  }
}

}  // namespace
}  // namespace tandem
