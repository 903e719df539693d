// Tests of the gRPC frontend (src/server/grpc_frontend.h) over a real Server with an empty
// repository: the health RPCs, errors as statuses, the message size limit, a port already in
// use, and stopping; and over a repository with a model: the statistics and repository
// extensions, a call taken while others compute, and a cancel seen during a call's compute. Everything binds to
// 127.0.0.1 on ports the system picks; models and inference are covered end to end by grpc_api_test.py.
#include "server/grpc_frontend.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <thread>
#include <vector>

#include "grpc_predict_v2.grpc.pb.h"
#include "server_test_util.h"

namespace tandem::server {
namespace {

namespace fs = std::filesystem;

class GrpcFrontendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repo_ = fs::temp_directory_path() / ("tandem_grpc_frontend_test_" + std::to_string(::getpid()));
    fs::create_directories(repo_);
    ServerOptions options;
    options.model_repository = repo_;
    options.limits.max_body_bytes = 4096;
    auto server = Server::create(options);
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(server.value());
    GrpcOptions grpc_options;
    grpc_options.port = 0;
    grpc_options.threads = 4;
    auto frontend = GrpcFrontend::start(*server_, grpc_options);
    ASSERT_TRUE(frontend.is_ok()) << frontend.status().to_string();
    frontend_ = std::move(frontend.value());
    auto channel = grpc::CreateChannel("127.0.0.1:" + std::to_string(frontend_->port()), grpc::InsecureChannelCredentials());
    stub_ = inference::GRPCInferenceService::NewStub(channel);
  }
  void TearDown() override {
    frontend_.reset();
    server_.reset();
    std::error_code ignored;
    fs::remove_all(repo_, ignored);
  }

  // A context whose call gives up after 10 s, so that no test can hang.
  static std::unique_ptr<grpc::ClientContext> context() {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    return c;
  }

  fs::path repo_;
  std::unique_ptr<Server> server_;
  std::unique_ptr<GrpcFrontend> frontend_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

TEST_F(GrpcFrontendTest, HealthOfAServerWithNoModels) {
  EXPECT_GT(frontend_->port(), 0);
  inference::ServerLiveResponse live;
  ASSERT_TRUE(stub_->ServerLive(context().get(), {}, &live).ok());
  EXPECT_TRUE(live.live());
  inference::ServerReadyResponse ready;
  ASSERT_TRUE(stub_->ServerReady(context().get(), {}, &ready).ok());
  EXPECT_FALSE(ready.ready()) << "an empty repository is not ready";
  inference::ServerMetadataResponse meta;
  ASSERT_TRUE(stub_->ServerMetadata(context().get(), {}, &meta).ok());
  EXPECT_EQ(meta.name(), "tandem");
}

TEST_F(GrpcFrontendTest, UnknownModelsAreNotFound) {
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("ghost");
  inference::ModelReadyResponse ready;
  grpc::Status status = stub_->ModelReady(context().get(), ready_request, &ready);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("ghost"), std::string::npos) << status.error_message();

