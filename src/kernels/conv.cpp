// Reference kernels: convolutions. Conv, ConvTranspose, ConvInteger, QLinearConv.
//
// All four are direct (naive) N-d convolutions over the spatial dims of an N x C x D1 x ... x Dk
// input. Float convolutions accumulate in double; the integer ones accumulate exactly in int64.
// The window geometry (output size, auto_pad) comes from graph/window_geometry.h and the taps of
// a window from conv_pool_util.h, both shared with the pooling kernels.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv_pool_util.h"
#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

using conv_pool::Tap;
using conv_pool::Window;

// The channel layout of a convolution, validated against the input and weight shapes.
struct ConvLayout {
  int64_t batch = 0;         // N
  int64_t in_channels = 0;   // C
  int64_t out_channels = 0;  // M
  int64_t group = 1;
  Shape in_spatial;      // D1..Dk of X
  Shape kernel_spatial;  // k1..kk of W
};

std::string dims_str(const Shape& s) { return std::to_string(s.size()); }

// Checks X (N x C x D...) and W against each other. For Conv W is M x C/group x k...; for
// ConvTranspose (`transposed`) W is C x M/group x k....
Result<ConvLayout> conv_layout(const KernelContext& ctx, const Tensor& x, const Tensor& w, bool transposed) {
  if (!x.defined()) return ctx.invalid("input X is missing");
  if (!w.defined()) return ctx.invalid("weight is missing");
  if (x.rank() < 3) return ctx.invalid("input has " + dims_str(x.shape()) + " dims, expected at least 3 (N x C x D...)");
  if (w.rank() != x.rank())
    return ctx.invalid("weight has " + dims_str(w.shape()) + " dims, expected " + std::to_string(x.rank()));
  ConvLayout l;
  l.group = ctx.node().attr_int("group", 1);
  if (l.group < 1 || l.group > kMaxWindowAttr)
    return ctx.invalid("group " + std::to_string(l.group) + " is out of range");
  l.batch = x.dim(0);
  l.in_channels = x.dim(1);
  l.in_spatial.assign(x.shape().begin() + 2, x.shape().end());
  l.kernel_spatial.assign(w.shape().begin() + 2, w.shape().end());
  if (l.in_channels % l.group != 0)
    return ctx.invalid("input channels " + std::to_string(l.in_channels) + " are not divisible by group " +
                       std::to_string(l.group));
  if (!transposed) {
    l.out_channels = w.dim(0);
    if (w.dim(1) * l.group != l.in_channels)
      return ctx.invalid("input has " + std::to_string(l.in_channels) + " channels but weight " +
                         shape_to_string(w.shape()) + " with group " + std::to_string(l.group) + " expects " +
                         std::to_string(w.dim(1) * l.group));
    if (l.out_channels % l.group != 0)
      return ctx.invalid("weight has " + std::to_string(l.out_channels) + " output channels, not divisible by group " +
                         std::to_string(l.group));
  } else {
    if (w.dim(0) != l.in_channels)
      return ctx.invalid("input has " + std::to_string(l.in_channels) + " channels but weight " +
                         shape_to_string(w.shape()) + " expects " + std::to_string(w.dim(0)));
    l.out_channels = w.dim(1) * l.group;
  }
  if (ctx.node().has_attr("kernel_shape")) {
    std::vector<int64_t> ks = ctx.node().attr_ints("kernel_shape");
    if (ks != std::vector<int64_t>(l.kernel_spatial.begin(), l.kernel_spatial.end()))
      return ctx.invalid("kernel_shape attribute " + shape_to_string(ks) + " does not match weight " +
                         shape_to_string(w.shape()));
  }
  return l;
}

// Output shape N x M x out... for a layout and window.
Shape output_shape(const ConvLayout& l, const std::vector<int64_t>& out_spatial) {
  Shape s{l.batch, l.out_channels};
  s.insert(s.end(), out_spatial.begin(), out_spatial.end());
  return s;
}

