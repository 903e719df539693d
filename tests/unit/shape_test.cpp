// Unit tests for the reference shape/data-movement kernels (shape.cpp).
#include <gtest/gtest.h>

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

Tensor i64(Shape s, std::vector<int64_t> v) { return Tensor::from_vector<int64_t>(std::move(s), v); }
Tensor f32(Shape s, std::vector<float> v) { return Tensor::from_vector<float>(std::move(s), v); }
Tensor iota(Shape s) {
  Tensor t(DataType::float32, s);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = static_cast<float>(i);
  return t;
}

Status run_expect_error(const std::string& op, const std::vector<Tensor>& in,
                        const std::map<std::string, Attribute>& attrs = {}, int64_t opset = 17, size_t nout = 1) {
  std::vector<Value> outs;
  return run_op(op, in, attrs, &outs, nout, opset);
}

TEST(ShapeOps, ShapeWithStartEnd) {
  Tensor x(DataType::float32, {2, 3, 4, 5});
  EXPECT_EQ(values_of<int64_t>(run_op1("Shape", {x})), (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(values_of<int64_t>(run_op1("Shape", {x}, {{"start", attr_int(1)}, {"end", attr_int(-1)}})),
            (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(values_of<int64_t>(run_op1("Shape", {x}, {{"start", attr_int(-10)}, {"end", attr_int(10)}})),
            (std::vector<int64_t>{2, 3, 4, 5}));
  EXPECT_EQ(run_op1("Shape", {x}, {{"start", attr_int(3)}, {"end", attr_int(1)}}).numel(), 0);
  EXPECT_EQ(run_op1("Size", {x}).data<int64_t>()[0], 120);
}

TEST(ShapeOps, ReshapeZeroAndInfer) {
  Tensor x = iota({2, 3, 4});
  Tensor y = run_op1("Reshape", {x, i64({3}, {0, -1, 2})});
  EXPECT_EQ(y.shape(), (Shape{2, 6, 2}));
  EXPECT_EQ(values_of<float>(y), values_of<float>(x));
  // allowzero: a literal 0 dim.
  Tensor empty(DataType::float32, {0, 3});
  EXPECT_EQ(run_op1("Reshape", {empty, i64({2}, {3, 0})}, {{"allowzero", attr_int(1)}}).shape(), (Shape{3, 0}));
  EXPECT_FALSE(run_expect_error("Reshape", {x, i64({2}, {-1, -1})}).is_ok());
  EXPECT_FALSE(run_expect_error("Reshape", {x, i64({2}, {5, -1})}).is_ok());
  EXPECT_FALSE(run_expect_error("Reshape", {x, i64({1}, {-2})}).is_ok());
  EXPECT_FALSE(run_expect_error("Reshape", {x}).is_ok());
  // Opset 1-4: shape attribute.
  EXPECT_EQ(run_op1("Reshape", {x}, {{"shape", attr_ints({4, 6})}}, 4).shape(), (Shape{4, 6}));
}

TEST(ShapeOps, FlattenSqueezeUnsqueeze) {
  Tensor x = iota({2, 3, 4});
  EXPECT_EQ(run_op1("Flatten", {x}).shape(), (Shape{2, 12}));
  EXPECT_EQ(run_op1("Flatten", {x}, {{"axis", attr_int(0)}}).shape(), (Shape{1, 24}));
  EXPECT_EQ(run_op1("Flatten", {x}, {{"axis", attr_int(-1)}}).shape(), (Shape{6, 4}));
  EXPECT_FALSE(run_expect_error("Flatten", {x}, {{"axis", attr_int(4)}}).is_ok());

  Tensor s = iota({1, 3, 1, 2});
  EXPECT_EQ(run_op1("Squeeze", {s}).shape(), (Shape{3, 2}));
  EXPECT_EQ(run_op1("Squeeze", {s, i64({1}, {-2})}).shape(), (Shape{1, 3, 2}));
  EXPECT_EQ(run_op1("Squeeze", {s}, {{"axes", attr_ints({0})}}, 11).shape(), (Shape{3, 1, 2}));
  EXPECT_FALSE(run_expect_error("Squeeze", {s, i64({1}, {1})}).is_ok());

  Tensor u = iota({3, 4});
  EXPECT_EQ(run_op1("Unsqueeze", {u, i64({2}, {3, 0})}).shape(), (Shape{1, 3, 4, 1}));
  EXPECT_EQ(run_op1("Unsqueeze", {u, i64({1}, {-1})}).shape(), (Shape{3, 4, 1}));
  EXPECT_EQ(run_op1("Unsqueeze", {u}, {{"axes", attr_ints({1})}}, 11).shape(), (Shape{3, 1, 4}));
  EXPECT_FALSE(run_expect_error("Unsqueeze", {u, i64({2}, {0, 0})}).is_ok());
  EXPECT_FALSE(run_expect_error("Unsqueeze", {u, i64({1}, {3})}).is_ok());
}

TEST(ShapeOps, TransposeStrings) {
  Tensor x = Tensor::from_vector<std::string>({2, 3}, {"a", "b", "c", "d", "e", "f"});
  Tensor y = run_op1("Transpose", {x});
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<std::string>(y), (std::vector<std::string>{"a", "d", "b", "e", "c", "f"}));
  Tensor z = run_op1("Transpose", {iota({2, 3, 4})}, {{"perm", attr_ints({1, 2, 0})}});
  EXPECT_EQ(z.shape(), (Shape{3, 4, 2}));
  EXPECT_EQ(z.data<float>()[1], 12.0f);  // z[0,0,1] = x[1,0,0]
  EXPECT_FALSE(run_expect_error("Transpose", {x}, {{"perm", attr_ints({0, 0})}}).is_ok());
}

TEST(ShapeOps, ConcatAndSplit) {
  Tensor a = f32({2, 1}, {1, 2}), b = f32({2, 2}, {3, 4, 5, 6});
  Tensor c = run_op1("Concat", {a, b}, {{"axis", attr_int(-1)}});
  EXPECT_EQ(c.shape(), (Shape{2, 3}));
  EXPECT_EQ(values_of<float>(c), (std::vector<float>{1, 3, 4, 2, 5, 6}));
  EXPECT_FALSE(run_expect_error("Concat", {a, f32({3, 1}, {1, 2, 3})}, {{"axis", attr_int(1)}}).is_ok());
  EXPECT_FALSE(run_expect_error("Concat", {a, b}, {{"axis", attr_int(2)}}).is_ok());

  std::vector<Value> outs;
  Tensor x = iota({7});
  ASSERT_TRUE(run_op("Split", {x, i64({2}, {3, 4})}, {}, &outs, 2, 13).is_ok());
  EXPECT_EQ(values_of<float>(outs[1].tensor), (std::vector<float>{3, 4, 5, 6}));
  // Opset 18 num_outputs: uneven split, ceil-sized parts then the remainder.
  ASSERT_TRUE(run_op("Split", {x}, {{"num_outputs", attr_int(3)}}, &outs, 3, 18).is_ok());
  EXPECT_EQ(outs[0].tensor.shape(), (Shape{3}));
  EXPECT_EQ(outs[2].tensor.shape(), (Shape{1}));
  // Opset 11: split attribute.
  ASSERT_TRUE(run_op("Split", {x}, {{"split", attr_ints({1, 6})}}, &outs, 2, 11).is_ok());
  EXPECT_EQ(outs[1].tensor.shape(), (Shape{6}));
  EXPECT_FALSE(run_op("Split", {x}, {}, &outs, 2, 13).is_ok());  // 7 does not split evenly in 2
  EXPECT_FALSE(run_op("Split", {x, i64({2}, {3, 3})}, {}, &outs, 2, 13).is_ok());
}

TEST(ShapeOps, SliceNegativeStepsAndClamping) {
  Tensor x = iota({10});
  auto slice = [&](int64_t s, int64_t e, int64_t step) {
    return values_of<float>(run_op1("Slice", {x, i64({1}, {s}), i64({1}, {e}), i64({1}, {0}), i64({1}, {step})}));
  };
  EXPECT_EQ(slice(1, 4, 1), (std::vector<float>{1, 2, 3}));
  EXPECT_EQ(slice(-1, -100, -3), (std::vector<float>{9, 6, 3, 0}));
  EXPECT_EQ(slice(INT64_MAX, INT64_MIN, -1).size(), 10u);
  EXPECT_EQ(slice(0, INT64_MAX, INT64_MAX), (std::vector<float>{0}));
  EXPECT_EQ(slice(0, -20, INT64_MIN), (std::vector<float>{0}));
  EXPECT_EQ(slice(20, 30, 1), std::vector<float>{});
  EXPECT_FALSE(run_expect_error("Slice", {x, i64({1}, {0}), i64({1}, {1}), i64({1}, {0}), i64({1}, {0})}).is_ok());
  // Opset 1-9: attributes.
  Tensor m = iota({3, 4});
  Tensor y = run_op1("Slice", {m}, {{"starts", attr_ints({1})}, {"ends", attr_ints({3})}, {"axes", attr_ints({1})}}, 9);
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{1, 2, 5, 6, 9, 10}));
}

TEST(ShapeOps, ExpandTile) {
  Tensor x = f32({3, 1}, {1, 2, 3});
  Tensor y = run_op1("Expand", {x, i64({3}, {2, 1, 2})});
  EXPECT_EQ(y.shape(), (Shape{2, 3, 2}));
  EXPECT_EQ(values_of<float>(y), (std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3}));
  EXPECT_FALSE(run_expect_error("Expand", {x, i64({2}, {2, 2})}).is_ok());
  EXPECT_FALSE(run_expect_error("Expand", {x, i64({2}, {1 << 30, 1 << 30})}).is_ok());

  Tensor t = run_op1("Tile", {f32({2}, {1, 2}), i64({1}, {3})});
  EXPECT_EQ(values_of<float>(t), (std::vector<float>{1, 2, 1, 2, 1, 2}));
  EXPECT_FALSE(run_expect_error("Tile", {x, i64({1}, {2})}).is_ok());
  EXPECT_FALSE(run_expect_error("Tile", {x, i64({2}, {-1, 1})}).is_ok());
}

