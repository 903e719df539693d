// cpu_data_movement_test.cpp (CpuBackendDataMovement): the cpu backend's gathers for Split,
// Expand, Tile, DepthToSpace, SpaceToDepth, Pad and Gather (shape.cpp, indexing.cpp) read a
// convolution's blocked output as the reference reads the plain one, run in the cpu segment
// (nothing placed on the reference backend), and an index outside the data fails the run with
// one error naming the node, for Gather and for the gathers and scatters of indexing.cpp and
// scatter.cpp. The op suite covers each op alone over shapes and types.
#include <gtest/gtest.h>

#include <string>

#include "backends/backend.h"
#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "engine/placement.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;

// x[1,3,12,12] -> Conv(16 channels, pad 1) -> c (blocked on AVX2 and up), then `op` on c.
GraphBuilder after_conv() {
  GraphBuilder q;
  q.input("x", random_floats({1, 3, 12, 12}, 11, -1.0f, 1.0f))
      .init("w", random_floats({16, 3, 3, 3}, 12, -0.5f, 0.5f))
      .node("Conv", {"x", "w"}, {"c"}, {{"pads", attr_ints({1, 1, 1, 1})}});
  return q;
}

TEST(CpuBackendDataMovement, OpsAfterAConvolutionMatchTheReference) {
  REQUIRE_CPU();
  std::vector<std::pair<std::string, GraphBuilder>> cases;
  {
    GraphBuilder q = after_conv();
    q.init("sizes", Tensor::from_vector<int64_t>({3}, {4, 8, 4}))
        .node("Split", {"c", "sizes"}, {"a", "b", "d"}, {{"axis", attr_int(1)}})
        .output("a")
        .output("b")
        .output("d");
    cases.emplace_back("Split into 4, 8 and 4 channels", q);
  }
  {
    GraphBuilder q = after_conv();
    q.node("Split", {"c"}, {"a", "b"}, {{"axis", attr_int(-1)}}).output("a").output("b");
    cases.emplace_back("Split in halves along the width", q);
  }
  for (const char* mode : {"DCR", "CRD"}) {
    GraphBuilder q = after_conv();
    q.node("DepthToSpace", {"c"}, {"y"}, {{"blocksize", attr_int(2)}, {"mode", attr_string(mode)}}).output("y");
    cases.emplace_back(std::string("DepthToSpace ") + mode, q);
  }
  {
    GraphBuilder q = after_conv();
    q.node("SpaceToDepth", {"c"}, {"y"}, {{"blocksize", attr_int(3)}}).output("y");
    cases.emplace_back("SpaceToDepth", q);
  }
  {
    GraphBuilder q = after_conv();
    q.init("reps", Tensor::from_vector<int64_t>({4}, {2, 1, 1, 3}))
        .node("Tile", {"c", "reps"}, {"y"})
        .output("y");
    cases.emplace_back("Tile", q);
  }
  {
    GraphBuilder q = after_conv();
    q.node("GlobalAveragePool", {"c"}, {"g"})
        .init("shape", Tensor::from_vector<int64_t>({5}, {2, 1, 16, 5, 7}))
        .node("Expand", {"g", "shape"}, {"y"})
        .output("y");
    cases.emplace_back("Expand of a pooled value to more dims", q);
  }
  {
    GraphBuilder q = after_conv();
    q.init("rows", Tensor::from_vector<int32_t>({2, 2}, {0, -1, 5, 5}))
        .node("Gather", {"c", "rows"}, {"y"}, {{"axis", attr_int(2)}})
        .output("y");
    cases.emplace_back("Gather of rows, int32 indices", q);
  }
  for (const char* mode : {"constant", "reflect", "edge"}) {
    GraphBuilder q = after_conv();
    q.init("pads", Tensor::from_vector<int64_t>({8}, {0, 0, 2, 3, 0, 0, 1, 4}))
        .init("value", Tensor::scalar<float>(-0.25f))
        .node("Pad", {"c", "pads", "value"}, {"y"}, {{"mode", attr_string(mode)}})
        .output("y");
    cases.emplace_back(std::string("Pad ") + mode, q);
  }
  for (const auto& [what, q] : cases) {
    SCOPED_TRACE(what);
    Runs r = run_both(q);
    EXPECT_EQ(nodes_on(r.report, "reference"), 0) << "every node runs in the cpu segment";
    EXPECT_EQ(describe_cpu(q).find("(reference kernels)"), std::string::npos) << describe_cpu(q);
    ASSERT_EQ(r.cpu.size(), r.ref.size());
    for (size_t i = 0; i < r.cpu.size(); ++i) {
      Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-5, 1e-5});
      EXPECT_TRUE(c.is_ok()) << "output " << i << ": " << c.message();
    }
  }
}

