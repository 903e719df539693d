// server.cpp: see server.h. The repository on disk is read by model_repository.h, a version is
// prepared by version_loader.h, and the server's own metrics live in server_metrics.h.
//
// State: one mutex guards the models and their versions. Loading (Engine::prepare), draining a
// retired scheduler and polling run on background threads the Impl owns and joins.
#include "server.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "model_io.h"
#include "model_repository.h"
#include "model_versions.h"
#include "server_events.h"
#include "server_metrics.h"
#include "tandem/sysinfo.h"
#include "tandem/telemetry.h"
#include "version_loader.h"

namespace tandem::server {

using namespace server_internal;

struct Server::Impl {
  explicit Impl(ServerOptions o) : options(std::move(o)) {}
  ServerOptions options;
  ServerMetrics metrics;  // declared first: completions may record into it until the end

  mutable std::mutex mu;
  std::condition_variable changed;  // a version's state changed, or shutdown began
  std::map<std::string, Model> models;
  bool shutting_down = false;
  EventQueue events{options.on_event};
  int reported_ready = -1;  // the server's readiness as last reported (-1: not yet; guarded by mu)

  EngineCache engines{options.engine};

  std::mutex threads_mu;
  struct Background {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::vector<Background> background;

  std::mutex shutdown_mu;
  bool shutdown_done = false;
  bool shutdown_result = true;
  std::thread poller;
  std::thread watcher;  // with options.on_event: watch_loop()

  // --- events -------------------------------------------------------------------------------
  // Called with `mu` held.
  void note(const std::string& model, const std::string& version, const std::string& state, std::string detail = "") {
    if (!events.enabled()) return;
    const std::string named = "model '" + model + "': ";  // the event names the model already
    if (detail.compare(0, named.size(), named) == 0) detail.erase(0, named.size());
    events.push({.model = model, .version = version, .state = state, .detail = std::move(detail)});
  }
  // Called with `mu` held: a server event when readiness changed (NOT_READY only once nothing
  // loads).
  void note_server_readiness() {
    if (shutting_down) return;
    std::string why;
    const bool now = ready_locked(&why);
    if (!now && why.empty()) return;  // still loading
    if (reported_ready == static_cast<int>(now)) return;
    reported_ready = now;
    note("", "", now ? "READY" : "NOT_READY", why);
  }
  // Called without `mu`: reports a change of readiness, then hands the events over.
  void publish_events() {
    if (!events.enabled()) return;
    {
      std::lock_guard<std::mutex> lock(mu);
      note_server_readiness();
    }
    events.publish();
  }

  // --- background threads -------------------------------------------------------------------
  void spawn(std::function<void()> work) {
    std::lock_guard<std::mutex> lock(threads_mu);
    for (auto it = background.begin(); it != background.end();) {
      if (it->finished->load()) {
        it->thread.join();
        it = background.erase(it);
      } else {
        ++it;
      }
    }
    auto finished = std::make_shared<std::atomic<bool>>(false);
    background.push_back({std::thread([this, work = std::move(work), finished] {
                            name_this_thread("tandem-load");
                            work();
                            publish_events();
                            finished->store(true);
                          }),
                          finished});
  }
  void join_background() {
    for (;;) {
      std::vector<Background> taken;
      {
        std::lock_guard<std::mutex> lock(threads_mu);
        taken.swap(background);
      }
      if (taken.empty()) return;
      for (Background& b : taken) b.thread.join();
    }
  }

