// loader_test.cpp: bad model files give one clear error line naming the file (and the node),
// never a crash. Models are built here with the onnx protobuf API and written to a temp folder.
#include <gtest/gtest.h>
#include <onnx/onnx_pb.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "onnx/loader.h"
#include "onnx_build_util.h"

namespace tandem {
namespace {

namespace fs = std::filesystem;
using onnx::TensorProto;

// --- model building helpers ------------------------------------------------------------------

using testing_util::add_node;
using testing_util::set_info;

TensorProto* add_float_initializer(onnx::GraphProto* g, const std::string& name, const std::vector<float>& values) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(TensorProto::FLOAT);
  t->add_dims(static_cast<int64_t>(values.size()));
  for (float v : values) t->add_float_data(v);
  return t;
}

// Y = X + W, X and W float[2], W = [1, 2].
onnx::ModelProto base_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  auto* op = m.add_opset_import();
  op->set_domain("");
  op->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("main");
  set_info(g->add_input(), "X", TensorProto::FLOAT, {2});
  set_info(g->add_output(), "Y", TensorProto::FLOAT, {2});
  add_float_initializer(g, "W", {1.0f, 2.0f});
  add_node(g, "Add", "add", {"X", "W"}, {"Y"});
  return m;
}

std::string serialize(const onnx::ModelProto& m) {
  std::string bytes;
  EXPECT_TRUE(m.SerializeToString(&bytes));
  return bytes;
}

// A fresh folder per test, removed afterwards.
class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    dir_ = fs::temp_directory_path() / ("tandem-loader-" + std::to_string(::getpid()) + "-" +
                                        info->test_suite_name() + "-" + info->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_ / "model");
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  // The folder models are saved into (a subfolder, so that "../x" has somewhere to point).
  fs::path model_dir() const { return dir_ / "model"; }
  fs::path write(const fs::path& path, const std::string& bytes) const {
    std::ofstream out(path, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    EXPECT_TRUE(out.good()) << path;
    return path;
  }
  fs::path save(const onnx::ModelProto& m, const std::string& name = "model.onnx") const {
    return write(model_dir() / name, serialize(m));
  }
  fs::path dir_;
};
using LoaderFile = LoaderTest;
using LoaderGraph = LoaderTest;
using LoaderExternal = LoaderTest;
using LoaderTensor = LoaderTest;
using LoaderSubgraph = LoaderTest;
using LoaderRegression = LoaderTest;

// Checks a failed load: the code, one line, and each of `needles` in the message.
template <class T>
void expect_error(const Result<T>& r, StatusCode code, const std::vector<std::string>& needles) {
  ASSERT_FALSE(r.is_ok()) << "expected an error mentioning " << (needles.empty() ? "" : needles[0]);
  const Status s = r.status();
  EXPECT_EQ(s.code(), code) << s.to_string();
  EXPECT_EQ(s.message().find('\n'), std::string::npos) << "not one line: " << s.message();
  EXPECT_FALSE(s.message().empty());
  for (const auto& n : needles) EXPECT_NE(s.message().find(n), std::string::npos) << "'" << n << "' not in: " << s.message();
}

std::vector<float> floats_of(const Tensor& t) {
  EXPECT_EQ(t.dtype(), DataType::float32);
  if (t.dtype() != DataType::float32) return {};
  return std::vector<float>(t.data<float>(), t.data<float>() + t.numel());
}

// Compiles `model` on the reference backend and runs it.
Result<std::vector<Value>> run_reference(const Model& model, const std::vector<Value>& inputs) {
  Backend* b = find_backend("reference");
  if (!b) return internal_error("no reference backend");
  auto plan = b->compile(*model.graph, {});
  if (!plan) return plan.status();
  std::vector<Value> outs;
  TANDEM_RETURN_IF_ERROR(b->run(**plan, inputs, &outs, {}));
  return outs;
}

