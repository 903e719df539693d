// int8.h: what the quantized op families of the cpu backend share (quantize.cpp, qconv.cpp,
// qmatmul.cpp, and the com.microsoft families qelementwise.cpp, qpool.cpp, qgemm.cpp): the
// element-type rule of the quantized ops, quantization parameters read at
// instance build time, weight zero points folded into int8 weights, zero points and output
// scales handed to oneDNN (all in int8_common.cpp), and the backend's own integer kernels for
// what oneDNN cannot take exactly (qdirect.cpp).
//
// Weights and their zero points must be known when an instance is built: initializers, folded
// constants, or small integer inputs the instance is keyed by (otherwise the node is declined
// and runs on the reference backend). Scales and the source and destination zero points may
// also be runtime values (DynamicQuantizeLinear's outputs, float graph inputs), read at each run.
//
// The functions here are called while an instance is built, on the building thread; the kernels
// they add are const and run concurrently on different contexts.
#pragma once

#include <initializer_list>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/resize.h"
#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::cpu {

// QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear, QLinearConv, ConvInteger,
// QLinearMatMul, MatMulInteger (default domain, "") and the com.microsoft quantized ops
// (QLinearAdd/Mul/Sigmoid/LeakyRelu/GlobalAveragePool/AveragePool/Concat, QGemm,
// DynamicQuantizeMatMul, MatMulIntegerToFloat). `domain` is canonical (graph.h).
bool is_int8_op(const std::string& domain, const std::string& op);

// The element-type rule of those ops on the cpu backend: 8-bit data (uint8/int8), float32
// scales, int32 bias and integer-product outputs, float32 real values. Anything else is
// declined with a reason that names the node and the input.
Status supports_int8_types(const Node& n, const NodeTypes& types);

// True for uint8 and int8.
inline bool is_8bit(DataType t) { return t == DataType::uint8 || t == DataType::int8; }

// The reference kernels' requantization of a real value v (already divided by the output
// scale, in double): saturate(round_half_to_even(v) + zero_point) into [lo, hi] (the 8-bit
// type's range). Inline and branch-free, so that the ISA variants of a loop vectorize it.
template <class Q>
__attribute__((always_inline)) inline Q requantize(double v, double zero_point, double lo, double hi) {
  double q = __builtin_rint(v) + zero_point;  // default rounding mode: ties to even
  q = q < lo ? lo : q;
  q = q > hi ? hi : q;
  return static_cast<Q>(static_cast<int32_t>(q));
}

// A scale or zero point known at build time, widened to `channels` values: the tensor holds one
// value per channel, or one value (a scalar or one-element tensor) that is repeated.
// `what` names the input in messages.
Result<std::vector<float>> known_scales(Builder& b, int v, int64_t channels, const std::string& what);
Result<std::vector<int32_t>> known_zero_points(Builder& b, int v, int64_t channels, const std::string& what);

// Where a weight's zero point comes from: one for all, one per slice of the leading dim
// (convolution output channels), or one per index of the last dim (matrix columns).
enum class ZeroPointAxis { leading, last };

// Weights minus their zero points as int8 for oneDNN (`zero_points` holds one value, or one per
// output channel along `axis`): fails when a difference leaves [-128, 127]
// (e.g. uint8 weights around a zero point of 0), or, on oneDNN paths without VNNI, when a
// weight's magnitude exceeds 63 (there u8 x s8 pairs are summed in saturating int16).
Result<Tensor> signed_weights(const Tensor& w, const std::vector<int32_t>& zero_points, ZeroPointAxis axis,
                              const std::string& label);

