// Unit tests for the reference resampling kernels: Resize, Upsample, GridSample, RoiAlign.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::run_op;
using testing::run_op1;
using testing::values_of;

Tensor iota4x4() {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i + 1);
  return Tensor::from_vector<float>({1, 1, 4, 4}, v);
}

void expect_near_all(const std::vector<float>& got, const std::vector<float>& want, float tol = 1e-5f) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "at " << i;
}

TEST(ResizeKernel, LinearUpsampleHalfPixel) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor scales = Tensor::from_vector<float>({4}, {1, 1, 2, 2});
  Tensor y = run_op1("Resize", {x, Tensor(), scales}, {{"mode", attr_string("linear")}}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 4, 4}));
  expect_near_all(values_of<float>(y), {1, 1.25, 1.75, 2, 1.5, 1.75, 2.25, 2.5, 2.5, 2.75, 3.25, 3.5, 3, 3.25, 3.75, 4});
}

TEST(ResizeKernel, NearestSizesAndIntegerDtype) {
  Tensor x = Tensor::from_vector<int32_t>({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor sizes = Tensor::from_vector<int64_t>({4}, {1, 1, 1, 3});
  Tensor y = run_op1("Resize", {x, Tensor(), Tensor(), sizes}, {}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 1, 3}));
  EXPECT_EQ(values_of<int32_t>(y), (std::vector<int32_t>{1, 2, 4}));
}

TEST(ResizeKernel, NearestCopiesStrings) {
  Tensor x = Tensor::from_vector<std::string>({2}, {"a", "b"});
  Tensor scales = Tensor::from_vector<float>({1}, {2});
  Tensor y = run_op1("Resize", {x, Tensor(), scales}, {{"coordinate_transformation_mode", attr_string("asymmetric")}},
                     13);
  EXPECT_EQ(values_of<std::string>(y), (std::vector<std::string>{"a", "a", "b", "b"}));
}

TEST(ResizeKernel, Opset11EmptyScalesMeansSizes) {
  Tensor x = iota4x4();
  Tensor empty(DataType::float32, {0});
  Tensor sizes = Tensor::from_vector<int64_t>({4}, {1, 1, 3, 2});
  Tensor y = run_op1("Resize", {x, empty, empty, sizes},
                     {{"coordinate_transformation_mode", attr_string("tf_half_pixel_for_nn")}}, 11);
  expect_near_all(values_of<float>(y), {6, 8, 10, 12, 14, 16});
}

TEST(ResizeKernel, Resize10AndUpsampleUseAsymmetricFloor) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor scales = Tensor::from_vector<float>({4}, {1, 1, 2, 3});
  std::vector<float> want = {1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4};
  expect_near_all(values_of<float>(run_op1("Resize", {x, scales}, {}, 10)), want);
  expect_near_all(values_of<float>(run_op1("Upsample", {x, scales}, {}, 9)), want);
  // Upsample-7 takes scales as an attribute.
  expect_near_all(values_of<float>(run_op1("Upsample", {x}, {{"scales", testing::attr_floats({1, 1, 2, 3})}}, 7)),
                  want);
  // Linear upsampling with asymmetric coordinates clamps at the far edge.
  Tensor lin = run_op1("Upsample", {Tensor::from_vector<float>({2}, {1, 3}), Tensor::from_vector<float>({1}, {2})},
                       {{"mode", attr_string("linear")}}, 9);
  expect_near_all(values_of<float>(lin), {1, 2, 3, 3});
  // Resize-10 nearest downsampling picks the ceiling (onnxruntime's legacy rule).
  Tensor down = run_op1("Resize", {Tensor::from_vector<float>({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}),
                                   Tensor::from_vector<float>({4}, {1, 1, 0.6f, 0.6f})},
                        {}, 10);
  expect_near_all(values_of<float>(down), {1, 3});
}

