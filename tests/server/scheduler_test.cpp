// Tests of the scheduler (src/server/scheduler.h): admission, deadlines, drain, completion
// under concurrency and dynamic batching, against tiny models prepared by a real engine.
// A GatedModel in front of the prepared model can hold engine calls until released, so that
// requests queue up deterministically, and records the rows of every call it passes on.
#include <gtest/gtest.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

#include "server/scheduler.h"
#include "tandem/engine.h"

namespace tandem::server {
namespace {

using namespace std::chrono_literals;
using Clock = Scheduler::Clock;

// One folder of test models per process (ctest runs the tests of this file in parallel
// processes), removed when the tests end.
std::filesystem::path model_dir() {
  return std::filesystem::temp_directory_path() / ("tandem_scheduler_test_" + std::to_string(::getpid()));
}
class RemoveModelDir final : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    std::filesystem::remove_all(model_dir(), ec);
  }
};
[[maybe_unused]] const auto* const kRemoveModelDir = ::testing::AddGlobalTestEnvironment(new RemoveModelDir);

// Writes an ONNX model with one float input x[N, M]; `body` defines its graph `g` (Python).
std::filesystem::path write_model(const std::string& name, const std::string& body) {
  const std::filesystem::path dir = model_dir();
  std::filesystem::create_directories(dir);
  const std::filesystem::path path = dir / (name + ".onnx");
  const std::filesystem::path script = dir / (name + ".py");
  std::ofstream(script) << "import numpy as np, onnx\nfrom onnx import helper as h, TensorProto as T\n"
                        << "x = h.make_tensor_value_info('x', T.FLOAT, ['N', 'M'])\n"
                        << body << "m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)])\nm.ir_version = 8\n"
                        << "onnx.save(m, '" << path.string() << "')\n";
  const std::string command = "/usr/bin/python3 " + script.string();
  if (std::system(command.c_str()) != 0) return {};
  return path;
}

// y = x + x and z = x * x, both [N, M].
std::filesystem::path elementwise_model() {
  return write_model("elementwise",
                     "y = h.make_tensor_value_info('y', T.FLOAT, ['N', 'M'])\n"
                     "z = h.make_tensor_value_info('z', T.FLOAT, ['N', 'M'])\n"
                     "g = h.make_graph([h.make_node('Add', ['x', 'x'], ['y']), h.make_node('Mul', ['x', 'x'], ['z'])],"
                     " 'g', [x], [y, z])\n");
}

// y = the sum of x over dim 0, kept: [1, M] whatever the rows.
std::filesystem::path reduce_model() {
  return write_model("reduce",
                     "y = h.make_tensor_value_info('y', T.FLOAT, [1, 'M'])\n"
                     "axes = h.make_tensor('axes', T.INT64, [1], [0])\n"
                     "g = h.make_graph([h.make_node('ReduceSum', ['x', 'axes'], ['y'], keepdims=1)], 'g', [x], [y],"
                     " initializer=[axes])\n");
}

// `check_rows`: PrepareOptions::check_batch_rows, as the server sets it for batching.
std::shared_ptr<PreparedModel> prepare(const std::filesystem::path& path, bool check_rows = false) {
  static std::unique_ptr<Engine> engine = std::move(Engine::create({}).value());
  PrepareOptions options;
  options.warmup_runs = 1;
  options.check_batch_rows = check_rows;
  options.input_shapes = {};
  auto model = engine->prepare(path, options);
  if (!model) ADD_FAILURE() << model.status().to_string();
  return model ? *model : nullptr;
}

// Passes calls on to a prepared model; while closed, holds them until open() is called, or
// until the call's InferOptions::interrupted says so (checked every millisecond, as the engine
// checks it while it waits for a backend): the call then ends with `cancelled`.
class GatedModel : public PreparedModel {
 public:
  explicit GatedModel(std::shared_ptr<PreparedModel> inner) : inner_(std::move(inner)) {}

  void close() { std::lock_guard<std::mutex> lock(mutex_); open_ = false; }
  void open() {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = true;
    changed_.notify_all();
  }
  void fail_with(Status status) { std::lock_guard<std::mutex> lock(mutex_); failure_ = std::move(status); }
  // Waits until `n` calls have entered infer().
  bool wait_entered(size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, 10s, [&] { return calls_.size() >= n; });
  }
  // Dim 0 of input x of every call, in order.
  std::vector<int64_t> call_rows() const { std::lock_guard<std::mutex> lock(mutex_); return calls_; }
  std::vector<Clock::time_point> call_times() const { std::lock_guard<std::mutex> lock(mutex_); return call_times_; }

  Result<InferResult> infer(const std::map<std::string, Value>& inputs, const InferOptions& options) override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      calls_.push_back(inputs.at("x").tensor.dim(0));
      call_times_.push_back(Clock::now());
      changed_.notify_all();
      while (!open_) {
        if (options.interrupted && options.interrupted(options.interrupted_context))
          return Status(StatusCode::cancelled, "interrupted while held at the gate");
        changed_.wait_for(lock, 1ms);
      }
      if (!failure_.is_ok()) return failure_;
    }
    return inner_->infer(inputs, options);
  }
  const IoSchema& io_schema() const override { return inner_->io_schema(); }
  const std::string& cache_key() const override { return inner_->cache_key(); }
  const std::string& cache_key_text() const override { return inner_->cache_key_text(); }
  const SlaEstimate& sla_estimate() const override { return inner_->sla_estimate(); }
  const PlacementInfo& placement() const override { return inner_->placement(); }
  const std::string& name() const override { return inner_->name(); }
  Capabilities capabilities() const override { return inner_->capabilities(); }
  ModelTelemetry telemetry() const override { return inner_->telemetry(); }
  bool drain_parity(double timeout_ms) override { return inner_->drain_parity(timeout_ms); }

 private:
  std::shared_ptr<PreparedModel> inner_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  Status failure_;
  std::vector<int64_t> calls_;
  std::vector<Clock::time_point> call_times_;
};