// Float weights as int8 times one scale per output channel, zero point 0, when that is exact:
// every weight equals float32(q * scale) bit for bit, as DequantizeLinear of symmetric int8
// weights makes them (the largest magnitude per channel is k * scale for some k in 1..127,
// tried with one and two ulps around m / k). Channels are the leading dim (`lead`: a
// convolution's [O, ...], or a 2-D [N, K]) or the last dim of a 2-D [K, N]. Without VNNI only
// weights within kNoVnniWeightMax qualify (oneDNN's int16 pair sums). False otherwise.
bool exact_int8_weights(const Tensor& w, bool lead, Tensor* q, std::vector<float>* scales);
// The same for weights that need 8 bits with a zero point, as asymmetric uint8 quantization
// writes them: uint8 `q`, w = float32((q - zero_point[c]) * scale[c]), scales per channel as
// above (k up to 255, coarsest grid first); `zero_points` gets one value when one covers every
// channel's integers, else one per channel. Only with VNNI (where the weight-offset route runs
// them, qconv_offset.cpp). False otherwise.
bool exact_uint8_weights(const Tensor& w, bool lead, Tensor* q, std::vector<float>* scales,
                         std::vector<uint8_t>* zero_points);

// A ConvTranspose's weights [C, O, k...] (one group) in a convolution's order [O, C, k...].
Tensor deconv_weights_as_conv(const Tensor& w);

// A ConvInteger step (inputs x, w, x_zero_point, w_zero_point) whose int32 product goes on in
// float32 through `post` (ops applied to the product, whose operands are compile value ids of
// constants), as if a Cast to float32 and those ops had been absorbed (qconv.cpp). For
// qdq_fusion.cpp: a DequantizeLinear -> Conv whose float output float ops read.
std::unique_ptr<OpSpec> make_conv_integer_to_float(const Step& step, EwProgram post);

// The same for a MatMulInteger step (inputs a, b, a_zero_point, b_zero_point; qmatmul.cpp): a
// DequantizeLinear -> MatMul whose float output float ops read, `post` opening with the
// product by a_scale * b_scale[n] (one, or one per column).
std::unique_ptr<OpSpec> make_matmul_integer_to_float(const Step& step, EwProgram post);

// The spec of a QDQ-format ConvTranspose rewritten into one int8 step (qdeconv.cpp; inputs
// x_q, x_scale, x_zp, w_q [O, C, k...] int8, w_scale, w_zp, y_scale, y_zp, [int32 bias]; the
// ConvTranspose's node and attributes, one group). For qdq_fusion.cpp.
std::unique_ptr<OpSpec> make_qdq_conv_transpose();

// True when oneDNN's int8 kernels on this machine (and under TANDEM_CPU_ISA) use VNNI dot
// products, whose int32 accumulation cannot saturate.
bool onednn_has_vnni();
// Without VNNI, int8 weights within [-kNoVnniWeightMax - 1, kNoVnniWeightMax] keep every
// int16 pair sum of u8 x s8 products in range (2 x 255 x 64 < 32768).
inline constexpr int32_t kNoVnniWeightMax = 63;

// A oneDNN zero-point argument (DNNL_ARG_ATTR_ZERO_POINTS | arg) for the zero point held by
// value `v` (uint8, int8 or int32 scalar), or 0 when `v` is absent: known values become a fixed
// int32 memory; runtime ones get a conversion kernel into an int32 temporary. Sets *is_zero when
// the zero point is known to be 0 (the attribute can then be left out).
Result<DnnlKernel::Arg> zero_point_arg(Builder& b, int v, int arg, const std::string& label, bool* is_zero);

// oneDNN's output scales for a requantization x_scale * w_scale[m] / y_scale (formed in
// float32, like the reference kernels), m over `channels` output channels (dst dim of
// `channel_mask`). When the three scales are known they are fixed in `attr` (per channel only
// where they differ) and the returned argument is unused (*runtime false); otherwise `attr`
// takes runtime scales and a kernel computes them into a float32 temporary before each run,
// which the returned argument (DNNL_ARG_ATTR_OUTPUT_SCALES) binds.
Result<DnnlKernel::Arg> output_scales(Builder& b, int x_scale, int w_scale, int y_scale, int64_t channels,
                                      int channel_mask, const std::string& label, dnnl::primitive_attr* attr,
                                      bool* runtime);

