// qtable.h: byte lookup tables of the cpu backend's quantized contrib kernels (qelementwise.cpp).
// An 8-bit op whose result depends on one input byte (or a pair of bytes) and on parameters
// fixed for a run can compute the 256 (or 65536) results once with its own arithmetic and then
// map its data through them: exact by construction, and far cheaper than double arithmetic
// per element. Tables are indexed by the bytes as stored (int8 data: the two's-complement byte).
//
// The functions are pure over their arguments and thread-safe. The ISA paths follow
// cpu_isa_level() (runtime_env.h); the 256-entry lookup also needs AVX512-VBMI on the machine.
#pragma once

#include <cstdint>

namespace tandem::cpu {

// The 256 byte values 0, 1, ..., 255 in order (64-byte aligned).
const uint8_t* all_bytes();

// y[i] = table[x[i]] for i < n (table: 256 entries). AVX512-VBMI byte permutes, 64 per step;
// on AVX2, 16 nibble shuffles per 32 bytes.
void lut_map(const uint8_t* x, uint8_t* y, int64_t n, const uint8_t* table);

// True when table[v] == v for every v (the map is a copy).
bool is_identity(const uint8_t* table);

// Channels-last bytes of one image to channel-major float32 through a 256-entry table:
// y[c * pixels + p] = table[x[p * channels + c]] for pixels p in [p_begin, p_end) and every
// channel c (callers split the pixels across threads). AVX-512 (AVX2) gathers, 16 (8) pixels
// per step.
void lut_to_planar_float(const uint8_t* x, float* y, int64_t pixels, int64_t channels, const float* table,
                         int64_t p_begin, int64_t p_end);

// c[i] = table[a[i] * 256 + b[i]] for i < n (table: 65536 entries plus 3 bytes of padding, which
// the AVX-512 path's 4-byte gathers read).
void pair_map(const uint8_t* a, const uint8_t* b, uint8_t* c, int64_t n, const uint8_t* table);

}  // namespace tandem::cpu
