// server_metrics.h (private to src/server): the server's own Prometheus families, next to the
// engine's telemetry (telemetry_to_prometheus) in Server::metrics_prometheus():
//   tandem_server_requests_total{protocol,code}   counter    answers the frontends sent
//   tandem_server_request_seconds{protocol}        histogram  receipt to reply
//   tandem_server_queue_seconds{model}             histogram  submit to engine call
//   tandem_server_batch_rows{model}                histogram  rows of the engine call per request
//   tandem_server_in_flight                        gauge      admitted requests not yet completed
//   tandem_server_rejected_total{model}            counter    refused at admission (queue full, draining)
//   tandem_server_model_ready{model,version}       gauge      1 when the version can answer now
// Units: seconds. Thread-safety: every method may be called from any thread.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tandem::server {

// A Prometheus histogram with fixed upper bounds (the +Inf bucket is implicit).
class BucketHistogram {
 public:
  explicit BucketHistogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1) {}
  void observe(double value);
  // Appends `name_bucket{labels,le=...}`, `name_sum` and `name_count` lines. `labels` is
  // either empty or `key="value",...` without braces.
  void render(std::string* out, std::string_view name, std::string_view labels) const;

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> counts_;  // per bucket, not cumulative
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();
  void record_request(std::string_view protocol, int code, double seconds);
  void record_completion(std::string_view model, double queue_seconds, int batch_rows);
  void add_in_flight(int delta);
  void record_rejection(const std::string& model);
  // Renders every family; `ready` lists (model, version, ready) for tandem_server_model_ready.
  std::string render(const std::vector<std::pair<std::pair<std::string, std::string>, bool>>& ready) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;  // (protocol, code)
  std::map<std::string, BucketHistogram> request_seconds_;    // by protocol
  // By model (std::less<>: looked up by string_view, a model's entry is allocated once).
  std::map<std::string, BucketHistogram, std::less<>> queue_seconds_;
  std::map<std::string, BucketHistogram, std::less<>> batch_rows_;
  int64_t in_flight_ = 0;
  std::map<std::string, uint64_t> rejected_;
};

// Escapes a Prometheus label value (backslash, double quote, newline).
std::string prometheus_label(std::string_view value);

}  // namespace tandem::server
