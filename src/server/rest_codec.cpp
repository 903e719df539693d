// rest_codec.cpp: see rest_codec.h.
#include "rest_codec.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <exception>
#include <limits>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

namespace tandem::server {

namespace {

using nlohmann::json;

// Deeper JSON than this is refused before parsing: tensor data nests at most max_rank levels,
// and a body of '[' alone would otherwise become millions of nested arrays.
constexpr int kMaxJsonDepth = 32;

std::string in_quotes(std::string_view name) {
  std::string out(1, '\'');
  out.append(name);
  out.push_back('\'');
  return out;
}

// Error messages are one line: control characters from the client's bytes become '?'.
std::string one_line(std::string text) {
  for (char& c : text)
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
  return text;
}

// Checks what the parser would take too far: nesting past kMaxJsonDepth, and NUL bytes (which
// nlohmann::json reads as the end of the input, silently ignoring what follows).
std::optional<ProtocolError> precheck_json(std::string_view text) {
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\0') return bad_request("invalid JSON: NUL byte at offset " + std::to_string(i));
    if (in_string) {
      if (escaped) escaped = false;
      else if (c == '\\') escaped = true;
      else if (c == '"') in_string = false;
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > kMaxJsonDepth)
        return bad_request("invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels");
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return std::nullopt;
}

// The Inference-Header-Content-Length value: decimal digits only, at most the body's size.
std::optional<ProtocolError> parse_header_length(std::string_view text, size_t body_size, size_t* out) {
  if (text.empty() || text.size() > 19)
    return bad_request("Inference-Header-Content-Length: '" + one_line(std::string(text)) + "' is not a byte count");
  size_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9')
      return bad_request("Inference-Header-Content-Length: '" + one_line(std::string(text)) + "' is not a byte count");
    value = value * 10 + static_cast<size_t>(c - '0');
  }
  if (value > body_size)
    return bad_request("Inference-Header-Content-Length: " + std::to_string(value) + " exceeds the body's " +
                       std::to_string(body_size) + " bytes");
  *out = value;
  return std::nullopt;
}

// Reads an optional member `key` of object `parent`; nullptr when absent.
const json* member(const json& parent, const char* key) {
  auto it = parent.find(key);
  return it == parent.end() ? nullptr : &*it;
}

std::optional<ProtocolError> read_shape(const std::string& what, const json* shape_json, std::vector<int64_t>* shape) {
  if (!shape_json) return bad_request(what + ": 'shape' is missing");
  if (!shape_json->is_array()) return bad_request(what + ": 'shape' must be an array of integers");
  for (const json& dim : *shape_json) {
    if (dim.is_number_unsigned()) {
      if (dim.get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        return bad_request(what + ": dim " + std::to_string(shape->size()) + " is out of range");
      shape->push_back(static_cast<int64_t>(dim.get<uint64_t>()));
    } else if (dim.is_number_integer()) {
      shape->push_back(dim.get<int64_t>());
    } else {
      return bad_request(what + ": 'shape' must be an array of integers");
    }
    // check_tensor_shape() reports the rank; stop reading a runaway shape early.
    if (shape->size() > 64) return bad_request(what + ": rank exceeds the limit");
  }
  return std::nullopt;
}

// Collects the scalar elements of `data` in row-major order. Flat data is an array of scalars;
// nested data must follow `shape` exactly, level by level.
std::optional<ProtocolError> flatten_data(const std::string& what, const json& data, const std::vector<int64_t>& shape,
                                          size_t level, std::vector<const json*>* out) {
  if (!data.is_array()) return bad_request(what + ": 'data' must be an array");
  bool nested = false;
  for (const json& e : data)
    if (e.is_array() || e.is_object()) nested = true;
  if (!nested) {
    // Flat data (level 0) is counted by the caller; nested data ends at the shape's last dim.
    if (level > 0 && (level + 1 != shape.size() || static_cast<int64_t>(data.size()) != shape[level]))
      return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
    for (const json& e : data) out->push_back(&e);
    return std::nullopt;
  }
  if (level + 1 >= shape.size() || static_cast<int64_t>(data.size()) != shape[level])
    return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
  for (const json& e : data) {
    if (!e.is_array()) return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
    if (auto error = flatten_data(what, e, shape, level + 1, out)) return error;
  }
  return std::nullopt;
}

template <class T>
std::optional<ProtocolError> store_integer(const std::string& what, size_t index, const json& e, T* out) {
  std::string where = what + ": element " + std::to_string(index);
  if (e.is_number_unsigned()) {
    uint64_t v = e.get<uint64_t>();
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return bad_request(where + " is out of range");
    *out = static_cast<T>(v);
  } else if (e.is_number_integer()) {
    int64_t v = e.get<int64_t>();
    if constexpr (std::is_unsigned_v<T>) {
      if (v < 0) return bad_request(where + " is out of range");
      if (static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return bad_request(where + " is out of range");
    } else {
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) || v > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return bad_request(where + " is out of range");
    }
    *out = static_cast<T>(v);
  } else {
    return bad_request(where + " is not an integer");
  }
  return std::nullopt;
}

// A JSON number as float32, or why not (not a number, beyond float range).
std::optional<ProtocolError> number_as_float(const std::string& what, size_t index, const json& e, float* out) {
  if (!e.is_number()) return bad_request(what + ": element " + std::to_string(index) + " is not a number");
  double v = e.get<double>();
  if (!(std::fabs(v) <= FLT_MAX)) return bad_request(what + ": element " + std::to_string(index) + " is out of range");
  *out = static_cast<float>(v);
  return std::nullopt;
}

template <class Half>
std::optional<ProtocolError> store_half(const std::string& what, size_t index, const json& e, Half* out) {
  float f = 0;
  if (auto error = number_as_float(what, index, e, &f)) return error;
  Half h(f);
  if (std::isinf(static_cast<float>(h)))
    return bad_request(what + ": element " + std::to_string(index) + " is out of range");
  *out = h;
  return std::nullopt;
}

std::optional<ProtocolError> store_element(const std::string& what, size_t i, const json& e, Tensor* t) {
  switch (t->dtype()) {
    case DataType::boolean:
      if (!e.is_boolean()) return bad_request(what + ": element " + std::to_string(i) + " is not true or false");
      t->data<bool>()[i] = e.get<bool>();
      return std::nullopt;
    case DataType::uint8: return store_integer(what, i, e, &t->data<uint8_t>()[i]);
    case DataType::uint16: return store_integer(what, i, e, &t->data<uint16_t>()[i]);
    case DataType::uint32: return store_integer(what, i, e, &t->data<uint32_t>()[i]);
    case DataType::uint64: return store_integer(what, i, e, &t->data<uint64_t>()[i]);
    case DataType::int8: return store_integer(what, i, e, &t->data<int8_t>()[i]);
    case DataType::int16: return store_integer(what, i, e, &t->data<int16_t>()[i]);
    case DataType::int32: return store_integer(what, i, e, &t->data<int32_t>()[i]);
    case DataType::int64: return store_integer(what, i, e, &t->data<int64_t>()[i]);
    case DataType::float16: return store_half(what, i, e, &t->data<Float16>()[i]);
    case DataType::bfloat16: return store_half(what, i, e, &t->data<BFloat16>()[i]);
    case DataType::float32: return number_as_float(what, i, e, &t->data<float>()[i]);
    case DataType::float64:
      if (!e.is_number()) return bad_request(what + ": element " + std::to_string(i) + " is not a number");
      t->data<double>()[i] = e.get<double>();
      return std::nullopt;
    case DataType::string:
      if (!e.is_string()) return bad_request(what + ": element " + std::to_string(i) + " is not a string");
      t->data<std::string>()[i] = e.get_ref<const std::string&>();
      return std::nullopt;
    default: return bad_request(what + ": unsupported datatype");
  }
}

std::optional<ProtocolError> decode_json_data(const std::string& what, const json& data, Tensor* tensor) {
  std::vector<const json*> elements;
  if (auto error = flatten_data(what, data, tensor->shape(), 0, &elements)) return error;
  if (static_cast<int64_t>(elements.size()) != tensor->numel())
    return bad_request(what + ": 'data' has " + std::to_string(elements.size()) + " elements, shape " +
                       shape_to_string(tensor->shape()) + " needs " + std::to_string(tensor->numel()));
  for (size_t i = 0; i < elements.size(); ++i)
    if (auto error = store_element(what, i, *elements[i], tensor)) return error;
  return std::nullopt;
}

// BYTES binary data: each element is a 4-byte little-endian length and that many bytes.
std::optional<ProtocolError> decode_binary_strings(const std::string& what, std::string_view bytes, Tensor* tensor) {
  std::string* out = tensor->data<std::string>();
  size_t pos = 0;
  for (int64_t i = 0; i < tensor->numel(); ++i) {
    if (bytes.size() - pos < 4)
      return bad_request(what + ": binary data ends inside element " + std::to_string(i) + "'s length");
    uint32_t length = 0;
    for (int b = 3; b >= 0; --b) length = (length << 8) | static_cast<unsigned char>(bytes[pos + static_cast<size_t>(b)]);
    pos += 4;
    if (bytes.size() - pos < length)
      return bad_request(what + ": element " + std::to_string(i) + " declares " + std::to_string(length) +
                         " bytes, only " + std::to_string(bytes.size() - pos) + " remain");
    out[i].assign(bytes.data() + pos, length);
    pos += length;
  }
  if (pos != bytes.size())
    return bad_request(what + ": " + std::to_string(bytes.size() - pos) + " bytes of binary data left after " +
                       std::to_string(tensor->numel()) + " elements");
  return std::nullopt;
}

// Decodes one entry of "inputs". `binary` is the data after the JSON; `*binary_used` advances.
std::optional<ProtocolError> decode_input(const json& entry, std::string_view binary, bool has_binary_section,
                                          size_t* binary_used, const RequestLimits& limits, InferTensor* out) {
  if (!entry.is_object()) return bad_request("each entry of 'inputs' must be an object");
  const json* name = member(entry, "name");
  if (!name || !name->is_string()) return bad_request("an input has no string 'name'");
  out->name = name->get<std::string>();
  const std::string what = "input " + in_quotes(out->name);

  const json* datatype = member(entry, "datatype");
  if (!datatype || !datatype->is_string()) return bad_request(what + ": 'datatype' must be a string");
  std::optional<DataType> dtype = dtype_from_protocol(datatype->get_ref<const std::string&>());
  if (!dtype) return bad_request(what + ": unknown datatype " + in_quotes(datatype->get_ref<const std::string&>()));

  std::vector<int64_t> shape;
  if (auto error = read_shape(what, member(entry, "shape"), &shape)) return error;
  size_t bytes = 0;
  if (auto error = check_tensor_shape(what, *dtype, shape, limits, &bytes)) return error;

  const json* binary_size = nullptr;
  if (const json* parameters = member(entry, "parameters")) {
    if (!parameters->is_object()) return bad_request(what + ": 'parameters' must be an object");
    binary_size = member(*parameters, "binary_data_size");
  }
  const json* data = member(entry, "data");
  if (!binary_size) {
    if (!data) return bad_request(what + ": neither 'data' nor parameters.binary_data_size is given");
    out->tensor = Tensor(*dtype, shape);  // bounded: check_tensor_shape() capped its size
    return decode_json_data(what, *data, &out->tensor);
  }

  if (data) return bad_request(what + ": both 'data' and parameters.binary_data_size are given");
  if (!has_binary_section)
    return bad_request(what + ": binary_data_size needs the Inference-Header-Content-Length header");
  if (!binary_size->is_number_unsigned())
    return bad_request(what + ": parameters.binary_data_size must be a non-negative integer");
  const uint64_t size = binary_size->get<uint64_t>();
  const size_t left = binary.size() - *binary_used;
  if (size > left)
    return bad_request(what + ": binary_data_size " + std::to_string(size) + " exceeds the " + std::to_string(left) +
                       " bytes of binary data left");
  std::string_view bytes_in = binary.substr(*binary_used, static_cast<size_t>(size));
  *binary_used += static_cast<size_t>(size);
  if (*dtype == DataType::string) {
    out->tensor = Tensor(*dtype, shape);
    return decode_binary_strings(what, bytes_in, &out->tensor);
  }
  if (size != bytes)
    return bad_request(what + ": expected " + std::to_string(bytes) + " bytes for shape " + shape_to_string(shape) +
                       ", got " + std::to_string(size));
  out->tensor = Tensor(*dtype, shape);
  if (bytes) std::memcpy(out->tensor.raw_data(), bytes_in.data(), bytes);
  return std::nullopt;
}

std::optional<ProtocolError> decode_outputs(const json& outputs, bool binary_default, const RequestLimits& limits,
                                            std::vector<RequestedOutput>* out) {
  if (!outputs.is_array()) return bad_request("'outputs' must be an array");
  if (outputs.size() > limits.max_tensors)
    return too_large(std::to_string(outputs.size()) + " outputs requested, the limit is " + std::to_string(limits.max_tensors));
  std::set<std::string> seen;
  for (const json& entry : outputs) {
    if (!entry.is_object()) return bad_request("each entry of 'outputs' must be an object");
    const json* name = member(entry, "name");
    if (!name || !name->is_string()) return bad_request("a requested output has no string 'name'");
    RequestedOutput requested{name->get<std::string>(), binary_default};
    if (!seen.insert(requested.name).second) return bad_request("output " + in_quotes(requested.name) + " requested twice");
    if (const json* parameters = member(entry, "parameters")) {
      if (!parameters->is_object()) return bad_request("output " + in_quotes(requested.name) + ": 'parameters' must be an object");
      if (const json* binary = member(*parameters, "binary_data")) {
        if (!binary->is_boolean())
          return bad_request("output " + in_quotes(requested.name) + ": parameters.binary_data must be true or false");
        requested.binary = binary->get<bool>();
      }
    }
    out->push_back(std::move(requested));
  }
  return std::nullopt;
}

std::optional<ProtocolError> decode_request_parameters(const json& parameters, InferRequest* out) {
  if (!parameters.is_object()) return bad_request("'parameters' must be an object");
  if (const json* binary = member(parameters, "binary_data_output")) {
    if (!binary->is_boolean()) return bad_request("parameters.binary_data_output must be true or false");
    out->binary_outputs = binary->get<bool>();
  }
  if (const json* timeout = member(parameters, "timeout")) {
    if (!timeout->is_number() || timeout->get<double>() < 0)
      return bad_request("parameters.timeout must be a non-negative number of microseconds");
    out->timeout_ms = timeout->get<double>() / 1000.0;
  }
  return std::nullopt;
}

std::optional<ProtocolError> decode_document(const json& doc, std::string_view binary, bool has_binary_section,
                                             const RequestLimits& limits, InferRequest* out) {
  if (!doc.is_object()) return bad_request("the request must be a JSON object");
  if (const json* id = member(doc, "id")) {
    if (!id->is_string()) return bad_request("'id' must be a string");
    out->id = id->get<std::string>();
  }
  if (const json* parameters = member(doc, "parameters"))
    if (auto error = decode_request_parameters(*parameters, out)) return error;

  const json* inputs = member(doc, "inputs");
  if (!inputs || !inputs->is_array()) return bad_request("'inputs' must be an array");
  if (inputs->size() > limits.max_tensors)
    return too_large(std::to_string(inputs->size()) + " inputs, the limit is " + std::to_string(limits.max_tensors));
  std::set<std::string> names;
  size_t binary_used = 0;
  for (const json& entry : *inputs) {
    InferTensor input;
    if (auto error = decode_input(entry, binary, has_binary_section, &binary_used, limits, &input)) return error;
    if (!names.insert(input.name).second) return bad_request("input " + in_quotes(input.name) + " given twice");
    out->inputs.push_back(std::move(input));
  }
  if (binary_used != binary.size())
    return bad_request(std::to_string(binary.size()) + " bytes of binary data follow the JSON, the inputs declare " +
                       std::to_string(binary_used));
  if (const json* outputs = member(doc, "outputs"))
    if (auto error = decode_outputs(*outputs, out->binary_outputs, limits, &out->outputs)) return error;
  return std::nullopt;
}

// ---- responses ----------------------------------------------------------------------------

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

std::optional<ProtocolError> decode_rest_infer_request(std::string_view body, std::optional<std::string_view> header_length,
                                                       const RequestLimits& limits, InferRequest* out) {
  if (body.size() > limits.max_body_bytes)
    return too_large("request body of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                     std::to_string(limits.max_body_bytes));
  size_t json_length = body.size();
  if (header_length)
    if (auto error = parse_header_length(*header_length, body.size(), &json_length)) return error;
  const std::string_view json_text = body.substr(0, json_length);
  if (auto error = precheck_json(json_text)) return error;
  try {
    const json doc = json::parse(json_text.begin(), json_text.end());
    return decode_document(doc, body.substr(json_length), header_length.has_value(), limits, out);
  } catch (const json::exception& e) {
    return bad_request(one_line(std::string("invalid JSON: ") + e.what()));
  } catch (const std::exception& e) {
    return bad_request(one_line(std::string("cannot decode the request: ") + e.what()));
  }
}

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
