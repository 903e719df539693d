// The second step of the quantizer (quantizer.h): rewriting the prepared model in one of the
// three formats with the calibrated ranges.
#include <algorithm>
#include <cmath>
#include <limits>

#include "onnx/onnx_tensor_util.h"
#include "onnx/quantizer.h"

namespace tandem {

namespace {

using onnx::TensorProto;
using onnx_util::unique_name;

// An int8 weight: initializer names and the scales it was quantized with.
struct QuantizedWeight {
  std::string quantized;   // int8 (or uint8 with zero point 128) initializer
  std::string scale;       // float32 initializer: a scalar, or [channels]
  std::string zero_point;  // same element type and shape as the scale's
  std::vector<float> scales;
  int axis = -1;  // the channel axis; -1: per tensor
  std::vector<int64_t> dims;
};

// A uint8 activation's parameters and the initializers holding them.
struct ActivationParams {
  std::string scale;
  std::string zero_point;
  float scale_value = 1;
};

onnx::NodeProto make_node(const std::string& op, const std::string& name, const std::vector<std::string>& inputs,
                          const std::vector<std::string>& outputs) {
  onnx::NodeProto n;
  n.set_op_type(op);
  n.set_name(name);
  for (const auto& i : inputs) n.add_input(i);
  for (const auto& o : outputs) n.add_output(o);
  return n;
}

class Rewriter {
 public:
  Rewriter(const QuantizationPlan& plan, const QuantizeOptions& options,
           const std::map<std::string, ActivationRange>& ranges)
      : plan_(plan), options_(options), ranges_(ranges) {}

  Result<Quantization> run() {
    out_.model = plan_.prepared;
    out_.report = plan_.report;
    g_ = out_.model.mutable_graph();
    onnx_util::collect_names(*g_, taken_);
    for (int i = 0; i < g_->initializer_size(); ++i) initializer_index_[g_->initializer(i).name()] = i;
    nodes_.assign(g_->node().begin(), g_->node().end());
    const size_t count = nodes_.size();
    before_.resize(count);
    after_.resize(count);
    replacement_.resize(count);
    for (int i : plan_.nodes) quantized_.insert(i);
    for (size_t i = 0; i < count; ++i)
      for (const auto& o : nodes_[i].output()) producer_[o] = static_cast<int>(i);
    switch (options_.format) {
      case QuantizeFormat::qdq: TANDEM_RETURN_IF_ERROR(rewrite_qdq()); break;
      case QuantizeFormat::qoperator: TANDEM_RETURN_IF_ERROR(rewrite_qoperator()); break;
      case QuantizeFormat::dynamic: TANDEM_RETURN_IF_ERROR(rewrite_dynamic()); break;
    }
    assemble();
    return std::move(out_);
  }

 private:
  // --- parameters --------------------------------------------------------------------------

  std::string add_initializer(TensorProto t) {
    initializer_index_[t.name()] = g_->initializer_size();
    const std::string name = t.name();
    *g_->add_initializer() = std::move(t);
    return name;
  }

  template <class T>
  std::string add_tensor(const std::string& base, int elem, const std::vector<int64_t>& dims,
                         const std::vector<T>& values) {
    return add_initializer(onnx_util::make_tensor(unique_name(base, taken_), elem, dims, values));
  }

  Result<std::vector<float>> constant_values(const std::string& name, std::vector<int64_t>* dims) {
    auto it = initializer_index_.find(name);
    if (it == initializer_index_.end()) return internal_error("'" + name + "' is not an initializer");
    const TensorProto& t = g_->initializer(it->second);
    if (dims) *dims = onnx_util::dims_of(t);
    return onnx_util::float_elements(t);
  }

  Result<ActivationParams> activation(const std::string& name) {
    if (auto it = activations_.find(name); it != activations_.end()) return it->second;
    auto range = ranges_.find(name);
    if (range == ranges_.end()) return invalid_argument("no calibrated range for activation '" + name + "'");
    float scale = 1;
    uint8_t zero_point = 0;
    activation_scale(range->second, &scale, &zero_point);
    ActivationParams p;
    p.scale_value = scale;
    p.scale = add_tensor<float>(name + "_scale", TensorProto::FLOAT, {}, {scale});
    p.zero_point = add_tensor<uint8_t>(name + "_zero_point", TensorProto::UINT8, {}, {zero_point});
    activations_[name] = p;
    return p;
  }