// A loader result must be ok or one error line that starts with the display name.
void expect_clean(const Result<Model>& r, const std::string& display) {
  if (r.is_ok()) return;
  const std::string msg = r.status().message();
  EXPECT_EQ(msg.rfind(display + ": ", 0), 0u) << msg;
  EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

// --- files that are not models ----------------------------------------------------------------

TEST_F(LoaderFile, BaseModelLoadsAndRuns) {
  auto m = load_model(save(base_model()));
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->path, model_dir() / "model.onnx");
  auto outs = run_reference(*m, {Value::of(Tensor::from_vector<float>({2}, {10, 20}))});
  ASSERT_TRUE(outs.is_ok()) << outs.status().to_string();
  EXPECT_EQ(floats_of((*outs)[0].tensor), (std::vector<float>{11, 22}));
}

TEST_F(LoaderFile, EmptyFile) {
  auto r = load_model(write(model_dir() / "empty.onnx", ""));
  expect_error(r, StatusCode::invalid_model, {"empty.onnx", "empty"});
}

TEST_F(LoaderFile, TruncatedModelFailsCleanlyAtEveryOffset) {
  onnx::ModelProto m = base_model();
  add_node(m.mutable_graph(), "Relu", "relu", {"Y"}, {"Z"});
  set_info(m.mutable_graph()->add_output(), "Z", TensorProto::FLOAT, {2});
  const std::string bytes = serialize(m);
  // Every prefix: no crash; an error names the file. (A cut at a field boundary can leave a
  // valid, smaller model, e.g. one without opset_import.)
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    auto r = load_model_from_bytes(std::string_view(bytes).substr(0, cut), model_dir(), "cut.onnx");
    expect_clean(r, "cut.onnx");
  }
  // Cuts inside the graph submessage always fail, through load_model too.
  onnx::ModelProto head;
  head.set_ir_version(m.ir_version());
  const size_t graph_start = head.ByteSizeLong();
  const size_t graph_len = m.graph().ByteSizeLong();
  for (size_t cut : {graph_start + 1, graph_start + 2, graph_start + graph_len / 3, graph_start + graph_len / 2,
                     graph_start + graph_len}) {
    ASSERT_LT(cut, bytes.size());
    auto r = load_model(write(model_dir() / "truncated.onnx", bytes.substr(0, cut)));
    expect_error(r, StatusCode::invalid_model, {"truncated.onnx", "truncated or corrupt"});
  }
}

TEST_F(LoaderFile, RandomBytes) {
  std::mt19937 rng(12345);
  for (int i = 0; i < 500; ++i) {
    std::string bytes(1 + rng() % 600, '\0');
    for (char& c : bytes) c = static_cast<char>(rng());
    expect_clean(load_model_from_bytes(bytes, model_dir(), "random.onnx"), "random.onnx");
  }
  // Random bytes after a valid model's start (a corrupted tail).
  const std::string good = serialize(base_model());
  for (int i = 0; i < 200; ++i) {
    std::string bytes = good;
    const size_t n = 1 + rng() % 8;
    for (size_t k = 0; k < n; ++k) bytes[rng() % bytes.size()] = static_cast<char>(rng());
    expect_clean(load_model_from_bytes(bytes, model_dir(), "flipped.onnx"), "flipped.onnx");
  }
  std::string bytes(64, '\0');
  for (char& c : bytes) c = static_cast<char>(rng());
  bytes[0] = '\x0f';  // field 1, wire type 7: never valid
  expect_error(load_model(write(model_dir() / "random.onnx", bytes)), StatusCode::invalid_model,
               {"random.onnx", "not a valid ONNX model"});
}

TEST_F(LoaderFile, DirectoryInsteadOfFile) {
  fs::create_directories(model_dir() / "dir.onnx");
  expect_error(load_model(model_dir() / "dir.onnx"), StatusCode::invalid_argument, {"dir.onnx", "directory"});
}

TEST_F(LoaderFile, MissingFile) {
  expect_error(load_model(model_dir() / "nothere.onnx"), StatusCode::invalid_argument,
               {"nothere.onnx", "no such file"});
}

TEST_F(LoaderFile, ModelWithoutGraph) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "no graph"});
}

// --- graph structure ----------------------------------------------------------------------------

TEST_F(LoaderGraph, UnknownOpLoadsButDoesNotCompile) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->set_op_type("FrobnicateXYZ");
  m.mutable_graph()->mutable_node(0)->set_name("frob");
  auto r = load_model(save(m));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto plan = find_backend("reference")->compile(*r->graph, {});
  expect_error(plan, StatusCode::unsupported, {"FrobnicateXYZ", "'frob'"});
}

