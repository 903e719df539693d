// `tandem quantize`: rewrite a float32 model with 8-bit Conv/MatMul/Gemm (see
// tandem/quantize.h), calibrated on .npy files or seeded random inputs, write it and print how
// close it stays to the float32 model.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "cli_util.h"
#include "commands.h"
#include "tandem/backend_info.h"
#include "tandem/model.h"
#include "tandem/quantize.h"
#include "tandem/tensor_io.h"

namespace tandem::cli {

namespace {

namespace fs = std::filesystem;

const std::string kCmd = "quantize";

struct QuantizeCliOptions {
  std::string model;
  std::string output;
  std::string format = "qdq";
  bool per_channel = false;
  bool reduce_range = false;
  bool no_bias_correction = false;
  std::string bias_correction = "sequential";
  bool no_equalization = false;
  bool float_outputs = false;
  std::string method = "minmax";
  double percentile = 99.99;
  std::string calibration_dir;
  int calibration_random = 0;
  uint64_t seed = 0;
  std::vector<std::string> shapes;
  std::vector<std::string> exclude_ops;
  std::vector<std::string> exclude_nodes;
  double accuracy_target = 0;
  std::string backend;
};

Result<std::string> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return invalid_argument(path + ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool is_tensor_file(const fs::path& p) { return p.extension() == ".npy" || p.extension() == ".pb"; }

// One calibration set: every .npy (or .pb) file of `dir`, named after the input it feeds.
Result<std::map<std::string, Tensor>> read_set(const fs::path& dir, const ModelDescription& model) {
  std::map<std::string, Tensor> set;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_regular_file() || !is_tensor_file(entry.path())) continue;
    const std::string name = entry.path().stem().string();
    const bool known = std::any_of(model.inputs.begin(), model.inputs.end(), [&](const IoInfo& in) { return in.name == name; });
    if (!known) return invalid_argument(entry.path().string() + ": the model has no input '" + name + "'");
    auto t = read_tensor_file(entry.path());
    if (!t) return t.status();
    set[name] = std::move(t).value();
  }
  if (ec) return invalid_argument(dir.string() + ": " + ec.message());
  if (set.empty()) return invalid_argument(dir.string() + ": no .npy files");
  return set;
}

// DIR/<input>.npy is one set; DIR/<set>/<input>.npy (folders in name order) are several.
Result<std::vector<std::map<std::string, Tensor>>> read_calibration_dir(const std::string& dir,
                                                                         const ModelDescription& model) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return invalid_argument("--calibration " + dir + ": not a folder");
  std::vector<fs::path> folders;
  bool has_files = false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (entry.is_directory()) folders.push_back(entry.path());
    else if (is_tensor_file(entry.path())) has_files = true;
  }
  if (has_files && !folders.empty())
    return invalid_argument("--calibration " + dir + ": holds both tensor files and folders; use one layout");
  std::sort(folders.begin(), folders.end());
  std::vector<std::map<std::string, Tensor>> sets;
  if (folders.empty()) folders.push_back(dir);
  for (const auto& folder : folders) {
    TANDEM_ASSIGN_OR_RETURN(auto set, read_set(folder, model));
    sets.push_back(std::move(set));
  }
  return sets;
}

// `count` sets of seeded random inputs (floats uniform in [0, 1)).
Result<std::vector<std::map<std::string, Tensor>>> random_sets(int count, uint64_t seed, const ModelDescription& model,
                                                                const std::map<std::string, Shape>& shapes) {
  std::vector<std::map<std::string, Tensor>> sets;
  for (int s = 0; s < count; ++s) {
    std::map<std::string, Tensor> set;
    for (const IoInfo& in : model.inputs) {
      if (!in.required) continue;
      if (in.kind != "tensor") return invalid_argument("cannot make random values for non-tensor input '" + in.name + "'");
      auto it = shapes.find(in.name);
      TANDEM_ASSIGN_OR_RETURN(Shape shape, concrete_shape(in, it == shapes.end() ? nullptr : &it->second));
      TANDEM_ASSIGN_OR_RETURN(Tensor t, random_tensor(in.dtype, shape, seed++));
      set[in.name] = std::move(t);
    }
    sets.push_back(std::move(set));
  }
  return sets;
}