// Outcomes by request id, gathered from `done` callbacks.
class Outcomes {
 public:
  Scheduler::Done done_for(const std::string& id) {
    return [this, id](InferOutcome&& outcome) {
      std::lock_guard<std::mutex> lock(mutex_);
      ++calls_[id];
      completed_at_[id] = Clock::now();
      on_caller_thread_ += std::this_thread::get_id() == caller_ ? 1 : 0;
      outcomes_[id] = std::move(outcome);
      changed_.notify_all();
    };
  }
  bool wait_for(size_t n) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, 20s, [&] { return outcomes_.size() >= n; });
  }
  InferOutcome get(const std::string& id) { std::lock_guard<std::mutex> lock(mutex_); return outcomes_.at(id); }
  Clock::time_point completed_at(const std::string& id) {
    std::lock_guard<std::mutex> lock(mutex_);
    return completed_at_.at(id);
  }
  std::map<std::string, int> calls() { std::lock_guard<std::mutex> lock(mutex_); return calls_; }
  int on_caller_thread() { std::lock_guard<std::mutex> lock(mutex_); return on_caller_thread_; }

 private:
  std::mutex mutex_;
  std::condition_variable changed_;
  std::map<std::string, InferOutcome> outcomes_;
  std::map<std::string, int> calls_;
  std::map<std::string, Clock::time_point> completed_at_;
  std::thread::id caller_ = std::this_thread::get_id();
  int on_caller_thread_ = 0;
};

// A request for x[rows, cols] holding first, first + 1, ...
InferRequest make_request(const std::string& id, int64_t rows, int64_t cols, float first) {
  InferRequest request;
  request.model = "m";
  request.id = id;
  Tensor x(DataType::float32, {rows, cols});
  for (int64_t i = 0; i < rows * cols; ++i) x.data<float>()[i] = first + static_cast<float>(i);
  request.inputs.push_back(InferTensor{"x", x});
  return request;
}

const InferTensor* find_output(const InferOutcome& outcome, const std::string& name) {
  for (const InferTensor& t : outcome.response.outputs)
    if (t.name == name) return &t;
  return nullptr;
}

// Checks that `outcome` answers make_request(_, rows, cols, first) on the elementwise model.
void expect_doubled(const InferOutcome& outcome, int64_t rows, int64_t cols, float first) {
  ASSERT_FALSE(outcome.error) << outcome.error->message;
  const InferTensor* y = find_output(outcome, "y");
  ASSERT_NE(y, nullptr);
  ASSERT_EQ(y->tensor.shape(), (Shape{rows, cols}));
  for (int64_t i = 0; i < rows * cols; ++i) EXPECT_EQ(y->tensor.data<float>()[i], 2 * (first + static_cast<float>(i)));
}

Clock::time_point in(std::chrono::milliseconds ms) { return Clock::now() + ms; }
constexpr Clock::time_point kNoDeadline = Clock::time_point::max();

Scheduler::Options plain(int instances, int max_queue_size) {
  Scheduler::Options options;
  options.instances = instances;
  options.max_queue_size = max_queue_size;
  options.model_name = "m";
  options.version = "1";
  // The tests below hold engine calls at a gate from the test's own thread: every call goes
  // to a worker (the caller-runs path has its own test).
  options.caller_runs = false;
  return options;
}

// One instance over a closed gate, held by request "running" once hold() returns (it finishes
// when the test opens the gate): whatever is submitted next waits in the queue, of
// `max_queue_size` places. Members in the order the tests declared them.
struct HeldInstance {
  explicit HeldInstance(int max_queue_size) : scheduler(gated, plain(1, max_queue_size)) {}
  void hold() {
    gated->close();
    ASSERT_FALSE(scheduler.submit(make_request("running", 1, 3, 0), kNoDeadline, outcomes.done_for("running")));
    ASSERT_TRUE(gated->wait_entered(1));
  }
  std::shared_ptr<GatedModel> gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler scheduler;
  Outcomes outcomes;
};

Scheduler::Options batched(int instances, int max_batch_size, int64_t delay_us, std::vector<int> preferred = {}) {
  Scheduler::Options options = plain(instances, 64);
  options.batching.enabled = true;
  options.batching.max_batch_size = max_batch_size;
  options.batching.max_queue_delay_us = delay_us;
  options.batching.preferred_batch_sizes = std::move(preferred);
  return options;
}