  // --- loading ------------------------------------------------------------------------------
  // Called with `mu` held: makes `model` match what is on disk. `retry_failed`: versions that
  // failed before are loaded again (an explicit load), else left failed (polling) unless their
  // files changed. A ready version whose model.onnx or config.json changed loads again beside
  // the one serving, which keeps serving until the new one is ready (or, if it fails, on).
  void sync_model(const ModelOnDisk& disk, bool retry_failed) {
    Model& model = models[disk.name];
    model.name = disk.name;
    const std::string error_before = std::move(model.error);
    model.error.clear();
    if (!disk.config_error.empty()) {
      model.error = disk.config_error;
      if (model.error != error_before) note(model.name, "", "FAILED", model.error);
      return;
    }
    model.config = disk.config;
    model.config_text = disk.config_text;
    model.on_disk = disk.versions;
    model.stamps = disk.stamps;
    if (disk.versions.empty()) {
      model.error = "model '" + disk.name + "': no versions (expected " + disk.name + "/<version>/model.onnx)";
      std::vector<std::string> seen = disk.not_versions;
      std::sort(seen.begin(), seen.end());
      for (size_t i = 0; i < seen.size(); ++i) model.error += (i ? ", " : "; ignored: ") + seen[i];
      if (model.error != error_before) note(model.name, "", "FAILED", model.error);
    }
    std::map<int, std::filesystem::path> wanted = disk.versions;
    if (model.config.version_policy == "latest" && !wanted.empty()) wanted = {*wanted.rbegin()};
    // Versions gone from disk stop serving; under "latest" older ones go once a newer is ready.
    for (auto it = model.versions.begin(); it != model.versions.end();) {
      VersionPtr v = it->second;
      ++it;
      if (!disk.versions.count(v->number)) retire(model, v, "its folder is gone");
    }
    for (auto it = model.replacing.begin(); it != model.replacing.end();) {
      if (disk.versions.count(it->first)) {
        ++it;
        continue;
      }
      it->second->cancelled = true;
      it = model.replacing.erase(it);
    }
    for (const auto& [number, path] : wanted) {
      auto it = model.versions.find(number);
      if (it != model.versions.end()) {
        Version& v = *it->second;
        const bool files_changed = v.stamp != model.stamps[number] || v.config_text != model.config_text;
        if (v.state == VersionState::loading) {
          v.cancelled = false;  // wanted again before its load ended (a change is seen once it ends)
          continue;
        }
        if (v.state == VersionState::ready) {
          if (files_changed && !model.replacing.count(number))
            start_load(model, number, path, "its files changed (the version loaded before serves meanwhile)", true);
          continue;
        }
        if (v.state == VersionState::failed && !retry_failed && !files_changed) continue;
        const bool failed = v.state == VersionState::failed;
        model.versions.erase(it);  // failed (retried), or draining: a fresh load takes the slot
        if (failed) {
          start_load(model, number, path,
                     files_changed ? "it failed before; its files changed" : "it failed before; loaded again");
          continue;
        }
      }
      start_load(model, number, path);
    }
  }

  // `replacement`: the version is ready and keeps serving while this load runs (Model::replacing).
  void start_load(Model& model, int number, const std::filesystem::path& path, const std::string& why = "",
                  bool replacement = false) {
    note(model.name, version_name(number), "LOADING", why);
    auto v = std::make_shared<Version>();
    v->number = number;
    v->config = model.config;
    v->config_text = model.config_text;
    v->stamp = model.stamps[number];
    v->replacement = replacement;
    v->answers->model = model.name;
    (replacement ? model.replacing : model.versions)[number] = v;
    spawn([this, name = model.name, v, path] { load_version(name, v, path); });
  }

  // Called with `mu` held when replacement `v` of a ready version finished loading (`prepared`
  // null: it failed with `reason`): it takes the slot and the version it replaces drains, or
  // the one serving keeps serving with the failure as its reload_reason.
  void finish_replacement(Model& model, const VersionPtr& v, std::shared_ptr<PreparedModel> prepared,
                          std::shared_ptr<Scheduler> scheduler, const std::string& reason) {
    auto it = model.versions.find(v->number);
    if (it == model.versions.end() || it->second->state != VersionState::ready) return;  // nothing to replace now
    const VersionPtr old = it->second;
    if (!prepared) {
      old->reload_reason = "the changed files did not load (the version loaded before still serves): " + reason;
      note(model.name, version_name(v->number), "FAILED", old->reload_reason);
      old->stamp = v->stamp;  // tried: loaded again only when they change again
      old->config_text = v->config_text;
      return;
    }
    v->model = std::move(prepared);
    v->scheduler = std::move(scheduler);
    v->state = VersionState::ready;
    it->second = v;
    note(model.name, version_name(v->number), "READY",
         ready_event_detail(*v->model, v->load_seconds, v->scheduler->stats().batching) + " (its changed files)");
    retire(model, old, "");  // drains quietly; its slot is v's now, which the drain leaves alone
    // A config.json that turned "all" into "latest" retires the older versions now.
    if (v->config.version_policy == "latest") retire_older_than_newest_ready(model);
  }