// Direct convolution. `y` holds N x M x out... and is pre-filled (bias or zero); the products
// of x and w are added to it. V is double (float convs) or int64 (integer convs).
template <class V>
void conv_forward(const std::vector<V>& x, const std::vector<V>& w, const ConvLayout& l, const Window& win,
                  std::vector<V>& y) {
  const int64_t in_size = shape_numel(win.in), out_size = shape_numel(win.out);
  const int64_t k_size = shape_numel(win.kernel);
  const int64_t cg = l.in_channels / l.group, mg = l.out_channels / l.group;
  if (out_size == 0 || l.batch == 0 || l.out_channels == 0) return;
  std::vector<int64_t> oc(win.rank(), 0);
  std::vector<Tap> taps;
  for (int64_t p = 0; p < out_size; ++p, conv_pool::next_coord(oc, win.out)) {
    conv_pool::window_taps(win, oc, taps);
    for (int64_t n = 0; n < l.batch; ++n) {
      for (int64_t m = 0; m < l.out_channels; ++m) {
        const int64_t g = m / mg;
        V acc = y[(n * l.out_channels + m) * out_size + p];
        for (int64_t c = 0; c < cg; ++c) {
          const V* xp = x.data() + (n * l.in_channels + g * cg + c) * in_size;
          const V* wp = w.data() + (m * cg + c) * k_size;
          for (const Tap& t : taps) acc += xp[t.input_index] * wp[t.kernel_index];
        }
        y[(n * l.out_channels + m) * out_size + p] = acc;
      }
    }
  }
}

// Reads the optional bias B (1-D of size M) as doubles into a pre-filled output buffer.
Status fill_bias(const KernelContext& ctx, size_t slot, const ConvLayout& l, int64_t out_size,
                 std::vector<double>& y) {
  if (!ctx.has_input(slot)) return Status::ok();
  const Tensor& b = ctx.input(slot);
  if (b.rank() != 1 || b.dim(0) != l.out_channels)
    return ctx.invalid("bias has shape " + shape_to_string(b.shape()) + ", expected [" +
                       std::to_string(l.out_channels) + "]");
  std::vector<double> bv = to_double_vector(b);
  for (int64_t n = 0; n < l.batch; ++n)
    for (int64_t m = 0; m < l.out_channels; ++m)
      for (int64_t p = 0; p < out_size; ++p) y[(n * l.out_channels + m) * out_size + p] = bv[m];
  return Status::ok();
}

Status check_float_pair(const KernelContext& ctx, const Tensor& x, const Tensor& w) {
  if (!is_float_type(x.dtype())) return ctx.invalid("input dtype " + std::string(dtype_name(x.dtype())) + " is not a float type");
  if (w.dtype() != x.dtype())
    return ctx.invalid("weight dtype " + std::string(dtype_name(w.dtype())) + " differs from input dtype " +
                       std::string(dtype_name(x.dtype())));
  return Status::ok();
}

// ---- Conv ------------------------------------------------------------------------------------

Status conv_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  TANDEM_ASSIGN_OR_RETURN(ConvLayout l, conv_layout(ctx, x, w, false));
  TANDEM_RETURN_IF_ERROR(check_float_pair(ctx, x, w));
  TANDEM_ASSIGN_OR_RETURN(Window win, window_geometry(ctx.node(), l.in_spatial, l.kernel_spatial, WindowOptions{}));
  const Shape y_shape = output_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  std::vector<double> y(static_cast<size_t>(y_numel), 0.0);
  TANDEM_RETURN_IF_ERROR(fill_bias(ctx, 2, l, shape_numel(win.out), y));
  conv_forward(to_double_vector(x), to_double_vector(w), l, win, y);
  ctx.set_output(0, float_tensor(x.dtype(), y_shape, y));
  return Status::ok();
}

// ---- ConvTranspose ---------------------------------------------------------------------------

