// Unit tests for the reference elementwise kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_string;
using testing::bools;
using testing::f32;
using testing::i32;
using testing::i64;
using testing::run_op1;
using testing::run_op;
using testing::values_of;

Status run_status(const std::string& op, const std::vector<Tensor>& in,
                  const std::map<std::string, Attribute>& attrs = {}, int64_t opset = 17) {
  std::vector<Value> outs;
  return run_op(op, in, attrs, &outs, 1, opset);
}

TEST(ElementwiseTest, AddBroadcasts) {
  Tensor out = run_op1("Add", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({3}, {10, 20, 30})});
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{11, 22, 33, 14, 25, 36}));
}

TEST(ElementwiseTest, AddBroadcastsBothWays) {
  Tensor out = run_op1("Mul", {f32({2, 1}, {1, 2}), f32({1, 3}, {1, 2, 3})});
  EXPECT_EQ(out.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{1, 2, 3, 2, 4, 6}));
}

TEST(ElementwiseTest, LegacyBroadcastWithAxis) {
  // Opset 6: B of shape [2] aligned with A's axis 0.
  Tensor out = run_op1("Add", {f32({2, 3}, {0, 0, 0, 0, 0, 0}), f32({2}, {1, 2})},
                       {{"broadcast", attr_int(1)}, {"axis", attr_int(0)}}, 6);
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{1, 1, 1, 2, 2, 2}));
  EXPECT_FALSE(run_status("Add", {f32({2, 3}, {}), f32({3}, {})}, {}, 6).is_ok());  // broadcast=0
}

TEST(ElementwiseTest, IncompatibleShapesAndDtypesAreErrors) {
  EXPECT_FALSE(run_status("Add", {f32({2, 3}, {}), f32({2}, {})}).is_ok());
  EXPECT_FALSE(run_status("Add", {f32({2}, {}), i32({2}, {})}).is_ok());
  EXPECT_FALSE(run_status("Add", {f32({2}, {})}).is_ok());
  EXPECT_FALSE(run_status("Sqrt", {i32({2}, {1, 4})}).is_ok());
  EXPECT_FALSE(run_status("And", {f32({1}, {1}), f32({1}, {1})}).is_ok());
}

TEST(ElementwiseTest, ZeroSizeTensors) {
  Tensor out = run_op1("Add", {f32({0, 3}, {}), f32({3}, {1, 2, 3})});
  EXPECT_EQ(out.shape(), (Shape{0, 3}));
  EXPECT_EQ(out.numel(), 0);
  EXPECT_EQ(run_op1("Exp", {f32({0}, {})}).numel(), 0);
}

TEST(ElementwiseTest, IntegerDivisionTruncates) {
  Tensor out = run_op1("Div", {i32({4}, {7, -7, 7, -7}), i32({4}, {2, 2, -2, -2})});
  EXPECT_EQ(values_of<int32_t>(out), (std::vector<int32_t>{3, -3, -3, 3}));
  EXPECT_FALSE(run_status("Div", {i32({1}, {1}), i32({1}, {0})}).is_ok());
  Tensor wrap = run_op1("Div", {i32({1}, {std::numeric_limits<int32_t>::min()}), i32({1}, {-1})});
  EXPECT_EQ(values_of<int32_t>(wrap)[0], std::numeric_limits<int32_t>::min());
}

TEST(ElementwiseTest, IntegerOverflowWraps) {
  Tensor out = run_op1("Add", {i32({1}, {std::numeric_limits<int32_t>::max()}), i32({1}, {1})});
  EXPECT_EQ(values_of<int32_t>(out)[0], std::numeric_limits<int32_t>::min());
}

TEST(ElementwiseTest, ModSignRules) {
  Tensor a = i64({4}, {-4, 7, -7, 8}), b = i64({4}, {3, -3, 3, 5});
  EXPECT_EQ(values_of<int64_t>(run_op1("Mod", {a, b})), (std::vector<int64_t>{2, -2, 2, 3}));
  EXPECT_EQ(values_of<int64_t>(run_op1("Mod", {a, b}, {{"fmod", attr_int(1)}})), (std::vector<int64_t>{-1, 1, -1, 3}));
  Tensor f = run_op1("Mod", {f32({2}, {-4.5f, 4.5f}), f32({2}, {2, -2})}, {{"fmod", attr_int(1)}});
  EXPECT_EQ(values_of<float>(f), (std::vector<float>{-0.5f, 0.5f}));
  EXPECT_FALSE(run_status("Mod", {i64({1}, {1}), i64({1}, {0})}).is_ok());
}

