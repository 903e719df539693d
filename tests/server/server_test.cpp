// Tests of the server (src/server/server.h) against temporary model repositories holding tiny
// ONNX models written at test time: readiness, failures, validation, version policy,
// load/unload, version takeover, strict-mode health, metrics and graceful shutdown.
#include "server_test_util.h"

namespace tandem::server {
namespace {

using namespace server_test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

TEST(Server, MissingRepositoryIsAnError) {
  ServerOptions options;
  options.model_repository = "/nonexistent/tandem/repository";
  auto server = Server::create(options);
  ASSERT_FALSE(server);
  EXPECT_EQ(server.status().code(), StatusCode::invalid_argument);
}

TEST(Server, EmptyRepositoryIsLiveButNotReady) {
  Repository repo;
  auto server = start(repo);
  ASSERT_TRUE(server);
  EXPECT_TRUE(server->live());
  EXPECT_FALSE(server->ready());
  EXPECT_TRUE(server->repository_index().empty());
}

TEST(Server, NotReadyWhileLoadingThenServes) {
  ASSERT_FALSE(double_model().empty());
  Repository repo;
  repo.add_version("double", 1);
  auto server = start(repo);
  ASSERT_TRUE(server);
  // create() returns before loading ends: whatever the index says, readiness agrees with it.
  if (!loaded(*server)) {
    EXPECT_FALSE(server->ready());
  }
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  bool ready = false;
  ASSERT_FALSE(server->model_ready("double", "", &ready));
  EXPECT_TRUE(ready);
  ASSERT_FALSE(server->model_ready("double", "1", &ready));
  EXPECT_TRUE(ready);

  ModelMetadata meta;
  ASSERT_FALSE(server->model_metadata("double", "", &meta));
  EXPECT_EQ(meta.versions, std::vector<std::string>{"1"});
  ASSERT_EQ(meta.inputs.size(), 1u);
  EXPECT_EQ(meta.inputs[0].name, "x");
  EXPECT_EQ(meta.inputs[0].datatype, "FP32");
  EXPECT_EQ(meta.inputs[0].shape, (std::vector<int64_t>{-1, 4}));
  ASSERT_EQ(meta.outputs.size(), 1u);
  EXPECT_EQ(meta.outputs[0].name, "y");
  ASSERT_FALSE(meta.routes.empty());  // tandem's addition: the routes now, last the reference
  EXPECT_EQ(meta.routes.back().route, "reference");
  EXPECT_EQ(meta.routes.front().breaker, "closed");

  InferOutcome o = infer_sync(*server, request("double", 1.5f));
  ASSERT_FALSE(o.error) << o.error->message;
  EXPECT_EQ(o.response.model, "double");
  EXPECT_EQ(o.response.version, "1");
  ASSERT_EQ(o.response.outputs.size(), 1u);
  EXPECT_EQ(o.response.outputs[0].name, "y");
  EXPECT_FLOAT_EQ(o.response.outputs[0].tensor.data<float>()[3], 3.0f);

  std::vector<ModelStats> stats;
  ASSERT_FALSE(server->model_stats("double", "", &stats));
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_EQ(stats[0].state, "READY");
  EXPECT_TRUE(stats[0].ready);
  EXPECT_FALSE(stats[0].degraded);
  EXPECT_EQ(stats[0].scheduler.succeeded, 1u);
  EXPECT_FALSE(stats[0].routes.empty());
}

TEST(Server, FailingModelIsReportedWhileOthersServe) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_broken("broken", 1);
  repo.config("broken", R"({"required": false})");
  repo.config("misconfigured", R"({"instances": "two"})");
  repo.add_version("misconfigured", 1);
  repo.config("misconfigured", R"({"instances": "two", "required": false})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  // "misconfigured" cannot even read its `required`: it counts as required.
  EXPECT_FALSE(server->ready());
  const auto index = server->repository_index();
  const RepositoryEntry* broken = find_entry(index, "broken", "1");
  ASSERT_NE(broken, nullptr);
  EXPECT_EQ(broken->state, "FAILED");
  EXPECT_FALSE(broken->reason.empty());
  EXPECT_EQ(broken->reason.find('\n'), std::string::npos);
  const RepositoryEntry* misconfigured = find_entry(index, "misconfigured", "");
  ASSERT_NE(misconfigured, nullptr);
  EXPECT_EQ(misconfigured->state, "FAILED");
  EXPECT_NE(misconfigured->reason.find("instances must be an integer"), std::string::npos) << misconfigured->reason;

  std::optional<ProtocolError> refused;
  infer_sync(*server, request("broken"), &refused);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 503);
  EXPECT_FALSE(infer_sync(*server, request("double")).error);

