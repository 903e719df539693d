// PrepareOptions::check_batch_rows: whether the inputs' free first dim is a batch dim, found
// by running the model on two rows apart and together.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "engine_test_util.h"
#include "onnx_build_util.h"

namespace tandem {
namespace {

using testing_util::add_int64_initializer;
using testing_util::add_node;
using testing_util::make_engine;
using testing_util::new_model;
using Verdict = BatchRowsCheck::Verdict;

// x float32 [N, 4] (N symbolic) to y float32 of `y_dims` ("N" for the symbol) through one node
// made by `build`.
template <typename Build>
std::string one_node_model(const std::vector<std::string>& y_dims, Build build) {
  onnx::ModelProto m = new_model("g", 17);
  auto* g = m.mutable_graph();
  auto set = [](onnx::ValueInfoProto* vi, const std::string& name, const std::vector<std::string>& dims) {
    vi->set_name(name);
    auto* tt = vi->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    for (const std::string& d : dims) {
      if (d == "N")
        tt->mutable_shape()->add_dim()->set_dim_param("N");
      else
        tt->mutable_shape()->add_dim()->set_dim_value(std::stoll(d));
    }
  };
  set(g->add_input(), "x", {"N", "4"});
  set(g->add_output(), "y", y_dims);
  build(g);
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

BatchRowsCheck check_of(const std::string& bytes, PrepareOptions o = {}) {
  auto engine = make_engine({"cpu", "reference"});
  o.check_batch_rows = true;
  o.warmup_runs = 1;
  auto m = engine->prepare_bytes(bytes, o);
  EXPECT_TRUE(m.is_ok()) << m.status().to_string();
  return m.is_ok() ? (*m)->sla_estimate().batch_rows : BatchRowsCheck{};
}

TEST(EngineBatchRows, RowWiseModelsAreIndependent) {
  const BatchRowsCheck check = check_of(testing_util::tiny_model_bytes(8, true));
  EXPECT_EQ(check.verdict, Verdict::independent) << check.detail;
  EXPECT_EQ(check.detail, "checked on cpu");
  // Injected faults are armed after the check: it judges the model, not the device.
  PrepareOptions faulty;
  faulty.fault_injection = "error=1";
  const BatchRowsCheck despite = check_of(testing_util::tiny_model_bytes(8, true), faulty);
  EXPECT_EQ(despite.verdict, Verdict::independent) << despite.detail;
  // A check of the model, not of a precision: on the chain's fp32 route before its bf16 one.
  PrepareOptions bf16;
  bf16.precision = Precision::bf16;
  const BatchRowsCheck in_fp32 = check_of(testing_util::tiny_model_bytes(8, true), bf16);
  EXPECT_EQ(in_fp32.verdict, Verdict::independent) << in_fp32.detail;
  EXPECT_EQ(in_fp32.detail, "checked on cpu");
}

TEST(EngineBatchRows, NaNAndInfinitiesInTheSameRowsAreNoChange) {
  // 0 / 0 and log(0): the made-up values can lead a row-wise model to NaN or -inf.
  for (const char* op : {"Div", "Log"}) {
    const BatchRowsCheck check = check_of(one_node_model({"N", "4"}, [op](onnx::GraphProto* g) {
      add_node(g, "Sub", "zero", {"x", "x"}, {"z"});
      if (std::string(op) == "Div")
        add_node(g, "Div", "nan", {"z", "z"}, {"y"});
      else
        add_node(g, "Log", "log", {"z"}, {"y"});
    }));
    EXPECT_EQ(check.verdict, Verdict::independent) << op << ": " << check.detail;
  }
}

TEST(EngineBatchRows, AnOutputWithoutTheRowsIsDependent) {
  // y = x transposed: [4, N]. Declared shapes would not tell a [4, N] from an [N', 4].
  const BatchRowsCheck transposed = check_of(one_node_model({"4", "N"}, [](onnx::GraphProto* g) {
    testing_util::set_ints_attr(add_node(g, "Transpose", "t", {"x"}, {"y"}), "perm", {1, 0});
  }));
  EXPECT_EQ(transposed.verdict, Verdict::dependent);
  EXPECT_NE(transposed.detail.find("output 'y' is 4x2 for 2 rows and 4x1 for 1"), std::string::npos)
      << transposed.detail;
  // A sum over the rows keeps a first dim of 1 whatever the rows.
  const BatchRowsCheck summed = check_of(one_node_model({"1", "4"}, [](onnx::GraphProto* g) {
    add_int64_initializer(g, "axes", {1}, {0});
    add_node(g, "ReduceSum", "sum", {"x", "axes"}, {"y"});
  }));
  EXPECT_EQ(summed.verdict, Verdict::dependent);
  EXPECT_NE(summed.detail.find("its first dim is not the rows'"), std::string::npos) << summed.detail;
}

TEST(EngineBatchRows, AnOpAcrossRowsIsDependentThoughTheShapesFit) {
  // Softmax over dim 0: [N, 4] in and out, but each row's answer depends on the others.
  const BatchRowsCheck check = check_of(one_node_model({"N", "4"}, [](onnx::GraphProto* g) {
    testing_util::set_int_attr(add_node(g, "Softmax", "softmax", {"x"}, {"y"}), "axis", 0);
  }));
  EXPECT_EQ(check.verdict, Verdict::dependent);
  EXPECT_NE(check.detail.find("row 0 of output 'y' changed when it ran beside another row"), std::string::npos)
      << check.detail;
}

TEST(EngineBatchRows, UncheckedWithoutAFreeFirstDimOrWhenNotAsked) {
  const BatchRowsCheck fixed = check_of(testing_util::tiny_model_bytes(8, false));
  EXPECT_EQ(fixed.verdict, Verdict::unchecked);
  EXPECT_EQ(fixed.detail, "input 'x' has no free first dim");
  auto engine = make_engine({"cpu", "reference"});
  auto m = engine->prepare_bytes(testing_util::tiny_model_bytes(8, true), PrepareOptions{});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ((*m)->sla_estimate().batch_rows.verdict, Verdict::unchecked);
  EXPECT_EQ((*m)->sla_estimate().batch_rows.detail, "");
}

}  // namespace
}  // namespace tandem
