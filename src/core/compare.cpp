#include "core/compare.h"

#include <cmath>
#include <sstream>

#include "core/tensor_util.h"

namespace tandem {

namespace {

bool close(double e, double a, const Tolerance& tol) {
  if (std::isnan(e) || std::isnan(a)) return std::isnan(e) && std::isnan(a);
  if (std::isinf(e) || std::isinf(a)) return e == a;
  return std::fabs(a - e) <= tol.atol + tol.rtol * std::fabs(e);
}

std::string index_string(int64_t linear, const Shape& shape) {
  std::vector<int64_t> idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    if (shape[d] > 0) {
      idx[d] = linear % shape[d];
      linear /= shape[d];
    }
  }
  std::string s = "[";
  for (size_t i = 0; i < idx.size(); ++i) {
    if (i) s += ',';
    s += std::to_string(idx[i]);
  }
  return s + "]";
}

}  // namespace

Status compare_tensors(const Tensor& expected, const Tensor& actual, const Tolerance& tol) {
  if (!actual.defined()) return invalid_argument("output is missing");
  if (expected.dtype() != actual.dtype())
    return invalid_argument("dtype " + std::string(dtype_name(actual.dtype())) + ", expected " +
                            std::string(dtype_name(expected.dtype())));
  if (expected.shape() != actual.shape())
    return invalid_argument("shape " + shape_to_string(actual.shape()) + ", expected " +
                            shape_to_string(expected.shape()));
  const int64_t n = expected.numel();
  if (expected.dtype() == DataType::string) {
    for (int64_t i = 0; i < n; ++i)
      if (expected.data<std::string>()[i] != actual.data<std::string>()[i])
        return invalid_argument("at " + index_string(i, expected.shape()) + " got '" + actual.data<std::string>()[i] +
                                "', expected '" + expected.data<std::string>()[i] + "'");
    return Status::ok();
  }
  if (expected.dtype() == DataType::complex64 || expected.dtype() == DataType::complex128) {
    Tensor e = expected.reshaped({n * 2});
    Tensor a = actual.reshaped({n * 2});
    const bool single = expected.dtype() == DataType::complex64;
    for (int64_t i = 0; i < 2 * n; ++i) {
      double ev = single ? reinterpret_cast<const float*>(e.raw_data())[i] : reinterpret_cast<const double*>(e.raw_data())[i];
      double av = single ? reinterpret_cast<const float*>(a.raw_data())[i] : reinterpret_cast<const double*>(a.raw_data())[i];
      if (!close(ev, av, tol)) return invalid_argument("complex element " + std::to_string(i / 2) + " differs");
    }
    return Status::ok();
  }
  const bool exact = !is_float_type(expected.dtype());
  Status result = Status::ok();
  visit_numeric(expected.dtype(), [&]<class T>() {
    const T* e = expected.data<T>();
    const T* a = actual.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      bool ok;
      if (exact) ok = e[i] == a[i];
      else ok = close(to_double(e[i]), to_double(a[i]), tol);
      if (!ok) {
        std::ostringstream os;
        os.precision(9);
        os << "at " << index_string(i, expected.shape()) << " got " << to_double(a[i]) << ", expected "
           << to_double(e[i]);
        result = invalid_argument(os.str());
        return;
      }
    }
  });
  return result;
}

Status compare_values(const Value& expected, const Value& actual, const Tolerance& tol) {
  if (expected.kind != actual.kind) {
    auto kind_name = [](const Value& v) {
      return v.is_tensor() ? "a tensor" : v.is_sequence() ? "a sequence" : "an empty optional";
    };
    return invalid_argument(std::string("got ") + kind_name(actual) + ", expected " + kind_name(expected));
  }
  if (expected.is_tensor()) return compare_tensors(expected.tensor, actual.tensor, tol);
  if (expected.is_sequence()) {
    if (expected.sequence.size() != actual.sequence.size())
      return invalid_argument("sequence has " + std::to_string(actual.sequence.size()) + " items, expected " +
                              std::to_string(expected.sequence.size()));
    for (size_t i = 0; i < expected.sequence.size(); ++i) {
      Status s = compare_tensors(expected.sequence[i], actual.sequence[i], tol);
      if (!s.is_ok()) return s.with_prefix("sequence item " + std::to_string(i) + ": ");
    }
  }
  return Status::ok();
}

ErrorStats error_stats(const Tensor& expected, const Tensor& actual, const Tolerance& tol) {
  ErrorStats st;
  if (expected.shape() != actual.shape() || expected.dtype() != actual.dtype()) {
    st.mismatches = std::max<int64_t>(1, expected.numel());
    st.max_abs = st.max_rel = st.rmse = INFINITY;
    return st;
  }
  const int64_t n = expected.numel();
  double sq = 0;
  visit_numeric(expected.dtype(), [&]<class T>() {
    const T* e = expected.data<T>();
    const T* a = actual.data<T>();
    for (int64_t i = 0; i < n; ++i) {
      const double ev = to_double(e[i]);
      const double av = to_double(a[i]);
      if (!close(ev, av, tol)) st.mismatches++;
      double d = std::fabs(av - ev);
      if (std::isnan(ev) && std::isnan(av)) d = 0;
      if (std::isnan(d)) d = INFINITY;
      st.max_abs = std::max(st.max_abs, d);
      if (ev != 0) st.max_rel = std::max(st.max_rel, d / std::fabs(ev));
      sq += d * d;
    }
  });
  st.rmse = n > 0 ? std::sqrt(sq / static_cast<double>(n)) : 0.0;
  return st;
}

}  // namespace tandem
