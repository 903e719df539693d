// executor.h: the cpu backend's compiled plan, its per-shape instances and the run loop.
//
// CpuPlan owns a CompiledGraph (see cpu_ops.h) and a cache of Instances keyed by the input
// signature (dtype and shape of every input, plus the values of small integer or shape-deciding
// inputs). The first run with a new signature builds the Instance under the plan's build mutex;
// later runs find it with a short mutex-protected scan. Each run borrows a Context (arena,
// oneDNN stream, per-kernel state) from the instance's pool and returns it afterwards, so runs
// on one plan may proceed concurrently without heap allocation beyond the output tensors.
//
// Threads: an instance is built for a team size (the plan's, CompileOptions::threads or the
// physical cores; 1 for small models). Runs in progress count their teams process-wide; a run
// whose team would take the total past max(physical cores, plan threads) uses the instance built
// for one thread instead, so concurrent requests never oversubscribe the cores. OpenMP is the one
// pool, shared by oneDNN's primitives and the backend's own kernels. Competition from other
// processes is handled by TeamSizer (below).
//
// When an instance cannot be built with the fast kernels (a shape that shape inference cannot
// resolve, for example), the whole segment runs on the reference executor for that signature.
//
// Debugging: TANDEM_CPU_VERBOSE=1 prints fusion decisions, fallbacks and oneDNN implementations;
// TANDEM_CPU_PROFILE=1 (or =all) prints per-kernel times after every run (top 25, or all).
//
// Ownership: the plan owns everything; instances are shared_ptrs so that eviction never frees
// one a concurrent run still uses. Thread-safety: run() is safe to call concurrently.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <vector>

#include "backends/cpu/cpu_ops.h"

namespace tandem {
struct ExecutionPlan;
}

namespace tandem::cpu {

struct Context {
  std::shared_ptr<std::byte> arena;     // Instance::arena_bytes, kAlign-aligned
  std::shared_ptr<std::byte> scratch;   // Instance::scratch_bytes
  std::vector<void*> ptr;               // per value
  std::vector<Tensor> held;             // per value (generic outputs of non-POD dtypes)
  std::vector<Tensor> out;              // per output buffer, during a run
  std::vector<std::unique_ptr<KernelState>> states;  // per kernel
  dnnl::stream stream;
};

// Where a segment output comes from in one run.
struct OutputSource {
  enum class Kind : uint8_t { buffer, constant, input, held, same_as } kind = Kind::buffer;
  int value = -1;   // buffer/held: the value; same_as: the earlier output index
  int input = -1;   // input: the segment input index
  Tensor constant;
};

struct InstanceKey {
  std::vector<DataType> dtypes;
  std::vector<Shape> shapes;
  std::vector<std::vector<uint8_t>> values;  // raw bytes of keyed inputs (empty otherwise)
  std::vector<bool> none;                    // input absent (empty optional)
};

// Chooses, run by run, between an instance's full OpenMP team and the instance built for one
// thread. When other processes compete for the cores, a team waits at every barrier for a
// member the kernel has descheduled, and a two-thread run can become several times slower than
// a one-thread run. The sizer watches the team's latency: once its moving average (weight 1/4)
// exceeds 1.5x its baseline (the best run so far), the next `window` runs (first 8) use one
// thread; then one run probes the team again. If the team is still slower than one thread, the
// window doubles (up to 256); otherwise the team stays and the probe's time becomes the new
// baseline. On a quiet machine the team's average never leaves its baseline and nothing changes.
// Times are in milliseconds. Thread-safe.
class TeamSizer {
 public:
  // True when this run should use one thread (counts the run against the window).
  bool choose_single();
  // Records a run's latency; `single` says which instance ran it.
  void record(bool single, double ms);

 private:
  std::mutex mu_;
  double team_baseline_ = 0;  // 0: no team run yet
  double team_average_ = 0;
  int team_runs_ = 0;
  double single_average_ = 0;  // 0: no one-thread run yet
  int single_left_ = 0;        // runs still to make on one thread
  int window_ = 8;
  bool probe_pending_ = false;  // the next team run is a probe
};

struct Instance {
  InstanceKey key;
  std::vector<IValue> values;
  std::vector<std::unique_ptr<Kernel>> kernels;
  std::vector<bool> fixed;          // per value: pointer fixed for a context's life
  std::vector<int> alias_order;     // alias values, bases before views
  std::vector<int> output_values;   // values with Kind::output, by output buffer index
  std::vector<OutputSource> outputs;
  int64_t arena_bytes = 0;
  int64_t scratch_bytes = 0;
  int threads = 1;                  // OpenMP team size for this instance's kernels
  int requested_threads = 1;        // the team size it was asked for (small models get 1)
  double work = 0;                  // estimated multiply-adds of its oneDNN kernels
  bool use_reference = false;       // run the whole segment on the reference executor
  std::string reference_reason;
  // Steps that run their original nodes with the reference kernels (the generic path), by
  // step index, with the reason the fast path declined.
  std::vector<std::pair<int, std::string>> generic_steps;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Context>> pool;
  TeamSizer sizer;  // used when threads > 1
};

class CpuPlan final : public Plan {
 public:
  CompiledGraph g;

  // Runs the plan (the Backend::run contract).
  Status run(const std::vector<Value>& inputs, std::vector<Value>* outputs, const RunControl& control) const;

  // The rewritten graph: steps after folding and fusion, then each built instance's kernels
  // with their output shapes and layouts (for `tandem info --optimized`).
  std::string describe() const override;
  // The original nodes of generic steps (or every node when the segment fell back to the
  // reference executor) of the instances built so far: at compile, those of the fixed input
  // signature.
  std::vector<Declined> declined() const override;

  // The instance for the signature of `inputs` (dtypes, shapes, keyed values) built for a team
  // of `threads`, built on first use. compile_graph() calls it with zero tensors when the
  // signature is fixed; run() asks for a one-thread instance when the cores are taken.
  Result<std::shared_ptr<Instance>> instance_for(const std::vector<Value>& inputs, int threads) const;

 private:
  // `threads`: the team size to build for (the plan's; small models are rebuilt with 1).
  Result<std::shared_ptr<Instance>> build_instance(const std::vector<Value>& inputs, int threads) const;
  Status run_reference(const std::vector<Value>& inputs, std::vector<Value>* outputs, const RunControl& control) const;
  std::unique_ptr<Context> make_context(const Instance& inst) const;

  mutable std::mutex cache_mu_;
  mutable std::list<std::shared_ptr<Instance>> cache_;  // most recently used first
  mutable std::mutex build_mu_;
  mutable std::mutex ref_mu_;
  mutable std::shared_ptr<const ExecutionPlan> ref_plan_;
};

// Compiles a segment graph into a CpuPlan.
Result<std::unique_ptr<CpuPlan>> compile_graph(const Graph& graph, const CompileOptions& options);

// Applies the plan's thread count to OpenMP (and so oneDNN) for the calling thread.
void set_threads(int threads);

}  // namespace tandem::cpu
