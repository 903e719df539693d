// ew_program.h: elementwise programs, a chain of elementwise ops evaluated in one pass over the
// output. The accumulator starts as the output of the step's main computation (a convolution,
// ...) or with a `load`; each op combines it with an operand (a value, broadcast to the output),
// an immediate, or applies a unary function. Ops hold their parameters; programs hold the ids of
// their operand values (compile-time ids in specs, instance ids once prepared).
//
// ew_program.cpp holds the semantics of every op, on one value and on a tile of values;
// ew_kernel.cpp the kernel that runs a program over an output in L1-sized tiles (plain and
// blocked layouts, OpenMP across tiles). Programs are plain values; evaluating one is
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tandem/status.h"

namespace tandem::cpu {

class Builder;

enum class Ew : uint8_t {
  // with an operand (operand >= 0) or an immediate (operand < 0, value in a)
  load, add, sub, rsub, mul, div, rdiv, max, min, pow, rpow, prelu,
  fmod, rfmod,  // C fmod (Mod with fmod=1): the remainder takes the dividend's sign
  // unary, parameters in a, b
  relu, leaky_relu, clip, sigmoid, tanh, hardsigmoid, hardswish, swish, exp, log, sqrt, abs, neg,
  reciprocal, erf, softplus, softsign, elu, selu, celu, gelu, gelu_tanh, floor, ceil, round, square, cube,
  mish, sin, cos, sign, thresholded_relu,  // thresholded_relu: x > a ? x : 0
  shrink,  // x < -a ? x + b : x > a ? x - b : 0
  linear,  // a*x + b
  // A round trip through 8 or 16 bits (QuantizeLinear then DequantizeLinear with the same
  // per-tensor scale a and zero point b): (saturate(round_half_even(x / a) + b) - b) * a, NaN ->
  // 0, the saturation range that of uint8, int8, uint16 or int16.
  fake_quant_u8, fake_quant_s8, fake_quant_u16, fake_quant_s16,
  identity,
};

struct EwOp {
  Ew code = Ew::identity;
  int operand = -1;  // index into EwProgram::operands, or -1 for an immediate
  float a = 0, b = 0;
};

struct EwProgram {
  std::vector<EwOp> ops;
  std::vector<int> operands;  // value ids (compile-time ids at compile, instance ids at prepare)
  bool empty() const { return ops.empty(); }
};

// True for unary codes (no operand, no immediate other than parameters a/b).
bool ew_is_unary(Ew code);
// Name for messages, "hardswish".
const char* ew_name(Ew code);
// Scalar reference semantics of one op (for folding and tests of the vector code).
float ew_apply_scalar(const EwOp& op, float acc, float operand);

// True when `p` has no operands (unary ops and immediates only).
bool ew_pointwise(const EwProgram& p);
// Applies a pointwise program to n floats in place (vectorized).
void ew_apply_pointwise(const EwProgram& p, float* data, int64_t n);

// A tile of the output being computed: `rows` x `lanes` floats of the accumulator, contiguous,
// and where each operand's first element of the tile lies with its row and lane strides
// (elements; 0 broadcasts). Views, owned by the caller.
struct EwTile {
  float* acc;
  int64_t rows, lanes;
  const float* const* base;  // per operand
  const int64_t* rs;         // per operand row stride
  const int64_t* ls;         // per operand lane stride
};
constexpr int64_t kEwTile = 1024;  // floats per tile (4 KiB): the accumulator stays in L1

// Applies one op to a tile's accumulator (vectorized for the running CPU's ISA).
void ew_apply_to_tile(const EwOp& op, const EwTile& tile);
// Copies a tile's accumulator to the output, whose rows are `out_rs` floats apart.
void ew_store_tile(float* out, int64_t out_rs, const float* acc, int64_t rows, int64_t lanes);

// A value held as 8-bit integers q that stands for the float32 values (q - zero_point) * scale
// (DequantizeLinear with per-tensor parameters), or the 8-bit result of quantizing float32 values
// x as saturate(round_half_even(x / scale) + zero_point) (QuantizeLinear). `value` is an
// instance value id of type uint8 or int8.
struct EwByteValue {
  int value = -1;
  float scale = 1.0f;
  int32_t zero_point = 0;
};
// Operands an elementwise kernel stages into L1 tiles as it visits them (8-bit ones, upsampled
// ones below), at most.
constexpr int kEwMaxStaged = 4;

// The 8-bit ends of a program: operands read as bytes and dequantized a tile at a time as the
// program reads them (`inputs`, keyed by the float32 operand value each stands for), and an
// output quantized as it is stored (`output.value >= 0`; the float32 output is then never
// written). Neither float32 tensor exists in memory.
struct EwByteEnds {
  std::vector<std::pair<int, EwByteValue>> inputs;
  EwByteValue output;
};

// An operand that is a nearest Resize's output, read from the Resize's input as the program
// visits it (no upsampled copy exists): output pixel (h, w) is `source` pixel (rows[h], cols[w])
// of the same image and channel. `value` is the float32 operand it stands for; `source` an
// instance value id of shape [N, C, H, W]: float32, or (bytes.value == source) the 8-bit value
// a DequantizeLinear with bytes' parameters would turn into the Resize's input.
struct EwUpsampled {
  int value = -1, source = -1;
  std::vector<int64_t> rows, cols;
  EwByteValue bytes;
};

// Adds a kernel computing `program` into `out`. `program.operands` hold
// instance value ids; ops[0] is a `load` when there is no accumulator input. `acc` (or -1) is
// a value that initializes the accumulator (same shape as out). The output layout is chosen
// here unless `out` is already defined: the kernel walks blocked float32 order when a full-size
// operand is blocked float32; channels-last when one is channels-last float32 and the output
// is 8-bit or read only by steps that take channels-last floats; else blocked when one is
// channels-last bytes; else plain. The output takes the walk's layout. With `bytes`, its
// operands and output are 8-bit values as described there: an 8-bit operand must have the
// output's shape; a blocked or channels-last walk takes 8-bit operands channels-last
// (converted when they lie otherwise) and writes an 8-bit output channels-last; a plain walk
// reads and writes them plain. `upsampled` operands count as full-size operands of their
// source's layout.
Status add_elementwise(Builder& b, const EwProgram& program, int acc, int out, const std::string& label,
                       const EwByteEnds* bytes = nullptr, const std::vector<EwUpsampled>* upsampled = nullptr);

}  // namespace tandem::cpu
