#include "kernels/kernel.h"

namespace tandem {

namespace {
const Value& none_value() {
  static const Value v;
  return v;
}
const Tensor& undefined_tensor() {
  static const Tensor t;
  return t;
}
}  // namespace

const Tensor& KernelContext::input(size_t i) const {
  if (!has_input(i) || !inputs_[i]->is_tensor()) return undefined_tensor();
  return inputs_[i]->tensor;
}

const Value& KernelContext::input_value(size_t i) const {
  if (i >= inputs_.size() || !inputs_[i]) return none_value();
  return *inputs_[i];
}

}  // namespace tandem
