// http_frontend.cpp: see http_frontend.h.
//
// Every route handler catches what it calls; httplib's exception handler is the last guard.
// Requests are counted in httplib's logger, which runs after every response is written
// (including httplib's own 400/413/414 answers); the receipt time is kept per handler thread
// from the pre-routing handler, which runs on the same thread before the body is read.
#include "http_frontend.h"

#include <httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>

#include <nlohmann/json.hpp>

#include "rest_codec.h"

namespace tandem::server {

namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr const char* kJson = "application/json";

thread_local std::optional<Clock::time_point> t_request_start;

std::string dump(const json& doc) { return doc.dump(-1, ' ', false, json::error_handler_t::replace); }

void reply_json(httplib::Response& res, int status, const json& doc) {
  res.status = status;
  res.set_content(dump(doc), kJson);
}

void reply_error(httplib::Response& res, const ProtocolError& error) {
  res.status = error.http_status;
  if (error.http_status == 503 && error.retry_after_s > 0)
    res.set_header("Retry-After", std::to_string(error.retry_after_s));
  res.set_content(encode_rest_error(error), kJson);
}

// The model name and optional version of a /v2/models/{name}[/versions/{v}]... route.
std::string match_or_empty(const httplib::Request& req, size_t i) {
  return req.matches.size() > i ? std::string(req.matches[i]) : std::string();
}

json tensors_json(const std::vector<TensorMetadata>& tensors) {
  json array = json::array();
  for (const TensorMetadata& t : tensors) array.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
  return array;
}

json counts_json(const auto& map) {
  json object = json::object();
  for (const auto& [key, count] : map) object[std::to_string(key)] = count;
  return object;
}

json stats_json(const ModelStats& s) {
  const Scheduler::Stats& q = s.scheduler;
  json served_by = json::object();
  for (const auto& [route, count] : q.served_by) served_by[route] = count;
  json routes = json::array();
  for (const RouteStats& r : s.routes)
    routes.push_back({{"route", r.route},
                      {"breaker", r.breaker},
                      {"dispatch_share", r.dispatch_share},
                      {"parity_samples", r.parity_samples},
                      {"parity_violations", r.parity_violations},
                      {"parity_max_abs", r.parity_max_abs}});
  return {{"name", s.name},
          {"version", s.version},
          {"state", s.state},
          {"ready", s.ready},
          {"degraded", s.degraded},
          {"admitted", q.admitted},
          {"rejected", q.rejected},
          {"succeeded", q.succeeded},
          {"failed", q.failed},
          {"expired_in_queue", q.expired_in_queue},
          {"fallbacks", q.fallbacks},
          {"queued", q.queued},
          {"in_flight", q.in_flight},
          {"queue_time_p50_ms", q.queue_time.quantile_ms(0.5)},
          {"queue_time_p99_ms", q.queue_time.quantile_ms(0.99)},
          {"batch_rows", counts_json(q.batch_rows)},
          {"served_by", served_by},
          {"routes", routes},
          {"p50_ms", s.p50_ms},
          {"p99_ms", s.p99_ms}};
}

// Before httplib reads a body, two of its defaults are set right (the Request is httplib's own
// non-const object, handed to the pre-routing handler as const):
//   - a POST with neither Content-Length nor Transfer-Encoding has an empty body (RFC 9112
//     6.3); httplib would read until the client closes and then answer 400;
//   - a body labelled application/x-www-form-urlencoded (curl's default for --data) or
//     multipart/form-data is not a form here; httplib would parse it as one (and refuse an
//     urlencoded one past 8 KiB with 413).
void normalize_body_headers(httplib::Request& req) {
  if (!req.has_header("Content-Length") && !req.has_header("Transfer-Encoding")) req.set_header("Content-Length", "0");
  const std::string type = req.get_header_value("Content-Type");
  if (type.find("application/x-www-form-urlencoded") != std::string::npos ||
      type.find("multipart/form-data") != std::string::npos) {
    req.headers.erase("Content-Type");
    req.set_header("Content-Type", "application/octet-stream");
  }
}

// Waits for the scheduler's `done` (it runs exactly once for an admitted request).
struct PendingInfer {
  std::mutex mutex;
  std::condition_variable cv;
  std::optional<InferOutcome> outcome;
};

}  // namespace

