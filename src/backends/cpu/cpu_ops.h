// cpu_ops.h: the internal model of the cpu backend, shared by its executor and op families.
//
// Life of a segment on the cpu backend (see cpu_backend.h for the public side):
//   compile  (once per segment graph)
//     - Values: one CompiledValue per name; values known at compile time (initializers,
//       Constant outputs, folded nodes) keep their Tensor.
//     - Steps: one per node, in topological order. Each gets an OpSpec from the family that
//       implements its op (conv.cpp, elementwise.cpp, ...). fusion.cpp then rewrites patterns
//       (decomposed HardSwish, x*Sigmoid(x)) and lets specs absorb their single reader
//       (Conv absorbs BatchNormalization, per-channel affine ops and activations, ...). A fused
//       step remembers the original nodes it stands for.
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
// serves shapes first seen at run time (symbolic dims), and `info --optimized` counts it.
//
// Units: shapes and offsets are in elements unless named *_bytes. Layouts: `plain` is ONNX
// row-major; `blocked` is oneDNN nChw16c (4-D float32, or bfloat16 for the inputs
// of bf16 convolutions; channels padded to a multiple of 16 with zeros, which every kernel
// writing a blocked value must preserve).
//
// Thread-safety: CompiledGraph and Instance are immutable after construction except for the
// mutex-protected caches (instances, context pools, packed weights). Kernels are const and run
// concurrently on different Contexts.
#pragma once

#include <dnnl.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/op_table.h"
#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"
#include "tandem/value.h"

