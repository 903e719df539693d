// The first step of the quantizer (quantizer.h): preparing the float model and choosing the
// nodes and activations. The rewrite itself is in quantizer_rewrite.cpp.
#include "onnx/quantizer.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "onnx/loader.h"
#include "onnx/onnx_tensor_util.h"
#include "onnx/opset_upgrade.h"
#include "passes/shape_inference.h"

namespace tandem {

namespace {

using onnx_util::find_attr;
using onnx_util::node_label;
using onnx_util::unique_name;

using onnx_util::is_default_domain;

class Planner {
 public:
  Planner(const onnx::ModelProto& model, const QuantizeOptions& options) : options_(options) {
    plan_.prepared = model;
  }

  Result<QuantizationPlan> run() {
    onnx::GraphProto& g = *plan_.prepared.mutable_graph();
    for (const auto& t : g.initializer())
      if (t.data_location() == onnx::TensorProto::EXTERNAL)
        return unsupported("initializer '" + t.name() + "' keeps its data in an external file; only embedded data can be quantized");
    TANDEM_RETURN_IF_ERROR(infer_types());
    onnx_util::collect_names(g, taken_);
    plan_.report.opset_before = default_opset_of(plan_.prepared);
    lift_constants(g);
    std::map<std::string, int64_t> ranks;
    for (const auto& [name, type] : types_)
      if (type.kind == TypeInfo::Kind::tensor && type.has_shape) ranks[name] = static_cast<int64_t>(type.dims.size());
    if (plan_.report.opset_before == 0) {
      auto* o = plan_.prepared.add_opset_import();
      o->set_domain("");
      o->set_version(kQuantizeMinOpset);
      if (plan_.prepared.ir_version() < 7) plan_.prepared.set_ir_version(7);
    } else {
      TANDEM_RETURN_IF_ERROR(raise_opset(plan_.prepared, kQuantizeMinOpset, ranks, taken_));
    }
    plan_.report.opset_after = default_opset_of(plan_.prepared);
    for (const auto& vi : g.input()) graph_inputs_.insert(vi.name());
    for (const auto& t : g.initializer())
      if (!graph_inputs_.count(t.name())) constants_[t.name()] = &t;
    TANDEM_RETURN_IF_ERROR(fold_weight_transposes(g));
    TANDEM_RETURN_IF_ERROR(split_gemms(g));
    TANDEM_RETURN_IF_ERROR(fold_batch_norms(g));
    select_nodes(g);
    return std::move(plan_);
  }

 private:
  Status infer_types() {
    std::string bytes;
    if (!plan_.prepared.SerializeToString(&bytes)) return invalid_model("the model cannot be serialized (over 2 GiB?)");
    auto loaded = load_model_from_bytes(bytes, {}, "model");
    if (!loaded) return loaded.status();
    auto inferred = infer_shapes(*loaded->graph);
    if (!inferred) return invalid_model("type inference: " + inferred.status().message());
    types_ = std::move(inferred->types);
    return Status::ok();
  }

  bool is_float32(const std::string& name) const {
    auto it = types_.find(name);
    return it != types_.end() && it->second.kind == TypeInfo::Kind::tensor && it->second.elem == DataType::float32;
  }

  // Constant nodes of the main graph holding a tensor become initializers of the same name.
  void lift_constants(onnx::GraphProto& g) {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
    for (auto& n : *g.mutable_node()) {
      const auto* value = is_default_domain(n.domain()) && n.op_type() == "Constant" && n.output_size() == 1
                              ? find_attr(n, "value")
                              : nullptr;
      if (value && value->has_t() && value->t().data_location() != onnx::TensorProto::EXTERNAL) {
        onnx::TensorProto t = value->t();
        t.set_name(n.output(0));
        *g.add_initializer() = std::move(t);
      } else {
        *kept.Add() = std::move(n);
      }
    }
    g.mutable_node()->Swap(&kept);
  }

  bool excluded(const onnx::NodeProto& n) const {
    const auto& ops = options_.exclude_ops;
    const auto& names = options_.exclude_nodes;
    return std::find(ops.begin(), ops.end(), n.op_type()) != ops.end() ||
           std::find(names.begin(), names.end(), n.name()) != names.end();
  }

  void skip(const onnx::NodeProto& n, int index, const std::string& why) {
    plan_.report.skipped_nodes.push_back(node_label(n, index) + " " + why);
  }

