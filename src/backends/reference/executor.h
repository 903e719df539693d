// executor.h: the reference backend's graph interpreter.
//
// compile() turns a Graph (and, recursively, the subgraphs of If/Loop/Scan/SequenceMap) into
// an ExecutionPlan: a topological order, the kernel for each node, a slot per value and the
// last use of each slot. run() executes the plan: values are freed after their last use, and
// the deadline and the cancellation flag are checked between nodes (and so between loop
// iterations). Names not defined in a subgraph resolve to the enclosing graph's values.
//
// Thread-safety: an ExecutionPlan is immutable after compile(); any number of threads may
// run() it at once, each run has its own value slots.
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "kernels/registry.h"

namespace tandem {

struct ExecutionPlan {
  const Graph* graph = nullptr;  // borrowed; the Graph must outlive the plan
  std::vector<int> order;        // node indices in execution order
  std::vector<KernelFn> kernels; // by node index
  std::map<std::string, int> slot_of;      // value name -> slot
  std::vector<std::string> slot_names;
  std::vector<std::vector<int>> node_inputs;   // by node index: slot per input (-1: omitted)
  std::vector<std::vector<int>> node_outputs;  // by node index: slot per output (-1: omitted)
  std::vector<std::vector<int>> node_frees;    // by node index: slots whose last use it is
  std::vector<int> input_slots;                // for graph->inputs, in order
  std::vector<int> output_slots;               // for graph->outputs, in order
  std::vector<std::pair<int, Tensor>> constants;  // initializer slots (not also graph inputs)
  std::vector<std::string> outer_names;        // names read from enclosing graphs
  std::vector<int> outer_slots;                // their slots in this plan
  std::map<const Graph*, std::shared_ptr<const ExecutionPlan>> subplans;  // nested graphs
};

// Builds a plan. `outer` lists names visible from enclosing graphs (empty for a model's main
// graph). Fails with `unsupported` naming the node when no kernel exists for an op.
Result<std::shared_ptr<const ExecutionPlan>> compile_plan(const Graph& graph, const KernelTable& kernels,
                                                          const std::set<std::string>& outer = {});

// Runs a main-graph plan. `inputs` bind to graph->inputs in order (a `none` Value for an
// omitted optional input falls back to the initializer of the same name, if any).
Result<std::vector<Value>> run_plan(const ExecutionPlan& plan, const std::vector<Value>& inputs,
                                    const RunControl& control = {});

}  // namespace tandem
