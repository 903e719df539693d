// executor.cpp: compile (values, steps, fusion), instance building (shapes, layouts, kernels,
// memory plan) and the run loop of the cpu backend. See executor.h and cpu_ops.h.
#include "backends/cpu/executor.h"

#include <omp.h>
#include <sched.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <thread>

#include "backends/reference/executor.h"
#include "kernels/registry.h"
#include "core/sysinfo.h"
#include "core/tensor_util.h"
#include "passes/shape_inference.h"

namespace tandem::cpu {

bool verbose() {
  static const bool v = [] {
    const char* e = std::getenv("TANDEM_CPU_VERBOSE");
    return e && *e && *e != '0';
  }();
  return v;
}

void note(const std::string& msg) {
  if (verbose()) std::fprintf(stderr, "tandem cpu: %s\n", msg.c_str());
}

namespace {

// A kAlign-aligned buffer.
std::shared_ptr<std::byte> aligned_buffer(int64_t bytes) {
  size_t n = static_cast<size_t>(round_up(std::max<int64_t>(bytes, 1), kAlign));
  void* p = std::aligned_alloc(kAlign, n);
  if (!p) return nullptr;
  return std::shared_ptr<std::byte>(static_cast<std::byte*>(p), [](std::byte* q) { std::free(q); });
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Process-wide helpers.

bool feature_enabled(const char* name) {
  static std::mutex mu;
  static std::map<std::string, bool> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it != cache.end()) return it->second;
  const char* e = std::getenv((std::string("TANDEM_CPU_") + name).c_str());
  bool on = !(e && std::string(e) == "0");
  cache[name] = on;
  return on;
}

namespace {

// The best level this machine offers (see cpu_isa_level()).
int machine_isa_level() {
  int machine = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) machine = 1;
  if (machine == 1 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq"))
    machine = 2;
  return machine;
}

const char* isa_name(int level) { return level >= 2 ? "avx512" : level == 1 ? "avx2" : "baseline"; }

}  // namespace

int cpu_isa_level() {
  static const int level = [] {
    const int machine = machine_isa_level();
    const char* e = std::getenv("TANDEM_CPU_ISA");
    if (!e || !*e) return machine;
    const std::string cap(e);
    if (cap == "baseline") return 0;
    if (cap == "avx2") return std::min(machine, 1);
    return machine;  // "avx512" or anything else: the machine's best
  }();
  return level;
}

std::string cpu_isa_description() {
  cpu_engine();  // oneDNN's cap is set before its effective ISA is read
  std::string machine = isa_name(machine_isa_level());
  if (machine_isa_level() >= 2) {
    if (__builtin_cpu_supports("avx512vnni")) machine += "+vnni";
    if (__builtin_cpu_supports("avx512bf16")) machine += "+bf16";
    if (__builtin_cpu_supports("amx-tile")) machine += "+amx";
  }
  const char* e = std::getenv("TANDEM_CPU_ISA");
  std::string cap = "none";
  if (e && *e) {
    const std::string v(e);
    cap = "TANDEM_CPU_ISA=" + v + (v == "avx512" || v == "avx2" || v == "baseline" ? "" : " (not a known path: ignored)");
  }
  std::string onednn;
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: onednn = "sse41"; break;
    case dnnl::cpu_isa::avx: onednn = "avx"; break;
    case dnnl::cpu_isa::avx2: onednn = "avx2"; break;
    case dnnl::cpu_isa::avx2_vnni: onednn = "avx2_vnni"; break;
    case dnnl::cpu_isa::avx512_core: onednn = "avx512_core"; break;
    case dnnl::cpu_isa::avx512_core_vnni: onednn = "avx512_core_vnni"; break;
    case dnnl::cpu_isa::avx512_core_bf16: onednn = "avx512_core_bf16"; break;
    case dnnl::cpu_isa::avx512_core_amx: onednn = "avx512_core_amx"; break;
    default: onednn = "other"; break;
  }
  return std::string("cpu isa: ") + isa_name(cpu_isa_level()) + " (machine: " + machine + "; cap: " + cap +
         "; oneDNN: " + onednn + (has_native_bf16() ? "; bf16 native" : "") + ")";
}

bool has_native_bf16() {
  static const bool native = cpu_isa_level() >= 2 && __builtin_cpu_supports("avx512bf16");
  return native;
}

dnnl::engine& cpu_engine() {
  static dnnl::engine eng = [] {
    // The ISA cap applies to oneDNN too; it must be set before the first primitive.
    if (const char* e = std::getenv("TANDEM_CPU_ISA"); e && *e) {
      const int level = cpu_isa_level();
      const dnnl::status st =
          dnnl::set_max_cpu_isa(level >= 2 ? dnnl::cpu_isa::all : level == 1 ? dnnl::cpu_isa::avx2 : dnnl::cpu_isa::sse41);
      if (st != dnnl::status::success) note("oneDNN refused the ISA cap (set too late?): its kernels are not capped");
    }
    // No VTune/ITT registration of jitted code: it costs time at every primitive creation.
    dnnl::set_jit_profiling_flags(0);
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return eng;
}

void set_threads(int threads) {
  threads = std::min(threads, kMaxOpenMpTeam);
  if (omp_get_max_threads() != threads) omp_set_num_threads(threads);
}

int threads_for(Builder& b, double work) {
  b.add_work(work);
  return work < 1.5e6 ? 1 : b.threads();
}

ThreadScope::ThreadScope(int threads) : prev_(omp_get_max_threads()) { set_threads(threads); }
ThreadScope::~ThreadScope() { set_threads(prev_); }

void parallel_for(int threads, int64_t n, int64_t grain, void (*fn)(void*, int64_t, int64_t), void* arg) {
  if (n <= 0) return;
  int64_t max_parts = grain > 0 ? std::max<int64_t>(1, n / grain) : n;
  int nt = static_cast<int>(std::min<int64_t>(std::min(threads, kMaxOpenMpTeam), max_parts));
  if (nt <= 1 || omp_in_parallel()) {
    fn(arg, 0, n);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    int t = omp_get_thread_num();
    int k = omp_get_num_threads();
    int64_t b = n * t / k, e = n * (t + 1) / k;
    if (b < e) fn(arg, b, e);
  }
}

dnnl::memory::dims to_dims(const Shape& s) {
  if (s.empty()) return {1};
  return dnnl::memory::dims(s.begin(), s.end());
}

namespace {
dnnl::memory::data_type dnnl_type(DataType t) {
  switch (t) {
    case DataType::float32: return dnnl::memory::data_type::f32;
    case DataType::int32: return dnnl::memory::data_type::s32;
    case DataType::int8: return dnnl::memory::data_type::s8;
    case DataType::uint8: case DataType::boolean: return dnnl::memory::data_type::u8;
    case DataType::bfloat16: return dnnl::memory::data_type::bf16;
    case DataType::float16: return dnnl::memory::data_type::f16;
    default: return dnnl::memory::data_type::undef;
  }
}
}  // namespace

dnnl::memory::desc plain_md(const Shape& shape, dnnl::memory::data_type dt) {
  auto dims = to_dims(shape);
  dnnl::memory::dims strides(dims.size());
  int64_t s = 1;
  for (size_t i = dims.size(); i-- > 0;) {
    strides[i] = s;
    s *= std::max<int64_t>(dims[i], 1);
  }
  return dnnl::memory::desc(dims, dt, strides);
}

dnnl::memory::desc value_md(const IValue& v) {
  if (v.layout == Layout::blocked)
    return dnnl::memory::desc(to_dims(v.shape), dnnl_type(v.dtype), dnnl::memory::format_tag::nChw16c);
  if (v.layout == Layout::nhwc)
    return dnnl::memory::desc(to_dims(v.shape), dnnl_type(v.dtype), dnnl::memory::format_tag::nhwc);
  return plain_md(v.shape, dnnl_type(v.dtype));
}

// ---------------------------------------------------------------------------------------------
// Compile-time graph.

void CompiledGraph::relink() {
  for (auto& v : values) {
    v.producer = -1;
    v.readers.clear();
  }
  for (size_t s = 0; s < steps.size(); ++s) {
    const Step& st = steps[s];
    if (st.dead) continue;
    for (int v : st.inputs)
      if (v >= 0) values[v].readers.push_back(static_cast<int>(s));
    for (int v : st.outputs)
      if (v >= 0) values[v].producer = static_cast<int>(s);
  }
}

int FusionContext::sole_reader(int value) const {
  if (value < 0) return -1;
  const CompiledValue& v = graph.values[value];
  if (v.is_output || v.readers.empty()) return -1;
  int r = v.readers.front();
  for (int x : v.readers)
    if (x != r) return -1;
  if (v.readers.size() != 1) return -1;  // read twice by one step: not a chain
  return r;
}

int FusionContext::add_constant(Tensor t) {
  int id = static_cast<int>(graph.values.size());
  graph.values.push_back(CompiledValue{});
  graph.values.back().name = "__cpu_const_" + std::to_string(id);
  graph.values.back().constant = std::move(t);
  graph.value_of[graph.values.back().name] = id;
  return id;
}

const Tensor* FusionContext::constant(int value) const {
  if (value < 0) return nullptr;
  const Tensor& t = graph.values[value].constant;
  return t.defined() ? &t : nullptr;
}

namespace {

// Input positions whose value decides an output shape (so the value is part of the key).
bool is_shape_param(const Node& n, size_t i) {
  const std::string& op = n.op_type;
  if (i == 0) return op == "ConstantOfShape" || op == "Range";
  if (op == "Reshape" || op == "Expand" || op == "Tile" || op == "Squeeze" || op == "Unsqueeze" ||
      op == "Upsample" || op == "Split" || op == "TopK" || op == "OneHot" || op.rfind("Reduce", 0) == 0)
    return i == 1;
  if (op == "Slice") return i >= 1 && i <= 4;
  if (op == "Resize") return i >= 1 && i <= 3;
  if (op == "Pad") return i == 1 || i == 3;
  if (op == "Range") return i <= 2;
  return false;
}

// The value of a Constant node, when it is a plain tensor attribute.
Tensor constant_node_value(const Node& n) {
  if (const Attribute* a = n.attr("value"); a && a->type == AttrType::t) return a->t;
  if (const Attribute* a = n.attr("value_float"); a && a->type == AttrType::f) return Tensor::scalar<float>(a->f);
  if (const Attribute* a = n.attr("value_int"); a && a->type == AttrType::i) return Tensor::scalar<int64_t>(a->i);
  if (const Attribute* a = n.attr("value_floats"); a && a->type == AttrType::floats)
    return Tensor::from_vector<float>({static_cast<int64_t>(a->floats.size())}, a->floats);
  if (const Attribute* a = n.attr("value_ints"); a && a->type == AttrType::ints)
    return Tensor::from_vector<int64_t>({static_cast<int64_t>(a->ints.size())}, a->ints);
  return {};
}

}  // namespace

namespace {
bool keyed_input(const CompiledGraph& g, int i, const Tensor& t);
}  // namespace

Result<std::unique_ptr<CpuPlan>> compile_graph(const Graph& graph, const CompileOptions& options) {
  auto plan = std::make_unique<CpuPlan>();
  CompiledGraph& g = plan->g;
  g.graph = std::make_shared<Graph>(graph);
  g.threads = options.threads > 0 ? options.threads : physical_cores();
  g.precision = options.precision;
  {
    ShapeInferenceOptions before;
    before.use_declared_types = false;
    auto typed = infer_shapes(*g.graph, {}, before);
    if (typed) {
      TANDEM_ASSIGN_OR_RETURN(g.widened_values, widen_half_precision(*g.graph, typed->types));
    }
  }
  const Graph& gr = *g.graph;
  for (const Node& n : gr.nodes)
    if (!subgraphs_of(n).empty())
      return unsupported(n.label() + " the cpu backend does not run ops with subgraphs");

  auto value = [&](const std::string& name) {
    auto it = g.value_of.find(name);
    if (it != g.value_of.end()) return it->second;
    int id = static_cast<int>(g.values.size());
    g.values.push_back(CompiledValue{});
    g.values.back().name = name;
    g.value_of[name] = id;
    return id;
  };
  for (size_t i = 0; i < gr.inputs.size(); ++i) {
    int v = value(gr.inputs[i].name);
    g.values[v].input_index = static_cast<int>(i);
    g.inputs.push_back(v);
  }
  // Compile-time constants: initializers (not overridden by an input), Constant nodes and
  // whatever shape inference folds.
  std::set<std::string> input_names;
  for (const auto& vi : gr.inputs) input_names.insert(vi.name);
  for (const auto& [name, t] : gr.initializers)
    if (!input_names.count(name)) g.values[value(name)].constant = t;
  for (const Node& n : gr.nodes)
    if (n.op_type == "Constant" && canonical_domain(n.domain).empty() && n.outputs.size() == 1) {
      Tensor t = constant_node_value(n);
      if (t.defined()) g.values[value(n.outputs[0])].constant = t;
    }
  ShapeInferenceOptions sio;
  sio.use_declared_types = false;
  auto inferred = infer_shapes(gr, {}, sio);
  if (inferred) {
    for (const auto& [name, t] : inferred->constants) {
      if (input_names.count(name)) continue;
      int v = value(name);
      if (!g.values[v].constant.defined()) g.values[v].constant = t;
    }
  }

  // Steps in topological order.
  TANDEM_ASSIGN_OR_RETURN(const std::vector<int> order, topological_order(gr));
  const OpTable& table = cpu_ops();
  FusionContext fc{g};
  for (int idx : order) {
    const Node& n = gr.nodes[idx];
    bool all_known = true;
    for (const auto& o : n.outputs)
      if (!o.empty() && !g.values[value(o)].constant.defined()) all_known = false;
    if (all_known) {
      ++g.folded_nodes;
      continue;
    }
    Step st;
    st.node = &n;
    st.originals = {&n};
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (n.inputs[i].empty()) {
        st.inputs.push_back(-1);
        continue;
      }
      int v = value(n.inputs[i]);
      st.inputs.push_back(v);
      if (is_shape_param(n, i)) g.values[v].shape_param = true;
    }
    for (const auto& o : n.outputs) st.outputs.push_back(o.empty() ? -1 : value(o));
    g.steps.push_back(std::move(st));
  }
  for (const auto& vi : gr.outputs) {
    int v = value(vi.name);
    g.values[v].is_output = true;
    g.outputs.push_back(v);
  }
  g.relink();
  for (Step& st : g.steps) {
    const Node& n = *st.node;
    const OpEntry* e = canonical_domain(n.domain).empty() ? table.find(n.op_type) : nullptr;
    if (e && e->make && e->supports(n).is_ok()) {
      auto spec = e->make(fc, st);
      if (spec) st.spec = std::move(spec).value();
    }
    if (!st.spec && !reference_kernels().find(canonical_domain(n.domain), n.op_type))
      return unsupported(n.label() + " op '" + n.op_type + "' has no cpu or reference kernel");
  }
  if (feature_enabled("FUSION")) fuse_steps(g);
  g.relink();
  // When every input's dtype and shape are fixed (and none decides shapes by its value), build
  // the instance for that signature now: weights are packed, primitives created and the arena
  // planned at prepare time instead of at the first run. A failure here is left to that run.
  std::vector<Value> signature;
  for (size_t i = 0; i < gr.inputs.size(); ++i) {
    const TypeInfo& t = gr.inputs[i].type;
    if (t.kind != TypeInfo::Kind::tensor || !t.has_shape || t.elem == DataType::undefined ||
        t.elem == DataType::string)
      break;
    Shape shape;
    for (const Dim& d : t.dims) shape.push_back(d.value);
    if (std::any_of(shape.begin(), shape.end(), [](int64_t d) { return d < 0; })) break;
    Tensor zeros(t.elem, shape);
    if (keyed_input(g, static_cast<int>(i), zeros)) break;
    signature.push_back(Value::of(std::move(zeros)));
  }
  if (signature.size() == gr.inputs.size()) {
    try {
      (void)plan->instance_for(signature, g.threads);
    } catch (const std::exception&) {  // oneDNN errors, out of memory: the first run reports them
    }
  }
  return plan;
}

// ---------------------------------------------------------------------------------------------
// Kernels shared by every family.

namespace {

// Runs original nodes with the reference kernels.
class GenericKernel final : public Kernel {
 public:
  struct External {
    std::string name;
    int value = -1;
    DataType dtype = DataType::undefined;
    Shape shape;
    Tensor constant;  // set when known at build time
    bool none = false;
  };
  struct Export {
    std::string name;
    int value = -1;
    DataType dtype = DataType::undefined;
    Shape shape;
    bool held = false;
  };
  std::vector<const Node*> nodes;
  std::vector<External> externals;
  std::vector<Export> exports;