  // Quantizes the float initializer `name` to int8 (shifted to uint8 with zero point 128 when
  // `as_uint8`), once per (name, axis, type).
  Result<QuantizedWeight> weight(const std::string& name, const onnx::NodeProto& reader, bool as_uint8 = false) {
    std::vector<int64_t> dims;
    auto read = constant_values(name, &dims);
    if (!read) return read.status().with_prefix(onnx_util::node_label(reader) + " ");
    const int axis = weight_axis(reader, dims.size(), options_.per_channel);
    const std::string key = name + "#" + std::to_string(axis) + (as_uint8 ? "u8" : "s8");
    if (auto it = weights_.find(key); it != weights_.end()) return it->second;
    WeightGrid grid = quantize_weight_values(*read, dims, axis, options_.reduce_range);
    const std::vector<int8_t>& q = grid.values;
    const int64_t channels = static_cast<int64_t>(grid.scales.size());
    QuantizedWeight w;
    w.axis = axis;
    w.dims = dims;
    w.scales = grid.scales;
    const std::vector<int64_t> scale_dims = axis < 0 ? std::vector<int64_t>{} : std::vector<int64_t>{channels};
    if (as_uint8) {
      std::vector<uint8_t> shifted(q.size());
      for (size_t i = 0; i < q.size(); ++i) shifted[i] = static_cast<uint8_t>(q[i] + 128);
      w.quantized = add_tensor(name + "_quantized", TensorProto::UINT8, dims, shifted);
      // One zero point serves every channel (ONNX Runtime's ConvInteger takes no other).
      w.zero_point = add_tensor<uint8_t>(name + "_zero_point", TensorProto::UINT8, {}, {128});
    } else {
      w.quantized = add_tensor(name + "_quantized", TensorProto::INT8, dims, q);
      w.zero_point = add_tensor(name + "_zero_point", TensorProto::INT8, scale_dims,
                                std::vector<int8_t>(static_cast<size_t>(channels), 0));
    }
    w.scale = add_tensor(name + "_scale", TensorProto::FLOAT, scale_dims, w.scales);
    ++out_.report.quantized_weights;
    replaced_constants_.insert(name);
    weights_[key] = w;
    return w;
  }

  // The Conv bias `name` as int32 with scale input_scale * weight scale (per channel); when
  // `scale_name` is not null, an initializer of that scale (scalar or [channels]) is made and
  // named there.
  Result<std::string> int32_bias(const onnx::NodeProto& reader, float input_scale, const QuantizedWeight& w,
                                 std::string* scale_name) {
    const std::string& name = reader.input(2);
    std::vector<int64_t> dims;
    auto read = constant_values(name, &dims);
    if (!read) return read.status().with_prefix(onnx_util::node_label(reader) + " ");
    const std::vector<float>& values = *read;
    std::vector<float> scales;
    for (float s : w.scales) scales.push_back(input_scale * s);
    if (values.size() != static_cast<size_t>(w.dims.empty() ? 0 : w.dims[0]))
      return invalid_model(onnx_util::node_label(reader) + " bias '" + name + "' has " + std::to_string(values.size()) +
                           " values for " + std::to_string(w.dims.empty() ? 0 : w.dims[0]) + " output channels");
    std::vector<int32_t> q(values.size());
    for (size_t i = 0; i < values.size(); ++i) {
      const double v = std::nearbyint(static_cast<double>(values[i]) / scales[w.axis < 0 ? 0 : i]);
      q[i] = static_cast<int32_t>(std::isnan(v) ? 0.0
                                                : std::clamp(v, static_cast<double>(std::numeric_limits<int32_t>::min()),
                                                             static_cast<double>(std::numeric_limits<int32_t>::max())));
    }
    replaced_constants_.insert(name);
    const std::vector<int64_t> scale_dims = w.axis < 0 ? std::vector<int64_t>{} : std::vector<int64_t>{static_cast<int64_t>(scales.size())};
    if (scale_name) *scale_name = add_tensor(name + "_scale", TensorProto::FLOAT, scale_dims, scales);
    return add_tensor(name + "_quantized", TensorProto::INT32, dims, q);
  }