// Multipliers x_scale * w_scale[m] / y_scale (float32) computed before each run into a new
// float32 temporary of `*count` values (1, or `channels` when w_scale has one per channel);
// returns the temporary's id. Scales may be known or runtime values.
Result<int> add_scale_kernel(Builder& b, int x_scale, int w_scale, int y_scale, int64_t channels,
                             const std::string& label, int64_t* count);

// A zero point as a kernel reads it at run time: a known value, or a runtime scalar.
struct ZeroPoint {
  int value = -1;  // runtime scalar (instance value id), or -1 for `known`
  int32_t known = 0;
  DataType type = DataType::uint8;
  int32_t read(const RunCtx& ctx) const;
};
// The zero point held by `v` (absent: 0); a runtime one is added to `reads`.
Result<ZeroPoint> read_zero_point(Builder& b, int v, const std::string& what, std::vector<int>* reads);
// The same for a zero point that must have the data's type `type` (the com.microsoft ops'
// rule; another type is declined, and the reference kernel reports it).
Result<ZeroPoint> read_zero_point_of(Builder& b, int v, DataType type, const std::string& what, std::vector<int>* reads);

// A per-tensor scale as a kernel reads it at run time: a known value, or a runtime float32
// scalar (e.g. DynamicQuantizeLinear's y_scale).
struct Scale {
  int value = -1;  // runtime scalar (instance value id), or -1 for `known`
  float known = 1.0f;
  float read(const RunCtx& ctx) const { return value < 0 ? known : *static_cast<const float*>(ctx.ptr[value]); }
};
// The scale held by `v` (float32, one element); a runtime one is added to `reads`.
Result<Scale> read_scale(Builder& b, int v, const std::string& what, std::vector<int>* reads);

// The weights minus their zero points as int32 (any 8-bit weights; see signed_weights).
std::vector<int32_t> shifted_weights(const Tensor& w, const std::vector<int32_t>& zero_points, ZeroPointAxis axis);

// Integers `d` laid out like weights of `channels` output channels (along the leading axis, or
// the last): the output channel of element i, and each channel's smallest and largest value.
inline size_t weight_channel(size_t i, int64_t channels, int64_t count, ZeroPointAxis axis) {
  const auto j = static_cast<int64_t>(i);
  return static_cast<size_t>(axis == ZeroPointAxis::leading ? j / (count / channels) : j % channels);
}
struct ChannelRanges {
  std::vector<int32_t> lo, hi;  // [channels]
};
ChannelRanges channel_ranges(const std::vector<int32_t>& d, int64_t channels, ZeroPointAxis axis);

// --- Weights off int8 by an offset per output channel (qconv_offset.cpp) ---
// Weights (output channels and zero points along `axis`: the leading one for convolutions, the
// last for a matrix product's [K, N]) whose differences from their zero points leave int8 but
// span at most 256 values per channel, as asymmetric uint8 weights do:
// w - w_zero_point = w8 + offsets[o], w8 int8 (w's shape). Fails for other weights and on CPUs
// without VNNI (where oneDNN's int8 kernels need 7-bit weights).
struct OffsetWeights {
  Tensor w8;
  std::vector<int32_t> offsets;  // one per output channel
};
Result<OffsetWeights> offset_weights(const Tensor& w, const std::vector<int32_t>& zero_points, const std::string& label,
                                     ZeroPointAxis axis = ZeroPointAxis::leading);
