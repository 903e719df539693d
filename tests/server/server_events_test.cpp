// Tests of the events the server reports for its operator's log (ServerEvent, server.h): each
// version's loads, failures and unloads with their reasons, reloads of changed files, and the
// server's readiness, in the order they happened.
#include "server/server_events.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <stdexcept>
#include <string>
#include <vector>

#include "server/model_versions.h"
#include "server_test_util.h"

namespace tandem::server {
namespace {

using namespace server_test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

// Collects the events a server reports.
class Events {
 public:
  std::function<void(const ServerEvent&)> callback() {
    return [this](const ServerEvent& e) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(e);
      cv_.notify_all();
    };
  }
  // Waits (at most 60 s) for an event of `model` and `version` in `state`; its index.
  int wait_for(const std::string& model, const std::string& version, const std::string& state) {
    std::unique_lock<std::mutex> lock(mu_);
    int found = -1;
    cv_.wait_for(lock, 60s, [&] {
      found = find_locked(model, version, state, 0);
      return found >= 0;
    });
    return found;
  }
  int find(const std::string& model, const std::string& version, const std::string& state, int from = 0) {
    std::lock_guard<std::mutex> lock(mu_);
    return find_locked(model, version, state, from);
  }
  int count(const std::string& model, const std::string& version, const std::string& state) {
    std::lock_guard<std::mutex> lock(mu_);
    return static_cast<int>(std::count_if(events_.begin(), events_.end(), [&](const ServerEvent& e) {
      return e.model == model && e.version == version && e.state == state;
    }));
  }
  ServerEvent at(int i) {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.at(static_cast<size_t>(i));
  }
  size_t size() {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.size();
  }

