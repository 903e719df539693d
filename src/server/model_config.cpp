// model_config.cpp: see model_config.h.
#include "model_config.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <limits>
#include <set>

#include <nlohmann/json.hpp>

#include "tandem/precision.h"

namespace tandem::server {

namespace {

using Json = nlohmann::json;

// Reads fields of one JSON object; the first problem found is kept as a one-line message
// naming the field ("dynamic_batching.max_batch_size must be >= 1").
class FieldReader {
 public:
  FieldReader(const Json& object, std::string prefix) : object_(object), prefix_(std::move(prefix)) {}

  const std::string& error() const { return error_; }
  bool failed() const { return !error_.empty(); }
  void fail(const std::string& field, const std::string& what) { fail_with(prefix_ + field + " " + what); }
  void fail_with(const std::string& message) {
    if (error_.empty()) error_ = message;
  }
  const Json* find(const char* field) const {
    auto it = object_.find(field);
    return it == object_.end() ? nullptr : &*it;
  }

  void boolean(const char* field, bool* out) {
    const Json* v = find(field);
    if (!v) return;
    if (!v->is_boolean()) return fail(field, "must be true or false");
    *out = v->get<bool>();
  }
  void integer(const char* field, int64_t min, int64_t max, int64_t* out) {
    const Json* v = find(field);
    if (!v) return;
    if (!v->is_number_integer()) return fail(field, "must be an integer");
    const int64_t x = v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX) ? INT64_MAX : v->get<int64_t>();
    if (x < min) return fail(field, "must be >= " + std::to_string(min));
    if (x > max) return fail(field, "must be <= " + std::to_string(max));
    *out = x;
  }
  void integer(const char* field, int min, int max, int* out) {
    int64_t x = *out;
    integer(field, int64_t{min}, int64_t{max}, &x);
    *out = static_cast<int>(x);
  }
  void number(const char* field, double min, double max, double* out) {
    const Json* v = find(field);
    if (!v) return;
    if (!v->is_number()) return fail(field, "must be a number");
    const double x = v->get<double>();
    if (!std::isfinite(x) || x < min || x > max)
      return fail(field, "must be between " + format(min) + " and " + format(max));
    *out = x;
  }
  void string(const char* field, std::string* out) {
    const Json* v = find(field);
    if (!v) return;
    if (!v->is_string()) return fail(field, "must be a string");
    *out = v->get<std::string>();
  }
  // Every key of the object must be one of `known`.
  void only(std::initializer_list<const char*> known) {
    for (auto it = object_.begin(); it != object_.end(); ++it) {
      bool ok = false;
      for (const char* k : known) ok = ok || it.key() == k;
      if (!ok) return fail(it.key(), "is not a known field");
    }
  }

 private:
  static std::string format(double x) {
    if (x >= 1e15) return "1e15";
    std::string s = std::to_string(x);
    s.erase(s.find_last_not_of('0') + 1);
    if (!s.empty() && s.back() == '.') s.pop_back();
    return s;
  }
  const Json& object_;
  std::string prefix_;
  std::string error_;
};

constexpr double kMaxMs = 1e15;

void read_backends(FieldReader& r, ModelConfig* config) {
  const Json* v = r.find("backends");
  if (!v) return;
  std::string chain;
  if (v->is_string()) {
    chain = v->get<std::string>();
  } else if (v->is_array() && !v->empty()) {
    for (const Json& item : *v) {
      if (!item.is_string()) return r.fail("backends", "must be a list of route names");
      if (!chain.empty()) chain += ',';
      chain += item.get<std::string>();
    }
  } else {
    return r.fail("backends", "must be a non-empty list of route names");
  }
  auto routes = parse_route_chain(chain);
  if (!routes) return r.fail_with("backends: " + routes.status().message());
  config->prepare.routes = std::move(*routes);
}

void read_input_shapes(FieldReader& r, ModelConfig* config) {
  const Json* v = r.find("input_shapes");
  if (!v) return;
  if (!v->is_object()) return r.fail("input_shapes", "must be an object of input name to dims");
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string field = "input_shapes." + it.key();
    if (!it->is_array()) return r.fail(field, "must be a list of dims");
    std::vector<int64_t> dims;
    for (const Json& d : *it) {
      if (!d.is_number_integer() || d.get<int64_t>() < -1 || d.get<int64_t>() > (int64_t{1} << 40))
        return r.fail(field, "must be a list of dims, each a non-negative integer or -1 (as the model declares it)");
      dims.push_back(d.get<int64_t>());
    }
    config->prepare.input_shapes[it.key()] = std::move(dims);
  }
}

void read_batching(FieldReader& parent, ModelConfig* config) {
  const Json* v = parent.find("dynamic_batching");
  if (!v) return;
  if (!v->is_object()) return parent.fail("dynamic_batching", "must be an object");
  FieldReader r(*v, "dynamic_batching.");
  BatchingConfig& b = config->batching;
  b.enabled = true;
  b.max_batch_size = 8;
  r.only({"max_batch_size", "max_queue_delay_us", "preferred_batch_sizes"});
  r.integer("max_batch_size", 1, 1 << 16, &b.max_batch_size);
  r.integer("max_queue_delay_us", int64_t{0}, int64_t{60'000'000}, &b.max_queue_delay_us);
  if (const Json* p = r.find("preferred_batch_sizes"); p && !r.failed()) {
    if (!p->is_array()) {
      r.fail("preferred_batch_sizes", "must be a list of integers");
    } else {
      for (const Json& s : *p) {
        if (!s.is_number_integer() || s.get<int64_t>() < 1 || s.get<int64_t>() > b.max_batch_size) {
          r.fail("preferred_batch_sizes", "must hold integers from 1 to max_batch_size");
          break;
        }
        b.preferred_batch_sizes.push_back(static_cast<int>(s.get<int64_t>()));
      }
    }
  }
  if (r.failed()) parent.fail_with(r.error());
}

