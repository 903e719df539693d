// protocol.cpp: see protocol.h.
#include "protocol.h"

#include <array>
#include <limits>
#include <utility>

namespace tandem::server {

namespace {

struct DtypeName {
  DataType dtype;
  std::string_view name;
};
constexpr std::array<DtypeName, 14> kDtypeNames{{
    {DataType::boolean, "BOOL"},   {DataType::uint8, "UINT8"},     {DataType::uint16, "UINT16"},
    {DataType::uint32, "UINT32"},  {DataType::uint64, "UINT64"},   {DataType::int8, "INT8"},
    {DataType::int16, "INT16"},    {DataType::int32, "INT32"},     {DataType::int64, "INT64"},
    {DataType::float16, "FP16"},   {DataType::float32, "FP32"},    {DataType::float64, "FP64"},
    {DataType::string, "BYTES"},   {DataType::bfloat16, "BF16"},
}};

ProtocolError make(int http_status, std::string message, int retry_after_s = 0) {
  ProtocolError e;
  e.http_status = http_status;
  e.message = std::move(message);
  e.retry_after_s = retry_after_s;
  return e;
}

}  // namespace

std::optional<DataType> dtype_from_protocol(std::string_view name) {
  for (const DtypeName& d : kDtypeNames)
    if (d.name == name) return d.dtype;
  return std::nullopt;
}

std::string_view protocol_dtype_name(DataType dtype) {
  for (const DtypeName& d : kDtypeNames)
    if (d.dtype == dtype) return d.name;
  return {};
}

int ProtocolError::grpc_code() const {
  switch (http_status) {
    case 400: return 3;   // INVALID_ARGUMENT
    case 404: return 5;   // NOT_FOUND
    case 413: return 8;   // RESOURCE_EXHAUSTED (a message too large)
    case 503: return retry_after_s > 0 ? 8 : 14;  // queue full: RESOURCE_EXHAUSTED; else UNAVAILABLE
    case 499:
      return 1;           // CANCELLED
    case 504: return 4;   // DEADLINE_EXCEEDED
    default: return 13;   // INTERNAL
  }
}

ProtocolError bad_request(std::string message) { return make(400, std::move(message)); }
ProtocolError not_found(std::string message) { return make(404, std::move(message)); }
ProtocolError too_large(std::string message) { return make(413, std::move(message)); }
ProtocolError queue_full(std::string message) { return make(503, std::move(message), 1); }
ProtocolError unavailable(std::string message) { return make(503, std::move(message)); }
ProtocolError client_went_away(std::string message) { return make(499, std::move(message)); }

ProtocolError from_status(const Status& status) {
  switch (status.code()) {
    case StatusCode::invalid_argument: return bad_request(status.to_string());
    case StatusCode::timeout: return make(504, status.to_string());
    case StatusCode::cancelled:
    case StatusCode::unavailable: return unavailable(status.to_string());
    default: return make(500, status.to_string());
  }
}

std::optional<ProtocolError> check_tensor_shape(std::string_view what, DataType dtype, const std::vector<int64_t>& shape,
                                                const RequestLimits& limits, size_t* bytes) {
  if (shape.size() > limits.max_rank)
    return bad_request(std::string(what) + ": rank " + std::to_string(shape.size()) + " exceeds the limit of " +
                       std::to_string(limits.max_rank));
  const size_t element = dtype_size(dtype);
  // The element budget: strings are counted as one byte each so that their count is bounded too.
  const uint64_t budget = limits.max_tensor_bytes / (element ? element : 1);
  uint64_t count = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] < 0)
      return bad_request(std::string(what) + ": dim " + std::to_string(i) + " is negative (" + std::to_string(shape[i]) + ")");
    const uint64_t d = static_cast<uint64_t>(shape[i]);
    if (d != 0 && count > budget / d)
      return too_large(std::string(what) + ": shape exceeds the tensor size limit of " +
                       std::to_string(limits.max_tensor_bytes) + " bytes");
    count *= d;
  }
  if (count > budget)
    return too_large(std::string(what) + ": shape exceeds the tensor size limit of " + std::to_string(limits.max_tensor_bytes) +
                     " bytes");
  if (bytes) *bytes = static_cast<size_t>(count) * element;
  return std::nullopt;
}

std::optional<ProtocolError> check_repository_name(std::string_view repository, const std::string& served_folder) {
  if (repository.empty() || repository == served_folder) return std::nullopt;
  std::string_view folder = served_folder;
  while (folder.size() > 1 && folder.back() == '/') folder.remove_suffix(1);
  if (const size_t slash = folder.rfind('/'); slash != std::string_view::npos) folder.remove_prefix(slash + 1);
  if (repository == folder) return std::nullopt;
  return not_found("no repository named '" + std::string(repository) + "' (this server serves one: '" + served_folder +
                   "')");
}

std::optional<ProtocolError> check_repository_parameter(std::string_view action, std::string_view name,
                                                        bool is_boolean) {
  if (action == "unload" && name == "unload_dependents") {
    if (is_boolean) return std::nullopt;
    return bad_request("repository unload: parameter 'unload_dependents' must be a boolean");
  }
  return bad_request("repository " + std::string(action) + ": parameter '" + std::string(name) +
                     "' is not supported (each model's config.json in the repository configures it)");
}

}  // namespace tandem::server
