// server_events.h: what the server tells its operator (ServerEvent, server.h) and how the
// events reach ServerOptions::on_event.
//
// The server notes events while it holds its own lock, where it cannot call out; it hands them
// over later, from a thread that holds none. EventQueue keeps them in order in between and lets
// only one thread hand them over at a time, so the callback sees them one by one, in the order
// they were pushed, and may call back into the server (which pushes and publishes again: the
// thread already publishing takes those over too).
//
// Thread-safety: every method may be called from any thread. push() takes only the queue's own
// lock, so it may be called with other locks held; publish() calls the sink with no lock of
// the queue's held.
#pragma once

#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "server.h"
#include "tandem/telemetry.h"

namespace tandem {
class PreparedModel;
}

namespace tandem::server {

class EventQueue {
 public:
  // `sink` empty: push() keeps nothing and publish() does nothing.
  explicit EventQueue(std::function<void(const ServerEvent&)> sink);

  bool enabled() const { return static_cast<bool>(sink_); }
  void push(ServerEvent event);
  // Hands every pending event to the sink, including those pushed meanwhile, unless another
  // thread is doing so now (then it takes these over). Exceptions from the sink are dropped.
  void publish();

 private:
  std::function<void(const ServerEvent&)> sink_;
  std::mutex mu_;
  std::vector<ServerEvent> pending_;
  bool publishing_ = false;
};

// What one route's breaker was when last looked at.
struct BreakerSeen {
  BreakerState state = BreakerState::closed;
  uint64_t trips = 0;
};

// Appends to `out` the events of `version` of `model` whose routes' breakers changed since
// `seen` (one entry per route of `telemetry`; resized and updated). A breaker that opened and
// closed again between two looks is reported CLOSED with the trips in between and the fault.
void breaker_events(const std::string& model, const std::string& version, const ModelTelemetry& telemetry,
                    std::vector<BreakerSeen>* seen, std::vector<ServerEvent>* out);

// The detail of a READY event for a version that took `seconds` to load: the load time, the
// routes, where the first route's nodes run, the routes left out at prepare time and why, and
// `batching` (Scheduler::Stats::batching) when not empty.
std::string ready_event_detail(const PreparedModel& model, double seconds, const std::string& batching);

}  // namespace tandem::server
