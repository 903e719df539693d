// cpu_rnn_test.cpp (CpuBackendRecurrent): the cpu backend's RNN, GRU and LSTM (rnn.cpp) beyond
// the op suite's small cases: layers with enough work that an instance of two threads runs the
// two directions of a bidirectional layer side by side (each on one thread, into its part of
// the outputs), in both layouts and with every output, against the reference backend; and the
// forms the backend declines, which placement must put on the reference backend with the reason.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "core/compare.h"
#include "cpu_int8_test_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using namespace int8_test;
using testing::attr_float;
using testing::attr_int;
using testing::attr_string;
using Attrs = std::map<std::string, Attribute>;

struct LayerShape {
  std::string op;
  int64_t seq, batch, input, hidden;
  bool batch_major;
  int64_t linear_before_reset = 0;
};

int64_t gates(const std::string& op) { return op == "LSTM" ? 4 : op == "GRU" ? 3 : 1; }

// A bidirectional layer with biases, initial states (and peepholes for LSTM) and every output.
GraphBuilder bidirectional_layer(const LayerShape& s, uint32_t seed) {
  const int64_t g = gates(s.op), H = s.hidden;
  const Shape x = s.batch_major ? Shape{s.batch, s.seq, s.input} : Shape{s.seq, s.batch, s.input};
  const Shape state = s.batch_major ? Shape{s.batch, 2, H} : Shape{2, s.batch, H};
  // Weights of 1/sqrt(hidden): larger ones make a tanh RNN chaotic, and float32 rounding then
  // grows over the sequence until no two correct implementations agree.
  const float scale = 1.0f / std::sqrt(static_cast<float>(H));
  GraphBuilder q(14);
  q.input("x", random_floats(x, seed, -1.0f, 1.0f))
      .input("h0", random_floats(state, seed + 1, -1.0f, 1.0f))
      .init("w", random_floats({2, g * H, s.input}, seed + 2, -scale, scale))
      .init("r", random_floats({2, g * H, H}, seed + 3, -scale, scale))
      .init("b", random_floats({2, 2 * g * H}, seed + 4, -0.3f, 0.3f));
  std::vector<std::string> in = {"x", "w", "r", "b", "", "h0"}, out = {"y", "yh"};
  if (s.op == "LSTM") {
    q.input("c0", random_floats(state, seed + 5, -1.0f, 1.0f))
        .init("p", random_floats({2, 3 * H}, seed + 6, -0.3f, 0.3f));
    in.insert(in.end(), {"c0", "p"});
    out.push_back("yc");
  }
  Attrs attrs = {{"hidden_size", attr_int(H)},
                 {"direction", attr_string("bidirectional")},
                 {"layout", attr_int(s.batch_major ? 1 : 0)}};
  if (s.op == "GRU") attrs["linear_before_reset"] = attr_int(s.linear_before_reset);
  q.node(s.op, in, out, attrs);
  for (const std::string& o : out) q.output(o);
  return q;
}

TEST(CpuBackendRecurrent, BidirectionalLayersRunTheirDirectionsSideBySide) {
  REQUIRE_CPU();
  // Each has more than the 4e7 multiply-adds below which an instance runs on one thread.
  const std::vector<LayerShape> layers = {{"LSTM", 50, 4, 128, 128, false},   {"LSTM", 50, 4, 128, 128, true},
                                          {"GRU", 50, 4, 128, 160, false, 1}, {"GRU", 50, 4, 128, 160, true, 0},
                                          {"RNN", 100, 4, 256, 256, false},   {"LSTM", 100, 1, 256, 160, false}};
  uint32_t seed = 100;
  for (const LayerShape& s : layers) {
    SCOPED_TRACE(s.op + " seq " + std::to_string(s.seq) + " batch " + std::to_string(s.batch) +
                 (s.batch_major ? " layout 1" : " layout 0"));
    GraphBuilder q = bidirectional_layer(s, seed += 10);
    CompileOptions two;
    two.threads = 2;
    auto placed = PlacedModel::create(q.graph(), {cpu_backend()}, two);
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    const std::string text = (*placed)->describe();
    EXPECT_NE(text.find("a thread per direction"), std::string::npos) << text;
    Runs r = run_both(q, 2);
    ASSERT_EQ(r.cpu.size(), r.ref.size());
    EXPECT_EQ(r.report.nodes_per_backend["cpu"], 1);
    for (size_t i = 0; i < r.cpu.size(); ++i) {
      Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-4, 1e-4});
      EXPECT_TRUE(c.is_ok()) << "output " << i << ": " << c.message();
    }
  }
}

