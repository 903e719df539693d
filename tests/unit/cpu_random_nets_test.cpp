// cpu_random_nets_test.cpp: seeded random convolutional and transformer-style networks
// (random_net_util.h, random_sequence_net_util.h) run on the cpu backend and on the reference
// through the public API, the way a user's model would: loaded, shape-inferred, fused and laid
// out as the backend chooses. Each network's outputs must match the reference in float32 at one
// and two threads (and at several batch sizes, sides or token counts through one compiled
// model, and as opset 11 writes them), stay near it in bf16 (where the CPU has native bf16), at
// int8 precision (quantized at prepare) and once converted to float16 (with and without float32
// inputs and outputs), and agree with it once quantized in each of the three formats (both
// backends then run the same quantized model). The point is the combinations
// no hand-written test names: a fusion, layout or hand-off that loses a channel, a padding lane
// or a stride shows as an error of the size of the values, far beyond any rounding.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "backends/cpu/runtime_env.h"
#include "random_net_util.h"
#include "random_sequence_net_util.h"
#include "tandem/backend_info.h"
#include "tandem/compare.h"
#include "tandem/convert.h"
#include "tandem/model.h"
#include "tandem/quantize.h"
#include "scoped_env.h"

namespace tandem {
namespace {

using testing_util::RandomNet;
using testing_util::RandomSequenceNet;

bool has_cpu() {
  for (const auto& b : list_backends())
    if (b.name == "cpu") return true;
  return false;
}

// Runs `bytes` on `backend`; the outputs (empty after a failure, reported as one).
std::vector<Tensor> run(const std::string& bytes, const Tensor& x, const std::string& backend,
                        Precision precision = Precision::fp32, int threads = 0) {
  auto model = OnnxModel::from_bytes(bytes, {}, "random net");
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model) return {};
  CompileSettings settings;
  settings.backend = backend;
  settings.precision = precision;
  settings.threads = threads;
  settings.input_shapes["x"] = x.shape();
  auto compiled = model->compile(settings);
  EXPECT_TRUE(compiled.is_ok()) << backend << ": " << compiled.status().to_string();
  if (!compiled) return {};
  auto bound = compiled->bind({{"x", Value::of(x)}});
  EXPECT_TRUE(bound.is_ok()) << bound.status().to_string();
  if (!bound) return {};
  std::vector<Value> out;
  const Status s = compiled->run(*bound, &out);
  EXPECT_TRUE(s.is_ok()) << backend << ": " << s.to_string();
  std::vector<Tensor> tensors;
  if (s.is_ok())
    for (const Value& v : out) tensors.push_back(v.tensor);
  return tensors;
}

// The error of `got` against `want` relative to the size of `want`'s values: max-abs over
// max(1, max |want|), and RMSE over max(1, RMS of want).
struct Relative {
  double max = 0, rms = 0;
};
Relative relative_error(const Tensor& want, const Tensor& got) {
  Relative r;
  if (want.shape() != got.shape() || want.dtype() != DataType::float32 || got.dtype() != DataType::float32) {
    r.max = r.rms = INFINITY;
    return r;
  }
  double peak = 1, sum_sq = 0, err_sq = 0, worst = 0;
  const float* a = want.data<float>();
  const float* b = got.data<float>();
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double d = std::fabs(static_cast<double>(a[i]) - b[i]);
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    err_sq += d * d;
    peak = std::max(peak, std::fabs(static_cast<double>(a[i])));
    sum_sq += static_cast<double>(a[i]) * a[i];
  }
  const double n = static_cast<double>(std::max<int64_t>(want.numel(), 1));
  r.max = worst / peak;
  r.rms = std::sqrt(err_sq / n) / std::max(1.0, std::sqrt(sum_sq / n));
  return r;
}

