// The request path of a prepared model: the route walk with time budgets, fallback, hedging
// and parity sampling (see prepared_model_impl.h).
#include <algorithm>
#include <cmath>
#include <optional>

#include "engine/inputs.h"
#include "engine/prepared_model_impl.h"
#include "engine/routes.h"

namespace tandem::engine_internal {

ShapeLatencyView PreparedModelImpl::latency_view(const RouteSlot& s, const ShapeKey& shape) const {
  std::lock_guard<std::mutex> lock(s.mu);
  return s.by_shape.view(shape, opts_.hedge_quantile);
}

double PreparedModelImpl::estimate_ms(const RouteSlot& s, const ShapeKey& shape) const {
  return latency_view(s, shape).estimate_ms;
}

double PreparedModelImpl::typical_ms(const RouteSlot& s, const ShapeKey& shape) const {
  return latency_view(s, shape).typical_ms;
}

double PreparedModelImpl::hedge_after_ms(const RouteSlot& s, const ShapeKey& shape) const {
  return latency_view(s, shape).hedge_after_ms;
}

double PreparedModelImpl::attempt_budget_ms(const RouteSlot& s, const ShapeKey& shape) const {
  const ShapeLatencyView v = latency_view(s, shape);
  const double wanted_ms = v.estimate_ms * opts_.attempt_budget_multiplier;
  if (v.measured) return std::max(opts_.min_attempt_budget_ms, wanted_ms);
  // Scaled from another shape: a guess, which from a tiny warm-up input (its time mostly fixed
  // overhead) runs far too high; kept between the unmeasured budget and 30 times it.
  const double floor_ms = std::max(opts_.min_attempt_budget_ms, opts_.unmeasured_budget_ms);
  return std::clamp(wanted_ms, floor_ms, std::max(floor_ms, 30 * opts_.unmeasured_budget_ms));
}

Result<InferResult> PreparedModelImpl::fail(Status s, SteadyClock::time_point t0, const InferTimings& timings) {
  std::lock_guard<std::mutex> lock(mu_);
  requests_++;
  failed_++;
  failures_[std::string(status_code_name(s.code()))]++;
  queue_s_ += timings.queue_ms / 1e3;
  compute_s_ += timings.compute_ms / 1e3;
  (void)t0;
  return s;
}


Result<InferResult> PreparedModelImpl::infer(const std::map<std::string, Value>& inputs, const InferOptions& options) {
  const SteadyClock::time_point t0 = SteadyClock::now();
  const uint64_t request_id = request_counter_.fetch_add(1);
  SteadyClock::time_point deadline = options.deadline;
  if (deadline == SteadyClock::time_point::max()) {
    const double ms = options.timeout_ms > 0 ? options.timeout_ms : opts_.default_deadline_ms;
    if (ms > 0) deadline = t0 + ms_duration(ms);
  }
  InferTimings timings;
  const CancelCheck cancel_check(options.cancel, options.interrupted, options.interrupted_context);
  const CancelCheck* cancel = cancel_check.active() ? &cancel_check : nullptr;
  auto is_cancelled = [&] { return cancel && cancel->requested(); };
  auto bound = bind_inputs(*graph_, inputs);
  if (!bound) return fail(bound.status().with_prefix("model '" + name_ + "': "), t0, timings);
  const ShapeKey shape = ShapeKey::of(*bound);

  const bool strict = opts_.fallback == FallbackPolicy::strict;
  const size_t n_routes = strict ? 1 : routes_.size();
  std::string reasons;
  Status last_error;
  int attempts = 0;
  auto note_fallback = [&](RouteSlot& s, const std::string& kind, const std::string& detail) {
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.fallbacks[kind]++;
    }
    reasons += (reasons.empty() ? "" : "; ") + s.route->name + ": " + (detail.empty() ? kind : detail);
  };

