// Reference kernels: matrix products and friends.
//   MatMul, Gemm, MatMulInteger, QLinearMatMul, Det (Einsum: einsum.cpp).
// Float products accumulate in double, integer products in int64 (wrapping, never UB).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "kernels/accumulate.h"
#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

using namespace accumulate;

// Layout of a numpy-style batched matmul after promoting 1-D operands.
struct MatMulPlan {
  Shape a_shape, b_shape;  // promoted operand shapes (rank >= 2)
  Shape batch;             // broadcast batch shape
  Shape out_shape;         // final output shape (promoted dims removed)
  int64_t M = 0, K = 0, N = 0;
  int64_t batch_count = 1;
  std::vector<int64_t> a_batch_off, b_batch_off;  // element offsets of each batch's matrix
};

Status plan_matmul(const KernelContext& ctx, const Shape& a_in, const Shape& b_in, MatMulPlan* p) {
  if (a_in.empty() || b_in.empty()) return ctx.invalid("MatMul operands must have rank >= 1, got scalars");
  Shape a = a_in, b = b_in;
  bool a_vec = a.size() == 1, b_vec = b.size() == 1;
  if (a_vec) a.insert(a.begin(), 1);
  if (b_vec) b.push_back(1);
  p->M = a[a.size() - 2];
  p->K = a[a.size() - 1];
  p->N = b[b.size() - 1];
  if (b[b.size() - 2] != p->K)
    return ctx.invalid("inner dimensions differ: A is " + shape_to_string(a_in) + ", B is " + shape_to_string(b_in));
  Shape a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  auto batch = broadcast_shapes(a_batch, b_batch);
  if (!batch.is_ok()) return ctx.invalid("batch dims do not broadcast: A is " + shape_to_string(a_in) + ", B is " +
                                         shape_to_string(b_in));
  p->batch = *batch;
  Shape full = p->batch;
  full.push_back(p->M);
  full.push_back(p->N);
  int64_t n_out = 0, n_a = 0, n_b = 0;
  if (!checked_numel(full, &n_out) || !checked_numel(a, &n_a) || !checked_numel(b, &n_b))
    return ctx.invalid("tensor sizes are too large");
  if (!checked_numel(p->batch, &p->batch_count)) return ctx.invalid("batch size is too large");
  p->a_shape = a;
  p->b_shape = b;
  p->out_shape = p->batch;
  if (!a_vec) p->out_shape.push_back(p->M);
  if (!b_vec) p->out_shape.push_back(p->N);
  // Per-batch matrix offsets via broadcasting of the batch dims.
  p->a_batch_off.assign(p->batch_count, 0);
  p->b_batch_off.assign(p->batch_count, 0);
  if (p->batch_count > 0) {
    BroadcastIterator it(p->batch, {a_batch, b_batch});
    for (int64_t i = 0; i < p->batch_count; ++i) {
      p->a_batch_off[i] = it.offset(0) * p->M * p->K;
      p->b_batch_off[i] = it.offset(1) * p->K * p->N;
      it.next();
    }
  }
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// MatMul

Status matmul_kernel(KernelContext& ctx) {
  const Tensor& A = ctx.input(0);
  const Tensor& B = ctx.input(1);
  if (!A.defined() || !B.defined()) return ctx.invalid("requires inputs A and B");
  if (A.dtype() != B.dtype()) return ctx.invalid("A and B have different dtypes");
  MatMulPlan p;
  TANDEM_RETURN_IF_ERROR(plan_matmul(ctx, A.shape(), B.shape(), &p));
  Tensor Y(A.dtype(), p.out_shape);
  bool ok = visit_numeric(A.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else {
      const T* a = A.data<T>();
      const T* b = B.data<T>();
      T* y = Y.data<T>();
      for (int64_t bi = 0; bi < p.batch_count; ++bi) {
        const T* ab = a + p.a_batch_off[bi];
        const T* bb = b + p.b_batch_off[bi];
        T* yb = y + bi * p.M * p.N;
        for (int64_t m = 0; m < p.M; ++m)
          for (int64_t n = 0; n < p.N; ++n) {
            Acc<T> s = 0;
            for (int64_t k = 0; k < p.K; ++k) {
              if constexpr (std::is_integral_v<T>) s = wrap_add(s, wrap_mul(to_acc(ab[m * p.K + k]), to_acc(bb[k * p.N + n])));
              else s += to_acc(ab[m * p.K + k]) * to_acc(bb[k * p.N + n]);
            }
            yb[m * p.N + n] = from_acc<T>(s);
          }
      }
    }
  });
  if (!ok || A.dtype() == DataType::boolean)
    return ctx.unsupported("dtype " + std::string(dtype_name(A.dtype())) + " is not supported");
  ctx.set_output(0, Y);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Gemm: Y = alpha * op(A) * op(B) + beta * C

Status gemm_kernel(KernelContext& ctx) {
  const Tensor& A = ctx.input(0);
  const Tensor& B = ctx.input(1);
  if (!A.defined() || !B.defined()) return ctx.invalid("requires inputs A and B");
  if (A.dtype() != B.dtype()) return ctx.invalid("A and B have different dtypes");
  if (A.rank() != 2 || B.rank() != 2)
    return ctx.invalid("A and B must be 2-D, got " + shape_to_string(A.shape()) + " and " + shape_to_string(B.shape()));
  const bool trans_a = ctx.node().attr_int("transA", 0) != 0;
  const bool trans_b = ctx.node().attr_int("transB", 0) != 0;
  const double alpha = ctx.node().attr_float("alpha", 1.0f);
  const double beta = ctx.node().attr_float("beta", 1.0f);
  const int64_t M = trans_a ? A.dim(1) : A.dim(0);
  const int64_t K = trans_a ? A.dim(0) : A.dim(1);
  const int64_t KB = trans_b ? B.dim(1) : B.dim(0);
  const int64_t N = trans_b ? B.dim(0) : B.dim(1);
  if (K != KB)
    return ctx.invalid("inner dimensions differ: A is " + shape_to_string(A.shape()) + ", B is " +
                       shape_to_string(B.shape()) + (trans_a ? " (transA)" : "") + (trans_b ? " (transB)" : ""));
  const Shape out_shape{M, N};
  int64_t n_out = 0;
  if (!checked_numel(out_shape, &n_out)) return ctx.invalid("output is too large");
  const Tensor& C = ctx.input(2);
  const bool has_c = C.defined();
  if (has_c) {
    if (C.dtype() != A.dtype()) return ctx.invalid("C has a different dtype from A");
    auto bs = broadcast_shapes(C.shape(), out_shape);
    if (C.rank() > 2 || !bs.is_ok() || *bs != out_shape)
      return ctx.invalid("C of shape " + shape_to_string(C.shape()) + " does not broadcast to " + shape_to_string(out_shape));
  }
  const std::vector<int64_t> c_strides = has_c ? broadcast_strides(C.shape(), out_shape) : std::vector<int64_t>{0, 0};
  Tensor Y(A.dtype(), out_shape);
  bool ok = visit_numeric(A.dtype(), [&]<class T>() {
    if constexpr (std::is_same_v<T, bool>) {
      return;
    } else {
      const T* a = A.data<T>();
      const T* b = B.data<T>();
      const T* c = has_c ? C.data<T>() : nullptr;
      T* y = Y.data<T>();
      const bool exact_int = std::is_integral_v<T> && alpha == 1.0 && beta == 1.0;
      for (int64_t m = 0; m < M; ++m)
        for (int64_t n = 0; n < N; ++n) {
          Acc<T> s = 0;
          for (int64_t k = 0; k < K; ++k) {
            Acc<T> av = to_acc(trans_a ? a[k * M + m] : a[m * K + k]);
            Acc<T> bv = to_acc(trans_b ? b[n * K + k] : b[k * N + n]);
            if constexpr (std::is_integral_v<T>) s = wrap_add(s, wrap_mul(av, bv));
            else s += av * bv;
          }
          Acc<T> cv = c ? to_acc(c[m * c_strides[0] + n * c_strides[1]]) : Acc<T>(0);
          if constexpr (std::is_integral_v<T>) {
            if (exact_int) {
              y[m * N + n] = static_cast<T>(wrap_add(s, cv));
              continue;
            }
            double r = alpha * static_cast<double>(s) + beta * static_cast<double>(cv);
            y[m * N + n] = std::isfinite(r) ? static_cast<T>(static_cast<int64_t>(std::clamp(r, -9.2e18, 9.2e18))) : T(0);
          } else {
            y[m * N + n] = from_double<T>(alpha * s + (c ? beta * cv : 0.0));
          }
        }
    }
  });
  if (!ok || A.dtype() == DataType::boolean)
    return ctx.unsupported("dtype " + std::string(dtype_name(A.dtype())) + " is not supported");
  ctx.set_output(0, Y);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Quantized matmuls

bool is_8bit(DataType t) { return t == DataType::uint8 || t == DataType::int8; }

int32_t int8_at(const Tensor& t, int64_t i) {
  return t.dtype() == DataType::uint8 ? static_cast<int32_t>(t.data<uint8_t>()[i])
                                      : static_cast<int32_t>(t.data<int8_t>()[i]);
}

// Expands a zero-point or scale tensor to one value per element of an operand of shape
// `target` (rank >= 2). A 1-D tensor with more than one element is per-row for A
// (`per_row`, laid as [M, 1]) and per-column for B (laid as [N]); an N-D tensor broadcasts
// against the operand as numpy does (e.g. [D1, M, 1] for A, [D1, 1, N] for B).
Status expand_param(const KernelContext& ctx, const Tensor& p, const Shape& target, bool per_row, const char* name,
                    std::vector<double>* out) {
  const int64_t n = shape_numel(target);
  out->assign(static_cast<size_t>(n), 0.0);
  if (!p.defined()) return Status::ok();
  std::vector<double> vals = to_double_vector(p);
  if (vals.empty()) return ctx.invalid(std::string(name) + " is empty");
  if (vals.size() == 1) {
    std::fill(out->begin(), out->end(), vals[0]);
    return Status::ok();
  }
  Shape ps = p.shape();
  if (ps.size() == 1 && per_row) ps.push_back(1);
  auto bs = broadcast_shapes(ps, target);
  if (!bs.is_ok() || *bs != target)
    return ctx.invalid(std::string(name) + " of shape " + shape_to_string(p.shape()) + " does not fit operand shape " +
                       shape_to_string(target));
  if (n == 0) return Status::ok();
  BroadcastIterator it(target, {ps});
  for (int64_t i = 0; i < n; ++i) {
    (*out)[i] = vals[it.offset(0)];
    it.next();
  }
  return Status::ok();
}

// Computes sum_k (a - a_zp) * (b - b_zp) for each output element into `acc` (int64).
Status quantized_product(const KernelContext& ctx, const Tensor& A, const Tensor& B, const Tensor& a_zp,
                         const Tensor& b_zp, MatMulPlan* p, std::vector<int64_t>* acc) {
  TANDEM_RETURN_IF_ERROR(plan_matmul(ctx, A.shape(), B.shape(), p));
  std::vector<double> azp, bzp;
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, a_zp, p->a_shape, true, "a_zero_point", &azp));
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, b_zp, p->b_shape, false, "b_zero_point", &bzp));
  const int64_t M = p->M, K = p->K, N = p->N;
  acc->assign(static_cast<size_t>(p->batch_count * M * N), 0);
  for (int64_t bi = 0; bi < p->batch_count; ++bi) {
    const int64_t ao = p->a_batch_off[bi], bo = p->b_batch_off[bi];
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        int64_t s = 0;
        for (int64_t k = 0; k < K; ++k) {
          const int64_t ai = ao + m * K + k, bj = bo + k * N + n;
          int64_t av = int8_at(A, ai) - static_cast<int64_t>(azp[ai]);
          int64_t bv = int8_at(B, bj) - static_cast<int64_t>(bzp[bj]);
          s += av * bv;
        }
        (*acc)[(bi * M + m) * N + n] = s;
      }
  }
  return Status::ok();
}

