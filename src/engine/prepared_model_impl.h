// prepared_model_impl.h: the prepared model's internals, shared by its source files:
// prepared_model.cpp (prepare: the route chain, placement per route, warm-up, cache key),
// prepared_model_infer.cpp (the request path: budgets, fallback, hedging, parity sampling)
// and prepared_model_report.cpp (capabilities, telemetry). Not part of any interface.
// Thread-safety: as documented on each member.
#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/background_queue.h"
#include "engine/breaker.h"
#include "engine/faulty_backend.h"
#include "engine/parity_sampler.h"
#include "engine/placement.h"
#include "engine/prepared_model.h"
#include "engine/shape_latency.h"
#include "engine/splitmix.h"
#include "engine/worker_pool.h"

namespace tandem::engine_internal {

using SteadyClock = std::chrono::steady_clock;

inline double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
inline SteadyClock::duration ms_duration(double ms) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double, std::milli>(ms));
}

// Non-finite values in float outputs; `where` names the first output that has one.
bool all_finite(const std::vector<Value>& outputs, const std::vector<ValueInfo>& names, std::string* where);

// A failure that says something about the caller's request rather than the backend.
inline bool is_request_error(StatusCode c) { return c == StatusCode::invalid_argument || c == StatusCode::invalid_model; }


// One way to run the model: a placement over [backend, reference] (or reference alone).
// Shared with worker threads, so a hung call keeps it alive after the model is gone.
struct Route {
  std::string name;      // the route's name (RouteSpec::name()), or faulty(<route>) when wrapped
  std::string backend;   // the first backend of its placement order, as placement names it
  DeviceKind device_kind = DeviceKind::cpu;  // of that backend
  std::string version;   // of that backend (Backend::version()), for the cache key
  Precision precision = Precision::fp32;
  std::unique_ptr<PlacedModel> placed;
  std::shared_ptr<FaultyBackend> faulty;  // set on the fault-injected route
  bool reference_only = false;
};

struct RouteSlot {
  std::shared_ptr<Route> route;
  std::unique_ptr<WorkerPool> pool;
  std::unique_ptr<CircuitBreaker> breaker;
  // The warm-up's figures at its input shape (the report's; requests are judged by `by_shape`).
  double estimate_ms = 0;  // warm-up estimate (the slowest warm run); 0 when not measured
  double typical_ms = 0;   // the median warm run; 0 when not measured
  ParityBudget parity_budget;  // samples of this route's answers are held to it
  mutable std::mutex mu;   // guards everything below
  uint64_t hedged = 0, hedge_wins = 0;
  uint64_t probes = 0;  // half-open probes run off the request path
  uint64_t retries = 0;  // calls retried on this route after a device_error
  std::string last_fault;  // BackendTelemetry::last_fault
  uint64_t requests = 0, successes = 0, served = 0, sla_breaches = 0;
  std::map<std::string, uint64_t> failures, fallbacks;
  LatencyHistogram latency;  // every answer, for telemetry
  ShapeLatency by_shape;     // answers and warm-up per input shape, for the time budgets
  double queue_s = 0, compute_s = 0;
  ParityTelemetry parity;
};

class PreparedModelImpl final : public PreparedModel {
 public:
  ~PreparedModelImpl() override {
    probes_.reset();  // cancels the probe in progress, joins its thread
    parity_.reset();  // joins the parity thread
    for (auto& r : routes_)
      if (r->route->faulty) r->route->faulty->shutdown();  // release injected hangs
    for (auto& r : routes_) r->pool.reset();               // stops the workers
  }

  const IoSchema& io_schema() const override { return schema_; }
  const std::string& cache_key() const override { return cache_key_; }
  const std::string& cache_key_text() const override { return cache_key_text_; }
  const SlaEstimate& sla_estimate() const override { return sla_; }
  const PlacementInfo& placement() const override { return placement_; }
  const std::string& name() const override { return name_; }
  Result<InferResult> infer(const std::map<std::string, Value>& inputs, const InferOptions& options) override;
  Capabilities capabilities() const override;
  ModelTelemetry telemetry() const override;
  bool drain_parity(double timeout_ms) override { return parity_ ? parity_->drain(timeout_ms) : true; }

  static Result<std::shared_ptr<PreparedModel>> create(const Model& model, const ModelSource& source,
                                                       const std::string& sha,
                                                       const std::string& default_name, const PrepareOptions& o,
                                                       const PrepareContext& ctx);