  // Fixing the config and loading it makes the server ready.
  repo.config("misconfigured", R"({"required": false})");
  EXPECT_FALSE(server->load_model("misconfigured"));
  EXPECT_TRUE(server->ready());
}

TEST(Server, AModelFolderWithoutVersionsSaysWhatItIgnored) {
  Repository repo;
  repo.add_version("good", 1);
  for (const char* folder : {"0", "01", "v2", "1234567890"}) fs::create_directories(repo.root() / "odd" / folder);
  fs::copy_file(double_model(), repo.root() / "odd" / "01" / "model.onnx");
  fs::create_directories(repo.root() / "odd" / "3");
  std::ofstream(repo.root() / "odd" / "3" / "other.onnx") << "x";
  std::ofstream(repo.root() / "odd" / "notes.txt") << "not a folder: not mentioned";
  std::ofstream(repo.root() / "odd" / "4") << "a file named as a version";
  fs::create_directories(repo.root() / "odd" / "5" / "model.onnx");
  fs::create_directories(repo.root() / "odd" / ".cache");
  repo.config("odd", R"({"required": false})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  EXPECT_TRUE(server->ready());
  const std::vector<RepositoryEntry> index = server->repository_index();
  const RepositoryEntry* odd = find_entry(index, "odd", "");
  ASSERT_NE(odd, nullptr);
  EXPECT_EQ(odd->state, "FAILED");
  const std::string& why = odd->reason;
  for (const char* part :
       {"no versions", "'0' (a version is a positive integer", "'01' (", "'v2' (", "'1234567890' (",
        "'3' (no model.onnx in it)", "'4' (a file; a version is a folder)", "'5' (its model.onnx is not a file)"})
    EXPECT_NE(why.find(part), std::string::npos) << part << " in " << why;
  EXPECT_EQ(why.find("notes.txt"), std::string::npos) << why;
  EXPECT_EQ(why.find(".cache"), std::string::npos) << why;

  // A config.json that is a folder says so (not "invalid JSON").
  Repository other;
  other.add_version("folder_config", 1);
  fs::create_directories(other.root() / "folder_config" / "config.json");
  auto second = start(other);
  ASSERT_TRUE(second);
  ASSERT_TRUE(eventually([&] { return loaded(*second); }));
  const std::vector<RepositoryEntry> other_index = second->repository_index();
  const RepositoryEntry* folder_config = find_entry(other_index, "folder_config", "");
  ASSERT_NE(folder_config, nullptr);
  EXPECT_EQ(folder_config->reason, "model 'folder_config': config.json is not a file");
}

TEST(Server, AModelWithAnOutputThatIsNotATensorFailsToLoad) {
  // The protocol carries tensors only: such a model must not report ready and then fail every
  // request (500 "output 's' is not a tensor" before).
  ASSERT_FALSE(sequence_output_model().empty());
  Repository repo;
  repo.add_version("double", 1);
  repo.add_file("split", 1, sequence_output_model());
  repo.config("split", R"({"required": false})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  const auto index = server->repository_index();
  const RepositoryEntry* split = find_entry(index, "split", "1");
  ASSERT_NE(split, nullptr);
  EXPECT_EQ(split->state, "FAILED");
  EXPECT_NE(split->reason.find("output 's' is a sequence"), std::string::npos) << split->reason;
  EXPECT_NE(split->reason.find("tensors only"), std::string::npos) << split->reason;
  EXPECT_EQ(split->reason.find('\n'), std::string::npos);
  bool split_ready = true;
  EXPECT_FALSE(server->model_ready("split", "", &split_ready));
  EXPECT_FALSE(split_ready);
  EXPECT_TRUE(server->ready());  // not required: the others serve
  EXPECT_FALSE(infer_sync(*server, request("double")).error);
}

TEST(Server, AllModelsFailedIsNotReady) {
  Repository repo;
  repo.add_broken("a", 1);
  repo.config("a", R"({"required": false})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  EXPECT_FALSE(server->ready());
  auto error = server->load_model("a");
  ASSERT_TRUE(error);
  EXPECT_EQ(error->http_status, 400);
  EXPECT_NE(error->message.find("failed to load"), std::string::npos) << error->message;
}

TEST(Server, RequiredModelFailingKeepsServerNotReady) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_broken("needed", 1);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return loaded(*server); }));
  EXPECT_FALSE(server->ready());
  bool ready = true;
  ASSERT_FALSE(server->model_ready("double", "", &ready));
  EXPECT_TRUE(ready);
}

