// int8_common.cpp: the shared part of the quantized op families (int8.h).
#include "backends/cpu/int8.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>

#include "backends/cpu/op_table.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

// Element types per input and output slot: q uint8 or int8, u uint8, f float32, i int32,
// d uint8, int8 or int32 (DequantizeLinear's data), o float32 or uint8/int8 (QGemm's output).
// A '*' in the inputs starts a group that repeats for the remaining inputs (QLinearConcat's
// (tensor, scale, zero point) triples).
struct TypeRule {
  const char* inputs;
  const char* outputs;
};

// Keyed by (canonical domain, op type).
const std::map<std::pair<std::string, std::string>, TypeRule>& type_rules() {
  static const std::string ms = kMicrosoftDomain;
  static const std::map<std::pair<std::string, std::string>, TypeRule> rules = {
      {{"", "QuantizeLinear"}, {"ffw", "w"}},
      {{"", "DequantizeLinear"}, {"efe", "f"}},
      {{ms, "QuantizeLinear"}, {"ffw", "w"}},
      {{ms, "DequantizeLinear"}, {"efe", "f"}},
      {{"", "DynamicQuantizeLinear"}, {"f", "ufu"}},
      {{"", "QLinearConv"}, {"qfqqfqfqi", "q"}},
      {{"", "ConvInteger"}, {"qqqq", "i"}},
      {{"", "QLinearMatMul"}, {"qfqqfqfq", "q"}},
      {{"", "MatMulInteger"}, {"qqqq", "i"}},
      {{ms, "QLinearAdd"}, {"qfqqfqfq", "q"}},
      {{ms, "QLinearMul"}, {"qfqqfqfq", "q"}},
      {{ms, "QLinearSigmoid"}, {"qfqfq", "q"}},
      {{ms, "QLinearLeakyRelu"}, {"qfqfq", "q"}},
      {{ms, "QLinearGlobalAveragePool"}, {"qfqfq", "q"}},
      {{ms, "QLinearAveragePool"}, {"qfqfq", "q"}},
      {{ms, "QLinearConcat"}, {"fq*qfq", "q"}},
      {{ms, "QGemm"}, {"qfqqfqifq", "o"}},
      {{ms, "DynamicQuantizeMatMul"}, {"fqfqf", "f"}},
      {{ms, "MatMulIntegerToFloat"}, {"qqffqqf", "f"}},
  };
  return rules;
}

// The rule letter of input `i`, or 0 past the rule.
char input_rule(const TypeRule& rule, size_t i) {
  const char* star = std::strchr(rule.inputs, '*');
  const size_t head = star ? static_cast<size_t>(star - rule.inputs) : std::strlen(rule.inputs);
  if (i < head) return rule.inputs[i];
  if (!star || star[1] == 0) return 0;
  const size_t period = std::strlen(star + 1);
  return star[1 + (i - head) % period];
}

bool matches(char rule, DataType t) {
  switch (rule) {
    case 'q': return is_8bit(t);
    case 'u': return t == DataType::uint8;
    case 'f': return t == DataType::float32;
    case 'i': return t == DataType::int32;
    case 'd': return is_8bit(t) || t == DataType::int32;
    case 'w': return is_8bit(t) || t == DataType::uint16 || t == DataType::int16;
    case 'e': return is_8bit(t) || t == DataType::uint16 || t == DataType::int16 || t == DataType::int32;
    case 'o': return is_8bit(t) || t == DataType::float32;
    default: return false;
  }
}

const char* rule_text(char rule) {
  switch (rule) {
    case 'q': return "uint8 or int8";
    case 'u': return "uint8";
    case 'f': return "float32";
    case 'i': return "int32";
    case 'o': return "float32, uint8 or int8";
    case 'w': return "uint8, int8, uint16 or int16";
    case 'e': return "uint8, int8, uint16, int16 or int32";
    default: return "uint8, int8 or int32";
  }
}

