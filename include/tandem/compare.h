// tandem/compare.h: numerical comparison of outputs (conformance runs, golden tests, parity
// sampling, format conversions). Floats pass when |actual - expected| <= atol + rtol *
// |expected| (NaN matches NaN, infinities match by sign); integers, bools and strings must be
// equal.
// Thread-safety: pure functions.
#pragma once

#include <cstdint>

#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem {

struct Tolerance {
  double rtol = 1e-3;
  double atol = 1e-7;
};

// Error statistics of `actual` against `expected` (same shape): max absolute error, max
// relative error (|a-e| / |e|, over elements with e != 0) and root-mean-square error.
struct ErrorStats {
  double max_abs = 0;
  double max_rel = 0;
  double rmse = 0;
  int64_t mismatches = 0;  // elements outside the tolerance
};

// Ok when the tensors have the same dtype and shape and every element is within tolerance;
// otherwise an invalid_argument Status describing the first difference.
Status compare_tensors(const Tensor& expected, const Tensor& actual, const Tolerance& tol = {});
// Same for Values: kinds must agree; sequences compare element by element.
Status compare_values(const Value& expected, const Value& actual, const Tolerance& tol = {});
// Statistics for floating-point tensors of equal shape (others: exact-match counts).
ErrorStats error_stats(const Tensor& expected, const Tensor& actual, const Tolerance& tol = {});

}  // namespace tandem