  std::string node_name(const std::string& base) { return unique_name(base, taken_); }

  void emit_after_producer(const std::string& value, std::vector<onnx::NodeProto> nodes) {
    auto it = producer_.find(value);
    auto& list = it == producer_.end() ? prologue_ : after_[static_cast<size_t>(it->second)];
    for (auto& n : nodes) list.push_back(std::move(n));
  }

  bool is_activation(const std::string& name) const {
    return std::find(plan_.activations.begin(), plan_.activations.end(), name) != plan_.activations.end();
  }

  static bool has_input(const onnx::NodeProto& n, int index) { return n.input_size() > index && !n.input(index).empty(); }

  // --- qdq ---------------------------------------------------------------------------------

  Status rewrite_qdq() {
    std::map<std::string, std::string> dequantized;
    for (const std::string& name : plan_.activations) {
      TANDEM_ASSIGN_OR_RETURN(ActivationParams p, activation(name));
      const std::string q = unique_name(name + "_quantized", taken_);
      const std::string dq = unique_name(name + "_dequantized", taken_);
      emit_after_producer(name, {make_node("QuantizeLinear", node_name(name + "_QuantizeLinear"), {name, p.scale, p.zero_point}, {q}),
                                 make_node("DequantizeLinear", node_name(name + "_DequantizeLinear"), {q, p.scale, p.zero_point}, {dq})});
      dequantized[name] = dq;
    }
    // Every reader of a quantized activation reads it dequantized, so that a runtime sees
    // DQ -> op -> Q around each quantized node; graph outputs keep the float value.
    for (auto& n : nodes_)
      for (auto& in : *n.mutable_input())
        if (auto it = dequantized.find(in); it != dequantized.end()) in = it->second;
    std::map<std::string, std::string> dequantized_weights;
    for (int i : plan_.nodes) {
      onnx::NodeProto& n = nodes_[static_cast<size_t>(i)];
      const onnx::NodeProto& original = plan_.prepared.graph().node(i);
      if (is_activation(original.input(1))) continue;  // a MatMul of two activations
      TANDEM_ASSIGN_OR_RETURN(QuantizedWeight w, weight(original.input(1), original));
      std::string& w_dq = dequantized_weights[w.quantized];
      if (w_dq.empty()) {
        w_dq = unique_name(original.input(1) + "_dequantized", taken_);
        auto dq = make_node("DequantizeLinear", node_name(original.input(1) + "_DequantizeLinear"),
                            {w.quantized, w.scale, w.zero_point}, {w_dq});
        if (w.axis >= 0) onnx_util::set_int_attr(dq, "axis", w.axis);
        prologue_.push_back(std::move(dq));
      }
      n.set_input(1, w_dq);
      if (original.op_type() == "Conv" && has_input(original, 2)) {
        TANDEM_ASSIGN_OR_RETURN(ActivationParams x, activation(original.input(0)));
        std::string scale;
        TANDEM_ASSIGN_OR_RETURN(std::string bias, int32_bias(original, x.scale_value, w, &scale));
        const std::string b_dq = unique_name(original.input(2) + "_dequantized", taken_);
        auto dq = make_node("DequantizeLinear", node_name(original.input(2) + "_DequantizeLinear"), {bias, scale}, {b_dq});
        if (w.axis >= 0) onnx_util::set_int_attr(dq, "axis", 0);
        before_[static_cast<size_t>(i)].push_back(std::move(dq));
        n.set_input(2, b_dq);
      }
    }
    return Status::ok();
  }

  // --- qoperator ---------------------------------------------------------------------------

  // The uint8 form of activation `name` for quantized node `reader`: the quantized producer's
  // output, or a QuantizeLinear made before the first reader.
  Result<std::string> quantized_activation(const std::string& name, int reader) {
    if (auto it = quantized_names_.find(name); it != quantized_names_.end()) return it->second;
    TANDEM_ASSIGN_OR_RETURN(ActivationParams p, activation(name));
    const std::string q = unique_name(name + "_quantized", taken_);
    before_[static_cast<size_t>(reader)].push_back(
        make_node("QuantizeLinear", node_name(name + "_QuantizeLinear"), {name, p.scale, p.zero_point}, {q}));
    quantized_names_[name] = q;
    return q;
  }