TEST(ShapeOps, PadModes) {
  Tensor x = f32({1, 3}, {1, 2, 3});
  Tensor pads = i64({4}, {0, 2, 0, 1});
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x, pads, f32({}, {9})})), (std::vector<float>{9, 9, 1, 2, 3, 9}));
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x, pads}, {{"mode", attr_string("reflect")}})),
            (std::vector<float>{3, 2, 1, 2, 3, 2}));
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x, pads}, {{"mode", attr_string("edge")}})),
            (std::vector<float>{1, 1, 1, 2, 3, 3}));
  // Negative pads crop.
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x, i64({4}, {0, -1, 0, 0})})), (std::vector<float>{2, 3}));
  // Opset 2-10: attributes.
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x}, {{"pads", attr_ints({0, 1, 0, 0})}, {"value", attr_float(5)}}, 2)),
            (std::vector<float>{5, 1, 2, 3}));
  // Opset 18 axes input.
  Tensor undefined;
  EXPECT_EQ(values_of<float>(run_op1("Pad", {x, i64({2}, {1, 0}), undefined, i64({1}, {-1})}, {}, 18)),
            (std::vector<float>{0, 1, 2, 3}));
  EXPECT_FALSE(run_expect_error("Pad", {x, i64({2}, {1, 1})}).is_ok());
  EXPECT_FALSE(run_expect_error("Pad", {x, i64({4}, {0, -4, 0, 0})}).is_ok());
  EXPECT_FALSE(run_expect_error("Pad", {x, pads, Tensor::scalar<int64_t>(1)}).is_ok());
}

