// Route chains over backend and precision: parsing, the default chain, the time each attempt
// gets, and the engine walking chains of three and four routes with faults injected on some of
// them (trips, recovery with a manual clock, budgets under hangs, hedging). Routes on the
// reference backend at bf16/fp16 compute exactly but are routes of their own, which keeps the
// chains independent of the machine's instruction sets.
#include <gtest/gtest.h>

#include <thread>

#include <chrono>
#include <cmath>

#include "backends/backend.h"
#include "engine/routes.h"
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
using Ms = std::chrono::duration<double, std::milli>;

TEST(EngineRoutes, ParseNamesAndErrors) {
  auto r = parse_route("cpu@bf16");
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->backend, "cpu");
  EXPECT_EQ(r->precision, Precision::bf16);
  EXPECT_EQ(r->name(), "cpu@bf16");
  EXPECT_EQ(parse_route("cpu@fp32")->name(), "cpu");
  EXPECT_EQ(parse_route("reference")->precision, Precision::fp32);
  EXPECT_EQ(parse_route("cpu@int4").status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(parse_route("@bf16").status().code(), StatusCode::invalid_argument);
  auto chain = parse_routes("cpu@bf16,cpu@fp32,reference");
  ASSERT_TRUE(chain.is_ok());
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_EQ((*chain)[1].name(), "cpu");
  EXPECT_FALSE(parse_routes(",").is_ok());
}

TEST(EngineRoutes, DefaultChainFollowsWhatTheBackendHonours) {
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "no cpu backend in this build";
  std::vector<std::string> notes;
  auto fp32 = default_chain({cpu}, Precision::fp32, &notes);
  ASSERT_EQ(fp32.size(), 2u);
  EXPECT_EQ(fp32[0].name(), "cpu");
  EXPECT_EQ(fp32[1].name(), "reference");
  EXPECT_TRUE(notes.empty());
  auto bf16 = default_chain({cpu}, Precision::bf16, &notes);
  if (cpu->supports_precision(Precision::bf16).is_ok()) {
    ASSERT_EQ(bf16.size(), 3u);
    EXPECT_EQ(bf16[0].name(), "cpu@bf16");
    EXPECT_EQ(bf16[1].name(), "cpu");
  } else {
    ASSERT_EQ(bf16.size(), 2u);
    ASSERT_EQ(notes.size(), 1u);
    EXPECT_NE(notes[0].find("cpu@bf16"), std::string::npos);
  }
  // No CPU has native fp16 arithmetic for the cpu backend: the route is left out, with a note.
  notes.clear();
  auto fp16 = default_chain({cpu}, Precision::fp16, &notes);
  EXPECT_EQ(fp16.front().name(), "cpu");
  ASSERT_EQ(notes.size(), 1u);
  EXPECT_NE(notes[0].find("fp16"), std::string::npos) << notes[0];
}

TEST(EngineRoutes, AttemptTimeReservesForTheFirstRouteThatFits) {
  const double inf = INFINITY;
  // No deadline: the route's own budget.
  EXPECT_DOUBLE_EQ(attempt_time_ms(0, 3, inf, 40, {21, 5001}), 40);
  // Deadline 160 ms, next route needs 81: the first gets 79.
  EXPECT_DOUBLE_EQ(attempt_time_ms(0, 3, 160, 200, {81, 10001}), 79);
  // The next route does not fit (unknown or too slow): nothing is kept for the last resort
  // that does not fit either.
  EXPECT_DOUBLE_EQ(attempt_time_ms(0, 3, 160, 200, {0, 10001}), 160);
  EXPECT_DOUBLE_EQ(attempt_time_ms(1, 3, 81, 320, {10001}), 81);
  // Four routes: the second does not fit, the third does; the first keeps time for the third.
  EXPECT_DOUBLE_EQ(attempt_time_ms(0, 4, 100, 500, {300, 30, 10001}), 70);
  // The last route takes what remains, whatever its budget.
  EXPECT_DOUBLE_EQ(attempt_time_ms(2, 3, 12, 5, {}), 12);
  // Nothing left after the reserve: no attempt.
  EXPECT_LE(attempt_time_ms(0, 2, 10, 50, {10}), 10);
}

// Engines over route chains, each test with its own engine.
using EngineChainTest = ::testing::Test;

