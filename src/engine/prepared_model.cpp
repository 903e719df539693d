// The prepared model: routes over backends, breakers, abandonable calls, parity sampling and
// telemetry. See tandem/engine.h and docs/engine.md for the behaviour.
#include "engine/prepared_model.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <fstream>
#include <mutex>
#include <set>
#include <thread>

#include "core/sysinfo.h"
#include "engine/batch_rows_check.h"
#include "engine/breaker.h"
#include "engine/faulty_backend.h"
#include "engine/inputs.h"
#include "engine/int8_model.h"
#include "engine/parity_sampler.h"
#include "engine/placement.h"
#include "engine/prepared_model_impl.h"
#include "engine/routes.h"
#include "engine/sha256.h"
#include "engine/telemetry_json.h"
#include "engine/worker_pool.h"

namespace tandem {

Status make_cache_folder(const std::filesystem::path& folder) {
  std::error_code ec;
  std::filesystem::create_directories(folder, ec);
  if (ec) return invalid_argument(folder.string() + ": cannot create the cache folder: " + ec.message());
  return Status::ok();
}

namespace engine_internal {

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

}  // namespace engine_internal

namespace engine_internal {

namespace {

// `calls` runs of `route` on `inputs` at once (calls - 1 of them on threads of their own); the
// first failure, or ok. When a thread cannot be started, fewer run at once.
Status run_concurrently(const PlacedModel& route, const std::vector<Value>& inputs, int calls) {
  std::vector<Status> results(static_cast<size_t>(calls));
  auto one = [&](size_t i) {
    RunControl control;
    control.deadline = SteadyClock::now() + std::chrono::minutes(2);
    std::vector<Value> out;
    results[i] = route.run(inputs, &out, control);
  };
  std::vector<std::thread> threads;
  for (size_t i = 1; i < results.size(); ++i) {
    try {
      threads.emplace_back(one, i);
    } catch (const std::exception&) {
      break;  // the ones started still run at once with this thread's call
    }
  }
  one(0);
  for (std::thread& t : threads) t.join();
  for (const Status& r : results)
    if (!r.is_ok()) return r;
  return Status::ok();
}

}  // namespace

// Warm-up inputs: random values of each required input's declared shape, its symbolic dims 1,
// or `first_dim` for a symbolic first dim when it is > 0. Null with `note` set when an input
// has no shape to make values from; null with `note` untouched when `first_dim` is asked for
// and no input's first dim is symbolic (nothing to warm).
static std::optional<std::vector<Value>> warm_up_inputs(const Graph& g, uint64_t seed, int64_t first_dim,
                                                        std::string* note) {
  std::map<std::string, Value> provided;
  bool symbolic_first = false;
  for (const ValueInfo& vi : g.inputs) {
    if (!is_required_input(g, vi)) continue;
    if (vi.type.kind != TypeInfo::Kind::tensor || !vi.type.has_shape) {
      *note = "input '" + vi.name + "' has no tensor shape to make warm-up values from";
      return std::nullopt;
    }
    symbolic_first = symbolic_first || (!vi.type.dims.empty() && !vi.type.dims[0].fixed());
    auto t = random_tensor(vi.type.elem, made_up_shape(vi, first_dim), seed++);
    if (!t) {
      *note = "cannot make warm-up values for input '" + vi.name + "': " + t.status().message();
      return std::nullopt;
    }
    provided[vi.name] = Value::of(std::move(t).value());
  }
  if (first_dim > 0 && !symbolic_first) return std::nullopt;
  auto bound = bind_inputs(g, provided);
  if (!bound) {
    *note = "warm-up inputs rejected: " + bound.status().message();
    return std::nullopt;
  }
  return std::move(bound).value();
}

Status PreparedModelImpl::warm_up(std::string* note) {
  auto bound = warm_up_inputs(*graph_, opts_.seed, 0, note);
  if (!bound) return Status::ok();
  warm_key_ = ShapeKey::of(*bound);
  for (const ValueInfo& vi : graph_->inputs)
    if (is_required_input(*graph_, vi)) sla_.warmup_shapes[vi.name] = made_up_shape(vi);
  const int runs = std::max(0, opts_.warmup_runs);
  for (auto& slot : routes_) {
    double worst = 0, spent_ms = 0;
    int runs_made = 0;
    std::vector<double> measured;
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
      // A route this slow (the reference at a large fixed shape: seconds a run) is judged by
      // the runs made once they add up to warmup_time_cap_ms, the first one included.
      spent_ms += ms;
      ++runs_made;
      const bool capped = spent_ms >= opts_.warmup_time_cap_ms;
      if (k > 0 || runs == 1 || capped) {
        worst = std::max(worst, ms);
        measured.push_back(ms);
      }
      if (capped) break;
    }
    // Then `warmup_concurrency` calls at once (no more than the route's workers ever run), so
    // that the route holds that many warm run contexts (arenas touched, per-context kernel
    // state made) before its first concurrent requests: a cold context costs such a request
    // several times its usual latency. Not for a route whose runs reached the time cap: there a
    // cold context costs little next to the run, and the concurrent runs would cost as much again.
    const int concurrent = std::min(opts_.warmup_concurrency, max_workers_);
    if (ok && concurrent > 1 && spent_ms < opts_.warmup_time_cap_ms) {
      Status s = run_concurrently(*slot->route->placed, *bound, concurrent);
      if (!s.is_ok() && note->empty()) *note = "concurrent warm-up failed on " + slot->route->name + ": " + s.to_string();
    }
    if (ok) {
      slot->estimate_ms = worst;
      std::sort(measured.begin(), measured.end());
      slot->typical_ms = measured[measured.size() / 2];
      std::lock_guard<std::mutex> lock(slot->mu);
      slot->by_shape.set_warm(warm_key_, slot->estimate_ms, slot->typical_ms);
      sla_.per_backend_ms[slot->route->name] = worst;
      sla_.per_backend_runs[slot->route->name] = runs_made;
    }
  }
  // The batch sizes a caller named, on the routes that build per shape (not the reference).
  const int concurrent = std::min(opts_.warmup_concurrency, max_workers_);
  for (int64_t size : opts_.warmup_batch_sizes) {
    std::string why;
    auto batch = warm_up_inputs(*graph_, opts_.seed, size, &why);
    if (!batch) {
      if (note->empty()) *note = why;
      break;
    }
    bool warmed = true;
    for (auto& slot : routes_) {
      if (slot->route->reference_only) continue;
      RunControl control;
      control.deadline = SteadyClock::now() + std::chrono::minutes(2);
      std::vector<Value> out;
      Status s = slot->route->placed->run(*batch, &out, control);
      if (s.is_ok() && concurrent > 1) s = run_concurrently(*slot->route->placed, *batch, concurrent);
      if (!s.is_ok()) {
        warmed = false;
        if (note->empty())
          *note = "warm-up of batch size " + std::to_string(size) + " failed on " + slot->route->name + ": " +
                  s.to_string();
      }
    }
    if (warmed) sla_.warmed_batch_sizes.push_back(size);
  }
  sla_.warmup_runs = runs;
  sla_.measured = routes_.front()->estimate_ms > 0;
  sla_.estimate_ms = routes_.front()->estimate_ms;
  if (sla_.measured) {
    sla_.deadline_margin_ms = sla_.estimate_ms;
    for (size_t j = 1; j < routes_.size(); ++j) {
      const double reserve = fallback_reserve_ms(routes_[j]->typical_ms, opts_.fallback_reserve_multiplier);
      if (reserve <= 0) continue;
      sla_.deadline_margin_ms += reserve;
      break;
    }
  }
  if (!sla_.measured && note->empty()) *note = runs == 0 ? "warm-up disabled (warmup_runs=0)" : "warm-up did not measure";
  return Status::ok();
}

void PreparedModelImpl::check_rows() {
  if (!opts_.check_batch_rows) return;
  // The check is of the model, not of a device or a precision: before injected faults are
  // armed (like warm-up), and on routes computing in fp32 first (the reference among them),
  // where another batch size changes only the order of additions. A reduced-precision route
  // may move a row by more beside others, within its parity budget (int8 quantizes the
  // activations of a call over all its rows).
  std::vector<BatchRowsRoute> routes;
  for (bool fp32 : {true, false})
    for (auto& slot : routes_)
      if ((slot->route->precision == Precision::fp32) == fp32)
        routes.push_back({slot->route->name, slot->route->placed.get(), slot->parity_budget});
  sla_.batch_rows = check_batch_rows(*graph_, routes, opts_.seed);
}

Result<std::shared_ptr<PreparedModel>> PreparedModelImpl::create(const Model& model, const ModelSource& source,
                                                                 const std::string& sha,
                                                                 const std::string& default_name,
                                                                 const PrepareOptions& o, const PrepareContext& ctx) {
  if (o.compute_units == ComputeUnits::cpu_and_ne)
    return unsupported("compute units cpu_and_ne are reserved: this build has no neural-engine backend");
  if (!(o.parity_sample_rate >= 0 && o.parity_sample_rate <= 1))
    return invalid_argument("parity_sample_rate must be in [0, 1]");
  for (int64_t size : o.warmup_batch_sizes)
    if (size < 1) return invalid_argument("warmup_batch_sizes must be >= 1 (got " + std::to_string(size) + ")");
  if (o.latency_sla_ms < 0 || o.default_deadline_ms < 0) return invalid_argument("latency_sla_ms and default_deadline_ms must be >= 0");
  if (!(o.warmup_time_cap_ms >= 0)) return invalid_argument("warmup_time_cap_ms must be >= 0");
  if (!(o.shape_cache_mb >= 0 && o.shape_cache_mb < 1e12))
    return invalid_argument("shape_cache_mb must be >= 0 (0: the backend's default)");
  if (o.same_route_retries < 0)
    return invalid_argument("same_route_retries must be >= 0 (got " + std::to_string(o.same_route_retries) + ")");
  auto m = std::shared_ptr<PreparedModelImpl>(new PreparedModelImpl());
  m->opts_ = o;
  m->name_ = o.name.empty() ? default_name : o.name;
  m->clock_ = ctx.clock ? ctx.clock : std::shared_ptr<const Clock>(std::shared_ptr<const Clock>(), steady_clock_source());

  // Fixed input shapes specialise a copy of the graph.
  auto graph = std::make_shared<Graph>(*model.graph);
  TANDEM_RETURN_IF_ERROR(fix_input_shapes(*graph, o.input_shapes));
  m->graph_ = graph;
  for (const ValueInfo& vi : graph->inputs) m->schema_.inputs.push_back(describe_io(*graph, vi, true));
  for (const ValueInfo& vi : graph->outputs) m->schema_.outputs.push_back(describe_io(*graph, vi, false));
  for (const auto& [name, t] : graph->initializers) m->arena_bytes_ += t.nbytes();
  for (const Node& n : graph->nodes)  // weights stored as Constant nodes
    if (const Attribute* a = n.op_type == "Constant" ? n.attr("value") : nullptr) m->arena_bytes_ += a->t.nbytes();

  // The allowed backends, in order; reference last.
  Backend* reference = nullptr;
  std::vector<Backend*> allowed;
  for (Backend* b : ctx.order) {
    if (b->is_reference()) {
      reference = b;
      continue;
    }
    if (o.compute_units == ComputeUnits::cpu_only && b->device_kind() != DeviceKind::cpu) continue;
    allowed.push_back(b);
  }
  if (!reference) return internal_error("the engine has no reference backend");
  const RouteSpec reference_route{std::string(reference->name()), Precision::fp32};

  // The route chain: given, or the default one (routes.h); the reference route last.
  std::vector<RouteSpec> chain;
  if (o.routes.empty()) {
    chain = default_chain(allowed, o.precision, &m->placement_.notes);
  } else {
    for (const std::string& text : o.routes) {
      TANDEM_ASSIGN_OR_RETURN(RouteSpec r, parse_route(text));
      const bool known = r.backend == reference_route.backend || std::any_of(allowed.begin(), allowed.end(), [&](Backend* b) {
                           return b->name() == r.backend;
                         });
      if (!known) return invalid_argument("route '" + text + "': backend '" + r.backend + "' is not allowed here");
      if (std::any_of(chain.begin(), chain.end(), [&](const RouteSpec& c) { return c.name() == r.name(); }))
        return invalid_argument("route '" + r.name() + "' appears twice");
      if (!chain.empty() && chain.back().name() == reference_route.name())
        return invalid_argument("route '" + r.name() + "' comes after the reference route, which must be last");
      chain.push_back(r);
    }
    if (chain.back().name() != reference_route.name()) chain.push_back(reference_route);
  }
  auto backend_of = [&](const RouteSpec& r) {
    if (r.backend == reference_route.backend) return reference;
    return *std::find_if(allowed.begin(), allowed.end(), [&](Backend* b) { return b->name() == r.backend; });
  };

  // int8 routes compute a quantized rewrite of the model (int8_model.h), made once and shared
  // by them; every other route computes the float32 graph. When nothing can be quantized, the
  // default chain leaves its int8 routes out with a note (as for a precision the machine
  // lacks); a chain that names an int8 route fails.
  std::shared_ptr<const Graph> int8_graph;
  auto is_int8 = [](const RouteSpec& r) { return r.precision == Precision::int8; };
  if (std::any_of(chain.begin(), chain.end(), is_int8)) {
    for (const RouteSpec& r : chain)
      if (is_int8(r))
        if (Status p = backend_of(r)->supports_precision(r.precision); !p.is_ok())
          return p.with_prefix("model '" + m->name_ + "': route " + r.name() + ": ");
    auto q = quantize_for_int8(source.bytes, *model.graph, source.base_dir, source.display_name);
    if (q) {
      std::shared_ptr<Graph> g = q->model.graph;
      TANDEM_RETURN_IF_ERROR(fix_input_shapes(*g, o.input_shapes));
      for (const auto& [name, t] : g->initializers) m->arena_bytes_ += t.nbytes();
      m->placement_.notes.push_back(q->summary());
      int8_graph = std::move(g);
    } else if (o.routes.empty()) {
      for (const RouteSpec& r : chain)
        if (is_int8(r)) m->placement_.notes.push_back("route " + r.name() + " left out: " + q.status().message());
      chain.erase(std::remove_if(chain.begin(), chain.end(), is_int8), chain.end());
    } else {
      return q.status().with_prefix("model '" + m->name_ + "': ");
    }
  }

  // Fault injection: one spec, or several separated by ';', each wrapping the route it names
  // (route=...; without it, the first route).
  std::map<size_t, std::shared_ptr<FaultyBackend>> faulty;
  for (size_t pos = 0; pos < o.fault_injection.size();) {
    size_t end = o.fault_injection.find(';', pos);
    if (end == std::string::npos) end = o.fault_injection.size();
    const std::string text = o.fault_injection.substr(pos, end - pos);
    pos = end + 1;
    TANDEM_ASSIGN_OR_RETURN(FaultSpec spec, parse_fault_spec(text));
    if (spec.to_string().empty()) continue;
    size_t at = 0;
    if (!spec.route.empty()) {
      auto target = parse_route(spec.route);
      if (!target) return invalid_argument("fault injection: " + target.status().message());
      auto it = std::find_if(chain.begin(), chain.end(), [&](const RouteSpec& r) { return r.name() == target->name(); });
      if (it == chain.end()) return invalid_argument("fault injection: no route '" + target->name() + "' in this chain");
      at = static_cast<size_t>(it - chain.begin());
    }
    if (faulty.count(at)) return invalid_argument("fault injection: route '" + chain[at].name() + "' is named twice");
    faulty[at] = std::make_shared<FaultyBackend>(backend_of(chain[at]), spec, m->clock_, chain[at].name());
  }

  // One route per chain entry: [B, reference] at the entry's precision; the last is reference
  // alone. A faulty route wraps its backend; a faulty last route (the reference) comes in
  // front of a plain one, so that something always answers.
  struct Plan {
    Backend* first;
    RouteSpec spec;
    std::shared_ptr<FaultyBackend> faulty;
  };
  std::vector<Plan> plans;
  for (size_t i = 0; i < chain.size(); ++i) {
    if (auto f = faulty.find(i); f != faulty.end()) {
      plans.push_back(Plan{f->second.get(), chain[i], f->second});
      if (i + 1 < chain.size()) continue;
    }
    plans.push_back(Plan{backend_of(chain[i]), chain[i], nullptr});
  }
  const bool strict = o.fallback == FallbackPolicy::strict;
  for (size_t i = 0; i < plans.size(); ++i) {
    auto route = std::make_shared<Route>();
    route->name = plans[i].faulty ? std::string(plans[i].first->name()) : plans[i].spec.name();
    route->precision = plans[i].spec.precision;
    route->backend = std::string(plans[i].first->name());
    route->device_kind = plans[i].first->device_kind();
    route->version = std::string(plans[i].first->version());
    route->faulty = plans[i].faulty;
    route->reference_only = plans[i].first == reference;
    std::vector<Backend*> order{plans[i].first};
    if (plans[i].first != reference) order.push_back(reference);
    // The route's precision applies to its own backend; the reference backend always
    // computes exactly (it ignores the option), which is what parity is judged by. A precision
    // the backend cannot honour natively is an error of the request, not a reason to serve
    // everything from the reference backend.
    CompileOptions compile = ctx.compile;
    compile.precision = plans[i].spec.precision;
    compile.shape_cache_bytes = static_cast<size_t>(o.shape_cache_mb * 1024 * 1024);
    if (Status p = plans[i].first->supports_precision(compile.precision); !p.is_ok())
      return p.with_prefix("model '" + m->name_ + "': route " + route->name + ": ");
    auto placed = PlacedModel::create(is_int8(plans[i].spec) ? int8_graph : graph, order, compile);
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
    slot->parity_budget = o.parity_budget.value_or(default_parity_budget(route->precision));
    m->routes_.push_back(std::move(slot));
  }

  m->max_workers_ = std::max(1, ctx.max_workers);
  std::string note;
  TANDEM_RETURN_IF_ERROR(m->warm_up(&note));
  m->check_rows();
  m->sla_.note = note;
  for (auto& [at, f] : faulty) f->arm();

  // The cache key.
  std::string text = "tandem-cache-key-v1\n";
  text += "model_sha256=" + sha + "\n";
  text += "tandem_version=" + std::string(TANDEM_VERSION) + "\n";
  std::string backends;
  for (const auto& r : m->routes_) backends += (backends.empty() ? "" : ",") + r->route->name + "@" + r->route->version;
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
    std::vector<ParityBudget> parity_budgets;
    for (const auto& r : m->routes_) parity_budgets.push_back(r->parity_budget);
    PreparedModelImpl* self = m.get();
    std::shared_ptr<Route> ref = m->routes_.back()->route;
    try {  // starts a thread, which can fail when the process is out of threads
      m->parity_ = std::make_unique<ParitySampler>(
        o.parity_queue_capacity, parity_budgets,
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
                       {"per_backend_runs", m->sla_.per_backend_runs},
                       {"placement", m->placement_.to_string()}};
    std::ofstream out(ctx.cache_dir / (m->cache_key_ + ".json"));
    // A record only: a failed write does not fail prepare.
    if (out) out << rec.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return std::shared_ptr<PreparedModel>(m);
}

}  // namespace engine_internal

Result<std::shared_ptr<PreparedModel>> create_prepared_model(const Model& model, const ModelSource& source,
                                                             const std::string& model_sha256,
                                                             const std::string& default_name,
                                                             const PrepareOptions& options,
                                                             const PrepareContext& context) {
  return engine_internal::PreparedModelImpl::create(model, source, model_sha256, default_name, options, context);
}

}  // namespace tandem