// Zero-point conversion into an int32 scalar (a runtime zero point oneDNN reads).
class ZeroPointKernel final : public Kernel {
 public:
  int src = -1, dst = -1;
  DataType dtype = DataType::uint8;
  Status run(RunCtx& ctx, KernelState*) const override {
    int32_t v = 0;
    if (dtype == DataType::uint8) v = *static_cast<const uint8_t*>(ctx.ptr[src]);
    else if (dtype == DataType::int8) v = *static_cast<const int8_t*>(ctx.ptr[src]);
    else std::memcpy(&v, ctx.ptr[src], sizeof v);
    *static_cast<int32_t*>(ctx.ptr[dst]) = v;
    return Status::ok();
  }
};

// Requantization scales from runtime (or known) scale values, before each run.
class ScaleKernel final : public Kernel {
 public:
  // Per input: a value id, or -1 with the known values in `known`.
  int x = -1, w = -1, y = -1;
  float x_known = 1, y_known = 1;
  std::vector<float> w_known;
  int64_t w_count = 1, count = 1;
  int dst = -1;
  Status run(RunCtx& ctx, KernelState*) const override {
    const float xs = x >= 0 ? *static_cast<const float*>(ctx.ptr[x]) : x_known;
    const float ys = y >= 0 ? *static_cast<const float*>(ctx.ptr[y]) : y_known;
    const float* ws = w >= 0 ? static_cast<const float*>(ctx.ptr[w]) : w_known.data();
    auto* out = static_cast<float*>(ctx.ptr[dst]);
    if (!(ys != 0.0f)) return invalid_argument(label + " y_scale is zero or NaN");
    for (int64_t m = 0; m < count; ++m) out[m] = xs * ws[w_count == 1 ? 0 : m] / ys;
    return Status::ok();
  }
};

}  // namespace

Result<DnnlKernel::Arg> output_scales(Builder& b, int x_scale, int w_scale, int y_scale, int64_t channels,
                                      int channel_mask, const std::string& label, dnnl::primitive_attr* attr,
                                      bool* runtime) {
  DnnlKernel::Arg arg;
  *runtime = !(b.known(x_scale) && b.known(w_scale) && b.known(y_scale));
  if (!*runtime) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> xs, known_scales(b, x_scale, 1, label + " x scale"));
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> ws, known_scales(b, w_scale, channels, label + " weight scale"));
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> ys, known_scales(b, y_scale, 1, label + " y scale"));
    std::vector<float> scales;
    bool per_channel = false;
    for (int64_t m = 0; m < channels; ++m) {
      scales.push_back(xs[0] * ws[static_cast<size_t>(m)] / ys[0]);
      per_channel = per_channel || scales.back() != scales.front();
    }
    if (!per_channel) scales.resize(1);
    attr->set_output_scales(per_channel ? channel_mask : 0, scales);
    return arg;
  }
  int64_t count = 1;
  TANDEM_ASSIGN_OR_RETURN(int scales, add_scale_kernel(b, x_scale, w_scale, y_scale, channels, label, &count));
  attr->set_output_scales(count == 1 ? 0 : channel_mask, {DNNL_RUNTIME_F32_VAL});
  arg.arg = DNNL_ARG_ATTR_OUTPUT_SCALES;
  arg.value = scales;
  arg.md = dnnl::memory::desc({count}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::x);
  return arg;
}