Status matmul_integer_kernel(KernelContext& ctx) {
  const Tensor& A = ctx.input(0);
  const Tensor& B = ctx.input(1);
  if (!A.defined() || !B.defined()) return ctx.invalid("requires inputs A and B");
  if (!is_8bit(A.dtype()) || !is_8bit(B.dtype())) return ctx.invalid("A and B must be int8 or uint8");
  const Tensor& azp = ctx.input(2);
  const Tensor& bzp = ctx.input(3);
  if (azp.defined() && azp.dtype() != A.dtype()) return ctx.invalid("a_zero_point dtype differs from A");
  if (bzp.defined() && bzp.dtype() != B.dtype()) return ctx.invalid("b_zero_point dtype differs from B");
  MatMulPlan p;
  std::vector<int64_t> acc;
  TANDEM_RETURN_IF_ERROR(quantized_product(ctx, A, B, azp, bzp, &p, &acc));
  Tensor Y(DataType::int32, p.out_shape);
  int32_t* y = Y.data<int32_t>();
  for (size_t i = 0; i < acc.size(); ++i) y[i] = static_cast<int32_t>(acc[i]);
  ctx.set_output(0, Y);
  return Status::ok();
}

// Rounds half to even and saturates into the range of the 8-bit output type.
int64_t round_saturate(double v, int64_t lo, int64_t hi) {
  if (std::isnan(v)) return 0;
  double r = std::nearbyint(v);  // default rounding mode: to nearest, ties to even
  if (r < static_cast<double>(lo)) return lo;
  if (r > static_cast<double>(hi)) return hi;
  return static_cast<int64_t>(r);
}

