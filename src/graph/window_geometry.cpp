// window_geometry.cpp: the ONNX window rules of window_geometry.h.
#include "graph/window_geometry.h"

#include <algorithm>

namespace tandem {

namespace {

Status invalid(const Node& node, const std::string& msg) { return invalid_argument(node.label() + " " + msg); }

// Floor / ceil division for a positive divisor, correct for negative numerators.
int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

}  // namespace

Result<AutoPad> read_auto_pad(const Node& node) {
  const std::string s = node.attr_string("auto_pad", "NOTSET");
  if (s == "NOTSET" || s.empty()) return AutoPad::notset;
  if (s == "SAME_UPPER") return AutoPad::same_upper;
  if (s == "SAME_LOWER") return AutoPad::same_lower;
  if (s == "VALID") return AutoPad::valid;
  return invalid(node, "auto_pad '" + s + "' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID");
}

Result<std::vector<int64_t>> read_window_ints(const Node& node, const std::string& name, size_t n, int64_t fallback,
                                              int64_t min_value) {
  if (!node.has_attr(name)) return std::vector<int64_t>(n, fallback);
  std::vector<int64_t> v = node.attr_ints(name);
  if (v.size() != n)
    return invalid(node, name + " has " + std::to_string(v.size()) + " values, expected " + std::to_string(n));
  for (int64_t x : v)
    if (x < min_value || x > kMaxWindowAttr)
      return invalid(node, name + " value " + std::to_string(x) + " is out of range [" + std::to_string(min_value) +
                               ", " + std::to_string(kMaxWindowAttr) + "]");
  return v;
}

Result<WindowAttributes> read_window_attributes(const Node& node, size_t rank, const WindowOptions& options) {
  WindowAttributes a;
  TANDEM_ASSIGN_OR_RETURN(a.strides, read_window_ints(node, "strides", rank, 1, 1));
  if (options.has_dilations) {
    TANDEM_ASSIGN_OR_RETURN(a.dilations, read_window_ints(node, "dilations", rank, 1, 1));
  } else {
    a.dilations.assign(rank, 1);
  }
  TANDEM_ASSIGN_OR_RETURN(a.pads, read_window_ints(node, "pads", 2 * rank, 0, 0));
  TANDEM_ASSIGN_OR_RETURN(a.auto_pad, read_auto_pad(node));
  a.ceil_mode = options.has_ceil_mode && node.attr_int("ceil_mode", 0) != 0;
  if (!options.transposed) {
    a.output_padding.assign(rank, 0);
    return a;
  }
  TANDEM_ASSIGN_OR_RETURN(a.output_padding, read_window_ints(node, "output_padding", rank, 0, 0));
  if (node.has_attr("output_shape")) {
    a.output_shape = node.attr_ints("output_shape");
    if (a.output_shape.size() == rank + 2) a.output_shape.erase(a.output_shape.begin(), a.output_shape.begin() + 2);
    if (a.output_shape.size() != rank)
      return invalid(node, "output_shape has " + std::to_string(a.output_shape.size()) + " values, expected " +
                               std::to_string(rank));
    for (int64_t v : a.output_shape)
      if (v < 0 || v > kMaxWindowAttr) return invalid(node, "output_shape value " + std::to_string(v) + " is out of range");
  }
  return a;
}

Status check_kernel_shape(const Node& node, const std::vector<int64_t>& kernel, size_t rank) {
  if (kernel.size() != rank)
    return invalid(node, "kernel_shape has " + std::to_string(kernel.size()) + " values, expected " + std::to_string(rank));
  int64_t taps = 1;
  for (int64_t k : kernel) {
    if (k < 1 || k > kMaxWindowAttr) return invalid(node, "kernel_shape value " + std::to_string(k) + " is out of range");
    taps *= k;
    if (taps > kMaxWindowAttr) return invalid(node, "kernel_shape has more than 2^31 taps");
  }
  return Status::ok();
}

Result<WindowDim> window_dim(const Node& node, const WindowAttributes& a, size_t d, int64_t in, int64_t kernel) {
  if (kernel < 1 || kernel > kMaxWindowAttr)
    return invalid(node, "kernel_shape value " + std::to_string(kernel) + " is out of range");
  const int64_t s = a.strides[d], ext = a.extent(d, kernel);
  WindowDim w;
  if (a.same()) {
    w.out = same_output_size(in, s);
    const int64_t total = std::max<int64_t>(0, (w.out - 1) * s + ext - in);
    const int64_t small = total / 2, large = total - total / 2;
    w.pad_begin = a.auto_pad == AutoPad::same_upper ? small : large;
    w.pad_end = a.auto_pad == AutoPad::same_upper ? large : small;
    return w;
  }
  w.pad_begin = a.explicit_pad_begin(d);
  w.pad_end = a.explicit_pad_end(d);
  const int64_t span = in + w.pad_begin + w.pad_end - ext;
  if (span < 0)
    return invalid(node, "spatial dim " + std::to_string(d) + " of size " + std::to_string(in) + " (padded " +
                             std::to_string(in + w.pad_begin + w.pad_end) + ") is smaller than the window extent " +
                             std::to_string(ext));
  if (a.ceil_mode) {
    w.out = ceil_div(span, s) + 1;
    // The last window must start inside the input or the begin padding.
    if ((w.out - 1) * s >= in + w.pad_begin) --w.out;
  } else {
    w.out = span / s + 1;
  }
  return w;
}

Result<WindowDim> transposed_window_dim(const Node& node, const WindowAttributes& a, size_t d, int64_t in,
                                        int64_t kernel) {
  if (kernel < 1 || kernel > kMaxWindowAttr)
    return invalid(node, "kernel_shape value " + std::to_string(kernel) + " is out of range");
  const int64_t full = a.strides[d] * (in - 1) + a.output_padding[d] + a.extent(d, kernel);
  WindowDim w;
  if (!a.output_shape.empty() || a.same()) {
    w.out = !a.output_shape.empty() ? a.output_shape[d] : in * a.strides[d];
    const int64_t total = full - w.out;
    if (total < 0) {
      w.pad_begin = 0;  // the extra outputs go at the end, as with output_padding
      w.pad_end = total;
    } else if (a.auto_pad == AutoPad::same_upper) {
      w.pad_begin = total / 2;
      w.pad_end = total - total / 2;
    } else {
      w.pad_begin = total - total / 2;
      w.pad_end = total / 2;
    }
    return w;
  }
  w.pad_begin = a.explicit_pad_begin(d);
  w.pad_end = a.explicit_pad_end(d);
  w.out = full - w.pad_begin - w.pad_end;
  if (w.out < 0)
    return invalid(node, "pads " + std::to_string(w.pad_begin) + "+" + std::to_string(w.pad_end) +
                             " exceed the output size " + std::to_string(full) + " of spatial dim " + std::to_string(d));
  return w;
}

Result<WindowGeometry> window_geometry(const Node& node, const Shape& in_spatial, const std::vector<int64_t>& kernel,
                                       const WindowOptions& options) {
  const size_t r = in_spatial.size();
  TANDEM_RETURN_IF_ERROR(check_kernel_shape(node, kernel, r));
  TANDEM_ASSIGN_OR_RETURN(WindowAttributes a, read_window_attributes(node, r, options));
  WindowGeometry g;
  g.in = in_spatial;
  g.kernel = kernel;
  g.strides = a.strides;
  g.dilations = a.dilations;
  g.out.assign(r, 0);
  g.pad_begin.assign(r, 0);
  g.pad_end.assign(r, 0);
  for (size_t d = 0; d < r; ++d) {
    Result<WindowDim> w = options.transposed ? transposed_window_dim(node, a, d, in_spatial[d], kernel[d])
                                             : window_dim(node, a, d, in_spatial[d], kernel[d]);
    if (!w) return w.status();
    g.out[d] = w->out;
    g.pad_begin[d] = w->pad_begin;
    g.pad_end[d] = w->pad_end;
  }
  return g;
}

}  // namespace tandem
