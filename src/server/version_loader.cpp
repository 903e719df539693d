// version_loader.cpp: see version_loader.h.
#include "version_loader.h"

#include <algorithm>
#include <chrono>

#include "model_io.h"
#include "tandem/sysinfo.h"

namespace tandem::server {

Result<Engine*> EngineCache::get(int threads) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = engines_.find(threads);
  if (it != engines_.end()) return it->second.get();
  EngineOptions options = base_;
  options.threads = threads;
  auto engine = Engine::create(options);
  if (!engine) return engine.status();
  Engine* raw = engine->get();
  engines_.emplace(threads, std::move(*engine));
  return raw;
}

LoadedVersion load_version(EngineCache& engines, const LoadDefaults& defaults, const std::string& name,
                           const std::string& version, const ModelConfig& config, const std::filesystem::path& path) {
  const auto started = std::chrono::steady_clock::now();
  LoadedVersion loaded;
  PrepareOptions prepare = config.prepare;
  prepare.name = name;
  if (prepare.fault_injection.empty()) prepare.fault_injection = defaults.fault_injection;
  const int instances = config.instances > 0     ? config.instances
                        : defaults.instances > 0 ? defaults.instances
                                                 : hardware_threads();
  // Ready means warm: the engine builds what the first requests would otherwise build (run
  // contexts for each concurrent call, and each batch size dynamic batching can make).
  prepare.warmup_concurrency = std::max(prepare.warmup_concurrency, instances);
  if (config.batching.enabled) {
    prepare.warmup_batch_sizes = warm_batch_sizes(config.batching);
    prepare.check_batch_rows = true;  // merged requests must each get what they would alone
  }
  auto engine = engines.get(config.threads > 0 ? config.threads : defaults.threads);
  if (!engine) {
    loaded.reason = engine.status().to_string();
  } else if (auto prepared = (*engine)->prepare(path, prepare); !prepared) {
    loaded.reason = prepared.status().to_string();
  } else if (auto unservable = unservable_reason((*prepared)->io_schema())) {
    loaded.reason = *unservable;
  } else {
    loaded.model = std::move(*prepared);
    Scheduler::Options so;
    so.instances = instances;
    so.max_queue_size = config.max_queue_size;
    so.batching = config.batching;
    so.model_name = name;
    so.version = version;
    loaded.scheduler = std::make_shared<Scheduler>(loaded.model, so);
  }
  loaded.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  return loaded;
}

}  // namespace tandem::server
