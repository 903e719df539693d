// `tandem run`: run a model once on one backend and print or save its outputs.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "tandem/precision.h"
#include "backends/backend.h"
#include "cli/cli_util.h"
#include "cli/commands.h"
#include "cli/run_engine.h"
#include "core/npy.h"
#include "engine/inputs.h"
#include "engine/placement.h"
#include "onnx/loader.h"

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
  // Engine mode (any of these set): routes, fallback, fault injection, telemetry.
  std::string units;
  bool strict = false;
  std::string inject;
  std::string metrics_json;
  bool backend_given = false;
  std::string precision = "fp32";
  std::string routes;
};

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

int run_command(const RunOptions& o) {
  const std::string cmd = "run";
  Backend* backend = find_backend(o.backend);
  if (!backend) return fail(cmd, "unknown backend '" + o.backend + "'", 2);
  auto precision = parse_precision(o.precision);
  if (!precision) return fail(cmd, precision.status().message(), 2);
  auto t0 = std::chrono::steady_clock::now();
  auto model = load_model(o.model);
  if (!model) return fail(cmd, model.status().message());
  const double load_ms = ms_since(t0);
  const Graph& g = *model->graph;

  auto files = parse_assignments(o.inputs, "--input");
  if (!files) return fail(cmd, files.status().message(), 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(cmd, shapes.status().message(), 2);
  for (const auto& [name, s] : *shapes) {
    bool known = false;
    for (const auto& vi : g.inputs) known = known || vi.name == name;
    if (!known) return fail(cmd, "--shape names unknown input '" + name + "'", 2);
  }
  std::map<std::string, Value> provided;
  for (const auto& [name, path] : *files) {
    auto t = read_tensor_file(path);
    if (!t) return fail(cmd, "input '" + name + "': " + t.status().message());
    provided[name] = Value::of(std::move(t).value());
  }
  if (o.random_inputs) {
    uint64_t seed = o.seed;
    for (const auto& vi : g.inputs) {
      if (provided.count(vi.name) || !is_required_input(g, vi)) continue;
      if (vi.type.kind != TypeInfo::Kind::tensor) return fail(cmd, "cannot make random values for non-tensor input '" + vi.name + "'");
      auto it = shapes->find(vi.name);
      auto shape = concrete_input_shape(vi, it == shapes->end() ? nullptr : &it->second);
      if (!shape) return fail(cmd, shape.status().message(), 2);
      auto t = random_tensor(vi.type.elem, *shape, seed++);
      if (!t) return fail(cmd, "input '" + vi.name + "': " + t.status().message());
      provided[vi.name] = Value::of(std::move(t).value());
    }
  }
  auto bound = bind_inputs(g, provided);
  if (!bound) return fail(cmd, bound.status().message(), 2);
  if (!o.units.empty() || o.strict || !o.inject.empty() || !o.metrics_json.empty() || !o.routes.empty()) {
    EngineRunRequest er{o.model, o.backend_given ? o.backend : "", o.units, o.strict, o.inject, o.metrics_json,
                        o.output_dir, *shapes, provided, load_ms, *precision, o.routes};
    return run_with_engine(er);
  }

  t0 = std::chrono::steady_clock::now();
  std::vector<Backend*> backends{backend};
  if (backend->name() != "reference") backends.push_back(find_backend("reference"));
  if (Status ps = backend->supports_precision(*precision); !ps.is_ok()) return fail(cmd, ps.message());
  CompileOptions compile;
  compile.precision = *precision;
  auto placed = PlacedModel::create(model->graph, backends, compile);
  if (!placed) return fail(cmd, placed.status().message());
  const double compile_ms = ms_since(t0);
  t0 = std::chrono::steady_clock::now();
  std::vector<Value> outputs;
  Status s = (*placed)->run(*bound, &outputs);
  const double run_ms = ms_since(t0);
  if (!s.is_ok()) return fail(cmd, s.to_string());

  if (!o.output_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.output_dir, ec);
    if (ec) return fail(cmd, o.output_dir + ": cannot create folder: " + ec.message());
  }
  for (size_t i = 0; i < outputs.size() && i < g.outputs.size(); ++i) {
    const std::string& name = g.outputs[i].name;
    const Value& v = outputs[i];
    if (v.is_tensor()) {
      std::printf("%s %s[%s] %s\n", name.c_str(), std::string(dtype_name(v.tensor.dtype())).c_str(),
                  shape_to_string(v.tensor.shape()).c_str(), summarize(v.tensor).c_str());
      if (!o.output_dir.empty()) {
        Status w = write_npy(std::filesystem::path(o.output_dir) / (sanitize_file_name(name) + ".npy"), v.tensor);
        if (!w.is_ok()) return fail(cmd, w.message());
      }
    } else if (v.is_sequence()) {
      std::printf("%s sequence of %zu tensors\n", name.c_str(), v.sequence.size());
    } else {
      std::printf("%s (empty optional)\n", name.c_str());
    }
  }
  std::string placement;
  for (const auto& [name, count] : (*placed)->report().nodes_per_backend)
    placement += (placement.empty() ? "" : ", ") + name + " " + std::to_string(count);
  std::printf("nodes per backend: %s\n", placement.c_str());
  std::printf("backend %s: load %.1f ms, compile %.1f ms, run %.1f ms\n", backend->name().data(), load_ms, compile_ms,
              run_ms);
  return 0;
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
  cmd->add_option("--precision", o->precision, "Lowest precision the backend may compute in: fp32 (default), bf16, fp16");
  cmd->add_option("--routes", o->routes, "Run through the engine on this route chain, e.g. cpu@bf16,cpu@fp32,reference");
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