TEST(ResizeKernel, CubicAlignCornersKeepsCorners) {
  Tensor scales = Tensor::from_vector<float>({4}, {1, 1, 2, 2});
  Tensor y = run_op1("Resize", {iota4x4(), Tensor(), scales},
                     {{"mode", attr_string("cubic")}, {"coordinate_transformation_mode", attr_string("align_corners")}},
                     13);
  std::vector<float> v = values_of<float>(y);
  ASSERT_EQ(v.size(), 64u);
  EXPECT_NEAR(v[0], 1.0f, 1e-5f);
  EXPECT_NEAR(v[7], 4.0f, 1e-5f);
  EXPECT_NEAR(v[63], 16.0f, 1e-5f);
  EXPECT_NEAR(v[1], 1.3411078f, 1e-5f);
}

TEST(ResizeKernel, TfCropAndResizeExtrapolates) {
  Tensor roi = Tensor::from_vector<float>({8}, {0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f});
  Tensor sizes = Tensor::from_vector<int64_t>({4}, {1, 1, 3, 3});
  Tensor y = run_op1("Resize", {iota4x4(), roi, Tensor(), sizes},
                     {{"mode", attr_string("linear")},
                      {"coordinate_transformation_mode", attr_string("tf_crop_and_resize")},
                      {"extrapolation_value", attr_float(10)}},
                     13);
  expect_near_all(values_of<float>(y), {7.6f, 10, 10, 12.4f, 10, 10, 10, 10, 10});
}

TEST(ResizeKernel, Opset18AxesAndAspectRatio) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor sizes = Tensor::from_vector<int64_t>({2}, {7, 8});
  Tensor y = run_op1("Resize", {x, Tensor(), Tensor(), sizes},
                     {{"axes", attr_ints({2, 3})}, {"keep_aspect_ratio_policy", attr_string("not_larger")}}, 18);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 7, 7}));
  std::vector<float> v = values_of<float>(y);
  expect_near_all(std::vector<float>(v.begin(), v.begin() + 7), {1, 1, 1, 1, 2, 2, 2});
  Tensor z = run_op1("Resize", {x, Tensor(), Tensor(), sizes},
                     {{"axes", attr_ints({-2, -1})}, {"keep_aspect_ratio_policy", attr_string("not_smaller")}}, 18);
  EXPECT_EQ(z.shape(), (Shape{1, 1, 8, 8}));
}

TEST(ResizeKernel, Opset18Antialias) {
  Tensor scales = Tensor::from_vector<float>({4}, {1, 1, 0.6f, 0.6f});
  Tensor lin = run_op1("Resize", {iota4x4(), Tensor(), scales},
                       {{"mode", attr_string("linear")}, {"antialias", attr_int(1)}}, 18);
  expect_near_all(values_of<float>(lin), {2.875f, 4.5f, 9.375f, 11.0f});
  Tensor cub = run_op1("Resize", {iota4x4(), Tensor(), scales},
                       {{"mode", attr_string("cubic")}, {"antialias", attr_int(1)}}, 18);
  expect_near_all(values_of<float>(cub), {2.5180721f, 4.2858863f, 9.589329f, 11.357142f}, 1e-4f);
}

TEST(ResizeKernel, RejectsBadInputs) {
  std::vector<Value> outs;
  Tensor x = iota4x4();
  // Both scales and sizes.
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({4}, {1, 1, 2, 2}),
                                 Tensor::from_vector<int64_t>({4}, {1, 1, 8, 8})},
                      {}, &outs, 1, 13)
                   .is_ok());
  // Neither.
  EXPECT_FALSE(run_op("Resize", {x}, {}, &outs, 1, 13).is_ok());
  // Wrong length, negative scale, unknown mode, NaN scale.
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({2}, {2, 2})}, {}, &outs, 1, 13).is_ok());
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({4}, {1, 1, -2, 2})}, {}, &outs, 1, 13).is_ok());
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({4}, {1, 1, NAN, 2})}, {}, &outs, 1, 13).is_ok());
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({4}, {1, 1, 2, 2})},
                      {{"mode", attr_string("spline")}}, &outs, 1, 13)
                   .is_ok());
  // Absurdly large output.
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor::from_vector<float>({4}, {1e9f, 1e9f, 1e9f, 1e9f})}, {}, &outs, 1,
                      13)
                   .is_ok());
  EXPECT_FALSE(run_op("Resize", {x, Tensor(), Tensor(), Tensor::from_vector<int64_t>({4}, {1, 1, -1, 3})}, {}, &outs, 1,
                      13)
                   .is_ok());
}

