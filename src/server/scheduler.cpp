// scheduler.cpp: see scheduler.h.
//
// One mutex guards the queue, the state and the stats. `instances` worker threads take work
// (a batch: one or more requests) from the queue and run it; one expiry thread completes
// queued requests whose deadline passed while every worker was busy, and, once the scheduler
// stops, completes what is still queued with unavailable. Every request leaves the queue
// exactly once, under the mutex, so its `done` runs exactly once, always after the mutex is
// released.
#include "scheduler.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <list>
#include <mutex>
#include <thread>
#include <utility>

#include "tandem/sysinfo.h"

namespace tandem::server {

namespace {

using Clock = Scheduler::Clock;

// `from + span`, or time_point::max() when that does not fit (a "forever" grace or delay).
template <class Duration>
Clock::time_point later_by(Clock::time_point from, Duration span) {
  const auto room = std::chrono::duration_cast<Duration>(Clock::time_point::max() - from);
  return span >= room ? Clock::time_point::max() : from + std::chrono::duration_cast<Clock::duration>(span);
}

double micros_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::micro>(to - from).count();
}

uint64_t nanos_between(Clock::time_point from, Clock::time_point to) {
  return static_cast<uint64_t>(
      std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(to - from).count()));
}

ProtocolError server_error(std::string message) {
  ProtocolError e;
  e.http_status = 500;
  e.message = std::move(message);
  return e;
}

ProtocolError deadline_passed(std::string message) {
  ProtocolError e;
  e.http_status = 504;
  e.message = std::move(message);
  return e;
}

// Why one engine call may not serve several requests of `model` ("" when it may).
std::string batching_refusal(const PreparedModel& model) {
  for (const IoInfo& in : model.io_schema().inputs) {
    // The schema has the config's input_shapes applied: a batch dim it left free stays free.
    if (!in.has_shape || in.dims.empty()) return "input '" + in.name + "' has no declared dims";
    if (in.dims[0].value >= 0)
      return "input '" + in.name + "' has a fixed first dim (" + std::to_string(in.dims[0].value) + ")";
  }
  const BatchRowsCheck& rows = model.sla_estimate().batch_rows;
  return rows.verdict == BatchRowsCheck::Verdict::dependent ? "its rows are not a batch: " + rows.detail : "";
}

}  // namespace

struct Scheduler::Impl {
  // A request from submit() until its `done` runs.
  struct Pending {
    InferRequest request;
    Clock::time_point deadline;
    Clock::time_point arrival;
    Done done;
    bool batchable = false;  // may share an engine call with compatible requests
    int64_t rows = 1;        // its dim 0 when batchable
  };
  using Queue = std::list<Pending>;
  enum class State { accepting, draining, stopped };

  std::shared_ptr<PreparedModel> model;
  Options options;
  // options.batching.enabled and the model allows it; turned off for good by a merged call
  // whose outputs could not be split (read by submit() before it takes the mutex).
  std::atomic<bool> batching{false};
  // What the engine wants before the deadline of a one-row call (SlaEstimate::deadline_margin_ms).
  double call_ms_per_row = 0;

  mutable std::mutex mutex;
  std::condition_variable work_ready;    // workers: the queue or the state changed
  std::condition_variable expiry_check;  // the expiry thread: a deadline or the state changed
  // When the expiry thread looks at the queue next: max while it waits to be woken, min while
  // it is awake (it scans the queue before it waits again). A request whose deadline is not
  // sooner needs no wake-up: the thread will see it in time.
  Clock::time_point expiry_wakes_at = Clock::time_point::max();
  std::condition_variable all_finished;  // drain(): `outstanding` reached 0
  Queue queue;
  State state = State::accepting;
  int idle_workers = 0;     // workers waiting for work (a request they may take counts as room)
  int running = 0;          // engine calls in progress: on workers and on callers' threads
  uint64_t outstanding = 0; // admitted requests whose `done` has not returned yet
  Stats stats;
  std::optional<bool> drain_result;  // set once the threads were joined
  std::mutex drain_mutex;            // serializes drain() calls

  std::vector<std::thread> workers;
  std::thread expiry_thread;

  // --- admission -------------------------------------------------------------------------

