// quantizer.h: rewrites a float32 ONNX model so that its Conv, MatMul and Gemm nodes compute
// in 8 bits (tandem/quantize.h describes the formats; docs/quantize.md the node patterns).
//
// Two steps, with calibration (the engine's) between them:
//   1. plan_quantization prepares the float model: Constant nodes of the main graph become
//      initializers, the ai.onnx opset is raised to 13 (onnx/opset_upgrade.h), and each Gemm
//      that can be quantized (transA = 0, constant B, constant or absent C) becomes
//      MatMul(A, alpha * B') + Add(beta * C), B' = B or B transposed; the Add takes the Gemm's
//      output name; a BatchNormalization (inference form, constant parameters) right after a
//      Conv that nothing else reads is folded into that Conv's weight and bias. It then picks the
//      nodes to quantize and lists the activations whose ranges
//      calibration must measure: every float input of a quantized node that is not a weight, and
//      every output (qdq, qoperator; none for dynamic). The prepared model computes exactly
//      what the original does and is what calibration runs.
//   2. apply_quantization rewrites the prepared model with the measured ranges.
// A node is quantized when it is a Conv, MatMul or Gemm of the ai.onnx domain, not excluded,
// with float32 inputs and outputs, a non-constant first input and a constant weight
// (Conv: W; MatMul: B, or, for qdq and qoperator, any float B, which is then quantized as an
// activation); the others are listed in the report's skipped_nodes with the reason.
//
// Numbers: activations uint8, scale = (max - min) / 255 over the range widened to include 0,
// zero point = round(-min / scale); weights int8 symmetric, scale = max|w| / 127 (per tensor
// or per output channel; / 63 with reduce_range), zero point 0; Conv biases int32 with scale = activation scale *
// weight scale (the same per channel), rounded to nearest even and saturated. A range or weight
// of all zeros gets scale 1.
//
// Ownership: inputs are only read; results own their models.
// Thread-safety: re-entrant.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "tandem/quantize.h"  // QuantizeOptions, QuantizeReport
#include "tandem/status.h"

namespace tandem {

// The opset the quantized model imports at least.
constexpr int64_t kQuantizeMinOpset = 13;

struct QuantizationPlan {
  onnx::ModelProto prepared;  // the float model the rewrite starts from (see above)
  // The nodes to quantize, by index into prepared.graph().node(), and for each the op type
  // report.quantized_nodes counts it under ("Gemm" for a MatMul made from a Gemm).
  std::vector<int> nodes;
  std::vector<std::string> node_ops;
  // Float values whose ranges calibration must measure, in graph order, no duplicates.
  std::vector<std::string> activations;
  // What the report starts with: opsets, skipped nodes, quantized node counts by input op type.
  QuantizeReport report;
};

// Step 1. Errors: invalid_model (not loadable, types not inferable), unsupported (external
// data, an opset that cannot be raised).
Result<QuantizationPlan> plan_quantization(const onnx::ModelProto& model, const QuantizeOptions& options);

// The plan with the nodes at the positions of plan.nodes that `drop` names left in float32:
// they leave nodes, node_ops and report.quantized_nodes and join report.skipped_nodes with the
// reason `drop` gives; the activations only they read or write leave the activation list.
QuantizationPlan without_nodes(const QuantizationPlan& plan, const std::map<size_t, std::string>& drop);

struct ActivationRange {
  float min = 0;
  float max = 0;
};

// Step 2. `ranges` must hold every name in plan.activations (qdq, qoperator). The report is the
// plan's, with quantized_weights and inserted_nodes filled in.
struct Quantization {
  onnx::ModelProto model;
  QuantizeReport report;
};
Result<Quantization> apply_quantization(const QuantizationPlan& plan, const QuantizeOptions& options,
                                        const std::map<std::string, ActivationRange>& ranges);

// The uint8 scale and zero point for a range (widened to include 0), as described above.
void activation_scale(const ActivationRange& range, float* scale, uint8_t* zero_point);

}  // namespace tandem