// Transposed convolution: every input element scatters x * w over the output window it maps
// to. `y` is pre-filled with the bias.
void conv_transpose_forward(const std::vector<double>& x, const std::vector<double>& w, const ConvLayout& l,
                            const Window& win, std::vector<double>& y) {
  const size_t r = win.rank();
  const int64_t in_size = shape_numel(win.in), out_size = shape_numel(win.out);
  const int64_t k_size = shape_numel(win.kernel);
  const int64_t cg = l.in_channels / l.group, mg = l.out_channels / l.group;
  if (in_size == 0 || out_size == 0 || l.batch == 0) return;
  std::vector<int64_t> ic(r, 0);
  std::vector<Tap> taps;  // kernel_index, and input_index used as the output index here
  for (int64_t ip = 0; ip < in_size; ++ip, conv_pool::next_coord(ic, win.in)) {
    taps.clear();
    std::vector<int64_t> k(r, 0);
    int64_t kernel_index = 0;
    do {
      int64_t out_index = 0;
      bool inside = true;
      for (size_t d = 0; d < r && inside; ++d) {
        const int64_t o = ic[d] * win.strides[d] - win.pad_begin[d] + k[d] * win.dilations[d];
        if (o < 0 || o >= win.out[d]) inside = false;
        out_index = out_index * win.out[d] + o;
      }
      if (inside) taps.push_back({kernel_index, out_index});
      ++kernel_index;
    } while (conv_pool::next_coord(k, win.kernel));
    for (int64_t n = 0; n < l.batch; ++n) {
      for (int64_t g = 0; g < l.group; ++g) {
        for (int64_t c = 0; c < cg; ++c) {
          const int64_t ci = g * cg + c;
          const double xv = x[(n * l.in_channels + ci) * in_size + ip];
          for (int64_t m = 0; m < mg; ++m) {
            const double* wp = w.data() + (ci * mg + m) * k_size;
            double* yp = y.data() + (n * l.out_channels + g * mg + m) * out_size;
            for (const Tap& t : taps) yp[t.input_index] += xv * wp[t.kernel_index];
          }
        }
      }
    }
  }
}

Status conv_transpose_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  TANDEM_ASSIGN_OR_RETURN(ConvLayout l, conv_layout(ctx, x, w, true));
  TANDEM_RETURN_IF_ERROR(check_float_pair(ctx, x, w));
  WindowOptions transposed;
  transposed.transposed = true;
  TANDEM_ASSIGN_OR_RETURN(Window win, window_geometry(ctx.node(), l.in_spatial, l.kernel_spatial, transposed));
  const Shape y_shape = output_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  std::vector<double> y(static_cast<size_t>(y_numel), 0.0);
  TANDEM_RETURN_IF_ERROR(fill_bias(ctx, 2, l, shape_numel(win.out), y));
  conv_transpose_forward(to_double_vector(x), to_double_vector(w), l, win, y);
  ctx.set_output(0, float_tensor(x.dtype(), y_shape, y));
  return Status::ok();
}

// ---- ConvInteger / QLinearConv ---------------------------------------------------------------

bool is_8bit(DataType t) { return t == DataType::uint8 || t == DataType::int8; }

// A per-tensor (scalar or 1-element) or, when `per_channel` > 0, per-output-channel (1-D of
// that size) parameter such as a zero point or scale. Returns one value per output channel.
Result<std::vector<double>> per_channel_param(const KernelContext& ctx, size_t slot, const char* name,
                                              int64_t per_channel, int64_t channels, double fallback) {
  if (!ctx.has_input(slot)) return std::vector<double>(static_cast<size_t>(channels), fallback);
  const Tensor& t = ctx.input(slot);
  if (!t.defined()) return ctx.invalid(std::string(name) + " is not a tensor");
  std::vector<double> v = to_double_vector(t);
  if (t.rank() <= 1 && t.numel() == 1) return std::vector<double>(static_cast<size_t>(channels), v[0]);
  if (per_channel > 0 && t.rank() == 1 && t.dim(0) == per_channel) return v;
  return ctx.invalid(std::string(name) + " has shape " + shape_to_string(t.shape()) + ", expected a scalar" +
                     (per_channel > 0 ? " or [" + std::to_string(per_channel) + "]" : std::string()));
}