struct HttpFrontend::Impl {
  Server& server;
  HttpOptions options;
  httplib::Server http;
  std::thread listener;
  int port = 0;
  bool stopped = false;

  Impl(Server& s, HttpOptions o) : server(s), options(std::move(o)) {}

  void route_metrics() {
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      res.status = 200;
      res.set_content(server.metrics_prometheus(), "text/plain; version=0.0.4");
    });
  }

  void route_health() {
    http.Get("/v2/health/live", [this](const httplib::Request&, httplib::Response& res) {
      const bool live = server.live();
      reply_json(res, live ? 200 : 503, {{"live", live}});
    });
    http.Get("/v2/health/ready", [this](const httplib::Request&, httplib::Response& res) {
      const bool ready = server.ready();
      reply_json(res, ready ? 200 : 503, {{"ready", ready}});
    });
    http.Get("/v2", [this](const httplib::Request&, httplib::Response& res) {
      ServerMetadata m = server.metadata();
      reply_json(res, 200, {{"name", m.name}, {"version", m.version}, {"extensions", m.extensions}});
    });
  }

  void route_models() {
    const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
    // Every model's stats; registered first so that "stats" is not taken for a model name.
    http.Get("/v2/models/stats", [this](const httplib::Request&, httplib::Response& res) { reply_stats(res, "", ""); });
    http.Get(model, [this](const httplib::Request& req, httplib::Response& res) {
      ModelMetadata m;
      if (auto error = server.model_metadata(match_or_empty(req, 1), match_or_empty(req, 2), &m))
        return reply_error(res, *error);
      reply_json(res, 200,
                 {{"name", m.name},
                  {"versions", m.versions},
                  {"platform", m.platform},
                  {"inputs", tensors_json(m.inputs)},
                  {"outputs", tensors_json(m.outputs)}});
    });
    http.Get(model + "/ready", [this](const httplib::Request& req, httplib::Response& res) {
      bool ready = false;
      const std::string name = match_or_empty(req, 1);
      if (auto error = server.model_ready(name, match_or_empty(req, 2), &ready)) return reply_error(res, *error);
      reply_json(res, ready ? 200 : 503, {{"name", name}, {"ready", ready}});
    });
    http.Get(model + "/stats", [this](const httplib::Request& req, httplib::Response& res) {
      reply_stats(res, match_or_empty(req, 1), match_or_empty(req, 2));
    });
    http.Post(model + "/infer", [this](const httplib::Request& req, httplib::Response& res) { infer(req, res); });
  }

  void route_repository() {
    http.Post("/v2/repository/index", [this](const httplib::Request& req, httplib::Response& res) {
      bool ready_only = false;
      if (!req.body.empty()) {
        json body = json::parse(req.body, nullptr, /*allow_exceptions=*/false);
        if (body.is_discarded() || !body.is_object())
          return reply_error(res, bad_request("repository index: the body must be a JSON object"));
        if (auto it = body.find("ready"); it != body.end()) {
          if (!it->is_boolean()) return reply_error(res, bad_request("repository index: 'ready' must be true or false"));
          ready_only = it->get<bool>();
        }
      }
      json rows = json::array();
      for (const RepositoryEntry& e : server.repository_index()) {
        if (ready_only && e.state != "READY") continue;
        json row = {{"name", e.name}, {"version", e.version}, {"state", e.state}};
        if (!e.reason.empty()) row["reason"] = e.reason;
        rows.push_back(std::move(row));
      }
      reply_json(res, 200, rows);
    });
    http.Post(R"(/v2/repository/models/([^/]+)/load)", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto error = server.load_model(match_or_empty(req, 1))) return reply_error(res, *error);
      reply_json(res, 200, json::object());
    });
    http.Post(R"(/v2/repository/models/([^/]+)/unload)", [this](const httplib::Request& req, httplib::Response& res) {
      if (auto error = server.unload_model(match_or_empty(req, 1))) return reply_error(res, *error);
      reply_json(res, 200, json::object());
    });
  }

  void reply_stats(httplib::Response& res, const std::string& name, const std::string& version) {
    std::vector<ModelStats> stats;
    if (auto error = server.model_stats(name, version, &stats)) return reply_error(res, *error);
    json rows = json::array();
    for (const ModelStats& s : stats) rows.push_back(stats_json(s));
    reply_json(res, 200, {{"model_stats", rows}});
  }

  void infer(const httplib::Request& req, httplib::Response& res) {
    InferRequest request;
    std::optional<std::string_view> header_length;
    std::string header_text;
    if (req.has_header("Inference-Header-Content-Length")) {
      header_text = req.get_header_value("Inference-Header-Content-Length");
      header_length = header_text;
    }
    if (auto error = decode_rest_infer_request(req.body, header_length, server.options().limits, &request))
      return reply_error(res, *error);
    request.model = match_or_empty(req, 1);
    request.version = match_or_empty(req, 2);

    auto pending = std::make_shared<PendingInfer>();
    auto done = [pending](InferOutcome&& outcome) {
      std::lock_guard<std::mutex> lock(pending->mutex);
      pending->outcome = std::move(outcome);
      pending->cv.notify_one();
    };
    if (auto error = server.infer(std::move(request), done)) return reply_error(res, *error);
    std::unique_lock<std::mutex> lock(pending->mutex);
    pending->cv.wait(lock, [&] { return pending->outcome.has_value(); });
    InferOutcome& outcome = *pending->outcome;
    if (outcome.error) return reply_error(res, *outcome.error);

    RestBody body = encode_rest_infer_response(outcome.response);
    res.status = 200;
    if (!outcome.response.backend.empty()) res.set_header("X-Tandem-Backend", outcome.response.backend);
    if (outcome.response.fallback) res.set_header("X-Tandem-Fallback", "true");
    if (body.header_length) {
      res.set_header("Inference-Header-Content-Length", std::to_string(*body.header_length));
      res.set_content(std::move(body.body), "application/octet-stream");
    } else {
      res.set_content(std::move(body.body), kJson);
    }
  }

  // Hooks that apply to every request: the size check before the body is read, errors as
  // {"error": ...}, exceptions, and counting.
  void install_hooks() {
    const size_t max_body = server.options().limits.max_body_bytes;
    http.set_payload_max_length(max_body);
    http.set_pre_routing_handler([this, max_body](const httplib::Request& req, httplib::Response& res) {
      t_request_start = Clock::now();
      normalize_body_headers(const_cast<httplib::Request&>(req));
      if (!req.has_header("Content-Length")) return httplib::Server::HandlerResponse::Unhandled;
      const std::string length = req.get_header_value("Content-Length");
      const bool digits = !length.empty() && length.size() <= 19 &&
                          std::all_of(length.begin(), length.end(), [](char c) { return c >= '0' && c <= '9'; });
      if (!digits) {
        reply_error(res, bad_request("Content-Length: '" + length.substr(0, 40) + "' is not a byte count"));
      } else if (std::stoull(length) > max_body) {
        reply_error(res, too_large("request body of " + length + " bytes exceeds the limit of " + std::to_string(max_body)));
      } else {
        return httplib::Server::HandlerResponse::Unhandled;
      }
      // The body (if the client sends it) is never read: the connection must not be reused.
      res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    });
    http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
      if (res.body.empty()) {
        std::string what = "HTTP error " + std::to_string(res.status);
        if (res.status == 404) what = "no such endpoint: " + req.method + " " + req.path;
        if (res.status == 400) what = "malformed HTTP request, or its body ended before Content-Length bytes";
        if (res.status == 413) what = "request body exceeds the size limit";
        if (res.status == 414) what = "request URI too long";
        res.set_content(encode_rest_error(ProtocolError{res.status, what}), kJson);
      }
      // httplib answers 400 and 413 itself when a body cannot be read (cut short, or chunked
      // past the limit); what is left of it is unread, so the connection must not be reused.
      if (res.status == 400 || res.status == 413) res.set_header("Connection", "close");
      return httplib::Server::HandlerResponse::Handled;
    }));
    http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
      std::string what = "unknown exception";
      try {
        if (ep) std::rethrow_exception(ep);
      } catch (const std::exception& e) {
        what = e.what();
      } catch (...) {
      }
      reply_error(res, ProtocolError{500, "internal error: " + what});
    });
    http.set_logger([this](const httplib::Request&, const httplib::Response& res) {
      double seconds = 0;
      if (t_request_start) seconds = std::chrono::duration<double>(Clock::now() - *t_request_start).count();
      t_request_start.reset();
      server.record_request("rest", res.status, seconds);
    });
  }
};

