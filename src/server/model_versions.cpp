// model_versions.cpp: see model_versions.h.
#include "model_versions.h"

#include <algorithm>
#include <cstdio>

#include "tandem/telemetry.h"

namespace tandem::server::server_internal {

std::vector<RouteStats> route_stats(const ModelTelemetry& telemetry) {
  std::vector<RouteStats> routes;
  for (const BackendTelemetry& b : telemetry.backends) {
    RouteStats r;
    r.route = b.backend;
    r.breaker = std::string(breaker_state_name(b.breaker.state));
    r.dispatch_share = b.dispatch_share;
    r.parity_samples = b.parity.samples;
    r.parity_violations = b.parity.violations;
    r.parity_max_abs = b.parity.max_abs;
    r.last_fault = b.last_fault;
    routes.push_back(std::move(r));
  }
  return routes;
}

void sum_up_requests(const std::string& name, Version& v, const Scheduler::Stats& s,
                     std::chrono::steady_clock::time_point now, std::vector<ServerEvent>* out) {
  auto due = [&](const SummedCount& c, uint64_t count) { return count > c.reported && now - c.at >= kSummaryEvery; };
  auto since = [&](const SummedCount& c) {
    if (c.at == std::chrono::steady_clock::time_point{}) return std::string(" since it loaded");
    char span[48];
    std::snprintf(span, sizeof span, " in the last %.0f s", std::chrono::duration<double>(now - c.at).count());
    return std::string(span);
  };
  auto event = [&](const char* state, std::string detail) {
    out->push_back({.model = name, .version = version_name(v.number), .state = state, .detail = std::move(detail)});
  };
  const uint64_t failures = s.failed - std::min(s.failed, s.client_gone);
  const uint64_t answers = failures + s.succeeded;
  if (due(v.errors_seen, failures)) {
    event("ERRORS", std::to_string(failures - v.errors_seen.reported) + " of " +
                        std::to_string(answers - std::min(answers, v.answers_reported)) + " requests failed" +
                        since(v.errors_seen) + "; the latest: " + s.last_failure);
    v.errors_seen = {failures, now};
    v.answers_reported = answers;
  }
  if (due(v.refusals_seen, s.rejected)) {
    event("REFUSED", std::to_string(s.rejected - v.refusals_seen.reported) + " requests refused" +
                         since(v.refusals_seen) + " (the queue held max_queue_size = " +
                         std::to_string(v.config.max_queue_size) + " waiting, or the version was draining)");
    v.refusals_seen = {s.rejected, now};
  }
  if (s.batching_stopped && !v.batching_stop_reported) {
    event("BATCHING_OFF", s.batching);
    v.batching_stop_reported = true;
  }
}

bool first_route_closed_to_requests(const Version& v) {
  const ModelTelemetry t = v.model->telemetry();
  if (t.backends.empty() || t.backends.front().breaker.state != BreakerState::open) return false;
  const BreakerSnapshot& b = t.backends.front().breaker;
  const auto now = std::chrono::steady_clock::now();
  if (b.trips != v.open_trip_seen) {
    v.open_trip_seen = b.trips;
    v.open_seen_at = now;
  }
  return now - v.open_seen_at < std::chrono::duration<double, std::milli>(b.cooldown_ms);
}

}  // namespace tandem::server::server_internal
