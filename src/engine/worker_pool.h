// worker_pool.h: the threads backend calls run on, so that a caller can stop waiting for a
// call that hangs (abandon it) without blocking anyone else.
//
// One pool serves one backend of one prepared model (a bulkhead: a hung backend cannot take
// the threads of another). Threads start on demand, up to `max_workers` that are not hung.
// A new call goes to the thread that went idle last, whose caches are warm; threads deeper in
// the idle stack end after `idle_exit` without work, so a burst (of abandoned calls, say) does not leave the
// pool large. A call abandoned while running is *hung*: its thread stays busy until the
// backend returns.
// Hung calls are counted; once `max_hung` are hung at once, submit() refuses new calls with
// `unavailable`, so the threads of one pool never exceed max_workers + max_hung.
//
// Ownership: the pool's state is shared with its threads; destroying the pool stops idle
// threads and waits (at most `shutdown_grace`) for busy ones, then detaches what is still
// running; a detached thread frees the state when its call finally returns. A Call handle
// is shared by the caller and the worker; either may drop it first.
// Thread-safety: all methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"

namespace tandem {

// What a waiting caller checks to learn that its request was cancelled: a flag someone else
// sets, and/or a callback the waiting thread itself calls (InferOptions). Once either says so
// the request stays cancelled. Used by the one thread that waits; not thread-safe.
class CancelCheck {
 public:
  CancelCheck(const std::atomic<bool>* flag, bool (*poll)(void*), void* context)
      : flag_(flag), poll_(poll), context_(context) {}
  bool active() const { return flag_ != nullptr || poll_ != nullptr; }
  bool requested() const {
    if (!tripped_) tripped_ = (flag_ && flag_->load(std::memory_order_relaxed)) || (poll_ && poll_(context_));
    return tripped_;
  }

 private:
  const std::atomic<bool>* flag_;
  bool (*poll_)(void*);
  void* context_;
  mutable bool tripped_ = false;
};

class WorkerPool {
 public:
  using Clock = std::chrono::steady_clock;
  using Fn = std::function<Status(const RunControl&, std::vector<Value>*)>;

  // What a caller sees of one call. Fields below `mu` are guarded by it; once wait() returned
  // `done`, the caller may read them without the lock.
  struct Call {
    Fn fn;
    std::atomic<bool> cancel{false};  // set when the call is abandoned; passed as RunControl::cancel
    RunControl control;
    std::mutex mu;
    std::condition_variable cv;
    bool started = false;
    bool done = false;
    bool abandoned = false;
    Status status;
    std::vector<Value> outputs;
    Clock::time_point submitted, started_at, finished_at;
  };
  enum class WaitResult { done, timed_out, cancelled };

  WorkerPool(std::string name, int max_workers, int max_hung,
             std::chrono::milliseconds shutdown_grace = std::chrono::milliseconds(2000),
             std::chrono::milliseconds idle_exit = std::chrono::milliseconds(10000));
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `fn`; it runs with RunControl{deadline, &call->cancel}. Fails with `unavailable`
  // when max_hung calls are hung.
  Result<std::shared_ptr<Call>> submit(Fn fn, Clock::time_point deadline);
  // Waits until the call is done, `until` passes, or `cancel` (may be null; checked about every
  // 2 ms) says the request was cancelled. In the
  // last two cases the call is abandoned (its cancel flag is set; if it never started, it never
  // will). Queue and compute times are filled in for every result.
  WaitResult wait(Call& call, Clock::time_point until, const CancelCheck* cancel, double* queue_ms,
                  double* compute_ms);

  // Waits until the call is done (true), or `until` passes or `cancel` says so (false),
  // without abandoning it: the caller may keep waiting, or abandon it with wait().
  bool wait_done(Call& call, Clock::time_point until, const CancelCheck* cancel = nullptr);

  uint64_t hung() const;             // abandoned calls still running
  uint64_t abandoned_total() const;  // calls abandoned while running, ever
  uint64_t threads() const;          // threads alive

 private:
  struct State;
  struct Worker;
  static void worker_main(std::shared_ptr<State> state);
  std::string name_;
  std::shared_ptr<State> state_;
  std::chrono::milliseconds shutdown_grace_;
};

}  // namespace tandem
