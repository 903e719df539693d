// grpc_frontend.h: the gRPC service of the Open Inference Protocol
// (inference.GRPCInferenceService, proto/grpc_predict_v2.proto): ServerLive, ServerReady,
// ModelReady, ServerMetadata, ModelMetadata and ModelInfer with raw_input_contents and
// raw_output_contents (typed `contents` are accepted too); and the statistics and
// model-repository extensions as Triton's clients call them (ModelStatistics, RepositoryIndex,
// RepositoryModelLoad, RepositoryModelUnload: the figures and actions of REST's /stats and
// /v2/repository). Errors are gRPC statuses with the
// ProtocolError's code and one-line message: NOT_FOUND, INVALID_ARGUMENT,
// RESOURCE_EXHAUSTED (queue full), UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL.
// Beside it, gRPC's standard health checking service (grpc.health.v1.Health,
// proto/health.proto), for Kubernetes' gRPC probes and load balancers. Check answers SERVING
// or NOT_SERVING from the readiness at that moment: service "" or
// "inference.GRPCInferenceService" is the server (ServerReady), "<model>" or
// "<model>/<version>" one model (ModelReady); an unknown name is NOT_FOUND. Watch is not
// served (UNIMPLEMENTED): probes poll Check.
// A ModelInfer call the client cancels (or whose deadline passes) before its answer is not
// computed, or its engine call is abandoned (CANCELLED, counted as client_gone): also while
// the thread that took it is making the engine call itself (GrpcOptions::infer_threads).
// Thread-safety: start() and stop() from one thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "server.h"

namespace tandem::server {

struct GrpcOptions {
  std::string host = "127.0.0.1";
  int port = 8001;  // 0: any free port (port() tells which)
  // ModelInfer calls that may run on the threads that took them, as REST's event loops
  // (HttpOptions::threads) run theirs. The frontend starts one more thread than this, each
  // taking calls from its own completion queue: a thread that takes a call decodes and admits
  // it, and makes the engine call and answers it itself when the model's scheduler has an
  // instance free and at least one other thread is still taking calls (so that admission, and
  // a fast refusal when a queue is full, never wait for compute); otherwise a scheduler thread
  // makes it and answers. No thread waits for a queued call.
  // 0: default_request_threads() (server.h), as REST's loops.
  int infer_threads = 0;
  // Threads for the other methods (grpc++'s synchronous server; they answer at once, but for
  // RepositoryModelLoad, which holds its thread until the model is ready or failed).
  // 0: max(64, 8 x hardware threads).
  int threads = 0;
};

class GrpcFrontend {
 public:
  static Result<std::unique_ptr<GrpcFrontend>> start(Server& server, GrpcOptions options);
  ~GrpcFrontend();  // stops
  int port() const;
  // Stops accepting calls; calls still running after `grace` are cancelled, and it returns
  // once each of them has been finished (admitted ones by their scheduler's answer).
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(5000));

 private:
  struct Impl;
  explicit GrpcFrontend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
