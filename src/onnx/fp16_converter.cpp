#include "onnx/fp16_converter.h"

#include <array>
#include <cmath>
#include <cstring>
#include <map>
#include <optional>
#include <set>

#include "passes/shape_inference.h"
#include "onnx/loader.h"
#include "onnx/onnx_tensor_util.h"
#include "tandem/tensor.h"

namespace tandem {

namespace {

constexpr float kHalfMax = 65504.0f;

// Index into per-precision tables.
enum Precision : int { kHalf = 0, kSingle = 1 };

int onnx_elem_type(Precision p) { return p == kHalf ? onnx::TensorProto::FLOAT16 : onnx::TensorProto::FLOAT; }
const char* precision_suffix(Precision p) { return p == kHalf ? "_fp16" : "_fp32"; }

enum class ValueClass { other, float32, unknown };

ValueClass classify(const TypeInfo& t) {
  if (t.kind != TypeInfo::Kind::tensor) return ValueClass::unknown;  // sequences, optionals, maps, unknown
  if (t.elem == DataType::float32) return ValueClass::float32;
  return t.elem == DataType::undefined ? ValueClass::unknown : ValueClass::other;
}

std::string node_label(const onnx::NodeProto& n, int index) {
  if (!n.name().empty()) return "[" + n.op_type() + " '" + n.name() + "']";
  return "[" + n.op_type() + " #" + std::to_string(index) + "]";
}

using onnx_util::is_default_domain;

bool holds_subgraph(const onnx::NodeProto& n) {
  for (const auto& a : n.attribute())
    if (a.type() == onnx::AttributeProto::GRAPH || a.type() == onnx::AttributeProto::GRAPHS) return true;
  return false;
}

// Inputs the ONNX spec types tensor(float) whatever the data type: they stay float32 even on
// converted nodes.
std::set<int> float32_only_inputs(const std::string& op_type, int64_t opset) {
  if (op_type == "Resize") return opset >= 11 ? std::set<int>{1, 2} : std::set<int>{1};  // roi, scales
  if (op_type == "Upsample") return {1};                                                   // scales
  return {};
}

// Adds the names `g` and the graphs nested in it define and read.
void scan_names(const onnx::GraphProto& g, std::set<std::string>& defined, std::set<std::string>& read) {
  for (const auto& vi : g.input()) defined.insert(vi.name());
  for (const auto& t : g.initializer()) defined.insert(t.name());
  for (const auto& n : g.node()) {
    for (const auto& in : n.input()) read.insert(in);
    for (const auto& out : n.output()) defined.insert(out);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) scan_names(a.g(), defined, read);
      for (const auto& sub : a.graphs()) scan_names(sub, defined, read);
    }
  }
  for (const auto& vi : g.output()) read.insert(vi.name());
}

// The names the subgraphs of `n` read from enclosing graphs.
std::set<std::string> outer_reads(const onnx::NodeProto& n) {
  std::set<std::string> defined, read, outer;
  for (const auto& a : n.attribute()) {
    if (a.has_g()) scan_names(a.g(), defined, read);
    for (const auto& sub : a.graphs()) scan_names(sub, defined, read);
  }
  for (const auto& name : read)
    if (!name.empty() && !defined.count(name)) outer.insert(name);
  return outer;
}

void rename_reads(onnx::GraphProto& g, const std::map<std::string, std::string>& renames) {
  auto renamed = [&](const std::string& name) {
    auto it = renames.find(name);
    return it == renames.end() ? name : it->second;
  };
  for (auto& n : *g.mutable_node()) {
    for (auto& in : *n.mutable_input()) in = renamed(in);
    for (auto& a : *n.mutable_attribute()) {
      if (a.has_g()) rename_reads(*a.mutable_g(), renames);
      for (auto& sub : *a.mutable_graphs()) rename_reads(sub, renames);
    }
  }
  for (auto& vi : *g.mutable_output()) vi.set_name(renamed(vi.name()));
  for (auto& vi : *g.mutable_value_info()) vi.set_name(renamed(vi.name()));
}

void collect_all_names(const onnx::GraphProto& g, std::set<std::string>& names) {
  std::set<std::string> read;
  scan_names(g, names, read);
  names.insert(read.begin(), read.end());
  for (const auto& n : g.node()) {
    names.insert(n.name());
    for (const auto& a : n.attribute()) {
      if (a.has_g()) collect_all_names(a.g(), names);
      for (const auto& sub : a.graphs()) collect_all_names(sub, names);
    }
  }
}

