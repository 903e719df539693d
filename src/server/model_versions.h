// model_versions.h: the server's own record of each model and its versions (server.cpp's
// state, guarded by the server's one mutex unless a field says otherwise). Not a public
// interface: only server.cpp and the server's tests include it.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model_config.h"
#include "scheduler.h"
#include "server.h"
#include "server_events.h"
#include "tandem/engine.h"

namespace tandem::server::server_internal {

enum class VersionState { loading, ready, failed, unloading };

// Answers so far and the fallback answers since the last one from the first route, and the
// model's name (set before any request, then read-only) for the server's metrics.
struct AnswerCounts {
  std::atomic<uint64_t> total{0};
  std::atomic<uint64_t> trailing_fallbacks{0};
  std::string model;
};

// A count that events sum up now and then (ERRORS, REFUSED): its value at the last event, and
// when that was (the epoch: never).
struct SummedCount {
  uint64_t reported = 0;
  std::chrono::steady_clock::time_point at{};
};

struct Version {
  int number = 0;
  VersionState state = VersionState::loading;
  std::string reason;      // why it failed
  bool cancelled = false;  // unloaded (or replaced) while loading: dropped when the load ends
  ModelConfig config;
  // What it was loaded from: model.onnx's stamp (ModelOnDisk::stamps) and config.json's text.
  // A scan that finds either changed loads the version again.
  std::string stamp, config_text;
  // Ready, but loading the changed files again failed (this one still serves): why.
  std::string reload_reason;
  bool replacement = false;  // loaded beside the ready copy of itself (Model::replacing)
  double load_seconds = 0;   // how long prepare() and the scheduler took
  // What the events last said of its routes' breakers and (strict mode) of its availability.
  std::vector<BreakerSeen> breakers_seen;
  bool available_reported = true;
  // The failed requests (clients gone left out) and refusals as of the last ERRORS and REFUSED
  // events, and the answers as of the last ERRORS event.
  SummedCount errors_seen, refusals_seen;
  uint64_t answers_reported = 0;
  bool batching_stop_reported = false;  // the BATCHING_OFF event was published
  std::shared_ptr<PreparedModel> model;
  std::shared_ptr<Scheduler> scheduler;
  // For `degraded`; shared with completion callbacks (which must not own the Version: the
  // last owner of a scheduler must not be one of its own threads).
  std::shared_ptr<AnswerCounts> answers = std::make_shared<AnswerCounts>();
  // Strict mode: when the server first saw the first route's breaker open for its latest trip.
  // The engine moves an open breaker to half-open only when a request arrives, so the server
  // counts the cooldown itself (guarded by the server's mutex).
  mutable uint64_t open_trip_seen = 0;
  mutable std::chrono::steady_clock::time_point open_seen_at;
};
using VersionPtr = std::shared_ptr<Version>;

struct Model {
  std::string name;
  ModelConfig config;  // the latest config.json read (applies to versions loaded from now on)
  std::string error;   // the model as a whole cannot load (invalid config.json, no versions)
  bool unloaded = false;
  std::string unloaded_reason;
  std::map<int, VersionPtr> versions;
  std::map<int, std::filesystem::path> on_disk;  // as of the latest scan
  std::map<int, std::string> stamps;             // as of the latest scan
  std::string config_text;                       // as of the latest scan
  // Ready versions whose files changed, loading again; the one in `versions` serves until its
  // replacement is ready, then drains.
  std::map<int, VersionPtr> replacing;
};

// Recent answers that count toward `degraded`.
constexpr uint64_t kDegradedWindow = 8;

inline std::string version_name(int n) { return std::to_string(n); }

// Each route of a version's telemetry as its metadata and stats show it.
std::vector<RouteStats> route_stats(const ModelTelemetry& telemetry);

// Appends to `out` an ERRORS event for the requests of `v` (of model `name`) that failed since
// the last one (clients that went away left out) and a REFUSED event for those refused at
// admission, each at most once per kSummaryEvery, and BATCHING_OFF once when the scheduler
// stopped merging requests; `s` is its scheduler's stats at `now`.
inline constexpr std::chrono::seconds kSummaryEvery{10};
void sum_up_requests(const std::string& name, Version& v, const Scheduler::Stats& s,
                     std::chrono::steady_clock::time_point now, std::vector<ServerEvent>* out);

// Strict mode: whether the first route's breaker is open and its cooldown has not passed
// since the server first saw this trip (updates the version's open_trip_seen/open_seen_at).
bool first_route_closed_to_requests(const Version& v);

}  // namespace tandem::server::server_internal
