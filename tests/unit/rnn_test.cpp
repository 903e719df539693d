// Unit tests for the reference recurrent kernels RNN, GRU and LSTM.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_floats;
using testing::attr_int;
using testing::attr_string;
using testing::attr_strings;
using testing::f32;
using testing::f64;
using testing::i32;
using testing::run_op;
using testing::values_of;

double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::vector<Value> run(const std::string& op, const std::vector<Tensor>& in,
                       const std::map<std::string, Attribute>& attrs, size_t n_out) {
  std::vector<Value> outs;
  Status s = run_op(op, in, attrs, &outs, n_out, 14);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
  return outs;
}

TEST(RnnTest, SimpleRnnMatchesHandComputation) {
  // hidden 1, input 1, seq 2, batch 1: h1 = tanh(0.5*1 + 0.1), h2 = tanh(0.5*2 + 0.2*h1 + 0.1).
  Tensor x = f32({2, 1, 1}, {1, 2});
  Tensor w = f32({1, 1, 1}, {0.5f});
  Tensor r = f32({1, 1, 1}, {0.2f});
  Tensor b = f32({1, 2}, {0.06f, 0.04f});
  auto outs = run("RNN", {x, w, r, b}, {{"hidden_size", attr_int(1)}}, 2);
  const double h1 = std::tanh(0.5 + 0.1);
  const double h2 = std::tanh(1.0 + 0.2 * h1 + 0.1);
  ASSERT_EQ(outs[0].tensor.shape(), (Shape{2, 1, 1, 1}));
  EXPECT_NEAR(values_of<float>(outs[0].tensor)[0], h1, 1e-6);
  EXPECT_NEAR(values_of<float>(outs[0].tensor)[1], h2, 1e-6);
  EXPECT_NEAR(values_of<float>(outs[1].tensor)[0], h2, 1e-6);
}

TEST(RnnTest, ReverseBidirectionalAndSequenceLens) {
  // Two batch rows, the second only one step long.
  Tensor x = f64({3, 2, 1}, {1, 10, 2, 20, 3, 30});
  Tensor w = f64({2, 1, 1}, {0.1, 0.2});
  Tensor r = f64({2, 1, 1}, {0.3, 0.4});
  auto outs = run("RNN", {x, w, r, Tensor(), i32({2}, {3, 1})},
                  {{"direction", attr_string("bidirectional")}, {"activations", attr_strings({"Tanh", "Relu"})}}, 2);
  ASSERT_EQ(outs[0].tensor.shape(), (Shape{3, 2, 2, 1}));
  std::vector<double> y = values_of<double>(outs[0].tensor);
  // Forward, batch 0.
  const double f1 = std::tanh(0.1), f2 = std::tanh(0.2 + 0.3 * f1), f3 = std::tanh(0.3 + 0.3 * f2);
  // Reverse (Relu), batch 0: steps t=2,1,0.
  const double r3 = 0.2 * 3, r2 = 0.2 * 2 + 0.4 * r3, r1 = 0.2 + 0.4 * r2;
  auto at = [&](int t, int d, int b) { return y[(t * 2 + d) * 2 + b]; };
  EXPECT_NEAR(at(0, 0, 0), f1, 1e-12);
  EXPECT_NEAR(at(2, 0, 0), f3, 1e-12);
  EXPECT_NEAR(at(2, 1, 0), r3, 1e-12);
  EXPECT_NEAR(at(0, 1, 0), r1, 1e-12);
  // Batch 1 has length 1: steps past it are zero, both directions see only t=0.
  EXPECT_NEAR(at(0, 0, 1), std::tanh(1.0), 1e-12);
  EXPECT_NEAR(at(0, 1, 1), 2.0, 1e-12);
  EXPECT_EQ(at(1, 0, 1), 0.0);
  EXPECT_EQ(at(2, 1, 1), 0.0);
  std::vector<double> yh = values_of<double>(outs[1].tensor);  // [2 dirs, 2 batch, 1]
  EXPECT_NEAR(yh[0], f3, 1e-12);
  EXPECT_NEAR(yh[1], std::tanh(1.0), 1e-12);
  EXPECT_NEAR(yh[2], r1, 1e-12);
  EXPECT_NEAR(yh[3], 2.0, 1e-12);
}

TEST(RnnTest, GruBothResetModes) {
  // hidden 1, input 1, one step from h0 = 0.5. Gate rows z, r, h.
  Tensor x = f64({1, 1, 1}, {1.0});
  Tensor w = f64({1, 3, 1}, {0.1, 0.2, 0.3});
  Tensor r = f64({1, 3, 1}, {0.4, 0.5, 0.6});
  Tensor b = f64({1, 6}, {0.01, 0.02, 0.03, 0.04, 0.05, 0.06});
  Tensor h0 = f64({1, 1, 1}, {0.5});
  const double z = sigmoid(0.1 + 0.4 * 0.5 + 0.01 + 0.04);
  const double rg = sigmoid(0.2 + 0.5 * 0.5 + 0.02 + 0.05);
  const double hh0 = std::tanh(0.3 + 0.03 + 0.6 * (rg * 0.5) + 0.06);
  const double hh1 = std::tanh(0.3 + 0.03 + rg * (0.6 * 0.5 + 0.06));
  for (int lbr : {0, 1}) {
    auto outs = run("GRU", {x, w, r, b, Tensor(), h0}, {{"hidden_size", attr_int(1)}, {"linear_before_reset", attr_int(lbr)}}, 2);
    const double want = (1 - z) * (lbr ? hh1 : hh0) + z * 0.5;
    EXPECT_NEAR(values_of<double>(outs[1].tensor)[0], want, 1e-12) << "linear_before_reset=" << lbr;
  }
}

