// quantize_model (tandem/quantize.h): calibration and the accuracy report around the ONNX
// quantizer (onnx/quantizer.h). Both run models through the public API (OnnxModel,
// CompiledModel) on the chosen backend.
#include "tandem/quantize.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "onnx/quantizer.h"
#include "tandem/model.h"

namespace tandem {

namespace {

Result<onnx::ModelProto> parse_model(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return invalid_model("the model is larger than a protobuf message may be");
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return invalid_model("not a serialized onnx ModelProto");
  return proto;
}

Result<CompiledModel> compile_proto(const onnx::ModelProto& proto, const std::string& what, const std::string& backend) {
  std::string bytes;
  if (!proto.SerializeToString(&bytes)) return internal_error(what + " cannot be serialized");
  TANDEM_ASSIGN_OR_RETURN(OnnxModel model, OnnxModel::from_bytes(bytes, {}, what));
  CompileSettings settings;
  settings.backend = backend;
  auto compiled = model.compile(settings);
  if (!compiled) return compiled.status().with_prefix(what + ": ");
  return compiled;
}

// Runs `model` on calibration set `index`; the outputs in declared order.
Result<std::vector<Value>> run_set(const CompiledModel& model, const std::map<std::string, Tensor>& set, size_t index,
                                   const std::string& what) {
  std::map<std::string, Value> inputs;
  for (const auto& [name, tensor] : set) inputs[name] = Value::of(tensor);
  auto bound = model.bind(inputs);
  if (!bound) return bound.status().with_prefix("calibration set " + std::to_string(index) + ": ");
  std::vector<Value> outputs;
  Status s = model.run(*bound, &outputs);
  if (!s.is_ok()) return s.with_prefix(what + " on calibration set " + std::to_string(index) + ": ");
  return outputs;
}

// A histogram of |x| over [0, limit] for the percentile method.
struct AbsHistogram {
  static constexpr int kBins = 8192;
  double limit = 0;
  std::vector<int64_t> counts = std::vector<int64_t>(kBins, 0);
  int64_t total = 0;

