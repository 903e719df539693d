// qpool.cpp: the quantized pools of the com.microsoft domain on the cpu backend, on uint8/int8
// data in either layout (channels_last 0: N x C x D..., 1: N x D... x C; a 4-D channels-first
// input that a quantized convolution left in nhwc is pooled as channels last):
//   QLinearGlobalAveragePool  the mean of each (n, c) plane over every spatial dim
//   QLinearAveragePool        AveragePool (kernel_shape, strides, pads, auto_pad, ceil_mode,
//                             count_include_pad; no dilations) of the dequantized input
// The arithmetic is the reference kernels' (src/kernels/quantize_contrib.cpp), so outputs are
// equal: window sums of (x - x_zero_point) are exact integers (the raw bytes summed in int32,
// the zero point times the tap count subtracted), the mean is x_scale * sum / divisor in
// double, divided by y_scale, rounded half to even and saturated. Padding holds the real 0;
// count_include_pad counts it in the divisor up to the padded extent, as the reference does.
//
// The window geometry is graph/window_geometry.h's, read when the instance is built; per
// spatial dim and output index the kernel keeps the window's clipped input range and its
// padded tap count. Channels first, a window is a box of contiguous runs along the last
// spatial dim of one plane; channels last, an output row's box rows (W x C values) are summed
// column-wise, then each window's rows of channels (wider rows: each tap's row of up to
// kChannelBlock channels per output position); vectorized loops, ISA variants of runtime_env.h.
// With known parameters the output of every window sum is tabled at build (no floating point
// in a run). Plans are parallel over planes (channels first) or over batch x output row
// (channels last). Scales and zero points may be runtime scalars.
#include <algorithm>
#include <array>
#include <cmath>
#include <map>
#include <utility>

#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "graph/window_geometry.h"

