// grpc_echo.cpp: the smallest ModelInfer server grpc++ allows, to measure what grpc++ itself
// costs per call on this machine (bench/serve/grpc_floor.py, docs/serving.md).
// It uses grpc++'s callback API with Abseil's lock-order graph off (as `tandem serve` has it)
// and answers every ModelInfer at once, on the thread that read it (no completion queue
// thread to wake, as `tandem serve`'s asynchronous frontend has), with the
// classifier's answer shape (one FP32 output of 1x2 as raw contents), looking at the inputs
// only to count their bytes. No engine, no scheduler, no tensors: what a call costs here is
// what grpc++ takes to read the request and write the answer, which `tandem serve` pays too.
//   tandem_grpc_echo PORT
// Prints "listening PORT" once it serves (PORT 0 picks a free one) and stops on SIGTERM or
// SIGINT.
#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "grpc_predict_v2.grpc.pb.h"

namespace {

using Base = inference::GRPCInferenceService::CallbackService;

class EchoService final : public Base {
 public:
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context, const inference::ModelInferRequest* in,
                                       inference::ModelInferResponse* out) override {
    size_t bytes = 0;
    for (const std::string& raw : in->raw_input_contents()) bytes += raw.size();
    out->set_model_name(in->model_name());
    auto* y = out->add_outputs();
    y->set_name("y");
    y->set_datatype("FP32");
    y->add_shape(1);
    y->add_shape(2);
    const float answer[2] = {0.25f, bytes > 0 ? 0.75f : 0.0f};
    out->add_raw_output_contents(reinterpret_cast<const char*>(answer), sizeof(answer));
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: tandem_grpc_echo PORT\n");
    return 2;
  }
  // SIGTERM and SIGINT are blocked in every thread (grpc++'s inherit the mask) and taken by
  // sigwait below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  EchoService service;
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:" + std::string(argv[1]), grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(64 << 20);
  builder.SetMaxSendMessageSize(64 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    std::fprintf(stderr, "tandem_grpc_echo: cannot listen on port %s\n", argv[1]);
    return 1;
  }
  std::printf("listening %d\n", port);
  std::fflush(stdout);
  int signal_number = 0;
  sigwait(&stop_signals, &signal_number);
  server->Shutdown();
  return 0;
}
