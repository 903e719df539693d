// breaker.h: a circuit breaker for one (prepared model, backend) pair.
//
//   closed --(failure rate, SLA-breach rate or parity violations over the window)--> open
//   open --(cooldown elapsed)--> half_open
//   half_open --(half_open_calls probes done, failures and breaches below the trip rates)--> closed
//   half_open --(failures or SLA breaches among those probes reach the trip rates)--> open
//   half_open --(a parity violation)--> open (longer cooldown)
//
// Half-open judges its probes as the closed state judges its window, by rate: a route that
// fails now and then (the faults its fallback absorbs) is not kept out by one unlucky probe,
// while a route that still fails is out again once passing has become impossible.
// A breaker opened by parity violations (and still not closed since) admits its probes with
// `check_parity`: a probe's answer is then compared with the reference before it counts as
// good, since a route whose numbers are wrong answers its probes without an error; wrong
// numbers are no accident, so one failed probe of such a breaker reopens it.
//
// The sliding window holds the last `window_size` outcomes and forgets those older than
// `window_seconds`. Rates are judged once the window holds `min_requests` outcomes. Parity
// violations are counted apart, over `window_seconds` alone: samples are checked a few per
// second while a fast route answers hundreds of requests in between, whose outcomes would push
// every violation out of a window bounded by count before the next one came. Every
// consecutive trip multiplies the cooldown by `backoff_multiplier` (capped); the count starts
// over once the breaker has stayed closed for `window_seconds`.
// While half-open at most `half_open_probes` calls are admitted at once. A probe counts only in
// the half-open round that admitted it: one that answers after its round reopened the breaker
// (and a later round began) is ignored, like a call admitted before a trip.
//
// Usage: `auto a = breaker.admit(); if (a.allowed) { run; breaker.record(a, outcome); }`.
// An admitted call that is not run must be given back with release(a).
// Time comes from the Clock given at construction (borrowed; must outlive the breaker).
// Thread-safety: all methods are thread-safe (one mutex).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <mutex>

#include "engine/clock.h"
#include "tandem/engine.h"
#include "tandem/telemetry.h"

namespace tandem {

class CircuitBreaker {
 public:
  struct Admission {
    bool allowed = false;
    bool probe = false;  // admitted as a half-open probe
    bool check_parity = false;  // a probe of a breaker parity violations opened: check its answer
    uint64_t round = 0;         // the half-open round a probe belongs to; a later round ignores it
  };
  struct Outcome {
    bool success = false;
    bool sla_breach = false;  // a success slower than the SLA
  };

  CircuitBreaker(const BreakerOptions& options, const Clock* clock);

  Admission admit();
  void record(const Admission& admission, const Outcome& outcome);
  void release(const Admission& admission);
  // A parity violation found off the request path (it is not tied to an admission).
  void record_parity_violation();

  BreakerState state() const;
  BreakerSnapshot snapshot() const;

 private:
  using TimePoint = std::chrono::steady_clock::time_point;
  struct Entry {
    TimePoint at;
    bool failure = false;
    bool sla_breach = false;
  };
  void prune(TimePoint now);
  void maybe_trip(TimePoint now);
  void trip(TimePoint now, bool for_parity = false);
  void set_state(BreakerState s);
  std::chrono::steady_clock::duration cooldown() const;

  const BreakerOptions options_;
  const Clock* clock_;
  mutable std::mutex mu_;
  BreakerState state_ = BreakerState::closed;
  std::deque<Entry> window_;
  std::deque<TimePoint> violations_;  // parity violations within window_seconds
  TimePoint open_until_{};
  int consecutive_trips_ = 0;   // trips since the breaker last stayed closed for window_seconds
  TimePoint closed_at_{};       // when it last closed after being open
  int probes_in_flight_ = 0;
  bool parity_tripped_ = false;  // opened by parity violations, not closed since
  uint64_t half_open_round_ = 0;  // rounds begun (each open -> half_open)
  int probes_done_ = 0;          // half-open probes recorded since it last opened ...
  int probe_failures_ = 0;       // ... of which failed
  int probe_breaches_ = 0;       // ... of which were SLA breaches
  uint64_t transitions_ = 0;
  uint64_t trips_ = 0;
};

}  // namespace tandem
