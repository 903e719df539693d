#include "engine/worker_pool.h"

#include <algorithm>
#include <exception>
#include <thread>

namespace tandem {

struct WorkerPool::State {
  std::mutex mu;
  std::condition_variable cv;       // work arrived, or stop
  std::condition_variable exit_cv;  // a thread exited
  std::deque<std::shared_ptr<Call>> queue;
  int max_workers = 4;
  int max_hung = 16;
  int threads = 0;
  int idle = 0;
  bool stop = false;
  std::atomic<uint64_t> hung{0};
  std::atomic<uint64_t> abandoned_total{0};
};

WorkerPool::WorkerPool(std::string name, int max_workers, int max_hung, std::chrono::milliseconds shutdown_grace)
    : name_(std::move(name)), state_(std::make_shared<State>()), shutdown_grace_(shutdown_grace) {
  state_->max_workers = std::max(1, max_workers);
  state_->max_hung = std::max(0, max_hung);
}

WorkerPool::~WorkerPool() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->stop = true;
  state_->queue.clear();
  state_->cv.notify_all();
  state_->exit_cv.wait_for(lock, shutdown_grace_, [&] { return state_->threads == 0; });
  // Threads still running are stuck in a backend call; they exit (and free the state) on return.
}

void WorkerPool::worker_main(std::shared_ptr<State> st) {
  std::unique_lock<std::mutex> lock(st->mu);
  for (;;) {
    st->cv.wait(lock, [&] { return st->stop || !st->queue.empty(); });
    if (st->stop) break;
    std::shared_ptr<Call> call = std::move(st->queue.front());
    st->queue.pop_front();
    st->idle--;
    lock.unlock();
    bool run = false;
    {
      std::lock_guard<std::mutex> cl(call->mu);
      if (!call->abandoned) {
        call->started = true;
        call->started_at = Clock::now();
        run = true;
      }
    }
    if (run) {
      std::vector<Value> outputs;
      Status s = call->fn(call->control, &outputs);
      Fn released = std::move(call->fn);  // the Call handle no longer keeps the captures alive
      {
        // Count this thread idle before the caller wakes, so that the caller's next request
        // reuses it instead of starting another thread (fewer threads, fewer malloc arenas).
        std::lock_guard<std::mutex> sl(st->mu);
        st->idle++;
      }
      {
        std::lock_guard<std::mutex> cl(call->mu);
        call->finished_at = Clock::now();
        call->status = std::move(s);
        call->outputs = std::move(outputs);
        call->done = true;
        if (call->abandoned) st->hung--;
        call->cv.notify_all();
      }
      released = nullptr;
    }
    call.reset();
    lock.lock();
    if (!run) st->idle++;
  }
  st->threads--;
  st->idle--;
  st->exit_cv.notify_all();
}

Result<std::shared_ptr<WorkerPool::Call>> WorkerPool::submit(Fn fn, Clock::time_point deadline) {
  const uint64_t hung = state_->hung.load();
  if (hung >= static_cast<uint64_t>(state_->max_hung) && state_->max_hung >= 0 && hung > 0)
    return Status(StatusCode::unavailable, "[" + name_ + "] " + std::to_string(hung) +
                                               " calls are hung (the cap); refusing new calls until they return");
  auto call = std::make_shared<Call>();
  call->fn = std::move(fn);
  call->control.deadline = deadline;
  call->control.cancel = &call->cancel;
  call->submitted = Clock::now();
  std::lock_guard<std::mutex> lock(state_->mu);
  if (state_->stop) return Status(StatusCode::unavailable, "[" + name_ + "] the worker pool is shutting down");
  state_->queue.push_back(call);
  const int busy_not_hung = state_->threads - state_->idle - static_cast<int>(state_->hung.load());
  if (state_->idle < static_cast<int>(state_->queue.size()) && busy_not_hung + state_->idle < state_->max_workers) {
    try {
      std::thread(worker_main, state_).detach();
      state_->threads++;
      state_->idle++;
    } catch (const std::exception& e) {  // out of threads: queued calls wait for a running worker
      if (state_->threads - static_cast<int>(state_->hung.load()) <= 0) {
        state_->queue.pop_back();
        return Status(StatusCode::unavailable, "[" + name_ + "] cannot start a worker thread: " + e.what());
      }
    }
  }
  state_->cv.notify_one();
  return call;
}

WorkerPool::WaitResult WorkerPool::wait(Call& call, Clock::time_point until, const CancelCheck* cancel,
                                        double* queue_ms, double* compute_ms) {
  // Far-future deadlines are clamped: some condition-variable implementations overflow on max().
  const Clock::time_point cap = Clock::now() + std::chrono::hours(24 * 365);
  if (until > cap) until = cap;
  std::unique_lock<std::mutex> lock(call.mu);
  auto ms = [](Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); };
  WaitResult result = WaitResult::done;
  for (;;) {
    if (call.done) break;
    const Clock::time_point now = Clock::now();
    const bool cancelled = cancel && cancel->requested();
    if (now >= until || cancelled) {
      result = cancelled ? WaitResult::cancelled : WaitResult::timed_out;
      call.abandoned = true;
      call.cancel.store(true);
      if (call.started) {
        state_->hung++;
        state_->abandoned_total++;
      }
      break;
    }
    Clock::time_point step = until;
    if (cancel) step = std::min(until, now + std::chrono::milliseconds(2));
    call.cv.wait_until(lock, step);
  }
  const Clock::time_point end = call.done ? call.finished_at : Clock::now();
  const Clock::time_point start = call.started ? call.started_at : end;
  if (queue_ms) *queue_ms = ms(start - call.submitted);
  if (compute_ms) *compute_ms = ms(end - start);
  return result;
}

bool WorkerPool::wait_done(Call& call, Clock::time_point until, const CancelCheck* cancel) {
  const Clock::time_point cap = Clock::now() + std::chrono::hours(24 * 365);
  if (until > cap) until = cap;
  std::unique_lock<std::mutex> lock(call.mu);
  for (;;) {
    if (call.done) return true;
    const Clock::time_point now = Clock::now();
    if (now >= until || (cancel && cancel->requested())) return false;
    Clock::time_point step = until;
    if (cancel) step = std::min(until, now + std::chrono::milliseconds(2));
    call.cv.wait_until(lock, step);
  }
}

uint64_t WorkerPool::hung() const { return state_->hung.load(); }
uint64_t WorkerPool::abandoned_total() const { return state_->abandoned_total.load(); }
uint64_t WorkerPool::threads() const {
  std::lock_guard<std::mutex> lock(state_->mu);
  return static_cast<uint64_t>(state_->threads);
}

}  // namespace tandem