  // Names read as float32: inputs of nodes that stay float, nested graphs' reads, graph outputs.
  std::set<std::string> float_reads() const {
    std::set<std::string> reads;
    for (size_t i = 0; i < nodes_.size(); ++i) {
      const onnx::NodeProto& n = nodes_[i];
      if (!quantized_.count(static_cast<int>(i))) reads.insert(n.input().begin(), n.input().end());
      for (const auto& a : n.attribute()) {
        if (a.has_g()) onnx_util::collect_reads(a.g(), reads);
        for (const auto& sub : a.graphs()) onnx_util::collect_reads(sub, reads);
      }
    }
    for (const auto& vi : g_->output()) reads.insert(vi.name());
    return reads;
  }

  Status rewrite_qoperator() {
    const std::set<std::string> float_readers = float_reads();
    for (int i : plan_.nodes) {
      const onnx::NodeProto& n = nodes_[static_cast<size_t>(i)];
      const bool conv = n.op_type() == "Conv";
      TANDEM_ASSIGN_OR_RETURN(std::string x, quantized_activation(n.input(0), i));
      TANDEM_ASSIGN_OR_RETURN(ActivationParams xp, activation(n.input(0)));
      TANDEM_ASSIGN_OR_RETURN(ActivationParams yp, activation(n.output(0)));
      std::vector<std::string> inputs = {x, xp.scale, xp.zero_point};
      std::string bias;
      if (!is_activation(n.input(1))) {
        TANDEM_ASSIGN_OR_RETURN(QuantizedWeight w, weight(n.input(1), n));
        inputs.insert(inputs.end(), {w.quantized, w.scale, w.zero_point});
        if (conv && has_input(n, 2)) {
          TANDEM_ASSIGN_OR_RETURN(bias, int32_bias(n, xp.scale_value, w, nullptr));
        }
      } else {
        TANDEM_ASSIGN_OR_RETURN(std::string b, quantized_activation(n.input(1), i));
        TANDEM_ASSIGN_OR_RETURN(ActivationParams bp, activation(n.input(1)));
        inputs.insert(inputs.end(), {b, bp.scale, bp.zero_point});
      }
      inputs.insert(inputs.end(), {yp.scale, yp.zero_point});
      if (!bias.empty()) inputs.push_back(bias);
      const std::string y = unique_name(n.output(0) + "_quantized", taken_);
      quantized_names_[n.output(0)] = y;
      onnx::NodeProto q = make_node(conv ? "QLinearConv" : "QLinearMatMul", n.name(), inputs, {y});
      if (conv) *q.mutable_attribute() = n.attribute();
      replacement_[static_cast<size_t>(i)].push_back(std::move(q));
      if (float_readers.count(n.output(0)))
        after_[static_cast<size_t>(i)].push_back(make_node("DequantizeLinear", node_name(n.output(0) + "_DequantizeLinear"),
                                                           {y, yp.scale, yp.zero_point}, {n.output(0)}));
    }
    return Status::ok();
  }

  // --- dynamic -----------------------------------------------------------------------------