// "A" or "A..B": the offsets' range, for notes and reports.
std::string describe_offsets(const std::vector<int32_t>& offsets);
// What the product on w8 misses, per output pixel p and channel o:
//   offsets[o] * S(p) * factor[o] * s,
// S(p) the sum of the source minus its zero point over p's window (all channels: one group),
// s the runtime float32 scalar `runtime` (1 when -1), factor[o] 1 when empty: the head's
// per-channel scales when the product's post-ops add it after its affine head.
struct OffsetCorrection {
  int src = -1;  // 8-bit source: channels-last [N, C, H, W], or a matrix product's plain [M, K]
  bool src_signed = false;  // (the source's type and zero point: set by the functions below)
  ZeroPoint src_zp;
  std::vector<int32_t> offsets;  // one per output channel
  std::vector<double> factor;    // one per output channel, one for all, or empty (1)
  int runtime = -1;
  std::vector<int64_t> kernel, strides, dilations, pad_begin;  // 2-D window geometry
};
// QLinearConv's or QLinearMatMul's requantization x_scale * w_scale[o] / y_scale for `channels`
// output channels, formed in float32 as its output scales are (output_scales); the scales must
// be known.
Result<std::vector<double>> requantization_factors(Builder& b, int x_scale, int w_scale, int y_scale,
                                                   int64_t channels, const std::string& label);
// Adds the kernel writing the share of a 2-D convolution ([N, O, OH, OW] float32,
// channels-last; `x` is the source's shape [N, C, H, W]) into `into` (a defined value of that
// type, shape and layout: the product's destination, which a sum post-op then adds to), or when
// -1 into a new temporary (for a binary post-op); returns the value written. `c` holds the
// source, the offsets and the window; the source's zero point is the value `x_zp` (-1: none),
// and the factors are the affine head's (scale[o] and its runtime scalar) when `head` has ops,
// else QLinearConv's requantization from the known scale values `x_scale`, `w_scale`, `y_scale`
// (x_scale -1: a ConvInteger without a head, factor 1).
struct ProductAffine;
Result<int> add_offset_share(Builder& b, OffsetCorrection c, int x_zp, const ProductAffine& head, int x_scale,
                             int w_scale, int y_scale, const Shape& x, const Shape& dst, int into,
                             const std::string& label);
// The share of a matrix product [M, K] x [K, N] on weights w8 + offsets[n]:
// offsets[n] * (sum_k a[m, k] - a_zp) * factor[n] * s, for the plain 8-bit source `c.src` read as
// M rows of K (`c.factor` and `c.runtime` as above), `a_zp` the source's zero point value (-1:
// none). Written into `into` (float32, plain, M * N values: the product's destination, which a
// sum post-op then adds to), or when -1 into a new [M, N] temporary; returns the value.
Result<int> add_offset_row_share(Builder& b, OffsetCorrection c, int a_zp, int64_t M, int64_t K, int64_t N,
                                 int into, const std::string& label);
// A convolution's int32 bias with a constant source zero point x_z folded in: bias[o] - x_z *
// sum(w8[o]) (`bias` may be undefined: 0), exact only without padding (a padded tap holds the
// zero point, not 0). Fails when a value leaves int32.
Result<Tensor> bias_with_source_zero_point(const Tensor& w8, const Tensor& bias, int64_t x_zero_point,
                                           int64_t channels);

