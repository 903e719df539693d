// The circuit breaker state machine, driven by a manual clock (no sleeps).
#include <gtest/gtest.h>

#include <random>

#include "engine/breaker.h"
#include "engine_test_util.h"

namespace tandem {
namespace {

using testing_util::ManualClock;

BreakerOptions small_options() {
  BreakerOptions o;
  o.window_size = 10;
  o.window_seconds = 60;
  o.min_requests = 5;
  o.failure_rate = 0.5;
  o.cooldown_ms = 1000;
  o.backoff_multiplier = 2;
  o.max_cooldown_ms = 5000;
  o.half_open_probes = 2;
  o.half_open_calls = 3;
  o.parity_violations = 2;
  return o;
}

void feed(CircuitBreaker& b, bool success, int n = 1, bool breach = false) {
  for (int i = 0; i < n; ++i) {
    auto a = b.admit();
    ASSERT_TRUE(a.allowed);
    b.record(a, {success, breach});
  }
}

TEST(EngineBreaker, StaysClosedBelowMinRequests) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  feed(b, false, 4);  // 100% failures but only 4 outcomes
  EXPECT_EQ(b.state(), BreakerState::closed);
  feed(b, false, 1);
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.snapshot().trips, 1u);
}

TEST(EngineBreaker, TripsOnFailureRateOnly) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  for (int i = 0; i < 20; ++i) feed(b, i % 3 != 0);  // 1 in 3 fails: below 0.5
  EXPECT_EQ(b.state(), BreakerState::closed);
  feed(b, false, 1);  // 4 of the last 10 fail
  EXPECT_EQ(b.state(), BreakerState::closed);
  feed(b, false, 1);  // 5 of the last 10: the rate reaches 0.5
  EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(EngineBreaker, OpenRejectsUntilCooldownThenHalfOpenLimitsProbes) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  feed(b, false, 5);
  ASSERT_EQ(b.state(), BreakerState::open);
  EXPECT_FALSE(b.admit().allowed);
  clock.advance_ms(999);
  EXPECT_FALSE(b.admit().allowed);
  clock.advance_ms(1);
  auto p1 = b.admit();
  auto p2 = b.admit();
  auto p3 = b.admit();
  EXPECT_TRUE(p1.allowed && p1.probe);
  EXPECT_TRUE(p2.allowed && p2.probe);
  EXPECT_FALSE(p3.allowed);  // at most two probes in flight
  EXPECT_EQ(b.state(), BreakerState::half_open);
  b.release(p2);  // a probe given back frees its slot
  auto p4 = b.admit();
  EXPECT_TRUE(p4.allowed);
  b.record(p1, {true, false});
  b.record(p4, {true, false});
  EXPECT_EQ(b.state(), BreakerState::half_open);  // 2 of 3 good probes
  auto p5 = b.admit();
  b.record(p5, {true, false});
  EXPECT_EQ(b.state(), BreakerState::closed);
  // closed -> open -> half_open -> closed
  EXPECT_EQ(b.snapshot().transitions, 3u);
}

