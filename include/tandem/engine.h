// tandem/engine.h: the engine, the part of tandem an application talks to.
//
//   auto engine = tandem::Engine::create({});                 // every backend, reference last
//   auto model = (*engine)->prepare("m.onnx", {.input_shapes = {{"x", {1, 3, 48, 192}}}});
//   auto result = (*engine)->infer(*model, {{"x", tandem::Value::of(x)}}, {.timeout_ms = 200});
//   result->outputs.at("y"); result->backend;  // which backend answered
//
// Prepare loads the model, compiles a chain of *routes* (a route is a backend at a precision,
// "cpu@bf16", "cpu", placed on [backend, reference] so that nodes the backend declines run on
// the reference backend; the last route is the reference backend alone), runs warm-up
// requests to measure each route's latency, and derives from it the time budget after which a
// call on that route is abandoned. Infer walks the routes in order: a route whose circuit
// breaker is open is skipped, a call that fails (or overruns its budget) is retried on the
// next route within the same deadline (a transient device error first on the same route,
// `same_route_retries`); optionally a slow call is hedged on the next route.
// Strict mode never leaves the first route. See docs/engine.md for the design and defaults.
//
// Ownership and lifetime: an Engine is owned by its creator. A PreparedModel is shared
// (std::shared_ptr); it does not refer back to the Engine, so it may outlive it. Destroying
// the last reference to a PreparedModel stops its parity thread and worker threads; calls
// abandoned on a hung backend keep what they use alive until they return.
// Thread-safety: Engine and PreparedModel are thread-safe; many threads may call infer() on
// one PreparedModel at once. Options and results are plain values.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tandem/precision.h"
#include "tandem/status.h"
#include "tandem/telemetry.h"
#include "tandem/value.h"

