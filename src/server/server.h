// server.h: the inference server behind every transport: the model repository, per-model
// schedulers, health that tells the truth, metadata, statistics, Prometheus metrics and
// graceful shutdown. The HTTP and gRPC frontends (http_frontend.h, grpc_frontend.h) only
// translate between their wire formats and these calls.
//
// Model repository: DIR/<model>/<version>/model.onnx with an optional DIR/<model>/config.json
// (model_config.h); versions are positive integers. Every model found at start is loaded in
// the background; create() returns before loading ends. A model that fails to load is kept
// with its one-line reason (state "failed") and does not stop the others. Loading a new
// version never interrupts requests to the old one: the old scheduler drains once the new
// version is ready (with version_policy "latest"). Under "latest" only the newest version on
// disk loads; when it fails and nothing serves, the next older one loads instead.
//
// Readiness:
//   - server live: the process answers;
//   - server ready: nothing is loading, at least one model is ready, every model marked
//     `required` is ready, and the server is not shutting down. An empty repository, or one
//     whose models all failed, is not ready;
//   - model (version) ready: it can answer now: loaded, not draining, and in strict mode its
//     first route's breaker is not open (once the breaker's cooldown has passed it counts as
//     ready again: the next request is its half-open probe). A model answering only through
//     fallback is ready but reports `degraded` in its stats.
//
// Thread-safety: every method may be called from any thread, concurrently.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "model_config.h"
#include "protocol.h"
#include "scheduler.h"
#include "tandem/engine.h"
#include "tandem/sysinfo.h"

namespace tandem::server {

// The threads each frontend gives inference requests when its options say 0: REST's event
// loops (HttpOptions::threads) and the gRPC ModelInfer calls that may compute where they were
// taken (GrpcOptions::infer_threads). max(4, 2 x hardware threads): enough that a loop seldom
// holds more than one busy connection, few enough that loops do not take the CPU that reading
// requests and the engine need under overload (docs/serving.md).
inline int default_request_threads() { return std::max(4, 2 * hardware_threads()); }

// A change the operator's log should show (ServerOptions::on_event). `model` empty: the server
// as a whole, which turned READY, or NOT_READY once nothing is loading any more.
struct ServerEvent {
  std::string model{};
  std::string version{};  // empty: the model as a whole (its config.json)
  std::string route{};    // set for a route's circuit breaker of a ready version
  // LOADING, READY, FAILED, UNLOADING, UNLOADED for a version or model; READY, NOT_READY for
  // the server. A ready version whose files changed logs LOADING and then READY (the new files
  // serve) or FAILED (the version loaded before still serves, as `detail` says). Seen at most
  // every `ServerOptions::watch_interval`: a strict version whose first route's breaker opened
  // turns UNAVAILABLE, then READY when it may answer again; ERRORS (requests failed; clients
  // that went away not counted) and REFUSED (refused at admission), each at most once per
  // version every 10 s; BATCHING_OFF once, when a merged call's outputs could not be split
  // and the version serves requests alone from then on; a route's breaker state, OPEN,
  // HALF_OPEN or CLOSED.
  std::string state{};
  // FAILED, NOT_READY and UNAVAILABLE: why. READY: how long loading took, the routes, where the
  // first route's nodes run, the warm-up's estimate and, when configured, whether dynamic
  // batching is on (Scheduler::Stats::batching). BATCHING_OFF: the same, with the output that
  // could not be split. LOADING and UNLOADING: why, when it is
  // not the first load. OPEN and CLOSED: the route's latest fault, and how often it tripped
  // since the last event. ERRORS: how many of how many requests failed since the last one, and
  // the latest error. REFUSED: how many, and the queue bound.
  std::string detail{};
};

struct ServerOptions {
  std::filesystem::path model_repository;
  EngineOptions engine;               // backends, threads, worker limits
  int default_instances = 0;          // per model when its config says none; 0: hardware threads
  int default_threads = 1;            // engine threads per call when its config says none
  // Applied to every model whose config sets no fault_injection (the CLI's --inject).
  std::string fault_injection;
  // Rescan the repository every `poll_interval` (0: never): new models and versions load,
  // removed ones unload, and a version whose model.onnx or config.json changed loads again (a
  // ready one beside itself: it serves until the new load is ready, or on if that fails).
  std::chrono::milliseconds poll_interval{0};
  // Explicit model control (a replica that serves part of a large repository): when set, only
  // these models load at start, and create() fails with invalid_argument naming one that is
  // not in the repository. Every other model, and one that appears later, is listed in the
  // repository index as UNAVAILABLE until loaded through the repository API; polling and
  // SIGHUP still reload the changed files of loaded models and unload removed ones. Unset:
  // every model in the repository loads.
  std::optional<std::set<std::string>> load_at_start;
  RequestLimits limits;
  std::chrono::milliseconds shutdown_grace{30000};
  // How often the breakers of ready versions are looked at for events (only with on_event).
  std::chrono::milliseconds watch_interval{500};
  // Called once for every ServerEvent, in the order they happened, one at a time, from the
  // server's threads (and from create(), load_model() and unload_model()), never while the
  // server holds its own lock: it may call the server. Exceptions it throws are dropped.
  // Empty: no events are kept.
  std::function<void(const ServerEvent&)> on_event;
};

struct TensorMetadata {
  std::string name;
  std::string datatype;        // protocol name ("FP32")
  std::vector<int64_t> shape;  // -1 for a dim that varies
};

// One route of a version as its metadata and stats show it.
struct RouteStats {
  std::string route;          // "cpu", "cpu@bf16", "reference", ...
  std::string breaker;        // "closed", "open", "half_open"
  double dispatch_share = 0;  // fraction of answers it gave
  uint64_t parity_samples = 0;
  uint64_t parity_violations = 0;
  double parity_max_abs = 0;
  std::string last_fault;  // BackendTelemetry::last_fault
};
struct ModelMetadata {
  std::string name;
  std::vector<std::string> versions;  // ready versions, ascending
  std::string platform = "onnx";
  std::vector<TensorMetadata> inputs;
  std::vector<TensorMetadata> outputs;
  // The version's routes now (a tandem addition to the protocol's metadata, in REST's JSON; the
  // gRPC message has no field for it).
  std::vector<RouteStats> routes;
};

struct ServerMetadata {
  std::string name = "tandem";
  std::string version;                  // tandem's version
  std::vector<std::string> extensions;  // "binary_tensor_data", "model_repository", ...
};

// One row of the repository index.
struct RepositoryEntry {
  std::string name;
  std::string version;
  std::string state;   // "LOADING", "READY", "UNAVAILABLE", "FAILED", "UNLOADING"
  std::string reason;  // why, for FAILED and UNAVAILABLE
};

// What /v2/models/{name}/stats reports for one version (server.cpp renders it as JSON).
struct ModelStats {
  std::string name;
  std::string version;
  std::string state;            // as in RepositoryEntry
  bool ready = false;
  bool degraded = false;        // answering, but only through fallback routes lately
  Scheduler::Stats scheduler;
  std::vector<RouteStats> routes;
  double p50_ms = 0, p99_ms = 0;  // engine latency
};

class Server {
 public:
  // Scans the repository and starts loading in the background. Errors: invalid_argument when
  // the repository folder does not exist (an empty one is fine: not ready).
  static Result<std::unique_ptr<Server>> create(ServerOptions options);
  ~Server();  // shuts down (no grace) if shutdown() was not called
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  bool live() const;
  bool ready() const;
  ServerMetadata metadata() const;

