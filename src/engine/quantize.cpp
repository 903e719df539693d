// quantize_model (tandem/quantize.h): calibration and the accuracy report around the ONNX
// quantizer (onnx/quantizer.h). Both run models through the public API (OnnxModel,
// CompiledModel) on the chosen backend.
#include "tandem/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <optional>
#include <set>

#include "engine/calibration_ranges.h"
#include "onnx/onnx_tensor_util.h"
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

// `model` with each of `names` (float values) among its outputs.
onnx::ModelProto with_float_outputs(const onnx::ModelProto& model, const std::vector<std::string>& names) {
  onnx::ModelProto out = model;
  std::set<std::string> outputs;
  for (const auto& vi : out.graph().output()) outputs.insert(vi.name());
  for (const std::string& name : names) {
    if (!outputs.insert(name).second) continue;
    auto* vi = out.mutable_graph()->add_output();
    vi->set_name(name);
    vi->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  }
  return out;
}

// A model that calibration runs over every calibration set, with where each output lies.
struct ProbeModel {
  std::string what;  // names the model in messages: "the calibration model"
  CompiledModel model;
  std::map<std::string, size_t> position;

  Result<std::vector<Value>> run(const QuantizeOptions& options, size_t set) const {
    return run_set(model, options.calibration_inputs[set], set, what);
  }
  // The float32 tensor output `name` of one run's `values`.
  Result<const Tensor*> float_output(const std::vector<Value>& values, const std::string& name) const {
    auto it = position.find(name);
    if (it == position.end() || it->second >= values.size() || !values[it->second].is_tensor() ||
        values[it->second].tensor.dtype() != DataType::float32)
      return internal_error(what + ": output '" + name + "' is not a float32 tensor");
    return &values[it->second].tensor;
  }
};

Result<ProbeModel> compile_probe(const onnx::ModelProto& proto, const std::string& what, const std::string& backend) {
  TANDEM_ASSIGN_OR_RETURN(CompiledModel model, compile_proto(proto, what, backend));
  ProbeModel probe{what, std::move(model), {}};
  for (size_t i = 0; i < probe.model.outputs().size(); ++i) probe.position[probe.model.outputs()[i].name] = i;
  return probe;
}

// QuantizeOptions::equalize: measures the per-channel ranges of the plan's equalization pairs
// on the float model and returns the plan with their channels rescaled (quantizer.h).
Result<QuantizationPlan> equalize(QuantizationPlan plan, const QuantizeOptions& options) {
  const std::vector<EqualizationPair> pairs = equalization_pairs(plan, options);
  if (pairs.empty()) return plan;
  std::vector<std::string> names;
  for (const auto& pair : pairs) names.push_back(pair.value);
  TANDEM_ASSIGN_OR_RETURN(ProbeModel model, compile_probe(with_float_outputs(plan.prepared, names),
                                                          "the equalization model", options.backend));
  std::map<std::string, std::vector<ActivationRange>> ranges;
  for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values, model.run(options, s));
    for (const auto& pair : pairs) {
      TANDEM_ASSIGN_OR_RETURN(const Tensor* t, model.float_output(values, pair.value));
      if (t->rank() < 2 || t->shape()[1] != pair.channels)
        return internal_error("equalization: '" + pair.value + "' does not have " + std::to_string(pair.channels) +
                              " channels");
      auto& r = ranges[pair.value];
      if (r.empty())
        r.assign(static_cast<size_t>(pair.channels), ActivationRange{std::numeric_limits<float>::infinity(),
                                                                      -std::numeric_limits<float>::infinity()});
      int64_t inner = 1;
      for (size_t d = 2; d < t->rank(); ++d) inner *= t->shape()[d];
      const float* x = t->data<float>();
      for (int64_t i = 0; i < t->numel(); ++i) {
        if (!std::isfinite(x[i])) continue;
        ActivationRange& c = r[static_cast<size_t>((i / inner) % pair.channels)];
        c.min = std::min(c.min, x[i]);
        c.max = std::max(c.max, x[i]);
      }
    }
  }
  for (auto& [name, r] : ranges)
    for (auto& c : r)
      if (c.min > c.max) c = ActivationRange{0, 0};  // nothing finite was seen
  return with_equalized_channels(plan, pairs, ranges);
}

