// Reference kernels: signal processing ops (DFT, STFT, window functions, MelWeightMatrix).
//
// Complex values travel as a trailing dimension of size 2 (real, imaginary); real signals may
// use a trailing dimension of size 1. Transforms are naive O(n^2) sums in double precision.
#include <algorithm>
#include <cmath>
#include <complex>
#include <numbers>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

using cdouble = std::complex<double>;

// Upper bound on output elements (Tensor allocation cannot report failure).
constexpr int64_t kMaxElements = int64_t{1} << 31;

// Reads a one-element integer input.
Result<int64_t> int_scalar(const KernelContext& ctx, size_t i, const char* name) {
  const Tensor& t = ctx.input(i);
  if (!is_integer_type(t.dtype()) || t.numel() != 1) return ctx.invalid(std::string(name) + " must be one integer");
  return to_int64_vector(t)[0];
}

// Reads a one-element numeric input as double.
Result<double> num_scalar(const KernelContext& ctx, size_t i, const char* name) {
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1 || t.dtype() == DataType::string) return ctx.invalid(std::string(name) + " must be one number");
  std::vector<double> v = to_double_vector(t);
  if (v.empty()) return ctx.invalid(std::string(name) + " has an unsupported dtype");
  return v[0];
}

// Naive DFT of `in` (length n, zero padded/truncated to `len`) into `out` (length len).
// Twiddle angles are reduced modulo len so large indices keep full precision.
void dft_1d(const std::vector<cdouble>& in, int64_t len, bool inverse, std::vector<cdouble>* out) {
  out->assign(static_cast<size_t>(len), cdouble(0.0, 0.0));
  const int64_t n_in = std::min<int64_t>(static_cast<int64_t>(in.size()), len);
  const double sign = inverse ? 1.0 : -1.0;
  for (int64_t k = 0; k < len; ++k) {
    cdouble acc(0.0, 0.0);
    for (int64_t t = 0; t < n_in; ++t) {
      // (k * t) mod len without overflow for any realistic length.
      int64_t m = static_cast<int64_t>((static_cast<unsigned __int128>(k) * static_cast<unsigned __int128>(t)) %
                                       static_cast<unsigned __int128>(len));
      double angle = sign * 2.0 * std::numbers::pi * static_cast<double>(m) / static_cast<double>(len);
      acc += in[t] * cdouble(std::cos(angle), std::sin(angle));
    }
    if (inverse) acc /= static_cast<double>(len);
    (*out)[k] = acc;
  }
}

