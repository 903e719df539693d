// parity_sampler.h: re-runs sampled requests on the reference backend, off the request path,
// and compares the outputs against a budget.
//
// offer() queues a sample (a deep copy of the request's inputs and served outputs) without
// blocking; when `capacity` samples, or kMaxPendingBytes of their tensors, are already pending
// it drops the sample and says so (one sample is always taken when none is pending, however
// large). has_room() tells a caller beforehand, so it need not copy a sample only to have it
// dropped. One background thread at low priority (background_queue.h: it takes only the CPU
// time the request path leaves idle) takes samples in order, runs `reference`, compares every
// output (floats: max abs / max rel / rmse from core/compare.h against the budget; other dtypes
// must match exactly) and reports the result through `on_result`, on that thread.
//
// Ownership: the sampler owns its queue and thread; the callables it was given must stay
// valid until it is destroyed. Destruction cancels the sample in progress (through
// RunControl::cancel), drops the pending ones and joins the thread.
// Thread-safety: offer() and drain() are thread-safe.
#pragma once

#include <atomic>
#include <functional>
#include <vector>

#include "backends/backend.h"
#include "engine/background_queue.h"
#include "tandem/engine.h"

namespace tandem {

struct ParityResult {
  int route = 0;           // the route that served the sampled request
  bool ok = false;         // the reference re-run succeeded (else: error says why)
  Status error;
  bool violation = false;  // outside the budget
  double max_abs = 0, max_rel = 0, rmse = 0;  // worst over the outputs
};

class ParitySampler {
 public:
  // Bytes of tensors the pending samples may hold: a sample of a 640x640 detector holds ~6.5 MB,
  // and 64 of them queued behind a reference run of seconds each held 400 MB of stale samples.
  static constexpr size_t kMaxPendingBytes = size_t{64} << 20;
  using RunFn = std::function<Status(const std::vector<Value>&, std::vector<Value>*, const RunControl&)>;
  using ResultFn = std::function<void(const ParityResult&)>;

  // `budgets[r]`: the budget of samples from route r (the last entry for routes beyond it).
  ParitySampler(int capacity, std::vector<ParityBudget> budgets, RunFn reference, ResultFn on_result);

  // Queues a sample of a request served by `route`. False (and nothing queued) when full.
  bool offer(int route, std::vector<Value> inputs, std::vector<Value> outputs);
  // Whether a sample of `bytes` would be taken now (a hint: offer() decides).
  bool has_room(size_t bytes) const;
  // Waits until nothing is pending or running, at most `timeout_ms`; true when drained.
  bool drain(double timeout_ms);

  // Compares served outputs against reference outputs (exposed for tests).
  static ParityResult compare(const std::vector<Value>& reference, const std::vector<Value>& served,
                              const ParityBudget& budget);

 private:
  // A queued sample; it holds `bytes` of pending_bytes_ until it is destroyed.
  struct Sample {
    Sample(int r, std::vector<Value> in, std::vector<Value> out, std::atomic<size_t>* pending, size_t b)
        : route(r), inputs(std::move(in)), outputs(std::move(out)), pending_bytes(pending), bytes(b) {}
    Sample(const Sample&) = delete;
    Sample& operator=(const Sample&) = delete;
    ~Sample() { pending_bytes->fetch_sub(bytes); }
    int route = 0;
    std::vector<Value> inputs, outputs;
    std::atomic<size_t>* pending_bytes;
    size_t bytes;
  };
  void check(const Sample& s, const std::atomic<bool>& stop);

  const std::vector<ParityBudget> budgets_;
  RunFn reference_;
  ResultFn on_result_;
  std::atomic<size_t> pending_bytes_{0};
  BackgroundQueue queue_;  // last: destroyed (joined) before the callables above
};

// A deep copy of a value (tensor buffers are cloned).
Value deep_copy(const Value& v);
// Bytes of the tensors of `values` (sequence elements included).
size_t tensor_bytes(const std::vector<Value>& values);

}  // namespace tandem
