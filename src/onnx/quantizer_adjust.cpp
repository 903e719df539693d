// Adjusting the float model to the rounding the quantizer will do (quantizer.h): activation
// equalization before calibration, and the probes and corrections of bias correction after it.
#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "onnx/onnx_tensor_util.h"
#include "onnx/quantizer.h"

namespace tandem {

namespace {

using onnx::TensorProto;
using onnx_util::is_default_domain;

const TensorProto* find_initializer(const onnx::GraphProto& g, const std::string& name) {
  for (const auto& t : g.initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

TensorProto* find_initializer(onnx::GraphProto& g, const std::string& name) {
  for (auto& t : *g.mutable_initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

int64_t element_count(const TensorProto& t) {
  int64_t n = 1;
  for (int64_t d : t.dims()) n *= d;
  return n;
}

// Reads count node inputs, nested graphs' reads and graph outputs (onnx_util::read_counts), so
// a value read once is read by one node of the main graph or not at all.
using onnx_util::read_counts;

// Where a correctable node keeps its bias: for a Conv the bias input (empty when it has none);
// for a MatMul the index of the Add that adds its bias and the name of that constant.
struct BiasSlot {
  bool correctable = false;
  std::string bias;  // initializer name; empty: a Conv without bias
  int add_node = -1; // MatMul: the Add reading the MatMul's output
  int64_t channels = 0;
};

BiasSlot bias_slot(const onnx::GraphProto& g, int index, const std::map<std::string, int>& reads) {
  BiasSlot slot;
  const onnx::NodeProto& n = g.node(index);
  const TensorProto* w = n.input_size() > 1 ? find_initializer(g, n.input(1)) : nullptr;
  if (!w || w->data_type() != TensorProto::FLOAT || w->dims_size() < 2) return slot;
  if (n.op_type() == "Conv") {
    slot.channels = w->dims(0);
    if (n.input_size() > 2 && !n.input(2).empty()) {
      const TensorProto* b = find_initializer(g, n.input(2));
      if (!b || b->data_type() != TensorProto::FLOAT || element_count(*b) != slot.channels) return slot;
      slot.bias = n.input(2);
    }
    slot.correctable = true;
    return slot;
  }
  // MatMul: a 2-D weight, and its output read by exactly one Add of a constant [N] or [1, ..., N].
  if (n.op_type() != "MatMul" || w->dims_size() != 2 || n.output_size() != 1) return slot;
  slot.channels = w->dims(1);
  const std::string& y = n.output(0);
  auto it = reads.find(y);
  if (it == reads.end() || it->second != 1) return slot;
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& add = g.node(i);
    if (!is_default_domain(add.domain()) || add.op_type() != "Add" || add.input_size() != 2) continue;
    if (add.input(0) != y && add.input(1) != y) continue;
    const std::string& other = add.input(0) == y ? add.input(1) : add.input(0);
    const TensorProto* b = find_initializer(g, other);
    if (!b || b->data_type() != TensorProto::FLOAT || element_count(*b) != slot.channels || b->dims_size() < 1 ||
        b->dims(b->dims_size() - 1) != slot.channels)
      return slot;
    slot.bias = other;
    slot.add_node = i;
    slot.correctable = true;
    return slot;
  }
  return slot;
}

int64_t group_of(const onnx::NodeProto& n) {
  const onnx::AttributeProto* a = onnx_util::find_attr(n, "group");
  return a ? a->i() : 1;
}

// The float values of initializer `name`, multiplied along axis 0 by factor(row) for each row
// of `rows_per_factor` rows; written in place when only `reader` reads it, else as a copy
// that `reader`'s input `input` then names.
Status scale_rows(onnx::GraphProto& g, const std::map<std::string, int>& reads, onnx::NodeProto& reader, int input,
                  const std::vector<float>& factors, int64_t rows_per_factor, std::set<std::string>& taken) {
  const std::string name = reader.input(input);
  TensorProto* t = find_initializer(g, name);
  if (!t) return internal_error("equalization: '" + name + "' is not an initializer");
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, onnx_util::float_elements(*t));
  const std::vector<int64_t> dims = onnx_util::dims_of(*t);
  const size_t row = dims.empty() || dims[0] == 0 ? 0 : values.size() / static_cast<size_t>(dims[0]);
  for (size_t i = 0; row > 0 && i < values.size(); ++i)
    values[i] *= factors[static_cast<size_t>(static_cast<int64_t>(i / row) / rows_per_factor)];
  // (A name `reads` does not know is a copy an earlier pair made for this reader alone.)
  if (auto count = reads.find(name); count == reads.end() || count->second == 1) {
    *t = onnx_util::make_tensor(name, TensorProto::FLOAT, dims, values);
    return Status::ok();
  }
  const std::string copy = onnx_util::unique_name(name + "_equalized", taken);
  *g.add_initializer() = onnx_util::make_tensor(copy, TensorProto::FLOAT, dims, values);
  reader.set_input(input, copy);
  return Status::ok();
}

}  // namespace

std::vector<EqualizationPair> equalization_pairs(const QuantizationPlan& plan, const QuantizeOptions& options) {
  std::vector<EqualizationPair> pairs;
  if (!options.per_channel) return pairs;
  const onnx::GraphProto& g = plan.prepared.graph();
  const auto reads = read_counts(g);
  const std::set<int> quantized(plan.nodes.begin(), plan.nodes.end());
  std::map<std::string, int> reader_of;
  for (int i = 0; i < g.node_size(); ++i)
    for (const auto& in : g.node(i).input()) reader_of[in] = i;
  auto float_weight = [&](const onnx::NodeProto& n) -> const TensorProto* {
    const TensorProto* w = n.input_size() > 1 ? find_initializer(g, n.input(1)) : nullptr;
    return w && w->data_type() == TensorProto::FLOAT && w->dims_size() >= 3 ? w : nullptr;
  };
  for (int p = 0; p < g.node_size(); ++p) {
    const onnx::NodeProto& producer = g.node(p);
    if (!is_default_domain(producer.domain()) || producer.op_type() != "Conv" || producer.output_size() != 1) continue;
    const std::string& value = producer.output(0);
    auto count = reads.find(value);
    auto read_by = reader_of.find(value);  // absent: the one read is a nested graph's
    if (count == reads.end() || count->second != 1 || read_by == reader_of.end()) continue;
    const int r = read_by->second;
    const onnx::NodeProto& reader = g.node(r);
    if (!is_default_domain(reader.domain()) || reader.op_type() != "Conv" || reader.input(0) != value) continue;
    if (!quantized.count(p) && !quantized.count(r)) continue;
    const TensorProto* wp = float_weight(producer);
    const TensorProto* wr = float_weight(reader);
    if (!wp || !wr) continue;
    const int64_t channels = wp->dims(0);
    // Depthwise: one input channel per filter, `channels` groups, whole filters per channel.
    if (channels <= 0 || group_of(reader) != channels || wr->dims(1) != 1 || wr->dims(0) % channels != 0) continue;
    if (producer.input_size() > 2 && !producer.input(2).empty()) {
      const TensorProto* b = find_initializer(g, producer.input(2));
      if (!b || b->data_type() != TensorProto::FLOAT || b->dims_size() != 1 || b->dims(0) != channels) continue;
    }
    pairs.push_back({p, r, value, channels});
  }
  return pairs;
}

Result<QuantizationPlan> with_equalized_channels(const QuantizationPlan& plan, const std::vector<EqualizationPair>& pairs,
                                                 const std::map<std::string, std::vector<ActivationRange>>& channel_ranges) {
  constexpr float kLargestFactor = 1e4f;
  QuantizationPlan out = plan;
  onnx::GraphProto& g = *out.prepared.mutable_graph();
  const auto reads = read_counts(plan.prepared.graph());
  std::set<std::string> taken;
  onnx_util::collect_names(g, taken);
  for (const EqualizationPair& pair : pairs) {
    auto it = channel_ranges.find(pair.value);
    if (it == channel_ranges.end()) continue;
    const std::vector<ActivationRange>& ranges = it->second;
    if (static_cast<int64_t>(ranges.size()) != pair.channels)
      return internal_error("equalization of '" + pair.value + "': " + std::to_string(ranges.size()) +
                            " channel ranges for " + std::to_string(pair.channels) + " channels");
    float lo = 0, hi = 0;  // the tensor's range, widened to include 0 as its scale will be
    for (const auto& r : ranges) {
      lo = std::min(lo, r.min);
      hi = std::max(hi, r.max);
    }
    std::vector<float> up(ranges.size(), 1.0f), down(ranges.size(), 1.0f);
    bool any = false;
    for (size_t c = 0; c < ranges.size(); ++c) {
      float s = kLargestFactor;
      if (ranges[c].max > 0) s = std::min(s, hi / ranges[c].max);
      if (ranges[c].min < 0) s = std::min(s, lo / ranges[c].min);
      if (!(ranges[c].max > 0) && !(ranges[c].min < 0)) s = 1;  // all zeros (or not finite): nothing to gain
      if (!std::isfinite(s) || s < 1) s = 1;
      up[c] = s;
      down[c] = 1 / s;
      any = any || s > 1;
    }
    if (!any) continue;
    onnx::NodeProto& producer = *g.mutable_node(pair.producer);
    onnx::NodeProto& reader = *g.mutable_node(pair.reader);
    TANDEM_RETURN_IF_ERROR(scale_rows(g, reads, producer, 1, up, 1, taken));
    if (producer.input_size() > 2 && !producer.input(2).empty())
      TANDEM_RETURN_IF_ERROR(scale_rows(g, reads, producer, 2, up, 1, taken));
    const TensorProto* wr = find_initializer(g, reader.input(1));
    const int64_t per_channel = wr ? wr->dims(0) / pair.channels : 1;
    TANDEM_RETURN_IF_ERROR(scale_rows(g, reads, reader, 1, down, per_channel, taken));
    ++out.report.equalized_values;
  }
  return out;
}

Result<std::vector<BiasProbe>> add_bias_probes(const QuantizationPlan& plan, const QuantizeOptions& options,
                                               const std::map<std::string, ActivationRange>* input_ranges,
                                               onnx::ModelProto* model) {
  const onnx::GraphProto& g = plan.prepared.graph();
  const auto reads = read_counts(g);
  std::set<std::string> taken;
  onnx_util::collect_names(model->graph(), taken);
  onnx::GraphProto& out = *model->mutable_graph();
  auto add_node = [&](const std::string& op, const std::string& base, const std::vector<std::string>& inputs) {
    onnx::NodeProto* node = out.add_node();
    node->set_op_type(op);
    node->set_name(onnx_util::unique_name(base, taken));
    for (const auto& in : inputs) node->add_input(in);
    const std::string output = onnx_util::unique_name(base, taken);
    node->add_output(output);
    return node;
  };
  std::vector<BiasProbe> probes;
  struct Rounded {
    std::string weight;      // W' (what the quantized node multiplies by)
    std::string difference;  // W' - W
  };
  std::map<std::string, Rounded> rounded;            // by weight name and axis
  std::map<std::string, std::string> input_errors;   // activation -> dequantize(quantize(x)) - x
  for (int index : plan.nodes) {
    const onnx::NodeProto& n = g.node(index);
    if (!bias_slot(g, index, reads).correctable) continue;
    const TensorProto& w = *find_initializer(g, n.input(1));
    const std::vector<int64_t> dims = onnx_util::dims_of(w);
    const int axis = weight_axis(n, dims.size(), options.per_channel);
    Rounded& r = rounded[w.name() + "#" + std::to_string(axis)];
    if (r.weight.empty()) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, onnx_util::float_elements(w));
      const WeightGrid grid = quantize_weight_values(values, dims, axis, options.reduce_range);
      std::vector<float> dequantized(values.size()), delta(values.size());
      for (size_t i = 0; i < values.size(); ++i) {
        dequantized[i] = static_cast<float>(grid.values[i]) * grid.scales[grid.channel_of(i)];
        delta[i] = dequantized[i] - values[i];
      }
      r.weight = onnx_util::unique_name(w.name() + "_rounded", taken);
      r.difference = onnx_util::unique_name(w.name() + "_rounding_error", taken);
      *out.add_initializer() = onnx_util::make_tensor(r.weight, TensorProto::FLOAT, dims, dequantized);
      *out.add_initializer() = onnx_util::make_tensor(r.difference, TensorProto::FLOAT, dims, delta);
    }
    // f(x, W' - W): the node's own op and attributes, no bias.
    auto probe_of = [&](const std::string& x, const std::string& weight) {
      onnx::NodeProto probe = n;
      probe.clear_input();
      probe.clear_output();
      probe.set_name(onnx_util::unique_name(n.name() + "_bias_probe", taken));
      probe.add_input(x);
      probe.add_input(weight);
      const std::string y = onnx_util::unique_name(n.output(0) + "_bias_probe", taken);
      probe.add_output(y);
      *out.add_node() = std::move(probe);
      return y;
    };
    BiasProbe p;
    p.node = index;
    p.channel_axis = n.op_type() == "Conv" ? 1 : -1;
    p.output = probe_of(n.input(0), r.difference);
    auto range = input_ranges ? input_ranges->find(n.input(0)) : decltype(input_ranges->end()){};
    if (input_ranges && range != input_ranges->end()) {
      // f(x', W') - f(x, W) = f(x' - x, W') + f(x, W' - W), x' the input as the node reads it.
      std::string& error = input_errors[n.input(0)];
      if (error.empty()) {
        float scale = 1;
        uint8_t zero_point = 0;
        activation_scale(range->second, &scale, &zero_point);
        const std::string base = n.input(0) + "_probe";
        const std::string s = onnx_util::unique_name(base + "_scale", taken);
        const std::string z = onnx_util::unique_name(base + "_zero_point", taken);
        *out.add_initializer() = onnx_util::make_tensor<float>(s, TensorProto::FLOAT, {}, {scale});
        *out.add_initializer() = onnx_util::make_tensor<uint8_t>(z, TensorProto::UINT8, {}, {zero_point});
        const std::string q = add_node("QuantizeLinear", base + "_quantized", {n.input(0), s, z})->output(0);
        const std::string dq = add_node("DequantizeLinear", base + "_dequantized", {q, s, z})->output(0);
        error = add_node("Sub", base + "_rounding_error", {dq, n.input(0)})->output(0);
      }
      const std::string from_input = probe_of(error, r.weight);
      p.output = add_node("Add", n.output(0) + "_bias_probe_total", {from_input, p.output})->output(0);
    }
    auto* vi = out.add_output();
    vi->set_name(p.output);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(TensorProto::FLOAT);
    probes.push_back(std::move(p));
  }
  return probes;
}

std::vector<CorrectedOutput> corrected_outputs(const QuantizationPlan& plan) {
  const onnx::GraphProto& g = plan.prepared.graph();
  const auto reads = read_counts(g);
  std::vector<CorrectedOutput> outputs;
  for (int index : plan.nodes) {
    const BiasSlot slot = bias_slot(g, index, reads);
    if (!slot.correctable) continue;
    const onnx::NodeProto& n = g.node(slot.add_node >= 0 ? slot.add_node : index);
    if (n.output_size() < 1 || n.output(0).empty()) continue;
    outputs.push_back({index, n.output(0), slot.add_node >= 0 ? -1 : 1});
  }
  return outputs;
}

Result<QuantizationPlan> with_bias_correction(const QuantizationPlan& plan,
                                              const std::map<int, std::vector<float>>& shifts) {
  QuantizationPlan out = plan;
  onnx::GraphProto& g = *out.prepared.mutable_graph();
  const auto reads = read_counts(plan.prepared.graph());
  std::set<std::string> taken;
  onnx_util::collect_names(g, taken);
  for (int index : plan.nodes) {
    auto shift = shifts.find(index);
    if (shift == shifts.end()) continue;
    const BiasSlot slot = bias_slot(g, index, reads);
    if (!slot.correctable) continue;
    if (static_cast<int64_t>(shift->second.size()) != slot.channels)
      return internal_error(onnx_util::node_label(g.node(index), index) + " bias correction: " +
                            std::to_string(shift->second.size()) + " shifts for " + std::to_string(slot.channels) +
                            " channels");
    std::vector<float> bias(static_cast<size_t>(slot.channels), 0.0f);
    std::vector<int64_t> dims = {slot.channels};
    if (!slot.bias.empty()) {
      const TensorProto& b = *find_initializer(g, slot.bias);
      TANDEM_ASSIGN_OR_RETURN(bias, onnx_util::float_elements(b));
      dims = onnx_util::dims_of(b);
    }
    for (size_t c = 0; c < bias.size(); ++c) bias[c] -= shift->second[c];
    // A bias no other node reads is corrected where it is; otherwise (or when there is none)
    // the node gets a corrected copy of its own.
    TensorProto* in_place = !slot.bias.empty() && reads.at(slot.bias) == 1 ? find_initializer(g, slot.bias) : nullptr;
    if (in_place) {
      *in_place = onnx_util::make_tensor(slot.bias, TensorProto::FLOAT, dims, bias);
    } else {
      onnx::NodeProto& n = *g.mutable_node(slot.add_node >= 0 ? slot.add_node : index);
      const std::string name =
          onnx_util::unique_name((slot.bias.empty() ? n.output(0) + "_bias" : slot.bias) + "_corrected", taken);
      *g.add_initializer() = onnx_util::make_tensor(name, TensorProto::FLOAT, dims, bias);
      if (slot.add_node >= 0) {
        for (auto& in : *n.mutable_input())
          if (in == slot.bias) in = name;
      } else if (n.input_size() > 2) {
        n.set_input(2, name);
      } else {
        n.add_input(name);
      }
    }
    ++out.report.bias_corrected_nodes;
  }
  return out;
}

}  // namespace tandem