TEST(CpuBackendDataMovement, GatherIndexOutsideTheDataFailsTheRunNamingTheNode) {
  REQUIRE_CPU();
  for (int64_t bad : {7, -8}) {
    SCOPED_TRACE(bad);
    GraphBuilder q;
    q.input("x", random_floats({7, 4}, 13, -1.0f, 1.0f))
        .input("i", Tensor::from_vector<int64_t>({3}, {0, bad, 2}))
        .node("Gather", {"x", "i"}, {"y"}, {{"axis", attr_int(0)}})
        .output("y");
    auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    std::vector<Value> out;
    const Status s = (*placed)->run(q.feeds(), &out);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.to_string();
    EXPECT_NE(s.message().find("Gather"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(std::to_string(bad)), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one line: " << s.message();
  }
}

// Each of the element and tuple gathers and scatters, with one index of `bad`.
TEST(CpuBackendDataMovement, GathersAndScattersFailTheRunOnAnIndexOutsideTheData) {
  REQUIRE_CPU();
  struct Case {
    const char* op;
    Shape data, indices, updates;  // updates empty for gathers
    int64_t bad;                   // outside its dim
  };
  for (const Case& c : {Case{"GatherElements", {4, 3}, {2, 3}, {}, 4}, Case{"GatherElements", {4, 3}, {2, 3}, {}, -5},
                        Case{"GatherND", {4, 3}, {2, 2}, {}, 3}, Case{"ScatterElements", {4, 3}, {2, 3}, {2, 3}, -5},
                        Case{"ScatterND", {4, 3}, {2, 1}, {2, 3}, 4}}) {
    SCOPED_TRACE(std::string(c.op) + " " + std::to_string(c.bad));
    std::vector<int64_t> idx(static_cast<size_t>(shape_numel(c.indices)), 0);
    idx[1] = c.bad;
    GraphBuilder q;
    q.input("x", random_floats(c.data, 14, -1.0f, 1.0f)).input("i", Tensor::from_vector<int64_t>(c.indices, idx));
    std::vector<std::string> in = {"x", "i"};
    if (!c.updates.empty()) {
      q.input("u", random_floats(c.updates, 15, -1.0f, 1.0f));
      in.push_back("u");
    }
    q.node(c.op, in, {"y"}).output("y");
    auto placed = PlacedModel::create(q.graph(), {cpu_backend()});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    EXPECT_NE((*placed)->describe().find("segment 0 on cpu: 1 nodes"), std::string::npos) << (*placed)->describe();
    std::vector<Value> out;
    const Status s = (*placed)->run(q.feeds(), &out);
    EXPECT_EQ(s.code(), StatusCode::invalid_argument) << s.to_string();
    EXPECT_NE(s.message().find(c.op), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(std::to_string(c.bad)), std::string::npos) << s.message();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << "one line: " << s.message();
  }
}

// CumSum's axis is read when the plan is compiled: given at run time, the node is placed on the
// reference backend, visibly and with the reason, and still computes the same sums.
TEST(CpuBackendDataMovement, CumSumWithAnAxisGivenAtRunTimeIsPlacedOnReference) {
  REQUIRE_CPU();
  GraphBuilder q;
  q.input("x", random_floats({3, 4}, 16, -1.0f, 1.0f))
      .input("axis", Tensor::scalar<int64_t>(1))
      .node("CumSum", {"x", "axis"}, {"y"})
      .output("y");
  Runs r = run_both(q);
  ASSERT_EQ(r.report.nodes.size(), 1u);
  const NodePlacement& p = r.report.nodes[0];
  EXPECT_EQ(p.backend, "reference");
  ASSERT_EQ(p.declined.size(), 1u);
  EXPECT_NE(p.declined[0].second.find("axis given at run time"), std::string::npos) << p.declined[0].second;
  ASSERT_EQ(r.cpu.size(), 1u);
  Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{0, 0});
  EXPECT_TRUE(c.is_ok()) << c.message();
}

}  // namespace
}  // namespace tandem