TEST_F(EngineChainTest, ThreeRoutesTripOnlyTheFaultyOneAndRecover) {
  auto engine = make_engine({"reference"});
  auto clock = std::make_shared<ManualClock>();
  PrepareOptions o;
  set_engine_clock(*engine, clock);
  o.routes = {"reference@bf16", "reference@fp16", "reference"};
  o.fault_injection = "route=reference@bf16,error=1.0,recover_after_s=10";
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->capabilities().routes,
            (std::vector<std::string>{"faulty(reference@bf16)", "reference@fp16", "reference"}));
  for (int i = 0; i < 200; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference@fp16");
  }
  ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 0u);
  EXPECT_GE(route_telemetry(t, "faulty(reference@bf16)").breaker.trips, 1u);
  EXPECT_EQ(route_telemetry(t, "faulty(reference@bf16)").precision, "bf16");
  EXPECT_EQ(route_telemetry(t, "reference@fp16").breaker.trips, 0u);
  EXPECT_EQ(route_telemetry(t, "reference").served, 0u);
  // Once the faults stop and the cooldown ends, the first route serves again. Its probes run
  // off the request path (the second route answers meanwhile), so requests go on until the
  // probe thread has closed the breaker.
  clock->advance_ms(60000);
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (m->telemetry().backends[0].breaker.state != BreakerState::closed &&
         std::chrono::steady_clock::now() < give_up) {
    auto during = m->infer(tiny_inputs());
    ASSERT_TRUE(during.is_ok());
    EXPECT_NE(during->backend, "reference");  // the first route once its probes have closed it
  }
  EXPECT_EQ(m->telemetry().backends[0].breaker.state, BreakerState::closed);
  const ModelTelemetry after = m->telemetry();
  EXPECT_GE(route_telemetry(after, "faulty(reference@bf16)").probes, 5u);
  auto r = m->infer(tiny_inputs());
  ASSERT_TRUE(r.is_ok());
  EXPECT_EQ(r->backend, "faulty(reference@bf16)");
}

// A route whose numbers drift answers its probes without errors. Once parity violations have
// opened its breaker, each probe's answer is checked against the reference too, so the route
// stays out for as long as its numbers are wrong instead of closing after a few quiet probes.
TEST_F(EngineChainTest, ProbesOfARouteWithWrongNumbersAreCheckedAndKeepItOpen) {
  auto engine = make_engine({"reference"});
  auto clock = std::make_shared<ManualClock>();
  set_engine_clock(*engine, clock);
  PrepareOptions o;
  o.routes = {"reference@bf16", "reference@fp16", "reference"};
  o.fault_injection = "route=reference@bf16,offset=0.5";
  o.parity_sample_rate = 1.0;
  o.breaker.min_requests = 1000;  // only parity can trip it
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  const std::string drifting = "faulty(reference@bf16)";
  for (int i = 0; i < 3; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, drifting);
    ASSERT_TRUE(m->drain_parity(10000));
  }
  ASSERT_EQ(route_telemetry(m->telemetry(), drifting).breaker.state, BreakerState::open);
  // Each cooldown's end admits a probe, which runs off the request path while the next route
  // answers; wait for each probe's verdict before the next cooldown ends.
  for (uint64_t probes = 1; probes <= 5; ++probes) {
    clock->advance_ms(600000);
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference@fp16");
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (std::chrono::steady_clock::now() < give_up &&
           (route_telemetry(m->telemetry(), drifting).probes < probes ||
            route_telemetry(m->telemetry(), drifting).breaker.state == BreakerState::half_open))
      std::this_thread::yield();
    ASSERT_EQ(route_telemetry(m->telemetry(), drifting).breaker.state, BreakerState::open)
        << "probe " << probes << ": probes seen " << route_telemetry(m->telemetry(), drifting).probes;
  }
  ASSERT_TRUE(m->drain_parity(10000));
  const BackendTelemetry t = route_telemetry(m->telemetry(), drifting);
  EXPECT_EQ(t.probes, 5u);
  EXPECT_EQ(t.parity.violations, 3u + 5u);  // the three samples, then every probe
  EXPECT_EQ(t.failures.at("parity_violation"), 5u);
  EXPECT_EQ(route_telemetry(m->telemetry(), "reference").served, 0u);
}

