// Unit tests for shape and type inference (src/passes/shape_inference.h): hand-built graphs,
// constant propagation through shape subgraphs, symbolic dims, errors, control flow, the
// PaddleOCR models and a sweep over the ONNX node conformance models.
#include "passes/shape_inference.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <iostream>

#include "onnx/loader.h"
#include "op_test_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using testing::attr_graph;
using testing::attr_int;
using testing::attr_ints;
using testing::attr_string;
using testing::attr_tensor;
using testing::i64;

Dim D(int64_t v) { return Dim{v, {}}; }
Dim S(const std::string& s) { return Dim{-1, s}; }

TypeInfo T(DataType dt, std::vector<Dim> dims) {
  TypeInfo t;
  t.kind = TypeInfo::Kind::tensor;
  t.elem = dt;
  t.has_shape = true;
  t.dims = std::move(dims);
  return t;
}

// A small graph builder for hand-made tests.
struct Builder {
  Graph g;
  int64_t opset = 17;
  Builder& input(const std::string& name, TypeInfo t) {
    g.inputs.push_back({name, std::move(t)});
    return *this;
  }
  Builder& init(const std::string& name, Tensor t) {
    g.initializers[name] = std::move(t);
    return *this;
  }
  Builder& output(const std::string& name) {
    g.outputs.push_back({name, TypeInfo{}});
    return *this;
  }
  Builder& node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
                std::map<std::string, Attribute> attrs = {}, const std::string& name = "") {
    Node n;
    n.op_type = op;
    n.name = name.empty() ? out.front() : name;
    n.inputs = std::move(in);
    n.outputs = std::move(out);
    n.attrs = std::move(attrs);
    n.opset = opset;
    n.index = static_cast<int>(g.nodes.size());
    g.nodes.push_back(std::move(n));
    return *this;
  }
};

std::string type_of(const ShapeInferenceResult& r, const std::string& name) {
  const TypeInfo* t = r.type_of(name);
  return t ? t->to_string() : "<missing>";
}

Result<ShapeInferenceResult> infer(const Graph& g, const std::map<std::string, Shape>& shapes = {}) {
  ShapeInferenceOptions opt;
  opt.use_declared_types = false;
  return infer_shapes(g, shapes, opt);
}

TEST(ShapeInference, ElementwiseBroadcastAndTypes) {
  Builder b;
  b.input("a", T(DataType::float32, {D(2), D(1), D(5)}))
      .input("b", T(DataType::float32, {D(3), D(1)}))
      .node("Add", {"a", "b"}, {"sum"})
      .node("Relu", {"sum"}, {"r"})
      .node("Greater", {"r", "b"}, {"gt"})
      .node("Cast", {"gt"}, {"c"}, {{"to", attr_int(static_cast<int64_t>(DataType::int32))}})
      .node("Where", {"gt", "r", "a"}, {"w"})
      .node("ReduceSum", {"w"}, {"rs"}, {{"keepdims", attr_int(0)}})
      .output("rs");
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "sum"), "float32[2,3,5]");
  EXPECT_EQ(type_of(*r, "r"), "float32[2,3,5]");
  EXPECT_EQ(type_of(*r, "gt"), "bool[2,3,5]");
  EXPECT_EQ(type_of(*r, "c"), "int32[2,3,5]");
  EXPECT_EQ(type_of(*r, "w"), "float32[2,3,5]");
  EXPECT_EQ(type_of(*r, "rs"), "float32[]");
}