namespace tandem::cpu {

namespace {

constexpr int64_t kChannelBlock = 256;
constexpr int64_t kMaxParts = 8;  // spatial pieces of one channel block (global pool)
constexpr int64_t kMaxRow = 4096;  // the longest last spatial dim (input and output) of QLinearAveragePool
constexpr size_t kMaxSpatial = 6;
// Taps per window (or spatial size) whose byte sums still fit int32 exactly.
constexpr int64_t kMaxTaps = (int64_t{1} << 31) / 256;

// Sum of n bytes as 8-bit values of type Q (n < kMaxTaps).
template <class Q>
TANDEM_ISA_BODY int32_t sum_bytes_body(const Q* x, int64_t n) {
  int32_t s = 0;
  for (int64_t i = 0; i < n; ++i) s += x[i];
  return s;
}
TANDEM_ISA_BODY void sum_u8_body(const uint8_t* x, int64_t n, int32_t* out) { *out = sum_bytes_body(x, n); }
TANDEM_ISA_BODY void sum_s8_body(const int8_t* x, int64_t n, int32_t* out) { *out = sum_bytes_body(x, n); }
TANDEM_ISA_DISPATCH(sum_u8, (const uint8_t* x, int64_t n, int32_t* out), (x, n, out))
TANDEM_ISA_DISPATCH(sum_s8, (const int8_t* x, int64_t n, int32_t* out), (x, n, out))

int32_t sum_bytes(const void* x, int64_t n, bool s8) {
  int32_t s = 0;
  if (s8) sum_s8(static_cast<const int8_t*>(x), n, &s);
  else sum_u8(static_cast<const uint8_t*>(x), n, &s);
  return s;
}

template <class Q>  // acc[j] += x[j] for j < n (one row of channels)
TANDEM_ISA_BODY void accumulate_body(const Q* x, int64_t n, int32_t* acc) {
  for (int64_t j = 0; j < n; ++j) acc[j] += x[j];
}
// acc[j] += x[r * stride + j] for r < rows, j < n (channels-last rows; accumulate: one row).
// Contiguous rows whose length is not a multiple of 16 are summed k at a time into a row of
// k * n lanes (a multiple of 16, so no scalar remainder per row), folded at the end.
template <class Q>
TANDEM_ISA_BODY void add_rows(const Q* x, int64_t rows, int64_t n, int64_t stride, int32_t* acc) {
  int64_t r = 0, k = 16;
  for (int64_t g = n; g % 2 == 0 && k > 1; g /= 2) k /= 2;  // 16 / gcd(n, 16)
  if (stride == n && n % 16 != 0 && n <= 256 && rows >= k) {
    const int64_t wide_n = k * n;
    int32_t wide[16 * 256];
    for (int64_t j = 0; j < wide_n; ++j) wide[j] = 0;
    for (; r + k <= rows; r += k) accumulate_body(x + r * n, wide_n, wide);
    for (int64_t t = 0; t < k; ++t)
      for (int64_t j = 0; j < n; ++j) acc[j] += wide[t * n + j];
  }
  for (; r < rows; ++r) accumulate_body(x + r * stride, n, acc);
}
TANDEM_ISA_BODY void accumulate_rows_body(const uint8_t* x, int64_t rows, int64_t n, int64_t stride, int32_t* acc,
                                          bool s8) {
  if (s8) add_rows(reinterpret_cast<const int8_t*>(x), rows, n, stride, acc);
  else add_rows(x, rows, n, stride, acc);
}
TANDEM_ISA_DISPATCH(accumulate_rows,
                    (const uint8_t* x, int64_t rows, int64_t n, int64_t stride, int32_t* acc, bool s8),
                    (x, rows, n, stride, acc, s8))
void accumulate(const uint8_t* x, int64_t n, int32_t* acc, bool s8) { accumulate_rows(x, 1, n, n, acc, s8); }

// One run's parameters, widened as the reference kernel reads them.
struct PoolCoef {
  double xs = 1, ys = 1, yz = 0, lo = 0, hi = 255;
  int32_t xz = 0;
  bool s8 = false;
  // The output byte of a window whose raw bytes sum to `raw` over `taps` taps, with `divisor`.
  uint8_t out(int64_t raw, int64_t taps, int64_t divisor) const {
    const int64_t sum = raw - static_cast<int64_t>(xz) * taps;
    const double mean = divisor > 0 ? xs * static_cast<double>(sum) / static_cast<double>(divisor) : 0.0;
    return s8 ? static_cast<uint8_t>(requantize<int8_t>(mean / ys, yz, lo, hi)) : requantize<uint8_t>(mean / ys, yz, lo, hi);
  }
};

// out[i] = the output of a window whose raw bytes sum to sums[i] over taps[i] taps, with
// divisor divs[i] (PoolCoef::out, vectorized: the sum minus the zero points is exact in double).
template <class Q>
TANDEM_ISA_BODY void pool_out_body(const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n,
                                   const PoolCoef& c, Q* out) {
  const double xs = c.xs, ys = c.ys, yz = c.yz, lo = c.lo, hi = c.hi, xz = c.xz;
  for (int64_t i = 0; i < n; ++i) {
    const double sum = static_cast<double>(sums[i]) - xz * static_cast<double>(taps[i]);
    const double mean = divs[i] > 0 ? xs * sum / static_cast<double>(divs[i]) : 0.0;
    out[i] = requantize<Q>(mean / ys, yz, lo, hi);
  }
}
TANDEM_ISA_BODY void pool_out_u8_body(const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n,
                                      const PoolCoef& c, uint8_t* out) {
  pool_out_body(sums, taps, divs, n, c, out);
}
TANDEM_ISA_BODY void pool_out_s8_body(const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n,
                                      const PoolCoef& c, int8_t* out) {
  pool_out_body(sums, taps, divs, n, c, out);
}
TANDEM_ISA_DISPATCH(pool_out_u8,
                    (const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n, const PoolCoef& c, uint8_t* out),
                    (sums, taps, divs, n, c, out))
TANDEM_ISA_DISPATCH(pool_out_s8,
                    (const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n, const PoolCoef& c, int8_t* out),
                    (sums, taps, divs, n, c, out))
void pool_out(const int32_t* sums, const int32_t* taps, const int32_t* divs, int64_t n, const PoolCoef& c, uint8_t* out) {
  if (c.s8) pool_out_s8(sums, taps, divs, n, c, reinterpret_cast<int8_t*>(out));
  else pool_out_u8(sums, taps, divs, n, c, out);
}

// sums[i] = col[i] + ... + col[i + kw - 1] for i < n.
TANDEM_ISA_BODY void window_sums_body(const int32_t* col, int64_t n, int64_t kw, int32_t* sums) {
  for (int64_t i = 0; i < n; ++i) sums[i] = col[i];
  for (int64_t k = 1; k < kw; ++k)
    for (int64_t i = 0; i < n; ++i) sums[i] += col[i + k];
}
TANDEM_ISA_DISPATCH(window_sums, (const int32_t* col, int64_t n, int64_t kw, int32_t* sums), (col, n, kw, sums))

// out[j] = rows[j] + rows[stride + j] + ... over `count` rows of `n` values (count 0: zeros).
TANDEM_ISA_BODY void add_rows_body(const int32_t* rows, int64_t n, int64_t count, int32_t* out) {
  for (int64_t j = 0; j < n; ++j) out[j] = 0;
  for (int64_t k = 0; k < count; ++k)
    for (int64_t j = 0; j < n; ++j) out[j] += rows[k * n + j];
}
TANDEM_ISA_DISPATCH(add_rows, (const int32_t* rows, int64_t n, int64_t count, int32_t* out), (rows, n, count, out))

// The parameters of either pool: x_scale, x_zero_point, y_scale, y_zero_point.
struct PoolParams {
  Scale xs, ys;
  ZeroPoint xz, yz;
  bool s8 = false;
  Result<PoolCoef> coef(const RunCtx& ctx, const std::string& label) const {
    PoolCoef c;
    c.xs = xs.read(ctx);
    c.ys = ys.read(ctx);
    if (!std::isfinite(c.xs)) return invalid_argument(label + " x_scale is not finite");
    if (!std::isfinite(c.ys) || c.ys == 0.0) return invalid_argument(label + " y_scale is zero or not finite");
    c.xz = xz.read(ctx);
    c.yz = yz.read(ctx);
    c.s8 = s8;
    c.lo = s8 ? -128 : 0;
    c.hi = s8 ? 127 : 255;
    return c;
  }
};

Result<PoolParams> read_pool_params(Builder& b, const Step& step, std::vector<int>* reads) {
  const std::string label = step.node->label();
  auto in = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
  PoolParams p;
  const DataType t = b.val(in(0)).dtype;
  p.s8 = t == DataType::int8;
  TANDEM_ASSIGN_OR_RETURN(p.xs, read_scale(b, in(1), label + " x_scale", reads));
  TANDEM_ASSIGN_OR_RETURN(p.xz, read_zero_point_of(b, in(2), t, label + " x_zero_point", reads));
  TANDEM_ASSIGN_OR_RETURN(p.ys, read_scale(b, in(3), label + " y_scale", reads));
  TANDEM_ASSIGN_OR_RETURN(p.yz, read_zero_point_of(b, in(4), t, label + " y_zero_point", reads));
  return p;
}

// ---- QLinearGlobalAveragePool -------------------------------------------------------------------

class QGlobalPoolKernel final : public Kernel {
 public:
  int x = -1, y = -1;
  int64_t batch = 0, channels = 0, spatial = 0;
  bool channels_last = false;
  PoolParams params;