void read_breaker(FieldReader& parent, ModelConfig* config) {
  const Json* v = parent.find("breaker");
  if (!v) return;
  if (!v->is_object()) return parent.fail("breaker", "must be an object");
  FieldReader r(*v, "breaker.");
  BreakerOptions& b = config->prepare.breaker;
  r.only({"window_size", "window_seconds", "min_requests", "failure_rate", "strict_failure_rate", "sla_breach_rate",
          "parity_violations", "cooldown_ms", "max_cooldown_ms", "backoff_multiplier", "half_open_probes",
          "half_open_calls"});
  r.integer("window_size", 1, 1 << 20, &b.window_size);
  r.number("window_seconds", 0.001, 86400, &b.window_seconds);
  r.integer("min_requests", 1, 1 << 20, &b.min_requests);
  r.number("failure_rate", 0, 1, &b.failure_rate);
  r.number("strict_failure_rate", 0, 1, &b.strict_failure_rate);
  r.number("sla_breach_rate", 0, 1, &b.sla_breach_rate);
  r.integer("parity_violations", 0, 1 << 20, &b.parity_violations);
  r.number("cooldown_ms", 0, kMaxMs, &b.cooldown_ms);
  r.number("max_cooldown_ms", 0, kMaxMs, &b.max_cooldown_ms);
  r.number("backoff_multiplier", 1, 1000, &b.backoff_multiplier);
  r.integer("half_open_probes", 1, 1 << 20, &b.half_open_probes);
  r.integer("half_open_calls", 1, 1 << 20, &b.half_open_calls);
  if (r.failed()) parent.fail_with(r.error());
}

Status parse_object(const Json& root, ModelConfig* config) {
  if (!root.is_object()) return invalid_argument("must be a JSON object");
  FieldReader r(root, "");
  r.only({"backends", "precision", "strict", "required", "default_timeout_ms", "parity_sample_rate", "fault_injection",
          "input_shapes", "threads", "instances", "max_queue_size", "dynamic_batching", "version_policy", "breaker",
          "latency_sla_ms", "same_route_retries", "shape_cache_mb"});
  read_backends(r, config);
  std::string precision;
  r.string("precision", &precision);
  if (!precision.empty() || r.find("precision")) {
    auto p = parse_precision(precision);
    if (p) config->prepare.precision = *p;
    else r.fail("precision", "must be one of fp32, bf16, fp16, int8 (got '" + precision + "')");
  }
  bool strict = false;
  r.boolean("strict", &strict);
  if (strict) config->prepare.fallback = FallbackPolicy::strict;
  r.boolean("required", &config->required);
  r.number("default_timeout_ms", 0, kMaxMs, &config->default_timeout_ms);
  config->prepare.default_deadline_ms = config->default_timeout_ms;
  r.number("latency_sla_ms", 0, kMaxMs, &config->prepare.latency_sla_ms);
  r.number("parity_sample_rate", 0, 1, &config->prepare.parity_sample_rate);
  r.integer("same_route_retries", 0, 100, &config->prepare.same_route_retries);
  r.string("fault_injection", &config->prepare.fault_injection);
  read_input_shapes(r, config);
  r.integer("threads", 0, 1024, &config->threads);
  r.integer("instances", 0, 1024, &config->instances);
  r.number("shape_cache_mb", 0, 1 << 24, &config->prepare.shape_cache_mb);
  r.integer("max_queue_size", 0, 1 << 20, &config->max_queue_size);
  read_batching(r, config);
  read_breaker(r, config);
  r.string("version_policy", &config->version_policy);
  if (config->version_policy != "latest" && config->version_policy != "all")
    r.fail("version_policy", "must be \"latest\" or \"all\" (got '" + config->version_policy + "')");
  if (r.failed()) return invalid_argument(r.error());
  return Status::ok();
}

}  // namespace

Result<ModelConfig> parse_model_config(std::string_view model, std::string_view json_text) {
  const std::string where = "model '" + std::string(model) + "': config.json: ";
  ModelConfig config;
  try {
    const Json root = Json::parse(json_text.begin(), json_text.end());
    Status s = parse_object(root, &config);
    if (!s) return invalid_argument(where + s.message());
  } catch (const std::exception& e) {
    std::string what = e.what();
    for (char& c : what)
      if (c == '\n' || c == '\r') c = ' ';
    return invalid_argument(where + "not valid JSON: " + what);
  }
  return config;
}

std::vector<int64_t> warm_batch_sizes(const BatchingConfig& batching) {
  constexpr int kEverySizeUpTo = 16;
  std::set<int64_t> sizes;
  for (int64_t size = 2; size <= std::min(batching.max_batch_size, kEverySizeUpTo); ++size) sizes.insert(size);
  for (int size : batching.preferred_batch_sizes)
    if (size >= 2 && size <= batching.max_batch_size) sizes.insert(size);
  if (batching.max_batch_size >= 2) sizes.insert(batching.max_batch_size);
  return {sizes.begin(), sizes.end()};
}

}  // namespace tandem::server