TEST(Server, ValidationErrors) {
  Repository repo;
  repo.add_version("double", 1);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  auto refused = [&](InferRequest r) {
    Outcomes never;
    auto error = server->infer(std::move(r), never.callback());
    EXPECT_TRUE(never.take().empty());
    return error ? *error : ProtocolError{0, "admitted"};
  };
  EXPECT_EQ(refused(request("nope")).http_status, 404);
  EXPECT_EQ(refused(request("double", 1, "7")).http_status, 404);
  EXPECT_EQ(refused(request("double", 1, "one")).http_status, 404);

  InferRequest unknown_input = request("double");
  unknown_input.inputs[0].name = "z";
  ProtocolError e = refused(std::move(unknown_input));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("'z'"), std::string::npos) << e.message;

  InferRequest missing = request("double");
  missing.inputs.clear();
  e = refused(std::move(missing));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("input 'x' is missing"), std::string::npos) << e.message;

  InferRequest twice = request("double");
  twice.inputs.push_back(twice.inputs[0]);
  EXPECT_EQ(refused(std::move(twice)).http_status, 400);

  InferRequest wrong_type = request("double");
  wrong_type.inputs[0].tensor = Tensor::from_vector<double>({1, 4}, {1, 2, 3, 4});
  e = refused(std::move(wrong_type));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("FP64"), std::string::npos) << e.message;

  InferRequest wrong_dim = request("double");
  wrong_dim.inputs[0].tensor = Tensor::from_vector<float>({1, 3}, {1, 2, 3});
  e = refused(std::move(wrong_dim));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("[1,3]"), std::string::npos) << e.message;

  InferRequest wrong_rank = request("double");
  wrong_rank.inputs[0].tensor = Tensor::from_vector<float>({4}, {1, 2, 3, 4});
  EXPECT_EQ(refused(std::move(wrong_rank)).http_status, 400);

  InferRequest unknown_output = request("double");
  unknown_output.outputs.push_back({"w", false});
  e = refused(std::move(unknown_output));
  EXPECT_EQ(e.http_status, 400);
  EXPECT_NE(e.message.find("'w'"), std::string::npos) << e.message;

  // A batch of 3 rows fits the symbolic first dim.
  InferRequest batch = request("double");
  batch.inputs[0].tensor = Tensor::from_vector<float>({3, 4}, std::vector<float>(12, 1.0f));
  EXPECT_FALSE(infer_sync(*server, std::move(batch)).error);
}

// input_shapes with -1 fixes the other dims and leaves the batch dim to dynamic batching; the
// metadata keeps it free, and requests that arrive together share one engine call.
TEST(Server, InputShapesLeaveTheBatchDimFreeForBatching) {
  Repository repo;
  repo.add_version("double", 1);
  repo.config("double", R"({"input_shapes": {"x": [-1, 4]}, "instances": 1,
    "dynamic_batching": {"max_batch_size": 4, "max_queue_delay_us": 10000000, "preferred_batch_sizes": [4]}})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  ModelMetadata meta;
  ASSERT_FALSE(server->model_metadata("double", "", &meta));
  EXPECT_EQ(meta.inputs.at(0).shape, (std::vector<int64_t>{-1, 4}));
  Outcomes outcomes;
  // Without companions the first would wait 10 s: only a batch of the four answers at once.
  for (int i = 0; i < 4; ++i)
    ASSERT_FALSE(server->infer(request("double", static_cast<float>(i)), outcomes.callback()));
  ASSERT_TRUE(outcomes.wait_for(4));
  for (const InferOutcome& o : outcomes.take()) {
    ASSERT_FALSE(o.error) << o.error->message;
    EXPECT_EQ(o.batch_rows, 4);
  }
  std::vector<ModelStats> stats;
  ASSERT_FALSE(server->model_stats("double", "", &stats));
  EXPECT_EQ(stats.at(0).scheduler.batching, "on; rows checked on cpu");
}

