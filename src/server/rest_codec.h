// rest_codec.h: the REST side of the Open Inference Protocol: inference request bodies in and
// response bodies out, as JSON tensors and with the binary tensor data extension.
//
// Request body: JSON, or (when the `Inference-Header-Content-Length` header is present) that
// many bytes of JSON followed by the binary data of the inputs that declare
// `parameters.binary_data_size`, in the order they appear. Every decoding error is a
// ProtocolError (400, or 413 past the limits) with one line naming the field; a decoder never
// trusts a declared length, count or shape before checking it against the body and the limits.
// JSON tensor data may be flat or nested (row-major); BOOL takes true/false, BYTES strings,
// FP16/BF16 numbers. Element counts must match the shape exactly; numbers must fit the dtype
// (integers exactly, floats within its finite range; FP32 is read as a double, then rounded
// once). The JSON must be valid UTF-8, nest at most 32 levels and hold no NUL byte; numbers
// beyond a 64-bit integer or a double are malformed JSON. Requests are parsed by simdjson
// (rest_request_decode.cpp) into a tape of about 14 bytes per JSON byte (bounded by
// RequestLimits::max_body_bytes) and read from there straight into the tensors; each thread
// keeps its parser's buffers for the next request while the JSON was at most 1 MiB. Large
// tensors (flat, or nested as their shape) can be parsed in pieces on several threads
// (rest_json_split.h).
// Response: JSON, or JSON followed by binary outputs (their JSON entries carry
// `parameters.binary_data_size`), with the JSON's length to send as
// `Inference-Header-Content-Length`. JSON floats are printed as the shortest decimal that
// reads back to the same value, so FP32 survives a round trip exactly; NaN and infinities have
// no JSON form and become null (ask for binary outputs to keep them). Tensor data is written as
// text directly (large tensors in pieces on helper threads when given).
// Thread-safety: pure functions (the decoder's scratch buffers are per thread).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "protocol.h"
#include "rest_json_split.h"

namespace tandem::server {

// Decodes a request body. `header_length`: the Inference-Header-Content-Length header's text
// (nullopt when absent). `out->model` and `out->version` are left for the caller (they come
// from the URL). `split` (optional): parse large JSON tensors in pieces on its helper threads
// (rest_json_split.h); the result, errors included, is the same as without. `body_owner`
// (optional) keeps `body`'s bytes alive and unchanged for as long as it is shared: binary
// inputs of a fixed-size datatype other than BOOL whose bytes are aligned for it then share
// them instead of being copied (the transport aligns the binary section; 110 KB an image).
std::optional<ProtocolError> decode_rest_infer_request(std::string_view body,
                                                       std::optional<std::string_view> header_length,
                                                       const RequestLimits& limits, InferRequest* out,
                                                       const JsonSplitOptions* split = nullptr,
                                                       const std::shared_ptr<void>& body_owner = nullptr);

struct RestBody {
  std::string body;
  std::optional<size_t> header_length;  // set when binary data follows the JSON
};
// `helpers` (optional): write large JSON tensors in pieces on its threads (the same text).
RestBody encode_rest_infer_response(const InferResponse& response, SideTasks* helpers = nullptr);

// {"error":"<message>"}
std::string encode_rest_error(const ProtocolError& error);

}  // namespace tandem::server