TEST(ShapeInference, UnsortedGraphAndLayoutOps) {
  Builder b;
  b.input("x", T(DataType::float32, {D(2), D(3), D(4)}))
      .node("Transpose", {"t_in"}, {"t"}, {{"perm", attr_ints({2, 0, 1})}})  // consumes a later node's output
      .node("Identity", {"x"}, {"t_in"})
      .node("Flatten", {"t"}, {"f"}, {{"axis", attr_int(2)}})
      .node("Unsqueeze", {"f", "ax"}, {"u"})
      .node("Squeeze", {"u", "ax"}, {"s"})
      .node("Concat", {"x", "x"}, {"cat"}, {{"axis", attr_int(-1)}})
      .node("Split", {"cat", "split"}, {"s0", "s1"}, {{"axis", attr_int(2)}})
      .node("Slice", {"x", "st", "en", "sax"}, {"sl"})
      .node("Gather", {"x", "idx"}, {"ga"}, {{"axis", attr_int(1)}})
      .node("Tile", {"x", "reps"}, {"ti"})
      .node("Pad", {"x", "pads"}, {"pa"})
      .node("TopK", {"x", "k"}, {"tv", "tix"})
      .node("ArgMax", {"x"}, {"am"}, {{"axis", attr_int(1)}, {"keepdims", attr_int(0)}})
      .init("ax", i64({0}))
      .init("split", i64({3, 5}))
      .init("st", i64({1, -3}))
      .init("en", i64({100, -1}))
      .init("sax", i64({0, 2}))
      .init("idx", Tensor::from_vector<int64_t>({2, 2}, {0, 1, 2, -1}))
      .init("reps", i64({1, 2, 3}))
      .init("pads", i64({0, 1, 2, 0, 1, 0}))
      .init("k", i64({2}))
      .output("s");
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "t"), "float32[4,2,3]");
  EXPECT_EQ(type_of(*r, "f"), "float32[8,3]");
  EXPECT_EQ(type_of(*r, "u"), "float32[1,8,3]");
  EXPECT_EQ(type_of(*r, "s"), "float32[8,3]");
  EXPECT_EQ(type_of(*r, "cat"), "float32[2,3,8]");
  EXPECT_EQ(type_of(*r, "s0"), "float32[2,3,3]");
  EXPECT_EQ(type_of(*r, "s1"), "float32[2,3,5]");
  EXPECT_EQ(type_of(*r, "sl"), "float32[1,3,2]");
  EXPECT_EQ(type_of(*r, "ga"), "float32[2,2,2,4]");
  EXPECT_EQ(type_of(*r, "ti"), "float32[2,6,12]");
  EXPECT_EQ(type_of(*r, "pa"), "float32[2,5,6]");
  EXPECT_EQ(type_of(*r, "tv"), "float32[2,3,2]");
  EXPECT_EQ(type_of(*r, "tix"), "int64[2,3,2]");
  EXPECT_EQ(type_of(*r, "am"), "int64[2,4]");
}

TEST(ShapeInference, ShapeSubgraphResolvesThroughConstantPropagation) {
  // y = Reshape(x, Concat(Gather(Shape(x), 0), [-1])) with every dim of x fixed; then the
  // pieces of the shape are known values and Reshape resolves exactly.
  Builder b;
  b.input("x", T(DataType::float32, {D(2), D(3), D(4), D(5)}))
      .node("Shape", {"x"}, {"shape"})
      .node("Gather", {"shape", "zero"}, {"n"}, {{"axis", attr_int(0)}})
      .node("Unsqueeze", {"n", "axes"}, {"n1"})
      .node("Concat", {"n1", "minus_one"}, {"target"}, {{"axis", attr_int(0)}})
      .node("Reshape", {"x", "target"}, {"y"})
      .node("ConstantOfShape", {"target2"}, {"zeros"}, {{"value", attr_tensor(Tensor::from_vector<int64_t>({1}, {0}))}})
      .node("Mul", {"target", "two"}, {"target2_raw"})
      .node("Abs", {"target2_raw"}, {"target2"})
      .node("Constant", {}, {"two"}, {{"value", attr_tensor(Tensor::scalar<int64_t>(2))}})
      .init("zero", Tensor::scalar<int64_t>(0))
      .init("axes", i64({0}))
      .init("minus_one", i64({-1}))
      .output("y");
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "shape"), "int64[4]");
  EXPECT_EQ(type_of(*r, "target"), "int64[2]");
  EXPECT_EQ(type_of(*r, "y"), "float32[2,60]");
  ASSERT_TRUE(r->constants.count("target"));
  const Tensor& t = r->constants.at("target");
  EXPECT_EQ(std::vector<int64_t>(t.data<int64_t>(), t.data<int64_t>() + t.numel()), (std::vector<int64_t>{2, -1}));
  // |[2,-1] * 2| = [4, 2]
  EXPECT_EQ(type_of(*r, "zeros"), "int64[4,2]");
  EXPECT_FALSE(r->constants.count("y"));  // x itself is not known
}