Status dft_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input");
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (rank < 2) return ctx.invalid("input must have rank >= 2, got " + shape_to_string(x.shape()));
  const int64_t comps = x.dim(rank - 1);
  if (comps != 1 && comps != 2)
    return ctx.invalid("last dimension must be 1 (real) or 2 (complex), got " + std::to_string(comps));
  const bool inverse = n.attr_int("inverse", 0) != 0;
  const bool onesided = n.attr_int("onesided", 0) != 0;
  // Opset 20 moved `axis` from an attribute (default 1) to input 2 (default -2).
  int64_t axis = n.attr_int("axis", 1);
  if (ctx.opset() >= 20) {
    axis = -2;
    if (ctx.has_input(2)) {
      TANDEM_ASSIGN_OR_RETURN(axis, int_scalar(ctx, 2, "axis"));
    }
  }
  if (axis < 0) axis += rank;
  if (axis < 0 || axis > rank - 2)
    return ctx.invalid("axis " + std::to_string(axis) + " is out of range for input rank " + std::to_string(rank));
  int64_t len = x.dim(axis);
  if (ctx.has_input(1)) {
    TANDEM_ASSIGN_OR_RETURN(len, int_scalar(ctx, 1, "dft_length"));
    if (len <= 0) return ctx.invalid("dft_length must be positive, got " + std::to_string(len));
    if (len > (int64_t{1} << 30)) return ctx.invalid("dft_length is too large");
  }
  const int64_t out_len = onesided ? len / 2 + 1 : len;
  Shape out_shape = x.shape();
  out_shape[axis] = out_len;
  out_shape[rank - 1] = 2;
  int64_t total = 1;
  for (int64_t d : out_shape) {
    if (d > 0 && total > kMaxElements / d) return ctx.invalid("output is too large");
    total *= d;
  }
  Tensor out(x.dtype(), out_shape);
  if (total == 0) {
    ctx.set_output(0, std::move(out));
    return Status::ok();
  }
  // Layout: outer (dims before axis), axis, inner (dims after axis, excluding the last).
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < axis; ++d) outer *= x.dim(d);
  for (int64_t d = axis + 1; d < rank - 1; ++d) inner *= x.dim(d);
  const int64_t in_axis = x.dim(axis);
  bool ok = visit_float(x.dtype(), [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    std::vector<cdouble> sig(static_cast<size_t>(in_axis)), res;
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        for (int64_t t = 0; t < in_axis; ++t) {
          const T* p = src + ((o * in_axis + t) * inner + i) * comps;
          sig[t] = cdouble(to_double(p[0]), comps == 2 ? to_double(p[1]) : 0.0);
        }
        dft_1d(sig, len, inverse, &res);
        for (int64_t k = 0; k < out_len; ++k) {
          T* q = dst + ((o * out_len + k) * inner + i) * 2;
          q[0] = from_double<T>(res[k].real());
          q[1] = from_double<T>(res[k].imag());
        }
      }
    }
  });
  if (!ok) return ctx.invalid("unsupported input dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status stft_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.invalid("needs inputs signal and frame_step");
  const Tensor& sig = ctx.input(0);
  if (sig.rank() != 3 || (sig.dim(2) != 1 && sig.dim(2) != 2))
    return ctx.invalid("signal must have shape [batch, signal_length, 1 or 2], got " + shape_to_string(sig.shape()));
  if (!is_float_type(sig.dtype())) return ctx.invalid("signal must be a float tensor");
  TANDEM_ASSIGN_OR_RETURN(int64_t step, int_scalar(ctx, 1, "frame_step"));
  if (step <= 0) return ctx.invalid("frame_step must be positive");
  const bool onesided = ctx.node().attr_int("onesided", 1) != 0;

  std::vector<cdouble> window;
  int64_t frame_length = -1;
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.rank() != 1) return ctx.invalid("window must be 1-D");
    if (!is_float_type(w.dtype())) return ctx.invalid("window must be a float tensor");
    for (double v : to_double_vector(w)) window.emplace_back(v, 0.0);
    frame_length = w.dim(0);
  }
  if (ctx.has_input(3)) {
    TANDEM_ASSIGN_OR_RETURN(int64_t fl, int_scalar(ctx, 3, "frame_length"));
    if (frame_length >= 0 && fl != frame_length)
      return ctx.invalid("frame_length " + std::to_string(fl) + " differs from the window length " +
                         std::to_string(frame_length));
    frame_length = fl;
  }
  if (frame_length < 0) return ctx.invalid("needs a window or a frame_length");
  if (frame_length == 0) return ctx.invalid("frame_length must be positive");
  if (frame_length > (int64_t{1} << 30)) return ctx.invalid("frame_length is too large");
  const int64_t B = sig.dim(0), L = sig.dim(1), comps = sig.dim(2);
  if (L < frame_length)
    return ctx.invalid("signal length " + std::to_string(L) + " is shorter than frame_length " +
                       std::to_string(frame_length));
  if (window.empty()) window.assign(static_cast<size_t>(frame_length), cdouble(1.0, 0.0));
  const int64_t frames = (L - frame_length) / step + 1;
  const int64_t bins = onesided ? frame_length / 2 + 1 : frame_length;
  if (B > 0 && frames * bins > kMaxElements / B) return ctx.invalid("output is too large");
  Tensor out(sig.dtype(), {B, frames, bins, 2});
  bool ok = visit_float(sig.dtype(), [&]<class T>() {
    const T* src = sig.data<T>();
    T* dst = out.data<T>();
    std::vector<cdouble> frame(static_cast<size_t>(frame_length)), res;
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t f = 0; f < frames; ++f) {
        for (int64_t t = 0; t < frame_length; ++t) {
          const T* p = src + (b * L + f * step + t) * comps;
          frame[t] = cdouble(to_double(p[0]), comps == 2 ? to_double(p[1]) : 0.0) * window[t];
        }
        dft_1d(frame, frame_length, false, &res);
        for (int64_t k = 0; k < bins; ++k) {
          T* q = dst + ((b * frames + f) * bins + k) * 2;
          q[0] = from_double<T>(res[k].real());
          q[1] = from_double<T>(res[k].imag());
        }
      }
    }
  });
  if (!ok) return ctx.invalid("unsupported signal dtype");
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// Output dtype from the `output_datatype` attribute (default float32).
Result<DataType> output_datatype(const KernelContext& ctx) {
  int64_t code = ctx.node().attr_int("output_datatype", 1);
  DataType dt = static_cast<DataType>(code);
  switch (dt) {
    case DataType::float32: case DataType::float64: case DataType::float16: case DataType::bfloat16:
    case DataType::int8: case DataType::int16: case DataType::int32: case DataType::int64:
    case DataType::uint8: case DataType::uint16: case DataType::uint32: case DataType::uint64:
      return dt;
    default:
      return ctx.invalid("unsupported output_datatype " + std::to_string(code));
  }
}

