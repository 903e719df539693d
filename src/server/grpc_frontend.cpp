// grpc_frontend.cpp: see grpc_frontend.h. ModelInfer uses grpc++'s asynchronous API with a
// completion queue per thread (InferCalls below), so that, as a REST connection's event loop
// does, the thread that took a call can make its engine call and send the answer itself, with
// no hand-off to a scheduler thread and back. The other methods stay synchronous (all but
// RepositoryModelLoad answer at once).
#include "grpc_frontend.h"

#include <absl/synchronization/mutex.h>
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <mutex>
#include <thread>
#include <vector>

#include "grpc_codec.h"
#include "grpc_predict_v2.grpc.pb.h"
#include "health.grpc.pb.h"
#include "tandem/sysinfo.h"

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

// ModelInfer is asynchronous (grpc_frontend.h); the other methods are synchronous.
using ServiceBase =
    inference::GRPCInferenceService::WithAsyncMethod_ModelInfer<inference::GRPCInferenceService::Service>;

class InferenceService final : public ServiceBase {
 public:
  explicit InferenceService(Server& server) : server_(server) {}

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

// One ModelInfer call of the asynchronous service, from the moment a thread asks grpc++ for a
// call on its completion queue until grpc++ has handed back both of the call's later tags
// (finished and closed). Only its queue's thread touches it, but for the scheduler's `done`
// (between admission and Finish) and `gone`, which the scheduler reads from its threads.
struct InferCall {
  enum class Event { arrived, finished, closed };
  struct Tag {
    InferCall* call;
    Event event;
  };

  InferCall() { context.AsyncNotifyWhenDone(&closed_tag); }

  grpc::ServerContext context;
  inference::ModelInferRequest request;  // ours to change: the tensors take its raw contents
  inference::ModelInferResponse response;
  grpc::ServerAsyncResponseWriter<inference::ModelInferResponse> responder{&context};
  Clock::time_point start;
  std::atomic<bool> gone{false};  // closed by the client before it was answered
  // Set (release) by whichever thread finishes the call, read (acquire) by its queue's thread
  // when the finished tag comes back: grpc++ orders the two, but out of sight of race
  // detectors, and the answer was written on the finishing thread.
  std::atomic<bool> answered{false};
  int tags_left = 2;  // finished and closed, once it arrived
  Tag arrived_tag{this, Event::arrived};
  Tag finished_tag{this, Event::finished};
  Tag closed_tag{this, Event::closed};
};

// The ModelInfer calls (grpc_frontend.h): a thread per completion queue takes a call, decodes
// and admits it, and makes the engine call itself when the scheduler has an instance free and
// another thread is still taking calls; otherwise a scheduler thread makes it and its `done`
// finishes the call. A thread asks grpc++ for its next call only once it is free again, so
// that no call waits behind another's compute while some thread is idle.
class InferCalls {
 public:
  InferCalls(Server& server, ServiceBase& service, std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues)
      : server_(server), service_(service), queues_(std::move(queues)) {}
  ~InferCalls() { stop(); }

  // Each queue's first call is asked for here, before its thread runs, so that a stop() right
  // after start() finds them counted and never shuts a queue down under a thread about to ask.
  void start() {
    for (size_t q = 0; q < queues_.size(); ++q) ask_for_call(q);
    for (size_t q = 0; q < queues_.size(); ++q) threads_.emplace_back([this, q] { serve(q); });
  }

  // After grpc::Server::Shutdown (which fails the calls asked for and cancels the open ones
  // past its deadline): waits until every call taken has been finished by its answer and
  // handed back, then shuts the queues down and joins the threads. Idempotent.
  void stop() {
    if (stopped_.exchange(true)) return;
    stopping_.store(true);
    for (int64_t alive = calls_alive_.load(); alive != 0; alive = calls_alive_.load()) calls_alive_.wait(alive);
    for (auto& queue : queues_) queue->Shutdown();
    for (std::thread& t : threads_) t.join();
    for (auto& queue : queues_) {  // queues whose threads never ran (a server that did not start)
      void* tag = nullptr;
      bool ok = false;
      while (queue->Next(&tag, &ok)) {
      }
    }
  }