  // Called with `mu` held, under "latest": the versions older than the newest ready one drain.
  void retire_older_than_newest_ready(Model& model) {
    int newest_ready = 0;
    for (const auto& [n, other] : model.versions)
      if (other->state == VersionState::ready) newest_ready = std::max(newest_ready, n);
    std::vector<VersionPtr> older;
    for (const auto& [n, other] : model.versions)
      if (n < newest_ready) older.push_back(other);
    for (const VersionPtr& o : older)
      retire(model, o, "version " + version_name(newest_ready) + " is ready (version_policy latest)");
  }

  void load_version(const std::string& name, const VersionPtr& v, const std::filesystem::path& path) {
    const LoadDefaults defaults{.instances = options.default_instances,
                                .threads = options.default_threads,
                                .fault_injection = options.fault_injection};
    LoadedVersion loaded = server::load_version(engines, defaults, name, version_name(v->number), v->config, path);
    std::shared_ptr<PreparedModel> prepared = std::move(loaded.model);
    std::shared_ptr<Scheduler> scheduler = std::move(loaded.scheduler);
    const std::string& reason = loaded.reason;
    v->load_seconds = loaded.seconds;
    std::lock_guard<std::mutex> lock(mu);
    auto owner = models.find(name);
    bool replacement = false;
    if (owner != models.end()) {
      auto r = owner->second.replacing.find(v->number);
      replacement = r != owner->second.replacing.end() && r->second == v;
      if (replacement) owner->second.replacing.erase(r);
    }
    if (replacement && !v->cancelled && !shutting_down) {
      finish_replacement(owner->second, v, std::move(prepared), std::move(scheduler), reason);
      changed.notify_all();
      return;
    }
    if (v->cancelled || shutting_down) {
      auto it = models.find(name);
      if (it != models.end()) {
        auto vit = it->second.versions.find(v->number);
        if (vit != it->second.versions.end() && vit->second == v) it->second.versions.erase(vit);
      }
      if (v->cancelled && !v->replacement && !shutting_down) note(name, version_name(v->number), "UNLOADED");
      changed.notify_all();
      return;  // the scheduler (nothing admitted) and the model are dropped here
    }
    if (!prepared) {
      v->state = VersionState::failed;
      v->reason = reason;
      note(name, version_name(v->number), "FAILED", reason);
      if (v->config.version_policy == "latest") load_older_if_none_serves(models[name], v->number);
    } else {
      v->model = std::move(prepared);
      v->scheduler = std::move(scheduler);
      v->state = VersionState::ready;
      note(name, version_name(v->number), "READY",
           ready_event_detail(*v->model, v->load_seconds, v->scheduler->stats().batching));
      Model& model = models[name];
      if (v->config.version_policy == "latest") retire_older_than_newest_ready(model);
    }
    changed.notify_all();
  }

  // Called with `mu` held, under "latest", after version `failed` failed: when nothing else
  // serves or loads, the newest older version on disk that was not tried yet loads instead.
  void load_older_if_none_serves(Model& model, int failed) {
    for (const auto& [n, v] : model.versions)
      if (v->state == VersionState::ready || (v->state == VersionState::loading && !v->cancelled)) return;
    for (auto it = model.on_disk.rbegin(); it != model.on_disk.rend(); ++it)
      if (it->first < failed && !model.versions.count(it->first))
        return start_load(model, it->first, it->second,
                          "version " + version_name(failed) + " failed and no other version serves");
  }

