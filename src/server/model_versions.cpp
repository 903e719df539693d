// model_versions.cpp: see model_versions.h.
#include "model_versions.h"

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
