#include "engine/background_queue.h"

#include <algorithm>
#include <chrono>

namespace tandem {

BackgroundQueue::BackgroundQueue(int capacity) : capacity_(std::max(1, capacity)) {
  thread_ = std::thread([this] { loop(); });
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

void BackgroundQueue::loop() {
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
