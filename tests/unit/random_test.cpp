// Unit tests for the reference random generators (random.cpp): shape, dtype, range,
// determinism with a seed and rough statistics.
#include <gtest/gtest.h>

#include <cmath>

#include "core/tensor_util.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

double mean_of(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s / static_cast<double>(v.size());
}
double var_of(const std::vector<double>& v) {
  const double m = mean_of(v);
  double s = 0;
  for (double x : v) s += (x - m) * (x - m);
  return s / static_cast<double>(v.size());
}

TEST(RandomOps, UniformRangeShapeDtypeAndSeed) {
  std::map<std::string, Attribute> attrs{{"shape", attr_ints({100, 50})}, {"low", attr_float(-2)},
                                         {"high", attr_float(3)}, {"seed", attr_float(1.5f)}};
  Tensor a = run_op1("RandomUniform", {}, attrs);
  EXPECT_EQ(a.dtype(), DataType::float32);
  EXPECT_EQ(a.shape(), (Shape{100, 50}));
  std::vector<double> v = to_double_vector(a);
  for (double x : v) {
    EXPECT_GE(x, -2.0);
    EXPECT_LT(x, 3.0);
  }
  EXPECT_NEAR(mean_of(v), 0.5, 0.1);
  EXPECT_NEAR(var_of(v), 25.0 / 12.0, 0.15);
  EXPECT_EQ(values_of<float>(run_op1("RandomUniform", {}, attrs)), values_of<float>(a));  // seeded: repeatable
  attrs["seed"] = attr_float(2.5f);
  EXPECT_NE(values_of<float>(run_op1("RandomUniform", {}, attrs)), values_of<float>(a));
  attrs.erase("seed");
  EXPECT_NE(values_of<float>(run_op1("RandomUniform", {}, attrs)), values_of<float>(run_op1("RandomUniform", {}, attrs)));

  // float16 values stay strictly below `high` despite rounding.
  Tensor h = run_op1("RandomUniform", {}, {{"shape", attr_ints({20000})}, {"dtype", attr_int(10)}});
  EXPECT_EQ(h.dtype(), DataType::float16);
  for (double x : to_double_vector(h)) {
    EXPECT_GE(x, 0.0);
    EXPECT_LT(x, 1.0);
  }
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("RandomUniform", {}, {}, &outs).is_ok());  // no shape
  EXPECT_FALSE(run_op("RandomUniform", {}, {{"shape", attr_ints({2})}, {"dtype", attr_int(7)}}, &outs).is_ok());
}

TEST(RandomOps, NormalStatistics) {
  Tensor a = run_op1("RandomNormal", {},
                     {{"shape", attr_ints({20000})}, {"mean", attr_float(3)}, {"scale", attr_float(2)},
                      {"dtype", attr_int(11)}, {"seed", attr_float(0)}});
  EXPECT_EQ(a.dtype(), DataType::float64);
  std::vector<double> v = to_double_vector(a);
  EXPECT_NEAR(mean_of(v), 3.0, 0.1);
  EXPECT_NEAR(var_of(v), 4.0, 0.2);
  for (double x : v) EXPECT_TRUE(std::isfinite(x));
}

TEST(RandomOps, LikeVariantsFollowInput) {
  Tensor in(DataType::float64, {4, 5});
  Tensor u = run_op1("RandomUniformLike", {in}, {{"seed", attr_float(1)}});
  EXPECT_EQ(u.dtype(), DataType::float64);
  EXPECT_EQ(u.shape(), (Shape{4, 5}));
  Tensor n = run_op1("RandomNormalLike", {in}, {{"dtype", attr_int(1)}});
  EXPECT_EQ(n.dtype(), DataType::float32);
  EXPECT_EQ(n.shape(), (Shape{4, 5}));
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("RandomUniformLike", {Tensor(DataType::int64, {2})}, {}, &outs).is_ok());
}

TEST(RandomOps, Bernoulli) {
  Tensor p(DataType::float32, {10000});
  for (int i = 0; i < 10000; ++i) p.data<float>()[i] = i < 5000 ? 0.0f : (i < 7500 ? 1.0f : 0.5f);
  Tensor out = run_op1("Bernoulli", {p}, {{"seed", attr_float(7)}});
  EXPECT_EQ(out.dtype(), DataType::float32);
  std::vector<double> v = to_double_vector(out);
  for (int i = 0; i < 5000; ++i) EXPECT_EQ(v[i], 0.0);
  for (int i = 5000; i < 7500; ++i) EXPECT_EQ(v[i], 1.0);
  std::vector<double> half(v.begin() + 7500, v.end());
  EXPECT_NEAR(mean_of(half), 0.5, 0.05);
  EXPECT_EQ(values_of<float>(run_op1("Bernoulli", {p}, {{"seed", attr_float(7)}})), values_of<float>(out));
  Tensor b = run_op1("Bernoulli", {p}, {{"dtype", attr_int(9)}});
  EXPECT_EQ(b.dtype(), DataType::boolean);
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("Bernoulli", {Tensor::from_vector<float>({1}, {1.5f})}, {}, &outs).is_ok());
}

TEST(RandomOps, Multinomial) {
  // Row 0: classes with probabilities 0.2 / 0.8; row 1: only class 2 possible.
  Tensor logits = Tensor::from_vector<float>({2, 3}, {std::log(0.2f), std::log(0.8f), -INFINITY, -INFINITY, -INFINITY, 0.0f});
  Tensor out = run_op1("Multinomial", {logits}, {{"sample_size", attr_int(5000)}, {"seed", attr_float(3)}});
  EXPECT_EQ(out.dtype(), DataType::int32);
  EXPECT_EQ(out.shape(), (Shape{2, 5000}));
  int ones = 0;
  for (int s = 0; s < 5000; ++s) {
    int32_t c0 = out.data<int32_t>()[s];
    EXPECT_TRUE(c0 == 0 || c0 == 1);
    ones += c0 == 1;
    EXPECT_EQ(out.data<int32_t>()[5000 + s], 2);
  }
  EXPECT_NEAR(ones / 5000.0, 0.8, 0.03);
  Tensor out64 = run_op1("Multinomial", {logits}, {{"dtype", attr_int(7)}});
  EXPECT_EQ(out64.dtype(), DataType::int64);
  EXPECT_EQ(out64.shape(), (Shape{2, 1}));
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("Multinomial", {Tensor(DataType::float32, {3})}, {}, &outs).is_ok());
  EXPECT_FALSE(
      run_op("Multinomial", {Tensor::from_vector<float>({1, 2}, {-INFINITY, -INFINITY})}, {}, &outs).is_ok());
}

}  // namespace
}  // namespace tandem
