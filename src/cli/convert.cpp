// `tandem convert`: rewrite a float32 model as float16 (see tandem/convert.h), write
// it, and compare the converted model against the original on seeded random inputs.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "tandem/backend_info.h"
#include "tandem/compare.h"
#include "tandem/convert.h"
#include "tandem/model.h"
#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

const std::string kCmd = "convert";

struct ConvertOptions {
  std::string model;
  std::string to;
  std::string output;
  bool keep_io_types = false;
  std::vector<std::string> block_ops;
  std::vector<std::string> inputs;  // NAME=FILE for the comparison; the rest are random
  std::vector<std::string> shapes;
  uint64_t seed = 0;
  std::string backend;  // empty: the preferred backend of this build
  bool no_compare = false;
};

Result<std::string> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The shape to feed: --shape if given, else the declared dims with symbolic ones as 1.
Result<Shape> input_shape(const IoInfo& in, const std::map<std::string, Shape>& shapes) {
  if (auto it = shapes.find(in.name); it != shapes.end()) return concrete_shape(in, &it->second);
  if (!in.has_shape) return invalid_argument("input '" + in.name + "' has no declared rank; give --shape");
  Shape shape;
  for (const IoDim& d : in.dims) shape.push_back(d.value >= 0 ? d.value : 1);
  return shape;
}

// Inputs for the original model: the given files, seeded random values for the others.
Result<std::map<std::string, Tensor>> make_inputs(const ModelDescription& model, const std::vector<std::string>& files,
                                                 const std::map<std::string, Shape>& shapes, uint64_t seed) {
  TANDEM_ASSIGN_OR_RETURN(auto paths, parse_assignments(files, "--input"));
  std::map<std::string, Tensor> inputs;
  for (const auto& [name, path] : paths) {
    auto t = read_tensor_file(path);
    if (!t) return t.status().with_prefix("input '" + name + "': ");
    inputs[name] = std::move(t).value();
  }
  for (const IoInfo& in : model.inputs) {
    if (!in.required || inputs.count(in.name)) continue;
    if (in.kind != "tensor") return invalid_argument("cannot make random values for non-tensor input '" + in.name + "'");
    TANDEM_ASSIGN_OR_RETURN(Shape shape, input_shape(in, shapes));
    TANDEM_ASSIGN_OR_RETURN(Tensor t, random_tensor(in.dtype, shape, seed++));
    inputs[in.name] = std::move(t);
  }
  return inputs;
}

Tensor to_half(const Tensor& t) {
  Tensor h(DataType::float16, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) h.data<Float16>()[i] = Float16(t.data<float>()[i]);
  return h;
}

// Runs `model` on `backend` (reference fallback); float32 inputs become float16 where the
// model declares float16.
Result<std::vector<Value>> run_model(const OnnxModel& model, const std::map<std::string, Tensor>& inputs,
                                     const std::string& backend) {
  std::map<std::string, Value> provided;
  for (const IoInfo& in : model.description().inputs) {
    auto it = inputs.find(in.name);
    if (it == inputs.end()) continue;
    const bool half = in.dtype == DataType::float16 && it->second.dtype() == DataType::float32;
    provided[in.name] = Value::of(half ? to_half(it->second) : it->second);
  }
  CompileSettings settings;
  settings.backend = backend;
  TANDEM_ASSIGN_OR_RETURN(CompiledModel compiled, model.compile(settings));
  TANDEM_ASSIGN_OR_RETURN(auto bound, compiled.bind(provided));
  std::vector<Value> outputs;
  TANDEM_RETURN_IF_ERROR(compiled.run(bound, &outputs));
  return outputs;
}

// `t` as float32 (float16 and the other float types widen or narrow exactly as a cast would).
Tensor as_float32(const Tensor& t) {
  if (t.dtype() == DataType::float32) return t;
  Tensor f(DataType::float32, t.shape());
  float* out = f.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    switch (t.dtype()) {
      case DataType::float64: out[i] = static_cast<float>(t.data<double>()[i]); break;
      case DataType::float16: out[i] = static_cast<float>(t.data<Float16>()[i]); break;
      case DataType::bfloat16: out[i] = static_cast<float>(t.data<BFloat16>()[i]); break;
      default: break;
    }
  }
  return f;
}

// Prints max-abs error and RMSE of every float output; fails when an output changed shape.
Status compare_outputs(const ModelDescription& model, const std::vector<Value>& expected,
                       const std::vector<Value>& actual) {
  for (size_t i = 0; i < model.outputs.size() && i < expected.size() && i < actual.size(); ++i) {
    const std::string& name = model.outputs[i].name;
    if (!expected[i].is_tensor() || !actual[i].is_tensor() || !is_float_type(expected[i].tensor.dtype())) continue;
    const Tensor& e = expected[i].tensor;
    const Tensor& a = actual[i].tensor;
    if (!is_float_type(a.dtype()) || a.shape() != e.shape())
      return internal_error("output '" + name + "' is " + std::string(dtype_name(a.dtype())) + "[" +
                            shape_to_string(a.shape()) + "] after conversion, " + std::string(dtype_name(e.dtype())) +
                            "[" + shape_to_string(e.shape()) + "] before");
    const ErrorStats stats = error_stats(as_float32(e), as_float32(a));
    std::printf("output %s %s[%s]: max-abs %.6g, rmse %.6g\n", name.c_str(), std::string(dtype_name(a.dtype())).c_str(),
                shape_to_string(a.shape()).c_str(), stats.max_abs, stats.rmse);
  }
  return Status::ok();
}

