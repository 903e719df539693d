// grpc_codec.cpp: see grpc_codec.h.
#include "grpc_codec.h"

#include <cstdint>
#include <cstring>
#include <memory>
#include <set>
#include <utility>

namespace tandem::server {

namespace {

using inference::InferTensorContents;
using inference::ModelInferRequest;

// A client's text (a name, a datatype) in a message: quoted, control bytes written as \xNN so
// that the message stays one line, and cut after 64 bytes.
std::string quoted(std::string_view text) {
  constexpr size_t kShown = 64;
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c == 0x7f) {
      const char hex[] = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + (text.size() > kShown ? "'..." : "'");
}

// How many elements the typed `contents` carry over all of their fields.
size_t contents_element_count(const InferTensorContents& c) {
  return static_cast<size_t>(c.bool_contents_size()) + c.int_contents_size() + c.int64_contents_size() +
         c.uint_contents_size() + c.uint64_contents_size() + c.fp32_contents_size() + c.fp64_contents_size() +
         c.bytes_contents_size();
}

// Raw little-endian elements of a fixed-size dtype: exactly `bytes` of them. The tensor takes
// the message's bytes over (moved out of `raw`, shared with the tensor) when they suit the
// dtype as they are: anything but BOOL (its bytes become bool values), at an address aligned
// for the element type (heap strings always are; a short string held inline may not be).
std::optional<ProtocolError> decode_raw_fixed(const std::string& what, std::string* raw, size_t bytes, DataType dtype,
                                              const Shape& shape, Tensor* tensor) {
  if (raw->size() != bytes)  // before allocating
    return bad_request(what + ": expected " + std::to_string(bytes) + " bytes, got " + std::to_string(raw->size()));
  if (dtype != DataType::boolean && bytes > 0) {
    auto owner = std::make_shared<std::string>(std::move(*raw));
    void* data = owner->data();
    if (reinterpret_cast<uintptr_t>(data) % dtype_size(dtype) == 0) {
      *tensor = Tensor::adopt(dtype, shape, std::shared_ptr<void>(std::move(owner), data));
      return std::nullopt;
    }
    *raw = std::move(*owner);  // misaligned: copied below instead
  }
  *tensor = Tensor::uninitialized(dtype, shape);  // every byte is written below
  if (tensor->dtype() == DataType::boolean) {
    bool* out = tensor->data<bool>();
    for (size_t i = 0; i < raw->size(); ++i) out[i] = (*raw)[i] != 0;
  } else if (bytes > 0) {
    std::memcpy(tensor->raw_data(), raw->data(), bytes);
  }
  return std::nullopt;
}

// Raw BYTES elements: each a 4-byte little-endian length, then that many bytes.
std::optional<ProtocolError> decode_raw_strings(const std::string& what, const std::string& raw, size_t count,
                                                const Shape& shape, Tensor* tensor) {
  // Every element takes at least its 4-byte prefix: checked before allocating `count` strings.
  if (count > raw.size() / 4)
    return bad_request(what + ": " + std::to_string(count) + " BYTES elements need at least " +
                       std::to_string(count) + " length prefixes, got " + std::to_string(raw.size()) + " bytes");
  *tensor = Tensor(DataType::string, shape);
  std::string* out = tensor->data<std::string>();
  size_t pos = 0;
  for (size_t i = 0; i < count; ++i) {
    if (raw.size() - pos < 4) return bad_request(what + ": BYTES element " + std::to_string(i) + " has no length prefix");
    const auto* p = reinterpret_cast<const unsigned char*>(raw.data() + pos);
    const uint32_t length = p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<uint32_t>(p[3]) << 24);
    pos += 4;
    if (length > raw.size() - pos)
      return bad_request(what + ": BYTES element " + std::to_string(i) + " declares " + std::to_string(length) +
                         " bytes, " + std::to_string(raw.size() - pos) + " remain");
    out[i].assign(raw.data() + pos, length);
    pos += length;
  }
  if (pos != raw.size())
    return bad_request(what + ": " + std::to_string(raw.size() - pos) + " bytes left after " + std::to_string(count) +
                       " BYTES elements");
  return std::nullopt;
}

// Copies typed values into the tensor's elements, each checked to fit the element type
// (8- and 16-bit integers arrive widened).
template <class Element, class Field>
std::optional<ProtocolError> copy_checked(const std::string& what, const Field& values, Tensor* tensor) {
  Element* out = tensor->data<Element>();
  for (int i = 0; i < values.size(); ++i) {
    const auto v = values.Get(i);
    if (!std::in_range<Element>(v))
      return bad_request(what + ": element " + std::to_string(i) + " (" + std::to_string(v) + ") does not fit " +
                         std::string(protocol_dtype_name(tensor->dtype())));
    out[i] = static_cast<Element>(v);
  }
  return std::nullopt;
}

// The typed `contents`: the field of the tensor's datatype, holding exactly `count` elements.
std::optional<ProtocolError> decode_typed(const std::string& what, const InferTensorContents& c, DataType dtype,
                                          size_t count, const Shape& shape, Tensor* tensor) {
  const std::string dtype_name(protocol_dtype_name(dtype));
  if (dtype == DataType::float16 || dtype == DataType::bfloat16)
    return bad_request(what + ": " + dtype_name + " data must come in raw_input_contents");
  int field_size = 0;
  const char* field = "";
  switch (dtype) {
    case DataType::boolean: field_size = c.bool_contents_size(); field = "bool_contents"; break;
    case DataType::int8: case DataType::int16: case DataType::int32:
      field_size = c.int_contents_size(); field = "int_contents"; break;
    case DataType::uint8: case DataType::uint16: case DataType::uint32:
      field_size = c.uint_contents_size(); field = "uint_contents"; break;
    case DataType::int64: field_size = c.int64_contents_size(); field = "int64_contents"; break;
    case DataType::uint64: field_size = c.uint64_contents_size(); field = "uint64_contents"; break;
    case DataType::float32: field_size = c.fp32_contents_size(); field = "fp32_contents"; break;
    case DataType::float64: field_size = c.fp64_contents_size(); field = "fp64_contents"; break;
    case DataType::string: field_size = c.bytes_contents_size(); field = "bytes_contents"; break;
    default: return bad_request(what + ": datatype " + dtype_name + " has no typed contents");
  }
  if (static_cast<size_t>(field_size) != count || contents_element_count(c) != count)
    return bad_request(what + ": expected " + std::to_string(count) + " elements in contents." + field + ", got " +
                       std::to_string(field_size) + " there and " +
                       std::to_string(contents_element_count(c) - static_cast<size_t>(field_size)) + " in other fields");
  *tensor = Tensor(dtype, shape);
  switch (dtype) {
    case DataType::boolean:
      for (size_t i = 0; i < count; ++i) tensor->data<bool>()[i] = c.bool_contents(static_cast<int>(i));
      return std::nullopt;
    case DataType::int8: return copy_checked<int8_t>(what, c.int_contents(), tensor);
    case DataType::int16: return copy_checked<int16_t>(what, c.int_contents(), tensor);
    case DataType::int32: return copy_checked<int32_t>(what, c.int_contents(), tensor);
    case DataType::uint8: return copy_checked<uint8_t>(what, c.uint_contents(), tensor);
    case DataType::uint16: return copy_checked<uint16_t>(what, c.uint_contents(), tensor);
    case DataType::uint32: return copy_checked<uint32_t>(what, c.uint_contents(), tensor);
    case DataType::int64: return copy_checked<int64_t>(what, c.int64_contents(), tensor);
    case DataType::uint64: return copy_checked<uint64_t>(what, c.uint64_contents(), tensor);
    case DataType::float32:
      if (count) std::memcpy(tensor->raw_data(), c.fp32_contents().data(), count * sizeof(float));
      return std::nullopt;
    case DataType::float64:
      if (count) std::memcpy(tensor->raw_data(), c.fp64_contents().data(), count * sizeof(double));
      return std::nullopt;
    default:  // string
      for (size_t i = 0; i < count; ++i) tensor->data<std::string>()[i] = c.bytes_contents(static_cast<int>(i));
      return std::nullopt;
  }
}

std::optional<ProtocolError> decode_input(ModelInferRequest& in, int index, const RequestLimits& limits,
                                          InferTensor* out) {
  const ModelInferRequest::InferInputTensor& input = in.inputs(index);
  if (input.name().empty()) return bad_request("input " + std::to_string(index) + ": name is empty");
  const std::string what = "input " + quoted(input.name());
  const std::optional<DataType> dtype = dtype_from_protocol(input.datatype());
  if (!dtype) return bad_request(what + ": unknown datatype " + quoted(input.datatype()));
  const Shape shape(input.shape().begin(), input.shape().end());
  size_t bytes = 0;
  if (auto err = check_tensor_shape(what, *dtype, shape, limits, &bytes)) return err;
  // check_tensor_shape bounded the element count, so the product cannot overflow.
  size_t count = 1;
  for (int64_t d : shape) count *= static_cast<size_t>(d);

  out->name = input.name();
  if (in.raw_input_contents_size() == 0)
    return decode_typed(what, input.contents(), *dtype, count, shape, &out->tensor);
  if (contents_element_count(input.contents()) != 0)
    return bad_request(what + ": has both contents and raw_input_contents");
  std::string* raw = in.mutable_raw_input_contents(index);
  if (*dtype == DataType::string) return decode_raw_strings(what, *raw, count, shape, &out->tensor);
  return decode_raw_fixed(what, raw, bytes, *dtype, shape, &out->tensor);
}

// parameters.timeout: microseconds as an integer (int64 or uint64), or a double.
std::optional<ProtocolError> decode_timeout(const ModelInferRequest& in, InferRequest* out) {
  const auto found = in.parameters().find("timeout");
  if (found == in.parameters().end()) return std::nullopt;
  const inference::InferParameter& p = found->second;
  double us = 0;
  switch (p.parameter_choice_case()) {
    case inference::InferParameter::kInt64Param: us = static_cast<double>(p.int64_param()); break;
    case inference::InferParameter::kUint64Param: us = static_cast<double>(p.uint64_param()); break;
    case inference::InferParameter::kDoubleParam: us = p.double_param(); break;
    default: return bad_request("parameter 'timeout' must be an integer number of microseconds");
  }
  if (!(us >= 0) || us > 1e15)  // NaN, negative, or beyond ~30 years
    return bad_request("parameter 'timeout' must be between 0 and 1e15 microseconds");
  out->timeout_ms = us / 1000.0;
  return std::nullopt;
}

}  // namespace