Result<std::unique_ptr<HttpFrontend>> HttpFrontend::start(Server& server, HttpOptions options) {
  auto impl = std::make_unique<Impl>(server, options);
  try {
    Impl& s = *impl;
    const int threads = options.threads > 0 ? options.threads
                                            : std::max(64, 8 * static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    s.http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
    // Off by default in cpp-httplib: every reply would wait for the client's delayed ACK
    // (about 40 ms per request on Linux; docs/serving.md).
    s.http.set_tcp_nodelay(true);
    s.http.set_read_timeout(options.read_timeout);
    s.http.set_write_timeout(options.write_timeout);
    s.http.set_keep_alive_timeout(std::max<time_t>(1, std::chrono::duration_cast<std::chrono::seconds>(options.read_timeout).count()));
    // SO_REUSEADDR only: httplib's default also sets SO_REUSEPORT, which would let a second
    // server bind a port that is taken and silently share its connections.
    auto listening = std::make_shared<socket_t>(INVALID_SOCKET);
    s.http.set_socket_options([listening](socket_t sock) {
      int yes = 1;
      ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
      *listening = sock;
    });
    s.install_hooks();
    s.route_metrics();
    if (!options.metrics_only) {
      s.route_health();
      s.route_models();
      s.route_repository();
    }
    const std::string where = options.host + ":" + std::to_string(options.port);
    if (options.port == 0) {
      s.port = s.http.bind_to_any_port(options.host);
      if (s.port <= 0) return Status(StatusCode::unavailable, "cannot bind HTTP on " + where);
    } else {
      if (!s.http.bind_to_port(options.host, options.port))
        return Status(StatusCode::unavailable, "cannot bind HTTP on " + where);
      s.port = options.port;
    }
    // cpp-httplib listens with a backlog of 5 (fixed when the library was built): a burst of
    // new connections past it is dropped or reset by the kernel before anyone can answer 503.
    // Listening again on the bound socket raises it to the system's limit.
    if (*listening != INVALID_SOCKET) ::listen(*listening, SOMAXCONN);
    auto listen_returned = std::make_shared<std::atomic<bool>>(false);
    s.listener = std::thread([&s, listen_returned] {
      s.http.listen_after_bind();
      *listen_returned = true;
    });
    // The socket listens already; wait for the accept loop to run so that stop() can end it.
    while (!s.http.is_running() && !*listen_returned) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (*listen_returned) {
      s.listener.join();
      return Status(StatusCode::unavailable, "HTTP server on " + where + " stopped at once");
    }
  } catch (const std::exception& e) {
    return Status(StatusCode::unavailable, std::string("cannot start HTTP: ") + e.what());
  }
  return std::unique_ptr<HttpFrontend>(new HttpFrontend(std::move(impl)));
}

HttpFrontend::HttpFrontend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpFrontend::~HttpFrontend() { stop(); }

int HttpFrontend::port() const { return impl_->port; }

void HttpFrontend::stop() {
  if (impl_->stopped) return;
  impl_->stopped = true;
  // Closes the listening socket; listen_after_bind() then waits for its pool's connections to
  // finish the request they are serving before it returns.
  impl_->http.stop();
  if (impl_->listener.joinable()) impl_->listener.join();
}

}  // namespace tandem::server