  // One call on one route.
  struct Attempt {
    size_t index = 0;
    RouteSlot* slot = nullptr;
    CircuitBreaker::Admission admission;
    std::shared_ptr<WorkerPool::Call> call;  // null: the submit failed (outcome says why)
    double budget_ms = 0;
    SteadyClock::time_point call_deadline;
    bool resolved = false;  // the outcome below is final
    Status outcome;
    std::vector<Value> outputs;
    double queue_ms = 0, compute_ms = 0;
    bool no_verdict = false;  // a parity-checked probe whose answer could not be checked in time
    bool transient = false;   // the backend itself answered device_error (retryable)
  };
  // The time route `index` may take now (routes.h), or <= 0 when there is none.
  auto budget_for = [&](size_t index, SteadyClock::time_point now) {
    const RouteSlot& s = *routes_[index];
    const double remaining_ms = deadline == SteadyClock::time_point::max() ? INFINITY : ms_between(now, deadline);
    if (strict) return std::min(attempt_budget_ms(s, shape), remaining_ms);
    std::vector<double> later;
    for (size_t j = index + 1; j < n_routes; ++j)
      later.push_back(fallback_reserve_ms(typical_ms(*routes_[j], shape), opts_.fallback_reserve_multiplier));
    return attempt_time_ms(index, n_routes, remaining_ms, attempt_budget_ms(s, shape), later);
  };
  auto start = [&](size_t index, CircuitBreaker::Admission admission, double budget_ms, SteadyClock::time_point now) {
    Attempt a;
    a.index = index;
    a.slot = routes_[index].get();
    a.admission = admission;
    a.budget_ms = budget_ms;
    a.call_deadline = std::isinf(budget_ms) ? SteadyClock::time_point::max() : now + ms_duration(budget_ms);
    std::shared_ptr<Route> route = a.slot->route;
    std::vector<Value> call_inputs = *bound;
    auto call = a.slot->pool->submit(
        [route, call_inputs = std::move(call_inputs)](const RunControl& c, std::vector<Value>* out) {
          return route->placed->run(call_inputs, out, c);
        },
        a.call_deadline);
    attempts++;
    if (call) {
      a.call = *call;
    } else {
      a.resolved = true;
      a.outcome = call.status();
    }
    return a;
  };
  // Reads a finished call's outcome (checks the outputs).
  auto take = [&](Attempt& a) {
    a.resolved = true;
    a.outcome = a.call->status;
    a.outputs = std::move(a.call->outputs);
    a.transient = a.outcome.code() == StatusCode::device_error;
    const std::string& name = a.slot->route->name;
    if (a.outcome.is_ok() && a.outputs.size() != graph_->outputs.size())
      a.outcome = internal_error("[" + name + "] returned " + std::to_string(a.outputs.size()) + " outputs, expected " +
                                 std::to_string(graph_->outputs.size()));
    std::string where;
    if (a.outcome.is_ok() && opts_.output_guard && !all_finite(a.outputs, graph_->outputs, &where))
      a.outcome = Status(StatusCode::device_error, "[" + name + "] output '" + where + "' has non-finite values (output guard)");
    // A probe of a breaker that parity violations opened, answered on the request path (strict
    // mode, or no faster route to answer instead): its answer is served, and counts for the
    // breaker, only once it matches the reference, run here within the request's deadline.
    if (a.outcome.is_ok() && a.admission.check_parity && parity_) {
      RunControl control;
      control.deadline = deadline;
      control.cancel = options.cancel;
      a.outcome = check_probe_answer(*a.slot, *bound, a.outputs, control);
      a.no_verdict = !a.outcome.is_ok() && a.outcome.code() != StatusCode::parity_violation;
      if (a.no_verdict)
        a.outcome = Status(a.outcome.code() == StatusCode::cancelled ? StatusCode::cancelled : StatusCode::timeout,
                           "[" + name + "] probe answer not served: the reference could not check it (" +
                               a.outcome.message() + ")");
    }
  };
  // Stops waiting for a call: abandoned at its budget (a timeout), or as the loser of a hedge.
  auto abandon = [&](Attempt& a, bool at_budget) {
    const auto waited = a.slot->pool->wait(*a.call, SteadyClock::now(), nullptr, &a.queue_ms, &a.compute_ms);
    if (waited == WorkerPool::WaitResult::done) {
      take(a);
      return;
    }
    a.resolved = true;
    a.outcome = at_budget ? Status(StatusCode::timeout, "[" + a.slot->route->name + "] call abandoned after " +
                                                            std::to_string(static_cast<int64_t>(a.budget_ms)) +
                                                            " ms (its time budget)")
                          : Status(StatusCode::cancelled, "[" + a.slot->route->name + "] lost a hedge");
  };
  auto account_time = [&](const Attempt& a) {
    timings.queue_ms += a.queue_ms;
    timings.compute_ms += a.compute_ms;
  };
  // Records a failed attempt; returns the error that ends the request, if it does. A timeout
  // is the backend's fault only when the call had at least the time the route usually needs
  // (its estimate); one cut shorter by a tight request deadline says nothing of its health.
  // `retry` (in/out): a retry on the same route is wanted; it stays true when the breaker is
  // still closed once this failure is recorded (else the failure is handled as any other), and
  // the request then neither ends nor moves on.
  auto record_failure = [&](Attempt& a, bool* retry = nullptr) -> std::optional<Status> {
    RouteSlot& s = *a.slot;
    const std::string kind(status_code_name(a.outcome.code()));
    const bool starved = a.outcome.code() == StatusCode::timeout && a.budget_ms < estimate_ms(s, shape);
    const bool backend_fault = !is_request_error(a.outcome.code()) && a.outcome.code() != StatusCode::unsupported &&
                               !starved && !a.no_verdict;
    if (backend_fault)
      s.breaker->record(a.admission, {false, false});
    else
      s.breaker->release(a.admission);
    const bool retrying = retry && *retry && s.breaker->state() == BreakerState::closed;
    if (retry) *retry = retrying;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.requests++;
      s.failures[kind]++;
      s.queue_s += a.queue_ms / 1e3;
      s.compute_s += a.compute_ms / 1e3;
      s.retries += retrying;
      if (backend_fault) s.last_fault = kind + ": " + a.outcome.message();
    }
    if (retrying) {
      last_error = a.outcome;
      return std::nullopt;
    }
    const std::string prefix = "model '" + name_ + "': backend " + s.route->name + ": ";
    if (is_request_error(a.outcome.code())) return a.outcome.with_prefix(prefix);
    if (strict) return a.outcome.with_prefix(prefix + "(strict mode, no fallback) ");
    last_error = a.outcome;
    if (a.index + 1 < n_routes) note_fallback(s, kind, kind + ": " + a.outcome.message());
    return std::nullopt;
  };
  // The loser of a hedge: its breaker admission is released (slowness is not a fault).
  auto record_loser = [&](Attempt& a) {
    a.slot->breaker->release(a.admission);
    std::lock_guard<std::mutex> lock(a.slot->mu);
    a.slot->requests++;
    a.slot->queue_s += a.queue_ms / 1e3;
    a.slot->compute_s += a.compute_ms / 1e3;
  };
  auto succeed = [&](Attempt& a, bool hedge_win) -> Result<InferResult> {
    RouteSlot& s = *a.slot;
    const double attempt_ms = a.queue_ms + a.compute_ms;
    const bool breach = opts_.latency_sla_ms > 0 && attempt_ms > opts_.latency_sla_ms;
    s.breaker->record(a.admission, {true, breach});
    {
      std::lock_guard<std::mutex> lock(s.mu);
      s.requests++;
      s.successes++;
      s.served++;
      s.hedge_wins += hedge_win;
      s.sla_breaches += breach;
      s.latency.record_seconds(attempt_ms / 1e3);
      s.by_shape.record(shape, attempt_ms);
      s.queue_s += a.queue_ms / 1e3;
      s.compute_s += a.compute_ms / 1e3;
    }
    // Parity sampling: a share of the answers of non-reference routes, re-run off the request path.
    if (parity_ && !s.route->reference_only) {
      const double u = static_cast<double>(mix64(opts_.seed ^ mix64(request_id)) >> 11) * (1.0 / 9007199254740992.0);
      if (u < opts_.parity_sample_rate) {
        // A sample the sampler has no room for is dropped before it is copied.
        bool taken = parity_->has_room(tensor_bytes(*bound) + tensor_bytes(a.outputs));
        if (taken) {
          std::vector<Value> in_copy, out_copy;
          for (const Value& v : *bound) in_copy.push_back(deep_copy(v));
          for (const Value& v : a.outputs) out_copy.push_back(deep_copy(v));
          taken = parity_->offer(static_cast<int>(a.index), std::move(in_copy), std::move(out_copy));
        }
        if (!taken) {
          std::lock_guard<std::mutex> lock(s.mu);
          s.parity.dropped++;
        }
      }
    }
    InferResult result;
    for (size_t k = 0; k < a.outputs.size(); ++k) {
      result.outputs[graph_->outputs[k].name] = std::move(a.outputs[k]);
      result.output_order.push_back(graph_->outputs[k].name);
    }
    result.backend = s.route->name;
    result.fallback_reason = reasons;
    result.attempts = attempts;
    timings.total_ms = ms_between(t0, SteadyClock::now());
    result.timings = timings;
    std::lock_guard<std::mutex> lock(mu_);
    requests_++;
    succeeded_++;
    fallbacks_ += a.index > 0;
    latency_.record_seconds(timings.total_ms / 1e3);
    queue_s_ += timings.queue_ms / 1e3;
    compute_s_ += timings.compute_ms / 1e3;
    return result;
  };
  // True when a route after `index`, other than the last resort, is not open and can answer
  // in the time left.
  auto fast_route_after = [&](size_t index, SteadyClock::time_point now) {
    const double remaining_ms = deadline == SteadyClock::time_point::max() ? INFINITY : ms_between(now, deadline);
    for (size_t j = index + 1; j + 1 < n_routes; ++j) {
      if (routes_[j]->breaker->state() == BreakerState::open) continue;
      const double e = typical_ms(*routes_[j], shape);
      if (e <= 0 || e * opts_.fallback_reserve_multiplier < remaining_ms) return true;
    }
    return false;
  };
  auto cancelled = [&] {
    return fail(Status(StatusCode::cancelled, "model '" + name_ + "': the request was cancelled"), t0, timings);
  };
  // Whether a failed call is worth making again on its route (PrepareOptions::
  // same_route_retries): a transient device error, retries left, not a half-open probe (the
  // breaker judges those), and time left, after what later routes keep back, for the route's
  // usual latency or the failed call's, whichever is longer (a device that fails late would
  // fail the retry late too). record_failure() adds the last condition: the breaker still
  // closed with this failure counted.
  int retries_left = 0;  // set for each route as the walk reaches it
  auto worth_retrying = [&](const Attempt& a) {
    if (!a.transient || retries_left <= 0 || is_cancelled() || a.admission.probe) return false;
    const double needed_ms = std::max(typical_ms(*a.slot, shape), a.queue_ms + a.compute_ms);
    return budget_for(a.index, SteadyClock::now()) > needed_ms;
  };

  bool call_again = false;  // the next pass calls route i again (a retry)
  for (size_t i = 0; i < n_routes; i += call_again ? 0 : 1) {
    if (!call_again) retries_left = opts_.same_route_retries;
    call_again = false;
    RouteSlot& slot = *routes_[i];
    const bool final_route = (i + 1 == n_routes);
    if (is_cancelled()) return cancelled();
    SteadyClock::time_point now = SteadyClock::now();
    if (now >= deadline) {
      last_error = Status(StatusCode::timeout, "the deadline passed before " + slot.route->name + " could run");
      break;
    }
    CircuitBreaker::Admission admission = slot.breaker->admit();
    // The last fallback route is the answer of last resort: its breaker is tracked but never
    // turns a request away.
    if (!admission.allowed && final_route && !strict) admission = {true, false};
    // An open breaker never sends a request to certain failure: when no later route can answer
    // in the time left (its usual latency is longer), the route is tried anyway.
    if (!admission.allowed && !strict && deadline != SteadyClock::time_point::max()) {
      const double remaining_ms = ms_between(now, deadline);
      bool later_fits = false;
      for (size_t j = i + 1; j < n_routes && !later_fits; ++j) {
        const double e = typical_ms(*routes_[j], shape);
        later_fits = e <= 0 || e < remaining_ms;
      }
      if (!later_fits) admission = {true, false};
    }
    // A half-open probe does not hold the request: when a faster route than the last resort
    // can answer in time, that route answers and the probe runs off the request path (background_queue.h).
    if (admission.probe && !strict && !final_route && fast_route_after(i, now)) {
      if (!offer_probe(i, admission, *bound)) slot.breaker->release(admission);
      note_fallback(slot, "breaker_half_open", "");
      last_error = Status(StatusCode::unavailable, "backend " + slot.route->name + " circuit breaker half-open");
      continue;
    }
    if (!admission.allowed) {
      if (strict)
        return fail(Status(StatusCode::unavailable, "model '" + name_ + "': backend " + slot.route->name +
                                                        " is unavailable (circuit breaker open); strict mode forbids fallback"),
                    t0, timings);
      note_fallback(slot, "breaker_open", "");
      last_error = Status(StatusCode::unavailable, "backend " + slot.route->name + " circuit breaker open");
      continue;
    }
    const double budget_ms = budget_for(i, now);
    if (budget_ms <= 0) {
      slot.breaker->release(admission);
      note_fallback(slot, "no_time", "no time left before the deadline");
      last_error = Status(StatusCode::timeout, "no time left for backend " + slot.route->name);
      continue;
    }
    Attempt a = start(i, admission, budget_ms, now);

    // Hedging: past the route's hedge point with no answer, start the request on the next
    // admitted route as well.
    std::optional<Attempt> h;
    if (a.call && opts_.hedging && !strict && !final_route) {
      const double after = hedge_after_ms(slot, shape);
      if (after > 0 && now + ms_duration(after) < a.call_deadline &&
          !slot.pool->wait_done(*a.call, now + ms_duration(after), cancel)) {
        for (size_t j = i + 1; j < n_routes && !h && !is_cancelled(); ++j) {
          RouteSlot& hs = *routes_[j];
          CircuitBreaker::Admission hadm = hs.breaker->admit();
          if (!hadm.allowed && j + 1 == n_routes) hadm = {true, false};
          if (!hadm.allowed) continue;
          const SteadyClock::time_point hnow = SteadyClock::now();
          const double hbudget = budget_for(j, hnow);
          if (hbudget <= 0) {
            hs.breaker->release(hadm);
            continue;
          }
          h = start(j, hadm, hbudget, hnow);
          if (!h->call) {  // could not even start: no hedge
            hs.breaker->release(hadm);
            h.reset();
            continue;
          }
          std::lock_guard<std::mutex> lock(slot.mu);
          slot.hedged++;
        }
      }
    }

    if (!h) {
      if (a.call) {
        const auto waited = slot.pool->wait(*a.call, a.call_deadline, cancel, &a.queue_ms, &a.compute_ms);
        account_time(a);
        if (waited == WorkerPool::WaitResult::cancelled) {
          record_loser(a);
          {
            std::lock_guard<std::mutex> lock(slot.mu);
            slot.failures["cancelled"]++;
          }
          return cancelled();
        }
        if (waited == WorkerPool::WaitResult::timed_out) {
          a.resolved = true;
          a.outcome = Status(StatusCode::timeout, "[" + slot.route->name + "] call abandoned after " +
                                                      std::to_string(static_cast<int64_t>(budget_ms)) + " ms (its time budget)");
        } else {
          take(a);
        }
      }
      if (a.outcome.is_ok()) return succeed(a, false);
      bool retry = worth_retrying(a);
      if (auto end = record_failure(a, &retry)) return fail(*end, t0, timings);
      if (retry) {
        --retries_left;
        call_again = true;
      }
      continue;
    }

    // A race between the call and its hedge: the first good answer wins.
    Attempt& b = *h;
    for (;;) {
      if (is_cancelled()) {
        for (Attempt* x : {&a, &b})
          if (!x->resolved) {
            abandon(*x, false);
            account_time(*x);
            record_loser(*x);
          }
        return cancelled();
      }
      now = SteadyClock::now();
      for (Attempt* x : {&a, &b}) {
        if (x->resolved) continue;
        if (x->slot->pool->wait_done(*x->call, now)) {
          x->slot->pool->wait(*x->call, now, nullptr, &x->queue_ms, &x->compute_ms);
          take(*x);
          account_time(*x);
        } else if (now >= x->call_deadline) {
          abandon(*x, true);
          account_time(*x);
        }
      }
      Attempt* winner = a.resolved && a.outcome.is_ok() ? &a : (b.resolved && b.outcome.is_ok() ? &b : nullptr);
      if (winner) {
        Attempt& loser = winner == &a ? b : a;
        if (!loser.resolved) {
          abandon(loser, false);
          account_time(loser);
          record_loser(loser);
        } else if (!loser.outcome.is_ok()) {
          if (auto end = record_failure(loser)) return fail(*end, t0, timings);
        } else {
          record_loser(loser);
        }
        return succeed(*winner, winner == &b);
      }
      if (a.resolved && b.resolved) break;
      // Neither has answered: wait a little on the one still running (the first if both are).
      Attempt& pending = a.resolved ? b : a;
      pending.slot->pool->wait_done(*pending.call, std::min(now + std::chrono::milliseconds(1), pending.call_deadline),
                                    cancel);
    }
    // Both failed: the walk goes on after the hedge's route.
    if (auto end = record_failure(a)) return fail(*end, t0, timings);
    if (auto end = record_failure(b)) return fail(*end, t0, timings);
    i = b.index;
  }
  // Every allowed route failed or was skipped.
  const bool past_deadline = SteadyClock::now() >= deadline;
  StatusCode code = past_deadline ? StatusCode::timeout : last_error.code();
  if (code == StatusCode::ok) code = StatusCode::unavailable;
  std::string msg = "model '" + name_ + "': no backend answered";
  if (past_deadline) msg += " before the deadline";
  if (!reasons.empty()) msg += " (" + reasons + ")";
  if (!last_error.is_ok()) msg += "; last error: " + last_error.to_string();
  return fail(Status(code, msg), t0, timings);
}