// In strict mode a probe runs on the request path: its answer is served only once it matches
// the reference, so a route that parity violations opened never hands a client wrong numbers
// as a probe, and it closes again once its numbers are right.
TEST_F(EngineChainTest, StrictProbesOfARouteWithWrongNumbersAreServedOnlyWhenTheyMatch) {
  auto engine = make_engine({"reference"});
  auto clock = std::make_shared<ManualClock>();
  set_engine_clock(*engine, clock);
  PrepareOptions o;
  o.routes = {"reference@bf16", "reference"};
  o.fallback = FallbackPolicy::strict;
  o.fault_injection = "route=reference@bf16,offset=0.5,recover_after_s=1000";
  o.parity_sample_rate = 1.0;
  o.breaker.min_requests = 1000;  // only parity can trip it
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  const std::string drifting = "faulty(reference@bf16)";
  std::vector<float> right;
  {
    auto exact = engine->prepare_bytes(tiny_model_bytes(), PrepareOptions{});
    ASSERT_TRUE(exact.is_ok());
    auto r = (*exact)->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok());
    const Tensor& t = r->outputs.begin()->second.tensor;
    right.assign(t.data<float>(), t.data<float>() + t.numel());
  }
  for (int i = 0; i < 3; ++i) {  // sampled answers, whose violations trip the breaker
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_TRUE(m->drain_parity(10000));
  }
  ASSERT_EQ(route_telemetry(m->telemetry(), drifting).breaker.state, BreakerState::open);
  EXPECT_FALSE(m->infer(tiny_inputs()).is_ok()) << "strict: no fallback while the breaker is open";
  // Before the route recovers: each cooldown's probe answer is checked and refused.
  for (int probe = 0; probe < 2; ++probe) {
    clock->advance_ms(300000);
    auto p = m->infer(tiny_inputs());
    ASSERT_FALSE(p.is_ok()) << "a wrong probe answer was served";
    EXPECT_EQ(p.status().code(), StatusCode::parity_violation) << p.status().to_string();
    EXPECT_EQ(route_telemetry(m->telemetry(), drifting).breaker.state, BreakerState::open);
  }
  EXPECT_EQ(route_telemetry(m->telemetry(), drifting).failures.at("parity_violation"), 2u);
  // Past recover_after_s the answers are right: probes are served and close the breaker.
  clock->advance_ms(600000);
  for (int i = 0; i < 20 && route_telemetry(m->telemetry(), drifting).breaker.state != BreakerState::closed; ++i) {
    auto p = m->infer(tiny_inputs());
    if (!p.is_ok()) {
      clock->advance_ms(600000);
      continue;
    }
    const Tensor& t = p->outputs.begin()->second.tensor;
    EXPECT_EQ(std::vector<float>(t.data<float>(), t.data<float>() + t.numel()), right);
  }
  EXPECT_EQ(route_telemetry(m->telemetry(), drifting).breaker.state, BreakerState::closed);
  EXPECT_EQ(route_telemetry(m->telemetry(), "reference").served, 0u);
}

TEST_F(EngineChainTest, FourRoutesSkipTwoFaultyOnesAndNeverReachTheLastResort) {
  if (!find_backend("cpu")) GTEST_SKIP() << "no cpu backend in this build";
  auto engine = make_engine({"cpu", "reference"});
  PrepareOptions o;
  set_engine_clock(*engine, std::make_shared<ManualClock>());  // breakers stay open once tripped
  o.routes = {"reference@bf16", "reference@fp16", "cpu", "reference"};
  o.fault_injection = "route=reference@bf16,error=1.0;route=reference@fp16,error=0.5,seed=3";
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  ASSERT_EQ(m->capabilities().routes.size(), 4u);
  for (int i = 0; i < 300; ++i) {
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 0u);
  EXPECT_GE(route_telemetry(t, "faulty(reference@bf16)").breaker.trips, 1u);
  EXPECT_GE(route_telemetry(t, "faulty(reference@fp16)").breaker.trips, 1u);
  EXPECT_EQ(route_telemetry(t, "cpu").breaker.trips, 0u);
  EXPECT_GT(route_telemetry(t, "cpu").served, 250u);
  EXPECT_EQ(route_telemetry(t, "reference").served, 0u);
  // Bad chains are refused with one clear reason.
  PrepareOptions bad;
  bad.routes = {"reference", "cpu"};
  EXPECT_EQ(engine->prepare_bytes(tiny_model_bytes(), bad).status().code(), StatusCode::invalid_argument);
  bad.routes = {"cpu", "cpu@fp32"};
  EXPECT_EQ(engine->prepare_bytes(tiny_model_bytes(), bad).status().code(), StatusCode::invalid_argument);
  bad.routes = {"cpu@fp16"};
  EXPECT_EQ(engine->prepare_bytes(tiny_model_bytes(), bad).status().code(), StatusCode::unsupported);
  bad.routes = {"cpu"};
  bad.fault_injection = "route=cpu@bf16,error=0.5";
  EXPECT_EQ(engine->prepare_bytes(tiny_model_bytes(), bad).status().code(), StatusCode::invalid_argument);
}

