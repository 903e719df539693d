// Reference kernel: Einsum, any number of operands, diagonals, ellipsis broadcasting, every
// numeric type. The subscripts come from graph/einsum_equation.h; one odometer runs over the
// output labels, then the summed ones, and accumulates products as the product kernels do
// (accumulate.h: double for floats, wrapping int64 for integers).
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor_util.h"
#include "graph/einsum_equation.h"
#include "kernels/accumulate.h"
#include "kernels/registry.h"

namespace tandem {
namespace {

using namespace accumulate;

Status einsum_kernel(KernelContext& ctx) {
  const size_t n_in = ctx.num_inputs();
  if (n_in == 0) return ctx.invalid("requires at least one input");
  std::vector<size_t> ranks;
  for (size_t i = 0; i < n_in; ++i) {
    if (!ctx.input(i).defined()) return ctx.invalid("input " + std::to_string(i) + " is missing");
    ranks.push_back(ctx.input(i).rank());
  }
  const DataType dtype = ctx.input(0).dtype();
  for (size_t i = 1; i < n_in; ++i)
    if (ctx.input(i).dtype() != dtype) return ctx.invalid("inputs have different dtypes");
  Result<EinsumLabels> parsed = einsum_labels(ctx.node().attr_string("equation", ""), ranks);
  if (!parsed) return ctx.invalid(parsed.status().message());
  const std::vector<std::vector<int>>& dim_labels = parsed->inputs;
  const std::vector<int>& out_labels = parsed->output;
  const int n_labels = parsed->label_count;

  // A label's size: equal wherever it appears, except that size-1 dims broadcast (as numpy's).
  std::vector<int64_t> label_size(n_labels, -1);
  std::vector<int> label_count(n_labels, 0);
  for (size_t i = 0; i < n_in; ++i) {
    const Shape& shape = ctx.input(i).shape();
    for (size_t d = 0; d < shape.size(); ++d) {
      const int l = dim_labels[i][d];
      const int64_t sz = shape[d];
      ++label_count[l];
      if (label_size[l] < 0 || label_size[l] == 1)
        label_size[l] = sz;
      else if (sz != label_size[l] && sz != 1)
        return ctx.invalid("dimension size mismatch for a subscript in operand " + std::to_string(i));
    }
  }
  // Repeated labels inside one operand (diagonals) must have exactly equal sizes.
  for (size_t i = 0; i < n_in; ++i) {
    const Shape& shape = ctx.input(i).shape();
    for (size_t d = 0; d < shape.size(); ++d)
      for (size_t e = d + 1; e < shape.size(); ++e)
        if (dim_labels[i][d] == dim_labels[i][e] && shape[d] != shape[e])
          return ctx.invalid("repeated subscript in operand " + std::to_string(i) + " has different sizes");
  }
  // Loop order: output labels, then the summed ones.
  std::vector<int> loop_labels = out_labels;
  for (int l = 0; l < n_labels; ++l)
    if (label_count[l] > 0 && std::find(out_labels.begin(), out_labels.end(), l) == out_labels.end())
      loop_labels.push_back(l);
  Shape out_shape;
  for (int l : out_labels) out_shape.push_back(label_size[l]);
  Shape loop_shape;
  for (int l : loop_labels) loop_shape.push_back(label_size[l]);
  int64_t n_out = 0, n_loop = 0;
  if (!checked_numel(out_shape, &n_out) || !checked_numel(loop_shape, &n_loop))
    return ctx.invalid("einsum iteration space is too large");
  const int64_t n_sum = n_out > 0 ? n_loop / n_out : 0;

  // Stride of each loop label in each input (sum over repeated dims; 0 for broadcast dims).
  std::vector<std::vector<int64_t>> lstride(n_in, std::vector<int64_t>(loop_labels.size(), 0));
  for (size_t i = 0; i < n_in; ++i) {
    const Shape& shape = ctx.input(i).shape();
    const std::vector<int64_t> st = strides_of(shape);
    for (size_t d = 0; d < shape.size(); ++d) {
      if (shape[d] == 1) continue;
      const size_t pos = std::find(loop_labels.begin(), loop_labels.end(), dim_labels[i][d]) - loop_labels.begin();
      lstride[i][pos] += st[d];
    }
  }

  Tensor Y(dtype, out_shape);
  bool ok = visit_numeric(dtype, [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else {
      std::vector<const T*> ptr(n_in);
      for (size_t i = 0; i < n_in; ++i) ptr[i] = ctx.input(i).data<T>();
      T* y = Y.data<T>();
      std::vector<int64_t> coord(loop_labels.size(), 0);
      std::vector<int64_t> off(n_in, 0);
      for (int64_t o = 0; o < n_out; ++o) {
        Acc<T> s = 0;
        for (int64_t k = 0; k < n_sum; ++k) {
          Acc<T> prod = 1;
          for (size_t i = 0; i < n_in; ++i) {
            if constexpr (std::is_integral_v<T>)
              prod = wrap_mul(prod, to_acc(ptr[i][off[i]]));
            else
              prod *= to_acc(ptr[i][off[i]]);
          }
          if constexpr (std::is_integral_v<T>)
            s = wrap_add(s, prod);
          else
            s += prod;
          // Advance the odometer over all loop labels (summed labels vary fastest).
          for (int64_t d = static_cast<int64_t>(loop_labels.size()) - 1; d >= 0; --d) {
            ++coord[d];
            for (size_t i = 0; i < n_in; ++i) off[i] += lstride[i][d];
            if (coord[d] < loop_shape[d]) break;
            for (size_t i = 0; i < n_in; ++i) off[i] -= lstride[i][d] * coord[d];
            coord[d] = 0;
          }
        }
        y[o] = from_acc<T>(s);
      }
    }
  });
  if (!ok || dtype == DataType::boolean)
    return ctx.unsupported("dtype " + std::string(dtype_name(dtype)) + " is not supported");
  ctx.set_output(0, Y);
  return Status::ok();
}

}  // namespace

void register_einsum_kernels(KernelTable& t) { t.add("", "Einsum", &einsum_kernel); }

}  // namespace tandem
