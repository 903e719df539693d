// qconv_dynamic.cpp: a ConvInteger and its closing DynamicQuantizeLinear in bands
// (qconv_dynamic.h).
#include "backends/cpu/qconv_dynamic.h"

#include <algorithm>
#include <cstddef>
#include <cstdlib>

#include "backends/cpu/int8.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

class BandedState final : public KernelState {
 public:
  std::vector<dnnl::stream> streams;                           // per thread
  std::vector<std::vector<std::unique_ptr<KernelState>>> kinds;  // per thread, per kind
};

class BandedDynamicQuantizeKernel final : public Kernel {
 public:
  std::vector<std::unique_ptr<DnnlKernel>> kinds;
  ConvBandPlan plan;
  int floats = -1, dst = -1, scale_out = -1, zp_out = -1;
  int max_threads = 1;
  int64_t scratch_stride = 0;  // scratchpad bytes per thread

  std::unique_ptr<KernelState> make_state(void* const* ptr, const std::vector<bool>& fixed,
                                          void* scratch) const override {
    auto st = std::make_unique<BandedState>();
    for (int t = 0; t < max_threads; ++t) {
      st->streams.emplace_back(cpu_engine());
      void* own = static_cast<std::byte*>(scratch) + t * scratch_stride;
      std::vector<std::unique_ptr<KernelState>> states;
      for (const auto& k : kinds) states.push_back(k->make_state(ptr, fixed, own));
      st->kinds.push_back(std::move(states));
    }
    return st;
  }

  Status run(RunCtx& ctx, KernelState* state) const override {
    auto* st = static_cast<BandedState*>(state);
    auto* x = static_cast<float*>(ctx.ptr[floats]);
    auto* y = static_cast<uint8_t*>(ctx.ptr[dst]);
    const int threads = std::min(ctx.threads, max_threads);
    float lo[kMaxParts], hi[kMaxParts];
    Status failed[kMaxParts];
    DynamicQuantParams p;
    // Band i's float32 values: in the result, or at the start of its thread's buffer.
    auto band_floats = [&](int part, const ConvBand& band) {
      return plan.recompute ? x + part * plan.band_floats : x + band.dst_floats;
    };
    auto compute = [&](int part, const ConvBand& band) {
      const DnnlKernel::Shift shifts[2] = {
          {DNNL_ARG_SRC, band.src_bytes},
          {DNNL_ARG_DST, (band_floats(part, band) - x) * static_cast<int64_t>(sizeof(float))}};
      const size_t kind = static_cast<size_t>(band.kind);
      return kinds[kind]->run_band(ctx, st->kinds[static_cast<size_t>(part)][kind].get(),
                                   st->streams[static_cast<size_t>(part)], shifts, 2);
    };
    parallel_two_passes(
        threads, static_cast<int64_t>(plan.bands.size()), 1,
        [&](int part, int64_t b, int64_t e) {
          float l = 0.0f, h = 0.0f;
          for (int64_t i = b; i < e; ++i) {
            const ConvBand& band = plan.bands[static_cast<size_t>(i)];
            failed[part] = compute(part, band);
            if (!failed[part].is_ok()) break;
            float bl, bh;
            min_max(band_floats(part, band), band.floats, &bl, &bh);
            l = std::min(l, bl);
            h = std::max(h, bh);
          }
          lo[part] = l;
          hi[part] = h;
        },
        [&](int part, int parts, int64_t b, int64_t e) {
          float l = 0.0f, h = 0.0f;
          for (int i = 0; i < parts; ++i) {
            l = std::min(l, lo[i]);
            h = std::max(h, hi[i]);
          }
          const DynamicQuantParams q = dynamic_quant_params(l, h);
          for (int64_t i = b; i < e; ++i) {
            const ConvBand& band = plan.bands[static_cast<size_t>(i)];
            uint8_t* to = y + band.dst_floats;
            if (!q.usable) {
              std::fill(to, to + band.floats, q.zero_point);
              continue;
            }
            if (plan.recompute && failed[part].is_ok()) failed[part] = compute(part, band);
            quantize_u8(band_floats(part, band), to, band.floats, q.scale, static_cast<float>(q.zero_point));
          }
          if (part == 0) p = q;
        });
    for (int t = 0; t < threads; ++t)
      if (!failed[t].is_ok()) return failed[t];
    if (scale_out >= 0) *static_cast<float*>(ctx.ptr[scale_out]) = p.scale;
    if (zp_out >= 0) *static_cast<uint8_t*>(ctx.ptr[zp_out]) = p.zero_point;
    return Status::ok();
  }
};

}  // namespace

bool conv_band_recompute(int64_t macs, int64_t groups, int64_t result_bytes) {
  // Kept, a float32 element costs memory traffic (written, read back); computed twice, its
  // product and post-ops run again. Measured on det's dynamic file at one thread: a 1x1 layer of
  // 16 input channels at 320x320 gained (1.93 -> 1.51 ms); 1x1 layers of 32-48 input channels
  // lost (0.44-0.49 -> 0.64-0.72 ms), and so did depthwise 3x3 layers of 9 multiply-adds per
  // output (0.78 -> 1.28 ms and 0.47 -> 1.01: oneDNN's depthwise int8 kernel costs per output
  // about what the traffic saves); below a few MiB the result stays in the caches anyway.
  static const bool enabled = feature_enabled("QDYNAMIC_RECOMPUTE");
  return enabled && groups == 1 && macs <= 16 && result_bytes >= (4 << 20);
}