TEST(Scheduler, AnswersWithEveryOutputOrTheRequestedOnes) {
  auto model = prepare(elementwise_model());
  ASSERT_TRUE(model);
  Scheduler scheduler(model, plain(1, 4));
  Outcomes outcomes;
  ASSERT_FALSE(scheduler.submit(make_request("all", 2, 3, 1), kNoDeadline, outcomes.done_for("all")));
  InferRequest only_z = make_request("z", 1, 2, 5);
  only_z.outputs.push_back(RequestedOutput{"z", true});
  ASSERT_FALSE(scheduler.submit(std::move(only_z), in(10s), outcomes.done_for("z")));
  ASSERT_TRUE(outcomes.wait_for(2));

  const InferOutcome all = outcomes.get("all");
  expect_doubled(all, 2, 3, 1);
  ASSERT_EQ(all.response.outputs.size(), 2u);
  EXPECT_EQ(all.response.outputs[0].name, "y");  // the model's declared order
  EXPECT_EQ(all.response.outputs[1].name, "z");
  EXPECT_EQ(all.response.id, "all");
  EXPECT_EQ(all.response.model, "m");
  EXPECT_EQ(all.response.version, "1");
  EXPECT_FALSE(all.response.backend.empty());
  EXPECT_EQ(all.batch_rows, 1);

  const InferOutcome z = outcomes.get("z");
  ASSERT_FALSE(z.error);
  ASSERT_EQ(z.response.outputs.size(), 1u);
  EXPECT_EQ(z.response.outputs[0].name, "z");
  EXPECT_TRUE(z.response.outputs[0].binary);
  EXPECT_EQ(z.response.outputs[0].tensor.data<float>()[1], 36.0f);

  const Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.admitted, 2u);
  EXPECT_EQ(stats.succeeded, 2u);
  EXPECT_EQ(stats.failed, 0u);
  EXPECT_EQ(stats.queue_time.count(), 2u);
  EXPECT_EQ(stats.batch_rows.at(1), 2u);
  uint64_t served = 0;  // a slow call may fall back to another route: count every route
  for (const auto& [backend, requests] : stats.served_by) served += requests;
  EXPECT_EQ(served, 2u);
  EXPECT_GE(stats.served_by.at(all.response.backend), 1u);
  EXPECT_EQ(outcomes.on_caller_thread(), 0);
  // The statistics extension's figures: without batching each request is one inference and
  // one engine call; a request's time from submit to completion covers its call's.
  EXPECT_EQ(stats.success.count, 2u);
  EXPECT_EQ(stats.fail.count, 0u);
  EXPECT_EQ(stats.inference_count, 2u);
  EXPECT_EQ(stats.execution_count, 2u);
  EXPECT_GT(stats.queue_time.sum_ns(), 0.0);  // the statistics extension's `queue`
  for (const auto* d : {&stats.compute_input, &stats.compute_infer, &stats.compute_output}) EXPECT_EQ(d->count, 2u);
  EXPECT_GT(stats.compute_infer.ns, 0u);
  EXPECT_GE(stats.success.ns, stats.compute_input.ns + stats.compute_infer.ns + stats.compute_output.ns);
  ASSERT_EQ(stats.batch_compute.size(), 1u);
  EXPECT_EQ(stats.batch_compute.at(1)[1].count, 2u);
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
          .count();
  EXPECT_LE(stats.last_inference_ms, now_ms);
  EXPECT_GT(stats.last_inference_ms, now_ms - 60'000);
}

// Caller runs: an idle scheduler makes the call on the submitting thread (done before submit()
// returns); while that call holds the only instance, the next request queues for a worker.
TEST(Scheduler, AnIdleInstanceRunsTheCallOnTheCallersThread) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler::Options options = plain(1, 4);
  options.caller_runs = true;
  Scheduler scheduler(gated, options);
  Outcomes outcomes;
  ASSERT_FALSE(scheduler.submit(make_request("inline", 1, 3, 0), kNoDeadline, outcomes.done_for("inline")));
  EXPECT_EQ(outcomes.calls().count("inline"), 1u);  // already done when submit() returned
  EXPECT_EQ(outcomes.on_caller_thread(), 1);

  gated->close();
  std::thread other([&] {
    EXPECT_FALSE(scheduler.submit(make_request("held", 1, 3, 0), kNoDeadline, outcomes.done_for("held")));
  });
  ASSERT_TRUE(gated->wait_entered(2));  // "held" runs on `other`, inside its submit()
  const Clock::time_point before = Clock::now();
  ASSERT_FALSE(scheduler.submit(make_request("queued", 1, 3, 0), kNoDeadline, outcomes.done_for("queued")));
  EXPECT_LT(Clock::now() - before, 100ms);  // the instance is busy: queued, not run here
  EXPECT_EQ(scheduler.stats().queued, 1);
  EXPECT_EQ(gated->call_rows().size(), 2u);  // the bound holds: no second call while one runs
  gated->open();
  other.join();
  ASSERT_TRUE(outcomes.wait_for(3));
  EXPECT_FALSE(outcomes.get("held").error);
  EXPECT_FALSE(outcomes.get("queued").error);
  EXPECT_EQ(outcomes.on_caller_thread(), 1);  // "queued" ran on a worker
  EXPECT_EQ(scheduler.stats().succeeded, 3u);
}