  // Why the Gemm cannot become MatMul + Add; empty when it can.
  std::string gemm_obstacle(const onnx::NodeProto& n) const {
    const auto* trans_a = find_attr(n, "transA");
    if (trans_a && trans_a->i() != 0) return "has transA = 1";
    if (n.input_size() < 2 || !constants_.count(n.input(1))) return "B is not a constant";
    if (constants_.at(n.input(1))->dims_size() != 2) return "B is not 2-D";
    if (n.input_size() > 2 && !n.input(2).empty() && !constants_.count(n.input(2))) return "C is not a constant";
    for (const auto& in : n.input())
      if (!in.empty() && !is_float32(in)) return "input '" + in + "' is not float32";
    if (!is_float32(n.output(0))) return "its output is not float32";
    return "";
  }

  // Gemm(A, B, C) -> MatMul(A, alpha * B') [+ Add(beta * C)] where it can be quantized.
  Status split_gemms(onnx::GraphProto& g) {
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (int i = 0; i < g.node_size(); ++i) {
      onnx::NodeProto& n = *g.mutable_node(i);
      if (!is_default_domain(n.domain()) || n.op_type() != "Gemm" || n.output_size() != 1) {
        *nodes.Add() = std::move(n);
        continue;
      }
      const std::string obstacle = excluded(n) ? "is excluded" : gemm_obstacle(n);
      if (!obstacle.empty()) {
        skip(n, i, obstacle);
        *nodes.Add() = std::move(n);
        continue;
      }
      const auto* alpha_attr = find_attr(n, "alpha");
      const auto* beta_attr = find_attr(n, "beta");
      const auto* trans_b_attr = find_attr(n, "transB");
      const float alpha = alpha_attr ? alpha_attr->f() : 1.0f;
      const float beta = beta_attr ? beta_attr->f() : 1.0f;
      const onnx::TensorProto& b = *constants_.at(n.input(1));
      TANDEM_ASSIGN_OR_RETURN(std::vector<float> b_values, onnx_util::float_elements(b));
      int64_t rows = b.dims(0), cols = b.dims(1);
      std::vector<float> weight(b_values.size());
      const bool trans_b = trans_b_attr && trans_b_attr->i() != 0;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          const float v = alpha * b_values[static_cast<size_t>(r * cols + c)];
          if (trans_b) weight[static_cast<size_t>(c * rows + r)] = v;
          else weight[static_cast<size_t>(r * cols + c)] = v;
        }
      if (trans_b) std::swap(rows, cols);
      const std::string weight_name = unique_name(n.name().empty() ? n.output(0) + "_weight" : n.name() + "_weight", taken_);
      *g.add_initializer() = onnx_util::make_tensor(weight_name, onnx::TensorProto::FLOAT, {rows, cols}, weight);
      types_[weight_name] = types_[n.input(1)];
      const bool has_c = n.input_size() > 2 && !n.input(2).empty();
      onnx::NodeProto matmul;
      matmul.set_op_type("MatMul");
      matmul.set_name(n.name().empty() ? unique_name("gemm_matmul", taken_) : n.name());
      matmul.add_input(n.input(0));
      matmul.add_input(weight_name);
      const std::string product = has_c ? unique_name(n.output(0) + "_product", taken_) : n.output(0);
      matmul.add_output(product);
      types_[product] = types_[n.output(0)];
      from_gemm_.insert(matmul.name());
      *nodes.Add() = std::move(matmul);
      if (has_c) {
        const onnx::TensorProto& c = *constants_.at(n.input(2));
        TANDEM_ASSIGN_OR_RETURN(std::vector<float> c_values, onnx_util::float_elements(c));
        for (float& v : c_values) v *= beta;
        const std::string bias_name = unique_name(n.name().empty() ? n.output(0) + "_bias" : n.name() + "_bias", taken_);
        *g.add_initializer() = onnx_util::make_tensor(bias_name, onnx::TensorProto::FLOAT, onnx_util::dims_of(c), c_values);
        types_[bias_name] = types_[n.input(2)];
        onnx::NodeProto add;
        add.set_op_type("Add");
        add.set_name(unique_name(matmul.name() + "_bias_add", taken_));
        add.add_input(product);
        add.add_input(bias_name);
        add.add_output(n.output(0));
        *nodes.Add() = std::move(add);
      }
    }
    g.mutable_node()->Swap(&nodes);
    constants_.clear();  // the new initializers join the constants
    for (const auto& t : g.initializer())
      if (!graph_inputs_.count(t.name())) constants_[t.name()] = &t;
    return Status::ok();
  }

