// run.cpp: one run of a plan (plan.h): the instance for the inputs, the thread budget, a
// context from the pool, the kernels in order, the outputs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "backends/cpu/memory_plan.h"
#include "backends/cpu/plan.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
#include "core/sysinfo.h"

namespace tandem::cpu {

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

Status CpuPlan::run_on_reference_kernels(const std::vector<Value>& inputs, std::vector<Value>* outputs,
                                         const RunControl& control) const {
  std::shared_ptr<const ReferenceGraph> rg;
  {
    std::lock_guard<std::mutex> lock(ref_mu_);
    if (!ref_graph_) {
      TANDEM_ASSIGN_OR_RETURN(ReferenceGraph prepared, prepare_reference_graph(*g.graph));
      ref_graph_ = std::make_shared<const ReferenceGraph>(std::move(prepared));
    }
    rg = ref_graph_;
  }
  TANDEM_ASSIGN_OR_RETURN(*outputs, run_reference_graph(*rg, inputs, control));
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
  if (inst->use_reference) return run_on_reference_kernels(inputs, outputs, control);
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
      if (inst->use_reference) return run_on_reference_kernels(inputs, outputs, control);
      busy_threads.fetch_add(inst->threads);
    }
  }
  struct Release {
    int threads;
    ~Release() { busy_threads.fetch_sub(threads); }
  } release{inst->threads};
  ThreadScope threads_scope(inst->threads);  // the caller's OpenMP setting comes back afterwards

  std::unique_ptr<Context> ctx;
  bool cold = false;  // a context made for this run: its first run is slower than the rest
  {
    std::lock_guard<std::mutex> lock(inst->pool_mu);
    if (!inst->pool.empty()) {
      ctx = std::move(inst->pool.back());
      inst->pool.pop_back();
    }
  }
  if (!ctx) {
    cold = true;
    try {
      ctx = make_context(*inst);
    } catch (const dnnl::error& e) {
      return Status(StatusCode::device_error, std::string("cpu: cannot create a run context: ") + e.what());
    }
    if (!ctx) return Status(StatusCode::out_of_memory, "cpu: cannot allocate the arena");
    inst->contexts_made.fetch_add(1, std::memory_order_relaxed);
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
    sizer->record(sized_single, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - started).count(),
                  cold);

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

}  // namespace tandem::cpu
