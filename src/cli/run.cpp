// `tandem run`: prepare a model with the engine, answer one request and print (or save) its
// outputs. Without engine options it runs on the one backend asked for (the reference backend
// by default), nodes that backend declines on the reference backend, with no fallback, no
// warm-up and no time budget; --routes, --units, --strict, --inject and --metrics-json bring
// the engine's routes, fallback, fault injection and telemetry into play.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>

#include <nlohmann/json.hpp>

#include "cli_util.h"
#include "commands.h"
#include "tandem/engine.h"
#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

struct RunOptions {
  std::string model;
  std::string backend = "reference";
  std::vector<std::string> inputs;
  std::vector<std::string> shapes;
  bool random_inputs = false;
  uint64_t seed = 0;
  std::string output_dir;
  std::string cache_dir;  // EngineOptions::cache_dir
  // Engine options (any of these set): routes, fallback, fault injection, telemetry.
  std::string units;
  bool strict = false;
  std::string inject;
  std::string metrics_json;
  bool backend_given = false;
  std::string precision = "fp32";
  std::string routes;

  bool uses_engine_options() const {
    return !units.empty() || strict || !inject.empty() || !metrics_json.empty() || !routes.empty();
  }
};

// Values for the required inputs not provided, shaped by --shape or the declared dims, seeded
// in input order.
Status add_random_inputs(const IoSchema& schema, const std::map<std::string, Shape>& shapes, uint64_t seed,
                         std::map<std::string, Value>* provided) {
  for (const IoInfo& in : schema.inputs) {
    if (provided->count(in.name) || !in.required) continue;
    if (in.kind != "tensor") return invalid_argument("cannot make random values for non-tensor input '" + in.name + "'");
    auto it = shapes.find(in.name);
    TANDEM_ASSIGN_OR_RETURN(Shape shape, concrete_shape(in, it == shapes.end() ? nullptr : &it->second));
    auto t = random_tensor(in.dtype, shape, seed++);
    if (!t) return t.status().with_prefix("input '" + in.name + "': ");
    (*provided)[in.name] = Value::of(std::move(t).value());
  }
  return Status::ok();
}

Status write_metrics_json(const std::string& path, const PreparedModel& model, const Result<InferResult>& result) {
  nlohmann::json j = nlohmann::json::parse(telemetry_to_json(model.telemetry()));
  j["sla_estimate_ms"] = model.sla_estimate().estimate_ms;
  j["placement"] = model.placement().to_string();
  if (result) {
    j["request"] = {{"backend", result->backend},
                    {"fallback_reason", result->fallback_reason},
                    {"attempts", result->attempts},
                    {"queue_ms", result->timings.queue_ms},
                    {"compute_ms", result->timings.compute_ms},
                    {"total_ms", result->timings.total_ms}};
  } else {
    j["request"] = {{"error", result.status().to_string()}};
  }
  std::ofstream out(path);
  if (!out) return invalid_argument(path + ": cannot write");
  out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  return Status::ok();
}

// Prints each output (and writes it to `output_dir` unless empty), then the placement and times.
Status print_outputs(const InferResult& r, const PreparedModel& model, const std::string& output_dir,
                     double prepare_ms) {
  if (!output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(output_dir, ec);
    if (ec) return invalid_argument(output_dir + ": cannot create folder: " + ec.message());
  }
  for (const std::string& name : r.output_order) {
    const Value& v = r.outputs.at(name);
    if (v.is_tensor()) {
      std::printf("%s %s[%s] %s\n", name.c_str(), std::string(dtype_name(v.tensor.dtype())).c_str(),
                  shape_to_string(v.tensor.shape()).c_str(), summarize(v.tensor).c_str());
      if (!output_dir.empty())
        TANDEM_RETURN_IF_ERROR(write_npy(std::filesystem::path(output_dir) / (sanitize_file_name(name) + ".npy"), v.tensor));
    } else if (v.is_sequence()) {
      std::printf("%s sequence of %zu tensors\n", name.c_str(), v.sequence.size());
    } else {
      std::printf("%s (empty optional)\n", name.c_str());
    }
  }
  std::string placement;
  for (const auto& [name, count] : model.placement().routes.front().nodes_per_backend)
    placement += (placement.empty() ? "" : ", ") + name + " " + std::to_string(count);
  std::printf("nodes per backend: %s\n", placement.c_str());
  for (const std::string& note : model.placement().notes) std::printf("note: %s\n", note.c_str());
  std::printf("served by %s%s%s: prepare %.1f ms, queue %.2f ms, compute %.2f ms, total %.2f ms\n", r.backend.c_str(),
              r.fallback_reason.empty() ? "" : " after fallback: ", r.fallback_reason.c_str(), prepare_ms,
              r.timings.queue_ms, r.timings.compute_ms, r.timings.total_ms);
  return Status::ok();
}