  Status run(RunCtx& ctx, KernelState*) const override {
    std::map<std::string, Value> env;
    for (const External& e : externals) {
      if (e.none) {
        env[e.name] = Value{};
      } else if (e.constant.defined()) {
        env[e.name] = Value::of(e.constant);
      } else if (ctx.held[e.value].defined()) {
        env[e.name] = Value::of(ctx.held[e.value]);
      } else {
        Tensor t(e.dtype, e.shape);
        if (t.nbytes()) std::memcpy(t.raw_data(), ctx.ptr[e.value], t.nbytes());
        env[e.name] = Value::of(std::move(t));
      }
    }
    std::vector<const Value*> in;
    std::vector<Value> out;
    for (const Node* n : nodes) {
      in.clear();
      for (const auto& name : n->inputs) {
        if (name.empty()) {
          in.push_back(nullptr);
          continue;
        }
        auto it = env.find(name);
        in.push_back(it == env.end() ? nullptr : &it->second);
      }
      out.assign(n->outputs.size(), Value{});
      KernelFn fn = reference_kernels().find(canonical_domain(n->domain), n->op_type);
      if (!fn) return internal_error(n->label() + " no reference kernel");
      KernelContext kc(*n, in, &out, nullptr);
      Status st;
      try {
        st = fn(kc);
      } catch (const std::bad_alloc&) {
        return Status(StatusCode::out_of_memory, n->label() + " out of memory");
      }
      if (!st.is_ok()) return st;
      for (size_t i = 0; i < out.size(); ++i)
        if (!n->outputs[i].empty()) env[n->outputs[i]] = std::move(out[i]);
    }
    for (const Export& x : exports) {
      auto it = env.find(x.name);
      if (it == env.end() || !it->second.is_tensor())
        return internal_error(label + " generic path produced no tensor for '" + x.name + "'");
      const Tensor& t = it->second.tensor;
      if (t.dtype() != x.dtype || t.shape() != x.shape)
        return internal_error(label + " '" + x.name + "' is " + std::string(dtype_name(t.dtype())) + "[" +
                              shape_to_string(t.shape()) + "], shape inference said " +
                              std::string(dtype_name(x.dtype)) + "[" + shape_to_string(x.shape) + "]");
      if (x.held) {
        ctx.held[x.value] = t;
        ctx.ptr[x.value] = const_cast<void*>(t.raw_data());
      } else if (t.nbytes()) {
        std::memcpy(ctx.ptr[x.value], t.raw_data(), t.nbytes());
      }
    }
    return Status::ok();
  }
};

class CopyKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t bytes = 0;
  Status run(RunCtx& ctx, KernelState*) const override {
    if (bytes) std::memcpy(ctx.ptr[dst], ctx.ptr[src], static_cast<size_t>(bytes));
    return Status::ok();
  }
};

class DnnlState final : public KernelState {
 public:
  std::vector<dnnl::memory> memories;
  std::vector<dnnl_exec_arg_t> c_args;
  std::vector<std::pair<size_t, int>> variable;  // (index in memories, value id)
};

}  // namespace

