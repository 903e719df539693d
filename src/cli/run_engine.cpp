#include "engine/routes.h"
#include "cli/run_engine.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "cli/cli_util.h"
#include "core/npy.h"
#include "engine/telemetry_json.h"
#include "tandem/engine.h"

namespace tandem::cli {

int run_with_engine(const EngineRunRequest& r) {
  const std::string cmd = "run";
  EngineOptions eo;
  if (!r.backend.empty()) eo.backends = {r.backend};
  auto engine = Engine::create(eo);
  if (!engine) return fail(cmd, engine.status().message(), 2);
  PrepareOptions po;
  po.precision = r.precision;
  if (!r.routes.empty()) {
    auto routes = parse_routes(r.routes);
    if (!routes) return fail("run", "--routes: " + routes.status().message(), 2);
    for (const RouteSpec& route : *routes) po.routes.push_back(route.name());
  }
  if (!r.units.empty()) {
    auto u = parse_compute_units(r.units);
    if (!u) return fail(cmd, u.status().message(), 2);
    po.compute_units = *u;
  }
  po.fallback = r.strict ? FallbackPolicy::strict : FallbackPolicy::fallback;
  po.fault_injection = r.inject;
  for (const auto& [name, s] : r.shapes) po.input_shapes[name] = s;
  const auto t0 = std::chrono::steady_clock::now();
  auto prepared = (*engine)->prepare(r.model, po);
  if (!prepared) return fail(cmd, prepared.status().to_string());
  const double prepare_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  PreparedModel& model = **prepared;
  auto result = model.infer(r.inputs, {});
  model.drain_parity(10000);
  int code = 0;
  if (!result) {
    code = fail(cmd, result.status().to_string());
  } else {
    if (!r.output_dir.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(r.output_dir, ec);
      if (ec) return fail(cmd, r.output_dir + ": cannot create folder: " + ec.message());
    }
    for (const std::string& name : result->output_order) {
      const Value& v = result->outputs.at(name);
      if (v.is_tensor()) {
        std::printf("%s %s[%s] %s\n", name.c_str(), std::string(dtype_name(v.tensor.dtype())).c_str(),
                    shape_to_string(v.tensor.shape()).c_str(), summarize(v.tensor).c_str());
        if (!r.output_dir.empty()) {
          Status w = write_npy(std::filesystem::path(r.output_dir) / (sanitize_file_name(name) + ".npy"), v.tensor);
          if (!w.is_ok()) return fail(cmd, w.message());
        }
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
    std::printf("served by %s%s%s: load %.1f ms, prepare %.1f ms, queue %.2f ms, compute %.2f ms, total %.2f ms\n",
                result->backend.c_str(), result->fallback_reason.empty() ? "" : " after fallback: ",
                result->fallback_reason.c_str(), r.load_ms, prepare_ms, result->timings.queue_ms,
                result->timings.compute_ms, result->timings.total_ms);
  }
  if (!r.metrics_json.empty()) {
    nlohmann::json j = telemetry_json(model.telemetry());
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
    std::ofstream out(r.metrics_json);
    if (!out) return fail(cmd, r.metrics_json + ": cannot write");
    out << j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) << "\n";
  }
  return code;
}

}  // namespace tandem::cli