  Status run(RunCtx& ctx, KernelState*) const override {
    TANDEM_ASSIGN_OR_RETURN(const PoolCoef c, params.coef(ctx, label));
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<uint8_t*>(ctx.ptr[y]);
    const double total = static_cast<double>(batch * channels * spatial);
    if (!channels_last) {
      const int64_t planes = batch * channels;
      parallel_range(total < 1e5 ? 1 : ctx.threads, planes, std::max<int64_t>(1, 4096 / std::max<int64_t>(spatial, 1)),
                     [&](int64_t lo, int64_t hi) {
                       for (int64_t p = lo; p < hi; ++p)
                         py[p] = c.out(sum_bytes(px + p * spatial, spatial, c.s8), spatial, spatial);
                     });
      return Status::ok();
    }
    const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
    const int threads = total < 1e5 ? 1 : ctx.threads;
    // One task per (image, channel block), across the threads; with fewer tasks than threads,
    // each task's pixels are split into `parts` pieces whose exact int32 sums are added.
    const int64_t tasks = batch * blocks, parts = tasks < threads ? std::min<int64_t>(threads, kMaxParts) : 1;
    std::array<int32_t, kMaxParts * kChannelBlock> partial;
    auto sum_piece = [&](int64_t t, int64_t part, int32_t* acc) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kChannelBlock, cb = std::min(kChannelBlock, channels - c0);
      const int64_t s0 = spatial * part / parts, s1 = spatial * (part + 1) / parts;
      std::fill(acc, acc + cb, 0);
      accumulate_rows(px + (n * spatial + s0) * channels + c0, s1 - s0, cb, channels, acc, c.s8);
    };
    auto write = [&](int64_t t, const int32_t* acc) {
      const int64_t n = t / blocks, c0 = (t % blocks) * kChannelBlock, cb = std::min(kChannelBlock, channels - c0);
      for (int64_t j = 0; j < cb; ++j) {
        int32_t sum = acc[j];
        for (int64_t q = 1; q < parts; ++q) sum += acc[q * kChannelBlock + j];
        py[n * channels + c0 + j] = c.out(sum, spatial, spatial);
      }
    };
    if (parts == 1) {
      parallel_range(threads, tasks, 1, [&](int64_t lo, int64_t hi) {
        std::array<int32_t, kChannelBlock> acc;
        for (int64_t t = lo; t < hi; ++t) { sum_piece(t, 0, acc.data()); write(t, acc.data()); }
      });
      return Status::ok();
    }
    for (int64_t t = 0; t < tasks; ++t) {
      parallel_range(threads, parts, 1, [&](int64_t lo, int64_t hi) {
        for (int64_t q = lo; q < hi; ++q) sum_piece(t, q, partial.data() + q * kChannelBlock);
      });
      write(t, partial.data());
    }
    return Status::ok();
  }
};

class QGlobalPoolSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const std::string label = step.node->label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    if (xs.size() < 3 || !is_8bit(b.val(x).dtype) || b.val(out).dtype != b.val(x).dtype)
      return unsupported(label + " needs 8-bit data of rank 3 or more");
    auto k = std::make_unique<QGlobalPoolKernel>();
    const bool last = step.node->attr_int("channels_last", 0) == 1;
    // A channels-last (nhwc) input, a quantized convolution's, is read as it is; the output's
    // bytes are the same in both layouts.
    const bool nhwc = !last && b.val(x).layout == Layout::nhwc;
    k->channels_last = last || nhwc;
    k->batch = xs[0];
    k->channels = last ? xs.back() : xs[1];
    k->spatial = shape_numel(xs) / std::max<int64_t>(1, k->batch * k->channels);
    if (k->spatial == 0 || k->spatial >= kMaxTaps) return unsupported(label + " spatial size");
    TANDEM_ASSIGN_OR_RETURN(k->params, read_pool_params(b, step, &k->reads));
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, nhwc ? Layout::nhwc : Layout::plain));
    k->reads.push_back(k->x);
    b.define(out, Layout::plain);
    k->y = out;
    k->writes = {out};
    k->label = label;
    b.add_work(static_cast<double>(shape_numel(xs)));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

