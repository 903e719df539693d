// Running a model on two rows apart and together; see batch_rows_check.h.
#include "engine/batch_rows_check.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <optional>

#include "engine/inputs.h"
#include "tandem/compare.h"

namespace tandem {
namespace {

using Verdict = BatchRowsCheck::Verdict;

BatchRowsCheck verdict(Verdict v, std::string detail) {
  BatchRowsCheck check;
  check.verdict = v;
  check.detail = std::move(detail);
  return check;
}

// One-row tensors `a` and `b` as the two rows of one tensor.
Tensor stack_rows(const Tensor& a, const Tensor& b) {
  Shape shape = a.shape();
  shape[0] = 2;
  Tensor both = Tensor::uninitialized(a.dtype(), shape);  // both halves are copied in below
  auto* out = static_cast<unsigned char*>(both.raw_data());
  std::memcpy(out, a.raw_data(), a.nbytes());
  std::memcpy(out + a.nbytes(), b.raw_data(), b.nbytes());
  return both;
}

// Row `row` of a two-row tensor, as a one-row tensor.
Tensor row_of(const Tensor& both, int row) {
  Shape shape = both.shape();
  shape[0] = 1;
  Tensor one = Tensor::uninitialized(both.dtype(), shape);  // filled by the copy
  const size_t bytes = both.nbytes() / 2;
  std::memcpy(one.raw_data(), static_cast<const unsigned char*>(both.raw_data()) + bytes * row, bytes);
  return one;
}

Shape rows_dropped(const Shape& shape) { return Shape(shape.begin() + 1, shape.end()); }

std::string figure(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

// The verdict on one output: `together` from the two-row run, `alone` from each row's run;
// `*moved`: the largest change of a float element so far.
std::optional<BatchRowsCheck> judge_output(const std::string& name, const Value& together, const Value& a,
                                           const Value& b, const ParityBudget& budget, double* moved) {
  if (!together.is_tensor() || !a.is_tensor() || !b.is_tensor())
    return verdict(Verdict::dependent, "output '" + name + "' is not a tensor");
  const Tensor& t = together.tensor;
  const Tensor* alone[2] = {&a.tensor, &b.tensor};
  const bool rows_follow = t.rank() >= 1 && t.dim(0) == 2 && t.dtype() != DataType::string &&
                           alone[0]->rank() == t.rank() && alone[0]->dim(0) == 1 &&
                           alone[1]->shape() == alone[0]->shape() &&
                           rows_dropped(alone[0]->shape()) == rows_dropped(t.shape()) && alone[0]->dtype() == t.dtype();
  if (!rows_follow)
    return verdict(Verdict::dependent, "output '" + name + "' is " + shape_to_string(t.shape()) + " for 2 rows and " +
                                           shape_to_string(alone[0]->shape()) +
                                           " for 1: its first dim is not the rows'");
  for (int row = 0; row < 2; ++row) {
    const Tensor beside = row_of(t, row);
    std::string change;
    if (is_float_type(t.dtype())) {
      // Element by element within the budget's max abs (NaN matches NaN, infinities match by
      // sign: made-up values can reach either), then the RMSE over what is finite.
      Tolerance within;
      within.rtol = 0;
      within.atol = budget.max_abs;
      const Status close = compare_tensors(*alone[row], beside, within);
      const ErrorStats e = error_stats(*alone[row], beside);
      if (std::isfinite(e.max_abs)) *moved = std::max(*moved, e.max_abs);
      if (!close.is_ok())
        change = close.message() + " (the route's parity budget: max abs " + figure(budget.max_abs) + ")";
      else if (std::isfinite(e.rmse) && e.rmse > budget.rmse)
        change = "RMSE " + figure(e.rmse) + " (the route's parity budget: " + figure(budget.rmse) + ")";
    } else if (Status same = compare_tensors(*alone[row], beside); !same.is_ok()) {
      change = same.message();
    }
    if (!change.empty())
      return verdict(Verdict::dependent, "row " + std::to_string(row) + " of output '" + name +
                                             "' changed when it ran beside another row: " + change);
  }
  return std::nullopt;
}

}  // namespace

BatchRowsCheck check_batch_rows(const Graph& graph, const std::vector<BatchRowsRoute>& routes, uint64_t seed) {
  std::map<std::string, Value> rows[3];  // a, b, a and b
  for (const ValueInfo& vi : graph.inputs) {
    if (!is_required_input(graph, vi)) continue;
    if (vi.type.kind != TypeInfo::Kind::tensor || !vi.type.has_shape || vi.type.dims.empty() ||
        vi.type.dims[0].fixed() || vi.type.elem == DataType::string)
      return verdict(Verdict::unchecked, "input '" + vi.name + "' has no free first dim");
    const Shape shape = made_up_shape(vi, 1);
    auto a = random_tensor(vi.type.elem, shape, seed++);
    auto b = random_tensor(vi.type.elem, shape, seed++);
    if (!a || !b) return verdict(Verdict::unchecked, "cannot make values for input '" + vi.name + "'");
    rows[2][vi.name] = Value::of(stack_rows(*a, *b));
    rows[0][vi.name] = Value::of(std::move(*a));
    rows[1][vi.name] = Value::of(std::move(*b));
  }
  if (rows[2].empty()) return verdict(Verdict::unchecked, "the model has no required input");
  std::vector<Value> bound[3];
  for (int k = 0; k < 3; ++k) {
    auto b = bind_inputs(graph, rows[k]);
    if (!b) return verdict(Verdict::unchecked, "the check's inputs were rejected: " + b.status().message());
    bound[k] = std::move(*b);
  }
  std::string failures;
  for (const BatchRowsRoute& route : routes) {
    std::vector<Value> outputs[3];
    Status status = Status::ok();
    for (int k = 0; k < 3 && status.is_ok(); ++k) {
      RunControl control;
      control.deadline = std::chrono::steady_clock::now() + std::chrono::minutes(2);
      status = route.placed->run(bound[k], &outputs[k], control);
    }
    if (!status.is_ok()) {
      failures += (failures.empty() ? "" : "; ") + route.name + ": " + status.to_string();
      continue;
    }
    double moved = 0;
    for (size_t i = 0; i < graph.outputs.size() && i < outputs[2].size(); ++i)
      if (auto found =
              judge_output(graph.outputs[i].name, outputs[2][i], outputs[0][i], outputs[1][i], route.budget, &moved))
        return *found;
    return verdict(
        Verdict::independent,
        "checked on " + route.name +
            (moved > 0 ? " (rows moved by up to " + figure(moved) + " beside another, within its parity budget)" : ""));
  }
  return verdict(Verdict::unchecked, "the check's runs failed: " + failures);
}

}  // namespace tandem