// Generalized cosine window: sum_k (-1)^k a_k cos(2 pi k n / N), N = size (periodic) or size-1.
Status cosine_window(KernelContext& ctx, const std::vector<double>& a) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input size");
  TANDEM_ASSIGN_OR_RETURN(int64_t size, int_scalar(ctx, 0, "size"));
  if (size < 0) return ctx.invalid("size must be non-negative, got " + std::to_string(size));
  if (size > kMaxElements) return ctx.invalid("size is too large");
  TANDEM_ASSIGN_OR_RETURN(DataType dt, output_datatype(ctx));
  const bool periodic = ctx.node().attr_int("periodic", 1) != 0;
  const int64_t N = periodic ? size : size - 1;
  Tensor out(dt, {size});
  visit_numeric(dt, [&]<class T>() {
    T* dst = out.data<T>();
    for (int64_t i = 0; i < size; ++i) {
      double v = 1.0;  // a one-point symmetric window (N == 0) is 1, as in numpy
      if (N > 0) {
        v = 0.0;
        for (size_t k = 0; k < a.size(); ++k) {
          double term = a[k] * std::cos(2.0 * std::numbers::pi * static_cast<double>(k) * static_cast<double>(i) /
                                        static_cast<double>(N));
          v += (k % 2 == 0) ? term : -term;
        }
      }
      dst[i] = from_double<T>(v);
    }
  });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Status hann_window_kernel(KernelContext& ctx) { return cosine_window(ctx, {0.5, 0.5}); }
Status hamming_window_kernel(KernelContext& ctx) { return cosine_window(ctx, {25.0 / 46.0, 21.0 / 46.0}); }
Status blackman_window_kernel(KernelContext& ctx) { return cosine_window(ctx, {0.42, 0.5, 0.08}); }

