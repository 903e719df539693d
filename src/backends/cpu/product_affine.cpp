// product_affine.cpp: the per-channel affine head of an integer product's float tail
// (product_affine.h).
#include "backends/cpu/product_affine.h"

#include <cmath>
#include <memory>

#include "backends/cpu/ew_post_ops.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

// Below this magnitude a runtime scale is raised to it, so that shift / scale stays finite.
constexpr float kSmallestScale = 1e-30f;

// The values of a known float32 operand that is a scalar or one value per channel, widened to
// `channels`; false otherwise.
bool per_channel_constant(Builder& b, int v, const Shape& dst, int channel_axis, std::vector<double>* out) {
  const Tensor* c = b.known(v);
  Shape aligned;
  if (!c || c->dtype() != DataType::float32 || !broadcast_shape(c->shape(), dst, channel_axis, &aligned)) return false;
  const int64_t channels = dst[static_cast<size_t>(channel_axis)];
  const float* d = c->data<float>();
  out->resize(static_cast<size_t>(channels));
  for (int64_t o = 0; o < channels; ++o) (*out)[static_cast<size_t>(o)] = d[c->numel() == 1 ? 0 : o];
  return true;
}

// When runtime value `v` is a float32 scalar: true (*known all 1). When it is the output of a
// live Mul step of one node whose operands are a runtime float32 scalar and a known per-channel
// constant: true, with the scalar's id in *scalar and the constant in *known.
bool runtime_scalar_factor(Builder& b, int v, const Shape& dst, int channel_axis, int* scalar,
                           std::vector<double>* known) {
  auto runtime_scalar = [&](int u) {
    return u >= 0 && !b.known(u) && b.typed(u) && b.val(u).dtype == DataType::float32 && shape_numel(b.val(u).shape) == 1;
  };
  const auto channels = static_cast<size_t>(dst[static_cast<size_t>(channel_axis)]);
  if (runtime_scalar(v)) {
    *scalar = v;
    known->assign(channels, 1.0);
    return true;
  }
  const CompiledGraph& g = b.graph();
  if (v < 0 || v >= static_cast<int>(g.values.size()) || g.values[static_cast<size_t>(v)].producer < 0) return false;
  const Step& p = g.steps[static_cast<size_t>(g.values[static_cast<size_t>(v)].producer)];
  if (p.dead || !p.node || p.originals.size() != 1 || p.node->op_type != "Mul" || !canonical_domain(p.node->domain).empty() ||
      p.inputs.size() != 2)
    return false;
  for (int i = 0; i < 2; ++i)
    if (runtime_scalar(p.inputs[static_cast<size_t>(i)]) &&
        per_channel_constant(b, p.inputs[static_cast<size_t>(1 - i)], dst, channel_axis, known)) {
      *scalar = p.inputs[static_cast<size_t>(i)];
      return true;
    }
  return false;
}

// Computes the runtime scalar's post-op operand and the float32 bias before each run.
class AffineKernel final : public Kernel {
 public:
  int factor = -1;                  // the runtime scalar (plain float32)
  std::vector<float> scale, shift;  // per channel
  std::vector<float> int_bias;      // per channel (accumulator units), or empty
  int factor_out = -1;              // float32 [1]: the scalar, kept off zero where there is a bias
  int bias_out = -1;                // float32 [channels], or -1 without a shift
  Status run(RunCtx& ctx, KernelState*) const override {
    float s = *static_cast<const float*>(ctx.ptr[factor]);
    if (bias_out >= 0) {
      if (std::fabs(s) < kSmallestScale) s = std::copysign(kSmallestScale, s);
      auto* bias = static_cast<float*>(ctx.ptr[bias_out]);
      for (size_t o = 0; o < scale.size(); ++o)
        bias[o] = (int_bias.empty() ? 0.0f : int_bias[o]) + shift[o] / (s * scale[o]);
    }
    *static_cast<float*>(ctx.ptr[factor_out]) = s;
    return Status::ok();
  }
};

}  // namespace

bool ProductAffine::has_shift() const {
  for (double v : shift)
    if (v != 0) return true;
  return false;
}

