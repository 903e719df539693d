// opset_upgrade.h: raising a model's ai.onnx opset import (to 13 for the quantizer, whose
// per-axis QuantizeLinear/DequantizeLinear need it).
//
// Between opset 7 and 13 most ops changed only in the types they accept or gained negative
// axes; those nodes are kept as written. The ops whose attributes became inputs are rewritten
// with int64 (or float) initializers next to the node, in the graph that holds it:
//   Clip (< 11: min, max), Slice (< 10: starts, ends, axes), Pad (< 11: pads, value),
//   TopK (< 10: k), Dropout (< 12: ratio), Squeeze, Unsqueeze, ReduceSum, Split (< 13: axes,
//   split); BatchNormalization (< 9) loses `spatial` when it is 1.
// Softmax, LogSoftmax and Hardmax (< 13) changed meaning: they are kept when their axis is the
// last one (the explicit axis is written), given the input's rank in `ranks`.
// Refused (unsupported, one line naming the node): Upsample, Resize-10, Scan-8, Softmax-like
// nodes on another axis or of unknown rank, spatial = 0, models below opset 7, and nodes of
// the ai.onnx domain the rules above do not cover whose meaning changed.
// New initializer names start with the node output they serve and are unique in the model.
// ir_version is raised to 7 if lower.
//
// Thread-safety: re-entrant; the model is modified in place (left partly rewritten on error).
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include <onnx/onnx_pb.h>

#include "tandem/status.h"

namespace tandem {

// The model's ai.onnx opset (0 when it imports none).
int64_t default_opset_of(const onnx::ModelProto& model);

// Raises the ai.onnx opset import of `model` to `target` as described above; nothing happens
// when it is already >= target. `ranks` gives the rank of main-graph values where known and
// `taken_names` every name in use (new names are added to it).
Status raise_opset(onnx::ModelProto& model, int64_t target, const std::map<std::string, int64_t>& ranks,
                   std::set<std::string>& taken_names);

}  // namespace tandem
