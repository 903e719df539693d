#include "onnx/opset_upgrade.h"

#include <vector>

#include "onnx/onnx_tensor_util.h"

namespace tandem {

namespace {

using onnx_util::find_attr;
using onnx_util::node_label;
using onnx_util::unique_name;

using onnx_util::is_default_domain;

void remove_attr(onnx::NodeProto& n, const std::string& name) {
  auto* attrs = n.mutable_attribute();
  for (int i = 0; i < attrs->size(); ++i)
    if (attrs->Get(i).name() == name) {
      attrs->DeleteSubrange(i, 1);
      return;
    }
}

class Upgrader {
 public:
  Upgrader(int64_t from, const std::map<std::string, int64_t>& ranks, std::set<std::string>& taken)
      : from_(from), ranks_(ranks), taken_(taken) {}

  Status upgrade_graph(onnx::GraphProto& g, bool main_graph) {
    for (auto& n : *g.mutable_node()) {
      for (auto& a : *n.mutable_attribute()) {
        if (a.has_g()) TANDEM_RETURN_IF_ERROR(upgrade_graph(*a.mutable_g(), false));
        for (auto& sub : *a.mutable_graphs()) TANDEM_RETURN_IF_ERROR(upgrade_graph(sub, false));
      }
      if (is_default_domain(n.domain())) TANDEM_RETURN_IF_ERROR(upgrade_node(g, n, main_graph));
    }
    return Status::ok();
  }

 private:
  Status refuse(const onnx::NodeProto& n, const std::string& why) const {
    return unsupported(node_label(n) + " cannot move from opset " + std::to_string(from_) + " to 13: " + why);
  }

  // Adds an int64 1-D initializer to `g` and returns its name.
  std::string add_ints(onnx::GraphProto& g, const onnx::NodeProto& n, const std::string& what,
                       const std::vector<int64_t>& values) {
    auto* t = g.add_initializer();
    t->set_name(unique_name((n.output_size() ? n.output(0) : n.name()) + "_" + what, taken_));
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(values.size()));
    for (int64_t v : values) t->add_int64_data(v);
    return t->name();
  }

  std::string add_float_scalar(onnx::GraphProto& g, const onnx::NodeProto& n, const std::string& what, float value) {
    auto* t = g.add_initializer();
    t->set_name(unique_name((n.output_size() ? n.output(0) : n.name()) + "_" + what, taken_));
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_float_data(value);
    return t->name();
  }

  // Sets input `index` of `n` to `name`, padding skipped optional inputs with "".
  static void set_input(onnx::NodeProto& n, int index, const std::string& name) {
    while (n.input_size() <= index) n.add_input("");
    n.set_input(index, name);
  }

  // Moves the ints attribute `attr` to input `index` (if present).
  void ints_attr_to_input(onnx::GraphProto& g, onnx::NodeProto& n, const std::string& attr, int index) {
    const auto* a = find_attr(n, attr);
    if (!a) return;
    std::vector<int64_t> values(a->ints().begin(), a->ints().end());
    set_input(n, index, add_ints(g, n, attr, values));
    remove_attr(n, attr);
  }

