#include "engine/parity_sampler.h"

#include <algorithm>
#include <cmath>
#include <memory>

#include "core/compare.h"

namespace tandem {

Value deep_copy(const Value& v) {
  Value out = v;
  if (v.is_tensor()) out.tensor = v.tensor.clone();
  for (Tensor& t : out.sequence) t = t.clone();
  return out;
}

size_t tensor_bytes(const std::vector<Value>& values) {
  size_t bytes = 0;
  for (const Value& v : values) {
    if (v.is_tensor()) bytes += v.tensor.nbytes();
    for (const Tensor& t : v.sequence) bytes += t.nbytes();
  }
  return bytes;
}

ParitySampler::ParitySampler(int capacity, std::vector<ParityBudget> budgets, RunFn reference, ResultFn on_result)
    : budgets_(budgets.empty() ? std::vector<ParityBudget>{ParityBudget{}} : std::move(budgets)),
      reference_(std::move(reference)),
      on_result_(std::move(on_result)),
      queue_(capacity, BackgroundQueue::Priority::low) {}

bool ParitySampler::has_room(size_t bytes) const {
  const size_t pending = pending_bytes_.load();
  return pending == 0 || pending + bytes <= kMaxPendingBytes;
}

bool ParitySampler::offer(int route, std::vector<Value> inputs, std::vector<Value> outputs) {
  const size_t bytes = tensor_bytes(inputs) + tensor_bytes(outputs);
  // Reserve first, so that two callers cannot both pass the bound.
  const size_t before = pending_bytes_.fetch_add(bytes);
  if (before != 0 && before + bytes > kMaxPendingBytes) {
    pending_bytes_.fetch_sub(bytes);
    return false;
  }
  // The sample gives its bytes back when it is destroyed with its task (run, refused, or
  // dropped unrun at shutdown), so none stays counted.
  auto sample = std::make_shared<Sample>(route, std::move(inputs), std::move(outputs), &pending_bytes_, bytes);
  return queue_.offer([this, sample](const std::atomic<bool>& stop) { check(*sample, stop); });
}

bool ParitySampler::drain(double timeout_ms) { return queue_.drain(timeout_ms); }

void ParitySampler::check(const Sample& s, const std::atomic<bool>& stop) {
  RunControl control;
  control.cancel = &stop;
  std::vector<Value> expected;
  const Status st = reference_(s.inputs, &expected, control);
  ParityResult r;
  if (st.is_ok()) {
    r = compare(expected, s.outputs, budgets_[std::min(static_cast<size_t>(std::max(s.route, 0)), budgets_.size() - 1)]);
  } else {
    r.ok = false;
    r.error = st;
  }
  r.route = s.route;
  if (!(st.code() == StatusCode::cancelled && stop.load())) on_result_(r);
}

ParityResult ParitySampler::compare(const std::vector<Value>& reference, const std::vector<Value>& served,
                                    const ParityBudget& budget) {
  ParityResult r;
  r.ok = true;
  auto tensors = [&](const Tensor& e, const Tensor& a) {
    if (is_float_type(e.dtype()) && e.dtype() == a.dtype() && e.shape() == a.shape()) {
      const ErrorStats st = error_stats(e, a);
      r.max_abs = std::max(r.max_abs, st.max_abs);
      r.max_rel = std::max(r.max_rel, st.max_rel);
      r.rmse = std::max(r.rmse, st.rmse);
      if (st.max_abs > budget.max_abs || st.max_rel > budget.max_rel || st.rmse > budget.rmse) r.violation = true;
      return;
    }
    // Non-float (or mismatched) tensors must agree exactly.
    if (!compare_tensors(e, a, Tolerance{0, 0}).is_ok()) {
      r.violation = true;
      if (e.shape() != a.shape() || e.dtype() != a.dtype()) r.max_abs = r.max_rel = r.rmse = INFINITY;
      else {
        const ErrorStats st = error_stats(e, a, Tolerance{0, 0});
        r.max_abs = std::max(r.max_abs, st.max_abs);
        r.max_rel = std::max(r.max_rel, st.max_rel);
        r.rmse = std::max(r.rmse, st.rmse);
      }
    }
  };
  if (reference.size() != served.size()) {
    r.violation = true;
    r.max_abs = r.max_rel = r.rmse = INFINITY;
    return r;
  }
  for (size_t i = 0; i < reference.size(); ++i) {
    const Value& e = reference[i];
    const Value& a = served[i];
    if (e.kind != a.kind || e.sequence.size() != a.sequence.size()) {
      r.violation = true;
      r.max_abs = r.max_rel = r.rmse = INFINITY;
      continue;
    }
    if (e.is_tensor()) tensors(e.tensor, a.tensor);
    for (size_t k = 0; k < e.sequence.size(); ++k) tensors(e.sequence[k], a.sequence[k]);
  }
  return r;
}

}  // namespace tandem
