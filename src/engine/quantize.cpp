// quantize_model (tandem/quantize.h): the ONNX quantizer (onnx/quantizer.h) between calibration
// (quantize_calibration.h) and the accuracy report, and the search for an accuracy target. Both
// run models through the public API (OnnxModel, CompiledModel) on the chosen backend.
#include "tandem/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>

#include "engine/quantize_calibration.h"
#include "onnx/onnx_tensor_util.h"
#include "onnx/quantizer.h"
#include "tandem/model.h"

namespace tandem {

namespace {

using quantize_internal::Calibration;
using quantize_internal::compile_proto;
using quantize_internal::run_set;

Result<onnx::ModelProto> parse_model(std::string_view bytes) {
  if (bytes.size() > static_cast<size_t>(std::numeric_limits<int>::max()))
    return invalid_model("the model is larger than a protobuf message may be");
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())))
    return invalid_model("not a serialized onnx ModelProto");
  return proto;
}

// Every calibration set's outputs of `model`.
using Runs = std::vector<std::vector<Value>>;
Result<Runs> run_all(const CompiledModel& model, const QuantizeOptions& options, const std::string& what) {
  Runs runs;
  for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
    TANDEM_ASSIGN_OR_RETURN(auto outputs, run_set(model, options.calibration_inputs[s], s, what));
    runs.push_back(std::move(outputs));
  }
  return runs;
}

// The float32 model's outputs on the calibration inputs, which every candidate is compared with.
struct Reference {
  std::vector<std::string> names;
  Runs runs;
};

