// Latency histogram, and the JSON and Prometheus exporters of the telemetry snapshot.
#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdio>
#include <functional>

#include "engine/telemetry_json.h"

namespace tandem {

// --- LatencyHistogram ----------------------------------------------------------------------

int LatencyHistogram::bucket_of(uint64_t ns) {
  if (ns < static_cast<uint64_t>(kSub)) return static_cast<int>(ns);
  if (ns >= (uint64_t{1} << kMaxExp)) return kBuckets - 1;
  const int e = 63 - std::countl_zero(ns);  // kSubBits <= e < kMaxExp
  const int shift = e - kSubBits;
  const int sub = static_cast<int>(ns >> shift) - kSub;  // 0 .. kSub-1
  return kSub + (e - kSubBits) * kSub + sub;
}

uint64_t LatencyHistogram::bucket_low(int bucket) {
  if (bucket < kSub) return static_cast<uint64_t>(bucket);
  const int group = (bucket - kSub) / kSub;
  const int sub = (bucket - kSub) % kSub;
  return static_cast<uint64_t>(kSub + sub) << group;
}

uint64_t LatencyHistogram::bucket_high(int bucket) {
  if (bucket < kSub) return static_cast<uint64_t>(bucket);
  const int group = (bucket - kSub) / kSub;
  return bucket_low(bucket) + (uint64_t{1} << group) - 1;
}

void LatencyHistogram::record(uint64_t ns) {
  buckets_[static_cast<size_t>(bucket_of(ns))]++;
  count_++;
  sum_ns_ += static_cast<double>(ns);
  min_ns_ = std::min(min_ns_, ns);
  max_ns_ = std::max(max_ns_, ns);
}

void LatencyHistogram::record_seconds(double seconds) {
  if (!(seconds > 0)) seconds = 0;
  const double ns = seconds * 1e9;
  record(ns >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(std::llround(ns)));
}

void LatencyHistogram::merge(const LatencyHistogram& other) {
  for (size_t i = 0; i < buckets_.size(); ++i) buckets_[i] += other.buckets_[i];
  count_ += other.count_;
  sum_ns_ += other.sum_ns_;
  min_ns_ = std::min(min_ns_, other.min_ns_);
  max_ns_ = std::max(max_ns_, other.max_ns_);
}

double LatencyHistogram::quantile_ns(double q) const {
  if (count_ == 0) return 0;
  q = std::clamp(q, 0.0, 1.0);
  uint64_t rank = static_cast<uint64_t>(std::ceil(q * static_cast<double>(count_)));
  rank = std::clamp<uint64_t>(rank, 1, count_);
  if (rank == count_) return static_cast<double>(max_ns_);
  if (rank == 1) return static_cast<double>(min_ns());
  uint64_t seen = 0;
  for (int b = 0; b < kBuckets; ++b) {
    seen += buckets_[static_cast<size_t>(b)];
    if (seen >= rank) {
      const double mid = (static_cast<double>(bucket_low(b)) + static_cast<double>(bucket_high(b))) / 2.0;
      return std::clamp(mid, static_cast<double>(min_ns()), static_cast<double>(max_ns_));
    }
  }
  return static_cast<double>(max_ns_);
}

std::string_view breaker_state_name(BreakerState state) {
  switch (state) {
    case BreakerState::closed: return "closed";
    case BreakerState::open: return "open";
    case BreakerState::half_open: return "half_open";
  }
  return "unknown";
}

// --- JSON ------------------------------------------------------------------------------------

nlohmann::json histogram_json_ms(const LatencyHistogram& h) {
  return nlohmann::json{{"count", h.count()},
                        {"mean", h.mean_ns() / 1e6},
                        {"min", static_cast<double>(h.min_ns()) / 1e6},
                        {"p50", h.quantile_ms(0.5)},
                        {"p90", h.quantile_ms(0.9)},
                        {"p95", h.quantile_ms(0.95)},
                        {"p99", h.quantile_ms(0.99)},
                        {"p999", h.quantile_ms(0.999)},
                        {"max", static_cast<double>(h.max_ns()) / 1e6}};
}

namespace {
// JSON has no infinity; a non-finite error becomes a large finite number it can carry.
double json_number(double v) {
  if (std::isnan(v)) return 1e308;
  if (std::isinf(v)) return v > 0 ? 1e308 : -1e308;
  return v;
}
}  // namespace

nlohmann::json telemetry_json(const ModelTelemetry& t) {
  nlohmann::json backends = nlohmann::json::array();
  for (const BackendTelemetry& b : t.backends) {
    backends.push_back({
        {"backend", b.backend},
        {"requests", b.requests},
        {"successes", b.successes},
        {"failures", b.failures},
        {"served", b.served},
        {"fallbacks", b.fallbacks},
        {"sla_breaches", b.sla_breaches},
        {"breaker",
         {{"state", breaker_state_name(b.breaker.state)},
          {"transitions", b.breaker.transitions},
          {"trips", b.breaker.trips},
          {"cooldown_ms", b.breaker.cooldown_ms},
          {"window_requests", b.breaker.window_requests},
          {"window_failures", b.breaker.window_failures}}},
        {"latency_ms", histogram_json_ms(b.latency)},
        {"queue_seconds", b.queue_seconds},
        {"compute_seconds", b.compute_seconds},
        {"dispatch_share", b.dispatch_share},
        {"parity",
         {{"samples", b.parity.samples},
          {"violations", b.parity.violations},
          {"dropped", b.parity.dropped},
          {"errors", b.parity.errors},
          {"max_abs_error", json_number(b.parity.max_abs)},
          {"max_rel_error", json_number(b.parity.max_rel)},
          {"max_rmse", json_number(b.parity.max_rmse)}}},
        {"hung_calls", b.hung_calls},
        {"abandoned_calls", b.abandoned_calls},
        {"hedged", b.hedged},
        {"hedge_wins", b.hedge_wins},
        {"probes", b.probes},
        {"retries", b.retries},
        {"last_fault", b.last_fault},
        {"precision", b.precision},
        {"worker_threads", b.worker_threads},
        {"sla_estimate_ms", b.sla_estimate_ms},
        {"attempt_budget_ms", b.attempt_budget_ms},
        {"nodes", b.nodes},
    });
  }
  return nlohmann::json{{"model", t.model},
                        {"cache_key", t.cache_key},
                        {"requests", t.requests},
                        {"succeeded", t.succeeded},
                        {"failed", t.failed},
                        {"failures", t.failures},
                        {"fallbacks", t.fallbacks},
                        {"latency_ms", histogram_json_ms(t.latency)},
                        {"queue_seconds", t.queue_seconds},
                        {"compute_seconds", t.compute_seconds},
                        {"rss_bytes", t.rss_bytes},
                        {"arena_bytes", t.arena_bytes},
                        {"backends", backends}};
}

std::string latency_to_json(const LatencyHistogram& h) { return histogram_json_ms(h).dump(); }

std::string telemetry_to_json(const ModelTelemetry& t) {
  // Invalid UTF-8 (e.g. in a model name) is replaced rather than thrown.
  return telemetry_json(t).dump(2, ' ', false, nlohmann::json::error_handler_t::replace);
}

// --- Prometheus ------------------------------------------------------------------------------

namespace {

std::string escape_label(const std::string& v) {
  std::string out;
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.10g", v);
  return buf;
}

using Labels = std::vector<std::pair<std::string, std::string>>;

// Collects samples by family so that every family's samples are printed together.
class Exposition {
 public:
  void family(const std::string& name, const std::string& type, const std::string& help) {
    if (index_.count(name)) return;
    index_[name] = families_.size();
    families_.push_back({name, type, help, {}});
  }
  void sample(const std::string& family_name, const std::string& suffix, const Labels& labels, double value) {
    Family& f = families_[index_.at(family_name)];
    std::string line = family_name + suffix;
    if (!labels.empty()) {
      line += "{";
      for (size_t i = 0; i < labels.size(); ++i) {
        if (i) line += ',';
        line.append(labels[i].first).append("=\"").append(escape_label(labels[i].second)).append("\"");
      }
      line += "}";
    }
    line.append(" ").append(format_value(value)).append("\n");
    f.lines.push_back(std::move(line));
  }
  std::string text() const {
    std::string out;
    for (const Family& f : families_) {
      out.append("# HELP ").append(f.name).append(" ").append(f.help).append("\n");
      out.append("# TYPE ").append(f.name).append(" ").append(f.type).append("\n");
      for (const std::string& l : f.lines) out += l;
    }
    return out;
  }