TEST(EngineBreaker, FailedProbeReopensWithExponentialBackoffCapped) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  feed(b, false, 5);
  EXPECT_DOUBLE_EQ(b.snapshot().cooldown_ms, 1000);
  clock.advance_ms(1000);  // now at the end of the first open period
  for (double cooldown : {2000.0, 4000.0, 5000.0, 5000.0}) {
    // Two failures of three probes: at a failure rate of 0.5, passing is no longer possible.
    auto p = b.admit();
    auto q = b.admit();
    ASSERT_TRUE(p.allowed && p.probe && q.allowed && q.probe);
    b.record(p, {false, false});
    ASSERT_EQ(b.state(), BreakerState::half_open);
    b.record(q, {false, false});
    ASSERT_EQ(b.state(), BreakerState::open);
    EXPECT_DOUBLE_EQ(b.snapshot().cooldown_ms, cooldown);
    clock.advance_ms(cooldown - 1);
    EXPECT_FALSE(b.admit().allowed);  // not a moment before the longer cooldown ends
    clock.advance_ms(1);
  }
  EXPECT_EQ(b.snapshot().trips, 5u);
  auto close = [&] {
    for (int i = 0; i < 3; ++i) {
      auto p = b.admit();
      ASSERT_TRUE(p.allowed);
      b.record(p, {true, false});
    }
    EXPECT_EQ(b.state(), BreakerState::closed);
  };
  // Tripping again soon after closing keeps the longer cooldown: the probes passed but the
  // route did not recover.
  close();
  feed(b, false, 5);
  EXPECT_DOUBLE_EQ(b.snapshot().cooldown_ms, 5000);
  // Closed for a whole window (60 s), the back-off starts over.
  clock.advance_ms(5000);
  close();
  clock.advance_ms(60000);
  feed(b, false, 5);
  EXPECT_DOUBLE_EQ(b.snapshot().cooldown_ms, 1000);
}

TEST(EngineBreaker, WindowForgetsOldOutcomesByTimeAndCount) {
  ManualClock clock;
  BreakerOptions o = small_options();
  o.window_seconds = 10;
  CircuitBreaker b(o, &clock);
  feed(b, false, 2);
  feed(b, true, 2);
  clock.advance_ms(11000);  // the failures age out
  feed(b, true, 2);
  feed(b, false, 2);  // 2 failures of 4 recent outcomes: below min_requests=5 of recent ones
  EXPECT_EQ(b.state(), BreakerState::closed);
  EXPECT_EQ(b.snapshot().window_requests, 4);
  // Count bound: only the last 10 outcomes count.
  o.min_requests = 10;
  CircuitBreaker c(o, &clock);
  feed(c, false, 4);
  feed(c, true, 10);  // pushes the failures out
  EXPECT_EQ(c.snapshot().window_failures, 0);
  EXPECT_EQ(c.snapshot().window_requests, 10);
  EXPECT_EQ(c.state(), BreakerState::closed);
}

TEST(EngineBreaker, TripsOnSlaBreaches) {
  ManualClock clock;
  BreakerOptions o = small_options();
  o.sla_breach_rate = 0.6;
  CircuitBreaker b(o, &clock);
  feed(b, true, 2, true);
  feed(b, true, 2, false);
  feed(b, true, 1, true);  // 3 of 5 slow
  EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(EngineBreaker, TripsOnParityViolations) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  feed(b, true, 3);
  b.record_parity_violation();
  EXPECT_EQ(b.state(), BreakerState::closed);
  b.record_parity_violation();
  EXPECT_EQ(b.state(), BreakerState::open);
  // A violation found while half-open reopens at once.
  clock.advance_ms(1000);
  auto p = b.admit();
  ASSERT_TRUE(p.probe);
  b.record_parity_violation();
  EXPECT_EQ(b.state(), BreakerState::open);
  EXPECT_EQ(b.snapshot().trips, 2u);
}

// A route that parity violations opened answers its probes without errors even while its numbers
// are wrong: its probes are admitted with check_parity until it closes; probes of a breaker that
// failures opened are not.
TEST(EngineBreaker, ProbesOfAParityTripAreCheckedUntilItCloses) {
  ManualClock clock;
  BreakerOptions o = small_options();
  o.half_open_calls = 2;
  CircuitBreaker b(o, &clock);
  b.record_parity_violation();
  b.record_parity_violation();
  ASSERT_EQ(b.state(), BreakerState::open);
  clock.advance_ms(1000);
  auto p = b.admit();
  ASSERT_TRUE(p.probe);
  EXPECT_TRUE(p.check_parity);
  b.record(p, {false, false});  // the probe's answer violated parity: open again at once, still checked
  ASSERT_EQ(b.state(), BreakerState::open);
  clock.advance_ms(5000);
  for (int i = 0; i < 2; ++i) {
    auto q = b.admit();
    ASSERT_TRUE(q.probe);
    EXPECT_TRUE(q.check_parity);
    b.record(q, {true, false});
  }
  ASSERT_EQ(b.state(), BreakerState::closed);
  EXPECT_FALSE(b.admit().check_parity);

  CircuitBreaker failing(o, &clock);
  feed(failing, false, 5);
  ASSERT_EQ(failing.state(), BreakerState::open);
  clock.advance_ms(1000);
  auto f = failing.admit();
  ASSERT_TRUE(f.probe);
  EXPECT_FALSE(f.check_parity);
}

