// conv_geometry.cpp: convolution and ConvTranspose windows for the cpu backend (conv_geometry.h).
#include "backends/cpu/conv_geometry.h"

#include "graph/window_geometry.h"

namespace tandem::cpu {

Status conv_geometry(const Node& n, const Shape& x, const Shape& w, Geometry* g) {
  const Shape in(x.begin() + 2, x.end());
  const std::vector<int64_t> kernel(w.begin() + 2, w.end());
  Result<WindowGeometry> win = window_geometry(n, in, kernel, WindowOptions{});
  if (!win) return unsupported(win.status().message());
  g->strides = win->strides;
  g->dilations = win->dilations;
  g->pads_begin = win->pad_begin;
  g->pads_end = win->pad_end;
  g->dst = {x[0], w[0]};
  for (int64_t out : win->out) {
    if (out <= 0) return unsupported(n.label() + " empty output");
    g->dst.push_back(out);
  }
  return Status::ok();
}

Status deconv_geometry(const Node& n, const Shape& x, const Shape& w, int64_t group, Geometry* g) {
  const size_t sd = x.size() - 2;
  WindowOptions transposed;
  transposed.transposed = true;
  Result<WindowAttributes> a = read_window_attributes(n, sd, transposed);
  if (!a) return unsupported(a.status().message());
  g->strides = a->strides;
  g->dilations = a->dilations;
  g->pads_begin.assign(sd, 0);
  g->pads_end.assign(sd, 0);
  g->dst = {x[0], w[1] * group};
  for (size_t i = 0; i < sd; ++i) {
    Result<WindowDim> d = transposed_window_dim(n, *a, i, x[2 + i], w[2 + i]);
    if (!d) return unsupported(d.status().message());
    if (d->out <= 0 || d->pad_begin < 0) return unsupported(n.label() + " unsupported ConvTranspose geometry");
    g->pads_begin[i] = d->pad_begin;
    g->pads_end[i] = d->pad_end - a->output_padding[i];  // oneDNN has no output_padding: it is less end padding
    g->dst.push_back(d->out);
  }
  return Status::ok();
}

bool patch_geometry(const Shape& xs, const Shape& ws, const Geometry& g) {
  if (xs.size() != 4 || ws.size() != 4 || ws[2] != ws[3]) return false;
  for (size_t i = 0; i < 2; ++i)
    if (ws[2 + i] != g.strides[i] || g.dilations[i] != 1 || g.pads_begin[i] != 0 || g.pads_end[i] != 0 ||
        g.dst[2 + i] != xs[2 + i] * g.strides[i])
      return false;
  return true;
}

bool patch_node(const Node& n, const Tensor& w) {
  if (n.op_type != "ConvTranspose" || w.rank() != 4 || n.attr_int("group", 1) != 1 || n.has_attr("output_shape"))
    return false;
  const Shape probe = {1, w.dim(0), 5, 5};
  Geometry g;
  return deconv_geometry(n, probe, w.shape(), 1, &g).is_ok() && patch_geometry(probe, w.shape(), g);
}

}  // namespace tandem::cpu