TEST_F(LoaderGraph, InputThatNothingDefines) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->clear_initializer();  // W is gone
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "[Add 'add']", "'W'", "not a graph input"});
}

TEST_F(LoaderGraph, UnnamedNodeIsLabelledByIndex) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->clear_name();
  m.mutable_graph()->mutable_node(0)->set_input(1, "nowhere");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "[Add #0]", "'nowhere'"});
}

TEST_F(LoaderGraph, CycleBetweenTwoNodes) {
  onnx::ModelProto m = base_model();
  auto* g = m.mutable_graph();
  g->clear_node();
  add_node(g, "Add", "first", {"X", "b"}, {"a"});
  add_node(g, "Relu", "second", {"a"}, {"b"});
  add_node(g, "Identity", "out", {"a"}, {"Y"});
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "cycle", "'first'"});
}

TEST_F(LoaderGraph, NodeReadingItsOwnOutput) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->set_input(1, "Y");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "cycle", "[Add 'add']"});
}

TEST_F(LoaderGraph, TwoNodesProduceTheSameValue) {
  onnx::ModelProto m = base_model();
  add_node(m.mutable_graph(), "Sub", "sub", {"X", "W"}, {"Y"});
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "[Sub 'sub']", "'Y'", "also produced by [Add 'add']"});
}

TEST_F(LoaderGraph, DomainNotImported) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->set_domain("com.example.custom");
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "[Add 'add']", "com.example.custom", "does not import"});
}

TEST_F(LoaderGraph, ImportedCustomDomainLoads) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->set_domain("com.example.custom");
  auto* op = m.add_opset_import();
  op->set_domain("com.example.custom");
  op->set_version(3);
  auto r = load_model(save(m));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->graph->nodes[0].opset, 3);
  // The reference backend has no such op: unsupported, naming it.
  expect_error(find_backend("reference")->compile(*r->graph, {}), StatusCode::unsupported,
               {"[Add 'add']", "com.example.custom"});
}

TEST_F(LoaderGraph, NodeWithoutOpType) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->clear_op_type();
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "node #0", "no op_type"});
}

TEST_F(LoaderGraph, GraphOutputNotProduced) {
  onnx::ModelProto m = base_model();
  set_info(m.mutable_graph()->add_output(), "ghost", TensorProto::FLOAT, {2});
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "'ghost'", "not produced"});
}

TEST_F(LoaderGraph, ControlCharactersInNamesAreRefused) {
  // Names end up in every message about the model; a newline in one would break the one-line
  // rule (the reference backend's "unknown op" message quotes the op type, for one).
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_node(0)->set_name("evil\nname\r");
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "node #0 name 'evil\\x0aname\\x0d'", "control character"});
  m = base_model();
  m.mutable_graph()->mutable_node(0)->set_op_type("Add\n");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"node #0 op name 'Add\\x0a'"});
  m = base_model();
  m.mutable_graph()->mutable_node(0)->set_input(1, std::string("W\0", 2));
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"node #0 input name 'W\\x00'"});
  m = base_model();
  m.mutable_graph()->mutable_output(0)->set_name("Y\t");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"value name 'Y\\x09'"});
}

// --- external data ---------------------------------------------------------------------------------

// The model with W stored externally at `location`, `offset`, `length` (empty: key omitted).
onnx::ModelProto external_model(const std::string& location, const std::string& offset = "",
                                const std::string& length = "") {
  onnx::ModelProto m = base_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_data_location(TensorProto::EXTERNAL);
  auto add = [&](const std::string& k, const std::string& v) {
    auto* e = w->add_external_data();
    e->set_key(k);
    e->set_value(v);
  };
  add("location", location);
  if (!offset.empty()) add("offset", offset);
  if (!length.empty()) add("length", length);
  return m;
}

std::string float_bytes(const std::vector<float>& v) {
  std::string s(v.size() * 4, '\0');
  std::memcpy(s.data(), v.data(), s.size());
  return s;
}