TEST(ElementwiseTest, PowMixedDtypes) {
  Tensor out = run_op1("Pow", {f32({3}, {1, 2, 3}), i64({3}, {4, 5, 6})});
  EXPECT_EQ(out.dtype(), DataType::float32);
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{1, 32, 729}));
  Tensor ints = run_op1("Pow", {i64({3}, {2, -3, 5}), i64({3}, {10, 3, 0})});
  EXPECT_EQ(values_of<int64_t>(ints), (std::vector<int64_t>{1024, -27, 1}));
  Tensor intf = run_op1("Pow", {i32({2}, {2, 3}), f32({2}, {2, 0.5f})});
  EXPECT_EQ(values_of<int32_t>(intf), (std::vector<int32_t>{4, 1}));
}

TEST(ElementwiseTest, BitShift) {
  Tensor a = Tensor::from_vector<uint8_t>({3}, {16, 4, 1});
  Tensor s = Tensor::from_vector<uint8_t>({3}, {1, 2, 9});
  EXPECT_EQ(values_of<uint8_t>(run_op1("BitShift", {a, s}, {{"direction", attr_string("LEFT")}})),
            (std::vector<uint8_t>{32, 16, 0}));
  EXPECT_EQ(values_of<uint8_t>(run_op1("BitShift", {a, s}, {{"direction", attr_string("RIGHT")}})),
            (std::vector<uint8_t>{8, 1, 0}));
  EXPECT_FALSE(run_status("BitShift", {a, s}).is_ok());  // missing direction
}

TEST(ElementwiseTest, RoundHalfToEven) {
  Tensor out = run_op1("Round", {f32({6}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.6f})});
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{0, 2, 2, 0, -2, 3}));
}

TEST(ElementwiseTest, UnaryMath) {
  Tensor out = run_op1("Sqrt", {f32({2}, {4, 9})});
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{2, 3}));
  EXPECT_EQ(values_of<int32_t>(run_op1("Abs", {i32({2}, {-3, 3})})), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(values_of<int32_t>(run_op1("Neg", {i32({2}, {-3, 3})})), (std::vector<int32_t>{3, -3}));
  EXPECT_EQ(values_of<int32_t>(run_op1("Sign", {i32({3}, {-3, 0, 5})})), (std::vector<int32_t>{-1, 0, 1}));
  Tensor h = Tensor::from_vector<Float16>({1}, {Float16(0.25f)});
  EXPECT_FLOAT_EQ(static_cast<float>(values_of<Float16>(run_op1("Sqrt", {h}))[0]), 0.5f);
}

TEST(ElementwiseTest, IsNaNIsInf) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = f32({4}, {1, NAN, inf, -inf});
  std::vector<bool> nan = values_of<bool>(run_op1("IsNaN", {x}));
  EXPECT_EQ(nan, (std::vector<bool>{false, true, false, false}));
  EXPECT_EQ(values_of<bool>(run_op1("IsInf", {x})), (std::vector<bool>{false, false, true, true}));
  EXPECT_EQ(values_of<bool>(run_op1("IsInf", {x}, {{"detect_negative", attr_int(0)}})),
            (std::vector<bool>{false, false, true, false}));
}

TEST(ElementwiseTest, ComparisonsAndLogic) {
  Tensor a = f32({3}, {1, 2, 3}), b = f32({1}, {2});
  EXPECT_EQ(values_of<bool>(run_op1("Equal", {a, b})), (std::vector<bool>{false, true, false}));
  EXPECT_EQ(values_of<bool>(run_op1("Greater", {a, b})), (std::vector<bool>{false, false, true}));
  EXPECT_EQ(values_of<bool>(run_op1("LessOrEqual", {a, b})), (std::vector<bool>{true, true, false}));
  Tensor p = bools({2}, {true, false}), q = bools({2}, {true, true});
  EXPECT_EQ(values_of<bool>(run_op1("Xor", {p, q})), (std::vector<bool>{false, true}));
  EXPECT_EQ(values_of<bool>(run_op1("Not", {p})), (std::vector<bool>{false, true}));
  Tensor s1 = Tensor::from_vector<std::string>({2}, {"a", "b"}), s2 = Tensor::from_vector<std::string>({2}, {"a", "c"});
  EXPECT_EQ(values_of<bool>(run_op1("Equal", {s1, s2})), (std::vector<bool>{true, false}));
}

