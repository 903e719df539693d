// `tandem soak`: drive many requests through the engine (seeded random inputs, or the same
// input files for every request; several threads), with optional fault injection, and report what the engine did: who served, how
// often it fell back, breaker trips, parity, latency and memory.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "tandem/engine.h"
#include "tandem/sysinfo.h"
#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

struct SoakOptions {
  std::string model;
  std::vector<std::string> shapes;
  std::vector<std::string> inputs;  // NAME=FILE: this tensor in every request
  std::string units = "all";
  std::string inject;
  bool strict = false;
  double deadline_ms = 0;
  double parity_sample = 0;
  int64_t requests = 0;
  double duration_s = 0;
  int threads = 1;
  int engine_threads = 0;  // EngineOptions::threads (0: the backend default)
  std::string json;
  std::string prometheus;
  std::vector<std::string> backends;
  double sla_ms = 0;
  bool output_guard = false;
  uint64_t seed = 0;
  int warmup = 20;
  bool quiet = false;
  std::string precision = "fp32";
  std::string routes;  // "cpu@bf16,cpu@fp32,reference"; empty: the default chain
  bool hedging = false;
  int same_route_retries = 1;
  double parity_max_abs = -1;  // < 0: the precision's default budget
  double parity_rmse = -1;
  std::string cache_dir;  // EngineOptions::cache_dir
};