// ---- QLinearAveragePool -------------------------------------------------------------------------

// Per spatial dim and output index: the clipped input range [lo, hi) of the window and its tap
// count inside the padded extent.
struct DimWindows {
  std::vector<int64_t> lo, hi, padded;
};

// The input range of a window box per spatial dim.
struct Range {
  std::array<int64_t, kMaxSpatial> lo{}, hi{};
};

class QAveragePoolKernel final : public Kernel {
 public:
  int x = -1, y = -1;
  int64_t batch = 0, channels = 0;
  bool channels_last = false, include_pad = false;
  std::vector<int64_t> in, out;  // spatial dims
  std::vector<DimWindows> win;   // per spatial dim
  int64_t in_spatial = 1, out_spatial = 1;
  PoolParams params;
  // With known parameters: the output byte of output position p whose window's raw bytes sum
  // to s is table[base[p] + s] (one table section per distinct tap count and divisor).
  std::vector<uint8_t> table;
  std::vector<int32_t> base;
  // Along the last spatial dim, with stride 1: the output range [dense_lo, dense_hi) whose
  // windows lie wholly inside the input, the kernel size and the begin padding.
  int64_t dense_lo = 0, dense_hi = 0, kw_last = 1, pad_last = 0;

  // The tap count and divisor of output position p.
  void counts(int64_t p, int64_t* taps, int64_t* divisor) const {
    int64_t t = 1, d = 1;
    for (size_t i = in.size(); i-- > 0;) {
      const int64_t o = p % out[i];
      p /= out[i];
      t *= win[i].hi[o] - win[i].lo[o];
      d *= win[i].padded[o];
    }
    *taps = t;
    *divisor = include_pad ? d : t;
  }
  // Builds `table` and `base` (known parameters; false when the tables would be too large).
  bool build_tables(const PoolCoef& c) {
    std::map<std::pair<int64_t, int64_t>, int32_t> sections;  // (taps, divisor) -> base
    base.resize(static_cast<size_t>(out_spatial));
    for (int64_t p = 0; p < out_spatial; ++p) {
      int64_t taps = 0, divisor = 0;
      counts(p, &taps, &divisor);
      auto [it, added] = sections.emplace(std::make_pair(taps, divisor), 0);
      if (added) {
        const int64_t lo = c.s8 ? -128 * taps : 0, hi = c.s8 ? 127 * taps : 255 * taps;
        if (static_cast<int64_t>(table.size()) + hi - lo + 1 > (int64_t{1} << 22)) return false;
        it->second = static_cast<int32_t>(static_cast<int64_t>(table.size()) - lo);
        for (int64_t raw = lo; raw <= hi; ++raw) table.push_back(c.out(raw, taps, divisor));
      }
      base[static_cast<size_t>(p)] = it->second;
    }
    return true;
  }

