// Telemetry exporters: the Prometheus text exposition is checked against the text-format
// grammar by a small validator written here; the JSON is parsed back and checked.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "engine_test_util.h"
#include "tandem/engine.h"
#include "tandem/telemetry.h"

namespace tandem {
namespace {

// --- a validator for the Prometheus text format (0.0.4) --------------------------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Exposition {
  std::map<std::string, std::string> types;  // family -> type
  std::vector<Sample> samples;
};

bool valid_metric_name(const std::string& s) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(s, re);
}
bool valid_label_name(const std::string& s) {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(s, re) && s.rfind("__", 0) != 0;
}
bool parse_value(const std::string& s, double* v) {
  if (s == "NaN") return *v = NAN, true;
  if (s == "+Inf" || s == "Inf") return *v = INFINITY, true;
  if (s == "-Inf") return *v = -INFINITY, true;
  static const std::regex re("[-+]?([0-9]+\\.?[0-9]*|\\.[0-9]+)([eE][-+]?[0-9]+)?");
  if (!std::regex_match(s, re)) return false;
  *v = std::stod(s);
  return true;
}

// The family a sample name belongs to, given the declared types (summary/histogram suffixes).
std::string family_of(const std::string& name, const std::map<std::string, std::string>& types) {
  if (types.count(name)) return name;
  for (const char* suffix : {"_sum", "_count", "_bucket"}) {
    const std::string sfx(suffix);
    if (name.size() > sfx.size() && name.compare(name.size() - sfx.size(), sfx.size(), sfx) == 0) {
      const std::string base = name.substr(0, name.size() - sfx.size());
      auto it = types.find(base);
      if (it != types.end() && (it->second == "summary" || it->second == "histogram")) return base;
    }
  }
  return "";
}

// Parses and validates; on failure returns false with `error` naming the line.
bool validate_prometheus(const std::string& text, Exposition* out, std::string* error) {
  if (text.empty() || text.back() != '\n') return *error = "exposition must end with a newline", false;
  std::istringstream in(text);
  std::string line;
  int n = 0;
  std::set<std::string> helped, finished_families;
  std::string current_family;
  std::set<std::string> seen_series;
  while (std::getline(in, line)) {
    n++;
    auto fail = [&](const std::string& why) {
      *error = "line " + std::to_string(n) + ": " + why + ": " + line;
      return false;
    };
    if (line.empty()) continue;
    if (line[0] == '#') {
      std::istringstream ls(line.substr(1));
      std::string kw, name;
      ls >> kw >> name;
      if (kw != "HELP" && kw != "TYPE") continue;  // a plain comment
      if (!valid_metric_name(name)) return fail("bad metric name in " + kw);
      if (kw == "HELP") {
        if (!helped.insert(name).second) return fail("second HELP");
        continue;
      }
      std::string type, extra;
      ls >> type;
      if (ls >> extra) return fail("junk after TYPE");
      static const std::set<std::string> kTypes{"counter", "gauge", "histogram", "summary", "untyped"};
      if (!kTypes.count(type)) return fail("unknown type");
      if (out->types.count(name)) return fail("second TYPE");
      for (const Sample& s : out->samples)
        if (s.name == name) return fail("TYPE after samples");
      out->types[name] = type;
      continue;
    }
    // name{labels} value [timestamp]
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') i++;
    Sample s;
    s.name = line.substr(0, i);
    if (!valid_metric_name(s.name)) return fail("bad metric name");
    if (i < line.size() && line[i] == '{') {
      i++;
      while (i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) return fail("label without '='");
        const std::string lname = line.substr(i, eq - i);
        if (!valid_label_name(lname)) return fail("bad label name '" + lname + "'");
        i = eq + 1;
        if (i >= line.size() || line[i] != '"') return fail("label value not quoted");
        i++;
        std::string value;
        for (;;) {
          if (i >= line.size()) return fail("unterminated label value");
          const char c = line[i++];
          if (c == '"') break;
          if (c == '\\') {
            if (i >= line.size()) return fail("dangling escape");
            const char e = line[i++];
            if (e == 'n') value += '\n';
            else if (e == '\\' || e == '"') value += e;
            else return fail("bad escape");
          } else {
            value += c;
          }
        }
        if (s.labels.count(lname)) return fail("duplicate label");
        s.labels[lname] = value;
        if (i < line.size() && line[i] == ',') i++;
      }
      if (i >= line.size()) return fail("unterminated label set");
      i++;  // '}'
    }
    if (i >= line.size() || line[i] != ' ') return fail("no space before value");
    std::istringstream vs(line.substr(i + 1));
    std::string value, timestamp, extra;
    vs >> value >> timestamp >> extra;
    if (!parse_value(value, &s.value)) return fail("bad value");
    if (!timestamp.empty() && !std::regex_match(timestamp, std::regex("-?[0-9]+"))) return fail("bad timestamp");
    if (!extra.empty()) return fail("junk after value");
    const std::string family = family_of(s.name, out->types);
    if (family.empty()) return fail("sample without a TYPE");
    if (family != current_family) {
      if (finished_families.count(family)) return fail("family samples not grouped");
      if (!current_family.empty()) finished_families.insert(current_family);
      current_family = family;
    }
    const std::string& type = out->types[family];
    if (type == "counter" && (s.value < 0 || std::isnan(s.value))) return fail("negative counter");
    if (type == "summary" && s.name == family && !s.labels.count("quantile")) return fail("summary sample without quantile");
    std::string key = s.name;
    for (const auto& [k, v] : s.labels) key += "\x1f" + k + "=" + v;
    if (!seen_series.insert(key).second) return fail("duplicate series");
    out->samples.push_back(std::move(s));
  }
  return true;
}

