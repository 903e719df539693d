// qconv_offset.cpp: convolutions and matrix products whose weights, minus their zero points,
// leave int8 by an offset per output channel (int8.h: offset_weights, add_offset_correction,
// add_offset_row_share). Asymmetric quantizers write uint8 weights whose zero point is far
// from 128 (ONNX Runtime's dynamic quantization with uint8 weights does), so w - w_zp spans
// [-zp, 255 - zp]: 256 values, not int8's. With w - w_zp = w8 + offset[o] for output channel o,
//   sum_k (x_k - x_zp) (w_k - w_zp) = sum_k (x_k - x_zp) w8_k + offset[o] * S(p),
// S(p) being the sum of x - x_zp over output pixel p's window (every input channel; padding adds
// zero, as it holds the zero point). oneDNN's int8 kernels take w8; the second term is the
// same for every output channel up to its offset and the per-channel factor after it (the
// affine head's scale, or QLinearConv's requantization). Each channel's offset is its own (its
// zero point may be), so per-channel zero points take this route too. This file's kernel writes
// the term, times each channel's offset and factor,
// before each run: into the product's float32 destination, which a sum post-op adds to, or into
// a map of its own that a binary post-op reads (an 8-bit destination). oneDNN 2.6's int8
// convolutions take no binary operand broadcast over channels, hence the full-size share.
// A matrix product [M, K] x [K, N] is the same sum with rows for pixels, K for channels and a
// 1x1 window: S(m) = sum_k (a[m, k] - a_zp).
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "backends/cpu/int8.h"
#include "backends/cpu/product_affine.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

// T(q) for the pixels [lo, hi) of a channels-last 8-bit image of C channels: each pixel's values
// minus the zero point, summed.
template <class T>
TANDEM_ISA_BODY void channel_sums(const T* x, int32_t* t, int64_t lo, int64_t hi, int64_t C, int32_t zp) {
  for (int64_t q = lo; q < hi; ++q) {
    const T* px = x + q * C;
    int32_t sum = 0;
    for (int64_t ch = 0; ch < C; ++ch) sum += px[ch];
    t[q] = sum - static_cast<int32_t>(C) * zp;
  }
}
TANDEM_ISA_BODY void pixel_sums_body(const void* x, bool is_signed, int32_t* t, int64_t lo, int64_t hi, int64_t C,
                                       int32_t zp) {
  if (is_signed) {
    channel_sums(static_cast<const int8_t*>(x), t, lo, hi, C, zp);
  } else {
    channel_sums(static_cast<const uint8_t*>(x), t, lo, hi, C, zp);
  }
}
TANDEM_ISA_DISPATCH(pixel_sums, (const void* x, bool is_signed, int32_t* t, int64_t lo, int64_t hi, int64_t C,
                                      int32_t zp),
                    (x, is_signed, t, lo, hi, C, zp))

// The window geometry and the per-channel factors of one correction.
struct ShareGeometry {
  int64_t H = 0, W = 0, O = 0, OH = 0, OW = 0;
  int64_t kh = 1, kw = 1, sh = 1, sw = 1, dh = 1, dw = 1, ph = 0, pw = 0;
  const float* factor = nullptr;  // [O]
};

// Output rows [lo, hi) (over N * OH) of the share: S(p) from the pixel sums `t`, times `scale`
// (the runtime scalar) and each channel's factor (its offset included).
TANDEM_ISA_BODY void share_rows_body(const ShareGeometry& g, const int32_t* t, float* y, double scale, int64_t lo,
                                     int64_t hi) {
  for (int64_t row = lo; row < hi; ++row) {
    const int64_t n = row / g.OH, oh = row % g.OH;
    for (int64_t ow = 0; ow < g.OW; ++ow) {
      int64_t sum = 0;
      for (int64_t i = 0; i < g.kh; ++i) {
        const int64_t ih = oh * g.sh - g.ph + i * g.dh;
        if (ih < 0 || ih >= g.H) continue;
        const int32_t* trow = t + (n * g.H + ih) * g.W;
        for (int64_t j = 0; j < g.kw; ++j) {
          const int64_t iw = ow * g.sw - g.pw + j * g.dw;
          if (iw >= 0 && iw < g.W) sum += trow[iw];
        }
      }
      const auto v = static_cast<float>(static_cast<double>(sum) * scale);
      float* out = y + (row * g.OW + ow) * g.O;
      for (int64_t o = 0; o < g.O; ++o) out[o] = v * g.factor[o];
    }
  }
}
TANDEM_ISA_DISPATCH(share_rows, (const ShareGeometry& g, const int32_t* t, float* y, double scale, int64_t lo,
                                 int64_t hi),
                    (g, t, y, scale, lo, hi))

