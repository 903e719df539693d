// faulty_backend.h: a Backend wrapper that injects faults, to test the engine's fallback,
// deadlines, breakers and parity sampling against any backend.
//
// Spec text: comma-separated key=value pairs, e.g.
//   error=0.3,hang=0.01,hang_ms=5000,latency_ms=2,nan=1.0,fail_after=100,recover_after_s=5
//   error=P            a call fails with device_error with probability P
//   hang=P             a call hangs for hang_ms (default 5000), ignoring its deadline and cancel
//                      flag (as a stuck driver would), then runs normally
//   latency_ms=N       every call takes N ms longer
//   nan=P              float outputs are replaced by NaN with probability P
//   offset=X           every call's float32/float64 outputs come back shifted by X (a drift
//                      that only parity sampling notices)
//   fail_after=N       every call after the N-th fails with device_error
//   recover_after_s=T  T seconds after the faults were armed, the backend is healthy again
//   seed=N             seed of the per-call draws (calls are numbered; draws are reproducible)
// Faults apply once arm() has been called (the engine arms after warm-up), so warm-up
// measures the healthy backend; before that every call passes straight through.
//
// Ownership: the wrapper borrows `inner` (backends are process-wide singletons).
// Thread-safety: thread-safe, like every Backend. shutdown() releases every hang at once and
// makes later hangs return immediately; call it before dropping the wrapper.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "backends/backend.h"
#include "engine/clock.h"
#include "tandem/engine.h"

namespace tandem {

struct FaultSpec {
  double error_rate = 0;
  double hang_rate = 0;
  double hang_ms = 5000;
  double latency_ms = 0;
  double nan_rate = 0;
  double offset = 0;            // added to float outputs of every armed call
  int64_t fail_after = -1;      // < 0: off
  double recover_after_s = -1;  // < 0: never recovers
  uint64_t seed = 0;
  std::string route;  // the route to wrap ("cpu@bf16"); empty: the first route
  // The canonical spec text (keys in a fixed order, defaults omitted); "" when no fault is set.
  std::string to_string() const;
};

// Parses the spec text above. Errors are invalid_argument naming the bad key or value.
Result<FaultSpec> parse_fault_spec(std::string_view text);

class FaultyBackend final : public Backend {
 public:
  struct Counts {
    uint64_t calls = 0;   // calls made after arm()
    uint64_t errors = 0;  // injected errors (error= and fail_after=)
    uint64_t hangs = 0;
    uint64_t nans = 0;
  };

  // `clock` may be null (steady clock); it times recover_after_s. `label` names what is
  // wrapped in name() ("faulty(<label>)"); empty: the inner backend's name.
  FaultyBackend(Backend* inner, FaultSpec spec, std::shared_ptr<const Clock> clock = nullptr, std::string label = "");
  ~FaultyBackend() override;

  std::string_view name() const override { return name_; }
  DeviceKind device_kind() const override { return inner_->device_kind(); }
  // Never the reference, even when it wraps it: its answers are not exact.
  bool is_reference() const override { return false; }
  std::string_view version() const override { return inner_->version(); }
  Status supports(const Node& node, const NodeTypes& types) const override {
    return inner_->supports(node, types);
  }
  Status supports_precision(Precision p) const override { return inner_->supports_precision(p); }
  Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) override {
    return inner_->compile(graph, options);
  }
  Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
             const RunControl& control) override;

  void arm();
  void shutdown();
  bool recovered() const;
  Counts counts() const;
  const FaultSpec& spec() const { return spec_; }
  Backend* inner() const { return inner_; }

 private:
  // A uniform draw in [0, 1) for call `n` and purpose `salt`.
  double draw(uint64_t n, uint64_t salt) const;
  // Sleeps `ms` or until shutdown(); ignores the call's deadline on purpose.
  void sleep_ms(double ms);

  Backend* inner_;
  const FaultSpec spec_;
  std::shared_ptr<const Clock> clock_;
  std::string name_;
  std::atomic<bool> armed_{false};
  std::atomic<int64_t> armed_at_ns_{0};
  std::atomic<uint64_t> calls_{0}, errors_{0}, hangs_{0}, nans_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool shutdown_ = false;
};

}  // namespace tandem