std::unique_ptr<KernelState> DnnlKernel::make_state(void* const* ptr, const std::vector<bool>& fixed,
                                                    void* scratch) const {
  auto st = std::make_unique<DnnlState>();
  auto& eng = cpu_engine();
  for (const Arg& a : args) {
    if (a.value < 0) {
      st->memories.push_back(a.memory);
    } else if (fixed[a.value]) {
      st->memories.emplace_back(a.md, eng, ptr[a.value]);
    } else {
      st->memories.emplace_back(a.md, eng, static_cast<void*>(DNNL_MEMORY_NONE));
      st->variable.emplace_back(st->memories.size() - 1, a.value);
    }
    st->c_args.push_back({a.arg, st->memories.back().get()});
  }
  if (uses_scratch) {
    st->memories.emplace_back(scratch_md, eng, scratch);
    st->c_args.push_back({DNNL_ARG_SCRATCHPAD, st->memories.back().get()});
  }
  return st;
}

Status DnnlKernel::run(RunCtx& ctx, KernelState* state) const {
  auto* st = static_cast<DnnlState*>(state);
  for (const auto& [i, v] : st->variable) {
    if (dnnl_memory_set_data_handle_v2(st->memories[i].get(), ctx.ptr[v], nullptr) != dnnl_success)
      return Status(StatusCode::device_error, label + " oneDNN could not bind a buffer");
  }
  set_threads(threads > 0 ? threads : ctx.threads);
  dnnl_status_t s = dnnl_primitive_execute(prim.get(), ctx.stream->get(), static_cast<int>(st->c_args.size()),
                                           st->c_args.data());
  if (s != dnnl_success)
    return Status(StatusCode::device_error, label + " oneDNN execution failed (status " + std::to_string(s) + ")");
  return Status::ok();
}

void attach_primitive(Builder& b, DnnlKernel& k, dnnl::primitive p, const dnnl::memory::desc& scratch_md) {
  k.prim = std::move(p);
  if (scratch_md.get_size() > 0) {
    k.uses_scratch = true;
    k.scratch_md = scratch_md;
    b.need_scratch(static_cast<int64_t>(scratch_md.get_size()));
  }
}