 private:
  void serve(size_t q) {
    name_this_thread("tandem-grpc");
    serving_calls = this;
    serving_queue = q;
    void* tag = nullptr;
    bool ok = false;
    while (queues_[q]->Next(&tag, &ok)) {
      handle(q, static_cast<const InferCall::Tag*>(tag), ok);
      // Calls that arrived while this thread computed: none, as it asks for one only when
      // free; kept for safety, so that such a call would still be taken, not lost.
      if (arrived_meanwhile.empty()) continue;
      std::vector<std::pair<InferCall*, bool>> held = std::move(arrived_meanwhile);
      arrived_meanwhile.clear();
      for (const auto& [call, arrived_ok] : held) handle(q, &call->arrived_tag, arrived_ok);
    }
  }

  void handle(size_t q, const InferCall::Tag* tag, bool ok) {
    InferCall* call = tag->call;
    switch (tag->event) {
      case InferCall::Event::arrived:
        if (!ok) {  // the server is shutting down: nothing more arrives on this queue
          release(call);
          break;
        }
        // One more counted alive until the next call is asked for: handle_delivered may free
        // this call before take() returns, and stop() must not shut the queue down meanwhile.
        calls_alive_.fetch_add(1);
        take(q, call);
        ask_for_call(q);
        one_less_alive();
        break;
      case InferCall::Event::closed:
        call->gone.store(call->context.IsCancelled(), std::memory_order_relaxed);
        if (--call->tags_left == 0) release(call);
        break;
      case InferCall::Event::finished:
        call->answered.load(std::memory_order_acquire);
        if (--call->tags_left == 0) release(call);
        break;
    }
  }

  // While queue q's thread makes an engine call itself, nobody else takes the queue's tags, so
  // a client that cancels would be seen only after the compute. The engine asks client_gone
  // about every 2 ms on that thread, which then handles here what grpc++ has delivered to its
  // queue so far, without waiting: closed tags mark their calls gone (the one computing too),
  // finished ones free their calls.
  void handle_delivered(size_t q) {
    void* tag = nullptr;
    bool ok = false;
    while (queues_[q]->AsyncNext(&tag, &ok, std::chrono::system_clock::time_point()) ==
           grpc::CompletionQueue::GOT_EVENT) {
      const auto* t = static_cast<const InferCall::Tag*>(tag);
      if (t->event == InferCall::Event::arrived)
        arrived_meanwhile.emplace_back(t->call, ok);  // taken once this thread is free
      else
        handle(q, t, ok);
    }
  }

  void ask_for_call(size_t q) {
    calls_alive_.fetch_add(1);
    auto* call = new InferCall;
    grpc::ServerCompletionQueue* queue = queues_[q].get();
    service_.RequestModelInfer(&call->context, &call->request, &call->responder, queue, queue, &call->arrived_tag);
  }

  void release(InferCall* call) {
    delete call;
    one_less_alive();
  }
  void one_less_alive() {
    if (calls_alive_.fetch_sub(1) == 1 && stopping_.load()) calls_alive_.notify_all();
  }

