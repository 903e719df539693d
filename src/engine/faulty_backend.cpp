#include "engine/faulty_backend.h"

#include <cmath>
#include <cstdlib>
#include <limits>
#include <vector>

#include "engine/splitmix.h"

namespace tandem {

namespace {

Result<double> parse_number(const std::string& key, const std::string& value, double lo, double hi) {
  char* end = nullptr;
  const double v = std::strtod(value.c_str(), &end);
  if (value.empty() || *end != '\0' || !std::isfinite(v))
    return invalid_argument("fault spec: " + key + "='" + value + "' is not a number");
  if (v < lo || v > hi)
    return invalid_argument("fault spec: " + key + "=" + value + " is outside [" + std::to_string(lo) + ", " +
                            std::to_string(hi) + "]");
  return v;
}

std::string fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", v);
  return buf;
}

Tensor nan_like(const Tensor& t) {
  Tensor out(t.dtype(), t.shape());
  const int64_t n = out.numel();
  switch (t.dtype()) {
    case DataType::float32:
      for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = std::numeric_limits<float>::quiet_NaN();
      break;
    case DataType::float64:
      for (int64_t i = 0; i < n; ++i) out.data<double>()[i] = std::numeric_limits<double>::quiet_NaN();
      break;
    case DataType::float16:
      for (int64_t i = 0; i < n; ++i) out.data<Float16>()[i] = Float16(std::numeric_limits<float>::quiet_NaN());
      break;
    case DataType::bfloat16:
      for (int64_t i = 0; i < n; ++i) out.data<BFloat16>()[i] = BFloat16(std::numeric_limits<float>::quiet_NaN());
      break;
    default:
      return t;
  }
  return out;
}

// `t` with `offset` added to every element (float32 and float64; other types unchanged).
Tensor shifted(const Tensor& t, double offset) {
  if (t.dtype() != DataType::float32 && t.dtype() != DataType::float64) return t;
  Tensor out(t.dtype(), t.shape());
  const int64_t n = out.numel();
  if (t.dtype() == DataType::float32) {
    for (int64_t i = 0; i < n; ++i) out.data<float>()[i] = t.data<float>()[i] + static_cast<float>(offset);
  } else {
    for (int64_t i = 0; i < n; ++i) out.data<double>()[i] = t.data<double>()[i] + offset;
  }
  return out;
}

}  // namespace

std::string FaultSpec::to_string() const {
  std::string s;
  auto add = [&](const std::string& kv) { s += (s.empty() ? "" : ",") + kv; };
  if (error_rate > 0) add("error=" + fmt(error_rate));
  if (hang_rate > 0) add("hang=" + fmt(hang_rate) + ",hang_ms=" + fmt(hang_ms));
  if (latency_ms > 0) add("latency_ms=" + fmt(latency_ms));
  if (nan_rate > 0) add("nan=" + fmt(nan_rate));
  if (offset != 0) add("offset=" + fmt(offset));
  if (fail_after >= 0) add("fail_after=" + std::to_string(fail_after));
  if (recover_after_s >= 0 && !s.empty()) add("recover_after_s=" + fmt(recover_after_s));
  if (seed != 0 && !s.empty()) add("seed=" + std::to_string(seed));
  if (!route.empty() && !s.empty()) s = "route=" + route + "," + s;
  return s;
}

Result<FaultSpec> parse_fault_spec(std::string_view text) {
  FaultSpec spec;
  size_t pos = 0;
  const std::string s(text);
  while (pos < s.size()) {
    size_t end = s.find(',', pos);
    if (end == std::string::npos) end = s.size();
    const std::string item = s.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    const size_t eq = item.find('=');
    if (eq == std::string::npos) return invalid_argument("fault spec: '" + item + "' is not key=value");
    const std::string key = item.substr(0, eq), value = item.substr(eq + 1);
    constexpr double kBig = 1e12;
    if (key == "error") {
      TANDEM_ASSIGN_OR_RETURN(spec.error_rate, parse_number(key, value, 0, 1));
    } else if (key == "hang") {
      TANDEM_ASSIGN_OR_RETURN(spec.hang_rate, parse_number(key, value, 0, 1));
    } else if (key == "hang_ms") {
      TANDEM_ASSIGN_OR_RETURN(spec.hang_ms, parse_number(key, value, 0, kBig));
    } else if (key == "latency_ms") {
      TANDEM_ASSIGN_OR_RETURN(spec.latency_ms, parse_number(key, value, 0, kBig));
    } else if (key == "nan") {
      TANDEM_ASSIGN_OR_RETURN(spec.nan_rate, parse_number(key, value, 0, 1));
    } else if (key == "offset") {
      TANDEM_ASSIGN_OR_RETURN(spec.offset, parse_number(key, value, -kBig, kBig));
    } else if (key == "fail_after") {
      TANDEM_ASSIGN_OR_RETURN(double v, parse_number(key, value, 0, 9e15));
      if (v != std::floor(v)) return invalid_argument("fault spec: fail_after=" + value + " is not a whole number");
      spec.fail_after = static_cast<int64_t>(v);
    } else if (key == "recover_after_s") {
      TANDEM_ASSIGN_OR_RETURN(spec.recover_after_s, parse_number(key, value, 0, kBig));
    } else if (key == "route") {
      if (value.empty()) return invalid_argument("fault spec: route= names no route");
      spec.route = value;
    } else if (key == "seed") {
      TANDEM_ASSIGN_OR_RETURN(double v, parse_number(key, value, 0, 9e15));
      spec.seed = static_cast<uint64_t>(v);
    } else {
      return invalid_argument("fault spec: unknown key '" + key +
                              "' (known: route, error, hang, hang_ms, latency_ms, nan, offset, fail_after, recover_after_s, seed)");
    }
  }
  return spec;
}

