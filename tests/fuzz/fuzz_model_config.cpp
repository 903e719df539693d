// fuzz_model_config.cpp: libFuzzer entry point for a served model's config.json
// (src/server/model_config.h). Any bytes are a config: the parser must give a config whose
// fields are within their documented ranges, or one error line that names the model and the
// file, and never crash. The warm-up sizes batching asks for must stay within its batch size.
#include <cmath>
#include <cstdint>
#include <string>
#include <string_view>

#include "fuzz_fail.h"
#include "server/model_config.h"

using tandem::fuzz::fail;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  auto config = tandem::server::parse_model_config("fuzz", text);
  if (!config.is_ok()) {
    const tandem::Status status = config.status();
    const std::string& m = status.message();
    if (status.code() != tandem::StatusCode::invalid_argument) fail("not invalid_argument: " + status.to_string());
    if (m.rfind("model 'fuzz': config.json: ", 0) != 0) fail("error not naming the model and file: " + m);
    if (m.find('\n') != std::string::npos) fail("error over more than one line: " + m);
    return 0;
  }
  const tandem::server::ModelConfig& c = *config;
  const tandem::PrepareOptions& p = c.prepare;
  auto within = [](double v, double lo, double hi) { return std::isfinite(v) && v >= lo && v <= hi; };
  if (c.threads < 0 || c.instances < 0 || c.max_queue_size < 0) fail("a negative count");
  if (!within(c.default_timeout_ms, 0, 1e12) || c.default_timeout_ms != p.default_deadline_ms)
    fail("default_timeout_ms out of range or not the deadline");
  if (!within(p.parity_sample_rate, 0, 1)) fail("parity_sample_rate out of [0, 1]");
  if (!within(p.shape_cache_mb, 0, 1e12) || !within(p.latency_sla_ms, 0, 1e12)) fail("a number out of range");
  if (p.same_route_retries < 0) fail("negative same_route_retries");
  if (c.version_policy != "latest" && c.version_policy != "all") fail("version_policy " + c.version_policy);
  for (const std::string& route : p.routes)
    if (route.empty()) fail("an empty route name");
  for (const auto& [name, dims] : p.input_shapes)
    for (int64_t d : dims)
      if (d < -1) fail("input_shapes." + name + " holds " + std::to_string(d));
  const tandem::server::BatchingConfig& b = c.batching;
  if (b.enabled) {
    if (b.max_batch_size < 1 || b.max_queue_delay_us < 0) fail("batching bounds out of range");
    for (int s : b.preferred_batch_sizes)
      if (s < 1 || s > b.max_batch_size) fail("preferred size " + std::to_string(s) + " outside [1, max]");
    int64_t last = 1;
    for (int64_t s : tandem::server::warm_batch_sizes(b)) {
      if (s <= last || s > b.max_batch_size) fail("warm sizes not ascending within [2, max_batch_size]");
      last = s;
    }
  }
  return 0;
}
