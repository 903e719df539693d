// Unit tests for the reference matmul-family kernels: MatMul, Gemm, MatMulInteger,
// QLinearMatMul, Einsum, Det.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_string;
using testing::f32;
using testing::f64;
using testing::i32;
using testing::i64;
using testing::run_op1;
using testing::run_op;
using testing::s8;
using testing::u8;
using testing::values_of;

Status run_status(const std::string& op, const std::vector<Tensor>& in,
                  const std::map<std::string, Attribute>& attrs = {}, int64_t opset = 17) {
  std::vector<Value> outs;
  return run_op(op, in, attrs, &outs, 1, opset);
}

std::vector<float> iota(int n, float start = 0) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = start + static_cast<float>(i);
  return v;
}

TEST(MatMulTest, TwoD) {
  Tensor y = run_op1("MatMul", {f32({2, 3}, {1, 2, 3, 4, 5, 6}), f32({3, 2}, {7, 8, 9, 10, 11, 12})});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{58, 64, 139, 154}));
}

TEST(MatMulTest, VectorOperands) {
  Tensor a = f32({3}, {1, 2, 3});
  Tensor m = f32({3, 2}, {1, 0, 0, 1, 1, 1});
  Tensor vm = run_op1("MatMul", {a, m});
  EXPECT_EQ(vm.shape(), (Shape{2}));
  EXPECT_EQ(values_of<float>(vm), (std::vector<float>{4, 5}));
  Tensor mv = run_op1("MatMul", {f32({2, 3}, {1, 0, 1, 0, 1, 0}), a});
  EXPECT_EQ(mv.shape(), (Shape{2}));
  EXPECT_EQ(values_of<float>(mv), (std::vector<float>{4, 2}));
  Tensor dot = run_op1("MatMul", {a, a});
  EXPECT_EQ(dot.shape(), (Shape{}));
  EXPECT_EQ(values_of<float>(dot), (std::vector<float>{14}));
  // Batched matrix times a vector.
  Tensor bv = run_op1("MatMul", {f32({2, 2, 3}, iota(12)), a});
  EXPECT_EQ(bv.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(bv), (std::vector<float>{8, 26, 44, 62}));
}

TEST(MatMulTest, BatchBroadcast) {
  // [2,1,2,2] x [3,2,2] -> [2,3,2,2]; B batch i is i * identity.
  std::vector<float> b;
  for (int i = 0; i < 3; ++i) b.insert(b.end(), {float(i), 0, 0, float(i)});
  Tensor y = run_op1("MatMul", {f32({2, 1, 2, 2}, iota(8)), f32({3, 2, 2}, b)});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2, 2}));
  std::vector<float> v = values_of<float>(y);
  // Batch (1, 2): A batch 1 (values 4..7) times 2.
  EXPECT_EQ(std::vector<float>(v.begin() + 20, v.begin() + 24), (std::vector<float>{8, 10, 12, 14}));
}

TEST(MatMulTest, IntegerAndDouble) {
  Tensor yi = run_op1("MatMul", {i64({1, 2}, {3, 4}), i64({2, 1}, {5, 6})});
  EXPECT_EQ(values_of<int64_t>(yi), (std::vector<int64_t>{39}));
  Tensor yd = run_op1("MatMul", {f64({1, 2}, {0.5, 0.25}), f64({2, 1}, {2, 4})});
  EXPECT_EQ(values_of<double>(yd), (std::vector<double>{2.0}));
}

TEST(MatMulTest, ZeroSizeAndErrors) {
  Tensor y = run_op1("MatMul", {f32({2, 0}, {}), f32({0, 3}, {})});
  EXPECT_EQ(y.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(y), std::vector<float>(6, 0.0f));
  EXPECT_FALSE(run_status("MatMul", {f32({2, 3}, {}), f32({2, 3}, {})}).is_ok());
  EXPECT_FALSE(run_status("MatMul", {f32({2, 2, 2}, {}), f32({3, 2, 2}, {})}).is_ok());
  EXPECT_FALSE(run_status("MatMul", {f32({}, {1}), f32({2}, {})}).is_ok());
  EXPECT_FALSE(run_status("MatMul", {f32({2}, {}), i32({2}, {})}).is_ok());
  EXPECT_FALSE(run_status("MatMul", {f32({2}, {})}).is_ok());
}