// Dynamic batching configured on models whose first dim is not a batch: it stays off, says
// why, and every request is answered as if it were alone.
TEST(Server, BatchingStaysOffWhereRowsAreNotABatch) {
  // Softmax over dim 0: [N, 4] in and out, so the declared shapes allow merging; the load's
  // check of the rows finds each row's answer depending on the others.
  static const fs::path across_rows =
      write_x_to_y_model("softmax_rows.onnx", "h.make_node('Softmax', ['x'], ['y'], axis=0)");
  Repository repo;
  repo.add_file("across", 1, across_rows);
  repo.add_version("fixed", 1);
  const std::string batching = R"("dynamic_batching": {"max_batch_size": 4, "max_queue_delay_us": 10000000})";
  repo.config("across", "{\"instances\": 1, " + batching + "}");
  repo.config("fixed", R"({"input_shapes": {"x": [1, 4]}, "instances": 1, )" + batching + "}");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  std::vector<ModelStats> stats;
  ASSERT_FALSE(server->model_stats("across", "", &stats));
  EXPECT_EQ(stats.at(0).scheduler.batching.rfind("off: its rows are not a batch: row 0 of output 'y' changed", 0), 0u)
      << stats.at(0).scheduler.batching;
  ASSERT_FALSE(server->model_stats("fixed", "", &stats));
  EXPECT_EQ(stats.at(0).scheduler.batching, "off: input 'x' has a fixed first dim (1)");
  // With batching on, the first of these would wait 10 s for companions, and the merged
  // answers would be a softmax over four rows (0.25 each) instead of one (1).
  Outcomes outcomes;
  for (int i = 0; i < 4; ++i)
    ASSERT_FALSE(server->infer(request("across", static_cast<float>(i)), outcomes.callback()));
  ASSERT_TRUE(outcomes.wait_for(4));
  for (const InferOutcome& o : outcomes.take()) {
    ASSERT_FALSE(o.error) << o.error->message;
    EXPECT_EQ(o.batch_rows, 1);
    for (int k = 0; k < 4; ++k) EXPECT_EQ(o.response.outputs.at(0).tensor.data<float>()[k], 1.0f);
  }
}

// A replica told which models to load: the others are listed, not loaded, until asked for;
// polling loads no new model.
TEST(Server, ExplicitModelControlLoadsOnlyWhatItIsTold) {
  Repository repo;
  repo.add_version("a", 1);
  repo.add_version("b", 1);
  ServerOptions options;
  options.model_repository = repo.root();
  options.default_instances = 1;
  options.poll_interval = 20ms;
  options.load_at_start = std::set<std::string>{"a"};
  auto created = Server::create(options);
  ASSERT_TRUE(created) << created.status().to_string();
  Server& server = **created;
  ASSERT_TRUE(eventually([&] { return server.ready(); }));
  EXPECT_FALSE(infer_sync(server, request("a")).error);
  std::optional<ProtocolError> refused;
  infer_sync(server, request("b"), &refused);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 404);
  std::vector<RepositoryEntry> index = server.repository_index();
  const RepositoryEntry* b = find_entry(index, "b", "");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->state, "UNAVAILABLE");
  EXPECT_NE(b->reason.find("explicit model control"), std::string::npos) << b->reason;

  // A model that appears is listed after a poll, and not loaded.
  repo.add_version("c", 1);
  ASSERT_TRUE(eventually([&] {
    const std::vector<RepositoryEntry> now = server.repository_index();
    return find_entry(now, "c", "") != nullptr;
  }));
  server.rescan();  // one more look, as SIGHUP makes: still not loaded
  index = server.repository_index();
  EXPECT_EQ(find_entry(index, "c", "")->state, "UNAVAILABLE");
  EXPECT_EQ(find_entry(index, "c", "1"), nullptr);

  // Loaded on demand, it serves.
  EXPECT_FALSE(server.load_model("b"));
  EXPECT_FALSE(infer_sync(server, request("b")).error);
  // One never loaded whose folder is gone is no longer listed.
  fs::remove_all(repo.root() / "c");
  server.rescan();
  EXPECT_EQ(find_entry(server.repository_index(), "c", ""), nullptr);

  // Nothing to load at start: listed, and not ready (no model is); an unknown name fails.
  options.load_at_start = std::set<std::string>{};
  auto none = Server::create(options);
  ASSERT_TRUE(none);
  EXPECT_EQ((*none)->repository_index().size(), 2u);  // a and b, listed
  EXPECT_FALSE((*none)->ready());
  options.load_at_start = std::set<std::string>{"a", "missing"};
  auto unknown = Server::create(options);
  ASSERT_FALSE(unknown);
  EXPECT_EQ(unknown.status().code(), StatusCode::invalid_argument);
  EXPECT_EQ(unknown.status().message(), "model 'missing' to load at start is not in the repository");
}