  void add(const float* x, int64_t n) {
    const double width = limit > 0 ? limit / kBins : 1;
    for (int64_t i = 0; i < n; ++i) {
      if (!std::isfinite(x[i])) continue;
      const int bin = std::min(kBins - 1, static_cast<int>(std::fabs(x[i]) / width));
      ++counts[static_cast<size_t>(bin)];
      ++total;
    }
  }
  // The upper edge of the bin where the cumulative count reaches `percent` of the total.
  double percentile(double percent) const {
    const double wanted = percent / 100.0 * static_cast<double>(total);
    int64_t cumulative = 0;
    for (int b = 0; b < kBins; ++b) {
      cumulative += counts[static_cast<size_t>(b)];
      if (static_cast<double>(cumulative) >= wanted) return limit * (b + 1) / kBins;
    }
    return limit;
  }
};

// Runs the prepared model with every activation of the plan as an output over the calibration
// sets and returns their ranges.
Result<std::map<std::string, ActivationRange>> calibrate(const QuantizationPlan& plan, const QuantizeOptions& options) {
  onnx::ModelProto probe = plan.prepared;
  std::set<std::string> outputs;
  for (const auto& vi : probe.graph().output()) outputs.insert(vi.name());
  for (const std::string& name : plan.activations) {
    if (outputs.count(name)) continue;
    auto* vi = probe.mutable_graph()->add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  TANDEM_ASSIGN_OR_RETURN(CompiledModel model, compile_proto(probe, "the calibration model", options.backend));
  std::map<std::string, size_t> position;
  for (size_t i = 0; i < model.outputs().size(); ++i) position[model.outputs()[i].name] = i;
  std::map<std::string, ActivationRange> ranges;
  std::map<std::string, double> max_abs;
  const bool percentile = options.method == CalibrationMethod::percentile;
  std::map<std::string, AbsHistogram> histograms;
  for (int pass = 0; pass < (percentile ? 2 : 1); ++pass) {
    for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values,
                              run_set(model, options.calibration_inputs[s], s, "the calibration model"));
      for (const std::string& name : plan.activations) {
        const Value& v = values[position.at(name)];
        if (!v.is_tensor() || v.tensor.dtype() != DataType::float32)
          return internal_error("calibration: activation '" + name + "' is not a float32 tensor");
        const float* x = v.tensor.data<float>();
        const int64_t n = v.tensor.numel();
        if (pass == 1) {
          histograms[name].add(x, n);
          continue;
        }
        auto [it, fresh] = ranges.try_emplace(name, ActivationRange{std::numeric_limits<float>::infinity(),
                                                                    -std::numeric_limits<float>::infinity()});
        for (int64_t i = 0; i < n; ++i) {
          if (!std::isfinite(x[i])) continue;
          it->second.min = std::min(it->second.min, x[i]);
          it->second.max = std::max(it->second.max, x[i]);
        }
      }
    }
    if (pass == 0 && percentile)
      for (auto& [name, r] : ranges)
        histograms[name].limit = std::max(std::fabs(static_cast<double>(r.min)), std::fabs(static_cast<double>(r.max)));
  }
  for (auto& [name, r] : ranges) {
    if (r.min > r.max) r = ActivationRange{0, 0};  // nothing finite was seen
    if (!percentile) continue;
    const float p = static_cast<float>(histograms[name].percentile(options.percentile));
    r.min = std::max(r.min, -p);
    r.max = std::min(r.max, p);
  }
  return ranges;
}

// Runs the original and the quantized model on every calibration set and compares outputs.
Result<std::vector<QuantizedOutputAccuracy>> measure_accuracy(const onnx::ModelProto& original,
                                                              const onnx::ModelProto& quantized,
                                                              const QuantizeOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(CompiledModel reference, compile_proto(original, "the float32 model", options.backend));
  TANDEM_ASSIGN_OR_RETURN(CompiledModel candidate, compile_proto(quantized, "the quantized model", options.backend));
  struct Sums {
    double max_abs = 0, squares = 0;
    int64_t count = 0, positions = 0, agreeing = 0;
    bool scores = false, used = false;
  };
  std::vector<Sums> sums(reference.outputs().size());
  for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
    TANDEM_ASSIGN_OR_RETURN(auto expected, run_set(reference, options.calibration_inputs[s], s, "the float32 model"));
    TANDEM_ASSIGN_OR_RETURN(auto actual, run_set(candidate, options.calibration_inputs[s], s, "the quantized model"));
    for (size_t o = 0; o < sums.size() && o < expected.size() && o < actual.size(); ++o) {
      const Value& e = expected[o];
      const Value& a = actual[o];
      if (!e.is_tensor() || !a.is_tensor() || e.tensor.dtype() != DataType::float32) continue;
      const std::string& name = reference.outputs()[o].name;
      if (a.tensor.dtype() != DataType::float32 || a.tensor.shape() != e.tensor.shape())
        return internal_error("output '" + name + "' of the quantized model has another type or shape than the float32 model's");
      Sums& sum = sums[o];
      sum.used = true;
      const float* ev = e.tensor.data<float>();
      const float* av = a.tensor.data<float>();
      const int64_t n = e.tensor.numel();
      for (int64_t i = 0; i < n; ++i) {
        const double d = std::fabs(static_cast<double>(av[i]) - static_cast<double>(ev[i]));
        sum.max_abs = std::max(sum.max_abs, std::isnan(d) ? std::numeric_limits<double>::infinity() : d);
        sum.squares += d * d;
      }
      sum.count += n;
      const int64_t classes = e.tensor.rank() > 0 ? e.tensor.shape().back() : 0;
      if (classes <= 1) continue;
      sum.scores = true;
      for (int64_t p = 0; p < n / classes; ++p) {
        const float* er = ev + p * classes;
        const float* ar = av + p * classes;
        sum.agreeing += std::max_element(er, er + classes) - er == std::max_element(ar, ar + classes) - ar;
        ++sum.positions;
      }
    }
  }
  std::vector<QuantizedOutputAccuracy> report;
  for (size_t o = 0; o < sums.size(); ++o) {
    if (!sums[o].used) continue;
    QuantizedOutputAccuracy acc;
    acc.name = reference.outputs()[o].name;
    acc.max_abs = sums[o].max_abs;
    acc.rmse = sums[o].count ? std::sqrt(sums[o].squares / static_cast<double>(sums[o].count)) : 0;
    if (sums[o].scores && sums[o].positions > 0) {
      acc.positions = sums[o].positions;
      acc.argmax_agreement = 100.0 * static_cast<double>(sums[o].agreeing) / static_cast<double>(sums[o].positions);
    }
    report.push_back(acc);
  }
  return report;
}

}  // namespace

Result<QuantizedModel> quantize_model(std::string_view model_bytes, const QuantizeOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(onnx::ModelProto original, parse_model(model_bytes));
  if (options.calibration_inputs.empty() && options.format != QuantizeFormat::dynamic)
    return invalid_argument("qdq and qoperator quantization need calibration inputs");
  TANDEM_ASSIGN_OR_RETURN(QuantizationPlan plan, plan_quantization(original, options));
  std::map<std::string, ActivationRange> ranges;
  if (!plan.activations.empty()) {
    TANDEM_ASSIGN_OR_RETURN(ranges, calibrate(plan, options));
  }
  TANDEM_ASSIGN_OR_RETURN(Quantization quantized, apply_quantization(plan, options, ranges));
  QuantizedModel out;
  out.report = std::move(quantized.report);
  out.report.calibrated_values = static_cast<int64_t>(ranges.size());
  out.report.calibration_runs = static_cast<int64_t>(options.calibration_inputs.size());
  if (!quantized.model.SerializeToString(&out.model_bytes)) return internal_error("the quantized model cannot be serialized");
  if (!options.calibration_inputs.empty()) {
    TANDEM_ASSIGN_OR_RETURN(out.report.accuracy, measure_accuracy(original, quantized.model, options));
  }
  return out;
}

}  // namespace tandem