Status add_reorder(Builder& b, int src, int dst, const std::string& label) {
  const IValue& s = b.val(src);
  const IValue& d = b.val(dst);
  auto k = std::make_unique<DnnlKernel>();
  k->threads = threads_for(b, static_cast<double>(shape_numel(s.shape)));
  ThreadScope scope(k->threads);
  try {
    auto smd = value_md(s), dmd = value_md(d);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::reorder::primitive_desc pd(cpu_engine(), smd, cpu_engine(), dmd, attr);
    k->prim = dnnl::reorder(pd);
    auto sp = pd.scratchpad_desc();
    if (sp.get_size() > 0) {
      k->uses_scratch = true;
      k->scratch_md = sp;
      b.need_scratch(static_cast<int64_t>(sp.get_size()));
    }
    k->args.push_back({DNNL_ARG_SRC, src, smd, {}});
    k->args.push_back({DNNL_ARG_DST, dst, dmd, {}});
  } catch (const dnnl::error& e) {
    return unsupported(label + " reorder: " + e.what());
  }
  k->reads = {src};
  k->writes = {dst};
  k->label = label;
  b.add_kernel(std::move(k));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Builder.

IValue& Builder::val(int v) { return inst_.values[v]; }

int Builder::threads() const { return inst_.threads; }
Precision Builder::precision() const { return g_.precision; }

const Tensor* Builder::known(int v) const {
  if (v < 0) return nullptr;
  const IValue& iv = inst_.values[v];
  if (iv.kind == IValue::Kind::constant && iv.layout == Layout::plain) return &iv.holder;
  return nullptr;
}

bool Builder::is_segment_output(int v) const { return v >= 0 && v < static_cast<int>(g_.values.size()) && g_.values[v].is_output; }

bool Builder::typed(int v) const {
  if (v < 0) return false;
  const IValue& iv = inst_.values[v];
  if (iv.dtype == DataType::undefined) return false;
  for (int64_t d : iv.shape)
    if (d < 0) return false;
  return true;
}

int64_t Builder::physical_bytes(DataType dtype, const Shape& shape, Layout l) {
  if (l == Layout::blocked && shape.size() == 4)
    return shape[0] * round_up(shape[1], kBlock) * shape[2] * shape[3] * static_cast<int64_t>(elem_size(dtype));
  return shape_numel(shape) * static_cast<int64_t>(elem_size(dtype));
}

void Builder::define(int v, Layout l) {
  IValue& iv = inst_.values[v];
  iv.layout = l;
  iv.kind = (iv.dtype == DataType::string) ? IValue::Kind::held : IValue::Kind::arena;
  iv.bytes = physical_bytes(iv.dtype, iv.shape, l);
  iv.defined = true;
}

void Builder::define_alias(int v, int base, int64_t byte_offset) {
  IValue& iv = inst_.values[v];
  iv.layout = Layout::plain;
  iv.kind = IValue::Kind::alias;
  iv.ref = base;
  iv.offset = byte_offset;
  iv.bytes = physical_bytes(iv.dtype, iv.shape, Layout::plain);
  iv.defined = true;
  inst_.alias_order.push_back(v);
}

void Builder::define_constant(int v, Tensor t) {
  IValue& iv = inst_.values[v];
  iv.dtype = t.dtype();
  iv.shape = t.shape();
  iv.layout = Layout::plain;
  iv.kind = IValue::Kind::constant;
  iv.bytes = static_cast<int64_t>(t.nbytes());
  iv.holder = std::move(t);
  iv.defined = true;
}

int Builder::add_temp(DataType dtype, const Shape& shape, Layout l) {
  IValue iv;
  iv.dtype = dtype;
  iv.shape = shape;
  inst_.values.push_back(iv);
  int id = static_cast<int>(inst_.values.size()) - 1;
  define(id, l);
  return id;
}

int Builder::add_constant(Tensor t, Layout l, int64_t bytes) {
  IValue iv;
  iv.dtype = t.dtype();
  iv.shape = t.shape();
  iv.layout = l;
  iv.kind = IValue::Kind::constant;
  iv.bytes = bytes >= 0 ? bytes : static_cast<int64_t>(t.nbytes());
  iv.holder = std::move(t);
  iv.defined = true;
  inst_.values.push_back(std::move(iv));
  return static_cast<int>(inst_.values.size()) - 1;
}

Result<int> Builder::require(int v, Layout l) {
  if (v < 0) return v;
  IValue& iv = inst_.values[v];
  if (iv.layout == l) return v;
  auto key = std::make_pair(v, l);
  if (auto it = conversions_.find(key); it != conversions_.end()) return it->second;
  if (iv.dtype != DataType::float32 || iv.shape.size() != 4)
    return unsupported("cannot convert a " + std::string(dtype_name(iv.dtype)) + "[" + shape_to_string(iv.shape) +
                       "] value between layouts");
  const Shape shape = iv.shape;
  int out = -1;
  if (iv.kind == IValue::Kind::constant) {
    // Convert now, once.
    int64_t bytes = physical_bytes(DataType::float32, shape, l);
    Tensor holder(DataType::float32, {bytes / static_cast<int64_t>(sizeof(float))});
    IValue tmp = iv;
    IValue dst;
    dst.dtype = DataType::float32;
    dst.shape = shape;
    dst.layout = l;
    try {
      dnnl::memory sm(value_md(tmp), cpu_engine(), const_cast<void*>(tmp.holder.raw_data()));
      dnnl::memory dm(value_md(dst), cpu_engine(), holder.raw_data());
      dnnl::stream s(cpu_engine());
      dnnl::reorder(sm, dm).execute(s, sm, dm);
      s.wait();
    } catch (const dnnl::error& e) {
      return unsupported(std::string("constant reorder failed: ") + e.what());
    }
    out = add_constant(std::move(holder), l, bytes);
    inst_.values[out].shape = shape;
  } else {
    out = add_temp(DataType::float32, shape, l);
    TANDEM_RETURN_IF_ERROR(add_reorder(*this, v, out, "[layout reorder of '" + (v < static_cast<int>(g_.values.size()) ? g_.values[v].name : std::string("temp")) + "']"));
  }
  conversions_[key] = out;
  return out;
}

Result<int> Builder::require_bf16(int v, Layout l) {
  if (v < 0) return v;
  const IValue& iv = inst_.values[v];
  if (iv.dtype == DataType::bfloat16 && iv.layout == l) return v;
  if (iv.dtype != DataType::float32 || l == Layout::blocked || (l == Layout::nhwc && iv.shape.size() != 4))
    return unsupported("cannot narrow a " + std::string(dtype_name(iv.dtype)) + "[" + shape_to_string(iv.shape) +
                       "] value to bfloat16");
  const auto key = std::make_pair(v, l);
  if (auto it = narrowed_.find(key); it != narrowed_.end()) return it->second;
  const Shape shape = iv.shape;
  int out = add_temp(DataType::bfloat16, shape, l);
  TANDEM_RETURN_IF_ERROR(add_reorder(*this, v, out, "[bf16 conversion of '" + (v < static_cast<int>(g_.values.size()) ? g_.values[v].name : std::string("temp")) + "']"));
  narrowed_[key] = out;
  return out;
}

void Builder::add_kernel(std::unique_ptr<Kernel> k) { inst_.kernels.push_back(std::move(k)); }

void Builder::need_scratch(int64_t bytes) { inst_.scratch_bytes = std::max(inst_.scratch_bytes, bytes); }

Status Builder::generic(const Step& step) {
  auto k = std::make_unique<GenericKernel>();
  k->nodes = step.originals;
  k->label = step.node->label();
  std::set<std::string> produced;
  std::set<std::string> seen;
  for (const Node* n : step.originals) {
    for (const auto& name : n->inputs) {
      if (name.empty() || produced.count(name) || seen.count(name)) continue;
      seen.insert(name);
      int v = g_.find(name);
      if (v < 0) return internal_error(n->label() + " unknown value '" + name + "'");
      GenericKernel::External e;
      e.name = name;
      IValue& iv = inst_.values[v];
      if (iv.kind == IValue::Kind::none) {
        e.none = true;
      } else if (iv.kind == IValue::Kind::constant && iv.layout == Layout::plain) {
        e.constant = iv.holder;
      } else {
        TANDEM_ASSIGN_OR_RETURN(int pv, require(v, Layout::plain));
        e.value = pv;
        e.dtype = inst_.values[pv].dtype;
        e.shape = inst_.values[pv].shape;
        k->reads.push_back(pv);
      }
      k->externals.push_back(std::move(e));
    }
    for (const auto& o : n->outputs)
      if (!o.empty()) produced.insert(o);
  }
  for (int v : step.outputs) {
    if (v < 0) continue;
    if (!typed(v))
      return unsupported(step.node->label() + " the shape of '" + g_.values[v].name + "' is not known for these inputs");
    define(v, Layout::plain);
    GenericKernel::Export x;
    x.name = g_.values[v].name;
    x.value = v;
    x.dtype = inst_.values[v].dtype;
    x.shape = inst_.values[v].shape;
    x.held = inst_.values[v].kind == IValue::Kind::held;
    k->exports.push_back(std::move(x));
    k->writes.push_back(v);
  }
  add_kernel(std::move(k));
  return Status::ok();
}

// ---------------------------------------------------------------------------------------------
// Instances.

namespace {

bool keyed_input(const CompiledGraph& g, int i, const Tensor& t) {
  if (t.numel() > 64 || t.dtype() == DataType::string) return false;
  return is_integer_type(t.dtype()) || t.dtype() == DataType::boolean || g.values[g.inputs[i]].shape_param;
}

bool key_matches(const CompiledGraph& g, const InstanceKey& k, const std::vector<Value>& inputs) {
  if (inputs.size() != k.dtypes.size()) return false;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (!v.is_tensor()) {
      if (!k.none[i]) return false;
      continue;
    }
    if (k.none[i]) return false;
    const Tensor& t = v.tensor;
    if (t.dtype() != k.dtypes[i] || t.shape() != k.shapes[i]) return false;
    if (!k.values[i].empty() && std::memcmp(k.values[i].data(), t.raw_data(), k.values[i].size()) != 0) return false;
  }
  return true;
}

InstanceKey make_key(const CompiledGraph& g, const std::vector<Value>& inputs) {
  InstanceKey k;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& v = inputs[i];
    if (!v.is_tensor()) {
      k.dtypes.push_back(DataType::undefined);
      k.shapes.push_back({});
      k.values.emplace_back();
      k.none.push_back(true);
      continue;
    }
    const Tensor& t = v.tensor;
    k.dtypes.push_back(t.dtype());
    k.shapes.push_back(t.shape());
    k.none.push_back(false);
    if (i < g.inputs.size() && keyed_input(g, static_cast<int>(i), t)) {
      const auto* p = static_cast<const uint8_t*>(t.raw_data());
      k.values.emplace_back(p, p + t.nbytes());
    } else {
      k.values.emplace_back();
    }
  }
  return k;
}

