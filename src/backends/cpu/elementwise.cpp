// elementwise.cpp: the elementwise ONNX ops of the cpu backend: Add Sub Mul Div Pow Max Min
// Abs Neg Exp Log Sqrt Reciprocal Erf Floor Ceil Round Clip Cast(float->float) as elementwise
// programs (ew_program.h), their specs, and the fusion of chains of them.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>

#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

// Adds `v` to the program's operands (once) and returns its index.
int operand_index(EwProgram* p, int v) {
  for (size_t i = 0; i < p->operands.size(); ++i)
    if (p->operands[i] == v) return static_cast<int>(i);
  p->operands.push_back(v);
  return static_cast<int>(p->operands.size()) - 1;
}

// A float32 scalar constant's value.
bool scalar_constant(const FusionContext& f, int v, float* out) {
  const Tensor* t = f.constant(v);
  if (!t || t->numel() != 1) return false;
  if (t->dtype() == DataType::float32) *out = t->data<float>()[0];
  else if (t->dtype() == DataType::float64) *out = static_cast<float>(t->data<double>()[0]);
  else if (t->dtype() == DataType::int64) *out = static_cast<float>(t->data<int64_t>()[0]);  // Pow's exponent
  else if (t->dtype() == DataType::int32) *out = static_cast<float>(t->data<int32_t>()[0]);
  else return false;
  return true;
}

// Appends op `code` with the value `v` as operand (immediate when it is a scalar constant).
void push_binary(const FusionContext& f, EwProgram* p, Ew code, int v) {
  float s = 0;
  if (code != Ew::load && scalar_constant(f, v, &s)) {
    p->ops.push_back(EwOp{code, -1, s, 0});
    return;
  }
  p->ops.push_back(EwOp{code, operand_index(p, v), 0, 0});
}

bool binary_code(const std::string& op, bool reversed, Ew* code) {
  if (op == "Add") *code = Ew::add;
  else if (op == "Mul") *code = Ew::mul;
  else if (op == "Sub") *code = reversed ? Ew::rsub : Ew::sub;
  else if (op == "Div") *code = reversed ? Ew::rdiv : Ew::div;
  else if (op == "Pow") *code = reversed ? Ew::rpow : Ew::pow;
  else if (op == "Max") *code = Ew::max;
  else if (op == "Min") *code = Ew::min;
  else if (op == "PRelu") {
    if (reversed) return false;
    *code = Ew::prelu;
  } else return false;
  return true;
}

bool unary_code(const Node& n, EwOp* op) {
  const std::string& t = n.op_type;
  static const std::map<std::string, Ew> simple = {
      {"Abs", Ew::abs},   {"Neg", Ew::neg},   {"Exp", Ew::exp},         {"Log", Ew::log},
      {"Sqrt", Ew::sqrt}, {"Erf", Ew::erf},   {"Reciprocal", Ew::reciprocal}, {"Floor", Ew::floor},
      {"Ceil", Ew::ceil}, {"Round", Ew::round}, {"Identity", Ew::identity}, {"Dropout", Ew::identity}};
  if (auto it = simple.find(t); it != simple.end()) {
    *op = EwOp{it->second, -1, 0, 0};
    return true;
  }
  if (t == "Cast") {  // float -> float only (checked at instance time)
    if (n.attr_int("to", 0) != static_cast<int64_t>(DataType::float32)) return false;
    *op = EwOp{Ew::identity, -1, 0, 0};
    return true;
  }
  return activation_op(n, op);
}

}  // namespace

bool node_to_ew(const FusionContext& f, const Node& n, const std::vector<int>& inputs, int acc_input, EwProgram* p) {
  const std::string& t = n.op_type;
  if (n.outputs.size() != 1) {
    if (!(t == "Dropout" && (n.outputs.size() < 2 || n.outputs[1].empty()))) return false;
  }
  auto start = [&](int v) {
    if (acc_input < 0) p->ops.push_back(EwOp{Ew::load, operand_index(p, v), 0, 0});
  };
  Ew code;
  if (t == "Max" || t == "Min" || t == "Sum") {
    if (inputs.empty()) return false;
    for (int v : inputs)
      if (v < 0) return false;
    Ew c = t == "Max" ? Ew::max : t == "Min" ? Ew::min : Ew::add;
    if (acc_input < 0) {
      start(inputs[0]);
      for (size_t i = 1; i < inputs.size(); ++i) push_binary(f, p, c, inputs[i]);
    } else {
      for (size_t i = 0; i < inputs.size(); ++i)
        if (static_cast<int>(i) != acc_input) push_binary(f, p, c, inputs[i]);
    }
    return true;
  }
  if (binary_code(t, acc_input == 1, &code)) {
    if (inputs.size() != 2 || inputs[0] < 0 || inputs[1] < 0) return false;
    if (t == "Pow") {
      float e = 0;
      int other = inputs[acc_input == 1 ? 0 : 1];
      if (acc_input != 1 && scalar_constant(f, other, &e)) {
        start(inputs[0]);
        if (e == 2.0f) p->ops.push_back(EwOp{Ew::square, -1, 0, 0});
        else if (e == 1.0f) p->ops.push_back(EwOp{Ew::identity, -1, 0, 0});
        else if (e == 0.5f) p->ops.push_back(EwOp{Ew::sqrt, -1, 0, 0});
        else p->ops.push_back(EwOp{Ew::pow, -1, e, 0});
        return true;
      }
    }
    if (acc_input < 0) {
      start(inputs[0]);
      push_binary(f, p, code, inputs[1]);
    } else {
      push_binary(f, p, code, inputs[acc_input == 0 ? 1 : 0]);
    }
    return true;
  }
  if (t == "Clip") {
    if (inputs.empty() || inputs[0] < 0) return false;
    if (acc_input > 0) return false;
    start(inputs[0]);
    if (n.opset < 11) {
      p->ops.push_back(EwOp{Ew::clip, -1, n.attr_float("min", -FLT_MAX), n.attr_float("max", FLT_MAX)});
      return true;
    }
    float lo = -FLT_MAX, hi = FLT_MAX;
    int lo_v = inputs.size() > 1 ? inputs[1] : -1, hi_v = inputs.size() > 2 ? inputs[2] : -1;
    bool lo_c = lo_v < 0 || scalar_constant(f, lo_v, &lo);
    bool hi_c = hi_v < 0 || scalar_constant(f, hi_v, &hi);
    if (lo_c && hi_c) {
      p->ops.push_back(EwOp{Ew::clip, -1, lo, hi});
      return true;
    }
    // Runtime bounds: x<lo?lo:x then >hi?hi (NaN stays NaN like the reference).
    if (lo_v >= 0) {
      if (lo_c) p->ops.push_back(EwOp{Ew::clip, -1, lo, FLT_MAX});
      else p->ops.push_back(EwOp{Ew::max, operand_index(p, lo_v), 0, 0});
    }
    if (hi_v >= 0) {
      if (hi_c) p->ops.push_back(EwOp{Ew::clip, -1, -FLT_MAX, hi});
      else p->ops.push_back(EwOp{Ew::min, operand_index(p, hi_v), 0, 0});
    }
    return true;
  }
  EwOp op;
  if (unary_code(n, &op)) {
    if (inputs.empty() || inputs[0] < 0) return false;
    if (acc_input > 0) return false;
    start(inputs[0]);
    p->ops.push_back(op);
    return true;
  }
  return false;
}