TEST(ShapeInference, Opset18AttributesAsInputs) {
  Builder b;
  b.opset = 18;
  b.input("x", T(DataType::float32, {D(2), D(6), D(8)}))
      .node("ReduceMean", {"x", "axes"}, {"m"})
      .node("ReduceMax", {"x", "axes"}, {"mx"}, {{"keepdims", attr_int(0)}})
      .node("Split", {"x"}, {"a", "b", "c"}, {{"axis", attr_int(2)}, {"num_outputs", attr_int(3)}})
      .node("Pad", {"x", "pads", "", "pad_axes"}, {"p"})
      .node("Resize", {"x", "", "scales"}, {"rz"}, {{"mode", attr_string("nearest")}})
      .init("axes", i64({-1, 1}))
      .init("pads", i64({1, 2}))
      .init("pad_axes", i64({2}))
      .init("scales", Tensor::from_vector<float>({3}, {1.0f, 0.5f, 2.0f}))
      .output("m");
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "m"), "float32[2,1,1]");
  EXPECT_EQ(type_of(*r, "mx"), "float32[2]");
  EXPECT_EQ(type_of(*r, "a"), "float32[2,6,3]");
  EXPECT_EQ(type_of(*r, "c"), "float32[2,6,2]");
  EXPECT_EQ(type_of(*r, "p"), "float32[2,6,11]");
  EXPECT_EQ(type_of(*r, "rz"), "float32[2,3,16]");
}

TEST(ShapeInference, SymbolicBatchSurvivesElementwiseConvAndReshape) {
  Tensor w(DataType::float32, {8, 3, 3, 3});
  Tensor bias(DataType::float32, {8});
  Tensor fc(DataType::float32, {8 * 16 * 16, 10});
  Builder b;
  b.input("x", T(DataType::float32, {S("N"), D(3), D(32), D(32)}))
      .input("h", T(DataType::float32, {S("N"), D(3), S("H"), S("W")}))
      .init("w", w)
      .init("bias", bias)
      .init("fc", fc)
      .init("zero", Tensor::scalar<int64_t>(0))
      .init("axes", i64({0}))
      .init("minus_one", i64({-1}))
      .node("Conv", {"x", "w", "bias"}, {"conv"}, {{"pads", attr_ints({1, 1, 1, 1})}})
      .node("Sigmoid", {"conv"}, {"sig"})
      .node("Mul", {"conv", "sig"}, {"silu"})
      .node("MaxPool", {"silu"}, {"pool"}, {{"kernel_shape", attr_ints({2, 2})}, {"strides", attr_ints({2, 2})}})
      .node("Shape", {"pool"}, {"shape"})
      .node("Gather", {"shape", "zero"}, {"n"})
      .node("Unsqueeze", {"n", "axes"}, {"n1"})
      .node("Concat", {"n1", "minus_one"}, {"target"}, {{"axis", attr_int(0)}})
      .node("Reshape", {"pool", "target"}, {"flat"})
      .node("MatMul", {"flat", "fc"}, {"logits"})
      .node("Softmax", {"logits"}, {"prob"})
      // a 'same' conv keeps symbolic spatial dims; a strided one cannot
      .node("Conv", {"h", "w"}, {"hconv"}, {{"auto_pad", attr_string("SAME_UPPER")}}, "hconv")
      .node("Conv", {"h", "w"}, {"hconv2"}, {{"strides", attr_ints({2, 2})}}, "hconv2")
      .node("GlobalAveragePool", {"hconv"}, {"gap"})
      .output("prob");
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "conv"), "float32[N,8,32,32]");
  EXPECT_EQ(type_of(*r, "silu"), "float32[N,8,32,32]");
  EXPECT_EQ(type_of(*r, "pool"), "float32[N,8,16,16]");
  EXPECT_EQ(type_of(*r, "target"), "int64[2]");
  EXPECT_EQ(type_of(*r, "flat"), "float32[N,2048]");
  EXPECT_EQ(type_of(*r, "prob"), "float32[N,10]");
  EXPECT_EQ(type_of(*r, "hconv"), "float32[N,8,H,W]");
  EXPECT_EQ(type_of(*r, "hconv2"), "float32[N,8,?,?]");
  EXPECT_EQ(type_of(*r, "gap"), "float32[N,8,1,1]");

  // Fixing the symbol through input_shapes fixes it in the other input too.
  auto fixed = infer(b.g, {{"x", {4, 3, 32, 32}}});
  ASSERT_TRUE(fixed.is_ok()) << fixed.status().to_string();
  EXPECT_EQ(type_of(*fixed, "prob"), "float32[4,10]");
  EXPECT_EQ(type_of(*fixed, "hconv"), "float32[4,8,H,W]");
}