// The backend's own integer products (qdirect.cpp), for what oneDNN cannot take exactly:
// weights whose difference from their zero point leaves int8, or u8 x s8 products that could
// saturate on CPUs without VNNI. Direct loops with int32 accumulation (wrapping, like the
// reference) and the reference kernels' requantization: round_half_even(double(acc) *
// multiplier) + y_zero_point, saturated. Much slower than oneDNN; exact.
struct IntegerProduct {
  std::string label;
  int src = -1;                  // uint8/int8 value: plain, or channels-last for a 2-D convolution
  ZeroPoint src_zp;
  std::vector<int32_t> weights;  // minus their zero points, in the ONNX layout
  // Matrix product only: a right operand known only at run time (uint8/int8 plain value,
  // e.g. attention scores), read instead of `weights`, with its zero point: one per column
  // when `weights_column_zp` holds them (known), else `weights_zp` (known or a runtime scalar).
  int weights_value = -1;
  ZeroPoint weights_zp;
  std::vector<int32_t> weights_column_zp;
  std::vector<int32_t> bias;     // one per output channel, or empty
  int scales = -1;               // multipliers (add_scale_kernel), or -1 for an int32 output
  int64_t scale_count = 1;
  ZeroPoint dst_zp;
  int out = -1;                  // value of the output type (float32: int32 results cast): plain, or
                                 // channels-last for a 2-D convolution
  std::vector<int> reads;        // runtime parameters read besides src and scales
};
// Convolution: x [N, C, spatial...], w [O, C/group, kernel...], dst [N, O, out...] (1-D to 3-D).
Status add_integer_conv(Builder& b, IntegerProduct p, const Shape& x, const Shape& w, const Shape& dst,
                        const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                        const std::vector<int64_t>& pads_begin, int64_t group);
// A 2-D convolution of `p` through oneDNN's float32 convolution of the integers (exact while
// every output channel's |bias| + 255 * sum |w| stays within 2^24; otherwise, or when oneDNN
// has no such primitive, it declines with `unsupported` and adds nothing): the source minus its
// zero point widened to float32, the product in the blocked layout. Without `tail`, a store
// kernel writes `p.out` by the own kernels' rule (int32, a fused Cast's float32, or requantized
// 8-bit); with it, the product takes the float32 post-ops `tail` (a ConvInteger's Cast and the
// elementwise ops after it) and writes the float32 `p.out`, which it defines blocked.
// add_integer_conv tries it first.
struct FloatTailOps {
  dnnl::post_ops ops;
  std::vector<DnnlKernel::Arg> args;  // binary post-op operands
};
Status add_integer_conv_float(Builder& b, IntegerProduct& p, const Shape& x, const Shape& w, const Shape& dst,
                              const std::vector<int64_t>& strides, const std::vector<int64_t>& dilations,
                              const std::vector<int64_t>& pads_begin, int64_t group, const FloatTailOps* tail);
// The same for a matrix product whose known weights are one [K, N] matrix for every batch
// (`p.weights`; column j's bound as above), or whose right operand is known only at run time
// (`p.weights_value` with a per-tensor zero point; any 8-bit value minus its zero point lies
// within 255 of zero, so K * 255 * 255 + |bias| must stay within 2^24: K up to 258, such as an
// attention product over up to 258 positions); add_integer_matmul tries it first.
Status add_integer_matmul_float(Builder& b, IntegerProduct& p, const Shape& a, const Shape& w, const Shape& dst);
// Matrix product with batch broadcasting: a [..., M, K], b [..., K, N] and dst [..., M, N] of one
// rank (1-D operands already promoted); the multipliers and zero points are per column.
Status add_integer_matmul(Builder& b, IntegerProduct p, const Shape& a, const Shape& w, const Shape& dst);

// An 8-bit matrix product on oneDNN's int8 matmul, or on the backend's own integer kernel
// where oneDNN cannot take it exactly (qmatmul.cpp): QLinearMatMul (`qlinear`: requantized
// 8-bit output) or MatMulInteger (int32 output). The right operand is `b_known` when given (a
// weight rearranged at build time, e.g. QGemm's transposed B), else `b`'s build-time value, else
// `b` read at run time. `out` is defined here unless `out_defined` (a temporary of the caller).
// `head` is the shape of the product's own output (before absorbed elementwise ops).
struct QMatMulOperands {
  std::string label;
  bool qlinear = false;
  int a = -1, a_zp = -1;  // left operand (8-bit) and its zero point (-1: none)
  int b = -1, b_zp = -1;  // right operand and its zero point(s) (-1: none)
  const Tensor* b_known = nullptr;
  int a_scale = -1, b_scale = -1, y_scale = -1, y_zp = -1;  // QLinearMatMul only
  int out = -1;
  bool out_defined = false;
  bool head_known = false;
  Shape head;
};
// `to_float` and `post`: MatMulInteger with a fused Cast to float32 and the elementwise ops after
// it (see qmatmul.cpp); false and empty for a plain product.
Status add_qmatmul(Builder& b, const QMatMulOperands& o, bool to_float, const EwProgram& post);

