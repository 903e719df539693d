// scheduler.h: one model version's request queue and the engine calls that drain it.
//
// Admission: requests waiting for an engine call are bounded by `max_queue_size`. A request
// that does not fit is refused at once with queue_full (503 / RESOURCE_EXHAUSTED): it is
// never queued and never left to time out. After drain() began, submit() refuses with
// unavailable.
// In flight: at most `instances` engine calls run at once, each on a scheduler thread.
// Dynamic batching (when `batching.enabled`, and the model allows it: every input's first dim
// is free, and the engine's check of its rows, PrepareOptions::check_batch_rows, did not find
// them depending on one another; Stats::batching says which): a scheduler thread takes the oldest request and
// the queued requests compatible with it (every input has the same dtype and the same dims
// after the first; the same requested outputs), up to `max_batch_size` rows in all. It
// dispatches as soon as the rows reach max_batch_size or the largest preferred size that the
// queue can fill, or when the oldest request has waited `max_queue_delay_us` (sooner when a
// member's deadline would pass otherwise: by that deadline less, per row, what the engine wants
// before a call's deadline (SlaEstimate::deadline_margin_ms), and 5 ms). The batch's
// inputs are concatenated along dim 0, the engine runs once, and every output is split back
// along dim 0 by each request's rows. A merged call with an output whose dim 0 is not the
// batch's rows (a model the check could not run) serves each of its requests again alone,
// and the scheduler merges no more. Requests are never merged across different shapes.
// Deadlines: a request carries an absolute deadline (its timeout or the model default; none:
// time_point::max()). One whose deadline passes while it waits completes with 504 without
// running; an engine call gets the earliest deadline of its batch.
// Clients that went away (InferRequest::client_gone): a queued request whose client is gone
// completes with 499 when a worker next looks at the queue, without running; an engine call
// whose every request's client is gone is cancelled (InferOptions::interrupted, polled about
// every 2 ms while the call runs) and its requests complete with 499. Nobody reads those
// answers; the compute goes to the requests still wanted.
// Caller runs (Options::caller_runs): without batching, when nothing waits and an instance is free, submit() makes
// the engine call on the caller's thread and returns after `done` ran (no hand-off to a worker
// and back: two thread wake-ups less per request), unless the caller says its thread must not
// block (submit's `caller_may_run`). The instance bound holds across both.
// Completion: `done` runs exactly once for every admitted request: inside submit() (above) or
// on a scheduler thread. It must not block for long, and the caller of submit() must not hold
// a lock that `done` takes.
// Ownership and lifetime: the scheduler shares the prepared model; its threads start in the
// constructor and stop in drain() / the destructor (which drains with no grace: queued
// requests complete with unavailable, in-flight calls are waited for).
// Thread-safety: submit(), stats() and drain() may be called from any thread.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "model_config.h"
#include "protocol.h"
#include "tandem/engine.h"
#include "tandem/telemetry.h"

namespace tandem::server {

// The result of one admitted request: a response, or the error to report.
struct InferOutcome {
  std::optional<ProtocolError> error;
  InferResponse response;  // valid when !error
  double queue_us = 0;     // time from submit() to its engine call (or to its failure)
  int batch_rows = 0;      // rows of the engine call that served it (1 without batching)
};

class Scheduler {
 public:
  using Clock = std::chrono::steady_clock;
  using Done = std::function<void(InferOutcome&&)>;

  struct Options {
    int instances = 1;          // engine calls in flight at once (>= 1)
    int max_queue_size = 64;    // waiting requests (>= 0; 0: only what a free instance takes now)
    BatchingConfig batching;    // ignored unless every input's first dim is a batch dim
    std::string model_name;     // for responses and messages
    std::string version;
    bool caller_runs = true;    // see "Caller runs" above; false: every call on a worker
  };

  struct Stats {
    uint64_t admitted = 0;
    uint64_t rejected = 0;          // refused by submit() (queue full or draining)
    uint64_t succeeded = 0;
    uint64_t failed = 0;            // completed with an error (including timed out in queue)
    uint64_t expired_in_queue = 0;  // of those, deadlines that passed before an engine call
    uint64_t client_gone = 0;       // of those, clients that went away before their answer
    uint64_t fallbacks = 0;         // answered by a route other than the first
    // Dynamic batching: "" when not configured; "on; rows checked on <route>", "on; rows not
    // checked: <why>", or "off: <why>" (the model does not allow it, or a merged call's
    // outputs could not be split).
    std::string batching;
    bool batching_stopped = false;  // turned off at run time (a merged call's outputs)
    // The latest failed request whose client was still there: "<HTTP status> <message>".
    std::string last_failure;
    // The statistics extension's figures (the schema Triton and KServe clients read).
    struct Duration {
      uint64_t count = 0;
      uint64_t ns = 0;
    };
    Duration success, fail;  // requests, submit() to completion (their queue time: queue_time)
    // Requests (each counts its engine call's whole time): their tensors into the engine's
    // inputs, the engine call, the outputs into their responses.
    Duration compute_input, compute_infer, compute_output;
    // The same per engine call, by the rows it computed: input, infer, output.
    std::map<int, std::array<Duration, 3>> batch_compute;
    uint64_t inference_count = 0;   // rows of the requests that succeeded
    uint64_t execution_count = 0;   // engine calls made
    int64_t last_inference_ms = 0;  // when the latest request completed, ms since the Unix epoch
    int queued = 0;                 // waiting now
    int in_flight = 0;              // requests inside engine calls now
    LatencyHistogram queue_time;    // submit() to engine call, per request
    // queue_time as the statistics extension's `queue` figure (count and total ns).
    Duration queue() const { return {queue_time.count(), static_cast<uint64_t>(queue_time.sum_ns())}; }
    std::map<int, uint64_t> batch_rows;  // engine calls by rows per call
    std::map<std::string, uint64_t> served_by;  // requests by the route that answered
  };

  // `model` must outlive nothing: the scheduler keeps it alive until its threads stop. Whether
  // it may batch comes from the model's IO schema and SlaEstimate::batch_rows.
  Scheduler(std::shared_ptr<PreparedModel> model, Options options);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Admits `request` (already validated against the model's IO schema by the server) or
  // returns why not (queue_full, or unavailable while draining); `done` is then never called.
  // `caller_may_run` false: the engine call never runs on this thread.
  std::optional<ProtocolError> submit(InferRequest&& request, Clock::time_point deadline, Done done,
                                      bool caller_may_run = true);

  // The refusal submit() would give now (queue full, or draining), counted as a rejection;
  // nullopt when a request would be admitted now. Frontends ask before they read a large
  // body, so that a refusal under overload costs no decoding. A hint only: submit() decides.
  std::optional<ProtocolError> refusal_now();

  // Stops admitting, lets queued and in-flight requests finish until `grace` passes, then
  // completes what is still queued with unavailable and waits for in-flight engine calls.
  // Returns true when everything finished within the grace period. Idempotent. Must not be
  // called from `done` (it joins the scheduler's threads).
  bool drain(std::chrono::milliseconds grace);

  Stats stats() const;
  const std::shared_ptr<PreparedModel>& model() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem::server
