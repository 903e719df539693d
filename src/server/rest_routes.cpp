// rest_routes.cpp: see rest_routes.h.
#include "rest_routes.h"

#include <exception>
#include <memory>

#include <nlohmann/json.hpp>

#include "rest_codec.h"
#include "rest_path.h"

namespace tandem::server {

namespace {

using nlohmann::json;

std::string dump(const json& doc) { return doc.dump(-1, ' ', false, json::error_handler_t::replace); }

RestReply json_reply(int status, const json& doc) { return RestReply{status, dump(doc), "application/json", {}}; }

json tensors_json(const std::vector<TensorMetadata>& tensors) {
  json array = json::array();
  for (const TensorMetadata& t : tensors) array.push_back({{"name", t.name}, {"datatype", t.datatype}, {"shape", t.shape}});
  return array;
}

json counts_json(const std::map<int, uint64_t>& map) {
  json object = json::object();
  for (const auto& [key, count] : map) object[std::to_string(key)] = count;
  return object;
}

json routes_json(const std::vector<RouteStats>& stats) {
  json routes = json::array();
  for (const RouteStats& r : stats)
    routes.push_back({{"route", r.route},
                      {"breaker", r.breaker},
                      {"dispatch_share", r.dispatch_share},
                      {"parity_samples", r.parity_samples},
                      {"parity_violations", r.parity_violations},
                      {"parity_max_abs", r.parity_max_abs},
                      {"last_fault", r.last_fault}});
  return routes;
}

json duration_json(const Scheduler::Stats::Duration& d) { return {{"count", d.count}, {"ns", d.ns}}; }

json stats_json(const ModelStats& s) {
  const Scheduler::Stats& q = s.scheduler;
  // The statistics extension's fields (the schema of Triton's clients), and tandem's own.
  json batch_stats = json::array();
  for (const auto& [rows, d] : q.batch_compute)
    batch_stats.push_back({{"batch_size", rows},
                           {"compute_input", duration_json(d[0])},
                           {"compute_infer", duration_json(d[1])},
                           {"compute_output", duration_json(d[2])}});
  const json inference_stats = {{"success", duration_json(q.success)},
                                {"fail", duration_json(q.fail)},
                                {"queue", duration_json(q.queue())},
                                {"compute_input", duration_json(q.compute_input)},
                                {"compute_infer", duration_json(q.compute_infer)},
                                {"compute_output", duration_json(q.compute_output)}};
  json served_by = json::object();
  for (const auto& [route, count] : q.served_by) served_by[route] = count;
  const json routes = routes_json(s.routes);
  return {{"name", s.name},
          {"version", s.version},
          {"last_inference", q.last_inference_ms},
          {"inference_count", q.inference_count},
          {"execution_count", q.execution_count},
          {"inference_stats", inference_stats},
          {"batch_stats", batch_stats},
          {"state", s.state},
          {"ready", s.ready},
          {"degraded", s.degraded},
          {"admitted", q.admitted},
          {"rejected", q.rejected},
          {"succeeded", q.succeeded},
          {"failed", q.failed},
          {"expired_in_queue", q.expired_in_queue},
          {"client_gone", q.client_gone},
          {"fallbacks", q.fallbacks},
          {"queued", q.queued},
          {"in_flight", q.in_flight},
          {"queue_time_p50_ms", q.queue_time.quantile_ms(0.5)},
          {"queue_time_p99_ms", q.queue_time.quantile_ms(0.99)},
          {"batch_rows", counts_json(q.batch_rows)},
          {"dynamic_batching", q.batching},
          {"served_by", served_by},
          {"routes", routes},
          {"p50_ms", s.p50_ms},
          {"p99_ms", s.p99_ms}};
}

RestReply stats_reply(const Server& server, const std::string& name, const std::string& version) {
  std::vector<ModelStats> stats;
  if (auto error = server.model_stats(name, version, &stats)) return rest_error_reply(*error);
  json rows = json::array();
  for (const ModelStats& s : stats) rows.push_back(stats_json(s));
  return json_reply(200, {{"model_stats", rows}});
}

RestReply repository_index_reply(const Server& server, std::string_view body) {
  bool ready_only = false;
  if (!body.empty()) {
    json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || !doc.is_object())
      return rest_error_reply(bad_request("repository index: the body must be a JSON object"));
    if (auto it = doc.find("ready"); it != doc.end()) {
      if (!it->is_boolean()) return rest_error_reply(bad_request("repository index: 'ready' must be true or false"));
      ready_only = it->get<bool>();
    }
  }
  json rows = json::array();
  for (const RepositoryEntry& e : server.repository_index(ready_only)) {
    json row = {{"name", e.name}, {"version", e.version}, {"state", e.state}};
    if (!e.reason.empty()) row["reason"] = e.reason;
    rows.push_back(std::move(row));
  }
  return json_reply(200, rows);
}

// A load or unload body: empty, or a JSON object whose "parameters" (an object) holds only what
// check_repository_parameter() takes.
std::optional<ProtocolError> repository_body_refusal(std::string_view action, std::string_view body) {
  if (body.empty()) return std::nullopt;
  const json doc = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object())
    return bad_request("repository " + std::string(action) + ": the body must be a JSON object");
  const auto parameters = doc.find("parameters");
  if (parameters == doc.end()) return std::nullopt;
  if (!parameters->is_object())
    return bad_request("repository " + std::string(action) + ": 'parameters' must be an object");
  for (const auto& [name, value] : parameters->items())
    if (auto refusal = check_repository_parameter(action, name, value.is_boolean())) return refusal;
  return std::nullopt;
}