std::optional<ProtocolError> decode_grpc_infer_request(ModelInferRequest* message, const RequestLimits& limits,
                                                       InferRequest* out) {
  ModelInferRequest& in = *message;
  *out = InferRequest{};
  if (in.model_name().empty()) return bad_request("model_name is empty");
  out->model = in.model_name();
  out->version = in.model_version();
  out->id = in.id();
  if (static_cast<size_t>(in.inputs_size()) > limits.max_tensors)
    return too_large(std::to_string(in.inputs_size()) + " inputs exceed the limit of " + std::to_string(limits.max_tensors));
  if (static_cast<size_t>(in.outputs_size()) > limits.max_tensors)
    return too_large(std::to_string(in.outputs_size()) + " requested outputs exceed the limit of " +
                     std::to_string(limits.max_tensors));
  if (in.raw_input_contents_size() != 0 && in.raw_input_contents_size() != in.inputs_size())
    return bad_request("raw_input_contents has " + std::to_string(in.raw_input_contents_size()) + " entries for " +
                       std::to_string(in.inputs_size()) + " inputs");
  if (auto err = decode_timeout(in, out)) return err;

  std::set<std::string> names;
  out->inputs.resize(static_cast<size_t>(in.inputs_size()));
  for (int i = 0; i < in.inputs_size(); ++i) {
    if (!names.insert(in.inputs(i).name()).second) return bad_request("input " + quoted(in.inputs(i).name()) + " appears twice");
    if (auto err = decode_input(in, i, limits, &out->inputs[static_cast<size_t>(i)])) return err;
  }
  names.clear();
  for (const auto& requested : in.outputs()) {
    if (requested.name().empty()) return bad_request("a requested output has an empty name");
    if (!names.insert(requested.name()).second) return bad_request("output " + quoted(requested.name()) + " is requested twice");
    out->outputs.push_back(RequestedOutput{requested.name(), false});
  }
  return std::nullopt;
}