// The elements of a float32 tensor held in the proto (raw_data or float_data).
Result<std::vector<float>> float_elements(const onnx::TensorProto& t, const std::string& what) {
  if (t.data_location() == onnx::TensorProto::EXTERNAL)
    return unsupported(what + " keeps its data in an external file; only embedded data can be converted");
  std::vector<float> values;
  if (t.has_raw_data()) {
    const std::string& raw = t.raw_data();
    if (raw.size() % sizeof(float) != 0)
      return invalid_model(what + " has " + std::to_string(raw.size()) + " bytes of raw data, not a whole number of floats");
    values.resize(raw.size() / sizeof(float));
    std::memcpy(values.data(), raw.data(), raw.size());  // little-endian, as ONNX stores it
  } else {
    values.assign(t.float_data().begin(), t.float_data().end());
  }
  return values;
}

// Rewrites a float32 tensor as float16 (raw_data), counting clamped elements.
Status convert_tensor_to_half(onnx::TensorProto& t, const std::string& what, Fp16ConvertReport& report) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, float_elements(t, what));
  std::string raw(values.size() * sizeof(uint16_t), '\0');
  for (size_t i = 0; i < values.size(); ++i) {
    bool clamped = false;
    const uint16_t bits = float_to_half_clamped(values[i], &clamped);
    report.clamped_values += clamped;
    std::memcpy(&raw[i * sizeof(uint16_t)], &bits, sizeof bits);
  }
  t.clear_float_data();
  t.set_data_type(onnx::TensorProto::FLOAT16);
  t.set_raw_data(std::move(raw));
  ++report.converted_tensors;
  return Status::ok();
}

// The float32 tensor a Constant node holds (value, value_float or value_floats), or null.
std::optional<onnx::TensorProto> float_constant_value(const onnx::NodeProto& n) {
  for (const auto& a : n.attribute()) {
    if (a.name() == "value" && a.has_t() && a.t().data_type() == onnx::TensorProto::FLOAT) return a.t();
    if (a.name() == "value_float" || a.name() == "value_floats") {
      onnx::TensorProto t;
      t.set_data_type(onnx::TensorProto::FLOAT);
      if (a.name() == "value_float") {
        t.add_float_data(a.f());
      } else {
        t.add_dims(a.floats_size());
        for (float f : a.floats()) t.add_float_data(f);
      }
      return t;
    }
  }
  return std::nullopt;
}

void set_constant_value(onnx::NodeProto& n, onnx::TensorProto value) {
  n.clear_attribute();
  auto* a = n.add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  *a->mutable_t() = std::move(value);
}

