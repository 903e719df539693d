// What a prepared model reports about itself: capabilities and telemetry snapshots (see
// prepared_model_impl.h).
#include <set>

#include "core/sysinfo.h"
#include "engine/prepared_model_impl.h"

namespace tandem::engine_internal {

Capabilities PreparedModelImpl::capabilities() const {
  Capabilities c;
  const Route& front = *routes_.front()->route;
  const std::string& first = front.name;
  const std::string inner = front.faulty ? std::string(front.faulty->inner()->name()) : first;
  c.device = front.device_kind == DeviceKind::cpu
                 ? "cpu " + cpu_isa()
                 : std::string(device_kind_name(front.device_kind)) + " (backend " + inner + ")";
  std::set<DataType> dtypes;
  for (const auto* list : {&schema_.inputs, &schema_.outputs})
    for (const IoInfo& io : *list)
      if (io.dtype != DataType::undefined) dtypes.insert(io.dtype);
  c.dtypes.assign(dtypes.begin(), dtypes.end());
  c.requested_backend = first;
  uint64_t best = 0;
  for (const auto& r : routes_) {
    c.routes.push_back(r->route->name);
    std::lock_guard<std::mutex> lock(r->mu);
    if (r->served > best) {
      best = r->served;
      c.actual_backend = r->route->name;
    }
  }
  const auto& per = placement_.routes.front().nodes_per_backend;
  int total = 0;
  for (const auto& [b, n] : per) total += n;
  for (const auto& [b, n] : per) c.node_share[b] = total ? static_cast<double>(n) / total : 0.0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    c.p50_ms = latency_.quantile_ms(0.5);
    c.p99_ms = latency_.quantile_ms(0.99);
  }
  c.compute_units = std::string(compute_units_name(opts_.compute_units));
  c.precision = std::string(precision_name(opts_.precision));
  return c;
}

ModelTelemetry PreparedModelImpl::telemetry() const {
  ModelTelemetry t;
  t.model = name_;
  t.cache_key = cache_key_;
  {
    std::lock_guard<std::mutex> lock(mu_);
    t.requests = requests_;
    t.succeeded = succeeded_;
    t.failed = failed_;
    t.failures = failures_;
    t.fallbacks = fallbacks_;
    t.latency = latency_;
    t.queue_seconds = queue_s_;
    t.compute_seconds = compute_s_;
  }
  uint64_t served_total = 0;
  for (size_t i = 0; i < routes_.size(); ++i) {
    const RouteSlot& s = *routes_[i];
    BackendTelemetry b;
    b.backend = s.route->name;
    {
      std::lock_guard<std::mutex> lock(s.mu);
      b.requests = s.requests;
      b.successes = s.successes;
      b.failures = s.failures;
      b.served = s.served;
      b.fallbacks = s.fallbacks;
      b.sla_breaches = s.sla_breaches;
      b.latency = s.latency;
      b.queue_seconds = s.queue_s;
      b.compute_seconds = s.compute_s;
      b.parity = s.parity;
      b.hedged = s.hedged;
      b.hedge_wins = s.hedge_wins;
      b.probes = s.probes;
      b.retries = s.retries;
      b.last_fault = s.last_fault;
    }
    b.breaker = s.breaker->snapshot();
    b.hung_calls = s.pool->hung();
    b.abandoned_calls = s.pool->abandoned_total();
    b.precision = std::string(precision_name(s.route->precision));
    b.worker_threads = s.pool->threads();
    b.sla_estimate_ms = s.estimate_ms;
    b.attempt_budget_ms = attempt_budget_ms(s, warm_key_);
    const auto& per = placement_.routes[i].nodes_per_backend;
    auto it = per.find(s.route->backend);
    b.nodes = it == per.end() ? 0 : it->second;
    served_total += b.served;
    t.backends.push_back(std::move(b));
  }
  for (BackendTelemetry& b : t.backends)
    b.dispatch_share = served_total ? static_cast<double>(b.served) / static_cast<double>(served_total) : 0.0;
  t.rss_bytes = process_rss_bytes();
  t.arena_bytes = arena_bytes_;
  return t;
}

// Runs warm-up requests on every route (faults not yet armed) and records their latency.
}  // namespace tandem::engine_internal