Result<int> add_scale_kernel(Builder& b, int x_scale, int w_scale, int y_scale, int64_t channels,
                             const std::string& label, int64_t* count) {
  auto k = std::make_unique<ScaleKernel>();
  auto bind = [&](int v, int64_t allowed, const char* what, int* id, std::vector<float>* known) -> Status {
    if (!b.typed(v) || b.val(v).dtype != DataType::float32) return unsupported(label + " " + what + " type unknown");
    const int64_t n = shape_numel(b.val(v).shape);
    if (n != 1 && n != allowed) return unsupported(label + " " + what + " has " + std::to_string(n) + " values");
    if (const Tensor* t = b.known(v)) {
      known->assign(t->data<float>(), t->data<float>() + n);
      return Status::ok();
    }
    TANDEM_ASSIGN_OR_RETURN(*id, b.require(v, Layout::plain));
    k->reads.push_back(*id);
    return Status::ok();
  };
  std::vector<float> xk, yk;
  TANDEM_RETURN_IF_ERROR(bind(x_scale, 1, "x scale", &k->x, &xk));
  TANDEM_RETURN_IF_ERROR(bind(w_scale, channels, "weight scale", &k->w, &k->w_known));
  TANDEM_RETURN_IF_ERROR(bind(y_scale, 1, "y scale", &k->y, &yk));
  if (!xk.empty()) k->x_known = xk[0];
  if (!yk.empty()) k->y_known = yk[0];
  k->w_count = shape_numel(b.val(w_scale).shape);
  k->count = k->w_count == 1 ? 1 : channels;
  *count = k->count;
  k->dst = b.add_temp(DataType::float32, {k->count}, Layout::plain);
  k->writes = {k->dst};
  k->label = label + " (scales)";
  const int dst = k->dst;
  b.add_kernel(std::move(k));
  return dst;
}

int32_t ZeroPoint::read(const RunCtx& ctx) const {
  if (value < 0) return known;
  const void* p = ctx.ptr[value];
  if (type == DataType::uint8) return *static_cast<const uint8_t*>(p);
  if (type == DataType::int8) return *static_cast<const int8_t*>(p);
  int32_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

Result<ZeroPoint> read_zero_point(Builder& b, int v, const std::string& what, std::vector<int>* reads) {
  ZeroPoint z;
  if (v < 0 || b.val(v).kind == IValue::Kind::none) return z;
  if (b.known(v)) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> zp, known_zero_points(b, v, 1, what));
    z.known = zp[0];
    return z;
  }
  if (!b.typed(v) || shape_numel(b.val(v).shape) != 1) return unsupported(what + " must be a scalar");
  TANDEM_ASSIGN_OR_RETURN(z.value, b.require(v, Layout::plain));
  z.type = b.val(v).dtype;
  reads->push_back(z.value);
  return z;
}

Result<ZeroPoint> read_zero_point_of(Builder& b, int v, DataType type, const std::string& what, std::vector<int>* reads) {
  if (v >= 0 && b.val(v).kind != IValue::Kind::none && b.typed(v) && b.val(v).dtype != type)
    return unsupported(what + " is " + std::string(dtype_name(b.val(v).dtype)) + ", the data " +
                       std::string(dtype_name(type)));
  return read_zero_point(b, v, what, reads);
}

Result<Scale> read_scale(Builder& b, int v, const std::string& what, std::vector<int>* reads) {
  Scale s;
  if (v < 0 || b.val(v).kind == IValue::Kind::none) return unsupported(what + " is missing");
  if (!b.typed(v) || b.val(v).dtype != DataType::float32 || shape_numel(b.val(v).shape) != 1)
    return unsupported(what + " must be one float32 value");
  if (b.known(v)) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<float> k, known_scales(b, v, 1, what));
    s.known = k[0];
    return s;
  }
  TANDEM_ASSIGN_OR_RETURN(s.value, b.require(v, Layout::plain));
  reads->push_back(s.value);
  return s;
}

std::vector<int32_t> shifted_weights(const Tensor& w, const std::vector<int32_t>& zero_points, ZeroPointAxis axis) {
  const int64_t n = w.numel(), count = static_cast<int64_t>(zero_points.size());
  const int64_t per_slice = std::max<int64_t>(1, n / std::max<int64_t>(count, 1));
  std::vector<int32_t> out(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const int32_t raw = w.dtype() == DataType::uint8 ? w.data<uint8_t>()[i] : w.data<int8_t>()[i];
    const int64_t z = count == 1 ? 0 : axis == ZeroPointAxis::leading ? i / per_slice : i % count;
    out[static_cast<size_t>(i)] = raw - zero_points[static_cast<size_t>(z)];
  }
  return out;
}