class OffsetCorrectionKernel final : public Kernel {
 public:
  OffsetCorrection c;
  int src = -1, sums = -1, dst = -1;
  std::vector<float> factors;  // per output channel: its offset times its factor
  ShareGeometry geometry;      // (factor set at run: points into `factors`)
  int64_t N = 0, C = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const void* x = ctx.ptr[src];
    const auto zp = c.src_zp.read(ctx);
    const double s = c.runtime >= 0 ? static_cast<double>(*static_cast<const float*>(ctx.ptr[c.runtime])) : 1.0;
    int32_t* t = static_cast<int32_t*>(ctx.ptr[sums]);
    float* y = static_cast<float*>(ctx.ptr[dst]);
    ShareGeometry g = geometry;
    g.factor = factors.data();
    const int threads = N * g.OH * g.OW * g.O < (1 << 15) ? 1 : ctx.threads;
    parallel_range(threads, N * g.H * g.W, 1024,
                   [&](int64_t lo, int64_t hi) { pixel_sums(x, c.src_signed, t, lo, hi, C, zp); });
    parallel_range(threads, N * g.OH, 1,
                   [&](int64_t lo, int64_t hi) { share_rows(g, t, y, s, lo, hi); });
    return Status::ok();
  }
};

}  // namespace

Result<OffsetWeights> offset_weights(const Tensor& w, const std::vector<int32_t>& zero_points, const std::string& label,
                                     ZeroPointAxis axis) {
  if (!is_8bit(w.dtype())) return unsupported(label + " weights are " + std::string(dtype_name(w.dtype())));
  if (!onednn_has_vnni())
    return unsupported(label + " offset weights need VNNI (without it oneDNN sums u8 x s8 pairs in int16)");
  const std::vector<int32_t> d = shifted_weights(w, zero_points, axis);
  if (d.empty() || w.rank() == 0) return unsupported(label + " no weights");
  const int64_t channels = axis == ZeroPointAxis::leading ? w.shape().front() : w.shape().back();
  const auto count = static_cast<int64_t>(d.size());
  const auto [lo, hi] = channel_ranges(d, channels, axis);
  OffsetWeights out;
  for (size_t o = 0; o < lo.size(); ++o) {
    if (hi[o] - lo[o] > 255)
      return unsupported(label + " weights of channel " + std::to_string(o) + " minus their zero point span " +
                         std::to_string(hi[o] - lo[o] + 1) + " values, more than one int8 offset covers");
    out.offsets.push_back(hi[o] - 127);  // w8 = d - offset lies in [-128, 127]
  }
  out.w8 = Tensor(DataType::int8, w.shape());
  int8_t* w8 = out.w8.data<int8_t>();
  for (size_t i = 0; i < d.size(); ++i)
    w8[i] = static_cast<int8_t>(d[i] - out.offsets[weight_channel(i, channels, count, axis)]);
  return out;
}

std::string describe_offsets(const std::vector<int32_t>& offsets) {
  const auto [lo, hi] = std::minmax_element(offsets.begin(), offsets.end());
  if (lo == offsets.end()) return "none";
  return *lo == *hi ? std::to_string(*lo) : std::to_string(*lo) + ".." + std::to_string(*hi);
}

