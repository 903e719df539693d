// batch_rows_check.h: PrepareOptions::check_batch_rows, whether a model's free first dim is a
// batch dim, found by running it (see BatchRowsCheck in tandem/engine.h for the verdicts).
//
// The model runs on row a alone, row b alone, and a then b as two rows (seeded values, the
// other free dims 1, as at warm-up). Each output of the two-row run must have two rows whose
// dims after the first are those of the one-row runs, row 0 as a's output and row 1 as b's.
// Pure function of its arguments; runs `routes` from the calling thread.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "engine/placement.h"
#include "graph/graph.h"
#include "tandem/engine.h"

namespace tandem {

struct BatchRowsRoute {
  std::string name;           // for the verdict's detail
  const PlacedModel* placed;  // borrowed
  // How far a float row may move beside another and still count as the same: the route's
  // parity budget (max abs and RMSE; its own noise against the reference, e.g. an int8 route
  // quantizes activations per call, so over the rows of the call). Other types: exactly.
  ParityBudget budget;
};

// Tries `routes` in order until one completes the three runs; the verdict comes from that one.
// Unchecked when a required input has no free first dim or no shape, or every route failed.
BatchRowsCheck check_batch_rows(const Graph& graph, const std::vector<BatchRowsRoute>& routes, uint64_t seed);

}  // namespace tandem