namespace tandem::cpu {

inline constexpr int64_t kBlock = 16;       // channel block of the blocked layout
inline constexpr int64_t kAlign = 64;       // arena alignment, bytes

// nhwc (channels last, 4-D) exists only inside bf16 convolution steps: oneDNN's AMX kernels
// read and write it; the step converts to and from the layouts other kernels use.
enum class Layout : uint8_t { plain, blocked, nhwc };

inline int64_t round_up(int64_t v, int64_t m) { return (v + m - 1) / m * m; }

// Instruction-set paths of the hot loops. A hot loop is written once, as an always-inline body,
// and compiled three times: for AVX-512 (avx512f/bw/vl/dq with FMA and F16C), for AVX2 (with
// FMA and F16C) and for the x86-64 baseline. A dispatcher calls the variant that cpu_isa_level()
// names, so TANDEM_CPU_ISA forces a path on any machine that has it (oneDNN gets the same cap).
// GCC inlines the default-target body into each target-attributed wrapper and vectorizes it
// there for that ISA (zmm registers in the AVX-512 variant):
//
//   TANDEM_ISA_BODY void scale_body(float* x, int64_t n, float s) {
//     for (int64_t i = 0; i < n; ++i) x[i] *= s;
//   }
//   TANDEM_ISA_DISPATCH(scale, (float* x, int64_t n, float s), (x, n, s))
//
// defines scale_avx512, scale_avx2, scale_baseline and the dispatcher scale(x, n, s); all
// return void. A body should call only inline code or library functions: an out-of-line helper
// of the project runs at the baseline whatever the variant. The dispatcher reads the level once
// (a function-local static); it and the variants are thread-safe when the body is.
//
// Explicit intrinsics code takes the same target strings (TANDEM_TARGET_AVX512 / _AVX2) and is
// chosen with cpu_isa_level() as well, never with __builtin_cpu_supports: the cap must hold.
#define TANDEM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define TANDEM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TANDEM_ISA_BODY __attribute__((always_inline)) inline
#define TANDEM_ISA_DISPATCH(name, params, args)                                 \
  TANDEM_TARGET_AVX512 void name##_avx512 params { name##_body args; }          \
  TANDEM_TARGET_AVX2 void name##_avx2 params { name##_body args; }              \
  void name##_baseline params { name##_body args; }                             \
  void name params {                                                            \
    static const int level = cpu_isa_level();                                   \
    if (level >= 2) name##_avx512 args;                                         \
    else if (level == 1) name##_avx2 args;                                      \
    else name##_baseline args;                                                  \
  }

// TSan builds define TANDEM_THREAD_SANITIZER. There every OpenMP team has one thread: Debian's
// libgomp is not instrumented, so TSan cannot see the synchronisation of its parallel regions
// and would report every hand-over of data between them. TSan then checks tandem's own
// threading (concurrent runs of one plan, context pools, instance caches, the thread budget,
// the engine) with the same code paths otherwise, the ISA dispatch included (it is a plain
// branch, no ifunc resolver runs before TSan's runtime is up).
#ifdef TANDEM_THREAD_SANITIZER
inline constexpr int kMaxOpenMpTeam = 1;
#else
inline constexpr int kMaxOpenMpTeam = 1 << 16;
#endif

// Debugging switches read once from the environment: TANDEM_CPU_FUSION=0 disables fusion,
// TANDEM_CPU_POSTOPS=0 keeps elementwise ops out of oneDNN post-ops, TANDEM_CPU_BLOCKED=0
// keeps every activation in the plain layout, TANDEM_CPU_TEAM_SIZER=0 keeps every run on its
// instance's full team (see TeamSizer in executor.h). All default to on.
bool feature_enabled(const char* name);

// True when TANDEM_CPU_VERBOSE is set: note() then prints one line to stderr (fusion
// decisions, fallbacks, chosen oneDNN implementations). Thread-safe.
bool verbose();
void note(const std::string& msg);

// The process-wide oneDNN CPU engine.
dnnl::engine& cpu_engine();

// The instruction-set level the backend's own kernels use: 2 AVX-512 (avx512f/bw/vl/dq),
// 1 AVX2 (with FMA and F16C), 0 the x86-64 baseline. It is the machine's best level, capped by
// TANDEM_CPU_ISA=avx512|avx2|baseline when set; the same cap is applied to oneDNN
// (dnnl::set_max_cpu_isa) before its first primitive. Read once; thread-safe.
int cpu_isa_level();
// One line for `tandem info --optimized`: the path in use, what the machine offers, the cap and
// oneDNN's effective ISA, e.g. "cpu isa: avx2 (machine: avx512+vnni+bf16+amx; cap:
// TANDEM_CPU_ISA=avx2; oneDNN: avx2)". Creates the engine (so that oneDNN's cap is set first).
std::string cpu_isa_description();
// True when bfloat16 dot products are native (AVX512_BF16) and the ISA cap allows AVX-512.
bool has_native_bf16();

// ---------------------------------------------------------------------------------------------
// Elementwise programs: a chain of elementwise ops evaluated in one pass. The accumulator starts
// as the output of the step's main computation (a convolution, ...) or with a `load`.

enum class Ew : uint8_t {
  // with an operand (operand >= 0) or an immediate (operand < 0, value in a)
  load, add, sub, rsub, mul, div, rdiv, max, min, pow, rpow, prelu,
  // unary, parameters in a, b
  relu, leaky_relu, clip, sigmoid, tanh, hardsigmoid, hardswish, swish, exp, log, sqrt, abs, neg,
  reciprocal, erf, softplus, softsign, elu, selu, celu, gelu, gelu_tanh, floor, ceil, round, square,
  linear,  // a*x + b
  identity,
};

struct EwOp {
  Ew code = Ew::identity;
  int operand = -1;  // index into EwProgram::operands, or -1 for an immediate
  float a = 0, b = 0;
};

struct EwProgram {
  std::vector<EwOp> ops;
  std::vector<int> operands;  // value ids (compile-time ids at compile, instance ids at prepare)
  bool empty() const { return ops.empty(); }
};

// True for unary codes (no operand, no immediate other than parameters a/b).
bool ew_is_unary(Ew code);
// Name for messages, "hardswish".
const char* ew_name(Ew code);
// Scalar reference semantics of one op (for folding and tests of the vector code).
float ew_apply_scalar(const EwOp& op, float acc, float operand);

// ---------------------------------------------------------------------------------------------
// Compile time.

struct CompiledValue {
  std::string name;
  Tensor constant;           // defined when known at compile time
  int producer = -1;         // step index
  std::vector<int> readers;  // step indices (duplicates when a step reads it twice)
  int input_index = -1;      // position among the segment inputs
  bool is_output = false;    // a segment output
  bool shape_param = false;  // read where a value decides a shape (Reshape shape, Resize sizes...)
};

class OpSpec;
class Builder;

struct Step {
  const Node* node = nullptr;               // the head node (label, attributes); owned by the plan
  std::vector<const Node*> originals;       // the nodes this step stands for, in order
  std::vector<int> inputs;                  // value ids (-1: omitted)
  std::vector<int> outputs;                 // value ids (-1: omitted)
  std::unique_ptr<OpSpec> spec;             // null: the generic (reference kernel) path
  bool dead = false;                        // absorbed into another step
};

struct CompiledGraph;

// What fusion and spec construction may see and change.
struct FusionContext {
  CompiledGraph& graph;
  // The single live reader of `value`, or -1 (several readers, a segment output, none).
  int sole_reader(int value) const;
  const Tensor* constant(int value) const;
  // Adds a compile-time constant value (e.g. a folded bias) and returns its id.
  int add_constant(Tensor t);
};

class OpSpec {
 public:
  virtual ~OpSpec() = default;
  // Instance time: choose layouts, define the step's outputs and add kernels. Returning
  // `unsupported` makes the builder run the step's original nodes with reference kernels.
  virtual Status prepare(Builder& b, const Step& step) const = 0;
  // Fusion: offered the sole reader of this step's output (its input `acc_input` is that
  // output). Return true when absorbed; the caller then retires the reader.
  virtual bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) { return false; }
  // True for a plain elementwise program step (used by the fusion of elementwise chains).
  virtual EwProgram* program() { return nullptr; }
};