// True when every data value read or written by the step's nodes is float32. Integer values
// known at build time (axes, shapes, exponents of Pow) are parameters, not data.
bool all_float32(Builder& b, const Step& step, const std::vector<int>& internal) {
  const CompiledGraph& g = b.graph();
  for (const Node* n : step.originals) {
    for (const auto* names : {&n->inputs, &n->outputs})
      for (const auto& name : *names) {
        if (name.empty()) continue;
        int v = g.find(name);
        if (v < 0) return false;
        if (b.val(v).dtype == DataType::float32) continue;
        if (std::find(internal.begin(), internal.end(), v) != internal.end()) continue;
        if (names == &n->inputs && is_integer_type(b.val(v).dtype) && b.known(v)) continue;
        return false;
      }
  }
  return true;
}

namespace {

class ProgramSpec final : public OpSpec {
 public:
  ProgramSpec(EwProgram p, std::vector<int> internal) : prog_(std::move(p)), internal_(std::move(internal)) {}
  Status prepare(Builder& b, const Step& step) const override {
    if (!all_float32(b, step, internal_)) return unsupported(step.node->label() + " not float32");
    return add_elementwise(b, prog_, -1, step.outputs[0],
                           step.node->label() + (internal_.empty() ? "" : " (8-bit round trip in float)"));
  }
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override {
    EwProgram p = prog_;
    if (!node_to_ew(f, *reader.node, reader.inputs, acc_input, &p) &&
        !append_unary_program(reader, reader.inputs[acc_input], &p, &internal_))
      return false;
    prog_ = std::move(p);
    return true;
  }
  EwProgram* program() override { return &prog_; }
  const std::vector<int>& internal() const { return internal_; }

 private:
  EwProgram prog_;
  std::vector<int> internal_;
};

Status supports_ew(const Node& n) {
  const std::string& t = n.op_type;
  if (t == "Cast" && n.attr_int("to", 0) != static_cast<int64_t>(DataType::float32))
    return unsupported(n.label() + " Cast to a type other than float32");
  if (t == "Dropout" && n.outputs.size() > 1 && !n.outputs[1].empty())
    return unsupported(n.label() + " Dropout with a mask output");
  if ((t == "Max" || t == "Min" || t == "Sum") && n.inputs.empty()) return unsupported(n.label() + " no inputs");
  return Status::ok();
}

}  // namespace

std::unique_ptr<OpSpec> make_program_spec(EwProgram p, std::vector<int> internal) {
  return std::make_unique<ProgramSpec>(std::move(p), std::move(internal));
}

bool append_unary_program(const Step& reader, int value, EwProgram* p, std::vector<int>* internal) {
  const auto* spec = dynamic_cast<const ProgramSpec*>(reader.spec.get());
  EwProgram* r = reader.spec ? reader.spec->program() : nullptr;
  if (!r || r->ops.size() < 2 || r->ops[0].code != Ew::load || r->ops[0].operand < 0 ||
      r->operands[static_cast<size_t>(r->ops[0].operand)] != value)
    return false;
  for (size_t i = 1; i < r->ops.size(); ++i)
    if (!ew_is_unary(r->ops[i].code)) return false;
  p->ops.insert(p->ops.end(), r->ops.begin() + 1, r->ops.end());
  if (spec) internal->insert(internal->end(), spec->internal().begin(), spec->internal().end());
  return true;
}

Result<std::unique_ptr<OpSpec>> make_ew_spec(FusionContext& f, const Step& step) {
  EwProgram p;
  if (!node_to_ew(f, *step.node, step.inputs, -1, &p)) return std::unique_ptr<OpSpec>();
  return make_program_spec(std::move(p));
}

void register_elementwise_ops(OpTable& t) {
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Abs", "Neg", "Exp", "Log", "Sqrt",
                         "Erf", "Reciprocal", "Floor", "Ceil", "Round", "Clip"})
    t.add(op, &supports_ew, &make_ew_spec);
}

}  // namespace tandem::cpu