// Runs `quantized` on every calibration set and compares its outputs with the reference's.
Result<std::vector<QuantizedOutputAccuracy>> measure_accuracy(const Reference& reference,
                                                              const onnx::ModelProto& quantized,
                                                              const QuantizeOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(CompiledModel candidate, compile_proto(quantized, "the quantized model", options.backend));
  TANDEM_ASSIGN_OR_RETURN(Runs actual_runs, run_all(candidate, options, "the quantized model"));
  struct Sums {
    double max_abs = 0, squares = 0;
    int64_t count = 0, positions = 0, agreeing = 0, runs = 0, shape_mismatches = 0;
    bool scores = false, used = false;
  };
  std::vector<Sums> sums(reference.names.size());
  for (size_t s = 0; s < reference.runs.size() && s < actual_runs.size(); ++s) {
    const auto& expected = reference.runs[s];
    const auto& actual = actual_runs[s];
    for (size_t o = 0; o < sums.size() && o < expected.size() && o < actual.size(); ++o) {
      const Value& e = expected[o];
      const Value& a = actual[o];
      if (!e.is_tensor() || !a.is_tensor() || e.tensor.dtype() != DataType::float32) continue;
      const std::string& name = reference.names[o];
      if (a.tensor.dtype() != DataType::float32)
        return internal_error("output '" + name + "' of the quantized model has another type than the float32 model's");
      Sums& sum = sums[o];
      sum.used = true;
      // A shape that depends on the values (the boxes a NonMaxSuppression keeps) may differ.
      if (a.tensor.shape() != e.tensor.shape()) {
        ++sum.shape_mismatches;
        continue;
      }
      ++sum.runs;
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
    acc.name = reference.names[o];
    acc.max_abs = sums[o].max_abs;
    acc.rmse = sums[o].count ? std::sqrt(sums[o].squares / static_cast<double>(sums[o].count)) : 0;
    acc.runs = sums[o].runs;
    acc.shape_mismatches = sums[o].shape_mismatches;
    if (sums[o].scores && sums[o].positions > 0) {
      acc.positions = sums[o].positions;
      acc.argmax_agreement = 100.0 * static_cast<double>(sums[o].agreeing) / static_cast<double>(sums[o].positions);
    }
    report.push_back(acc);
  }
  return report;
}

// The largest max-abs over the outputs, and the sum of their RMSEs (to break ties).
struct Error {
  double max_abs = 0, rmse = 0;
};
Error worst(const std::vector<QuantizedOutputAccuracy>& accuracy) {
  Error e;
  for (const auto& a : accuracy) {
    e.max_abs = std::max(e.max_abs, a.max_abs);
    e.rmse += a.rmse;
  }
  return e;
}

struct Candidate {
  Quantization quantized;
  std::vector<QuantizedOutputAccuracy> accuracy;
};

// Quantizes `plan` (its biases corrected for its own nodes) and, with a reference, measures it.
Result<Candidate> evaluate(const QuantizationPlan& plan, const QuantizeOptions& options, const Calibration& calibration,
                           const Reference* reference) {
  Candidate c;
  TANDEM_ASSIGN_OR_RETURN(QuantizationPlan corrected, with_bias_correction(plan, calibration.shifts));
  TANDEM_ASSIGN_OR_RETURN(c.quantized, apply_quantization(corrected, options, calibration.ranges));
  if (reference) {
    TANDEM_ASSIGN_OR_RETURN(c.accuracy, measure_accuracy(*reference, c.quantized.model, options));
  }
  return c;
}

// evaluate(), with the shifts of BiasCorrection::sequential measured on `plan` first (the
// calibration's local shifts otherwise).
Result<Candidate> evaluate_final(const QuantizationPlan& plan, const QuantizeOptions& options,
                                 const Calibration& calibration, const Reference* reference) {
  if (options.bias_correction != BiasCorrection::sequential) return evaluate(plan, options, calibration, reference);
  Calibration refined;
  refined.ranges = calibration.ranges;
  TANDEM_ASSIGN_OR_RETURN(refined.shifts, quantize_internal::sequential_shifts(plan, options, calibration));
  return evaluate(plan, options, refined, reference);
}

std::string format_max_abs(double v) {
  char text[48];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

// QuantizeOptions::accuracy_target: ranks the plan's nodes by the error each causes when it is
// the only one quantized, then keeps the fewest most sensitive ones in float32 that bring the
// worst max-abs within the target (bisection over the count; keeping all of them is the float
// model, so the search always ends). `full` is the fully quantized candidate. The search
// compares candidates with local bias shifts (which hold for any subset of quantized nodes);
// with BiasCorrection::sequential the one it ends with is then corrected sequentially, and
// kept so when that does not raise its worst max-abs (the search's measure).
Result<Candidate> meet_accuracy_target(const QuantizationPlan& plan, const QuantizeOptions& options,
                                       const Calibration& calibration, const Reference& reference,
                                       Candidate full) {
  const size_t count = plan.nodes.size();
  const double all_quantized = worst(full.accuracy).max_abs;
  if (!(all_quantized > options.accuracy_target) || count == 0) {
    full.quantized.report.max_abs_all_quantized = all_quantized;
    return full;
  }
  std::vector<Error> alone(count);
  for (size_t k = 0; k < count; ++k) {
    std::map<size_t, std::string> others;
    for (size_t j = 0; j < count; ++j)
      if (j != k) others[j] = "";
    TANDEM_ASSIGN_OR_RETURN(Candidate c, evaluate(without_nodes(plan, others), options, calibration, &reference));
    alone[k] = worst(c.accuracy);
  }
  std::vector<size_t> order(count);
  for (size_t k = 0; k < count; ++k) order[k] = k;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (alone[a].max_abs != alone[b].max_abs) return alone[a].max_abs > alone[b].max_abs;
    return alone[a].rmse > alone[b].rmse;
  });
  auto keep_first = [&](size_t kept) {
    std::map<size_t, std::string> drop;
    for (size_t i = 0; i < kept; ++i)
      drop[order[i]] = "kept float32 for the accuracy target: quantized alone it moves the outputs by max-abs " +
                       format_max_abs(alone[order[i]].max_abs) + " on the calibration inputs";
    return without_nodes(plan, drop);
  };
  size_t lo = 1, hi = count;  // keeping all `count` nodes meets the target (the float model)
  std::optional<Candidate> best;
  size_t best_kept = count;
  while (lo < hi) {
    const size_t mid = lo + (hi - lo) / 2;
    TANDEM_ASSIGN_OR_RETURN(Candidate c, evaluate(keep_first(mid), options, calibration, &reference));
    if (worst(c.accuracy).max_abs <= options.accuracy_target) {
      hi = mid;
      best = std::move(c);
      best_kept = mid;
    } else {
      lo = mid + 1;
    }
  }
  if (!best || best_kept != lo) {
    TANDEM_ASSIGN_OR_RETURN(Candidate c, evaluate(keep_first(lo), options, calibration, &reference));
    best = std::move(c);
    best_kept = lo;
  }
  if (options.bias_correction == BiasCorrection::sequential) {
    TANDEM_ASSIGN_OR_RETURN(Candidate c, evaluate_final(keep_first(best_kept), options, calibration, &reference));
    if (worst(c.accuracy).max_abs <= worst(best->accuracy).max_abs) best = std::move(c);
  }
  QuantizeReport& report = best->quantized.report;
  report.max_abs_all_quantized = all_quantized;
  for (size_t i = 0; i < best_kept; ++i) {
    const auto& n = plan.prepared.graph().node(plan.nodes[order[i]]);
    report.kept_for_accuracy.push_back(onnx_util::node_label(n, plan.nodes[order[i]]) + " max-abs " +
                                       format_max_abs(alone[order[i]].max_abs) + " when quantized alone");
  }
  return std::move(*best);
}

}  // namespace

