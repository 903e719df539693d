// tandem/quantize.h: rewriting a float32 ONNX model so that its Conv, MatMul and Gemm nodes
// compute in 8-bit integers.
//
//   tandem::QuantizeOptions options;
//   options.format = tandem::QuantizeFormat::qdq;
//   options.per_channel = true;
//   options.calibration_inputs = {{{"x", x0}}, {{"x", x1}}};  // representative inputs
//   auto q = tandem::quantize_model(model_bytes, options);
//   write(q->model_bytes);  q->report.accuracy;  // max-abs, RMSE, argmax agreement per output
//
// Three formats (docs/quantize.md shows the node patterns):
//   - qdq: QuantizeLinear/DequantizeLinear pairs on the activations that quantized nodes read
//     and write, DequantizeLinear on int8 weights and int32 biases; the Conv/MatMul nodes stay
//     float32 between them, and so does every other op (a runtime fuses the patterns).
//   - qoperator: QLinearConv and QLinearMatMul on uint8 activations; QuantizeLinear and
//     DequantizeLinear only where float32 nodes or graph outputs meet quantized ones.
//   - dynamic: int8 weights offline, activations quantized at run time by
//     DynamicQuantizeLinear, then ConvInteger / MatMulInteger, Cast and Mul by the two scales
//     (and the float bias Add). Needs no calibration.
// Activations are uint8 with a zero point (asymmetric), weights int8 with zero point 0
// (symmetric, [-127, 127]), biases int32 with scale activation_scale * weight_scale. Gemm
// (transA = 0, constant B and C) is first rewritten as MatMul + Add, and a BatchNormalization
// right after a Conv is folded into it. The model's ai.onnx opset is
// raised to 13 when it is lower (ops whose meaning changed are rewritten; a model that cannot
// be raised is refused with the node that prevents it).
//
// Calibration runs the float32 model on `calibration_inputs`, with every activation it needs
// made a graph output, on `backend`: first (equalize) for the per-channel ranges of the values
// it rescales, then for the activations' ranges, then (bias_correction) for each node's mean
// rounding shift, and (sequential) once per corrected node on the quantized model. The same
// inputs then run the original and the quantized model for the accuracy report.
//
// Ownership: inputs are only read; the result owns the quantized model.
// Thread-safety: re-entrant. Errors (never thrown, one line): invalid_model when the bytes are
// not a model or its types cannot be inferred; unsupported for external data or an opset that
// cannot be raised; invalid_argument for missing or mismatched calibration inputs.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem {

enum class QuantizeFormat { qdq, qoperator, dynamic };
enum class CalibrationMethod {
  minmax,      // the smallest and largest value seen in any calibration run
  percentile,  // min/max clipped to +-p, where p is the `percentile`-th percentile of |x| over all runs
  mse,         // the range within min/max whose 8-bit grid gives the least squared error over all
               // values of all runs (rounding inside it, clipping outside)
};

enum class BiasCorrection {
  off,
  // Each node's own shift, measured on the float model for all nodes in one pass: what the
  // node computes with its rounded weight (and input) minus what it computes with the float
  // ones, on the calibration inputs.
  local,
  // The local shifts, then, node by node in graph order, the mean shift that remains on the
  // quantized model itself, where each node's input carries the errors of every quantized node
  // before it. Costs one compile and one pass over the calibration inputs per corrected node
  // (seconds for a model of tens of convolutions).
  sequential,
};

