// side_tasks.h: lets one request's work spread over threads that are idle now, without ever
// making the request wait for a thread that is busy elsewhere.
//
// run(n, task) calls task(0), ..., task(n - 1), each exactly once, and returns when all have
// returned. The calling thread works through the tasks itself; the pool's threads, when they
// are idle, take tasks that the caller has not reached yet. A task no helper has started is
// run by the caller (it is never left queued), so on a machine whose cores are all busy run()
// costs what running the tasks in a loop costs, plus one wake-up per helper; on an idle
// machine the tasks run side by side. Used by the REST codec to parse and to write large JSON
// tensors in pieces (rest_json_split.h, rest_codec.cpp).
//
// Tasks must not throw, and must not call run() on the same pool (a helper waiting for its
// own nested tasks would hold the thread the caller hoped to use; it would still finish, but
// the point of the pool is lost).
// Thread-safety: run() may be called from any number of threads at once; each call's tasks are
// independent of the others'.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::server {

class SideTasks {
 public:
  // Starts `threads` helper threads (0: run() runs every task on the caller).
  explicit SideTasks(int threads);
  ~SideTasks();  // joins the helpers; no run() may be in progress
  SideTasks(const SideTasks&) = delete;
  SideTasks& operator=(const SideTasks&) = delete;

  int threads() const { return static_cast<int>(helpers_.size()); }

  // Runs task(i) for every i in [0, n); returns when all have returned.
  void run(size_t n, const std::function<void(size_t)>& task);

 private:
  struct Batch;  // one run()'s tasks: which is next, how many have finished
  void helper_loop();
  // Takes the next task of `batch` (false when all are taken); drops the batch from the queue
  // when its last task is taken. Requires mutex_.
  bool take(const std::shared_ptr<Batch>& batch, size_t* index);
  void finish(Batch& batch);

  std::mutex mutex_;
  std::condition_variable work_;              // a batch was queued, or the pool stops
  std::deque<std::shared_ptr<Batch>> queue_;  // batches with tasks not yet taken
  bool stopping_ = false;
  std::vector<std::thread> helpers_;
};

}  // namespace tandem::server
