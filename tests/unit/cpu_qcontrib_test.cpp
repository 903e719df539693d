// cpu_qcontrib_test.cpp: the com.microsoft quantized ops on the cpu backend inside a QOperator
// graph, where a QLinearConv hands them channels-last (nhwc) activations: they must run on the
// cpu backend, keep the nhwc layout where they can (no reorder after the convolution), and give
// exactly what the reference kernels give for the same convolution output; MaxPool and nearest
// Resize, which QOperator models keep on the bytes, run on the cpu backend too. (The
// single-node forms are in the op suite: tests/unit/op_cases_quantize.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/op_table.h"
#include "core/compare.h"
#include "engine/placement.h"
#include "op_test_util.h"

namespace tandem {
namespace {

using testing::attr_float;
using testing::attr_int;
using testing::attr_ints;

Backend* cpu() { return find_backend("cpu"); }
Backend* ref() { return find_backend("reference"); }

template <class T>
Tensor random_ints(const Shape& shape, int lo, int hi, uint32_t seed) {
  Tensor t(std::is_same_v<T, uint8_t> ? DataType::uint8 : DataType::int8, shape);
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<T>()[i] = static_cast<T>(d(rng));
  return t;
}

ValueInfo typed(const std::string& name, DataType dtype, const Shape& shape) {
  ValueInfo vi{name, {}};
  vi.type.kind = TypeInfo::Kind::tensor;
  vi.type.elem = dtype;
  vi.type.has_shape = true;
  for (int64_t d : shape) vi.type.dims.push_back(Dim{d, {}});
  return vi;
}

Node node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
          std::map<std::string, Attribute> attrs = {}, bool contrib = true) {
  Node n;
  n.op_type = op;
  n.domain = contrib ? "com.microsoft" : "";
  n.opset = contrib ? 1 : 13;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  return n;
}

// The contrib ops after the convolution output `c` (uint8 [1, 32, 14, 14]).
std::vector<Node> contrib_nodes() {
  return {
      node("QLinearLeakyRelu", {"c", "cs", "cz", "ls", "lz"}, {"lr"}, {{"alpha", attr_float(0.2f)}}),
      node("QLinearAveragePool", {"lr", "ls", "lz", "ps", "pz"}, {"ap"},
           {{"kernel_shape", attr_ints({3, 3})}, {"pads", attr_ints({1, 1, 1, 1})}, {"count_include_pad", attr_int(1)}}),
      node("QLinearAdd", {"ap", "ps", "pz", "c", "cs", "cz", "as", "az"}, {"add"}),
      node("QLinearMul", {"add", "as", "az", "m", "ms", "mz", "us", "uz"}, {"mul"}),
      node("QLinearSigmoid", {"mul", "us", "uz", "ss", "sz"}, {"sig"}),
      node("QLinearConcat", {"as", "az", "sig", "ss", "sz", "lr", "ls", "lz"}, {"cat"}, {{"axis", attr_int(1)}}),
      node("QLinearGlobalAveragePool", {"cat", "as", "az", "gs", "gz"}, {"gap"}),
  };
}
const std::vector<std::string> kOutputs = {"lr", "ap", "add", "mul", "sig", "cat", "gap"};

void add_parameters(Graph& g) {
  const char* scales[] = {"cs", "ls", "ps", "as", "ms", "us", "ss", "gs"};
  const float values[] = {0.05f, 0.04f, 0.03f, 0.06f, 0.01f, 0.05f, 1.0f / 256, 0.02f};
  for (int i = 0; i < 8; ++i) g.initializers[scales[i]] = Tensor::scalar<float>(values[i]);
  const char* zps[] = {"cz", "lz", "pz", "az", "mz", "uz", "sz", "gz"};
  const uint8_t zvalues[] = {120, 100, 110, 128, 128, 128, 0, 100};
  for (int i = 0; i < 8; ++i) g.initializers[zps[i]] = Tensor::scalar<uint8_t>(zvalues[i]);
  g.initializers["m"] = random_ints<uint8_t>({32, 1, 1}, 100, 200, 5);
}

std::shared_ptr<Graph> finish(std::shared_ptr<Graph> g) {
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    g->nodes[i].index = static_cast<int>(i);
    g->nodes[i].name = g->nodes[i].op_type + std::to_string(i);
  }
  g->opsets[""] = 13;
  g->opsets["com.microsoft"] = 1;
  return g;
}

