// qconv_offset.cpp: convolutions whose weights, minus their zero points, leave int8 by a common
// offset (int8.h: offset_weights, add_offset_correction). Asymmetric quantizers write uint8
// weights whose zero point is far from 128 (ONNX Runtime's dynamic quantization with uint8
// weights does), so w - w_zp spans [-zp, 255 - zp]: 256 values, not int8's. With
// w - w_zp = w8 + offset,
//   sum_k (x_k - x_zp) (w_k - w_zp) = sum_k (x_k - x_zp) w8_k + offset * S(p),
// S(p) being the sum of x - x_zp over output pixel p's window (every input channel; padding adds
// zero, as it holds the zero point). oneDNN's int8 kernels take w8; the second term is the
// same for every output channel up to the head's per-channel factor, and is added by a binary
// post-op from the map this file's kernel writes before each run.
#include <algorithm>
#include <climits>
#include <cstring>
#include <string>

#include "backends/cpu/int8.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

class OffsetCorrectionKernel final : public Kernel {
 public:
  OffsetCorrection c;
  int src = -1, sums = -1, dst = -1;
  std::vector<float> factors;  // per output channel (1 without a head)
  int64_t N = 0, C = 0, H = 0, W = 0, O = 0, OH = 0, OW = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
    const uint8_t* bytes = static_cast<const uint8_t*>(ctx.ptr[src]);
    const bool is_signed = c.src_signed;
    const int64_t zp = c.src_zp.read(ctx);
    const double s = c.runtime >= 0 ? static_cast<double>(*static_cast<const float*>(ctx.ptr[c.runtime])) : 1.0;
    int64_t* t = static_cast<int64_t*>(ctx.ptr[sums]);
    float* y = static_cast<float*>(ctx.ptr[dst]);
    const int threads = N * H * W * C < (1 << 15) ? 1 : ctx.threads;
    // T(q): each input pixel's channels minus the zero point, summed.
    parallel_range(threads, N * H, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row)
        for (int64_t w = 0; w < W; ++w) {
          const uint8_t* px = bytes + (row * W + w) * C;
          int64_t sum = 0;
          if (is_signed) {
            for (int64_t ch = 0; ch < C; ++ch) sum += static_cast<int8_t>(px[ch]);
          } else {
            for (int64_t ch = 0; ch < C; ++ch) sum += px[ch];
          }
          t[row * W + w] = sum - C * zp;
        }
    });
    // S(p) over each output pixel's window, times the offset and each channel's factor.
    const int64_t kh = c.kernel[0], kw = c.kernel[1];
    const float* factor = factors.data();
    parallel_range(threads, N * OH, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t row = lo; row < hi; ++row) {
        const int64_t n = row / OH, oh = row % OH;
        for (int64_t ow = 0; ow < OW; ++ow) {
          int64_t sum = 0;
          for (int64_t i = 0; i < kh; ++i) {
            const int64_t ih = oh * c.strides[0] - c.pad_begin[0] + i * c.dilations[0];
            if (ih < 0 || ih >= H) continue;
            const int64_t* trow = t + (n * H + ih) * W;
            for (int64_t j = 0; j < kw; ++j) {
              const int64_t iw = ow * c.strides[1] - c.pad_begin[1] + j * c.dilations[1];
              if (iw >= 0 && iw < W) sum += trow[iw];
            }
          }
          const auto v = static_cast<float>(static_cast<double>(sum) * static_cast<double>(c.offset) * s);
          float* out = y + (row * OW + ow) * O;
          for (int64_t o = 0; o < O; ++o) out[o] = v * factor[o];
        }
      }
    });
    return Status::ok();
  }
};

}  // namespace

Result<OffsetWeights> offset_weights(const Tensor& w, const std::vector<int32_t>& zero_points, const std::string& label) {
  if (!is_8bit(w.dtype())) return unsupported(label + " weights are " + std::string(dtype_name(w.dtype())));
  if (!onednn_has_vnni())
    return unsupported(label + " offset weights need VNNI (without it oneDNN sums u8 x s8 pairs in int16)");
  const std::vector<int32_t> d = shifted_weights(w, zero_points, ZeroPointAxis::leading);
  if (d.empty()) return unsupported(label + " no weights");
  const auto [lo, hi] = std::minmax_element(d.begin(), d.end());
  if (*hi - *lo > 255)
    return unsupported(label + " weights minus their zero points span " + std::to_string(*hi - *lo + 1) +
                       " values, more than one int8 offset covers");
  OffsetWeights out;
  out.offset = *hi - 127;  // w8 = d - offset lies in [-128, 127]
  out.w8 = Tensor(DataType::int8, w.shape());
  int8_t* w8 = out.w8.data<int8_t>();
  for (size_t i = 0; i < d.size(); ++i) w8[i] = static_cast<int8_t>(d[i] - out.offset);
  return out;
}

Result<int> add_offset_correction(Builder& b, const OffsetCorrection& c, const Shape& x, const Shape& dst,
                                  const std::string& label) {
  if (x.size() != 4 || dst.size() != 4 || c.kernel.size() != 2 || c.strides.size() != 2 ||
      c.dilations.size() != 2 || c.pad_begin.size() != 2)
    return unsupported(label + " offset weights: 2-D convolutions only");
  if (b.val(c.src).layout != Layout::nhwc) return internal_error(label + " offset correction: source not channels-last");
  auto k = std::make_unique<OffsetCorrectionKernel>();
  k->c = c;
  k->label = label + " (weight offset)";
  k->src = c.src;
  k->N = x[0];
  k->C = x[1];
  k->H = x[2];
  k->W = x[3];
  k->O = dst[1];
  k->OH = dst[2];
  k->OW = dst[3];
  k->factors.assign(static_cast<size_t>(dst[1]), 1.0f);
  for (size_t o = 0; o < c.factor.size() && o < k->factors.size(); ++o) k->factors[o] = static_cast<float>(c.factor[o]);
  k->sums = b.add_temp(DataType::int64, {x[0], 1, x[2], x[3]}, Layout::plain);
  k->dst = b.add_temp(DataType::float32, dst, Layout::nhwc);
  k->reads = {c.src};
  if (c.src_zp.value >= 0) k->reads.push_back(c.src_zp.value);
  if (c.runtime >= 0) k->reads.push_back(c.runtime);
  k->writes = {k->sums, k->dst};
  b.add_work(static_cast<double>(shape_numel(x) + shape_numel(dst)));
  const int out = k->dst;
  b.add_kernel(std::move(k));
  return out;
}

}  // namespace tandem::cpu
