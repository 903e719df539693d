// plan.h: the cpu backend's compiled plan of a segment: compile (compile.cpp), its per-signature
// instances (instance.cpp), the run loop (run.cpp) and what it reports (describe.cpp).
//
// Life of a segment on the cpu backend (see cpu_backend.h for the public side):
//   compile  (once per segment graph)
//     - Values: one CompiledValue per name; values known at compile time (initializers,
//       Constant outputs, folded nodes) keep their Tensor.
//     - Steps: one per node, in topological order. Each gets an OpSpec from the family that
//       implements its op (conv.cpp, elementwise.cpp, ...; see op_table.h). fusion.cpp then
//       rewrites patterns (decomposed HardSwish, x*Sigmoid(x)) and lets specs absorb their
//       single reader (Conv absorbs BatchNormalization, per-channel affine ops and
//       activations, ...). A fused step remembers the original nodes it stands for.
//     - Specs pack what does not depend on input shapes (folded weights and biases).
//   instance (once per distinct input signature: dtypes, shapes, small integer values)
//     - Shapes of every value come from tandem's shape inference with the concrete inputs;
//       values it can compute (Shape -> Gather -> Concat chains) become constants.
//     - Each live step's OpSpec::prepare() chooses layouts and creates Kernels (oneDNN
//       primitives are created and weights reordered here, cached by shape).
//     - Memory is planned into one arena (offsets by lifetime); views alias their base.
//   run (many times, possibly concurrently)
//     - A Context (arena, oneDNN stream and memory objects) is taken from the instance's pool;
//       kernels run in order; outputs are the only allocations.
//
// Element types are settled before steps exist: supports() declines nodes whose types the
// backend does not compute on (they are placed on reference, visibly), and float16 segments
// are widened to float32 at compile (widen_half_precision). What a fast path still cannot do
// for a concrete instance (a shape oneDNN rejects, an operand layout a kernel lacks) runs the
// step's original nodes with the reference kernels ("generic" kernel). When the input shapes
// are fixed at compile, the instance is built there and CpuPlan::declined() hands such nodes
// back to placement, which moves them to the reference backend: the generic kernel then only
// serves shapes first seen at run time (symbolic dims), and `info --optimized` counts it. A
// family can also decline a node at compile, whatever the shapes, when what it would need is a
// run's data (a recurrent layer's weights or sequence lengths given at run time): its make
// function returns `unsupported`, and declined() hands that node back as well.
//
// Thread-safety: CompiledGraph and Instance are immutable after construction except for the
// mutex-protected caches (instances, context pools, packed weights). Kernels are const and run
// concurrently on different Contexts.
//
// CpuPlan owns a CompiledGraph (compiled_graph.h) and a cache of Instances keyed by the input
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
// processes is handled by TeamSizer (threads.h).
//
// When an instance cannot be built with the fast kernels (a shape that shape inference cannot
// resolve, for example), the whole segment runs on the reference kernels for that signature
// (reference_nodes.h).
//
// Debugging: TANDEM_CPU_VERBOSE=1 prints fusion decisions, fallbacks and oneDNN implementations;
// TANDEM_CPU_PROFILE=1 (or =all) prints per-kernel times after every run (top 25, or all).
//
// The instance cache keeps the 32 most recently used instances, fewer when their arenas and
// scratchpads (one of each per context made) pass CompileOptions::shape_cache_bytes together
// (default 1 GiB, or TANDEM_CPU_INSTANCE_CACHE_MB).
//
// Ownership: the plan owns everything; instances are shared_ptrs so that eviction never frees
// one a concurrent run still uses. Thread-safety: run() is safe to call concurrently.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/instance.h"
#include "backends/cpu/reference_nodes.h"

namespace tandem::cpu {

class CpuPlan final : public Plan {
 public:
  CompiledGraph g;

  // Runs the plan (the Backend::run contract).
  Status run(const std::vector<Value>& inputs, std::vector<Value>* outputs, const RunControl& control) const;

  // The rewritten graph: steps after folding and fusion, then each built instance's kernels
  // with their output shapes and layouts (for `tandem info --optimized`).
  std::string describe() const override;
  // The original nodes of generic steps (or every node when the segment fell back to the
  // reference kernels) of the instances built so far: at compile, those of the fixed input
  // signature.
  std::vector<Declined> declined() const override;

  // The instance for the signature of `inputs` (dtypes, shapes, keyed values) built for a team
  // of `threads`, built on first use. compile_graph() calls it with zero tensors when the
  // signature is fixed; run() asks for a one-thread instance when the cores are taken.
  Result<std::shared_ptr<Instance>> instance_for(const std::vector<Value>& inputs, int threads) const;

 private:
  // `threads`: the team size to build for (the plan's; small models are rebuilt with 1).
  Result<std::shared_ptr<Instance>> build_instance(const std::vector<Value>& inputs, int threads) const;
  // Runs the whole segment on the reference kernels (an instance that could not be built).
  Status run_on_reference_kernels(const std::vector<Value>& inputs, std::vector<Value>* outputs,
                                  const RunControl& control) const;
  std::unique_ptr<Context> make_context(const Instance& inst) const;

  mutable std::mutex cache_mu_;
  mutable std::list<std::shared_ptr<Instance>> cache_;  // most recently used first
  mutable std::mutex build_mu_;
  mutable std::mutex ref_mu_;
  mutable std::shared_ptr<const ReferenceGraph> ref_graph_;  // prepared on first use
};

// Compiles a segment graph into a CpuPlan.
Result<std::unique_ptr<CpuPlan>> compile_graph(const Graph& graph, const CompileOptions& options);

}  // namespace tandem::cpu
