// `tandem bench`: time a model's steady-state runs on one backend (with reference fallback).
//
// Inputs are seeded random tensors (as `tandem run --random-inputs`), shaped by --shape for
// inputs with symbolic dims. The model is placed once, run --warmup times untimed, then
// --iters times with steady_clock around each CompiledModel::run() call. Latency percentiles
// interpolate linearly between the sorted samples (numpy's default), as bench/peer/ort_bench.mjs
// does, so the two are comparable. --json writes the numbers for bench/compare.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "tandem/backend_info.h"
#include "tandem/engine.h"
#include "tandem/model.h"
#include "tandem/precision.h"
#include "tandem/sysinfo.h"
#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct BenchOptions {
  std::string model;
  std::vector<std::string> shapes;
  std::string backend;  // empty: the preferred backend of this build
  // Numbers are taken as text and checked here, so that a bad value is one clear error line.
  std::string threads = "0";
  std::string precision = "fp32";
  std::string routes;  // non-empty: time requests through the engine on this route chain
  std::string warmup = "3";
  std::string iters = "20";
  std::string seed = "0";
  std::string json;
  std::string cache_dir;  // CompileSettings::cache_dir, or EngineOptions::cache_dir with --routes
  bool no_progress = false;
};

double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

// A whole number in [min, max] given to `option`.
Result<long long> parse_count(const std::string& option, const std::string& text, long long min, long long max) {
  const std::string want = option + " wants an integer in [" + std::to_string(min) + ", " + std::to_string(max) + "]";
  if (text.empty() || text.size() > 18 || text.find_first_not_of("0123456789") != std::string::npos)
    return invalid_argument(want + ", got '" + text + "'");
  const long long v = std::stoll(text);
  if (v < min || v > max) return invalid_argument(want + ", got " + text);
  return v;
}

// Linear interpolation between the closest ranks of `sorted` (numpy's default method).
double percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double pos = p / 100.0 * static_cast<double>(sorted.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - static_cast<double>(lo));
}

// A progress bar on stderr. On a terminal it is redrawn in place once the run has taken half a
// second; elsewhere (a log file) a plain line is written every 10 s once the run has taken
// 10 s, so short runs leave no trace and long ones show they are alive.
class Progress {
 public:
  Progress(bool enabled, int total) : enabled_(enabled), tty_(::isatty(STDERR_FILENO) == 1), total_(total) {}
  ~Progress() { finish(); }

  void update(int done, const char* phase) {
    if (!enabled_) return;
    const auto now = Clock::now();
    const double elapsed_s = ms_between(start_, now) / 1000.0;
    if (tty_) {
      if (elapsed_s < 0.5 || (drawn_ && ms_between(last_, now) < 100 && done < total_)) return;
      const int width = 30;
      const int filled = total_ > 0 ? done * width / total_ : width;
      std::string bar(static_cast<size_t>(filled), '#');
      bar.resize(width, '.');
      const double eta_s = done > 0 ? elapsed_s / done * (total_ - done) : 0;
      std::fprintf(stderr, "\r\033[K[%s] %d/%d %s, %.1f s, eta %.1f s", bar.c_str(), done, total_, phase, elapsed_s,
                   eta_s);
    } else {
      if (elapsed_s < 10 || (drawn_ && ms_between(last_, now) < 10000)) return;
      std::fprintf(stderr, "tandem bench: %d/%d iterations (%s), %.0f s\n", done, total_, phase, elapsed_s);
    }
    std::fflush(stderr);
    drawn_ = true;
    last_ = now;
  }
  void finish() {
    if (enabled_ && tty_ && drawn_) std::fprintf(stderr, "\r\033[K");
    std::fflush(stderr);
    drawn_ = false;
    enabled_ = false;
  }

 private:
  bool enabled_;
  bool tty_;
  int total_;
  bool drawn_ = false;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;
};