struct Snapshot {
  size_t kernels = 0, values = 0, aliases = 0;
};

}  // namespace

namespace {

// Gives every arena value an offset: values live from their first to their last kernel (views
// extend their base's life); blocks are reused best-fit, first fit at the top otherwise.
void plan_memory(Instance& inst) {
  const size_t nv = inst.values.size();
  auto root = [&](int v) {
    while (inst.values[v].kind == IValue::Kind::alias) v = inst.values[v].ref;
    return v;
  };
  std::vector<int> first(nv, -1), last(nv, -1);
  for (size_t k = 0; k < inst.kernels.size(); ++k) {
    const Kernel& kr = *inst.kernels[k];
    for (int v : kr.writes) {
      int r = root(v);
      if (first[r] < 0) first[r] = static_cast<int>(k);
      last[r] = std::max(last[r], static_cast<int>(k));
    }
    for (int v : kr.reads) {
      int r = root(v);
      last[r] = std::max(last[r], static_cast<int>(k));
      if (first[r] < 0) first[r] = static_cast<int>(k);
    }
  }
  std::vector<std::vector<int>> starts(inst.kernels.size()), ends(inst.kernels.size());
  for (size_t v = 0; v < nv; ++v) {
    if (inst.values[v].kind != IValue::Kind::arena || first[v] < 0) continue;
    starts[first[v]].push_back(static_cast<int>(v));
    ends[last[v]].push_back(static_cast<int>(v));
  }
  std::map<int64_t, int64_t> free_blocks;  // offset -> size
  int64_t top = 0;
  auto allocate = [&](int64_t size) {
    size = round_up(std::max<int64_t>(size, 1), kAlign);
    auto best = free_blocks.end();
    for (auto it = free_blocks.begin(); it != free_blocks.end(); ++it)
      if (it->second >= size && (best == free_blocks.end() || it->second < best->second)) best = it;
    if (best != free_blocks.end()) {
      int64_t off = best->first, sz = best->second;
      free_blocks.erase(best);
      if (sz > size) free_blocks[off + size] = sz - size;
      return off;
    }
    // Grow, reusing a free block at the top.
    if (!free_blocks.empty()) {
      auto lastb = std::prev(free_blocks.end());
      if (lastb->first + lastb->second == top) {
        int64_t off = lastb->first;
        free_blocks.erase(lastb);
        top = off + size;
        return off;
      }
    }
    int64_t off = top;
    top += size;
    return off;
  };
  auto release = [&](int64_t off, int64_t size) {
    size = round_up(std::max<int64_t>(size, 1), kAlign);
    auto it = free_blocks.emplace(off, size).first;
    auto next = std::next(it);
    if (next != free_blocks.end() && it->first + it->second == next->first) {
      it->second += next->second;
      free_blocks.erase(next);
    }
    if (it != free_blocks.begin()) {
      auto prev = std::prev(it);
      if (prev->first + prev->second == it->first) {
        prev->second += it->second;
        free_blocks.erase(it);
      }
    }
  };
  for (size_t k = 0; k < inst.kernels.size(); ++k) {
    for (int v : starts[k]) inst.values[v].offset = allocate(inst.values[v].bytes);
    for (int v : ends[k]) release(inst.values[v].offset, inst.values[v].bytes);
  }
  inst.arena_bytes = top;

}

}  // namespace

