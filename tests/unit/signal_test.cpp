// Unit tests for the reference signal kernels: DFT, STFT, windows, MelWeightMatrix.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_int;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-4f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

TEST(DftKernel, RealForwardAndOnesided) {
  Tensor x = Tensor::from_vector<float>({1, 4, 1}, {1, 2, 3, 4});
  Tensor y = run_op1("DFT", {x}, {}, 17);
  EXPECT_EQ(y.shape(), (Shape{1, 4, 2}));
  expect_near_all(values_of<float>(y), {10, 0, -2, 2, -2, 0, -2, -2});
  Tensor h = run_op1("DFT", {x}, {{"onesided", attr_int(1)}}, 17);
  EXPECT_EQ(h.shape(), (Shape{1, 3, 2}));
  expect_near_all(values_of<float>(h), {10, 0, -2, 2, -2, 0});
}

TEST(DftKernel, DftLengthPadsAndTruncates) {
  Tensor x = Tensor::from_vector<double>({1, 2, 1}, {1, 1});
  Tensor y = run_op1("DFT", {x, Tensor::from_vector<int64_t>({}, {4})}, {}, 17);
  EXPECT_EQ(y.shape(), (Shape{1, 4, 2}));
  std::vector<double> v = values_of<double>(y);
  std::vector<double> want = {2, 0, 1, -1, 0, 0, 1, 1};
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(v[i], want[i], 1e-12);
  Tensor t = run_op1("DFT", {x, Tensor::from_vector<int32_t>({}, {1})}, {}, 17);
  EXPECT_EQ(values_of<double>(t), (std::vector<double>{1, 0}));
}

TEST(DftKernel, InverseRoundTripsOnInnerAxis) {
  // Shape [batch=1, 2, 3, 2] complex, transformed along axis 2 and back.
  std::vector<float> v = {1, 0.5f, -2, 1, 3, 0, 0, -1, 4, 2, -1, 0};
  Tensor x = Tensor::from_vector<float>({1, 2, 3, 2}, v);
  Tensor f = run_op1("DFT", {x}, {{"axis", attr_int(2)}}, 17);
  Tensor b = run_op1("DFT", {f}, {{"axis", attr_int(2)}, {"inverse", attr_int(1)}}, 17);
  expect_near_all(values_of<float>(b), v);
  // Negative axis counts from the back: -2 is the last signal axis.
  expect_near_all(values_of<float>(run_op1("DFT", {x}, {{"axis", attr_int(-2)}}, 17)), values_of<float>(f));
}

TEST(DftKernel, Opset20AxisInput) {
  Tensor x = Tensor::from_vector<float>({2, 2, 1}, {1, 2, 3, 4});
  // Default axis -2 (the last signal axis).
  expect_near_all(values_of<float>(run_op1("DFT", {x}, {}, 20)), {3, 0, -1, 0, 7, 0, -1, 0});
  Tensor a = run_op1("DFT", {x, Tensor(), Tensor::from_vector<int64_t>({}, {0})}, {}, 20);
  expect_near_all(values_of<float>(a), {4, 0, 6, 0, -2, 0, -2, 0});
}

TEST(DftKernel, RejectsBadInputs) {
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("DFT", {Tensor(DataType::float32, {1, 4, 3})}, {}, &outs, 1, 17).is_ok());
  EXPECT_FALSE(run_op("DFT", {Tensor(DataType::float32, {1, 4, 1})}, {{"axis", attr_int(2)}}, &outs, 1, 17).is_ok());
  EXPECT_FALSE(
      run_op("DFT", {Tensor(DataType::float32, {1, 4, 1}), Tensor::from_vector<int64_t>({}, {0})}, {}, &outs, 1, 17)
          .is_ok());
  EXPECT_FALSE(run_op("DFT", {Tensor(DataType::int32, {1, 4, 1})}, {}, &outs, 1, 17).is_ok());
}