RestReply model_metadata_reply(const Server& server, const std::string& name, const std::string& version) {
  ModelMetadata m;
  if (auto error = server.model_metadata(name, version, &m)) return rest_error_reply(*error);
  return json_reply(200, {{"name", m.name},
                          {"versions", m.versions},
                          {"platform", m.platform},
                          {"inputs", tensors_json(m.inputs)},
                          {"outputs", tensors_json(m.outputs)},
                          {"routes", routes_json(m.routes)}});
}

RestReply model_ready_reply(const Server& server, const std::string& name, const std::string& version) {
  bool ready = false;
  if (auto error = server.model_ready(name, version, &ready)) return rest_error_reply(*error);
  return json_reply(ready ? 200 : 503, {{"name", name}, {"ready", ready}});
}

}  // namespace

RestReply rest_error_reply(const ProtocolError& error) {
  RestReply reply{error.http_status, encode_rest_error(error), "application/json", {}};
  if (error.http_status == 503 && error.retry_after_s > 0)
    reply.headers.emplace_back("Retry-After", std::to_string(error.retry_after_s));
  return reply;
}

RestRoutes::RestRoutes(Server& server, bool metrics_only, Blocking blocking, int json_decode_threads)
    : server_(server), metrics_only_(metrics_only), blocking_(std::move(blocking)) {
  if (metrics_only || json_decode_threads <= 0) return;
  json_helpers_ = std::make_unique<SideTasks>(json_decode_threads);
  json_split_.helpers = json_helpers_.get();
}

namespace {

// What a request path names: the endpoint, the method it takes, and the model and version it
// names (empty when none). The one place that knows the protocol's paths.
enum class Endpoint {
  none,
  metrics,
  server_metadata,
  health_live,
  health_ready,
  all_stats,
  model_metadata,
  model_ready,
  model_stats,
  model_infer,
  repository_index,
  repository_load,
  repository_unload
};
struct Target {
  Endpoint endpoint = Endpoint::none;
  std::string_view method;  // the one method it takes
  std::string name, version;
};

Target match_target(const std::vector<std::string>& p, bool metrics_only) {
  const size_t n = p.size();
  if (n == 1 && p[0] == "metrics") return {Endpoint::metrics, "GET", {}, {}};
  if (metrics_only || n == 0 || p[0] != "v2") return {};
  if (n == 1) return {Endpoint::server_metadata, "GET", {}, {}};
  if (n == 3 && p[1] == "health" && p[2] == "live") return {Endpoint::health_live, "GET", {}, {}};
  if (n == 3 && p[1] == "health" && p[2] == "ready") return {Endpoint::health_ready, "GET", {}, {}};
  if (n >= 3 && p[1] == "models") {
    if (n == 3 && p[2] == "stats") return {Endpoint::all_stats, "GET", {}, {}};
    // {name}[/versions/{v}][/ready|/stats|/infer]
    size_t tail = 3;
    std::string version;
    if (n >= 5 && p[3] == "versions") {
      version = p[4];
      tail = 5;
    }
    const std::string& name = p[2];
    if (n == tail) return {Endpoint::model_metadata, "GET", name, version};
    if (n == tail + 1 && p[tail] == "ready") return {Endpoint::model_ready, "GET", name, version};
    if (n == tail + 1 && p[tail] == "stats") return {Endpoint::model_stats, "GET", name, version};
    if (n == tail + 1 && p[tail] == "infer") return {Endpoint::model_infer, "POST", name, version};
    return {};
  }
  if (n == 3 && p[1] == "repository" && p[2] == "index") return {Endpoint::repository_index, "POST", {}, {}};
  if (n == 5 && p[1] == "repository" && p[2] == "models" && p[4] == "load")
    return {Endpoint::repository_load, "POST", p[3], {}};
  if (n == 5 && p[1] == "repository" && p[2] == "models" && p[4] == "unload")
    return {Endpoint::repository_unload, "POST", p[3], {}};
  return {};
}

}  // namespace

