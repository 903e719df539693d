// rest_codec.cpp: the REST response and error encoding of rest_codec.h (tensor data written as
// text directly, the rest through nlohmann::json).
// Requests are decoded in rest_request_decode.cpp.
#include "rest_codec.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace tandem::server {

namespace {

using nlohmann::json;

// ---- response bodies -----------------------------------------------------------------------

// A tensor's elements are written straight into the body as text (no JSON value per element):
// integers and booleans as themselves, floats (FP16, BF16 and FP32 widened to double) as the
// shortest decimal that reads back to the same double, with ".0" when that has neither a point
// nor an exponent (so a JSON reader still sees a float), and NaN and infinities as null.
// Tensors of at least kMinPieceElements elements per piece are written in pieces on the
// helpers, each into its own string, joined in order.
constexpr int64_t kMinPieceElements = 8192;

// Room for one element's text: a double's shortest form is at most 24 characters.
constexpr size_t kMaxNumberChars = 32;

void append_number(double v, std::string* out) {
  if (!std::isfinite(v)) {
    out->append("null");
    return;
  }
  char text[kMaxNumberChars];
  char* end = std::to_chars(text, text + sizeof text, v).ptr;
  const bool integral = std::find_if(text, end, [](char c) { return c == '.' || c == 'e'; }) == end;
  out->append(text, end);
  if (integral) out->append(".0");
}

template <class T>
void append_element(const T& v, std::string* out) {
  if constexpr (std::is_same_v<T, bool>) {
    out->append(v ? "true" : "false");
  } else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16> || std::is_same_v<T, float>) {
    append_number(static_cast<double>(static_cast<float>(v)), out);
  } else if constexpr (std::is_same_v<T, double>) {
    append_number(v, out);
  } else if constexpr (std::is_same_v<T, std::string>) {
    out->append(json(v).dump(-1, ' ', false, json::error_handler_t::replace));
  } else {
    char text[kMaxNumberChars];
    out->append(text, std::to_chars(text, text + sizeof text, v).ptr);
  }
}

// Elements [begin, end) of `p`, comma-separated.
template <class T>
void append_range(const T* p, int64_t begin, int64_t end, std::string* out) {
  for (int64_t i = begin; i < end; ++i) {
    if (i > begin) out->push_back(',');
    append_element(p[i], out);
  }
}

// Characters to reserve per element: enough for most (a 17-digit double and its comma take 21),
// so that the body grows once.
template <class T>
constexpr size_t reserved_chars() {
  return std::is_floating_point_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16> ? 22 : 12;
}

template <class T>
void append_elements(const Tensor& t, SideTasks* helpers, std::string* out) {
  const T* p = t.data<T>();
  const int64_t n = t.numel();
  const int64_t max_pieces = helpers ? helpers->threads() + 1 : 1;
  const int64_t pieces = std::is_same_v<T, std::string> ? 1 : std::min<int64_t>(max_pieces, n / kMinPieceElements);
  out->push_back('[');
  out->reserve(out->size() + static_cast<size_t>(n) * reserved_chars<T>() + 2);
  if (pieces <= 1) {
    append_range(p, 0, n, out);
  } else {
    // The first piece is written into the body itself, the others into their own strings.
    std::vector<std::string> later(static_cast<size_t>(pieces - 1));
    helpers->run(static_cast<size_t>(pieces), [&](size_t i) {
      const int64_t begin = n * static_cast<int64_t>(i) / pieces, end = n * static_cast<int64_t>(i + 1) / pieces;
      std::string* text = i == 0 ? out : &later[i - 1];
      if (i > 0) text->reserve(static_cast<size_t>(end - begin) * reserved_chars<T>());
      append_range(p, begin, end, text);
    });
    for (const std::string& text : later) {
      out->push_back(',');
      out->append(text);
    }
  }
  out->push_back(']');
}

void append_data(const Tensor& t, SideTasks* helpers, std::string* out) {
  const bool known = visit_protocol_dtype(
      t.dtype(), [&](auto* type) { append_elements<std::remove_pointer_t<decltype(type)>>(t, helpers, out); });
  if (!known) out->append("[]");
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

// `"key":` then `value` as JSON (strings escaped, invalid UTF-8 replaced).
void append_member(std::string_view key, const json& value, std::string* out) {
  out->push_back('"');
  out->append(key);
  out->append("\":");
  out->append(dump(value));
}

}  // namespace

// Keys in the order nlohmann::json writes them (sorted), as this encoder did when it built the
// whole document as a json value.
RestBody encode_rest_infer_response(const InferResponse& response, SideTasks* helpers) {
  std::string body = "{";
  if (!response.id.empty()) {
    append_member("id", response.id, &body);
    body.push_back(',');
  }
  append_member("model_name", response.model, &body);
  if (!response.version.empty()) {
    body.push_back(',');
    append_member("model_version", response.version, &body);
  }
  body.append(",\"outputs\":[");
  std::string binary;
  for (size_t i = 0; i < response.outputs.size(); ++i) {
    const InferTensor& output = response.outputs[i];
    if (i) body.push_back(',');
    body.push_back('{');
    if (!output.binary) {
      body.append("\"data\":");
      append_data(output.tensor, helpers, &body);
      body.push_back(',');
    }
    append_member("datatype", std::string(protocol_dtype_name(output.tensor.dtype())), &body);
    body.push_back(',');
    append_member("name", output.name, &body);
    if (output.binary) {
      const size_t before = binary.size();
      append_binary(output.tensor, &binary);
      body.push_back(',');
      append_member("parameters", json{{"binary_data_size", binary.size() - before}}, &body);
    }
    body.push_back(',');
    append_member("shape", output.tensor.shape(), &body);
    body.push_back('}');
  }
  body.append("]}");
  RestBody result;
  result.body = std::move(body);
  if (!binary.empty() || std::any_of(response.outputs.begin(), response.outputs.end(),
                                     [](const InferTensor& o) { return o.binary; })) {
    result.header_length = result.body.size();
    result.body += binary;
  }
  return result;
}

std::string encode_rest_error(const ProtocolError& error) { return dump(json{{"error", one_line(error.message)}}); }

}  // namespace tandem::server
