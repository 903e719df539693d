// Fault injection: spec parsing and the FaultyBackend wrapper's behaviours.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <memory>
#include <thread>

#include "backends/backend.h"
#include "engine/faulty_backend.h"
#include "engine/placement.h"
#include "engine_test_util.h"
#include "onnx/loader.h"

namespace tandem {
namespace {

using testing_util::ManualClock;

TEST(EngineFaultSpec, ParsesEveryKey) {
  auto s = parse_fault_spec(
      "error=0.3,hang=0.01,hang_ms=5000,latency_ms=2,nan=1.0,offset=-0.25,fail_after=100,recover_after_s=5,seed=9");
  ASSERT_TRUE(s.is_ok()) << s.status().to_string();
  EXPECT_DOUBLE_EQ(s->error_rate, 0.3);
  EXPECT_DOUBLE_EQ(s->hang_rate, 0.01);
  EXPECT_DOUBLE_EQ(s->hang_ms, 5000);
  EXPECT_DOUBLE_EQ(s->latency_ms, 2);
  EXPECT_DOUBLE_EQ(s->nan_rate, 1.0);
  EXPECT_DOUBLE_EQ(s->offset, -0.25);
  EXPECT_EQ(s->fail_after, 100);
  EXPECT_DOUBLE_EQ(s->recover_after_s, 5);
  EXPECT_EQ(s->seed, 9u);
  // The canonical text parses back to the same spec.
  auto again = parse_fault_spec(s->to_string());
  ASSERT_TRUE(again.is_ok());
  EXPECT_EQ(again->to_string(), s->to_string());
  EXPECT_EQ(parse_fault_spec("")->to_string(), "");
}

TEST(EngineFaultSpec, RejectsBadInput) {
  for (const char* bad : {"error=1.5", "error=abc", "boom=1", "error", "hang=-0.1", "fail_after=2.5", "latency_ms=nan",
                          "offset=x"}) {
    auto s = parse_fault_spec(bad);
    ASSERT_FALSE(s.is_ok()) << bad;
    EXPECT_EQ(s.status().code(), StatusCode::invalid_argument);
    EXPECT_EQ(s.status().message().find('\n'), std::string::npos);
  }
}

class FaultyBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = load_model_from_bytes(testing_util::tiny_model_bytes(), {}, "tiny");
    ASSERT_TRUE(m.is_ok()) << m.status().to_string();
    model_ = std::move(m).value();
    auto in = testing_util::tiny_inputs();
    inputs_ = {in.at("x")};
  }
  // Places the tiny model on `b` alone and runs it once.
  Status run_once(FaultyBackend& b, std::vector<Value>* out, RunControl control = {}) {
    auto placed = PlacedModel::create(model_.graph, {&b});
    if (!placed) return placed.status();
    return (*placed)->run(inputs_, out, control);
  }
  Model model_;
  std::vector<Value> inputs_;
};

TEST_F(FaultyBackendTest, PassesThroughUntilArmed) {
  auto spec = parse_fault_spec("error=1.0");
  FaultyBackend b(find_backend("reference"), *spec);
  EXPECT_EQ(b.name(), "faulty(reference)");
  std::vector<Value> out;
  EXPECT_TRUE(run_once(b, &out).is_ok());
  b.arm();
  Status s = run_once(b, &out);
  EXPECT_EQ(s.code(), StatusCode::device_error);
  EXPECT_NE(s.message().find("injected"), std::string::npos);
  EXPECT_EQ(b.counts().calls, 1u);
  EXPECT_EQ(b.counts().errors, 1u);
}

TEST_F(FaultyBackendTest, ErrorRateIsRoughlyRight) {
  auto spec = parse_fault_spec("error=0.3,seed=4");
  FaultyBackend b(find_backend("reference"), *spec);
  b.arm();
  auto placed = PlacedModel::create(model_.graph, {&b});
  ASSERT_TRUE(placed.is_ok());
  int failures = 0;
  for (int i = 0; i < 2000; ++i) {
    std::vector<Value> out;
    failures += !(*placed)->run(inputs_, &out).is_ok();
  }
  EXPECT_NEAR(failures / 2000.0, 0.3, 0.04);
}

TEST_F(FaultyBackendTest, FailAfterAndRecoverAfter) {
  auto clock = std::make_shared<ManualClock>();
  auto spec = parse_fault_spec("fail_after=3,recover_after_s=10");
  FaultyBackend b(find_backend("reference"), *spec, clock);
  b.arm();
  std::vector<Value> out;
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(run_once(b, &out).is_ok()) << i;
  EXPECT_EQ(run_once(b, &out).code(), StatusCode::device_error);
  EXPECT_EQ(run_once(b, &out).code(), StatusCode::device_error);
  EXPECT_FALSE(b.recovered());
  clock->advance_ms(10000);
  EXPECT_TRUE(b.recovered());
  EXPECT_TRUE(run_once(b, &out).is_ok());
}

TEST_F(FaultyBackendTest, NanOutputs) {
  auto spec = parse_fault_spec("nan=1.0");
  FaultyBackend b(find_backend("reference"), *spec);
  b.arm();
  std::vector<Value> out;
  ASSERT_TRUE(run_once(b, &out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  for (int64_t i = 0; i < out[0].tensor.numel(); ++i) EXPECT_TRUE(std::isnan(out[0].tensor.data<float>()[i]));
  EXPECT_EQ(b.counts().nans, 1u);
}

TEST_F(FaultyBackendTest, OffsetShiftsFloatOutputsOnceArmed) {
  auto spec = parse_fault_spec("offset=0.5");
  FaultyBackend b(find_backend("reference"), *spec);
  std::vector<Value> out;
  ASSERT_TRUE(run_once(b, &out).is_ok());  // not armed: the plain answer
  const std::vector<float> expected = testing_util::tiny_expected();
  for (int64_t i = 0; i < out[0].tensor.numel(); ++i) EXPECT_EQ(out[0].tensor.data<float>()[i], expected[size_t(i)]);
  b.arm();
  out.clear();
  ASSERT_TRUE(run_once(b, &out).is_ok());
  ASSERT_EQ(out.size(), 1u);
  for (int64_t i = 0; i < out[0].tensor.numel(); ++i)
    EXPECT_FLOAT_EQ(out[0].tensor.data<float>()[i], expected[size_t(i)] + 0.5f) << i;
}

TEST_F(FaultyBackendTest, HangIgnoresDeadlineButEndsOnShutdown) {
  auto spec = parse_fault_spec("hang=1.0,hang_ms=60000");
  FaultyBackend b(find_backend("reference"), *spec);
  b.arm();
  auto placed = PlacedModel::create(model_.graph, {&b});
  ASSERT_TRUE(placed.is_ok());
  std::atomic<bool> returned{false};
  std::thread t([&] {
    RunControl c;
    c.deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(1);
    std::vector<Value> out;
    (void)(*placed)->run(inputs_, &out, c);
    returned = true;
  });
  // Wait (bounded) until the call is really inside the hang.
  for (int i = 0; i < 2000 && b.counts().hangs == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_EQ(b.counts().hangs, 1u);
  EXPECT_FALSE(returned.load());
  const auto t0 = std::chrono::steady_clock::now();
  b.shutdown();
  t.join();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  EXPECT_TRUE(returned.load());
}

}  // namespace
}  // namespace tandem
