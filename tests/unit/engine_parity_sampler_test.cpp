// engine_parity_sampler_test.cpp: the parity sampler's bounds and verdicts. Pending samples are
// bounded by count and by bytes (a large model's samples must not pile up hundreds of MB behind
// a slow reference), one sample is always taken when none is pending, the reference re-runs at
// the lowest scheduling priority (their CPU time must not come out of the request path's), and
// the comparison holds each answer to the budget.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "engine/parity_sampler.h"

#ifdef __linux__
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace tandem {
namespace {

std::vector<Value> floats(size_t count, float value) {
  Tensor t(DataType::float32, {static_cast<int64_t>(count)});
  for (size_t i = 0; i < count; ++i) t.data<float>()[i] = value;
  return {Value::of(std::move(t))};
}

// A reference that waits until the test opens the gate, so that samples stay pending.
struct Gate {
  std::mutex mu;
  std::condition_variable cv;
  bool open = false;
  int runs = 0;
  void wait() {
    std::unique_lock<std::mutex> lock(mu);
    ++runs;
    cv.wait(lock, [&] { return open; });
  }
  void release() {
    std::lock_guard<std::mutex> lock(mu);
    open = true;
    cv.notify_all();
  }
};

TEST(ParitySampler, PendingSamplesAreBoundedByBytes) {
  Gate gate;
  std::atomic<int> results{0};
  ParitySampler sampler(
      64, {ParityBudget{}},
      [&](const std::vector<Value>& in, std::vector<Value>* out, const RunControl&) {
        gate.wait();
        *out = in;
        return Status::ok();
      },
      [&](const ParityResult&) { results++; });
  const size_t big = ParitySampler::kMaxPendingBytes / 4 / 2 + 1024;  // floats: over half the bound
  // The first sample is taken however large; while it waits, another of its size is not.
  EXPECT_TRUE(sampler.offer(0, floats(big, 1.0f), floats(1, 1.0f)));
  EXPECT_FALSE(sampler.has_room(big * 4));
  EXPECT_FALSE(sampler.offer(0, floats(big, 1.0f), floats(1, 1.0f)));
  EXPECT_TRUE(sampler.has_room(1024));
  EXPECT_TRUE(sampler.offer(0, floats(256, 1.0f), floats(256, 1.0f)));
  gate.release();
  ASSERT_TRUE(sampler.drain(10000));
  EXPECT_EQ(results.load(), 2);
  // Checked samples give their bytes back.
  EXPECT_TRUE(sampler.has_room(big * 4));
  EXPECT_TRUE(sampler.offer(0, floats(big, 1.0f), floats(1, 1.0f)));
  EXPECT_TRUE(sampler.offer(0, floats(256, 1.0f), floats(256, 1.0f)));
  ASSERT_TRUE(sampler.drain(10000));
  EXPECT_EQ(results.load(), 4);
}

#ifdef __linux__
// The calling thread's nice value (Linux keeps one per thread).
int this_threads_nice() {
  errno = 0;
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
}

TEST(ParitySampler, ReferenceRunsAtTheLowestPriority) {
  const int caller = this_threads_nice();
  std::atomic<int> seen{-100}, policy{-100};
  ParitySampler sampler(
      4, {ParityBudget{}},
      [&](const std::vector<Value>& in, std::vector<Value>* out, const RunControl&) {
        seen = this_threads_nice();
        policy = sched_getscheduler(0);  // (0: the calling thread)
        *out = in;
        return Status::ok();
      },
      [](const ParityResult&) {});
  ASSERT_TRUE(sampler.offer(0, floats(4, 1.0f), floats(4, 1.0f)));
  ASSERT_TRUE(sampler.drain(10000));
  EXPECT_EQ(seen.load(), 19);
  EXPECT_EQ(policy.load(), SCHED_IDLE);
  EXPECT_EQ(this_threads_nice(), caller) << "the caller's own priority must not change";
  // And a plain background queue (the breaker's probes) keeps its creator's priority.
  std::atomic<int> probe{-100};
  BackgroundQueue probes(1);
  ASSERT_TRUE(probes.offer([&](const std::atomic<bool>&) { probe = this_threads_nice(); }));
  ASSERT_TRUE(probes.drain(10000));
  EXPECT_EQ(probe.load(), caller);
}
#endif

TEST(ParitySampler, ComparisonHoldsAnswersToTheBudget) {
  ParityBudget budget;
  budget.max_abs = 1e-2;
  budget.rmse = 1e-3;
  const ParityResult close = ParitySampler::compare(floats(100, 1.0f), floats(100, 1.0005f), budget);
  EXPECT_TRUE(close.ok);
  EXPECT_FALSE(close.violation);
  EXPECT_NEAR(close.max_abs, 5e-4, 1e-6);
  const ParityResult far = ParitySampler::compare(floats(100, 1.0f), floats(100, 1.05f), budget);
  EXPECT_TRUE(far.violation);
  EXPECT_NEAR(far.max_abs, 0.05, 1e-6);
  EXPECT_TRUE(ParitySampler::compare(floats(100, 1.0f), floats(99, 1.0f), budget).violation);  // shapes differ
}

}  // namespace
}  // namespace tandem