 private:
  int find_locked(const std::string& model, const std::string& version, const std::string& state, int from) {
    for (size_t i = static_cast<size_t>(from); i < events_.size(); ++i)
      if (events_[i].model == model && events_[i].version == version && events_[i].state == state)
        return static_cast<int>(i);
    return -1;
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<ServerEvent> events_;
};

std::unique_ptr<Server> start_with_events(const Repository& repo, std::function<void(const ServerEvent&)> on_event,
                                          std::chrono::milliseconds poll = 0ms) {
  ServerOptions options;
  options.model_repository = repo.root();
  options.default_instances = 1;
  options.poll_interval = poll;
  options.shutdown_grace = 10s;
  options.on_event = std::move(on_event);
  auto server = Server::create(options);
  EXPECT_TRUE(server) << server.status().to_string();
  return server ? std::move(*server) : nullptr;
}

TEST(ServerEvents, LoadsFailuresUnloadsAndReadinessAreReportedInOrder) {
  ASSERT_FALSE(double_model().empty());
  Repository repo;
  repo.add_version("double", 1);
  repo.add_broken("broken", 1);
  repo.config("broken", R"({"required": false})");
  repo.config("misconfigured", R"({"instances": "two", "required": false})");
  repo.add_version("misconfigured", 1);
  repo.config("optional", R"({"required": false})");
  repo.add_version("optional", 1);
  // Free image dims: warm-up at 1x1 fails the 2x2 window, and the READY line says why.
  static const fs::path pool = write_model("pool.onnx",
                                           "x = h.make_tensor_value_info('x', T.FLOAT, ['N', 1, 'H', 'W']); "
                                           "y = h.make_tensor_value_info('y', T.FLOAT, ['N', 1, 'P', 'Q']); "
                                           "g = h.make_graph([h.make_node('MaxPool', ['x'], ['y'], "
                                           "kernel_shape=[2, 2])], 'g', [x], [y])");
  repo.add_file("pool", 1, pool);
  repo.config("pool", R"({"required": false})");
  // Free image dims where 1x1 runs: the estimate is given with the shapes it holds at.
  static const fs::path relu = write_model("relu_image.onnx",
                                           "x = h.make_tensor_value_info('x', T.FLOAT, ['N', 3, 'H', 'W']); "
                                           "y = h.make_tensor_value_info('y', T.FLOAT, ['N', 3, 'H', 'W']); "
                                           "g = h.make_graph([h.make_node('Relu', ['x'], ['y'])], 'g', [x], [y])");
  repo.add_file("relu", 1, relu);
  repo.config("relu", R"({"required": false})");
  Events events;
  auto server = start_with_events(repo, events.callback());
  ASSERT_TRUE(server);
  const int pool_ready = events.wait_for("pool", "1", "READY");
  ASSERT_GE(pool_ready, 0);
  const std::string pool_detail = events.at(pool_ready).detail;
  EXPECT_NE(pool_detail.find("; no warm-up estimate: warm-up failed on cpu: "), std::string::npos) << pool_detail;
  EXPECT_NE(pool_detail.find("(free dims are warmed at 1; input_shapes in config.json sets them)"), std::string::npos)
      << pool_detail;

  const int double_ready = events.wait_for("double", "1", "READY");
  ASSERT_GE(double_ready, 0);
  EXPECT_LT(events.find("double", "1", "LOADING"), double_ready);
  const std::string detail = events.at(double_ready).detail;
  EXPECT_NE(detail.find("loaded in "), std::string::npos) << detail;
  EXPECT_NE(detail.find("routes "), std::string::npos) << detail;
  EXPECT_NE(detail.find("reference"), std::string::npos) << detail;
  EXPECT_NE(detail.find("; warm-up estimate "), std::string::npos) << detail;
  EXPECT_EQ(detail.find(" at x="), std::string::npos) << detail;  // only the batch dim is free
  const int relu_ready = events.wait_for("relu", "1", "READY");
  ASSERT_GE(relu_ready, 0);
  const std::string relu_detail = events.at(relu_ready).detail;
  EXPECT_NE(relu_detail.find(" ms at x=1x3x1x1 (free dims are warmed at 1; input_shapes in config.json sets them)"),
            std::string::npos)
      << relu_detail;
  const int broken_failed = events.wait_for("broken", "1", "FAILED");
  ASSERT_GE(broken_failed, 0);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  // The event gives the index's reason; a model whose config.json cannot be read fails as a whole.
  EXPECT_EQ(events.at(broken_failed).detail, find_entry(server->repository_index(), "broken", "1")->reason);
  const int misconfigured = events.find("misconfigured", "", "FAILED");
  ASSERT_GE(misconfigured, 0);
  EXPECT_EQ(events.at(misconfigured).detail.find("model 'misconfigured'"), std::string::npos);
  EXPECT_NE(events.at(misconfigured).detail.find("instances must be an integer"), std::string::npos);

  // "misconfigured" cannot say it is optional: the server stays not ready, said once loading ended.
  const int not_ready = events.wait_for("", "", "NOT_READY");
  ASSERT_GE(not_ready, 0);
  EXPECT_GT(not_ready, std::max(double_ready, broken_failed));
  EXPECT_EQ(events.at(not_ready).detail, "required model 'misconfigured' is not ready");
  EXPECT_EQ(events.find("", "", "READY"), -1);

  // Repaired, it turns the server ready: reported once, after the event that made it so.
  repo.config("misconfigured", R"({"required": false})");
  ASSERT_FALSE(server->load_model("misconfigured"));
  const int repaired = events.wait_for("misconfigured", "1", "READY");
  const int ready = events.wait_for("", "", "READY");
  ASSERT_GE(repaired, 0);
  EXPECT_GT(ready, repaired);
  EXPECT_EQ(events.count("", "", "READY"), 1);

  // Unloading: its reason, then UNLOADED once drained; the server stays ready through "optional".
  ASSERT_FALSE(server->unload_model("double"));
  const int unloading = events.wait_for("double", "1", "UNLOADING");
  ASSERT_GE(unloading, 0);
  EXPECT_EQ(events.at(unloading).detail, "unloaded through the repository API");
  EXPECT_GT(events.wait_for("double", "1", "UNLOADED"), unloading);
  ASSERT_FALSE(server->unload_model("optional"));
  ASSERT_FALSE(server->unload_model("pool"));
  ASSERT_FALSE(server->unload_model("relu"));
  ASSERT_FALSE(server->unload_model("misconfigured"));
  ASSERT_GE(events.wait_for("misconfigured", "1", "UNLOADED"), 0);
  ASSERT_TRUE(eventually([&] { return events.find("", "", "NOT_READY", not_ready + 1) >= 0; }));
  EXPECT_EQ(events.at(events.find("", "", "NOT_READY", not_ready + 1)).detail, "no model is ready");
}

TEST(ServerEvents, PollingReportsReloadsAndRemovals) {
  ASSERT_FALSE(triple_model().empty());
  Repository repo;
  repo.add_version("m", 1);
  repo.add_version("m", 2);
  repo.config("m", R"({"version_policy": "all"})");
  Events events;
  auto server = start_with_events(repo, events.callback(), 20ms);
  ASSERT_TRUE(server);
  ASSERT_GE(events.wait_for("", "", "READY"), 0);

  // A replaced file loads beside the serving copy; the copy it replaces leaves without a word.
  repo.add_file("m", 2, triple_model());
  int reloaded = -1;
  ASSERT_TRUE(
      eventually([&] { return (reloaded = events.find("m", "2", "READY", events.find("m", "2", "READY") + 1)) >= 0; }));
  const int reloading = events.find("m", "2", "LOADING", events.find("m", "2", "LOADING") + 1);
  ASSERT_GE(reloading, 0);
  EXPECT_LT(reloading, reloaded);
  EXPECT_NE(events.at(reloading).detail.find("its files changed"), std::string::npos) << events.at(reloading).detail;
  EXPECT_EQ(events.count("m", "2", "UNLOADING"), 0);
  EXPECT_EQ(events.count("m", "2", "UNLOADED"), 0);

  // A broken replacement: FAILED, and the version loaded before serves on, as the event says.
  repo.add_broken("m", 2);
  const int failed = events.wait_for("m", "2", "FAILED");
  ASSERT_GE(failed, 0);
  EXPECT_NE(events.at(failed).detail.find("still serves"), std::string::npos) << events.at(failed).detail;
  EXPECT_EQ(events.count("", "", "NOT_READY"), 0);

  // A version's folder removed, then the whole model.
  fs::remove_all(repo.root() / "m" / "1");
  const int gone = events.wait_for("m", "1", "UNLOADING");
  ASSERT_GE(gone, 0);
  EXPECT_EQ(events.at(gone).detail, "its folder is gone");
  fs::remove_all(repo.root() / "m");
  const int removed = events.wait_for("m", "2", "UNLOADING");
  ASSERT_GE(removed, 0);
  EXPECT_EQ(events.at(removed).detail, "removed from the repository");
  EXPECT_GE(events.wait_for("m", "2", "UNLOADED"), 0);
  EXPECT_GE(events.wait_for("", "", "NOT_READY"), 0);
}

TEST(ServerEvents, TheCallbackMayCallTheServerAndThrow) {
  Repository repo;
  repo.add_version("a", 1);
  repo.add_version("b", 1);
  std::atomic<Server*> current{nullptr};
  Events seen;
  std::atomic<int> calls{0};
  auto server = start_with_events(repo, [&](const ServerEvent& e) {
    calls.fetch_add(1);
    if (Server* s = current.load()) {
      (void)s->ready();
      (void)s->repository_index();
      std::vector<ModelStats> stats;
      (void)s->model_stats("", "", &stats);
    }
    seen.callback()(e);
    if (e.state == "LOADING") throw std::runtime_error("a faulty log sink");
  });
  ASSERT_TRUE(server);
  current.store(server.get());
  ASSERT_GE(seen.wait_for("", "", "READY"), 0);
  EXPECT_EQ(seen.count("a", "1", "READY"), 1);
  EXPECT_EQ(seen.count("b", "1", "READY"), 1);
  // The events of later calls still arrive, every one once.
  ASSERT_FALSE(server->unload_model("b"));
  ASSERT_GE(seen.wait_for("b", "1", "UNLOADED"), 0);
  ASSERT_FALSE(server->load_model("b"));
  EXPECT_TRUE(eventually([&] { return seen.count("b", "1", "READY") == 2; }));
  EXPECT_TRUE(eventually([&] { return static_cast<size_t>(calls.load()) == seen.size(); }));
  EXPECT_EQ(seen.count("b", "1", "LOADING"), 2);
}

// Whose event `e` is, and what it says.
void expect_event(const ServerEvent& e, const std::string& version, const std::string& route, const std::string& state,
                  const std::string& detail) {
  EXPECT_EQ(e.model, "m");
  EXPECT_EQ(e.version, version);
  EXPECT_EQ(e.route, route);
  EXPECT_EQ(e.state, state);
  EXPECT_EQ(e.detail, detail);
}

// One route's telemetry as breaker_events() reads it.
ModelTelemetry route(BreakerState state, uint64_t trips, const std::string& fault = "") {
  ModelTelemetry t;
  BackendTelemetry b;
  b.backend = "cpu";
  b.breaker.state = state;
  b.breaker.trips = trips;
  b.breaker.cooldown_ms = 5000;
  b.last_fault = fault;
  t.backends.push_back(b);
  BackendTelemetry reference;
  reference.backend = "reference";
  t.backends.push_back(reference);
  return t;
}

TEST(ServerEvents, BreakerChangesBetweenTwoLooksAreReportedOnce) {
  std::vector<BreakerSeen> seen;
  std::vector<ServerEvent> out;
  breaker_events("m", "1", route(BreakerState::closed, 0), &seen, &out);
  EXPECT_TRUE(out.empty());
  ASSERT_EQ(seen.size(), 2u);

  breaker_events("m", "1", route(BreakerState::open, 1, "device_error: lost"), &seen, &out);
  ASSERT_EQ(out.size(), 1u);
  expect_event(out[0], "1", "cpu", "OPEN", "last fault: device_error: lost; cooldown 5000 ms");
  breaker_events("m", "1", route(BreakerState::open, 1, "device_error: lost"), &seen, &out);
  EXPECT_EQ(out.size(), 1u);  // nothing new

  breaker_events("m", "1", route(BreakerState::half_open, 1, "device_error: lost"), &seen, &out);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[1].state, "HALF_OPEN");
  EXPECT_EQ(out[1].detail, "cooldown over: probing");
  breaker_events("m", "1", route(BreakerState::closed, 1, "device_error: lost"), &seen, &out);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[2].state, "CLOSED");
  EXPECT_EQ(out[2].detail, "its probes passed");

