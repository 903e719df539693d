#include "engine/parity_sampler.h"

#include <algorithm>
#include <cmath>

#include "core/compare.h"

namespace tandem {

Value deep_copy(const Value& v) {
  Value out = v;
  if (v.is_tensor()) out.tensor = v.tensor.clone();
  for (Tensor& t : out.sequence) t = t.clone();
  return out;
}

ParitySampler::ParitySampler(int capacity, std::vector<ParityBudget> budgets, RunFn reference, ResultFn on_result)
    : capacity_(std::max(1, capacity)),
      budgets_(budgets.empty() ? std::vector<ParityBudget>{ParityBudget{}} : std::move(budgets)),
      reference_(std::move(reference)),
      on_result_(std::move(on_result)) {
  thread_ = std::thread([this] { loop(); });
}

ParitySampler::~ParitySampler() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    queue_.clear();
    cancel_.store(true);
    cv_.notify_all();
  }
  thread_.join();
}

bool ParitySampler::offer(int route, std::vector<Value> inputs, std::vector<Value> outputs) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_ || static_cast<int>(queue_.size()) >= capacity_) return false;
  queue_.push_back({route, std::move(inputs), std::move(outputs)});
  cv_.notify_one();
  return true;
}

bool ParitySampler::drain(double timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::duration<double, std::milli>(timeout_ms),
                           [&] { return queue_.empty() && !busy_; });
}

void ParitySampler::loop() {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
    if (stop_) break;
    Sample s = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    RunControl control;
    control.cancel = &cancel_;
    std::vector<Value> expected;
    Status st = reference_(s.inputs, &expected, control);
    ParityResult r;
    if (st.is_ok()) {
      r = compare(expected, s.outputs, budgets_[std::min(static_cast<size_t>(std::max(s.route, 0)), budgets_.size() - 1)]);
    } else {
      r.ok = false;
      r.error = st;
    }
    r.route = s.route;
    if (!(st.code() == StatusCode::cancelled && cancel_.load())) on_result_(r);
    s = Sample();
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  busy_ = false;
  idle_cv_.notify_all();
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
