// constant_folding.h: evaluating, once at prepare, every node whose inputs are all constants.
//
// Exporters often make weights at run time: ConstantOfShape fills, Casts of float16 weights,
// DequantizeLinear of int8 weights, Reshape or Transpose of weights, shape arithmetic
// (Shape -> Gather -> Concat) on fixed shapes. fold_constants() evaluates such nodes with the
// reference kernels (through shape inference's constant propagation) and returns a graph in
// which their outputs are initializers and the nodes are gone, so that backends see plain
// weights they can pack at compile, and no run recomputes them.
//
// What is folded: a top-level node whose outputs all become known, within the size cap, and
// whose op is deterministic (never Random*, Bernoulli, Multinomial, or control flow). Graph
// inputs are never constants, even when an initializer gives them a default (a request may
// override it). Initializers no remaining node, subgraph or graph output reads are dropped.
//
// Ownership: the result owns a new Graph; its initializers share buffers with the input
// graph's where they are unchanged. Thread-safety: re-entrant; the input is only read.
#pragma once

#include <cstdint>
#include <memory>

#include "graph/graph.h"
#include "passes/shape_inference.h"
#include "tandem/status.h"

namespace tandem {

struct FoldOptions {
  // A node is evaluated when its known inputs, and its outputs where their size is known,
  // hold at most this many elements (the largest weight tensors of common models are a few
  // million elements). 0 disables folding.
  int64_t max_elements = int64_t{1} << 24;
};

struct FoldResult {
  std::shared_ptr<Graph> graph;     // the folded graph (the same inputs and outputs)
  int folded_nodes = 0;             // nodes removed because their outputs became initializers
  int64_t folded_bytes = 0;         // bytes of the initializers they became
  ShapeInferenceResult inferred;    // inference of the original graph (types of every value)
};

// Folds `graph`. Errors: those of infer_shapes() (a certain shape mismatch, a cycle).
Result<FoldResult> fold_constants(const Graph& graph, const FoldOptions& options = {});

}  // namespace tandem