  // Called with `mu` held: `v` stops serving. A ready version drains in the background and
  // is removed when done; a loading one is dropped when its load ends; a failed one goes now.
  // `why` goes to the events (empty: none, for a copy its reload replaced).
  void retire(Model& model, const VersionPtr& v, const std::string& why) {
    const std::string version = version_name(v->number);
    switch (v->state) {
      case VersionState::loading:
        if (!v->cancelled) note(model.name, version, "UNLOADING", why);
        v->cancelled = true;
        break;
      case VersionState::failed:
        note(model.name, version, "UNLOADED", why);
        model.versions.erase(v->number);
        break;
      case VersionState::unloading: break;
      case VersionState::ready: {
        v->state = VersionState::unloading;
        if (!why.empty()) note(model.name, version, "UNLOADING", why);
        spawn([this, name = model.name, v, quiet = why.empty()] {
          v->scheduler->drain(options.shutdown_grace);
          std::lock_guard<std::mutex> lock(mu);
          if (!quiet && !shutting_down) note(name, version_name(v->number), "UNLOADED");
          auto it = models.find(name);
          if (it == models.end()) return;
          auto vit = it->second.versions.find(v->number);
          if (vit != it->second.versions.end() && vit->second == v) it->second.versions.erase(vit);
          changed.notify_all();
        });
        break;
      }
    }
  }

  // Called without `mu`: one look at the repository (Server::rescan()).
  void scan_once() {
    const auto disk = scan_repository(options.model_repository);
    {
      std::lock_guard<std::mutex> lock(mu);
      if (shutting_down) return;
      for (const auto& [name, m] : disk) {
        auto it = models.find(name);
        if (it == models.end() && options.load_at_start)
          list_not_loaded_locked(name);
        else if (it == models.end() || !it->second.unloaded)
          sync_model(m, false);
      }
      for (auto it = models.begin(); it != models.end();) {
        Model& model = it->second;
        const bool on_disk = disk.count(it->first) > 0;
        if (!on_disk && !model.unloaded) unload_locked(model, "removed from the repository");
        // Gone from the folder and done draining: no longer listed in the index.
        const bool forgotten = !on_disk && model.unloaded && model.versions.empty() && model.replacing.empty();
        it = forgotten ? models.erase(it) : std::next(it);
      }
    }
    publish_events();
  }

  void poll_loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (!changed.wait_for(lock, options.poll_interval, [this] { return shutting_down; })) {
      lock.unlock();
      scan_once();
      lock.lock();
    }
  }

  // Every watch_interval until shutdown: events for the breakers of ready versions that
  // changed, and for strict versions that turned unavailable or available again.
  void watch_loop() {
    std::unique_lock<std::mutex> lock(mu);
    while (!changed.wait_for(lock, options.watch_interval, [this] { return shutting_down; })) {
      std::vector<std::pair<std::string, VersionPtr>> watched;
      for (const auto& [name, model] : models)
        for (const auto& [n, v] : model.versions)
          if (v->state == VersionState::ready) watched.push_back({name, v});
      lock.unlock();
      std::vector<ModelTelemetry> telemetry;  // taken without the lock requests need
      std::vector<Scheduler::Stats> stats;
      for (const auto& w : watched) {
        telemetry.push_back(w.second->model->telemetry());
        stats.push_back(w.second->scheduler->stats());
      }
      lock.lock();
      if (shutting_down) break;
      for (size_t i = 0; i < watched.size(); ++i) {
        const std::string& name = watched[i].first;
        Version& v = *watched[i].second;
        std::vector<ServerEvent> found;
        breaker_events(name, version_name(v.number), telemetry[i], &v.breakers_seen, &found);
        sum_up_requests(name, v, stats[i], std::chrono::steady_clock::now(), &found);
        for (ServerEvent& e : found) events.push(std::move(e));
        if (v.state != VersionState::ready) continue;
        const bool available = version_ready(v);
        if (available == v.available_reported) continue;
        v.available_reported = available;
        std::string reason;
        state_name(v, &reason);
        note(name, version_name(v.number), available ? "READY" : "UNAVAILABLE",
             available ? "its first route may answer again" : reason);
      }
      lock.unlock();
      publish_events();
      lock.lock();
    }
  }

  // Called with `mu` held: lists `name` as not loaded (explicit model control).
  void list_not_loaded_locked(const std::string& name) {
    Model& model = models[name];
    model.name = name;
    model.unloaded = true;
    model.unloaded_reason = "not loaded (explicit model control: load it through the repository API)";
  }

