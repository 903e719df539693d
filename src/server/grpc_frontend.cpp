// grpc_frontend.cpp: see grpc_frontend.h. ModelInfer uses grpc++'s callback API: the call is
// decoded and handed to the scheduler on a gRPC thread, and the scheduler's `done` encodes the
// answer and finishes the call on the thread that computed it, so no thread waits per call.
// grpc++ runs callbacks on the threads that also read the connections (two on a 2-core
// machine), so the engine call runs there only while no other call is open (the scheduler's
// caller-runs path: no hand-off for a lone call); otherwise a scheduler thread makes it.
// The other methods stay synchronous (all but RepositoryModelLoad answer at once).
#include "grpc_frontend.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <thread>

#include "grpc_codec.h"
#include "grpc_predict_v2.grpc.pb.h"
#include "health.grpc.pb.h"

namespace tandem::server {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

// The HTTP status a gRPC code corresponds to, for the server's request counters.
int http_equivalent(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return 200;
    case grpc::StatusCode::INVALID_ARGUMENT: return 400;
    case grpc::StatusCode::NOT_FOUND: return 404;
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return 503;
    case grpc::StatusCode::UNAVAILABLE: return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED: return 504;
    case grpc::StatusCode::CANCELLED: return 499;  // the client went away
    default: return 500;
  }
}

// Counts the call (with the error's own HTTP status: 413 and a full queue share a gRPC code).
grpc::Status answer(Server& server, const ProtocolError& err, Clock::time_point start) {
  server.record_request("grpc", err.http_status, seconds_since(start));
  return grpc::Status(static_cast<grpc::StatusCode>(err.grpc_code()), one_line(err.message));
}
grpc::Status answer(Server& server, grpc::Status status, Clock::time_point start) {
  server.record_request("grpc", http_equivalent(status.error_code()), seconds_since(start));
  return status;
}

void encode_duration(const Scheduler::Stats::Duration& d, inference::StatisticDuration* out) {
  out->set_count(d.count);
  out->set_ns(d.ns);
}

// The statistics extension's figures of one version, as REST's /stats has them.
void encode_model_statistics(const ModelStats& s, inference::ModelStatistics* out) {
  const Scheduler::Stats& q = s.scheduler;
  out->set_name(s.name);
  out->set_version(s.version);
  out->set_last_inference(static_cast<uint64_t>(std::max<int64_t>(0, q.last_inference_ms)));
  out->set_inference_count(q.inference_count);
  out->set_execution_count(q.execution_count);
  inference::InferStatistics* infer = out->mutable_inference_stats();
  encode_duration(q.success, infer->mutable_success());
  encode_duration(q.fail, infer->mutable_fail());
  encode_duration(q.queue(), infer->mutable_queue());
  encode_duration(q.compute_input, infer->mutable_compute_input());
  encode_duration(q.compute_infer, infer->mutable_compute_infer());
  encode_duration(q.compute_output, infer->mutable_compute_output());
  infer->mutable_cache_hit();
  for (const auto& [rows, d] : q.batch_compute) {
    inference::InferBatchStatistics* batch = out->add_batch_stats();
    batch->set_batch_size(static_cast<uint64_t>(rows));
    encode_duration(d[0], batch->mutable_compute_input());
    encode_duration(d[1], batch->mutable_compute_infer());
    encode_duration(d[2], batch->mutable_compute_output());
  }
}

using ServiceBase = inference::GRPCInferenceService::WithCallbackMethod_ModelInfer<inference::GRPCInferenceService::Service>;
using InferHolder = grpc::MessageHolder<inference::ModelInferRequest, inference::ModelInferResponse>;

// ModelInfer's request and response, allocated by the service instead of by grpc++ so that the
// handler owns the request and may move its raw contents into the tensors (grpc++ hands a
// handler a const request). grpc++ releases them once the call is finished.
class InferMessages final : public InferHolder {
 public:
  InferMessages() {
    set_request(&request_);
    set_response(&response_);
  }
  void Release() override { delete this; }

