// protocol.h: the Open Inference Protocol (KServe v2) as the server sees it, independent of
// the transport: one inference request and its response, the protocol's datatype names, and
// errors that know their HTTP status and gRPC code.
//
// The REST codec (rest_codec.h) and the gRPC frontend (grpc_frontend.h) translate their wire
// formats into these types; everything behind them (server.h, scheduler.h) sees only these.
// Tensors are tandem Tensors: a decoded request owns (or shares, zero-copy) its element
// buffers. Thread-safety: plain values.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::server {

// The protocol's tensor datatype names: "BOOL", "UINT8", ..., "FP16", "FP32", "FP64", "BYTES"
// ("BF16" too). Unknown names and dtypes have no counterpart (nullopt / empty string).
std::optional<DataType> dtype_from_protocol(std::string_view name);
std::string_view protocol_dtype_name(DataType dtype);

// Calls visit(static_cast<T*>(nullptr)) with the C++ element type T of `dtype`, for every
// datatype the protocol carries; false (and no call) for the others.
template <class Visit>
bool visit_protocol_dtype(DataType dtype, const Visit& visit) {
  switch (dtype) {
    case DataType::boolean: visit(static_cast<bool*>(nullptr)); return true;
    case DataType::uint8: visit(static_cast<uint8_t*>(nullptr)); return true;
    case DataType::uint16: visit(static_cast<uint16_t*>(nullptr)); return true;
    case DataType::uint32: visit(static_cast<uint32_t*>(nullptr)); return true;
    case DataType::uint64: visit(static_cast<uint64_t*>(nullptr)); return true;
    case DataType::int8: visit(static_cast<int8_t*>(nullptr)); return true;
    case DataType::int16: visit(static_cast<int16_t*>(nullptr)); return true;
    case DataType::int32: visit(static_cast<int32_t*>(nullptr)); return true;
    case DataType::int64: visit(static_cast<int64_t*>(nullptr)); return true;
    case DataType::float16: visit(static_cast<Float16*>(nullptr)); return true;
    case DataType::bfloat16: visit(static_cast<BFloat16*>(nullptr)); return true;
    case DataType::float32: visit(static_cast<float*>(nullptr)); return true;
    case DataType::float64: visit(static_cast<double*>(nullptr)); return true;
    case DataType::string: visit(static_cast<std::string*>(nullptr)); return true;
    default: return false;
  }
}

// Why a request failed, as each transport reports it. `http_status` is 400 (malformed or
// invalid request), 404 (unknown model or version), 413 (too large), 503 (queue full, not
// ready, shutting down), 504 (deadline passed) or 500 (the engine failed). Messages are one
// line and name what was wrong ("input 'x': expected 602112 bytes, got 12").
struct ProtocolError {
  int http_status = 500;
  std::string message;
  // The gRPC status code (grpc::StatusCode values: 3 INVALID_ARGUMENT, 5 NOT_FOUND,
  // 8 RESOURCE_EXHAUSTED, 14 UNAVAILABLE, 4 DEADLINE_EXCEEDED, 13 INTERNAL, ...).
  int grpc_code() const;
  // Seconds a client should wait before retrying (REST `Retry-After`), for 503 only; 0: none.
  int retry_after_s = 0;
};
ProtocolError bad_request(std::string message);       // 400
ProtocolError not_found(std::string message);         // 404
ProtocolError too_large(std::string message);         // 413
ProtocolError queue_full(std::string message);        // 503, Retry-After 1
ProtocolError unavailable(std::string message);       // 503
// 499 (nginx's "client closed request"; gRPC CANCELLED): the client went away before its
// answer. Sent to nobody; it names the outcome in the request counters.
ProtocolError client_went_away(std::string message);
// An engine failure: timeout -> 504, invalid_argument -> 400, cancelled/unavailable -> 503,
// everything else -> 500.
ProtocolError from_status(const Status& status);

struct InferTensor {
  std::string name;
  Tensor tensor;  // dtype and shape as the request declared them; data decoded
  // Only for outputs: the client asked for this output as binary data (REST extension).
  bool binary = false;
};

struct RequestedOutput {
  std::string name;
  bool binary = false;  // REST: parameters.binary_data (or the request-wide binary_data_output)
};

struct InferRequest {
  std::string model;
  std::string version;                   // empty: the model's default (newest ready) version
  std::string id;                        // echoed in the response
  std::vector<InferTensor> inputs;       // names are unique (the decoders check)
  std::vector<RequestedOutput> outputs;  // empty: every output
  bool binary_outputs = false;           // REST parameters.binary_data_output: all outputs binary
  std::optional<double> timeout_ms;      // parameters.timeout (the protocol's unit: microseconds
                                         // on the wire; decoders convert)
  // Set by the frontend: true once the client has gone away (closed its connection,
  // cancelled its call), so that nobody reads the answer. Cheap, non-blocking and safe to call
  // from any thread until the request's completion runs, never after. Empty: never gone.
  std::function<bool()> client_gone;
};

struct InferResponse {
  std::string model;
  std::string version;
  std::string id;
  std::vector<InferTensor> outputs;  // in the order requested (or the model's declared order)
  // What served it, for stats and headers: the engine's route and whether it fell back.
  std::string backend;
  bool fallback = false;
};

// Limits every decoder enforces (413 past them).
struct RequestLimits {
  size_t max_body_bytes = 64u << 20;    // a whole REST body / gRPC message
  size_t max_tensor_bytes = 64u << 20;  // one tensor's decoded elements
  size_t max_tensors = 64;              // inputs (and requested outputs) per request
  size_t max_rank = 8;
};

// Checks that `shape` has rank <= limits.max_rank and non-negative dims, and that its element
// count times the dtype size fits `limits.max_tensor_bytes` without overflow. On success sets
// `*bytes` (strings: 0). Messages name `what` ("input 'x'").
std::optional<ProtocolError> check_tensor_shape(std::string_view what, DataType dtype, const std::vector<int64_t>& shape,
                                                const RequestLimits& limits, size_t* bytes);

// The model-repository extension's requests, on both protocols. A server serves one
// repository: `repository` ("repository_name" in a request) is empty, the folder as the server
// was given it, or its last component; anything else is not_found. Load and unload parameters
// (`action` "load" or "unload"): tandem reads each model's config.json from the repository and
// has no dependent models, so it takes only unload's boolean "unload_dependents" and refuses
// every other parameter with bad_request naming it (a "config" to load instead of config.json
// would otherwise be silently ignored).
std::optional<ProtocolError> check_repository_name(std::string_view repository, const std::string& served_folder);
std::optional<ProtocolError> check_repository_parameter(std::string_view action, std::string_view name,
                                                        bool is_boolean);

}  // namespace tandem::server