TEST(Server, VersionPolicyLatestServesOnlyTheNewest) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("double", 2);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  InferOutcome o = infer_sync(*server, request("double"));
  ASSERT_FALSE(o.error);
  EXPECT_EQ(o.response.version, "2");
  std::optional<ProtocolError> refused;
  infer_sync(*server, request("double", 1, "1"), &refused);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 404);
}

TEST(Server, VersionPolicyLatestFallsBackToAnOlderVersionWhenTheNewestFails) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_broken("double", 2);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  EXPECT_EQ(infer_sync(*server, request("double")).response.version, "1");
  const std::vector<RepositoryEntry> index_failed = server->repository_index();
  const RepositoryEntry* failed = find_entry(index_failed, "double", "2");
  ASSERT_NE(failed, nullptr);
  EXPECT_EQ(failed->state, "FAILED");
  // Fixing version 2 and loading again: it takes over.
  repo.add_version("double", 2);
  ASSERT_FALSE(server->load_model("double"));
  EXPECT_EQ(infer_sync(*server, request("double")).response.version, "2");
}

TEST(Server, VersionPolicyAllServesEveryVersion) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("double", 3);
  repo.config("double", R"({"version_policy": "all"})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready() && loaded(*server); }));
  EXPECT_EQ(infer_sync(*server, request("double")).response.version, "3");
  InferOutcome old = infer_sync(*server, request("double", 1, "1"));
  ASSERT_FALSE(old.error);
  EXPECT_EQ(old.response.version, "1");
  ModelMetadata meta;
  ASSERT_FALSE(server->model_metadata("double", "", &meta));
  EXPECT_EQ(meta.versions, (std::vector<std::string>{"1", "3"}));
}

TEST(Server, AConfigTurnedFromAllToLatestRetiresTheOlderVersions) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("double", 3);
  repo.config("double", R"({"version_policy": "all"})");
  auto server = start(repo, 20ms);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready() && loaded(*server); }));
  ASSERT_FALSE(infer_sync(*server, request("double", 1, "1")).error);
  // Polling sees the new config.json: version 3 loads again under it, and version 1 goes.
  repo.config("double", R"({"version_policy": "latest"})");
  ASSERT_TRUE(eventually([&] { return find_entry(server->repository_index(), "double", "1") == nullptr; }));
  EXPECT_TRUE(infer_sync(*server, request("double", 1, "1")).error);
  EXPECT_EQ(infer_sync(*server, request("double")).response.version, "3");
  EXPECT_TRUE(server->ready());
}

TEST(Server, UnloadThenLoad) {
  Repository repo;
  repo.add_version("double", 1);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  ASSERT_FALSE(server->unload_model("double"));
  std::optional<ProtocolError> refused;
  infer_sync(*server, request("double"), &refused);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 404);
  bool ready = true;
  auto error = server->model_ready("double", "", &ready);
  ASSERT_TRUE(error);
  EXPECT_EQ(error->http_status, 404);
  EXPECT_FALSE(server->ready());  // nothing left that can answer

  EXPECT_EQ(server->unload_model("nope")->http_status, 404);
  EXPECT_EQ(server->load_model("nope")->http_status, 404);
  EXPECT_EQ(server->load_model("../etc")->http_status, 404);

  ASSERT_FALSE(server->load_model("double"));
  EXPECT_TRUE(server->ready());
  EXPECT_FALSE(infer_sync(*server, request("double")).error);
}