namespace tandem {

// Which kinds of processor a prepared model may run on. Each backend says which kind it
// computes on (cpu, gpu or npu; BackendInfo::device_kind); the reference backend and the cpu
// backend are CPU backends.
enum class ComputeUnits {
  all,          // every backend in the engine's order
  cpu_only,     // CPU backends only
  cpu_and_gpu,  // CPU and GPU backends (today the same as `all`)
  cpu_and_ne,   // reserved for neural-engine backends: prepare() answers `unsupported`
};
enum class FallbackPolicy {
  fallback,  // a failed call is retried on the next backend within the deadline
  strict,    // only the first backend serves; its typed error (or `unavailable`) is returned
};
std::string_view compute_units_name(ComputeUnits u);  // "all", "cpu_only", ...
// Parse the names above; invalid_argument otherwise.
Result<ComputeUnits> parse_compute_units(std::string_view text);

// Parses a comma-separated route chain ("cpu@bf16,cpu@fp32,reference") into route names for
// PrepareOptions::routes, each in its canonical form (float32 routes without a suffix).
// Errors: invalid_argument naming the bad item. Whether the backends exist is checked by prepare().
Result<std::vector<std::string>> parse_route_chain(std::string_view text);

struct EngineOptions {
  // Backends in preference order. Empty: every backend in the build (available_backends()).
  // "reference" is appended when missing and always moved last. Unknown names: invalid_argument.
  std::vector<std::string> backends;
  int threads = 0;  // threads per backend compile/run (CompileOptions::threads); 0: backend default
  // Where prepare() writes `<cache_key>.json` (placement and warm-up measurements) and the
  // backends keep the kernel choices they time while compiling (the cpu backend's
  // `cpu-choices-<machine>.tsv`): every process that shares the folder then compiles the same
  // kernels, so they give the same bits for the same input, and skips the timing. Created if
  // missing; empty: nothing is kept and each process times its own choices.
  std::filesystem::path cache_dir;
  // Per prepared model and backend: worker threads that run calls (0: max(4, hardware threads)),
  // and the most calls that may be abandoned-but-still-running at once; when that many are hung,
  // new calls to that backend fail at once with `unavailable` (and fall back).
  int max_workers_per_backend = 0;
  int max_hung_calls_per_backend = 16;
};

// Circuit breaker thresholds (one breaker per prepared model and backend).
struct BreakerOptions {
  int window_size = 100;             // outcomes kept in the sliding window (count bound)
  double window_seconds = 30;        // outcomes older than this leave the window (time bound)
  int min_requests = 20;             // outcomes needed before the rates below are judged
  // Trip when failures / outcomes >= this (fallback mode). Set well above any failure rate the
  // fallback should absorb request by request: a route failing now and then still answers most
  // requests faster than the next route would answer all of them, and a sliding window checked
  // at every outcome reaches a threshold near the true rate often (at 10% random failures a
  // threshold of 0.2 tripped every few thousand requests, docs/engine.md).
  double failure_rate = 0.5;
  // The same in strict mode, where nothing can take over: an open breaker turns every request
  // into `unavailable`, so it trips only when the backend fails most calls.
  double strict_failure_rate = 0.6;
  double sla_breach_rate = 0.5;      // trip when SLA breaches / outcomes >= this (needs latency_sla_ms)
  int parity_violations = 3;         // trip at this many parity violations within window_seconds (0: never)
  double cooldown_ms = 1000;         // first open period
  double backoff_multiplier = 2;     // each consecutive trip multiplies the cooldown ...
  double max_cooldown_ms = 30000;    // ... up to this
  int half_open_probes = 2;          // calls admitted at once while half-open
  // Probes judged together while half-open: the breaker closes once this many are done with
  // failures (and SLA breaches) below the trip rates of this many, and reopens as soon as they
  // reach them (at 0.5 and 5 probes: the third failure), so a route back at its usual failure
  // rate closes while a dead one is out again after a few probes.
  int half_open_calls = 5;
};

// Parity budget: a sample violates it when any of its float outputs exceeds any bound.
// Use infinity to disable a bound.
struct ParityBudget {
  double max_abs = 1e-3;
  double max_rel = 1e300;  // effectively off: relative error explodes near zero
  double rmse = 1e-4;
};
// The budget a route computing in `p` is held to unless PrepareOptions::parity_budget says
// otherwise: fp32 max-abs 1e-3, RMSE 1e-4 (reassociation and fused kernels only); fp16 and
// bf16 max-abs 1e-2, RMSE 1e-3 (8 or 11 bits of mantissa in the operands of every product);
// int8 max-abs 5e-2, RMSE 1e-2 (8-bit weights and activations; the noise touches every element).
ParityBudget default_parity_budget(Precision p);

struct PrepareOptions {
  std::string name;  // label in telemetry; default: the file's stem, or "model" for bytes
  ComputeUnits compute_units = ComputeUnits::all;
  // The default chain's precision (see `routes`). int8: the int8 routes compile a dynamically
  // quantized rewrite of the model made at prepare (per-channel int8 weights, activations
  // quantized per call; docs/engine.md); left out, with a placement note, when nothing in the
  // model can be quantized.
  Precision precision = Precision::fp32;
  double latency_sla_ms = 0;       // a success slower than this is an SLA breach; 0: no SLA
  double default_deadline_ms = 0;  // deadline of requests that bring none; 0: none
  FallbackPolicy fallback = FallbackPolicy::fallback;
  double parity_sample_rate = 0;   // fraction (0..1) of non-reference answers re-run on reference
  // Unset: default_parity_budget(precision).
  std::optional<ParityBudget> parity_budget;
  bool parity_trips_breaker = true;  // parity violations count toward the breaker
  int parity_queue_capacity = 64;    // pending samples; more are dropped (and counted)
  bool output_guard = false;  // non-finite float outputs fail the call with device_error
  // Fixed shapes of inputs (by name). They specialise compilation, key the cache, shape the
  // warm-up inputs, and requests must match them. A dim given as -1 stays as declared (say, a
  // batch dim left free while the image size is fixed). Inputs not named use their declared
  // dims (symbolic dims become 1 for warm-up).
  std::map<std::string, std::vector<int64_t>> input_shapes;
  BreakerOptions breaker;
  // The route chain, e.g. {"cpu@bf16", "cpu@fp32", "reference"} (a route is a backend at a
  // precision; "cpu" is "cpu@fp32"). Empty: the default chain from `precision` and what the
  // backends support natively (src/engine/routes.h); the reference route is appended when
  // missing and must be last. A route whose backend cannot honour its precision natively
  // fails prepare with `unsupported`.
  std::vector<std::string> routes;
  // Hedging: when a call has run past its route's `hedge_quantile` latency (measured, at
  // least 20 answers, else the warm-up estimate) with no answer, the request also starts on
  // the next admitted route; the first good answer wins and the other call is cancelled.
  bool hedging = false;
  double hedge_quantile = 0.95;
  // Retries on the same route: a call whose backend answers `device_error` (a transient
  // device fault; not a timeout, out_of_memory, unsupported, an output-guard or a parity
  // failure) is made again on the same route, up to this many times per route and request,
  // while the route's breaker stays closed and the time left (less what later routes keep
  // back) still holds the route's usual latency. A retry is cheap where the next route is slow
  // (the reference answers 10-100x slower), and in strict mode it is the only second chance.
  // Every failed call counts for the breaker as usual. Hedged calls are not retried. 0: off.
  int same_route_retries = 1;
  // Fault injection in front of a route, e.g. "route=cpu@bf16,error=0.3,hang_ms=500" (see
  // src/engine/faulty_backend.h); without route=, the first route. Several specs, separated by
  // ';', wrap several routes. When the last route (the reference) is named, the faulty wrapper
  // becomes a route of its own in front of the plain reference.
  std::string fault_injection;
  int warmup_runs = 3;                  // per route; 0 skips warm-up (budgets then learn online)
  // A route's warm-up stops once its runs have taken this long together; the runs made (the
  // first included) are then its figures. The reference route at a large fixed shape (the
  // PP-OCRv4 detector at 960x1280: 7 s a run) would otherwise hold prepare for warmup_runs x that.
  double warmup_time_cap_ms = 1000;
  // After those runs, this many calls at once per route, so that each route holds as many warm
  // run contexts (memory touched, kernel state made) as there will be concurrent callers; the
  // first concurrent request otherwise pays for a cold one. Set it to the expected number of
  // concurrent infer() calls (it is capped at EngineOptions::max_workers_per_backend, the most
  // calls a route runs at once); each context costs the model's activation memory.
  int warmup_concurrency = 1;
  // More sizes of the inputs' free first dim to warm each route (but the reference) for, each
  // run once and then `warmup_concurrency` times at once: a caller that merges requests into
  // batches of these sizes (a server's dynamic batching) would otherwise build each size's
  // plan and run contexts during its first request of that size. Inputs whose first dim is
  // fixed keep it; a size below 1 fails prepare with invalid_argument. Not measured: the
  // estimate comes from the runs above.
  std::vector<int64_t> warmup_batch_sizes;
  // Check at prepare that the inputs' free first dim is a batch dim, as a caller that merges
  // requests along it needs (SlaEstimate::batch_rows): the model runs on two rows of seeded
  // values alone and together, on the first route computing in fp32 (the reference last) that
  // completes the three runs, and every output must have as many rows as its inputs, each as
  // it was alone (floats within the route's parity budget: another batch size may take
  // another kernel). Reduced-precision routes are tried only after those: their rows may move
  // beside others within their budget (an int8 route quantizes activations per call, over
  // all its rows). Declared shapes cannot tell: exporters name an output's first dim apart
  // from the input's, and a Softmax or a normalization over dim 0 keeps the shape while it
  // mixes rows.
  bool check_batch_rows = false;
  // The most memory (MiB) each route keeps for the input shapes it has built: a model with
  // free dims gets, on the cpu backend, kernels and an activation arena per input signature
  // (up to 32 signatures), some 100 MB each for a detector at large image sizes. Beyond this
  // the least recently used signature's build goes (the newest always stays) and is built
  // again if it returns. 0: the backend's default (cpu: 1024, or TANDEM_CPU_INSTANCE_CACHE_MB).
  // Must be >= 0.
  double shape_cache_mb = 0;
  // A call is abandoned as hung after this x its route's latency estimate at the request's
  // input shape (measured per shape: a model with free dims takes longer at larger inputs) ...
  double attempt_budget_multiplier = 8;
  double min_attempt_budget_ms = 50;    // ... but never before this
  // Budget of a route without an estimate yet, and the least budget of a call at an input shape
  // the route has not answered yet (that call may build the shape's plan; its estimate is
  // scaled from the nearest measured shape by the ratio of input elements, and its budget is
  // at most 30 times this).
  double unmeasured_budget_ms = 2000;
  // Time kept back for a later route: this x its usual (median) latency + 0.5 ms, for the
  // first later route that fits in what remains (the slow last resort only when no faster
  // route fits).
  double fallback_reserve_multiplier = 2;
  uint64_t seed = 0;                    // warm-up inputs, parity sampling, fault injection
};

struct InferOptions {
  // Absolute deadline; if unset, now + timeout_ms; if that is 0, the model's default deadline.
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  double timeout_ms = 0;
  const std::atomic<bool>* cancel = nullptr;  // borrowed; the request stops soon after it turns true
  // Called by the thread that called infer(), about every 2 ms while it waits for a backend;
  // returning true cancels the request like `cancel`. For embedders that must notice an
  // interrupt on the calling thread itself (the Python bindings check for Ctrl-C here). Must be
  // cheap and must not call infer(). Borrowed; may be null.
  bool (*interrupted)(void* context) = nullptr;
  void* interrupted_context = nullptr;
};

struct InferTimings {
  double queue_ms = 0;    // waiting for worker threads (all calls of the request)
  double compute_ms = 0;  // running on backends (all calls, abandoned ones until abandoned)
  double total_ms = 0;    // the whole infer() call
};

struct InferResult {
  std::map<std::string, Value> outputs;  // by output name
  std::vector<std::string> output_order;  // the model's output names in declared order
  std::string backend;          // the route that answered ("cpu", "reference", ...)
  std::string fallback_reason;  // why earlier routes did not answer ("" when the first did),
                                // e.g. "faulty(cpu): breaker_open" or "cpu: device_error: ..."
  int attempts = 0;             // calls made (skipped routes not counted)
  InferTimings timings;
};

struct IoDim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // non-empty when symbolic; both unset: unknown
};
struct IoInfo {
  std::string name;
  std::string kind;     // "tensor", "sequence", "optional", "map" or "unknown"
  DataType dtype = DataType::undefined;
  bool has_shape = false;
  std::vector<IoDim> dims;
  bool required = true;  // inputs only: false when an initializer provides a default
  std::string type;      // "float32[1,3,N,W]"
};
struct IoSchema {
  std::vector<IoInfo> inputs;
  std::vector<IoInfo> outputs;
};