  bool is_batchable(const InferRequest& request, int64_t* rows) const {
    if (!batching || request.inputs.empty()) return false;
    const int64_t first = request.inputs.front().tensor.rank() ? request.inputs.front().tensor.dim(0) : -1;
    if (first < 1) return false;
    for (const InferTensor& input : request.inputs) {
      const Tensor& t = input.tensor;
      if (t.dtype() == DataType::string || t.rank() == 0 || t.dim(0) != first) return false;
    }
    *rows = first;
    return true;
  }

  // --- completion ------------------------------------------------------------------------

  // Counts how a request ended (under the mutex).
  void count_outcome_locked(const InferOutcome& outcome) {
    if (outcome.error) {
      ++stats.failed;
      if (outcome.error->http_status != 499)  // client_went_away: nobody was there to fail
        stats.last_failure = std::to_string(outcome.error->http_status) + " " + outcome.error->message;
    } else {
      ++stats.succeeded;
      ++stats.served_by[outcome.response.backend];
      if (outcome.response.fallback) ++stats.fallbacks;
    }
  }

  // Runs `done` for each request with its outcome; called without the mutex.
  void complete(std::vector<Pending>& finished, std::vector<InferOutcome>& outcomes) {
    {
      const Clock::time_point now = Clock::now();
      std::lock_guard<std::mutex> lock(mutex);
      for (size_t i = 0; i < outcomes.size(); ++i) {
        count_outcome_locked(outcomes[i]);
        Stats::Duration& d = outcomes[i].error ? stats.fail : stats.success;
        d.count++;
        d.ns += nanos_between(finished[i].arrival, now);
        if (!outcomes[i].error) stats.inference_count += finished[i].batchable ? finished[i].rows : 1;
      }
      stats.last_inference_ms =
          std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch())
              .count();
    }
    for (size_t i = 0; i < finished.size(); ++i) {
      try {
        if (finished[i].done) finished[i].done(std::move(outcomes[i]));
      } catch (...) {
        // A callback's failure is its own; the scheduler carries on.
      }
    }
    std::lock_guard<std::mutex> lock(mutex);
    outstanding -= finished.size();
    if (outstanding == 0) all_finished.notify_all();
  }

  void fail_all(std::vector<Pending>& finished, const ProtocolError& error, Clock::time_point now) {
    std::vector<InferOutcome> outcomes(finished.size());
    for (size_t i = 0; i < finished.size(); ++i) {
      outcomes[i].error = error;
      outcomes[i].queue_us = micros_between(finished[i].arrival, now);
    }
    complete(finished, outcomes);
  }

  // Removes the queued requests for which `leaves(pending)` is true, in queue order.
  template <class Predicate>
  std::vector<Pending> take_queued_if_locked(Predicate leaves) {
    std::vector<Pending> taken;
    for (auto it = queue.begin(); it != queue.end();) {
      if (leaves(*it)) {
        taken.push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
    return taken;
  }

  // Removes the queued requests whose deadline is at or before `now`.
  std::vector<Pending> take_expired_locked(Clock::time_point now) {
    std::vector<Pending> expired = take_queued_if_locked([now](const Pending& p) { return p.deadline <= now; });
    stats.expired_in_queue += expired.size();
    return expired;
  }

  static bool is_gone(const Pending& pending) { return pending.request.client_gone && pending.request.client_gone(); }

  // Removes, in one pass over the queue, the requests whose deadline is at or before `now`
  // (into `expired`) and those whose client went away (into `gone`).
  void take_leaving_locked(Clock::time_point now, std::vector<Pending>* expired, std::vector<Pending>* gone) {
    for (auto it = queue.begin(); it != queue.end();) {
      std::vector<Pending>* to = it->deadline <= now ? expired : is_gone(*it) ? gone : nullptr;
      if (to) {
        to->push_back(std::move(*it));
        it = queue.erase(it);
      } else {
        ++it;
      }
    }
    stats.expired_in_queue += expired->size();
    stats.client_gone += gone->size();
  }

  void fail_gone(std::vector<Pending>& gone, Clock::time_point now) {
    fail_all(gone,
             client_went_away("the client went away while its request waited in the queue of model '" +
                              options.model_name + "'"),
             now);
  }

  // InferOptions::interrupted of an engine call: every request of the batch is unwanted.
  static bool batch_gone(void* batch) {
    for (const Pending& pending : *static_cast<const std::vector<Pending>*>(batch))
      if (!is_gone(pending)) return false;
    return true;
  }

  void fail_expired(std::vector<Pending>& expired, Clock::time_point now) {
    for (size_t i = 0; i < expired.size(); ++i) {
      std::vector<Pending> one;
      one.push_back(std::move(expired[i]));
      const long long waited_ms = std::llround(micros_between(one[0].arrival, now) / 1000.0);
      fail_all(one, deadline_passed("deadline passed after " + std::to_string(waited_ms) + " ms in the queue of model '" +
                                    options.model_name + "'"),
               now);
    }
  }

  // --- batch selection -------------------------------------------------------------------

  static bool same_request_shape(const Pending& a, const Pending& b) {
    if (!a.batchable || !b.batchable) return false;
    if (a.request.inputs.size() != b.request.inputs.size()) return false;
    if (a.request.outputs.size() != b.request.outputs.size()) return false;
    for (size_t i = 0; i < a.request.outputs.size(); ++i)
      if (a.request.outputs[i].name != b.request.outputs[i].name) return false;
    for (const InferTensor& x : a.request.inputs) {
      auto match = std::find_if(b.request.inputs.begin(), b.request.inputs.end(),
                                [&](const InferTensor& y) { return y.name == x.name; });
      if (match == b.request.inputs.end()) return false;
      const Tensor& s = x.tensor;
      const Tensor& t = match->tensor;
      if (s.dtype() != t.dtype() || s.rank() != t.rank()) return false;
      if (!std::equal(s.shape().begin() + 1, s.shape().end(), t.shape().begin() + 1)) return false;
    }
    return true;
  }

  // Moves the next batch out of the (non-empty) queue into `batch`, or leaves it empty and
  // sets `*wait_until` when the oldest request should wait for companions.
  void take_batch_locked(Clock::time_point now, std::vector<Pending>* batch, Clock::time_point* wait_until) {
    const Pending& oldest = queue.front();
    const int64_t max_rows = std::max(1, options.batching.max_batch_size);
    if (!batching || !oldest.batchable || oldest.rows >= max_rows) {
      batch->push_back(std::move(queue.front()));
      queue.pop_front();
      return;
    }
    // The compatible requests in arrival order, while they fit.
    std::vector<Queue::iterator> members{queue.begin()};
    int64_t rows = oldest.rows;
    bool cannot_grow = false;
    for (auto it = std::next(queue.begin()); it != queue.end(); ++it) {
      if (!same_request_shape(oldest, *it)) continue;
      if (rows + it->rows > max_rows) {
        cannot_grow = true;
        break;
      }
      members.push_back(it);
      rows += it->rows;
    }
    int64_t preferred = 0;
    for (int size : options.batching.preferred_batch_sizes)
      if (size <= rows) preferred = std::max<int64_t>(preferred, size);

    const bool full = rows >= max_rows || cannot_grow;
    Clock::time_point delay_end =
        later_by(oldest.arrival, std::chrono::microseconds(std::max<int64_t>(0, options.batching.max_queue_delay_us)));
    // Or sooner, in time for its most urgent member: by that one's deadline less what the
    // engine wants for the call and 5 ms for this thread to wake (waiting on would answer it
    // 504 while an instance is free).
    const auto call_time = std::chrono::duration_cast<Clock::duration>(
        std::chrono::duration<double, std::milli>(5 + call_ms_per_row * static_cast<double>(rows)));
    for (Queue::iterator it : members)
      if (it->deadline != Clock::time_point::max()) delay_end = std::min(delay_end, it->deadline - call_time);
    if (!full && preferred == 0 && state == State::accepting && now < delay_end) {
      *wait_until = delay_end;
      return;
    }
    if (!full && preferred > 0) {  // dispatch the preferred size, leaving the rest queued
      int64_t kept_rows = 0;
      size_t kept = 0;
      while (kept < members.size() && kept_rows + members[kept]->rows <= preferred) kept_rows += members[kept++]->rows;
      members.resize(std::max<size_t>(kept, 1));
    }
    for (Queue::iterator it : members) {
      batch->push_back(std::move(*it));
      queue.erase(it);
    }
  }

  // --- running a batch -------------------------------------------------------------------

  // The response tensors of one request from the engine's outputs (already split per request).
  std::optional<ProtocolError> build_response(const Pending& pending, InferResult& result,
                                              std::map<std::string, Value>& outputs, InferResponse* response) const {
    response->model = options.model_name;
    response->version = options.version;
    response->id = pending.request.id;
    response->backend = result.backend;
    response->fallback = !result.fallback_reason.empty();
    auto add = [&](const std::string& name, bool binary) -> std::optional<ProtocolError> {
      auto found = outputs.find(name);
      if (found == outputs.end()) return server_error("output '" + name + "' is missing from the engine's result");
      if (!found->second.is_tensor()) return server_error("output '" + name + "' is not a tensor");
      response->outputs.push_back(InferTensor{name, found->second.tensor, binary || pending.request.binary_outputs});
      return std::nullopt;
    };
    if (pending.request.outputs.empty()) {
      for (const std::string& name : result.output_order)
        if (auto error = add(name, false)) return error;
    } else {
      for (const RequestedOutput& requested : pending.request.outputs)
        if (auto error = add(requested.name, requested.binary)) return error;
    }
    return std::nullopt;
  }

  // The batch's inputs, concatenated along dim 0 in the order of `batch`.
  static std::map<std::string, Value> concatenate_inputs(const std::vector<Pending>& batch, int64_t rows) {
    std::map<std::string, Value> merged;
    for (const InferTensor& input : batch.front().request.inputs) {
      Shape shape = input.tensor.shape();
      shape[0] = rows;
      Tensor joined = Tensor::uninitialized(input.tensor.dtype(), shape);  // the parts fill every row
      auto* out = static_cast<unsigned char*>(joined.raw_data());
      for (const Pending& pending : batch) {
        for (const InferTensor& part : pending.request.inputs) {
          if (part.name != input.name) continue;
          std::memcpy(out, part.tensor.raw_data(), part.tensor.nbytes());
          out += part.tensor.nbytes();
        }
      }
      merged[input.name] = Value::of(std::move(joined));
    }
    return merged;
  }

  // Splits every reported output of `result` by the rows of each request; fails naming the first
  // output that cannot be split.
  static std::optional<ProtocolError> split_outputs(const std::vector<Pending>& batch, int64_t rows, const InferResult& result,
                                                    std::vector<std::map<std::string, Value>>* per_request) {
    per_request->assign(batch.size(), {});
    std::vector<std::string> names;
    for (const RequestedOutput& requested : batch.front().request.outputs) names.push_back(requested.name);
    if (names.empty()) names = result.output_order;
    for (const std::string& name : names) {
      auto found = result.outputs.find(name);
      if (found == result.outputs.end()) continue;  // build_response reports it
      const Value& value = found->second;
      const Tensor& whole = value.tensor;
      if (!value.is_tensor() || whole.rank() == 0 || whole.dim(0) != rows || whole.dtype() == DataType::string)
        return server_error("output '" + name + "' cannot be split into the batch's " + std::to_string(rows) +
                            " rows (its dim 0 is not the batch dimension)");
      const size_t row_bytes = whole.nbytes() / static_cast<size_t>(rows);
      const auto* in = static_cast<const unsigned char*>(whole.raw_data());
      for (size_t i = 0; i < batch.size(); ++i) {
        Shape shape = whole.shape();
        shape[0] = batch[i].rows;
        Tensor part = Tensor::uninitialized(whole.dtype(), shape);  // filled by the copy below
        std::memcpy(part.raw_data(), in, part.nbytes());
        in += row_bytes * static_cast<size_t>(batch[i].rows);
        (*per_request)[i][name] = Value::of(std::move(part));
      }
    }
    return std::nullopt;
  }

  // Rows of the engine call that serves `batch` (1 for a request that is not batched).
  static int64_t rows_of(const std::vector<Pending>& batch) {
    if (batch.size() == 1 && !batch.front().batchable) return 1;
    int64_t rows = 0;
    for (const Pending& pending : batch) rows += pending.rows;
    return rows;
  }

  // Merges no more (a merged call's outputs could not be split, `why`).
  void stop_batching(const std::string& why) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!batching.exchange(false)) return;
    stats.batching = "off: " + why + "; requests are served alone from now on";
    stats.batching_stopped = true;
  }

  // Each request of `batch` in an engine call of its own, into `outcomes`.
  void serve_alone(const std::vector<Pending>& batch, std::vector<InferOutcome>* outcomes) {
    for (size_t i = 0; i < batch.size(); ++i) {
      InferOutcome& outcome = (*outcomes)[i];
      outcome.batch_rows = static_cast<int>(batch[i].rows);
      std::map<std::string, Value> inputs;
      for (const InferTensor& input : batch[i].request.inputs) inputs[input.name] = Value::of(input.tensor);
      InferOptions infer_options;
      infer_options.deadline = batch[i].deadline;
      Result<InferResult> result = model->infer(inputs, infer_options);
      if (!result)
        outcome.error = from_status(result.status());
      else if (auto error = build_response(batch[i], *result, result->outputs, &outcome.response))
        outcome.error = *error;
    }
    std::lock_guard<std::mutex> lock(mutex);
    stats.execution_count += batch.size();
  }

  void run_batch(std::vector<Pending>& batch, Clock::time_point started) {
    const int64_t rows = rows_of(batch);
    Clock::time_point deadline = Clock::time_point::max();
    for (const Pending& pending : batch) deadline = std::min(deadline, pending.deadline);
    std::vector<InferOutcome> outcomes(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
      outcomes[i].queue_us = micros_between(batch[i].arrival, started);
      outcomes[i].batch_rows = static_cast<int>(rows);
    }
    // When the call began, its inputs were built, the engine answered, the responses were built.
    // A phase an exception cut short stays unset (the epoch) and ends where the next set one does,
    // so the time goes to the phase that was running.
    Clock::time_point phase_ends[4] = {started, {}, {}, {}};
    auto fail_batch = [&](const ProtocolError& error) {
      for (InferOutcome& outcome : outcomes) outcome.error = error;
    };
    try {
      std::map<std::string, Value> inputs;
      if (batch.size() == 1) {
        for (const InferTensor& input : batch.front().request.inputs) inputs[input.name] = Value::of(input.tensor);
      } else {
        inputs = concatenate_inputs(batch, rows);
      }
      InferOptions infer_options;
      infer_options.deadline = deadline;
      const bool can_go = std::all_of(batch.begin(), batch.end(),
                                      [](const Pending& pending) { return bool(pending.request.client_gone); });
      if (can_go) {
        infer_options.interrupted = &batch_gone;
        infer_options.interrupted_context = &batch;
      }
      phase_ends[1] = Clock::now();
      Result<InferResult> result = model->infer(inputs, infer_options);
      phase_ends[2] = Clock::now();
      if (!result && result.status().code() == StatusCode::cancelled && can_go && batch_gone(&batch)) {
        fail_batch(client_went_away("the client went away: its engine call was cancelled (" +
                                    result.status().to_string() + ")"));
        std::lock_guard<std::mutex> lock(mutex);
        stats.client_gone += batch.size();
      } else if (!result) {
        fail_batch(from_status(result.status()));
      } else if (batch.size() == 1) {
        if (auto error = build_response(batch.front(), *result, result->outputs, &outcomes.front().response))
          fail_batch(*error);
      } else {
        std::vector<std::map<std::string, Value>> per_request;
        if (auto error = split_outputs(batch, rows, *result, &per_request)) {
          stop_batching(error->message);
          serve_alone(batch, &outcomes);
        } else {
          for (size_t i = 0; i < batch.size(); ++i)
            if (auto error = build_response(batch[i], *result, per_request[i], &outcomes[i].response))
              outcomes[i].error = *error;
        }
      }
    } catch (const std::exception& e) {
      fail_batch(server_error(std::string("engine call failed: ") + e.what()));
    } catch (...) {
      fail_batch(server_error("engine call failed"));
    }
    phase_ends[3] = Clock::now();
    for (int k = 2; k >= 1; --k)
      if (phase_ends[k] == Clock::time_point{}) phase_ends[k] = phase_ends[k + 1];
    {
      std::lock_guard<std::mutex> lock(mutex);
      stats.in_flight -= static_cast<int>(batch.size());
      stats.execution_count++;
      Stats::Duration* per_request[3] = {&stats.compute_input, &stats.compute_infer, &stats.compute_output};
      std::array<Stats::Duration, 3>& per_call = stats.batch_compute[static_cast<int>(rows)];
      for (int k = 0; k < 3; ++k) {
        const uint64_t ns = nanos_between(phase_ends[k], phase_ends[k + 1]);
        per_request[k]->count += batch.size();
        per_request[k]->ns += ns * batch.size();
        per_call[k].count++;
        per_call[k].ns += ns;
      }
    }
    complete(batch, outcomes);
  }

  // --- threads ---------------------------------------------------------------------------

  // Why a request cannot be admitted now (draining, or the queue is full), counted as a
  // rejection; nullopt when it can. Called with `mutex` held.
  std::optional<ProtocolError> refusal_locked() {
    if (state != State::accepting) {
      ++stats.rejected;
      return unavailable("model '" + options.model_name + "' is shutting down");
    }
    if (queue.size() >= static_cast<size_t>(options.max_queue_size + idle_workers)) {
      ++stats.rejected;
      return queue_full("model '" + options.model_name + "': queue full (" + std::to_string(options.max_queue_size) +
                        " waiting)");
    }
    return std::nullopt;
  }

  void worker_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    while (state != State::stopped) {
      Clock::time_point now = Clock::now();
      std::vector<Pending> expired, gone;
      take_leaving_locked(now, &expired, &gone);
      if (!expired.empty() || !gone.empty()) {
        lock.unlock();
        fail_expired(expired, now);
        if (!gone.empty()) fail_gone(gone, now);
        lock.lock();
        continue;
      }
      // An instance lent to a caller's thread (submit()) counts as busy.
      if (queue.empty() || running >= options.instances) {
        ++idle_workers;
        work_ready.wait(lock);
        --idle_workers;
        continue;
      }
      std::vector<Pending> batch;
      Clock::time_point wait_until = Clock::time_point::max();
      take_batch_locked(now, &batch, &wait_until);
      if (batch.empty()) {
        ++idle_workers;
        work_ready.wait_until(lock, wait_until);
        --idle_workers;
        continue;
      }
      stats.in_flight += static_cast<int>(batch.size());
      ++running;
      for (const Pending& pending : batch) {
        const uint64_t waited = nanos_between(pending.arrival, now);
        stats.queue_time.record(waited);
      }
      ++stats.batch_rows[static_cast<int>(rows_of(batch))];
      lock.unlock();
      run_batch(batch, now);
      lock.lock();
      --running;
    }
  }

  // Completes queued requests whose deadline passed; after the stop, everything still queued.
  void expiry_loop() {
    std::unique_lock<std::mutex> lock(mutex);
    while (state != State::stopped) {
      Clock::time_point earliest = Clock::time_point::max();
      for (const Pending& pending : queue) earliest = std::min(earliest, pending.deadline);
      expiry_wakes_at = earliest;
      if (earliest == Clock::time_point::max()) {
        expiry_check.wait(lock);
      } else {
        expiry_check.wait_until(lock, earliest);
      }
      expiry_wakes_at = Clock::time_point::min();  // awake: it scans the queue before waiting again
      const Clock::time_point now = Clock::now();
      std::vector<Pending> expired = take_expired_locked(now);
      if (expired.empty()) continue;
      lock.unlock();
      fail_expired(expired, now);
      lock.lock();
    }
    std::vector<Pending> left(std::make_move_iterator(queue.begin()), std::make_move_iterator(queue.end()));
    queue.clear();
    lock.unlock();
    if (!left.empty())
      fail_all(left, unavailable("model '" + options.model_name + "' is shutting down"), Clock::now());
  }
};