TEST(StftKernel, RectangularWindowFrames) {
  std::vector<float> s(8);
  for (int i = 0; i < 8; ++i) s[i] = static_cast<float>(i);
  Tensor sig = Tensor::from_vector<float>({1, 8, 1}, s);
  Tensor y = run_op1("STFT", {sig, Tensor::from_vector<int64_t>({}, {2}), Tensor(), Tensor::from_vector<int64_t>({}, {4})},
                     {}, 17);
  EXPECT_EQ(y.shape(), (Shape{1, 3, 3, 2}));
  // Frame f holds 2f..2f+3: DC = 8f + 6, bin 1 = -2 + 2i, bin 2 = -2.
  expect_near_all(values_of<float>(y), {6, 0, -2, 2, -2, 0, 14, 0, -2, 2, -2, 0, 22, 0, -2, 2, -2, 0});
  Tensor full = run_op1("STFT", {sig, Tensor::from_vector<int64_t>({}, {4}), Tensor::from_vector<float>({4}, {1, 1, 1, 1})},
                        {{"onesided", attr_int(0)}}, 17);
  EXPECT_EQ(full.shape(), (Shape{1, 2, 4, 2}));
}

TEST(StftKernel, RejectsInconsistentLengths) {
  std::vector<Value> outs;
  Tensor sig(DataType::float32, {1, 8, 1});
  EXPECT_FALSE(run_op("STFT", {sig, Tensor::from_vector<int64_t>({}, {2}), Tensor(DataType::float32, {4}),
                               Tensor::from_vector<int64_t>({}, {5})},
                      {}, &outs, 1, 17)
                   .is_ok());
  EXPECT_FALSE(run_op("STFT", {sig, Tensor::from_vector<int64_t>({}, {2})}, {}, &outs, 1, 17).is_ok());
  EXPECT_FALSE(run_op("STFT", {sig, Tensor::from_vector<int64_t>({}, {0}), Tensor(DataType::float32, {4})}, {}, &outs, 1,
                      17)
                   .is_ok());
  EXPECT_FALSE(run_op("STFT", {sig, Tensor::from_vector<int64_t>({}, {1}), Tensor(DataType::float32, {9})}, {}, &outs, 1,
                      17)
                   .is_ok());
}

TEST(WindowKernels, PeriodicSymmetricAndDtype) {
  Tensor n4 = Tensor::from_vector<int64_t>({}, {4});
  expect_near_all(values_of<float>(run_op1("HannWindow", {n4}, {}, 17)), {0, 0.5f, 1, 0.5f});
  expect_near_all(values_of<float>(run_op1("HannWindow", {n4}, {{"periodic", attr_int(0)}}, 17)), {0, 0.75f, 0.75f, 0});
  expect_near_all(values_of<float>(run_op1("HammingWindow", {n4}, {}, 17)),
                  {4.0f / 46, 25.0f / 46, 1.0f, 25.0f / 46});
  expect_near_all(values_of<float>(run_op1("BlackmanWindow", {n4}, {}, 17)), {0, 0.34f, 1.0f, 0.34f});
  Tensor d = run_op1("HannWindow", {Tensor::from_vector<int32_t>({}, {3})}, {{"output_datatype", attr_int(11)}}, 17);
  EXPECT_EQ(d.dtype(), DataType::float64);
  EXPECT_EQ(run_op1("HannWindow", {Tensor::from_vector<int32_t>({}, {0})}, {}, 17).numel(), 0);
  std::vector<Value> outs;
  EXPECT_FALSE(run_op("HannWindow", {Tensor::from_vector<int32_t>({}, {-1})}, {}, &outs, 1, 17).is_ok());
  EXPECT_FALSE(run_op("HannWindow", {n4}, {{"output_datatype", attr_int(8)}}, &outs, 1, 17).is_ok());
}

TEST(MelWeightMatrixKernel, MatchesReferenceExample) {
  Tensor y = run_op1("MelWeightMatrix",
                     {Tensor::from_vector<int32_t>({}, {8}), Tensor::from_vector<int32_t>({}, {16}),
                      Tensor::from_vector<int32_t>({}, {8192}), Tensor::from_vector<float>({}, {0}),
                      Tensor::from_vector<float>({}, {4096})},
                     {}, 17);
  EXPECT_EQ(y.shape(), (Shape{9, 8}));
  std::vector<float> v = values_of<float>(y);
  std::vector<float> want(72, 0.0f);
  for (auto [r, c] : std::vector<std::pair<int, int>>{{0, 0}, {0, 1}, {1, 2}, {1, 3}, {2, 4}, {3, 5}, {4, 6}, {5, 7}})
    want[r * 8 + c] = 1.0f;
  EXPECT_EQ(v, want);
}

}  // namespace
}  // namespace tandem
