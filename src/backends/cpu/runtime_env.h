// runtime_env.h: the process-wide environment of the cpu backend: debugging switches read from
// the environment, verbose notes, the oneDNN engine and the instruction-set level of the
// backend's own hot loops (with the macros that compile a loop once per level).
//
// Everything here is read once (function-local statics) and thread-safe afterwards.
#pragma once

#include <dnnl.hpp>

#include <string>

namespace tandem::cpu {

// Debugging switches read once from the environment: TANDEM_CPU_FUSION=0 disables fusion,
// TANDEM_CPU_POSTOPS=0 keeps elementwise ops out of oneDNN post-ops, TANDEM_CPU_BLOCKED=0
// keeps every activation in the plain layout, TANDEM_CPU_TEAM_SIZER=0 keeps every run on its
// instance's full team (see TeamSizer in threads.h), TANDEM_CPU_BF16_NARROWING=0 narrows
// precision=bf16 sources with oneDNN's reorder instead of the project's kernel (cast.h). All
// default to on.
bool feature_enabled(const char* name);
// The same switch read at each call (for switches a test or a benchmark sets around one
// compile): TANDEM_CPU_BF16_HANDOFF=0 keeps bf16 convolutions' results in float32 (conv.cpp),
// TANDEM_CPU_SWISH_AFTER=0 keeps a trailing Swish as oneDNN's post-op (ew_post_ops.h).
bool feature_enabled_now(const char* name);

// How many bytes of arenas and scratchpads a plan's cached instances may hold together before
// the least recently used go (instance.cpp): TANDEM_CPU_INSTANCE_CACHE_MB, read at each call
// (default 1024; a value that is not a positive number is ignored).
double instance_cache_limit_bytes();

// True when TANDEM_CPU_VERBOSE is set: note() then prints one line to stderr (fusion
// decisions, fallbacks, chosen oneDNN implementations). Thread-safe.
bool verbose();
void note(const std::string& msg);

// The process-wide oneDNN CPU engine.
dnnl::engine& cpu_engine();

// The instruction-set level the backend's own kernels use: 2 AVX-512 (avx512f/bw/vl/dq),
// 1 AVX2 (with FMA and F16C), 0 the x86-64 baseline. It is the machine's best level, capped by
// TANDEM_CPU_ISA=avx512|avx2|baseline when set; the same cap is applied to oneDNN
// (dnnl::set_max_cpu_isa) before its first primitive. Read once; thread-safe.
int cpu_isa_level();
// One line for `tandem info --optimized`: the path in use, what the machine offers, the cap and
// oneDNN's effective ISA, e.g. "cpu isa: avx2 (machine: avx512+vnni+bf16+amx; cap:
// TANDEM_CPU_ISA=avx2; oneDNN: avx2)". Creates the engine (so that oneDNN's cap is set first).
std::string cpu_isa_description();
// True when bfloat16 dot products are native (AVX512_BF16) and the ISA cap allows AVX-512.
bool has_native_bf16();
// True when byte permutes across a whole register are native (AVX512_VBMI) and the ISA cap
// allows AVX-512.
bool has_vbmi();
// True when oneDNN may use AMX tiles (the CPU has them and the ISA cap allows them).
bool has_amx_tiles();

// Instruction-set paths of the hot loops. A hot loop is written once, as an always-inline body,
// and compiled three times: for AVX-512 (avx512f/bw/vl/dq with FMA and F16C), for AVX2 (with
// FMA and F16C) and for the x86-64 baseline. A dispatcher calls the variant that cpu_isa_level()
// names, so TANDEM_CPU_ISA forces a path on any machine that has it (oneDNN gets the same cap).
// GCC inlines the default-target body into each target-attributed wrapper and vectorizes it
// there for that ISA (zmm registers in the AVX-512 variant):
//
//   TANDEM_ISA_BODY void scale_body(float* x, int64_t n, float s) {
//     for (int64_t i = 0; i < n; ++i) x[i] *= s;
//   }
//   TANDEM_ISA_DISPATCH(scale, (float* x, int64_t n, float s), (x, n, s))
//
// defines scale_avx512, scale_avx2, scale_baseline and the dispatcher scale(x, n, s); all
// return void. A body should call only inline code or library functions: an out-of-line helper
// of the project runs at the baseline whatever the variant. The dispatcher reads the level once
// (a function-local static); it and the variants are thread-safe when the body is.
//
// Explicit intrinsics code takes the same target strings (TANDEM_TARGET_AVX512 / _AVX2) and is
// chosen with cpu_isa_level() as well, never with __builtin_cpu_supports: the cap must hold.
#define TANDEM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,f16c")))
#define TANDEM_TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TANDEM_ISA_BODY __attribute__((always_inline)) inline
#define TANDEM_ISA_DISPATCH(name, params, args)                                 \
  TANDEM_TARGET_AVX512 void name##_avx512 params { name##_body args; }          \
  TANDEM_TARGET_AVX2 void name##_avx2 params { name##_body args; }              \
  void name##_baseline params { name##_body args; }                             \
  void name params {                                                            \
    static const int level = cpu_isa_level();                                   \
    if (level >= 2) name##_avx512 args;                                         \
    else if (level == 1) name##_avx2 args;                                      \
    else name##_baseline args;                                                  \
  }

}  // namespace tandem::cpu