TEST(ShapeOps, IdentityPassesSequences) {
  Node node;
  node.op_type = "Identity";
  node.opset = 16;
  node.inputs = {"in"};
  node.outputs = {"out"};
  Value seq = Value::of_sequence({f32({1}, {1}), f32({2}, {2, 3})});
  std::vector<const Value*> ins{&seq};
  std::vector<Value> outs(1);
  KernelContext ctx(node, ins, &outs, nullptr);
  ASSERT_TRUE(reference_kernels().find("", "Identity")(ctx).is_ok());
  ASSERT_TRUE(outs[0].is_sequence());
  EXPECT_EQ(outs[0].sequence.size(), 2u);
}

TEST(ShapeOps, ConstantForms) {
  Attribute t;
  t.type = AttrType::t;
  t.t = f32({2}, {1, 2});
  EXPECT_EQ(values_of<float>(run_op1("Constant", {}, {{"value", t}})), (std::vector<float>{1, 2}));
  EXPECT_EQ(run_op1("Constant", {}, {{"value_int", attr_int(7)}}).data<int64_t>()[0], 7);
  EXPECT_EQ(run_op1("Constant", {}, {{"value_ints", attr_ints({1, 2, 3})}}).shape(), (Shape{3}));
  EXPECT_EQ(run_op1("Constant", {}, {{"value_float", attr_float(0.5f)}}).data<float>()[0], 0.5f);
  EXPECT_EQ(run_op1("Constant", {}, {{"value_string", attr_string("hi")}}).data<std::string>()[0], "hi");
  EXPECT_FALSE(run_expect_error("Constant", {}).is_ok());

  Attribute v;
  v.type = AttrType::t;
  v.t = Tensor::from_vector<int32_t>({1}, {4});
  Tensor c = run_op1("ConstantOfShape", {i64({2}, {2, 3})}, {{"value", v}});
  EXPECT_EQ(c.dtype(), DataType::int32);
  EXPECT_EQ(values_of<int32_t>(c), std::vector<int32_t>(6, 4));
  EXPECT_EQ(run_op1("ConstantOfShape", {i64({0}, {})}).shape(), Shape{});
  EXPECT_FALSE(run_expect_error("ConstantOfShape", {i64({1}, {-1})}).is_ok());
}