onnx::AttributeProto* find_attribute(onnx::NodeProto& n, const std::string& name) {
  for (auto& a : *n.mutable_attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

class Converter {
 public:
  Converter(const onnx::ModelProto& model, const Fp16ConvertOptions& options) : options_(options) {
    out_.model = model;
    for (const auto& b : fp16_default_block_list()) blocked_ops_[b.op_type] = b.reason;
    for (const auto& op : options.extra_blocked_ops) blocked_ops_.emplace(op, "blocked by request");
  }

  Result<Fp16Conversion> run() {
    for (const auto& op : out_.model.opset_import())
      if (is_default_domain(op.domain())) opset_ = op.version();
    TANDEM_RETURN_IF_ERROR(check_embedded_data());
    TANDEM_RETURN_IF_ERROR(infer_value_classes());
    collect_all_names(graph(), used_names_);
    TANDEM_RETURN_IF_ERROR(find_sources());
    classify_nodes();
    collect_needs();
    assign_names();
    TANDEM_RETURN_IF_ERROR(rewrite());
    return std::move(out_);
  }

 private:
  onnx::GraphProto& graph() { return *out_.model.mutable_graph(); }
  bool is_float32(const std::string& name) const {
    auto it = classes_.find(name);
    return it != classes_.end() && it->second == ValueClass::float32;
  }

  Status check_embedded_data() {
    for (const auto& t : graph().initializer())
      if (t.data_type() == onnx::TensorProto::FLOAT && t.data_location() == onnx::TensorProto::EXTERNAL)
        return unsupported("initializer '" + t.name() +
                           "' keeps its data in an external file; only embedded data can be converted");
    return Status::ok();
  }

  // Types come from tandem's shape inference on the loaded model (declared types refine it).
  Status infer_value_classes() {
    std::string bytes;
    if (!out_.model.SerializeToString(&bytes)) return invalid_model("the model cannot be serialized (over 2 GiB?)");
    auto loaded = load_model_from_bytes(bytes, {}, "model");
    if (!loaded) return loaded.status();
    auto inferred = infer_shapes(*loaded->graph);
    if (!inferred) return Status(StatusCode::invalid_model, "type inference: " + inferred.status().message());
    for (const auto& [name, type] : inferred->types) classes_[name] = classify(type);
    return Status::ok();
  }

  // Constants: initializers that are not graph inputs, and Constant nodes holding a float32 tensor.
  Status find_sources() {
    for (const auto& vi : graph().input()) graph_inputs_.insert(vi.name());
    for (const auto& t : graph().initializer()) {
      if (graph_inputs_.count(t.name())) continue;
      static_values_.insert(t.name());
      if (is_float32(t.name())) TANDEM_RETURN_IF_ERROR(note_range(t.name(), t));
    }
    for (int i = 0; i < graph().node_size(); ++i) {
      const auto& n = graph().node(i);
      if (n.op_type() != "Constant" || !is_default_domain(n.domain()) || n.output_size() != 1) continue;
      static_values_.insert(n.output(0));
      if (!is_float32(n.output(0))) continue;
      if (auto value = float_constant_value(n)) {
        constant_nodes_[n.output(0)] = i;
        TANDEM_RETURN_IF_ERROR(note_range(n.output(0), *value));
      }
    }
    return Status::ok();
  }

  Status note_range(const std::string& name, const onnx::TensorProto& t) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> values, float_elements(t, "'" + name + "'"));
    for (float v : values) {
      if (std::isfinite(v) && std::fabs(v) > kHalfMax) {
        out_of_range_.insert(name);
        break;
      }
    }
    return Status::ok();
  }

  ValueClass value_class(const std::string& name) const {
    auto it = classes_.find(name);
    return it == classes_.end() ? ValueClass::unknown : it->second;
  }

  std::string block_reason(const onnx::NodeProto& n, bool all_inputs_static) const {
    if (!is_default_domain(n.domain())) return "domain '" + n.domain() + "' is not converted";
    if (holds_subgraph(n)) return "holds a subgraph, which keeps float32";
    if (auto it = blocked_ops_.find(n.op_type()); it != blocked_ops_.end()) return it->second;
    if (n.op_type() == "Constant") return "sparse constant keeps float32";
    for (const auto* names : {&n.input(), &n.output()})
      for (const auto& name : *names)
        if (!name.empty() && value_class(name) == ValueClass::unknown)
          return "value '" + name + "' has no tensor type that inference can tell";
    if (all_inputs_static) return "computes only from constants and shapes (exact in float32 only)";
    for (int j = 0; j < n.input_size(); ++j) {
      const bool clip_bound = n.op_type() == "Clip" && j > 0;  // a bound of +-65504 clips the same
      if (out_of_range_.count(n.input(j)) && !clip_bound)
        return "reads '" + n.input(j) + "', whose values exceed float16's range (+-65504)";
    }
    return "";
  }

  void classify_nodes() {
    const auto& nodes = graph().node();
    block_reasons_.assign(nodes.size(), "");
    float32_only_inputs_.assign(nodes.size(), {});
    for (int i = 0; i < nodes.size(); ++i) {
      const auto& n = nodes[i];
      if (n.output_size() == 1 && constant_nodes_.count(n.output(0))) continue;
      bool all_inputs_static = true;
      for (const auto& in : n.input()) all_inputs_static = all_inputs_static && (in.empty() || static_values_.count(in));
      const bool shape_source = (n.op_type() == "Shape" || n.op_type() == "Size") && is_default_domain(n.domain());
      if (all_inputs_static || shape_source)
        for (const auto& out : n.output()) static_values_.insert(out);
      block_reasons_[i] = block_reason(n, all_inputs_static);
      if (block_reasons_[i].empty()) {
        float32_only_inputs_[i] = float32_only_inputs(n.op_type(), opset_);
        continue;
      }
      bool touches_float = false;
      for (const auto* names : {&n.input(), &n.output()})
        for (const auto& name : *names) touches_float = touches_float || (!name.empty() && value_class(name) != ValueClass::other);
      if (touches_float) out_.report.blocked_nodes.push_back(node_label(n, i) + " " + block_reasons_[i]);
    }
  }

  Precision required_precision(int node, int input) const {
    if (!block_reasons_[node].empty()) return kSingle;
    return float32_only_inputs_[node].count(input) ? kSingle : kHalf;
  }

  void collect_needs() {
    const auto& nodes = graph().node();
    for (int i = 0; i < nodes.size(); ++i) {
      const auto& n = nodes[i];
      for (int j = 0; j < n.input_size(); ++j)
        if (is_float32(n.input(j))) needs_[n.input(j)].insert(required_precision(i, j));
      if (!block_reasons_[i].empty() && holds_subgraph(n))
        for (const auto& name : outer_reads(n))
          if (is_float32(name)) needs_[name].insert(kSingle);
    }
    for (const auto& vi : graph().output())
      if (is_float32(vi.name())) bound_[vi.name()] = options_.keep_io_types ? kSingle : kHalf;
  }

  // The precision a value's producer writes it in.
  Precision produced_precision(const std::string& name, int producer) const {
    if (graph_inputs_.count(name)) return options_.keep_io_types ? kSingle : kHalf;
    if (constant_nodes_.count(name) || producer < 0) {  // a constant: as its readers want it
      if (auto it = bound_.find(name); it != bound_.end()) return it->second;
      auto it = needs_.find(name);
      return it != needs_.end() && it->second == std::set<Precision>{kSingle} ? kSingle : kHalf;
    }
    return block_reasons_[producer].empty() ? kHalf : kSingle;
  }

  std::string fresh_name(const std::string& base) {
    std::string name = base;
    for (int k = 2; used_names_.count(name); ++k) name = base + "_" + std::to_string(k);
    used_names_.insert(name);
    return name;
  }

  void assign_value(const std::string& name, int producer) {
    if (!is_float32(name) || names_.count(name)) return;
    const Precision home = produced_precision(name, producer);
    home_[name] = home;
    auto& names = names_[name];
    auto bound = bound_.find(name);
    if (bound != bound_.end() && bound->second != home) {
      names[home] = fresh_name("fp16_" + name + precision_suffix(home));
      names[bound->second] = name;
    } else {
      names[home] = name;
    }
    for (Precision p : needs_[name])
      if (names[p].empty()) names[p] = fresh_name("fp16_" + name + precision_suffix(p));
  }

  void assign_names() {
    for (const auto& vi : graph().input()) assign_value(vi.name(), -1);
    for (const auto& t : graph().initializer()) assign_value(t.name(), -1);
    for (int i = 0; i < graph().node_size(); ++i)
      for (const auto& out : graph().node(i).output()) assign_value(out, i);
  }

  // Cast nodes giving `name` in the precisions its readers need besides the produced one.
  void emit_casts(const std::string& name, google::protobuf::RepeatedPtrField<onnx::NodeProto>& nodes) {
    auto it = names_.find(name);
    if (it == names_.end()) return;
    const Precision home = home_[name];
    for (Precision p : {kHalf, kSingle}) {
      if (p == home || it->second[p].empty()) continue;
      auto* cast = nodes.Add();
      cast->set_op_type("Cast");
      cast->set_name(fresh_name("fp16_cast_" + it->second[p]));
      cast->add_input(it->second[home]);
      cast->add_output(it->second[p]);
      auto* to = cast->add_attribute();
      to->set_name("to");
      to->set_type(onnx::AttributeProto::INT);
      to->set_i(onnx_elem_type(p));
      ++out_.report.inserted_casts;
    }
  }

  Status rewrite_initializers() {
    auto& inits = *graph().mutable_initializer();
    const int count = inits.size();
    for (int i = 0; i < count; ++i) {
      const std::string name = inits[i].name();
      if (!names_.count(name) || inits[i].data_type() != onnx::TensorProto::FLOAT) continue;
      const Precision home = home_[name];
      const onnx::TensorProto original = inits[i];
      const std::string what = "initializer '" + name + "'";
      if (home == kHalf) TANDEM_RETURN_IF_ERROR(convert_tensor_to_half(inits[i], what, out_.report));
      if (graph_inputs_.count(name)) continue;  // a graph input's default: Casts convert it
      inits[i].set_name(names_[name][home]);
      const Precision other = home == kHalf ? kSingle : kHalf;
      if (names_[name][other].empty()) continue;
      onnx::TensorProto copy = other == kSingle ? original : inits[i];
      if (other == kHalf) TANDEM_RETURN_IF_ERROR(convert_tensor_to_half(copy, what, out_.report));
      copy.set_name(names_[name][other]);
      *inits.Add() = std::move(copy);
      ++out_.report.constant_copies;
    }
    return Status::ok();
  }

  Status rewrite_constant(onnx::NodeProto n, int index, google::protobuf::RepeatedPtrField<onnx::NodeProto>& nodes) {
    const std::string name = n.output(0);
    const Precision home = home_[name];
    const onnx::TensorProto original = *float_constant_value(n);
    onnx::TensorProto half = original;
    const bool half_needed = home == kHalf || !names_[name][kHalf].empty();
    if (half_needed) TANDEM_RETURN_IF_ERROR(convert_tensor_to_half(half, node_label(n, index) + " value", out_.report));
    set_constant_value(n, home == kHalf ? half : original);
    n.set_output(0, names_[name][home]);
    const Precision other = home == kHalf ? kSingle : kHalf;
    const std::string other_name = names_[name][other];
    const std::string copy_name = "fp16_" + (n.name().empty() ? other_name : n.name() + precision_suffix(other));
    *nodes.Add() = std::move(n);
    if (other_name.empty()) return Status::ok();
    auto* copy = nodes.Add();
    copy->set_op_type("Constant");
    copy->set_name(fresh_name(copy_name));
    copy->add_output(other_name);
    set_constant_value(*copy, other == kHalf ? half : original);
    ++out_.report.constant_copies;
    return Status::ok();
  }

  // Attributes that name float32 as a result type, on converted nodes.
  Status rewrite_type_attributes(onnx::NodeProto& n, int index) {
    const std::string& op = n.op_type();
    if (op == "Cast" || op == "EyeLike") {
      const char* key = op == "Cast" ? "to" : "dtype";
      if (auto* a = find_attribute(n, key); a && a->i() == onnx::TensorProto::FLOAT) a->set_i(onnx::TensorProto::FLOAT16);
    } else if (op == "ConstantOfShape" && n.output_size() == 1 && is_float32(n.output(0))) {
      auto* a = find_attribute(n, "value");
      if (!a) {  // the default is a float32 zero
        a = n.add_attribute();
        a->set_name("value");
        a->set_type(onnx::AttributeProto::TENSOR);
        a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
        a->mutable_t()->add_dims(1);
        a->mutable_t()->add_float_data(0.0f);
      }
      if (a->t().data_type() == onnx::TensorProto::FLOAT)
        TANDEM_RETURN_IF_ERROR(convert_tensor_to_half(*a->mutable_t(), node_label(n, index) + " value", out_.report));
    }
    return Status::ok();
  }

  Status rewrite() {
    TANDEM_RETURN_IF_ERROR(rewrite_initializers());
    google::protobuf::RepeatedPtrField<onnx::NodeProto> old_nodes;
    old_nodes.Swap(graph().mutable_node());
    auto& nodes = *graph().mutable_node();
    for (const auto& vi : graph().input()) emit_casts(vi.name(), nodes);
    for (int i = 0; i < old_nodes.size(); ++i) {
      onnx::NodeProto n = old_nodes[i];
      if (n.output_size() == 1 && constant_nodes_.count(n.output(0))) {
        TANDEM_RETURN_IF_ERROR(rewrite_constant(std::move(n), i, nodes));
        continue;
      }
      for (int j = 0; j < n.input_size(); ++j)
        if (is_float32(n.input(j))) n.set_input(j, names_[n.input(j)][required_precision(i, j)]);
      if (!block_reasons_[i].empty() && holds_subgraph(n)) {
        std::map<std::string, std::string> renames;
        for (const auto& name : outer_reads(n))
          if (is_float32(name)) renames[name] = names_[name][kSingle];
        for (auto& a : *n.mutable_attribute()) {
          if (a.has_g()) rename_reads(*a.mutable_g(), renames);
          for (auto& sub : *a.mutable_graphs()) rename_reads(sub, renames);
        }
      }
      if (block_reasons_[i].empty()) TANDEM_RETURN_IF_ERROR(rewrite_type_attributes(n, i));
      for (int k = 0; k < n.output_size(); ++k)
        if (is_float32(n.output(k))) n.set_output(k, names_[n.output(k)][home_[n.output(k)]]);
      *nodes.Add() = std::move(n);
      for (const auto& out : old_nodes[i].output()) emit_casts(out, nodes);
    }
    rewrite_declared_types();
    return Status::ok();
  }

  // Declared types follow the precision each name now carries.
  void rewrite_declared_types() {
    auto retype = [&](onnx::ValueInfoProto& vi) {
      auto it = names_.find(vi.name());
      if (it == names_.end() || !vi.type().has_tensor_type()) return;
      const Precision p = it->second[kHalf] == vi.name() ? kHalf : kSingle;
      vi.mutable_type()->mutable_tensor_type()->set_elem_type(onnx_elem_type(p));
    };
    for (auto& vi : *graph().mutable_input()) retype(vi);
    for (auto& vi : *graph().mutable_output()) retype(vi);
    for (auto& vi : *graph().mutable_value_info()) retype(vi);
  }

  Fp16Conversion out_;
  Fp16ConvertOptions options_;
  std::map<std::string, std::string> blocked_ops_;  // op type -> reason
  int64_t opset_ = 1;
  std::map<std::string, ValueClass> classes_;       // main-graph values by name
  std::set<std::string> used_names_;                // every name in the model, and those added
  std::set<std::string> graph_inputs_;
  std::set<std::string> static_values_;             // constants, shapes and what derives only from them
  std::map<std::string, int> constant_nodes_;       // float32 Constant output -> node index
  std::set<std::string> out_of_range_;              // float32 constants with finite values beyond +-65504
  std::vector<std::string> block_reasons_;          // per node; empty: converted
  std::vector<std::set<int>> float32_only_inputs_;  // per converted node: inputs that stay float32
  std::map<std::string, std::set<Precision>> needs_;  // float32 value -> precisions its readers need
  std::map<std::string, Precision> bound_;          // graph output -> the precision its name carries
  std::map<std::string, Precision> home_;           // float32 value -> the precision its producer writes
  std::map<std::string, std::array<std::string, 2>> names_;  // float32 value -> its name per precision
};

}  // namespace