  // Opened and closed twice between two looks: CLOSED, with the count and the fault.
  breaker_events("m", "1", route(BreakerState::closed, 3, "timeout: hung"), &seen, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[3].state, "CLOSED");
  EXPECT_EQ(out[3].detail, "tripped 2 times since the last event; last fault: timeout: hung");
  // Open when last seen and open again now after another trip: reported again.
  breaker_events("m", "1", route(BreakerState::open, 4, "timeout: hung"), &seen, &out);
  breaker_events("m", "1", route(BreakerState::open, 5, "timeout: hung"), &seen, &out);
  ASSERT_EQ(out.size(), 6u);
  EXPECT_EQ(out[5].detail, "last fault: timeout: hung; cooldown 5000 ms; tripped 1 time since the last event");
}

TEST(ServerEvents, FailedAndRefusedRequestsAreSummedUpAtMostEveryTenSeconds) {
  server_internal::Version v;
  v.number = 2;
  v.config.max_queue_size = 4;
  Scheduler::Stats s;
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<ServerEvent> out;
  server_internal::sum_up_requests("m", v, s, t0, &out);
  EXPECT_TRUE(out.empty());

  s.failed = 3;
  s.client_gone = 1;  // not a failure of the server's
  s.succeeded = 8;
  s.rejected = 5;
  s.last_failure = "500 boom";
  server_internal::sum_up_requests("m", v, s, t0, &out);
  ASSERT_EQ(out.size(), 2u);
  expect_event(out[0], "2", "", "ERRORS", "2 of 10 requests failed since it loaded; the latest: 500 boom");
  EXPECT_EQ(out[1].state, "REFUSED");
  EXPECT_EQ(out[1].detail.rfind("5 requests refused since it loaded (the queue held max_queue_size = 4 waiting", 0), 0u)
      << out[1].detail;

  // More within ten seconds: held back, then summed up together.
  s.failed = 10;
  s.succeeded = 20;
  s.rejected = 9;
  server_internal::sum_up_requests("m", v, s, t0 + 5s, &out);
  EXPECT_EQ(out.size(), 2u);
  server_internal::sum_up_requests("m", v, s, t0 + 12s, &out);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[2].detail, "7 of 19 requests failed in the last 12 s; the latest: 500 boom");
  EXPECT_EQ(out[3].detail.rfind("4 requests refused in the last 12 s", 0), 0u) << out[3].detail;
  // Nothing new: nothing said.
  server_internal::sum_up_requests("m", v, s, t0 + 60s, &out);
  EXPECT_EQ(out.size(), 4u);

  // Batching stopped at run time: said once, at the next look, whatever the 10 s.
  s.batching_stopped = true;
  s.batching = "off: output 'y' cannot be split; requests are served alone from now on";
  server_internal::sum_up_requests("m", v, s, t0 + 61s, &out);
  ASSERT_EQ(out.size(), 5u);
  expect_event(out[4], "2", "", "BATCHING_OFF", s.batching);
  server_internal::sum_up_requests("m", v, s, t0 + 62s, &out);
  EXPECT_EQ(out.size(), 5u);
}

