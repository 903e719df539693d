// rest_json_elements.h: how one JSON scalar of a REST request's tensor data becomes one element
// of its datatype (rest_codec.h states the rules), shared by the decoder of whole requests
// (rest_request_decode.cpp) and the one of large tensors parsed in pieces (rest_json_split.cpp),
// so that both store the same bits. Internal to the server library.
#pragma once

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <type_traits>

#include <simdjson.h>

#include "protocol.h"

namespace tandem::server::json_elements {

using simdjson::dom::element;
using simdjson::dom::element_type;

inline bool is_number(element e) {
  const element_type type = e.type();
  return type == element_type::INT64 || type == element_type::UINT64 || type == element_type::DOUBLE;
}

// Why one element could not be stored.
enum class ElementFault { none, not_true_or_false, not_an_integer, not_a_number, not_a_string, out_of_range, beyond_shape };

inline ProtocolError element_error(const std::string& what, size_t index, ElementFault fault) {
  const char* why = "is out of range";
  switch (fault) {
    case ElementFault::not_true_or_false: why = "is not true or false"; break;
    case ElementFault::not_an_integer: why = "is not an integer"; break;
    case ElementFault::not_a_number: why = "is not a number"; break;
    case ElementFault::not_a_string: why = "is not a string"; break;
    case ElementFault::beyond_shape: why = "is beyond the shape"; break;
    default: break;
  }
  return bad_request(what + ": element " + std::to_string(index) + " " + why);
}

template <class T>
ElementFault to_integer(element e, T* out) {
  if (e.type() == element_type::INT64) {
    int64_t v = 0;
    if (e.get_int64().get(v) != simdjson::SUCCESS) return ElementFault::not_an_integer;
    if constexpr (std::is_unsigned_v<T>) {
      if (v < 0 || static_cast<uint64_t>(v) > static_cast<uint64_t>(std::numeric_limits<T>::max()))
        return ElementFault::out_of_range;
    } else {
      if (v < static_cast<int64_t>(std::numeric_limits<T>::min()) || v > static_cast<int64_t>(std::numeric_limits<T>::max()))
        return ElementFault::out_of_range;
    }
    *out = static_cast<T>(v);
    return ElementFault::none;
  }
  if (e.type() == element_type::UINT64) {  // above INT64_MAX
    uint64_t v = 0;
    if (e.get_uint64().get(v) != simdjson::SUCCESS) return ElementFault::not_an_integer;
    if (v > static_cast<uint64_t>(std::numeric_limits<T>::max())) return ElementFault::out_of_range;
    *out = static_cast<T>(v);
    return ElementFault::none;
  }
  return ElementFault::not_an_integer;
}

inline ElementFault to_double(element e, double* out) {
  if (!is_number(e) || e.get_double().get(*out) != simdjson::SUCCESS) return ElementFault::not_a_number;
  return ElementFault::none;
}

// Parsed as a double (exact), then rounded once to float: FP32 printed as the shortest decimal
// comes back bit-exact.
inline ElementFault to_float(element e, float* out) {
  double v = 0;
  if (ElementFault fault = to_double(e, &v); fault != ElementFault::none) return fault;
  if (!(std::fabs(v) <= FLT_MAX)) return ElementFault::out_of_range;
  *out = static_cast<float>(v);
  return ElementFault::none;
}

template <class Half>
ElementFault to_half(element e, Half* out) {
  float f = 0;
  if (ElementFault fault = to_float(e, &f); fault != ElementFault::none) return fault;
  Half h(f);
  if (std::isinf(static_cast<float>(h))) return ElementFault::out_of_range;
  *out = h;
  return ElementFault::none;
}

inline ElementFault to_bool(element e, bool* out) {
  if (e.type() != element_type::BOOL || e.get_bool().get(*out) != simdjson::SUCCESS) return ElementFault::not_true_or_false;
  return ElementFault::none;
}

inline ElementFault to_string(element e, std::string* out) {
  std::string_view text;
  if (e.get_string().get(text) != simdjson::SUCCESS) return ElementFault::not_a_string;
  out->assign(text);
  return ElementFault::none;
}

// The conversion of one JSON scalar to T, the element type of a protocol datatype.
template <class T>
ElementFault convert_element(element e, T* out) {
  if constexpr (std::is_same_v<T, bool>)
    return to_bool(e, out);
  else if constexpr (std::is_same_v<T, std::string>)
    return to_string(e, out);
  else if constexpr (std::is_same_v<T, float>)
    return to_float(e, out);
  else if constexpr (std::is_same_v<T, double>)
    return to_double(e, out);
  else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>)
    return to_half(e, out);
  else
    return to_integer(e, out);
}

// Calls visit(static_cast<T*>(nullptr), convert) with the element type T that `dtype` is stored
// as and the function converting one JSON scalar to it; false (and no call) for a datatype
// without a JSON form.
template <class Visit>
bool visit_element_converter(DataType dtype, const Visit& visit) {
  return visit_protocol_dtype(dtype,
                              [&](auto* type) { visit(type, convert_element<std::remove_pointer_t<decltype(type)>>); });
}

}  // namespace tandem::server::json_elements