Status qlinear_matmul_kernel(KernelContext& ctx) {
  for (size_t i : {0, 1, 3, 4, 6})
    if (!ctx.has_input(i)) return ctx.invalid("requires input " + std::to_string(i));
  const Tensor& A = ctx.input(0);
  const Tensor& a_scale = ctx.input(1);
  const Tensor& a_zp = ctx.input(2);
  const Tensor& B = ctx.input(3);
  const Tensor& b_scale = ctx.input(4);
  const Tensor& b_zp = ctx.input(5);
  const Tensor& y_scale = ctx.input(6);
  const Tensor& y_zp = ctx.input(7);
  if (!is_8bit(A.dtype()) || !is_8bit(B.dtype())) return ctx.invalid("a and b must be int8 or uint8");
  if (a_zp.defined() && a_zp.dtype() != A.dtype()) return ctx.invalid("a_zero_point dtype differs from a");
  if (b_zp.defined() && b_zp.dtype() != B.dtype()) return ctx.invalid("b_zero_point dtype differs from b");
  if (y_zp.defined() && !is_8bit(y_zp.dtype())) return ctx.invalid("y_zero_point must be int8 or uint8");
  for (const Tensor* s : {&a_scale, &b_scale, &y_scale})
    if (!is_float_type(s->dtype())) return ctx.invalid("scales must be float tensors");
  MatMulPlan p;
  std::vector<int64_t> acc;
  TANDEM_RETURN_IF_ERROR(quantized_product(ctx, A, B, a_zp, b_zp, &p, &acc));
  std::vector<double> as, bs;
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, a_scale, p.a_shape, true, "a_scale", &as));
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, b_scale, p.b_shape, false, "b_scale", &bs));
  Shape full_out = p.batch;
  full_out.push_back(p.M);
  full_out.push_back(p.N);
  std::vector<double> ys, yz;
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, y_scale, full_out, false, "y_scale", &ys));
  TANDEM_RETURN_IF_ERROR(expand_param(ctx, y_zp, full_out, false, "y_zero_point", &yz));
  const DataType out_t = y_zp.defined() ? y_zp.dtype() : DataType::uint8;
  const int64_t lo = out_t == DataType::uint8 ? 0 : -128, hi = out_t == DataType::uint8 ? 255 : 127;
  Tensor Y(out_t, p.out_shape);
  const int64_t M = p.M, K = p.K, N = p.N;
  for (int64_t bi = 0; bi < p.batch_count; ++bi)
    for (int64_t m = 0; m < M; ++m)
      for (int64_t n = 0; n < N; ++n) {
        const int64_t oi = (bi * M + m) * N + n;
        // Scales of row m of A and column n of B (their first elements along K).
        const double sa = K > 0 ? as[p.a_batch_off[bi] + m * K] : (as.empty() ? 0.0 : as[0]);
        const double sb = K > 0 ? bs[p.b_batch_off[bi] + n] : (bs.empty() ? 0.0 : bs[0]);
        if (ys[oi] == 0.0) return ctx.invalid("y_scale is zero");
        const double real = static_cast<double>(acc[oi]) * sa * sb / ys[oi];
        const int64_t q = round_saturate(real + yz[oi], lo, hi);
        if (out_t == DataType::uint8) Y.data<uint8_t>()[oi] = static_cast<uint8_t>(q);
        else Y.data<int8_t>()[oi] = static_cast<int8_t>(q);
      }
  ctx.set_output(0, Y);
  return Status::ok();
}