// Every output of `got` within `max` and `rms` of `want`'s, relative to their size.
template <class Net>
void expect_near(const std::vector<Tensor>& want, const std::vector<Tensor>& got, double max, double rms,
                 const std::string& what, const Net& net) {
  ASSERT_EQ(want.size(), got.size()) << what << "\n" << net.summary();
  for (size_t i = 0; i < want.size(); ++i) {
    const Relative e = relative_error(want[i], got[i]);
    EXPECT_LE(e.max, max) << what << ", output " << i << " (relative RMSE " << e.rms << ")\n" << net.summary();
    EXPECT_LE(e.rms, rms) << what << ", output " << i << " (relative max " << e.max << ")\n" << net.summary();
  }
}

using testing::ScopedEnv;

// How many networks each test runs. TANDEM_RANDOM_NETS=N runs N times as many (seeds from 1
// up, so the default ones come first): for a search before a change lands, not for ctest.
uint32_t nets(uint32_t count) {
  static const uint32_t scale = [] {
    const char* e = std::getenv("TANDEM_RANDOM_NETS");
    const long v = e ? std::strtol(e, nullptr, 10) : 1;
    return static_cast<uint32_t>(v >= 1 && v <= 1000 ? v : 1);
  }();
  return count * scale;
}
const uint32_t kFloatNets = nets(120), kBf16Nets = nets(80), kFloat16Nets = nets(48), kQuantizedNets = nets(32),
               kBatchNets = nets(40), kSizeNets = nets(40), kOpset11Nets = nets(60);

template <class Net>
void float32_matches_the_reference(uint32_t nets) {
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    const Tensor x = net.input(1000 + seed);
    const std::vector<Tensor> want = run(net.bytes(), x, "reference");
    expect_near(want, run(net.bytes(), x, "cpu", Precision::fp32, 1), 1e-4, 1e-5, "cpu, 1 thread", net);
    expect_near(want, run(net.bytes(), x, "cpu", Precision::fp32, 2), 1e-4, 1e-5, "cpu, 2 threads", net);
  }
}

// bf16 rounds every operand of a product (and, handed off, the values between products) to 8
// bits of mantissa: a relative error of about 2^-9 per layer, a few hundredths after ten.
template <class Net>
void bf16_stays_near_the_reference(uint32_t nets) {
  ScopedEnv always("TANDEM_CPU_BF16", "always");  // bf16 wherever eligible, not only where it times faster
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    const Tensor x = net.input(2000 + seed);
    const std::vector<Tensor> want = run(net.bytes(), x, "reference");
    expect_near(want, run(net.bytes(), x, "cpu", Precision::bf16, 2), 0.1, 2e-2, "cpu bf16", net);
  }
}

// Both backends run the same quantized model. The cpu backend's int8 kernels compute the
// reference's integers, except that a requantization within a float32 rounding of a
// half-integer may land one step away, and a step can move later ones: small differences, never
// an error of the size of the values. Deep sequence networks (attention, an LSTM, then a
// LayerNorm, which spreads a step over its whole row) carry such steps furthest: two of 640
// reached a relative RMSE of 0.011 and 0.017 against the reference, whose own int8 error
// against the float32 model was 0.016; hence 2e-2.
// The dynamic format's symmetric weights (uint8 with zero points 128, or int8 with zero points
// 0, as it writes matrix products' weights) rewritten as an asymmetric quantizer leaves them,
// uint8: w' = clamp(2 (w - 128) + z, 0, 255) (2 w + z for int8) with zero point z = 60, or with
// per-channel zero points (ConvInteger's per output channel, MatMulInteger's per column) one
// z[c] = 20 + 37c mod 200 each, so that w' - z spans [-z, 255 - z], off int8 (a different model,
// which both backends then run).
std::string with_asymmetric_uint8_weights(const std::string& bytes) {
  onnx::ModelProto m;
  if (!m.ParseFromString(bytes)) return bytes;
  auto* g = m.mutable_graph();
  std::map<std::string, onnx::TensorProto*> inits;
  for (auto& t : *g->mutable_initializer()) inits[t.name()] = &t;
  for (const auto& n : g->node()) {
    const bool conv = n.op_type() == "ConvInteger";
    if ((!conv && n.op_type() != "MatMulInteger") || n.input_size() < 4) continue;
    auto w = inits.find(n.input(1)), z = inits.find(n.input(3));
    if (w == inits.end() || z == inits.end() || w->second->data_type() != z->second->data_type() ||
        z->second->raw_data().empty())
      continue;
    const bool int8 = w->second->data_type() == onnx::TensorProto::INT8;
    if (!int8 && w->second->data_type() != onnx::TensorProto::UINT8) continue;
    std::string& zeros = *z->second->mutable_raw_data();
    const uint8_t symmetric = int8 ? 0 : 128;
    if (std::any_of(zeros.begin(), zeros.end(), [&](char c) { return static_cast<uint8_t>(c) != symmetric; }))
      continue;
    std::string& raw = *w->second->mutable_raw_data();
    const size_t channels = zeros.size(), per_channel = raw.size() / channels;
    if (channels == 0 || raw.size() % channels != 0) continue;
    for (size_t c = 0; c < channels; ++c)
      zeros[c] = static_cast<char>(channels == 1 ? 60 : 20 + (37 * c) % 200);
    for (size_t i = 0; i < raw.size(); ++i) {
      const size_t c = channels == 1 ? 0 : conv ? i / per_channel : i % channels;
      const int centred = int8 ? static_cast<int8_t>(raw[i]) : static_cast<int>(static_cast<uint8_t>(raw[i])) - 128;
      raw[i] = static_cast<char>(static_cast<uint8_t>(std::clamp(2 * centred + static_cast<uint8_t>(zeros[c]), 0, 255)));
    }
    w->second->set_data_type(onnx::TensorProto::UINT8);
    z->second->set_data_type(onnx::TensorProto::UINT8);
  }
  std::string out;
  m.SerializeToString(&out);
  return out;
}

