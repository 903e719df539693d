// version_loader.h (private to src/server): what loading one model version makes, before the
// server publishes it: the engine it is prepared on, the prepared model and its scheduler.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "model_config.h"
#include "scheduler.h"
#include "tandem/engine.h"
#include "tandem/status.h"

namespace tandem::server {

// Engines by engine threads per call, each made on first use from `base` with that many
// threads and shared by every model asking for as many (an engine's worker pools are per
// model; what it shares is its backends). Engines live as long as the cache.
// Thread-safety: get() may be called from any thread.
class EngineCache {
 public:
  explicit EngineCache(EngineOptions base) : base_(std::move(base)) {}
  // The engine for `threads`, or why Engine::create refused it.
  Result<Engine*> get(int threads);

 private:
  EngineOptions base_;
  std::mutex mu_;
  std::map<int, std::unique_ptr<Engine>> engines_;
};

// What load_version() made: a prepared model and its scheduler, or the one-line reason it could
// not (the model and scheduler are then null).
struct LoadedVersion {
  std::shared_ptr<PreparedModel> model;
  std::shared_ptr<Scheduler> scheduler;
  std::string reason;
  double seconds = 0;  // the time it took
};

// Server-wide defaults a model's config may override.
struct LoadDefaults {
  int instances = 0;            // engine calls in flight per model; 0: hardware threads
  int threads = 1;              // engine threads per call
  std::string fault_injection;  // for a config that sets none
};

// Prepares `path`, version `version` of model `name`, as `config` says (warmed for as many
// concurrent calls as it has instances and for every batch size dynamic batching can make; with
// batching, its rows checked), and makes its scheduler. A model the protocol cannot serve
// (model_io.h's unservable_reason) fails with that reason. Blocks for the preparation (seconds
// for a large model); touches no server state.
LoadedVersion load_version(EngineCache& engines, const LoadDefaults& defaults, const std::string& name,
                           const std::string& version, const ModelConfig& config, const std::filesystem::path& path);

}  // namespace tandem::server
