#include "tandem/tensor.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <string>

#include "core/tensor_util.h"

namespace tandem {
namespace {

TEST(Tensor, ZeroFilledAndShared) {
  Tensor t(DataType::float32, {2, 3});
  EXPECT_EQ(t.numel(), 6);
  EXPECT_EQ(t.nbytes(), 24u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(t.data<float>()[i], 0.0f);
  Tensor shared = t;
  shared.data<float>()[4] = 2.5f;
  EXPECT_EQ(t.data<float>()[4], 2.5f);
  Tensor deep = t.clone();
  deep.data<float>()[4] = 1.0f;
  EXPECT_EQ(t.data<float>()[4], 2.5f);
}

TEST(Tensor, UninitializedHasTheShapeAndAlignmentOfAZeroedOne) {
  Tensor t = Tensor::uninitialized(DataType::float32, {3, 5});
  EXPECT_EQ(t.dtype(), DataType::float32);
  EXPECT_EQ(t.shape(), (Shape{3, 5}));
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % 64, 0u);  // as every owned buffer
  for (int i = 0; i < 15; ++i) t.data<float>()[i] = static_cast<float>(i);
  Tensor copy = t.clone();
  for (int i = 0; i < 15; ++i) EXPECT_EQ(copy.data<float>()[i], static_cast<float>(i));
  Tensor strings = Tensor::uninitialized(DataType::string, {2});
  EXPECT_TRUE(strings.data<std::string>()[0].empty());
  EXPECT_TRUE(strings.data<std::string>()[1].empty());
  EXPECT_EQ(Tensor::uninitialized(DataType::uint8, {0}).numel(), 0);
}

TEST(Tensor, Float16RoundTrip) {
  for (float f : {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(static_cast<float>(Float16(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(static_cast<float>(Float16(1e6f))));
  EXPECT_TRUE(std::isnan(static_cast<float>(Float16(NAN))));
  EXPECT_EQ(static_cast<float>(BFloat16(1.0f)), 1.0f);
}

TEST(Broadcast, ShapesAndIterator) {
  auto s = broadcast_shapes(Shape{2, 1, 3}, Shape{4, 1});
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(*s, (Shape{2, 4, 3}));
  EXPECT_FALSE(broadcast_shapes(Shape{2, 3}, Shape{4}).is_ok());
  BroadcastIterator it({2, 3}, {{2, 3}, {3}, {2, 1}});
  std::vector<int64_t> b_offsets, c_offsets;
  for (int i = 0; i < 6; ++i, it.next()) {
    EXPECT_EQ(it.offset(0), i);
    b_offsets.push_back(it.offset(1));
    c_offsets.push_back(it.offset(2));
  }
  EXPECT_EQ(b_offsets, (std::vector<int64_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_EQ(c_offsets, (std::vector<int64_t>{0, 0, 0, 1, 1, 1}));
}

TEST(Cast, NumericAndString) {
  Tensor f = Tensor::from_vector<float>({3}, {1.5f, -2.0f, 3.9f});
  auto i = cast_tensor(f, DataType::int32);
  ASSERT_TRUE(i.is_ok());
  EXPECT_EQ(i->data<int32_t>()[0], 1);
  EXPECT_EQ(i->data<int32_t>()[2], 3);
  auto s = cast_tensor(f, DataType::string);
  ASSERT_TRUE(s.is_ok());
  EXPECT_EQ(s->data<std::string>()[1], "-2");
  auto back = cast_tensor(*s, DataType::float32);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->data<float>()[0], 1.5f);
}

}  // namespace
}  // namespace tandem