// Whether the inputs' free first dim is a batch dim: whether one call may serve the rows of
// several callers, merged along that dim, and each get what it would get alone
// (PrepareOptions::check_batch_rows).
struct BatchRowsCheck {
  enum class Verdict {
    unchecked,    // not asked for, or the model could not be run for it (detail says why)
    independent,  // every output row depended only on the same input row
    dependent,    // an output's first dim is not the rows', or a row changed beside another
  };
  Verdict verdict = Verdict::unchecked;
  std::string detail;  // one line: what was found, or why nothing was
};

struct SlaEstimate {
  bool measured = false;     // false when warm-up could not run on the first route
  double estimate_ms = 0;    // the first route's estimate (slowest warm-up run after the first)
  // The input shapes warm-up ran at (the fixed dims, and 1 for each free dim unless
  // PrepareOptions::input_shapes fixes it): the estimates hold at these shapes. Empty when
  // warm-up could not make inputs.
  std::map<std::string, std::vector<int64_t>> warmup_shapes;
  int warmup_runs = 0;
  std::map<std::string, double> per_backend_ms;  // every route that measured
  // Runs each of those routes made (below warmup_runs when warmup_time_cap_ms stopped it).
  std::map<std::string, int> per_backend_runs;
  // What a call at the warm-up shape wants before its deadline, in ms: the first route's
  // estimate plus the time the engine keeps back for falling back to the next measured route
  // (its median warm run x PrepareOptions::fallback_reserve_multiplier + 0.5); 0 when not
  // measured. A caller that holds requests back (a batching queue) sends them by then.
  double deadline_margin_ms = 0;
  std::string note;          // why it is not measured, if so
  // PrepareOptions::warmup_batch_sizes that every route but the reference ran at warm-up
  // (none when no input has a free first dim).
  std::vector<int64_t> warmed_batch_sizes;
  BatchRowsCheck batch_rows;  // PrepareOptions::check_batch_rows's finding
};

