#include "core/tensor_util.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <string_view>
#include <cstdlib>
#include <sstream>

namespace tandem {

Result<int64_t> normalize_axis(int64_t axis, int64_t rank) {
  int64_t a = axis < 0 ? axis + rank : axis;
  if (a < 0 || a >= rank)
    return invalid_argument("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return a;
}

std::vector<int64_t> strides_of(const Shape& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(shape.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * shape[i + 1];
  return s;
}

Result<Shape> broadcast_shapes(const Shape& a, const Shape& b) {
  size_t r = std::max(a.size(), b.size());
  Shape out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (da == db || db == 1) out[i] = da;
    else if (da == 1) out[i] = db;
    else return invalid_argument("shapes " + shape_to_string(a) + " and " + shape_to_string(b) + " do not broadcast");
  }
  return out;
}

Result<Shape> broadcast_shapes(const std::vector<Shape>& shapes) {
  Shape out;
  for (const Shape& s : shapes) {
    TANDEM_ASSIGN_OR_RETURN(out, broadcast_shapes(out, s));
  }
  return out;
}

std::vector<int64_t> broadcast_strides(const Shape& in, const Shape& out) {
  std::vector<int64_t> strides(out.size(), 0);
  std::vector<int64_t> in_strides = strides_of(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) strides[i + off] = in[i] == 1 ? 0 : in_strides[i];
  return strides;
}

BroadcastIterator::BroadcastIterator(const Shape& out, const std::vector<Shape>& inputs)
    : out_(out), coord_(out.size(), 0), offsets_(inputs.size(), 0) {
  for (const Shape& s : inputs) strides_.push_back(broadcast_strides(s, out));
}

void BroadcastIterator::next() {
  for (int64_t d = static_cast<int64_t>(out_.size()) - 1; d >= 0; --d) {
    coord_[d]++;
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] += strides_[k][d];
    if (coord_[d] < out_[d]) return;
    for (size_t k = 0; k < offsets_.size(); ++k) offsets_[k] -= strides_[k][d] * coord_[d];
    coord_[d] = 0;
  }
}

std::vector<int64_t> to_int64_vector(const Tensor& t) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  visit_numeric(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      if constexpr (std::is_integral_v<T>) {
        // Exact for every integer type; uint64 above INT64_MAX saturates.
        if constexpr (std::is_same_v<T, uint64_t>) out[i] = p[i] > static_cast<uint64_t>(INT64_MAX) ? INT64_MAX : static_cast<int64_t>(p[i]);
        else out[i] = static_cast<int64_t>(p[i]);
      } else {
        // Floats: NaN reads as 0, out-of-range values saturate (a plain cast would be undefined).
        const double v = to_double(p[i]);
        if (std::isnan(v)) out[i] = 0;
        else if (v >= 9223372036854775807.0) out[i] = INT64_MAX;
        else if (v <= -9223372036854775808.0) out[i] = INT64_MIN;
        else out[i] = static_cast<int64_t>(v);
      }
    }
  });
  return out;
}

std::vector<double> to_double_vector(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  visit_numeric(t.dtype(), [&]<class T>() {
    const T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) out[i] = to_double(p[i]);
  });
  return out;
}

namespace {

// Shortest text that reads back to the same value in the source precision ("0.1", "1e-05").
std::string number_to_string(double v, DataType from) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "INF" : "-INF";
  char buf[64];
  std::to_chars_result r = from == DataType::float64 ? std::to_chars(buf, buf + sizeof(buf), v)
                                                     : std::to_chars(buf, buf + sizeof(buf), static_cast<float>(v));
  return std::string(buf, r.ptr);
}

