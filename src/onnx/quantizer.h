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
// Around calibration, two optional adjustments of the float model (quantizer_adjust.cpp):
//   - activation equalization, before it: the channels of a value between a Conv and the
//     depthwise Conv that reads it are rescaled to one range, with the inverse scale in the
//     reader's weights, so that one activation scale suits them all;
//   - bias correction, after it: a second pass measures, per output channel, the mean shift
//     that rounding the weights (and the input, at its calibrated range) to 8 bits causes on the
//     calibration inputs, and with_bias_correction subtracts it from the node's bias.
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

// A constant weight rounded to int8, as the rewrite writes it (the numbers above).
struct WeightGrid {
  std::vector<int8_t> values;  // one per float value, same order
  std::vector<float> scales;   // one per channel along `axis`; one in all when axis < 0
  int axis = -1;
  int64_t inner = 1;  // the product of the dims after `axis`: consecutive values of one channel
  size_t channel_of(size_t i) const {
    return axis < 0 ? 0 : static_cast<size_t>(i / static_cast<size_t>(inner)) % scales.size();
  }
};

// The axis along which a quantized node's constant weight of rank `weight_rank` gets one scale
// per channel: Conv 0, a MatMul's 2-D B 1; -1 (one scale) without per_channel or otherwise.
int weight_axis(const onnx::NodeProto& node, size_t weight_rank, bool per_channel);

// Rounds `values` (of `dims`) to int8 along `axis` (-1: one scale): [-127, 127], or [-63, 63]
// with reduce_range.
WeightGrid quantize_weight_values(const std::vector<float>& values, const std::vector<int64_t>& dims, int axis,
                                  bool reduce_range);

// --- activation equalization -------------------------------------------------------------------
// One scale per activation tensor (8 bits over the range of all its channels) wastes most of the
// levels on a channel whose values span a small part of that range. Where a Conv's output C
// goes only to a depthwise Conv (group = channels, one input channel per filter), both with
// constant weights, channel c can be multiplied by any s_c > 0 exactly: the producer's filter
// and bias c by s_c, the reader's filters of channel c by 1 / s_c. With per-channel weights
// neither weight's rounding changes, and s_c = the largest factor that keeps channel c's
// calibrated [min, max] within the tensor's (at most 1e4) gives every channel the whole 8-bit
// range. Only with per-channel weights, and only where C is quantized (the producer or the
// reader is).

struct EqualizationPair {
  int producer = -1;  // node indexes into plan.prepared.graph().node()
  int reader = -1;
  std::string value;  // the producer's output, which only the reader reads
  int64_t channels = 0;
};

// The pairs of the plan that can be equalized (none without options.per_channel).
std::vector<EqualizationPair> equalization_pairs(const QuantizationPlan& plan, const QuantizeOptions& options);

// The plan with each pair's channels rescaled as above from `channel_ranges[pair.value]` (one
// [min, max] per channel, measured on the float model); pairs without ranges are left alone.
// Weights or biases that other nodes read too are copied first. Counts the values in
// report.equalized_values.
Result<QuantizationPlan> with_equalized_channels(const QuantizationPlan& plan, const std::vector<EqualizationPair>& pairs,
                                                 const std::map<std::string, std::vector<ActivationRange>>& channel_ranges);

// --- bias correction ---------------------------------------------------------------------------
// Rounding a constant weight W to 8 bits makes its node compute with W' = dequantize(W). On an
// input x the output moves by f(x, W' - W) (f: the node's Conv or MatMul), and by f(x' - x, W')
// more where the input is rounded to x' too; the mean of that over the calibration inputs, per
// output channel, is a systematic shift that the node's bias can take back (rounding is only
// unbiased on average over many values, and clipped values all move one way). A node can be corrected when it is quantized with a constant weight and has a bias to
// hold the correction: every Conv (a zero bias is added when it has none), and a MatMul with a 2-D
// weight whose output only one Add reads, with a constant of as many values as the output has
// channels (the MatMul + Add a Linear layer or a split Gemm is written as).

// One probe per correctable node: `output` is, in the probe model, what rounding moves the
// node's output by: f(x, W' - W) for the weight alone, or f(x', W') - f(x, W) when the input x
// is rounded too (x' = dequantize(quantize(x)) with its calibrated range).
struct BiasProbe {
  int node = -1;       // index into plan.prepared.graph().node()
  std::string output;  // a float output of the probe model
  int channel_axis = 1;  // the output's channel axis: 1 for Conv, -1 (the last) for MatMul
};

// Adds to `model` (plan.prepared or a copy with more outputs) the probe of each correctable
// node of the plan, with the weights rounded as `options` say, and makes it a graph output.
// `input_ranges` (may be null): the calibrated ranges of the inputs that the quantized model
// rounds to uint8 (qdq, qoperator); a node whose input has one is probed with both roundings.
// Returns the probes.
Result<std::vector<BiasProbe>> add_bias_probes(const QuantizationPlan& plan, const QuantizeOptions& options,
                                               const std::map<std::string, ActivationRange>* input_ranges,
                                               onnx::ModelProto* model);

// Where a correctable node's correction shows: the value its bias is added into (a Conv's output,
// or the output of the Add holding a MatMul's bias) and that value's channel axis. In the
// order of plan.nodes (graph order).
struct CorrectedOutput {
  int node = -1;  // index into plan.prepared.graph().node()
  std::string output;
  int channel_axis = 1;  // 1 for Conv, -1 (the last) for MatMul
};
std::vector<CorrectedOutput> corrected_outputs(const QuantizationPlan& plan);

// The plan with each correctable node's bias lowered by `shifts[node index]` (the mean of its
// probe per output channel). Nodes of the plan without a shift, or no longer in plan.nodes,
// are left alone; a bias that other nodes read too is copied first. Counts the corrected
// nodes in report.bias_corrected_nodes.
Result<QuantizationPlan> with_bias_correction(const QuantizationPlan& plan,
                                              const std::map<int, std::vector<float>>& shifts);

}  // namespace tandem