const Sample* find_sample(const Exposition& e, const std::string& name, const std::map<std::string, std::string>& labels) {
  for (const Sample& s : e.samples) {
    if (s.name != name) continue;
    bool match = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      match = match && it != s.labels.end() && it->second == v;
    }
    if (match) return &s;
  }
  return nullptr;
}

// --- tests -----------------------------------------------------------------------------------

TEST(EngineTelemetryValidator, RejectsBrokenExpositions) {
  const char* bad[] = {
      "x 1\n",                                                          // no TYPE
      "# TYPE x counter\nx{a=\"1\" 1\n",                                // unterminated labels
      "# TYPE x counter\nx{a=1} 1\n",                                   // unquoted value
      "# TYPE x counter\nx 1\n# TYPE y gauge\ny 1\nx{a=\"b\"} 2\n",    // not grouped
      "# TYPE x counter\nx -1\n",                                       // negative counter
      "# TYPE x gauge\nx one\n",                                        // bad value
      "# TYPE x summary\nx 1\n",                                        // summary without quantile
      "# TYPE x gauge\nx{a=\"\\t\"} 1\n",                               // bad escape
      "# TYPE x gauge\nx 1",                                            // no final newline
      "# TYPE 1x gauge\n",                                              // bad name
      "# TYPE x gauge\nx{__a=\"1\"} 1\n",                               // reserved label name
      "# TYPE x gauge\nx 1\nx 2\n",                                     // duplicate series
  };
  for (const char* text : bad) {
    Exposition e;
    std::string error;
    EXPECT_FALSE(validate_prometheus(text, &e, &error)) << text;
  }
  Exposition e;
  std::string error;
  EXPECT_TRUE(validate_prometheus("# HELP x a thing\n# TYPE x summary\nx{quantile=\"0.5\"} 1.5e-3\nx_sum 2\nx_count 3\n",
                                  &e, &error))
      << error;
}

ModelTelemetry synthetic() {
  ModelTelemetry t;
  t.model = "we\"ird\\name\nhere";
  t.cache_key = "abc";
  t.requests = 10;
  t.succeeded = 9;
  t.failed = 1;
  t.failures["timeout"] = 1;
  for (int i = 1; i <= 9; ++i) t.latency.record(static_cast<uint64_t>(i) * 1000000);
  BackendTelemetry b;
  b.backend = "faulty(cpu)";
  b.requests = 10;
  b.successes = 6;
  b.failures["device_error"] = 4;
  b.fallbacks["device_error"] = 3;
  b.fallbacks["breaker_open"] = 1;
  b.served = 6;
  b.breaker.state = BreakerState::open;
  b.breaker.trips = 2;
  b.parity.samples = 3;
  b.parity.violations = 1;
  b.parity.max_abs = INFINITY;
  b.latency.record(2000000);
  t.backends.push_back(b);
  BackendTelemetry r;
  r.backend = "reference";
  r.served = 3;
  t.backends.push_back(r);
  return t;
}

