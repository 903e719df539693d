// fuzz_quantizer.cpp: libFuzzer entry point for the quantizer's rewrites (onnx/quantizer.h),
// which take untrusted models apart and put them back together.
//
// Input: one byte of options, then a serialized ModelProto. The byte picks the format (bits
// 0-1), per-channel weights (bit 2), 7-bit weights (bit 3), whether the bias probes round the
// inputs (bit 4) and unquantized outputs (bit 5: qdq's --float-outputs). The steps then run as
// quantize_model runs them, with made-up calibration figures in place of measured ones: plan,
// equalization, bias probes, bias correction, rewrite.
// A crash, a sanitizer report, a leak or a hang is a bug; so is an error message that is not
// one line, and so is a probe model or a quantized model that does not load when the model it
// was made from did (planning loads it first).
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

#include <onnx/onnx_pb.h>

#include "backends/backend.h"
#include "onnx/loader.h"
#include "onnx/quantizer.h"

namespace {

void check_message(const tandem::Status& s, const char* what) {
  const std::string& m = s.message();
  if (m.empty() || m.find('\n') != std::string::npos) {
    std::fprintf(stderr, "%s: error message is empty or not one line: %s\n", what, s.to_string().c_str());
    std::abort();
  }
}

// Serializes `model` and loads it; aborts when it does not load.
void must_load(const onnx::ModelProto& model, const char* what) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) return;  // over 2 GiB: not this fuzzer's concern
  auto loaded = tandem::load_model_from_bytes(bytes, {}, what);
  if (!loaded.is_ok()) {
    std::fprintf(stderr, "%s does not load: %s\n", what, loaded.status().to_string().c_str());
    std::abort();
  }
  tandem::Backend* reference = tandem::find_backend("reference");
  if (!reference) std::abort();
  auto plan = reference->compile(*loaded->graph, {});
  if (!plan.is_ok()) check_message(plan.status(), what);
}

// The number of output channels a node's bias correction takes (its weight's dims), or -1.
int64_t channels_of(const onnx::ModelProto& model, int node) {
  const auto& g = model.graph();
  if (node < 0 || node >= g.node_size() || g.node(node).input_size() < 2) return -1;
  for (const auto& t : g.initializer())
    if (t.name() == g.node(node).input(1) && t.dims_size() >= 2)
      return g.node(node).op_type() == "Conv" ? t.dims(0) : t.dims(1);
  return -1;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  const uint8_t config = data[0];
  onnx::ModelProto model;
  if (!model.ParseFromArray(data + 1, static_cast<int>(size - 1))) return 0;
  tandem::QuantizeOptions options;
  options.format = static_cast<tandem::QuantizeFormat>(config % 3);
  options.per_channel = (config & 4) != 0;
  options.reduce_range = (config & 8) != 0;
  options.quantize_outputs = (config & 32) == 0;

  auto plan = tandem::plan_quantization(model, options);
  if (!plan.is_ok()) {
    check_message(plan.status(), "plan");
    return 0;
  }
  // Equalization with made-up per-channel ranges: wide, narrow and all-zero channels.
  const auto pairs = tandem::equalization_pairs(*plan, options);
  std::map<std::string, std::vector<tandem::ActivationRange>> channel_ranges;
  for (const auto& pair : pairs) {
    if (pair.channels > 4096) continue;
    auto& r = channel_ranges[pair.value];
    for (int64_t c = 0; c < pair.channels; ++c)
      r.push_back(c % 3 == 0 ? tandem::ActivationRange{-4, 8} : c % 3 == 1 ? tandem::ActivationRange{-0.1f, 0.2f}
                                                                            : tandem::ActivationRange{0, 0});
  }
  auto equalized = tandem::with_equalized_channels(*plan, pairs, channel_ranges);
  if (!equalized.is_ok()) {
    check_message(equalized.status(), "equalization");
    return 0;
  }
  std::map<std::string, tandem::ActivationRange> ranges;
  int i = 0;
  for (const auto& name : equalized->activations) ranges[name] = {-1.0f - static_cast<float>(i++ % 3), 2.0f};

  onnx::ModelProto probe_model = equalized->prepared;
  auto probes = tandem::add_bias_probes(*equalized, options, (config & 16) ? &ranges : nullptr, &probe_model);
  if (!probes.is_ok()) {
    check_message(probes.status(), "bias probes");
    return 0;
  }
  must_load(probe_model, "probe model");
  std::map<int, std::vector<float>> shifts;
  for (const auto& p : *probes) {
    const int64_t channels = channels_of(equalized->prepared, p.node);
    if (channels > 0 && channels <= 4096) shifts[p.node] = std::vector<float>(static_cast<size_t>(channels), 0.25f);
  }
  auto corrected = tandem::with_bias_correction(*equalized, shifts);
  if (!corrected.is_ok()) {
    check_message(corrected.status(), "bias correction");
    return 0;
  }
  auto quantized = tandem::apply_quantization(*corrected, options, ranges);
  if (!quantized.is_ok()) {
    check_message(quantized.status(), "rewrite");
    return 0;
  }
  must_load(quantized->model, "quantized model");
  return 0;
}