Scheduler::Scheduler(std::shared_ptr<PreparedModel> model, Options options) : impl_(std::make_unique<Impl>()) {
  impl_->model = std::move(model);
  impl_->options = std::move(options);
  impl_->options.instances = std::max(1, impl_->options.instances);
  impl_->options.max_queue_size = std::max(0, impl_->options.max_queue_size);
  impl_->call_ms_per_row = impl_->model->sla_estimate().deadline_margin_ms;
  if (impl_->options.batching.enabled) {
    const std::string refusal =
        impl_->options.batching.max_batch_size <= 1 ? "max_batch_size is 1" : batching_refusal(*impl_->model);
    const BatchRowsCheck& rows = impl_->model->sla_estimate().batch_rows;
    impl_->batching = refusal.empty();
    if (!refusal.empty())
      impl_->stats.batching = "off: " + refusal;
    else if (rows.verdict == BatchRowsCheck::Verdict::independent)
      impl_->stats.batching = "on; rows " + rows.detail;
    else
      impl_->stats.batching = "on; rows not checked" + (rows.detail.empty() ? "" : ": " + rows.detail);
  }
  Impl* impl = impl_.get();
  impl_->expiry_thread = std::thread([impl] {
    name_this_thread("tandem-expiry");
    impl->expiry_loop();
  });
  for (int i = 0; i < impl_->options.instances; ++i)
    impl_->workers.emplace_back([impl] {
      name_this_thread("tandem-sched");
      impl->worker_loop();
    });
}