  void unload_locked(Model& model, const std::string& why) {
    model.unloaded = true;
    model.unloaded_reason = why;
    std::vector<VersionPtr> all;
    for (const auto& [n, v] : model.versions) all.push_back(v);
    for (const VersionPtr& v : all) retire(model, v, why);
    for (const auto& [n, v] : model.replacing) v->cancelled = true;
    model.replacing.clear();
  }

  // --- readiness ----------------------------------------------------------------------------
  bool version_ready(const Version& v) const {
    if (v.state != VersionState::ready || shutting_down) return false;
    return !(v.config.prepare.fallback == FallbackPolicy::strict &&
             first_route_closed_to_requests(v));
  }
  static VersionPtr serving_version(const Model& model) {
    if (model.unloaded) return nullptr;
    for (auto it = model.versions.rbegin(); it != model.versions.rend(); ++it)
      if (it->second->state == VersionState::ready) return it->second;
    return nullptr;
  }
  bool model_ready(const Model& model) const {
    VersionPtr v = serving_version(model);
    return v && version_ready(*v);
  }
  // Called with `mu` held: Server::ready(), and why not (empty while models are loading).
  bool ready_locked(std::string* why) const {
    if (shutting_down) {
      *why = "the server is shutting down";
      return false;
    }
    bool any_ready = false, any_loading = false;
    std::string required_not_ready;
    for (const auto& [name, model] : models) {
      if (model.unloaded) continue;
      if (loading(model)) {
        any_loading = true;
        continue;
      }
      const bool ready = model_ready(model);
      if (!ready && model.config.required && required_not_ready.empty()) required_not_ready = name;
      any_ready = any_ready || ready;
    }
    if (any_loading) return false;
    if (!required_not_ready.empty())
      *why = "required model '" + required_not_ready + "' is not ready";
    else if (!any_ready)
      *why = "no model is ready";
    return why->empty();
  }
  static bool loading(const Model& model) {
    for (const auto& [n, v] : model.versions)
      if (v->state == VersionState::loading && !v->cancelled) return true;
    return false;
  }
  std::string state_name(const Version& v, std::string* reason) const {
    switch (v.state) {
      case VersionState::loading: return "LOADING";
      case VersionState::failed: *reason = v.reason; return "FAILED";
      case VersionState::unloading: return "UNLOADING";
      case VersionState::ready: break;
    }
    if (shutting_down) {
      *reason = "the server is shutting down";
      return "UNAVAILABLE";
    }
    if (!version_ready(v)) {
      *reason = "strict mode: the breaker of route '" + v.model->capabilities().requested_backend + "' is open";
      return "UNAVAILABLE";
    }
    return "READY";
  }

  // Called with `mu` held: the version a request names, or why there is none.
  VersionPtr resolve(const std::string& name, const std::string& version, std::optional<ProtocolError>* error) const {
    auto it = models.find(name);
    if (it == models.end() || it->second.unloaded) {
      *error = not_found("model '" + name + "' is not found");
      return nullptr;
    }
    const Model& model = it->second;
    if (version.empty()) {
      if (VersionPtr v = serving_version(model)) return v;
      if (loading(model)) *error = unavailable("model '" + name + "' is still loading");
      else if (!model.error.empty()) *error = unavailable(model.error);
      else if (!model.versions.empty() && model.versions.rbegin()->second->state == VersionState::failed)
        *error = unavailable("model '" + name + "' failed to load: " + model.versions.rbegin()->second->reason);
      else *error = unavailable("model '" + name + "' has no ready version");
      return nullptr;
    }
    int number = 0;
    try {
      size_t used = 0;
      number = std::stoi(version, &used);
      if (used != version.size()) number = 0;
    } catch (const std::exception&) {
      number = 0;
    }
    auto vit = model.versions.find(number);
    if (vit == model.versions.end() || vit->second->state == VersionState::unloading) {
      *error = not_found("model '" + name + "' has no version '" + version + "'");
      return nullptr;
    }
    const Version& v = *vit->second;
    if (v.state == VersionState::loading) *error = unavailable("model '" + name + "' version " + version + " is still loading");
    else if (v.state == VersionState::failed)
      *error = unavailable("model '" + name + "' version " + version + " failed to load: " + v.reason);
    else return vit->second;
    return nullptr;
  }