// elementwise.cpp / activation.cpp: ONNX elementwise nodes as programs.
// The activation op of node `n` (Relu, HardSigmoid, ...), or false.
bool activation_op(const Node& n, EwOp* op);
// Appends node `n` (inputs as compile value ids) to `p`. `acc_input` is the input slot holding
// the accumulator, or -1 to start the program with a load. False when not expressible.
bool node_to_ew(const FusionContext& f, const Node& n, const std::vector<int>& inputs, int acc_input, EwProgram* p);
// True when `p` has no operands (unary ops and immediates only).
bool ew_pointwise(const EwProgram& p);
// Applies a pointwise program to n floats in place (vectorized).
void ew_apply_pointwise(const EwProgram& p, float* data, int64_t n);
// True when every value read or written by the step's original nodes is float32.
bool all_float32(Builder& b, const Step& step);
// A spec evaluating `p` (operands: compile value ids; ops[0] is a load) into the step's output.
std::unique_ptr<OpSpec> make_program_spec(EwProgram p);
// Spec for one elementwise node (null when the node is not expressible).
Result<std::unique_ptr<OpSpec>> make_ew_spec(FusionContext& f, const Step& step);

// shape.cpp: the element types Cast converts between on the cpu backend (float32, float16,
// and the int32, int64 and bool of shape arithmetic). supports() and the Cast kernel agree.
bool castable(DataType t);

// Rewrites and fuses the steps of `g` (fusion.cpp).
void fuse_steps(CompiledGraph& g);

// fp16_lowering.cpp: the cpu backend computes float16 models in float32. This rewrites the
// plan's own copy of a segment graph (`types`: inference's element types of its values) so
// that every inner value is float32: float16 initializers and Constant/ConstantOfShape values
// are widened once, here at compile; Casts to float16 become Casts to float32; float16 graph
// inputs are read through an entry Cast to float32 and float16 graph outputs written through
// an exit Cast to float16 (inputs and outputs keep their dtype at the API); Casts that became
// float32 -> float32 are dropped. Intermediate float16 roundings are not reproduced (results
// are at least as accurate as float16 arithmetic). Returns the number of values widened (0:
// the graph had no float16 and is unchanged).
Result<int> widen_half_precision(Graph& g, const std::map<std::string, TypeInfo>& types);

