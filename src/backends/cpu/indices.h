// indices.h: index tensors that the cpu backend's gathers and scatters read at run time
// (indexing.cpp, scatter.cpp), and how GatherElements and ScatterElements turn them into
// offsets. Indices are int32 or int64, may count from the end (-1 is the last), and one outside
// [-dim, dim) fails the run with invalid_argument naming the node, before anything is written,
// as the reference kernels do.
//
// Views and plain values only: an IndexView does not own the data, which lives in the run's
// buffers.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor_util.h"
#include "tandem/status.h"

namespace tandem::cpu {

struct IndexView {
  const void* data = nullptr;
  bool is64 = true;  // int64, else int32

  int64_t raw(int64_t j) const {
    return is64 ? static_cast<const int64_t*>(data)[j] : static_cast<const int32_t*>(data)[j];
  }
  // Index j within [0, dim): negative indices count from the end. Only for indices checked by
  // first_outside().
  int64_t at(int64_t j, int64_t dim) const {
    const int64_t i = raw(j);
    return i < 0 ? i + dim : i;
  }
};

// The message for index `raw` outside [-dim, dim) of node `label`.
inline Status index_outside(const std::string& label, int64_t raw, int64_t dim) {
  return invalid_argument(label + " index " + std::to_string(raw) + " is outside [" + std::to_string(-dim) + ", " +
                          std::to_string(dim) + ")");
}

// Checks `count` indices whose j-th addresses a dim of size dim_of(j); the error names `label`.
template <class DimOf>
Status check_indices(const IndexView& v, int64_t count, DimOf dim_of, const std::string& label) {
  for (int64_t j = 0; j < count; ++j) {
    const int64_t i = v.raw(j), dim = dim_of(j);
    if (i < -dim || i >= dim) return index_outside(label, i, dim);
  }
  return Status::ok();
}

// GatherElements and ScatterElements address the data the same way: indices of the data's rank,
// each replacing the `axis` coordinate of its own position.
struct ElementAddressing {
  static constexpr int kMaxRank = 8;
  int rank = 1, axis = 0;
  std::array<int64_t, kMaxRank> index_dims{}, data_strides{};  // strides in elements
  int64_t axis_dim = 1;

  int64_t lanes() const { return index_dims[rank - 1]; }
  // Calls f(j, offset) for every index position j in rows [r0, r1) of the indices' last dim
  // (row-major order), with the element offset into the data it addresses. The indices must
  // have been checked.
  template <class F>
  void for_each(const IndexView& idx, int64_t r0, int64_t r1, F f) const {
    const int last = rank - 1;
    const int64_t n = lanes(), step = data_strides[last], as = data_strides[axis];
    for (int64_t r = r0; r < r1; ++r) {
      int64_t base = 0, rest = r;  // the row's offset, less the axis coordinate
      for (int d = last - 1; d >= 0; --d) {
        const int64_t c = rest % index_dims[d];
        rest /= index_dims[d];
        if (d != axis) base += c * data_strides[d];
      }
      const int64_t j0 = r * n;
      if (axis == last) {
        for (int64_t l = 0; l < n; ++l) f(j0 + l, base + idx.at(j0 + l, axis_dim));
      } else {
        for (int64_t l = 0; l < n; ++l) f(j0 + l, base + l * step + idx.at(j0 + l, axis_dim) * as);
      }
    }
  }
};

// The addressing for data of shape `data` and indices of shape `indices` along `axis`
// (negative counts from the end). False when the ranks differ or exceed kMaxRank, the axis is
// outside them, or the indices are larger than the data off the axis.
inline bool element_addressing(const std::vector<int64_t>& data, const std::vector<int64_t>& indices, int64_t axis,
                               ElementAddressing* a) {
  const int rank = static_cast<int>(data.size());
  if (rank < 1 || rank > ElementAddressing::kMaxRank || indices.size() != data.size()) return false;
  if (axis < 0) axis += rank;
  if (axis < 0 || axis >= rank) return false;
  const std::vector<int64_t> st = strides_of(data);
  for (int d = 0; d < rank; ++d) {
    if (d != axis && indices[d] > data[d]) return false;
    a->index_dims[d] = indices[d];
    a->data_strides[d] = st[d];
  }
  a->rank = rank;
  a->axis = static_cast<int>(axis);
  a->axis_dim = data[axis];
  return true;
}

}  // namespace tandem::cpu