FaultyBackend::FaultyBackend(Backend* inner, FaultSpec spec, std::shared_ptr<const Clock> clock, std::string label)
    : inner_(inner),
      spec_(spec),
      clock_(std::move(clock)),
      name_("faulty(" + (label.empty() ? std::string(inner->name()) : label) + ")") {}

FaultyBackend::~FaultyBackend() { shutdown(); }

void FaultyBackend::arm() {
  const Clock* c = clock_ ? clock_.get() : steady_clock_source();
  armed_at_ns_.store(c->now().time_since_epoch().count(), std::memory_order_relaxed);
  armed_.store(true, std::memory_order_release);
}

void FaultyBackend::shutdown() {
  std::lock_guard<std::mutex> lock(mu_);
  shutdown_ = true;
  cv_.notify_all();
}

bool FaultyBackend::recovered() const {
  if (spec_.recover_after_s < 0 || !armed_.load(std::memory_order_acquire)) return false;
  const Clock* c = clock_ ? clock_.get() : steady_clock_source();
  const int64_t now = c->now().time_since_epoch().count();
  const double elapsed_s =
      std::chrono::duration<double>(std::chrono::steady_clock::duration(now - armed_at_ns_.load())).count();
  return elapsed_s >= spec_.recover_after_s;
}

FaultyBackend::Counts FaultyBackend::counts() const {
  return {calls_.load(), errors_.load(), hangs_.load(), nans_.load()};
}

double FaultyBackend::draw(uint64_t n, uint64_t salt) const {
  using engine_internal::kSplitMixGamma;
  using engine_internal::mix64;
  const uint64_t r = mix64(mix64(spec_.seed ^ (n * kSplitMixGamma)) ^ salt);
  return static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0);
}

void FaultyBackend::sleep_ms(double ms) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, std::chrono::duration<double, std::milli>(ms), [&] { return shutdown_; });
}

Status FaultyBackend::run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
                          const RunControl& control) {
  if (!armed_.load(std::memory_order_acquire) || recovered()) return inner_->run(plan, inputs, outputs, control);
  const uint64_t n = calls_.fetch_add(1) + 1;  // calls are numbered from 1
  if (spec_.latency_ms > 0) sleep_ms(spec_.latency_ms);
  if (spec_.fail_after >= 0 && static_cast<int64_t>(n) > spec_.fail_after) {
    errors_++;
    return Status(StatusCode::device_error, "[" + name_ + "] injected failure: call " + std::to_string(n) +
                                                " is past fail_after=" + std::to_string(spec_.fail_after));
  }
  if (spec_.error_rate > 0 && draw(n, 1) < spec_.error_rate) {
    errors_++;
    return Status(StatusCode::device_error, "[" + name_ + "] injected error on call " + std::to_string(n));
  }
  if (spec_.hang_rate > 0 && draw(n, 2) < spec_.hang_rate) {
    hangs_++;
    sleep_ms(spec_.hang_ms);
  }
  TANDEM_RETURN_IF_ERROR(inner_->run(plan, inputs, outputs, control));
  if (spec_.offset != 0) {
    for (Value& v : *outputs) {
      if (v.is_tensor()) v.tensor = shifted(v.tensor, spec_.offset);
      for (Tensor& t : v.sequence) t = shifted(t, spec_.offset);
    }
  }
  if (spec_.nan_rate > 0 && draw(n, 3) < spec_.nan_rate) {
    nans_++;
    for (Value& v : *outputs) {
      if (v.is_tensor()) v.tensor = nan_like(v.tensor);
      for (Tensor& t : v.sequence) t = nan_like(t);
    }
  }
  return Status::ok();
}

}  // namespace tandem