Result<std::shared_ptr<Instance>> CpuPlan::build_instance(const std::vector<Value>& inputs, int threads) const {
  auto inst = std::make_shared<Instance>();
  inst->threads = threads;
  inst->key = make_key(g, inputs);
  const Graph& gr = *g.graph;
  if (inputs.size() != g.inputs.size())
    return invalid_argument("graph '" + gr.name + "' takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                            std::to_string(inputs.size()));
  ThreadScope build_threads(threads);

  // Shapes and build-time values of every value.
  // The segment's inputs may lack declared types (values between segments): type them from the
  // actual tensors.
  Graph typed = gr;
  std::map<std::string, Shape> shapes;
  ShapeInferenceOptions sio;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].is_tensor()) continue;
    const std::string& name = g.values[g.inputs[i]].name;
    const Tensor& t = inputs[i].tensor;
    TypeInfo& ti = typed.inputs[i].type;
    ti = TypeInfo{};
    ti.kind = TypeInfo::Kind::tensor;
    ti.elem = t.dtype();
    ti.has_shape = true;
    for (int64_t d : t.shape()) ti.dims.push_back(Dim{d, {}});
    shapes[name] = t.shape();
    if (!inst->key.values[i].empty()) sio.input_values[name] = t;
  }
  const auto t_start = std::chrono::steady_clock::now();
  auto inferred = infer_shapes(typed, shapes, sio);
  const auto t_inferred = std::chrono::steady_clock::now();
  if (!inferred) {
    inst->use_reference = true;
    inst->reference_reason = "shape inference failed: " + inferred.status().message();
    return inst;
  }
  inst->values.resize(g.values.size());
  for (size_t v = 0; v < g.values.size(); ++v) {
    IValue& iv = inst->values[v];
    const CompiledValue& cv = g.values[v];
    if (cv.constant.defined()) {
      iv.dtype = cv.constant.dtype();
      iv.shape = cv.constant.shape();
      iv.kind = IValue::Kind::constant;
      iv.holder = cv.constant;
      iv.bytes = static_cast<int64_t>(cv.constant.nbytes());
      iv.defined = true;
      continue;
    }
    const TypeInfo* t = inferred->type_of(cv.name);
    if (t && t->kind == TypeInfo::Kind::tensor) {
      iv.dtype = t->elem;
      Shape s;
      if (fully_known(*t, &s)) iv.shape = s;
      else iv.shape = {-1};
    }
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    IValue& iv = inst->values[g.inputs[i]];
    if (!inputs[i].is_tensor()) {
      if (iv.kind != IValue::Kind::constant) iv.kind = IValue::Kind::none;
      continue;
    }
    iv.dtype = inputs[i].tensor.dtype();
    iv.shape = inputs[i].tensor.shape();
    if (!inst->key.values[i].empty()) {
      // Keyed by value: every run of this instance has exactly these values.
      iv.kind = IValue::Kind::constant;
      iv.holder = inputs[i].tensor.clone();
      iv.bytes = static_cast<int64_t>(iv.holder.nbytes());
      iv.defined = true;
      continue;
    }
    iv.kind = iv.dtype == DataType::string ? IValue::Kind::held : IValue::Kind::input;
    iv.ref = static_cast<int>(i);
    iv.bytes = static_cast<int64_t>(inputs[i].tensor.nbytes());
    iv.defined = true;
  }

  Builder b(g, *inst);
  for (const Step& st : g.steps) {
    if (st.dead) continue;
    const int step_index = static_cast<int>(&st - g.steps.data());
    // Outputs computable at build time (e.g. from input shapes) become constants.
    bool all_known = true;
    for (int o : st.outputs) {
      if (o < 0) continue;
      if (!inferred->constants.count(g.values[o].name)) all_known = false;
    }
    if (all_known) {
      for (int o : st.outputs)
        if (o >= 0) b.define_constant(o, inferred->constants.at(g.values[o].name));
      continue;
    }
    Snapshot snap{inst->kernels.size(), inst->values.size(), inst->alias_order.size()};
    std::vector<IValue> saved;
    for (int o : st.outputs) saved.push_back(o >= 0 ? inst->values[o] : IValue{});
    auto rollback = [&] {
      inst->kernels.resize(snap.kernels);
      inst->values.resize(snap.values);
      inst->alias_order.resize(snap.aliases);
      for (size_t i = 0; i < st.outputs.size(); ++i)
        if (st.outputs[i] >= 0) inst->values[st.outputs[i]] = saved[i];
    };
    Status s = unsupported("no fast path");
    if (st.spec) {
      try {
        s = st.spec->prepare(b, st);
      } catch (const dnnl::error& e) {
        s = unsupported(st.node->label() + " oneDNN: " + e.what());
      }
    }
    if (!s.is_ok()) {
      if (st.spec) note(st.node->label() + " runs on the generic path: " + s.message());
      rollback();
      b.forget_conversions_from(static_cast<int>(snap.values));
      inst->generic_steps.emplace_back(step_index, st.spec ? s.message() : "the cpu backend has no kernel for this case");
      s = b.generic(st);
      if (!s.is_ok()) {
        rollback();
        inst->use_reference = true;
        inst->reference_reason = s.message();
        note("segment '" + gr.name + "' runs on the reference executor: " + s.message());
        return inst;
      }
    }
  }

  inst->work = b.work();

  // Segment outputs.
  for (size_t j = 0; j < g.outputs.size(); ++j) {
    int v = g.outputs[j];
    OutputSource src;
    IValue& iv = inst->values[v];
    bool earlier = false;
    for (size_t k = 0; k < j; ++k)
      if (g.outputs[k] == v) {
        src.kind = OutputSource::Kind::same_as;
        src.value = static_cast<int>(k);
        earlier = true;
        break;
      }
    if (earlier) {
    } else if (iv.kind == IValue::Kind::constant && iv.layout == Layout::plain) {
      src.kind = OutputSource::Kind::constant;
      src.constant = iv.holder;
    } else if (iv.kind == IValue::Kind::input) {
      src.kind = OutputSource::Kind::input;
      src.input = iv.ref;
    } else if (iv.kind == IValue::Kind::held) {
      src.kind = OutputSource::Kind::held;
      src.value = v;
    } else if (iv.kind == IValue::Kind::arena && iv.layout == Layout::plain) {
      iv.kind = IValue::Kind::output;
      iv.ref = static_cast<int>(inst->output_values.size());
      inst->output_values.push_back(v);
      src.kind = OutputSource::Kind::buffer;
      src.value = v;
    } else if (iv.kind == IValue::Kind::none || !iv.defined) {
      inst->use_reference = true;
      inst->reference_reason = "output '" + g.values[v].name + "' was not produced";
      return inst;
    } else {
      // Blocked, aliased or a constant in another layout: copy into a plain output buffer.
      int out = b.add_temp(iv.dtype, iv.shape, Layout::plain);
      IValue& ov = inst->values[out];
      ov.kind = IValue::Kind::output;
      ov.ref = static_cast<int>(inst->output_values.size());
      inst->output_values.push_back(out);
      const IValue& cur = inst->values[v];
      if (cur.layout == Layout::blocked) {
        Status s = add_reorder(b, v, out, "[output '" + g.values[v].name + "']");
        if (!s.is_ok()) {
          inst->use_reference = true;
          inst->reference_reason = s.message();
          return inst;
        }
      } else {
        auto k = std::make_unique<CopyKernel>();
        k->src = v;
        k->dst = out;
        k->bytes = cur.bytes;
        k->reads = {v};
        k->writes = {out};
        b.add_kernel(std::move(k));
      }
      src.kind = OutputSource::Kind::buffer;
      src.value = out;
    }
    inst->outputs.push_back(std::move(src));
  }

  plan_memory(*inst);
  const size_t nv = inst->values.size();
  inst->fixed.assign(nv, false);
  for (size_t v = 0; v < nv; ++v) {
    auto kind = inst->values[v].kind;
    inst->fixed[v] = kind == IValue::Kind::arena || kind == IValue::Kind::constant;
  }
  for (int a : inst->alias_order) inst->fixed[a] = inst->fixed[inst->values[a].ref];
  if (verbose()) {
    auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
    const auto t_end = std::chrono::steady_clock::now();
    std::fprintf(stderr,
                 "tandem cpu: segment '%s' instance: %zu kernels, arena %.1f MB, scratch %.1f MB; built in %.1f ms "
                 "(shape inference %.1f ms)\n",
                 gr.name.c_str(), inst->kernels.size(), inst->arena_bytes / 1048576.0, inst->scratch_bytes / 1048576.0,
                 ms(t_start, t_end), ms(t_start, t_inferred));
  }
  return inst;
}

Result<std::shared_ptr<Instance>> CpuPlan::instance_for(const std::vector<Value>& inputs, int threads) const {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    for (auto it = cache_.begin(); it != cache_.end(); ++it) {
      if ((*it)->requested_threads == threads && key_matches(g, (*it)->key, inputs)) {
        if (it != cache_.begin()) cache_.splice(cache_.begin(), cache_, it);
        return cache_.front();
      }
    }
  }
  std::lock_guard<std::mutex> build_lock(build_mu_);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    for (auto& inst : cache_)
      if (inst->requested_threads == threads && key_matches(g, inst->key, inputs)) return inst;
  }
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, build_instance(inputs, threads));
  // A model this small gains little from a second thread and risks waiting for it to be
  // scheduled: run it on one.
  constexpr double kSmallModelWork = 4e7;
  if (inst->threads > 1 && !inst->use_reference && inst->work < kSmallModelWork) {
    TANDEM_ASSIGN_OR_RETURN(inst, build_instance(inputs, 1));
  }
  inst->requested_threads = threads;
  std::lock_guard<std::mutex> lock(cache_mu_);
  cache_.push_front(inst);
  constexpr size_t kMaxInstances = 32;
  while (cache_.size() > kMaxInstances) cache_.pop_back();
  return inst;
}