namespace {

// Adds the kernel for geometry `g` over a source of N images of C channels (`k`'s correction set,
// whose source zero point is the value `src_zp`, -1: none), writing `into` or a new temporary of
// `map_shape` in `layout`; returns the value written.
Result<int> add_share_kernel(Builder& b, std::unique_ptr<OffsetCorrectionKernel> k, int src_zp, const Shape& map_shape,
                             Layout layout, int into) {
  const ShareGeometry& g = k->geometry;
  OffsetCorrection& c = k->c;
  k->src = c.src;
  c.src_signed = b.val(c.src).dtype == DataType::int8;
  std::vector<int> zp_reads;
  TANDEM_ASSIGN_OR_RETURN(c.src_zp, read_zero_point(b, src_zp, k->label + ": source zero point", &zp_reads));
  if (c.offsets.size() != static_cast<size_t>(g.O) || (c.factor.size() > 1 && c.factor.size() != c.offsets.size()))
    return internal_error(k->label + ": " + std::to_string(c.offsets.size()) + " offsets and " +
                          std::to_string(c.factor.size()) + " factors for " + std::to_string(g.O) + " channels");
  k->factors.resize(static_cast<size_t>(g.O));
  for (size_t o = 0; o < k->factors.size(); ++o) {
    const double factor = c.factor.empty() ? 1.0 : c.factor[c.factor.size() == 1 ? 0 : o];
    k->factors[o] = static_cast<float>(factor * c.offsets[o]);
  }
  if (k->C > INT32_MAX / 512) return unsupported(k->label + ": too many channels for int32 pixel sums");
  k->sums = b.add_temp(DataType::int32, {k->N, 1, g.H, g.W}, Layout::plain);
  const IValue* d = into >= 0 ? &b.val(into) : nullptr;
  if (d && (d->dtype != DataType::float32 || d->layout != layout ||
            (layout == Layout::nhwc ? d->shape != map_shape : shape_numel(d->shape) != shape_numel(map_shape))))
    return internal_error(k->label + ": the destination is not float32 " + shape_to_string(map_shape) + " in the " +
                          std::string(layout == Layout::nhwc ? "channels-last" : "plain") + " layout");
  k->dst = into >= 0 ? into : b.add_temp(DataType::float32, map_shape, layout);
  k->reads = {c.src};
  if (c.src_zp.value >= 0) k->reads.push_back(c.src_zp.value);
  if (c.runtime >= 0) k->reads.push_back(c.runtime);
  k->writes = {k->sums, k->dst};
  b.add_work(static_cast<double>(k->N * k->C * g.H * g.W + shape_numel(map_shape)));
  const int out = k->dst;
  b.add_kernel(std::move(k));
  return out;
}

// The convolution's share (add_offset_share) for correction `c`, its factors set.
Result<int> add_offset_correction(Builder& b, const OffsetCorrection& c, int x_zp, const Shape& x, const Shape& dst,
                                  const std::string& label, int into) {
  if (x.size() != 4 || dst.size() != 4 || c.kernel.size() != 2 || c.strides.size() != 2 ||
      c.dilations.size() != 2 || c.pad_begin.size() != 2)
    return unsupported(label + " offset weights: 2-D convolutions only");
  if (b.val(c.src).layout != Layout::nhwc) return internal_error(label + " offset correction: source not channels-last");
  auto k = std::make_unique<OffsetCorrectionKernel>();
  k->c = c;
  k->label = label + " (weight offset)";
  k->N = x[0];
  k->C = x[1];
  ShareGeometry& g = k->geometry;
  g.H = x[2];
  g.W = x[3];
  g.O = dst[1];
  g.OH = dst[2];
  g.OW = dst[3];
  g.kh = c.kernel[0];
  g.kw = c.kernel[1];
  g.sh = c.strides[0];
  g.sw = c.strides[1];
  g.dh = c.dilations[0];
  g.dw = c.dilations[1];
  g.ph = c.pad_begin[0];
  g.pw = c.pad_begin[1];
  return add_share_kernel(b, std::move(k), x_zp, dst, Layout::nhwc, into);
}

}  // namespace

Result<int> add_offset_row_share(Builder& b, OffsetCorrection c, int a_zp, int64_t M, int64_t K, int64_t N,
                                 int into, const std::string& label) {
  if (b.val(c.src).layout != Layout::plain) return internal_error(label + " offset correction: source not plain");
  auto k = std::make_unique<OffsetCorrectionKernel>();
  k->c = std::move(c);
  k->label = label + " (weight offset)";
  k->N = 1;
  k->C = K;
  ShareGeometry& g = k->geometry;  // rows as pixels of one column, a 1x1 window
  g.H = g.OH = M;
  g.W = g.OW = 1;
  g.O = N;
  return add_share_kernel(b, std::move(k), a_zp, {M, N}, Layout::plain, into);
}

Result<std::vector<double>> requantization_factors(Builder& b, int x_scale, int w_scale, int y_scale,
                                                   int64_t channels, const std::string& label) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> sx, known_scales(b, x_scale, 1, label + " x scale"));
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> sw, known_scales(b, w_scale, channels, label + " weight scale"));
  TANDEM_ASSIGN_OR_RETURN(std::vector<float> sy, known_scales(b, y_scale, 1, label + " y scale"));
  std::vector<double> factors;
  for (int64_t o = 0; o < channels; ++o) factors.push_back(sx[0] * sw[static_cast<size_t>(o)] / sy[0]);
  return factors;
}

Result<int> add_offset_share(Builder& b, OffsetCorrection c, int x_zp, const ProductAffine& head, int x_scale,
                             int w_scale, int y_scale, const Shape& x, const Shape& dst, int into,
                             const std::string& label) {
  if (head.ops > 0) {
    c.factor = head.scale;
    c.runtime = head.runtime;
  } else if (x_scale >= 0) {
    TANDEM_ASSIGN_OR_RETURN(c.factor, requantization_factors(b, x_scale, w_scale, y_scale, dst[1], label));
  }
  return add_offset_correction(b, c, x_zp, x, dst, label, into);
}

}  // namespace tandem::cpu