TEST(ShapeOps, Range) {
  EXPECT_EQ(values_of<int32_t>(run_op1("Range", {Tensor::scalar<int32_t>(10), Tensor::scalar<int32_t>(4),
                                                Tensor::scalar<int32_t>(-3)})),
            (std::vector<int32_t>{10, 7}));
  EXPECT_EQ(values_of<float>(run_op1("Range", {Tensor::scalar<float>(1), Tensor::scalar<float>(2),
                                              Tensor::scalar<float>(0.25f)})),
            (std::vector<float>{1, 1.25f, 1.5f, 1.75f}));
  EXPECT_EQ(run_op1("Range", {Tensor::scalar<int64_t>(5), Tensor::scalar<int64_t>(1), Tensor::scalar<int64_t>(1)})
                .numel(),
            0);
  EXPECT_FALSE(run_expect_error("Range", {Tensor::scalar<int64_t>(0), Tensor::scalar<int64_t>(1),
                                          Tensor::scalar<int64_t>(0)})
                   .is_ok());
  EXPECT_FALSE(run_expect_error("Range", {Tensor::scalar<int64_t>(INT64_MIN), Tensor::scalar<int64_t>(INT64_MAX),
                                          Tensor::scalar<int64_t>(1)})
                   .is_ok());
}