int run_command(const RunOptions& o) {
  const std::string cmd = "run";
  auto precision = parse_precision(o.precision);
  if (!precision) return fail(cmd, precision.status().message(), 2);
  auto files = parse_assignments(o.inputs, "--input");
  if (!files) return fail(cmd, files.status().message(), 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(cmd, shapes.status().message(), 2);

  // int8 and bf16 are what the cpu backend computes in; the reference backend stays exact
  // float32 whatever precision it is allowed, so without --backend such a run goes to the cpu
  // backend (which refuses bf16, with its reason, on a CPU without native bf16).
  const bool cpu_precision = *precision == Precision::int8 || *precision == Precision::bf16;
  const std::string backend = cpu_precision && !o.backend_given ? "cpu" : o.backend;
  EngineOptions eo;
  const bool engine_options = o.uses_engine_options();
  if (!engine_options || o.backend_given) eo.backends = {backend};
  eo.cache_dir = o.cache_dir;
  auto engine = Engine::create(eo);
  if (!engine) return fail(cmd, engine.status().message(), 2);
  PrepareOptions po;
  po.precision = *precision;
  if (engine_options) {
    for (const auto& [name, s] : *shapes) po.input_shapes[name] = s;
    if (!o.routes.empty()) {
      auto routes = parse_route_chain(o.routes);
      if (!routes) return fail(cmd, "--routes: " + routes.status().message(), 2);
      po.routes = *routes;
    }
    if (!o.units.empty()) {
      auto u = parse_compute_units(o.units);
      if (!u) return fail(cmd, u.status().message(), 2);
      po.compute_units = *u;
    }
    po.fallback = o.strict ? FallbackPolicy::strict : FallbackPolicy::fallback;
    po.fault_injection = o.inject;
  } else {
    // The backend asked for, alone: no fallback, no warm-up, no time budget, and a model
    // compiled for any input shape (--shape only shapes the random inputs).
    po.routes = {backend + (*precision == Precision::fp32 ? "" : "@" + std::string(precision_name(*precision)))};
    po.fallback = FallbackPolicy::strict;
    po.warmup_runs = 0;
    po.unmeasured_budget_ms = std::numeric_limits<double>::infinity();
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto prepared = (*engine)->prepare(o.model, po);
  if (!prepared) return fail(cmd, prepared.status().to_string());
  const double prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  PreparedModel& model = **prepared;

  std::map<std::string, Value> provided;
  for (const auto& [name, path] : *files) {
    auto t = read_tensor_file(path);
    if (!t) return fail(cmd, "input '" + name + "': " + t.status().message());
    provided[name] = Value::of(std::move(t).value());
  }
  for (const auto& [name, s] : *shapes) {
    const auto& ins = model.io_schema().inputs;
    if (std::none_of(ins.begin(), ins.end(), [&](const IoInfo& in) { return in.name == name; }))
      return fail(cmd, "--shape names unknown input '" + name + "'", 2);
  }
  if (o.random_inputs)
    if (Status s = add_random_inputs(model.io_schema(), *shapes, o.seed, &provided); !s.is_ok())
      return fail(cmd, s.message(), 2);

  auto result = model.infer(provided, {});
  model.drain_parity(10000);
  int code = 0;
  if (!result) {
    code = fail(cmd, result.status().to_string(), result.status().code() == StatusCode::invalid_argument ? 2 : 1);
  } else if (Status s = print_outputs(*result, model, o.output_dir, prepare_ms); !s.is_ok()) {
    return fail(cmd, s.message());
  }
  if (!o.metrics_json.empty())
    if (Status s = write_metrics_json(o.metrics_json, model, result); !s.is_ok()) return fail(cmd, s.message());
  return code;
}

}  // namespace

void add_run_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("run", "Run a model once and print (or save) its outputs");
  auto o = std::make_shared<RunOptions>();
  cmd->add_option("model", o->model, "ONNX model file")->required();
  auto* backend_opt = cmd->add_option("--backend", o->backend, "Backend to run on");
  cmd->add_option("--input", o->inputs, "NAME=FILE (.npy or TensorProto .pb); repeatable");
  cmd->add_flag("--random-inputs", o->random_inputs, "Fill inputs not given with seeded random values");
  cmd->add_option("--seed", o->seed, "Seed for --random-inputs (default 0)");
  cmd->add_option("--shape", o->shapes, "NAME=DIMS such as x=1x3x640x640, for --random-inputs; repeatable");
  cmd->add_option("--output-dir", o->output_dir, "Write each output as <name>.npy here");
  cmd->add_option(
      "--cache-dir", o->cache_dir,
      "Keep prepare's measurements and the backends' timed kernel choices here (processes sharing it compile alike)");
  cmd->add_option("--precision", o->precision,
                  "Lowest precision the backend may compute in: fp32 (default), bf16, fp16, int8 (the model is "
                  "quantized at prepare: int8 weights per channel, activations per call); bf16 and int8 run on the "
                  "cpu backend unless --backend says otherwise");
  cmd->add_option("--routes", o->routes, "Run through the engine on this route chain, e.g. cpu@int8,cpu@fp32,reference");
  cmd->add_option("--units", o->units, "Run through the engine on these compute units (all, cpu_only, cpu_and_gpu)");
  cmd->add_flag("--strict", o->strict, "Run through the engine; never serve from another backend");
  cmd->add_option("--inject", o->inject, "Run through the engine with fault injection, e.g. error=0.3");
  cmd->add_option("--metrics-json", o->metrics_json, "Run through the engine; write its telemetry as JSON here");
  cmd->callback([o, exit_code, backend_opt] {
    o->backend_given = backend_opt->count() > 0;
    *exit_code = run_command(*o);
  });
}

}  // namespace tandem::cli