  ModelStats stats_of(const Model& model, const Version& v) const {
    ModelStats s;
    s.name = model.name;
    s.version = version_name(v.number);
    std::string reason;
    s.state = state_name(v, &reason);
    s.ready = version_ready(v);
    if (v.scheduler) s.scheduler = v.scheduler->stats();
    if (v.model) {
      const ModelTelemetry t = v.model->telemetry();
      s.routes = route_stats(t);
      s.p50_ms = t.latency.quantile_ms(0.5);
      s.p99_ms = t.latency.quantile_ms(0.99);
      const uint64_t answers = v.answers->total.load();
      const bool recent_fallback_only =
          answers > 0 && v.answers->trailing_fallbacks.load() >= std::min<uint64_t>(answers, kDegradedWindow);
      const bool first_open = !t.backends.empty() && t.backends.front().breaker.state == BreakerState::open;
      s.degraded = s.ready && (recent_fallback_only || (first_open && t.backends.size() > 1));
    }
    return s;
  }

  bool shutdown(std::chrono::milliseconds grace) {
    std::lock_guard<std::mutex> once(shutdown_mu);
    if (shutdown_done) return shutdown_result;
    std::vector<std::shared_ptr<Scheduler>> schedulers;
    {
      std::lock_guard<std::mutex> lock(mu);
      shutting_down = true;
      for (const auto& [name, model] : models)
        for (const auto& [n, v] : model.versions)
          if (v->scheduler) schedulers.push_back(v->scheduler);
      changed.notify_all();
    }
    if (poller.joinable()) poller.join();
    if (watcher.joinable()) watcher.join();
    std::vector<std::thread> drains;
    std::atomic<bool> all_finished{true};
    for (const auto& s : schedulers)
      drains.emplace_back([&all_finished, s, grace] {
        if (!s->drain(grace)) all_finished = false;
      });
    for (std::thread& t : drains) t.join();
    join_background();
    shutdown_done = true;
    shutdown_result = all_finished.load();
    return shutdown_result;
  }
};

Result<std::unique_ptr<Server>> Server::create(ServerOptions options) {
  std::error_code ec;
  if (!std::filesystem::is_directory(options.model_repository, ec))
    return invalid_argument("model repository '" + options.model_repository.string() + "' is not a folder");
  auto impl = std::make_unique<Impl>(std::move(options));
  Impl* raw = impl.get();
  auto disk = scan_repository(raw->options.model_repository);
  const auto& chosen = raw->options.load_at_start;
  if (chosen)
    for (const std::string& name : *chosen)
      if (!disk.count(name)) return invalid_argument("model '" + name + "' to load at start is not in the repository");
  {
    std::lock_guard<std::mutex> lock(raw->mu);
    for (const auto& [name, m] : disk) {
      if (chosen && !chosen->count(name))
        raw->list_not_loaded_locked(name);
      else
        raw->sync_model(m, false);
    }
  }
  raw->publish_events();
  if (raw->options.poll_interval.count() > 0)
    raw->poller = std::thread([raw] {
      name_this_thread("tandem-poll");
      raw->poll_loop();
    });
  if (raw->options.on_event)
    raw->watcher = std::thread([raw] {
      name_this_thread("tandem-watch");
      raw->watch_loop();
    });
  return std::unique_ptr<Server>(new Server(std::move(impl)));
}

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Server::~Server() {
  impl_->shutdown(std::chrono::milliseconds(0));
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->models.clear();
}

bool Server::live() const { return true; }

bool Server::ready() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::string why;
  return impl_->ready_locked(&why);
}

ServerMetadata Server::metadata() const {
  ServerMetadata m;
  m.version = TANDEM_VERSION;
  m.extensions = {"binary_tensor_data", "model_repository", "statistics"};
  return m;
}

std::optional<ProtocolError> Server::model_ready(const std::string& name, const std::string& version, bool* ready) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  *ready = false;
  auto it = impl_->models.find(name);
  if (it == impl_->models.end() || it->second.unloaded) return not_found("model '" + name + "' is not found");
  if (version.empty()) {
    *ready = impl_->model_ready(it->second);
    return std::nullopt;
  }
  for (const auto& [n, v] : it->second.versions)
    if (version_name(n) == version && v->state != VersionState::unloading) {
      *ready = impl_->version_ready(*v);
      return std::nullopt;
    }
  return not_found("model '" + name + "' has no version '" + version + "'");
}