const std::vector<Fp16BlockedOp>& fp16_default_block_list() {
  static const std::vector<Fp16BlockedOp> list = [] {
    const std::string sums = "sums many terms: the result overflows 65504 or loses its low bits in float16";
    const std::string random = "random generator: its distribution parameters and seeds are float32";
    const std::string quant = "quantization scales are float32 only before opset 19";
    const std::string fixed = "produces float32 whatever its inputs (the output type is fixed by the spec or an attribute)";
    return std::vector<Fp16BlockedOp>{
        {"Range", "counts in steps: float16 is exact for integers only up to 2048, and Range has no float16 type"},
        {"ReduceSum", sums},
        {"ReduceSumSquare", sums},
        {"ReduceMean", sums + " (the mean itself is bounded, the sum before the division is not)"},
        {"ReduceProd", "multiplies many terms: overflows or underflows float16"},
        {"ReduceL1", sums},
        {"ReduceL2", sums},
        {"ReduceLogSum", sums},
        {"ReduceLogSumExp", "sums exponentials: overflows float16 for inputs above 11"},
        {"CumSum", "running sums grow with the axis length and overflow float16"},
        {"LpNormalization", sums},
        {"LpPool", sums},
        {"GlobalLpPool", sums},
        {"MeanVarianceNormalization", sums},
        {"Pow", "powers overflow float16 (x^2 above 65504 for |x| > 256), e.g. the variance in LayerNorm"},
        {"RandomNormal", random},
        {"RandomNormalLike", random},
        {"RandomUniform", random},
        {"RandomUniformLike", random},
        {"Bernoulli", random},
        {"Multinomial", random},
        {"NonMaxSuppression", "boxes and scores are tensor(float) only; coordinates need float32"},
        {"RoiAlign", "regions of interest are pixel coordinates, inexact in float16 beyond 2048"},
        {"QuantizeLinear", quant},
        {"DequantizeLinear", quant},
        {"DynamicQuantizeLinear", quant},
        {"QLinearConv", quant},
        {"QLinearMatMul", quant},
        {"TfIdfVectorizer", fixed},
        {"HannWindow", fixed},
        {"HammingWindow", fixed},
        {"BlackmanWindow", fixed},
        {"MelWeightMatrix", fixed},
    };
  }();
  return list;
}

uint16_t float_to_half_clamped(float value, bool* clamped) {
  if (std::isfinite(value) && std::fabs(value) > kHalfMax) {
    if (clamped) *clamped = true;
    value = value > 0 ? kHalfMax : -kHalfMax;
  }
  return Float16(value).bits;
}

Result<Fp16Conversion> convert_model_to_fp16(const onnx::ModelProto& model, const Fp16ConvertOptions& options) {
  if (!model.has_graph()) return invalid_model("the model has no graph");
  return Converter(model, options).run();
}

}  // namespace tandem
