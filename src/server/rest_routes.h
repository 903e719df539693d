// rest_routes.h: the REST endpoints of the Open Inference Protocol (v2), independent of the
// HTTP transport that carries them (http_frontend.h):
//   GET  /v2/health/live, /v2/health/ready, /v2
//   GET  /v2/models/stats (every model), /v2/models/{name}[/versions/{v}], .../ready, .../stats
//   POST /v2/models/{name}[/versions/{v}]/infer
//   POST /v2/repository/index, /v2/repository/models/{name}/load, .../unload
//   GET  /metrics (with `metrics_only`, the only route)
// HEAD is taken wherever GET is (the transport sends the headers only). A known path under
// another method is 405 with Allow naming the one it takes; anything else is 404 naming the
// method and path. Errors are {"error": "..."} with the
// ProtocolError's status; 503 carries Retry-After. Inference replies carry X-Tandem-Backend
// (the route that answered) and X-Tandem-Fallback: true when it fell back.
// Path segments are percent-decoded; a query string is ignored.
//
// Completion: handle() calls `respond` exactly once: before it returns (most routes, and an
// inference that was refused or that the scheduler ran on the calling thread), on a scheduler
// thread (a queued inference), or on the `blocking` executor's thread (repository load and
// unload, which wait for the model). `respond` must not block for long.
// Thread-safety: handle() may be called from any thread, concurrently.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "rest_json_split.h"
#include "server.h"
#include "side_tasks.h"

namespace tandem::server {

struct RestReply {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // besides Content-Type/-Length
};

struct RestCall {
  std::string_view method;  // "GET", "POST", ...
  std::string_view target;  // the request target: path and optional "?query"
  // The request body: bytes that `body_owner` keeps alive (null: they live as long as the
  // call). An inference's binary inputs may be decoded as views of them, which then share
  // `body_owner` (rest_codec.h).
  std::string_view body;
  std::shared_ptr<void> body_owner;
  std::optional<std::string> inference_header_length;  // the header's text, when present
  bool may_block = true;  // whether an engine call may run on the calling thread
  std::function<bool()> client_gone;  // InferRequest::client_gone for an inference request
};

// {"error": message} with the error's status (and Retry-After for a 503 that has one).
RestReply rest_error_reply(const ProtocolError& error);

class RestRoutes {
 public:
  using Respond = std::function<void(RestReply&&)>;
  // Runs a task that may block (waiting for a model to load) off the transport's threads.
  using Blocking = std::function<void(std::function<void()>)>;

  // `server` must outlive this object and every call in flight. `json_decode_threads`: helper
  // threads that parse large JSON tensors in pieces (rest_json_split.h); 0: none.
  RestRoutes(Server& server, bool metrics_only, Blocking blocking, int json_decode_threads = 0);

  void handle(RestCall&& call, Respond respond);

  // Asked once the headers are in, before the body is read: the reply that refuses the
  // request now (an inference whose model's queue is full or that is shutting down), or
  // nullopt to read the body and call handle().
  std::optional<RestReply> refuse_early(std::string_view method, std::string_view target);

 private:
  void infer(RestCall&& call, std::string model, std::string version, Respond respond);

  Server& server_;
  bool metrics_only_;
  Blocking blocking_;
  std::unique_ptr<SideTasks> json_helpers_;  // null without helper threads
  JsonSplitOptions json_split_;
};

}  // namespace tandem::server