TEST(Server, NewVersionTakesOverWithoutFailingInFlightRequests) {
  Repository repo;
  repo.add_version("slow", 1);
  // Every call on the first route takes 40 ms longer: requests stay in flight a while.
  repo.config("slow", R"({"instances": 1, "fault_injection": "latency_ms=40"})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  Outcomes outcomes;
  const int n = 6;
  for (int i = 0; i < n; ++i) ASSERT_FALSE(server->infer(request("slow"), outcomes.callback()));
  repo.add_version("slow", 2);
  ASSERT_FALSE(server->load_model("slow"));
  EXPECT_EQ(infer_sync(*server, request("slow")).response.version, "2");
  ASSERT_TRUE(outcomes.wait_for(n));
  for (const InferOutcome& o : outcomes.take()) {
    ASSERT_FALSE(o.error) << o.error->message;
    EXPECT_EQ(o.response.version, "1");
  }
  // Version 1 drains and leaves.
  EXPECT_TRUE(eventually([&] { return find_entry(server->repository_index(), "slow", "1") == nullptr; }));
}

TEST(Server, PollingPicksUpNewModelsAndRemovals) {
  Repository repo;
  repo.add_version("double", 1);
  auto server = start(repo, 20ms);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  repo.add_version("later", 1);
  ASSERT_TRUE(eventually([&] {
    bool ready = false;
    return !server->model_ready("later", "", &ready) && ready;
  }));
  fs::remove_all(repo.root() / "later");
  ASSERT_TRUE(eventually([&] {
    bool ready = false;
    return server->model_ready("later", "", &ready).has_value();
  }));
  // Once drained, a later look forgets it: the index lists what the folder holds.
  ASSERT_TRUE(eventually([&] {
    const std::vector<RepositoryEntry> index = server->repository_index();
    return find_entry(index, "later", "") == nullptr && find_entry(index, "later", "1") == nullptr;
  }));
  EXPECT_NE(find_entry(server->repository_index(), "double", "1"), nullptr);
}

TEST(Server, RescanPicksUpChangesWithoutPolling) {
  Repository repo;
  repo.add_version("double", 1);
  auto server = start(repo);  // no polling
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  repo.add_version("later", 1);
  repo.add_version("double", 2);
  ASSERT_FALSE(server->unload_model("double"));
  server->rescan();
  ASSERT_TRUE(eventually([&] {
    bool ready = false;
    return !server->model_ready("later", "", &ready) && ready;
  }));
  bool ready = true;
  EXPECT_TRUE(server->model_ready("double", "", &ready));  // unloaded by request: stays unloaded
  fs::remove_all(repo.root() / "later");
  server->rescan();
  EXPECT_TRUE(server->model_ready("later", "", &ready).has_value());  // removed: unloaded at once
}

TEST(Server, PollingSeesAFileReplacedWithOneOfTheSameSizeAndTime) {
  ASSERT_FALSE(zero_model().empty());
  ASSERT_EQ(fs::file_size(zero_model()), fs::file_size(double_model()));
  Repository repo;
  repo.add_version("d", 1);
  auto server = start(repo, 20ms);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  EXPECT_FLOAT_EQ(infer_sync(*server, request("d")).response.outputs.at(0).tensor.data<float>()[0], 3.0f);
  // Rewritten in place with another model of the same size, its modification time set back (as
  // `cp -p` or `rsync -t` of a file with the old time would leave it).
  const fs::path file = repo.root() / "d" / "1" / "model.onnx";
  const auto time = fs::last_write_time(file);
  fs::copy_file(zero_model(), file, fs::copy_options::overwrite_existing);
  fs::last_write_time(file, time);
  EXPECT_TRUE(eventually([&] {
    const InferOutcome o = infer_sync(*server, request("d"));
    return !o.error && o.response.outputs.at(0).tensor.data<float>()[0] == 0.0f;
  }));
}

TEST(Server, PollingLoadsAgainAVersionWhoseFilesChanged) {
  ASSERT_FALSE(triple_model().empty());
  Repository repo;
  repo.add_broken("late", 1);  // a copy not finished when the server looked
  repo.config("late", R"({"required": false})");
  repo.add_version("d", 1);
  auto server = start(repo, 20ms);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  auto state_of = [&](const std::string& name, std::string* reason = nullptr) {
    const auto index = server->repository_index();
    const RepositoryEntry* e = find_entry(index, name, "1");
    if (e && reason) *reason = e->reason;
    return e ? e->state : std::string("absent");
  };
  EXPECT_EQ(state_of("late"), "FAILED");
  // The copy completes: the failed version loads (before, polling left it failed for good).
  repo.add_version("late", 1);
  ASSERT_TRUE(eventually([&] { return state_of("late") == "READY"; }));
  EXPECT_FLOAT_EQ(infer_sync(*server, request("late")).response.outputs.at(0).tensor.data<float>()[0], 3.0f);

  // A ready version's file replaced: the new file serves once loaded, and no request fails
  // meanwhile (the version loaded before serves until then).
  std::atomic<bool> stop{false};
  std::atomic<int> failed{0}, answered{0};
  std::thread client([&] {
    while (!stop) {
      const InferOutcome o = infer_sync(*server, request("d"));
      if (o.error) failed++;
      answered++;
    }
  });
  fs::copy_file(triple_model(), repo.root() / "d" / "1" / "model.onnx", fs::copy_options::overwrite_existing);
  const bool tripled = eventually([&] {
    const InferOutcome o = infer_sync(*server, request("d"));
    return !o.error && o.response.outputs.at(0).tensor.data<float>()[0] == 4.5f;
  });
  stop = true;
  client.join();
  EXPECT_TRUE(tripled);
  EXPECT_EQ(failed.load(), 0) << "of " << answered.load();
  EXPECT_GT(answered.load(), 0);
  EXPECT_TRUE(server->ready());

  // A broken file in its place: the version loaded before keeps serving, and says why.
  std::ofstream(repo.root() / "d" / "1" / "model.onnx", std::ios::trunc) << "half a file";
  std::string reason;
  ASSERT_TRUE(eventually([&] { return state_of("d", &reason) == "READY" && !reason.empty(); }));
  EXPECT_NE(reason.find("did not load"), std::string::npos) << reason;
  EXPECT_FLOAT_EQ(infer_sync(*server, request("d")).response.outputs.at(0).tensor.data<float>()[0], 4.5f);
  // A config.json that cannot be used: the version serves as it was, and says why.
  repo.config("d", R"({"instances": "one"})");
  ASSERT_TRUE(
      eventually([&] { return state_of("d", &reason) == "READY" && reason.find("instances") != std::string::npos; }));
  EXPECT_NE(reason.find("still serves"), std::string::npos) << reason;
  EXPECT_FLOAT_EQ(infer_sync(*server, request("d")).response.outputs.at(0).tensor.data<float>()[0], 4.5f);
  // The file fixed and config.json changed: loaded again, the reason gone.
  fs::copy_file(double_model(), repo.root() / "d" / "1" / "model.onnx", fs::copy_options::overwrite_existing);
  repo.config("d", R"({"instances": 1})");
  ASSERT_TRUE(eventually([&] {
    const InferOutcome o = infer_sync(*server, request("d"));
    return !o.error && o.response.outputs.at(0).tensor.data<float>()[0] == 3.0f;
  }));
  EXPECT_TRUE(eventually([&] { return state_of("d", &reason) == "READY" && reason.empty(); }));
}

TEST(Server, StrictModelWithOpenBreakerIsNotReady) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("strict", 1);
  repo.config("strict", R"({"strict": true, "required": false, "fault_injection": "error=1.0",
                            "breaker": {"min_requests": 2, "strict_failure_rate": 0.5, "cooldown_ms": 60000}})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready() && loaded(*server); }));
  bool ready = false;
  ASSERT_FALSE(server->model_ready("strict", "", &ready));
  EXPECT_TRUE(ready);
  for (int i = 0; i < 4; ++i) {
    InferOutcome o = infer_sync(*server, request("strict"));
    EXPECT_TRUE(o.error);  // strict: no fallback
  }
  ASSERT_FALSE(server->model_ready("strict", "", &ready));
  EXPECT_FALSE(ready);
  const std::vector<RepositoryEntry> index_e = server->repository_index();
  const RepositoryEntry* e = find_entry(index_e, "strict", "1");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->state, "UNAVAILABLE");
  EXPECT_NE(e->reason.find("breaker"), std::string::npos) << e->reason;
  // Its metadata says so too (a version that is not ready still has metadata).
  ModelMetadata meta;
  ASSERT_FALSE(server->model_metadata("strict", "1", &meta));
  ASSERT_FALSE(meta.routes.empty());
  EXPECT_EQ(meta.routes.front().breaker, "open");
  EXPECT_EQ(meta.routes.front().last_fault.rfind("device_error: ", 0), 0u) << meta.routes.front().last_fault;
  // Not required: the server stays ready on "double".
  EXPECT_TRUE(server->ready());
}

