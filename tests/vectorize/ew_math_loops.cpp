// ew_math_loops.cpp: one loop per function of src/backends/cpu/ew_math.h, compiled by
// tests/vectorize/ew_math_vectorizes.sh with the cpu backend's flags and the AVX-512 target,
// which checks that the compiler vectorized every one. The functions are written so that it
// can (products by 0/1 factors instead of some selects, no library calls); a change that
// leaves one scalar slows every elementwise kernel that uses it several times over and breaks
// no other test.
#include "backends/cpu/ew_math.h"

#define TANDEM_LOOP(name)                                                                          \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,fma,avx2"))) void loop_##name(float* a, long n) { \
    for (long i = 0; i < n; ++i) a[i] = tandem::cpu::math::name(a[i]);                           \
  }

TANDEM_LOOP(exp)
TANDEM_LOOP(sigmoid)
TANDEM_LOOP(tanh)
TANDEM_LOOP(erf)
TANDEM_LOOP(expm1_ish)
