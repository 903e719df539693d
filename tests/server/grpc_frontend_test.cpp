// Tests of the gRPC frontend (src/server/grpc_frontend.h) over a real Server with an empty
// repository: the health RPCs, errors as statuses, the message size limit, a port already in
// use, and stopping. Everything binds to 127.0.0.1 on ports the system picks; models and
// inference are covered end to end by grpc_api_test.py.
#include "server/grpc_frontend.h"

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "grpc_predict_v2.grpc.pb.h"

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

}  // namespace
}  // namespace tandem::server