bool PreparedModelImpl::offer_probe(size_t index, const CircuitBreaker::Admission& admission,
                                    const std::vector<Value>& inputs) {
  std::call_once(probes_once_, [&] { probes_ = std::make_unique<BackgroundQueue>(kProbeQueueCapacity); });
  std::vector<Value> copy;
  copy.reserve(inputs.size());
  for (const Value& v : inputs) copy.push_back(deep_copy(v));
  RouteSlot* slot = routes_[index].get();
  const double budget_ms = attempt_budget_ms(*slot, ShapeKey::of(inputs));
  return probes_->offer([this, slot, admission, budget_ms, copy = std::move(copy)](const std::atomic<bool>& stop) {
    run_probe(*slot, admission, budget_ms, copy, stop);
  });
}

void PreparedModelImpl::run_probe(RouteSlot& s, const CircuitBreaker::Admission& admission, double budget_ms,
                                  const std::vector<Value>& inputs, const std::atomic<bool>& stop) {
  const std::string& name = s.route->name;
  const SteadyClock::time_point deadline = SteadyClock::now() + ms_duration(budget_ms);
  std::shared_ptr<Route> route = s.route;
  auto submitted = s.pool->submit(
      // By value: an abandoned call may still run after this probe returns.
      [route, inputs](const RunControl& c, std::vector<Value>* out) { return route->placed->run(inputs, out, c); },
      deadline);
  Status outcome;
  std::vector<Value> outputs;
  double queue_ms = 0, compute_ms = 0;
  if (!submitted) {
    outcome = submitted.status();
  } else {
    WorkerPool::Call& call = **submitted;
    const CancelCheck cancel(&stop, nullptr, nullptr);
    const auto waited = s.pool->wait(call, deadline, &cancel, &queue_ms, &compute_ms);
    if (waited == WorkerPool::WaitResult::cancelled) {  // the model is going away
      s.breaker->release(admission);
      return;
    }
    if (waited == WorkerPool::WaitResult::timed_out) {
      outcome = Status(StatusCode::timeout, "[" + name + "] probe abandoned after " +
                                                std::to_string(static_cast<int64_t>(budget_ms)) + " ms (its time budget)");
    } else {
      outcome = call.status;
      outputs = std::move(call.outputs);
    }
  }
  std::string where;
  if (outcome.is_ok() && outputs.size() != graph_->outputs.size())
    outcome = internal_error("[" + name + "] returned " + std::to_string(outputs.size()) + " outputs, expected " +
                             std::to_string(graph_->outputs.size()));
  if (outcome.is_ok() && opts_.output_guard && !all_finite(outputs, graph_->outputs, &where))
    outcome = Status(StatusCode::device_error, "[" + name + "] output '" + where + "' has non-finite values (output guard)");
  // A route that parity violations opened answers its probes without errors even while its
  // numbers are wrong: its probe's answer must also match the reference before it counts.
  if (outcome.is_ok() && admission.check_parity && parity_) {
    RunControl control;  // no deadline: the probe holds no request
    control.cancel = &stop;
    outcome = check_probe_answer(s, inputs, outputs, control);
    const bool no_verdict = !outcome.is_ok() && outcome.code() != StatusCode::parity_violation;
    if (no_verdict || stop.load()) {  // (or the model is going away): a later probe decides
      s.breaker->release(admission);
      return;
    }
  }
  const double attempt_ms = queue_ms + compute_ms;
  const bool breach = outcome.is_ok() && opts_.latency_sla_ms > 0 && attempt_ms > opts_.latency_sla_ms;
  {
    // Counted before the breaker hears of it: whoever sees the breaker trip or close on this
    // probe sees the probe in the telemetry too.
    std::lock_guard<std::mutex> lock(s.mu);
    s.probes++;
    s.requests++;
    s.queue_s += queue_ms / 1e3;
    s.compute_s += compute_ms / 1e3;
    if (outcome.is_ok()) {
      s.successes++;
      s.sla_breaches += breach;
      s.latency.record_seconds(attempt_ms / 1e3);
      s.by_shape.record(ShapeKey::of(inputs), attempt_ms);
    } else {
      s.failures[std::string(status_code_name(outcome.code()))]++;
      if (outcome.code() != StatusCode::unsupported && !is_request_error(outcome.code()))
        s.last_fault = std::string(status_code_name(outcome.code())) + ": " + outcome.message();
    }
  }
  if (outcome.is_ok()) s.breaker->record(admission, {true, breach});
  else if (outcome.code() == StatusCode::unsupported || is_request_error(outcome.code())) s.breaker->release(admission);
  else s.breaker->record(admission, {false, false});
}