// Triangular mel filterbank of shape [dft_length / 2 + 1, num_mel_bins]. Follows the ONNX
// reference implementation (which produced the conformance data): num_mel_bins + 2 edge
// points evenly spaced in mel, with the mel step taken as range / (num_mel_bins + 2), then
// mapped to spectrogram bins by floor((dft_length + 1) * hz / sample_rate).
Status mel_weight_matrix_kernel(KernelContext& ctx) {
  for (size_t i = 0; i < 5; ++i)
    if (!ctx.has_input(i)) return ctx.invalid("needs 5 inputs");
  TANDEM_ASSIGN_OR_RETURN(int64_t num_mel_bins, int_scalar(ctx, 0, "num_mel_bins"));
  TANDEM_ASSIGN_OR_RETURN(int64_t dft_length, int_scalar(ctx, 1, "dft_length"));
  TANDEM_ASSIGN_OR_RETURN(int64_t sample_rate, int_scalar(ctx, 2, "sample_rate"));
  TANDEM_ASSIGN_OR_RETURN(double lower, num_scalar(ctx, 3, "lower_edge_hertz"));
  TANDEM_ASSIGN_OR_RETURN(double upper, num_scalar(ctx, 4, "upper_edge_hertz"));
  TANDEM_ASSIGN_OR_RETURN(DataType dt, output_datatype(ctx));
  if (num_mel_bins <= 0 || dft_length <= 0 || sample_rate <= 0)
    return ctx.invalid("num_mel_bins, dft_length and sample_rate must be positive");
  if (num_mel_bins > (int64_t{1} << 20) || dft_length > (int64_t{1} << 30))
    return ctx.invalid("num_mel_bins or dft_length is too large");
  if (!(lower >= 0.0) || !(upper >= lower) || !std::isfinite(upper))
    return ctx.invalid("need 0 <= lower_edge_hertz <= upper_edge_hertz (finite)");
  const int64_t spec_bins = dft_length / 2 + 1;
  if (spec_bins * num_mel_bins > kMaxElements) return ctx.invalid("output is too large");

  auto hz_to_mel = [](double hz) { return 2595.0 * std::log10(1.0 + hz / 700.0); };
  const double low_mel = hz_to_mel(lower), high_mel = hz_to_mel(upper);
  const double mel_step = (high_mel - low_mel) / static_cast<double>(num_mel_bins + 2);
  std::vector<int64_t> edge(static_cast<size_t>(num_mel_bins + 2));
  for (int64_t i = 0; i < num_mel_bins + 2; ++i) {
    double mel = static_cast<double>(i) * mel_step + low_mel;
    double hz = 700.0 * (std::pow(10.0, mel / 2595.0) - 1.0);
    double bin = std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate));
    if (!(std::fabs(bin) < 1e15)) return ctx.invalid("upper_edge_hertz is too large");
    edge[i] = static_cast<int64_t>(bin);
  }
  std::vector<double> w(static_cast<size_t>(spec_bins * num_mel_bins), 0.0);
  auto set = [&](int64_t row, int64_t col, double v) {
    if (row >= 0 && row < spec_bins) w[row * num_mel_bins + col] = v;
  };
  for (int64_t i = 0; i < num_mel_bins; ++i) {
    const int64_t lo = edge[i], center = edge[i + 1], hi = edge[i + 2];
    if (center == lo) {
      set(center, i, 1.0);
    } else {
      for (int64_t j = std::max<int64_t>(lo, 0); j <= std::min(center, spec_bins - 1); ++j)
        set(j, i, static_cast<double>(j - lo) / static_cast<double>(center - lo));
    }
    if (hi > center) {
      for (int64_t j = std::max<int64_t>(center, 0); j < std::min(hi, spec_bins); ++j)
        set(j, i, static_cast<double>(hi - j) / static_cast<double>(hi - center));
    }
  }
  Tensor out(dt, {spec_bins, num_mel_bins});
  visit_numeric(dt, [&]<class T>() {
    T* dst = out.data<T>();
    for (size_t i = 0; i < w.size(); ++i) dst[i] = from_double<T>(w[i]);
  });
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

}  // namespace

void register_signal_kernels(KernelTable& t) {
  t.add("", "DFT", &dft_kernel);
  t.add("", "STFT", &stft_kernel);
  t.add("", "HannWindow", &hann_window_kernel);
  t.add("", "HammingWindow", &hamming_window_kernel);
  t.add("", "BlackmanWindow", &blackman_window_kernel);
  t.add("", "MelWeightMatrix", &mel_weight_matrix_kernel);
}

}  // namespace tandem