TEST(ShapeOps, DepthToSpaceRoundTrip) {
  Tensor x = iota({1, 8, 2, 3});
  for (const char* mode : {"DCR", "CRD"}) {
    Tensor y = run_op1("DepthToSpace", {x}, {{"blocksize", attr_int(2)}, {"mode", attr_string(mode)}});
    EXPECT_EQ(y.shape(), (Shape{1, 2, 4, 6}));
  }
  // SpaceToDepth inverts DCR DepthToSpace.
  Tensor y = run_op1("DepthToSpace", {x}, {{"blocksize", attr_int(2)}});
  Tensor back = run_op1("SpaceToDepth", {y}, {{"blocksize", attr_int(2)}});
  EXPECT_EQ(values_of<float>(back), values_of<float>(x));
  // CRD: out[0,0,0,1] = in[0, 1, 0, 0] (channel c*4 + i*2 + j with c=0,i=0,j=1).
  Tensor crd = run_op1("DepthToSpace", {x}, {{"blocksize", attr_int(2)}, {"mode", attr_string("CRD")}});
  EXPECT_EQ(crd.data<float>()[1], 6.0f);
  EXPECT_FALSE(run_expect_error("DepthToSpace", {x}, {{"blocksize", attr_int(3)}}).is_ok());
  EXPECT_FALSE(run_expect_error("SpaceToDepth", {x}, {{"blocksize", attr_int(2)}}).is_ok());
}

TEST(ShapeOps, TriluEyeLikeOneHot) {
  Tensor x = iota({3, 3});
  EXPECT_EQ(values_of<float>(run_op1("Trilu", {x})), (std::vector<float>{0, 1, 2, 0, 4, 5, 0, 0, 8}));
  EXPECT_EQ(values_of<float>(run_op1("Trilu", {x, Tensor::scalar<int64_t>(-1)}, {{"upper", attr_int(0)}})),
            (std::vector<float>{0, 0, 0, 3, 0, 0, 6, 7, 0}));
  EXPECT_EQ(values_of<float>(run_op1("Trilu", {x, Tensor::scalar<int64_t>(INT64_MIN)})), values_of<float>(x));

  Tensor e = run_op1("EyeLike", {Tensor(DataType::int32, {2, 3})}, {{"k", attr_int(1)}, {"dtype", attr_int(11)}});
  EXPECT_EQ(e.dtype(), DataType::float64);
  EXPECT_EQ(values_of<double>(e), (std::vector<double>{0, 1, 0, 0, 0, 1}));

  Tensor oh = run_op1("OneHot", {i64({3}, {0, -1, 5}), Tensor::scalar<int64_t>(3), f32({2}, {0, 1})},
                      {{"axis", attr_int(0)}});
  EXPECT_EQ(oh.shape(), (Shape{3, 3}));
  EXPECT_EQ(values_of<float>(oh), (std::vector<float>{1, 0, 0, 0, 0, 0, 0, 1, 0}));
}

TEST(ShapeOps, DropoutInferenceAndTraining) {
  Tensor x = iota({100});
  std::vector<Value> outs;
  ASSERT_TRUE(run_op("Dropout", {x}, {}, &outs, 2, 13).is_ok());
  EXPECT_EQ(values_of<float>(outs[0].tensor), values_of<float>(x));
  EXPECT_EQ(outs[1].tensor.dtype(), DataType::boolean);
  EXPECT_EQ(values_of<bool>(outs[1].tensor), std::vector<bool>(100, true));
  // Training with ratio 0 is the identity.
  ASSERT_TRUE(run_op("Dropout", {x, f32({}, {0}), Tensor::scalar<bool>(true)}, {}, &outs, 2, 13).is_ok());
  EXPECT_EQ(values_of<float>(outs[0].tensor), values_of<float>(x));
  // Training with ratio 0.5: kept elements are scaled by 2, dropped ones are 0; mask agrees.
  ASSERT_TRUE(
      run_op("Dropout", {x, f32({}, {0.5f}), Tensor::scalar<bool>(true)}, {{"seed", attr_int(3)}}, &outs, 2, 13).is_ok());
  int kept = 0;
  for (int i = 0; i < 100; ++i) {
    const bool m = outs[1].tensor.data<bool>()[i];
    kept += m;
    EXPECT_EQ(outs[0].tensor.data<float>()[i], m ? 2.0f * i : 0.0f);
  }
  EXPECT_GT(kept, 20);
  EXPECT_LT(kept, 80);
  // Opset 7: mask has the data's dtype.
  ASSERT_TRUE(run_op("Dropout", {x}, {{"ratio", attr_float(0.3f)}}, &outs, 2, 7).is_ok());
  EXPECT_EQ(outs[1].tensor.dtype(), DataType::float32);
}