// A caller that says its thread must not block (an event loop with other connections) never
// makes the call itself, even when the scheduler is idle.
TEST(Scheduler, ACallerThatMustNotBlockHandsTheCallToAWorker) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler::Options options = plain(1, 4);
  options.caller_runs = true;
  Scheduler scheduler(gated, options);
  Outcomes outcomes;
  gated->close();
  const Clock::time_point before = Clock::now();
  ASSERT_FALSE(scheduler.submit(make_request("handed", 1, 3, 0), kNoDeadline, outcomes.done_for("handed"),
                                /*caller_may_run=*/false));
  EXPECT_LT(Clock::now() - before, 100ms);  // returned while the gated call cannot finish
  EXPECT_EQ(outcomes.calls().count("handed"), 0u);
  ASSERT_TRUE(gated->wait_entered(1));  // a worker runs it
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(1));
  EXPECT_FALSE(outcomes.get("handed").error);
  EXPECT_EQ(outcomes.on_caller_thread(), 0);
}

TEST(Scheduler, EngineErrorsAreMappedFromTheirStatus) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  gated->fail_with(Status(StatusCode::invalid_argument, "input 'x': bad"));
  Scheduler scheduler(gated, plain(1, 4));
  Outcomes outcomes;
  ASSERT_FALSE(scheduler.submit(make_request("a", 1, 3, 0), kNoDeadline, outcomes.done_for("a")));
  ASSERT_TRUE(outcomes.wait_for(1));
  const InferOutcome a = outcomes.get("a");
  ASSERT_TRUE(a.error);
  EXPECT_EQ(a.error->http_status, 400);
  EXPECT_NE(a.error->message.find("input 'x': bad"), std::string::npos);
  const Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.fail.count, 1u);  // the statistics extension's figures
  EXPECT_EQ(stats.success.count, 0u);
  EXPECT_EQ(stats.inference_count, 0u);
  EXPECT_EQ(stats.execution_count, 1u);
  EXPECT_EQ(stats.last_failure.rfind("400 ", 0), 0u) << stats.last_failure;
}

TEST(Scheduler, RefusesAtOnceWhenTheQueueIsFull) {
  HeldInstance held(1);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  EXPECT_FALSE(scheduler.refusal_now()) << "one place is left in the queue";
  ASSERT_FALSE(scheduler.submit(make_request("queued", 1, 3, 0), kNoDeadline, outcomes.done_for("queued")));
  // Asked before a body is read: the same refusal as submit()'s, counted as a rejection.
  auto early = scheduler.refusal_now();
  ASSERT_TRUE(early);
  EXPECT_EQ(early->http_status, 503);
  EXPECT_EQ(early->retry_after_s, 1);
  EXPECT_EQ(scheduler.stats().rejected, 1u);

  const Clock::time_point before = Clock::now();
  auto refused = scheduler.submit(make_request("refused", 1, 3, 0), kNoDeadline, outcomes.done_for("refused"));
  EXPECT_LT(Clock::now() - before, 100ms);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 503);
  EXPECT_EQ(refused->retry_after_s, 1);
  Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.rejected, 2u);
  EXPECT_EQ(stats.queued, 1);
  EXPECT_EQ(stats.in_flight, 1);

  gated->open();
  ASSERT_TRUE(outcomes.wait_for(2));
  EXPECT_FALSE(outcomes.get("running").error);
  EXPECT_FALSE(outcomes.get("queued").error);
  EXPECT_EQ(outcomes.calls().count("refused"), 0u);
  EXPECT_EQ(scheduler.stats().admitted, 2u);
}

TEST(Scheduler, ExpiresAQueuedRequestWithoutRunningIt) {
  HeldInstance held(4);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  ASSERT_FALSE(scheduler.submit(make_request("late", 1, 3, 0), in(50ms), outcomes.done_for("late")));

  ASSERT_TRUE(outcomes.wait_for(1));  // while the only instance is still held
  const InferOutcome late = outcomes.get("late");
  ASSERT_TRUE(late.error);
  EXPECT_EQ(late.error->http_status, 504);
  EXPECT_GE(late.queue_us, 50'000);
  Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.expired_in_queue, 1u);
  EXPECT_EQ(stats.failed, 1u);

  gated->open();
  ASSERT_TRUE(outcomes.wait_for(2));
  EXPECT_FALSE(outcomes.get("running").error);
  EXPECT_EQ(gated->call_rows().size(), 1u);  // "late" never reached the engine
}

// A client that goes away (closes its connection, cancels its call) while its request waits:
// the request completes with 499 when a worker next looks at the queue, and never runs.
TEST(Scheduler, DropsAQueuedRequestWhoseClientWentAway) {
  HeldInstance held(4);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  auto gone = std::make_shared<std::atomic<bool>>(false);
  InferRequest left = make_request("left", 1, 3, 0);
  left.client_gone = [gone] { return gone->load(); };
  ASSERT_FALSE(scheduler.submit(std::move(left), kNoDeadline, outcomes.done_for("left")));
  InferRequest stays = make_request("stays", 1, 3, 5);
  stays.client_gone = [] { return false; };
  ASSERT_FALSE(scheduler.submit(std::move(stays), kNoDeadline, outcomes.done_for("stays")));
  gone->store(true);
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(3));
  const InferOutcome dropped = outcomes.get("left");
  ASSERT_TRUE(dropped.error);
  EXPECT_EQ(dropped.error->http_status, 499);
  EXPECT_EQ(dropped.error->grpc_code(), 1);  // CANCELLED
  EXPECT_NE(dropped.error->message.find("went away"), std::string::npos) << dropped.error->message;
  expect_doubled(outcomes.get("stays"), 1, 3, 5);
  EXPECT_EQ(gated->call_rows().size(), 2u);  // "running" and "stays": "left" never reached the engine
  const Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.client_gone, 1u);
  EXPECT_EQ(stats.failed, 1u);
  EXPECT_EQ(stats.succeeded, 2u);
}