TEST(EngineTelemetryExport, PrometheusFollowsTheGrammar) {
  ModelTelemetry a = synthetic();
  ModelTelemetry b = synthetic();
  b.model = "second";
  const std::string text = telemetry_to_prometheus({a, b});
  Exposition e;
  std::string error;
  ASSERT_TRUE(validate_prometheus(text, &e, &error)) << error << "\n" << text;
  for (const auto& [family, type] : e.types) EXPECT_EQ(family.rfind("tandem_", 0), 0u) << family;
  // Label values round-trip through escaping.
  const Sample* s = find_sample(e, "tandem_requests_total", {{"model", a.model}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, 10);
  s = find_sample(e, "tandem_backend_failures_total", {{"model", "second"}, {"backend", "faulty(cpu)"}, {"kind", "device_error"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, 4);
  s = find_sample(e, "tandem_breaker_state", {{"model", "second"}, {"backend", "faulty(cpu)"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, 1);
  s = find_sample(e, "tandem_parity_max_abs_error", {{"model", "second"}, {"backend", "faulty(cpu)"}});
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(std::isinf(s->value));
  s = find_sample(e, "tandem_request_latency_seconds", {{"model", "second"}, {"quantile", "0.5"}});
  ASSERT_NE(s, nullptr);
  EXPECT_NEAR(s->value, 0.005, 0.005 / 64);
  s = find_sample(e, "tandem_request_latency_seconds_count", {{"model", "second"}});
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->value, 9);
  EXPECT_EQ(e.types.at("tandem_breaker_trips_total"), "counter");
  EXPECT_EQ(e.types.at("tandem_backend_latency_seconds"), "summary");
  // An empty model list is still a valid exposition (families without samples).
  Exposition empty;
  EXPECT_TRUE(validate_prometheus(telemetry_to_prometheus({}), &empty, &error)) << error;
}

TEST(EngineTelemetryExport, JsonHasEveryField) {
  const auto j = nlohmann::json::parse(telemetry_to_json(synthetic()));
  EXPECT_EQ(j["model"], "we\"ird\\name\nhere");
  EXPECT_EQ(j["requests"], 10);
  EXPECT_EQ(j["failures"]["timeout"], 1);
  for (const char* k : {"p50", "p90", "p95", "p99", "p999", "max", "count", "mean"})
    EXPECT_TRUE(j["latency_ms"].contains(k)) << k;
  EXPECT_NEAR(j["latency_ms"]["p50"].get<double>(), 5.0, 5.0 / 64);
  ASSERT_EQ(j["backends"].size(), 2u);
  const auto& b = j["backends"][0];
  EXPECT_EQ(b["backend"], "faulty(cpu)");
  EXPECT_EQ(b["breaker"]["state"], "open");
  EXPECT_EQ(b["breaker"]["trips"], 2);
  EXPECT_EQ(b["fallbacks"]["breaker_open"], 1);
  EXPECT_EQ(b["parity"]["violations"], 1);
  EXPECT_GT(b["parity"]["max_abs_error"].get<double>(), 1e300);  // infinity, carried as a huge number
  for (const char* k :
       {"queue_seconds", "compute_seconds", "dispatch_share", "hung_calls", "abandoned_calls", "worker_threads",
        "sla_estimate_ms", "attempt_budget_ms", "nodes", "sla_breaches", "last_fault"})
    EXPECT_TRUE(b.contains(k)) << k;
  for (const char* k : {"rss_bytes", "arena_bytes", "queue_seconds", "compute_seconds", "cache_key", "fallbacks"})
    EXPECT_TRUE(j.contains(k)) << k;
}

TEST(EngineTelemetryExport, RealModelTelemetryExportsCleanly) {
  auto engine = testing_util::make_engine({"reference"});
  ASSERT_TRUE(engine);
  PrepareOptions o;
  o.fault_injection = "error=0.5,seed=11";
  o.parity_sample_rate = 1.0;
  o.name = "tiny";
  auto m = testing_util::prepare_model(*engine, o);
  ASSERT_TRUE(m);
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(m->infer(testing_util::tiny_inputs()).is_ok());
  m->drain_parity(10000);
  const ModelTelemetry t = m->telemetry();
  EXPECT_GT(t.rss_bytes, 0u);
  EXPECT_EQ(t.arena_bytes, 8u * sizeof(float));
  EXPECT_EQ(t.requests, 40u);
  Exposition e;
  std::string error;
  const std::string text = engine->metrics_prometheus();
  ASSERT_TRUE(validate_prometheus(text, &e, &error)) << error << "\n" << text;
  const Sample* served = find_sample(e, "tandem_backend_served_total", {{"model", "tiny"}, {"backend", "reference"}});
  ASSERT_NE(served, nullptr);
  EXPECT_GT(served->value, 0);
  const Sample* trips = find_sample(e, "tandem_breaker_trips_total", {{"model", "tiny"}, {"backend", "faulty(reference)"}});
  ASSERT_NE(trips, nullptr);
  EXPECT_GE(trips->value, 1);
  const auto j = nlohmann::json::parse(telemetry_to_json(t));
  EXPECT_EQ(j["model"], "tiny");
  EXPECT_EQ(j["backends"][0]["backend"], "faulty(reference)");
  EXPECT_EQ(j["succeeded"], 40);
  // The faulty route's latest fault is the injected error; the reference behind it had none.
  const std::string fault = j["backends"][0]["last_fault"];
  EXPECT_EQ(fault.rfind("device_error: ", 0), 0u) << fault;
  EXPECT_NE(fault.find("inject"), std::string::npos) << fault;
  EXPECT_EQ(j["backends"][1]["last_fault"], "");
}

}  // namespace
}  // namespace tandem