TEST(ElementwiseTest, VariadicOps) {
  Tensor a = f32({3}, {1, 5, 3}), b = f32({1}, {2}), c = f32({3}, {0, 0, NAN});
  EXPECT_EQ(values_of<float>(run_op1("Sum", {a, b})), (std::vector<float>{3, 7, 5}));
  EXPECT_EQ(values_of<float>(run_op1("Mean", {a, b})), (std::vector<float>{1.5f, 3.5f, 2.5f}));
  std::vector<float> mx = values_of<float>(run_op1("Max", {a, b, c}));
  EXPECT_EQ(mx[0], 2);
  EXPECT_EQ(mx[1], 5);
  EXPECT_TRUE(std::isnan(mx[2]));
  EXPECT_EQ(values_of<int32_t>(run_op1("Min", {i32({2}, {4, -1})})), (std::vector<int32_t>{4, -1}));
  EXPECT_FALSE(run_status("Max", {}).is_ok());
}

TEST(ElementwiseTest, Where) {
  Tensor out = run_op1("Where", {bools({2, 1}, {true, false}), f32({2}, {1, 2}), f32({1}, {9})});
  EXPECT_EQ(out.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(out), (std::vector<float>{1, 2, 9, 9}));
  Tensor s = run_op1("Where", {bools({2}, {true, false}), Tensor::from_vector<std::string>({2}, {"x", "y"}),
                               Tensor::from_vector<std::string>({2}, {"p", "q"})});
  EXPECT_EQ(values_of<std::string>(s), (std::vector<std::string>{"x", "q"}));
}

TEST(ElementwiseTest, ClipBothForms) {
  Tensor x = f32({4}, {-2, 0, 2, NAN});
  std::vector<float> v = values_of<float>(run_op1("Clip", {x, f32({}, {-1}), f32({}, {1})}));
  EXPECT_EQ(v[0], -1);
  EXPECT_EQ(v[2], 1);
  EXPECT_TRUE(std::isnan(v[3]));
  v = values_of<float>(run_op1("Clip", {x, Tensor(), f32({}, {1})}));  // min omitted
  EXPECT_EQ(v[0], -2);
  EXPECT_EQ(v[2], 1);
  v = values_of<float>(run_op1("Clip", {x}, {{"min", attr_float(-0.5f)}, {"max", attr_float(0.5f)}}, 6));
  EXPECT_EQ(v[0], -0.5f);
  EXPECT_EQ(v[2], 0.5f);
  Tensor i8 = Tensor::from_vector<int8_t>({3}, {-100, 0, 100});
  EXPECT_EQ(values_of<int8_t>(run_op1("Clip", {i8, Tensor::scalar<int8_t>(-5)})), (std::vector<int8_t>{-5, 0, 100}));
  EXPECT_FALSE(run_status("Clip", {x, f32({2}, {0, 1})}).is_ok());  // non-scalar bound
}

TEST(ElementwiseTest, CastAndCastLike) {
  Tensor out = run_op1("Cast", {f32({3}, {1.5f, -2.7f, 0.1f})}, {{"to", attr_int(7)}});
  EXPECT_EQ(out.dtype(), DataType::int64);
  EXPECT_EQ(values_of<int64_t>(out), (std::vector<int64_t>{1, -2, 0}));
  Tensor s = run_op1("Cast", {f32({3}, {0.1f, 1e-5f, NAN})}, {{"to", attr_int(8)}});
  EXPECT_EQ(values_of<std::string>(s), (std::vector<std::string>{"0.1", "1e-05", "NaN"}));
  Tensor back = run_op1("Cast", {s}, {{"to", attr_int(1)}});
  EXPECT_FLOAT_EQ(values_of<float>(back)[0], 0.1f);
  Tensor legacy = run_op1("Cast", {i32({1}, {3})}, {{"to", attr_string("DOUBLE")}}, 1);
  EXPECT_EQ(legacy.dtype(), DataType::float64);
  Tensor like = run_op1("CastLike", {f32({1}, {2.5f}), Tensor::from_vector<double>({1}, {0})});
  EXPECT_EQ(like.dtype(), DataType::float64);
  EXPECT_FALSE(run_status("Cast", {f32({1}, {1})}).is_ok());  // no 'to'
  EXPECT_FALSE(run_status("Cast", {f32({1}, {1})}, {{"to", attr_int(99)}}).is_ok());
}

}  // namespace
}  // namespace tandem
