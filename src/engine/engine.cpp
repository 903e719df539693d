// Engine: backend order, prepare (load + hash + routes), and forwarding to PreparedModel.
#include "tandem/engine.h"

#include <algorithm>
#include <fstream>
#include <mutex>
#include <sstream>

#include "backends/backend.h"
#include "engine/clock.h"
#include "engine/prepared_model.h"
#include "engine/testing.h"
#include "engine/sha256.h"
#include "core/sysinfo.h"
#include "onnx/loader.h"

namespace tandem {

namespace {
class SteadyClockSource final : public Clock {
 public:
  std::chrono::steady_clock::time_point now() const override { return std::chrono::steady_clock::now(); }
};
}  // namespace

const Clock* steady_clock_source() {
  static const SteadyClockSource clock;
  return &clock;
}

std::string_view compute_units_name(ComputeUnits u) {
  switch (u) {
    case ComputeUnits::all: return "all";
    case ComputeUnits::cpu_only: return "cpu_only";
    case ComputeUnits::cpu_and_gpu: return "cpu_and_gpu";
    case ComputeUnits::cpu_and_ne: return "cpu_and_ne";
  }
  return "unknown";
}

Result<ComputeUnits> parse_compute_units(std::string_view text) {
  for (ComputeUnits u : {ComputeUnits::all, ComputeUnits::cpu_only, ComputeUnits::cpu_and_gpu, ComputeUnits::cpu_and_ne})
    if (compute_units_name(u) == text) return u;
  return invalid_argument("unknown compute units '" + std::string(text) + "' (use all, cpu_only, cpu_and_gpu, cpu_and_ne)");
}

ParityBudget default_parity_budget(Precision p) {
  ParityBudget b;
  if (p == Precision::fp16 || p == Precision::bf16) {
    b.max_abs = 1e-2;
    b.rmse = 1e-3;
  } else if (p == Precision::int8) {
    // Quantization noise (half a step of every activation and weight scale) touches every
    // element, so the RMSE bound sits closer to max-abs than for the float precisions.
    b.max_abs = 5e-2;
    b.rmse = 1e-2;
  }
  return b;
}

std::string PlacementInfo::to_string() const {
  std::ostringstream os;
  os << "route chain:";
  for (size_t i = 0; i < routes.size(); ++i) os << (i ? " -> " : " ") << routes[i].backend;
  os << "\n";
  for (const Route& r : routes) {
    os << "route " << r.backend << ": " << r.segments << " segment" << (r.segments == 1 ? "" : "s") << ";";
    for (const auto& [b, n] : r.nodes_per_backend) os << " " << b << " " << n << " nodes";
    os << "\n";
    for (const NodeInfo& n : r.nodes) {
      if (n.declined.empty()) continue;
      os << "  " << n.node << " on " << n.backend << ":";
      for (const auto& [b, why] : n.declined) os << " " << b << " declined (" << why << ")";
      os << "\n";
    }
  }
  for (const std::string& note : notes) os << note << "\n";
  return os.str();
}

struct Engine::Impl {
  EngineOptions options;
  std::vector<std::string> names;
  PrepareContext context;
  mutable std::mutex mu;
  std::vector<std::weak_ptr<PreparedModel>> models;  // for metrics_prometheus()

  Result<std::shared_ptr<PreparedModel>> prepare(std::string_view bytes, const std::filesystem::path& base_dir,
                                                 const std::string& display, const std::string& default_name,
                                                 const PrepareOptions& o) {
    auto model = load_model_from_bytes(bytes, base_dir, display);
    if (!model) return model.status();
    const std::string sha = sha256_hex(bytes);
    const ModelSource source{bytes, base_dir, display};
    auto prepared = create_prepared_model(*model, source, sha, default_name, o, context);
    if (!prepared) return prepared.status();
    std::lock_guard<std::mutex> lock(mu);
    models.erase(std::remove_if(models.begin(), models.end(), [](const auto& w) { return w.expired(); }), models.end());
    models.push_back(*prepared);
    return prepared;
  }
};

Engine::Engine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Engine::~Engine() = default;

Result<std::unique_ptr<Engine>> Engine::create(const EngineOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::vector<std::string> names = options.backends;
  if (names.empty())
    for (std::string_view n : available_backends()) names.emplace_back(n);
  std::vector<Backend*> ordered;
  for (const std::string& n : names) {
    Backend* b = find_backend(n);
    if (!b) {
      std::string known;
      for (std::string_view a : available_backends()) known += (known.empty() ? "" : ", ") + std::string(a);
      return invalid_argument("unknown backend '" + n + "' (available: " + known + ")");
    }
    if (b->is_reference() || std::find(ordered.begin(), ordered.end(), b) != ordered.end()) continue;
    ordered.push_back(b);
  }
  ordered.push_back(reference_backend());
  for (Backend* b : ordered) impl->names.emplace_back(b->name());
  impl->context.order = ordered;
  if (options.threads < 0) return invalid_argument("threads must be >= 0");
  impl->context.compile.threads = options.threads;
  impl->context.max_workers =
      options.max_workers_per_backend > 0 ? options.max_workers_per_backend : std::max(4, hardware_threads());
  impl->context.max_hung = std::max(0, options.max_hung_calls_per_backend);
  if (!options.cache_dir.empty()) {
    TANDEM_RETURN_IF_ERROR(make_cache_folder(options.cache_dir));
    impl->context.cache_dir = options.cache_dir;
    impl->context.compile.cache_dir = options.cache_dir;
  }
  return std::unique_ptr<Engine>(new Engine(std::move(impl)));
}

Result<std::shared_ptr<PreparedModel>> Engine::prepare(const std::filesystem::path& model_path,
                                                       const PrepareOptions& options) {
  std::ifstream in(model_path, std::ios::binary);
  if (!in) return invalid_argument(model_path.string() + ": cannot open the model file");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) return invalid_argument(model_path.string() + ": cannot read the model file");
  return impl_->prepare(bytes, model_path.parent_path(), model_path.filename().string(), model_path.stem().string(),
                        options);
}

Result<std::shared_ptr<PreparedModel>> Engine::prepare_bytes(std::string_view model_bytes, const PrepareOptions& options) {
  return impl_->prepare(model_bytes, {}, "<bytes>", "model", options);
}

Result<InferResult> Engine::infer(PreparedModel& prepared, const std::map<std::string, Value>& inputs,
                                  const InferOptions& options) {
  return prepared.infer(inputs, options);
}

Capabilities Engine::capabilities(const PreparedModel& prepared) const { return prepared.capabilities(); }

const std::vector<std::string>& Engine::backends() const { return impl_->names; }

void EngineInternals::set_clock(Engine& engine, std::shared_ptr<const Clock> clock) {
  engine.impl_->context.clock = std::move(clock);
}

std::string Engine::metrics_prometheus() const {
  std::vector<std::shared_ptr<PreparedModel>> alive;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& w : impl_->models)
      if (auto p = w.lock()) alive.push_back(std::move(p));
  }
  std::vector<ModelTelemetry> t;
  for (const auto& p : alive) t.push_back(p->telemetry());
  return telemetry_to_prometheus(t);
}

}  // namespace tandem