  // Conv -> BatchNormalization (inference form, constant parameters, the Conv's output read
  // by nothing else) becomes one Conv with W' = W * s and B' = (B - mean) * s + beta per
  // output channel, s = gamma / sqrt(var + epsilon): one quantized node instead of a float
  // BatchNormalization between a DequantizeLinear and a QuantizeLinear.
  // A Transpose of a float32 initializer (a weight shared with another reader, such as a language
  // model's output projection tied to its token embedding) becomes an initializer of its own, as
  // ONNX Runtime's pre-processing folds it: the product reading it then gets a weight's
  // quantization (int8, per channel) rather than an activation's, and dynamic quantization can
  // take it. The original initializer stays for its other readers.
  Status fold_weight_transposes(onnx::GraphProto& g) {
    std::set<std::string> outputs;
    for (const auto& vi : g.output()) outputs.insert(vi.name());
    google::protobuf::RepeatedPtrField<onnx::NodeProto> kept;
    for (auto& n : *g.mutable_node()) {
      const bool candidate = is_default_domain(n.domain()) && n.op_type() == "Transpose" && n.input_size() == 1 &&
                             n.output_size() == 1 && constants_.count(n.input(0)) && is_float32(n.input(0)) &&
                             !outputs.count(n.output(0)) && !constants_.count(n.output(0));
      if (candidate) {
        const onnx::TensorProto& src = *constants_.at(n.input(0));
        const std::vector<int64_t> dims = onnx_util::dims_of(src);
        const size_t r = dims.size();
        std::vector<int64_t> perm(r);
        for (size_t i = 0; i < r; ++i) perm[i] = static_cast<int64_t>(r - 1 - i);  // the default: reversed
        if (const auto* a = find_attr(n, "perm")) perm.assign(a->ints().begin(), a->ints().end());
        std::vector<int64_t> sorted = perm;
        std::sort(sorted.begin(), sorted.end());
        bool permutation = sorted.size() == r;
        for (size_t i = 0; i < sorted.size() && permutation; ++i) permutation = sorted[i] == static_cast<int64_t>(i);
        if (permutation) {
          TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, onnx_util::float_elements(src));
          std::vector<int64_t> out_dims(r), in_strides(r, 1), out_index(r, 0);
          for (size_t i = r; i-- > 1;) in_strides[i - 1] = in_strides[i] * dims[i];
          for (size_t i = 0; i < r; ++i) out_dims[i] = dims[static_cast<size_t>(perm[i])];
          std::vector<float> out(values.size());
          for (size_t k = 0; k < out.size(); ++k) {  // out_index walks the output in order
            int64_t at = 0;
            for (size_t i = 0; i < r; ++i) at += out_index[i] * in_strides[static_cast<size_t>(perm[i])];
            out[k] = values[static_cast<size_t>(at)];
            for (size_t i = r; i-- > 0;) {
              if (++out_index[i] < out_dims[i]) break;
              out_index[i] = 0;
            }
          }
          *g.add_initializer() = onnx_util::make_tensor(n.output(0), onnx::TensorProto::FLOAT, out_dims, out);
          constants_[n.output(0)] = &g.initializer(g.initializer_size() - 1);
          continue;
        }
      }
      *kept.Add() = std::move(n);
    }
    g.mutable_node()->Swap(&kept);
    return Status::ok();
  }

