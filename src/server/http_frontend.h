// http_frontend.h: the HTTP/1.1 transport of the REST endpoints (rest_routes.h lists them), on
// Boost.Beast over an Asio event loop (docs/serving.md says why this library).
//
// Connections do not hold threads. There are `threads` event loops, each an io_context with
// one thread; a connection is pinned at accept to the loop with the fewest connections, and
// all its handlers run in order on that loop's thread (a separate loop accepts). A request is
// read (headers, then the body), handed to RestRoutes, and answered when its reply arrives,
// from whichever thread produced it. The engine call of a connection that is alone on its
// loop may run on the loop's thread (the scheduler's caller-runs path, two thread hand-offs
// less); a connection that shares its loop has its calls run on scheduler threads, so that no
// loop makes one connection wait for another's engine call (a request sent, a 503 that should
// be immediate). A new connection goes to a loop that is not inside a handler when there is one.
//
// Limits and timeouts:
//   - headers past 16 KiB: 431; a body past the server's max_body_bytes: 413, decided from
//     Content-Length before the body is read (or when a chunked body crosses it);
//   - a malformed request (bad request line, header or Content-Length, bad chunk framing):
//     400;
//   - a request that has begun but does not finish within `read_timeout` (slow headers, a body
//     shorter than its Content-Length): 400; a keep-alive connection with no new request within
//     `read_timeout` is closed silently;
//   - a reply the client does not take within `write_timeout`: the connection is closed.
// Every error is {"error": "..."} with its status. After an error that leaves the request
// unread the reply says Connection: close, the server stops sending and reads (and drops)
// what the client still sends for up to a second before it closes, so that the client can
// read the reply. `Expect: 100-continue` is answered before the body is read. A POST with
// neither Content-Length nor Transfer-Encoding has an empty body; Content-Type is not
// consulted (bodies are never forms).
// Thread-safety: start() and stop() from one thread; everything else is internal.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "server.h"

namespace tandem::server {

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;             // 0: any free port (port() tells which)
  // Event loops (one thread each). 0: 1 for metrics_only, otherwise default_request_threads()
  // (server.h). Many more loops than cores take CPU from reading requests and from the engine
  // under overload (docs/serving.md has the figures).
  int threads = 0;
  bool metrics_only = false;   // serve only GET /metrics (the metrics port)
  // Helper threads that parse large JSON tensors in pieces beside the loop that received them
  // (rest_json_split.h). -1: hardware threads - 1 (at most 7); 0: each request on its loop.
  int json_decode_threads = -1;
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
  // Connections being served now (accepted and registered before any stop(), not yet closed).
  int connections() const;
  // Stops accepting connections, closes the ones waiting for a request (after at most 100 ms:
  // a request that has arrived but was not read yet is still read and answered), waits for
  // requests in hand to be answered (each reply then closes its connection), and stops the
  // loop threads. Idempotent.
  void stop();

 private:
  struct Impl;
  explicit HttpFrontend(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
