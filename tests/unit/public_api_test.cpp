// The public headers beyond the engine: the backend list, OnnxModel and CompiledModel, tensor
// files, comparison and the float16 converter, on the tiny in-memory model of the engine tests.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>

#include "engine_test_util.h"
#include "tandem/backend_info.h"
#include "tandem/compare.h"
#include "tandem/convert.h"
#include "tandem/model.h"
#include "tandem/tensor_io.h"

namespace tandem {
namespace {

using testing_util::tiny_expected;
using testing_util::tiny_inputs;
using testing_util::tiny_model_bytes;

TEST(PublicApi, ExactlyOneReferenceBackendAndItIsLast) {
  const std::vector<BackendInfo> backends = list_backends();
  ASSERT_FALSE(backends.empty());
  EXPECT_TRUE(backends.back().is_reference);
  EXPECT_EQ(std::count_if(backends.begin(), backends.end(), [](const BackendInfo& b) { return b.is_reference; }), 1);
  for (const BackendInfo& b : backends) {
    EXPECT_FALSE(b.name.empty());
    EXPECT_FALSE(b.version.empty()) << b.name;
    EXPECT_EQ(device_kind_name(b.device_kind), "cpu") << b.name;  // this build has CPU backends only
  }
}

TEST(PublicApi, DescribesTheModel) {
  auto model = OnnxModel::from_bytes(tiny_model_bytes(8, /*symbolic_batch=*/true), {}, "tiny.onnx");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  const ModelDescription& d = model->description();
  EXPECT_EQ(d.opsets.at(""), 17);
  ASSERT_EQ(d.inputs.size(), 1u);
  EXPECT_EQ(d.inputs[0].name, "x");
  EXPECT_EQ(d.inputs[0].dtype, DataType::float32);
  EXPECT_EQ(d.inputs[0].dims[0].symbol, "batch");
  EXPECT_EQ(d.inputs[0].dims[1].value, 8);
  EXPECT_EQ(d.initializer_count, 1u);
  EXPECT_EQ(d.initializer_bytes, 8u * sizeof(float));
  EXPECT_EQ(d.node_count, 2);
  const std::vector<OpSupport> ops = model->op_support();
  ASSERT_EQ(ops.size(), 2u);
  EXPECT_EQ(ops[0].op, "Add");
  EXPECT_NE(std::find(ops[0].backends.begin(), ops[0].backends.end(), "reference"), ops[0].backends.end());
  auto types = model->infer_output_types({{"x", {4, 8}}});
  ASSERT_TRUE(types.is_ok()) << types.status().to_string();
  EXPECT_EQ(types->outputs.at(0).type, "float32[4,8]");
  EXPECT_FALSE(OnnxModel::from_bytes("not a model", {}, "junk.onnx").is_ok());
}

TEST(PublicApi, CompiledModelRunsOnEachBackend) {
  auto model = OnnxModel::from_bytes(tiny_model_bytes(), {}, "tiny.onnx");
  ASSERT_TRUE(model.is_ok());
  for (const BackendInfo& b : list_backends()) {
    SCOPED_TRACE(b.name);
    CompileSettings settings;
    settings.backend = b.name;
    auto compiled = model->compile(settings);
    ASSERT_TRUE(compiled.is_ok()) << compiled.status().to_string();
    EXPECT_EQ(compiled->placement().backend, b.name);
    auto bound = compiled->bind(tiny_inputs());
    ASSERT_TRUE(bound.is_ok()) << bound.status().to_string();
    std::vector<Value> outputs;
    ASSERT_TRUE(compiled->run(*bound, &outputs).is_ok());
    ASSERT_EQ(outputs.size(), 1u);
    const auto want = tiny_expected();
    for (int i = 0; i < 8; ++i) EXPECT_FLOAT_EQ(outputs[0].tensor.data<float>()[i], want[static_cast<size_t>(i)]);
  }
  CompileSettings nosuch;
  nosuch.backend = "nosuch";
  auto unknown = model->compile(nosuch);
  EXPECT_EQ(unknown.status().code(), StatusCode::invalid_argument);
  auto compiled = model->compile();
  ASSERT_TRUE(compiled.is_ok());
  EXPECT_EQ(compiled->bind({}).status().code(), StatusCode::invalid_argument);  // x is missing
}

TEST(PublicApi, NpyRoundTripAndComparison) {
  const std::filesystem::path path = std::filesystem::temp_directory_path() / "tandem_public_api_test.npy";
  auto t = random_tensor(DataType::float32, {2, 3}, 5);
  ASSERT_TRUE(t.is_ok());
  ASSERT_TRUE(write_npy(path, *t).is_ok());
  auto back = read_tensor_file(path);
  std::filesystem::remove(path);
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  EXPECT_TRUE(compare_tensors(*t, *back, {0, 0}).is_ok());
  Tensor off = back->clone();
  off.data<float>()[4] += 0.5f;
  EXPECT_FALSE(compare_tensors(*t, off).is_ok());
  EXPECT_NEAR(error_stats(*t, off).max_abs, 0.5, 1e-6);
  EXPECT_EQ(parse_dims("1x3x4").value(), (Shape{1, 3, 4}));
  EXPECT_FALSE(read_tensor_file("x.txt").is_ok());
}

TEST(PublicApi, ConvertsToFloat16) {
  auto converted = convert_to_fp16(tiny_model_bytes(), {});
  ASSERT_TRUE(converted.is_ok()) << converted.status().to_string();
  EXPECT_EQ(converted->report.converted_tensors, 1);  // the weight w
  auto model = OnnxModel::from_bytes(converted->model_bytes, {}, "tiny_fp16.onnx");
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  EXPECT_EQ(model->description().inputs.at(0).dtype, DataType::float16);
  EXPECT_EQ(convert_to_fp16("garbage", {}).status().code(), StatusCode::invalid_model);
}

}  // namespace
}  // namespace tandem