struct Instance;

struct CompiledGraph {
  std::shared_ptr<Graph> graph;  // an owned copy of the segment graph
  std::deque<Node> synthesized;  // nodes made by fusion (stable addresses)
  std::vector<CompiledValue> values;
  std::map<std::string, int> value_of;
  std::vector<Step> steps;         // in execution order; dead steps stay in place
  std::vector<int> inputs;         // value id per segment input
  std::vector<int> outputs;        // value id per segment output
  int threads = 1;
  Precision precision = Precision::fp32;  // CompileOptions::precision (bf16: checked at compile)
  int folded_nodes = 0;            // nodes whose outputs were all known at compile time
  int widened_values = 0;          // float16 values computed in float32 (widen_half_precision)

  int find(const std::string& name) const {
    auto it = value_of.find(name);
    return it == value_of.end() ? -1 : it->second;
  }
  // Re-derives producers/readers from live steps.
  void relink();
};

// ---------------------------------------------------------------------------------------------
// Instance time.

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
};

// Per-context state a kernel may keep (oneDNN memory objects bound to the context's arena).
class KernelState {
 public:
  virtual ~KernelState() = default;
};

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
};

// Kernel around one oneDNN primitive: args bound to values, constants or the scratchpad.
class DnnlKernel : public Kernel {
 public:
  struct Arg {
    int arg = 0;                 // DNNL_ARG_*
    int value = -1;              // instance value id, or -1 for `memory`
    dnnl::memory::desc md;
    dnnl::memory memory;         // fixed memory (packed weights, constant bias) when value < 0
  };
  dnnl::primitive prim;
  std::vector<Arg> args;
  bool uses_scratch = false;
  dnnl::memory::desc scratch_md;
  int threads = 0;               // OpenMP threads it was created for (0: the plan's)

  std::unique_ptr<KernelState> make_state(void* const* ptr, const std::vector<bool>& fixed, void* scratch) const override;
  Status run(RunCtx& ctx, KernelState* state) const override;
};

// Builds an Instance: the interface op families use in OpSpec::prepare().
class Builder {
 public:
  Builder(const CompiledGraph& g, Instance& inst) : g_(g), inst_(inst) {}

  const CompiledGraph& graph() const { return g_; }
  // The OpenMP team size of this instance (the plan's, or 1 for small models).
  int threads() const;
  // Work estimates of the kernels so far (multiply-adds or element visits), see threads_for().
  void add_work(double work) { work_ += work; }
  double work() const { return work_; }
  IValue& val(int v);
  // The value's data when known at build time (compile-time or instance constant).
  const Tensor* known(int v) const;
  bool is_segment_output(int v) const;
  // True when the value's type and shape are fully known for this instance.
  bool typed(int v) const;

  // Defines output `v` of the current step as a new arena value in layout `l`, with `shape`
  // (the inferred shape when empty optional is passed) and dtype.
  void define(int v, Layout l);
  // Defines `v` as a view of `base` at `byte_offset` (plain layout only).
  void define_alias(int v, int base, int64_t byte_offset);
  // Defines `v` as a build-time constant.
  void define_constant(int v, Tensor t);
  // A new arena temporary.
  int add_temp(DataType dtype, const Shape& shape, Layout l);
  // A new constant value (plain or blocked; blocked data must already be padded/reordered).
  int add_constant(Tensor t, Layout l = Layout::plain, int64_t bytes = -1);
  // The id of a value holding the same data as `v` in layout `l` (adds a reorder when needed).
  Result<int> require(int v, Layout l);
  // The id of a bfloat16 value holding `v` (a float32 value) rounded to nearest even, in layout
  // `l` (plain, or nhwc for 4-D values): one conversion kernel per value, layout and instance,
  // shared by its readers.
  Result<int> require_bf16(int v, Layout l);
  // The precision the plan may compute in (CompileOptions::precision).
  Precision precision() const;
  void add_kernel(std::unique_ptr<Kernel> k);
  // Scratchpad needs of a oneDNN primitive.
  void need_scratch(int64_t bytes);
  // Runs the step's original nodes with reference kernels (the generic path).
  Status generic(const Step& step);
  // Drops cached layout conversions whose result id is >= `first_value` (after a rollback).
  void forget_conversions_from(int first_value) {
    for (auto it = conversions_.begin(); it != conversions_.end();)
      it = it->second >= first_value ? conversions_.erase(it) : std::next(it);
    for (auto it = narrowed_.begin(); it != narrowed_.end();)
      it = it->second >= first_value ? narrowed_.erase(it) : std::next(it);
  }