template <class Net>
void quantized_models_agree_with_the_reference(uint32_t nets) {
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    for (QuantizeFormat format : {QuantizeFormat::qdq, QuantizeFormat::qoperator, QuantizeFormat::dynamic}) {
      QuantizeOptions options;
      options.format = format;
      // The quantizer's variants by seed: per-tensor weights, float outputs, 7-bit weights.
      options.per_channel = seed % 2 == 0;
      options.quantize_outputs = seed % 3 != 0;
      options.reduce_range = seed % 5 == 0;
      options.bias_correction = BiasCorrection::off;
      options.backend = "cpu";
      if (format != QuantizeFormat::dynamic)
        for (uint32_t k = 0; k < 2; ++k) options.calibration_inputs.push_back({{"x", net.input(3000 + 10 * seed + k)}});
      auto q = quantize_model(net.bytes(), options);
      ASSERT_TRUE(q.is_ok()) << q.status().to_string() << "\n" << net.summary();
      const Tensor x = net.input(4000 + seed);
      const std::string what = std::string("cpu int8 ") +
                               (format == QuantizeFormat::qdq ? "qdq" : format == QuantizeFormat::qoperator ? "qoperator" : "dynamic");
      const std::vector<Tensor> want = run(q->model_bytes, x, "reference");
      expect_near(want, run(q->model_bytes, x, "cpu", Precision::fp32, 2), 0.1, 2e-2, what, net);
      if (format == QuantizeFormat::dynamic) {
        const std::string asymmetric = with_asymmetric_uint8_weights(q->model_bytes);
        expect_near(run(asymmetric, x, "reference"), run(asymmetric, x, "cpu", Precision::fp32, 2), 0.1, 2e-2,
                    what + ", asymmetric uint8 weights", net);
      }
    }
  }
}