TEST(ResizeKernel, ZeroSizedOutput) {
  Tensor y = run_op1("Resize", {iota4x4(), Tensor(), Tensor(), Tensor::from_vector<int64_t>({4}, {1, 1, 0, 3})}, {}, 13);
  EXPECT_EQ(y.shape(), (Shape{1, 1, 0, 3}));
}

TEST(GridSampleKernel, BilinearAndNearest) {
  Tensor x = Tensor::from_vector<float>({1, 1, 3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor grid = Tensor::from_vector<float>({1, 2, 4, 2}, {-1, -1, -0.5f, -0.5f, -0.2f, -0.2f, 0, 0, 0, 0, -0.2f, -0.2f,
                                                          0.5f, 0.5f, 1, 1});
  expect_near_all(values_of<float>(run_op1("GridSample", {x, grid}, {}, 16)), {0, 0.5f, 1.7f, 2.5f, 2.5f, 1.7f, 4.5f, 1.25f});
  expect_near_all(values_of<float>(run_op1("GridSample", {x, grid}, {{"mode", attr_string("nearest")}}, 16)),
                  {0, 0, 2, 2, 2, 2, 5, 0});
}

TEST(GridSampleKernel, PaddingModesOnConstantImage) {
  // A constant image reads back the constant everywhere under border/reflection padding.
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 3}, {7, 7, 7, 7, 7, 7});
  Tensor grid = Tensor::from_vector<float>({1, 1, 3, 2}, {-9.3f, 4.1f, 0.0f, 0.0f, 25.0f, -13.0f});
  for (const char* pad : {"border", "reflection"}) {
    for (const char* mode : {"bilinear", "nearest", "bicubic"}) {
      for (int align : {0, 1}) {
        Tensor y = run_op1("GridSample", {x, grid},
                           {{"mode", attr_string(mode)}, {"padding_mode", attr_string(pad)},
                            {"align_corners", attr_int(align)}},
                           16);
        expect_near_all(values_of<float>(y), {7, 7, 7}, 1e-4f);
      }
    }
  }
  Tensor z = run_op1("GridSample", {x, grid}, {{"padding_mode", attr_string("zeros")}}, 16);
  expect_near_all(values_of<float>(z), {0, 7, 0});
}

TEST(GridSampleKernel, ReflectionFoldsCoordinates) {
  Tensor x = Tensor::from_vector<float>({1, 1, 3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor grid = Tensor::from_vector<float>({1, 2, 4, 2}, {-10, -10, -5, -5, -0.2f, -0.2f, 10, 10, 10, 10, -0.2f, -0.2f,
                                                          5, 5, 10, 10});
  Tensor y = run_op1("GridSample", {x, grid}, {{"padding_mode", attr_string("reflection")}}, 16);
  expect_near_all(values_of<float>(y), {2.5f, 0, 1.7f, 2.5f, 2.5f, 1.7f, 5, 2.5f});
}

TEST(GridSampleKernel, Volumetric) {
  // 3-D spatial input (opset 20): the identity grid with align_corners reproduces the input.
  std::vector<float> v(8);
  for (int i = 0; i < 8; ++i) v[i] = static_cast<float>(i);
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2, 2}, v);
  std::vector<float> g;
  for (int d = 0; d < 2; ++d)
    for (int h = 0; h < 2; ++h)
      for (int w = 0; w < 2; ++w) g.insert(g.end(), {w * 2.0f - 1, h * 2.0f - 1, d * 2.0f - 1});
  Tensor grid = Tensor::from_vector<float>({1, 2, 2, 2, 3}, g);
  Tensor y = run_op1("GridSample", {x, grid}, {{"mode", attr_string("linear")}, {"align_corners", attr_int(1)}}, 20);
  expect_near_all(values_of<float>(y), v);
}

