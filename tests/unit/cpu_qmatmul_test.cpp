// cpu_qmatmul_test.cpp (CpuBackendQMatMul, also run under each TANDEM_CPU_ISA cap by ctest):
// 8-bit matrix products whose right operand is known only at run time (attention written as
// QLinearMatMul or MatMulInteger of two activations). Where every partial sum stays within 2^24
// (K * 255 * 255 plus the bias), they run as oneDNN's float32 product of the integers and must
// equal the reference exactly; longer products keep the backend's own integer kernel.
#include <gtest/gtest.h>

#include <string>

#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;

// q·kᵀ-like: a [2, 3, 5, K] times b [1, 3, K, 6] (broadcast over the first batch dim), both
// uint8 activations with their zero points, requantized into uint8. `extreme`: every value at
// the far end from its zero point (255 against 0), the largest partial sums there are.
GraphBuilder attention_product(int64_t K, bool extreme, uint32_t seed) {
  Tensor a = random_ints<uint8_t>({2, 3, 5, K}, 0, 255, seed), b = random_ints<uint8_t>({1, 3, K, 6}, 0, 255, seed + 1);
  if (extreme) {
    std::fill(a.data<uint8_t>(), a.data<uint8_t>() + a.numel(), uint8_t{255});
    std::fill(b.data<uint8_t>(), b.data<uint8_t>() + b.numel(), uint8_t{255});
  }
  GraphBuilder q;
  q.input("a", a)
      .input("b", b)
      .init("as", Tensor::scalar<float>(0.0231f))
      .init("az", Tensor::scalar<uint8_t>(extreme ? 0 : 121))
      .init("bs", Tensor::scalar<float>(0.0173f))
      .init("bz", Tensor::scalar<uint8_t>(extreme ? 0 : 133))
      .init("ys", Tensor::scalar<float>(extreme ? 6000.0f : 9.7f))
      .init("yz", Tensor::scalar<uint8_t>(extreme ? 0 : 128))
      .node("QLinearMatMul", {"a", "as", "az", "b", "bs", "bz", "ys", "yz"}, {"y"})
      .output("y");
  return q;
}

TEST(CpuBackendQMatMul, RuntimeRightOperandsRunAsExactFloatProductsWithinTheBound) {
  REQUIRE_CPU();
  for (int64_t K : {64, 258}) {
    for (bool extreme : {false, true}) {
      SCOPED_TRACE("K " + std::to_string(K) + (extreme ? ", extreme values" : ""));
      const GraphBuilder q = attention_product(K, extreme, 40 + static_cast<uint32_t>(K));
      const std::string text = describe_cpu(q);
      EXPECT_EQ(text.find("generic path"), std::string::npos) << text;
      if (cpu_isa_level_of(text) >= 1) {
        EXPECT_NE(text.find("(integer product in float32)"), std::string::npos) << text;
      }
      for (int threads : {1, 2}) {
        Runs r = run_both(q, threads);
        ASSERT_EQ(r.cpu.size(), 1u);
        expect_within_units(r.ref[0], r.cpu[0], 0, "attention product");
      }
    }
  }
}

TEST(CpuBackendQMatMul, LongerProductsKeepTheIntegerKernel) {
  REQUIRE_CPU();
  // Every value 255 against zero points 0, int32 outputs: K = 259 could pass 2^24 (259 * 255 *
  // 255), and with K = 1000 float32 sums would round. Both stay exact on the own kernel.
  for (int64_t K : {259, 1000}) {
    SCOPED_TRACE("K " + std::to_string(K));
    Tensor a(DataType::uint8, {3, 2, K}), b(DataType::uint8, {3, K, 5});
    std::fill(a.data<uint8_t>(), a.data<uint8_t>() + a.numel(), uint8_t{255});
    std::fill(b.data<uint8_t>(), b.data<uint8_t>() + b.numel(), uint8_t{255});
    b.data<uint8_t>()[7] = 254;  // an odd partial sum somewhere
    GraphBuilder m;
    m.input("a", a)
        .input("b", b)
        .init("az", Tensor::scalar<uint8_t>(0))
        .init("bz", Tensor::scalar<uint8_t>(0))
        .node("MatMulInteger", {"a", "b", "az", "bz"}, {"y"})
        .output("y");
    const std::string text = describe_cpu(m);
    EXPECT_EQ(text.find("(integer product in float32)"), std::string::npos) << text;
    Runs r = run_both(m, 2);
    ASSERT_EQ(r.cpu.size(), 1u);
    expect_within_units(r.ref[0], r.cpu[0], 0, "long product");
  }
  // MatMulInteger (int32 output) of two runtime int8 operands with zero points: the float route.
  GraphBuilder m;
  m.input("a", random_ints<int8_t>({4, 3, 70}, -128, 127, 61))
      .input("b", random_ints<int8_t>({4, 70, 33}, -128, 127, 62))
      .init("az", Tensor::scalar<int8_t>(-5))
      .init("bz", Tensor::scalar<int8_t>(7))
      .node("MatMulInteger", {"a", "b", "az", "bz"}, {"y"})
      .output("y");
  const std::string text = describe_cpu(m);
  if (cpu_isa_level_of(text) >= 1) {
    EXPECT_NE(text.find("(integer product in float32)"), std::string::npos) << text;
  }
  Runs r = run_both(m, 2);
  ASSERT_EQ(r.cpu.size(), 1u);
  expect_within_units(r.ref[0], r.cpu[0], 0, "MatMulInteger of runtime operands");
}

}  // namespace
}  // namespace tandem
