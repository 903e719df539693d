// server_events.cpp: see server_events.h.
#include "server_events.h"

#include <algorithm>
#include <cstdio>
#include <utility>

#include "tandem/engine.h"

namespace tandem::server {

EventQueue::EventQueue(std::function<void(const ServerEvent&)> sink) : sink_(std::move(sink)) {}

void EventQueue::push(ServerEvent event) {
  if (!sink_) return;
  std::lock_guard<std::mutex> lock(mu_);
  pending_.push_back(std::move(event));
}

void EventQueue::publish() {
  if (!sink_) return;
  std::unique_lock<std::mutex> lock(mu_);
  if (publishing_) return;
  publishing_ = true;
  while (!pending_.empty()) {
    std::vector<ServerEvent> taken;
    taken.swap(pending_);
    lock.unlock();
    for (const ServerEvent& e : taken) {
      try {
        sink_(e);
      } catch (...) {  // the caller's callback: its failure must not stop the server's threads
      }
    }
    lock.lock();
  }
  publishing_ = false;
}

void breaker_events(const std::string& model, const std::string& version, const ModelTelemetry& telemetry,
                    std::vector<BreakerSeen>* seen, std::vector<ServerEvent>* out) {
  seen->resize(telemetry.backends.size());
  for (size_t i = 0; i < telemetry.backends.size(); ++i) {
    const BackendTelemetry& b = telemetry.backends[i];
    BreakerSeen& before = (*seen)[i];
    const uint64_t trips = b.breaker.trips - std::min(b.breaker.trips, before.trips);
    if (b.breaker.state == before.state && trips == 0) continue;
    ServerEvent e{.model = model, .version = version, .route = b.backend};
    const std::string fault = b.last_fault.empty() ? "" : "last fault: " + b.last_fault;
    // One trip that the OPEN state itself tells needs no count; others (it closed again, or
    // opened again while open when last seen, or more than once) do.
    const bool plain_trip = trips == 1 && before.state != BreakerState::open && b.breaker.state == BreakerState::open;
    const std::string tripped =
        trips > 0 && !plain_trip
            ? "tripped " + std::to_string(trips) + (trips == 1 ? " time" : " times") + " since the last event"
            : "";
    auto join = [](const std::string& a, const std::string& b) { return a.empty() ? b : b.empty() ? a : a + "; " + b; };
    switch (b.breaker.state) {
      case BreakerState::open: {
        char cooldown[48];
        std::snprintf(cooldown, sizeof cooldown, "cooldown %.0f ms", b.breaker.cooldown_ms);
        e.state = "OPEN";
        e.detail = join(join(fault, cooldown), tripped);
        break;
      }
      case BreakerState::half_open:
        e.state = "HALF_OPEN";
        e.detail = join("cooldown over: probing", tripped);
        break;
      case BreakerState::closed:
        e.state = "CLOSED";
        e.detail = trips ? join(tripped, fault) : "its probes passed";
        break;
    }
    out->push_back(std::move(e));
    before = {b.breaker.state, b.breaker.trips};
  }
}

std::string ready_event_detail(const PreparedModel& model, double seconds, const std::string& batching) {
  char took[32];
  std::snprintf(took, sizeof took, "%.2f", seconds);
  std::string detail = std::string("loaded in ") + took + " s; routes ";
  const Capabilities caps = model.capabilities();
  for (size_t i = 0; i < caps.routes.size(); ++i) detail += (i ? ", " : "") + caps.routes[i];
  const PlacementInfo& placement = model.placement();
  if (!placement.routes.empty()) {
    detail += "; the first route's nodes:";
    for (const auto& [backend, count] : placement.routes.front().nodes_per_backend)
      detail += " " + backend + " " + std::to_string(count);
  }
  const SlaEstimate& sla = model.sla_estimate();
  // Dims other than the first left free: warmed at 1, which says little of real requests.
  bool free_dims = false;
  for (const IoInfo& in : model.io_schema().inputs)
    for (size_t i = 1; i < in.dims.size(); ++i) free_dims = free_dims || in.dims[i].value < 0;
  const char* const hint = " (free dims are warmed at 1; input_shapes in config.json sets them)";
  if (sla.measured) {
    char estimate[64];
    std::snprintf(estimate, sizeof estimate, "; warm-up estimate %.3f ms", sla.estimate_ms);
    detail += estimate;
    if (free_dims) {
      // The shapes the estimate holds at; requests of other shapes are judged by latencies
      // learnt online (docs/engine.md).
      std::string at;
      for (const auto& [name, dims] : sla.warmup_shapes) {
        at += (at.empty() ? " at " : ", ") + name + "=";
        for (size_t i = 0; i < dims.size(); ++i) at += (i ? "x" : "") + std::to_string(dims[i]);
      }
      detail += at + hint;
    }
  } else if (!sla.note.empty()) {
    // Requests are judged by latencies learnt online then (docs/engine.md).
    detail += "; no warm-up estimate: " + sla.note;
    if (free_dims) detail += hint;
  }
  for (const std::string& note : placement.notes) detail += "; " + note;
  if (!batching.empty()) detail += "; dynamic batching " + batching;
  return detail;
}

}  // namespace tandem::server