  Status rewrite_dynamic() {
    struct Dynamic {
      std::string quantized, scale, zero_point;
    };
    std::map<std::string, Dynamic> dynamic;
    for (int i : plan_.nodes) {
      const onnx::NodeProto& n = nodes_[static_cast<size_t>(i)];
      const bool conv = n.op_type() == "Conv";
      const std::string& x = n.input(0);
      const std::string& y = n.output(0);
      auto& before = before_[static_cast<size_t>(i)];
      auto& nodes = replacement_[static_cast<size_t>(i)];
      if (!dynamic.count(x)) {
        Dynamic d{unique_name(x + "_quantized", taken_), unique_name(x + "_scale", taken_),
                  unique_name(x + "_zero_point", taken_)};
        before.push_back(make_node("DynamicQuantizeLinear", node_name(x + "_DynamicQuantizeLinear"), {x},
                                   {d.quantized, d.scale, d.zero_point}));
        dynamic[x] = d;
      }
      const Dynamic& d = dynamic[x];
      // ONNX Runtime implements ConvInteger for uint8 weights only: Conv weights are stored
      // as the same int8 grid shifted by 128, with zero point 128.
      TANDEM_ASSIGN_OR_RETURN(QuantizedWeight w, weight(n.input(1), n, /*as_uint8=*/conv));
      const std::string product = unique_name(y + "_int32", taken_);
      std::vector<std::string> integer_inputs = {d.quantized, w.quantized, d.zero_point};
      integer_inputs.push_back(w.zero_point);
      onnx::NodeProto integer = make_node(conv ? "ConvInteger" : "MatMulInteger", n.name(), integer_inputs, {product});
      if (conv) *integer.mutable_attribute() = n.attribute();
      nodes.push_back(std::move(integer));
      const std::string widened = unique_name(y + "_float", taken_);
      onnx::NodeProto cast = make_node("Cast", node_name(y + "_Cast"), {product}, {widened});
      onnx_util::set_int_attr(cast, "to", TensorProto::FLOAT);
      nodes.push_back(std::move(cast));
      // The weight scales shaped to broadcast against the output: [C, 1, ...] for Conv.
      std::vector<int64_t> scale_dims;
      if (w.axis >= 0) {
        scale_dims.push_back(static_cast<int64_t>(w.scales.size()));
        if (conv) scale_dims.resize(w.dims.size() - 1, 1);
      }
      TensorProto& w_scale_tensor = g_->mutable_initializer()->at(initializer_index_.at(w.scale));
      w_scale_tensor.clear_dims();
      for (int64_t d : scale_dims) w_scale_tensor.add_dims(d);
      const std::string& w_scale = w.scale;
      const std::string scale = unique_name(y + "_scale", taken_);
      nodes.push_back(make_node("Mul", node_name(y + "_scale_Mul"), {d.scale, w_scale}, {scale}));
      const bool bias = conv && has_input(n, 2);
      const std::string scaled = bias ? unique_name(y + "_unbiased", taken_) : y;
      nodes.push_back(make_node("Mul", node_name(y + "_Mul"), {widened, scale}, {scaled}));
      if (bias) {
        std::vector<int64_t> dims;
        auto read = constant_values(n.input(2), &dims);
        if (!read) return read.status().with_prefix(onnx_util::node_label(n) + " ");
        const std::vector<float>& b = *read;
        if (b.size() != static_cast<size_t>(w.dims[0]))
          return invalid_model(onnx_util::node_label(n) + " bias '" + n.input(2) + "' has " + std::to_string(b.size()) +
                               " values for " + std::to_string(w.dims[0]) + " output channels");
        std::vector<int64_t> bias_dims = {static_cast<int64_t>(b.size())};
        bias_dims.resize(w.dims.size() - 1, 1);
        const std::string shaped = add_tensor(n.input(2) + "_per_channel", TensorProto::FLOAT, bias_dims, b);
        replaced_constants_.insert(n.input(2));
        nodes.push_back(make_node("Add", node_name(y + "_bias_Add"), {scaled, shaped}, {y}));
      }
    }
    return Status::ok();
  }

  // --- the new graph -----------------------------------------------------------------------

  void assemble() {
    const int before = g_->node_size();
    google::protobuf::RepeatedPtrField<onnx::NodeProto> out;
    for (auto& n : prologue_) *out.Add() = std::move(n);
    for (size_t i = 0; i < nodes_.size(); ++i) {
      for (auto& n : before_[i]) *out.Add() = std::move(n);
      if (replacement_[i].empty()) *out.Add() = std::move(nodes_[i]);
      for (auto& n : replacement_[i]) *out.Add() = std::move(n);
      for (auto& n : after_[i]) *out.Add() = std::move(n);
    }
    g_->mutable_node()->Swap(&out);
    out_.report.inserted_nodes = g_->node_size() - before;
    // Float weights and biases nothing reads any more go; so do value_infos of values that
    // are no longer produced (outputs of quantized nodes only quantized nodes read).
    std::set<std::string> reads;
    onnx_util::collect_reads(*g_, reads);
    google::protobuf::RepeatedPtrField<TensorProto> initializers;
    for (auto& t : *g_->mutable_initializer())
      if (!replaced_constants_.count(t.name()) || reads.count(t.name())) *initializers.Add() = std::move(t);
    g_->mutable_initializer()->Swap(&initializers);
    std::set<std::string> defined;
    for (const auto& vi : g_->input()) defined.insert(vi.name());
    for (const auto& t : g_->initializer()) defined.insert(t.name());
    for (const auto& n : g_->node()) defined.insert(n.output().begin(), n.output().end());
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> infos;
    for (auto& vi : *g_->mutable_value_info())
      if (defined.count(vi.name())) *infos.Add() = std::move(vi);
    g_->mutable_value_info()->Swap(&infos);
  }

