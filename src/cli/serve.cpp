// serve.cpp: `tandem serve`, the inference server (Open Inference Protocol over REST and gRPC,
// docs/serving.md). It loads a model repository, binds its listeners, prints one line per
// listener and serves until SIGTERM or SIGINT; then it stops accepting, lets queued and
// in-flight requests finish within --grace-seconds and exits 0 (1 when requests were cut off:
// the frontends then stop as the server drains, so the whole stop takes at most about twice
// the grace period).
//
// Signals: SIGTERM, SIGINT and SIGHUP are blocked before any thread starts (every thread
// inherits the mask) and the main thread takes them with sigwait(): nothing runs in a signal
// handler. SIGHUP makes the server look at its repository once (Server::rescan()), as a poll
// would, and serving goes on.
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "commands.h"
#include "server/grpc_frontend.h"
#include "server/http_frontend.h"
#include "server/server.h"

namespace tandem::cli {

namespace {

struct ServeOptions {
  std::string model_repository;
  std::string host = "127.0.0.1";
  int http_port = 8000;
  int grpc_port = 8001;
  int metrics_port = 8002;
  std::vector<std::string> backends;
  int threads = 1;
  int instances = 0;
  int handler_threads = 0;  // HTTP and gRPC handler threads each (0: the frontends' default)
  int json_decode_threads = -1;  // HttpOptions::json_decode_threads
  std::string inject;
  double poll_seconds = 0;
  double grace_seconds = 30;
  double max_body_mb = 64;
  std::string ready_file;
  std::string cache_dir;  // EngineOptions::cache_dir of every model's engine
  std::string log_format = "text";
  std::string model_control = "all";
  std::vector<std::string> load_models;
};

// The server's log on standard output, one line per message: "tandem serve: ..." text, or
// with --log-format json one object per line, {"time": UTC with milliseconds, "message"} for
// the server's own lines and {"time", "scope" (server, model, version or route), "model",
// "version", "route", "state", "detail"} (the ServerEvent, empty fields left out) for events.
// Thread-safe; lines are flushed at once.
class ServeLog {
 public:
  explicit ServeLog(bool json) : json_(json) {}
  void message(const std::string& text) {
    if (!json_) return write("tandem serve: " + text);
    write(stamped({{"message", text}}).dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
  }
  void event(const server::ServerEvent& e) {
    if (json_) {
      nlohmann::ordered_json line = stamped(nlohmann::ordered_json::object());
      line["scope"] = !e.route.empty()     ? "route"
                      : !e.version.empty() ? "version"
                      : !e.model.empty()   ? "model"
                                           : "server";
      for (const auto& [key, value] : {std::pair<const char*, const std::string*>{"model", &e.model},
                                       {"version", &e.version},
                                       {"route", &e.route},
                                       {"state", &e.state},
                                       {"detail", &e.detail}})
        if (!value->empty()) line[key] = *value;
      return write(line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
    }
    std::string subject = e.model.empty() ? "server" : "model '" + e.model + "'";
    if (!e.version.empty()) subject += " version " + e.version;
    if (!e.route.empty()) subject += " route '" + e.route + "'";
    write("tandem serve: " + subject + " " + e.state + (e.detail.empty() ? "" : ": " + e.detail));
  }

 private:
  static nlohmann::ordered_json stamped(nlohmann::ordered_json fields) {
    const auto now = std::chrono::system_clock::now();
    const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
    std::tm utc{};
    gmtime_r(&seconds, &utc);
    char text[80];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", utc.tm_year + 1900, utc.tm_mon + 1,
                  utc.tm_mday, utc.tm_hour, utc.tm_min, utc.tm_sec, static_cast<int>(ms));
    nlohmann::ordered_json line = {{"time", text}};
    line.update(fields);
    return line;
  }
  void write(const std::string& line) {
    std::lock_guard<std::mutex> lock(mu_);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
  }
  const bool json_;
  std::mutex mu_;
};

const char* const kCommand = "serve";

bool valid_port(int port) { return port >= -1 && port <= 65535; }

// Writes `text` to `path` atomically: a temporary file next to it, then a rename.
bool write_atomically(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) return false;
    out << text;
    out.flush();
    if (!out) return false;
  }
  std::error_code ec;
  std::filesystem::rename(temp, path, ec);
  if (ec) std::filesystem::remove(temp, ec);
  return !ec;
}

int run_serve(const ServeOptions& o) {
  if (!valid_port(o.http_port) || !valid_port(o.grpc_port) || !valid_port(o.metrics_port))
    return fail(kCommand, "ports must be in [0, 65535] (-1 disables a listener)", 2);
  if (o.http_port < 0 && o.grpc_port < 0) return fail(kCommand, "--http-port and --grpc-port cannot both be disabled", 2);
  if (o.threads < 1 || o.threads > 1024) return fail(kCommand, "--threads must be in [1, 1024]", 2);
  if (o.handler_threads < 0 || o.handler_threads > 4096)
    return fail(kCommand, "--handler-threads must be in [0, 4096]", 2);
  if (o.instances < 0 || o.instances > 1024) return fail(kCommand, "--instances must be in [0, 1024]", 2);
  if (o.json_decode_threads < -1 || o.json_decode_threads > 64)
    return fail(kCommand, "--json-decode-threads must be in [-1, 64]", 2);
  if (!(o.poll_seconds >= 0 && o.poll_seconds <= 86400)) return fail(kCommand, "--poll-seconds must be in [0, 86400]", 2);
  if (!(o.grace_seconds >= 0 && o.grace_seconds <= 86400)) return fail(kCommand, "--grace-seconds must be in [0, 86400]", 2);
  if (!(o.max_body_mb > 0 && o.max_body_mb <= 4096)) return fail(kCommand, "--max-body-mb must be in (0, 4096]", 2);
  if (o.log_format != "text" && o.log_format != "json") return fail(kCommand, "--log-format must be text or json", 2);
  if (o.model_control != "all" && o.model_control != "explicit")
    return fail(kCommand, "--model-control must be all or explicit", 2);
  auto log = std::make_shared<ServeLog>(o.log_format == "json");

  {
    EngineOptions check;
    check.backends = o.backends;
    check.cache_dir = o.cache_dir;        // a folder that cannot be made fails here too
    auto engine = Engine::create(check);  // unknown backend names fail here, not per model
    if (!engine) return fail(kCommand, engine.status().message(), 2);
  }

  // Before any thread starts: SIGTERM, SIGINT and SIGHUP are delivered only to sigwait() below.
  sigset_t waited_signals;
  sigemptyset(&waited_signals);
  sigaddset(&waited_signals, SIGTERM);
  sigaddset(&waited_signals, SIGINT);
  sigaddset(&waited_signals, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &waited_signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  server::ServerOptions so;
  so.model_repository = o.model_repository;
  so.engine.backends = o.backends;
  so.engine.cache_dir = o.cache_dir;
  so.default_threads = o.threads;
  so.default_instances = o.instances;
  so.fault_injection = o.inject;
  so.poll_interval = std::chrono::milliseconds(static_cast<int64_t>(o.poll_seconds * 1000));
  if (o.model_control == "explicit" || !o.load_models.empty())
    so.load_at_start = std::set<std::string>(o.load_models.begin(), o.load_models.end());
  so.shutdown_grace = std::chrono::milliseconds(static_cast<int64_t>(o.grace_seconds * 1000));
  so.limits.max_body_bytes = static_cast<size_t>(o.max_body_mb * 1024 * 1024);
  // The operator's log: each model's loads, failures and unloads, and the server's readiness.
  so.on_event = [log](const server::ServerEvent& e) { log->event(e); };
  log->message("model repository " + o.model_repository + " (loading in the background)");
  auto created = server::Server::create(so);
  if (!created) return fail(kCommand, created.status().message());
  std::unique_ptr<server::Server> srv = std::move(*created);

  std::unique_ptr<server::HttpFrontend> http, metrics;
  std::unique_ptr<server::GrpcFrontend> grpc;
  if (o.http_port >= 0) {
    server::HttpOptions ho;
    ho.host = o.host;
    ho.port = o.http_port;
    ho.threads = o.handler_threads;
    ho.json_decode_threads = o.json_decode_threads;
    auto started = server::HttpFrontend::start(*srv, ho);
    if (!started) return fail(kCommand, "HTTP: " + started.status().message());
    http = std::move(*started);
    log->message("HTTP on " + o.host + ":" + std::to_string(http->port()));
  }
  if (o.grpc_port >= 0) {
    server::GrpcOptions go;
    go.host = o.host;
    go.port = o.grpc_port;
    go.infer_threads = o.handler_threads;
    auto started = server::GrpcFrontend::start(*srv, go);
    if (!started) return fail(kCommand, "gRPC: " + started.status().message());
    grpc = std::move(*started);
    log->message("gRPC on " + o.host + ":" + std::to_string(grpc->port()));
  }
  if (o.metrics_port >= 0) {
    server::HttpOptions mo;
    mo.host = o.host;
    mo.port = o.metrics_port;
    mo.metrics_only = true;
    mo.threads = 2;
    auto started = server::HttpFrontend::start(*srv, mo);
    if (!started) return fail(kCommand, "metrics: " + started.status().message());
    metrics = std::move(*started);
    log->message("metrics on " + o.host + ":" + std::to_string(metrics->port()));
  }

  if (!o.ready_file.empty()) {
    const std::string json = "{\"http\":" + std::to_string(http ? http->port() : -1) +
                             ",\"grpc\":" + std::to_string(grpc ? grpc->port() : -1) +
                             ",\"metrics\":" + std::to_string(metrics ? metrics->port() : -1) + "}\n";
    if (!write_atomically(o.ready_file, json)) return fail(kCommand, o.ready_file + ": cannot write the ready file");
  }

  int signal_number = 0;
  for (;;) {
    if (sigwait(&waited_signals, &signal_number) != 0) continue;
    if (signal_number != SIGHUP) break;
    log->message("SIGHUP received: looking at the model repository again");
    srv->rescan();
  }
  char grace[32];
  std::snprintf(grace, sizeof grace, "%.0f", o.grace_seconds);
  log->message(std::string(signal_number == SIGINT ? "SIGINT" : "SIGTERM") + " received, draining (grace " + grace +
               " s)");
  // The frontends stop accepting and wait for their running handlers, which wait for queued
  // and in-flight requests. Past the grace period the server cuts those off (their handlers
  // then reply with 503), so the frontends finish stopping.
  std::promise<void> frontends_stopped;
  std::thread stopper([&] {
    if (metrics) metrics->stop();
    if (http) http->stop();
    if (grpc) grpc->stop(so.shutdown_grace);
    frontends_stopped.set_value();
  });
  frontends_stopped.get_future().wait_for(so.shutdown_grace);
  const bool drained = srv->shutdown();  // false: the server cut requests off
  stopper.join();
  log->message(std::string("stopped") + (drained ? "" : " (requests were cut off at the grace period)"));
  return drained ? 0 : 1;
}

}  // namespace

void add_serve_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("serve",
                                 "Serve a model repository over REST and gRPC (Open Inference Protocol v2); "
                                 "SIGTERM/SIGINT drain and stop, SIGHUP rescans the repository");
  auto o = std::make_shared<ServeOptions>();
  cmd->add_option("--model-repository", o->model_repository, "Folder of <model>/<version>/model.onnx")->required();
  cmd->add_option("--host", o->host, "Address to listen on (default 127.0.0.1)");
  cmd->add_option("--http-port", o->http_port, "REST port (default 8000; 0: any free port; -1: off)");
  cmd->add_option("--grpc-port", o->grpc_port, "gRPC port (default 8001; 0: any free port; -1: off)");
  cmd->add_option("--metrics-port", o->metrics_port, "Prometheus /metrics port (default 8002; 0: any free port; -1: off)");
  cmd->add_option("--backend", o->backends, "Backend order (repeatable or comma-separated; default: all, reference last)")
      ->delimiter(',');
  cmd->add_option("--threads", o->threads, "Engine threads per call for models whose config sets none (default 1)");
  cmd->add_option("--instances", o->instances, "Engine calls in flight per model (default: hardware threads)");
  cmd->add_option("--handler-threads", o->handler_threads,
                  "HTTP event loops, and gRPC ModelInfer threads that may make the engine call (one more "
                  "takes calls) (default 0: max(4, 2 x hardware threads))");
  cmd->add_option("--json-decode-threads", o->json_decode_threads,
                  "Helper threads that parse large REST JSON tensors in pieces (default -1: hardware "
                  "threads - 1, at most 7; 0: none)");
  cmd->add_option("--inject", o->inject,
                  "Fault injection for models whose config sets none, e.g. route=cpu,error=0.3 (default: the first route)");
  cmd->add_option("--cache-dir", o->cache_dir,
                  "Keep the backends' timed kernel choices here, so that replicas sharing it compile alike");
  cmd->add_option("--poll-seconds", o->poll_seconds, "Rescan the repository this often (default 0: never)");
  cmd->add_option("--model-control", o->model_control,
                  "all (default): every model in the repository loads; explicit: only --load-model ones, "
                  "others through the repository API");
  cmd->add_option("--load-model", o->load_models,
                  "With explicit model control (implied), a model to load at start (repeatable)");
  cmd->add_option("--grace-seconds", o->grace_seconds, "On SIGTERM/SIGINT, let requests finish this long (default 30)");
  cmd->add_option("--max-body-mb", o->max_body_mb, "Largest request body in MiB (default 64)");
  cmd->add_option("--ready-file", o->ready_file,
                  "Once listening, write {\"http\":PORT,\"grpc\":PORT,\"metrics\":PORT} here (atomically)");
  cmd->add_option("--log-format", o->log_format,
                  "text (default): 'tandem serve: ...' lines; json: one object per line with the time (UTC)");
  cmd->callback([o, exit_code] { *exit_code = run_serve(*o); });
}

}  // namespace tandem::cli