TEST_F(LoaderExternal, ValidWithOffsetAndLength) {
  // 8 junk bytes, the two floats, then 8 more junk bytes: offset and length must be honoured.
  fs::create_directories(model_dir() / "weights");
  write(model_dir() / "weights" / "w.bin", std::string(8, 'j') + float_bytes({3.5f, -4.0f}) + std::string(8, 'k'));
  auto r = load_model(save(external_model("weights/w.bin", "8", "8")));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(floats_of(r->graph->initializers.at("W")), (std::vector<float>{3.5f, -4.0f}));
  auto outs = run_reference(*r, {Value::of(Tensor::from_vector<float>({2}, {1, 1}))});
  ASSERT_TRUE(outs.is_ok()) << outs.status().to_string();
  EXPECT_EQ(floats_of((*outs)[0].tensor), (std::vector<float>{4.5f, -3.0f}));
}

TEST_F(LoaderExternal, WholeFileWithoutOffsetOrLength) {
  write(model_dir() / "w.bin", float_bytes({7, 8}));
  auto r = load_model(save(external_model("w.bin")));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(floats_of(r->graph->initializers.at("W")), (std::vector<float>{7, 8}));
  // "./w.bin" and "sub/../w.bin" stay inside the folder.
  fs::create_directories(model_dir() / "sub");
  ASSERT_TRUE(load_model(save(external_model("./w.bin"))).is_ok());
  ASSERT_TRUE(load_model(save(external_model("sub/../w.bin"))).is_ok());
}

TEST_F(LoaderExternal, ParentPathRefused) {
  write(dir_ / "outside.bin", float_bytes({1, 2}));  // exists, but outside the model's folder
  expect_error(load_model(save(external_model("../outside.bin"))), StatusCode::invalid_model,
               {"model.onnx", "'W'", "../outside.bin", "leaves the model's folder"});
  expect_error(load_model(save(external_model("sub/../../outside.bin"))), StatusCode::invalid_model,
               {"leaves the model's folder"});
}

TEST_F(LoaderExternal, AbsolutePathRefused) {
  const fs::path abs = fs::absolute(model_dir() / "w.bin");  // even one inside the folder
  write(abs, float_bytes({1, 2}));
  expect_error(load_model(save(external_model(abs.string()))), StatusCode::invalid_model,
               {"model.onnx", "'W'", "absolute", "leaves the model's folder"});
}

TEST_F(LoaderExternal, SymlinkLeavingTheFolderRefused) {
  write(dir_ / "outside.bin", float_bytes({1, 2}));
  fs::create_symlink(dir_ / "outside.bin", model_dir() / "link.bin");
  expect_error(load_model(save(external_model("link.bin"))), StatusCode::invalid_model,
               {"model.onnx", "link.bin", "leaves the model's folder"});
}

TEST_F(LoaderExternal, FolderItselfRefused) {
  expect_error(load_model(save(external_model("."))), StatusCode::invalid_model, {"model.onnx", "'W'"});
  fs::create_directories(model_dir() / "d");
  expect_error(load_model(save(external_model("d"))), StatusCode::invalid_model,
               {"model.onnx", "'d'", "not a regular file"});
}

TEST_F(LoaderExternal, MissingFile) {
  expect_error(load_model(save(external_model("nothere.bin"))), StatusCode::invalid_model,
               {"model.onnx", "'W'", "nothere.bin", "does not exist"});
}

TEST_F(LoaderExternal, RangeBeyondTheEnd) {
  write(model_dir() / "w.bin", float_bytes({1, 2}));  // 8 bytes
  expect_error(load_model(save(external_model("w.bin", "4", "8"))), StatusCode::invalid_model,
               {"model.onnx", "'W'", "[4, +8)", "outside 'w.bin' (8 bytes)"});
  expect_error(load_model(save(external_model("w.bin", "9"))), StatusCode::invalid_model, {"outside 'w.bin'"});
  expect_error(load_model(save(external_model("w.bin", "0", "999999999999999999"))), StatusCode::invalid_model,
               {"outside 'w.bin'"});
  // Inside the file but the wrong size for float[2].
  expect_error(load_model(save(external_model("w.bin", "0", "4"))), StatusCode::invalid_model,
               {"'W'", "4 bytes, expected 8"});
}

