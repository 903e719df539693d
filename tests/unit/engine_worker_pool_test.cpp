// The worker pool that backend calls run on: which thread takes a call, how the pool shrinks,
// abandoned (hung) calls and their cap, and shutdown. Calls block on a Gate the test opens,
// so every ordering below is forced, not timed.
#include <gtest/gtest.h>
#include <pthread.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <set>
#include <string>
#include <thread>

#include "core/sysinfo.h"
#include "engine/worker_pool.h"

namespace tandem {
namespace {

using Clock = WorkerPool::Clock;

// A latch a call waits on until the test opens it.
class Gate {
 public:
  void open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// A call that records the thread it ran on, after waiting on `gate` (when given).
WorkerPool::Fn recording(std::thread::id* ran_on, Gate* gate = nullptr) {
  return [ran_on, gate](const RunControl&, std::vector<Value>*) {
    if (gate) gate->wait();
    *ran_on = std::this_thread::get_id();
    return Status::ok();
  };
}

Clock::time_point far() { return Clock::now() + std::chrono::hours(1); }

void finish(WorkerPool& pool, WorkerPool::Call& call) {
  ASSERT_EQ(pool.wait(call, far(), nullptr, nullptr, nullptr), WorkerPool::WaitResult::done);
  ASSERT_TRUE(call.status.is_ok()) << call.status.to_string();
}

// Polls `done` for up to 10 s of wall time (a bound for a slow machine, not a timing).
template <typename F>
bool eventually(F done) {
  const auto until = Clock::now() + std::chrono::seconds(10);
  while (!done()) {
    if (Clock::now() > until) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

bool started(WorkerPool::Call& call) {
  std::lock_guard<std::mutex> lock(call.mu);
  return call.started;
}

TEST(EngineWorkerPool, TheThreadThatWentIdleLastTakesTheNextCall) {
  WorkerPool pool("test", 4, 4);
  Gate first_gate, second_gate;
  std::thread::id first_thread, second_thread;
  auto first = pool.submit(recording(&first_thread, &first_gate), far());
  auto second = pool.submit(recording(&second_thread, &second_gate), far());
  ASSERT_TRUE(first.is_ok() && second.is_ok());
  ASSERT_TRUE(eventually([&] { return started(**first) && started(**second); }));  // on two threads
  first_gate.open();
  finish(pool, **first);
  second_gate.open();
  finish(pool, **second);
  ASSERT_NE(first_thread, second_thread);
  EXPECT_EQ(pool.threads(), 2u);
  // One call at a time from here on: each goes to the thread that finished last, so all of them
  // run on the second call's thread and the first stays idle.
  for (int i = 0; i < 20; ++i) {
    std::thread::id ran_on;
    auto call = pool.submit(recording(&ran_on), far());
    ASSERT_TRUE(call.is_ok());
    finish(pool, **call);
    EXPECT_EQ(ran_on, second_thread) << "call " << i;
  }
  EXPECT_EQ(pool.threads(), 2u);
}

std::string this_thread_name() {
  char name[16] = {};
  pthread_getname_np(pthread_self(), name, sizeof name);
  return name;
}

// Its threads carry the role's name, as `top -H` and `perf` show them.
TEST(EngineWorkerPool, ThreadsAreNamedForTheirRole) {
  WorkerPool pool("test", 1, 1);
  std::string name;
  auto call = pool.submit(
      [&name](const RunControl&, std::vector<Value>*) {
        name = this_thread_name();
        return Status::ok();
      },
      far());
  ASSERT_TRUE(call.is_ok());
  finish(pool, **call);
  EXPECT_EQ(name, "tandem-run");
}

TEST(ThreadName, KeepsTheFirstFifteenBytes) {
  std::string seen;
  std::thread([&seen] {
    name_this_thread("tandem-a-very-long-role-name");
    seen = this_thread_name();
  }).join();
  EXPECT_EQ(seen, "tandem-a-very-l");
}

TEST(EngineWorkerPool, IdleThreadsExitAndThePoolStartsAgain) {
  WorkerPool pool("test", 4, 4, std::chrono::milliseconds(2000), std::chrono::milliseconds(20));
  Gate gate;
  std::vector<std::thread::id> ids(3);
  std::vector<std::shared_ptr<WorkerPool::Call>> calls;
  for (auto& id : ids) {
    auto c = pool.submit(recording(&id, &gate), far());
    ASSERT_TRUE(c.is_ok());
    calls.push_back(*c);
  }
  EXPECT_EQ(pool.threads(), 3u);  // three calls blocked at once: three threads
  gate.open();
  for (auto& c : calls) finish(pool, *c);
  EXPECT_TRUE(eventually([&] { return pool.threads() == 0; })) << pool.threads() << " threads left";
  std::thread::id ran_on;
  auto again = pool.submit(recording(&ran_on), far());
  ASSERT_TRUE(again.is_ok());
  finish(pool, **again);
  EXPECT_NE(ran_on, std::thread::id());
}

TEST(EngineWorkerPool, QueuedCallsWaitForTheCapAndRunInOrder) {
  WorkerPool pool("test", 1, 4);
  Gate gate;
  std::thread::id a_thread, b_thread, c_thread;
  auto a = pool.submit(recording(&a_thread, &gate), far());
  auto b = pool.submit(recording(&b_thread), far());
  auto c = pool.submit(recording(&c_thread), far());
  ASSERT_TRUE(a.is_ok() && b.is_ok() && c.is_ok());
  EXPECT_EQ(pool.threads(), 1u);  // max_workers 1: the others queue
  EXPECT_FALSE(pool.wait_done(**b, Clock::now()));
  gate.open();
  finish(pool, **c);
  EXPECT_TRUE((*a)->done && (*b)->done);
  EXPECT_LE((*b)->finished_at, (*c)->started_at);
  EXPECT_EQ(a_thread, b_thread);
  EXPECT_EQ(b_thread, c_thread);
}

TEST(EngineWorkerPool, AbandonedCallsAreCountedHungAndCapped) {
  WorkerPool pool("test", 2, 1);
  Gate gate;
  std::atomic<bool> saw_cancel{false};
  auto hung = pool.submit(
      [&](const RunControl& control, std::vector<Value>*) {
        gate.wait();
        saw_cancel = control.cancel && control.cancel->load();
        return Status::ok();
      },
      far());
  ASSERT_TRUE(hung.is_ok());
  ASSERT_TRUE(eventually([&] { return started(**hung); }));
  EXPECT_EQ(pool.wait(**hung, Clock::now(), nullptr, nullptr, nullptr), WorkerPool::WaitResult::timed_out);
  EXPECT_EQ(pool.hung(), 1u);
  EXPECT_EQ(pool.abandoned_total(), 1u);
  auto refused = pool.submit(recording(nullptr), far());
  ASSERT_FALSE(refused.is_ok());
  EXPECT_EQ(refused.status().code(), StatusCode::unavailable);
  gate.open();  // the hung call returns: its thread is free again
  EXPECT_TRUE(eventually([&] { return pool.hung() == 0; }));
  EXPECT_TRUE(saw_cancel.load());
  std::thread::id ran_on;
  auto next = pool.submit(recording(&ran_on), far());
  ASSERT_TRUE(next.is_ok());
  finish(pool, **next);
  EXPECT_EQ(pool.abandoned_total(), 1u);
}

TEST(EngineWorkerPool, ACallAbandonedBeforeItStartsNeverRuns) {
  WorkerPool pool("test", 1, 4);
  Gate gate;
  std::thread::id first_thread, never;
  auto first = pool.submit(recording(&first_thread, &gate), far());
  auto queued = pool.submit(recording(&never), far());
  ASSERT_TRUE(first.is_ok() && queued.is_ok());
  EXPECT_EQ(pool.wait(**queued, Clock::now(), nullptr, nullptr, nullptr), WorkerPool::WaitResult::timed_out);
  EXPECT_EQ(pool.hung(), 0u);  // it never started, so nothing hangs
  gate.open();
  finish(pool, **first);
  std::thread::id after;
  auto last = pool.submit(recording(&after), far());
  ASSERT_TRUE(last.is_ok());
  finish(pool, **last);
  EXPECT_EQ(never, std::thread::id());
  EXPECT_FALSE((*queued)->started);
}

TEST(EngineWorkerPool, DestroyingThePoolStopsIdleThreadsAndLeavesRunningCallsToFinish) {
  Gate gate;
  std::shared_ptr<WorkerPool::Call> running;
  std::thread::id ran_on;
  const auto t0 = Clock::now();
  {
    WorkerPool pool("test", 2, 4, std::chrono::milliseconds(50));
    std::thread::id idle_thread;
    auto idle = pool.submit(recording(&idle_thread), far());
    ASSERT_TRUE(idle.is_ok());
    finish(pool, **idle);
    auto r = pool.submit(recording(&ran_on, &gate), far());
    ASSERT_TRUE(r.is_ok());
    running = *r;
  }  // the idle thread exits; the running call's thread is detached after the grace period
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  gate.open();
  std::unique_lock<std::mutex> lock(running->mu);
  running->cv.wait(lock, [&] { return running->done; });
  EXPECT_TRUE(running->status.is_ok());
  EXPECT_NE(ran_on, std::thread::id());
}

}  // namespace
}  // namespace tandem