TEST(ServerEvents, AStrictVersionWhoseBreakerOpensIsUnavailableUntilItMayAnswerAgain) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("strict", 1);
  repo.config("strict", R"({"strict": true, "required": false, "fault_injection": "error=1.0,recover_after_s=1",
                            "breaker": {"min_requests": 2, "strict_failure_rate": 0.5, "cooldown_ms": 300,
                                        "half_open_calls": 1}})");
  Events events;
  ServerOptions options;
  options.model_repository = repo.root();
  options.default_instances = 1;
  options.watch_interval = 20ms;
  options.on_event = events.callback();
  auto created = Server::create(options);
  ASSERT_TRUE(created);
  Server& server = **created;
  ASSERT_GE(events.wait_for("", "", "READY"), 0);
  for (int i = 0; i < 4; ++i) infer_sync(server, request("strict"));

  // The first route (wrapped by the fault injection) opens, with the injected fault as the reason.
  ServerEvent open;
  ASSERT_TRUE(eventually([&] {
    for (size_t i = 0; i < events.size(); ++i)
      if (events.at(static_cast<int>(i)).state == "OPEN") {
        open = events.at(static_cast<int>(i));
        return true;
      }
    return false;
  }));
  EXPECT_EQ(open.model, "strict");
  EXPECT_EQ(open.version, "1");
  EXPECT_NE(open.route.find("cpu"), std::string::npos) << open.route;
  EXPECT_EQ(open.detail.rfind("last fault: device_error: ", 0), 0u) << open.detail;
  const int unavailable = events.wait_for("strict", "1", "UNAVAILABLE");
  ASSERT_GE(unavailable, 0);
  EXPECT_NE(events.at(unavailable).detail.find("breaker"), std::string::npos) << events.at(unavailable).detail;
  // The stats carry the same fault.
  std::vector<ModelStats> stats;
  ASSERT_FALSE(server.model_stats("strict", "", &stats));
  ASSERT_FALSE(stats.empty());
  EXPECT_EQ(stats[0].routes.at(0).last_fault.rfind("device_error: ", 0), 0u);
  // The failed requests are summed up, with the latest error.
  const int errors = events.wait_for("strict", "1", "ERRORS");
  ASSERT_GE(errors, 0);
  EXPECT_NE(events.at(errors).detail.find(" requests failed since it loaded; the latest: 5"), std::string::npos)
      << events.at(errors).detail;
  // "double" keeps the server ready: no server event.
  EXPECT_EQ(events.count("", "", "NOT_READY"), 0);

  // After the cooldown it may answer again (its next request probes the route).
  const int available = events.wait_for("strict", "1", "READY");
  ASSERT_GE(available, 0);
  EXPECT_TRUE(eventually([&] { return events.find("strict", "1", "READY", unavailable + 1) >= 0; }));
  EXPECT_EQ(events.at(events.find("strict", "1", "READY", unavailable + 1)).detail, "its first route may answer again");
}

}  // namespace
}  // namespace tandem::server