// x - x_zero_point as int64 (padding then contributes zero, i.e. pads with the zero point).
std::vector<int64_t> shifted_input(const Tensor& x, double zero_point) {
  std::vector<double> v = to_double_vector(x);
  std::vector<int64_t> out(v.size());
  const int64_t zp = static_cast<int64_t>(zero_point);
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<int64_t>(v[i]) - zp;
  return out;
}

// w - w_zero_point[m] as int64, per output channel m.
std::vector<int64_t> shifted_weight(const Tensor& w, const std::vector<double>& zero_points) {
  std::vector<double> v = to_double_vector(w);
  std::vector<int64_t> out(v.size());
  const int64_t per_m = w.dim(0) == 0 ? 0 : w.numel() / w.dim(0);
  for (size_t i = 0; i < v.size(); ++i)
    out[i] = static_cast<int64_t>(v[i]) - static_cast<int64_t>(zero_points[i / static_cast<size_t>(per_m)]);
  return out;
}

Status check_zero_point_dtype(const KernelContext& ctx, size_t slot, const char* name, DataType expected) {
  if (ctx.has_input(slot) && ctx.input(slot).dtype() != expected)
    return ctx.invalid(std::string(name) + " dtype " + std::string(dtype_name(ctx.input(slot).dtype())) +
                       " differs from " + std::string(dtype_name(expected)));
  return Status::ok();
}

// ConvInteger(x, w, x_zero_point?, w_zero_point?) -> int32.
Status conv_integer_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  TANDEM_ASSIGN_OR_RETURN(ConvLayout l, conv_layout(ctx, x, w, false));
  if (!is_8bit(x.dtype()) || !is_8bit(w.dtype()))
    return ctx.invalid("x and w must be uint8 or int8, got " + std::string(dtype_name(x.dtype())) + " and " +
                       std::string(dtype_name(w.dtype())));
  TANDEM_RETURN_IF_ERROR(check_zero_point_dtype(ctx, 2, "x_zero_point", x.dtype()));
  TANDEM_RETURN_IF_ERROR(check_zero_point_dtype(ctx, 3, "w_zero_point", w.dtype()));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> x_zp, per_channel_param(ctx, 2, "x_zero_point", 0, 1, 0.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> w_zp,
                          per_channel_param(ctx, 3, "w_zero_point", l.out_channels, l.out_channels, 0.0));
  TANDEM_ASSIGN_OR_RETURN(Window win, window_geometry(ctx.node(), l.in_spatial, l.kernel_spatial, WindowOptions{}));
  const Shape y_shape = output_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  std::vector<int64_t> acc(static_cast<size_t>(y_numel), 0);
  conv_forward(shifted_input(x, x_zp[0]), shifted_weight(w, w_zp), l, win, acc);
  Tensor y(DataType::int32, y_shape);
  int32_t* out = y.data<int32_t>();
  // The spec allows the accumulation to wrap in 32 bits.
  for (int64_t i = 0; i < y_numel; ++i) out[i] = static_cast<int32_t>(static_cast<uint32_t>(acc[i]));
  ctx.set_output(0, y);
  return Status::ok();
}