ChannelRanges channel_ranges(const std::vector<int32_t>& d, int64_t channels, ZeroPointAxis axis) {
  ChannelRanges r;
  r.lo.assign(static_cast<size_t>(channels), INT32_MAX);
  r.hi.assign(static_cast<size_t>(channels), INT32_MIN);
  const auto count = static_cast<int64_t>(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    const size_t c = weight_channel(i, channels, count, axis);
    r.lo[c] = std::min(r.lo[c], d[i]);
    r.hi[c] = std::max(r.hi[c], d[i]);
  }
  return r;
}

bool is_int8_op(const std::string& domain, const std::string& op) { return type_rules().count({domain, op}) != 0; }

Status supports_int8_types(const Node& n, const NodeTypes& types) {
  auto it = type_rules().find({canonical_domain(n.domain), n.op_type});
  if (it == type_rules().end()) return unsupported(n.label() + " is not a quantized op of the cpu backend");
  const TypeRule& rule = it->second;
  const size_t no = std::strlen(rule.outputs);
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    const DataType t = types.input(i);
    if (n.inputs[i].empty() || t == DataType::undefined) continue;
    const char r = input_rule(rule, i);
    if (r == 0) return unsupported(n.label() + " has more inputs than the cpu backend knows");
    if (!matches(r, t))
      return unsupported(n.label() + " input " + std::to_string(i) + " is " + std::string(dtype_name(t)) +
                         " (the cpu backend takes " + rule_text(r) + " there)");
  }
  for (size_t i = 0; i < n.outputs.size() && i < no; ++i) {
    const DataType t = types.output(i);
    if (n.outputs[i].empty() || t == DataType::undefined) continue;
    if (!matches(rule.outputs[i], t))
      return unsupported(n.label() + " output " + std::to_string(i) + " is " + std::string(dtype_name(t)) +
                         " (the cpu backend makes " + rule_text(rule.outputs[i]) + " there)");
  }
  return Status::ok();
}

namespace {

// The values of a known 1-element or per-channel tensor, as doubles.
Result<std::vector<double>> known_values(Builder& b, int v, int64_t channels, const std::string& what) {
  const Tensor* t = b.known(v);
  if (!t) return unsupported(what + " is not known when the plan is built");
  std::vector<double> out;
  const int64_t n = t->numel();
  if (n != 1 && (t->rank() != 1 || n != channels))
    return unsupported(what + " has shape [" + shape_to_string(t->shape()) + "], expected a scalar or [" +
                       std::to_string(channels) + "]");
  for (int64_t i = 0; i < n; ++i) {
    switch (t->dtype()) {
      case DataType::float32: out.push_back(t->data<float>()[i]); break;
      case DataType::uint8: out.push_back(t->data<uint8_t>()[i]); break;
      case DataType::int8: out.push_back(t->data<int8_t>()[i]); break;
      case DataType::uint16: out.push_back(t->data<uint16_t>()[i]); break;  // 16-bit Quantize/DequantizeLinear
      case DataType::int16: out.push_back(t->data<int16_t>()[i]); break;
      case DataType::int32: out.push_back(t->data<int32_t>()[i]); break;
      default: return unsupported(what + " is " + std::string(dtype_name(t->dtype())));
    }
  }
  if (n == 1) out.assign(static_cast<size_t>(channels), out[0]);
  return out;
}

}  // namespace

