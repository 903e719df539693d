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
// Device backends own memory the host cannot address: alloc() returns a buffer on the
// backend's device and copy() moves bytes between host and device buffers. Tensors passed to
// run() are host tensors; a device backend copies them in and out itself or keeps resident
// copies made with alloc()/copy(). sync() waits until queued device work has finished.
//
// Thread-safety: a Backend object is shared by all models; its methods are thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "graph/graph.h"
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

// Memory owned by a backend: host memory for host backends, device memory otherwise.
struct Buffer {
  void* data = nullptr;
  size_t bytes = 0;
  bool on_host = true;
  std::shared_ptr<void> owner;  // keeps the allocation alive; freed with the last copy
};

struct CompileOptions {
  int threads = 0;  // 0: the backend's default
  // The lowest precision the backend may compute in (see tandem/precision.h). A backend that
  // cannot honour a reduced precision natively answers `unsupported` from compile().
  Precision precision = Precision::fp32;
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
  virtual std::string_view name() const = 0;
  virtual Status supports(const Node& node, const NodeTypes& types) const = 0;
  // Whether compile() honours CompileOptions::precision `p` natively: ok, or `unsupported`
  // saying why (a backend never emulates a precision slowly). fp32 must be ok.
  virtual Status supports_precision(Precision p) const = 0;
  virtual Result<std::unique_ptr<Plan>> compile(const Graph& graph, const CompileOptions& options) = 0;
  virtual Result<Buffer> alloc(size_t bytes) = 0;
  // Copies min(dst.bytes, src.bytes) bytes, across host and device as needed.
  virtual Status copy(const Buffer& src, Buffer& dst) = 0;
  // `inputs` bind to graph.inputs in order; `outputs` receives graph.outputs in order.
  // A backend may write into tensors already in `*outputs` (from an earlier run) when their
  // dtype and shape match and Tensor::buffer_unshared() holds; other entries are replaced.
  // On failure `*outputs` is unspecified.
  virtual Status run(const Plan& plan, const std::vector<Value>& inputs, std::vector<Value>* outputs,
                     const RunControl& control) = 0;
  virtual Status sync() = 0;
};

// The backends compiled into this build, in preference order ("reference" last).
std::vector<std::string_view> available_backends();
// The backend named `name`, or nullptr. Backends are process-wide singletons.
Backend* find_backend(std::string_view name);

}  // namespace tandem