  // The window box over the spatial dims before the last of the output position whose
  // coordinates there are `q` (row-major): per dim its range, the tap count (*taps) and the
  // padded tap count (*padded) of the box.
  void box(int64_t q, Range& r, int64_t* taps, int64_t* padded) const {
    int64_t t = 1, d = 1;
    for (size_t i = in.size() - 1; i-- > 0;) {
      const int64_t o = q % out[i];
      q /= out[i];
      r.lo[i] = win[i].lo[o];
      r.hi[i] = win[i].hi[o];
      t *= r.hi[i] - r.lo[i];
      d *= win[i].padded[o];
    }
    *taps = t;
    *padded = d;
  }
  // Calls f(offset of the row) for each row (last spatial dim) of the box; none when empty.
  template <class F>
  void for_rows(const Range& r, F&& f) const {
    const size_t lead = in.size() - 1;
    std::array<int64_t, kMaxSpatial> pos{};
    for (size_t i = 0; i < lead; ++i) {
      if (r.lo[i] >= r.hi[i]) return;
      pos[i] = r.lo[i];
    }
    while (true) {
      int64_t idx = 0;
      for (size_t i = 0; i < lead; ++i) idx = idx * in[i] + pos[i];
      f(idx * in[lead]);
      size_t i = lead;
      while (i-- > 0) {
        if (++pos[i] < r.hi[i]) break;
        pos[i] = r.lo[i];
      }
      if (i == static_cast<size_t>(-1)) return;
    }
  }

