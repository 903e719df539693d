// Tests of SideTasks (src/server/side_tasks.h): every task runs once, idle helpers run tasks
// beside the caller, a busy helper never makes the caller wait, and runs from many threads at
// once stay apart.
#include "server/side_tasks.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace tandem::server {
namespace {

using namespace std::chrono_literals;

TEST(SideTasks, RunsEveryTaskExactlyOnce) {
  for (int threads : {0, 1, 3}) {
    SideTasks pool(threads);
    EXPECT_EQ(pool.threads(), threads);
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}, size_t{7}, size_t{200}}) {
      std::vector<std::atomic<int>> runs(n);
      pool.run(n, [&](size_t i) { runs[i].fetch_add(1); });
      for (size_t i = 0; i < n; ++i)
        EXPECT_EQ(runs[i].load(), 1) << "threads " << threads << ", task " << i << " of " << n;
    }
  }
}

TEST(SideTasks, AnIdleHelperRunsTasksBesideTheCaller) {
  SideTasks pool(1);
  std::mutex mutex;
  std::condition_variable both_started;
  int started = 0;
  std::vector<std::thread::id> ran_on(2);
  bool overlapped = true;
  pool.run(2, [&](size_t i) {
    std::unique_lock<std::mutex> lock(mutex);
    ran_on[i] = std::this_thread::get_id();
    ++started;
    both_started.notify_all();
    // Each task waits for the other: they finish only if two threads ran them at once.
    if (!both_started.wait_for(lock, 10s, [&] { return started == 2; })) overlapped = false;
  });
  EXPECT_TRUE(overlapped);
  EXPECT_NE(ran_on[0], ran_on[1]);
}

TEST(SideTasks, TheCallerRunsWhatABusyHelperCannotTake) {
  SideTasks pool(1);
  std::mutex mutex;
  std::condition_variable changed;
  int blocked = 0;
  bool release = false;
  // Another request's run() of two blocking tasks: its caller runs one, the only helper takes
  // the other, and both stay inside until released.
  std::thread other([&] {
    pool.run(2, [&](size_t) {
      std::unique_lock<std::mutex> lock(mutex);
      ++blocked;
      changed.notify_all();
      changed.wait(lock, [&] { return release; });
    });
  });
  {
    std::unique_lock<std::mutex> lock(mutex);
    ASSERT_TRUE(changed.wait_for(lock, 10s, [&] { return blocked == 2; }));
  }
  std::vector<std::thread::id> ran_on(6);
  pool.run(ran_on.size(), [&](size_t i) { ran_on[i] = std::this_thread::get_id(); });
  for (const std::thread::id& id : ran_on) EXPECT_EQ(id, std::this_thread::get_id());
  {
    std::lock_guard<std::mutex> lock(mutex);
    release = true;
  }
  changed.notify_all();
  other.join();
}

TEST(SideTasks, RunsFromManyThreadsStayApart) {
  SideTasks pool(2);
  std::vector<std::thread> callers;
  std::atomic<int> wrong{0};
  for (int c = 0; c < 4; ++c)
    callers.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        std::vector<int> runs(9, 0);  // each index is written by one task only
        pool.run(runs.size(), [&](size_t i) { runs[i] += 1; });
        for (int r : runs)
          if (r != 1) wrong.fetch_add(1);
      }
    });
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(wrong.load(), 0);
}

}  // namespace
}  // namespace tandem::server
