// rest_request_decode.cpp: decode_rest_infer_request of rest_codec.h.
//
// The JSON part is parsed by simdjson's DOM parser (a flat tape, no value per element on the
// heap) and read from there straight into the pre-sized Tensors: tensor data is checked
// against the shape first (structure and element count), then each element is converted and
// stored in place. simdjson reports errors as codes; none of its exceptions is used.
#include <simdjson.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <exception>
#include <limits>
#include <memory>
#include <set>
#include <type_traits>
#include <utility>
#include <vector>

#include "rest_codec.h"
#include "rest_json_elements.h"
#include "rest_json_split.h"

namespace tandem::server {

namespace {

using simdjson::dom::array;
using simdjson::dom::element;
using simdjson::dom::element_type;
using simdjson::dom::object;
using namespace json_elements;

// Deeper JSON than this is refused by the parser: tensor data nests at most max_rank levels,
// and a body of '[' alone would otherwise become millions of nested arrays.
constexpr size_t kMaxJsonDepth = 32;

// A thread keeps its parser's buffers (about 14 bytes per JSON byte) and its padded copy of
// the JSON between requests while the JSON was at most this long; larger ones are freed.
constexpr size_t kMaxRetainedJsonBytes = size_t{1} << 20;

// What a thread reuses from one request to the next.
struct JsonScratch {
  simdjson::dom::parser parser;
  std::vector<char> padded_json;  // the JSON part, then SIMDJSON_PADDING zero bytes
};

JsonScratch& thread_json_scratch() {
  thread_local JsonScratch scratch;
  return scratch;
}

void release_oversized(JsonScratch* scratch) {
  if (scratch->parser.capacity() <= kMaxRetainedJsonBytes) return;
  scratch->parser = simdjson::dom::parser();
  scratch->padded_json = std::vector<char>();
}

std::string in_quotes(std::string_view name) {
  std::string out(1, '\'');
  out.append(name);
  out.push_back('\'');
  return out;
}

std::string json_error_message(simdjson::error_code error) {
  switch (error) {
    case simdjson::DEPTH_ERROR:
      return "invalid JSON: nested deeper than " + std::to_string(kMaxJsonDepth) + " levels";
    case simdjson::NUMBER_ERROR:
      return "invalid JSON: a number is malformed or beyond the range of a 64-bit integer or a double";
    case simdjson::UTF8_ERROR: return "invalid JSON: the text is not valid UTF-8";
    case simdjson::EMPTY: return "invalid JSON: no JSON value in the body";
    case simdjson::MEMALLOC: return "cannot decode the request: out of memory for the JSON parser";
    default: return std::string("invalid JSON: ") + simdjson::error_message(error);
  }
}

// Parses `text`, with `placeholders` written over its spans (rest_json_split.h), into the
// thread's parser; `*root` lives until that parser is used again.
std::optional<ProtocolError> parse_json(std::string_view text, const std::vector<JsonSpan>& placeholders,
                                        JsonScratch* scratch, element* root) {
  if (!text.empty())
    if (const void* nul = std::memchr(text.data(), '\0', text.size()))
      return bad_request("invalid JSON: NUL byte at offset " +
                         std::to_string(static_cast<const char*>(nul) - text.data()));
  simdjson::dom::parser& parser = scratch->parser;
  if (parser.capacity() < text.size() || parser.max_depth() != kMaxJsonDepth) {
    const simdjson::error_code error = parser.allocate(std::max(text.size(), size_t{4096}), kMaxJsonDepth);
    if (error) return bad_request(json_error_message(error));
  }
  std::vector<char>& padded = scratch->padded_json;
  padded.resize(text.size() + simdjson::SIMDJSON_PADDING);
  if (!text.empty()) std::memcpy(padded.data(), text.data(), text.size());
  std::memset(padded.data() + text.size(), 0, simdjson::SIMDJSON_PADDING);
  for (size_t i = 0; i < placeholders.size(); ++i) write_placeholder(padded.data(), placeholders[i], i);
  const simdjson::error_code error = parser.parse(padded.data(), text.size(), false).get(*root);
  if (error) return bad_request(json_error_message(error));
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

// The member `key` of `parent`; nullopt when absent.
std::optional<element> member(object parent, std::string_view key) {
  element value;
  if (parent.at_key(key).get(value) != simdjson::SUCCESS) return std::nullopt;
  return value;
}

std::optional<std::string_view> string_of(std::optional<element> e) {
  std::string_view text;
  if (!e || e->get_string().get(text) != simdjson::SUCCESS) return std::nullopt;
  return text;
}

// A JSON integer >= 0 (simdjson types those up to INT64_MAX as INT64, larger ones as UINT64).
std::optional<uint64_t> non_negative_integer(element e) {
  if (e.type() == element_type::UINT64) {
    uint64_t value = 0;
    if (e.get_uint64().get(value) == simdjson::SUCCESS) return value;
  } else if (e.type() == element_type::INT64) {
    int64_t value = 0;
    if (e.get_int64().get(value) == simdjson::SUCCESS && value >= 0) return static_cast<uint64_t>(value);
  }
  return std::nullopt;
}

std::optional<ProtocolError> read_shape(const std::string& what, std::optional<element> shape_json,
                                        std::vector<int64_t>* shape) {
  if (!shape_json) return bad_request(what + ": 'shape' is missing");
  array dims;
  if (shape_json->get_array().get(dims) != simdjson::SUCCESS)
    return bad_request(what + ": 'shape' must be an array of integers");
  for (element dim : dims) {
    int64_t value = 0;
    if (dim.type() == element_type::UINT64) return bad_request(what + ": dim " + std::to_string(shape->size()) + " is out of range");
    if (dim.type() != element_type::INT64 || dim.get_int64().get(value) != simdjson::SUCCESS)
      return bad_request(what + ": 'shape' must be an array of integers");
    shape->push_back(value);
    // check_tensor_shape() reports the rank; stop reading a runaway shape early.
    if (shape->size() > 64) return bad_request(what + ": rank exceeds the limit");
  }
  return std::nullopt;
}

// ---- tensor data ----------------------------------------------------------------------------

// Checks that `data` is flat (an array of scalars, counted against the shape by the caller) or
// nested exactly as `shape`, level by level; adds its number of scalars to `*count`.
std::optional<ProtocolError> check_data_layout(const std::string& what, element data, const std::vector<int64_t>& shape,
                                               size_t level, size_t* count) {
  array elements;
  if (data.get_array().get(elements) != simdjson::SUCCESS) return bad_request(what + ": 'data' must be an array");
  bool nested = false;
  for (element e : elements)
    if (e.type() == element_type::ARRAY || e.type() == element_type::OBJECT) {
      nested = true;
      break;
    }
  const size_t size = elements.size();
  if (!nested) {
    // Nested data ends at the shape's last dim.
    if (level > 0 && (level + 1 != shape.size() || static_cast<int64_t>(size) != shape[level]))
      return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
    *count += size;
    return std::nullopt;
  }
  if (level + 1 >= shape.size() || static_cast<int64_t>(size) != shape[level])
    return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
  for (element e : elements) {
    if (e.type() != element_type::ARRAY)
      return bad_request(what + ": nested 'data' does not match shape " + shape_to_string(shape));
    if (auto error = check_data_layout(what, e, shape, level + 1, count)) return error;
  }
  return std::nullopt;
}

// Stores the scalars of `data` (laid out as check_data_layout() accepted) in row-major order at
// out[*index], out[*index + 1], ... (fewer than `count`); false with `*fault` at the first bad one.
template <class T, class Convert>
bool store_elements(array data, T* out, size_t count, const Convert& convert, size_t* index, ElementFault* fault) {
  for (element e : data) {
    if (e.type() == element_type::ARRAY) {
      array inner;
      if (e.get_array().get(inner) != simdjson::SUCCESS || !store_elements(inner, out, count, convert, index, fault))
        return false;
      continue;
    }
    if (*index >= count) {
      *fault = ElementFault::beyond_shape;
      return false;
    }
    *fault = convert(e, &out[*index]);
    if (*fault != ElementFault::none) return false;
    ++*index;
  }
  return true;
}

template <class T, class Convert>
std::optional<ProtocolError> store_all(const std::string& what, array data, Tensor* tensor, const Convert& convert) {
  size_t index = 0;
  ElementFault fault = ElementFault::none;
  if (!store_elements(data, tensor->data<T>(), static_cast<size_t>(tensor->numel()), convert, &index, &fault))
    return element_error(what, index, fault);
  return std::nullopt;
}

// A decode with placeholders (rest_json_split.h): the original JSON, its spans, which of them
// an input took as its data.
struct SplitDecode {
  std::string_view json;
  const JsonSplitOptions* options = nullptr;
  std::vector<JsonSpan> spans;
  std::vector<bool> taken;
};

// An error of a decode with placeholders is never shown: the request is then decoded whole.
ProtocolError decode_whole() { return bad_request("decode the request whole"); }

std::optional<ProtocolError> decode_json_data(const std::string& what, element data, SplitDecode* split,
                                              Tensor* tensor) {
  if (split && data.type() == element_type::STRING) {
    std::string_view text;
    const std::optional<size_t> index = data.get_string().get(text) ? std::nullopt : placeholder_index(text);
    if (!index || *index >= split->spans.size() || split->taken[*index]) return decode_whole();
    split->taken[*index] = true;
    const JsonSpan& span = split->spans[*index];
    if (!parse_split_span(split->json.substr(span.begin, span.end - span.begin), span.brackets, *split->options,
                          tensor))
      return decode_whole();
    return std::nullopt;
  }
  size_t count = 0;
  if (auto error = check_data_layout(what, data, tensor->shape(), 0, &count)) return error;
  if (static_cast<int64_t>(count) != tensor->numel())
    return bad_request(what + ": 'data' has " + std::to_string(count) + " elements, shape " +
                       shape_to_string(tensor->shape()) + " needs " + std::to_string(tensor->numel()));
  array elements;
  if (data.get_array().get(elements) != simdjson::SUCCESS) return bad_request(what + ": 'data' must be an array");
  std::optional<ProtocolError> result = bad_request(what + ": unsupported datatype");
  visit_element_converter(tensor->dtype(), [&](auto* type, const auto& convert) {
    result = store_all<std::remove_pointer_t<decltype(type)>>(what, elements, tensor, convert);
  });
  return result;
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

// ---- the request document -------------------------------------------------------------------

// The binary data after a request's JSON (the binary tensor data extension).
struct BinarySection {
  std::string_view bytes;
  bool present = false;  // the Inference-Header-Content-Length header was given
  size_t used = 0;       // bytes taken by the inputs decoded so far
  // Keeps `bytes` alive (null: the caller's bytes, copied). Inputs of a fixed-size datatype
  // other than BOOL whose bytes are aligned for it are then views of them, not copies.
  const std::shared_ptr<void>* owner = nullptr;
};

// Decodes one entry of "inputs"; `binary->used` advances past the bytes it takes.
std::optional<ProtocolError> decode_input(element entry_json, BinarySection* binary, const RequestLimits& limits,
                                          SplitDecode* split, InferTensor* out) {
  object entry;
  if (entry_json.get_object().get(entry) != simdjson::SUCCESS) return bad_request("each entry of 'inputs' must be an object");
  std::optional<std::string_view> name = string_of(member(entry, "name"));
  if (!name) return bad_request("an input has no string 'name'");
  out->name = std::string(*name);
  const std::string what = "input " + in_quotes(out->name);

  std::optional<std::string_view> datatype = string_of(member(entry, "datatype"));
  if (!datatype) return bad_request(what + ": 'datatype' must be a string");
  std::optional<DataType> dtype = dtype_from_protocol(*datatype);
  if (!dtype) return bad_request(what + ": unknown datatype " + in_quotes(*datatype));

  std::vector<int64_t> shape;
  if (auto error = read_shape(what, member(entry, "shape"), &shape)) return error;
  size_t bytes = 0;
  if (auto error = check_tensor_shape(what, *dtype, shape, limits, &bytes)) return error;

  std::optional<element> binary_size;
  if (std::optional<element> parameters_json = member(entry, "parameters")) {
    object parameters;
    if (parameters_json->get_object().get(parameters) != simdjson::SUCCESS)
      return bad_request(what + ": 'parameters' must be an object");
    binary_size = member(parameters, "binary_data_size");
  }
  std::optional<element> data = member(entry, "data");
  if (!binary_size) {
    if (!data) return bad_request(what + ": neither 'data' nor parameters.binary_data_size is given");
    out->tensor = Tensor(*dtype, shape);  // bounded: check_tensor_shape() capped its size
    return decode_json_data(what, *data, split, &out->tensor);
  }

  if (data) return bad_request(what + ": both 'data' and parameters.binary_data_size are given");
  if (!binary->present)
    return bad_request(what + ": binary_data_size needs the Inference-Header-Content-Length header");
  std::optional<uint64_t> size = non_negative_integer(*binary_size);
  if (!size) return bad_request(what + ": parameters.binary_data_size must be a non-negative integer");
  const size_t left = binary->bytes.size() - binary->used;
  if (*size > left)
    return bad_request(what + ": binary_data_size " + std::to_string(*size) + " exceeds the " + std::to_string(left) +
                       " bytes of binary data left");
  std::string_view bytes_in = binary->bytes.substr(binary->used, static_cast<size_t>(*size));
  binary->used += static_cast<size_t>(*size);
  if (*dtype == DataType::string) {
    out->tensor = Tensor(*dtype, shape);
    return decode_binary_strings(what, bytes_in, &out->tensor);
  }
  if (*size != bytes)
    return bad_request(what + ": expected " + std::to_string(bytes) + " bytes for shape " + shape_to_string(shape) +
                       ", got " + std::to_string(*size));
  if (binary->owner && *binary->owner && bytes > 0 && *dtype != DataType::boolean &&
      reinterpret_cast<uintptr_t>(bytes_in.data()) % dtype_size(*dtype) == 0) {
    // The tensor shares the body's owner, which keeps the bytes alive while anything reads them.
    out->tensor =
        Tensor::adopt(*dtype, shape, std::shared_ptr<void>(*binary->owner, const_cast<char*>(bytes_in.data())));
    return std::nullopt;
  }
  out->tensor = Tensor::uninitialized(*dtype, shape);  // every byte is copied in
  if (bytes) std::memcpy(out->tensor.raw_data(), bytes_in.data(), bytes);
  return std::nullopt;
}

std::optional<ProtocolError> decode_outputs(element outputs_json, bool binary_default, const RequestLimits& limits,
                                            std::vector<RequestedOutput>* out) {
  array outputs;
  if (outputs_json.get_array().get(outputs) != simdjson::SUCCESS) return bad_request("'outputs' must be an array");
  if (outputs.size() > limits.max_tensors)
    return too_large(std::to_string(outputs.size()) + " outputs requested, the limit is " + std::to_string(limits.max_tensors));
  std::set<std::string> seen;
  for (element entry_json : outputs) {
    object entry;
    if (entry_json.get_object().get(entry) != simdjson::SUCCESS) return bad_request("each entry of 'outputs' must be an object");
    std::optional<std::string_view> name = string_of(member(entry, "name"));
    if (!name) return bad_request("a requested output has no string 'name'");
    RequestedOutput requested{std::string(*name), binary_default};
    if (!seen.insert(requested.name).second) return bad_request("output " + in_quotes(requested.name) + " requested twice");
    if (std::optional<element> parameters_json = member(entry, "parameters")) {
      object parameters;
      if (parameters_json->get_object().get(parameters) != simdjson::SUCCESS)
        return bad_request("output " + in_quotes(requested.name) + ": 'parameters' must be an object");
      if (std::optional<element> binary = member(parameters, "binary_data")) {
        if (binary->get_bool().get(requested.binary) != simdjson::SUCCESS)
          return bad_request("output " + in_quotes(requested.name) + ": parameters.binary_data must be true or false");
      }
    }
    out->push_back(std::move(requested));
  }
  return std::nullopt;
}

std::optional<ProtocolError> decode_request_parameters(element parameters_json, InferRequest* out) {
  object parameters;
  if (parameters_json.get_object().get(parameters) != simdjson::SUCCESS) return bad_request("'parameters' must be an object");
  if (std::optional<element> binary = member(parameters, "binary_data_output")) {
    if (binary->get_bool().get(out->binary_outputs) != simdjson::SUCCESS)
      return bad_request("parameters.binary_data_output must be true or false");
  }
  if (std::optional<element> timeout = member(parameters, "timeout")) {
    double microseconds = 0;
    if (to_double(*timeout, &microseconds) != ElementFault::none || !(microseconds >= 0))
      return bad_request("parameters.timeout must be a non-negative number of microseconds");
    out->timeout_ms = microseconds / 1000.0;
  }
  return std::nullopt;
}

std::optional<ProtocolError> decode_document(element root, BinarySection binary, const RequestLimits& limits,
                                             SplitDecode* split, InferRequest* out) {
  object doc;
  if (root.get_object().get(doc) != simdjson::SUCCESS) return bad_request("the request must be a JSON object");
  if (std::optional<element> id_json = member(doc, "id")) {
    std::optional<std::string_view> id = string_of(id_json);
    if (!id) return bad_request("'id' must be a string");
    out->id = std::string(*id);
  }
  if (std::optional<element> parameters = member(doc, "parameters"))
    if (auto error = decode_request_parameters(*parameters, out)) return error;

  std::optional<element> inputs_json = member(doc, "inputs");
  array inputs;
  if (!inputs_json || inputs_json->get_array().get(inputs) != simdjson::SUCCESS)
    return bad_request("'inputs' must be an array");
  if (inputs.size() > limits.max_tensors)
    return too_large(std::to_string(inputs.size()) + " inputs, the limit is " + std::to_string(limits.max_tensors));
  std::set<std::string> names;
  for (element entry : inputs) {
    InferTensor input;
    if (auto error = decode_input(entry, &binary, limits, split, &input)) return error;
    if (!names.insert(input.name).second) return bad_request("input " + in_quotes(input.name) + " given twice");
    out->inputs.push_back(std::move(input));
  }
  if (binary.used != binary.bytes.size())
    return bad_request(std::to_string(binary.bytes.size()) +
                       " bytes of binary data follow the JSON, the inputs declare " + std::to_string(binary.used));
  if (std::optional<element> outputs = member(doc, "outputs"))
    if (auto error = decode_outputs(*outputs, out->binary_outputs, limits, &out->outputs)) return error;
  return std::nullopt;
}

std::optional<ProtocolError> parse_and_decode(std::string_view json_text, const BinarySection& binary,
                                              const RequestLimits& limits, const JsonSplitOptions* split_options,
                                              JsonScratch* scratch, InferRequest* out) {
  if (split_options) {
    SplitDecode split{json_text, split_options, find_split_spans(json_text, *split_options), {}};
    if (!split.spans.empty()) {
      split.taken.assign(split.spans.size(), false);
      element root;
      InferRequest attempt;
      if (!parse_json(json_text, split.spans, scratch, &root) &&
          !decode_document(root, binary, limits, &split, &attempt) &&
          std::find(split.taken.begin(), split.taken.end(), false) == split.taken.end()) {
        attempt.model = std::move(out->model);
        attempt.version = std::move(out->version);
        *out = std::move(attempt);
        return std::nullopt;
      }
    }
  }
  element root;
  if (auto error = parse_json(json_text, {}, scratch, &root)) return error;
  return decode_document(root, binary, limits, nullptr, out);
}

}  // namespace

std::optional<ProtocolError> decode_rest_infer_request(std::string_view body,
                                                       std::optional<std::string_view> header_length,
                                                       const RequestLimits& limits, InferRequest* out,
                                                       const JsonSplitOptions* split,
                                                       const std::shared_ptr<void>& body_owner) {
  if (body.size() > limits.max_body_bytes)
    return too_large("request body of " + std::to_string(body.size()) + " bytes exceeds the limit of " +
                     std::to_string(limits.max_body_bytes));
  size_t json_length = body.size();
  if (header_length)
    if (auto error = parse_header_length(*header_length, body.size(), &json_length)) return error;
  JsonScratch& scratch = thread_json_scratch();
  std::optional<ProtocolError> result;
  try {
    const BinarySection binary{.bytes = body.substr(json_length),
                               .present = header_length.has_value(),
                               .owner = body_owner ? &body_owner : nullptr};
    result = parse_and_decode(body.substr(0, json_length), binary, limits, split, &scratch, out);
  } catch (const std::exception& e) {
    result = bad_request(one_line(std::string("cannot decode the request: ") + e.what()));
  }
  release_oversized(&scratch);
  // Messages quote the client's names, which JSON escapes can fill with control characters.
  if (result) result->message = one_line(std::move(result->message));
  return result;
}

}  // namespace tandem::server