Result<std::vector<float>> known_scales(Builder& b, int v, int64_t channels, const std::string& what) {
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> d, known_values(b, v, channels, what));
  std::vector<float> out(d.begin(), d.end());
  for (float s : out)
    if (!(s > 0.0f) || !std::isfinite(s)) return unsupported(what + " is not a positive finite scale");
  return out;
}

Result<std::vector<int32_t>> known_zero_points(Builder& b, int v, int64_t channels, const std::string& what) {
  if (v < 0 || b.val(v).kind == IValue::Kind::none) return std::vector<int32_t>(static_cast<size_t>(channels), 0);
  TANDEM_ASSIGN_OR_RETURN(std::vector<double> d, known_values(b, v, channels, what));
  return std::vector<int32_t>(d.begin(), d.end());
}

bool onednn_has_vnni() {
  static const bool vnni = [] {
    (void)cpu_engine();  // applies the ISA cap first
    switch (dnnl::get_effective_cpu_isa()) {
      case dnnl::cpu_isa::avx2_vnni:
      case dnnl::cpu_isa::avx512_core_vnni:
      case dnnl::cpu_isa::avx512_core_bf16:
      case dnnl::cpu_isa::avx512_core_amx: return true;
      default: return false;
    }
  }();
  return vnni;
}

namespace {

// Float weights as integers d (|d| <= `limit`) times one scale per channel, when that is exact
// (every weight equals float32(d * scale) bit for bit): the largest magnitude m of a channel is
// k * scale for some k in 1..limit, tried with one and two ulps around m / k, finest grid first
// or, with `coarsest`, coarsest first (which keeps each channel's integers within the range it
// was quantized to). `d` is laid out like the weights.
bool exact_weight_grid(const Tensor& wf, bool lead, int limit, bool coarsest, std::vector<int32_t>* d,
                       std::vector<float>* scales) {
  const Shape& shape = wf.shape();
  if (wf.rank() == 0 || wf.numel() == 0 || wf.dtype() != DataType::float32) return false;
  const int64_t rows = shape[0], cols = wf.numel() / rows;
  const int64_t channels = lead ? rows : cols;
  const float* data = wf.data<float>();
  auto at = [&](int64_t c, int64_t i) { return lead ? data[c * cols + i] : data[i * cols + c]; };
  const int64_t per_channel = lead ? cols : rows;
  d->assign(static_cast<size_t>(wf.numel()), 0);
  scales->assign(static_cast<size_t>(channels), 1.0f);
  for (int64_t c = 0; c < channels; ++c) {
    float m = 0.0f;
    for (int64_t i = 0; i < per_channel; ++i) {
      const float x = at(c, i);
      if (!std::isfinite(x)) return false;
      m = std::max(m, std::fabs(x));
    }
    bool found = m == 0.0f;
    float s = 1.0f;
    for (int step = 0; !found && step < limit; ++step) {
      const int k = coarsest ? step + 1 : limit - step;
      const float base = m / static_cast<float>(k);
      for (int tries = 0; !found && tries < 5; ++tries) {
        s = base;
        for (int j = 0; j < (tries + 1) / 2; ++j) s = std::nextafter(s, tries % 2 ? 2.0f * base : 0.0f);
        if (!(s > 0.0f)) continue;
        found = true;
        for (int64_t i = 0; i < per_channel && found; ++i) {
          const float x = at(c, i);
          const float r = std::nearbyint(x / s);
          found = std::fabs(r) <= static_cast<float>(limit) && r * s == x;
        }
      }
    }
    if (!found) return false;
    (*scales)[static_cast<size_t>(c)] = s;
    for (int64_t i = 0; i < per_channel; ++i) {
      const int64_t idx = lead ? c * cols + i : i * cols + c;
      (*d)[static_cast<size_t>(idx)] = static_cast<int32_t>(std::nearbyint(data[idx] / s));
    }
  }
  return true;
}

}  // namespace

