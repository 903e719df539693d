#include "engine/breaker.h"

#include <algorithm>
#include <cmath>

namespace tandem {

CircuitBreaker::CircuitBreaker(const BreakerOptions& options, const Clock* clock)
    : options_(options), clock_(clock ? clock : steady_clock_source()) {}

std::chrono::steady_clock::duration CircuitBreaker::cooldown() const {
  const double base = std::max(0.0, options_.cooldown_ms);
  const double mult = std::max(1.0, options_.backoff_multiplier);
  const int steps = std::max(0, consecutive_trips_ - 1);
  double ms = base * std::pow(mult, std::min(steps, 60));
  ms = std::min(ms, std::max(base, options_.max_cooldown_ms));
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double, std::milli>(ms));
}

void CircuitBreaker::set_state(BreakerState s) {
  if (s == state_) return;
  state_ = s;
  transitions_++;
}

void CircuitBreaker::prune(TimePoint now) {
  const auto max_age = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(std::max(0.0, options_.window_seconds)));
  while (!window_.empty() && (static_cast<int>(window_.size()) > std::max(1, options_.window_size) ||
                              now - window_.front().at > max_age))
    window_.pop_front();
  while (!violations_.empty() && now - violations_.front() > max_age) violations_.pop_front();
}

void CircuitBreaker::trip(TimePoint now, bool for_parity) {
  // The back-off starts over only once the breaker has stayed closed for a whole window: a
  // route that trips again soon after closing (its probes pass but its answers do not, say)
  // stays out for longer each time.
  const auto settled = std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(std::max(0.0, options_.window_seconds)));
  if (state_ == BreakerState::closed && now - closed_at_ >= settled) consecutive_trips_ = 0;
  consecutive_trips_++;
  trips_++;
  // A failed probe re-opens for the reason the breaker opened in the first place.
  if (state_ != BreakerState::half_open) parity_tripped_ = for_parity;
  else parity_tripped_ = parity_tripped_ || for_parity;
  probes_in_flight_ = 0;
  open_until_ = now + cooldown();
  window_.clear();
  violations_.clear();
  set_state(BreakerState::open);
}

void CircuitBreaker::maybe_trip(TimePoint now) {
  prune(now);
  int outcomes = 0, failures = 0, breaches = 0;
  for (const Entry& e : window_) {
    outcomes++;
    failures += e.failure;
    breaches += e.sla_breach;
  }
  if (options_.parity_violations > 0 && static_cast<int>(violations_.size()) >= options_.parity_violations)
    return trip(now, true);
  if (outcomes < std::max(1, options_.min_requests)) return;
  const double n = outcomes;
  if (failures / n >= options_.failure_rate) return trip(now);
  if (options_.sla_breach_rate > 0 && breaches / n >= options_.sla_breach_rate) return trip(now);
}

CircuitBreaker::Admission CircuitBreaker::admit() {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = clock_->now();
  if (state_ == BreakerState::open) {
    if (now < open_until_) return {false, false};
    set_state(BreakerState::half_open);
    half_open_round_++;
    probes_in_flight_ = 0;
    probes_done_ = probe_failures_ = probe_breaches_ = 0;
  }
  if (state_ == BreakerState::half_open) {
    if (probes_in_flight_ >= std::max(1, options_.half_open_probes)) return {false, false};
    probes_in_flight_++;
    return {true, true, parity_tripped_, half_open_round_};
  }
  return {true, false};
}

void CircuitBreaker::release(const Admission& a) {
  if (!a.allowed || !a.probe) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == BreakerState::half_open && a.round == half_open_round_ && probes_in_flight_ > 0) probes_in_flight_--;
}

void CircuitBreaker::record(const Admission& a, const Outcome& outcome) {
  if (!a.allowed) return;
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = clock_->now();
  if (state_ == BreakerState::half_open) {
    // Admitted before the trip, or in an earlier round: says nothing about this round.
    if (!a.probe || a.round != half_open_round_) return;
    if (probes_in_flight_ > 0) probes_in_flight_--;
    if (!outcome.success && a.check_parity) return trip(now);
    probes_done_++;
    probe_failures_ += !outcome.success;
    probe_breaches_ += outcome.success && outcome.sla_breach;
    // Reopens once the failures (breaches) among half_open_calls probes reach the trip rate of
    // that many; a rate of 0 reopens on the first.
    const int calls = std::max(1, options_.half_open_calls);
    auto reached = [calls](int bad, double rate) { return bad > 0 && bad >= rate * calls; };
    if (reached(probe_failures_, options_.failure_rate) ||
        (options_.sla_breach_rate > 0 && reached(probe_breaches_, options_.sla_breach_rate)))
      return trip(now);
    if (probes_done_ >= calls) {
      closed_at_ = now;
      parity_tripped_ = false;
      window_.clear();
      violations_.clear();
      set_state(BreakerState::closed);
    }
    return;
  }
  if (state_ == BreakerState::open) return;  // late news from before the trip
  window_.push_back({now, !outcome.success, outcome.sla_breach});
  maybe_trip(now);
}

void CircuitBreaker::record_parity_violation() {
  std::lock_guard<std::mutex> lock(mu_);
  const TimePoint now = clock_->now();
  if (state_ == BreakerState::open) return;
  if (state_ == BreakerState::half_open) return trip(now, true);
  if (options_.parity_violations <= 0) return;
  violations_.push_back(now);
  maybe_trip(now);
}

BreakerState CircuitBreaker::state() const {
  std::lock_guard<std::mutex> lock(mu_);
  return state_;
}

BreakerSnapshot CircuitBreaker::snapshot() const {
  std::lock_guard<std::mutex> lock(mu_);
  BreakerSnapshot s;
  s.state = state_;
  s.transitions = transitions_;
  s.trips = trips_;
  s.cooldown_ms = std::chrono::duration<double, std::milli>(cooldown()).count();
  for (const Entry& e : window_) {
    s.window_requests++;
    s.window_failures += e.failure;
  }
  return s;
}

}  // namespace tandem
