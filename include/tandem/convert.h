// tandem/convert.h: rewriting a float32 ONNX model so that it computes in float16.
//
//   auto converted = tandem::convert_to_fp16(model_bytes, {.keep_io_types = true});
//   write(converted->model_bytes);  converted->report.blocked_nodes;  // what stayed float32
//
// Float32 weights, constants and value types become float16; ops where float16 is unsafe
// (reductions, normalisations, exponentials, ...; docs/convert.md lists them and why) stay
// float32 behind Cast nodes, as do nested graphs and other domains. Values beyond float16's
// range that must be converted are clamped to +-65504 and counted. The opset imports and
// ir_version are kept. src/onnx/fp16_converter.h documents the rules in full.
//
// Ownership: the input bytes are only read; the result owns the converted model.
// Thread-safety: re-entrant. Errors (never thrown): invalid_model when the bytes are not a
// model or its types cannot be inferred; unsupported for initializers with external data.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/status.h"

namespace tandem {

struct Fp16ConvertOptions {
  // Graph inputs and outputs keep float32; Casts at the boundary convert them.
  bool keep_io_types = false;
  // Op types (ai.onnx domain) to keep in float32 besides the default block list.
  std::vector<std::string> extra_blocked_ops;
};

struct Fp16ConvertReport {
  int64_t converted_tensors = 0;  // initializers and constant attributes written as float16
  int64_t clamped_values = 0;     // finite values beyond +-65504 written as +-65504
  int64_t inserted_casts = 0;     // Cast nodes added (boundaries of blocked nodes and of the graph)
  int64_t constant_copies = 0;    // constants stored in a second precision
  // One line per blocked node that touches a float32 value: "[ReduceMean 'n'] reason".
  std::vector<std::string> blocked_nodes;
};

struct Fp16ModelConversion {
  std::string model_bytes;  // the converted model, a serialized onnx ModelProto
  Fp16ConvertReport report;
};

// Converts the serialized model `model_bytes` to float16. A model without float32 values
// comes back unchanged (with an empty report).
Result<Fp16ModelConversion> convert_to_fp16(std::string_view model_bytes, const Fp16ConvertOptions& options = {});

}  // namespace tandem