bool exact_int8_weights(const Tensor& wf, bool lead, Tensor* q, std::vector<float>* scales) {
  // Without VNNI, oneDNN's int8 products add pairs of u8 x s8 products in saturating int16, so
  // only 7-bit weights fuse; wider ones keep the float path the QDQ graph describes, far faster
  // than the own integer kernels they would need.
  std::vector<int32_t> d;
  if (!exact_weight_grid(wf, lead, onednn_has_vnni() ? 127 : kNoVnniWeightMax, false, &d, scales)) return false;
  *q = Tensor(DataType::int8, wf.shape());
  for (size_t i = 0; i < d.size(); ++i) q->data<int8_t>()[i] = static_cast<int8_t>(d[i]);
  return true;
}

bool exact_uint8_weights(const Tensor& wf, bool lead, Tensor* q, std::vector<float>* scales,
                         std::vector<uint8_t>* zero_points) {
  if (!onednn_has_vnni()) return false;
  std::vector<int32_t> d;
  if (!exact_weight_grid(wf, lead, 255, true, &d, scales)) return false;
  const auto channels = static_cast<int64_t>(scales->size()), count = static_cast<int64_t>(d.size());
  const ZeroPointAxis axis = lead ? ZeroPointAxis::leading : ZeroPointAxis::last;
  const auto [lo, hi] = channel_ranges(d, channels, axis);
  std::vector<int32_t> z(static_cast<size_t>(channels));
  for (size_t c = 0; c < z.size(); ++c) {
    if (hi[c] - lo[c] > 255) return false;
    z[c] = std::max(-lo[c], 0);  // q = d + z lies in [0, 255]
  }
  // One zero point for all where one fits every channel.
  const int32_t lowest = *std::min_element(lo.begin(), lo.end()), highest = *std::max_element(hi.begin(), hi.end());
  if (highest - lowest <= 255) z.assign(z.size(), std::max(-lowest, 0));
  *q = Tensor(DataType::uint8, wf.shape());
  for (size_t i = 0; i < d.size(); ++i)
    q->data<uint8_t>()[i] = static_cast<uint8_t>(d[i] + z[weight_channel(i, channels, count, axis)]);
  if (std::all_of(z.begin(), z.end(), [&](int32_t v) { return v == z[0]; })) z.resize(1);
  zero_points->assign(z.begin(), z.end());
  return true;
}

Result<Tensor> signed_weights(const Tensor& w, const std::vector<int32_t>& zero_points, ZeroPointAxis axis,
                              const std::string& label) {
  if (!is_8bit(w.dtype())) return unsupported(label + " weights are " + std::string(dtype_name(w.dtype())));
  const int64_t n = w.numel();
  const int64_t count = static_cast<int64_t>(zero_points.size());
  if (count == 0) return internal_error(label + " no weight zero point");
  const int64_t per_slice = axis == ZeroPointAxis::leading ? std::max<int64_t>(1, n / count) : 1;
  const int32_t limit = onednn_has_vnni() ? 127 : kNoVnniWeightMax;
  Tensor out(DataType::int8, w.shape());
  int8_t* dst = out.data<int8_t>();
  for (int64_t i = 0; i < n; ++i) {
    const int32_t raw = w.dtype() == DataType::uint8 ? w.data<uint8_t>()[i] : w.data<int8_t>()[i];
    const size_t slice = count == 1                         ? 0
                         : axis == ZeroPointAxis::leading ? static_cast<size_t>(i / per_slice)
                                                          : static_cast<size_t>(i % count);
    const int32_t q = raw - zero_points[slice];
    if (q < -128 || q > 127)
      return unsupported(label + " weight minus its zero point (" + std::to_string(q) +
                         ") leaves the int8 range oneDNN multiplies in");
    if (q > limit || q < -limit - 1)
      return unsupported(label + " weight magnitude " + std::to_string(q) +
                         " could saturate oneDNN's int16 pair sums on this CPU (no VNNI); 7-bit weights run natively");
    dst[i] = static_cast<int8_t>(q);
  }
  return out;
}

