// prober.h: runs circuit-breaker probes off the request path.
//
// When a route's breaker is half-open and a later route can still answer the request in time,
// the request does not wait on the probe: the later routes answer it, and a copy of its
// inputs is handed here. One background thread takes the probes in order and runs each one
// (a task that submits the call to the route's worker pool, waits at most the route's attempt
// budget and records the outcome on the breaker). A request therefore never pays for a probe
// of a route that is still broken; in particular a hung route costs it nothing.
//
// offer() never blocks: when `capacity` probes are pending it refuses, and the caller gives
// the breaker admission back. Tasks receive a stop flag; they must return soon after it turns
// true (pass it to WorkerPool::wait through a CancelCheck).
//
// Ownership: the prober owns its thread and queue. Destruction sets the stop flag, drops the
// pending tasks (each is destroyed unrun; a task that holds a breaker admission must give it
// back in its destructor or not care) and joins the thread.
// Thread-safety: offer() and drain() are thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace tandem {

class Prober {
 public:
  using Task = std::function<void(const std::atomic<bool>& stop)>;

  explicit Prober(int capacity);
  ~Prober();
  Prober(const Prober&) = delete;
  Prober& operator=(const Prober&) = delete;

  // Queues a probe. False (nothing queued) when `capacity` are pending or the prober stops.
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
