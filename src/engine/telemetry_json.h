// telemetry_json.h: the telemetry snapshot as an nlohmann::json object, for library code and
// the CLI that want to add fields before printing (the public API returns the text).
// Pure functions; thread-safe.
#pragma once

#include <nlohmann/json.hpp>

#include "tandem/telemetry.h"

namespace tandem {

// {"count","mean","min","p50","p90","p95","p99","p999","max"} in milliseconds.
nlohmann::json histogram_json_ms(const LatencyHistogram& h);
nlohmann::json telemetry_json(const ModelTelemetry& t);

}  // namespace tandem