// An engine call whose clients have all gone is cancelled; one that someone still waits for
// runs on.
TEST(Scheduler, CancelsAnEngineCallOnlyWhenEveryClientOfItWentAway) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler scheduler(gated, batched(1, 4, 200'000, {2}));
  Outcomes outcomes;
  auto gone_a = std::make_shared<std::atomic<bool>>(false);
  auto gone_b = std::make_shared<std::atomic<bool>>(false);
  gated->close();
  InferRequest a = make_request("a", 1, 3, 0);
  a.client_gone = [gone_a] { return gone_a->load(); };
  InferRequest b = make_request("b", 1, 3, 10);
  b.client_gone = [gone_b] { return gone_b->load(); };
  ASSERT_FALSE(scheduler.submit(std::move(a), kNoDeadline, outcomes.done_for("a")));
  ASSERT_FALSE(scheduler.submit(std::move(b), kNoDeadline, outcomes.done_for("b")));
  ASSERT_TRUE(gated->wait_entered(1));  // one call of both (the preferred size 2)
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{2}));
  gone_a->store(true);
  std::this_thread::sleep_for(20ms);  // the call keeps waiting: "b" still wants the answer
  EXPECT_EQ(outcomes.calls().size(), 0u);
  gone_b->store(true);
  ASSERT_TRUE(outcomes.wait_for(2));
  for (const char* id : {"a", "b"}) {
    const InferOutcome o = outcomes.get(id);
    ASSERT_TRUE(o.error) << id;
    EXPECT_EQ(o.error->http_status, 499) << id;
    EXPECT_NE(o.error->message.find("engine call was cancelled"), std::string::npos) << o.error->message;
  }
  EXPECT_EQ(scheduler.stats().client_gone, 2u);
  gated->open();
  ASSERT_FALSE(scheduler.submit(make_request("after", 1, 3, 1), kNoDeadline, outcomes.done_for("after")));
  ASSERT_TRUE(outcomes.wait_for(3));
  expect_doubled(outcomes.get("after"), 1, 3, 1);
}

