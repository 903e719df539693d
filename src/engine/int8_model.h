// int8_model.h: the graph an int8 route computes.
//
// Precision::int8 on a float32 model (tandem/precision.h) means: rewrite the model once, at
// prepare (or OnnxModel::compile) time, with the quantizer's dynamic format and per-channel
// weights (tandem/quantize.h; no calibration), then compile that graph on a backend that
// computes int8 natively. The rewrite keeps the model's inputs and outputs (names, order and
// types), so requests bind to it exactly as to the float32 graph:
//
//   x -> DynamicQuantizeLinear -> ConvInteger / MatMulInteger -> Cast -> Mul(x_scale * w_scale) [-> Add(bias)]
//
// Weights become int8 symmetric, one scale per output channel; activations are quantized to
// uint8 on every call. Nodes the quantizer cannot take (no constant weight, excluded types)
// stay float32 in the same graph.
//
// Ownership: the result owns its Model (the graph is a shared_ptr, shared with whatever
// compiles it). Thread-safety: re-entrant; each call builds an independent model.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

#include "graph/graph.h"
#include "tandem/quantize.h"
#include "tandem/status.h"

namespace tandem {

struct Int8Model {
  Model model;            // the rewritten model, loaded and validated
  QuantizeReport report;  // nodes quantized and left in float32 (no accuracy: nothing is run)
  // One line for reports: "int8: 12 nodes quantized (Conv 10, MatMul 2), 1 left in float32".
  std::string summary() const;
};

// Rewrites the serialized float32 model `model_bytes` for an int8 route. `float_graph` is that
// model as loaded (the rewrite is checked against its inputs and outputs); `base_dir` and
// `display_name` are as for load_model_from_bytes (external data is refused by the quantizer).
// Errors (one line, prefixed "int8 quantization: "): unsupported when nothing in the model
// can be quantized (no Conv, MatMul or Gemm with a constant weight: the first reasons are
// quoted), for external data or an opset that cannot be raised; invalid_model when the types
// cannot be inferred; internal_error if the rewrite changed the model's inputs or outputs.
Result<Int8Model> quantize_for_int8(std::string_view model_bytes, const Graph& float_graph,
                                    const std::filesystem::path& base_dir, const std::string& display_name);

}  // namespace tandem