  void take(size_t q, InferCall* call) {
    call->start = Clock::now();
    InferRequest request;
    if (auto err = decode_grpc_infer_request(&call->request, server_.options().limits, &request))
      return finish(call, answer(server_, *err, call->start));
    // A client deadline sooner than the request's own timeout bounds the request.
    if (call->context.deadline() != std::chrono::system_clock::time_point::max()) {
      const double left_ms =
          std::chrono::duration<double, std::milli>(call->context.deadline() - std::chrono::system_clock::now())
              .count();
      if (left_ms <= 0)
        return finish(
            call, answer(server_, grpc::Status(grpc::StatusCode::DEADLINE_EXCEEDED, "the call's deadline has passed"),
                         call->start));
      if (!request.timeout_ms || *request.timeout_ms <= 0 || left_ms < *request.timeout_ms)
        request.timeout_ms = left_ms;
    }
    // Scheduler threads read the flag; the queue's own thread first handles its queue's tags,
    // once the call has taken a millisecond (the engine asks as soon as it waits: a short call
    // is not worth a look at the queue).
    request.client_gone = [this, call, q] {
      if (serving_calls == this && serving_queue == q && Clock::now() - call->start >= std::chrono::milliseconds(1))
        handle_delivered(q);
      return call->gone.load(std::memory_order_relaxed);
    };
    auto done = [this, call](InferOutcome&& outcome) {
      if (call->gone.load(std::memory_order_relaxed)) {  // nobody reads the answer
        finish(call, answer(server_, grpc::Status(grpc::StatusCode::CANCELLED, "the call was cancelled"), call->start));
      } else if (outcome.error) {
        finish(call, answer(server_, *outcome.error, call->start));
      } else {
        encode_grpc_infer_response(outcome.response, &call->response);
        finish(call, answer(server_, grpc::Status::OK, call->start));
      }
    };
    // This thread may make the engine call unless that would leave no thread taking calls.
    const bool may_run = computing_.fetch_add(1, std::memory_order_relaxed) + 1 < static_cast<int>(queues_.size());
    auto refused = server_.infer(std::move(request), std::move(done), may_run);
    computing_.fetch_sub(1, std::memory_order_relaxed);
    if (refused) finish(call, answer(server_, *refused, call->start));
  }

  // Any thread; the response is sent only with an OK status.
  static void finish(InferCall* call, const grpc::Status& status) {
    call->answered.store(true, std::memory_order_release);
    call->responder.Finish(call->response, status, &call->finished_tag);
  }

  Server& server_;
  ServiceBase& service_;
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues_;
  std::vector<std::thread> threads_;
  std::atomic<int> computing_{0};        // threads inside an admission that may run the engine call
  std::atomic<int64_t> calls_alive_{0};  // InferCall objects, and threads inside take()
  std::atomic<bool> stopping_{false};
  std::atomic<bool> stopped_{false};
  // The completion queue this thread serves (none on other threads), and calls that arrived
  // on it while it computed (handle_delivered).
  static thread_local const InferCalls* serving_calls;
  static thread_local size_t serving_queue;
  static thread_local std::vector<std::pair<InferCall*, bool>> arrived_meanwhile;
};

thread_local const InferCalls* InferCalls::serving_calls = nullptr;
thread_local size_t InferCalls::serving_queue = 0;
thread_local std::vector<std::pair<InferCall*, bool>> InferCalls::arrived_meanwhile;

int clamp_to_int(size_t bytes) { return static_cast<int>(std::min<size_t>(bytes, INT_MAX)); }

}  // namespace

struct GrpcFrontend::Impl {
  // Declared so that the server goes first, then the queues and threads, then the services.
  std::unique_ptr<InferenceService> service;
  std::unique_ptr<HealthService> health;
  std::unique_ptr<InferCalls> infer_calls;
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
  if (threads <= 0) threads = std::max(64, 8 * hardware_threads());
  threads = std::max(threads, 2);  // one polling the completion queue, one handling a call
  // The calls that may compute where they were taken, and one thread more that keeps taking calls.
  const int infer_threads = (options.infer_threads > 0 ? options.infer_threads : default_request_threads()) + 1;

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
  std::vector<std::unique_ptr<grpc::ServerCompletionQueue>> queues;
  for (int i = 0; i < infer_threads; ++i) queues.push_back(builder.AddCompletionQueue());
  impl->infer_calls = std::make_unique<InferCalls>(server, *impl->service, std::move(queues));
  impl->server = builder.BuildAndStart();
  if (!impl->server || impl->port == 0)
    return Status(StatusCode::unavailable, "cannot listen on " + address + " (in use, or not a local address)");
  impl->infer_calls->start();
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
  impl_->infer_calls->stop();
}

}  // namespace tandem::server
