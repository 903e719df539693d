// cpu_bf16_choice_test.cpp: the timing behind precision=bf16 and the Winograd choice
// (bf16_choice.h). A product keeps bf16 only where its bf16 form is measurably faster than
// float32; the timer must therefore see a primitive's work (in its own buffers or in a build's
// shared block), the choice must follow the times and be cached, and TANDEM_CPU_BF16=always must
// skip the timing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/cpu/bf16_choice.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
#include "bf16_test_util.h"
#include "scoped_env.h"
#include "tandem/backend_info.h"

namespace tandem {
namespace {

using testing::ScopedEnv;

TEST(CpuBf16Choice, TimerSeesThePrimitivesWork) {
  cpu::ThreadScope one(1);
  const double small = cpu::time_primitive_ms(testing::conv_primitive(16, 28), 3);
  const double large = cpu::time_primitive_ms(testing::conv_primitive(128, 112), 3);  // 128x the products
  EXPECT_GT(small, 0.0);
  EXPECT_GT(large, 2.0 * small) << "small " << small << " ms, large " << large << " ms";
}

TEST(CpuBf16Choice, FollowsTheTimesAndRemembersThem) {
  ScopedEnv measure("TANDEM_CPU_BF16", "measure");
  cpu::ThreadScope one(1);
  const dnnl::primitive small = testing::conv_primitive(16, 28),
                        large = testing::conv_primitive(128, 112);  // 128x the products
  // The "bf16" form is whichever primitive is passed first; only the times count.
  EXPECT_TRUE(cpu::bf16_pays_off("test: faster form", small, large, {}));
  EXPECT_FALSE(cpu::bf16_pays_off("test: slower form", large, small, {}));
  // Conversions count against bf16: a fast form plus large conversions loses. (Four large ones
  // against one: the answer holds even when another process on the cores makes one timing of
  // the large primitive three times slower than another.)
  const std::vector<dnnl::primitive> four_large{large, large, large, large};
  EXPECT_FALSE(cpu::bf16_pays_off("test: conversions", small, large, {four_large, {}, 0, 0}));
  // And against float32: a slower bf16 form wins when the float32 form must convert more.
  EXPECT_TRUE(cpu::bf16_pays_off("test: float32 conversions", large, small, {{}, four_large, 0, 0}));
  // Decided once per key and team size: the same key answers as before, whatever is passed.
  EXPECT_TRUE(cpu::bf16_pays_off("test: faster form", large, small, {}));
}

// Within a TimingBuffersScope the timings share one block (nested scopes too), and see the
// primitives' work as fresh buffers do; after the scope the timer allocates its own again.
TEST(CpuBf16Choice, TimingsInsideAScopeShareOneBlock) {
  cpu::ThreadScope one(1);
  const dnnl::primitive small = testing::conv_primitive(16, 28), large = testing::conv_primitive(128, 112);
  {
    cpu::TimingBuffersScope outer;
    const double a = cpu::time_primitive_ms(large, 3);  // grows the block
    {
      cpu::TimingBuffersScope inner;
      const double b = cpu::time_primitive_ms(small, 3);  // a part of it
      EXPECT_GT(a, 2.0 * b) << "large " << a << " ms, small " << b << " ms";
      EXPECT_GT(b, 0.0);
    }
    EXPECT_TRUE(std::isfinite(cpu::time_primitive_ms(large, 1)));  // the inner scope kept the block
  }
  EXPECT_TRUE(std::isfinite(cpu::time_primitive_ms(small, 1)));
}

// The Winograd-or-direct choice caches the two times, not the decision: another margin for the
// same key decides from the same times without timing again.
TEST(CpuBf16Choice, CandidateTimesServeEveryMargin) {
  cpu::ThreadScope one(1);
  const dnnl::primitive small = testing::conv_primitive(16, 28), large = testing::conv_primitive(128, 112);
  EXPECT_TRUE(cpu::candidate_pays_off("test: candidate margins", small, large, 0.9));
  // The same key with the primitives swapped still answers from the first times.
  EXPECT_TRUE(cpu::candidate_pays_off("test: candidate margins", large, small, 0.9));
  EXPECT_FALSE(cpu::candidate_pays_off("test: candidate margins", large, small, 1e-6));
}

// A product whose buffers would exceed kMaxTimingBytes is neither allocated nor run, and keeps
// bf16 as the eligibility rules chose.
TEST(CpuBf16Choice, ProductsTooLargeToTimeKeepBf16) {
  ScopedEnv measure("TANDEM_CPU_BF16", "measure");
  cpu::ThreadScope one(1);
  const dnnl::primitive huge = testing::conv_primitive(32, 4096);  // 2 x 2 GiB of float32 activations
  EXPECT_TRUE(std::isinf(cpu::time_primitive_ms(huge)));
  EXPECT_TRUE(cpu::bf16_pays_off("test: too large", huge, testing::conv_primitive(16, 28), {}));
}

TEST(CpuBf16Choice, AlwaysSkipsTheTiming) {
  ScopedEnv always("TANDEM_CPU_BF16", "always");
  EXPECT_TRUE(cpu::bf16_always());
  cpu::ThreadScope one(1);
  const dnnl::primitive small = testing::conv_primitive(16, 28),
                        large = testing::conv_primitive(128, 112);  // 128x the products
  EXPECT_TRUE(cpu::bf16_pays_off("test: always", large, small, {}));
}

}  // namespace
}  // namespace tandem