TEST(GemmTest, AttributesAndBias) {
  Tensor a = f32({3, 2}, {1, 4, 2, 5, 3, 6});  // A^T of [[1,2,3],[4,5,6]]
  Tensor b = f32({2, 3}, {1, 1, 1, 0, 0, 0});  // B^T of [[1,0],[1,0],[1,0]]
  Tensor c = f32({2, 1}, {1, 2});
  Tensor y = run_op1("Gemm", {a, b, c},
                     {{"transA", attr_int(1)}, {"transB", attr_int(1)}, {"alpha", attr_float(2)}, {"beta", attr_float(10)}});
  EXPECT_EQ(y.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{22, 10, 50, 20}));
}

TEST(GemmTest, OptionalAndScalarBias) {
  Tensor a = f32({1, 2}, {1, 2});
  Tensor b = f32({2, 2}, {1, 2, 3, 4});
  EXPECT_EQ(values_of<float>(run_op1("Gemm", {a, b})), (std::vector<float>{7, 10}));
  EXPECT_EQ(values_of<float>(run_op1("Gemm", {a, b, f32({}, {1})})), (std::vector<float>{8, 11}));
  EXPECT_EQ(values_of<float>(run_op1("Gemm", {a, b, f32({2}, {1, 2})})), (std::vector<float>{8, 12}));
  EXPECT_FALSE(run_status("Gemm", {a, b, f32({3}, {1, 2, 3})}).is_ok());
  EXPECT_FALSE(run_status("Gemm", {a, a}).is_ok());
  EXPECT_FALSE(run_status("Gemm", {f32({2}, {}), b}).is_ok());
}

TEST(GemmTest, Integer) {
  Tensor y = run_op1("Gemm", {i32({1, 2}, {1, 2}), i32({2, 1}, {3, 4}), i32({1}, {5})});
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{16}));
}

TEST(MatMulIntegerTest, ZeroPoints) {
  // Spec example.
  Tensor a = u8({4, 3}, {11, 7, 3, 10, 6, 2, 9, 5, 1, 8, 4, 0});
  Tensor b = u8({3, 2}, {1, 4, 2, 5, 3, 6});
  Tensor y = run_op1("MatMulInteger", {a, b, u8({}, {12}), u8({}, {0})});
  EXPECT_EQ(y.dtype(), DataType::int32);
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{-38, -83, -44, -98, -50, -113, -56, -128}));
  // Per-row A zero points and per-column B zero points.
  Tensor y2 = run_op1("MatMulInteger", {u8({2, 2}, {1, 2, 3, 4}), s8({2, 2}, {1, 1, 1, 1}), u8({2}, {1, 3}),
                                         s8({2}, {0, 1})});
  // A - zp = [[0,1],[0,1]]; B - zp = [[1,0],[1,0]].
  EXPECT_EQ(values_of<int32_t>(y2), (std::vector<int32_t>{1, 0, 1, 0}));
  EXPECT_FALSE(run_status("MatMulInteger", {f32({2, 2}, {}), u8({2, 2}, {})}).is_ok());
  EXPECT_FALSE(run_status("MatMulInteger", {a, b, u8({3}, {1, 2, 3})}).is_ok());
}

TEST(QLinearMatMulTest, SpecExample) {
  Tensor a = u8({2, 4}, {208, 236, 0, 238, 3, 214, 255, 29});
  Tensor b = u8({4, 3}, {152, 51, 244, 60, 26, 255, 0, 127, 246, 127, 254, 247});
  Tensor y = run_op1("QLinearMatMul", {a, f32({}, {0.0066f}), u8({}, {113}), b, f32({}, {0.00705f}), u8({}, {114}),
                                       f32({}, {0.0107f}), u8({}, {118})});
  EXPECT_EQ(y.dtype(), DataType::uint8);
  EXPECT_EQ(values_of<uint8_t>(y), (std::vector<uint8_t>{168, 115, 255, 1, 66, 151}));
}