double mb(uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

int soak_command(const SoakOptions& o) {
  const std::string cmd = "soak";
  if ((o.requests > 0) == (o.duration_s > 0)) return fail(cmd, "give exactly one of --requests N or --duration SECONDS", 2);
  if (o.threads < 1 || o.threads > 1024) return fail(cmd, "--threads must be in [1, 1024]", 2);
  if (o.engine_threads < 0 || o.engine_threads > 1024) return fail(cmd, "--engine-threads must be in [0, 1024]", 2);
  if (o.parity_sample < 0 || o.parity_sample > 1) return fail(cmd, "--parity-sample must be in [0, 1]", 2);
  if (o.same_route_retries < 0 || o.same_route_retries > 100) return fail(cmd, "--retries must be in [0, 100]", 2);
  auto units = parse_compute_units(o.units);
  if (!units) return fail(cmd, units.status().message(), 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(cmd, shapes.status().message(), 2);
  auto precision = parse_precision(o.precision);
  if (!precision) return fail(cmd, precision.status().message(), 2);

  EngineOptions eo;
  eo.backends = o.backends;
  eo.threads = o.engine_threads;
  eo.cache_dir = o.cache_dir;
  auto engine = Engine::create(eo);
  if (!engine) return fail(cmd, engine.status().message(), 2);
  PrepareOptions po;
  po.compute_units = *units;
  po.fallback = o.strict ? FallbackPolicy::strict : FallbackPolicy::fallback;
  po.default_deadline_ms = o.deadline_ms;
  po.parity_sample_rate = o.parity_sample;
  po.fault_injection = o.inject;
  po.latency_sla_ms = o.sla_ms;
  po.output_guard = o.output_guard;
  po.seed = o.seed;
  po.warmup_concurrency = o.threads;  // every sending thread finds a warm context on each route
  po.precision = *precision;
  if (!o.routes.empty()) {
    auto routes = parse_route_chain(o.routes);
    if (!routes) return fail(cmd, "--routes: " + routes.status().message(), 2);
    po.routes = *routes;
  }
  po.hedging = o.hedging;
  po.same_route_retries = o.same_route_retries;
  if (o.parity_max_abs >= 0 || o.parity_rmse >= 0) {
    ParityBudget budget = default_parity_budget(*precision);
    if (o.parity_max_abs >= 0) budget.max_abs = o.parity_max_abs;
    if (o.parity_rmse >= 0) budget.rmse = o.parity_rmse;
    po.parity_budget = budget;
  }
  auto files = parse_assignments(o.inputs, "--input");
  if (!files) return fail(cmd, files.status().message(), 2);
  std::map<std::string, Value> from_files;
  for (const auto& [name, path] : *files) {
    auto t = read_tensor_file(path);
    if (!t) return fail(cmd, "input '" + name + "': " + t.status().message(), 2);
    po.input_shapes[name] = t->shape();  // compiled for the file's shape (--shape may not differ)
    if (shapes->count(name) && (*shapes)[name] != t->shape())
      return fail(cmd, "--shape " + name + " differs from the shape of its --input file", 2);
    from_files[name] = Value::of(std::move(t).value());
  }
  for (const auto& [name, s] : *shapes) po.input_shapes[name] = s;
  auto prepared = (*engine)->prepare(o.model, po);
  if (!prepared) return fail(cmd, prepared.status().to_string());
  PreparedModel& model = **prepared;

  // A few input sets, made once and reused (their buffers are never written again).
  constexpr int kInputSets = 16;
  std::vector<std::map<std::string, Value>> input_sets(kInputSets);
  for (int k = 0; k < kInputSets; ++k) {
    uint64_t seed = o.seed * 7919 + static_cast<uint64_t>(k) * 104729;
    for (const IoInfo& io : model.io_schema().inputs) {
      if (auto f = from_files.find(io.name); f != from_files.end()) {
        input_sets[static_cast<size_t>(k)][io.name] = f->second;  // shared, never written
        continue;
      }
      if (!io.required) continue;
      if (io.kind != "tensor" || !io.has_shape) return fail(cmd, "cannot make random values for input '" + io.name + "'", 2);
      Shape shape;
      for (const IoDim& d : io.dims) {
        if (d.value < 0) return fail(cmd, "input '" + io.name + "' has a dynamic dim (" + io.type + "); pass --shape " + io.name + "=DIMS", 2);
        shape.push_back(d.value);
      }
      auto t = random_tensor(io.dtype, shape, seed++);
      if (!t) return fail(cmd, "input '" + io.name + "': " + t.status().message());
      input_sets[static_cast<size_t>(k)][io.name] = Value::of(std::move(t).value());
    }
  }

  for (const auto& [name, v] : from_files) {
    const auto& ins = model.io_schema().inputs;
    if (std::none_of(ins.begin(), ins.end(), [&](const IoInfo& in) { return in.name == name; }))
      return fail(cmd, "--input names unknown input '" + name + "'", 2);
  }

  // RSS is taken once the first `warmup` requests are done (threads and caches exist by then);
  // those requests count like every other (faults apply from the first request).
  std::atomic<uint64_t> rss_start{0};
  std::atomic<int64_t> done_at_rss_start{0};
  if (o.warmup <= 0) rss_start = process_rss_bytes();

  using Clock = std::chrono::steady_clock;
  const Clock::time_point t0 = Clock::now();
  const Clock::time_point end_time =
      o.duration_s > 0 ? t0 + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.duration_s))
                       : Clock::time_point::max();
  std::atomic<int64_t> next{0}, done{0}, failed{0};
  std::mutex mu;
  std::map<std::string, int64_t> served_by, failures;
  int64_t fallbacks = 0;
  LatencyHistogram latency;  // every request, successes and failures (merged from the threads)

  auto driver = [&] {
    LatencyHistogram mine;
    std::map<std::string, int64_t> my_served, my_failures;
    int64_t my_fallbacks = 0;
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (o.requests > 0 && i >= o.requests) break;
      if (Clock::now() >= end_time) break;
      const auto a = Clock::now();
      auto r = model.infer(input_sets[static_cast<size_t>(i % kInputSets)], {});
      mine.record_seconds(std::chrono::duration<double>(Clock::now() - a).count());
      if (r) {
        my_served[r->backend]++;
        my_fallbacks += !r->fallback_reason.empty();
      } else {
        my_failures[std::string(status_code_name(r.status().code()))]++;
        failed++;
      }
      if (done.fetch_add(1) + 1 == o.warmup) {
        done_at_rss_start = o.warmup;
        rss_start = process_rss_bytes();
      }
    }
    std::lock_guard<std::mutex> lock(mu);
    latency.merge(mine);
    for (const auto& [k, v] : my_served) served_by[k] += v;
    for (const auto& [k, v] : my_failures) failures[k] += v;
    fallbacks += my_fallbacks;
  };

  std::atomic<bool> finished{false};
  std::vector<std::pair<double, double>> rss_series;  // (seconds, MB) every 5 s, at most 720 points
  std::thread progress([&] {
    const bool tty = ::isatty(2);
    int last_decile = -1;
    double next_rss = 0;
    while (!finished.load()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      const double elapsed = std::chrono::duration<double>(Clock::now() - t0).count();
      if (elapsed >= next_rss && rss_series.size() < 720) {
        rss_series.emplace_back(elapsed, mb(process_rss_bytes()));
        next_rss += 5;
      }
      const double frac = o.requests > 0 ? static_cast<double>(done.load()) / static_cast<double>(o.requests)
                                         : std::min(1.0, elapsed / o.duration_s);
      if (o.quiet) continue;
      const int width = 30, filled = static_cast<int>(frac * width);
      char line[200];
      std::snprintf(line, sizeof(line), "[%s%s] %3.0f%% %lld requests, %lld failed, %.0f req/s",
                    std::string(static_cast<size_t>(filled), '#').c_str(),
                    std::string(static_cast<size_t>(width - filled), '.').c_str(), frac * 100,
                    static_cast<long long>(done.load()), static_cast<long long>(failed.load()),
                    elapsed > 0 ? static_cast<double>(done.load()) / elapsed : 0.0);
      if (tty) {
        std::fprintf(stderr, "\r%s", line);
      } else if (static_cast<int>(frac * 10) > last_decile) {
        last_decile = static_cast<int>(frac * 10);
        std::fprintf(stderr, "%s\n", line);
      }
    }
    if (!o.quiet && tty) std::fprintf(stderr, "\n");
  });
  std::vector<std::thread> drivers;
  for (int k = 0; k < o.threads; ++k) drivers.emplace_back(driver);
  for (auto& t : drivers) t.join();
  const double wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  finished = true;
  progress.join();
  model.drain_parity(10000);
  const uint64_t rss_end = process_rss_bytes();
  const ModelTelemetry t = model.telemetry();

  const int64_t total = done.load();
  if (rss_start.load() == 0) {  // fewer requests than the warm-up
    rss_start = rss_end;
    done_at_rss_start = total;
  }
  const int64_t measured = total - done_at_rss_start.load();
  nlohmann::json j;
  j["model"] = o.model;
  j["requests"] = total;
  j["succeeded"] = total - failed.load();
  j["failed"] = failed.load();
  j["failures"] = failures;
  j["served_by"] = served_by;
  j["fallbacks"] = fallbacks;
  j["wall_seconds"] = wall_s;
  j["requests_per_second"] = wall_s > 0 ? static_cast<double>(total) / wall_s : 0.0;
  nlohmann::json breaker = nlohmann::json::object();
  uint64_t p_samples = 0, p_violations = 0, p_dropped = 0, hung = 0, abandoned = 0;
  double p_max_abs = 0;
  for (size_t i = 0; i < t.backends.size(); ++i) {
    const BackendTelemetry& b = t.backends[i];
    breaker[b.backend] = {{"trips", b.breaker.trips},
                          {"state", breaker_state_name(b.breaker.state)},
                          {"transitions", b.breaker.transitions}};
    p_samples += b.parity.samples;
    p_violations += b.parity.violations;
    p_dropped += b.parity.dropped;
    p_max_abs = std::max(p_max_abs, b.parity.max_abs);
    hung += b.hung_calls;
    abandoned += b.abandoned_calls;
  }
  j["breaker"] = breaker;
  j["parity"] = {{"samples", p_samples},
                 {"violations", p_violations},
                 {"dropped", p_dropped},
                 {"max_abs_error", std::isfinite(p_max_abs) ? p_max_abs : 1e308}};
  j["latency_ms"] = nlohmann::json::parse(latency_to_json(latency));
  nlohmann::json series = nlohmann::json::array();
  for (const auto& [sec, m] : rss_series) series.push_back({sec, m});
  j["rss_mb"] = {{"start", mb(rss_start.load())},
                 {"end", mb(rss_end)},
                 {"start_after_requests", done_at_rss_start.load()},
                 {"series", series}};
  j["rss_growth_kb_per_1000_requests"] =
      measured > 0 ? (static_cast<double>(rss_end) - static_cast<double>(rss_start.load())) / 1024.0 /
                         (static_cast<double>(measured) / 1000.0)
                   : 0.0;
  j["hung_calls"] = hung;
  j["abandoned_calls"] = abandoned;
  j["sla_estimate_ms"] = model.sla_estimate().estimate_ms;
  j["telemetry"] = nlohmann::json::parse(telemetry_to_json(t));

  std::printf("soak %s: %lld requests in %.1f s (%.0f req/s), %d threads\n", model.name().c_str(),
              static_cast<long long>(total), wall_s, wall_s > 0 ? static_cast<double>(total) / wall_s : 0.0, o.threads);
  std::string chain;
  for (const std::string& r : model.capabilities().routes) chain += (chain.empty() ? "" : " -> ") + r;
  std::printf("routes: %s\n", chain.c_str());
  std::printf("succeeded %lld, failed %lld", static_cast<long long>(total - failed.load()),
              static_cast<long long>(failed.load()));
  for (const auto& [k, v] : failures) std::printf(" (%s %lld)", k.c_str(), static_cast<long long>(v));
  std::printf("\nserved by:");
  for (const auto& [k, v] : served_by) std::printf(" %s %lld", k.c_str(), static_cast<long long>(v));
  std::printf("; fallbacks %lld\n", static_cast<long long>(fallbacks));
  for (const BackendTelemetry& b : t.backends) {
    std::printf("backend %s: calls %llu, ok %llu, breaker %s (trips %llu), estimate %.2f ms, budget %.1f ms, hung %llu, "
                "abandoned %llu, parity %llu/%llu violations",
                b.backend.c_str(), static_cast<unsigned long long>(b.requests),
                static_cast<unsigned long long>(b.successes), std::string(breaker_state_name(b.breaker.state)).c_str(),
                static_cast<unsigned long long>(b.breaker.trips), b.sla_estimate_ms, b.attempt_budget_ms,
                static_cast<unsigned long long>(b.hung_calls), static_cast<unsigned long long>(b.abandoned_calls),
                static_cast<unsigned long long>(b.parity.violations), static_cast<unsigned long long>(b.parity.samples));
    for (const auto& [k, v] : b.failures) std::printf(", %s %llu", k.c_str(), static_cast<unsigned long long>(v));
    if (b.hedged || b.hedge_wins)
      std::printf(", hedged %llu, hedge wins %llu", static_cast<unsigned long long>(b.hedged),
                  static_cast<unsigned long long>(b.hedge_wins));
    if (b.probes) std::printf(", off-path probes %llu", static_cast<unsigned long long>(b.probes));
    if (b.retries) std::printf(", retries %llu", static_cast<unsigned long long>(b.retries));
    std::printf("\n");
  }
  std::printf("latency ms: p50 %.2f p90 %.2f p99 %.2f max %.2f\n", latency.quantile_ms(0.5), latency.quantile_ms(0.9),
              latency.quantile_ms(0.99), static_cast<double>(latency.max_ns()) / 1e6);
  std::printf("rss: %.1f MB after %lld requests, %.1f MB at the end (%.1f KB per 1000 requests)\n", mb(rss_start.load()),
              static_cast<long long>(done_at_rss_start.load()), mb(rss_end),
              j["rss_growth_kb_per_1000_requests"].get<double>());

  if (!o.json.empty()) {
    std::ofstream out(o.json);
    if (!out) return fail(cmd, o.json + ": cannot write");
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  if (!o.prometheus.empty()) {
    std::ofstream out(o.prometheus);
    if (!out) return fail(cmd, o.prometheus + ": cannot write");
    out << telemetry_to_prometheus({t});
  }
  return 0;
}

}  // namespace