ProductAffine leading_product_affine(Builder& b, const EwProgram& program, const Shape& dst, int channel_axis,
                                     size_t max_ops) {
  ProductAffine best;
  if (channel_axis < 0 || static_cast<size_t>(channel_axis) >= dst.size()) return best;
  const auto channels = static_cast<size_t>(dst[static_cast<size_t>(channel_axis)]);
  ProductAffine a;
  a.scale.assign(channels, 1.0);
  a.shift.assign(channels, 0.0);
  // Whether the run so far can stand as it is: known scales that a shift must be divided by
  // are nonzero and finite (a runtime factor is handled when it is read).
  auto usable = [&]() {
    const bool divided = a.has_shift();
    for (double s : a.scale)
      if (!std::isfinite(s) || (divided && s == 0)) return false;
    return true;
  };
  const size_t n = std::min(program.ops.size(), max_ops);
  for (size_t i = 0; i < n; ++i) {
    const EwOp& op = program.ops[i];
    std::vector<double> c(channels, static_cast<double>(op.a));
    if (!ew_is_unary(op.code) && op.operand >= 0) {
      const int v = program.operands[static_cast<size_t>(op.operand)];
      if (!per_channel_constant(b, v, dst, channel_axis, &c)) {
        // A runtime factor: only as the first op, a product.
        if (i != 0 || op.code != Ew::mul || !runtime_scalar_factor(b, v, dst, channel_axis, &a.runtime, &c)) break;
      }
    }
    bool affine = true;
    for (size_t o = 0; o < channels; ++o) {
      double& s = a.scale[o];
      double& t = a.shift[o];
      const double k = c[o];
      switch (op.code) {
        case Ew::mul: s *= k; t *= k; break;
        case Ew::div: s /= k; t /= k; break;
        case Ew::add: t += k; break;
        case Ew::sub: t -= k; break;
        case Ew::rsub: s = -s; t = k - t; break;
        case Ew::neg: s = -s; t = -t; break;
        case Ew::linear: s *= op.a; t = t * op.a + op.b; break;
        default: affine = false;
      }
      if (!affine) break;
    }
    if (!affine) break;
    a.ops = i + 1;
    if (usable()) best = a;
  }
  if (best.ops == 0) return ProductAffine{};
  return best;
}

void set_product_affine(const ProductAffine& affine, int64_t channels, int channel_mask, size_t dst_rank,
                        dnnl::primitive_attr* attr, dnnl::post_ops* po) {
  std::vector<float> scales(affine.scale.begin(), affine.scale.end());
  bool uniform = true;
  for (float s : scales) uniform = uniform && s == scales.front();
  if (uniform || static_cast<int64_t>(scales.size()) != channels) scales.resize(1);
  attr->set_output_scales(scales.size() == 1 ? 0 : channel_mask, scales);
  if (affine.runtime >= 0) po->append_binary(dnnl::algorithm::binary_mul, plain_md(Shape(dst_rank, 1)));
}

Status add_product_affine(Builder& b, const ProductAffine& affine, const std::vector<int32_t>& int_bias,
                          int64_t channels, size_t dst_rank, const std::string& label,
                          std::vector<DnnlKernel::Arg>* args) {
  const dnnl::memory::desc vec_md({channels}, dt::f32, dnnl::memory::format_tag::x);
  const bool with_bias = affine.has_shift();
  const auto n = static_cast<size_t>(channels);
  if (affine.runtime < 0) {
    if (!with_bias) return Status::ok();
    dnnl::memory m(vec_md, cpu_engine());
    auto* d = static_cast<float*>(m.get_data_handle());
    for (size_t o = 0; o < n; ++o)
      d[o] = static_cast<float>((int_bias.empty() ? 0.0 : static_cast<double>(int_bias[o])) +
                                affine.shift[o] / affine.scale[o]);
    args->push_back(DnnlKernel::Arg{DNNL_ARG_BIAS, -1, vec_md, m});
    return Status::ok();
  }
  auto k = std::make_unique<AffineKernel>();
  TANDEM_ASSIGN_OR_RETURN(k->factor, b.require(affine.runtime, Layout::plain));
  k->scale.assign(affine.scale.begin(), affine.scale.end());
  k->shift.assign(affine.shift.begin(), affine.shift.end());
  k->int_bias.assign(int_bias.begin(), int_bias.end());
  k->factor_out = b.add_temp(DataType::float32, {1}, Layout::plain);
  if (with_bias) k->bias_out = b.add_temp(DataType::float32, {channels}, Layout::plain);
  k->reads = {k->factor};
  k->writes = {k->factor_out};
  if (with_bias) k->writes.push_back(k->bias_out);
  k->label = label + " (runtime scale)";
  // The scalar's post-op is the first one (set_product_affine).
  args->push_back(DnnlKernel::Arg{DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1, k->factor_out,
                                  plain_md(Shape(dst_rank, 1)), {}});
  if (with_bias) args->push_back(DnnlKernel::Arg{DNNL_ARG_BIAS, k->bias_out, vec_md, {}});
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