TEST(CpuBackendQContrib, ChannelsLastChainRunsOnCpuAndMatchesReference) {
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend";
  // x -> QuantizeLinear -> QLinearConv -> the contrib ops, on the cpu backend.
  auto full = std::make_shared<Graph>();
  full->inputs.push_back(typed("x", DataType::float32, {1, 32, 14, 14}));
  add_parameters(*full);
  full->initializers["w"] = random_ints<int8_t>({32, 32, 3, 3}, -100, 100, 3);
  full->initializers["ws"] = Tensor::scalar<float>(0.002f);
  full->initializers["wz"] = Tensor::scalar<int8_t>(0);
  full->nodes.push_back(node("QuantizeLinear", {"x", "cs", "cz"}, {"xq"}, {}, false));
  full->nodes.push_back(node("QLinearConv", {"xq", "cs", "cz", "w", "ws", "wz", "cs", "cz"}, {"c"},
                             {{"pads", attr_ints({1, 1, 1, 1})}}, false));
  for (Node& n : contrib_nodes()) full->nodes.push_back(n);
  full->outputs.push_back(ValueInfo{"c", {}});
  for (const std::string& o : kOutputs) full->outputs.push_back(ValueInfo{o, {}});
  finish(full);

  Tensor x(DataType::float32, {1, 32, 14, 14});
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> d(-6.0f, 6.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = d(rng);

  for (int threads : {1, 2}) {
    SCOPED_TRACE("threads " + std::to_string(threads));
    CompileOptions opts;
    opts.threads = threads;
    auto placed = PlacedModel::create(full, {cpu(), ref()}, opts);
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    for (const auto& n : (*placed)->report().nodes) EXPECT_EQ(n.backend, "cpu") << n.node;
    std::vector<Value> got;
    ASSERT_TRUE((*placed)->run({Value::of(x)}, &got).is_ok());
    ASSERT_EQ(got.size(), kOutputs.size() + 1);
    // Only the convolution's input is reordered (plain -> nhwc); its nhwc output feeds the
    // contrib ops as it is, and a plain reader of an nhwc value would add a reorder.
    const std::string described = (*placed)->describe();
    size_t reorders = 0;
    for (size_t at = described.find("layout reorder"); at != std::string::npos; at = described.find("layout reorder", at + 1))
      ++reorders;
    EXPECT_LE(reorders, 1u + kOutputs.size()) << described;  // the graph outputs are plain
    EXPECT_EQ(described.find("layout reorder of 'lr'"), std::string::npos) << described;
    EXPECT_EQ(described.find("layout reorder of 'add'"), std::string::npos) << described;

    // The contrib ops alone on the reference backend, fed the cpu's convolution output.
    auto tail = std::make_shared<Graph>();
    tail->inputs.push_back(typed("c", DataType::uint8, {1, 32, 14, 14}));
    add_parameters(*tail);
    tail->nodes = contrib_nodes();
    for (const std::string& o : kOutputs) tail->outputs.push_back(ValueInfo{o, {}});
    finish(tail);
    auto reference = PlacedModel::create(tail, {ref()});
    ASSERT_TRUE(reference.is_ok()) << reference.status().to_string();
    std::vector<Value> want;
    ASSERT_TRUE((*reference)->run({got[0]}, &want).is_ok());
    for (size_t i = 0; i < kOutputs.size(); ++i) {
      const Status s = compare_values(want[i], got[i + 1], Tolerance{0.0, 0.0});
      EXPECT_TRUE(s.is_ok()) << kOutputs[i] << ": " << s.to_string();
    }
    // Not a degenerate chain: the sigmoid's outputs spread over many values.
    const Tensor& sig = got[5].tensor;
    std::vector<bool> seen(256, false);
    int distinct = 0;
    for (int64_t i = 0; i < sig.numel(); ++i) distinct += !seen[sig.data<uint8_t>()[i]] && (seen[sig.data<uint8_t>()[i]] = true);
    EXPECT_GT(distinct, 20);
  }
}

TEST(CpuBackendQContrib, MaxPoolAndNearestResizeOfBytesRunOnCpu) {
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend";
  // QOperator models keep MaxPool and nearest Resize on the 8-bit values between quantized
  // layers: the cpu backend takes them (no detour through the reference backend) and gives the
  // reference's bytes.
  for (bool is_signed : {false, true}) {
    SCOPED_TRACE(is_signed ? "int8" : "uint8");
    const DataType type = is_signed ? DataType::int8 : DataType::uint8;
    auto g = std::make_shared<Graph>();
    g->inputs.push_back(typed("q", type, {2, 16, 9, 11}));
    g->initializers["roi"] = Tensor::from_vector<float>({0}, {});
    g->initializers["scales"] = Tensor::from_vector<float>({4}, {1, 1, 2, 2});
    g->nodes.push_back(node("MaxPool", {"q"}, {"mp"},
                            {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})},
                             {"pads", attr_ints({1, 1, 1, 1})}},
                            false));
    Node resize = node("Resize", {"mp", "roi", "scales"}, {"rs"}, {}, false);
    resize.attrs["mode"] = testing::attr_string("nearest");
    g->nodes.push_back(resize);
    g->outputs = {ValueInfo{"mp", {}}, ValueInfo{"rs", {}}};
    finish(g);
    const Tensor q = is_signed ? random_ints<int8_t>({2, 16, 9, 11}, -128, 127, 21)
                               : random_ints<uint8_t>({2, 16, 9, 11}, 0, 255, 21);
    auto placed = PlacedModel::create(g, {cpu(), ref()});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    for (const auto& n : (*placed)->report().nodes) EXPECT_EQ(n.backend, "cpu") << n.node;
    auto reference = PlacedModel::create(g, {ref()});
    ASSERT_TRUE(reference.is_ok()) << reference.status().to_string();
    std::vector<Value> got, want;
    ASSERT_TRUE((*placed)->run({Value::of(q)}, &got).is_ok());
    ASSERT_TRUE((*reference)->run({Value::of(q)}, &want).is_ok());
    ASSERT_EQ(got.size(), 2u);
    for (size_t i = 0; i < 2; ++i) {
      EXPECT_EQ(got[i].tensor.dtype(), type);
      const Status s = compare_values(want[i], got[i], Tolerance{0.0, 0.0});
      EXPECT_TRUE(s.is_ok()) << i << ": " << s.to_string();
    }
    EXPECT_EQ((*placed)->describe().find("generic path"), std::string::npos) << (*placed)->describe();
  }
}