 private:
  // A route's figures for requests of input shape `shape` (shape_latency.h).
  ShapeLatencyView latency_view(const RouteSlot& s, const ShapeKey& shape) const;
  // A route's high latency at `shape`: its p99 answer once 20 are measured there, else its
  // slowest warm run (or first answers) there, else scaled from the nearest measured shape.
  double estimate_ms(const RouteSlot& s, const ShapeKey& shape) const;
  // How long a call on `s` may run before it is abandoned as hung: the estimate times
  // attempt_budget_multiplier, at least min_attempt_budget_ms; unmeasured_budget_ms when
  // nothing is measured, and between that and 30 times it at a shape the route has not
  // answered yet (its first call there may build the shape's plan).
  double attempt_budget_ms(const RouteSlot& s, const ShapeKey& shape) const;
  // How long a call on `s` runs before hedging starts the request on the next route: the
  // route's PrepareOptions::hedge_quantile latency at `shape` once 20 answers are measured
  // there, else its slowest warm run there; 0 (no hedge) at a shape not measured.
  double hedge_after_ms(const RouteSlot& s, const ShapeKey& shape) const;
  // A route's usual latency at `shape`: its median answer there once 20 are measured, else its
  // median warm run; scaled from the nearest measured shape when `shape` is not; 0 when
  // unknown. Time kept back for a route is this x fallback_reserve_multiplier.
  double typical_ms(const RouteSlot& s, const ShapeKey& shape) const;
  Status warm_up(std::string* note);
  void check_rows();  // PrepareOptions::check_batch_rows into sla_.batch_rows
  // Hands a half-open probe of route `index` to the probe queue (started on first use) with a
  // copy of `inputs`; false when it is full (the caller then releases the admission).
  bool offer_probe(size_t index, const CircuitBreaker::Admission& admission, const std::vector<Value>& inputs);
  // Runs on the probe queue's thread: one call on `s` within `budget_ms`; the outcome goes to the
  // route's breaker and telemetry (it answers no request).
  void run_probe(RouteSlot& s, const CircuitBreaker::Admission& admission, double budget_ms,
                 const std::vector<Value>& inputs, const std::atomic<bool>& stop);
  // The parity check of a probe of a breaker that parity violations opened (a route with wrong
  // numbers answers its probes without errors): `outputs`, the route's answer to `inputs`, is
  // compared with the reference route's within `control` and counted in `s`'s parity
  // telemetry. ok when it matches; parity_violation when it does not; any other status when
  // the reference could not run (no verdict: the caller gives the admission back).
  Status check_probe_answer(RouteSlot& s, const std::vector<Value>& inputs, const std::vector<Value>& outputs,
                            const RunControl& control);
  void on_parity(const ParityResult& r);
  // Adds one comparison (a sample's or a probe's) to the route's parity telemetry.
  void on_parity_counts(RouteSlot& slot, const ParityResult& r);
  Result<InferResult> fail(Status s, SteadyClock::time_point t0, const InferTimings& timings);

  std::string name_;
  PrepareOptions opts_;
  std::shared_ptr<const Clock> clock_;
  std::shared_ptr<const Graph> graph_;
  IoSchema schema_;
  std::string cache_key_, cache_key_text_;
  SlaEstimate sla_;
  PlacementInfo placement_;
  uint64_t arena_bytes_ = 0;
  ShapeKey warm_key_;    // the warm-up inputs' shape (the report's budgets are given for it)
  int max_workers_ = 1;  // calls one route runs at once (its worker pool's bound)
  std::vector<std::unique_ptr<RouteSlot>> routes_;
  std::unique_ptr<ParitySampler> parity_;
  static constexpr int kProbeQueueCapacity = 4;
  std::once_flag probes_once_;
  std::unique_ptr<BackgroundQueue> probes_;  // half-open probes off the request path; made on first use
  std::atomic<uint64_t> request_counter_{0};

  mutable std::mutex mu_;  // model-level counters below
  uint64_t requests_ = 0, succeeded_ = 0, failed_ = 0, fallbacks_ = 0;
  std::map<std::string, uint64_t> failures_;
  LatencyHistogram latency_;
  double queue_s_ = 0, compute_s_ = 0;
};


}  // namespace tandem::engine_internal