// What calibration measures: the activations' ranges, and for bias correction each
// correctable node's mean output shift per channel (quantizer.h), by node index.
struct Calibration {
  std::map<std::string, ActivationRange> ranges;
  std::map<int, std::vector<float>> shifts;
};

// Adds `x` (a probe's output, channels along `axis`, -1: the last) to per-channel sums.
Status add_channel_sums(const Tensor& x, int axis, std::vector<double>* sums, int64_t* count) {
  const int64_t rank = x.rank();
  const int64_t a = axis < 0 ? rank - 1 : axis;
  if (rank < 1 || a >= rank) return internal_error("bias correction: a probe output of rank " + std::to_string(rank));
  const int64_t channels = x.shape()[static_cast<size_t>(a)];
  int64_t inner = 1;
  for (int64_t d = a + 1; d < rank; ++d) inner *= x.shape()[static_cast<size_t>(d)];
  if (sums->empty()) sums->assign(static_cast<size_t>(channels), 0.0);
  if (static_cast<int64_t>(sums->size()) != channels)
    return internal_error("bias correction: a probe output's channels changed between runs");
  const float* v = x.data<float>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) (*sums)[static_cast<size_t>((i / inner) % channels)] += v[i];
  *count += channels > 0 ? n / channels : 0;
  return Status::ok();
}

// Runs the prepared model, with every activation of the plan as an output, over the calibration
// sets, and returns their ranges as options.method chooses them.
Result<std::map<std::string, ActivationRange>> measure_ranges(const QuantizationPlan& plan,
                                                              const QuantizeOptions& options) {
  std::map<std::string, ActivationRange> ranges;
  if (plan.activations.empty()) return ranges;
  TANDEM_ASSIGN_OR_RETURN(ProbeModel model, compile_probe(with_float_outputs(plan.prepared, plan.activations),
                                                          "the calibration model", options.backend));
  // percentile and mse look at every value again once the first pass knows each range.
  const bool percentile = options.method == CalibrationMethod::percentile;
  const bool mse = options.method == CalibrationMethod::mse;
  std::map<std::string, AbsHistogram> abs_histograms;
  std::map<std::string, ValueHistogram> value_histograms;
  for (int pass = 0; pass < (percentile || mse ? 2 : 1); ++pass) {
    for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values, model.run(options, s));
      for (const std::string& name : plan.activations) {
        TANDEM_ASSIGN_OR_RETURN(const Tensor* t, model.float_output(values, name));
        const float* x = t->data<float>();
        const int64_t n = t->numel();
        if (pass == 1) {
          if (percentile) abs_histograms[name].add(x, n);
          if (mse) value_histograms[name].add(x, n);
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
    if (pass != 0) continue;
    for (auto& [name, r] : ranges) {
      if (r.min > r.max) r = ActivationRange{0, 0};  // nothing finite was seen
      if (percentile)
        abs_histograms[name].limit = std::max(std::fabs(static_cast<double>(r.min)), std::fabs(static_cast<double>(r.max)));
      if (mse) {
        value_histograms[name].lo = std::min(0.0, static_cast<double>(r.min));
        value_histograms[name].hi = std::max(0.0, static_cast<double>(r.max));
      }
    }
  }
  for (auto& [name, r] : ranges) {
    if (percentile) {
      const float p = static_cast<float>(abs_histograms[name].percentile(options.percentile));
      r.min = std::max(r.min, -p);
      r.max = std::min(r.max, p);
    }
    if (mse) least_squares_range(value_histograms[name], &r.min, &r.max);
  }
  return ranges;
}

// Bias correction: runs the bias probes over the calibration sets and returns each probe's mean
// per output channel, by node index. `ranges`: the activations' final ranges, with which qdq
// and qoperator round the nodes' inputs (dynamic rounds them per call: weights only).
Result<std::map<int, std::vector<float>>> measure_shifts(const QuantizationPlan& plan, const QuantizeOptions& options,
                                                         const std::map<std::string, ActivationRange>& ranges) {
  std::map<int, std::vector<float>> shifts;
  onnx::ModelProto probe = plan.prepared;
  const bool static_inputs = options.format != QuantizeFormat::dynamic;
  TANDEM_ASSIGN_OR_RETURN(std::vector<BiasProbe> probes,
                          add_bias_probes(plan, options, static_inputs ? &ranges : nullptr, &probe));
  if (probes.empty()) return shifts;
  TANDEM_ASSIGN_OR_RETURN(ProbeModel model, compile_probe(probe, "the bias probe model", options.backend));
  std::vector<std::vector<double>> sums(probes.size());
  std::vector<int64_t> counts(probes.size(), 0);
  for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values, model.run(options, s));
    for (size_t p = 0; p < probes.size(); ++p) {
      TANDEM_ASSIGN_OR_RETURN(const Tensor* t, model.float_output(values, probes[p].output));
      TANDEM_RETURN_IF_ERROR(add_channel_sums(*t, probes[p].channel_axis, &sums[p], &counts[p]));
    }
  }
  for (size_t p = 0; p < probes.size(); ++p) {
    if (counts[p] == 0) continue;
    std::vector<float> mean(sums[p].size());
    bool finite = true;
    for (size_t c = 0; c < mean.size(); ++c) {
      mean[c] = static_cast<float>(sums[p][c] / static_cast<double>(counts[p]));
      finite = finite && std::isfinite(mean[c]);
    }
    if (finite) shifts[probes[p].node] = std::move(mean);  // a non-finite input corrects nothing
  }
  return shifts;
}