TEST_F(LoaderExternal, BadOffsetOrLengthText) {
  write(model_dir() / "w.bin", float_bytes({1, 2}));
  expect_error(load_model(save(external_model("w.bin", "-4"))), StatusCode::invalid_model,
               {"'W'", "offset '-4'"});
  expect_error(load_model(save(external_model("w.bin", "0", "8x"))), StatusCode::invalid_model,
               {"'W'", "length '8x'"});
  expect_error(load_model(save(external_model("w.bin", "99999999999999999999999"))), StatusCode::invalid_model,
               {"'W'", "offset"});
}

TEST_F(LoaderExternal, NulByteInLocationRefused) {
  write(model_dir() / "w.bin", float_bytes({1, 2}));
  expect_error(load_model(save(external_model(std::string("w.bin\0../../x", 13)))), StatusCode::invalid_model,
               {"'W'", "NUL"});
}

TEST_F(LoaderExternal, RefusedWhenLoadedFromMemory) {
  expect_error(load_model_from_bytes(serialize(external_model("w.bin")), "", "mem.onnx"), StatusCode::invalid_model,
               {"mem.onnx", "'W'", "not loaded from a file"});
}

TEST_F(LoaderExternal, MissingLocation) {
  onnx::ModelProto m = external_model("w.bin");
  m.mutable_graph()->mutable_initializer(0)->mutable_external_data(0)->set_key("place");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"'W'", "without a location"});
}

// --- tensor data -----------------------------------------------------------------------------------

TEST_F(LoaderTensor, RawDataWithWrongByteCount) {
  onnx::ModelProto m = base_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_raw_data(std::string(7, '\0'));
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "'W'", "7 raw bytes, expected 8", "float32[2]"});
}

TEST_F(LoaderTensor, TypedDataWithWrongCount) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_initializer(0)->add_float_data(3);
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "'W'", "3 values, expected 2"});
}

TEST_F(LoaderTensor, NegativeDim) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_initializer(0)->set_dims(0, -2);
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "'W'", "negative dimension"});
}

TEST_F(LoaderTensor, AbsurdlyLargeDim) {
  for (int64_t d : {int64_t{1} << 62, INT64_MAX}) {
    onnx::ModelProto m = base_model();
    m.mutable_graph()->mutable_initializer(0)->set_dims(0, d);
    expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "'W'", "too large"});
  }
  // Many dims whose product overflows int64.
  onnx::ModelProto m = base_model();
  for (int i = 0; i < 8; ++i) m.mutable_graph()->mutable_initializer(0)->add_dims(1 << 20);
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"'W'", "too large"});
}

TEST_F(LoaderTensor, LargeDimWithoutDataDoesNotAllocate) {
  // 2^39 float32 elements (2 TiB) under the element limit but with no data: refused before
  // the tensor is allocated. (Once: std::bad_alloc, an abort.)
  for (int dtype : {TensorProto::FLOAT, TensorProto::INT8, TensorProto::STRING, TensorProto::UINT64,
                    TensorProto::COMPLEX128, TensorProto::BOOL}) {
    onnx::ModelProto m = base_model();
    auto* w = m.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_data_type(dtype);
    w->set_dims(0, int64_t{1} << 39);
    expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "'W'", "0 values, expected 549755813888"});
  }
  onnx::ModelProto m = base_model();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_float_data();
  w->set_dims(0, int64_t{1} << 39);
  w->set_raw_data("abcd");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"'W'", "4 raw bytes"});
}

TEST_F(LoaderTensor, UnknownDataType) {
  onnx::ModelProto m = base_model();
  m.mutable_graph()->mutable_initializer(0)->set_data_type(77);
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"'W'", "unknown data type 77"});
}

TEST_F(LoaderTensor, ZeroSizeAndScalarInitializers) {
  onnx::ModelProto m = base_model();
  auto* e = m.mutable_graph()->add_initializer();
  e->set_name("empty");
  e->set_data_type(TensorProto::FLOAT);
  e->add_dims(0);
  e->add_dims(int64_t{1} << 62);  // zero elements whatever follows
  auto* s = m.mutable_graph()->add_initializer();
  s->set_name("scalar");
  s->set_data_type(TensorProto::INT64);
  s->add_int64_data(42);
  auto r = load_model(save(m));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->graph->initializers.at("empty").numel(), 0);
  const Tensor& sc = r->graph->initializers.at("scalar");
  EXPECT_EQ(sc.rank(), 0u);
  EXPECT_EQ(sc.data<int64_t>()[0], 42);
}