void RestRoutes::handle(RestCall&& call, Respond respond) {
  // Every handler's exceptions end here; `respond` has not run when one escapes (they are
  // thrown while building a reply, before it is handed over).
  try {
    Target t = match_target(rest_path_segments(call.target), metrics_only_);
    const std::string path(call.target.substr(0, call.target.find('?')));
    if (t.endpoint == Endpoint::none)
      return respond(rest_error_reply(not_found("no such endpoint: " + std::string(call.method) + " " + path)));
    // HEAD is GET without the body (the transport leaves it out).
    if (call.method != t.method && !(call.method == "HEAD" && t.method == "GET")) {
      RestReply reply = rest_error_reply(ProtocolError{
          405, std::string(call.method) + " " + path + " is not allowed: it takes " + std::string(t.method)});
      reply.headers.emplace_back("Allow", t.method == "GET" ? std::string("GET, HEAD") : std::string(t.method));
      return respond(std::move(reply));
    }
    switch (t.endpoint) {
      case Endpoint::metrics:
        return respond(RestReply{200, server_.metrics_prometheus(), "text/plain; version=0.0.4", {}});
      case Endpoint::server_metadata: {
        ServerMetadata m = server_.metadata();
        return respond(json_reply(200, {{"name", m.name}, {"version", m.version}, {"extensions", m.extensions}}));
      }
      case Endpoint::health_live: {
        const bool live = server_.live();
        return respond(json_reply(live ? 200 : 503, {{"live", live}}));
      }
      case Endpoint::health_ready: {
        const bool ready = server_.ready();
        return respond(json_reply(ready ? 200 : 503, {{"ready", ready}}));
      }
      case Endpoint::all_stats:
        return respond(stats_reply(server_, "", ""));
      case Endpoint::model_metadata:
        return respond(model_metadata_reply(server_, t.name, t.version));
      case Endpoint::model_ready:
        return respond(model_ready_reply(server_, t.name, t.version));
      case Endpoint::model_stats:
        return respond(stats_reply(server_, t.name, t.version));
      case Endpoint::model_infer:
        return infer(std::move(call), t.name, t.version, std::move(respond));
      case Endpoint::repository_index:
        return respond(repository_index_reply(server_, call.body));
      case Endpoint::repository_load:
      case Endpoint::repository_unload: {
        const bool load = t.endpoint == Endpoint::repository_load;
        if (auto refusal = repository_body_refusal(load ? "load" : "unload", call.body))
          return respond(rest_error_reply(*refusal));
        return blocking_([this, load, name = std::move(t.name), respond = std::move(respond)]() {
          RestReply reply;
          try {
            auto error = load ? server_.load_model(name) : server_.unload_model(name);
            reply = error ? rest_error_reply(*error) : json_reply(200, json::object());
          } catch (const std::exception& e) {
            reply = rest_error_reply(ProtocolError{500, std::string("internal error: ") + e.what()});
          }
          respond(std::move(reply));
        });
      }
      case Endpoint::none:
        break;
    }
    respond(rest_error_reply(not_found("no such endpoint: " + std::string(call.method) + " " + path)));
  } catch (const std::exception& e) {
    // `respond` was not moved on yet (routes move it only as their last step).
    if (respond) respond(rest_error_reply(ProtocolError{500, std::string("internal error: ") + e.what()}));
  }
}

std::optional<RestReply> RestRoutes::refuse_early(std::string_view method, std::string_view target) {
  if (metrics_only_ || method != "POST") return std::nullopt;
  const Target t = match_target(rest_path_segments(target), metrics_only_);
  if (t.endpoint != Endpoint::model_infer) return std::nullopt;
  if (auto refusal = server_.admission_refusal(t.name, t.version)) return rest_error_reply(*refusal);
  return std::nullopt;
}

void RestRoutes::infer(RestCall&& call, std::string model, std::string version, Respond respond) {
  InferRequest request;
  std::optional<std::string_view> header_length;
  if (call.inference_header_length) header_length = *call.inference_header_length;
  if (auto error = decode_rest_infer_request(call.body, header_length, server_.options().limits, &request,
                                             json_helpers_ ? &json_split_ : nullptr, call.body_owner))
    return respond(rest_error_reply(*error));
  request.model = std::move(model);
  request.version = std::move(version);
  request.client_gone = std::move(call.client_gone);
  // `respond` moves into the scheduler's callback only when the request is admitted; a refusal
  // leaves it here to answer with.
  auto shared = std::make_shared<Respond>(std::move(respond));
  auto done = [shared, helpers = json_helpers_.get()](InferOutcome&& outcome) {
    if (outcome.error) return (*shared)(rest_error_reply(*outcome.error));
    RestBody body = encode_rest_infer_response(outcome.response, helpers);
    RestReply reply{200, std::move(body.body), "application/json", {}};
    if (!outcome.response.backend.empty()) reply.headers.emplace_back("X-Tandem-Backend", outcome.response.backend);
    if (outcome.response.fallback) reply.headers.emplace_back("X-Tandem-Fallback", "true");
    if (body.header_length) {
      reply.headers.emplace_back("Inference-Header-Content-Length", std::to_string(*body.header_length));
      reply.content_type = "application/octet-stream";
    }
    (*shared)(std::move(reply));
  };
  if (auto error = server_.infer(std::move(request), std::move(done), call.may_block))
    (*shared)(rest_error_reply(*error));
}

}  // namespace tandem::server