void print_report(const QuantizeReport& r, BiasCorrection bias_correction, size_t bytes_before, size_t bytes_after) {
  std::printf("opset: %lld -> %lld\n", static_cast<long long>(r.opset_before), static_cast<long long>(r.opset_after));
  std::string quantized;
  for (const auto& [op, count] : r.quantized_nodes)
    quantized += (quantized.empty() ? "" : ", ") + std::to_string(count) + " " + op;
  if (r.folded_batch_norms > 0)
    std::printf("folded into the Conv before them: %lld BatchNormalization\n", static_cast<long long>(r.folded_batch_norms));
  std::printf("quantized: %s; int8 weights: %lld, calibrated activations: %lld, nodes added: %lld\n",
              quantized.empty() ? "nothing" : quantized.c_str(), static_cast<long long>(r.quantized_weights),
              static_cast<long long>(r.calibrated_values), static_cast<long long>(r.inserted_nodes));
  if (r.equalized_values > 0)
    std::printf("equalized: %lld activations (channels rescaled to one range between a Conv and the depthwise Conv reading it)\n",
                static_cast<long long>(r.equalized_values));
  if (r.bias_corrected_nodes > 0)
    std::printf("bias correction: %lld nodes (%s)\n", static_cast<long long>(r.bias_corrected_nodes),
                bias_correction == BiasCorrection::sequential
                    ? "sequential: each node's mean shift on the quantized model, given the nodes before it, taken out of its bias"
                    : "local: the mean shift each node's own rounding causes on the calibration inputs taken out of its bias");
  if (!r.kept_for_accuracy.empty()) {
    std::printf("accuracy target: all quantized, max-abs %.6g on the calibration inputs; kept float32 the %zu most sensitive nodes:\n",
                r.max_abs_all_quantized, r.kept_for_accuracy.size());
    for (const auto& line : r.kept_for_accuracy) std::printf("  %s\n", line.c_str());
  }
  if (!r.skipped_nodes.empty()) {
    std::printf("kept float32: %zu nodes\n", r.skipped_nodes.size());
    for (const auto& line : r.skipped_nodes) std::printf("  %s\n", line.c_str());
  }
  std::printf("size: %zu -> %zu bytes (%.1f%%)\n", bytes_before, bytes_after,
              100.0 * static_cast<double>(bytes_after) / static_cast<double>(std::max<size_t>(bytes_before, 1)));
  if (r.accuracy.empty()) return;
  std::printf("against the float32 model on %lld calibration runs:\n", static_cast<long long>(r.calibration_runs));
  for (const auto& a : r.accuracy) {
    if (a.runs == 0) {
      std::printf("  output %s: its shape differs from the float32 model's in every run; not compared\n", a.name.c_str());
      continue;
    }
    std::printf("  output %s: max-abs %.6g, rmse %.6g", a.name.c_str(), a.max_abs, a.rmse);
    if (a.argmax_agreement >= 0)
      std::printf(", argmax agreement %.2f%% of %lld positions", a.argmax_agreement, static_cast<long long>(a.positions));
    if (a.shape_mismatches > 0)
      std::printf(" (%lld of %lld runs compared: in the others its shape differs from the float32 model's)",
                  static_cast<long long>(a.runs), static_cast<long long>(a.runs + a.shape_mismatches));
    std::printf("\n");
  }
}

int quantize_command(const QuantizeCliOptions& o) {
  QuantizeOptions options;
  if (o.format == "qdq") options.format = QuantizeFormat::qdq;
  else if (o.format == "qoperator") options.format = QuantizeFormat::qoperator;
  else if (o.format == "dynamic") options.format = QuantizeFormat::dynamic;
  else return fail(kCmd, "unknown --format '" + o.format + "' (qdq, qoperator, dynamic)", 2);
  if (o.method == "minmax") options.method = CalibrationMethod::minmax;
  else if (o.method == "percentile") options.method = CalibrationMethod::percentile;
  else if (o.method == "mse") options.method = CalibrationMethod::mse;
  else return fail(kCmd, "unknown --method '" + o.method + "' (minmax, percentile, mse)", 2);
  if (!(o.percentile > 0 && o.percentile <= 100)) return fail(kCmd, "--percentile must be in (0, 100]", 2);
  if (o.calibration_random < 0) return fail(kCmd, "--calibration-random must be positive", 2);
  if (!o.calibration_dir.empty() && o.calibration_random > 0)
    return fail(kCmd, "give --calibration or --calibration-random, not both", 2);
  if (o.calibration_dir.empty() && o.calibration_random == 0 && options.format != QuantizeFormat::dynamic)
    return fail(kCmd, "--format " + o.format + " needs calibration data: give --calibration DIR or --calibration-random N", 2);
  options.per_channel = o.per_channel;
  options.reduce_range = o.reduce_range;
  if (o.bias_correction == "sequential") options.bias_correction = BiasCorrection::sequential;
  else if (o.bias_correction == "local") options.bias_correction = BiasCorrection::local;
  else if (o.bias_correction == "off") options.bias_correction = BiasCorrection::off;
  else return fail(kCmd, "unknown --bias-correction '" + o.bias_correction + "' (sequential, local, off)", 2);
  if (o.no_bias_correction) options.bias_correction = BiasCorrection::off;
  options.equalize = !o.no_equalization;
  options.quantize_outputs = !o.float_outputs;
  if (o.float_outputs && options.format != QuantizeFormat::qdq)
    return fail(kCmd, "--float-outputs applies to --format qdq only", 2);
  options.percentile = o.percentile;
  options.exclude_ops = o.exclude_ops;
  options.exclude_nodes = o.exclude_nodes;
  if (!(o.accuracy_target >= 0 && std::isfinite(o.accuracy_target)))
    return fail(kCmd, "--accuracy-target must be a max-abs >= 0", 2);
  if (o.accuracy_target > 0 && o.calibration_dir.empty() && o.calibration_random == 0)
    return fail(kCmd, "--accuracy-target needs calibration data: give --calibration DIR or --calibration-random N", 2);
  options.accuracy_target = o.accuracy_target;
  options.backend = o.backend.empty() ? list_backends().front().name : o.backend;
  const auto backends = list_backends();
  if (std::none_of(backends.begin(), backends.end(), [&](const BackendInfo& b) { return b.name == options.backend; }))
    return fail(kCmd, "unknown backend '" + options.backend + "'", 2);
  auto shapes = parse_shapes(o.shapes);
  if (!shapes) return fail(kCmd, shapes.status().message(), 2);

  auto model = OnnxModel::load(o.model);  // one-line errors for missing or malformed files
  if (!model) return fail(kCmd, model.status().message());
  for (const auto& [name, s] : *shapes) {
    const auto& inputs = model->description().inputs;
    if (std::none_of(inputs.begin(), inputs.end(), [&](const IoInfo& in) { return in.name == name; }))
      return fail(kCmd, "--shape names unknown input '" + name + "'", 2);
  }
  auto bytes = read_bytes(o.model);
  if (!bytes) return fail(kCmd, bytes.status().message());
  auto sets = o.calibration_dir.empty() ? random_sets(o.calibration_random, o.seed, model->description(), *shapes)
                                        : read_calibration_dir(o.calibration_dir, model->description());
  if (!sets) return fail(kCmd, sets.status().message(), 2);
  options.calibration_inputs = std::move(sets).value();

  auto quantized = quantize_model(*bytes, options);
  if (!quantized) return fail(kCmd, o.model + ": " + quantized.status().message());
  {
    std::ofstream out(o.output, std::ios::binary | std::ios::trunc);
    out.write(quantized->model_bytes.data(), static_cast<std::streamsize>(quantized->model_bytes.size()));
    if (!out) return fail(kCmd, o.output + ": cannot write");
  }
  std::printf("wrote %s (%s%s%s, %s)\n", o.output.c_str(), o.format.c_str(), o.per_channel ? ", per-channel" : "",
              o.reduce_range ? ", 7-bit weights" : "",
              options.format == QuantizeFormat::dynamic ? "activations quantized at run time"
                                                        : (o.method + " calibration on " + options.backend).c_str());
  print_report(quantized->report, options.bias_correction, bytes->size(), quantized->model_bytes.size());
  return 0;
}

}  // namespace