// A hung first route is abandoned early enough for the next one to answer within the deadline:
// time is kept for the second route, not for the slow last resort.
TEST_F(EngineChainTest, HangOnTheFirstRouteStillAnswersWithinTheDeadline) {
  auto engine = make_engine({"reference"});
  PrepareOptions o;
  set_engine_clock(*engine, std::make_shared<ManualClock>());
  o.routes = {"reference@bf16", "reference@fp16", "reference"};
  o.fault_injection = "route=reference@bf16,hang=1.0,hang_ms=60000";
  o.default_deadline_ms = 100;
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  for (int i = 0; i < 30; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = m->infer(tiny_inputs());
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference@fp16");
    EXPECT_LE(Ms(std::chrono::steady_clock::now() - t0).count(), 150);
  }
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 0u);
  EXPECT_EQ(route_telemetry(t, "reference").requests, 0u);
  EXPECT_GE(route_telemetry(t, "faulty(reference@bf16)").failures.count("timeout"), 1u);
}

// A half-open probe of a route that still hangs does not hold the request: the next route
// answers at once, the probe times out off the request path and opens the breaker again.
TEST_F(EngineChainTest, AProbeOfAHungRouteCostsTheRequestNothing) {
  auto engine = make_engine({"reference"});
  auto clock = std::make_shared<ManualClock>();
  set_engine_clock(*engine, clock);
  PrepareOptions o;
  o.routes = {"reference@bf16", "reference@fp16", "reference"};
  o.fault_injection = "route=reference@bf16,hang=1.0,hang_ms=60000";
  o.min_attempt_budget_ms = 300;
  o.unmeasured_budget_ms = 300;
  o.breaker.min_requests = 2;
  auto m = prepare_model(*engine, o);
  ASSERT_TRUE(m);
  const std::string hung = "faulty(reference@bf16)";
  for (int i = 0; i < 2; ++i) ASSERT_TRUE(m->infer(tiny_inputs()).is_ok());  // each waits one budget
  ASSERT_EQ(route_telemetry(m->telemetry(), hung).breaker.state, BreakerState::open);
  clock->advance_ms(60000);  // past the cooldown: the next request is admitted as a probe
  for (int i = 0; i < 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto r = m->infer(tiny_inputs());
    const double ms = Ms(std::chrono::steady_clock::now() - t0).count();
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(r->backend, "reference@fp16");
    EXPECT_LT(ms, 150) << "the request waited for the probe";
  }
  // The probe (one; the others found it in flight or the breaker open again) fails at its budget.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (route_telemetry(m->telemetry(), hung).breaker.trips < 2 && std::chrono::steady_clock::now() < give_up)
    ASSERT_TRUE(m->infer(tiny_inputs()).is_ok());
  const ModelTelemetry t = m->telemetry();
  EXPECT_EQ(t.failed, 0u);
  EXPECT_GE(route_telemetry(t, hung).probes, 1u);
  EXPECT_EQ(route_telemetry(t, hung).breaker.trips, 2u);
  EXPECT_EQ(route_telemetry(t, hung).breaker.state, BreakerState::open);
  EXPECT_EQ(route_telemetry(t, "reference").requests, 0u);
}

// Hedging: a first route that answers slowly (not an error) is overtaken by the next route;
// the hedge is counted and the slow call is cancelled. Without hedging the slow route serves.
TEST_F(EngineChainTest, HedgingLetsTheNextRouteAnswerASlowCall) {
  auto engine = make_engine({"reference"});
  for (bool hedging : {true, false}) {
    SCOPED_TRACE(hedging ? "hedging" : "no hedging");
    PrepareOptions o;
    set_engine_clock(*engine, std::make_shared<ManualClock>());
    o.routes = {"reference@bf16", "reference"};
    o.fault_injection = "route=reference@bf16,latency_ms=300";
    o.hedging = hedging;
    o.min_attempt_budget_ms = 5000;
    auto m = prepare_model(*engine, o);
    ASSERT_TRUE(m);
    for (int i = 0; i < 3; ++i) {
      const auto t0 = std::chrono::steady_clock::now();
      auto r = m->infer(tiny_inputs());
      const double ms = Ms(std::chrono::steady_clock::now() - t0).count();
      ASSERT_TRUE(r.is_ok()) << r.status().to_string();
      if (hedging) {
        EXPECT_EQ(r->backend, "reference");
        EXPECT_LT(ms, 250);
      } else {
        EXPECT_EQ(r->backend, "faulty(reference@bf16)");
        EXPECT_GE(ms, 290);
      }
    }
    const ModelTelemetry t = m->telemetry();
    EXPECT_EQ(t.failed, 0u);
    EXPECT_EQ(route_telemetry(t, "faulty(reference@bf16)").hedged, hedging ? 3u : 0u);
    EXPECT_EQ(route_telemetry(t, "reference").hedge_wins, hedging ? 3u : 0u);
    EXPECT_EQ(route_telemetry(t, "faulty(reference@bf16)").breaker.trips, 0u) << "slowness is not a fault";
  }
}

}  // namespace
}  // namespace tandem