  const QuantizationPlan& plan_;
  const QuantizeOptions& options_;
  const std::map<std::string, ActivationRange>& ranges_;
  Quantization out_;
  onnx::GraphProto* g_ = nullptr;
  std::set<std::string> taken_;
  std::map<std::string, int> initializer_index_;
  std::map<std::string, int> producer_;  // value -> index of the node that makes it
  std::set<int> quantized_;
  std::vector<onnx::NodeProto> nodes_;  // the prepared graph's nodes, rewritten in place
  std::vector<onnx::NodeProto> prologue_;
  std::vector<std::vector<onnx::NodeProto>> before_, after_, replacement_;
  std::map<std::string, ActivationParams> activations_;
  std::map<std::string, QuantizedWeight> weights_;
  std::map<std::string, std::string> quantized_names_;  // activation -> its uint8 value (qoperator)
  std::set<std::string> replaced_constants_;
};

}  // namespace

int weight_axis(const onnx::NodeProto& node, size_t weight_rank, bool per_channel) {
  if (!per_channel) return -1;
  if (node.op_type() == "Conv") return 0;
  return weight_rank == 2 ? 1 : -1;
}

WeightGrid quantize_weight_values(const std::vector<float>& values, const std::vector<int64_t>& dims, int axis,
                                  bool reduce_range) {
  WeightGrid grid;
  grid.axis = axis;
  const int64_t channels = axis < 0 ? 1 : dims[static_cast<size_t>(axis)];
  for (size_t d = static_cast<size_t>(axis + 1); axis >= 0 && d < dims.size(); ++d) grid.inner *= dims[d];
  grid.scales.assign(static_cast<size_t>(std::max<int64_t>(channels, 1)), 0.0f);
  std::vector<float> max_abs(grid.scales.size(), 0.0f);
  for (size_t i = 0; i < values.size(); ++i) {
    float& m = max_abs[grid.channel_of(i)];
    if (std::isfinite(values[i])) m = std::max(m, std::fabs(values[i]));
  }
  // A channel whose weights are all but zero next to the others' (a dead filter, |w| ~ 1e-15)
  // gets a floor on its scale, 1e-4 of the largest channel's: otherwise the int32 bias at
  // scale x_scale * w_scale cannot hold that channel's bias, which would saturate and vanish.
  // (With the floor a bias fits up to about 1700 * x_scale * max|w|.) Such a channel's
  // weights quantize to a few levels or to 0, errors of their own tiny size.
  const float levels = reduce_range ? 63.0f : 127.0f;  // the largest |q|
  const float largest = *std::max_element(max_abs.begin(), max_abs.end());
  const float floor = largest / levels * 1e-4f;
  for (size_t c = 0; c < max_abs.size(); ++c) grid.scales[c] = max_abs[c] > 0 ? std::max(max_abs[c] / levels, floor) : 1.0f;
  grid.values.resize(values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    const double v = std::nearbyint(static_cast<double>(values[i]) / grid.scales[grid.channel_of(i)]);
    grid.values[i] = static_cast<int8_t>(std::isnan(v) ? 0.0 : std::clamp<double>(v, -levels, levels));
  }
  return grid;
}

Result<Quantization> apply_quantization(const QuantizationPlan& plan, const QuantizeOptions& options,
                                        const std::map<std::string, ActivationRange>& ranges) {
  return Rewriter(plan, options, ranges).run();
}

}  // namespace tandem