bool TeamSizer::choose_single() {
  std::lock_guard<std::mutex> lock(mu_);
  if (single_left_ == 0) return false;
  if (--single_left_ == 0) probe_pending_ = true;
  return true;
}

void TeamSizer::record(bool single, double ms) {
  constexpr double kWeight = 0.25, kSlowdown = 1.5, kProbeMargin = 1.1;
  constexpr int kFirstWindow = 8, kMaxWindow = 256, kMinTeamRuns = 4;
  std::lock_guard<std::mutex> lock(mu_);
  if (single) {
    single_average_ = single_average_ > 0 ? (1 - kWeight) * single_average_ + kWeight * ms : ms;
    return;
  }
  if (probe_pending_) {
    probe_pending_ = false;
    if (single_average_ > 0 && ms > kProbeMargin * single_average_) {
      window_ = std::min(2 * window_, kMaxWindow);
      single_left_ = window_;
    } else {
      window_ = kFirstWindow;
      team_baseline_ = team_average_ = ms;
    }
    return;
  }
  team_baseline_ = team_baseline_ > 0 ? std::min(team_baseline_, ms) : ms;
  team_average_ = team_runs_ > 0 ? (1 - kWeight) * team_average_ + kWeight * ms : ms;
  ++team_runs_;
  if (team_runs_ >= kMinTeamRuns && team_average_ > kSlowdown * team_baseline_) {
    single_left_ = window_;
    team_average_ = team_baseline_;
  }
}

std::unique_ptr<Context> CpuPlan::make_context(const Instance& inst) const {
  auto ctx = std::make_unique<Context>();
  ctx->arena = aligned_buffer(inst.arena_bytes);
  ctx->scratch = aligned_buffer(inst.scratch_bytes);
  if (!ctx->arena || !ctx->scratch) return nullptr;
  const size_t nv = inst.values.size();
  ctx->ptr.assign(nv, nullptr);
  ctx->held.assign(nv, Tensor{});
  ctx->out.assign(inst.output_values.size(), Tensor{});
  for (size_t v = 0; v < nv; ++v) {
    const IValue& iv = inst.values[v];
    if (iv.kind == IValue::Kind::arena) ctx->ptr[v] = ctx->arena.get() + iv.offset;
    else if (iv.kind == IValue::Kind::constant) ctx->ptr[v] = const_cast<void*>(iv.holder.raw_data());
  }
  for (int a : inst.alias_order)
    if (inst.fixed[a]) ctx->ptr[a] = static_cast<std::byte*>(ctx->ptr[inst.values[a].ref]) + inst.values[a].offset;
  ctx->stream = dnnl::stream(cpu_engine());
  for (const auto& k : inst.kernels) ctx->states.push_back(k->make_state(ctx->ptr.data(), inst.fixed, ctx->scratch.get()));
  return ctx;
}

Status CpuPlan::run_reference(const std::vector<Value>& inputs, std::vector<Value>* outputs,
                              const RunControl& control) const {
  std::shared_ptr<const ExecutionPlan> p;
  {
    std::lock_guard<std::mutex> lock(ref_mu_);
    if (!ref_plan_) {
      auto rp = compile_plan(*g.graph, reference_kernels());
      if (!rp) return rp.status();
      ref_plan_ = std::move(rp).value();
    }
    p = ref_plan_;
  }
  auto out = run_plan(*p, inputs, control);
  if (!out) return out.status();
  *outputs = std::move(out).value();
  return Status::ok();
}

Status CpuPlan::run(const std::vector<Value>& given, std::vector<Value>* outputs, const RunControl& control) const {
  if (given.size() > g.inputs.size())
    return invalid_argument("graph '" + g.graph->name + "' takes " + std::to_string(g.inputs.size()) + " inputs, got " +
                            std::to_string(given.size()));
  // Omitted trailing inputs are empty optionals (an initializer of the same name then applies).
  std::vector<Value> padded;
  if (given.size() < g.inputs.size()) {
    padded = given;
    padded.resize(g.inputs.size());
  }
  const std::vector<Value>& inputs = given.size() < g.inputs.size() ? padded : given;
  TANDEM_ASSIGN_OR_RETURN(std::shared_ptr<Instance> inst, instance_for(inputs, g.threads));
  if (inst->use_reference) return run_reference(inputs, outputs, control);
  // No oversubscription: runs in progress in this process hold OpenMP threads; when this run's
  // team would take the total past the cores (or the plan's own thread count, if larger), it
  // runs on the instance built for one thread, on the calling thread alone.
  // Competition from other processes: the team's sizer may send this run to one thread.
  static std::atomic<int> busy_threads{0};
  TeamSizer* sizer = nullptr;  // set when this run's latency informs the sizer
  bool sized_single = false;
  int held = busy_threads.fetch_add(inst->threads) + inst->threads;
  if (inst->threads > 1) {
    const bool oversubscribed = held > std::max(physical_cores(), g.threads);
    static const bool sizer_enabled = feature_enabled("TEAM_SIZER");
    if (!oversubscribed && sizer_enabled) {
      sizer = &inst->sizer;
      sized_single = sizer->choose_single();
    }
    if (oversubscribed || sized_single) {
      busy_threads.fetch_sub(inst->threads);
      TANDEM_ASSIGN_OR_RETURN(inst, instance_for(inputs, 1));
      if (inst->use_reference) return run_reference(inputs, outputs, control);
      busy_threads.fetch_add(inst->threads);
    }
  }
  struct Release {
    int threads;
    ~Release() { busy_threads.fetch_sub(threads); }
  } release{inst->threads};
  ThreadScope threads_scope(inst->threads);  // the caller's OpenMP setting comes back afterwards

  std::unique_ptr<Context> ctx;
  {
    std::lock_guard<std::mutex> lock(inst->pool_mu);
    if (!inst->pool.empty()) {
      ctx = std::move(inst->pool.back());
      inst->pool.pop_back();
    }
  }
  if (!ctx) {
    try {
      ctx = make_context(*inst);
    } catch (const dnnl::error& e) {
      return Status(StatusCode::device_error, std::string("cpu: cannot create a run context: ") + e.what());
    }
    if (!ctx) return Status(StatusCode::out_of_memory, "cpu: cannot allocate the arena");
  }
  struct Return {
    Instance& inst;
    std::unique_ptr<Context>& ctx;
    ~Return() {
      if (!ctx) return;
      for (auto& t : ctx->held) t = Tensor{};
      for (auto& t : ctx->out) t = Tensor{};  // left over only when the run failed
      std::lock_guard<std::mutex> lock(inst.pool_mu);
      inst.pool.push_back(std::move(ctx));
    }
  } give_back{*inst, ctx};

  // Bind inputs and outputs.
  for (size_t i = 0; i < inputs.size() && i < g.inputs.size(); ++i) {
    int v = g.inputs[i];
    const IValue& iv = inst->values[v];
    if (iv.kind == IValue::Kind::input) ctx->ptr[v] = const_cast<void*>(inputs[i].tensor.raw_data());
    else if (iv.kind == IValue::Kind::held && inputs[i].is_tensor()) {
      ctx->held[v] = inputs[i].tensor;
      ctx->ptr[v] = const_cast<void*>(inputs[i].tensor.raw_data());
    }
  }
  // Output buffers: a tensor the caller passed back in `outputs` (same dtype and shape, its buffer
  // not shared) is written in place; otherwise a new one is allocated.
  for (size_t i = 0; i < inst->outputs.size(); ++i) {
    const OutputSource& o = inst->outputs[i];
    if (o.kind != OutputSource::Kind::buffer) continue;
    const IValue& iv = inst->values[o.value];
    Tensor& slot = ctx->out[iv.ref];
    if (i < outputs->size()) {
      Tensor& offered = (*outputs)[i].tensor;
      if ((*outputs)[i].is_tensor() && offered.dtype() == iv.dtype && offered.shape() == iv.shape &&
          offered.buffer_unshared())
        slot = std::move(offered);
    }
    if (!slot.defined()) {
      try {
        slot = Tensor(iv.dtype, iv.shape);
      } catch (const std::bad_alloc&) {
        return Status(StatusCode::out_of_memory, "cpu: cannot allocate output '" + g.values[g.outputs[i]].name + "'");
      }
    }
    ctx->ptr[o.value] = slot.raw_data();
  }
  for (int a : inst->alias_order)
    if (!inst->fixed[a]) ctx->ptr[a] = static_cast<std::byte*>(ctx->ptr[inst->values[a].ref]) + inst->values[a].offset;

  RunCtx rc;
  rc.ptr = ctx->ptr.data();
  rc.held = ctx->held.data();
  rc.stream = &ctx->stream;
  rc.threads = inst->threads;
  rc.scratch = ctx->scratch.get();
  const bool has_deadline = control.deadline != std::chrono::steady_clock::time_point::max();
  static const bool profile = [] {
    const char* e = std::getenv("TANDEM_CPU_PROFILE");
    return e && *e && *e != '0';
  }();
  std::vector<std::pair<double, size_t>> times;
  const auto started = std::chrono::steady_clock::now();
  for (size_t k = 0; k < inst->kernels.size(); ++k) {
    if (control.cancel && control.cancel->load(std::memory_order_relaxed))
      return Status(StatusCode::cancelled, "the request was cancelled");
    if (has_deadline && std::chrono::steady_clock::now() > control.deadline)
      return Status(StatusCode::timeout, "the deadline passed before " + inst->kernels[k]->label + " ran");
    auto t0 = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    Status s = inst->kernels[k]->run(rc, ctx->states[k].get());
    if (!s.is_ok()) return s;
    if (profile)
      times.emplace_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count(), k);
  }
  if (profile) {
    double total = 0;
    for (auto& [t, k] : times) total += t;
    std::sort(times.rbegin(), times.rend());
    std::fprintf(stderr, "tandem cpu profile: %zu kernels, %.2f ms\n", times.size(), total);
    const size_t show = std::string(std::getenv("TANDEM_CPU_PROFILE")) == "all" ? times.size() : 25;
    for (size_t i = 0; i < times.size() && i < show; ++i) {
      const Kernel& kr = *inst->kernels[times[i].second];
      std::string shape;
      if (!kr.writes.empty()) shape = shape_to_string(inst->values[kr.writes[0]].shape);
      std::fprintf(stderr, "  %7.3f ms  %s -> %s%s\n", times[i].first, kr.label.c_str(), shape.c_str(),
                   !kr.writes.empty() && inst->values[kr.writes[0]].layout == Layout::blocked ? " (blocked)" : "");
    }
  }
  ctx->stream.wait();
  if (sizer)
    sizer->record(sized_single, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count());

  outputs->resize(inst->outputs.size());
  for (size_t i = 0; i < inst->outputs.size(); ++i) {
    const OutputSource& o = inst->outputs[i];
    Value& out = (*outputs)[i];
    out.kind = Value::Kind::tensor;
    out.sequence.clear();
    switch (o.kind) {
      case OutputSource::Kind::buffer: out.tensor = std::move(ctx->out[inst->values[o.value].ref]); break;
      case OutputSource::Kind::constant: out.tensor = o.constant; break;
      case OutputSource::Kind::input: out = inputs[o.input]; break;
      case OutputSource::Kind::held: out.tensor = ctx->held[o.value]; break;
      case OutputSource::Kind::same_as: out = (*outputs)[o.value]; break;
    }
  }
  return Status::ok();
}