  // `version` empty: the model as a whole (ready when its serving version is ready).
  // Errors: not_found for an unknown model or version.
  std::optional<ProtocolError> model_ready(const std::string& name, const std::string& version, bool* ready) const;
  std::optional<ProtocolError> model_metadata(const std::string& name, const std::string& version,
                                              ModelMetadata* out) const;
  // Stats of every version of `name` (every model when name is empty).
  std::optional<ProtocolError> model_stats(const std::string& name, const std::string& version,
                                           std::vector<ModelStats>* out) const;

  // Validates `request` against the model (unknown model/version -> 404; unknown, missing or
  // duplicate inputs, wrong datatype, shape not matching the model's fixed dims, unknown
  // requested outputs -> 400) and submits it to the version's scheduler. Returns the error
  // when it was not admitted (then `done` is never called); otherwise `done` runs exactly once
  // on a scheduler thread (or inside infer(), on the caller's thread, when `caller_may_run`
  // and the scheduler runs the call there). `timeout_ms` in the request overrides the model's
  // default.
  std::optional<ProtocolError> infer(InferRequest&& request, Scheduler::Done done, bool caller_may_run = true);

  // Before a request's body is read: the refusal infer() would give now because the model's
  // queue is full or it is shutting down, counted as a rejection (nullopt otherwise, and for
  // an unknown model or version, which infer() reports). A hint: infer() still decides.
  std::optional<ProtocolError> admission_refusal(const std::string& model, const std::string& version);

  // The repository extension.
  // `ready_only`: only the versions that are READY now (the extension's `ready` flag).
  std::vector<RepositoryEntry> repository_index(bool ready_only = false) const;
  // Loads (or reloads: new versions on disk are picked up) a model and waits until it is
  // ready or failed. Errors: not_found (no such folder), bad_request (it failed: the reason).
  std::optional<ProtocolError> load_model(const std::string& name);
  // Stops serving a model: new requests get 404; in-flight ones finish.
  std::optional<ProtocolError> unload_model(const std::string& name);
  // Looks at the repository once, as each poll does (ServerOptions::poll_interval): new models
  // and versions load, removed ones unload (and, once drained, leave the repository index),
  // changed ones load again; models unloaded through unload_model() stay unloaded. Returns
  // once the loads have started (the CLI's SIGHUP).
  void rescan();

  // Prometheus text: the engine's telemetry of every loaded model plus the server's figures
  // (tandem_server_requests_total{protocol,code}, queue time, batch rows, in flight,
  // rejections, model readiness).
  std::string metrics_prometheus() const;
  // Frontends count every request they answer: protocol "rest" or "grpc", `code` the HTTP
  // status (gRPC codes are mapped to their HTTP equivalents), `seconds` from receipt to reply.
  void record_request(std::string_view protocol, int code, double seconds);

  // Graceful shutdown: not ready from now on, new requests get unavailable, queued and
  // in-flight requests finish within `options.shutdown_grace`. Returns true when nothing was
  // cut off. Idempotent; the frontends stop accepting connections before calling it.
  bool shutdown();
  const ServerOptions& options() const;

 private:
  struct Impl;
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