TEST(ShapeInference, CertainMismatchesAreErrors) {
  {
    Builder b;
    b.input("a", T(DataType::float32, {D(3)})).input("b", T(DataType::float32, {D(4)})).node("Add", {"a", "b"}, {"c"}, {}, "add1");
    auto r = infer(b.g);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().code(), StatusCode::invalid_argument);
    EXPECT_EQ(r.status().message(), "[Add 'add1'] cannot broadcast shapes [3] and [4]");
  }
  {
    Builder b;
    b.input("a", T(DataType::float32, {S("N"), D(64)}))
        .input("w", T(DataType::float32, {D(32), D(10)}))
        .node("MatMul", {"a", "w"}, {"y"}, {}, "fc");
    auto r = infer(b.g);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().message(), "[MatMul 'fc'] inner dimensions differ: 64 vs 32");
  }
  {
    Builder b;
    b.input("x", T(DataType::float32, {D(1), D(4), D(8), D(8)}))
        .init("w", Tensor(DataType::float32, {8, 3, 3, 3}))
        .node("Conv", {"x", "w"}, {"y"}, {}, "stem");
    auto r = infer(b.g);
    ASSERT_FALSE(r.is_ok());
    EXPECT_NE(r.status().message().find("[Conv 'stem'] input has 4 channels"), std::string::npos) << r.status().message();
  }
  {
    Builder b;
    b.input("x", T(DataType::float32, {D(2), D(3)})).init("s", i64({4, 2})).node("Reshape", {"x", "s"}, {"y"}, {}, "rs");
    auto r = infer(b.g);
    ASSERT_FALSE(r.is_ok());
    EXPECT_EQ(r.status().message().rfind("[Reshape 'rs'] cannot reshape", 0), 0u) << r.status().message();
  }
  {
    // input_shapes override the declaration (with a warning); unknown names are refused.
    Builder b;
    b.input("x", T(DataType::float32, {D(1), D(3)})).node("Relu", {"x"}, {"y"});
    auto r = infer(b.g, {{"x", {1, 4}}});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(type_of(*r, "y"), "float32[1,4]");
    ASSERT_EQ(r->warnings.size(), 1u);
    EXPECT_EQ(r->warnings[0], "input 'x' is declared float32[1,3] but given shape 1x4; the given shape is used");
    EXPECT_EQ(type_of(*infer(b.g, {{"x", {1, -1}}}), "y"), "float32[1,3]");
    EXPECT_EQ(infer(b.g, {{"nope", {1}}}).status().code(), StatusCode::invalid_argument);
  }
}

TEST(ShapeInference, UnknownAndDataDependentOpsGiveUnknownDims) {
  Builder b;
  b.input("x", T(DataType::float32, {D(2), D(3)}))
      .node("NonZero", {"x"}, {"nz"})
      .node("MyCustomOp", {"x"}, {"custom"})
      .node("Transpose", {"nz"}, {"nzt"})
      .node("Relu", {"custom"}, {"cr"})
      .node("Unique", {"x"}, {"uy", "ui", "uinv", "uc"});
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "nz"), "int64[2,?]");
  EXPECT_EQ(type_of(*r, "nzt"), "int64[?,2]");
  EXPECT_EQ(type_of(*r, "custom"), "undefined[*]");
  EXPECT_EQ(type_of(*r, "cr"), "undefined[*]");
  EXPECT_EQ(type_of(*r, "uy"), "float32[?]");
  EXPECT_EQ(type_of(*r, "uinv"), "int64[6]");
}