Result<Tensor> bias_with_source_zero_point(const Tensor& w8, const Tensor& bias, int64_t x_zero_point,
                                           int64_t channels) {
  const int64_t per_channel = w8.numel() / channels;  // [O, C/G, k...]: each output channel's weights in a row
  const int8_t* wd = w8.data<int8_t>();
  std::vector<int32_t> folded(static_cast<size_t>(channels));
  for (int64_t o = 0; o < channels; ++o) {
    int64_t sum = 0;
    for (int64_t k = 0; k < per_channel; ++k) sum += wd[o * per_channel + k];
    const int64_t v = (bias.defined() ? bias.data<int32_t>()[o] : 0) - x_zero_point * sum;
    if (v < INT32_MIN || v > INT32_MAX) return unsupported("a bias with the source zero point folded in leaves int32");
    folded[static_cast<size_t>(o)] = static_cast<int32_t>(v);
  }
  return Tensor::from_vector<int32_t>({channels}, folded);
}

Result<DnnlKernel::Arg> zero_point_arg(Builder& b, int v, int arg, const std::string& label, bool* is_zero) {
  using dt = dnnl::memory::data_type;
  *is_zero = false;
  DnnlKernel::Arg a;
  a.arg = DNNL_ARG_ATTR_ZERO_POINTS | arg;
  a.md = dnnl::memory::desc({1}, dt::s32, dnnl::memory::format_tag::x);
  if (v < 0 || b.val(v).kind == IValue::Kind::none) {
    *is_zero = true;
    return a;
  }
  if (b.known(v)) {
    TANDEM_ASSIGN_OR_RETURN(std::vector<int32_t> zp, known_zero_points(b, v, 1, label + " zero point"));
    *is_zero = zp[0] == 0;
    a.memory = dnnl::memory(a.md, cpu_engine());
    *static_cast<int32_t*>(a.memory.get_data_handle()) = zp[0];
    return a;
  }
  const DataType zp_type = b.val(v).dtype;  // a copy: the builder's values move as values are added
  if (!b.typed(v) || shape_numel(b.val(v).shape) != 1 || !(is_8bit(zp_type) || zp_type == DataType::int32))
    return unsupported(label + " zero point must be a scalar");
  TANDEM_ASSIGN_OR_RETURN(int pv, b.require(v, Layout::plain));
  const int tmp = b.add_temp(DataType::int32, {1}, Layout::plain);
  auto k = std::make_unique<ZeroPointKernel>();
  k->src = pv;
  k->dst = tmp;
  k->dtype = zp_type;
  k->reads = {pv};
  k->writes = {tmp};
  k->label = label + " (zero point)";
  b.add_kernel(std::move(k));
  a.value = tmp;
  return a;
}

bool only_read_by(const Builder& b, int v, std::initializer_list<const char*> ops) {
  const CompiledGraph& g = b.graph();
  if (v < 0 || v >= static_cast<int>(g.values.size()) || g.values[v].is_output || g.values[v].readers.empty()) return false;
  for (int r : g.values[v].readers) {
    const Step& s = g.steps[static_cast<size_t>(r)];
    if (s.dead || !s.node || !canonical_domain(s.node->domain).empty()) return false;
    bool listed = false;
    for (const char* op : ops) listed = listed || s.node->op_type == op;
    if (!listed) return false;
  }
  return true;
}

bool read_by(const Builder& b, int v, const char* op) {
  const CompiledGraph& g = b.graph();
  if (v < 0 || v >= static_cast<int>(g.values.size())) return false;
  for (int r : g.values[v].readers) {
    const Step& s = g.steps[static_cast<size_t>(r)];
    if (!s.dead && s.node && canonical_domain(s.node->domain).empty() && s.node->op_type == op) return true;
  }
  return false;
}

}  // namespace tandem::cpu