// The expiry thread is woken only for a deadline sooner than the one it waits for; each queued
// request must still expire at its own deadline, whatever order they arrive in.
TEST(Scheduler, ExpiresQueuedRequestsAtTheirOwnDeadlinesInAnyOrder) {
  HeldInstance held(8);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  ASSERT_FALSE(scheduler.submit(make_request("far", 1, 3, 0), in(30s), outcomes.done_for("far")));
  ASSERT_FALSE(scheduler.submit(make_request("near", 1, 3, 0), in(50ms), outcomes.done_for("near")));
  ASSERT_FALSE(scheduler.submit(make_request("later", 1, 3, 0), in(150ms), outcomes.done_for("later")));

  ASSERT_TRUE(outcomes.wait_for(2));  // "near" and "later", while the only instance is held
  for (const char* name : {"near", "later"}) {
    const InferOutcome o = outcomes.get(name);
    ASSERT_TRUE(o.error) << name;
    EXPECT_EQ(o.error->http_status, 504) << name;
    EXPECT_LT(o.queue_us, 10'000'000) << name << " waited for the far deadline";
  }
  EXPECT_GE(outcomes.get("near").queue_us, 50'000);
  EXPECT_GE(outcomes.get("later").queue_us, 150'000);
  EXPECT_EQ(outcomes.calls().count("far"), 0u);

  gated->open();
  ASSERT_TRUE(outcomes.wait_for(4));
  EXPECT_FALSE(outcomes.get("far").error);
  EXPECT_EQ(scheduler.stats().expired_in_queue, 2u);
}

TEST(Scheduler, DrainFinishesQueuedAndInFlightWorkThenRefuses) {
  HeldInstance held(4);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  ASSERT_FALSE(scheduler.submit(make_request("queued", 1, 3, 0), kNoDeadline, outcomes.done_for("queued")));

  std::thread opener([&] {
    gated->wait_entered(1);
    gated->open();
  });
  EXPECT_TRUE(scheduler.drain(10s));
  opener.join();
  EXPECT_EQ(outcomes.calls(), (std::map<std::string, int>{{"queued", 1}, {"running", 1}}));
  EXPECT_FALSE(outcomes.get("running").error);
  EXPECT_FALSE(outcomes.get("queued").error);

  auto refused = scheduler.submit(make_request("after", 1, 3, 0), kNoDeadline, outcomes.done_for("after"));
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 503);
  EXPECT_EQ(refused->retry_after_s, 0);
  EXPECT_EQ(scheduler.stats().rejected, 1u);
  EXPECT_TRUE(scheduler.drain(0ms));  // idempotent
}

TEST(Scheduler, DrainPastItsGraceFailsTheQueueAndWaitsForInFlightCalls) {
  HeldInstance held(4);
  ASSERT_NO_FATAL_FAILURE(held.hold());
  auto& [gated, scheduler, outcomes] = held;
  ASSERT_FALSE(scheduler.submit(make_request("queued", 1, 3, 0), kNoDeadline, outcomes.done_for("queued")));

  // The held call is released only once the queued request was given up; meanwhile, with
  // drain() still waiting for that call, new work is refused.
  std::optional<ProtocolError> refused_while_draining;
  std::thread opener([&] {
    outcomes.wait_for(1);
    refused_while_draining = scheduler.submit(make_request("new", 1, 3, 0), kNoDeadline, outcomes.done_for("new"));
    gated->open();
  });
  EXPECT_FALSE(scheduler.drain(50ms));
  opener.join();
  ASSERT_TRUE(refused_while_draining);
  EXPECT_EQ(refused_while_draining->http_status, 503);
  EXPECT_EQ(outcomes.calls().count("new"), 0u);
  ASSERT_TRUE(outcomes.get("queued").error);
  EXPECT_EQ(outcomes.get("queued").error->http_status, 503);
  EXPECT_FALSE(outcomes.get("running").error);  // waited for, not abandoned
  EXPECT_EQ(gated->call_rows().size(), 1u);
  EXPECT_FALSE(scheduler.drain(0ms));
}

// Many threads submit at once; every admitted request completes exactly once.
void submit_from_many_threads(Scheduler& scheduler, bool vary_shapes) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  Outcomes outcomes;
  std::atomic<int> admitted{0};
  std::atomic<int> refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        const std::string id = std::to_string(t) + "/" + std::to_string(i);
        const int64_t cols = vary_shapes ? 2 + (i % 2) : 3;
        auto error = scheduler.submit(make_request(id, 1 + i % 3, cols, static_cast<float>(t * 1000 + i * 10)),
                                      in(20s), outcomes.done_for(id));
        (error ? refused : admitted)++;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  ASSERT_TRUE(outcomes.wait_for(static_cast<size_t>(admitted.load())));
  ASSERT_TRUE(scheduler.drain(10s));

  const std::map<std::string, int> calls = outcomes.calls();
  EXPECT_EQ(calls.size(), static_cast<size_t>(admitted.load()));
  for (const auto& [id, count] : calls) EXPECT_EQ(count, 1) << id;
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kPerThread; ++i) {
      const std::string id = std::to_string(t) + "/" + std::to_string(i);
      if (calls.count(id))
        expect_doubled(outcomes.get(id), 1 + i % 3, vary_shapes ? 2 + (i % 2) : 3, static_cast<float>(t * 1000 + i * 10));
    }
  }
  const Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.admitted, static_cast<uint64_t>(admitted.load()));
  EXPECT_EQ(stats.rejected, static_cast<uint64_t>(refused.load()));
  EXPECT_EQ(stats.succeeded, stats.admitted);
  EXPECT_EQ(stats.queued, 0);
  EXPECT_EQ(stats.in_flight, 0);
  EXPECT_EQ(outcomes.on_caller_thread(), 0);
}

TEST(Scheduler, CompletesEveryAdmittedRequestExactlyOnceUnderConcurrency) {
  auto model = prepare(elementwise_model());
  ASSERT_TRUE(model);
  Scheduler scheduler(model, plain(3, 8));
  submit_from_many_threads(scheduler, false);
}

TEST(SchedulerBatching, CompletesEveryAdmittedRequestExactlyOnceUnderConcurrency) {
  auto model = prepare(elementwise_model());
  ASSERT_TRUE(model);
  Scheduler::Options options = batched(2, 8, 500);
  options.max_queue_size = 16;
  Scheduler scheduler(model, options);
  submit_from_many_threads(scheduler, true);
}

// Holds the scheduler's only instance with a request of `rows` rows (which must be
// max_batch_size, so that it leaves at once) until gated->open().
void hold_the_instance(Scheduler& scheduler, GatedModel& gated, Outcomes& outcomes, int64_t rows) {
  gated.close();
  ASSERT_FALSE(scheduler.submit(make_request("hold", rows, 3, 0), kNoDeadline, outcomes.done_for("hold")));
  ASSERT_TRUE(gated.wait_entered(1));
}

