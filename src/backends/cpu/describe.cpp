// describe.cpp: what a plan reports: the nodes it hands back to placement (declined) and its
// steps and instances for `tandem info --optimized` (describe).
#include <cstdio>
#include <set>

#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/plan.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

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
  for (const auto& [step, reason] : g.declined_steps)
    for (const Node* n : g.steps[static_cast<size_t>(step)].originals) add(*n, reason);
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
    for (const auto& [step, reason] : inst->generic_steps)
      line("  generic path (reference kernels): " + g.steps[static_cast<size_t>(step)].node->label() + ": " + reason);
    if (inst->bf16_candidates > 0)
      line("  bf16: " + std::to_string(inst->bf16_kept) + " of " + std::to_string(inst->bf16_candidates) +
           " eligible products run on bfloat16 operands" +
           (bf16_always() ? " (TANDEM_CPU_BF16=always: not timed)" : "; the rest timed faster in float32 on this CPU"));
    if (inst->bf16_handoffs > 0)
      line("  bf16 hand-off: " + std::to_string(inst->bf16_handoffs) +
           " values held in bfloat16 between the convolutions that write and read them");
    for (size_t k = 0; k < inst->kernels.size(); ++k) {
      const Kernel& kr = *inst->kernels[k];
      std::string shape;
      if (!kr.writes.empty()) {
        const IValue& w = inst->values[kr.writes[0]];
        const char* channels_last = w.shape.size() == 3 ? " nwc" : w.shape.size() == 5 ? " ndhwc" : " nhwc";
        shape = shape_to_string(w.shape) +
                (w.layout == Layout::blocked ? " nChw" + std::to_string(channel_block()) + "c"
                                             : w.layout == Layout::nhwc ? channels_last : "");
        if (w.dtype != DataType::float32) shape += " " + std::string(dtype_name(w.dtype));
      }
      line("  " + std::to_string(k) + "  " + kr.label + "  -> " + shape +
           (kr.implementation.empty() ? "" : "  (oneDNN " + kr.implementation + ")"));
    }
  }
  return out;
}

}  // namespace tandem::cpu