  Status upgrade_node(onnx::GraphProto& g, onnx::NodeProto& n, bool main_graph) {
    const std::string& op = n.op_type();
    if (op == "Upsample" || op == "Scatter") return refuse(n, "the op is deprecated; use a converter that rewrites it");
    if (op == "Resize" && from_ < 11) return refuse(n, "Resize-10's coordinate rules differ from Resize-13's");
    if (op == "Scan" && from_ < 9) return refuse(n, "Scan-8's batch semantics differ from Scan-9's");
    if (op == "Clip" && from_ < 11) {
      const auto* lo = find_attr(n, "min");
      const auto* hi = find_attr(n, "max");
      if (lo) set_input(n, 1, add_float_scalar(g, n, "min", lo->f()));
      if (hi) set_input(n, 2, add_float_scalar(g, n, "max", hi->f()));
      remove_attr(n, "min");
      remove_attr(n, "max");
    } else if (op == "Slice" && from_ < 10) {
      const auto* starts = find_attr(n, "starts");
      const auto* ends = find_attr(n, "ends");
      if (!starts || !ends) return refuse(n, "Slice without starts or ends");
      ints_attr_to_input(g, n, "starts", 1);
      ints_attr_to_input(g, n, "ends", 2);
      ints_attr_to_input(g, n, "axes", 3);
    } else if (op == "Pad" && from_ < 11) {
      const auto* pads = find_attr(n, "pads");
      if (!pads) return refuse(n, "Pad without pads");
      const auto* value = find_attr(n, "value");
      ints_attr_to_input(g, n, "pads", 1);
      if (value) set_input(n, 2, add_float_scalar(g, n, "value", value->f()));
      remove_attr(n, "value");
    } else if (op == "TopK" && from_ < 10) {
      const auto* k = find_attr(n, "k");
      if (!k) return refuse(n, "TopK without k");
      set_input(n, 1, add_ints(g, n, "k", {k->i()}));
      remove_attr(n, "k");
    } else if (op == "Dropout" && from_ < 12) {
      const auto* ratio = find_attr(n, "ratio");
      if (ratio) set_input(n, 1, add_float_scalar(g, n, "ratio", ratio->f()));
      remove_attr(n, "ratio");
      remove_attr(n, "is_test");
    } else if ((op == "Squeeze" || op == "Unsqueeze" || op == "ReduceSum") && from_ < 13) {
      ints_attr_to_input(g, n, "axes", 1);
    } else if (op == "Split" && from_ < 13) {
      ints_attr_to_input(g, n, "split", 1);
    } else if (op == "BatchNormalization" && from_ < 9) {
      const auto* spatial = find_attr(n, "spatial");
      if (spatial && spatial->i() != 1) return refuse(n, "spatial = 0 has no equivalent at opset 9 and later");
      remove_attr(n, "spatial");
    } else if ((op == "Softmax" || op == "LogSoftmax" || op == "Hardmax") && from_ < 13) {
      const auto* a = find_attr(n, "axis");
      const int64_t axis = a ? a->i() : 1;
      auto it = main_graph && n.input_size() ? ranks_.find(n.input(0)) : ranks_.end();
      if (it == ranks_.end()) return refuse(n, "the input's rank is unknown, so the axis cannot be checked");
      const int64_t rank = it->second;
      const int64_t normalized = axis < 0 ? axis + rank : axis;
      if (normalized != rank - 1)
        return refuse(n, "axis " + std::to_string(axis) + " of a rank-" + std::to_string(rank) +
                             " input flattens the trailing axes before opset 13 and does not after");
      remove_attr(n, "axis");
      auto* attr = n.add_attribute();
      attr->set_name("axis");
      attr->set_type(onnx::AttributeProto::INT);
      attr->set_i(normalized);
    }
    return Status::ok();
  }

  int64_t from_;
  const std::map<std::string, int64_t>& ranks_;
  std::set<std::string>& taken_;
};

}  // namespace

int64_t default_opset_of(const onnx::ModelProto& model) {
  for (const auto& o : model.opset_import())
    if (is_default_domain(o.domain())) return o.version();
  return 0;
}

Status raise_opset(onnx::ModelProto& model, int64_t target, const std::map<std::string, int64_t>& ranks,
                   std::set<std::string>& taken_names) {
  const int64_t from = default_opset_of(model);
  if (from >= target) return Status::ok();
  if (from < 7)
    return unsupported("the model imports ai.onnx opset " + std::to_string(from) +
                       "; raising opsets below 7 to " + std::to_string(target) + " is not supported");
  Upgrader upgrader(from, ranks, taken_names);
  TANDEM_RETURN_IF_ERROR(upgrader.upgrade_graph(*model.mutable_graph(), true));
  for (auto& o : *model.mutable_opset_import())
    if (is_default_domain(o.domain())) o.set_version(target);
  if (model.ir_version() < 7) model.set_ir_version(7);
  return Status::ok();
}

}  // namespace tandem