 private:
  struct Family {
    std::string name, type, help;
    std::vector<std::string> lines;
  };
  std::vector<Family> families_;
  std::map<std::string, size_t> index_;
};

void summary(Exposition& ex, const std::string& name, const Labels& labels, const LatencyHistogram& h) {
  for (double q : {0.5, 0.9, 0.95, 0.99, 0.999}) {
    Labels l = labels;
    l.emplace_back("quantile", format_value(q));
    ex.sample(name, "", l, h.quantile_ns(q) / 1e9);
  }
  ex.sample(name, "_sum", labels, h.sum_ns() / 1e9);
  ex.sample(name, "_count", labels, static_cast<double>(h.count()));
}

}  // namespace

std::string telemetry_to_prometheus(const std::vector<ModelTelemetry>& models) {
  Exposition ex;
  // Declare every family first so the order is stable whatever the data.
  ex.family("tandem_requests_total", "counter", "infer() calls");
  ex.family("tandem_requests_succeeded_total", "counter", "infer() calls that returned outputs");
  ex.family("tandem_requests_failed_total", "counter", "infer() calls that failed, by status code");
  ex.family("tandem_request_fallbacks_total", "counter", "requests served by a backend other than the first tried");
  ex.family("tandem_request_latency_seconds", "summary", "end-to-end infer() latency of successful requests");
  ex.family("tandem_request_queue_seconds_total", "counter", "time requests waited for worker threads");
  ex.family("tandem_request_compute_seconds_total", "counter", "time requests ran on backends");
  ex.family("tandem_resident_memory_bytes", "gauge", "process resident set size, sampled");
  ex.family("tandem_arena_bytes", "gauge", "bytes of tensors the prepared model keeps");
  ex.family("tandem_backend_calls_total", "counter", "calls dispatched to a backend");
  ex.family("tandem_backend_successes_total", "counter", "backend calls that returned usable outputs");
  ex.family("tandem_backend_failures_total", "counter", "failed backend calls, by kind");
  ex.family("tandem_backend_served_total", "counter", "requests answered by a backend");
  ex.family("tandem_backend_fallbacks_total", "counter", "requests that moved on from a backend, by reason");
  ex.family("tandem_backend_sla_breaches_total", "counter", "successful calls slower than the latency SLA");
  ex.family("tandem_backend_latency_seconds", "summary", "latency of successful backend calls (queue + compute)");
  ex.family("tandem_backend_queue_seconds_total", "counter", "time backend calls waited for a worker");
  ex.family("tandem_backend_compute_seconds_total", "counter", "time backend calls ran");
  ex.family("tandem_backend_dispatch_share", "gauge", "fraction of the model's answers served by a backend");
  ex.family("tandem_backend_hung_calls", "gauge", "abandoned backend calls still running");
  ex.family("tandem_backend_abandoned_calls_total", "counter", "backend calls abandoned at their time budget");
  ex.family("tandem_backend_hedged_total", "counter", "slow calls whose request was also started on the next route");
  ex.family("tandem_backend_hedge_wins_total", "counter", "hedged requests a route answered first");
  ex.family("tandem_backend_probes_total", "counter", "half-open breaker probes run off the request path");
  ex.family("tandem_backend_retries_total", "counter", "calls made again on the same route after a device error");
  ex.family("tandem_backend_worker_threads", "gauge", "threads in a backend's worker pool");
  ex.family("tandem_backend_sla_estimate_seconds", "gauge", "latency estimate measured at warm-up");
  ex.family("tandem_backend_attempt_budget_seconds", "gauge", "time a call may run before it is abandoned");
  ex.family("tandem_backend_nodes", "gauge", "nodes a backend runs in its route");
  ex.family("tandem_breaker_state", "gauge", "circuit breaker state: 0 closed, 1 open, 2 half-open");
  ex.family("tandem_breaker_transitions_total", "counter", "circuit breaker state changes");
  ex.family("tandem_breaker_trips_total", "counter", "circuit breaker trips to open");
  ex.family("tandem_parity_samples_total", "counter", "answers re-run on the reference backend and compared");
  ex.family("tandem_parity_violations_total", "counter", "parity samples outside the budget");
  ex.family("tandem_parity_dropped_total", "counter", "parity samples dropped because the queue was full");
  ex.family("tandem_parity_errors_total", "counter", "parity re-runs that failed on the reference backend");
  ex.family("tandem_parity_max_abs_error", "gauge", "largest absolute error seen by parity sampling");
  ex.family("tandem_parity_max_rel_error", "gauge", "largest relative error seen by parity sampling");
  ex.family("tandem_parity_max_rmse", "gauge", "largest root-mean-square error seen by parity sampling");

  for (const ModelTelemetry& m : models) {
    const Labels ml{{"model", m.model}};
    ex.sample("tandem_requests_total", "", ml, static_cast<double>(m.requests));
    ex.sample("tandem_requests_succeeded_total", "", ml, static_cast<double>(m.succeeded));
    for (const auto& [code, n] : m.failures)
      ex.sample("tandem_requests_failed_total", "", {{"model", m.model}, {"code", code}}, static_cast<double>(n));
    ex.sample("tandem_request_fallbacks_total", "", ml, static_cast<double>(m.fallbacks));
    summary(ex, "tandem_request_latency_seconds", ml, m.latency);
    ex.sample("tandem_request_queue_seconds_total", "", ml, m.queue_seconds);
    ex.sample("tandem_request_compute_seconds_total", "", ml, m.compute_seconds);
    ex.sample("tandem_resident_memory_bytes", "", ml, static_cast<double>(m.rss_bytes));
    ex.sample("tandem_arena_bytes", "", ml, static_cast<double>(m.arena_bytes));
    for (const BackendTelemetry& b : m.backends) {
      // Every per-route sample also says the precision the route computes in, so that dashboards
      // can split int8 / bf16 / fp32 routes without parsing route names.
      const Labels bl{{"model", m.model}, {"backend", b.backend}, {"precision", b.precision}};
      auto with = [&](const char* key, const std::string& value) {
        Labels l = bl;
        l.emplace_back(key, value);
        return l;
      };
      ex.sample("tandem_backend_calls_total", "", bl, static_cast<double>(b.requests));
      ex.sample("tandem_backend_successes_total", "", bl, static_cast<double>(b.successes));
      for (const auto& [kind, n] : b.failures)
        ex.sample("tandem_backend_failures_total", "", with("kind", kind), static_cast<double>(n));
      ex.sample("tandem_backend_served_total", "", bl, static_cast<double>(b.served));
      for (const auto& [reason, n] : b.fallbacks)
        ex.sample("tandem_backend_fallbacks_total", "", with("reason", reason), static_cast<double>(n));
      ex.sample("tandem_backend_sla_breaches_total", "", bl, static_cast<double>(b.sla_breaches));
      summary(ex, "tandem_backend_latency_seconds", bl, b.latency);
      ex.sample("tandem_backend_queue_seconds_total", "", bl, b.queue_seconds);
      ex.sample("tandem_backend_compute_seconds_total", "", bl, b.compute_seconds);
      ex.sample("tandem_backend_dispatch_share", "", bl, b.dispatch_share);
      ex.sample("tandem_backend_hung_calls", "", bl, static_cast<double>(b.hung_calls));
      ex.sample("tandem_backend_abandoned_calls_total", "", bl, static_cast<double>(b.abandoned_calls));
      ex.sample("tandem_backend_hedged_total", "", bl, static_cast<double>(b.hedged));
      ex.sample("tandem_backend_hedge_wins_total", "", bl, static_cast<double>(b.hedge_wins));
      ex.sample("tandem_backend_probes_total", "", bl, static_cast<double>(b.probes));
      ex.sample("tandem_backend_retries_total", "", bl, static_cast<double>(b.retries));
      ex.sample("tandem_backend_worker_threads", "", bl, static_cast<double>(b.worker_threads));
      ex.sample("tandem_backend_sla_estimate_seconds", "", bl, b.sla_estimate_ms / 1e3);
      ex.sample("tandem_backend_attempt_budget_seconds", "", bl, b.attempt_budget_ms / 1e3);
      ex.sample("tandem_backend_nodes", "", bl, b.nodes);
      ex.sample("tandem_breaker_state", "", bl, static_cast<double>(static_cast<int>(b.breaker.state)));
      ex.sample("tandem_breaker_transitions_total", "", bl, static_cast<double>(b.breaker.transitions));
      ex.sample("tandem_breaker_trips_total", "", bl, static_cast<double>(b.breaker.trips));
      ex.sample("tandem_parity_samples_total", "", bl, static_cast<double>(b.parity.samples));
      ex.sample("tandem_parity_violations_total", "", bl, static_cast<double>(b.parity.violations));
      ex.sample("tandem_parity_dropped_total", "", bl, static_cast<double>(b.parity.dropped));
      ex.sample("tandem_parity_errors_total", "", bl, static_cast<double>(b.parity.errors));
      ex.sample("tandem_parity_max_abs_error", "", bl, b.parity.max_abs);
      ex.sample("tandem_parity_max_rel_error", "", bl, b.parity.max_rel);
      ex.sample("tandem_parity_max_rmse", "", bl, b.parity.max_rmse);
    }
  }
  return ex.text();
}

}  // namespace tandem
