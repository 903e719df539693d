#include "engine/background_queue.h"

#include <algorithm>
#include <chrono>

#ifdef __linux__
#include <pthread.h>
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "core/sysinfo.h"

namespace tandem {

namespace {

// Lowers the calling thread's priority as far as an unprivileged process may (best effort: a
// refusal leaves it as it was): SCHED_IDLE, and nice 19 for where that policy is refused.
void lower_this_threads_priority() {
#ifdef __linux__
  const auto tid = static_cast<id_t>(syscall(SYS_gettid));
  (void)setpriority(PRIO_PROCESS, tid, 19);  // on Linux a thread id names that thread alone
  sched_param none{};
  none.sched_priority = 0;
  (void)pthread_setschedparam(pthread_self(), SCHED_IDLE, &none);
#endif
}

}  // namespace

BackgroundQueue::BackgroundQueue(int capacity, Priority priority) : capacity_(std::max(1, capacity)) {
  thread_ = std::thread([this, priority] {
    name_this_thread("tandem-bg");
    loop(priority);
  });
}

BackgroundQueue::~BackgroundQueue() {
  std::deque<Task> dropped;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    dropped.swap(queue_);
    cv_.notify_all();
  }
  thread_.join();
}

bool BackgroundQueue::offer(Task task) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stop_.load() || static_cast<int>(queue_.size()) >= capacity_) return false;
  queue_.push_back(std::move(task));
  cv_.notify_one();
  return true;
}

bool BackgroundQueue::drain(double timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return idle_cv_.wait_for(lock, std::chrono::duration<double, std::milli>(timeout_ms),
                           [&] { return queue_.empty() && !busy_; });
}

void BackgroundQueue::loop(Priority priority) {
  if (priority == Priority::low) lower_this_threads_priority();
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return stop_.load() || !queue_.empty(); });
    if (stop_.load()) break;
    Task task = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    task(stop_);
    task = nullptr;  // whatever it holds is released before the queue reports idle
    lock.lock();
    busy_ = false;
    if (queue_.empty()) idle_cv_.notify_all();
  }
  busy_ = false;
  idle_cv_.notify_all();
}

}  // namespace tandem
