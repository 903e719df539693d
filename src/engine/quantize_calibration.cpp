// The passes over the calibration inputs behind quantize_model (quantize_calibration.h).
#include "engine/quantize_calibration.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <set>

#include "engine/calibration_ranges.h"
#include "onnx/onnx_tensor_util.h"

namespace tandem::quantize_internal {

Result<CompiledModel> compile_proto(const onnx::ModelProto& proto, const std::string& what,
                                    const std::string& backend) {
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

namespace {

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
        r.assign(static_cast<size_t>(pair.channels),
                 ActivationRange{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()});
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
        auto [it, fresh] = ranges.try_emplace(
            name, ActivationRange{std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()});
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
        abs_histograms[name].limit =
            std::max(std::fabs(static_cast<double>(r.min)), std::fabs(static_cast<double>(r.max)));
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

}  // namespace

// Equalization, ranges and bias shifts, in that order (each measured on the model the previous
// step left). Returns the plan the shifts and ranges belong to.
Result<QuantizationPlan> calibrate(QuantizationPlan plan, const QuantizeOptions& options, Calibration* calibration) {
  if (options.equalize) {
    TANDEM_ASSIGN_OR_RETURN(plan, equalize(std::move(plan), options));
  }
  TANDEM_ASSIGN_OR_RETURN(calibration->ranges, measure_ranges(plan, options));
  if (options.bias_correction != BiasCorrection::off) {
    TANDEM_ASSIGN_OR_RETURN(calibration->shifts, measure_shifts(plan, options, calibration->ranges));
  }
  return plan;
}

// The mean per channel is what moves: sum(quantized) - sum(float) over the same values, added
// to the node's shift (which with_bias_correction subtracts from its bias).
Result<std::map<int, std::vector<float>>> sequential_shifts(const QuantizationPlan& plan,
                                                            const QuantizeOptions& options,
                                                            const Calibration& calibration) {
  std::map<int, std::vector<float>> shifts = calibration.shifts;
  const std::vector<CorrectedOutput> outputs = corrected_outputs(plan);
  if (outputs.empty() || options.calibration_inputs.empty()) return shifts;
  // The float plan's mean per channel of every corrected output.
  std::vector<std::string> names;
  for (const auto& o : outputs) names.push_back(o.output);
  std::vector<std::vector<double>> float_sums(outputs.size());
  std::vector<int64_t> float_counts(outputs.size(), 0);
  {
    TANDEM_ASSIGN_OR_RETURN(ProbeModel model, compile_probe(with_float_outputs(plan.prepared, names),
                                                            "the bias correction's float model", options.backend));
    for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values, model.run(options, s));
      for (size_t k = 0; k < outputs.size(); ++k) {
        TANDEM_ASSIGN_OR_RETURN(const Tensor* t, model.float_output(values, outputs[k].output));
        TANDEM_RETURN_IF_ERROR(add_channel_sums(*t, outputs[k].channel_axis, &float_sums[k], &float_counts[k]));
      }
    }
  }
  QuantizeOptions measured = options;
  if (measured.format == QuantizeFormat::qoperator) measured.format = QuantizeFormat::qdq;
  for (size_t k = 0; k < outputs.size(); ++k) {
    const CorrectedOutput& o = outputs[k];
    if (float_counts[k] == 0) continue;
    TANDEM_ASSIGN_OR_RETURN(QuantizationPlan corrected, with_bias_correction(plan, shifts));
    TANDEM_ASSIGN_OR_RETURN(Quantization quantized, apply_quantization(corrected, measured, calibration.ranges));
    onnx::GraphProto& g = *quantized.model.mutable_graph();
    const bool produced = std::any_of(g.node().begin(), g.node().end(), [&](const onnx::NodeProto& n) {
      return std::find(n.output().begin(), n.output().end(), o.output) != n.output().end();
    });
    if (!produced) continue;  // the rewrite renamed it: the local shift stands
    // Only what this node's output needs: the pass costs what the model up to it costs.
    onnx_util::keep_only_outputs(g, {{o.output, onnx::TensorProto::FLOAT}});
    TANDEM_ASSIGN_OR_RETURN(ProbeModel model,
                            compile_probe(quantized.model,
                                          "the bias correction's quantized model for " +
                                              onnx_util::node_label(plan.prepared.graph().node(o.node), o.node),
                                          options.backend));
    std::vector<double> sums;
    int64_t count = 0;
    for (size_t s = 0; s < options.calibration_inputs.size(); ++s) {
      TANDEM_ASSIGN_OR_RETURN(std::vector<Value> values, model.run(options, s));
      TANDEM_ASSIGN_OR_RETURN(const Tensor* t, model.float_output(values, o.output));
      TANDEM_RETURN_IF_ERROR(add_channel_sums(*t, o.channel_axis, &sums, &count));
    }
    if (count != float_counts[k] || sums.size() != float_sums[k].size()) continue;
    std::vector<float> shift = shifts.count(o.node) ? shifts[o.node] : std::vector<float>(sums.size(), 0.0f);
    if (shift.size() != sums.size()) continue;
    bool finite = true;
    for (size_t c = 0; c < sums.size(); ++c) {
      shift[c] += static_cast<float>((sums[c] - float_sums[k][c]) / static_cast<double>(count));
      finite = finite && std::isfinite(shift[c]);
    }
    if (finite) shifts[o.node] = std::move(shift);  // a non-finite run corrects nothing
  }
  return shifts;
}

}  // namespace tandem::quantize_internal
