// cpu_byte_layout_test.cpp (CpuByteLayout, also run under each TANDEM_CPU_ISA cap by ctest):
// 8-bit values move between plain and channels-last through the backend's byte transpose
// (byte_layout.cpp): a QDQ 1x1 convolution with identity weights and the same scale on both
// sides reads its plain 8-bit input channels-last and writes channels-last, which the graph
// output takes back to plain; the output must be the input, byte for byte, for channel and
// pixel counts on and off the transpose's 16 x 16 tiles.
#include <gtest/gtest.h>

#include <string>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;

TEST(CpuByteLayout, EightBitValuesSurviveTheRoundTripThroughChannelsLast) {
  REQUIRE_CPU();
  const Shape shapes[] = {{2, 16, 16, 16}, {1, 17, 9, 31}, {2, 40, 33, 40}, {1, 5, 1, 70}, {3, 96, 24, 24}};
  uint32_t seed = 500;
  for (const Shape& shape : shapes)
    for (bool is_signed : {false, true}) {
      SCOPED_TRACE(shape_to_string(shape) + (is_signed ? " int8" : " uint8"));
      GraphBuilder q;
      q.input("x", is_signed ? random_ints<int8_t>(shape, -128, 127, seed) : random_ints<uint8_t>(shape, 0, 255, seed))
          .init("s", Tensor::scalar<float>(0.02f))
          .init("z", is_signed ? Tensor::scalar<int8_t>(0) : Tensor::scalar<uint8_t>(128))
          .init("w", identity_conv_weights(shape[1]))
          .node("DequantizeLinear", {"x", "s", "z"}, {"xf"})
          .node("Conv", {"xf", "w"}, {"c"})
          .node("QuantizeLinear", {"c", "s", "z"}, {"y"})
          .output("y");
      ++seed;
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        EXPECT_EQ(nodes_on(r.report, "reference"), 0);
        expect_within_units(Value::of(q.feeds()[0].tensor), r.cpu[0], 0, "identity through channels-last");
      }
    }
}

}  // namespace
}  // namespace tandem