Status PreparedModelImpl::check_probe_answer(RouteSlot& s, const std::vector<Value>& inputs,
                                             const std::vector<Value>& outputs, const RunControl& control) {
  std::vector<Value> expected;
  TANDEM_RETURN_IF_ERROR(routes_.back()->route->placed->run(inputs, &expected, control));
  const ParityResult r = ParitySampler::compare(expected, outputs, s.parity_budget);
  on_parity_counts(s, r);
  if (!r.violation) return Status::ok();
  return Status(StatusCode::parity_violation, "[" + s.route->name + "] probe answer outside the parity budget (max abs " +
                                                  std::to_string(r.max_abs) + ")");
}

void PreparedModelImpl::on_parity(const ParityResult& r) {
  if (r.route < 0 || r.route >= static_cast<int>(routes_.size())) return;
  RouteSlot& slot = *routes_[static_cast<size_t>(r.route)];
  on_parity_counts(slot, r);
  if (r.ok && r.violation && opts_.parity_trips_breaker) slot.breaker->record_parity_violation();
}

void PreparedModelImpl::on_parity_counts(RouteSlot& slot, const ParityResult& r) {
  std::lock_guard<std::mutex> lock(slot.mu);
  if (!r.ok) {
    slot.parity.errors++;
    return;
  }
  slot.parity.samples++;
  slot.parity.violations += r.violation;
  if (r.violation)
    slot.last_fault =
        "parity_violation: a sampled answer outside the parity budget (max abs " + std::to_string(r.max_abs) + ")";
  slot.parity.max_abs = std::max(slot.parity.max_abs, r.max_abs);
  slot.parity.max_rel = std::max(slot.parity.max_rel, r.max_rel);
  slot.parity.max_rmse = std::max(slot.parity.max_rmse, r.rmse);
}

}  // namespace tandem::engine_internal