TEST(ShapeOps, ZeroSizeAndHostileInputs) {
  Tensor e(DataType::float32, {0, 3});
  EXPECT_EQ(run_op1("Transpose", {e}).shape(), (Shape{3, 0}));
  EXPECT_EQ(run_op1("Concat", {e, f32({1, 3}, {1, 2, 3})}, {{"axis", attr_int(0)}}).shape(), (Shape{1, 3}));
  EXPECT_EQ(run_op1("Slice", {e, i64({1}, {1}), i64({1}, {2}), i64({1}, {1})}).shape(), (Shape{0, 1}));
  EXPECT_EQ(run_op1("Slice", {e, i64({1}, {-1}), i64({1}, {-10}), i64({1}, {0}), i64({1}, {-1})}).shape(),
            (Shape{0, 3}));
  EXPECT_EQ(run_op1("Pad", {e, i64({4}, {1, 0, 0, 1})}).shape(), (Shape{1, 4}));
  EXPECT_FALSE(run_expect_error("Pad", {e, i64({4}, {1, 0, 0, 1})}, {{"mode", attr_string("edge")}}).is_ok());
  EXPECT_EQ(run_op1("Tile", {e, i64({2}, {2, 2})}).shape(), (Shape{0, 6}));
  EXPECT_EQ(run_op1("Trilu", {e}).shape(), (Shape{0, 3}));
  EXPECT_EQ(run_op1("Expand", {e, i64({3}, {2, 1, 1})}).shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(run_op1("DepthToSpace", {Tensor(DataType::float32, {0, 4, 1, 1})}, {{"blocksize", attr_int(2)}}).shape(),
            (Shape{0, 1, 2, 2}));
  EXPECT_EQ(run_op1("OneHot", {i64({0}, {}), Tensor::scalar<int64_t>(4), f32({2}, {0, 1})}).shape(), (Shape{0, 4}));
  std::vector<Value> outs;
  ASSERT_TRUE(run_op("Split", {e, i64({2}, {1, 2})}, {{"axis", attr_int(1)}}, &outs, 2, 13).is_ok());
  EXPECT_EQ(outs[1].tensor.shape(), (Shape{0, 2}));
  // Huge or malformed shapes are errors, not allocations.
  Tensor x = iota({2, 3});
  EXPECT_FALSE(run_expect_error("Reshape", {x, i64({3}, {int64_t{1} << 40, int64_t{1} << 40, -1})}).is_ok());
  EXPECT_FALSE(run_expect_error("Reshape", {x, Tensor::from_vector<float>({2}, {3, 2})}).is_ok());
  EXPECT_FALSE(run_expect_error("ConstantOfShape", {i64({2}, {int64_t{1} << 40, int64_t{1} << 40})}).is_ok());
  EXPECT_FALSE(run_expect_error("Tile", {x, i64({2}, {INT64_MAX, 2})}).is_ok());
  EXPECT_FALSE(run_expect_error("Pad", {x, i64({4}, {INT64_MIN, 0, INT64_MAX, 0})}).is_ok());
  EXPECT_FALSE(run_expect_error("OneHot", {i64({1}, {0}), Tensor::scalar<float>(NAN), f32({2}, {0, 1})}).is_ok());
  EXPECT_FALSE(run_expect_error("EyeLike", {iota({2, 2, 2})}).is_ok());
  EXPECT_FALSE(run_expect_error("Concat", {}, {{"axis", attr_int(0)}}).is_ok());
  EXPECT_FALSE(run_expect_error("Transpose", {}).is_ok());
}

}  // namespace
}  // namespace tandem
