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
// TANDEM_CPU_QNARROW=0 (read at each compile) keeps oneDNN for these convolutions.
#pragma once

#include <string>
#include <vector>

#include "backends/cpu/builder.h"

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
// 16-lane blocks pad by a fifth or more (at most 12 of 16, 25 of 32 or 38 of 48), at least 16 output
// pixels per row, and the switch on.
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

}  // namespace tandem::cpu
