// conv_geometry.h: the window of a float convolution or ConvTranspose as oneDNN and the
// backend's own patch kernel take it, from the ONNX rules of graph/window_geometry.h.
// Build-time helpers; they read the node's attributes only.
#pragma once

#include <cstdint>
#include <vector>

#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::cpu {

struct Geometry {
  std::vector<int64_t> strides, dilations, pads_begin, pads_end;
  Shape dst;  // the output's dims
};

// Convolution of input dims `x` with weight dims `w` [O, C/G, k...].
Status conv_geometry(const Node& n, const Shape& x, const Shape& w, Geometry* g);

// ConvTranspose of input dims `x` with weight dims `w` [C, O/G, k...] in `group` groups. The end
// pads oneDNN sees absorb output_padding (oneDNN has none).
Status deconv_geometry(const Node& n, const Shape& x, const Shape& w, int64_t group, Geometry* g);

// A 2-D ConvTranspose of geometry `g` whose every input pixel writes its own k x k patch
// (deconv_patch.h): kernel = stride, no dilation, padding or output padding. `xs`: input dims
// (N x C x H x W), `ws`: weight dims. The caller checks that there is one group.
bool patch_geometry(const Shape& xs, const Shape& ws, const Geometry& g);

// The same from the node and its constant weight alone, for every input size: one group and
// no output_shape attribute (which would make the padding depend on the input).
bool patch_node(const Node& n, const Tensor& w);

}  // namespace tandem::cpu