  Status run(RunCtx& ctx, KernelState*) const override {
    TANDEM_ASSIGN_OR_RETURN(const PoolCoef c, params.coef(ctx, label));
    const auto* px = static_cast<const uint8_t*>(ctx.ptr[x]);
    auto* py = static_cast<uint8_t*>(ctx.ptr[y]);
    const bool small = static_cast<double>(batch * channels * out_spatial) < 2e4;
    const size_t last = in.size() - 1;
    const int64_t W = in[last], OW = out[last], rows_out = out_spatial / std::max<int64_t>(OW, 1);
    const DimWindows& lw = win[last];
    if (!channels_last) {
      // Per output row: the box's rows summed column by column (vectorized), then each window's
      // columns, then the requantization of the row (vectorized).
      parallel_range(small ? 1 : ctx.threads, batch * channels, 1, [&](int64_t lo, int64_t hi) {
        std::array<int32_t, kMaxRow> col, sums, taps, divs;
        Range r;
        // Locals: the byte stores below may alias any member the compiler would reload.
        const uint8_t* const tbl = table.empty() ? nullptr : table.data();
        const int64_t ow = OW;
        for (int64_t plane = lo; plane < hi; ++plane) {
          const uint8_t* src = px + plane * in_spatial;
          for (int64_t q = 0; q < rows_out; ++q) {
            int64_t box_taps = 0, box_padded = 0;
            box(q, r, &box_taps, &box_padded);
            std::fill(col.begin(), col.begin() + W, 0);
            for_rows(r, [&](int64_t at) { accumulate(src + at, W, col.data(), c.s8); });
            uint8_t* dst = py + plane * out_spatial + q * OW;
            // Interior windows of stride 1: kw shifted rows of column sums (vectorized).
            if (dense_hi > dense_lo) window_sums(col.data() + (dense_lo - pad_last), dense_hi - dense_lo, kw_last, sums.data() + dense_lo);
            for (int64_t o = 0; o < OW; ++o) {
              if (o == dense_lo && dense_hi > dense_lo) o = dense_hi;
              if (o >= OW) break;
              int32_t sum = 0;
              for (int64_t w = lw.lo[o]; w < lw.hi[o]; ++w) sum += col[w];
              sums[o] = sum;
            }
            if (table.empty())
              for (int64_t o = 0; o < OW; ++o) {
                taps[o] = static_cast<int32_t>(box_taps * (lw.hi[o] - lw.lo[o]));
                divs[o] = include_pad ? static_cast<int32_t>(box_padded * lw.padded[o]) : taps[o];
              }
            if (tbl) {
              const int32_t* row_base = base.data() + q * OW;
              for (int64_t o = 0; o < ow; ++o) dst[o] = tbl[row_base[o] + sums[o]];
            } else {
              pool_out(sums.data(), taps.data(), divs.data(), OW, c, dst);
            }
          }
        }
      });
      return Status::ok();
    }
    // Channels last, an input row of at most kMaxRow values (W x C): per output row, the box's
    // rows added column-wise in one long vectorized loop each, then per output position its
    // window's kw rows of channels.
    const int64_t row_len = W * channels;
    if (row_len <= kMaxRow) {
      parallel_range(small ? 1 : ctx.threads, batch * rows_out, 1, [&](int64_t lo, int64_t hi) {
        std::array<int32_t, kMaxRow> col, acc, taps, divs;
        Range r;
        const uint8_t* const tbl = table.empty() ? nullptr : table.data();
        for (int64_t i = lo; i < hi; ++i) {
          const int64_t n = i / rows_out, q = i % rows_out;
          int64_t box_taps = 0, box_padded = 0;
          box(q, r, &box_taps, &box_padded);
          std::fill(col.begin(), col.begin() + row_len, 0);
          const uint8_t* src = px + n * in_spatial * channels;
          for_rows(r, [&](int64_t at) { accumulate(src + at * channels, row_len, col.data(), c.s8); });
          for (int64_t o = 0; o < OW; ++o) {
            add_rows(col.data() + lw.lo[o] * channels, channels, lw.hi[o] - lw.lo[o], acc.data());
            const int64_t p = q * OW + o;
            uint8_t* dst = py + (n * out_spatial + p) * channels;
            if (tbl) {
              const uint8_t* t = tbl + base[static_cast<size_t>(p)];
              for (int64_t j = 0; j < channels; ++j) dst[j] = t[acc[j]];
              continue;
            }
            const int32_t t = static_cast<int32_t>(box_taps * (lw.hi[o] - lw.lo[o]));
            std::fill(taps.begin(), taps.begin() + channels, t);
            std::fill(divs.begin(), divs.begin() + channels,
                      include_pad ? static_cast<int32_t>(box_padded * lw.padded[o]) : t);
            pool_out(acc.data(), taps.data(), divs.data(), channels, c, dst);
          }
        }
      });
      return Status::ok();
    }
    // Wider rows: per output position and block of channels, each tap's row of channels added
    // into int32 accumulators (vectorized), then their requantization.
    const int64_t blocks = (channels + kChannelBlock - 1) / kChannelBlock;
    parallel_range(small ? 1 : ctx.threads, batch * out_spatial * blocks, 1, [&](int64_t lo, int64_t hi) {
      std::array<int32_t, kChannelBlock> acc, taps, divs;
      Range r;
      for (int64_t i = lo; i < hi; ++i) {
        const int64_t blk = i % blocks, p = (i / blocks) % out_spatial, n = i / (blocks * out_spatial);
        const int64_t c0 = blk * kChannelBlock, cb = std::min(kChannelBlock, channels - c0);
        const int64_t o = p % OW;
        int64_t box_taps = 0, box_padded = 0;
        box(p / OW, r, &box_taps, &box_padded);
        std::fill(acc.begin(), acc.begin() + cb, 0);
        const uint8_t* src = px + n * in_spatial * channels + c0;
        for_rows(r, [&](int64_t at) {
          for (int64_t s = at + lw.lo[o]; s < at + lw.hi[o]; ++s) accumulate(src + s * channels, cb, acc.data(), c.s8);
        });
        uint8_t* dst = py + (n * out_spatial + p) * channels + c0;
        if (!table.empty()) {
          const uint8_t* t = table.data() + base[p];
          for (int64_t j = 0; j < cb; ++j) dst[j] = t[acc[j]];
          continue;
        }
        const int32_t t = static_cast<int32_t>(box_taps * (lw.hi[o] - lw.lo[o]));
        std::fill(taps.begin(), taps.begin() + cb, t);
        std::fill(divs.begin(), divs.begin() + cb, include_pad ? static_cast<int32_t>(box_padded * lw.padded[o]) : t);
        pool_out(acc.data(), taps.data(), divs.data(), cb, c, dst);
      }
    });
    return Status::ok();
  }
};

class QAveragePoolSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override {
    const Node& n = *step.node;
    const std::string label = n.label();
    const int x = step.inputs[0], out = step.outputs[0];
    if (!b.typed(x) || !b.typed(out)) return unsupported(label + " shape unknown");
    const Shape xs = b.val(x).shape;
    const std::vector<int64_t> kernel = n.attr_ints("kernel_shape");
    if (xs.size() < 3 || xs.size() != kernel.size() + 2 || kernel.size() > kMaxSpatial || !is_8bit(b.val(x).dtype) ||
        b.val(out).dtype != b.val(x).dtype)
      return unsupported(label + " needs 8-bit data with one kernel size per spatial dim (at most 6)");
    auto k = std::make_unique<QAveragePoolKernel>();
    const bool last = n.attr_int("channels_last", 0) == 1;
    // A channels-last (nhwc) input, a quantized convolution's, is pooled as it is, into nhwc.
    const bool nhwc = !last && xs.size() == 4 && b.val(x).layout == Layout::nhwc;
    k->channels_last = last || nhwc;
    k->include_pad = n.attr_int("count_include_pad", 0) != 0;
    k->batch = xs[0];
    k->channels = last ? xs.back() : xs[1];
    const Shape spatial = last ? Shape(xs.begin() + 1, xs.end() - 1) : Shape(xs.begin() + 2, xs.end());
    WindowOptions options;
    options.has_dilations = false;
    options.has_ceil_mode = true;
    Result<WindowGeometry> geometry = window_geometry(n, spatial, kernel, options);
    if (!geometry) return unsupported(geometry.status().message());
    const WindowGeometry& g = *geometry;
    k->in = g.in;
    k->out = g.out;
    int64_t window_taps = 1;
    for (size_t d = 0; d < g.rank(); ++d) {
      DimWindows w;
      for (int64_t o = 0; o < g.out[d]; ++o) {
        const int64_t start = o * g.strides[d] - g.pad_begin[d], end = start + g.kernel[d];
        w.lo.push_back(std::clamp<int64_t>(start, 0, g.in[d]));
        w.hi.push_back(std::clamp<int64_t>(end, 0, g.in[d]));
        w.padded.push_back(std::max<int64_t>(0, std::min(end, g.in[d] + g.pad_end[d]) - std::max(start, -g.pad_begin[d])));
      }
      k->win.push_back(std::move(w));
      k->in_spatial *= g.in[d];
      k->out_spatial *= g.out[d];
      window_taps *= g.kernel[d];
    }
    if (window_taps >= kMaxTaps) return unsupported(label + " window too large");
    const size_t last_dim = g.rank() - 1;
    if (g.strides[last_dim] == 1) {
      k->kw_last = g.kernel[last_dim];
      k->pad_last = g.pad_begin[last_dim];
      k->dense_lo = std::min(g.out[last_dim], k->pad_last);  // the first o with o - pad >= 0
      k->dense_hi = std::max(k->dense_lo, std::min(g.out[last_dim], g.in[last_dim] - k->kw_last + k->pad_last + 1));
    }
    if (g.in.back() > kMaxRow || g.out.back() > kMaxRow) return unsupported(label + " last spatial dim longer than 4096");
    Shape want{k->batch};
    if (!last) want.push_back(k->channels);
    want.insert(want.end(), g.out.begin(), g.out.end());
    if (last) want.push_back(k->channels);
    if (want != b.val(out).shape) return unsupported(label + " output shape differs from the window's");
    TANDEM_ASSIGN_OR_RETURN(k->params, read_pool_params(b, step, &k->reads));
    if (k->reads.empty()) {  // known parameters: the outputs of every window sum, tabled
      RunCtx none;
      Result<PoolCoef> c = k->params.coef(none, label);
      if (c && !k->build_tables(*c)) {
        k->table.clear();
        k->base.clear();
      }
    }
    const Layout layout = nhwc ? Layout::nhwc : Layout::plain;
    TANDEM_ASSIGN_OR_RETURN(k->x, b.require(x, layout));
    k->reads.push_back(k->x);
    b.define(out, layout);
    k->y = out;
    k->writes = {out};
    k->label = label;
    b.add_work(static_cast<double>(shape_numel(want) * window_taps));
    b.add_kernel(std::move(k));
    return Status::ok();
  }
};

Status supports_pool(const Node& n) {
  for (size_t i : {0, 1, 3})
    if (n.inputs.size() <= i || n.inputs[i].empty()) return unsupported(n.label() + " missing input " + std::to_string(i));
  const int64_t last = n.attr_int("channels_last", 0);
  if (last != 0 && last != 1) return unsupported(n.label() + " channels_last must be 0 or 1");
  if (n.op_type == "QLinearAveragePool" && !n.has_attr("kernel_shape"))
    return unsupported(n.label() + " kernel_shape attribute is required");
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_global_pool(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<QGlobalPoolSpec>());
}
Result<std::unique_ptr<OpSpec>> make_average_pool(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<QAveragePoolSpec>());
}

}  // namespace

void register_qpool_ops(OpTable& t) {
  t.add_microsoft("QLinearGlobalAveragePool", &supports_pool, &make_global_pool);
  t.add_microsoft("QLinearAveragePool", &supports_pool, &make_average_pool);
}

}  // namespace tandem::cpu