std::optional<ProtocolError> Server::model_metadata(const std::string& name, const std::string& version,
                                                    ModelMetadata* out) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::optional<ProtocolError> error;
  VersionPtr v = impl_->resolve(name, version, &error);
  if (!v) return error;
  *out = ModelMetadata{};
  out->name = name;
  out->routes = route_stats(v->model->telemetry());
  for (const auto& [n, other] : impl_->models.at(name).versions)
    if (other->state == VersionState::ready) out->versions.push_back(version_name(n));
  auto describe = [&](const IoInfo& io, bool input) {
    TensorMetadata t;
    t.name = io.name;
    t.datatype = std::string(protocol_dtype_name(io.dtype));
    if (input) t.shape = expected_dims(io, v->config);
    else
      for (const IoDim& d : io.dims) t.shape.push_back(d.value >= 0 ? d.value : -1);
    return t;
  };
  for (const IoInfo& io : v->model->io_schema().inputs) out->inputs.push_back(describe(io, true));
  for (const IoInfo& io : v->model->io_schema().outputs) out->outputs.push_back(describe(io, false));
  return std::nullopt;
}

std::optional<ProtocolError> Server::model_stats(const std::string& name, const std::string& version,
                                                 std::vector<ModelStats>* out) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  out->clear();
  if (!name.empty()) {
    auto it = impl_->models.find(name);
    if (it == impl_->models.end() || it->second.unloaded) return not_found("model '" + name + "' is not found");
  }
  for (const auto& [model_name, model] : impl_->models) {
    if ((!name.empty() && model_name != name) || model.unloaded) continue;
    for (const auto& [n, v] : model.versions)
      if (version.empty() || version_name(n) == version) out->push_back(impl_->stats_of(model, *v));
  }
  if (!version.empty() && out->empty()) return not_found("model '" + name + "' has no version '" + version + "'");
  return std::nullopt;
}

std::optional<ProtocolError> Server::infer(InferRequest&& request, Scheduler::Done done, bool caller_may_run) {
  VersionPtr v;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shutting_down) return unavailable("the server is shutting down");
    std::optional<ProtocolError> error;
    v = impl_->resolve(request.model, request.version, &error);
    if (!v) return error;
  }
  if (auto error = validate_request(request, v->model->io_schema(), v->config)) return error;
  using Clock = Scheduler::Clock;
  auto deadline = Clock::time_point::max();
  const double timeout_ms =
      request.timeout_ms && *request.timeout_ms > 0 ? *request.timeout_ms : v->config.default_timeout_ms;
  if (timeout_ms > 0)
    deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double, std::milli>(timeout_ms));
  request.version = version_name(v->number);
  const std::string model_name = request.model;
  ServerMetrics* metrics = &impl_->metrics;
  metrics->add_in_flight(1);
  auto error = v->scheduler->submit(
      std::move(request), deadline,
      [metrics, counts = v->answers, done = std::move(done)](InferOutcome&& o) {
        metrics->record_completion(counts->model, o.queue_us / 1e6, o.batch_rows);
        metrics->add_in_flight(-1);
        if (!o.error) {
          counts->total.fetch_add(1);
          if (o.response.fallback)
            counts->trailing_fallbacks.fetch_add(1);
          else
            counts->trailing_fallbacks.store(0);
        }
        done(std::move(o));
      },
      caller_may_run);
  if (error) {
    metrics->add_in_flight(-1);
    metrics->record_rejection(model_name);
  }
  return error;
}

std::optional<ProtocolError> Server::admission_refusal(const std::string& model, const std::string& version) {
  VersionPtr v;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    if (impl_->shutting_down) return unavailable("the server is shutting down");
    std::optional<ProtocolError> error;
    v = impl_->resolve(model, version, &error);
    if (!v) return std::nullopt;
  }
  auto refusal = v->scheduler->refusal_now();
  if (refusal) impl_->metrics.record_rejection(model);
  return refusal;
}