Scheduler::~Scheduler() { drain(std::chrono::milliseconds(0)); }

std::optional<ProtocolError> Scheduler::refusal_now() {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.refusal_locked();
}

std::optional<ProtocolError> Scheduler::submit(InferRequest&& request, Clock::time_point deadline, Done done,
                                               bool caller_may_run) {
  Impl& s = *impl_;
  Impl::Pending pending;
  pending.batchable = s.is_batchable(request, &pending.rows);
  pending.request = std::move(request);
  pending.deadline = deadline;
  pending.done = std::move(done);
  std::unique_lock<std::mutex> lock(s.mutex);
  if (auto refusal = s.refusal_locked()) return refusal;
  pending.arrival = Clock::now();
  ++s.stats.admitted;
  ++s.outstanding;
  // Nothing waits and an instance is free: the caller's thread makes the engine call itself,
  // sparing two thread hand-offs (to a worker and back). Batching always queues: a request
  // may wait for companions.
  if (s.options.caller_runs && caller_may_run && !s.batching && s.queue.empty() && s.running < s.options.instances &&
      (deadline == Clock::time_point::max() || pending.arrival < deadline)) {
    ++s.running;
    ++s.stats.in_flight;
    s.stats.queue_time.record(0);
    ++s.stats.batch_rows[1];
    std::vector<Impl::Pending> batch;
    batch.push_back(std::move(pending));
    lock.unlock();
    s.run_batch(batch, batch.front().arrival);
    lock.lock();
    --s.running;
    const bool queued = !s.queue.empty();
    lock.unlock();
    if (queued) s.work_ready.notify_one();
    return std::nullopt;
  }
  s.queue.push_back(std::move(pending));
  const bool expiry_must_look = deadline < s.expiry_wakes_at;
  // Signalled after the unlock: a thread woken under the lock would only block on it again.
  lock.unlock();
  if (s.batching) {
    s.work_ready.notify_all();
  } else {
    s.work_ready.notify_one();
  }
  if (expiry_must_look) s.expiry_check.notify_one();
  return std::nullopt;
}

bool Scheduler::drain(std::chrono::milliseconds grace) {
  Impl& s = *impl_;
  std::lock_guard<std::mutex> serial(s.drain_mutex);
  if (s.drain_result) return *s.drain_result;
  bool finished = false;
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    s.state = Impl::State::draining;
    s.work_ready.notify_all();  // batches waiting for companions go now
    finished = s.all_finished.wait_until(lock, later_by(Clock::now(), std::max(grace, std::chrono::milliseconds(0))), [&] { return s.outstanding == 0; });
    s.state = Impl::State::stopped;
    s.work_ready.notify_all();
    s.expiry_check.notify_all();
  }
  for (std::thread& worker : s.workers) worker.join();
  s.expiry_thread.join();
  s.drain_result = finished;
  return finished;
}

Scheduler::Stats Scheduler::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Stats stats = impl_->stats;
  stats.queued = static_cast<int>(impl_->queue.size());
  return stats;
}

const std::shared_ptr<PreparedModel>& Scheduler::model() const { return impl_->model; }

}  // namespace tandem::server
