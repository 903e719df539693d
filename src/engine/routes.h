// routes.h: the chain of routes a prepared model falls back along, and the time each attempt
// may take.
//
// A route is a backend at a precision, written backend@precision: cpu@bf16, or the backend
// alone for float32 (cpu@fp32 names the same route as cpu). A prepared model tries its routes in order; each has its
// own circuit breaker, worker pool, time budget, telemetry label and parity budget. The last
// route is the answer of last resort.
//
// The default chain, from the requested precision and what the machine supports: for each
// allowed backend in the engine's order, the route at the requested precision when the
// backend honours it natively, then the backend in float32; then the reference backend
// (reference_backend() in backends/backend.h). With
// precision fp32 that is [cpu, reference]; with bf16 on a CPU that has it, [cpu@bf16, cpu,
// reference]; without it, [cpu, reference] and a note saying why.
//
// Thread-safety: plain values and pure functions.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "tandem/precision.h"
#include "tandem/status.h"

namespace tandem {

class Backend;

struct RouteSpec {
  std::string backend;  // the backend's registry name (Backend::name())
  Precision precision = Precision::fp32;
  // backend@precision, or the backend alone for float32.
  std::string name() const;
};

// Parses backend@precision or a backend name alone (float32). Errors: invalid_argument naming the text.
Result<RouteSpec> parse_route(std::string_view text);
// Parses a comma-separated list of routes.
Result<std::vector<RouteSpec>> parse_routes(std::string_view text);

// The default chain over `backends` (engine order, reference excluded) for `precision`, with
// the reference route last. Routes a backend cannot honour are left out and explained in
// `notes` (one line each).
std::vector<RouteSpec> default_chain(const std::vector<Backend*>& backends, Precision precision,
                                     std::vector<std::string>* notes);

// The time the engine keeps back from a deadline for a later route whose usual latency is
// `typical_ms`: that times `multiplier` (PrepareOptions::fallback_reserve_multiplier) plus
// 0.5 ms of slack; 0 when the latency is unknown (typical_ms <= 0).
double fallback_reserve_ms(double typical_ms, double multiplier);

// The time an attempt on route `index` of `routes` may take, in ms (<= 0: none; skip the
// route). `remaining_ms` is what is left of the request's deadline (infinity: none);
// `own_budget_ms` the route's budget from its estimate; `later_reserve_ms[j]` the time route
// index+1+j needs to answer (fallback_reserve_ms; <= 0 when unknown). Time is kept back for
// the first later route that fits in what remains, and for nothing else: the slow last resort
// is reserved only when no faster route fits. The current route gets the rest, even below its
// own estimate (it may then time out, and the next route answers in the time kept for it).
// The last route gets all that remains.
double attempt_time_ms(size_t index, size_t routes, double remaining_ms, double own_budget_ms,
                       const std::vector<double>& later_reserve_ms);

}  // namespace tandem