void add_soak_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("soak", "Drive many requests through the engine and report its behaviour");
  auto o = std::make_shared<SoakOptions>();
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("--shape", o->shapes, "NAME=DIMS such as x=1x3x48x192; repeatable");
  cmd->add_option("--input", o->inputs, "NAME=FILE (.npy or TensorProto .pb): this tensor in every request; repeatable");
  cmd->add_option("--units", o->units, "Compute units: all, cpu_only, cpu_and_gpu, cpu_and_ne");
  cmd->add_option("--inject", o->inject,
                  "Fault injection on one route, e.g. route=cpu@bf16,error=0.3,hang=0.01,hang_ms=5000 (default: the first)");
  cmd->add_flag("--strict", o->strict, "Never serve from another backend; return the typed error");
  cmd->add_option("--deadline-ms", o->deadline_ms, "Deadline of each request in ms (default: none)");
  cmd->add_option("--parity-sample", o->parity_sample, "Fraction of answers re-run on the reference backend");
  cmd->add_option("--precision", o->precision, "Lowest precision the backends may compute in: fp32 (default), bf16, fp16, int8");
  cmd->add_option("--routes", o->routes, "Route chain, e.g. cpu@bf16,cpu@fp32,reference (default: from --precision)");
  cmd->add_flag("--hedge", o->hedging, "Also start a slow request on the next route after its p95; first answer wins");
  cmd->add_option("--retries", o->same_route_retries,
                  "Calls made again on the same route after a transient device error (default 1; 0: off)");
  cmd->add_option("--parity-max-abs", o->parity_max_abs,
                  "Parity budget: max absolute error (default: 1e-3 for fp32, 1e-2 for bf16/fp16, 5e-2 for int8)");
  cmd->add_option("--parity-rmse", o->parity_rmse, "Parity budget: RMSE (default: 1e-4 for fp32, 1e-3 for bf16/fp16, 1e-2 for int8)");
  auto* req = cmd->add_option("--requests", o->requests, "Number of requests");
  auto* dur = cmd->add_option("--duration", o->duration_s, "Run for this many seconds");
  req->excludes(dur);
  cmd->add_option("--threads", o->threads, "Threads sending requests (default 1)");
  cmd->add_option("--engine-threads", o->engine_threads,
                  "Threads per backend call (default 0: the backend's default, the physical cores)");
  cmd->add_option("--json", o->json, "Write the summary as JSON here");
  cmd->add_option("--prometheus", o->prometheus, "Write the final telemetry as Prometheus text here");
  cmd->add_option("--backend", o->backends, "Backend order (repeatable; default: all, reference last)");
  cmd->add_option("--cache-dir", o->cache_dir,
                  "Keep prepare's measurements and the backends' timed kernel choices here (processes sharing it "
                  "compile alike)");
  cmd->add_option("--sla-ms", o->sla_ms, "Latency SLA in ms (slower answers count as SLA breaches)");
  cmd->add_flag("--output-guard", o->output_guard, "Fail calls whose outputs are not finite");
  cmd->add_option("--seed", o->seed, "Seed for inputs, sampling and fault injection (default 0)");
  cmd->add_option("--warmup", o->warmup, "Requests after which the start RSS is taken (default 20)");
  cmd->add_flag("--quiet", o->quiet, "No progress bar");
  cmd->callback([o, exit_code] { *exit_code = soak_command(*o); });
}

}  // namespace tandem::cli
