// Same-route retries (PrepareOptions::same_route_retries): which failures are made again on
// the route that failed, how many times, and what the breaker, the deadline and telemetry see.
// Fault injection stands in for a device with transient faults.
#include <gtest/gtest.h>

#include <chrono>

#include "engine_test_util.h"
#include "tandem/engine.h"

namespace tandem {
namespace {

using testing_util::make_engine;
using testing_util::ManualClock;
using testing_util::prepare_model;
using testing_util::route_telemetry;
using testing_util::tiny_inputs;
using testing_util::tiny_model_bytes;

class EngineRetry : public ::testing::Test {
 protected:
  void SetUp() override { engine_ = make_engine({"reference"}); }
  std::shared_ptr<PreparedModel> prepare(PrepareOptions o) { return prepare_model(*engine_, o, tiny_model_bytes()); }
  // Serves `n` requests; every one must succeed, and those the faulty route answered took at
  // most 1 + `retries` calls. Returns how many the reference answered.
  static int served_by_reference(PreparedModel& m, int n, int retries = 1) {
    int by_reference = 0;
    for (int i = 0; i < n; ++i) {
      auto r = m.infer(tiny_inputs());
      EXPECT_TRUE(r.is_ok()) << r.status().to_string();
      if (!r.is_ok()) continue;
      if (r->backend == "reference") {
        by_reference++;
        EXPECT_NE(r->fallback_reason.find("device_error"), std::string::npos) << r->fallback_reason;
      } else {
        EXPECT_EQ(r->fallback_reason, "");  // a retry that answered is not a fallback
        EXPECT_GE(r->attempts, 1);
        EXPECT_LE(r->attempts, 1 + retries);
      }
    }
    return by_reference;
  }
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineRetry, TransientErrorsAreAnsweredByTheSameRoute) {
  const int n = 2000;
  PrepareOptions o;
  o.fault_injection = "error=0.3,seed=11";
  o.breaker.min_requests = 1 << 20;  // the breaker never judges: what is measured is the retries
  auto with = prepare(o);
  const int fell_back = served_by_reference(*with, n);
  o.same_route_retries = 0;
  auto without = prepare(o);
  const int fell_back_without = served_by_reference(*without, n);
  // Without retries about 30% of the requests move to the reference, with one about 9% (both
  // calls fail); the seeded draws keep the counts away from these bounds.
  EXPECT_GE(fell_back_without, n * 25 / 100);
  EXPECT_LE(fell_back_without, n * 35 / 100);
  EXPECT_GE(fell_back, n * 6 / 100);
  EXPECT_LE(fell_back, n * 12 / 100);

  const ModelTelemetry t = with->telemetry();
  const auto& f = route_telemetry(t, "faulty(reference)");
  // Every request's first failure was retried, and failed calls are each counted once.
  EXPECT_EQ(f.requests, static_cast<uint64_t>(n) + f.retries);
  EXPECT_EQ(f.failures.at("device_error"), f.retries + static_cast<uint64_t>(fell_back));
  EXPECT_EQ(f.fallbacks.at("device_error"), static_cast<uint64_t>(fell_back));
  EXPECT_EQ(route_telemetry(without->telemetry(), "faulty(reference)").retries, 0u);
  EXPECT_NE(engine_->metrics_prometheus().find("tandem_backend_retries_total{model="), std::string::npos);
}

TEST_F(EngineRetry, MoreRetriesMeanFewerFallbacks) {
  PrepareOptions o;
  o.fault_injection = "error=0.3,seed=12";
  o.breaker.min_requests = 1 << 20;
  o.same_route_retries = 3;  // a request moves on only after four failed calls: 0.3^4 = 0.8%
  auto m = prepare(o);
  const int n = 1000;
  const int fell_back = served_by_reference(*m, n, 3);
  EXPECT_LE(fell_back, n * 3 / 100);
  const auto& f = route_telemetry(m->telemetry(), "faulty(reference)");
  EXPECT_EQ(f.requests, static_cast<uint64_t>(n) + f.retries);
  EXPECT_EQ(f.retries + static_cast<uint64_t>(fell_back), f.failures.at("device_error"));
}

TEST_F(EngineRetry, OutputGuardFailuresAndTimeoutsAreNotRetried) {
  {  // NaN outputs: the device answered, wrongly; a second call would answer alike.
    PrepareOptions o;
    o.fault_injection = "nan=1.0";
    o.output_guard = true;
    auto m = prepare(o);
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference");
    EXPECT_EQ(r->attempts, 2);
    EXPECT_EQ(route_telemetry(m->telemetry(), "faulty(reference)").retries, 0u);
  }
  {  // A hang abandoned at its budget: retrying would spend the deadline on the same device.
    PrepareOptions o;
    set_engine_clock(*engine_, std::make_shared<ManualClock>());
    o.fault_injection = "hang=1.0,hang_ms=60000";
    o.default_deadline_ms = 200;
    auto m = prepare(o);
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference");
    EXPECT_EQ(r->attempts, 2);
    EXPECT_NE(r->fallback_reason.find("timeout"), std::string::npos) << r->fallback_reason;
    EXPECT_EQ(route_telemetry(m->telemetry(), "faulty(reference)").retries, 0u);
  }
}

TEST_F(EngineRetry, ARetryMustFitTheDeadline) {
  // Each failing call takes 100 ms. With 150 ms for the request, what is left after one cannot
  // hold another: no retry (the reference answers, unless a loaded machine made the first call
  // overrun too). With 2 s, the route is retried.
  PrepareOptions o;
  o.fault_injection = "error=1.0,latency_ms=100";
  o.min_attempt_budget_ms = 1000;  // 100 ms calls are not abandoned as overruns
  o.breaker.min_requests = 1000;   // the breaker stays closed throughout
  auto m = prepare(o);
  InferOptions tight;
  tight.timeout_ms = 150;
  auto r = m->infer(tiny_inputs(), tight);
  if (r.is_ok()) {
    EXPECT_EQ(r->backend, "reference");
    EXPECT_EQ(r->attempts, 2);
  }
  EXPECT_EQ(route_telemetry(m->telemetry(), "faulty(reference)").retries, 0u);
  InferOptions roomy;
  roomy.timeout_ms = 2000;
  r = m->infer(tiny_inputs(), roomy);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->backend, "reference");
  EXPECT_EQ(r->attempts, 3);
  EXPECT_EQ(route_telemetry(m->telemetry(), "faulty(reference)").retries, 1u);
}

TEST_F(EngineRetry, StrictModeRetriesAndReturnsTheTypedError) {
  PrepareOptions o;
  o.fault_injection = "error=1.0";
  o.fallback = FallbackPolicy::strict;
  o.same_route_retries = 2;
  auto m = prepare(o);
  auto r = m->infer(tiny_inputs());
  EXPECT_EQ(r.status().code(), StatusCode::device_error) << r.status().to_string();
  const auto& f = route_telemetry(m->telemetry(), "faulty(reference)");
  EXPECT_EQ(f.requests, 3u);
  EXPECT_EQ(f.retries, 2u);
  EXPECT_EQ(route_telemetry(m->telemetry(), "reference").requests, 0u);
}

TEST_F(EngineRetry, AFailureThatTripsTheBreakerIsNotRetried) {
  PrepareOptions o;
  set_engine_clock(*engine_, std::make_shared<ManualClock>());  // the breaker stays open
  o.fault_injection = "error=1.0";
  o.fallback = FallbackPolicy::strict;
  o.same_route_retries = 5;
  o.breaker.min_requests = 2;  // the second failed call trips it
  auto m = prepare(o);
  auto r = m->infer(tiny_inputs());
  // The typed error of the call that tripped the breaker, not `unavailable` from a retry
  // turned away by the open breaker.
  EXPECT_EQ(r.status().code(), StatusCode::device_error) << r.status().to_string();
  const auto& f = route_telemetry(m->telemetry(), "faulty(reference)");
  EXPECT_EQ(f.requests, 2u);
  EXPECT_EQ(f.retries, 1u);
  EXPECT_EQ(f.breaker.state, BreakerState::open);
}

TEST_F(EngineRetry, NegativeRetriesAreRefused) {
  PrepareOptions o;
  o.same_route_retries = -1;
  auto m = engine_->prepare_bytes(tiny_model_bytes(), o);
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), StatusCode::invalid_argument);
  EXPECT_NE(m.status().message().find("same_route_retries"), std::string::npos);
}

}  // namespace
}  // namespace tandem
