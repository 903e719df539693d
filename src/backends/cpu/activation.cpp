// activation.cpp: the cpu backend's activation ops, all evaluated by the elementwise program
// kernel (elementwise.cpp) and fusable into Conv/MatMul as oneDNN post-ops:
//   Relu LeakyRelu Elu Selu Celu Sigmoid HardSigmoid HardSwish Softplus Softsign Tanh PRelu Gelu
//   Mish ThresholdedRelu Shrink
#include <cmath>

#include "backends/cpu/op_family.h"

namespace tandem::cpu {

bool activation_op(const Node& n, EwOp* op) {
  const std::string& t = n.op_type;
  if (t == "Relu") *op = EwOp{Ew::relu, -1, 0, 0};
  else if (t == "LeakyRelu") *op = EwOp{Ew::leaky_relu, -1, n.attr_float("alpha", 0.01f), 0};
  else if (t == "Elu") *op = EwOp{Ew::elu, -1, n.attr_float("alpha", 1.0f), 0};
  else if (t == "Selu")
    *op = EwOp{Ew::selu, -1, n.attr_float("alpha", 1.67326319217681884765625f), n.attr_float("gamma", 1.05070102214813232421875f)};
  else if (t == "Celu") *op = EwOp{Ew::celu, -1, n.attr_float("alpha", 1.0f), 0};
  else if (t == "Sigmoid") *op = EwOp{Ew::sigmoid, -1, 0, 0};
  else if (t == "HardSigmoid") *op = EwOp{Ew::hardsigmoid, -1, n.attr_float("alpha", 0.2f), n.attr_float("beta", 0.5f)};
  else if (t == "HardSwish") *op = EwOp{Ew::hardswish, -1, 0, 0};
  else if (t == "Swish") *op = EwOp{Ew::swish, -1, 0, 0};  // made by fusion from x*Sigmoid(x)
  else if (t == "Softplus") *op = EwOp{Ew::softplus, -1, 0, 0};
  else if (t == "Softsign") *op = EwOp{Ew::softsign, -1, 0, 0};
  else if (t == "Tanh") *op = EwOp{Ew::tanh, -1, 0, 0};
  else if (t == "Mish") *op = EwOp{Ew::mish, -1, 0, 0};
  else if (t == "ThresholdedRelu") *op = EwOp{Ew::thresholded_relu, -1, n.attr_float("alpha", 1.0f), 0};
  else if (t == "Shrink") *op = EwOp{Ew::shrink, -1, n.attr_float("lambd", 0.5f), n.attr_float("bias", 0.0f)};
  else if (t == "Gelu") {
    std::string approx = n.attr_string("approximate", "none");
    if (approx == "none") *op = EwOp{Ew::gelu, -1, 0, 0};
    else if (approx == "tanh") *op = EwOp{Ew::gelu_tanh, -1, 0, 0};
    else return false;
  } else return false;
  return true;
}

namespace {

Status supports_activation(const Node& n) {
  if (n.op_type == "Gelu") {
    std::string approx = n.attr_string("approximate", "none");
    if (approx != "none" && approx != "tanh") return unsupported(n.label() + " Gelu approximate='" + approx + "'");
  }
  return Status::ok();
}

// PRelu: slope broadcasts unidirectionally to X (opset >= 7); older opsets used a 1-D slope
// per channel, which the generic path handles.
Status supports_prelu(const Node& n) {
  if (n.opset < 7) return unsupported(n.label() + " PRelu before opset 7");
  return Status::ok();
}

}  // namespace

void register_activation_ops(OpTable& t) {
  for (const char* op : {"Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "HardSigmoid", "HardSwish", "Softplus",
                         "Softsign", "Tanh", "Gelu", "Mish", "ThresholdedRelu", "Shrink"})
    t.add(op, &supports_activation, &make_ew_spec);
  t.add("PRelu", &supports_prelu, &make_ew_spec);
}

}  // namespace tandem::cpu