int bench_command(const BenchOptions& o) {
  const std::string cmd = "bench";
  // Options first, so that a bad one fails before the (possibly slow) model load.
  auto threads_req = parse_count("--threads", o.threads, 0, 4096);
  if (!threads_req) return fail(cmd, threads_req.status().message(), 2);
  auto warmup = parse_count("--warmup", o.warmup, 0, 1000000);
  if (!warmup) return fail(cmd, warmup.status().message(), 2);
  auto iters = parse_count("--iters", o.iters, 1, 1000000);
  if (!iters) return fail(cmd, iters.status().message(), 2);
  auto seed = parse_count("--seed", o.seed, 0, 999999999999999999LL);
  if (!seed) return fail(cmd, seed.status().message(), 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(cmd, shapes.status().message(), 2);
  const std::vector<BackendInfo> available = list_backends();
  const std::string backend = o.backend.empty() ? available.front().name : o.backend;
  if (std::none_of(available.begin(), available.end(), [&](const BackendInfo& b) { return b.name == backend; })) {
    std::string known;
    for (const BackendInfo& b : available) known += (known.empty() ? "" : ", ") + b.name;
    return fail(cmd, "unknown backend '" + backend + "' (this build has: " + known + ")", 2);
  }
  if (!o.json.empty()) {  // fail now rather than after a long run
    std::ofstream probe(o.json, std::ios::app);
    if (!probe) return fail(cmd, o.json + ": cannot write", 2);
  }
  const int threads = *threads_req > 0 ? static_cast<int>(*threads_req) : physical_cores();

  auto t0 = Clock::now();
  auto model = OnnxModel::load(o.model);
  if (!model) return fail(cmd, model.status().message());
  const double load_ms = ms_between(t0, Clock::now());
  const ModelDescription& description = model->description();

  for (const auto& [name, s] : *shapes) {
    bool known = false;
    for (const IoInfo& in : description.inputs) known = known || in.name == name;
    if (!known) return fail(cmd, "--shape names unknown input '" + name + "'", 2);
  }
  std::map<std::string, Value> provided;
  nlohmann::ordered_json shapes_json = nlohmann::ordered_json::object();
  std::string shapes_text;
  uint64_t next_seed = static_cast<uint64_t>(*seed);
  for (const IoInfo& in : description.inputs) {
    if (!in.required) continue;
    if (in.kind != "tensor") return fail(cmd, "cannot make random values for non-tensor input '" + in.name + "'");
    auto it = shapes->find(in.name);
    auto shape = concrete_shape(in, it == shapes->end() ? nullptr : &it->second);
    if (!shape) return fail(cmd, shape.status().message(), 2);
    auto t = random_tensor(in.dtype, *shape, next_seed++);
    if (!t) return fail(cmd, "input '" + in.name + "': " + t.status().message());
    shapes_json[in.name] = *shape;
    shapes_text += (shapes_text.empty() ? "" : " ") + in.name + "=" + shape_to_string(*shape);
    provided[in.name] = Value::of(std::move(t).value());
  }

  t0 = Clock::now();
  auto precision = parse_precision(o.precision);
  if (!precision) return fail(cmd, precision.status().message(), 2);
  // Either one backend's placement, run directly (the default), or requests through the
  // engine on a route chain (--routes), which adds the engine's request path to each run.
  std::optional<CompiledModel> placed;
  std::vector<Value> bound;
  std::unique_ptr<Engine> engine;
  std::shared_ptr<PreparedModel> prepared;
  if (o.routes.empty()) {
    CompileSettings settings;
    settings.backend = backend;
    settings.threads = threads;
    settings.precision = *precision;
    settings.cache_dir = o.cache_dir;
    auto p = model->compile(settings);
    if (!p) return fail(cmd, p.status().message());
    placed = std::move(p).value();
    auto b = placed->bind(provided);
    if (!b) return fail(cmd, b.status().message(), 2);
    bound = std::move(b).value();
  } else {
    auto routes = parse_route_chain(o.routes);
    if (!routes) return fail(cmd, "--routes: " + routes.status().message(), 2);
    EngineOptions eo;
    eo.threads = threads;
    eo.cache_dir = o.cache_dir;
    auto e = Engine::create(eo);
    if (!e) return fail(cmd, e.status().message(), 2);
    engine = std::move(e).value();
    PrepareOptions po;
    po.precision = *precision;
    po.routes = *routes;
    for (const auto& [name, t] : provided)
      if (t.is_tensor()) po.input_shapes[name] = t.tensor.shape();
    po.min_attempt_budget_ms = 600000;  // a benchmark measures; it never abandons a call
    auto p = engine->prepare(o.model, po);
    if (!p) return fail(cmd, p.status().message());
    prepared = std::move(p).value();
  }
  const double compile_ms = ms_between(t0, Clock::now());
  std::map<std::string, int> served_by;
  auto run_once = [&](std::vector<Value>* outputs) -> Status {
    if (placed) return placed->run(bound, outputs);
    auto r = prepared->infer(provided);
    if (!r) return r.status();
    served_by[r->backend]++;
    return Status::ok();
  };

  const int warmup_n = static_cast<int>(*warmup);
  const int iters_n = static_cast<int>(*iters);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(iters_n));
  std::vector<Value> outputs;
  {
    Progress progress(!o.no_progress, warmup_n + iters_n);
    for (int i = 0; i < warmup_n + iters_n; ++i) {
      // `outputs` keeps the last run's tensors: the backend writes into them again (pooled
      // outputs, as a serving loop would), so the timed region allocates nothing on the cpu backend.
      const auto start = Clock::now();
      Status s = run_once(&outputs);
      const auto end = Clock::now();
      if (!s.is_ok()) {
        progress.finish();
        return fail(cmd, std::string(i < warmup_n ? "warm-up" : "timed") + " run " + std::to_string(i + 1) + ": " +
                             s.to_string());
      }
      if (i >= warmup_n) samples.push_back(ms_between(start, end));
      progress.update(i + 1, i + 1 < warmup_n ? "warm-up" : "timed");
    }
  }
  outputs.clear();

  std::vector<double> sorted = samples;
  std::sort(sorted.begin(), sorted.end());
  const double mean = std::accumulate(sorted.begin(), sorted.end(), 0.0) / static_cast<double>(sorted.size());
  const uint64_t peak = process_peak_rss_bytes();
  const double rss = peak ? static_cast<double>(peak) / 1048576.0 : -1;
  std::map<std::string, int> nodes_per_backend;
  int segments = 0;
  if (placed) {
    nodes_per_backend = placed->placement().nodes_per_backend;
    segments = placed->placement().segments;
  } else {
    nodes_per_backend = prepared->placement().routes.front().nodes_per_backend;
    segments = prepared->placement().routes.front().segments;
  }
  std::string placement;
  for (const auto& [name, count] : nodes_per_backend)
    placement += (placement.empty() ? "" : ", ") + name + " " + std::to_string(count);
  std::printf("model %s\n", o.model.c_str());
  std::printf("inputs %s\n", shapes_text.empty() ? "(none)" : shapes_text.c_str());
  std::printf("%s %s, threads %d, warm-up %d, iterations %d\n", placed ? "backend" : "engine, first backend",
              backend.c_str(), threads, warmup_n, iters_n);
  if (prepared) {
    std::string chain, served;
    for (const std::string& r : prepared->capabilities().routes) chain += (chain.empty() ? "" : " -> ") + r;
    for (const auto& [r, n] : served_by) served += " " + r + " " + std::to_string(n);
    std::printf("routes %s (through the engine); served by:%s\n", chain.c_str(), served.c_str());
  }
  std::printf("nodes per backend%s: %s (%d segments)\n", prepared ? " (first route)" : "", placement.c_str(), segments);
  std::printf("load %.1f ms, compile %.1f ms\n", load_ms, compile_ms);
  std::printf("latency ms: min %.3f  p50 %.3f  p90 %.3f  p99 %.3f  max %.3f  mean %.3f\n", sorted.front(),
              percentile(sorted, 50), percentile(sorted, 90), percentile(sorted, 99), sorted.back(), mean);
  std::printf("peak RSS %.1f MB\n", rss);

  if (!o.json.empty()) {
    nlohmann::ordered_json j;
    j["runtime"] = "tandem";
    j["version"] = TANDEM_VERSION;
    j["model"] = o.model;
    j["backend"] = backend;
    j["threads"] = threads;
    j["shapes"] = shapes_json;
    j["seed"] = *seed;
    j["warmup"] = warmup_n;
    j["iters"] = iters_n;
    j["min_ms"] = sorted.front();
    j["p50_ms"] = percentile(sorted, 50);
    j["p90_ms"] = percentile(sorted, 90);
    j["p99_ms"] = percentile(sorted, 99);
    j["max_ms"] = sorted.back();
    j["mean_ms"] = mean;
    j["load_ms"] = load_ms;
    j["compile_ms"] = compile_ms;
    j["peak_rss_mb"] = rss;
    j["nodes_per_backend"] = nodes_per_backend;
    j["segments"] = segments;
    if (prepared) {
      j["routes"] = prepared->capabilities().routes;
      j["served_by"] = served_by;
    }
    j["samples_ms"] = samples;  // in run order
    std::ofstream out(o.json, std::ios::trunc);
    out << j.dump(2) << "\n";
    out.close();
    if (!out) return fail(cmd, o.json + ": write failed");
  }
  return 0;
}

}  // namespace

