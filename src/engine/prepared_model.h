// prepared_model.h: the engine's implementation of PreparedModel (routes, breakers, worker
// pools, parity sampling, telemetry). Engine::prepare() builds one through create_prepared_model().
// Ownership and thread-safety: as for PreparedModel in tandem/engine.h.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "backends/backend.h"
#include "engine/clock.h"
#include "graph/graph.h"
#include "tandem/engine.h"

namespace tandem {

// What the engine hands to a prepared model.
struct PrepareContext {
  std::vector<Backend*> order;  // the engine's backends, preference order, the reference last
  CompileOptions compile;
  int max_workers = 4;
  int max_hung = 16;
  std::filesystem::path cache_dir;  // empty: no cache record
  std::shared_ptr<const Clock> clock;  // breakers and fault injection; null: the steady clock
};

// Creates `folder` (and its parents) for PrepareContext::cache_dir / CompileOptions::cache_dir;
// invalid_argument naming the folder when it cannot be made.
Status make_cache_folder(const std::filesystem::path& folder);

// The serialized model a prepared model is made from: int8 routes compile a quantized
// rewrite of it (engine/int8_model.h). Borrowed for the duration of create_prepared_model.
struct ModelSource {
  std::string_view bytes;
  std::filesystem::path base_dir;  // resolves external data (empty: refused)
  std::string display_name;        // prefixes error messages
};

// Builds the routes, warms them up and returns the prepared model. `model` is `source` as
// loaded; `model_sha256` is the hex digest of the serialized model; `default_name` labels
// telemetry when options.name is empty.
Result<std::shared_ptr<PreparedModel>> create_prepared_model(const Model& model, const ModelSource& source,
                                                             const std::string& model_sha256,
                                                             const std::string& default_name,
                                                             const PrepareOptions& options,
                                                             const PrepareContext& context);

}  // namespace tandem