// precision=int8 on a float32 model: the cpu backend quantizes it at prepare (weights per
// channel, activations on every call) and must stay near the float32 reference, by the
// quantization's own error (480 networks of each kind reached a relative max of 0.04 and RMSE
// of 0.02). A network without a Conv, MatMul or Gemm is refused as unsupported, which sends
// the engine to its next route.
template <class Net>
void int8_precision_stays_near_the_reference(uint32_t nets) {
  int quantized = 0;
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    bool products = false;
    for (const auto& n : net.model().graph().node())
      products = products || n.op_type() == "Conv" || n.op_type() == "MatMul" || n.op_type() == "Gemm";
    if (!products) {
      auto model = OnnxModel::from_bytes(net.bytes(), {}, "random net");
      ASSERT_TRUE(model.is_ok()) << model.status().to_string();
      CompileSettings settings;
      settings.backend = "cpu";
      settings.precision = Precision::int8;
      auto compiled = model->compile(settings);
      ASSERT_FALSE(compiled.is_ok()) << net.summary();
      EXPECT_EQ(compiled.status().code(), StatusCode::unsupported) << compiled.status().to_string();
      continue;
    }
    ++quantized;
    const Tensor x = net.input(8000 + seed);
    expect_near(run(net.bytes(), x, "reference"), run(net.bytes(), x, "cpu", Precision::int8, 2), 0.1, 5e-2,
                "cpu, precision int8", net);
  }
  EXPECT_GT(quantized, static_cast<int>(nets / 2));
}

// A tensor in float32 (float16 widened exactly), or in float16 (rounded to nearest even).
Tensor as_type(const Tensor& t, DataType to) {
  if (t.dtype() == to) return t;
  Tensor out(to, t.shape());
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (to == DataType::float16) out.data<Float16>()[i] = Float16(t.data<float>()[i]);
    else out.data<float>()[i] = static_cast<float>(t.data<Float16>()[i]);
  }
  return out;
}
std::vector<Tensor> widened(std::vector<Tensor> v) {
  for (Tensor& t : v) t = as_type(t, DataType::float32);
  return v;
}

// Both backends run the same float16 model (tandem convert --to fp16); the cpu backend computes
// it in float32 and rounds where the model's values are float16, the reference rounds each op's
// result: differences of float16 roundings (2^-11), not of the size of the values.
template <class Net>
void float16_models_stay_near_the_reference(uint32_t nets) {
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    for (bool keep_io : {true, false}) {
      Fp16ConvertOptions options;
      options.keep_io_types = keep_io;
      auto c = convert_to_fp16(net.bytes(), options);
      ASSERT_TRUE(c.is_ok()) << c.status().to_string() << "\n" << net.summary();
      const Tensor x = as_type(net.input(5000 + seed), keep_io ? DataType::float32 : DataType::float16);
      const std::vector<Tensor> want = widened(run(c->model_bytes, x, "reference"));
      expect_near(want, widened(run(c->model_bytes, x, "cpu", Precision::fp32, 2)), 0.05, 1e-2,
                  keep_io ? "cpu fp16 (float32 inputs and outputs)" : "cpu fp16", net);
    }
  }
}