  Status fold_batch_norms(onnx::GraphProto& g) {
    const std::map<std::string, int> reads = onnx_util::read_counts(g);
    std::map<std::string, int> producer;
    for (int i = 0; i < g.node_size(); ++i)
      for (const auto& o : g.node(i).output()) producer[o] = i;
    std::set<int> folded;
    std::set<std::string> gone;      // the Convs' old outputs
    std::set<std::string> obsolete;  // the parameters folded (unless something else reads them)
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& bn = g.node(i);
      if (!is_default_domain(bn.domain()) || bn.op_type() != "BatchNormalization" || bn.input_size() != 5 ||
          bn.output_size() != 1)
        continue;
      const auto* training = find_attr(bn, "training_mode");
      if (training && training->i() != 0) continue;
      auto p = producer.find(bn.input(0));
      if (p == producer.end() || reads.at(bn.input(0)) != 1) continue;
      onnx::NodeProto& conv = *g.mutable_node(p->second);
      if (!is_default_domain(conv.domain()) || conv.op_type() != "Conv" || conv.input_size() < 2 ||
          !constants_.count(conv.input(1)) || !is_float32(conv.input(1)) || !is_float32(bn.output(0)))
        continue;
      const bool has_bias = conv.input_size() > 2 && !conv.input(2).empty();
      if (has_bias && !constants_.count(conv.input(2))) continue;
      bool constant_parameters = true;
      for (int k = 1; k < 5; ++k) constant_parameters = constant_parameters && constants_.count(bn.input(k));
      if (!constant_parameters) continue;
      const onnx::TensorProto& w = *constants_.at(conv.input(1));
      if (w.dims_size() < 1) continue;
      const int64_t channels = w.dims(0);
      TANDEM_ASSIGN_OR_RETURN(std::vector<float> weights, onnx_util::float_elements(w));
      std::vector<float> params[4];
      bool sizes_match = true;
      for (int k = 0; k < 4; ++k) {
        TANDEM_ASSIGN_OR_RETURN(params[k], onnx_util::float_elements(*constants_.at(bn.input(k + 1))));
        sizes_match = sizes_match && static_cast<int64_t>(params[k].size()) == channels;
      }
      std::vector<float> bias(static_cast<size_t>(channels), 0.0f);
      if (has_bias) {
        TANDEM_ASSIGN_OR_RETURN(bias, onnx_util::float_elements(*constants_.at(conv.input(2))));
        sizes_match = sizes_match && static_cast<int64_t>(bias.size()) == channels;
      }
      if (!sizes_match || channels == 0) continue;
      const auto* epsilon_attr = find_attr(bn, "epsilon");
      const double epsilon = epsilon_attr ? epsilon_attr->f() : 1e-5;
      const size_t per_channel = weights.size() / static_cast<size_t>(channels);
      for (size_t c = 0; c < static_cast<size_t>(channels); ++c) {
        const double scale = params[0][c] / std::sqrt(static_cast<double>(params[3][c]) + epsilon);
        for (size_t k = 0; k < per_channel; ++k)
          weights[c * per_channel + k] = static_cast<float>(weights[c * per_channel + k] * scale);
        bias[c] = static_cast<float>((bias[c] - params[2][c]) * scale + params[1][c]);
      }
      const std::string base = conv.name().empty() ? bn.output(0) : conv.name();
      const std::string w_name = unique_name(base + "_folded_weight", taken_);
      const std::string b_name = unique_name(base + "_folded_bias", taken_);
      *g.add_initializer() = onnx_util::make_tensor(w_name, onnx::TensorProto::FLOAT, onnx_util::dims_of(w), weights);
      *g.add_initializer() = onnx_util::make_tensor(b_name, onnx::TensorProto::FLOAT, {channels}, bias);
      types_[w_name] = types_[conv.input(1)];
      types_[b_name] = types_[bn.input(1)];
      gone.insert(conv.output(0));
      obsolete.insert(conv.input(1));
      if (has_bias) obsolete.insert(conv.input(2));
      for (int k = 1; k < 5; ++k) obsolete.insert(bn.input(k));
      conv.set_input(1, w_name);
      if (has_bias) conv.set_input(2, b_name);
      else conv.add_input(b_name);
      conv.set_output(0, bn.output(0));
      folded.insert(i);
    }
    if (folded.empty()) return Status::ok();
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (int i = 0; i < g.node_size(); ++i)
      if (!folded.count(i)) *nodes.Add() = std::move(*g.mutable_node(i));
    g.mutable_node()->Swap(&nodes);
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> infos;
    for (auto& vi : *g.mutable_value_info())
      if (!gone.count(vi.name())) *infos.Add() = std::move(vi);
    g.mutable_value_info()->Swap(&infos);
    const std::map<std::string, int> still_read = onnx_util::read_counts(g);
    google::protobuf::RepeatedPtrField<onnx::TensorProto> initializers;
    for (auto& t : *g.mutable_initializer())
      if (!obsolete.count(t.name()) || still_read.count(t.name())) *initializers.Add() = std::move(t);
    g.mutable_initializer()->Swap(&initializers);
    plan_.report.folded_batch_norms = static_cast<int64_t>(folded.size());
    constants_.clear();  // the new initializers join the constants
    for (const auto& t : g.initializer())
      if (!graph_inputs_.count(t.name())) constants_[t.name()] = &t;
    return Status::ok();
  }

  // Why node `n` cannot be quantized; empty when it can.
  std::string obstacle(const onnx::NodeProto& n) const {
    if (excluded(n)) return "is excluded";
    if (n.output_size() != 1 || !is_float32(n.output(0))) return "its output is not float32";
    if (n.input_size() < 2) return "has fewer than two inputs";
    for (const auto& in : n.input())
      if (!in.empty() && !is_float32(in)) return "input '" + in + "' is not float32";
    if (constants_.count(n.input(0))) return "its first input is a constant";
    const auto weight = constants_.find(n.input(1));
    if (n.op_type() == "Conv") {
      if (weight == constants_.end()) return "W is not a constant";
      if (weight->second->dims_size() < 3) return "W has fewer than 3 dims";
      if (n.input_size() > 2 && !n.input(2).empty() && !constants_.count(n.input(2))) return "B is not a constant";
      return "";
    }
    if (weight == constants_.end()) {
      if (options_.format == QuantizeFormat::dynamic) return "B is not a constant (dynamic quantization needs constant weights)";
      return "";
    }
    if (weight->second->dims_size() < 2) return "B has fewer than 2 dims";
    return "";
  }

  void add_activation(const std::string& name) {
    if (seen_activations_.insert(name).second) plan_.activations.push_back(name);
  }

  void select_nodes(const onnx::GraphProto& g) {
    for (int i = 0; i < g.node_size(); ++i) {
      const onnx::NodeProto& n = g.node(i);
      if (!is_default_domain(n.domain()) || (n.op_type() != "Conv" && n.op_type() != "MatMul")) continue;
      const std::string why = obstacle(n);
      if (!why.empty()) {
        skip(n, i, why);
        continue;
      }
      plan_.nodes.push_back(i);
      plan_.node_ops.push_back(from_gemm_.count(n.name()) ? "Gemm" : n.op_type());
      ++plan_.report.quantized_nodes[plan_.node_ops.back()];
      if (options_.format == QuantizeFormat::dynamic) continue;
      add_activation(n.input(0));
      if (n.op_type() == "MatMul" && !constants_.count(n.input(1))) add_activation(n.input(1));
      if (options_.quantize_outputs || options_.format == QuantizeFormat::qoperator) add_activation(n.output(0));
    }
  }

  const QuantizeOptions& options_;
  QuantizationPlan plan_;
  std::map<std::string, TypeInfo> types_;
  std::set<std::string> taken_;
  std::set<std::string> graph_inputs_;
  std::map<std::string, const onnx::TensorProto*> constants_;
  std::set<std::string> from_gemm_;  // MatMul nodes made from a Gemm
  std::set<std::string> seen_activations_;
};

}  // namespace