TEST(Server, StrictModelIsReadyAgainAfterTheCooldown) {
  Repository repo;
  repo.add_version("strict", 1);
  repo.config("strict", R"({"strict": true, "fault_injection": "error=1.0,recover_after_s=1",
                            "breaker": {"min_requests": 2, "strict_failure_rate": 0.5, "cooldown_ms": 300,
                                        "half_open_calls": 1}})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  for (int i = 0; i < 4; ++i) infer_sync(*server, request("strict"));
  EXPECT_FALSE(server->ready());
  // After the cooldown the next request may probe the route: ready again, and once the faults
  // stop (1 s after they were armed) requests succeed.
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  EXPECT_TRUE(eventually([&] { return !infer_sync(*server, request("strict")).error; }));
}

TEST(Server, AnsweringOnlyThroughFallbackIsDegraded) {
  Repository repo;
  repo.add_version("double", 1);
  repo.config("double", R"({"fault_injection": "error=1.0", "breaker": {"min_requests": 1000}})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  for (int i = 0; i < 3; ++i) {
    InferOutcome o = infer_sync(*server, request("double"));
    ASSERT_FALSE(o.error) << o.error->message;
    EXPECT_TRUE(o.response.fallback);
  }
  std::vector<ModelStats> stats;
  ASSERT_FALSE(server->model_stats("double", "1", &stats));
  ASSERT_EQ(stats.size(), 1u);
  EXPECT_TRUE(stats[0].ready);
  EXPECT_TRUE(stats[0].degraded);
}

