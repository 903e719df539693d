// server_metrics.cpp: see server_metrics.h.
#include "server_metrics.h"

#include <cstdio>

namespace tandem::server {

namespace {

const std::vector<double> kSecondsBounds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                            0.1,    0.25,  0.5,    1,     2.5,  5,     10};
const std::vector<double> kRowsBounds = {1, 2, 4, 8, 16, 32, 64, 128};

std::string number(double x) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

void family(std::string* out, std::string_view name, std::string_view type, std::string_view help) {
  *out += "# HELP " + std::string(name) + " " + std::string(help) + "\n";
  *out += "# TYPE " + std::string(name) + " " + std::string(type) + "\n";
}

}  // namespace

std::string prometheus_label(std::string_view value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
  return out;
}

void BucketHistogram::observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void BucketHistogram::render(std::string* out, std::string_view name, std::string_view labels) const {
  const std::string prefix = labels.empty() ? "" : std::string(labels) + ",";
  const std::string braces = labels.empty() ? "" : "{" + std::string(labels) + "}";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += counts_[i];
    const std::string le = i < bounds_.size() ? number(bounds_[i]) : "+Inf";
    *out += std::string(name) + "_bucket{" + prefix + "le=\"" + le + "\"} " + std::to_string(cumulative) + "\n";
  }
  *out += std::string(name) + "_sum" + braces + " " + number(sum_) + "\n";
  *out += std::string(name) + "_count" + braces + " " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics() = default;

void ServerMetrics::record_request(std::string_view protocol, int code, double seconds) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_[{std::string(protocol), code}];
  request_seconds_.try_emplace(std::string(protocol), kSecondsBounds).first->second.observe(seconds);
}

namespace {
BucketHistogram& histogram_of(std::map<std::string, BucketHistogram, std::less<>>* by_model, std::string_view model,
                              const std::vector<double>& bounds) {
  auto it = by_model->find(model);
  if (it == by_model->end()) it = by_model->emplace(std::string(model), BucketHistogram(bounds)).first;
  return it->second;
}
}  // namespace

void ServerMetrics::record_completion(std::string_view model, double queue_seconds, int batch_rows) {
  std::lock_guard<std::mutex> lock(mu_);
  histogram_of(&queue_seconds_, model, kSecondsBounds).observe(queue_seconds);
  if (batch_rows > 0) histogram_of(&batch_rows_, model, kRowsBounds).observe(batch_rows);
}

void ServerMetrics::add_in_flight(int delta) {
  std::lock_guard<std::mutex> lock(mu_);
  in_flight_ += delta;
}

void ServerMetrics::record_rejection(const std::string& model) {
  std::lock_guard<std::mutex> lock(mu_);
  ++rejected_[model];
}

std::string ServerMetrics::render(const std::vector<std::pair<std::pair<std::string, std::string>, bool>>& ready) const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  family(&out, "tandem_server_requests_total", "counter", "Requests answered by the frontends, by protocol and HTTP status.");
  for (const auto& [key, n] : requests_)
    out += "tandem_server_requests_total{protocol=\"" + prometheus_label(key.first) + "\",code=\"" +
           std::to_string(key.second) + "\"} " + std::to_string(n) + "\n";
  family(&out, "tandem_server_request_seconds", "histogram", "Time from receipt of a request to its reply.");
  for (const auto& [protocol, h] : request_seconds_)
    h.render(&out, "tandem_server_request_seconds", "protocol=\"" + prometheus_label(protocol) + "\"");
  family(&out, "tandem_server_queue_seconds", "histogram", "Time a request waited in its model's queue.");
  for (const auto& [model, h] : queue_seconds_)
    h.render(&out, "tandem_server_queue_seconds", "model=\"" + prometheus_label(model) + "\"");
  family(&out, "tandem_server_batch_rows", "histogram", "Rows of the engine call that served each request.");
  for (const auto& [model, h] : batch_rows_)
    h.render(&out, "tandem_server_batch_rows", "model=\"" + prometheus_label(model) + "\"");
  family(&out, "tandem_server_in_flight", "gauge", "Admitted requests not yet completed.");
  out += "tandem_server_in_flight " + std::to_string(in_flight_) + "\n";
  family(&out, "tandem_server_rejected_total", "counter", "Requests refused at admission (queue full or draining).");
  for (const auto& [model, n] : rejected_)
    out += "tandem_server_rejected_total{model=\"" + prometheus_label(model) + "\"} " + std::to_string(n) + "\n";
  family(&out, "tandem_server_model_ready", "gauge", "1 when the model version can answer now.");
  for (const auto& [key, is_ready] : ready)
    out += "tandem_server_model_ready{model=\"" + prometheus_label(key.first) + "\",version=\"" +
           prometheus_label(key.second) + "\"} " + (is_ready ? "1" : "0") + "\n";
  return out;
}

}  // namespace tandem::server