// Where each node of each route runs, and why earlier backends declined it.
struct PlacementInfo {
  struct NodeInfo {
    std::string node;
    std::string op_type;
    std::string backend;
    std::vector<std::pair<std::string, std::string>> declined;  // backend, reason
  };
  struct Route {
    std::string backend;
    std::vector<NodeInfo> nodes;
    std::map<std::string, int> nodes_per_backend;
    int segments = 0;
  };
  std::vector<Route> routes;       // in routing order
  std::vector<std::string> notes;  // routes dropped at prepare time, and why
  std::string to_string() const;   // a human-readable report
};

struct Capabilities {
  std::string device;                 // "cpu x86_64 (avx2,fma)" ...
  std::vector<DataType> dtypes;       // element types of the model's inputs and outputs it accepts
  std::string requested_backend;      // the first route
  std::string actual_backend;         // the route that served most requests so far ("" if none)
  std::map<std::string, double> node_share;  // first route: fraction of nodes per backend
  double p50_ms = 0;                  // measured end-to-end latency so far (0 before any request)
  double p99_ms = 0;
  std::vector<std::string> routes;    // every route in order
  std::string compute_units;
  std::string precision;
};

class PreparedModel {
 public:
  virtual ~PreparedModel() = default;
  virtual const IoSchema& io_schema() const = 0;
  // 64 hex digits; see docs/engine.md for what it covers.
  virtual const std::string& cache_key() const = 0;
  // The text whose sha256 is the cache key (one `field=value` per line).
  virtual const std::string& cache_key_text() const = 0;
  virtual const SlaEstimate& sla_estimate() const = 0;
  virtual const PlacementInfo& placement() const = 0;
  virtual const std::string& name() const = 0;
  virtual Result<InferResult> infer(const std::map<std::string, Value>& inputs, const InferOptions& options = {}) = 0;
  virtual Capabilities capabilities() const = 0;
  virtual ModelTelemetry telemetry() const = 0;
  // Waits until queued parity samples have been compared (for end-of-run reports), at most
  // `timeout_ms`. Returns true when the queue drained.
  virtual bool drain_parity(double timeout_ms) = 0;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> create(const EngineOptions& options = {});
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  Result<std::shared_ptr<PreparedModel>> prepare(const std::filesystem::path& model_path,
                                                 const PrepareOptions& options = {});
  Result<std::shared_ptr<PreparedModel>> prepare_bytes(std::string_view model_bytes,
                                                       const PrepareOptions& options = {});
  Result<InferResult> infer(PreparedModel& prepared, const std::map<std::string, Value>& inputs,
                            const InferOptions& options = {});
  Capabilities capabilities(const PreparedModel& prepared) const;
  // Backends in the engine's order (reference last).
  const std::vector<std::string>& backends() const;
  // Telemetry of every prepared model still alive, as Prometheus text.
  std::string metrics_prometheus() const;

 private:
  friend class EngineInternals;  // the engine's test hooks
  struct Impl;
  explicit Engine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace tandem
