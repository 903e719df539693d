// qconv_narrow.h: QLinearConv with few output channels on the backend's own int8 kernel, pixels
// across the vector lanes.
//
// oneDNN's int8 convolutions put output channels across the lanes of a 16-lane register, so an
// output channel count that is not a multiple of 16 pays for the padding: 24 channels compute
// as 32 (PP-OCRv4 det's 3x3 96 -> 24 convolutions at 160x160, its two largest int8 layers, run
// at 3/4 of the machine's VNNI rate). This kernel instead puts 16 output pixels of one row
// across the lanes and keeps one accumulator register per output channel: each AVX512_VNNI dot
// product (vpdpbusd) multiplies four input channels of 16 pixels by the four weights of one
// output channel, broadcast from memory, so no lane is idle whatever the channel count.
//
// The source rows are rewritten, as the output rows need them, into a ring of KH rows per
// thread: channel quads outermost, then the padded row's pixels, four bytes each ([quad][pixel]
// 32-bit words), padding holding the source zero point so that it cancels in the product. The
// product sum (x - x_zp)(w) is the raw sum minus x_zp * sum(w) (folded into the bias once), and
// the requantization is the reference kernels' own: round_half_even(double(acc + bias) * m[o])
// + y_zp, saturated, with m[o] = x_scale * w_scale[o] / y_scale formed in float32, so the
// results equal the reference bit for bit. Outputs are written channels-last.
//
// A ConvInteger whose product goes on in float32 (dynamically quantized models: Cast, the
// product by x_scale * w_scale, a bias, an activation) takes the same kernel with a float
// tail: the exact accumulator converted to float32, then each of the tail's per-channel
// products and sums as the separate nodes compute them, then its pointwise ops, written as
// float32 channels-last. The source zero point may be a runtime scalar (DynamicQuantizeLinear's).
//
// TANDEM_CPU_QNARROW=0 (read at each compile) keeps oneDNN for these convolutions.
#pragma once

#include <string>
#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/ew_program.h"

namespace tandem::cpu {

// A QLinearConv the kernel takes: 2-D, one group, stride and dilation 1, an 8-bit source with a
// constant per-tensor zero point (int8 is read as x + 128, its zero point likewise), C a
// multiple of 4, weights that are int8 after their zero points (w8, [O][C][KH][KW]) and a
// requantization known at build.
struct NarrowQConv {
  std::string label;
  int src = -1;              // uint8 or int8, channels-last
  int out = -1;              // uint8 or int8 of dst's shape, defined channels-last here
  int32_t x_zero_point = 0;  // the source's
  int32_t y_zero_point = 0;
  std::vector<int8_t> weights;    // [O][C][KH][KW]
  std::vector<int32_t> bias;      // O values, or empty
  std::vector<double> factors;    // O requantization multipliers (float32 values)
  int64_t pad_top = 0, pad_left = 0;
};

// True when the kernel is worth taking for a convolution of input dims `xs` ([N, C, H, W]),
// weight dims `ws` ([O, C, KH, KW]) and output dims `dst`, with the geometry named: the
// conditions above, AVX512_VNNI under the ISA cap, an output channel count that oneDNN's
// 16-lane blocks pad by a fifth or more (at most 12 of 16, 25 of 32 or 38 of 48), a window
// larger than 1x1 (for a 1x1 one the ring's rewrite of each source row costs more than the
// padded lanes: 48 -> 12 channels at 160x160 took 0.15 ms against oneDNN's 0.11), at least 16
// output pixels per row, and the switch on.
bool narrow_qconv_fits(const Shape& xs, const Shape& ws, const Shape& dst, const std::vector<int64_t>& strides,
                       const std::vector<int64_t>& dilations, int64_t groups, DataType x_type);

// Adds the kernel for `c` (checked by narrow_qconv_fits); defines c.out channels-last.
Status add_narrow_qconv(Builder& b, NarrowQConv c, const Shape& xs, const Shape& ws, const Shape& dst);

// A QLinearConv's values (instance value ids; -1 for an absent zero point).
struct NarrowQConvValues {
  int x = -1, x_scale = -1, x_zero_point = -1, w_scale = -1, y_scale = -1, y_zero_point = -1, y = -1;
};
// The kernel for QLinearConv `v` (checked by narrow_qconv_fits): `w8` the weights minus their
// zero points as int8, `bias` its int32 bias (or undefined), `pads_begin` its top and left
// padding. With `table` (or `float_table`) the kernel writes y_q into a temporary of `y_type`
// and a byte map (or a byte-to-float map) writes v.y, as the QLinearConv's absorbed chain
// says (int8.h: add_byte_map, add_byte_to_float). Unsupported when a scale or zero point is
// not known at build.
Status add_narrow_qlinear_conv(Builder& b, const NarrowQConvValues& v, const Tensor& w8, const Tensor& bias,
                               const std::vector<int64_t>& pads_begin, const Shape& xs, const Shape& ws,
                               const Shape& dst, const uint8_t* table, const float* float_table, DataType y_type,
                               const std::string& label);

// A ConvInteger's float tail in the form the kernel takes: per-tensor or per-channel products
// and sums first (v = float32(acc), then v * f, v + t or v - t, each rounded to float32 as the
// separate node rounds it), then pointwise ops over the output (ReLU, clipping, activations).
// An op's factors or terms are constants, or a runtime float32 value.
inline constexpr int kMaxChannelOps = 4;
struct NarrowFloatTail {
  struct ChannelOp {
    Ew code = Ew::mul;            // mul, add or sub
    int value = -1;               // a runtime value of 1 or O floats (instance id), or -1
    std::vector<float> constant;  // else its 1 or O values
    bool per_channel = false;
  };
  std::vector<ChannelOp> channel_ops;
  EwProgram pointwise;
};
// The tail of a ConvInteger with O output channels from its fused program `p` (operands
// instance value ids); false when `p` does not have the form above.
bool narrow_float_tail(Builder& b, const EwProgram& p, int64_t O, NarrowFloatTail* tail);
// The kernel for ConvInteger `label` (checked by narrow_qconv_fits) with float tail `tail`:
// `x` its source, `x_zero_point` its zero point value (-1: none; known, or a uint8 or int8
// scalar read at each run), `w8` the weights minus their zero points as int8, `pads_begin` the
// top and left padding. Defines `out` (float32) channels-last.
Status add_narrow_conv_integer(Builder& b, int x, int x_zero_point, const Tensor& w8, NarrowFloatTail tail,
                               const std::vector<int64_t>& pads_begin, const Shape& xs, const Shape& ws,
                               const Shape& dst, int out, const std::string& label);

}  // namespace tandem::cpu
