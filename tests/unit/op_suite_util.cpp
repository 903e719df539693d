// op_suite_util.cpp: how the op suite (op_suite_util.h) builds a case's graph, runs it on the
// reference backend and on every other registered backend, and checks the results.
#include "op_suite_util.h"

#include <gtest/gtest.h>

#include "backends/backend.h"
#include "engine/placement.h"
#include "passes/shape_inference.h"

namespace tandem::testing {

Tensor CaseRng::tensor(const Shape& shape, float lo, float hi, DataType dtype) {
  Tensor t(dtype, shape);
  std::uniform_real_distribution<float> real(lo, hi);
  std::uniform_int_distribution<int64_t> whole(static_cast<int64_t>(lo), static_cast<int64_t>(hi));
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (dtype) {
      case DataType::float32:
        t.data<float>()[i] = real(gen_);
        break;
      case DataType::float64:
        t.data<double>()[i] = real(gen_);
        break;
      case DataType::float16:
        t.data<Float16>()[i] = Float16(real(gen_));
        break;
      case DataType::int8:
        t.data<int8_t>()[i] = static_cast<int8_t>(whole(gen_));
        break;
      case DataType::uint8:
        t.data<uint8_t>()[i] = static_cast<uint8_t>(whole(gen_));
        break;
      case DataType::int16:
        t.data<int16_t>()[i] = static_cast<int16_t>(whole(gen_));
        break;
      case DataType::uint16:
        t.data<uint16_t>()[i] = static_cast<uint16_t>(whole(gen_));
        break;
      case DataType::int32:
        t.data<int32_t>()[i] = static_cast<int32_t>(whole(gen_));
        break;
      case DataType::int64:
        t.data<int64_t>()[i] = whole(gen_);
        break;
      case DataType::uint32:
        t.data<uint32_t>()[i] = static_cast<uint32_t>(whole(gen_));
        break;
      case DataType::uint64:
        t.data<uint64_t>()[i] = static_cast<uint64_t>(whole(gen_));
        break;
      case DataType::boolean:
        t.data<bool>()[i] = (gen_() & 1u) != 0;
        break;
      default:
        ADD_FAILURE() << "CaseRng cannot fill " << dtype_name(dtype);
        return t;
    }
  }
  return t;
}

namespace {

TypeInfo type_of_value(const Value& v) {
  TypeInfo t;
  if (v.is_tensor()) {
    t.kind = TypeInfo::Kind::tensor;
    t.elem = v.tensor.dtype();
    t.has_shape = true;
    for (int64_t d : v.tensor.shape()) t.dims.push_back(Dim{d, {}});
  } else if (v.is_sequence()) {
    t.kind = TypeInfo::Kind::sequence;
    t.inner = std::make_shared<TypeInfo>();
    t.inner->kind = TypeInfo::Kind::tensor;
    t.inner->elem = v.sequence_dtype;
  }
  return t;
}

// Ok when `got` has the kind, element type and fixed dims inference predicted for it.
Status matches_inferred(const TypeInfo* want, const Value& got) {
  if (!want || want->kind == TypeInfo::Kind::unknown) return Status::ok();
  if (want->kind == TypeInfo::Kind::sequence)
    return got.is_sequence() ? Status::ok() : invalid_argument("inferred a sequence, got another kind");
  if (want->kind != TypeInfo::Kind::tensor) return Status::ok();
  if (!got.is_tensor()) return invalid_argument("inferred " + want->to_string() + ", got a non-tensor");
  const Tensor& t = got.tensor;
  if (want->elem != DataType::undefined && want->elem != t.dtype())
    return invalid_argument("inferred " + want->to_string() + ", got " + std::string(dtype_name(t.dtype())));
  if (!want->has_shape) return Status::ok();
  bool same = want->dims.size() == t.rank();
  for (size_t i = 0; same && i < t.rank(); ++i) same = !want->dims[i].fixed() || want->dims[i].value == t.dim(i);
  if (!same) return invalid_argument("inferred " + want->to_string() + ", got shape " + shape_to_string(t.shape()));
  return Status::ok();
}

// Kinds, types and shapes agree; for tensors that is all a nondeterministic op promises.
Status same_layout(const Value& want, const Value& got) {
  if (want.kind != got.kind) return invalid_argument("value kinds differ");
  if (want.is_tensor() && (want.tensor.dtype() != got.tensor.dtype() || want.tensor.shape() != got.tensor.shape()))
    return invalid_argument("type or shape differs: " + shape_to_string(want.tensor.shape()) + " vs " +
                            shape_to_string(got.tensor.shape()));
  return Status::ok();
}

Status run_on(Backend* b, const Graph& g, const std::vector<Value>& feeds, std::vector<Value>* out) {
  auto plan = b->compile(g, CompileOptions{});
  if (!plan.is_ok()) return plan.status();
  return b->run(**plan, feeds, out, RunControl{});
}

Status prefixed(const std::string& where, const Status& s) { return {s.code(), where + ": " + s.message()}; }

}  // namespace

