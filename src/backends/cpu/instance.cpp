// instance.cpp: building and caching the instances of a plan (plan.h, instance.h): shapes from
// shape inference with the concrete inputs, each step's kernels through the Builder (or the
// generic path), segment outputs, and the memory plan.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/kept_choices.h"
#include "backends/cpu/memory_plan.h"
#include "backends/cpu/plan.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
#include "passes/shape_inference.h"

namespace tandem::cpu {

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

namespace {

// Sizes of an instance before a step, for rolling the step back.
struct Snapshot {
  size_t kernels = 0, values = 0, aliases = 0;
};

// Copies a value into a plain output buffer.
class CopyKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  int64_t bytes = 0;
  Status run(RunCtx& ctx, KernelState*) const override {
    if (bytes) std::memcpy(ctx.ptr[dst], ctx.ptr[src], static_cast<size_t>(bytes));
    return Status::ok();
  }
};

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
  TimingBuffersScope timing_buffers;  // kernel choices timed during the build share one block
  KeptChoicesScope kept_choices(g.cache_dir);  // ... and are kept in the cache folder, if any

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
  // A certain mismatch (dims that do not broadcast, inner dims that differ) is the request's
  // error: say so now rather than run the reference kernels up to the node that fails.
  if (!inferred && inferred.status().code() == StatusCode::invalid_argument) return inferred.status();
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
        note("segment '" + gr.name + "' runs on the reference kernels: " + s.message());
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
      if (cur.layout != Layout::plain) {  // blocked, or nhwc (quantized convolutions)
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
  // The least recently used instances go beyond 32, or beyond CompileOptions::
  // shape_cache_bytes (default instance_cache_limit_bytes(): 1 GiB) of arenas and scratchpads
  // (each context made holds both): a model fed many large shapes (a detector at image sizes)
  // would otherwise keep some 100 MB per size it has seen. The newest always stays; an
  // instance a run still holds is freed when that run ends.
  constexpr size_t kMaxInstances = 32;
  const double max_bytes =
      g.shape_cache_bytes > 0 ? static_cast<double>(g.shape_cache_bytes) : instance_cache_limit_bytes();
  auto footprint = [](const Instance& i) {
    return static_cast<double>(i.arena_bytes + i.scratch_bytes) *
           std::max(1, i.contexts_made.load(std::memory_order_relaxed));
  };
  double bytes = 0;
  for (const auto& cached : cache_) bytes += footprint(*cached);
  while (cache_.size() > 1 && (cache_.size() > kMaxInstances || bytes > max_bytes)) {
    bytes -= footprint(*cache_.back());
    cache_.pop_back();
  }
  return inst;
}

}  // namespace tandem::cpu