TEST_F(LoaderTensor, BoolRawBytesAreNormalized) {
  onnx::ModelProto m = base_model();
  auto* b = m.mutable_graph()->add_initializer();
  b->set_name("flags");
  b->set_data_type(TensorProto::BOOL);
  b->add_dims(3);
  b->set_raw_data(std::string("\x00\x02\xff", 3));
  auto r = load_model(save(m));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const auto* bytes = static_cast<const unsigned char*>(r->graph->initializers.at("flags").raw_data());
  EXPECT_EQ(bytes[0], 0);
  EXPECT_EQ(bytes[1], 1);
  EXPECT_EQ(bytes[2], 1);
}

TEST_F(LoaderTensor, BadTensorInAttributeNamesTheNode) {
  onnx::ModelProto m = base_model();
  auto* c = add_node(m.mutable_graph(), "Constant", "const", {}, {"C"});
  auto* a = c->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(TensorProto::FLOAT);
  a->mutable_t()->add_dims(3);
  a->mutable_t()->set_raw_data("12345");
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "[Constant 'const'] attribute 'value'", "5 raw bytes, expected 12"});
}

TEST_F(LoaderTensor, BadAttributeType) {
  onnx::ModelProto m = base_model();
  auto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
  a->set_name("weird");
  a->set_type(static_cast<onnx::AttributeProto::AttributeType>(0));
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"[Add 'add']", "'weird'", "unsupported type"});
}

TEST_F(LoaderTensor, SparseInitializer) {
  auto sparse_model = [](std::vector<int64_t> dims, std::vector<int64_t> idx, std::vector<int64_t> idx_dims) {
    onnx::ModelProto m = base_model();
    m.mutable_graph()->clear_initializer();
    auto* sp = m.mutable_graph()->add_sparse_initializer();
    for (int64_t d : dims) sp->add_dims(d);
    auto* v = sp->mutable_values();
    v->set_name("W");
    v->set_data_type(TensorProto::FLOAT);
    v->add_dims(2);
    v->add_float_data(5);
    v->add_float_data(6);
    auto* i = sp->mutable_indices();
    i->set_data_type(TensorProto::INT64);
    for (int64_t d : idx_dims) i->add_dims(d);
    for (int64_t x : idx) i->add_int64_data(x);
    return m;
  };
  {
    auto r = load_model(save(sparse_model({2}, {1, 0}, {2})));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(floats_of(r->graph->initializers.at("W")), (std::vector<float>{6, 5}));
  }
  {
    // Per-dim indices [[0,1],[1,0]] into a 2x2 tensor.
    auto r = load_model(save(sparse_model({2, 2}, {0, 1, 1, 0}, {2, 2})));
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
    EXPECT_EQ(floats_of(r->graph->initializers.at("W")), (std::vector<float>{0, 5, 6, 0}));
  }
  expect_error(load_model(save(sparse_model({2}, {1, 2}, {2}))), StatusCode::invalid_model,
               {"model.onnx", "sparse tensor 'W'", "out of range"});
  expect_error(load_model(save(sparse_model({2}, {-1, 0}, {2}))), StatusCode::invalid_model, {"out of range"});
  // A per-dim index out of its dim that would still land inside the tensor: [0,2] in 2x2.
  expect_error(load_model(save(sparse_model({2, 2}, {0, 2, 1, 0}, {2, 2}))), StatusCode::invalid_model,
               {"out of range"});
  expect_error(load_model(save(sparse_model({int64_t{1} << 39, int64_t{1} << 39}, {0, 1}, {2}))),
               StatusCode::invalid_model, {"sparse tensor 'W'", "too large"});
  expect_error(load_model(save(sparse_model({-3}, {0, 1}, {2}))), StatusCode::invalid_model,
               {"sparse tensor 'W'", "negative"});
  expect_error(load_model(save(sparse_model({2}, {0, 1, 1}, {3}))), StatusCode::invalid_model,
               {"sparse tensor 'W'", "indices of shape"});
  // A few bytes that declare a terabyte dense tensor: refused before allocating (once: bad_alloc).
  expect_error(load_model(save(sparse_model({int64_t{1} << 39}, {0, 1}, {2}))), StatusCode::invalid_model,
               {"sparse tensor 'W'", "549755813888 float32 elements dense, over the 1024 MiB limit"});
  expect_error(load_model(save(sparse_model({1 << 20, 1 << 10}, {0, 1}, {2}))), StatusCode::invalid_model,
               {"over the 1024 MiB limit"});
  // Huge per-dim indices must not overflow while computing the position.
  expect_error(load_model(save(sparse_model({4, 4}, {INT64_MAX, INT64_MAX, 0, 0}, {2, 2}))),
               StatusCode::invalid_model, {"out of range"});
}