TEST(ShapeInference, IfAndLoop) {
  // Branches that agree on dims keep them; disagreeing dims become unknown.
  auto branch = [](const std::string& out, std::vector<int64_t> v) {
    auto g = std::make_shared<Graph>();
    Node n;
    n.op_type = "Constant";
    n.name = out + "_c";
    n.outputs = {out};
    n.opset = 17;
    n.attrs["value"] = attr_tensor(Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, std::vector<float>(v.size(), 1.0f)));
    g->nodes.push_back(n);
    g->outputs.push_back({out, TypeInfo{}});
    return g;
  };
  Builder b;
  b.input("cond", T(DataType::boolean, {}))
      .init("yes", Tensor::scalar<bool>(true))
      .node("If", {"cond"}, {"y"}, {{"then_branch", attr_graph(branch("t", {1, 2, 3}))}, {"else_branch", attr_graph(branch("e", {4, 5}))}})
      .node("If", {"cond"}, {"z"}, {{"then_branch", attr_graph(branch("t2", {1, 2}))}, {"else_branch", attr_graph(branch("e2", {4, 5}))}})
      .node("If", {"yes"}, {"k"}, {{"then_branch", attr_graph(branch("t3", {1, 2, 3}))}, {"else_branch", attr_graph(branch("e3", {4, 5}))}});
  // Loop: carried x (float [2]) += 1 each iteration; scan output collects x.
  auto body = std::make_shared<Graph>();
  body->inputs = {{"i", T(DataType::int64, {})}, {"c", T(DataType::boolean, {})}, {"xin", TypeInfo{}}};
  Node add;
  add.op_type = "Add";
  add.name = "body_add";
  add.inputs = {"xin", "one"};
  add.outputs = {"xout"};
  add.opset = 17;
  body->nodes.push_back(add);
  Node id;
  id.op_type = "Identity";
  id.name = "body_scan";
  id.inputs = {"xin"};
  id.outputs = {"scan"};
  id.opset = 17;
  body->nodes.push_back(id);
  body->initializers["one"] = Tensor::from_vector<float>({1}, {1.0f});
  body->outputs = {{"c", TypeInfo{}}, {"xout", TypeInfo{}}, {"scan", TypeInfo{}}};
  b.init("trip", Tensor::scalar<int64_t>(5))
      .init("x0", Tensor::from_vector<float>({2}, {0.0f, 0.0f}))
      .node("Loop", {"trip", "", "x0"}, {"xf", "xs"}, {{"body", attr_graph(body)}});
  // A branch that cannot run (Add of [3] and [4]) is not an error while the other one can.
  auto broken = [&](const std::string& out) {
    auto g = branch(out + "_a", {1, 2, 3});
    Node c;
    c.op_type = "Constant";
    c.name = out + "_b";
    c.outputs = {out + "_b"};
    c.opset = 17;
    c.attrs["value"] = attr_tensor(Tensor::from_vector<float>({4}, {1, 2, 3, 4}));
    g->nodes.push_back(c);
    Node add;
    add.op_type = "Add";
    add.name = out;
    add.inputs = {out + "_a", out + "_b"};
    add.outputs = {out};
    add.opset = 17;
    g->nodes.push_back(add);
    g->outputs = {{out, TypeInfo{}}};
    return g;
  };
  b.node("If", {"cond"}, {"half"}, {{"then_branch", attr_graph(broken("bad1"))}, {"else_branch", attr_graph(branch("e4", {4, 5}))}});
  {
    Builder bad;
    bad.input("cond", T(DataType::boolean, {}))
        .node("If", {"cond"}, {"q"}, {{"then_branch", attr_graph(broken("bad2"))}, {"else_branch", attr_graph(broken("bad3"))}}, "iff");
    auto e = infer(bad.g);
    ASSERT_FALSE(e.is_ok());
    EXPECT_EQ(e.status().message(), "[If 'iff'] then_branch: [Add 'bad2'] cannot broadcast shapes [3] and [4]");
  }
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "half"), "float32[2]");
  EXPECT_EQ(type_of(*r, "y"), "float32[?]");
  EXPECT_EQ(type_of(*r, "z"), "float32[2]");
  EXPECT_EQ(type_of(*r, "k"), "float32[3]");
  EXPECT_TRUE(r->constants.count("k"));  // a known condition takes its branch's known values
  EXPECT_EQ(type_of(*r, "xf"), "float32[2]");
  EXPECT_EQ(type_of(*r, "xs"), "float32[5,2]");
}