// "10 ReduceMean, 5 Pow" from "[ReduceMean 'n'] reason" lines.
std::string summarize_blocked(const std::vector<std::string>& lines) {
  std::map<std::string, int> per_op;
  for (const auto& line : lines) ++per_op[line.substr(1, line.find_first_of(" ]") - 1)];
  std::string out;
  for (const auto& [op, count] : per_op) out += (out.empty() ? "" : ", ") + std::to_string(count) + " " + op;
  return out;
}

int convert_command(const ConvertOptions& o) {
  if (o.to != "fp16") return fail(kCmd, "unknown --to '" + o.to + "' (supported: fp16)", 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(kCmd, shapes.status().message(), 2);
  const std::string backend = o.backend.empty() ? list_backends().front().name : o.backend;
  const auto backends = list_backends();
  if (std::none_of(backends.begin(), backends.end(), [&](const BackendInfo& b) { return b.name == backend; }))
    return fail(kCmd, "unknown backend '" + backend + "'", 2);

  auto original = OnnxModel::load(o.model);  // one-line errors for missing or malformed files
  if (!original) return fail(kCmd, original.status().message());
  for (const auto& [name, s] : *shapes) {
    bool known = false;
    for (const IoInfo& in : original->description().inputs) known = known || in.name == name;
    if (!known) return fail(kCmd, "--shape names unknown input '" + name + "'", 2);
  }
  auto bytes = read_bytes(o.model);
  if (!bytes) return fail(kCmd, bytes.status().message());

  Fp16ConvertOptions options;
  options.keep_io_types = o.keep_io_types;
  options.extra_blocked_ops = o.block_ops;
  auto converted = convert_to_fp16(*bytes, options);
  if (!converted) return fail(kCmd, o.model + ": " + converted.status().message());
  const std::string& out_bytes = converted->model_bytes;
  {
    std::ofstream out(o.output, std::ios::binary | std::ios::trunc);
    out.write(out_bytes.data(), static_cast<std::streamsize>(out_bytes.size()));
    if (!out) return fail(kCmd, o.output + ": cannot write");
  }
  const Fp16ConvertReport& r = converted->report;
  std::printf("wrote %s\n", o.output.c_str());
  std::printf("size: %zu -> %zu bytes (%.1f%%)\n", bytes->size(), out_bytes.size(),
              100.0 * static_cast<double>(out_bytes.size()) / static_cast<double>(std::max<size_t>(bytes->size(), 1)));
  std::printf("tensors converted: %lld, clamped to +-65504: %lld values, casts inserted: %lld, constants kept in both "
              "precisions: %lld\n",
              static_cast<long long>(r.converted_tensors), static_cast<long long>(r.clamped_values),
              static_cast<long long>(r.inserted_casts), static_cast<long long>(r.constant_copies));
  if (!r.blocked_nodes.empty())
    std::printf("kept float32: %zu nodes (%s)\n", r.blocked_nodes.size(), summarize_blocked(r.blocked_nodes).c_str());
  if (o.no_compare) return 0;

  auto reloaded = OnnxModel::from_bytes(out_bytes, std::filesystem::path(o.output).parent_path(), o.output);
  if (!reloaded) return fail(kCmd, "the converted model does not load: " + reloaded.status().message());
  auto inputs = make_inputs(original->description(), o.inputs, *shapes, o.seed);
  if (!inputs) return fail(kCmd, inputs.status().message(), 2);
  auto expected = run_model(*original, *inputs, backend);
  if (!expected) return fail(kCmd, "running the original model: " + expected.status().to_string());
  auto actual = run_model(*reloaded, *inputs, backend);
  if (!actual) return fail(kCmd, "running the converted model: " + actual.status().to_string());
  if (o.inputs.empty())
    std::printf("compared on %s with seeded random inputs (seed %llu):\n", backend.c_str(),
                static_cast<unsigned long long>(o.seed));
  else
    std::printf("compared on %s with the given inputs:\n", backend.c_str());
  Status s = compare_outputs(original->description(), *expected, *actual);
  if (!s.is_ok()) return fail(kCmd, s.message());
  return 0;
}

}  // namespace

void add_convert_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("convert", "Convert a float32 model to float16 and compare it with the original");
  auto o = std::make_shared<ConvertOptions>();
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("--to", o->to, "Target precision (fp16)")->required();
  cmd->add_option("-o,--output", o->output, "Where to write the converted model")->required();
  cmd->add_flag("--keep-io-types", o->keep_io_types, "Keep float32 graph inputs and outputs (Casts at the boundary)");
  cmd->add_option("--block-op", o->block_ops, "Op type to keep in float32 besides the default list; repeatable");
  cmd->add_option("--input", o->inputs, "NAME=FILE (.npy or TensorProto .pb) for the comparison; repeatable");
  cmd->add_option("--shape", o->shapes, "NAME=DIMS for the comparison's random inputs (symbolic dims default to 1)");
  cmd->add_option("--seed", o->seed, "Seed for the comparison's random inputs (default 0)");
  cmd->add_option("--backend", o->backend, "Backend for the comparison (default: this build's preferred backend)");
  cmd->add_flag("--no-compare", o->no_compare, "Only convert; do not run the two models");
  cmd->callback([o, exit_code] { *exit_code = convert_command(*o); });
}

}  // namespace tandem::cli