TEST(SchedulerBatching, MergesCompatibleRequestsAndGivesEachItsOwnRows) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler scheduler(gated, batched(1, 8, 200'000));
  Outcomes outcomes;
  hold_the_instance(scheduler, *gated, outcomes, 8);
  const Clock::time_point first_submitted = Clock::now();
  ASSERT_FALSE(scheduler.submit(make_request("b", 1, 3, 100), kNoDeadline, outcomes.done_for("b")));
  ASSERT_FALSE(scheduler.submit(make_request("c", 2, 3, 200), in(20s), outcomes.done_for("c")));
  ASSERT_FALSE(scheduler.submit(make_request("d", 1, 3, 300), kNoDeadline, outcomes.done_for("d")));
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(4));

  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{8, 4}));
  expect_doubled(outcomes.get("b"), 1, 3, 100);
  expect_doubled(outcomes.get("c"), 2, 3, 200);
  expect_doubled(outcomes.get("d"), 1, 3, 300);
  for (const char* id : {"b", "c", "d"}) EXPECT_EQ(outcomes.get(id).batch_rows, 4) << id;
  EXPECT_EQ(outcomes.get("c").response.outputs.size(), 2u);
  EXPECT_EQ(outcomes.get("c").response.outputs[1].tensor.data<float>()[5], 205.0f * 205.0f);
  // Fewer rows than max_batch_size and no preferred size: the batch left when the oldest
  // request had waited max_queue_delay_us, not before (and not much later).
  const Clock::time_point batch_started = gated->call_times().at(1);
  EXPECT_GE(batch_started - first_submitted, 200ms);
  EXPECT_LT(batch_started - first_submitted, 3s);
  const Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.batch_rows, (std::map<int, uint64_t>{{4, 1}, {8, 1}}));
  EXPECT_EQ(stats.succeeded, 4u);
  // The statistics extension's figures count rows as inferences and merged calls once.
  EXPECT_EQ(stats.inference_count, 12u);
  EXPECT_EQ(stats.execution_count, 2u);
  EXPECT_EQ(stats.compute_infer.count, 4u);  // per request
  ASSERT_EQ(stats.batch_compute.size(), 2u);
  EXPECT_EQ(stats.batch_compute.at(4)[1].count, 1u);  // per call
  EXPECT_EQ(stats.batch_compute.at(8)[1].count, 1u);
  EXPECT_GE(stats.compute_infer.ns, 3 * stats.batch_compute.at(4)[1].ns);  // b, c and d each count their call
}

TEST(SchedulerBatching, NeverMergesDifferentShapesOrOutputs) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  Scheduler scheduler(gated, batched(1, 8, 50'000));
  Outcomes outcomes;
  hold_the_instance(scheduler, *gated, outcomes, 8);
  ASSERT_FALSE(scheduler.submit(make_request("b", 1, 3, 10), kNoDeadline, outcomes.done_for("b")));
  ASSERT_FALSE(scheduler.submit(make_request("c", 1, 4, 20), kNoDeadline, outcomes.done_for("c")));
  ASSERT_FALSE(scheduler.submit(make_request("d", 1, 3, 30), kNoDeadline, outcomes.done_for("d")));
  InferRequest only_y = make_request("e", 2, 3, 40);
  only_y.outputs.push_back(RequestedOutput{"y", false});
  ASSERT_FALSE(scheduler.submit(std::move(only_y), kNoDeadline, outcomes.done_for("e")));
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(5));

  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{8, 2, 1, 2}));  // hold, b+d, c, e
  expect_doubled(outcomes.get("b"), 1, 3, 10);
  expect_doubled(outcomes.get("c"), 1, 4, 20);
  expect_doubled(outcomes.get("d"), 1, 3, 30);
  expect_doubled(outcomes.get("e"), 2, 3, 40);
  EXPECT_EQ(outcomes.get("e").response.outputs.size(), 1u);
  EXPECT_EQ(outcomes.get("c").batch_rows, 1);
}

TEST(SchedulerBatching, RespectsMaxBatchSizeAndDispatchesPreferredSizesAtOnce) {
  auto gated = std::make_shared<GatedModel>(prepare(elementwise_model()));
  // The delay is far longer than the test: only full and preferred batches may leave early.
  Scheduler scheduler(gated, batched(1, 4, 60'000'000, {2}));
  Outcomes outcomes;
  hold_the_instance(scheduler, *gated, outcomes, 4);
  const Clock::time_point start = Clock::now();
  ASSERT_FALSE(scheduler.submit(make_request("big", 6, 3, 1000), kNoDeadline, outcomes.done_for("big")));
  for (int i = 0; i < 7; ++i) {
    const std::string id = "r" + std::to_string(i);
    ASSERT_FALSE(scheduler.submit(make_request(id, 1, 3, static_cast<float>(10 * i)), kNoDeadline, outcomes.done_for(id)));
  }
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(8));  // all but the last one-row request
  EXPECT_LT(Clock::now() - start, 20s);
  // hold; big alone (more rows than max_batch_size); r0-r3 (full); r4+r5 (preferred size 2).
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{4, 6, 4, 2}));
  EXPECT_EQ(outcomes.calls().count("r6"), 0u);  // one row waits for companions

  EXPECT_TRUE(scheduler.drain(10s));  // draining sends it without waiting out the delay
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{4, 6, 4, 2, 1}));
  expect_doubled(outcomes.get("big"), 6, 3, 1000);
  for (int i = 0; i < 7; ++i) expect_doubled(outcomes.get("r" + std::to_string(i)), 1, 3, static_cast<float>(10 * i));
  EXPECT_EQ(scheduler.stats().batch_rows, (std::map<int, uint64_t>{{1, 1}, {2, 1}, {4, 2}, {6, 1}}));
}

