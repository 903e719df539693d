// side_tasks.cpp: see side_tasks.h.
#include "side_tasks.h"

#include <algorithm>

#include "tandem/sysinfo.h"

namespace tandem::server {

struct SideTasks::Batch {
  const std::function<void(size_t)>* task = nullptr;  // the caller's; lives until run() returns
  size_t count = 0;
  size_t next = 0;  // the next task to take; guarded by SideTasks::mutex_
  std::mutex finished_mutex;
  std::condition_variable all_finished;
  size_t finished = 0;  // guarded by finished_mutex
};

SideTasks::SideTasks(int threads) {
  helpers_.reserve(static_cast<size_t>(std::max(threads, 0)));
  for (int i = 0; i < threads; ++i)
    helpers_.emplace_back([this] {
      name_this_thread("tandem-helper");
      helper_loop();
    });
}

SideTasks::~SideTasks() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  work_.notify_all();
  for (std::thread& helper : helpers_) helper.join();
}

bool SideTasks::take(const std::shared_ptr<Batch>& batch, size_t* index) {
  if (batch->next >= batch->count) return false;
  *index = batch->next++;
  if (batch->next == batch->count) queue_.erase(std::find(queue_.begin(), queue_.end(), batch));
  return true;
}

void SideTasks::finish(Batch& batch) {
  std::lock_guard<std::mutex> lock(batch.finished_mutex);
  if (++batch.finished == batch.count) batch.all_finished.notify_all();
}

void SideTasks::run(size_t n, const std::function<void(size_t)>& task) {
  if (helpers_.empty() || n <= 1) {
    for (size_t i = 0; i < n; ++i) task(i);
    return;
  }
  auto batch = std::make_shared<Batch>();
  batch->task = &task;
  batch->count = n;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    queue_.push_back(batch);
  }
  // The caller takes tasks too: wake at most one helper per other task.
  for (size_t i = 1; i < n && i <= helpers_.size(); ++i) work_.notify_one();
  for (;;) {
    size_t index = 0;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!take(batch, &index)) break;
    }
    task(index);
    finish(*batch);
  }
  std::unique_lock<std::mutex> lock(batch->finished_mutex);
  batch->all_finished.wait(lock, [&] { return batch->finished == batch->count; });
}

void SideTasks::helper_loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    work_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stopping, and nothing left to help with
    std::shared_ptr<Batch> batch = queue_.front();
    size_t index = 0;
    take(batch, &index);  // a queued batch always has a task left
    lock.unlock();
    (*batch->task)(index);
    finish(*batch);
    lock.lock();
  }
}

}  // namespace tandem::server
