// instance.h: what a compiled segment becomes for one input signature (dtypes, shapes, the
// values of small integer or shape-deciding inputs): its values with shapes and layouts, the
// kernels that compute them in order, the memory plan of one arena, and a pool of run contexts.
//
// Instances are built by CpuPlan::instance_for (instance.cpp) through the Builder (builder.h)
// and run by CpuPlan::run (run.cpp). Units: shapes and offsets are in elements unless named
// *_bytes. Layouts: `plain` is ONNX row-major; `blocked` is oneDNN nChw16c on the AVX-512 path and
// nChw8c below it (channel_block(); 4-D float32, or bfloat16 for the inputs of bf16
// convolutions; channels padded to a multiple of the block with zeros, which every kernel
// writing a blocked value must preserve).
//
// Thread-safety: an Instance is immutable after it is built except for its mutex-protected
// context pool and its TeamSizer. Kernels are const and run concurrently on different Contexts.
#pragma once

#include <atomic>
#include <cstdint>
#include <dnnl.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/threads.h"
#include "tandem/status.h"
#include "tandem/tensor.h"
#include "tandem/value.h"

namespace tandem::cpu {

// Channels per block of the blocked layout, fixed for the process: 16 (one AVX-512 vector, the
// layout of oneDNN's AVX-512 convolutions) when cpu_isa_level() is 2, else 8 (one AVX2 vector,
// oneDNN's AVX2 and SSE4.1 convolutions). kMaxBlock bounds it, for arrays of one block.
int64_t channel_block();
// True when the float path keeps 2-D float32 activations in that blocked layout: AVX2 or
// AVX-512 (the baseline path stays plain) and TANDEM_CPU_BLOCKED not 0. Fixed for the process.
bool float_path_blocked();
inline constexpr int64_t kMaxBlock = 16;
inline constexpr int64_t kAlign = 64;       // arena alignment, bytes

// nhwc (channels last, 4-D) holds the bfloat16/float32 operands inside bf16 convolution steps
// (oneDNN's AMX kernels read and write it; the step converts to and from the layouts other
// kernels use) and the 8-bit and int32 activations of quantized convolutions (qconv.cpp), which
// readers of other layouts get through Builder::require. A float32 activation is channels-last
// between steps only where every reader takes it so (OpSpec::reads_channels_last_floats: the
// float tail of an integer convolution read by quantizing, elementwise and global pooling
// steps, and 1-D and 3-D float convolutions, whose channels-last 3-D and 5-D values (nwc,
// ndhwc) pass between them; elsewhere such values are channels-last only inside a convolution
// step).
enum class Layout : uint8_t { plain, blocked, nhwc };

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Byte size of an element of dtype (0 for strings).
inline size_t elem_size(DataType t) { return dtype_size(t); }
// True for element types of a fixed size (everything but strings and undefined).
inline bool pod(DataType t) { return t != DataType::string && t != DataType::undefined && elem_size(t) > 0; }

// One value of an instance. Compiled values keep their ids; conversions and temporaries follow.
struct IValue {
  enum class Kind : uint8_t { none, arena, input, output, constant, alias, held };
  DataType dtype = DataType::undefined;
  Shape shape;
  Layout layout = Layout::plain;
  Kind kind = Kind::none;
  int64_t bytes = 0;          // physical size (blocked: padded channels)
  int64_t offset = 0;         // arena: offset; alias: byte offset into the base
  int ref = -1;               // input/output: index; alias: base value id
  Tensor holder;              // constant: the data (kept alive here)
  bool defined = false;       // produced by a kernel (or bound) in this instance
  // A float32 value of the graph held in bfloat16 (dtype says bfloat16): a bf16 convolution
  // wrote it for bf16 convolutions that read it (conv.cpp, "bf16 hand-off"). Builder::require
  // gives any other reader a float32 copy.
  bool handed_off = false;
};

// Per-context state a kernel may keep (oneDNN memory objects bound to the context's arena).
class KernelState {
 public:
  virtual ~KernelState() = default;
};

// What a kernel sees of its run: the context's buffers, stream and team size.
struct RunCtx {
  void** ptr = nullptr;         // data pointer per instance value
  Tensor* held = nullptr;       // held tensors per instance value (generic outputs)
  dnnl::stream* stream = nullptr;
  int threads = 1;
  void* scratch = nullptr;      // oneDNN scratchpad, Instance::scratch_bytes
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  // Creates the per-context state. `ptr` holds the values' pointers where they are fixed for
  // the context's life (arena, constants); `fixed[v]` says which.
  virtual std::unique_ptr<KernelState> make_state(void* const* ptr, const std::vector<bool>& fixed, void* scratch) const {
    return nullptr;
  }
  virtual Status run(RunCtx& ctx, KernelState* state) const = 0;

  std::vector<int> reads;   // instance value ids read
  std::vector<int> writes;  // instance value ids written
  std::string label;        // node label for messages
  // The oneDNN implementation that runs it ("jit_uni_int8:avx2", "ref:any", ...), for describe();
  // empty for the backend's own kernels.
  std::string implementation;
};

// What one run borrows from an instance: the arena and scratchpad, the data pointer of every
// value, held tensors, output buffers and per-kernel state (oneDNN memory objects, stream).
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

// One built instance. Kernels run in order; `values` are indexed by instance value id (the
// compiled values' ids first, then conversions and temporaries).
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
  // precision=bf16: products eligible for bf16, and those kept in bf16 after timing
  // (bf16_choice.h); the rest run in float32.
  int bf16_candidates = 0, bf16_kept = 0;
  int bf16_handoffs = 0;            // values held in bfloat16 between bf16 convolutions
  bool use_reference = false;       // run the whole segment on the reference kernels
  std::string reference_reason;
  // Steps that run their original nodes with the reference kernels (the generic path), by
  // step index, with the reason the fast path declined.
  std::vector<std::pair<int, std::string>> generic_steps;

  std::mutex pool_mu;
  std::vector<std::unique_ptr<Context>> pool;
  std::atomic<int> contexts_made{0};  // contexts made so far (each holds an arena and a scratchpad)
  TeamSizer sizer;  // used when threads > 1
};

// True when segment input `i` holding `t` is part of an instance key by value (small integer,
// boolean or shape-deciding tensors).
bool keyed_input(const CompiledGraph& g, int i, const Tensor& t);
// The key of `inputs`, and whether `inputs` have key `k`.
InstanceKey make_key(const CompiledGraph& g, const std::vector<Value>& inputs);
bool key_matches(const CompiledGraph& g, const InstanceKey& k, const std::vector<Value>& inputs);

}  // namespace tandem::cpu