// --- subgraphs -----------------------------------------------------------------------------------

// Y = If(cond) then X + W else X - W; the branches read X and W from the outer graph.
onnx::ModelProto if_model() {
  onnx::ModelProto m = base_model();
  auto* g = m.mutable_graph();
  g->clear_node();
  set_info(g->add_input(), "cond", TensorProto::BOOL, {});
  auto* n = add_node(g, "If", "branch", {"cond"}, {"Y"});
  for (const char* which : {"then_branch", "else_branch"}) {
    auto* a = n->add_attribute();
    a->set_name(which);
    a->set_type(onnx::AttributeProto::GRAPH);
    auto* sub = a->mutable_g();
    sub->set_name(which);
    const bool then = std::string(which) == "then_branch";
    add_node(sub, then ? "Add" : "Sub", then ? "inner_add" : "inner_sub", {"X", "W"}, {which + std::string("_out")});
    set_info(sub->add_output(), which + std::string("_out"), TensorProto::FLOAT, {2});
  }
  return m;
}

TEST_F(LoaderSubgraph, BranchReadingOuterValueLoadsAndRuns) {
  auto r = load_model(save(if_model()));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  const Tensor x = Tensor::from_vector<float>({2}, {10, 20});
  auto yes = run_reference(*r, {Value::of(x), Value::of(Tensor::scalar<bool>(true))});
  ASSERT_TRUE(yes.is_ok()) << yes.status().to_string();
  EXPECT_EQ(floats_of((*yes)[0].tensor), (std::vector<float>{11, 22}));
  auto no = run_reference(*r, {Value::of(x), Value::of(Tensor::scalar<bool>(false))});
  ASSERT_TRUE(no.is_ok()) << no.status().to_string();
  EXPECT_EQ(floats_of((*no)[0].tensor), (std::vector<float>{9, 18}));
}

TEST_F(LoaderSubgraph, BranchReadingUndefinedNameFails) {
  onnx::ModelProto m = if_model();
  m.mutable_graph()->mutable_node(0)->mutable_attribute(1)->mutable_g()->mutable_node(0)->set_input(1, "undefined_w");
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "[If 'branch'] attribute 'else_branch'", "[Sub 'inner_sub']", "'undefined_w'"});
}

TEST_F(LoaderSubgraph, BranchReadingValueProducedLaterIsFine) {
  // The If reads `Z` in its branch, which a later node in the file produces: a valid order exists.
  onnx::ModelProto m = if_model();
  auto* g = m.mutable_graph();
  g->mutable_node(0)->mutable_attribute(0)->mutable_g()->mutable_node(0)->set_input(1, "Z");
  add_node(g, "Identity", "make_z", {"W"}, {"Z"});
  auto r = load_model(save(m));
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  auto out = run_reference(*r, {Value::of(Tensor::from_vector<float>({2}, {1, 1})), Value::of(Tensor::scalar<bool>(true))});
  ASSERT_TRUE(out.is_ok()) << out.status().to_string();
  EXPECT_EQ(floats_of((*out)[0].tensor), (std::vector<float>{2, 3}));
}

TEST_F(LoaderSubgraph, BranchReadingTheIfsOwnOutputIsACycle) {
  onnx::ModelProto m = if_model();
  m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g()->mutable_node(0)->set_input(1, "Y");
  expect_error(load_model(save(m)), StatusCode::invalid_model, {"model.onnx", "cycle", "[If 'branch']"});
}

TEST_F(LoaderSubgraph, BadNodeInBranchNamesTheIf) {
  onnx::ModelProto m = if_model();
  m.mutable_graph()->mutable_node(0)->mutable_attribute(0)->mutable_g()->mutable_node(0)->set_domain("nope");
  expect_error(load_model(save(m)), StatusCode::invalid_model,
               {"model.onnx", "[If 'branch'] attribute 'then_branch'", "[Add 'inner_add']", "'nope'"});
}