// ---------------------------------------------------------------------------------------
// Det: LU decomposition with partial pivoting, in double.

double determinant(std::vector<double>& a, int64_t n) {
  double det = 1.0;
  for (int64_t c = 0; c < n; ++c) {
    int64_t piv = c;
    for (int64_t r = c + 1; r < n; ++r)
      if (std::fabs(a[r * n + c]) > std::fabs(a[piv * n + c])) piv = r;
    if (a[piv * n + c] == 0.0) return 0.0;
    if (piv != c) {
      for (int64_t k = 0; k < n; ++k) std::swap(a[c * n + k], a[piv * n + k]);
      det = -det;
    }
    const double d = a[c * n + c];
    det *= d;
    for (int64_t r = c + 1; r < n; ++r) {
      const double f = a[r * n + c] / d;
      if (f == 0.0) continue;
      for (int64_t k = c; k < n; ++k) a[r * n + k] -= f * a[c * n + k];
    }
  }
  return det;
}

Status det_kernel(KernelContext& ctx) {
  const Tensor& X = ctx.input(0);
  if (!X.defined()) return ctx.invalid("requires input X");
  if (X.rank() < 2) return ctx.invalid("X must have rank >= 2, got " + shape_to_string(X.shape()));
  const int64_t n = X.dim(X.rank() - 1);
  if (X.dim(X.rank() - 2) != n) return ctx.invalid("X must be square in its last two dims, got " + shape_to_string(X.shape()));
  Shape out_shape(X.shape().begin(), X.shape().end() - 2);
  const int64_t batch = shape_numel(out_shape);
  Tensor Y(X.dtype(), out_shape);
  bool ok = visit_float(X.dtype(), [&]<class T>() {
    const T* x = X.data<T>();
    T* y = Y.data<T>();
    if (batch == 0) return;  // n * n may not even fit when there are no matrices
    std::vector<double> m(static_cast<size_t>(n * n));
    for (int64_t b = 0; b < batch; ++b) {
      for (int64_t i = 0; i < n * n; ++i) m[i] = to_double(x[b * n * n + i]);
      y[b] = from_double<T>(determinant(m, n));
    }
  });
  if (!ok) return ctx.unsupported("dtype " + std::string(dtype_name(X.dtype())) + " is not supported");
  ctx.set_output(0, Y);
  return Status::ok();
}

}  // namespace

void register_matmul_kernels(KernelTable& t) {
  t.add("", "MatMul", &matmul_kernel);
  t.add("", "Gemm", &gemm_kernel);
  t.add("", "MatMulInteger", &matmul_integer_kernel);
  t.add("", "QLinearMatMul", &qlinear_matmul_kernel);
  t.add("", "Det", &det_kernel);
}

}  // namespace tandem