// Equalization, ranges and bias shifts, in that order (each measured on the model the previous
// step left). Returns the plan the shifts and ranges belong to.
Result<QuantizationPlan> calibrate(QuantizationPlan plan, const QuantizeOptions& options, Calibration* calibration) {
  if (options.equalize) {
    TANDEM_ASSIGN_OR_RETURN(plan, equalize(std::move(plan), options));
  }
  TANDEM_ASSIGN_OR_RETURN(calibration->ranges, measure_ranges(plan, options));
  if (options.bias_correction) {
    TANDEM_ASSIGN_OR_RETURN(calibration->shifts, measure_shifts(plan, options, calibration->ranges));
  }
  return plan;
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
    int64_t count = 0, positions = 0, agreeing = 0;
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
    acc.name = reference.names[o];
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

std::string format_max_abs(double v) {
  char text[48];
  std::snprintf(text, sizeof text, "%.3g", v);
  return text;
}

// QuantizeOptions::accuracy_target: ranks the plan's nodes by the error each causes when it is
// the only one quantized, then keeps the fewest most sensitive ones in float32 that bring the
// worst max-abs within the target (bisection over the count; keeping all of them is the float
// model, so the search always ends). `full` is the fully quantized candidate.
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
    TANDEM_ASSIGN_OR_RETURN(plan, calibrate(std::move(plan), options, &calibration));
  }
  std::optional<Reference> reference;
  if (!options.calibration_inputs.empty()) {
    TANDEM_ASSIGN_OR_RETURN(CompiledModel model, compile_proto(original, "the float32 model", options.backend));
    reference.emplace();
    for (const auto& out : model.outputs()) reference->names.push_back(out.name);
    TANDEM_ASSIGN_OR_RETURN(reference->runs, run_all(model, options, "the float32 model"));
  }
  TANDEM_ASSIGN_OR_RETURN(Candidate candidate, evaluate(plan, options, calibration, reference ? &*reference : nullptr));
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