  inference::ModelInferRequest infer;
  infer.set_model_name("ghost");
  auto* input = infer.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(1);
  infer.add_raw_input_contents(std::string(4, '\0'));
  inference::ModelInferResponse response;
  status = stub_->ModelInfer(context().get(), infer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
}

TEST_F(GrpcFrontendTest, MalformedRequestsAreInvalidArguments) {
  inference::ModelInferRequest infer;
  infer.set_model_name("ghost");
  auto* input = infer.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(3);
  infer.add_raw_input_contents(std::string(4, '\0'));
  inference::ModelInferResponse response;
  const grpc::Status status = stub_->ModelInfer(context().get(), infer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(), "input 'x': expected 12 bytes, got 4");
}

TEST_F(GrpcFrontendTest, MessagesOverTheBodyLimitAreRefused) {
  inference::ModelInferRequest infer;
  infer.set_model_name("ghost");
  infer.add_raw_input_contents(std::string(8192, '\0'));
  inference::ModelInferResponse response;
  const grpc::Status status = stub_->ModelInfer(context().get(), infer, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << status.error_message();
}

TEST_F(GrpcFrontendTest, APortInUseIsAnError) {
  GrpcOptions options;
  options.port = frontend_->port();
  auto second = GrpcFrontend::start(*server_, options);
  ASSERT_FALSE(second.is_ok()) << "two servers bound port " << options.port;
  EXPECT_NE(second.status().message().find(std::to_string(options.port)), std::string::npos)
      << second.status().message();
}

TEST_F(GrpcFrontendTest, StoppedFrontendRefusesCalls) {
  frontend_->stop(std::chrono::milliseconds(100));
  frontend_->stop();  // idempotent
  inference::ServerLiveResponse live;
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(2));
  EXPECT_FALSE(stub_->ServerLive(c.get(), {}, &live).ok());
}

// The statistics and model-repository extensions over gRPC, as Triton's clients call them.
TEST(GrpcExtensions, StatisticsAndRepositoryRpcsMatchTheServer) {
  server_test::Repository repo;
  repo.add_version("double", 1);
  repo.add_version("other", 1);
  auto server = server_test::start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(server_test::eventually([&] { return server->ready() && server_test::loaded(*server); }));
  GrpcOptions options;
  options.port = 0;
  options.threads = 4;
  auto frontend = GrpcFrontend::start(*server, options);
  ASSERT_TRUE(frontend.is_ok()) << frontend.status().to_string();
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*frontend)->port()), grpc::InsecureChannelCredentials()));
  auto context = [] {
    auto c = std::make_unique<grpc::ClientContext>();
    c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    return c;
  };

  // Three requests of two rows each, then the figures (without dynamic batching a request is
  // one inference of batch size 1, as the statistics extension counts a model without batching).
  inference::ModelInferRequest infer;
  infer.set_model_name("double");
  auto* input = infer.add_inputs();
  input->set_name("x");
  input->set_datatype("FP32");
  input->add_shape(2);
  input->add_shape(4);
  infer.add_raw_input_contents(std::string(2 * 4 * sizeof(float), '\0'));
  for (int i = 0; i < 3; ++i) {
    inference::ModelInferResponse response;
    ASSERT_TRUE(stub->ModelInfer(context().get(), infer, &response).ok());
  }
  inference::ModelStatisticsRequest stats_request;
  stats_request.set_name("double");
  inference::ModelStatisticsResponse stats;
  ASSERT_TRUE(stub->ModelStatistics(context().get(), stats_request, &stats).ok());
  ASSERT_EQ(stats.model_stats_size(), 1);
  const inference::ModelStatistics& s = stats.model_stats(0);
  EXPECT_EQ(s.name(), "double");
  EXPECT_EQ(s.version(), "1");
  EXPECT_EQ(s.inference_count(), 3u);
  EXPECT_EQ(s.execution_count(), 3u);
  EXPECT_EQ(s.inference_stats().success().count(), 3u);
  EXPECT_GT(s.inference_stats().success().ns(), 0u);
  EXPECT_EQ(s.inference_stats().fail().count(), 0u);
  EXPECT_EQ(s.inference_stats().compute_infer().count(), 3u);
  ASSERT_EQ(s.batch_stats_size(), 1);
  EXPECT_EQ(s.batch_stats(0).batch_size(), 1u);
  EXPECT_EQ(s.batch_stats(0).compute_infer().count(), 3u);
  EXPECT_GT(s.last_inference(), 0u);
  // The same figures as the server's own (what REST's /stats renders).
  std::vector<ModelStats> direct;
  ASSERT_FALSE(server->model_stats("double", "", &direct));
  ASSERT_EQ(direct.size(), 1u);
  EXPECT_EQ(s.inference_stats().compute_infer().ns(), direct[0].scheduler.compute_infer.ns);
  inference::ModelStatisticsResponse all;
  ASSERT_TRUE(stub->ModelStatistics(context().get(), {}, &all).ok());
  EXPECT_EQ(all.model_stats_size(), 2);
  stats_request.set_name("ghost");
  EXPECT_EQ(stub->ModelStatistics(context().get(), stats_request, &stats).error_code(), grpc::StatusCode::NOT_FOUND);

  // Unload, the index (all, and ready only), load again.
  const auto index = [&](bool ready_only) {
    inference::RepositoryIndexRequest request;
    request.set_ready(ready_only);
    inference::RepositoryIndexResponse response;
    EXPECT_TRUE(stub->RepositoryIndex(context().get(), request, &response).ok());
    std::map<std::string, std::string> states;
    for (const auto& m : response.models()) states[m.name() + "/" + m.version()] = m.state();
    return states;
  };
  EXPECT_EQ(index(false), (std::map<std::string, std::string>{{"double/1", "READY"}, {"other/1", "READY"}}));
  inference::RepositoryModelUnloadRequest unload;
  unload.set_model_name("other");
  (*unload.mutable_parameters())["unload_dependents"].set_bool_param(true);
  inference::RepositoryModelUnloadResponse unloaded;
  ASSERT_TRUE(stub->RepositoryModelUnload(context().get(), unload, &unloaded).ok());
  ASSERT_TRUE(server_test::eventually([&] { return index(true).size() == 1; }));
  EXPECT_EQ(index(true), (std::map<std::string, std::string>{{"double/1", "READY"}}));
  inference::RepositoryModelLoadRequest load;
  load.set_model_name("other");
  inference::RepositoryModelLoadResponse loaded;
  ASSERT_TRUE(stub->RepositoryModelLoad(context().get(), load, &loaded).ok());  // answers once ready
  inference::ModelReadyRequest ready_request;
  ready_request.set_name("other");
  inference::ModelReadyResponse ready;
  ASSERT_TRUE(stub->ModelReady(context().get(), ready_request, &ready).ok());
  EXPECT_TRUE(ready.ready());

  // What tandem does not do is refused, not ignored; an unknown model or repository is not found.
  load.set_model_name("ghost");
  grpc::Status status = stub->RepositoryModelLoad(context().get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << status.error_message();
  load.set_model_name("other");
  (*load.mutable_parameters())["config"].set_string_param("{\"backend\": \"onnxruntime\"}");
  status = stub->RepositoryModelLoad(context().get(), load, &loaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_EQ(status.error_message(),
            "repository load: parameter 'config' is not supported (each model's config.json in the repository "
            "configures it)");
  unload.set_repository_name("elsewhere");
  status = stub->RepositoryModelUnload(context().get(), unload, &unloaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_NE(status.error_message().find("'elsewhere'"), std::string::npos) << status.error_message();
  unload.set_repository_name(repo.root().filename().string());  // the folder's name will do
  (*unload.mutable_parameters())["unload_dependents"].set_string_param("yes");
  status = stub->RepositoryModelUnload(context().get(), unload, &unloaded);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  inference::RepositoryIndexRequest named;
  named.set_repository_name(repo.root().string());
  inference::RepositoryIndexResponse named_index;
  EXPECT_TRUE(stub->RepositoryIndex(context().get(), named, &named_index).ok());
  EXPECT_EQ(named_index.models_size(), 2);
  (*frontend)->stop();
}

// A call of the PaddleOCR classifier (input "x", rows x 3 x 48 x 192) on `rows` black images.
inference::ModelInferRequest blank_images(const std::string& model, int64_t rows) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* images = request.add_inputs();
  images->set_name("x");
  images->set_datatype("FP32");
  for (int64_t d : {rows, int64_t{3}, int64_t{48}, int64_t{192}}) images->add_shape(d);
  request.add_raw_input_contents(std::string(static_cast<size_t>(rows) * 3 * 48 * 192 * sizeof(float), '\0'));
  return request;
}

// A ModelInfer call may compute on the thread that took it, but never the last thread taking
// calls: with two threads and two long calls in flight (one on a thread, one handed to the
// scheduler), a third call is still taken and answered.

TEST(GrpcInfer, ACallIsAnsweredWhileOthersComputeOnEveryThreadButOne) {
  server_test::Repository repo;
  repo.add_version("double", 1);
  // Calls to "slow" take a few hundred milliseconds: 1.5 s of injected latency on the
  // reference backend, cut short by the route's time budget.
  repo.add_file("slow", 1, fs::path(TANDEM_SOURCE_DIR) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx");
  repo.config("slow", R"({"input_shapes": {"x": [1, 3, 48, 192]}, "instances": 2, "backends": ["reference"],
                         "fault_injection": "latency_ms=1500"})");
  auto server = server_test::start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(server_test::eventually([&] { return server->ready() && server_test::loaded(*server); }));
  GrpcOptions options;
  options.port = 0;
  options.infer_threads = 1;  // and the thread that keeps taking calls
  auto frontend = GrpcFrontend::start(*server, options);
  ASSERT_TRUE(frontend.is_ok()) << frontend.status().to_string();
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*frontend)->port()), grpc::InsecureChannelCredentials()));
  const auto call = [&](const inference::ModelInferRequest& request, inference::ModelInferResponse* response) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    return stub->ModelInfer(&context, request, response);
  };

  const inference::ModelInferRequest slow = blank_images("slow", 1);
  std::atomic<int> slow_done{0};
  std::vector<grpc::StatusCode> slow_codes(2);
  std::vector<std::thread> callers;
  for (int i = 0; i < 2; ++i)
    callers.emplace_back([&, i] {
      inference::ModelInferResponse response;
      slow_codes[i] = call(slow, &response).error_code();
      ++slow_done;
    });
  const auto in_flight = [&] {
    std::vector<ModelStats> stats;
    EXPECT_FALSE(server->model_stats("slow", "", &stats));
    return stats.empty() ? 0 : stats[0].scheduler.in_flight;
  };
  ASSERT_TRUE(server_test::eventually([&] { return in_flight() == 2 || slow_done > 0; }));

  inference::ModelInferRequest fast;
  fast.set_model_name("double");
  auto* x = fast.add_inputs();
  x->set_name("x");
  x->set_datatype("FP32");
  x->add_shape(1);
  x->add_shape(4);
  const float values[4] = {0.5f, 1.0f, -2.0f, 3.0f};
  fast.add_raw_input_contents(std::string(reinterpret_cast<const char*>(values), sizeof values));
  inference::ModelInferResponse answer;
  const grpc::Status status = call(fast, &answer);
  const bool both_slow_in_flight = in_flight() == 2 && slow_done == 0;
  ASSERT_TRUE(status.ok()) << status.error_message();
  ASSERT_EQ(answer.raw_output_contents_size(), 1);
  ASSERT_EQ(answer.raw_output_contents(0).size(), sizeof values);
  float y[4];
  std::memcpy(y, answer.raw_output_contents(0).data(), sizeof y);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y[i], 2 * values[i]);
  EXPECT_TRUE(both_slow_in_flight) << "the call was answered only after a slow call ended";
  for (std::thread& t : callers) t.join();
  EXPECT_EQ(slow_codes[0], grpc::StatusCode::OK);
  EXPECT_EQ(slow_codes[1], grpc::StatusCode::OK);
  (*frontend)->stop();
}

