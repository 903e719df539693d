// The prepared model: routes over backends, breakers, abandonable calls, parity sampling and
// telemetry. See tandem/engine.h and docs/engine.md for the behaviour.
#include "engine/prepared_model.h"

#include <algorithm>
#include <exception>
#include <cmath>
#include <fstream>
#include <mutex>
#include <set>

#include "engine/breaker.h"
#include "engine/faulty_backend.h"
#include "engine/inputs.h"
#include "engine/parity_sampler.h"
#include "engine/placement.h"
#include "engine/sha256.h"
#include "core/sysinfo.h"
#include "engine/telemetry_json.h"
#include "engine/worker_pool.h"

namespace tandem {

bool is_cpu_backend(std::string_view name) { return name == "reference" || name == "cpu"; }

namespace {

using SteadyClock = std::chrono::steady_clock;

double ms_between(SteadyClock::time_point a, SteadyClock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}
SteadyClock::duration ms_duration(double ms) {
  return std::chrono::duration_cast<SteadyClock::duration>(std::chrono::duration<double, std::milli>(ms));
}

uint64_t mix64(uint64_t z) {
  z += 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The library version of a backend, for the cache key. Backends built into tandem share its version.
std::string backend_version(std::string_view name) {
  if (name == "reference" || name == "cpu") return TANDEM_VERSION;
  if (name.rfind("faulty(", 0) == 0) return TANDEM_VERSION;
  return "unknown";
}

std::string kind_name(TypeInfo::Kind k) {
  switch (k) {
    case TypeInfo::Kind::tensor: return "tensor";
    case TypeInfo::Kind::sequence: return "sequence";
    case TypeInfo::Kind::optional: return "optional";
    case TypeInfo::Kind::map: return "map";
    default: return "unknown";
  }
}

IoInfo io_info(const Graph& g, const ValueInfo& vi, bool input) {
  IoInfo info;
  info.name = vi.name;
  info.kind = kind_name(vi.type.kind);
  info.dtype = vi.type.elem;
  info.has_shape = vi.type.has_shape;
  for (const Dim& d : vi.type.dims) info.dims.push_back({d.value, d.symbol});
  info.required = input ? is_required_input(g, vi) : true;
  info.type = vi.type.to_string();
  return info;
}

// Non-finite values in float outputs; `where` names the first output that has one.
bool all_finite(const std::vector<Value>& outputs, const std::vector<ValueInfo>& names, std::string* where) {
  auto check = [](const Tensor& t) {
    const int64_t n = t.numel();
    switch (t.dtype()) {
      case DataType::float32:
        for (int64_t i = 0; i < n; ++i)
          if (!std::isfinite(t.data<float>()[i])) return false;
        return true;
      case DataType::float64:
        for (int64_t i = 0; i < n; ++i)
          if (!std::isfinite(t.data<double>()[i])) return false;
        return true;
      case DataType::float16:
        for (int64_t i = 0; i < n; ++i)
          if (!std::isfinite(static_cast<float>(t.data<Float16>()[i]))) return false;
        return true;
      case DataType::bfloat16:
        for (int64_t i = 0; i < n; ++i)
          if (!std::isfinite(static_cast<float>(t.data<BFloat16>()[i]))) return false;
        return true;
      default: return true;
    }
  };
  for (size_t i = 0; i < outputs.size(); ++i) {
    bool ok = outputs[i].is_tensor() ? check(outputs[i].tensor) : true;
    for (const Tensor& t : outputs[i].sequence) ok = ok && check(t);
    if (!ok) {
      *where = i < names.size() ? names[i].name : std::to_string(i);
      return false;
    }
  }
  return true;
}

// A failure that says something about the caller's request rather than the backend.
bool is_request_error(StatusCode c) { return c == StatusCode::invalid_argument || c == StatusCode::invalid_model; }

// One way to run the model: a placement over [backend, reference] (or reference alone).
// Shared with worker threads, so a hung call keeps it alive after the model is gone.
struct Route {
  std::string name;
  std::unique_ptr<PlacedModel> placed;
  std::shared_ptr<FaultyBackend> faulty;  // set on the fault-injected route
  bool reference_only = false;
};

struct RouteSlot {
  std::shared_ptr<Route> route;
  std::unique_ptr<WorkerPool> pool;
  std::unique_ptr<CircuitBreaker> breaker;
  double estimate_ms = 0;  // warm-up estimate; 0 when not measured
  mutable std::mutex mu;   // guards everything below
  uint64_t requests = 0, successes = 0, served = 0, sla_breaches = 0;
  std::map<std::string, uint64_t> failures, fallbacks;
  LatencyHistogram latency;
  double queue_s = 0, compute_s = 0;
  ParityTelemetry parity;
};

class PreparedModelImpl final : public PreparedModel {
 public:
  ~PreparedModelImpl() override {
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

  static Result<std::shared_ptr<PreparedModel>> create(const Model& model, const std::string& sha,
                                                       const std::string& default_name, const PrepareOptions& o,
                                                       const PrepareContext& ctx);

 private:
  double estimate_ms(const RouteSlot& s) const;
  double attempt_budget_ms(const RouteSlot& s) const;
  Status warm_up(std::string* note);
  void on_parity(const ParityResult& r);
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
  std::vector<std::unique_ptr<RouteSlot>> routes_;
  std::unique_ptr<ParitySampler> parity_;
  std::atomic<uint64_t> request_counter_{0};

  mutable std::mutex mu_;  // model-level counters below
  uint64_t requests_ = 0, succeeded_ = 0, failed_ = 0, fallbacks_ = 0;
  std::map<std::string, uint64_t> failures_;
  LatencyHistogram latency_;
  double queue_s_ = 0, compute_s_ = 0;
};

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

Capabilities PreparedModelImpl::capabilities() const {
  Capabilities c;
  const std::string& first = routes_.front()->route->name;
  std::string inner = first;
  if (routes_.front()->route->faulty) inner = std::string(routes_.front()->route->faulty->inner()->name());
  c.device = is_cpu_backend(inner) ? "cpu " + cpu_isa() : "gpu (backend " + inner + ")";
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
    }
    b.breaker = s.breaker->snapshot();
    b.hung_calls = s.pool->hung();
    b.abandoned_calls = s.pool->abandoned_total();
    b.worker_threads = s.pool->threads();
    b.sla_estimate_ms = s.estimate_ms;
    b.attempt_budget_ms = attempt_budget_ms(s);
    const auto& per = placement_.routes[i].nodes_per_backend;
    auto it = per.find(b.backend);
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
Status PreparedModelImpl::warm_up(std::string* note) {
  const Graph& g = *graph_;
  std::map<std::string, Value> provided;
  uint64_t seed = opts_.seed;
  for (const ValueInfo& vi : g.inputs) {
    if (!is_required_input(g, vi)) continue;
    if (vi.type.kind != TypeInfo::Kind::tensor || !vi.type.has_shape) {
      *note = "input '" + vi.name + "' has no tensor shape to make warm-up values from";
      return Status::ok();
    }
    Shape shape;
    for (const Dim& d : vi.type.dims) shape.push_back(d.fixed() ? d.value : 1);
    auto t = random_tensor(vi.type.elem, shape, seed++);
    if (!t) {
      *note = "cannot make warm-up values for input '" + vi.name + "': " + t.status().message();
      return Status::ok();
    }
    provided[vi.name] = Value::of(std::move(t).value());
  }
  auto bound = bind_inputs(g, provided);
  if (!bound) {
    *note = "warm-up inputs rejected: " + bound.status().message();
    return Status::ok();
  }
  const int runs = std::max(0, opts_.warmup_runs);
  for (auto& slot : routes_) {
    double worst = 0;
    bool ok = runs > 0;
    for (int k = 0; k < runs && ok; ++k) {
      RunControl control;
      control.deadline = SteadyClock::now() + std::chrono::minutes(2);
      std::vector<Value> out;
      const auto a = SteadyClock::now();
      Status s = slot->route->placed->run(*bound, &out, control);
      const double ms = ms_between(a, SteadyClock::now());
      if (!s.is_ok()) {
        ok = false;
        if (note->empty()) *note = "warm-up failed on " + slot->route->name + ": " + s.to_string();
        break;
      }
      // The first run pays for cold caches; later runs make the estimate (the slowest of them).
      if (k > 0 || runs == 1) worst = std::max(worst, ms);
    }
    if (ok) {
      slot->estimate_ms = worst;
      sla_.per_backend_ms[slot->route->name] = worst;
    }
  }
  sla_.warmup_runs = runs;
  sla_.measured = routes_.front()->estimate_ms > 0;
  sla_.estimate_ms = routes_.front()->estimate_ms;
  if (!sla_.measured && note->empty()) *note = runs == 0 ? "warm-up disabled (warmup_runs=0)" : "warm-up did not measure";
  return Status::ok();
}

Result<std::shared_ptr<PreparedModel>> PreparedModelImpl::create(const Model& model, const std::string& sha,
                                                                 const std::string& default_name,
                                                                 const PrepareOptions& o, const PrepareContext& ctx) {
  if (o.compute_units == ComputeUnits::cpu_and_ne)
    return unsupported("compute units cpu_and_ne are reserved: this build has no neural-engine backend");
  if (!(o.parity_sample_rate >= 0 && o.parity_sample_rate <= 1))
    return invalid_argument("parity_sample_rate must be in [0, 1]");
  if (o.latency_sla_ms < 0 || o.default_deadline_ms < 0) return invalid_argument("latency_sla_ms and default_deadline_ms must be >= 0");
  auto m = std::shared_ptr<PreparedModelImpl>(new PreparedModelImpl());
  m->opts_ = o;
  m->name_ = o.name.empty() ? default_name : o.name;
  m->clock_ = o.clock ? o.clock : std::shared_ptr<const Clock>(std::shared_ptr<const Clock>(), steady_clock_source());

  // Fixed input shapes specialise a copy of the graph.
  auto graph = std::make_shared<Graph>(*model.graph);
  TANDEM_RETURN_IF_ERROR(fix_input_shapes(*graph, o.input_shapes));
  m->graph_ = graph;
  for (const ValueInfo& vi : graph->inputs) m->schema_.inputs.push_back(io_info(*graph, vi, true));
  for (const ValueInfo& vi : graph->outputs) m->schema_.outputs.push_back(io_info(*graph, vi, false));
  for (const auto& [name, t] : graph->initializers) m->arena_bytes_ += t.nbytes();
  for (const Node& n : graph->nodes)  // weights stored as Constant nodes
    if (const Attribute* a = n.op_type == "Constant" ? n.attr("value") : nullptr) m->arena_bytes_ += a->t.nbytes();

  // The allowed backends, in order; reference last.
  Backend* reference = nullptr;
  std::vector<Backend*> allowed;
  for (Backend* b : ctx.order) {
    if (b->name() == "reference") {
      reference = b;
      continue;
    }
    if (o.compute_units == ComputeUnits::cpu_only && !is_cpu_backend(b->name())) continue;
    allowed.push_back(b);
  }
  if (!reference) return internal_error("the engine has no reference backend");
  allowed.push_back(reference);

  FaultSpec spec;
  if (!o.fault_injection.empty()) {
    TANDEM_ASSIGN_OR_RETURN(spec, parse_fault_spec(o.fault_injection));
  }
  std::shared_ptr<FaultyBackend> faulty;
  if (!spec.to_string().empty()) faulty = std::make_shared<FaultyBackend>(allowed.front(), spec, m->clock_);

  // One route per allowed backend: [B, reference]; the last is reference alone. Under fault
  // injection the first backend is wrapped (the reference gets a faulty route of its own).
  struct Plan {
    Backend* first;
    std::shared_ptr<FaultyBackend> faulty;
  };
  std::vector<Plan> plans;
  for (Backend* b : allowed) plans.push_back({b, nullptr});
  if (faulty) {
    if (allowed.front() == reference) plans.insert(plans.begin(), Plan{faulty.get(), faulty});
    else plans.front() = Plan{faulty.get(), faulty};
  }
  const bool strict = o.fallback == FallbackPolicy::strict;
  for (size_t i = 0; i < plans.size(); ++i) {
    auto route = std::make_shared<Route>();
    route->name = std::string(plans[i].first->name());
    route->faulty = plans[i].faulty;
    route->reference_only = plans[i].first == reference;
    std::vector<Backend*> order{plans[i].first};
    if (plans[i].first != reference) order.push_back(reference);
    // The requested precision applies to the route's own backend; the reference backend
    // always computes exactly (it ignores the option), which is what parity is judged by.
    CompileOptions compile = ctx.compile;
    compile.precision = o.precision;
    // A precision the backend cannot honour natively is an error of the request, not a
    // reason to serve everything from the reference backend.
    if (Status p = plans[i].first->supports_precision(o.precision); !p.is_ok())
      return p.with_prefix("model '" + m->name_ + "': backend " + route->name + ": ");
    auto placed = PlacedModel::create(graph, order, compile);
    if (!placed) {
      if (route->reference_only || (strict && i == 0))
        return placed.status().with_prefix("model '" + m->name_ + "': backend " + route->name + ": ");
      m->placement_.notes.push_back("route " + route->name + " dropped: " + placed.status().to_string());
      continue;
    }
    route->placed = std::move(placed).value();
    PlacementInfo::Route info;
    info.backend = route->name;
    for (const NodePlacement& np : route->placed->report().nodes)
      info.nodes.push_back({np.node, np.op_type, np.backend, np.declined});
    info.nodes_per_backend = route->placed->report().nodes_per_backend;
    info.segments = route->placed->report().segments;
    m->placement_.routes.push_back(std::move(info));
    auto slot = std::make_unique<RouteSlot>();
    slot->route = route;
    slot->pool = std::make_unique<WorkerPool>(route->name, ctx.max_workers, ctx.max_hung);
    BreakerOptions bo = o.breaker;
    if (strict) bo.failure_rate = bo.strict_failure_rate;
    slot->breaker = std::make_unique<CircuitBreaker>(bo, m->clock_.get());
    m->routes_.push_back(std::move(slot));
  }

  std::string note;
  TANDEM_RETURN_IF_ERROR(m->warm_up(&note));
  m->sla_.note = note;
  if (faulty) faulty->arm();

  // The cache key.
  std::string text = "tandem-cache-key-v1\n";
  text += "model_sha256=" + sha + "\n";
  text += "tandem_version=" + std::string(TANDEM_VERSION) + "\n";
  std::string backends;
  for (const auto& r : m->routes_) {
    const std::string n = r->route->name;
    backends += (backends.empty() ? "" : ",") + n + "@" + backend_version(n);
  }
  text += "backends=" + backends + "\n";
  text += "compute_units=" + std::string(compute_units_name(o.compute_units)) + "\n";
  text += "precision=" + std::string(precision_name(o.precision)) + "\n";
  std::string shapes;
  for (const ValueInfo& vi : graph->inputs) shapes += (shapes.empty() ? "" : ";") + vi.name + ":" + vi.type.to_string();
  text += "shapes=" + shapes + "\n";
  text += "cpu_isa=" + cpu_isa() + "\n";
  text += "os=" + os_name() + "\n";
  m->cache_key_text_ = text;
  m->cache_key_ = sha256_hex(text);

  if (o.parity_sample_rate > 0 && m->routes_.size() > 1) {
    PreparedModelImpl* self = m.get();
    std::shared_ptr<Route> ref = m->routes_.back()->route;
    try {  // starts a thread, which can fail when the process is out of threads
      m->parity_ = std::make_unique<ParitySampler>(
        o.parity_queue_capacity, o.parity_budget.value_or(default_parity_budget(o.precision)),
        [ref](const std::vector<Value>& in, std::vector<Value>* out, const RunControl& c) {
          return ref->placed->run(in, out, c);
        },
        [self](const ParityResult& r) { self->on_parity(r); });
    } catch (const std::exception& e) {
      return Status(StatusCode::unavailable, "model '" + m->name_ + "': cannot start the parity thread: " + e.what());
    }
  }

  if (!ctx.cache_dir.empty()) {
    nlohmann::json rec{{"cache_key", m->cache_key_},
                       {"cache_key_text", text},
                       {"model", m->name_},
                       {"sla_estimate_ms", m->sla_.estimate_ms},
                       {"per_backend_ms", m->sla_.per_backend_ms},
                       {"placement", m->placement_.to_string()}};
    std::ofstream out(ctx.cache_dir / (m->cache_key_ + ".json"));
    // A record only: a failed write does not fail prepare.
    if (out) out << rec.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return std::shared_ptr<PreparedModel>(m);
}

}  // namespace

Result<std::shared_ptr<PreparedModel>> create_prepared_model(const Model& model, const std::string& model_sha256,
                                                             const std::string& default_name,
                                                             const PrepareOptions& options,
                                                             const PrepareContext& context) {
  return PreparedModelImpl::create(model, model_sha256, default_name, options, context);
}

}  // namespace tandem