TEST(ShapeInference, ScanAndInputValues) {
  // Scan: state s (float [2]) accumulates the rows of xs ([5, 2]); the scan output collects s.
  auto body = std::make_shared<Graph>();
  body->inputs = {{"s_in", TypeInfo{}}, {"row", TypeInfo{}}};
  Node add;
  add.op_type = "Add";
  add.name = "acc";
  add.inputs = {"s_in", "row"};
  add.outputs = {"s_out"};
  add.opset = 17;
  body->nodes.push_back(add);
  Node id;
  id.op_type = "Identity";
  id.name = "emit";
  id.inputs = {"s_out"};
  id.outputs = {"y"};
  id.opset = 17;
  body->nodes.push_back(id);
  body->outputs = {{"s_out", TypeInfo{}}, {"y", TypeInfo{}}};
  Builder b;
  b.input("s0", T(DataType::float32, {D(2)}))
      .input("xs", T(DataType::float32, {S("L"), D(2)}))
      .input("shape", T(DataType::int64, {D(2)}))
      .node("Scan", {"s0", "xs"}, {"sf", "ys"}, {{"body", attr_graph(body)}, {"num_scan_inputs", attr_int(1)}})
      .node("Reshape", {"ys", "shape"}, {"r"});
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "sf"), "float32[2]");
  EXPECT_EQ(type_of(*r, "ys"), "float32[L,2]");
  EXPECT_EQ(type_of(*r, "r"), "float32[?,?]");
  // A known input value resolves the Reshape; its shape fixes the symbol.
  ShapeInferenceOptions opt;
  opt.input_values["shape"] = i64({-1, 5});
  auto k = infer_shapes(b.g, {{"xs", {5, 2}}}, opt);
  ASSERT_TRUE(k.is_ok()) << k.status().to_string();
  EXPECT_EQ(type_of(*k, "ys"), "float32[5,2]");
  EXPECT_EQ(type_of(*k, "r"), "float32[2,5]");
}

TEST(ShapeInference, RecurrentAndNormalization) {
  Builder b;
  b.input("x", T(DataType::float32, {S("T"), S("B"), D(16)}))
      .init("w", Tensor(DataType::float32, {2, 4 * 32, 16}))
      .init("r", Tensor(DataType::float32, {2, 4 * 32, 32}))
      .node("LSTM", {"x", "w", "r"}, {"y", "yh", "yc"}, {{"hidden_size", attr_int(32)}, {"direction", attr_string("bidirectional")}})
      .node("LayerNormalization", {"x", "scale"}, {"ln", "mean", "inv"}, {{"axis", attr_int(-1)}})
      .init("scale", Tensor(DataType::float32, {16}));
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "y"), "float32[T,2,B,32]");
  EXPECT_EQ(type_of(*r, "yh"), "float32[2,B,32]");
  EXPECT_EQ(type_of(*r, "yc"), "float32[2,B,32]");
  EXPECT_EQ(type_of(*r, "ln"), "float32[T,B,16]");
  EXPECT_EQ(type_of(*r, "mean"), "float32[T,B,1]");
}

