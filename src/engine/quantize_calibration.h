// quantize_calibration.h: the measuring half of quantize_model (tandem/quantize.h). It runs the
// float plan of the ONNX quantizer (onnx/quantizer.h), and quantized versions of it, over the
// calibration inputs through the public API (OnnxModel, CompiledModel) on options.backend, and
// returns what the rewrite needs: activation ranges, equalized channels and bias shifts.
//
// Passes over the calibration inputs, in order:
//   1. equalization (options.equalize): the per-channel ranges of the values it rescales;
//   2. ranges: every activation of the plan, as options.method chooses (one more pass for
//      percentile and mse);
//   3. local bias shifts (bias_correction local or sequential): one probe model measures, for
//      every correctable node at once, the mean shift its own rounding causes on float inputs;
//   4. sequential bias shifts (bias_correction sequential, sequential_shifts): one pass per
//      correctable node, on the quantized model itself (see below).
//
// Ownership: inputs are only read; results own their data. Thread-safety: re-entrant.
// Errors: the calibration inputs' binding errors, and the backend's, prefixed with the model
// and the calibration set they came from.
#pragma once

#include <onnx/onnx_pb.h>

#include <map>
#include <string>
#include <vector>

#include "onnx/quantizer.h"
#include "tandem/model.h"
#include "tandem/quantize.h"

namespace tandem::quantize_internal {

// Compiles `proto` on `backend` (empty: the default); `what` names it in errors.
Result<CompiledModel> compile_proto(const onnx::ModelProto& proto, const std::string& what, const std::string& backend);

// Runs `model` on calibration set `index`; the outputs in declared order.
Result<std::vector<Value>> run_set(const CompiledModel& model, const std::map<std::string, Tensor>& set, size_t index,
                                   const std::string& what);

// What calibration measured for a plan.
struct Calibration {
  std::map<std::string, ActivationRange> ranges;  // by activation name
  // Bias shifts by node index (with_bias_correction's input): the local ones after calibrate().
  std::map<int, std::vector<float>> shifts;
};

// Passes 1-3 above. Returns the plan (equalized when options.equalize) that the ranges and
// shifts belong to.
Result<QuantizationPlan> calibrate(QuantizationPlan plan, const QuantizeOptions& options, Calibration* calibration);

// Pass 4: sequential bias correction. A node's local shift ignores what the quantized nodes
// before it do to its input; their errors reach it too and, through nonlinearities and clipped
// ranges, move its output's mean. So, for each correctable node of `plan` in graph order, the
// plan is quantized with the shifts found so far (qdq and qoperator measured in the qdq form,
// which computes the same), cut down to what that node's biased output needs, and run over the
// calibration inputs; the mean difference per channel from the float plan's output is added to
// that node's shift. Each node is then centred on the float model given everything before it.
// Costs one compile and one pass over the calibration inputs per correctable node. Starts from
// `calibration.shifts`; returns the new shifts for all of plan's correctable nodes.
Result<std::map<int, std::vector<float>>> sequential_shifts(const QuantizationPlan& plan,
                                                            const QuantizeOptions& options,
                                                            const Calibration& calibration);

}  // namespace tandem::quantize_internal