// Parity samples are checked a few per second while a fast route answers hundreds of requests:
// the outcomes in between must not push the violations out of the window (which is bounded by
// count), but violations older than window_seconds are forgotten.
TEST(EngineBreaker, ParityViolationsTripAmongManySuccesses) {
  ManualClock clock;
  BreakerOptions o = small_options();
  o.parity_violations = 3;
  CircuitBreaker b(o, &clock);
  for (int i = 0; i < 2; ++i) {
    b.record_parity_violation();
    feed(b, true, 50);  // five windows' worth of good outcomes
    clock.advance_ms(200);
  }
  EXPECT_EQ(b.state(), BreakerState::closed);
  b.record_parity_violation();
  EXPECT_EQ(b.state(), BreakerState::open);

  CircuitBreaker late(o, &clock);
  late.record_parity_violation();
  late.record_parity_violation();
  clock.advance_ms(61000);  // past window_seconds: those two are forgotten
  late.record_parity_violation();
  late.record_parity_violation();
  EXPECT_EQ(late.state(), BreakerState::closed);
  late.record_parity_violation();
  EXPECT_EQ(late.state(), BreakerState::open);
}

// Half-open judges its probes by rate, as the closed state judges its window: one failure among
// them does not keep a route out, failures (or SLA breaches) reaching the trip rate of
// half_open_calls probes reopen it as soon as they do.
TEST(EngineBreaker, HalfOpenJudgesItsProbesByRate) {
  ManualClock clock;
  BreakerOptions o = small_options();
  o.half_open_calls = 4;
  o.half_open_probes = 4;
  o.sla_breach_rate = 0.5;
  CircuitBreaker b(o, &clock);
  auto probe = [&](bool success, bool breach = false) {
    auto a = b.admit();
    ASSERT_TRUE(a.allowed && a.probe);
    b.record(a, {success, breach});
  };
  feed(b, false, 5);
  clock.advance_ms(1000);
  probe(false);
  probe(true);
  probe(true);
  EXPECT_EQ(b.state(), BreakerState::half_open);
  probe(true);  // one failure of four: below 0.5
  EXPECT_EQ(b.state(), BreakerState::closed);

  feed(b, false, 5);
  clock.advance_ms(60000);
  probe(true);
  probe(false);
  EXPECT_EQ(b.state(), BreakerState::half_open);
  probe(false);  // two of four can no longer stay below 0.5: open again without a fourth
  EXPECT_EQ(b.state(), BreakerState::open);

  clock.advance_ms(60000);
  probe(true, true);
  probe(true);
  EXPECT_EQ(b.state(), BreakerState::half_open);
  probe(true, true);  // SLA breaches are judged the same way, against sla_breach_rate
  EXPECT_EQ(b.state(), BreakerState::open);

  // A rate of 0 keeps the strictest rule: the first failed probe reopens.
  o.failure_rate = 0;
  CircuitBreaker strict(o, &clock);
  feed(strict, false, 5);
  clock.advance_ms(1000);
  auto a = strict.admit();
  strict.record(a, {false, false});
  EXPECT_EQ(strict.state(), BreakerState::open);
}

