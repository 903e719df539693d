#include "cli/cli_util.h"

#include <cmath>
#include <cstdio>
#include <limits>
#include <sstream>

#include "core/npy.h"
#include "core/tensor_util.h"
#include "engine/inputs.h"
#include "onnx/loader.h"

namespace tandem::cli {

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

Result<Tensor> read_tensor_file(const std::string& path) {
  auto ends_with = [&](const char* ext) {
    const std::string e(ext);
    return path.size() >= e.size() && path.compare(path.size() - e.size(), e.size(), e) == 0;
  };
  if (ends_with(".npy")) return read_npy(path);
  if (ends_with(".pb")) {
    auto t = load_tensor_pb(path);
    if (!t) return Status(StatusCode::invalid_argument, t.status().message());
    return t;
  }
  return invalid_argument(path + ": unknown file type; use .npy or an ONNX TensorProto .pb");
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
  const bool known = visit_numeric(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const double v = to_double(p[i]);
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