// DynamicQuantizeLinear of the float32 value `src` into new temporaries: uint8 data `*y` of
// src's shape, its float32 scale `*scale` and uint8 zero point `*zero_point` (quantize.cpp;
// the arithmetic of the reference kernel).
Status add_dynamic_quantize(Builder& b, int src, const std::string& label, int* y, int* scale, int* zero_point);
// The kernel of a DynamicQuantizeLinear step reading float32 value `x` and writing `outputs`
// (data, scale, zero point; -1 where omitted): the data channels-last where only integer
// convolutions read it and `x` is channels-last, blocked or a plain image of a few channels,
// else plain; in one pass where x's producer records its range (Builder::range_of).
Status add_dynamic_quantize_step(Builder& b, int x, const std::vector<int>& outputs, const std::string& label);

// Adds a kernel mapping the 8-bit value `x` into `y` byte by byte through `table` (256 entries,
// copied): y[i] = table[x[i]]. `y` (same shape, 8-bit) is defined with x's layout
// (byte_map.cpp).
Status add_byte_map(Builder& b, int x, int y, const uint8_t* table, const std::string& label);

// Adds a kernel mapping the channels-last 8-bit value `x` ([N, C, H, W], layout nhwc) through
// `table` (256 floats, copied) into the float32 value `y`, defined blocked where the backend's
// float path uses that layout (cpu_isa_level() >= 1), else plain (byte_map.cpp).
Status add_byte_to_float(Builder& b, int x, int y, const float* table, const std::string& label);

// Concat (along `axis`) of float32 `inputs` into the 8-bit `out`, quantized per tensor as it is
// written (qconcat.cpp): no float32 concatenation exists. Blocked inputs along channels of
// 4-D values give a channels-last `out`, others a plain one. `unsupported` when the inputs do
// not concatenate into `out`'s shape or are not float32.
// `upsampled` (empty, or one per input): non-null where inputs[i] is the source of a nearest
// Resize whose output the concatenation takes (the Resize absorbed, its kernel never run): the
// source is read through the tables (2-D values along channels only).
Status add_quantized_concat(Builder& b, const std::vector<int>& inputs, int64_t axis, int out, float scale,
                            int32_t zero_point, const std::string& label,
                            const std::vector<const NearestResize*>& upsampled = {});

// Concat -> DynamicQuantizeLinear in one step, like add_quantized_concat (qconcat.cpp): the range
// of the concatenation is the union of its inputs' ranges, taken from the inputs (an upsampled
// one's from the source pixels it reads), then the inputs are quantized into `out` (uint8) and
// the run's scale and zero point are written to `scale_out` (float32 scalar) and
// `zero_point_out` (uint8 scalar), each -1 when omitted.
Status add_dynamic_quantized_concat(Builder& b, const std::vector<int>& inputs, int64_t axis, int out, int scale_out,
                                    int zero_point_out, const std::string& label,
                                    const std::vector<const NearestResize*>& upsampled = {});

// DynamicQuantizeLinear's parameters from its input's range [lo, hi] (lo <= 0 <= hi, as min_max
// gives them), the reference kernel's arithmetic: scale = (hi - lo) / 255 and zero_point =
// saturate(round(-lo / scale)). `usable` is false for a zero or non-finite scale, where every
// value quantizes to zero point 0 (quantize.cpp).
struct DynamicQuantParams {
  float scale = 0;
  uint8_t zero_point = 0;
  bool usable = false;
};
DynamicQuantParams dynamic_quant_params(float lo, float hi);

