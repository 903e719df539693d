#include "engine/worker_pool.h"

#include <algorithm>
#include <exception>
#include <thread>

#include "core/sysinfo.h"

namespace tandem {

// Idle workers wait on a stack, each on its own condition variable, and submit() hands a call
// to the one that went idle last. The most recently used thread is the one whose stack, malloc
// arena and library scratch buffers are still in cache, and threads deep in the stack stay idle
// until `idle_exit` ends them, so a burst of abandoned calls does not leave the pool large.
// A worker holding a call is never on the stack.
// Wake-ups are signalled after the lock they were decided under is released, so that the woken
// thread does not wake only to block on that lock again (two futex round trips per hand-off).
// That is why a Worker is shared: the submitter notifies one it no longer holds the lock for.
struct WorkerPool::Worker {
  std::condition_variable cv;
  std::shared_ptr<Call> assigned;  // guarded by State::mu
  bool on_stack = false;           // guarded by State::mu
};

struct WorkerPool::State {
  std::mutex mu;
  std::condition_variable exit_cv;  // a thread exited
  std::deque<std::shared_ptr<Call>> queue;  // calls no idle worker could take yet
  std::vector<std::shared_ptr<Worker>> idle;  // most recently idle last
  int max_workers = 4;
  int max_hung = 16;
  int threads = 0;
  int starting = 0;  // threads started that have not yet taken a call
  bool stop = false;
  std::chrono::milliseconds idle_exit{10000};
  std::atomic<uint64_t> hung{0};
  std::atomic<uint64_t> abandoned_total{0};
};

WorkerPool::WorkerPool(std::string name, int max_workers, int max_hung, std::chrono::milliseconds shutdown_grace,
                       std::chrono::milliseconds idle_exit)
    : name_(std::move(name)), state_(std::make_shared<State>()), shutdown_grace_(shutdown_grace) {
  state_->max_workers = std::max(1, max_workers);
  state_->max_hung = std::max(0, max_hung);
  state_->idle_exit = std::max(std::chrono::milliseconds(1), idle_exit);
}

WorkerPool::~WorkerPool() {
  std::unique_lock<std::mutex> lock(state_->mu);
  state_->stop = true;
  state_->queue.clear();
  for (const auto& w : state_->idle) w->cv.notify_one();
  state_->exit_cv.wait_for(lock, shutdown_grace_, [&] { return state_->threads == 0; });
  // Threads still running are stuck in a backend call; they exit (and free the state) on return.
}

void WorkerPool::worker_main(std::shared_ptr<State> st) {
  name_this_thread("tandem-run");
  const auto shared_self = std::make_shared<Worker>();
  Worker& self = *shared_self;
  std::unique_lock<std::mutex> lock(st->mu);
  st->starting--;
  std::shared_ptr<Call> call;
  for (;;) {
    if (!call) {
      if (st->stop) break;
      if (!st->queue.empty()) {  // (submit() queues only while no worker is on the stack)
        call = std::move(st->queue.front());
        st->queue.pop_front();
        if (self.on_stack) {
          st->idle.erase(std::find(st->idle.begin(), st->idle.end(), shared_self));
          self.on_stack = false;
        }
      } else {
        if (!self.on_stack) {
          st->idle.push_back(shared_self);
          self.on_stack = true;
        }
        self.cv.wait_for(lock, st->idle_exit, [&] { return st->stop || self.assigned != nullptr; });
        if (!self.assigned) break;  // stopping, or idle too long: the thread ends
        call = std::move(self.assigned);
      }
    }
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
    std::shared_ptr<Call> next;
    if (run) {
      std::vector<Value> outputs;
      Status s = call->fn(call->control, &outputs);
      Fn released = std::move(call->fn);  // the Call handle no longer keeps the captures alive
      {
        // Take the next queued call, or go on the idle stack, before the caller wakes, so that
        // the caller's next request reuses this thread instead of starting another.
        std::lock_guard<std::mutex> sl(st->mu);
        if (!st->queue.empty()) {
          next = std::move(st->queue.front());
          st->queue.pop_front();
        } else if (!st->stop) {
          st->idle.push_back(shared_self);
          self.on_stack = true;
        }
      }
      {
        std::lock_guard<std::mutex> cl(call->mu);
        call->finished_at = Clock::now();
        call->status = std::move(s);
        call->outputs = std::move(outputs);
        call->done = true;
        if (call->abandoned) st->hung--;
      }
      call->cv.notify_all();  // `call` is still held here, so its condition variable is alive
      released = nullptr;
    }
    call = std::move(next);
    lock.lock();
    if (!call && self.assigned) call = std::move(self.assigned);  // handed over while publishing
  }
  if (self.on_stack) st->idle.erase(std::find(st->idle.begin(), st->idle.end(), shared_self));
  st->threads--;
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
  State& st = *state_;
  std::unique_lock<std::mutex> lock(st.mu);
  if (st.stop) return Status(StatusCode::unavailable, "[" + name_ + "] the worker pool is shutting down");
  if (!st.idle.empty()) {
    std::shared_ptr<Worker> w = std::move(st.idle.back());
    st.idle.pop_back();
    w->on_stack = false;
    w->assigned = call;
    lock.unlock();
    w->cv.notify_one();
    return call;
  }
  st.queue.push_back(call);
  const int busy_not_hung = st.threads - static_cast<int>(st.idle.size()) - static_cast<int>(st.hung.load());
  if (st.starting < static_cast<int>(st.queue.size()) && busy_not_hung < st.max_workers) {
    try {
      std::thread(worker_main, state_).detach();
      st.threads++;
      st.starting++;
    } catch (const std::exception& e) {  // out of threads: queued calls wait for a running worker
      if (st.threads - static_cast<int>(st.hung.load()) <= 0) {
        st.queue.pop_back();
        return Status(StatusCode::unavailable, "[" + name_ + "] cannot start a worker thread: " + e.what());
      }
    }
  }
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