void encode_grpc_infer_response(const InferResponse& in, inference::ModelInferResponse* out) {
  out->Clear();
  out->set_model_name(in.model);
  out->set_model_version(in.version);
  out->set_id(in.id);
  if (!in.backend.empty()) (*out->mutable_parameters())["backend"].set_string_param(in.backend);
  (*out->mutable_parameters())["fallback"].set_bool_param(in.fallback);
  for (const InferTensor& output : in.outputs) {
    const Tensor& t = output.tensor;
    auto* meta = out->add_outputs();
    meta->set_name(output.name);
    meta->set_datatype(std::string(protocol_dtype_name(t.dtype())));
    for (int64_t d : t.shape()) meta->add_shape(d);
    std::string* raw = out->add_raw_output_contents();
    if (t.dtype() == DataType::string) {
      for (int64_t i = 0; i < t.numel(); ++i) {
        const std::string& s = t.data<std::string>()[i];
        const auto n = static_cast<uint32_t>(s.size());
        const char prefix[4] = {static_cast<char>(n & 0xff), static_cast<char>((n >> 8) & 0xff),
                                static_cast<char>((n >> 16) & 0xff), static_cast<char>((n >> 24) & 0xff)};
        raw->append(prefix, 4);
        raw->append(s);
      }
    } else if (t.dtype() == DataType::boolean) {
      raw->resize(static_cast<size_t>(t.numel()));
      for (int64_t i = 0; i < t.numel(); ++i) (*raw)[static_cast<size_t>(i)] = t.data<bool>()[i] ? 1 : 0;
    } else if (t.nbytes() > 0) {
      raw->assign(static_cast<const char*>(t.raw_data()), t.nbytes());
    }
  }
}

}  // namespace tandem::server
