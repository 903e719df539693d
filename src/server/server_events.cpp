// server_events.cpp: see server_events.h.
#include "server_events.h"

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

std::string ready_event_detail(const PreparedModel& model, double seconds) {
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
  for (const std::string& note : placement.notes) detail += "; " + note;
  return detail;
}

}  // namespace tandem::server
