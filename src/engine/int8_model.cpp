// quantize_for_int8 (int8_model.h): the dynamic, per-channel rewrite an int8 route compiles.
#include "engine/int8_model.h"

#include "onnx/loader.h"

namespace tandem {

namespace {

std::string io_names(const std::vector<ValueInfo>& list) {
  std::string out;
  for (const ValueInfo& vi : list) out += (out.empty() ? "" : ",") + vi.name;
  return out;
}

}  // namespace

std::string Int8Model::summary() const {
  int64_t quantized = 0;
  std::string by_op;
  for (const auto& [op, n] : report.quantized_nodes) {
    quantized += n;
    by_op += (by_op.empty() ? "" : ", ") + op + " " + std::to_string(n);
  }
  std::string out = "int8: " + std::to_string(quantized) + " node" + (quantized == 1 ? "" : "s") + " quantized";
  if (!by_op.empty()) out += " (" + by_op + ")";
  if (!report.skipped_nodes.empty()) out += ", " + std::to_string(report.skipped_nodes.size()) + " left in float32";
  return out;
}

Result<Int8Model> quantize_for_int8(std::string_view model_bytes, const Graph& float_graph,
                                    const std::filesystem::path& base_dir, const std::string& display_name) {
  const std::string prefix = "int8 quantization: ";
  QuantizeOptions options;
  options.format = QuantizeFormat::dynamic;
  options.per_channel = true;
  auto quantized = quantize_model(model_bytes, options);  // no calibration inputs: nothing runs
  if (!quantized) return quantized.status().with_prefix(prefix);
  Int8Model out;
  out.report = std::move(quantized->report);
  int64_t count = 0;
  for (const auto& [op, n] : out.report.quantized_nodes) count += n;
  if (count == 0) {
    if (out.report.skipped_nodes.empty())
      return unsupported(prefix + "nothing in the model can be quantized (it has no Conv, MatMul or Gemm node)");
    std::string why = out.report.skipped_nodes.front();
    if (out.report.skipped_nodes.size() > 1)
      why += " (and " + std::to_string(out.report.skipped_nodes.size() - 1) + " more)";
    return unsupported(prefix + "nothing in the model can be quantized: " + why);
  }
  auto loaded = load_model_from_bytes(quantized->model_bytes, base_dir, display_name + " (int8)");
  if (!loaded) return loaded.status().with_prefix(prefix);
  // Requests bind to the float32 graph's inputs; the rewrite must keep them, and the outputs.
  const Graph& a = float_graph;
  const Graph& b = *loaded->graph;
  if (io_names(a.inputs) != io_names(b.inputs) || io_names(a.outputs) != io_names(b.outputs))
    return internal_error(prefix + "the rewritten model's inputs or outputs differ from the model's");
  out.model = std::move(loaded).value();
  return out;
}

}  // namespace tandem
