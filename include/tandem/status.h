// tandem/status.h: the error discipline of the whole library.
//
// Library code never throws across an API boundary, never aborts and never exits. Every
// fallible call returns a Status (or a Result<T>, which is a value or a Status). Messages are
// one line and name the op and node they concern, e.g. "[Conv 'stem.0'] weight has 3 dims,
// expected 4".
//
// Codes split into two groups the engine treats differently:
//   - `unsupported` means "this backend cannot run this"; callers fall back, it is not a fault.
//   - `device_error`, `timeout`, `out_of_memory` and `parity_violation` are faults of a backend.
// Thread-safety: Status and Result are plain values; copies are independent.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace tandem {

enum class StatusCode {
  ok = 0,
  invalid_argument,  // the caller passed something wrong (shape, dtype, name, option)
  invalid_model,     // the model file or graph is malformed
  unsupported,       // a backend cannot run this op/dtype; fall back, not a fault
  device_error,      // a backend failed while running
  timeout,           // a deadline passed
  out_of_memory,
  parity_violation,  // outputs drifted from the reference beyond the budget
  cancelled,         // the caller cancelled the request
  unavailable,       // no backend may serve (e.g. breaker open in strict mode)
  internal,          // a bug in tandem
};

// Stable lowercase name of a code, e.g. "invalid_model".
std::string_view status_code_name(StatusCode code);

// `text` on one printable line: control bytes (a newline in a string a model or a client
// supplied, say) become \xNN. Status does this to every message, so that a message stays one
// line whatever text it quotes.
std::string one_line(std::string_view text);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(one_line_message(std::move(message))) {}

  static Status ok() { return {}; }
  bool is_ok() const { return code_ == StatusCode::ok; }
  explicit operator bool() const { return is_ok(); }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }
  // "invalid_model: [Conv 'stem.0'] weight has 3 dims, expected 4"
  std::string to_string() const;
  // Returns a copy whose message is "<prefix><message>".
  Status with_prefix(std::string_view prefix) const;

 private:
  static std::string one_line_message(std::string message);  // `message`, or one_line(message)

  StatusCode code_ = StatusCode::ok;
  std::string message_;
};

inline Status invalid_argument(std::string m) { return {StatusCode::invalid_argument, std::move(m)}; }
inline Status invalid_model(std::string m) { return {StatusCode::invalid_model, std::move(m)}; }
inline Status unsupported(std::string m) { return {StatusCode::unsupported, std::move(m)}; }
inline Status internal_error(std::string m) { return {StatusCode::internal, std::move(m)}; }

// A value of type T, or the Status explaining why there is none.
template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}                 // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}          // NOLINT: must not be ok
  bool is_ok() const { return v_.index() == 0; }
  explicit operator bool() const { return is_ok(); }
  T& value() & { return std::get<0>(v_); }
  const T& value() const& { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  T* operator->() { return &std::get<0>(v_); }
  const T* operator->() const { return &std::get<0>(v_); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  Status status() const { return is_ok() ? Status::ok() : std::get<1>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace tandem

#define TANDEM_CONCAT_INNER(a, b) a##b
#define TANDEM_CONCAT(a, b) TANDEM_CONCAT_INNER(a, b)

// Returns the Status from the enclosing function when `expr` is not ok.
#define TANDEM_RETURN_IF_ERROR(expr)                 \
  do {                                               \
    ::tandem::Status tandem_status_ = (expr);        \
    if (!tandem_status_.is_ok()) return tandem_status_; \
  } while (0)

// `TANDEM_ASSIGN_OR_RETURN(auto x, make_x());` binds the value or returns the Status.
#define TANDEM_ASSIGN_OR_RETURN(lhs, expr) \
  TANDEM_ASSIGN_OR_RETURN_IMPL(TANDEM_CONCAT(tandem_result_, __LINE__), lhs, expr)
#define TANDEM_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.is_ok()) return tmp.status();             \
  lhs = std::move(tmp).value()