struct QuantizeOptions {
  QuantizeFormat format = QuantizeFormat::qdq;
  // Weights get one scale per output channel (Conv: axis 0; MatMul: the last axis of a 2-D B)
  // instead of one per tensor.
  bool per_channel = false;
  // Weights in 7 bits: int8 in [-63, 63], scale max|w| / 63. For CPUs without VNNI (AVX2, and
  // AVX-512 without VNNI), whose u8 x s8 instructions add each pair of products in saturating
  // int16: 8-bit weights can overflow there (ONNX Runtime's results then saturate; tandem's cpu
  // backend takes slower exact routes), 7-bit weights cannot (2 x 255 x 63 < 32767), so such
  // a model runs on the fast int8 kernels, exactly, on every CPU. Costs one bit of weight
  // precision.
  bool reduce_range = false;
  CalibrationMethod method = CalibrationMethod::minmax;
  // Bias correction: rounding a node's weight (and, in qdq and qoperator, its input) to 8 bits
  // shifts its outputs by a mean per output channel, which the node's bias can take back.
  // Applies to every Conv and to a MatMul whose output goes to an Add of a constant bias. Needs
  // calibration inputs (dynamic without them is left uncorrected). See BiasCorrection.
  BiasCorrection bias_correction = BiasCorrection::sequential;
  // Activation equalization (with per_channel only): the channels of a value that a Conv writes
  // and only a depthwise Conv reads are rescaled to one range, with the inverse scale moved
  // into the reader's weights (exact in float), so that the value's single 8-bit scale fits
  // every channel. Costs one more run over the calibration inputs; needs them.
  bool equalize = true;
  // qdq: a quantized node's output gets its own QuantizeLinear/DequantizeLinear pair, as ONNX
  // Runtime's quantizer writes it and runtimes fuse it (DQ -> Conv -> Q becomes one 8-bit
  // product with an 8-bit output). false: only where another quantized node reads it as its
  // input, so a Conv's output is not rounded once more before the float ops after it (rec:
  // 97.65% argmax agreement instead of 95.15%, docs/quantize.md). tandem's cpu backend still
  // runs such a Conv or MatMul in 8 bits, with the float ops after it fused into its output
  // pass; ONNX Runtime runs both in float32. qoperator's QLinearConv always has a quantized
  // output.
  bool quantize_outputs = true;
  double percentile = 99.99;  // for CalibrationMethod::percentile, in (0, 100]
  // Nodes to leave in float32: by op type ("MatMul") and by node name.
  std::vector<std::string> exclude_ops;
  std::vector<std::string> exclude_nodes;
  // > 0: an accuracy bound. When the fully quantized model moves some float output by more
  // than this (max-abs over the calibration inputs), the nodes that move it most are kept in
  // float32, fewest first, until every output is within it. Each node's sensitivity is the
  // max-abs of the model with only that node quantized; the nodes are then kept in that order
  // and the smallest count that meets the bound is found by bisection (so quantizing costs
  // about nodes + log2(nodes) extra runs over the calibration inputs). Needs calibration inputs
  // (for dynamic too). 0: quantize every node that can be.
  double accuracy_target = 0;
  // Representative inputs, one map (input name -> tensor) per run. Required for qdq and
  // qoperator; for dynamic they only feed the accuracy report (empty: no report).
  std::vector<std::map<std::string, Tensor>> calibration_inputs;
  std::string backend;  // runs calibration and the report; empty: the first of list_backends()
};

// How the quantized model compares with the float32 one on the calibration inputs, per output.
struct QuantizedOutputAccuracy {
  std::string name;
  double max_abs = 0;  // over every run
  double rmse = 0;     // over all elements of all runs
  // Class scores (float, last axis > 1): the percentage of positions (all elements but the
  // last axis, over every run) whose argmax over the last axis agrees. -1 otherwise.
  double argmax_agreement = -1;
  int64_t positions = 0;  // the positions argmax_agreement counts
  // Runs compared, and runs whose output shape differed from the float32 model's (an output
  // whose shape depends on the values, such as the boxes NonMaxSuppression keeps): those are
  // left out of the figures above.
  int64_t runs = 0;
  int64_t shape_mismatches = 0;
};

struct QuantizeReport {
  int64_t opset_before = 0;  // the model's ai.onnx opset
  int64_t opset_after = 0;
  std::map<std::string, int64_t> quantized_nodes;  // op type (as in the input) -> nodes quantized
  // One line per Conv, MatMul or Gemm left in float32: "[MatMul 'n'] reason".
  std::vector<std::string> skipped_nodes;
  int64_t folded_batch_norms = 0;    // BatchNormalization nodes folded into the Conv before them
  int64_t bias_corrected_nodes = 0;  // nodes whose bias took back their weights' rounding shift
  int64_t equalized_values = 0;      // activations whose channels were rescaled to one range
  int64_t quantized_weights = 0;     // initializers written as int8
  int64_t calibrated_values = 0;     // activations whose ranges calibration measured
  int64_t inserted_nodes = 0;        // net nodes added: Q, DQ, DynamicQuantizeLinear, Cast, Mul, ...
                                     // (a QLinearConv replacing a Conv counts 0)
  int64_t calibration_runs = 0;
  // With QuantizeOptions::accuracy_target: the nodes kept in float32 for it (also in
  // skipped_nodes), most sensitive first, as "[Conv 'n'] max-abs X when quantized alone", and
  // the fully quantized model's worst max-abs before any was kept.
  std::vector<std::string> kept_for_accuracy;
  double max_abs_all_quantized = 0;
  std::vector<QuantizedOutputAccuracy> accuracy;  // float outputs; empty without calibration inputs
};

struct QuantizedModel {
  std::string model_bytes;  // a serialized onnx ModelProto
  QuantizeReport report;
};

// Quantizes the serialized float32 model `model_bytes` as `options` say.
Result<QuantizedModel> quantize_model(std::string_view model_bytes, const QuantizeOptions& options);

}  // namespace tandem