std::shared_ptr<Graph> case_graph(const OpCase& c) {
  auto g = std::make_shared<Graph>();
  g->name = c.op;
  g->opsets[c.domain] = c.opset;
  if (!c.domain.empty()) g->opsets[""] = 17;
  Node n;
  n.op_type = c.op;
  n.name = "node";
  n.domain = c.domain;
  n.opset = c.opset;
  n.attrs = c.attrs;
  n.index = 0;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Value& v = c.inputs[i];
    if (v.is_none() || (v.is_tensor() && !v.tensor.defined())) {
      n.inputs.push_back("");
      continue;
    }
    const std::string name = "x" + std::to_string(i);
    n.inputs.push_back(name);
    if (c.constants & (1u << i))
      g->initializers[name] = v.tensor;
    else
      g->inputs.push_back(ValueInfo{name, type_of_value(v)});
  }
  for (const auto& [name, v] : c.outer) g->inputs.push_back(ValueInfo{name, type_of_value(v)});
  for (int i = 0; i < c.outputs; ++i) {
    n.outputs.push_back("y" + std::to_string(i));
    g->outputs.push_back(ValueInfo{"y" + std::to_string(i), {}});
  }
  g->nodes.push_back(std::move(n));
  return g;
}

std::vector<Value> case_feeds(const OpCase& c) {
  std::vector<Value> feeds;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const Value& v = c.inputs[i];
    if (v.is_none() || (v.is_tensor() && !v.tensor.defined()) || (c.constants & (1u << i))) continue;
    feeds.push_back(v);
  }
  for (const auto& [name, v] : c.outer) feeds.push_back(v);
  return feeds;
}

std::shared_ptr<Graph> body_graph(std::vector<ValueInfo> inputs, const std::vector<BodyNode>& nodes,
                                  const std::vector<std::string>& outputs, int64_t opset) {
  auto g = std::make_shared<Graph>();
  g->name = "body";
  g->opsets[""] = opset;
  g->inputs = std::move(inputs);
  for (const BodyNode& b : nodes) {
    Node n;
    n.op_type = b.op;
    n.name = b.op + std::to_string(g->nodes.size());
    n.opset = opset;
    n.inputs = b.inputs;
    n.outputs = b.outputs;
    n.attrs = b.attrs;
    n.index = static_cast<int>(g->nodes.size());
    g->nodes.push_back(std::move(n));
  }
  for (const std::string& o : outputs) g->outputs.push_back(ValueInfo{o, {}});
  return g;
}

Status run_on_reference(const OpCase& c, std::vector<Value>* outputs) {
  return run_on(find_backend(available_backends().back()), *case_graph(c), case_feeds(c), outputs);
}

CaseOutcome run_case(const OpCase& c) {
  CaseOutcome outcome;
  const auto graph = case_graph(c);
  const auto feeds = case_feeds(c);
  // The registry lists backends in preference order with the reference backend, the spec, last.
  const std::vector<std::string_view> names = available_backends();
  std::vector<Value> want;
  Status s = run_on(find_backend(names.back()), *graph, feeds, &want);
  if (!s.is_ok()) {
    outcome.reference = prefixed("reference run", s);
    return outcome;
  }
  auto inferred = infer_shapes(*graph);
  if (!inferred.is_ok()) {
    outcome.reference = prefixed("shape inference", inferred.status());
    return outcome;
  }
  if (want.size() != static_cast<size_t>(c.outputs)) {
    outcome.reference = invalid_argument("reference gave " + std::to_string(want.size()) + " outputs");
    return outcome;
  }
  for (int i = 0; i < c.outputs; ++i) {
    s = matches_inferred(inferred->type_of("y" + std::to_string(i)), want[static_cast<size_t>(i)]);
    if (!s.is_ok()) {
      outcome.reference = prefixed("output y" + std::to_string(i), s);
      return outcome;
    }
  }
  const Node& node = graph->nodes[0];
  const NodeTypes types = node_types(node, *inferred);
  for (size_t k = 0; k + 1 < names.size(); ++k) {
    Backend* b = find_backend(names[k]);
    const std::string name(names[k]);
    if (Status no = b->supports(node, types); !no.is_ok()) {
      outcome.declined[name] = no.message();
      continue;
    }
    auto plan = b->compile(*graph, CompileOptions{});
    if (!plan.is_ok()) {
      outcome.backends[name] = prefixed("compile", plan.status());
      continue;
    }
    if (!(*plan)->declined().empty()) {  // the plan hands the node back for these shapes
      outcome.declined[name] = "compiled plan: " + (*plan)->declined()[0].reason;
      continue;
    }
    std::vector<Value> got;
    s = b->run(**plan, feeds, &got, RunControl{});
    if (s.is_ok() && got.size() != want.size()) s = invalid_argument("wrong number of outputs");
    for (size_t i = 0; s.is_ok() && i < want.size(); ++i) {
      s = c.deterministic ? compare_values(want[i], got[i], c.tol) : same_layout(want[i], got[i]);
      if (!s.is_ok()) s = prefixed("output y" + std::to_string(i), s);
    }
    outcome.backends[name] = s;
  }
  return outcome;
}

}  // namespace tandem::testing
