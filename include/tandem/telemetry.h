// tandem/telemetry.h: what the engine counts, per prepared model and per backend, and the two
// exporters (JSON and the Prometheus text exposition format).
//
// Everything here is a plain value: PreparedModel::telemetry() returns a consistent-enough
// snapshot (each backend's counters are read under that backend's lock) that the caller owns.
// Memory is bounded: latencies go into fixed-size log-linear histograms, never sample lists.
//
// Units: latencies are recorded in nanoseconds (histograms) and exported in seconds
// (Prometheus, `*_seconds`) or milliseconds (JSON, `*_ms`). Memory is in bytes.
// Thread-safety: the types are values; a LatencyHistogram needs external locking when shared.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace tandem {

// A mergeable log-linear histogram of durations in nanoseconds (the HdrHistogram layout):
// values below 32 ns get a bucket each; above, every power of two is split into 32 linear
// sub-buckets, so a quantile (reported at its bucket's midpoint) is within 1/64 (1.6%) of the
// true order statistic. Values from 2^44 ns (about 4.9 hours) up share the top bucket. The
// size is fixed (1,280 counters), whatever is recorded. Exact count, sum, min and max are kept.
class LatencyHistogram {
 public:
  static constexpr int kSubBits = 5;
  static constexpr int kSub = 1 << kSubBits;
  static constexpr int kMaxExp = 44;
  static constexpr int kBuckets = kSub + (kMaxExp - kSubBits) * kSub;

  void record(uint64_t ns);
  void record_seconds(double seconds);  // negative values count as 0
  // Adds every sample of `other`, as if they had been recorded here.
  void merge(const LatencyHistogram& other);
  void reset() { *this = LatencyHistogram(); }

  uint64_t count() const { return count_; }
  double sum_ns() const { return sum_ns_; }
  uint64_t min_ns() const { return count_ ? min_ns_ : 0; }
  uint64_t max_ns() const { return max_ns_; }
  double mean_ns() const { return count_ ? sum_ns_ / static_cast<double>(count_) : 0.0; }
  // The q-quantile (0 <= q <= 1; the order statistic at rank ceil(q * count)), in ns; 0 when empty.
  double quantile_ns(double q) const;
  double quantile_ms(double q) const { return quantile_ns(q) / 1e6; }

  // Bucket arithmetic, public for tests: the bucket of a value and a bucket's [low, high] range.
  static int bucket_of(uint64_t ns);
  static uint64_t bucket_low(int bucket);
  static uint64_t bucket_high(int bucket);

 private:
  std::array<uint64_t, kBuckets> buckets_{};
  uint64_t count_ = 0;
  double sum_ns_ = 0;
  uint64_t min_ns_ = UINT64_MAX;
  uint64_t max_ns_ = 0;
};

enum class BreakerState { closed = 0, open = 1, half_open = 2 };
// "closed", "open", "half_open".
std::string_view breaker_state_name(BreakerState state);

struct BreakerSnapshot {
  BreakerState state = BreakerState::closed;
  uint64_t transitions = 0;  // state changes since the model was prepared
  uint64_t trips = 0;        // closed/half-open -> open
  double cooldown_ms = 0;    // the cooldown of the current (or the next) open period
  int window_requests = 0;   // outcomes in the sliding window now
  int window_failures = 0;
};

struct ParityTelemetry {
  uint64_t samples = 0;     // requests re-run on the reference and compared
  uint64_t violations = 0;  // comparisons outside the parity budget
  uint64_t dropped = 0;     // samples not taken because the parity queue was full
  uint64_t errors = 0;      // reference re-runs that failed (nothing to compare)
  double max_abs = 0;       // largest errors seen over all samples
  double max_rel = 0;
  double max_rmse = 0;
};

// One backend (route) of one prepared model. `backend` is the route's name: the backend
// first in its placement order ("cpu", "reference", or "faulty(cpu)" under fault injection).
struct BackendTelemetry {
  std::string backend;
  uint64_t requests = 0;   // calls dispatched to this backend (a request may visit several)
  uint64_t successes = 0;  // calls that returned usable outputs
  std::map<std::string, uint64_t> failures;   // failed calls by status code name ("timeout", ...)
  uint64_t served = 0;     // requests whose answer came from this backend
  std::map<std::string, uint64_t> fallbacks;  // requests that moved on to the next backend, by reason
  uint64_t sla_breaches = 0;                  // successes slower than the latency SLA
  BreakerSnapshot breaker;
  LatencyHistogram latency;     // successful calls: queue + compute, ns
  double queue_seconds = 0;     // total time calls waited for a worker
  double compute_seconds = 0;   // total time calls ran (abandoned calls: until abandoned)
  double dispatch_share = 0;    // served / all served requests of the model (0..1)
  ParityTelemetry parity;
  uint64_t hung_calls = 0;        // abandoned calls still running now (bounded by a cap)
  uint64_t abandoned_calls = 0;   // calls abandoned at their time budget, ever
  uint64_t hedged = 0;            // slow calls on this route whose request was also started on the next
  uint64_t hedge_wins = 0;        // hedged requests this route answered first (as the second call)
  uint64_t probes = 0;            // half-open probes run off the request path (a later route answered)
  uint64_t retries = 0;           // calls made again on this route after a device_error (same_route_retries)
  // The latest fault on this route (a failure its breaker counts, or a parity violation), as
  // "code: message"; "" when it has had none.
  std::string last_fault;
  std::string precision = "fp32"; // the precision the route computes in
  uint64_t worker_threads = 0;    // threads alive in this backend's worker pool
  double sla_estimate_ms = 0;     // warm-up estimate (0 when it could not be measured)
  double attempt_budget_ms = 0;   // the time budget of a call at the warm-up's input shape (other
                                  // shapes get budgets from their own latency)
  int nodes = 0;                  // nodes this backend runs in its route (the rest: reference)
};

struct ModelTelemetry {
  std::string model;      // the model label (PrepareOptions::name)
  std::string cache_key;
  uint64_t requests = 0;  // infer() calls
  uint64_t succeeded = 0;
  uint64_t failed = 0;
  std::map<std::string, uint64_t> failures;  // failed requests by status code name
  uint64_t fallbacks = 0;                    // requests served by a backend other than the first tried
  LatencyHistogram latency;                  // end-to-end infer() latency of successes, ns
  double queue_seconds = 0;
  double compute_seconds = 0;
  std::vector<BackendTelemetry> backends;    // in routing order
  uint64_t rss_bytes = 0;    // process resident set size, sampled when the snapshot was taken
  uint64_t arena_bytes = 0;  // bytes of tensors the prepared model keeps (weights shared by all routes)
};

// The snapshot as one JSON object (see docs/engine.md for the fields).
std::string telemetry_to_json(const ModelTelemetry& t);
// One latency histogram as a JSON object in milliseconds, with the same keys as the latency
// objects of telemetry_to_json: count, mean, min, p50, p90, p95, p99, p999, max.
std::string latency_to_json(const LatencyHistogram& h);
// Prometheus text exposition (format 0.0.4) of several models: `tandem_*` families, each with
// one HELP and TYPE line and its samples grouped, labelled by `model`, and per-route families
// also by `backend` (the route's name) and `precision` (BackendTelemetry::precision).
std::string telemetry_to_prometheus(const std::vector<ModelTelemetry>& models);

}  // namespace tandem
