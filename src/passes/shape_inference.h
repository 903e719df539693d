// shape_inference.h: tandem's own shape and type inference (it does not use onnx's).
//
// infer_shapes() walks a graph in topological order and gives every value its type: tensor
// dtype and dims (each dim fixed, symbolic or unknown), or a sequence/optional type. Two kinds
// of knowledge flow along the edges besides types:
//   - known values: initializers, Constant outputs, and the outputs of any node whose inputs
//     are all known and small (evaluated with the reference kernel). Shape subgraphs such as
//     Shape -> Gather -> Concat -> Reshape therefore resolve exactly, and so do opset-18+
//     models whose axes/pads/sizes became inputs. Shape of a tensor with fully fixed dims is a
//     known value even when the tensor is not.
//   - traced shape values: the elements of small integer tensors computed from shapes, kept
//     symbolically ([N, 3, -1]), so that a symbolic batch dim survives Reshape/Expand.
// Per-op rules cover the standard ONNX domain; an op without a rule (or a data-dependent shape:
// NonZero, Unique, NonMaxSuppression, ...) yields unknown dims (-1), never an error. Only
// mismatches that are certain errors fail, with invalid_argument naming the node:
// "[MatMul 'fc'] inner dimensions differ: 64 vs 32".
//
// Ownership: the result owns its TypeInfos; constant tensors share buffers with the graph's
// initializers or are new. The graph is only read and must not change during the call.
// Thread-safety: re-entrant; any number of calls may run at once, on the same graph too.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

struct ShapeInferenceOptions {
  // Constant folding runs a node when its known inputs hold at most this many elements in all
  // (and, when its output dims are already known, the outputs too). 0 disables folding (but
  // Constant, initializers and Shape of fixed dims stay known values).
  int64_t max_fold_elements = 65536;
  // Fill dims inference leaves unknown from the graph's declared value_info/output types (a
  // declared fixed or symbolic dim replaces an unknown one; a conflict is a warning, the
  // inferred type wins). Off: the result is inference alone.
  bool use_declared_types = true;
  // Known values of graph inputs (by name); their shapes override input_shapes.
  std::map<std::string, Tensor> input_values;
};

struct ShapeInferenceResult {
  // The type of every value of the main graph: inputs, initializers and node outputs.
  // Values of nested graphs (If branches, Loop/Scan bodies) are not listed.
  std::map<std::string, TypeInfo> types;
  // Values known at prepare time: initializers (unless overridden as inputs), Constant
  // outputs and folded node outputs. Tensors only.
  std::map<std::string, Tensor> constants;
  // Non-fatal findings, one line each naming the value or node: input shapes or declared
  // types that disagree with inference, kernels that failed on known inputs during folding,
  // and shape rules contradicted by the kernel's exact result (a bug in a rule).
  std::vector<std::string> warnings;

  // The type of `name`, or null.
  const TypeInfo* type_of(const std::string& name) const {
    auto it = types.find(name);
    return it == types.end() ? nullptr : &it->second;
  }
};

// Infers the types of every value of `graph`. `input_shapes` overrides the declared dims of
// graph inputs by name (-1 entries keep the declared dim); naming a value that is not a graph
// input is an error, disagreeing with the declared rank or fixed dims is a warning (the given
// shape wins). A symbol it fixes ("N" -> 4) is fixed wherever else the graph declares it,
// unless inputs give it different values. A graph input that is also an initializer is a
// known value unless input_shapes/input_values names it.
// Errors: invalid_argument for certain mismatches (naming the node; inside If/Loop/Scan bodies
// prefixed with the holding node: "[Loop 'l'] body: [Add 'a'] ..."), invalid_model for a
// cycle or an input no one defines.
Result<ShapeInferenceResult> infer_shapes(const Graph& graph, const std::map<std::string, Shape>& input_shapes = {},
                                          const ShapeInferenceOptions& options = {});

// True when `t` is a tensor type whose dims are all fixed; `shape` (if not null) gets them.
bool fully_known(const TypeInfo& t, Shape* shape = nullptr);

}  // namespace tandem