TEST(RnnTest, LstmPeepholesClipAndCellOutput) {
  // hidden 1, input 1, one step. Gate rows i, o, f, c; peepholes i, o, f.
  Tensor x = f64({1, 1, 1}, {1.0});
  Tensor w = f64({1, 4, 1}, {0.1, 0.2, 0.3, 0.4});
  Tensor r = f64({1, 4, 1}, {0.5, 0.6, 0.7, 0.8});
  Tensor h0 = f64({1, 1, 1}, {0.2});
  Tensor c0 = f64({1, 1, 1}, {0.3});
  Tensor p = f64({1, 3}, {0.9, 1.0, 1.1});
  auto outs = run("LSTM", {x, w, r, Tensor(), Tensor(), h0, c0, p}, {{"hidden_size", attr_int(1)}}, 3);
  const double i = sigmoid(0.1 + 0.5 * 0.2 + 0.9 * 0.3);
  const double f = sigmoid(0.3 + 0.7 * 0.2 + 1.1 * 0.3);
  const double cc = std::tanh(0.4 + 0.8 * 0.2);
  const double c = f * 0.3 + i * cc;
  const double o = sigmoid(0.2 + 0.6 * 0.2 + 1.0 * c);
  EXPECT_NEAR(values_of<double>(outs[0].tensor)[0], o * std::tanh(c), 1e-12);
  EXPECT_NEAR(values_of<double>(outs[1].tensor)[0], o * std::tanh(c), 1e-12);
  EXPECT_NEAR(values_of<double>(outs[2].tensor)[0], c, 1e-12);

  // Clip at 0.05 and input_forget: every gate input is clamped, f = 1 - i.
  auto clipped = run("LSTM", {x, w, r, Tensor(), Tensor(), h0, c0},
                     {{"clip", attr_float(0.05f)}, {"input_forget", attr_int(1)}}, 3);
  const double clip = static_cast<double>(0.05f);
  const double ci = sigmoid(clip), cf = 1 - ci, ccc = std::tanh(clip), cco = sigmoid(clip);
  const double cc_state = cf * 0.3 + ci * ccc;
  EXPECT_NEAR(values_of<double>(clipped[2].tensor)[0], cc_state, 1e-12);
  EXPECT_NEAR(values_of<double>(clipped[1].tensor)[0], cco * std::tanh(cc_state), 1e-12);
}

TEST(RnnTest, LayoutOneAndActivationParameters) {
  // Batch-major layout with LeakyRelu(alpha) / Affine(alpha, beta) activations.
  Tensor x = f32({1, 2, 1}, {-1, 2});  // [batch 1, seq 2, input 1]
  Tensor w = f32({1, 1, 1}, {1});
  Tensor r = f32({1, 1, 1}, {0});
  auto outs = run("RNN", {x, w, r},
                  {{"layout", attr_int(1)}, {"activations", attr_strings({"LeakyRelu"})},
                   {"activation_alpha", attr_floats({0.5f})}}, 2);
  ASSERT_EQ(outs[0].tensor.shape(), (Shape{1, 2, 1, 1}));
  EXPECT_EQ(values_of<float>(outs[0].tensor), (std::vector<float>{-0.5f, 2}));
  ASSERT_EQ(outs[1].tensor.shape(), (Shape{1, 1, 1}));
  auto aff = run("RNN", {x, w, r},
                 {{"layout", attr_int(1)}, {"activations", attr_strings({"Affine"})},
                  {"activation_alpha", attr_floats({2})}, {"activation_beta", attr_floats({1})}}, 2);
  EXPECT_EQ(values_of<float>(aff[0].tensor), (std::vector<float>{-1, 5}));
}

TEST(RnnTest, BadInputsAreErrors) {
  std::vector<Value> outs;
  Tensor x = f32({2, 1, 3}, std::vector<float>(6, 1));
  Tensor w = f32({1, 4, 3}, std::vector<float>(12, 1));
  Tensor r = f32({1, 4, 4}, std::vector<float>(16, 1));
  EXPECT_TRUE(run_op("RNN", {x, w, r}, {}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w}, {}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w, r}, {{"hidden_size", attr_int(3)}}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w, r}, {{"direction", attr_string("sideways")}}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w, r}, {{"direction", attr_string("bidirectional")}}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w, r, Tensor(), i32({1}, {3})}, {}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("RNN", {x, w, r}, {{"activations", attr_strings({"Nope"})}}, &outs, 2, 14).is_ok());
  EXPECT_FALSE(run_op("GRU", {x, w, r}, {}, &outs, 2, 14).is_ok());  // W rows not 3*hidden
  EXPECT_FALSE(run_op("LSTM", {f32({2, 3}, {}), w, r}, {}, &outs, 3, 14).is_ok());
}

}  // namespace
}  // namespace tandem