// Parses a number the way ONNX Cast reads strings: NaN and INF in any capitalisation, with an
// optional sign; everything else as a decimal or scientific literal.
double string_to_number(const std::string& s) {
  std::string lower;
  for (char c : s) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view body(lower);
  bool negative = false;
  if (!body.empty() && (body[0] == '+' || body[0] == '-')) {
    negative = body[0] == '-';
    body.remove_prefix(1);
  }
  if (body == "nan") return NAN;
  if (body == "inf" || body == "infinity") return negative ? -INFINITY : INFINITY;
  return std::strtod(s.c_str(), nullptr);
}

template <class To>
To convert_number(double v) {
  if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>) {
    if (std::isnan(v)) return To(0);
    // Out-of-range float->int conversions are undefined in C++; wrap through int64 like
    // common hardware does (the ONNX spec leaves them undefined).
    if constexpr (std::is_unsigned_v<To>) {
      if (v >= 18446744073709551616.0 || v <= -9223372036854775808.0) return To(0);
      if (v < 0) return static_cast<To>(static_cast<int64_t>(v));
      return static_cast<To>(static_cast<uint64_t>(v));
    } else {
      if (v >= 9223372036854775808.0 || v < -9223372036854775808.0) return static_cast<To>(INT64_MIN);
      return static_cast<To>(static_cast<int64_t>(v));
    }
  } else {
    return from_double<To>(v);
  }
}

}  // namespace

Result<Tensor> cast_tensor(const Tensor& src, DataType to) {
  Tensor out(to, src.shape());
  const int64_t n = src.numel();
  DataType from = src.dtype();
  if (from == to) return src.clone();
  if (from == DataType::string) {
    const std::string* in = src.data<std::string>();
    bool ok = visit_numeric(to, [&]<class To>() {
      To* o = out.data<To>();
      for (int64_t i = 0; i < n; ++i) {
        const std::string& s = in[i];
        const double v = string_to_number(s);
        if constexpr (std::is_same_v<To, int64_t>) o[i] = std::strtoll(s.c_str(), nullptr, 10);
        else if constexpr (std::is_same_v<To, uint64_t>) o[i] = std::strtoull(s.c_str(), nullptr, 10);
        else o[i] = convert_number<To>(v);
      }
    });
    if (!ok) return unsupported("cast from string to " + std::string(dtype_name(to)) + " is not supported");
    return out;
  }
  if (to == DataType::string) {
    std::string* o = out.data<std::string>();
    bool ok = visit_numeric(from, [&]<class From>() {
      const From* in = src.data<From>();
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<From, int64_t>) o[i] = std::to_string(in[i]);
        else if constexpr (std::is_same_v<From, uint64_t>) o[i] = std::to_string(in[i]);
        else if constexpr (std::is_same_v<From, bool>) o[i] = in[i] ? "1" : "0";
        else if constexpr (std::is_integral_v<From>) o[i] = std::to_string(static_cast<int64_t>(in[i]));
        else o[i] = number_to_string(to_double(in[i]), from);
      }
    });
    if (!ok) return unsupported("cast from " + std::string(dtype_name(from)) + " to string is not supported");
    return out;
  }
  bool ok = false;
  visit_numeric(from, [&]<class From>() {
    const From* in = src.data<From>();
    ok = visit_numeric(to, [&]<class To>() {
      To* o = out.data<To>();
      for (int64_t i = 0; i < n; ++i) {
        if constexpr (std::is_same_v<From, int64_t> && std::is_integral_v<To>) o[i] = static_cast<To>(in[i]);
        else if constexpr (std::is_same_v<From, uint64_t> && std::is_integral_v<To>) o[i] = static_cast<To>(in[i]);
        else o[i] = convert_number<To>(to_double(in[i]));
      }
    });
  });
  if (!ok)
    return unsupported("cast from " + std::string(dtype_name(from)) + " to " + std::string(dtype_name(to)) +
                       " is not supported");
  return out;
}

Tensor float_tensor(DataType dtype, const Shape& shape, const std::vector<double>& values) {
  Tensor t(dtype, shape);
  visit_float(dtype, [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = from_double<T>(values[static_cast<size_t>(i)]);
  });
  return t;
}

}  // namespace tandem