// DequantizeLinear of the 8-bit value `bytes` with per-tensor parameters into a new plain
// float32 temporary, whose id is returned (quantize.cpp).
Result<int> add_dequantized(Builder& b, int bytes, float scale, int32_t zero_point, const std::string& label);

// --- 8-bit conversions (qrows.cpp), the reference kernels' arithmetic, for the running ISA ---
// QuantizeLinear on n values: y = saturate(round_half_even(x / scale) + zero_point), x / scale
// divided in float32, NaN to the zero point; scale must be non-zero and finite.
void quantize_u8(const float* x, uint8_t* y, int64_t n, float scale, float zero_point);
void quantize_s8(const float* x, int8_t* y, int64_t n, float scale, float zero_point);
// DequantizeLinear on n values: y = (x - zero_point) * scale (int32 data: in double).
void dequantize_u8(const uint8_t* x, float* y, int64_t n, float scale, int32_t zero_point);
void dequantize_s8(const int8_t* x, float* y, int64_t n, float scale, int32_t zero_point);
void dequantize_s32(const int32_t* x, float* y, int64_t n, float scale, int32_t zero_point);
// The same on `rows` rows of `lanes` values: row r of x at x + r * x_rs, of y at y + r * y_rs
// (strides in elements). Nothing past `lanes` in a row is read or written.
void quantize_rows(const float* x, int64_t x_rs, int64_t rows, int64_t lanes, void* y, int64_t y_rs, bool to_signed,
                   float scale, float zero_point);
void dequantize_rows(const void* x, int64_t x_rs, bool from_signed, int64_t rows, int64_t lanes, float* y,
                     int64_t y_rs, float scale, int32_t zero_point);
// quantize_rows with row r of x at x + x_offsets[r] (elements): a gather, e.g. of the source
// pixels of a nearest upsampling.
void quantize_rows_indexed(const float* x, const int64_t* x_offsets, int64_t rows, int64_t lanes, void* y,
                           int64_t y_rs, bool to_signed, float scale, float zero_point);
// min(0, x...) and max(0, x...) of n values, NaN ignored (DynamicQuantizeLinear's range).
void min_max(const float* x, int64_t n, float* lo, float* hi);
// Blocked float32 images [N, ceil(C / block), S, block] quantized into channels-last 8-bit
// values: channel c of pixel s of image n goes to y[(n * S + s) * y_channels + y_channel0 + c]
// (y_channels >= y_channel0 + C; a Concat's slice when larger). Lanes past C are skipped.
// Parallel over `threads`.
void quantize_blocked(int threads, const float* x, void* y, bool to_signed, int64_t N, int64_t C, int64_t S,
                      int64_t block, float scale, float zero_point, int64_t y_channels, int64_t y_channel0);
// True when quantize_planar_to_channels_last takes images of C channels: 1 to 4 (an image's
// colours, a network's input), on CPUs with AVX512_VBMI byte permutes.
bool planar_to_channels_last_quantizes(int64_t C);
// Plain float32 images [N, C, S] quantized into channels-last 8-bit values [N, S, C] in one
// pass (no planar bytes, no reorder after). Only where planar_to_channels_last_quantizes(C).
// Parallel over `threads`.
void quantize_planar_to_channels_last(int threads, const float* x, void* y, bool to_signed, int64_t N, int64_t C,
                                      int64_t S, float scale, float zero_point);

// True when value `v` is not a segment output and every step that reads it is one of `ops`
// (default domain): its readers then accept layouts others would not (a channels-last float
// value that only DynamicQuantizeLinear reads, whose 8-bit output only convolutions read).
bool only_read_by(const Builder& b, int v, std::initializer_list<const char*> ops);
// True when some live step that reads value `v` is `op` (default domain).
bool read_by(const Builder& b, int v, const char* op);

}  // namespace tandem::cpu
