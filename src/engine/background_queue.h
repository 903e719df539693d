// background_queue.h: one background thread that runs queued tasks in order, off the request
// path. The engine uses it twice per prepared model: the parity sampler's reference re-runs
// (parity_sampler.h), and half-open breaker probes (a request admitted as a probe is answered
// by a later route while the probe runs here; prepared_model_infer.cpp).
//
// offer() never blocks: when `capacity` tasks are pending it refuses, and the caller decides
// what that means (a dropped sample, an admission given back). Tasks receive a stop flag that
// turns true when the queue is destroyed; they must return soon after (pass it on as
// RunControl::cancel, or to WorkerPool::wait through a CancelCheck).
//
// A queue made with Priority::low runs its thread at the lowest scheduling priority the OS
// gives without privileges (Linux: SCHED_IDLE and nice 19, for that thread alone): work nobody
// waits for (parity re-runs on the reference, seconds each on a large model) then takes only
// the CPU time the request path leaves idle, and yields a core the moment a serving thread
// wants it. On a machine with as many cores as the serving team has threads, the same work at
// equal priority took a core from the team, whose OpenMP barriers then waited for a descheduled
// thread: requests of a bf16 soak of PP-OCRv4 det with parity sampling ran past their budget
// (p99 0.17-3.7 s against 12 ms typical) and fell back to float32 and to the reference; at nice
// 19 alone one or two still did; with SCHED_IDLE none (p99 35-38 ms, three soaks of 40).
//
// Ownership: the queue owns its thread. Destruction sets the stop flag, destroys the pending
// tasks unrun and joins the thread (after the task in progress returns).
// Thread-safety: offer() and drain() are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace tandem {

class BackgroundQueue {
 public:
  using Task = std::function<void(const std::atomic<bool>& stop)>;

  enum class Priority { normal, low };
  explicit BackgroundQueue(int capacity, Priority priority = Priority::normal);
  ~BackgroundQueue();
  BackgroundQueue(const BackgroundQueue&) = delete;
  BackgroundQueue& operator=(const BackgroundQueue&) = delete;

  // Queues a task. False (nothing queued) when `capacity` are pending or the queue stops.
  bool offer(Task task);
  // Waits until nothing is pending or running, at most `timeout_ms`; true when idle.
  bool drain(double timeout_ms);

 private:
  void loop(Priority priority);

  const int capacity_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  bool busy_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem
