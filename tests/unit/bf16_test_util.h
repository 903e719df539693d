// bf16_test_util.h: helpers shared by the cpu backend's bf16 tests (cpu_bf16_narrowing_test,
// cpu_bf16_handoff_test): seeded uniform float32 tensors, and a tensor rounded to bfloat16
// (to nearest even, as tandem's BFloat16 does) and back to float32, and that rounding as Casts
// in a graph.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/runtime_env.h"
#include "engine/placement.h"
#include "graph_build_util.h"
#include "op_test_util.h"
#include "scoped_env.h"
#include "tandem/tensor.h"

// Skips a test of the bf16 route of CPUs without AMX tiles: oneDNN's direct bf16 kernels on the
// blocked layout, whose results are handed off in bfloat16 and whose 3x3 convolutions take the
// backend's Winograd kernel. With AMX tiles, bf16 convolutions take oneDNN's brgemm kernels on
// channels-last activations instead, which hand nothing off (conv.cpp); the ctest entry
// cpu_bf16_blocked_route runs these tests there with AMX hidden from oneDNN
// (ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16). `has_cpu`: whether the build has the cpu backend.
#define SKIP_UNLESS_BF16_BLOCKED_ROUTE(has_cpu)                                                                        \
  if (!(has_cpu) || !::tandem::cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU"; \
  if (::tandem::cpu::has_amx_tiles())                                                                                  \
  GTEST_SKIP() << "AMX tiles: bf16 convolutions take the channels-last route (ctest cpu_bf16_blocked_route "           \
                  "runs this without them)"

namespace tandem::testing {

// A float32 3x3 convolution, 32 input channels on side x side, `out_channels` outputs, plain
// layouts, scratchpad given by the caller: a primitive to time (bf16_choice.h).
inline dnnl::primitive conv_primitive(int64_t out_channels, int64_t side) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  dnnl::memory::desc src({1, 32, side, side}, dt::f32, tag::nchw), wei({out_channels, 32, 3, 3}, dt::f32, tag::any),
      dst({1, out_channels, side, side}, dt::f32, tag::nchw);
  dnnl::convolution_forward::desc d(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, src, wei,
                                    dst, {1, 1}, {1, 1}, {1, 1});
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return dnnl::convolution_forward(dnnl::convolution_forward::primitive_desc(d, attr, cpu::cpu_engine()));
}

inline Tensor random_tensor(const Shape& shape, uint32_t seed, float lo, float hi) {
  Tensor t(DataType::float32, shape);
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(gen);
  return t;
}

// Adds Casts taking `value` to bfloat16 and back to `b`; returns the rounded value's name.
inline std::string cast_through_bf16(GraphBuilder& b, const std::string& value) {
  b.node("Cast", {value}, {value + "_h"}, {{"to", attr_int(static_cast<int64_t>(DataType::bfloat16))}});
  b.node("Cast", {value + "_h"}, {value + "_r"}, {{"to", attr_int(static_cast<int64_t>(DataType::float32))}});
  return value + "_r";
}

inline Tensor rounded_to_bf16(const Tensor& t) {
  Tensor r(DataType::float32, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) r.data<float>()[i] = static_cast<float>(BFloat16(t.data<float>()[i]));
  return r;
}

// For tests that compare bf16 products with the reference on explicitly rounded operands: every
// eligible product keeps bf16 (no timing), and 3x3 convolutions stay on the direct kernel, which
// rounds the graph's operands (the Winograd kernel rounds its transforms instead).
struct ExactBf16Scope {
  ScopedEnv always{"TANDEM_CPU_BF16", "always"};
  ScopedEnv direct{"TANDEM_CPU_BF16_WINOGRAD", "0"};
};

// A graph's outputs and its placement's description (`describe()`), run on the cpu backend at
// precision bf16 (`bf16`) or on the reference backend, with `threads` (0: the backend's
// choice); a failed compile or run is a test failure and leaves `out` short.
struct Bf16Outcome {
  std::vector<Value> out;
  std::string text;
};

inline Bf16Outcome run_bf16_or_reference(const GraphBuilder& g, bool bf16, int threads = 0) {
  CompileOptions options;
  options.threads = threads;
  if (bf16) options.precision = Precision::bf16;
  Bf16Outcome r;
  auto placed = PlacedModel::create(g.graph(), {find_backend(bf16 ? "cpu" : "reference")}, options);
  EXPECT_TRUE(placed.is_ok()) << placed.status().to_string();
  if (!placed.is_ok()) return r;
  EXPECT_TRUE((*placed)->run(g.feeds(), &r.out).is_ok());
  r.text = (*placed)->describe();
  return r;
}

}  // namespace tandem::testing