// The model with the first dim of its input and outputs symbolic ("N").
std::string with_symbolic_batch(onnx::ModelProto m) {
  auto* g = m.mutable_graph();
  g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("N");
  for (auto& o : *g->mutable_output())
    o.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_dim_param("N");
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

// The model with the given dims of its input symbolic, its outputs' shapes left to shape
// inference.
std::string with_symbolic_dims(onnx::ModelProto m, const std::vector<int>& axes) {
  auto* g = m.mutable_graph();
  auto* dims = g->mutable_input(0)->mutable_type()->mutable_tensor_type()->mutable_shape();
  for (int a : axes) dims->mutable_dim(a)->set_dim_param("d" + std::to_string(a));
  for (auto& o : *g->mutable_output()) o.mutable_type()->mutable_tensor_type()->clear_shape();
  std::string bytes;
  m.SerializeToString(&bytes);
  return bytes;
}

// Compiles `bytes` once on `backend` with no input shape fixed, then runs it on each input,
// the outputs vector kept across runs as a serving loop keeps it; a run that fails leaves its
// entry empty (nullopt), with the error in `errors`.
std::vector<std::optional<std::vector<Tensor>>> try_each(const std::string& bytes, const std::vector<Tensor>& xs,
                                                         const std::string& backend, std::vector<std::string>* errors) {
  std::vector<std::optional<std::vector<Tensor>>> all(xs.size());
  errors->assign(xs.size(), "");
  auto model = OnnxModel::from_bytes(bytes, {}, "random net");
  EXPECT_TRUE(model.is_ok()) << model.status().to_string();
  if (!model) return all;
  CompileSettings settings;
  settings.backend = backend;
  settings.threads = 2;
  auto compiled = model->compile(settings);
  EXPECT_TRUE(compiled.is_ok()) << backend << ": " << compiled.status().to_string();
  if (!compiled) return all;
  std::vector<Value> out;
  for (size_t i = 0; i < xs.size(); ++i) {
    auto bound = compiled->bind({{"x", Value::of(xs[i])}});
    Status st = bound.is_ok() ? compiled->run(*bound, &out) : bound.status();
    if (!st.is_ok()) {
      (*errors)[i] = st.to_string();
      continue;
    }
    std::vector<Tensor> tensors;
    for (const Value& v : out) tensors.push_back(v.tensor.clone());
    all[i] = std::move(tensors);
  }
  return all;
}

// The same, every run expected to succeed.
std::vector<std::vector<Tensor>> run_each(const std::string& bytes, const std::vector<Tensor>& xs,
                                          const std::string& backend) {
  std::vector<std::string> errors;
  auto tried = try_each(bytes, xs, backend, &errors);
  std::vector<std::vector<Tensor>> all;
  for (size_t i = 0; i < tried.size(); ++i) {
    EXPECT_TRUE(tried[i].has_value()) << backend << ": " << errors[i];
    all.push_back(tried[i] ? std::move(*tried[i]) : std::vector<Tensor>{});
  }
  return all;
}

// One compiled model (`axes` of its input symbolic) serves inputs of the generated shape plus
// each of `deltas` in turn (an instance per shape). The networks were generated for one shape,
// and at another a residual or Concat may join values whose sides no longer agree (or a
// Reshape or a causal mask names the old sizes): where the reference rejects a shape, it is
// skipped; where the reference runs, the cpu backend must run too and match it.
template <class Net>
void other_shapes_match_the_reference(uint32_t nets, const std::vector<int>& axes,
                                      const std::vector<std::vector<int64_t>>& deltas) {
  int other = 0;
  for (uint32_t seed = 1; seed <= nets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const Net net(seed);
    const std::string bytes = with_symbolic_dims(net.model(), axes);
    const Tensor base = net.input(7000 + seed);
    std::vector<Tensor> xs;
    for (const std::vector<int64_t>& delta : deltas) {
      std::vector<int64_t> shape = net.input_shape();
      for (size_t i = 0; i < shape.size(); ++i) shape[i] += delta[i];
      Tensor x(DataType::float32, Shape(shape));
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = base.data<float>()[(i * 7) % base.numel()];
      xs.push_back(std::move(x));
    }
    std::vector<std::string> ref_errors, cpu_errors;
    const auto want = try_each(bytes, xs, "reference", &ref_errors);
    const auto got = try_each(bytes, xs, "cpu", &cpu_errors);
    for (size_t i = 0; i < xs.size(); ++i) {
      std::string what = "cpu, input";
      for (int64_t d : xs[i].shape()) what += " " + std::to_string(d);
      const bool generated = std::all_of(deltas[i].begin(), deltas[i].end(), [](int64_t d) { return d == 0; });
      ASSERT_TRUE(want[i] || !generated) << what << " (as generated): " << ref_errors[i] << "\n" << net.summary();
      if (!want[i]) continue;
      if (!generated) ++other;
      ASSERT_TRUE(got[i].has_value()) << what << ": " << cpu_errors[i] << "\n" << net.summary();
      expect_near(*want[i], *got[i], 1e-4, 1e-5, what, net);
    }
  }
  // Most networks take other shapes; were none to, the test would check nothing new.
  EXPECT_GT(other, static_cast<int>(nets));
}

// Images 32 rows taller, as generated, and 32 columns wider.
TEST(CpuRandomNets, ConvolutionalNetsTakeAnySize) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  other_shapes_match_the_reference<RandomNet>(kSizeNets, {2, 3}, {{0, 0, 32, 0}, {0, 0, 0, 0}, {0, 0, 0, 32}});
}
// Five tokens more, as generated, and one sequence more in the batch.
TEST(CpuRandomNets, SequenceNetsTakeAnyLength) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  other_shapes_match_the_reference<RandomSequenceNet>(kSizeNets, {0, 1}, {{0, 5, 0}, {0, 0, 0}, {1, 0, 0}});
}