std::vector<Plan::Declined> CpuPlan::declined() const {
  // Names in the plan's graph are the segment's, except float16 outputs widened at compile.
  auto segment_name = [](std::string name) {
    const std::string suffix = "__tandem_f32";
    if (name.size() > suffix.size() && name.ends_with(suffix)) name.resize(name.size() - suffix.size());
    return name;
  };
  auto first_output = [](const Node& n) {
    for (const std::string& o : n.outputs)
      if (!o.empty()) return o;
    return std::string();
  };
  std::vector<Declined> out;
  std::set<std::string> seen;
  auto add = [&](const Node& n, const std::string& reason) {
    std::string name = segment_name(first_output(n));
    if (!name.empty() && seen.insert(name).second) out.push_back({name, reason});
  };
  std::lock_guard<std::mutex> lock(cache_mu_);
  for (const auto& inst : cache_) {
    if (inst->use_reference) {
      for (const Node& n : g.graph->nodes) add(n, inst->reference_reason);
      continue;
    }
    for (const auto& [step, reason] : inst->generic_steps)
      for (const Node* n : g.steps[static_cast<size_t>(step)].originals) add(*n, reason);
  }
  return out;
}

std::string CpuPlan::describe() const {
  std::string out;
  auto line = [&out](const std::string& text) { out += text + "\n"; };
  int live = 0, fused = 0, generic = 0;
  for (const Step& st : g.steps) {
    if (st.dead) continue;
    ++live;
    fused += st.originals.size() > 1;
    generic += !st.spec;
  }
  line(std::to_string(g.graph->nodes.size()) + " nodes -> " + std::to_string(live) + " steps: " +
       std::to_string(g.folded_nodes) + " nodes folded to constants, " + std::to_string(fused) +
       " fused steps, " + std::to_string(generic) + " steps on reference kernels; " + std::to_string(g.threads) +
       " thread(s)");
  line(cpu_isa_description());
  line("steps (compile time, in execution order):");
  int index = 0;
  for (const Step& st : g.steps) {
    if (st.dead) continue;
    std::string ops;
    for (const Node* n : st.originals) ops += (ops.empty() ? "" : " + ") + n->op_type;
    std::string outs;
    for (int v : st.outputs)
      if (v >= 0) outs += (outs.empty() ? "" : ", ") + g.values[v].name;
    line("  " + std::to_string(index++) + "  " + st.node->label() + (st.originals.size() > 1 ? "  fused: " + ops : "") +
         (st.spec ? "" : "  (reference kernels)") + "  -> " + outs);
  }
  std::lock_guard<std::mutex> lock(cache_mu_);
  for (const auto& inst : cache_) {
    std::string sig;
    for (size_t i = 0; i < inst->key.shapes.size() && i < g.inputs.size(); ++i)
      sig += (sig.empty() ? "" : " ") + g.values[g.inputs[i]].name + "=" +
             (inst->key.none[i] ? std::string("none") : shape_to_string(inst->key.shapes[i]));
    if (inst->use_reference) {
      line("instance " + sig + ": whole segment on reference kernels (" + inst->reference_reason + ")");
      continue;
    }
    char sizes[128];
    std::snprintf(sizes, sizeof sizes, "arena %.2f MB, scratch %.2f MB, %d thread(s)", inst->arena_bytes / 1048576.0,
                  inst->scratch_bytes / 1048576.0, inst->threads);
    line("instance " + sig + ": " + std::to_string(inst->kernels.size()) + " kernels, " + sizes);
    for (size_t k = 0; k < inst->kernels.size(); ++k) {
      const Kernel& kr = *inst->kernels[k];
      std::string shape;
      if (!kr.writes.empty()) {
        const IValue& w = inst->values[kr.writes[0]];
        shape = shape_to_string(w.shape) + (w.layout == Layout::blocked ? " nChw16c" : "");
      }
      line("  " + std::to_string(k) + "  " + kr.label + "  -> " + shape);
    }
  }
  return out;
}

}  // namespace tandem::cpu