TEST(CpuBackendRecurrent, OneThreadRunsBothDirectionsInOnePrimitive) {
  REQUIRE_CPU();
  GraphBuilder q = bidirectional_layer({"LSTM", 20, 3, 32, 48, false}, 7);
  CompileOptions one;
  one.threads = 1;
  auto placed = PlacedModel::create(q.graph(), {cpu_backend()}, one);
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  EXPECT_EQ((*placed)->describe().find("a thread per direction"), std::string::npos);
  Runs r = run_both(q, 1);
  ASSERT_EQ(r.cpu.size(), 3u);
  for (size_t i = 0; i < r.cpu.size(); ++i) {
    Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-4, 1e-4});
    EXPECT_TRUE(c.is_ok()) << "output " << i << ": " << c.message();
  }
}

// Batches up to 8 run on oneDNN's gemm-based kernel (named `ref`): its brgemm kernel, which it
// prefers on AVX-512 when the weights' format is left to it, is several times slower there.
TEST(CpuBackendRecurrent, SmallBatchesRunOnTheGemmBasedKernel) {
  REQUIRE_CPU();
  for (int threads : {1, 2}) {
    GraphBuilder q = bidirectional_layer({"LSTM", 40, 1, 128, 96, false}, 9);
    CompileOptions options;
    options.threads = threads;
    auto placed = PlacedModel::create(q.graph(), {cpu_backend()}, options);
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    const std::string text = (*placed)->describe();
    EXPECT_NE(text.find("(oneDNN ref"), std::string::npos) << text;
    EXPECT_EQ(text.find("brgemm"), std::string::npos) << text;
    Runs r = run_both(q, threads);
    ASSERT_EQ(r.cpu.size(), 3u);
    for (size_t i = 0; i < r.cpu.size(); ++i) {
      Status c = compare_values(r.ref[i], r.cpu[i], Tolerance{1e-4, 1e-4});
      EXPECT_TRUE(c.is_ok()) << "output " << i << ": " << c.message();
    }
  }
}

// What oneDNN cannot compute goes to the reference backend, and the report says why.
TEST(CpuBackendRecurrent, FormsOneDnnLacksArePlacedOnReferenceWithTheReason) {
  REQUIRE_CPU();
  struct Form {
    Attrs attrs;
    bool runtime_lengths;
    std::string reason;
  };
  const std::vector<Form> forms = {
      {{{"clip", attr_float(0.5f)}}, false, "clip"},
      {{{"input_forget", attr_int(1)}}, false, "input_forget"},
      {{{"activations", testing::attr_strings({"HardSigmoid", "Tanh", "Tanh"})}}, false, "activations"},
      {{}, true, "sequence_lens"}};
  for (const Form& f : forms) {
    SCOPED_TRACE(f.reason);
    GraphBuilder q(14);
    q.input("x", random_floats({4, 2, 3}, 1, -1.0f, 1.0f))
        .init("w", random_floats({1, 16, 3}, 2, -0.5f, 0.5f))
        .init("r", random_floats({1, 16, 4}, 3, -0.5f, 0.5f));
    std::vector<std::string> in = {"x", "w", "r"};
    if (f.runtime_lengths) {
      q.input("lens", Tensor::from_vector<int32_t>({2}, {4, 2}));
      in.insert(in.end(), {"", "lens"});
    }
    Attrs attrs = f.attrs;
    attrs["hidden_size"] = attr_int(4);
    q.node("LSTM", in, {"y"}, attrs).output("y");
    Runs r = run_both(q);
    ASSERT_EQ(r.report.nodes.size(), 1u);
    const NodePlacement& p = r.report.nodes[0];
    EXPECT_EQ(p.backend, "reference");
    ASSERT_EQ(p.declined.size(), 1u);
    EXPECT_NE(p.declined[0].second.find(f.reason), std::string::npos) << p.declined[0].second;
    ASSERT_EQ(r.cpu.size(), 1u);
    Status c = compare_values(r.ref[0], r.cpu[0], Tolerance{0, 0});
    EXPECT_TRUE(c.is_ok()) << c.message();
  }
}

}  // namespace
}  // namespace tandem
