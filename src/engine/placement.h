// placement.h: splitting a model across backends and running the pieces in order.
//
// Placement asks each backend, in preference order, whether it supports each node with the
// element types shape inference finds for its inputs and outputs; the first
// that does runs it (the reference backend, last, supports everything). Consecutive nodes, in
// topological order, on the same backend form a segment; each segment becomes a Graph of its
// own that its backend compiles. Initializers a segment reads travel inside its graph (so a
// backend can pack them at compile time); every other value crossing segments is an input or
// output of the segment graph.
//
// Thread-safety: a PlacedModel is immutable after create(); run() may be called from many
// threads at once (each call has its own value slots).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace tandem {

struct NodePlacement {
  std::string node;     // the node's label, "[Conv 'stem.0']"
  std::string op_type;
  std::string backend;  // the backend that runs it
  // Backends earlier in the order that declined the node, with their reason.
  std::vector<std::pair<std::string, std::string>> declined;
};

struct PlacementReport {
  std::vector<NodePlacement> nodes;          // in execution order (nodes left after folding)
  int folded_nodes = 0;                      // nodes evaluated once at prepare (constant_folding.h)
  int64_t folded_bytes = 0;                  // bytes of the constants they became
  std::map<std::string, int> nodes_per_backend;
  int segments = 0;
};

struct ShapeInferenceResult;
// The element types of `n`'s inputs and outputs in `inferred` (undefined where unknown).
NodeTypes node_types(const Node& n, const ShapeInferenceResult& inferred);

class PlacedModel {
 public:
  // `graph` is shared, not copied. Nodes whose inputs are all constants are folded first
  // (constant_folding.h): graph() is then the folded graph, with the same inputs and outputs.
  // `backends` in preference order, not empty.
  static Result<std::unique_ptr<PlacedModel>> create(std::shared_ptr<const Graph> graph,
                                                     const std::vector<Backend*>& backends,
                                                     const CompileOptions& options = {});
  ~PlacedModel();

  const PlacementReport& report() const { return report_; }
  const Graph& graph() const { return *graph_; }  // the graph as placed (after folding)
  // Each segment (backend, node count) followed by its plan's describe(), indented.
  std::string describe() const;
  // `inputs` bind to graph().inputs in order; outputs come in graph().outputs order.
  // Tensors left in `*outputs` by an earlier run are offered to the backend for reuse (written
  // in place when their dtype and shape match and nobody else holds them): a caller that keeps
  // one outputs vector across runs of a model placed on one cpu segment allocates nothing.
  Status run(const std::vector<Value>& inputs, std::vector<Value>* outputs, const RunControl& control = {}) const;

 private:
  struct Segment;
  PlacedModel() = default;
  std::shared_ptr<const Graph> graph_;
  PlacementReport report_;
  std::vector<std::unique_ptr<Segment>> segments_;
  std::map<std::string, int> slot_of_;
  int slot_count_ = 0;
  std::vector<int> input_slots_;
  std::vector<int> output_slots_;
  bool direct_ = false;  // one segment whose inputs and outputs are the graph's (run() skips slots)
};

}  // namespace tandem