void add_bench_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("bench", "Time a model's runs on one backend: latency percentiles and peak memory");
  auto o = std::make_shared<BenchOptions>();
  cmd->add_option("model", o->model, "ONNX model file (required)");
  cmd->add_option("--shape", o->shapes, "NAME=DIMS such as x=1x3x640x640 for inputs with symbolic dims; repeatable")
      ->type_name("NAME=DIMS");
  cmd->add_option("--backend", o->backend, "Backend to run on (default: this build's preferred backend)")
      ->type_name("NAME");
  cmd->add_option("--threads", o->threads, "Threads for the backend (default 0: the number of physical cores)")->type_name("N");
  cmd->add_option("--precision", o->precision, "Lowest precision the backend may compute in: fp32 (default), bf16, fp16, int8 (quantized at compile)");
  cmd->add_option("--routes", o->routes, "Time requests through the engine on this route chain, e.g. cpu@bf16,cpu,reference");
  cmd->add_option("--warmup", o->warmup, "Untimed runs first (default 3)")->type_name("N");
  cmd->add_option("--iters", o->iters, "Timed runs (default 20)")->type_name("N");
  cmd->add_option("--seed", o->seed, "Seed for the random inputs (default 0)")->type_name("N");
  cmd->add_option("--json", o->json, "Also write the results as JSON to this file")->type_name("FILE");
  cmd->add_option("--cache-dir", o->cache_dir,
                  "Keep the backends' timed kernel choices here (the folder of `soak --cache-dir` and `serve "
                  "--cache-dir`: sharing it, they compile alike)")
      ->type_name("DIR");
  cmd->add_flag("--no-progress", o->no_progress, "No progress bar on stderr");
  // Our own checks, rather than CLI11's two-line errors: a missing model, a stray argument.
  cmd->allow_extras();
  for (CLI::Option* opt : cmd->get_options()) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  cmd->get_option("--shape")->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  cmd->callback([o, cmd, exit_code] {
    if (!cmd->remaining().empty()) {
      *exit_code = fail("bench", "unexpected argument '" + cmd->remaining().front() + "' (see tandem bench --help)", 2);
    } else if (o->model.empty()) {
      *exit_code = fail("bench", "no MODEL given (see tandem bench --help)", 2);
    } else {
      *exit_code = bench_command(*o);
    }
  });
}

}  // namespace tandem::cli
