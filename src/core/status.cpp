#include "tandem/status.h"

namespace tandem {

std::string_view status_code_name(StatusCode code) {
  switch (code) {
    case StatusCode::ok: return "ok";
    case StatusCode::invalid_argument: return "invalid_argument";
    case StatusCode::invalid_model: return "invalid_model";
    case StatusCode::unsupported: return "unsupported";
    case StatusCode::device_error: return "device_error";
    case StatusCode::timeout: return "timeout";
    case StatusCode::out_of_memory: return "out_of_memory";
    case StatusCode::parity_violation: return "parity_violation";
    case StatusCode::cancelled: return "cancelled";
    case StatusCode::unavailable: return "unavailable";
    case StatusCode::internal: return "internal";
  }
  return "unknown";
}

std::string one_line(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (unsigned char c : text) {
    if (c < 0x20 || c == 0x7f) {
      static const char* hex = "0123456789abcdef";
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string Status::one_line_message(std::string message) {
  for (unsigned char c : message)
    if (c < 0x20 || c == 0x7f) return one_line(message);
  return message;
}

std::string Status::to_string() const {
  if (is_ok()) return "ok";
  return std::string(status_code_name(code_)) + ": " + message_;
}

Status Status::with_prefix(std::string_view prefix) const {
  if (is_ok()) return *this;
  return {code_, std::string(prefix) + message_};  // the constructor keeps it one line
}

}  // namespace tandem
