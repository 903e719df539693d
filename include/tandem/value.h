// tandem/value.h: what flows along a graph edge.
//
// ONNX edges carry a tensor, a sequence of tensors, or an optional that may be empty. A Value
// is one of those. Like Tensor it is cheap to copy: element buffers are shared.
#pragma once

#include <vector>

#include "tandem/tensor.h"

namespace tandem {

struct Value {
  enum class Kind { none, tensor, sequence };
  Kind kind = Kind::none;        // `none` is an empty optional (or an absent input)
  Tensor tensor;                 // valid when kind == tensor
  std::vector<Tensor> sequence;  // valid when kind == sequence
  DataType sequence_dtype = DataType::undefined;  // element dtype of a (possibly empty) sequence

  static Value of(Tensor t) {
    Value v;
    v.kind = Kind::tensor;
    v.tensor = std::move(t);
    return v;
  }
  static Value of_sequence(std::vector<Tensor> items, DataType dtype = DataType::undefined) {
    Value v;
    v.kind = Kind::sequence;
    if (dtype == DataType::undefined && !items.empty()) dtype = items.front().dtype();
    v.sequence = std::move(items);
    v.sequence_dtype = dtype;
    return v;
  }
  bool is_tensor() const { return kind == Kind::tensor; }
  bool is_sequence() const { return kind == Kind::sequence; }
  bool is_none() const { return kind == Kind::none; }
};

}  // namespace tandem