TEST(ShapeInference, NewerOps) {
  Builder b;
  b.opset = 20;
  b.input("x", T(DataType::float32, {D(20), D(8), D(3)}))
      .input("cols", T(DataType::float32, {D(1), D(10), D(5)}))
      .input("theta", T(DataType::float32, {D(2), D(2), D(3)}))
      .input("s", T(DataType::string, {D(2), D(3)}))
      .init("crop", i64({10, 9}))
      .init("image", i64({5, 5}))
      .init("block", i64({1, 5}))
      .init("size", i64({2, 3, 5, 6}))
      .node("CenterCropPad", {"x", "crop"}, {"cc"}, {{"axes", attr_ints({0, 1})}})
      .node("Col2Im", {"cols", "image", "block"}, {"im"})
      .node("AffineGrid", {"theta", "size"}, {"grid"})
      .node("StringSplit", {"s"}, {"parts", "counts"})
      .node("RegexFullMatch", {"s"}, {"match"});
  auto r = infer(b.g);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(type_of(*r, "cc"), "float32[10,9,3]");
  EXPECT_EQ(type_of(*r, "im"), "float32[1,2,5,5]");
  EXPECT_EQ(type_of(*r, "grid"), "float32[2,5,6,2]");
  EXPECT_EQ(type_of(*r, "parts"), "string[2,3,?]");
  EXPECT_EQ(type_of(*r, "counts"), "int64[2,3]");
  EXPECT_EQ(type_of(*r, "match"), "bool[2,3]");
}

// ---- whole models ------------------------------------------------------------------------------

void check_model(const std::string& file, const std::string& input, const Shape& shape, const Shape& expected) {
  const fs::path path = fs::path(TANDEM_SOURCE_DIR) / "models" / file;
  if (!fs::exists(path)) GTEST_SKIP() << path << " is missing";
  auto model = load_model(path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const Graph& g = *model->graph;
  for (bool declared : {false, true}) {
    ShapeInferenceOptions opt;
    opt.use_declared_types = declared;
    auto r = infer_shapes(g, {{input, shape}}, opt);
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    ASSERT_EQ(g.outputs.size(), 1u);
    Shape out;
    const TypeInfo* t = r->type_of(g.outputs[0].name);
    ASSERT_NE(t, nullptr);
    EXPECT_TRUE(fully_known(*t, &out)) << t->to_string();
    EXPECT_EQ(out, expected) << t->to_string();
    EXPECT_EQ(t->elem, DataType::float32);
    // Every value of the model gets a dtype and fully known dims.
    int unknown = 0;
    for (const auto& [name, type] : r->types)
      if (!fully_known(type)) ++unknown;
    EXPECT_EQ(unknown, 0);
    for (const std::string& w : r->warnings) ADD_FAILURE() << w;
  }
}

TEST(ShapeInference, PaddleOcrDet) { check_model("ch_PP-OCRv4_det_infer.onnx", "x", {1, 3, 160, 160}, {1, 1, 160, 160}); }
TEST(ShapeInference, PaddleOcrRec) { check_model("ch_PP-OCRv4_rec_infer.onnx", "x", {1, 3, 48, 320}, {1, 40, 6625}); }
TEST(ShapeInference, PaddleOcrCls) { check_model("ch_ppocr_mobile_v2.0_cls_infer.onnx", "x", {1, 3, 48, 192}, {1, 2}); }

// ---- the ONNX node conformance models -----------------------------------------------------------

std::vector<fs::path> numbered(const fs::path& dir, const std::string& prefix) {
  std::vector<std::pair<long, fs::path>> v;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string s = e.path().stem().string();
    if (s.rfind(prefix, 0) == 0) v.emplace_back(std::atol(s.c_str() + prefix.size()), e.path());
  }
  std::sort(v.begin(), v.end());
  std::vector<fs::path> out;
  for (auto& [n, p] : v) out.push_back(p);
  return out;
}

struct SweepStats {
  int models = 0, skipped = 0, outputs = 0, known = 0, dtype_known = 0;
  std::vector<std::string> failures;  // errors, disagreements, rule/kernel conflicts
};