// One compiled model serves batches of 3, 1 and 2 in turn (an instance per shape, the outputs
// vector reused): each must match the reference.
TEST(CpuRandomNets, ConvolutionalNetsTakeAnyBatch) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  for (uint32_t seed = 1; seed <= kBatchNets; ++seed) {
    SCOPED_TRACE("net " + std::to_string(seed));
    const RandomNet net(seed);
    const std::string bytes = with_symbolic_batch(net.model());
    std::vector<Tensor> xs;
    for (int64_t batch : {3, 1, 2}) {
      std::vector<int64_t> shape = net.input_shape();
      shape[0] = batch;
      Tensor x(DataType::float32, Shape(shape));
      const Tensor one = net.input(6000 + seed + static_cast<uint32_t>(batch));
      for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = one.data<float>()[i % one.numel()] * (i < one.numel() ? 1.0f : -0.5f);
      xs.push_back(std::move(x));
    }
    const auto want = run_each(bytes, xs, "reference");
    const auto got = run_each(bytes, xs, "cpu");
    ASSERT_EQ(want.size(), xs.size());
    ASSERT_EQ(got.size(), xs.size());
    for (size_t i = 0; i < xs.size(); ++i)
      expect_near(want[i], got[i], 1e-4, 1e-5, "cpu, batch " + std::to_string(xs[i].shape()[0]), net);
  }
}

TEST(CpuRandomNets, ConvolutionalNetsMatchTheReferenceInFloat32) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  float32_matches_the_reference<RandomNet>(kFloatNets);
}
// The same networks as older exporters write them (opset 11: Split's attribute, Resize's roi,
// Softmax over the flattened trailing dims).
struct Opset11Net : RandomNet {
  explicit Opset11Net(uint32_t seed) : RandomNet(seed, 11) {}
};
TEST(CpuRandomNets, ConvolutionalNetsAtOpset11MatchTheReference) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  float32_matches_the_reference<Opset11Net>(kOpset11Nets);
}
TEST(CpuRandomNets, SequenceNetsMatchTheReferenceInFloat32) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  float32_matches_the_reference<RandomSequenceNet>(kFloatNets);
}
TEST(CpuRandomNets, ConvolutionalNetsStayNearTheReferenceInBf16) {
  if (!has_cpu() || !cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU";
  bf16_stays_near_the_reference<RandomNet>(kBf16Nets);
}
TEST(CpuRandomNets, SequenceNetsStayNearTheReferenceInBf16) {
  if (!has_cpu() || !cpu::has_native_bf16()) GTEST_SKIP() << "no cpu backend or no native bf16 on this CPU";
  bf16_stays_near_the_reference<RandomSequenceNet>(kBf16Nets);
}
TEST(CpuRandomNets, Float16ConvolutionalNetsStayNearTheReference) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  float16_models_stay_near_the_reference<RandomNet>(kFloat16Nets);
}
TEST(CpuRandomNets, Float16SequenceNetsStayNearTheReference) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  float16_models_stay_near_the_reference<RandomSequenceNet>(kFloat16Nets);
}
TEST(CpuRandomNets, QuantizedConvolutionalNetsAgreeWithTheReference) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  quantized_models_agree_with_the_reference<RandomNet>(kQuantizedNets);
}
TEST(CpuRandomNets, ConvolutionalNetsStayNearTheReferenceAtInt8Precision) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  int8_precision_stays_near_the_reference<RandomNet>(kQuantizedNets);
}
TEST(CpuRandomNets, SequenceNetsStayNearTheReferenceAtInt8Precision) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  int8_precision_stays_near_the_reference<RandomSequenceNet>(kQuantizedNets);
}
TEST(CpuRandomNets, QuantizedSequenceNetsAgreeWithTheReference) {
  if (!has_cpu()) GTEST_SKIP() << "no cpu backend";
  quantized_models_agree_with_the_reference<RandomSequenceNet>(kQuantizedNets);
}

}  // namespace
}  // namespace tandem