TEST(Server, StrictRequiredModelWithOpenBreakerMakesServerNotReady) {
  Repository repo;
  repo.add_version("strict", 1);
  repo.config("strict", R"({"strict": true, "fault_injection": "error=1.0",
                            "breaker": {"min_requests": 2, "strict_failure_rate": 0.5, "cooldown_ms": 60000}})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  for (int i = 0; i < 4; ++i) infer_sync(*server, request("strict"));
  EXPECT_FALSE(server->ready());
}

TEST(Server, MetricsAreValidPrometheusText) {
  Repository repo;
  repo.add_version("double", 1);
  repo.add_version("other", 1);
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready() && loaded(*server); }));
  ASSERT_FALSE(infer_sync(*server, request("double")).error);
  for (int i = 0; i < 2; ++i) ASSERT_FALSE(infer_sync(*server, request("other")).error);
  server->record_request("rest", 200, 0.002);
  server->record_request("grpc", 404, 0.001);
  const std::string text = server->metrics_prometheus();
  for (const char* needle :
       {"tandem_server_requests_total{protocol=\"rest\",code=\"200\"} 1", "tandem_server_request_seconds_bucket",
        "tandem_server_queue_seconds_count{model=\"double\"} 1", "tandem_server_queue_seconds_count{model=\"other\"} 2",
        "tandem_server_batch_rows_bucket{model=\"other\",le=\"1\"} 2", "tandem_server_in_flight 0",
        "# TYPE tandem_server_rejected_total counter", "tandem_server_model_ready{model=\"double\",version=\"1\"} 1",
        "model=\"double\""})
    EXPECT_NE(text.find(needle), std::string::npos) << needle;
  // One HELP and one TYPE per family.
  std::map<std::string, int> types;
  size_t pos = 0;
  while ((pos = text.find("# TYPE ", pos)) != std::string::npos) {
    const size_t end = text.find(' ', pos + 7);
    EXPECT_EQ(++types[text.substr(pos + 7, end - pos - 7)], 1) << text.substr(pos + 7, end - pos - 7);
    pos = end;
  }
  EXPECT_GT(types.size(), 7u);
}

TEST(Server, ShutdownDrainsQueuedAndInFlightRequests) {
  Repository repo;
  repo.add_version("slow", 1);
  repo.config("slow", R"({"instances": 1, "fault_injection": "latency_ms=30"})");
  auto server = start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(eventually([&] { return server->ready(); }));
  Outcomes outcomes;
  const int n = 5;
  for (int i = 0; i < n; ++i) ASSERT_FALSE(server->infer(request("slow"), outcomes.callback()));
  EXPECT_TRUE(server->shutdown());
  EXPECT_FALSE(server->ready());
  ASSERT_TRUE(outcomes.wait_for(n));
  for (const InferOutcome& o : outcomes.take()) EXPECT_FALSE(o.error) << o.error->message;
  std::optional<ProtocolError> refused;
  infer_sync(*server, request("slow"), &refused);
  ASSERT_TRUE(refused);
  EXPECT_EQ(refused->http_status, 503);
  EXPECT_TRUE(server->shutdown());  // idempotent
}

}  // namespace
}  // namespace tandem::server