  // Byte size of a value of this dtype/shape in layout l.
  static int64_t physical_bytes(DataType dtype, const Shape& shape, Layout l);

 private:
  const CompiledGraph& g_;
  Instance& inst_;
  std::map<std::pair<int, Layout>, int> conversions_;
  std::map<std::pair<int, Layout>, int> narrowed_;  // float32 value -> its bfloat16 copy
  double work_ = 0;
};

// oneDNN memory descriptor of a value (plain: row-major dims; blocked: nChw16c).
dnnl::memory::desc value_md(const IValue& v);
dnnl::memory::desc plain_md(const Shape& shape, dnnl::memory::data_type dt = dnnl::memory::data_type::f32);
dnnl::memory::dims to_dims(const Shape& s);

// Appends a oneDNN reorder kernel from `src` to `dst` (both instance values).
Status add_reorder(Builder& b, int src, int dst, const std::string& label);

// Adds a kernel computing `program` into `out` (elementwise.cpp). `program.operands` hold
// instance value ids; ops[0] is a `load` when there is no accumulator input. `acc` (or -1) is
// a value that initializes the accumulator (same shape as out). The output layout is chosen
// here (blocked when the main operands are blocked) unless `out` is already defined.
Status add_elementwise(Builder& b, const EwProgram& program, int acc, int out, const std::string& label);

// Translates the longest prefix of `program` into oneDNN post-ops for a primitive whose
// destination has shape `dst_shape` with channels on axis `channel_axis`. Constant operands
// must broadcast per channel (or be scalars); runtime operands must match dst exactly.
// Returns the number of ops translated; `args` receives binary post-op arguments.
int to_post_ops(Builder& b, const EwProgram& program, const Shape& dst_shape, int channel_axis, Layout dst_layout,
                dnnl::post_ops* po, std::vector<DnnlKernel::Arg>* args);

// Stores primitive `p` in `k` and records its scratchpad needs.
void attach_primitive(Builder& b, DnnlKernel& k, dnnl::primitive p, const dnnl::memory::desc& scratch_md);

// Threads for a kernel doing `work` multiply-adds (or element visits): small kernels run on
// one thread, where a parallel region would cost more than it saves.
int threads_for(Builder& b, double work);
// Sets the calling thread's OpenMP team size for its lifetime (oneDNN primitives size their
// work split by it when created), restoring the previous value afterwards.
class ThreadScope {
 public:
  explicit ThreadScope(int threads);
  ~ThreadScope();
  ThreadScope(const ThreadScope&) = delete;
  ThreadScope& operator=(const ThreadScope&) = delete;

 private:
  int prev_;
};

// Run-side threading helper: f(begin, end) over [0, n) on `threads` OpenMP threads.
void parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* arg);
template <class F>
void parallel_range(int threads, int64_t n, int64_t grain, F&& f) {
  parallel_for(threads, n, grain, [](void* a, int64_t b, int64_t e) { (*static_cast<F*>(a))(b, e); }, &f);
}

// Byte size of an element of dtype (0 for strings).
inline size_t elem_size(DataType t) { return dtype_size(t); }

}  // namespace tandem::cpu