// A call computing on the thread that took it learns that its client cancelled while it
// computes, not only after: its thread handles its queue's closed tags when the engine asks
// whether the client is gone (about every 2 ms), and the engine abandons the call.
TEST(GrpcInfer, ACallComputingOnItsThreadSeesItsClientCancel) {
  server_test::Repository repo;
  // A few hundred milliseconds per call: eight images on the reference backend, one thread.
  repo.add_file("long", 1, fs::path(TANDEM_SOURCE_DIR) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx");
  repo.config("long", R"({"input_shapes": {"x": [8, 3, 48, 192]}, "instances": 1, "threads": 1,
                         "backends": ["reference"]})");
  auto server = server_test::start(repo);
  ASSERT_TRUE(server);
  ASSERT_TRUE(server_test::eventually([&] { return server->ready() && server_test::loaded(*server); }));
  GrpcOptions options;
  options.port = 0;
  options.infer_threads = 1;  // one thread may compute, the other keeps taking calls
  auto frontend = GrpcFrontend::start(*server, options);
  ASSERT_TRUE(frontend.is_ok()) << frontend.status().to_string();
  auto stub = inference::GRPCInferenceService::NewStub(
      grpc::CreateChannel("127.0.0.1:" + std::to_string((*frontend)->port()), grpc::InsecureChannelCredentials()));
  const inference::ModelInferRequest request = blank_images("long", 8);
  const auto stats = [&] {
    std::vector<ModelStats> all;
    EXPECT_FALSE(server->model_stats("long", "", &all));
    return all.empty() ? Scheduler::Stats() : all[0].scheduler;
  };

  // How long a call takes when nobody cancels it.
  inference::ModelInferResponse response;
  grpc::ClientContext whole;
  whole.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  const auto began = std::chrono::steady_clock::now();
  const grpc::Status finished = stub->ModelInfer(&whole, request, &response);
  const auto uncancelled = std::chrono::steady_clock::now() - began;
  ASSERT_TRUE(finished.ok()) << finished.error_message();

  grpc::ClientContext cancelled;
  cancelled.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  grpc::Status status;
  std::thread caller([&] {
    inference::ModelInferResponse ignored;
    status = stub->ModelInfer(&cancelled, request, &ignored);
  });
  const bool computing = server_test::eventually([&] { return stats().in_flight == 1; });
  cancelled.TryCancel();
  const auto cancelled_at = std::chrono::steady_clock::now();
  // Until the engine call is abandoned (client_gone) or, without that, ends by itself.
  const bool ended = server_test::eventually([&] {
    const Scheduler::Stats now = stats();
    return now.client_gone == 1 || now.in_flight == 0;
  });
  const auto noticed = std::chrono::steady_clock::now() - cancelled_at;
  caller.join();
  ASSERT_TRUE(computing && ended);
  EXPECT_EQ(stats().client_gone, 1u) << "the engine call was not abandoned: the cancel was seen only after it";
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  EXPECT_LT(noticed, uncancelled / 2) << "the cancel was seen after "
                                      << std::chrono::duration<double, std::milli>(noticed).count()
                                      << " ms; an uncancelled call takes "
                                      << std::chrono::duration<double, std::milli>(uncancelled).count() << " ms";
  (*frontend)->stop();
}

}  // namespace
}  // namespace tandem::server