// The defaults keep a route that fails now and then (the faults its fallback absorbs request by
// request) and take out one that fails most calls. 200,000 outcomes at 10% random failures (the
// serve benchmark's soak injects that rate). At the old default of 0.2 a simulation of the same
// window tripped about once every 7,000 outcomes, mostly just after a trip cleared it (4 of 20).
TEST(EngineBreaker, DefaultsServeThroughOccasionalFailures) {
  ManualClock clock;
  auto trips_at = [&](double rate, int outcomes) {
    CircuitBreaker b(BreakerOptions{}, &clock);
    std::mt19937 rng(7);
    std::bernoulli_distribution fails(rate);
    for (int i = 0; i < outcomes; ++i) {
      auto a = b.admit();
      if (!a.allowed) {
        clock.advance_ms(100000);  // past any cooldown
        continue;
      }
      b.record(a, {!fails(rng), false});
      clock.advance_ms(1);
    }
    return b.snapshot().trips;
  };
  EXPECT_EQ(trips_at(0.1, 200000), 0u);
  EXPECT_EQ(trips_at(0.3, 20000), 0u);
  EXPECT_GE(trips_at(0.9, 2000), 1u);
  EXPECT_GE(trips_at(1.0, 2000), 1u);
  // Recovery: a dead route back at 10% failures closes on its first half-open round most of the
  // time (no 3 failures in 5 probes: 99%), where five good probes in a row passed 59% of the time.
  CircuitBreaker b(BreakerOptions{}, &clock);
  for (int i = 0; i < 20; ++i) {
    auto a = b.admit();
    b.record(a, {false, false});
  }
  ASSERT_EQ(b.state(), BreakerState::open);
  clock.advance_ms(1000);
  std::mt19937 rng(11);
  std::bernoulli_distribution fails(0.1);
  int rounds = 0;
  while (b.state() != BreakerState::closed && rounds < 100) {
    auto a = b.admit();
    if (!a.allowed) {
      clock.advance_ms(100000);
      rounds++;
      continue;
    }
    b.record(a, {!fails(rng), false});
  }
  EXPECT_EQ(b.state(), BreakerState::closed);
  EXPECT_LE(rounds, 1);
}

// A probe that answers after its round reopened the breaker counts in no later round, and
// giving it back frees no slot of the later round.
TEST(EngineBreaker, ProbesCountOnlyInTheirOwnRound) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);  // 3 probes per round, 2 at once, reopen at 2 failures
  feed(b, false, 5);
  clock.advance_ms(1000);
  auto late = b.admit();
  auto q = b.admit();
  ASSERT_TRUE(late.probe && q.probe);
  b.record(q, {false, false});
  auto r = b.admit();
  ASSERT_TRUE(r.probe);
  b.record(r, {false, false});
  ASSERT_EQ(b.state(), BreakerState::open);
  clock.advance_ms(2000);
  auto a = b.admit();
  ASSERT_TRUE(a.probe);
  b.record(late, {false, false});  // from the first round: not this round's second failure
  EXPECT_EQ(b.state(), BreakerState::half_open);
  auto c = b.admit();
  ASSERT_TRUE(c.probe);
  EXPECT_FALSE(b.admit().allowed);  // two in flight
  b.release(late);                  // not this round's: frees nothing
  EXPECT_FALSE(b.admit().allowed);
  b.record(a, {false, false});
  EXPECT_EQ(b.state(), BreakerState::half_open);  // one failure of this round
  b.record(c, {true, false});
  auto d = b.admit();
  b.record(d, {true, false});
  EXPECT_EQ(b.state(), BreakerState::closed);
}

TEST(EngineBreaker, LateResultsDoNotCountAsProbes) {
  ManualClock clock;
  CircuitBreaker b(small_options(), &clock);
  auto early = b.admit();  // admitted while closed
  feed(b, false, 5);
  ASSERT_EQ(b.state(), BreakerState::open);
  b.record(early, {true, false});  // ignored while open
  clock.advance_ms(1000);
  auto probe = b.admit();
  ASSERT_TRUE(probe.probe);
  b.record(early, {true, false});  // not a probe: ignored
  b.record(early, {true, false});
  b.record(early, {true, false});
  EXPECT_EQ(b.state(), BreakerState::half_open);
}

}  // namespace
}  // namespace tandem
