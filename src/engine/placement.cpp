#include "engine/placement.h"

#include <algorithm>
#include <optional>
#include <set>

#include "passes/constant_folding.h"
#include "passes/shape_inference.h"

namespace tandem {

struct PlacedModel::Segment {
  Backend* backend = nullptr;
  std::shared_ptr<Graph> graph;
  std::unique_ptr<Plan> plan;
  std::vector<int> input_slots;   // for graph->inputs
  std::vector<int> output_slots;  // for graph->outputs
  std::vector<int> frees;         // slots whose last reader is this segment
};

PlacedModel::~PlacedModel() = default;

namespace {

// Every name a node reads, including its subgraphs' reads of enclosing values.
std::vector<std::string> reads_of(const Node& n) {
  std::set<std::string> implicit;
  for (const Graph* sub : subgraphs_of(n)) collect_outer_reads(*sub, implicit);
  std::vector<std::string> out;
  for (const std::string& in : n.inputs)
    if (!in.empty()) out.push_back(in);
  for (const std::string& in : implicit) out.push_back(in);
  return out;
}

}  // namespace

NodeTypes node_types(const Node& n, const ShapeInferenceResult& inferred) {
  auto elem = [&](const std::string& name) {
    const TypeInfo* t = name.empty() ? nullptr : inferred.type_of(name);
    return t && t->kind == TypeInfo::Kind::tensor ? t->elem : DataType::undefined;
  };
  NodeTypes types;
  for (const std::string& in : n.inputs) types.inputs.push_back(elem(in));
  for (const std::string& out : n.outputs) types.outputs.push_back(elem(out));
  return types;
}

namespace {

const ValueInfo* find_info(const Graph& g, const std::string& name) {
  for (const auto* list : {&g.inputs, &g.outputs, &g.value_infos})
    for (const ValueInfo& vi : *list)
      if (vi.name == name) return &vi;
  return nullptr;
}

// The type a segment declares for a value crossing its boundary: the graph's declaration when
// it gives a shaped tensor type, otherwise what inference found (intermediate values seldom
// have a declaration), otherwise unknown.
ValueInfo segment_info(const Graph& g, const ShapeInferenceResult* inferred, const std::string& name) {
  const ValueInfo* declared = find_info(g, name);
  if (declared && declared->type.kind == TypeInfo::Kind::tensor && declared->type.elem != DataType::undefined &&
      declared->type.has_shape)
    return *declared;
  if (const TypeInfo* t = inferred ? inferred->type_of(name) : nullptr; t && t->kind != TypeInfo::Kind::unknown)
    return ValueInfo{name, *t};
  return declared ? *declared : ValueInfo{name, {}};
}

}  // namespace

Result<std::unique_ptr<PlacedModel>> PlacedModel::create(std::shared_ptr<const Graph> graph,
                                                         const std::vector<Backend*>& backends,
                                                         const CompileOptions& options) {
  if (backends.empty()) return invalid_argument("no backend to place the model on");
  std::unique_ptr<PlacedModel> m(new PlacedModel());
  // 0. Fold what is constant, once (constant_folding.h). Inference failing (a certain shape
  //    mismatch) leaves the graph as it is and the types unknown: the backends then judge by
  //    op and attributes, and compile or run reports the mismatch.
  std::optional<ShapeInferenceResult> inferred;
  if (auto folded = fold_constants(*graph)) {
    m->report_.folded_nodes = folded->folded_nodes;
    m->report_.folded_bytes = folded->folded_bytes;
    if (folded->folded_nodes > 0) graph = folded->graph;
    folded->inferred.constants.clear();  // the folded graph holds what is still needed
    inferred = std::move(folded->inferred);
  }
  m->graph_ = graph;
  const Graph& g = *graph;
  TANDEM_ASSIGN_OR_RETURN(const std::vector<int> order, topological_order(g));

  // 1. Choose a backend per node, by op, attributes and the element types inference finds.
  std::vector<Backend*> chosen(g.nodes.size(), nullptr);
  std::vector<NodePlacement> placement(g.nodes.size());
  auto types_of = [&](const Node& n) { return inferred ? node_types(n, *inferred) : NodeTypes{}; };
  for (int idx : order) {
    const Node& n = g.nodes[idx];
    NodePlacement& np = placement[idx];
    np = NodePlacement{n.label(), n.op_type, "", {}};
    const NodeTypes types = types_of(n);
    for (Backend* b : backends) {
      Status s = b->supports(n, types);
      if (s.is_ok()) {
        chosen[idx] = b;
        np.backend = std::string(b->name());
        break;
      }
      np.declined.emplace_back(std::string(b->name()), s.message());
    }
    if (!chosen[idx]) {
      std::string why = np.declined.empty() ? "" : np.declined.back().second;
      return unsupported(n.label() + " no backend supports op '" + n.op_type + "': " + why);
    }
  }
  std::map<std::string, int> producer;
  for (const Node& n : g.nodes)
    for (const std::string& o : n.outputs)
      if (!o.empty()) producer[o] = n.index;
  std::set<std::string> graph_outputs;
  for (const ValueInfo& vi : g.outputs) graph_outputs.insert(vi.name);

  // 2-4. Segments, compiled. A plan may decline nodes it accepted but cannot run on its own
  // kernels for the shapes known at compile (Plan::declined): they move to the next backend
  // that supports them and the segments are made and compiled again, so that the report says
  // where work runs. Nodes only move to backends later in the preference order, in at most
  // three passes.
  for (int pass = 0;; ++pass) {
    m->slot_of_.clear();
    m->slot_count_ = 0;
    m->input_slots_.clear();
    m->output_slots_.clear();
    m->segments_.clear();
    auto slot = [&](const std::string& name) {
      auto it = m->slot_of_.find(name);
      if (it != m->slot_of_.end()) return it->second;
      m->slot_of_[name] = m->slot_count_;
      return m->slot_count_++;
    };
    for (const ValueInfo& vi : g.inputs) m->input_slots_.push_back(slot(vi.name));

    // 3. Cut the order into segments of consecutive nodes on one backend.
    std::vector<std::vector<int>> groups;
    for (size_t k = 0; k < order.size(); ++k) {
      if (k == 0 || chosen[order[k]] != chosen[order[k - 1]]) groups.emplace_back();
      groups.back().push_back(order[k]);
    }
    // Which segment reads each value last, and which values outlive their segment.
    std::map<std::string, int> last_reader;
    for (size_t s = 0; s < groups.size(); ++s)
      for (int idx : groups[s])
        for (const std::string& r : reads_of(g.nodes[idx])) last_reader[r] = static_cast<int>(s);

    for (size_t s = 0; s < groups.size(); ++s) {
      auto seg = std::make_unique<Segment>();
      seg->backend = chosen[groups[s].front()];
      seg->graph = std::make_shared<Graph>();
      Graph& sg = *seg->graph;
      sg.name = g.name + "/segment" + std::to_string(s) + ":" + std::string(seg->backend->name());
      sg.opsets = g.opsets;
      std::set<std::string> produced;
      for (int idx : groups[s]) {
        sg.nodes.push_back(g.nodes[idx]);
        sg.nodes.back().index = static_cast<int>(sg.nodes.size()) - 1;
        for (const std::string& o : g.nodes[idx].outputs)
          if (!o.empty()) produced.insert(o);
      }
      std::set<std::string> seen_inputs;
      for (int idx : groups[s])
        for (const std::string& r : reads_of(g.nodes[idx])) {
          if (produced.count(r) || seen_inputs.count(r)) continue;
          seen_inputs.insert(r);
          auto init = g.initializers.find(r);
          const bool is_graph_input = std::any_of(g.inputs.begin(), g.inputs.end(),
                                                  [&](const ValueInfo& vi) { return vi.name == r; });
          if (init != g.initializers.end() && !is_graph_input) {
            sg.initializers[r] = init->second;  // shared buffer, no copy
            continue;
          }
          sg.inputs.push_back(segment_info(g, inferred ? &*inferred : nullptr, r));
          seg->input_slots.push_back(slot(r));
        }
      for (int idx : groups[s])
        for (const std::string& o : g.nodes[idx].outputs) {
          if (o.empty()) continue;
          auto lr = last_reader.find(o);
          if (graph_outputs.count(o) || (lr != last_reader.end() && lr->second > static_cast<int>(s))) {
            sg.outputs.push_back(segment_info(g, inferred ? &*inferred : nullptr, o));
            seg->output_slots.push_back(slot(o));
          }
        }
      for (const ValueInfo& vi : g.value_infos)
        if (produced.count(vi.name)) sg.value_infos.push_back(vi);
      auto plan = seg->backend->compile(sg, options);
      if (!plan) return plan.status();
      seg->plan = std::move(plan).value();
      m->segments_.push_back(std::move(seg));
    }
    // Graph outputs that are graph inputs or initializers pass straight through.
    for (const ValueInfo& vi : g.outputs) m->output_slots_.push_back(slot(vi.name));
    // Free values after their last reading segment (never graph outputs).
    for (const auto& [name, s] : last_reader)
      if (!graph_outputs.count(name) && m->slot_of_.count(name)) m->segments_[s]->frees.push_back(m->slot_of_[name]);

    // Nodes a plan declined move to the next backend in the order that supports them.
    bool moved = false;
    for (const auto& seg : m->segments_) {
      for (const Plan::Declined& d : seg->plan->declined()) {
        auto p = producer.find(d.output);
        if (p == producer.end()) continue;
        const int idx = p->second;
        if (chosen[idx] != seg->backend) continue;
        const Node& n = g.nodes[idx];
        auto it = std::find(backends.begin(), backends.end(), seg->backend);
        for (++it; it != backends.end(); ++it) {
          if (!(*it)->supports(n, types_of(n)).is_ok()) continue;
          placement[idx].declined.emplace_back(std::string(seg->backend->name()), d.reason);
          placement[idx].backend = std::string((*it)->name());
          chosen[idx] = *it;
          moved = true;
          break;
        }
      }
    }
    if (!moved || pass >= 2) break;
  }

  for (int idx : order) {
    m->report_.nodes_per_backend[placement[idx].backend]++;
    m->report_.nodes.push_back(placement[idx]);
  }
  m->report_.segments = static_cast<int>(m->segments_.size());
  // One segment that reads exactly the graph inputs and writes exactly the graph outputs, in
  // order, with no initializer standing in for an input: run() hands the request straight to it.
  if (m->segments_.size() == 1) {
    const Segment& only = *m->segments_.front();
    bool inputs_shadowed = false;
    for (const ValueInfo& vi : g.inputs) inputs_shadowed |= g.initializers.count(vi.name) > 0;
    m->direct_ = !inputs_shadowed && only.input_slots == m->input_slots_ && only.output_slots == m->output_slots_;
  }
  return m;
}

Status PlacedModel::run(const std::vector<Value>& inputs, std::vector<Value>* outputs, const RunControl& control) const {
  if (direct_ && inputs.size() == input_slots_.size()) {
    const Segment& only = *segments_.front();
    return only.backend->run(*only.plan, inputs, outputs, control);
  }
  std::vector<Value> slots(static_cast<size_t>(slot_count_));
  for (size_t i = 0; i < inputs.size() && i < input_slots_.size(); ++i) slots[input_slots_[i]] = inputs[i];
  for (const auto& [name, t] : graph_->initializers) {
    auto it = slot_of_.find(name);
    if (it != slot_of_.end() && slots[it->second].is_none()) slots[it->second] = Value::of(t);
  }
  std::vector<Value> seg_in, seg_out;
  for (const auto& seg : segments_) {
    seg_in.clear();
    for (int s : seg->input_slots) seg_in.push_back(slots[s]);
    seg_out.clear();
    TANDEM_RETURN_IF_ERROR(seg->backend->run(*seg->plan, seg_in, &seg_out, control));
    if (seg_out.size() != seg->output_slots.size())
      return internal_error("backend " + std::string(seg->backend->name()) + " returned " +
                            std::to_string(seg_out.size()) + " outputs for a segment with " +
                            std::to_string(seg->output_slots.size()));
    for (size_t i = 0; i < seg_out.size(); ++i) slots[seg->output_slots[i]] = std::move(seg_out[i]);
    for (int s : seg->frees) slots[s] = Value{};
  }
  outputs->clear();
  for (int s : output_slots_) outputs->push_back(slots[s]);
  return Status::ok();
}

std::string PlacedModel::describe() const {
  std::string out;
  if (report_.folded_nodes > 0)
    out += "folded at prepare: " + std::to_string(report_.folded_nodes) + " nodes into " +
           std::to_string(report_.folded_bytes) + " bytes of constants\n";
  for (size_t s = 0; s < segments_.size(); ++s) {
    const Segment& seg = *segments_[s];
    out += "segment " + std::to_string(s) + " on " + std::string(seg.backend->name()) + ": " +
           std::to_string(seg.graph->nodes.size()) + " nodes, " + std::to_string(seg.graph->inputs.size()) +
           " inputs, " + std::to_string(seg.graph->outputs.size()) + " outputs\n";
    const std::string text = seg.plan->describe();
    size_t begin = 0;
    while (begin < text.size()) {
      size_t end = text.find('\n', begin);
      if (end == std::string::npos) end = text.size();
      out += "  " + text.substr(begin, end - begin) + "\n";
      begin = end + 1;
    }
  }
  return out;
}

}  // namespace tandem