// Infers every node conformance model with the input shapes of test_data_set_0 (or, with
// `known_inputs`, the input values themselves, so that nodes fold and every shape rule is
// checked against its reference kernel) and compares the fully known output dims with the
// expected outputs.
SweepStats sweep(const fs::path& root, bool known_inputs) {
  const bool verbose = std::getenv("TANDEM_SHAPE_SWEEP_VERBOSE") != nullptr;  // lists the outputs left unknown
  SweepStats st;
  std::vector<fs::path> cases;
  for (const auto& e : fs::directory_iterator(root))
    if (fs::exists(e.path() / "model.onnx") && fs::is_directory(e.path() / "test_data_set_0")) cases.push_back(e.path());
  std::sort(cases.begin(), cases.end());
  for (const fs::path& dir : cases) {
    const std::string name = dir.filename().string();
    auto model = load_model(dir / "model.onnx");
    if (!model.is_ok()) {
      ++st.skipped;
      continue;
    }
    const Graph& g = *model->graph;
    auto is_tensor = [](const ValueInfo& vi) { return vi.type.kind == TypeInfo::Kind::tensor; };
    if (!std::all_of(g.inputs.begin(), g.inputs.end(), is_tensor) || !std::all_of(g.outputs.begin(), g.outputs.end(), is_tensor)) {
      ++st.skipped;
      continue;
    }
    const fs::path ds = dir / "test_data_set_0";
    std::map<std::string, Shape> shapes;
    ShapeInferenceOptions opt;
    opt.use_declared_types = false;  // judge inference alone
    auto inputs = numbered(ds, "input_");
    bool ok = true;
    for (size_t i = 0; i < inputs.size() && i < g.inputs.size(); ++i) {
      // load_value_pb reads the data as the declared type says (bfloat16 data stored as uint16).
      auto v = load_value_pb(inputs[i], g.inputs[i].type);
      if (!v.is_ok() || !v->is_tensor()) ok = false;
      else if (known_inputs) opt.input_values[g.inputs[i].name] = v->tensor;
      else shapes[g.inputs[i].name] = v->tensor.shape();
    }
    if (!ok) {
      ++st.skipped;
      continue;
    }
    ++st.models;
    auto r = infer_shapes(g, shapes, opt);
    if (!r.is_ok()) {
      st.failures.push_back(name + ": " + r.status().to_string());
      continue;
    }
    for (const std::string& w : r->warnings)
      if (w.find("the shape rule gives") != std::string::npos) st.failures.push_back(name + ": " + w);
    auto expected = numbered(ds, "output_");
    for (size_t i = 0; i < expected.size() && i < g.outputs.size(); ++i) {
      auto v = load_value_pb(expected[i], g.outputs[i].type);
      if (!v.is_ok() || !v->is_tensor()) continue;
      const Tensor* t = &v->tensor;
      ++st.outputs;
      const TypeInfo* inferred = r->type_of(g.outputs[i].name);
      if (!inferred) {
        st.failures.push_back(name + ": output '" + g.outputs[i].name + "' has no type");
        continue;
      }
      if (inferred->elem != DataType::undefined) {
        ++st.dtype_known;
        if (inferred->elem != t->dtype())
          st.failures.push_back(name + ": output '" + g.outputs[i].name + "' inferred " + inferred->to_string() +
                                ", expected dtype " + std::string(dtype_name(t->dtype())));
      }
      Shape s;
      if (!fully_known(*inferred, &s)) {
        if (verbose) std::cout << "  not fully known: " << name << " '" << g.outputs[i].name << "' " << inferred->to_string() << "\n";
        continue;
      }
      ++st.known;
      if (s != t->shape())
        st.failures.push_back(name + ": output '" + g.outputs[i].name + "' inferred " + inferred->to_string() +
                              ", expected " + shape_to_string(t->shape()));
    }
  }
  return st;
}

TEST(ShapeInference, ConformanceSweep) {
  const fs::path data = "/usr/share/libonnx-testdata/data";
  if (!fs::is_directory(data / "node")) GTEST_SKIP() << data / "node" << " is missing";
  // node: one model per op; the others: small PyTorch exports and hand-made models.
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    if (!fs::is_directory(data / suite)) continue;
    for (bool known : {false, true}) {
      SweepStats st = sweep(data / suite, known);
      std::cout << "[ShapeInference] " << suite << " sweep (" << (known ? "input values known" : "input shapes only")
                << "): " << st.models << " models (" << st.skipped << " skipped: sequence/optional IO), " << st.outputs
                << " outputs, " << st.known << " with fully known dims, " << st.dtype_known << " with a known dtype, "
                << st.failures.size() << " failures\n";
      EXPECT_GT(st.models, 0);
      for (const std::string& f : st.failures) ADD_FAILURE() << f;
    }
  }
}

}  // namespace
}  // namespace tandem
