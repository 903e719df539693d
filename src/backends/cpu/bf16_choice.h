// bf16_choice.h: whether a product (a convolution or a matmul) runs faster on bfloat16
// operands than in float32 on this machine, decided by timing both oneDNN primitives once at
// compile.
//
// AVX512_BF16 dot products do not pay everywhere. On AMD Zen 4 a bf16 convolution runs up to
// twice as fast as its float32 twin; on Intel Xeons whose AMX tiles are absent or hidden by the
// hypervisor (Sapphire and Emerald Rapids in many VMs) one 32-product vdpbf16ps issues per cycle
// where two 16-product float32 FMAs do, and oneDNN's bf16 kernels take about twice the float32
// time. So precision=bf16 means "may compute in bf16": each candidate keeps bf16 only when its
// bf16 primitive, plus the conversions it alone needs (narrowing its source, a reorder back),
// beats the float32 primitive by kMinBf16Gain. Both are timed without post-ops, which cost the
// same either way.
//
// Timing runs on scratch buffers this file allocates and frees, at the calling thread's OpenMP
// team size (set it with ThreadScope first): one warm-up, then the best of a few runs (one when
// it takes over kLongRunMs). A product whose buffers would exceed
// kMaxTimingBytes is not timed and keeps bf16. Decisions are cached for the process by the
// caller's key plus the team size, so instances of other shapes and later compiles of the same
// model do not time again; a decision taken while other work competed for the cores stays
// too. Thread-safe.
//
// TANDEM_CPU_BF16=always skips the timing and keeps every candidate in bf16 (read at each call,
// so a test or a benchmark can set it around one compile); unset or `measure` times.
#pragma once

#include <dnnl.hpp>

#include <string>
#include <vector>

namespace tandem::cpu {

// bf16 is kept when bf16 time <= kMinBf16Gain x float32 time: a margin so that timing noise
// does not flip a tie towards the less exact answer.
inline constexpr double kMinBf16Gain = 0.9;
inline constexpr size_t kMaxTimingBytes = size_t{512} << 20;
inline constexpr double kLongRunMs = 20;

// True when TANDEM_CPU_BF16=always.
bool bf16_always();

// While one lives on a thread, time_primitive_ms takes its scratch buffers from one block kept
// for that thread, grown as needed, instead of allocating and first-touching fresh ones for
// every primitive: an instance build that times several products faults the pages in once
// (page faults are expensive in VMs; a VAE decoder's compile spent about a third of its time
// in them). The block is freed when the outermost scope on the thread ends. Scopes nest.
class TimingBuffersScope {
 public:
  TimingBuffersScope();
  ~TimingBuffersScope();
  TimingBuffersScope(const TimingBuffersScope&) = delete;
  TimingBuffersScope& operator=(const TimingBuffersScope&) = delete;
};

// Best-of-`runs` milliseconds of one execution of `p` (after one warm-up) on scratch buffers
// for its source, weights, bias, destination and scratchpad, as the primitive describes them.
// Reorders take their FROM/TO buffers the same way. Infinity when the buffers would exceed
// kMaxTimingBytes (nothing is run).
double time_primitive_ms(const dnnl::primitive& p, int runs = 2);

// The choice described above. `key` names the product's geometry and layouts (two calls with
// the same key and team size must describe the same primitives); `bf16_extra` are the
// conversions only the bf16 form needs, and `bf16_extra_ms` the time of those it needs that
// are not oneDNN primitives (the project's own narrowing kernel, cast.h), already measured;
// `fp32_extra` and `fp32_extra_ms` the same for the float32 form (widening a source held in
// bf16, or the narrowing its readers would then make).
struct Bf16Extras {
  std::vector<dnnl::primitive> bf16, fp32;
  double bf16_ms = 0, fp32_ms = 0;
};
bool bf16_pays_off(const std::string& key, const dnnl::primitive& bf16, const dnnl::primitive& fp32,
                   const Bf16Extras& extras);

// The same timing for another choice between two primitives that compute the same thing (a
// float32 convolution by Winograd's algorithm or directly): true when `candidate` takes at
// most `gain` x the time of `baseline`. The two times are cached for the process by `key` plus
// the team size (so calls with other margins for the same primitives time nothing); a primitive
// too large to time keeps the baseline. Thread-safe.
bool candidate_pays_off(const std::string& key, const dnnl::primitive& candidate, const dnnl::primitive& baseline,
                        double gain);

}  // namespace tandem::cpu