ConvBandPlan plan_conv_bands(const Shape& src, const Shape& dst, int64_t src_element_bytes, int64_t kh, int64_t sh,
                             int64_t dh, int64_t pad_top, bool recompute, int threads) {
  ConvBandPlan plan;
  plan.threads = std::max(1, std::min(threads, kMaxParts));
  plan.recompute = recompute;
  if (src.size() != 4 || dst.size() != 4) return plan;
  const int64_t N = dst[0], O = dst[1], OH = dst[2], OW = dst[3], C = src[1], H = src[2], W = src[3];
  if (N * OH * OW * O == 0) return plan;
  static const int64_t band_bytes = [] {
    const char* e = std::getenv("TANDEM_CPU_QDYNAMIC_BAND_KB");
    const long kb = e ? std::strtol(e, nullptr, 10) : 0;
    return static_cast<int64_t>(kb > 0 ? kb : 256) * 1024;
  }();
  const int64_t row_bytes = OW * O * static_cast<int64_t>(sizeof(float));
  int64_t per_image = recompute ? std::clamp<int64_t>((OH * row_bytes + band_bytes - 1) / band_bytes, 1, OH) : 1;
  if (N * per_image < plan.threads) per_image = std::min(OH, (plan.threads + N - 1) / N);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < per_image; ++i) {
      const int64_t r0 = OH * i / per_image, r1 = OH * (i + 1) / per_image;
      const int64_t in_start = r0 * sh - pad_top, in_end = (r1 - 1) * sh - pad_top + (kh - 1) * dh + 1;
      ConvBandKind k;
      k.rows = r1 - r0;
      k.pad_top = std::max<int64_t>(0, -in_start);
      k.pad_bottom = std::max<int64_t>(0, in_end - H);
      k.in_rows = std::min(H, in_end) - std::max<int64_t>(0, in_start);
      if (k.rows <= 0 || k.in_rows <= 0) return ConvBandPlan{};
      auto same = [&](const ConvBandKind& o) {
        return o.rows == k.rows && o.in_rows == k.in_rows && o.pad_top == k.pad_top && o.pad_bottom == k.pad_bottom;
      };
      auto it = std::find_if(plan.kinds.begin(), plan.kinds.end(), same);
      if (it == plan.kinds.end()) {
        if (static_cast<int>(plan.kinds.size()) == kMaxBandKinds) return ConvBandPlan{};
        plan.kinds.push_back(k);
        it = plan.kinds.end() - 1;
      }
      ConvBand band;
      band.kind = static_cast<int>(it - plan.kinds.begin());
      band.src_bytes = ((n * H + std::max<int64_t>(0, in_start)) * W * C) * src_element_bytes;
      band.dst_floats = (n * OH + r0) * OW * O;
      band.floats = k.rows * OW * O;
      plan.band_floats = std::max(plan.band_floats, band.floats);
      plan.bands.push_back(band);
    }
  return plan;
}

Status add_banded_dynamic_quantize(Builder& b, std::vector<std::unique_ptr<DnnlKernel>> kinds, ConvBandPlan plan,
                                   int floats, const Shape& shape, const std::vector<int>& outputs,
                                   const std::string& label) {
  if (kinds.empty() || kinds.size() != plan.kinds.size()) return unsupported(label + " no band primitives");
  auto k = std::make_unique<BandedDynamicQuantizeKernel>();
  k->max_threads = plan.threads;
  for (const auto& kind : kinds) {
    if (kind->uses_scratch)
      k->scratch_stride = std::max(k->scratch_stride, round_up(static_cast<int64_t>(kind->scratch_md.get_size()), 64));
    for (int v : kind->reads)
      if (std::find(k->reads.begin(), k->reads.end(), v) == k->reads.end()) k->reads.push_back(v);
    k->implementation = kind->implementation;
  }
  if (k->scratch_stride > 0) b.need_scratch(k->scratch_stride * k->max_threads);
  int* slots[3] = {&k->dst, &k->scale_out, &k->zp_out};
  for (size_t i = 0; i < outputs.size() && i < 3; ++i) {
    if (outputs[i] < 0) continue;
    b.define(outputs[i], i == 0 ? Layout::nhwc : Layout::plain);
    *slots[i] = outputs[i];
    k->writes.push_back(outputs[i]);
  }
  if (k->dst < 0) {  // the data omitted: quantized into a temporary
    k->dst = b.add_temp(DataType::uint8, shape, Layout::nhwc);
    k->writes.insert(k->writes.begin(), k->dst);
  }
  if (!plan.recompute) b.define(floats, Layout::nhwc);
  k->floats = floats;
  k->writes.push_back(floats);
  k->kinds = std::move(kinds);
  k->plan = std::move(plan);
  k->label = label + " (" + std::to_string(k->plan.bands.size()) + (k->plan.recompute ? " bands computed twice" : " bands") +
             ", quantized)";
  b.add_work(static_cast<double>(shape_numel(shape)));
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