// QLinearConv(x, x_scale, x_zp, w, w_scale, w_zp, y_scale, y_zp, B?):
//   y = saturate(round_half_even((sum (x - x_zp)(w - w_zp) + B) * x_scale * w_scale / y_scale) + y_zp)
Status qlinear_conv_kernel(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  for (size_t slot : {1, 2, 4, 5, 6, 7})
    if (!ctx.has_input(slot)) return ctx.invalid("required input " + std::to_string(slot) + " is missing");
  TANDEM_ASSIGN_OR_RETURN(ConvLayout l, conv_layout(ctx, x, w, false));
  if (!is_8bit(x.dtype()) || !is_8bit(w.dtype()))
    return ctx.invalid("x and w must be uint8 or int8, got " + std::string(dtype_name(x.dtype())) + " and " +
                       std::string(dtype_name(w.dtype())));
  const DataType y_type = ctx.input(7).dtype();
  if (!is_8bit(y_type)) return ctx.invalid("y_zero_point must be uint8 or int8");
  TANDEM_RETURN_IF_ERROR(check_zero_point_dtype(ctx, 2, "x_zero_point", x.dtype()));
  TANDEM_RETURN_IF_ERROR(check_zero_point_dtype(ctx, 5, "w_zero_point", w.dtype()));
  for (size_t slot : {1, 4, 6})
    if (!is_float_type(ctx.input(slot).dtype())) return ctx.invalid("scale input " + std::to_string(slot) + " must be float");
  const int64_t m_count = l.out_channels;
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> x_scale, per_channel_param(ctx, 1, "x_scale", 0, 1, 1.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> x_zp, per_channel_param(ctx, 2, "x_zero_point", 0, 1, 0.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> w_scale, per_channel_param(ctx, 4, "w_scale", m_count, m_count, 1.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> w_zp, per_channel_param(ctx, 5, "w_zero_point", m_count, m_count, 0.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> y_scale, per_channel_param(ctx, 6, "y_scale", 0, 1, 1.0));
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> y_zp, per_channel_param(ctx, 7, "y_zero_point", 0, 1, 0.0));
  if (y_scale[0] == 0.0) return ctx.invalid("y_scale is zero");
  TANDEM_ASSIGN_OR_RETURN(Window win, window_geometry(ctx.node(), l.in_spatial, l.kernel_spatial, WindowOptions{}));
  const Shape y_shape = output_shape(l, win.out);
  TANDEM_ASSIGN_OR_RETURN(int64_t y_numel, conv_pool::checked_numel(ctx, y_shape));
  const int64_t out_size = shape_numel(win.out);
  std::vector<int64_t> acc(static_cast<size_t>(y_numel), 0);
  if (ctx.has_input(8)) {
    const Tensor& b = ctx.input(8);
    if (b.dtype() != DataType::int32 || b.rank() != 1 || b.dim(0) != m_count)
      return ctx.invalid("bias must be int32 of shape [" + std::to_string(m_count) + "], got " +
                         std::string(dtype_name(b.dtype())) + shape_to_string(b.shape()));
    const int32_t* bp = b.data<int32_t>();
    for (int64_t n = 0; n < l.batch; ++n)
      for (int64_t m = 0; m < m_count; ++m)
        for (int64_t p = 0; p < out_size; ++p) acc[(n * m_count + m) * out_size + p] = bp[m];
  }
  conv_forward(shifted_input(x, x_zp[0]), shifted_weight(w, w_zp), l, win, acc);
  const double lo = y_type == DataType::uint8 ? 0.0 : -128.0, hi = y_type == DataType::uint8 ? 255.0 : 127.0;
  Tensor y(y_type, y_shape);
  for (int64_t i = 0; i < y_numel; ++i) {
    const int64_t m = m_count == 0 || out_size == 0 ? 0 : (i / out_size) % m_count;
    // The multiplier is formed in float32, as the scales are float32 values.
    const float multiplier = static_cast<float>(x_scale[0]) * static_cast<float>(w_scale[m]) / static_cast<float>(y_scale[0]);
    double q = std::nearbyint(static_cast<double>(acc[i]) * multiplier) + y_zp[0];
    if (std::isnan(q)) return ctx.invalid("requantized value is NaN (check the scales)");
    q = q < lo ? lo : (q > hi ? hi : q);
    if (y_type == DataType::uint8) y.data<uint8_t>()[i] = static_cast<uint8_t>(q);
    else y.data<int8_t>()[i] = static_cast<int8_t>(q);
  }
  ctx.set_output(0, y);
  return Status::ok();
}

}  // namespace

void register_conv_kernels(KernelTable& t) {
  t.add("", "Conv", &conv_kernel);
  t.add("", "ConvTranspose", &conv_transpose_kernel);
  t.add("", "ConvInteger", &conv_integer_kernel);
  t.add("", "QLinearConv", &qlinear_conv_kernel);
}

}  // namespace tandem
