// cpu_kernel_choice_test.cpp (CpuBackendKernelChoice, also run under each TANDEM_CPU_ISA cap by
// ctest): convolutions whose shapes oneDNN's fast kernels do not take in the layout the backend
// prefers must not land on oneDNN's reference loops (about a thousand times slower) when another
// route exists. Float32 grouped convolutions of few channels per group take its gemm
// convolution on plain activations; 8-bit ones without a fast int8 kernel take the backend's own
// integer kernel. describe() names each kernel's oneDNN implementation; results must match the
// reference backend.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;

// The oneDNN implementations describe() names on the instance's kernel lines of `label`.
std::vector<std::string> implementations_of(const std::string& text, const std::string& label) {
  std::vector<std::string> out;
  for (size_t at = text.find("\n  instance "); (at = text.find(label, at)) != std::string::npos; ++at) {
    const std::string line = text.substr(at, text.find('\n', at) - at);
    const size_t impl = line.find("(oneDNN ");
    if (impl != std::string::npos) out.push_back(line.substr(impl + 8, line.size() - impl - 9));
  }
  return out;
}

void expect_no_reference_loops(const std::string& text, const std::string& label) {
  for (const std::string& impl : implementations_of(text, label))
    EXPECT_NE(impl.rfind("ref", 0), 0u) << label << " runs oneDNN's reference loops:\n" << text;
}

struct Grouping {
  int64_t c, o, group;
};

TEST(CpuBackendKernelChoice, FloatGroupedConvolutionsOfFewChannelsPerGroupAvoidReferenceLoops) {
  REQUIRE_CPU();
  // 4 and 4 channels per group (ResNeXt's width), 3 in and 2 out, 16 and 16 (a direct kernel).
  for (const Grouping& g : {Grouping{16, 16, 4}, Grouping{9, 6, 3}, Grouping{32, 32, 2}}) {
    SCOPED_TRACE(std::to_string(g.c) + " -> " + std::to_string(g.o) + " channels in " + std::to_string(g.group) +
                 " groups");
    GraphBuilder q;
    q.input("x", random_floats({2, g.c, 11, 13}, 3, -1.0f, 1.0f))
        .init("w", random_floats({g.o, g.c / g.group, 3, 3}, 4, -0.5f, 0.5f))
        .init("b", random_floats({g.o}, 5, -0.5f, 0.5f))
        .node("Conv", {"x", "w", "b"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}, {"group", attr_int(g.group)}})
        .node("Relu", {"c"}, {"y"})
        .output("y");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    EXPECT_FALSE(implementations_of(text, "[Conv 'Conv0']").empty()) << text;
    expect_no_reference_loops(text, "[Conv 'Conv0']");
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{1e-4, 1e-4});
    EXPECT_TRUE(c.is_ok()) << c.message();
  }
}

TEST(CpuBackendKernelChoice, QuantizedConvolutionsWithoutAFastOneDnnKernelTakeTheOwnKernel) {
  REQUIRE_CPU();
  struct Case {
    std::string what;
    Shape x, w;
    int64_t group;
  };
  // Odd channel counts per group (3 in, 2 out), and a 3-D depthwise convolution.
  const std::vector<Case> cases = {{"odd groups", {1, 9, 10, 10}, {6, 3, 3, 3}, 3},
                                   {"3-D depthwise", {1, 8, 6, 6, 6}, {8, 1, 3, 3, 3}, 8}};
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.what);
    const std::vector<int64_t> pads(2 * (cs.x.size() - 2), 1);
    GraphBuilder q;
    q.input("x", random_floats(cs.x, 7, -1.0f, 1.0f))
        .init("xs", Tensor::scalar<float>(1.0f / 127))
        .init("xz", Tensor::scalar<uint8_t>(128))
        .init("wq", random_ints<int8_t>(cs.w, -onednn_weight_max(), onednn_weight_max(), 8))
        .init("ws", Tensor::scalar<float>(0.004f))
        .init("wz", Tensor::scalar<int8_t>(0))
        .init("ys", Tensor::scalar<float>(0.03f))
        .init("yz", Tensor::scalar<uint8_t>(120))
        .node("QuantizeLinear", {"x", "xs", "xz"}, {"xq"})
        .node("QLinearConv", {"xq", "xs", "xz", "wq", "ws", "wz", "ys", "yz"}, {"y"},
              {{"pads", attr_ints(pads)}, {"group", attr_int(cs.group)}})
        .output("y");
    const std::string text = describe_cpu(q);
    EXPECT_NE(text.find("0 steps on reference kernels"), std::string::npos) << text;
    expect_no_reference_loops(text, "[QLinearConv 'QLinearConv1']");
    Runs r = run_both(q);
    ASSERT_EQ(r.cpu.size(), 1u);
    const int64_t differ = expect_within_units(r.ref[0], r.cpu[0], 1, cs.what);
    EXPECT_LE(differ, r.cpu[0].tensor.numel() / 50) << "more than 2% of outputs off by one";
  }
}

}  // namespace
}  // namespace tandem
