#include "cli_util.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>
#include <type_traits>

#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

// Calls f(p, n) with `t`'s elements as a typed pointer; false for dtypes without a numeric
// value (strings, complex, undefined).
template <class F>
bool with_numeric_elements(const Tensor& t, F&& f) {
  switch (t.dtype()) {
    case DataType::float32: f(t.data<float>()); return true;
    case DataType::float64: f(t.data<double>()); return true;
    case DataType::float16: f(t.data<Float16>()); return true;
    case DataType::bfloat16: f(t.data<BFloat16>()); return true;
    case DataType::int8: f(t.data<int8_t>()); return true;
    case DataType::int16: f(t.data<int16_t>()); return true;
    case DataType::int32: f(t.data<int32_t>()); return true;
    case DataType::int64: f(t.data<int64_t>()); return true;
    case DataType::uint8: f(t.data<uint8_t>()); return true;
    case DataType::uint16: f(t.data<uint16_t>()); return true;
    case DataType::uint32: f(t.data<uint32_t>()); return true;
    case DataType::uint64: f(t.data<uint64_t>()); return true;
    case DataType::boolean: f(t.data<bool>()); return true;
    default: return false;
  }
}

template <class T>
double as_double(T v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<double>(v);
}

}  // namespace

int fail(const std::string& command, const std::string& message, int code) {
  std::fprintf(stderr, "tandem %s: %s\n", command.c_str(), message.c_str());
  return code;
}

Result<std::map<std::string, std::string>> parse_assignments(const std::vector<std::string>& items,
                                                             const std::string& option) {
  std::map<std::string, std::string> out;
  for (const std::string& item : items) {
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0)
      return invalid_argument(option + " expects NAME=VALUE, got '" + item + "'");
    const std::string name = item.substr(0, eq);
    if (out.count(name)) return invalid_argument(option + " names '" + name + "' twice");
    out[name] = item.substr(eq + 1);
  }
  return out;
}

Result<std::map<std::string, Shape>> parse_shapes(const std::vector<std::string>& items) {
  TANDEM_ASSIGN_OR_RETURN(auto text, parse_assignments(items, "--shape"));
  std::map<std::string, Shape> shapes;
  for (const auto& [name, dims] : text) {
    auto s = parse_dims(dims);
    if (!s) return s.status().with_prefix("--shape " + name + ": ");
    shapes[name] = *s;
  }
  return shapes;
}

Result<Shape> concrete_shape(const IoInfo& in, const Shape* override_shape) {
  if (override_shape) {
    if (in.has_shape && in.dims.size() != override_shape->size())
      return invalid_argument("--shape for input '" + in.name + "' has rank " + std::to_string(override_shape->size()) +
                              ", but the model declares " + in.type);
    if (in.has_shape)
      for (size_t d = 0; d < in.dims.size(); ++d)
        if (in.dims[d].value >= 0 && in.dims[d].value != (*override_shape)[d])
          return invalid_argument("--shape for input '" + in.name + "' sets dim " + std::to_string(d) + " to " +
                                  std::to_string((*override_shape)[d]) + ", but the model fixes it at " +
                                  std::to_string(in.dims[d].value));
    return *override_shape;
  }
  if (!in.has_shape) return invalid_argument("input '" + in.name + "' has no declared shape; pass --shape " + in.name + "=DIMS");
  Shape s;
  for (const IoDim& d : in.dims) {
    if (d.value < 0)
      return invalid_argument("input '" + in.name + "' has a " + (d.symbol.empty() ? "dynamic" : "symbolic '" + d.symbol + "'") +
                              " dim (" + in.type + "); pass --shape " + in.name + "=DIMS");
    s.push_back(d.value);
  }
  return s;
}

std::string sanitize_file_name(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
                    c == '_' || c == '-';
    if (!ok) c = '_';
  }
  if (out.empty() || out == "." || out == "..") out = "_" + out;
  return out;
}

std::string summarize(const Tensor& t) {
  std::ostringstream os;
  os.precision(6);
  if (t.dtype() == DataType::string) {
    os << "[";
    for (int64_t i = 0; i < std::min<int64_t>(t.numel(), 3); ++i) os << (i ? ", " : "") << '"' << t.data<std::string>()[i] << '"';
    os << (t.numel() > 3 ? ", ...]" : "]");
    return os.str();
  }
  if (t.numel() == 0) return "(empty)";
  double lo = std::numeric_limits<double>::infinity(), hi = -lo, sum = 0;
  int64_t nans = 0;
  const bool known = with_numeric_elements(t, [&](const auto* p) {
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double v = as_double(p[i]);
      if (std::isnan(v)) {
        ++nans;
        continue;
      }
      lo = std::min(lo, v);
      hi = std::max(hi, v);
      sum += v;
    }
  });
  if (!known) return "(no summary for " + std::string(dtype_name(t.dtype())) + ")";
  const int64_t counted = t.numel() - nans;
  os << "min " << lo << " max " << hi << " mean " << (counted ? sum / static_cast<double>(counted) : NAN);
  if (nans) os << " nan " << nans;
  return os.str();
}

}  // namespace tandem::cli