std::vector<RepositoryEntry> Server::repository_index(bool ready_only) const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  std::vector<RepositoryEntry> rows;
  for (const auto& [name, model] : impl_->models) {
    if (model.versions.empty()) {
      if (ready_only) continue;
      if (model.unloaded) rows.push_back({name, "", "UNAVAILABLE", model.unloaded_reason});
      else if (!model.error.empty()) rows.push_back({name, "", "FAILED", model.error});
      continue;
    }
    for (const auto& [n, v] : model.versions) {
      RepositoryEntry row{name, version_name(n), "", ""};
      row.state = v->cancelled ? "UNLOADING" : impl_->state_name(*v, &row.reason);
      // A config.json edited into one that cannot be used leaves the versions as they are.
      if (row.reason.empty() && !model.error.empty() && v->state == VersionState::ready)
        row.reason = model.error + " (the version loaded before still serves)";
      if (row.reason.empty()) row.reason = v->reload_reason;
      if (!ready_only || row.state == "READY") rows.push_back(row);
    }
  }
  return rows;
}

std::optional<ProtocolError> Server::load_model(const std::string& name) {
  bool found = false;
  ModelOnDisk disk = scan_model(impl_->options.model_repository, name, &found);
  if (!found) return not_found("model '" + name + "' is not in the repository");
  std::unique_lock<std::mutex> lock(impl_->mu);
  if (impl_->shutting_down) return unavailable("the server is shutting down");
  auto existing = impl_->models.find(name);
  if (existing != impl_->models.end() && existing->second.unloaded) {
    existing->second.unloaded = false;
    existing->second.unloaded_reason.clear();
  }
  impl_->sync_model(disk, true);
  lock.unlock();
  impl_->publish_events();
  lock.lock();
  // A scan that finds its folder gone meanwhile unloads it, and forgets it once drained.
  auto entry = [&] { return impl_->models.find(name); };
  impl_->changed.wait(lock, [&] {
    return impl_->shutting_down || entry() == impl_->models.end() ||
           (!Impl::loading(entry()->second) && entry()->second.replacing.empty());
  });
  if (impl_->shutting_down) return unavailable("the server is shutting down");
  if (entry() == impl_->models.end()) return not_found("model '" + name + "' left the repository while it loaded");
  const Model& model = entry()->second;
  if (!model.error.empty()) return bad_request(model.error);
  if (Impl::serving_version(model)) return std::nullopt;
  for (auto it = model.versions.rbegin(); it != model.versions.rend(); ++it)
    if (it->second->state == VersionState::failed)
      return bad_request("model '" + name + "' failed to load: " + it->second->reason);
  return bad_request("model '" + name + "' has no version that could be loaded");
}

std::optional<ProtocolError> Server::unload_model(const std::string& name) {
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    auto it = impl_->models.find(name);
    if (it == impl_->models.end()) return not_found("model '" + name + "' is not found");
    if (!it->second.unloaded) impl_->unload_locked(it->second, "unloaded through the repository API");
    impl_->changed.notify_all();
  }
  impl_->publish_events();
  return std::nullopt;
}

std::string Server::metrics_prometheus() const {
  std::vector<ModelTelemetry> telemetry;
  std::vector<std::pair<std::pair<std::string, std::string>, bool>> ready;
  {
    std::lock_guard<std::mutex> lock(impl_->mu);
    for (const auto& [name, model] : impl_->models) {
      VersionPtr serving = Impl::serving_version(model);
      for (const auto& [n, v] : model.versions) {
        ready.push_back({{name, version_name(n)}, !model.unloaded && impl_->version_ready(*v)});
        if (!v->model) continue;
        telemetry.push_back(v->model->telemetry());
        // Versions other than the serving one get their own label so that samples stay unique.
        telemetry.back().model = v == serving ? name : name + "/" + version_name(n);
      }
    }
  }
  return telemetry_to_prometheus(telemetry) + impl_->metrics.render(ready);
}

void Server::record_request(std::string_view protocol, int code, double seconds) {
  impl_->metrics.record_request(protocol, code, seconds);
}

void Server::rescan() { impl_->scan_once(); }

bool Server::shutdown() { return impl_->shutdown(impl_->options.shutdown_grace); }

const ServerOptions& Server::options() const { return impl_->options; }

}  // namespace tandem::server
