// http_frontend.h: the REST endpoints of the Open Inference Protocol (v2) over HTTP/1.1, on
// cpp-httplib's thread-pool server (docs/serving.md says why this library):
//   GET  /v2/health/live, /v2/health/ready, /v2
//   GET  /v2/models/{name}[/versions/{v}], .../ready, .../stats
//   POST /v2/models/{name}[/versions/{v}]/infer
//   POST /v2/repository/index, /v2/repository/models/{name}/load, .../unload
//   GET  /metrics (also served alone on the metrics port)
// Errors are {"error": "..."} with the ProtocolError's status; 503 carries Retry-After.
// Bodies past the server's limit get 413 before they are read (from Content-Length; the
// reply says Connection: close). A POST without Content-Length or Transfer-Encoding has an
// empty body, and a Content-Type of application/x-www-form-urlencoded is ignored (bodies are
// never forms). A read that waits past `read_timeout` (slow headers, a body shorter than its
// Content-Length) gets 400; the connection closes when the keep-alive wait (also
// `read_timeout`, at least 1 s) then passes without a new request. Responses carry
// X-Tandem-Backend (the route that answered) and X-Tandem-Fallback: true when it fell back.
// Thread-safety: start() and stop() from one thread; handlers run on the pool's threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "server.h"

namespace tandem::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;             // 0: any free port (port() tells which)
  // Handler threads. A keep-alive connection holds its thread while it stays open, and a
  // request holds it while it waits in a model's queue, so this bounds the open connections
  // served at once (the rest wait to be accepted). 0: max(64, 8 x hardware threads).
  int threads = 0;
  bool metrics_only = false;   // serve only GET /metrics (the metrics port)
  std::chrono::milliseconds read_timeout{5000};
  std::chrono::milliseconds write_timeout{5000};
};

class HttpFrontend {
 public:
  // Binds and starts serving on background threads. Errors: unavailable when the address
  // cannot be bound (the message names it).
  static Result<std::unique_ptr<HttpFrontend>> start(Server& server, HttpOptions options);
  ~HttpFrontend();  // stops
  int port() const;
  // Stops accepting connections and waits for handlers that are running to reply.
  void stop();

 private:
  struct Impl;
  explicit HttpFrontend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
