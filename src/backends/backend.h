// backend.h: the one interface every backend implements (reference, cpu, cuda, ...).
//
// The life of a model on a backend is prepare-then-run:
//   1. supports(node, types) is asked for each node at placement time, with the element types
//      shape inference found for its inputs and outputs. It answers ok only for what the
//      backend runs on its own path, or an `unsupported` Status with the reason (op, dtype,
//      attribute); that is not a fault. A node a backend accepts runs there: placement
//      reports where work runs, and a backend never hands accepted work to another one.
//   2. compile(graph) validates the (sub)graph placed on this backend, plans its memory and
//      packs its weights into a Plan. All validation happens here.
//   3. run(plan, ...) executes. It does no validation beyond what depends on input values.
//      It may be called concurrently on one Plan from many threads.
// Tensors passed to run() are host tensors; a backend whose device memory the host cannot
// address copies them in and out itself (or keeps resident copies) and returns only when its
// outputs are on the host.
//
// What the engine needs to know about a backend besides its name it asks the backend, never
// the name: device_kind() (which processor it computes on, for ComputeUnits and capability
// reports), is_reference() (the exact backend every route falls back to, placed last), and
// version() (part of the compiled-model cache key).
//
// Thread-safety: a Backend object is shared by all models; its methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"
#include "tandem/backend_info.h"
#include "tandem/precision.h"
#include "tandem/status.h"
#include "tandem/value.h"

namespace tandem {

// Limits a run may not exceed; backends check them between nodes (or kernel launches).
struct RunControl {
  std::chrono::steady_clock::time_point deadline = std::chrono::steady_clock::time_point::max();
  const std::atomic<bool>* cancel = nullptr;  // borrowed; a run stops when it becomes true
};

// A backend's compiled form of a graph. Immutable once built; owned by the caller of compile().
class Plan {
 public:
  virtual ~Plan() = default;
  // What the backend made of its graph (rewrites, fusions, kernels, layouts), one item a line,
  // for `tandem info --optimized`; empty when the backend runs the graph as given.
  virtual std::string describe() const { return {}; }
  // Nodes of the compiled graph this plan could not run on the backend's own kernels for the
  // shapes known at compile, each named by its first non-empty output, with the reason.
  // Placement moves them to the next backend and compiles again, so that the placement report
  // says where work runs. Empty for backends that run everything they accept.
  struct Declined {
    std::string output;
    std::string reason;
  };
  virtual std::vector<Declined> declined() const { return {}; }
};

struct CompileOptions {
  int threads = 0;  // 0: the backend's default
  // The lowest precision the backend may compute in (see tandem/precision.h). A backend that
  // cannot honour a reduced precision natively answers `unsupported` from compile().
  Precision precision = Precision::fp32;
  // A folder where the backend may keep what it measured on this machine (the cpu backend's
  // timed kernel choices, `cpu-*` files) and read what other processes kept, so that every
  // process sharing the folder compiles alike; empty: nothing kept. The engine passes its
  // EngineOptions::cache_dir. Backends name their files with their own name first.
  std::filesystem::path cache_dir;
  // The most memory (bytes) a plan keeps for the input shapes it has built, for a backend that
  // builds per input shape (the cpu backend: kernels, activation arena and scratchpad per
  // signature); beyond it the least recently used shape's build goes (the newest always stays)
  // and is built again if that shape returns. 0: the backend's default (cpu: 1 GiB, or
  // TANDEM_CPU_INSTANCE_CACHE_MB). The engine passes PrepareOptions::shape_cache_mb.
  size_t shape_cache_bytes = 0;
};

// The element types of a node's inputs and outputs as shape inference found them, by
// position. DataType::undefined: unknown, not a tensor, or an omitted optional input/output.
// Borrowed nowhere: it owns its vectors.
struct NodeTypes {
  std::vector<DataType> inputs;
  std::vector<DataType> outputs;

  DataType input(size_t i) const { return i < inputs.size() ? inputs[i] : DataType::undefined; }
  DataType output(size_t i) const { return i < outputs.size() ? outputs[i] : DataType::undefined; }
};

class Backend {
 public:
  virtual ~Backend() = default;
  // The registry name (EngineOptions::backends, routes, placement reports); lives as long as
  // the backend.
  virtual std::string_view name() const = 0;
  // DeviceKind: see tandem/backend_info.h.
  virtual DeviceKind device_kind() const = 0;
  // True for the exact backend every other one is checked against: it runs every op tandem
  // knows, comes last in every placement order and is the route of last resort. Exactly one
  // registered backend is the reference.
  virtual bool is_reference() const { return false; }
  // The version of the backend's code and of the libraries it computes with; a new version
  // invalidates cached measurements. Lives as long as the backend.
  virtual std::string_view version() const = 0;
  virtual Status supports(const Node& node, const NodeTypes& types) const = 0;
  // Whether compile() honours CompileOptions::precision `p` natively: ok, or `unsupported`
  // saying why (a backend never emulates a precision slowly). fp32 must be ok. int8 means the
  // backend computes the integer ops of an already quantized graph (DynamicQuantizeLinear,
  // ConvInteger, MatMulInteger, ...) on native int8 kernels; the engine does the rewrite.
  virtual Status supports_precision(Precision p) const = 0;
  virtual Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) = 0;
  // `inputs` bind to graph.inputs in order; `outputs` receives graph.outputs in order.
  // A backend may write into tensors already in `*outputs` (from an earlier run) when their
  // dtype and shape match and Tensor::buffer_unshared() holds; other entries are replaced.
  // On failure `*outputs` is unspecified.
  virtual Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
                     const RunControl& control) = 0;
};

// The backends compiled into this build, in preference order (the reference backend last).
std::vector<std::string_view> available_backends();
// The backend named `name`, or nullptr. Backends are process-wide singletons.
Backend* find_backend(std::string_view name);
// The reference backend (never null).
Backend* reference_backend();

}  // namespace tandem
