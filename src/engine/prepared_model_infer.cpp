// The request path of a prepared model: the route walk with time budgets, fallback, hedging
// and parity sampling (see prepared_model_impl.h).
#include <algorithm>
#include <cmath>

#include "engine/inputs.h"
#include "engine/prepared_model_impl.h"
#include "engine/routes.h"

namespace tandem::engine_internal {

double PreparedModelImpl::estimate_ms(const RouteSlot& s) const {
  double e = s.estimate_ms;
  std::lock_guard<std::mutex> lock(s.mu);
  if (s.latency.count() >= 20) e = std::max(e, s.latency.quantile_ms(0.99));
  return e;
}

double PreparedModelImpl::attempt_budget_ms(const RouteSlot& s) const {
  const double e = estimate_ms(s);
  if (e <= 0) return std::max(opts_.min_attempt_budget_ms, opts_.unmeasured_budget_ms);
  return std::max(opts_.min_attempt_budget_ms, e * opts_.attempt_budget_multiplier);
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
  auto bound = bind_inputs(*graph_, inputs);
  if (!bound) return fail(bound.status().with_prefix("model '" + name_ + "': "), t0, timings);

  const bool strict = opts_.fallback == FallbackPolicy::strict;
  const size_t n_routes = strict ? 1 : routes_.size();
  const RouteSlot& last_slot = *routes_.back();
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

  for (size_t i = 0; i < n_routes; ++i) {
    RouteSlot& slot = *routes_[i];
    const bool final_route = (i + 1 == n_routes);
    if (options.cancel && options.cancel->load()) return fail(Status(StatusCode::cancelled, "model '" + name_ + "': the request was cancelled"), t0, timings);
    const SteadyClock::time_point now = SteadyClock::now();
    if (now >= deadline) {
      last_error = Status(StatusCode::timeout, "the deadline passed before " + slot.route->name + " could run");
      break;
    }
    CircuitBreaker::Admission admission = slot.breaker->admit();
    // The last fallback route is the answer of last resort: its breaker is tracked but never
    // turns a request away.
    if (!admission.allowed && final_route && !strict) admission = {true, false};
    if (!admission.allowed) {
      if (strict)
        return fail(Status(StatusCode::unavailable, "model '" + name_ + "': backend " + slot.route->name +
                                                        " is unavailable (circuit breaker open); strict mode forbids fallback"),
                    t0, timings);
      note_fallback(slot, "breaker_open", "");
      last_error = Status(StatusCode::unavailable, "backend " + slot.route->name + " circuit breaker open");
      continue;
    }
    // The call's time budget: its SLA-derived budget, leaving the fallback time to answer;
    // the last fallback route gets whatever remains of the deadline.
    const double remaining_ms = deadline == SteadyClock::time_point::max() ? INFINITY : ms_between(now, deadline);
    double budget_ms = attempt_budget_ms(slot);
    if (final_route && !strict) {
      budget_ms = remaining_ms;
    } else if (!final_route) {
      const double reserve_ms = estimate_ms(last_slot) * opts_.fallback_reserve_multiplier + 1.0;
      budget_ms = std::min(budget_ms, remaining_ms - reserve_ms);
    } else {
      budget_ms = std::min(budget_ms, remaining_ms);
    }
    if (budget_ms <= 0) {
      slot.breaker->release(admission);
      note_fallback(slot, "no_time", "no time left before the deadline");
      last_error = Status(StatusCode::timeout, "no time left for backend " + slot.route->name);
      continue;
    }
    const SteadyClock::time_point call_deadline =
        std::isinf(budget_ms) ? SteadyClock::time_point::max() : now + ms_duration(budget_ms);
    std::shared_ptr<Route> route = slot.route;
    std::vector<Value> call_inputs = *bound;
    auto call = slot.pool->submit(
        [route, call_inputs = std::move(call_inputs)](const RunControl& c, std::vector<Value>* out) {
          return route->placed->run(call_inputs, out, c);
        },
        call_deadline);
    attempts++;
    Status outcome;
    double queue_ms = 0, compute_ms = 0;
    std::vector<Value> outputs;
    if (!call) {
      outcome = call.status();
    } else {
      const auto waited = slot.pool->wait(**call, call_deadline, options.cancel, &queue_ms, &compute_ms);
      timings.queue_ms += queue_ms;
      timings.compute_ms += compute_ms;
      if (waited == WorkerPool::WaitResult::cancelled) {
        slot.breaker->release(admission);
        std::lock_guard<std::mutex> lock(slot.mu);
        slot.requests++;
        slot.queue_s += queue_ms / 1e3;
        slot.compute_s += compute_ms / 1e3;
        slot.failures["cancelled"]++;
        return fail(Status(StatusCode::cancelled, "model '" + name_ + "': the request was cancelled"), t0, timings);
      }
      if (waited == WorkerPool::WaitResult::timed_out) {
        outcome = Status(StatusCode::timeout, "[" + slot.route->name + "] call abandoned after " +
                                                  std::to_string(static_cast<int64_t>(budget_ms)) + " ms (its time budget)");
      } else {
        outcome = (*call)->status;
        outputs = std::move((*call)->outputs);
        if (outcome.is_ok() && outputs.size() != graph_->outputs.size())
          outcome = internal_error("[" + slot.route->name + "] returned " + std::to_string(outputs.size()) +
                                   " outputs, expected " + std::to_string(graph_->outputs.size()));
        std::string where;
        if (outcome.is_ok() && opts_.output_guard && !all_finite(outputs, graph_->outputs, &where))
          outcome = Status(StatusCode::device_error, "[" + slot.route->name + "] output '" + where +
                                                         "' has non-finite values (output guard)");
      }
    }
    const double attempt_ms = queue_ms + compute_ms;
    if (outcome.is_ok()) {
      const bool breach = opts_.latency_sla_ms > 0 && attempt_ms > opts_.latency_sla_ms;
      slot.breaker->record(admission, {true, breach});
      {
        std::lock_guard<std::mutex> lock(slot.mu);
        slot.requests++;
        slot.successes++;
        slot.served++;
        slot.sla_breaches += breach;
        slot.latency.record_seconds(attempt_ms / 1e3);
        slot.queue_s += queue_ms / 1e3;
        slot.compute_s += compute_ms / 1e3;
      }
      // Parity sampling: a share of the answers of non-reference routes, re-run off the request path.
      if (parity_ && !slot.route->reference_only) {
        const double u = static_cast<double>(mix64(opts_.seed ^ mix64(request_id)) >> 11) * (1.0 / 9007199254740992.0);
        if (u < opts_.parity_sample_rate) {
          std::vector<Value> in_copy, out_copy;
          for (const Value& v : *bound) in_copy.push_back(deep_copy(v));
          for (const Value& v : outputs) out_copy.push_back(deep_copy(v));
          if (!parity_->offer(static_cast<int>(i), std::move(in_copy), std::move(out_copy))) {
            std::lock_guard<std::mutex> lock(slot.mu);
            slot.parity.dropped++;
          }
        }
      }
      InferResult result;
      for (size_t k = 0; k < outputs.size(); ++k) {
        result.outputs[graph_->outputs[k].name] = std::move(outputs[k]);
        result.output_order.push_back(graph_->outputs[k].name);
      }
      result.backend = slot.route->name;
      result.fallback_reason = reasons;
      result.attempts = attempts;
      timings.total_ms = ms_between(t0, SteadyClock::now());
      result.timings = timings;
      std::lock_guard<std::mutex> lock(mu_);
      requests_++;
      succeeded_++;
      fallbacks_ += i > 0;
      latency_.record_seconds(timings.total_ms / 1e3);
      queue_s_ += timings.queue_ms / 1e3;
      compute_s_ += timings.compute_ms / 1e3;
      return result;
    }
    // The call failed.
    const std::string kind(status_code_name(outcome.code()));
    const bool backend_fault = !is_request_error(outcome.code()) && outcome.code() != StatusCode::unsupported;
    if (backend_fault) slot.breaker->record(admission, {false, false});
    else slot.breaker->release(admission);
    {
      std::lock_guard<std::mutex> lock(slot.mu);
      slot.requests++;
      slot.failures[kind]++;
      slot.queue_s += queue_ms / 1e3;
      slot.compute_s += compute_ms / 1e3;
    }
    const std::string prefix = "model '" + name_ + "': backend " + slot.route->name + ": ";
    if (is_request_error(outcome.code())) return fail(outcome.with_prefix(prefix), t0, timings);
    if (strict) return fail(outcome.with_prefix(prefix + "(strict mode, no fallback) "), t0, timings);
    last_error = outcome;
    if (!final_route) note_fallback(slot, kind, kind + ": " + outcome.message());
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

void PreparedModelImpl::on_parity(const ParityResult& r) {
  if (r.route < 0 || r.route >= static_cast<int>(routes_.size())) return;
  RouteSlot& slot = *routes_[static_cast<size_t>(r.route)];
  {
    std::lock_guard<std::mutex> lock(slot.mu);
    if (!r.ok) {
      slot.parity.errors++;
      return;
    }
    slot.parity.samples++;
    slot.parity.violations += r.violation;
    slot.parity.max_abs = std::max(slot.parity.max_abs, r.max_abs);
    slot.parity.max_rel = std::max(slot.parity.max_rel, r.max_rel);
    slot.parity.max_rmse = std::max(slot.parity.max_rmse, r.rmse);
  }
  if (r.violation && opts_.parity_trips_breaker) slot.breaker->record_parity_violation();
}

}  // namespace tandem::engine_internal