TEST(GridSampleKernel, RejectsMismatchedGrid) {
  std::vector<Value> outs;
  Tensor x = Tensor::from_vector<float>({1, 1, 3, 2}, {0, 1, 2, 3, 4, 5});
  EXPECT_FALSE(run_op("GridSample", {x, Tensor::from_vector<float>({1, 2, 2, 3}, {})}, {}, &outs, 1, 16).is_ok());
  EXPECT_FALSE(run_op("GridSample", {x, Tensor::from_vector<float>({2, 2, 2, 2}, {})}, {}, &outs, 1, 16).is_ok());
  EXPECT_FALSE(run_op("GridSample", {x}, {}, &outs, 1, 16).is_ok());
}

TEST(RoiAlignKernel, AvgAndMax) {
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = static_cast<float>(i);
  Tensor x = Tensor::from_vector<float>({1, 1, 4, 4}, v);
  Tensor rois = Tensor::from_vector<float>({1, 4}, {0, 0, 3, 3});
  Tensor idx = Tensor::from_vector<int64_t>({1}, {0});
  // output_half_pixel, one bin, 1 sample at the RoI center (1.5, 1.5): bilinear average 7.5.
  Tensor y = run_op1("RoiAlign", {x, rois, idx},
                     {{"coordinate_transformation_mode", attr_string("output_half_pixel")},
                      {"sampling_ratio", attr_int(1)}},
                     16);
  expect_near_all(values_of<float>(y), {7.5f});
  // Opset 10 defaults to output_half_pixel too.
  expect_near_all(values_of<float>(run_op1("RoiAlign", {x, rois, idx}, {{"sampling_ratio", attr_int(1)}}, 10)), {7.5f});
  // half_pixel shifts by -0.5: sample at (1, 1) -> 5.
  expect_near_all(values_of<float>(run_op1("RoiAlign", {x, rois, idx}, {{"sampling_ratio", attr_int(1)}}, 16)), {5.0f});
  // max mode takes the largest weighted corner: 0.25 * 10 at (1.5, 1.5).
  Tensor m = run_op1("RoiAlign", {x, rois, idx},
                     {{"mode", attr_string("max")},
                      {"coordinate_transformation_mode", attr_string("output_half_pixel")},
                      {"sampling_ratio", attr_int(1)}},
                     16);
  expect_near_all(values_of<float>(m), {2.5f});
}

TEST(GridSampleKernel, NonFiniteGridIsSafe) {
  Tensor x = Tensor::from_vector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  Tensor grid = Tensor::from_vector<float>({1, 1, 3, 2}, {NAN, 0, INFINITY, -INFINITY, 1e30f, -1e30f});
  for (const char* pad : {"zeros", "border", "reflection"})
    for (const char* mode : {"bilinear", "nearest", "bicubic"})
      EXPECT_EQ(run_op1("GridSample", {x, grid}, {{"mode", attr_string(mode)}, {"padding_mode", attr_string(pad)}}, 16)
                    .numel(),
                3);
}

TEST(RoiAlignKernel, NonFiniteRoiIsSafe) {
  Tensor x(DataType::float32, {1, 1, 4, 4});
  Tensor rois = Tensor::from_vector<float>({2, 4}, {NAN, 0, 3, 3, 0, 0, 1e30f, INFINITY});
  Tensor y = run_op1("RoiAlign", {x, rois, Tensor::from_vector<int64_t>({2}, {0, 0})}, {}, 16);
  EXPECT_EQ(y.shape(), (Shape{2, 1, 1, 1}));
}

TEST(RoiAlignKernel, RejectsBadBatchIndex) {
  std::vector<Value> outs;
  Tensor x(DataType::float32, {1, 1, 4, 4});
  Tensor rois = Tensor::from_vector<float>({1, 4}, {0, 0, 3, 3});
  EXPECT_FALSE(run_op("RoiAlign", {x, rois, Tensor::from_vector<int64_t>({1}, {3})}, {}, &outs, 1, 16).is_ok());
  EXPECT_FALSE(run_op("RoiAlign", {x, rois, Tensor::from_vector<int64_t>({2}, {0, 0})}, {}, &outs, 1, 16).is_ok());
  EXPECT_FALSE(run_op("RoiAlign", {Tensor(DataType::float32, {1, 4, 4}), rois, Tensor::from_vector<int64_t>({1}, {0})},
                      {}, &outs, 1, 16)
                   .is_ok());
}

}  // namespace
}  // namespace tandem