 private:
  inference::ModelInferRequest request_;
  inference::ModelInferResponse response_;
};

class InferMessageAllocator final
    : public grpc::MessageAllocator<inference::ModelInferRequest, inference::ModelInferResponse> {
 public:
  InferHolder* AllocateMessages() override { return new InferMessages; }
};

class InferenceService final : public ServiceBase {
 public:
  explicit InferenceService(Server& server) : server_(server) { SetMessageAllocatorFor_ModelInfer(&allocator_); }

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* out) override {
    const auto start = Clock::now();
    out->set_live(server_.live());
    return answer(grpc::Status::OK, start);
  }

  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* out) override {
    const auto start = Clock::now();
    out->set_ready(server_.ready());
    return answer(grpc::Status::OK, start);
  }

  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* in,
                          inference::ModelReadyResponse* out) override {
    const auto start = Clock::now();
    bool ready = false;
    if (auto err = server_.model_ready(in->name(), in->version(), &ready)) return answer(*err, start);
    out->set_ready(ready);
    return answer(grpc::Status::OK, start);
  }

  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* out) override {
    const auto start = Clock::now();
    const server::ServerMetadata meta = server_.metadata();
    out->set_name(meta.name);
    out->set_version(meta.version);
    for (const std::string& e : meta.extensions) out->add_extensions(e);
    return answer(grpc::Status::OK, start);
  }

  grpc::Status ModelMetadata(grpc::ServerContext*, const inference::ModelMetadataRequest* in,
                             inference::ModelMetadataResponse* out) override {
    const auto start = Clock::now();
    server::ModelMetadata meta;
    if (auto err = server_.model_metadata(in->name(), in->version(), &meta)) return answer(*err, start);
    out->set_name(meta.name);
    for (const std::string& v : meta.versions) out->add_versions(v);
    out->set_platform(meta.platform);
    const auto fill = [](const TensorMetadata& t, inference::ModelMetadataResponse::TensorMetadata* m) {
      m->set_name(t.name);
      m->set_datatype(t.datatype);
      for (int64_t d : t.shape) m->add_shape(d);
    };
    for (const TensorMetadata& t : meta.inputs) fill(t, out->add_inputs());
    for (const TensorMetadata& t : meta.outputs) fill(t, out->add_outputs());
    return answer(grpc::Status::OK, start);
  }

  grpc::Status ModelStatistics(grpc::ServerContext*, const inference::ModelStatisticsRequest* in,
                               inference::ModelStatisticsResponse* out) override {
    const auto start = Clock::now();
    std::vector<ModelStats> stats;
    if (auto err = server_.model_stats(in->name(), in->version(), &stats)) return answer(*err, start);
    for (const ModelStats& s : stats) encode_model_statistics(s, out->add_model_stats());
    return answer(grpc::Status::OK, start);
  }

  grpc::Status RepositoryIndex(grpc::ServerContext*, const inference::RepositoryIndexRequest* in,
                               inference::RepositoryIndexResponse* out) override {
    const auto start = Clock::now();
    if (auto err = check_repository_name(in->repository_name(), server_.options().model_repository.string()))
      return answer(*err, start);
    for (const RepositoryEntry& e : server_.repository_index(in->ready())) {
      auto* row = out->add_models();
      row->set_name(e.name);
      row->set_version(e.version);
      row->set_state(e.state);
      row->set_reason(e.reason);
    }
    return answer(grpc::Status::OK, start);
  }

  // Waits for the load on this thread (one of the synchronous methods' pool), as the REST
  // endpoint waits on its blocking executor.
  grpc::Status RepositoryModelLoad(grpc::ServerContext*, const inference::RepositoryModelLoadRequest* in,
                                   inference::RepositoryModelLoadResponse*) override {
    const auto start = Clock::now();
    if (auto err = repository_refusal("load", in->repository_name(), in->parameters())) return answer(*err, start);
    if (auto err = server_.load_model(in->model_name())) return answer(*err, start);
    return answer(grpc::Status::OK, start);
  }

  grpc::Status RepositoryModelUnload(grpc::ServerContext*, const inference::RepositoryModelUnloadRequest* in,
                                     inference::RepositoryModelUnloadResponse*) override {
    const auto start = Clock::now();
    if (auto err = repository_refusal("unload", in->repository_name(), in->parameters())) return answer(*err, start);
    if (auto err = server_.unload_model(in->model_name())) return answer(*err, start);
    return answer(grpc::Status::OK, start);
  }

  // `in` and `out` live until the call is finished. The scheduler runs `done` exactly once for
  // an admitted request; it touches only the call and the Server, which outlives the
  // frontend's calls (stop() waits for them).
  grpc::ServerUnaryReactor* ModelInfer(grpc::CallbackServerContext* context, const inference::ModelInferRequest* in,
                                       inference::ModelInferResponse* out) override {
    const auto start = Clock::now();
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    // `in` is the request of this service's allocator, ours to change.
    auto* messages = static_cast<InferHolder*>(context->GetRpcAllocatorState());
    if (messages == nullptr || messages->request() != in) {
      reactor->Finish(
          answer(grpc::Status(grpc::StatusCode::INTERNAL, "the request was not allocated by the service"), start));
      return reactor;
    }
    InferRequest request;
    if (auto err = decode_grpc_infer_request(messages->request(), server_.options().limits, &request)) {
      reactor->Finish(answer(*err, start));
      return reactor;
    }
    // A client deadline sooner than the request's own timeout bounds the request.
    if (context->deadline() != std::chrono::system_clock::time_point::max()) {
      const double left_ms =
          std::chrono::duration<double, std::milli>(context->deadline() - std::chrono::system_clock::now()).count();
      if (left_ms <= 0) {
        reactor->Finish(answer(grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline has passed"), start));
        return reactor;
      }
      if (!request.timeout_ms || *request.timeout_ms <= 0 || left_ms < *request.timeout_ms) request.timeout_ms = left_ms;
    }
    request.client_gone = [context] { return context->IsCancelled(); };
    // The engine call may run on this thread (one of the few that read every connection) only
    // when no other call is open: otherwise the bytes of those calls would wait unread for it.
    const bool only_call = open_calls_.fetch_add(1, std::memory_order_relaxed) == 0;
    Server* server = &server_;
    std::atomic<int>* open_calls = &open_calls_;
    auto done = [server, context, reactor, out, start, open_calls](InferOutcome&& outcome) {
      open_calls->fetch_sub(1, std::memory_order_relaxed);
      if (context->IsCancelled()) {  // the client went away: nobody reads the answer
        reactor->Finish(server::answer(*server, grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"), start));
      } else if (outcome.error) {
        reactor->Finish(server::answer(*server, *outcome.error, start));
      } else {
        encode_grpc_infer_response(outcome.response, out);
        reactor->Finish(server::answer(*server, grpc::Status::OK, start));
      }
    };
    if (auto err = server_.infer(std::move(request), std::move(done), only_call)) {
      open_calls_.fetch_sub(1, std::memory_order_relaxed);
      reactor->Finish(answer(*err, start));
    }
    return reactor;
  }

 private:
  std::optional<ProtocolError> repository_refusal(
      std::string_view action, const std::string& repository,
      const google::protobuf::Map<std::string, inference::ModelRepositoryParameter>& parameters) const {
    if (auto err = check_repository_name(repository, server_.options().model_repository.string())) return err;
    for (const auto& [name, value] : parameters)
      if (auto err = check_repository_parameter(action, name, value.has_bool_param())) return err;
    return std::nullopt;
  }
  grpc::Status answer(const ProtocolError& err, Clock::time_point start) { return server::answer(server_, err, start); }
  grpc::Status answer(grpc::Status status, Clock::time_point start) {
    return server::answer(server_, std::move(status), start);
  }

  Server& server_;
  InferMessageAllocator allocator_;
  std::atomic<int> open_calls_{0};  // ModelInfer calls admitted or being admitted, not yet done
};

// gRPC's standard health check (grpc_frontend.h), answered from the server's readiness now.
class HealthService final : public grpc::health::v1::Health::Service {
 public:
  explicit HealthService(Server& server) : server_(server) {}

  grpc::Status Check(grpc::ServerContext*, const grpc::health::v1::HealthCheckRequest* in,
                     grpc::health::v1::HealthCheckResponse* out) override {
    const auto start = Clock::now();
    const std::string& service = in->service();
    bool serving = false;
    if (service.empty() || service == kInferenceService) {
      serving = server_.ready();
    } else {
      const size_t slash = service.rfind('/');
      const std::string model = slash == std::string::npos ? service : service.substr(0, slash);
      const std::string version = slash == std::string::npos ? std::string() : service.substr(slash + 1);
      if (auto err = server_.model_ready(model, version, &serving))
        return answer(server_,
                      grpc::Status(grpc::StatusCode::NOT_FOUND,
                                   "unknown service '" + one_line(service) + "': " + one_line(err->message)),
                      start);
    }
    out->set_status(serving ? grpc::health::v1::HealthCheckResponse::SERVING
                            : grpc::health::v1::HealthCheckResponse::NOT_SERVING);
    return answer(server_, grpc::Status::OK, start);
  }

 private:
  static constexpr const char* kInferenceService = "inference.GRPCInferenceService";
  Server& server_;
};

int clamp_to_int(size_t bytes) { return static_cast<int>(std::min<size_t>(bytes, INT_MAX)); }

}  // namespace

struct GrpcFrontend::Impl {
  std::unique_ptr<InferenceService> service;
  std::unique_ptr<HealthService> health;
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  bool stopped = false;
};

Result<std::unique_ptr<GrpcFrontend>> GrpcFrontend::start(Server& server, GrpcOptions options) {
  // Debian's Abseil is built without NDEBUG, so every absl::Mutex that grpc++ takes (several
  // per call) also updates a process-wide lock-order graph under one global lock. That is a
  // debugging aid for Abseil's own users; grpc++ does not need it to be correct.
  static std::once_flag no_deadlock_graph;
  std::call_once(no_deadlock_graph, [] { absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore); });
  auto impl = std::make_unique<Impl>();
  impl->service = std::make_unique<InferenceService>(server);
  impl->health = std::make_unique<HealthService>(server);
  int threads = options.threads;
  if (threads <= 0) threads = std::max(64, 8 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  threads = std::max(threads, 2);  // one polling the completion queue, one handling a call

  const bool ipv6 = options.host.find(':') != std::string::npos;
  const std::string address =
      (ipv6 ? "[" + options.host + "]" : options.host) + ":" + std::to_string(options.port);
  const RequestLimits& limits = server.options().limits;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(address, grpc::InsecureServerCredentials(), &impl->port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use is an error, not shared
  builder.SetMaxReceiveMessageSize(clamp_to_int(limits.max_body_bytes));
  builder.SetMaxSendMessageSize(clamp_to_int(limits.max_body_bytes));
  grpc::ResourceQuota quota("tandem-grpc");
  quota.SetMaxThreads(threads);
  builder.SetResourceQuota(quota);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::NUM_CQS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MIN_POLLERS, 1);
  builder.SetSyncServerOption(grpc::ServerBuilder::SyncServerOption::MAX_POLLERS, threads);
  builder.RegisterService(impl->service.get());
  builder.RegisterService(impl->health.get());
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0)
    return Status(StatusCode::unavailable, "cannot listen on " + address + " (in use, or not a local address)");
  return std::unique_ptr<GrpcFrontend>(new GrpcFrontend(std::move(impl)));
}

GrpcFrontend::GrpcFrontend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

GrpcFrontend::~GrpcFrontend() { stop(std::chrono::milliseconds(0)); }

int GrpcFrontend::port() const { return impl_->port; }

void GrpcFrontend::stop(std::chrono::milliseconds grace) {
  if (impl_->stopped) return;
  impl_->stopped = true;
  impl_->server->Shutdown(std::chrono::system_clock::now() + grace);
  impl_->server->Wait();
}

}  // namespace tandem::server