TEST_F(LoaderSubgraph, DeeplyNestedGraphsFailCleanly) {
  // Protobuf refuses messages nested deeper than its recursion limit; that is an error, not a crash.
  onnx::ModelProto m = base_model();
  onnx::GraphProto* g = m.mutable_graph();
  for (int depth = 0; depth < 200; ++depth) {
    auto* n = add_node(g, "If", "if" + std::to_string(depth), {"X"}, {});
    auto* a = n->add_attribute();
    a->set_name("then_branch");
    a->set_type(onnx::AttributeProto::GRAPH);
    g = a->mutable_g();
  }
  expect_clean(load_model(save(m)), "model.onnx");
}

// --- inputs the fuzzers found (tests/fuzz; scripts/fuzz) -------------------------------------

// Loads `bytes` as the fuzzer does: must fail with one line naming the file, or load and then
// compile (or fail to compile) with a one-line message.
void expect_fuzz_input_handled(const std::string& bytes, const fs::path& base_dir) {
  auto r = load_model_from_bytes(bytes, base_dir, "fuzz.onnx");
  expect_clean(r, "fuzz.onnx");
  if (!r.is_ok()) return;
  auto plan = find_backend("reference")->compile(*r->graph, {});
  if (!plan.is_ok()) {
    const Status s = plan.status();
    EXPECT_EQ(s.message().find('\n'), std::string::npos) << s.message();
  }
}

TEST_F(LoaderRegression, OpTypeWithNewlineInSequenceMapBody) {
  // test_sequence_map_identity_1_sequence with the body's op type mutated to "I\x01\0\0\nity":
  // it loaded, and compiling gave a two-line "unknown op" message.
  const std::string bytes(
    "\x08\x08\x12\x0c\x62\x61\x63\x6b\x65\x6e\x64\x2d\x74\x65\x73\x74\x3a\xc3\x01\x0a\x6e\x0a\x01\x78"
    "\x12\x01\x79\x22\x0b\x53\x65\x71\x75\x65\x6e\x63\x65\x4d\x61\x70\x2a\x59\x0a\x04\x62\x6f\x64\x79"
    "\x32\x4e\x0a\x15\x0a\x03\x69\x6e\x30\x12\x04\x6f\x75\x74\x30\x22\x08\x49\x01\x00\x00\x0a\x69\x74"
    "\x79\x12\x0c\x73\x65\x71\x5f\x6d\x61\x70\x5f\x62\x6f\x64\x79\x5a\x12\x0a\x03\x69\x6e\x30\x12\x0b"
    "\x0a\x09\x08\x01\x12\x05\x0a\x03\x12\x01\x4e\x62\x13\x0a\x04\x6f\x75\x74\x30\x12\x0b\x0a\x09\x08"
    "\x01\x12\x05\x0a\x03\x12\x01\x4d\xa0\x01\x05\x12\x25\x74\x65\x73\x74\x5f\x73\x65\x71\x75\x65\x6e"
    "\x63\x65\x5f\x6d\x61\x70\x5f\x69\x64\x65\x6e\x74\x69\x74\x79\x5f\x31\x5f\x73\x65\x71\x75\x65\x6e"
    "\x63\x65\x5a\x14\x0a\x01\x78\x12\x0f\x22\x0d\x0a\x0b\x0a\x09\x08\x01\x12\x05\x0a\x03\x12\x01\x4e"
    "\x62\x14\x0a\x01\x79\x12\x0f\x22\x0d\x0a\x0b\x0a\x09\x08\x01\x12\x05\x0a\x03\x12\x01\x4e\x42\x04"
    "\x0a\x00\x10\x11",
    220);
  expect_fuzz_input_handled(bytes, model_dir());
  expect_error(load_model_from_bytes(bytes, model_dir(), "fuzz.onnx"), StatusCode::invalid_model,
               {"fuzz.onnx: [SequenceMap #0] attribute 'body': node #0 op name 'I\\x01\\x00\\x00\\x0aity' contains a control character"});
}

}  // namespace
}  // namespace tandem