void activation_scale(const ActivationRange& range, float* scale, uint8_t* zero_point) {
  const double lo = std::min(0.0, static_cast<double>(range.min));
  const double hi = std::max(0.0, static_cast<double>(range.max));
  double s = (hi - lo) / 255.0;
  if (!(s > 0) || !std::isfinite(s)) s = 1.0;
  *scale = static_cast<float>(s);
  const double zp = std::nearbyint(-lo / static_cast<double>(*scale));
  *zero_point = static_cast<uint8_t>(std::clamp(zp, 0.0, 255.0));
}

QuantizationPlan without_nodes(const QuantizationPlan& plan, const std::map<size_t, std::string>& drop) {
  QuantizationPlan out;
  out.prepared = plan.prepared;
  out.report = plan.report;
  out.report.quantized_nodes.clear();
  const onnx::GraphProto& g = plan.prepared.graph();
  // The activations the nodes left read or write, in the plan's order (as select_nodes lists them).
  std::set<std::string> used;
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    if (drop.count(k)) continue;
    for (const auto& name : g.node(plan.nodes[k]).input()) used.insert(name);
    for (const auto& name : g.node(plan.nodes[k]).output()) used.insert(name);
  }
  for (const auto& name : plan.activations)
    if (used.count(name)) out.activations.push_back(name);
  for (size_t k = 0; k < plan.nodes.size(); ++k) {
    const auto dropped = drop.find(k);
    if (dropped == drop.end()) {
      out.nodes.push_back(plan.nodes[k]);
      out.node_ops.push_back(plan.node_ops[k]);
      ++out.report.quantized_nodes[plan.node_ops[k]];
      continue;
    }
    out.report.skipped_nodes.push_back(node_label(g.node(plan.nodes[k]), plan.nodes[k]) + " " + dropped->second);
  }
  return out;
}

Result<QuantizationPlan> plan_quantization(const onnx::ModelProto& model, const QuantizeOptions& options) {
  if (options.method == CalibrationMethod::percentile && !(options.percentile > 0 && options.percentile <= 100))
    return invalid_argument("the percentile must be in (0, 100]");
  return Planner(model, options).run();
}

}  // namespace tandem
