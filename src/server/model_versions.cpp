// model_versions.cpp: see model_versions.h.
#include "model_versions.h"

#include "tandem/telemetry.h"

namespace tandem::server::server_internal {

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
