#include "engine/shape_latency.h"

#include <algorithm>
#include <cmath>

#include "engine/splitmix.h"

namespace tandem::engine_internal {

namespace {

uint64_t mix(uint64_t h, uint64_t v) { return mix64(h ^ mix64(v)); }

uint64_t mix_dims(uint64_t h, const Shape& dims) {
  h = mix(h, dims.size());
  for (int64_t d : dims) h = mix(h, static_cast<uint64_t>(d));
  return h;
}

}  // namespace

ShapeKey ShapeKey::of(const std::vector<Value>& inputs) {
  ShapeKey k;
  uint64_t h = inputs.size();
  double elements = 0;
  for (const Value& v : inputs) {
    h = mix(h, static_cast<uint64_t>(v.kind));
    if (v.is_tensor()) {
      h = mix_dims(h, v.tensor.shape());
      elements += static_cast<double>(v.tensor.numel());
    } else if (v.is_sequence()) {
      h = mix(h, v.sequence.size());
      for (const Tensor& t : v.sequence) {
        h = mix_dims(h, t.shape());
        elements += static_cast<double>(t.numel());
      }
    }
  }
  k.hash = h;
  k.elements = std::max(1.0, elements);
  return k;
}

ShapeLatency::ShapeLatency(size_t capacity) : capacity_(std::max<size_t>(2, capacity)) {}

ShapeLatency::Entry* ShapeLatency::find(const ShapeKey& key) const {
  for (const auto& e : entries_)
    if (e->key == key) return e.get();
  return nullptr;
}

ShapeLatency::Entry& ShapeLatency::insert(const ShapeKey& key) {
  if (Entry* e = find(key)) return *e;
  if (entries_.size() >= capacity_) {
    // The least recently used shape goes, but never the warm-up's (its figures are measured
    // with care, and a model with fixed shapes has no other).
    auto victim = entries_.end();
    for (auto it = entries_.begin(); it != entries_.end(); ++it)
      if ((*it)->warm_estimate_ms <= 0 && (victim == entries_.end() || (*it)->last_use < (*victim)->last_use))
        victim = it;
    if (victim != entries_.end()) entries_.erase(victim);
  }
  entries_.push_back(std::make_unique<Entry>());
  entries_.back()->key = key;
  return *entries_.back();
}

void ShapeLatency::set_warm(const ShapeKey& key, double estimate_ms, double typical_ms) {
  Entry& e = insert(key);
  e.warm_estimate_ms = estimate_ms;
  e.warm_typical_ms = typical_ms;
  e.view_count = UINT64_MAX;  // remade at the next view
  e.last_use = ++uses_;
}

void ShapeLatency::record(const ShapeKey& key, double ms) {
  Entry& e = insert(key);
  if (e.latency.count() == 0) e.first_answer_ms = ms;
  e.latency.record_seconds(ms / 1e3);
  e.last_use = ++uses_;
}

ShapeLatencyView ShapeLatency::own_view(const Entry& e, double hedge_quantile) const {
  const uint64_t n = e.latency.count();
  const bool fresh = e.view_quantile == hedge_quantile && e.view_count != UINT64_MAX &&
                     (n == e.view_count || (n >= 256 && n - e.view_count < 16));
  if (fresh) return e.view;
  ShapeLatencyView v;
  if (n >= kMinAnswers) {
    v.typical_ms = e.latency.quantile_ms(0.5);
    v.estimate_ms = std::max({e.warm_estimate_ms, e.first_answer_ms, e.latency.quantile_ms(0.99)});
    v.hedge_after_ms = e.latency.quantile_ms(hedge_quantile);
  } else if (e.warm_estimate_ms > 0) {
    v.typical_ms = e.warm_typical_ms;
    v.estimate_ms = e.warm_estimate_ms;
    v.hedge_after_ms = e.warm_estimate_ms;
  } else if (n > 0) {
    v.typical_ms = e.latency.quantile_ms(0.5);
    v.estimate_ms = e.latency.max_ns() / 1e6;
    v.hedge_after_ms = v.estimate_ms;
  }
  v.measured = v.estimate_ms > 0;
  e.view = v;
  e.view_count = n;
  e.view_quantile = hedge_quantile;
  return v;
}

ShapeLatencyView ShapeLatency::view(const ShapeKey& key, double hedge_quantile) const {
  if (const Entry* e = find(key)) {
    ShapeLatencyView v = own_view(*e, hedge_quantile);
    if (v.measured) return v;
  }
  // Not measured at this shape: scale the nearest measured shape's figures.
  const Entry* nearest = nullptr;
  double best = INFINITY;
  ShapeLatencyView base;
  for (const auto& e : entries_) {
    const ShapeLatencyView v = own_view(*e, hedge_quantile);
    const double distance = std::fabs(std::log(key.elements / e->key.elements));
    if (v.measured && distance < best) {
      best = distance;
      nearest = e.get();
      base = v;
    }
  }
  ShapeLatencyView v;
  if (!nearest) return v;
  const double ratio = key.elements / nearest->key.elements;
  const double scale = ratio > 1 ? std::pow(ratio, growth_exponent(*nearest, base.typical_ms, hedge_quantile)) : ratio;
  v.typical_ms = base.typical_ms * scale;
  v.estimate_ms = base.estimate_ms * scale;
  return v;
}

bool ShapeLatency::settled(const Entry& e) { return e.warm_estimate_ms > 0 || e.latency.count() >= kGrowthAnswers; }

double ShapeLatency::growth_exponent(const Entry& from, double from_typical_ms, double hedge_quantile) const {
  if (!settled(from)) return 1;
  // The settled shape nearest to `from` among those at least kGrowthSpan apart in elements:
  // nearer ones are mostly noise, farther ones describe a range the request may not be in.
  const Entry* other = nullptr;
  double best = INFINITY, other_typical_ms = 0;
  for (const auto& e : entries_) {
    const double distance = std::fabs(std::log(e->key.elements / from.key.elements));
    if (distance < std::log(kGrowthSpan) || distance >= best || !settled(*e)) continue;
    const ShapeLatencyView v = own_view(*e, hedge_quantile);
    if (!v.measured || v.typical_ms <= 0) continue;
    best = distance;
    other = e.get();
    other_typical_ms = v.typical_ms;
  }
  if (!other || from_typical_ms <= 0) return 1;
  const double fitted =
      std::log(from_typical_ms / other_typical_ms) / std::log(from.key.elements / other->key.elements);
  return std::clamp(fitted, 1.0, kMaxGrowthExponent);
}

}  // namespace tandem::engine_internal
