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

  explicit BackgroundQueue(int capacity);
  ~BackgroundQueue();
  BackgroundQueue(const BackgroundQueue&) = delete;
  BackgroundQueue& operator=(const BackgroundQueue&) = delete;

  // Queues a task. False (nothing queued) when `capacity` are pending or the queue stops.
  bool offer(Task task);
  // Waits until nothing is pending or running, at most `timeout_ms`; true when idle.
  bool drain(double timeout_ms);

 private:
  void loop();

  const int capacity_;
  std::mutex mu_;
  std::condition_variable cv_, idle_cv_;
  std::deque<Task> queue_;
  bool busy_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace tandem