void add_quantize_command(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("quantize", "Quantize a float32 model's Conv, MatMul and Gemm to 8 bits");
  auto o = std::make_shared<QuantizeCliOptions>();
  cmd->add_option("model", o->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", o->output, "Where to write the quantized model")->required();
  cmd->add_option("--format", o->format, "qdq (default), qoperator or dynamic");
  cmd->add_flag("--per-channel", o->per_channel, "One weight scale per output channel");
  cmd->add_flag("--reduce-range", o->reduce_range,
                "7-bit weights ([-63, 63]): exact on the fast int8 kernels of CPUs without VNNI (AVX2)");
  cmd->add_option("--bias-correction", o->bias_correction,
                  "Take rounding's mean shift per channel out of the biases: sequential (default; each node measured on the "
                  "quantized model, one pass per node), local (each node's own rounding, one pass) or off");
  cmd->add_flag("--no-bias-correction", o->no_bias_correction, "The same as --bias-correction off");
  cmd->add_flag("--no-equalization", o->no_equalization,
                "Keep the channels of Conv -> depthwise Conv values as they are (default: rescale them to one range, "
                "with --per-channel)");
  cmd->add_flag("--float-outputs", o->float_outputs,
                "qdq: quantize a Conv/MatMul output only where another quantized node reads it (more accurate; ONNX "
                "Runtime then runs those nodes in float32, tandem in 8 bits with a float tail)");
  cmd->add_option("--method", o->method, "Calibration: minmax (default), percentile or mse");
  cmd->add_option("--percentile", o->percentile, "The percentile of |x| for --method percentile (default 99.99)");
  cmd->add_option("--calibration", o->calibration_dir,
                  "Folder of NAME.npy input files (one run) or of folders of them (one run each)");
  cmd->add_option("--calibration-random", o->calibration_random, "Calibrate on N runs of seeded random inputs");
  cmd->add_option("--seed", o->seed, "Seed for --calibration-random (default 0)");
  cmd->add_option("--shape", o->shapes, "NAME=DIMS for random inputs of inputs with symbolic dims");
  cmd->add_option("--exclude-op", o->exclude_ops, "Op type to keep in float32; repeatable");
  cmd->add_option("--exclude-node", o->exclude_nodes, "Node name to keep in float32; repeatable");
  cmd->add_option("--accuracy-target", o->accuracy_target,
                  "Keep the most sensitive nodes in float32 until every output's max-abs on the calibration inputs "
                  "is within this (default 0: off)");
  cmd->add_option("--backend", o->backend, "Backend for calibration and the report (default: this build's preferred)");
  cmd->callback([o, exit_code] { *exit_code = quantize_command(*o); });
}

}  // namespace tandem::cli
