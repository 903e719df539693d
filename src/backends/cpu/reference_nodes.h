// reference_nodes.h: ONNX nodes run with the reference kernels (kernels/registry.h, the neutral
// kernel layer) inside the cpu backend. Two users: the generic path of a step (its original
// nodes, for a case its fast kernels cannot take) and the whole-segment fallback of an
// instance that cannot be built (a shape that shape inference cannot resolve, for example).
//
// Values are passed by name. Kernels only read their inputs and make new outputs, so the
// functions here are thread-safe for distinct environments; a ReferenceGraph is immutable.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem::cpu {

using ValueEnv = std::map<std::string, Value>;

// Runs `nodes` in order with the reference kernels: each reads its inputs from `env` (a name
// missing there is an absent input) and stores its outputs there. Errors name the node; an
// allocation failure is out_of_memory.
Status run_reference_nodes(const std::vector<const Node*>& nodes, ValueEnv& env);

// A segment graph (no subgraphs) prepared to run on the reference kernels: its nodes in
// topological order and, per node, the values whose last use it is. Borrows the graph.
struct ReferenceGraph {
  const Graph* graph = nullptr;
  std::vector<const Node*> order;
  std::vector<std::vector<std::string>> frees;  // by position in `order`
};

// Prepares `graph`; fails with `unsupported` naming the node when an op has no reference kernel.
Result<ReferenceGraph> prepare_reference_graph(const Graph& graph);

// Runs a prepared graph: `inputs` bind to graph.inputs in order (a none Value for an omitted
// input falls back to the initializer of the same name), values are dropped after their last
// use, and `control` (cancellation, deadline) is checked before each node. Returns the graph's
// outputs in order.
Result<std::vector<Value>> run_reference_graph(const ReferenceGraph& rg, const std::vector<Value>& inputs,
                                               const RunControl& control);

}  // namespace tandem::cpu