TEST(EinsumTest, CommonEquations) {
  Tensor m = f64({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor t = run_op1("Einsum", {m}, {{"equation", attr_string("ij->ji")}});
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<double>(t), (std::vector<double>{1, 4, 2, 5, 3, 6}));
  Tensor s = run_op1("Einsum", {m}, {{"equation", attr_string("ij->i")}});
  EXPECT_EQ(values_of<double>(s), (std::vector<double>{6, 15}));
  Tensor all = run_op1("Einsum", {m}, {{"equation", attr_string("ij->")}});
  EXPECT_EQ(all.shape(), (Shape{}));
  EXPECT_EQ(values_of<double>(all), (std::vector<double>{21}));
  // Implicit output: "ij" stays as is, "ji" is transposed (alphabetical order).
  Tensor impl = run_op1("Einsum", {m}, {{"equation", attr_string("ji")}});
  EXPECT_EQ(impl.shape(), (Shape{3, 2}));
  Tensor mm = run_op1("Einsum", {m, f64({3, 1}, {1, 1, 1})}, {{"equation", attr_string("ij, jk")}});
  EXPECT_EQ(mm.shape(), (Shape{2, 1}));
  EXPECT_EQ(values_of<double>(mm), (std::vector<double>{6, 15}));
  Tensor outer = run_op1("Einsum", {f64({2}, {1, 2}), f64({2}, {3, 4})}, {{"equation", attr_string("i,j->ij")}});
  EXPECT_EQ(values_of<double>(outer), (std::vector<double>{3, 4, 6, 8}));
}

TEST(EinsumTest, DiagonalsAndEllipsis) {
  Tensor sq = f32({2, 2, 2}, iota(8));
  Tensor d = run_op1("Einsum", {sq}, {{"equation", attr_string("...ii ->...i")}});
  EXPECT_EQ(d.shape(), (Shape{2, 2}));
  EXPECT_EQ(values_of<float>(d), (std::vector<float>{0, 3, 4, 7}));
  Tensor tr = run_op1("Einsum", {f32({3, 3}, iota(9))}, {{"equation", attr_string("ii")}});
  EXPECT_EQ(values_of<float>(tr), (std::vector<float>{12}));
  // Batched matmul with ellipsis broadcasting ([2,1,2] batch vs [3] batch dims).
  Tensor a = f32({2, 1, 1, 2}, {1, 2, 3, 4});
  Tensor b = f32({3, 2, 1}, {1, 1, 0, 1, 1, 0});
  Tensor y = run_op1("Einsum", {a, b}, {{"equation", attr_string("...ij,...jk->...ik")}});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 1, 1}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{3, 2, 1, 7, 4, 3}));
  // Three operands.
  Tensor v = run_op1("Einsum", {f32({2}, {1, 2}), f32({2, 2}, {1, 2, 3, 4}), f32({2}, {1, 1})},
                     {{"equation", attr_string("i,ij,j->")}});
  EXPECT_EQ(values_of<float>(v), (std::vector<float>{1 * 3 + 2 * 7}));
  Tensor ints = run_op1("Einsum", {i32({3}, {1, 2, 3}), i32({3}, {4, 5, 6})}, {{"equation", attr_string("i,i")}});
  EXPECT_EQ(values_of<int32_t>(ints), (std::vector<int32_t>{32}));
}

TEST(EinsumTest, Errors) {
  Tensor m = f32({2, 3}, iota(6));
  Tensor empty_sum = run_op1("Einsum", {f32({2, 0}, {})}, {{"equation", attr_string("ij->i")}});
  EXPECT_EQ(values_of<float>(empty_sum), (std::vector<float>{0, 0}));
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("ijk->i")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("ij->k")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("ij->ii")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("ii")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m, m}, {{"equation", attr_string("ij,jk")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("i.j")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {{"equation", attr_string("ij,jk")}}).is_ok());
  EXPECT_FALSE(run_status("Einsum", {m}, {}).is_ok());
}

TEST(DetTest, BatchedWithPivoting) {
  // [[0,1],[1,0]] needs a row swap: det -1. [[2,0,0],[0,3,0],[0,0,4]] -> 24.
  Tensor y = run_op1("Det", {f32({2, 2, 2}, {0, 1, 1, 0, 1, 2, 3, 4})});
  EXPECT_EQ(y.shape(), (Shape{2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{-1, -2}));
  Tensor z = run_op1("Det", {f64({3, 3}, {2, 0, 0, 0, 3, 0, 0, 0, 4})});
  EXPECT_EQ(z.shape(), (Shape{}));
  EXPECT_DOUBLE_EQ(values_of<double>(z)[0], 24.0);
  Tensor singular = run_op1("Det", {f32({2, 2}, {1, 2, 2, 4})});
  EXPECT_EQ(values_of<float>(singular), (std::vector<float>{0}));
  Tensor none = run_op1("Det", {f32({0, 3, 3}, {})});
  EXPECT_EQ(none.shape(), (Shape{0}));
  EXPECT_FALSE(run_status("Det", {f32({2, 3}, iota(6))}).is_ok());
  EXPECT_FALSE(run_status("Det", {f32({3}, iota(3))}).is_ok());
  EXPECT_FALSE(run_status("Det", {i32({2, 2}, {1, 2, 3, 4})}).is_ok());
}

}  // namespace
}  // namespace tandem