// The op table is keyed by (domain, op type): a contrib op never takes a default-domain entry of
// the same name or the other way round, and supports() follows the table.
TEST(CpuBackendQContrib, OpTableKeysOpsByDomain) {
  if (!cpu()) GTEST_SKIP() << "this build has no cpu backend";
  const cpu::OpTable& table = cpu::cpu_ops();
  EXPECT_NE(table.find("com.microsoft", "QLinearAdd"), nullptr);
  EXPECT_EQ(table.find("", "QLinearAdd"), nullptr);
  EXPECT_NE(table.find("", "Add"), nullptr);
  EXPECT_EQ(table.find("com.microsoft", "Add"), nullptr);
  EXPECT_EQ(table.find("com.microsoft", "QLinearConv"), nullptr);
  EXPECT_EQ(table.find("ai.onnx.ml", "QLinearAdd"), nullptr);
  const std::vector<std::string> ops = table.ops();
  EXPECT_NE(std::find(ops.begin(), ops.end(), "com.microsoft.QGemm"), ops.end());

  NodeTypes types;
  types.inputs = {DataType::float32};
  types.outputs = {DataType::float32};
  Node relu = node("Relu", {"x"}, {"y"});  // com.microsoft "Relu": no such contrib op here
  EXPECT_FALSE(cpu()->supports(relu, types).is_ok());
  relu.domain = "ai.onnx";
  EXPECT_TRUE(cpu()->supports(relu, types).is_ok()) << cpu()->supports(relu, types).to_string();
  Node add = node("QLinearAdd", {"a", "as", "az", "b", "bs", "bz", "cs", "cz"}, {"c"}, {}, false);
  types.inputs = {DataType::uint8, DataType::float32, DataType::uint8, DataType::uint8,
                  DataType::float32, DataType::uint8, DataType::float32, DataType::uint8};
  types.outputs = {DataType::uint8};
  EXPECT_FALSE(cpu()->supports(add, types).is_ok()) << "a default-domain QLinearAdd does not exist";
  add.domain = "com.microsoft";
  EXPECT_TRUE(cpu()->supports(add, types).is_ok()) << cpu()->supports(add, types).to_string();
  types.inputs[1] = DataType::float16;  // the type rule of the quantized ops: float32 scales
  EXPECT_FALSE(cpu()->supports(add, types).is_ok());
}

}  // namespace
}  // namespace tandem
