// Unit tests for the reference optimizer kernels (ai.onnx.preview.training).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_string;
using testing::run_op;
using testing::values_of;

constexpr const char* kDomain = "ai.onnx.preview.training";

Tensor f64(Shape s, std::vector<double> v) { return Tensor::from_vector<double>(std::move(s), v); }
Tensor f32(Shape s, std::vector<float> v) { return Tensor::from_vector<float>(std::move(s), v); }
Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(std::move(s), v); }

Status run_train(const std::string& op, const std::vector<Tensor>& in, const std::map<std::string, Attribute>& attrs,
                 std::vector<Value>* outs, size_t n_out) {
  return run_op(op, in, attrs, outs, n_out, 1, kDomain);
}

TEST(TrainingTest, AdagradSingleAndMultiple) {
  const double r = 0.1, t = 2, eps = static_cast<double>(1e-6f);
  std::map<std::string, Attribute> attrs{{"decay_factor", attr_float(0.1f)}, {"norm_coefficient", attr_float(0.01f)}};
  std::vector<Value> outs;
  Status s = run_train("Adagrad", {f64({}, {r}), i64({}, {2}), f64({2}, {1, 2}), f64({1}, {3}), f64({2}, {-1, 1}),
                                   f64({1}, {4}), f64({2}, {2, 3}), f64({1}, {5})},
                       attrs, &outs, 4);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  auto expect = [&](double x, double g, double h, double got_x, double got_h) {
    const double rr = r / (1 + t * static_cast<double>(0.1f));
    const double gr = static_cast<double>(0.01f) * x + g;
    const double hn = h + gr * gr;
    EXPECT_NEAR(got_h, hn, 1e-12);
    EXPECT_NEAR(got_x, x - rr * gr / (std::sqrt(hn) + eps), 1e-12);
  };
  expect(1, -1, 2, values_of<double>(outs[0].tensor)[0], values_of<double>(outs[2].tensor)[0]);
  expect(2, 1, 3, values_of<double>(outs[0].tensor)[1], values_of<double>(outs[2].tensor)[1]);
  expect(3, 4, 5, values_of<double>(outs[1].tensor)[0], values_of<double>(outs[3].tensor)[0]);
}

TEST(TrainingTest, Adam) {
  std::vector<Value> outs;
  Status s = run_train("Adam", {f64({}, {0.1}), i64({}, {3}), f64({1}, {1.0}), f64({1}, {0.5}), f64({1}, {0.2}),
                                f64({1}, {0.3})},
                       {{"alpha", attr_float(0.9f)}, {"beta", attr_float(0.99f)}, {"norm_coefficient_post", attr_float(0.5f)}},
                       &outs, 3);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  const double a = static_cast<double>(0.9f), b = static_cast<double>(0.99f), eps = static_cast<double>(1e-6f);
  const double v = a * 0.2 + (1 - a) * 0.5;
  const double h = b * 0.3 + (1 - b) * 0.25;
  const double r_adj = 0.1 * std::sqrt(1 - std::pow(b, 3)) / (1 - std::pow(a, 3));
  const double x = (1 - 0.5) * (1.0 - r_adj * v / (std::sqrt(h) + eps));
  EXPECT_NEAR(values_of<double>(outs[0].tensor)[0], x, 1e-12);
  EXPECT_NEAR(values_of<double>(outs[1].tensor)[0], v, 1e-12);
  EXPECT_NEAR(values_of<double>(outs[2].tensor)[0], h, 1e-12);
}

TEST(TrainingTest, MomentumStandardAndNesterov) {
  for (const char* mode : {"standard", "nesterov"}) {
    for (int64_t t : {0, 5}) {
      std::vector<Value> outs;
      Status s = run_train("Momentum", {f32({}, {0.1f}), i64({}, {t}), f32({1}, {1.0f}), f32({1}, {0.5f}), f32({1}, {0.25f})},
                           {{"alpha", attr_float(0.5f)}, {"beta", attr_float(0.25f)}, {"norm_coefficient", attr_float(0.0f)},
                            {"mode", attr_string(mode)}},
                           &outs, 2);
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      const double beta = t > 0 ? 0.25 : 1.0;
      const double v = 0.5 * 0.25 + beta * 0.5;
      const double x = std::string(mode) == "nesterov" ? 1.0 - 0.1 * (0.5 + 0.5 * v) : 1.0 - 0.1 * v;
      EXPECT_NEAR(values_of<float>(outs[1].tensor)[0], v, 1e-6) << mode << " t=" << t;
      EXPECT_NEAR(values_of<float>(outs[0].tensor)[0], x, 1e-6) << mode << " t=" << t;
    }
  }
}

TEST(TrainingTest, BadInputsAreErrors) {
  std::vector<Value> outs;
  std::map<std::string, Attribute> attrs{{"alpha", attr_float(0.5f)}, {"beta", attr_float(0.5f)},
                                         {"norm_coefficient", attr_float(0)}, {"mode", attr_string("standard")}};
  Tensor r = f32({}, {0.1f});
  Tensor t = i64({}, {1});
  Tensor x = f32({2}, {1, 2});
  EXPECT_TRUE(run_train("Momentum", {r, t, x, x, x}, attrs, &outs, 2).is_ok());
  EXPECT_FALSE(run_train("Momentum", {r, t, x, x}, attrs, &outs, 2).is_ok());
  EXPECT_FALSE(run_train("Momentum", {r, t, x, f32({3}, {1, 2, 3}), x}, attrs, &outs, 2).is_ok());
  EXPECT_FALSE(run_train("Momentum", {r, t, x, x, x}, {}, &outs, 2).is_ok());
  EXPECT_FALSE(run_train("Adam", {r, t, x, x, x}, {}, &outs, 3).is_ok());
  EXPECT_FALSE(run_train("Adagrad", {x, t, x, x, x}, {}, &outs, 2).is_ok());
  EXPECT_FALSE(run_train("Adagrad", {r, f32({}, {1}), x, x, x}, {}, &outs, 2).is_ok());
}

}  // namespace
}  // namespace tandem
