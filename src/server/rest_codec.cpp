// rest_codec.cpp: the REST response and error encoding of rest_codec.h (nlohmann::json).
// Requests are decoded in rest_request_decode.cpp.
#include "rest_codec.h"

#include <algorithm>
#include <utility>

#include <nlohmann/json.hpp>

namespace tandem::server {

namespace {

using nlohmann::json;

// ---- response bodies -----------------------------------------------------------------------

template <class T>
json numbers(const Tensor& t) {
  json array = json::array();
  const T* p = t.data<T>();
  for (int64_t i = 0; i < t.numel(); ++i) array.push_back(p[i]);
  return array;
}
template <class Half>
json half_numbers(const Tensor& t) {
  json array = json::array();
  const Half* p = t.data<Half>();
  for (int64_t i = 0; i < t.numel(); ++i) array.push_back(static_cast<float>(p[i]));
  return array;
}

json json_data(const Tensor& t) {
  switch (t.dtype()) {
    case DataType::boolean: return numbers<bool>(t);
    case DataType::uint8: return numbers<uint8_t>(t);
    case DataType::uint16: return numbers<uint16_t>(t);
    case DataType::uint32: return numbers<uint32_t>(t);
    case DataType::uint64: return numbers<uint64_t>(t);
    case DataType::int8: return numbers<int8_t>(t);
    case DataType::int16: return numbers<int16_t>(t);
    case DataType::int32: return numbers<int32_t>(t);
    case DataType::int64: return numbers<int64_t>(t);
    case DataType::float16: return half_numbers<Float16>(t);
    case DataType::bfloat16: return half_numbers<BFloat16>(t);
    case DataType::float32: return numbers<float>(t);
    case DataType::float64: return numbers<double>(t);
    case DataType::string: return numbers<std::string>(t);
    default: return json::array();
  }
}

void append_binary(const Tensor& t, std::string* out) {
  if (t.dtype() != DataType::string) {
    out->append(static_cast<const char*>(t.raw_data()), t.nbytes());
    return;
  }
  const std::string* strings = t.data<std::string>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint32_t length = static_cast<uint32_t>(strings[i].size());
    for (int b = 0; b < 4; ++b) out->push_back(static_cast<char>((length >> (8 * b)) & 0xff));
    out->append(strings[i]);
  }
}

std::string dump(const json& doc) { return doc.dump(-1, ' ', false, json::error_handler_t::replace); }

}  // namespace

RestBody encode_rest_infer_response(const InferResponse& response) {
  json doc = json::object();
  doc["model_name"] = response.model;
  if (!response.version.empty()) doc["model_version"] = response.version;
  if (!response.id.empty()) doc["id"] = response.id;
  json outputs = json::array();
  std::string binary;
  for (const InferTensor& output : response.outputs) {
    json entry = {{"name", output.name},
                  {"datatype", std::string(protocol_dtype_name(output.tensor.dtype()))},
                  {"shape", output.tensor.shape()}};
    if (output.binary) {
      const size_t before = binary.size();
      append_binary(output.tensor, &binary);
      entry["parameters"] = {{"binary_data_size", binary.size() - before}};
    } else {
      entry["data"] = json_data(output.tensor);
    }
    outputs.push_back(std::move(entry));
  }
  doc["outputs"] = std::move(outputs);
  RestBody result;
  result.body = dump(doc);
  if (!binary.empty() || std::any_of(response.outputs.begin(), response.outputs.end(),
                                     [](const InferTensor& o) { return o.binary; })) {
    result.header_length = result.body.size();
    result.body += binary;
  }
  return result;
}

std::string encode_rest_error(const ProtocolError& error) { return dump(json{{"error", one_line(error.message)}}); }

}  // namespace tandem::server