Result<QuantizedModel> quantize_model(std::string_view model_bytes, const QuantizeOptions& options) {
  TANDEM_ASSIGN_OR_RETURN(onnx::ModelProto original, parse_model(model_bytes));
  if (options.calibration_inputs.empty() && options.format != QuantizeFormat::dynamic)
    return invalid_argument("qdq and qoperator quantization need calibration inputs");
  if (options.accuracy_target < 0 || !std::isfinite(options.accuracy_target))
    return invalid_argument("the accuracy target must be a finite max-abs >= 0");
  if (options.accuracy_target > 0 && options.calibration_inputs.empty())
    return invalid_argument("an accuracy target needs calibration inputs to measure the error on");
  TANDEM_ASSIGN_OR_RETURN(QuantizationPlan plan, plan_quantization(original, options));
  Calibration calibration;
  if (!options.calibration_inputs.empty()) {
    TANDEM_ASSIGN_OR_RETURN(plan, quantize_internal::calibrate(std::move(plan), options, &calibration));
  }
  std::optional<Reference> reference;
  if (!options.calibration_inputs.empty()) {
    TANDEM_ASSIGN_OR_RETURN(CompiledModel model, compile_proto(original, "the float32 model", options.backend));
    reference.emplace();
    for (const auto& out : model.outputs()) reference->names.push_back(out.name);
    TANDEM_ASSIGN_OR_RETURN(reference->runs, run_all(model, options, "the float32 model"));
  }
  TANDEM_ASSIGN_OR_RETURN(Candidate candidate,
                          evaluate_final(plan, options, calibration, reference ? &*reference : nullptr));
  if (options.accuracy_target > 0) {
    TANDEM_ASSIGN_OR_RETURN(candidate, meet_accuracy_target(plan, options, calibration, *reference, std::move(candidate)));
  }
  QuantizedModel out;
  out.report = std::move(candidate.quantized.report);
  out.report.calibrated_values = static_cast<int64_t>(calibration.ranges.size());
  out.report.calibration_runs = static_cast<int64_t>(options.calibration_inputs.size());
  out.report.accuracy = std::move(candidate.accuracy);
  if (!candidate.quantized.model.SerializeToString(&out.model_bytes))
    return internal_error("the quantized model cannot be serialized");
  return out;
}

}  // namespace tandem