TEST(SchedulerBatching, AMergedCallWhoseOutputCannotBeSplitServesEachRequestAloneAndMergesNoMore) {
  // Prepared without the row check (as for a model it cannot run): batching starts on.
  auto gated = std::make_shared<GatedModel>(prepare(reduce_model()));
  Scheduler scheduler(gated, batched(1, 4, 20'000));
  EXPECT_EQ(scheduler.stats().batching, "on; rows not checked");
  Outcomes outcomes;
  hold_the_instance(scheduler, *gated, outcomes, 4);
  ASSERT_FALSE(scheduler.submit(make_request("b", 1, 3, 1), kNoDeadline, outcomes.done_for("b")));
  ASSERT_FALSE(scheduler.submit(make_request("c", 2, 3, 2), kNoDeadline, outcomes.done_for("c")));
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(3));

  // The merged call (3 rows) could not be split: b and c ran again, each alone.
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{4, 3, 1, 2}));
  for (const char* id : {"hold", "b", "c"})
    ASSERT_FALSE(outcomes.get(id).error) << id << ": " << outcomes.get(id).error->message;
  // make_request fills x[i] = base + i: b sums one row {1, 2, 3}, c two rows from 2.
  const Tensor b = outcomes.get("b").response.outputs.at(0).tensor;
  const Tensor c = outcomes.get("c").response.outputs.at(0).tensor;
  EXPECT_EQ(b.shape(), (Shape{1, 3}));
  EXPECT_EQ(c.shape(), (Shape{1, 3}));
  EXPECT_EQ(b.data<float>()[0], 1.0f);
  EXPECT_EQ(c.data<float>()[0], 2.0f + 5.0f);
  Scheduler::Stats stats = scheduler.stats();
  EXPECT_EQ(stats.succeeded, 3u);
  EXPECT_EQ(stats.batching.rfind("off: output 'y' cannot be split", 0), 0u) << stats.batching;

  // From now on compatible requests wait for nobody and run alone.
  hold_the_instance(scheduler, *gated, outcomes, 4);
  ASSERT_FALSE(scheduler.submit(make_request("d", 1, 3, 1), kNoDeadline, outcomes.done_for("d")));
  ASSERT_FALSE(scheduler.submit(make_request("e", 1, 3, 1), kNoDeadline, outcomes.done_for("e")));
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(5));  // "hold" answered twice under one id
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{4, 3, 1, 2, 4, 1, 1}));
  EXPECT_FALSE(outcomes.get("e").error);
}

TEST(SchedulerBatching, AMemberWhoseDeadlineComesFirstSendsTheBatchInTime) {
  auto model = prepare(elementwise_model());
  ASSERT_TRUE(model);
  Scheduler scheduler(model, batched(1, 8, 60'000'000));
  Outcomes outcomes;
  const Clock::time_point start = Clock::now();
  // It would wait 60 s for companions; its deadline (1 s) sends it before then, and in time.
  ASSERT_FALSE(scheduler.submit(make_request("a", 1, 3, 5), in(1s), outcomes.done_for("a")));
  ASSERT_FALSE(scheduler.submit(make_request("b", 1, 3, 7), kNoDeadline, outcomes.done_for("b")));
  ASSERT_TRUE(outcomes.wait_for(2));
  const Clock::duration took = Clock::now() - start;
  expect_doubled(outcomes.get("a"), 1, 3, 5);
  expect_doubled(outcomes.get("b"), 1, 3, 7);  // its companion, in the same call
  EXPECT_EQ(outcomes.get("b").batch_rows, 2);
  EXPECT_GE(took, 500ms);  // it waited for companions until shortly before its deadline
  EXPECT_LT(took, 2s);     // not the 60 s delay (and answered, not 504 at its deadline)
}

TEST(SchedulerBatching, IsOffWhenTheModelsRowsAreNotABatch) {
  // The engine's check ran the model on two rows apart and together: ReduceSum over them.
  auto gated = std::make_shared<GatedModel>(prepare(reduce_model(), /*check_rows=*/true));
  Scheduler scheduler(gated, batched(1, 8, 60'000'000));
  EXPECT_EQ(scheduler.stats().batching.rfind("off: its rows are not a batch: output 'y' is 1x", 0), 0u)
      << scheduler.stats().batching;
  Outcomes outcomes;
  hold_the_instance(scheduler, *gated, outcomes, 8);
  ASSERT_FALSE(scheduler.submit(make_request("b", 1, 3, 1), kNoDeadline, outcomes.done_for("b")));
  ASSERT_FALSE(scheduler.submit(make_request("c", 1, 3, 2), kNoDeadline, outcomes.done_for("c")));
  gated->open();
  ASSERT_TRUE(outcomes.wait_for(3));
  EXPECT_EQ(gated->call_rows(), (std::vector<int64_t>{8, 1, 1}));
  EXPECT_EQ(scheduler.stats().batch_rows, (std::map<int, uint64_t>{{1, 3}}));  // nothing merged

  // A row-wise model the check passed batches, and says where it was checked.
  Scheduler checked(prepare(elementwise_model(), /*check_rows=*/true), batched(1, 8, 0));
  EXPECT_EQ(checked.stats().batching, "on; rows checked on cpu");
  // Without batching configured, nothing is said of it.
  Scheduler plain_one(prepare(elementwise_model()), plain(1, 4));
  EXPECT_EQ(plain_one.stats().batching, "");
}

}  // namespace
}  // namespace tandem::server
