// fp16_converter.h: rewrites a float32 ONNX model so that it computes in float16.
//
// What becomes float16: float32 initializers, the tensors of Constant nodes (value,
// value_float, value_floats), ConstantOfShape's `value`, EyeLike's and Cast's target type
// FLOAT, and the declared types of float32 values (graph inputs, outputs, value_info) in the
// converted region. Tensor values are rounded to nearest even; finite values beyond fp16's range
// that still get converted (Clip bounds, ConstantOfShape values, constants only graph outputs
// read) are clamped to +-65504 and counted (infinities and NaN stay what they are).
//
// What stays float32 ("blocked" nodes, which get Cast nodes around them: float16->float32 in
// front of each float input, float32->float16 after each float output, shared by all readers):
//   - ops in the block list: fp16_default_block_list() (each with its reason) plus
//     Fp16ConvertOptions::extra_blocked_ops;
//   - nodes of other domains than ai.onnx, nodes holding subgraphs (If, Loop, Scan: the whole
//     node and its bodies keep float32; float values the bodies read from outside are cast to
//     float32 and the bodies read the cast), nodes with sequence/optional/map values or values
//     whose type inference cannot tell;
//   - nodes that compute only from constants and shapes (Shape/Size outputs): their results
//     are shape arithmetic or constant folding, which fp16 gets wrong beyond 2048;
//   - nodes that read a constant with finite values beyond +-65504 (a BatchNormalization
//     variance of 4e7, say), which clamping would change; Clip's bounds are exempt, as a
//     bound of +-65504 clips float16 values the same.
// Some inputs must stay float32 on converted nodes too, as the ONNX spec types them
// tensor(float): Resize's roi and scales, Upsample's scales. A constant (initializer or
// Constant node) read in both precisions is stored once per precision, each copy rounded only
// once. Integer and other non-float values are untouched. With keep_io_types the graph's inputs
// and outputs keep float32 and Casts at the boundary convert them. The opset imports and the
// ir_version are kept; inserted nodes and values get unique names starting with "fp16_".
// Only the main graph is converted; its types come from tandem's own shape inference.
//
// Ownership: the input model is only read; the result owns the converted copy.
// Thread-safety: re-entrant; calls on different or the same (unchanging) input may overlap.
// Errors (one line, never thrown): unsupported for initializers with external data;
// invalid_model when the model does not load or its types cannot be inferred.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <onnx/onnx_pb.h>

#include "tandem/convert.h"  // Fp16ConvertOptions, Fp16ConvertReport
#include "tandem/status.h"

namespace tandem {

// One entry of the default block list: an op type of the ai.onnx domain and why fp16 is unsafe.
struct Fp16BlockedOp {
  std::string op_type;
  std::string reason;
};

// The ops blocked by default, in a fixed order (docs/convert.md explains them).
const std::vector<Fp16BlockedOp>& fp16_default_block_list();

// IEEE half bits of `value`, rounded to nearest even. Finite values beyond +-65504 give
// +-65504 and set `*clamped` (if not null) to true; otherwise `*clamped` is left alone.
uint16_t float_to_half_clamped(float value, bool* clamped);

struct Fp16Conversion {
  onnx::ModelProto model;
  Fp16ConvertReport report;
};

// Converts `model` to float16 as described above. A model without float32 values comes back
// unchanged (with an empty report).
Result<Fp16Conversion> convert_model_to_fp16(const onnx::ModelProto& model, const Fp16ConvertOptions& options);

}  // namespace tandem
