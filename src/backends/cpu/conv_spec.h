// conv_spec.h: the OpSpec of Conv and ConvTranspose steps on the cpu backend, shared by
// conv.cpp (instance time: primitives, layouts, bf16, the backend's patch ConvTranspose) and
// conv_fusion.cpp (compile time: folding the per-channel affine ops after it into the weights
// and bias, absorbing elementwise readers as post-ops, chaining patch ConvTransposes).
//
// A ConvSpec is built at compile and then immutable, shared by every instance of the plan;
// packed() is its only mutable state and is thread-safe.
#pragma once

#include <algorithm>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <dnnl.hpp>

#include "backends/cpu/builder.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/deconv_patch.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/instance.h"
#include "backends/cpu/runtime_env.h"

namespace tandem::cpu {

class ConvSpec final : public OpSpec {
 public:
  bool transposed = false;
  int x = -1, w = -1, bias = -1;  // compile value ids (w/bias runtime when the tensors are undefined)
  int y = -1;                      // the op's own output (before the ops fused after it)
  Tensor wc, bc;                   // constant weight / bias after folding (float32)
  int64_t group = 1;
  int64_t out_channels = -1;       // known when the weight is constant
  EwProgram post;                  // after the op (operands: compile ids)
  std::vector<int> internal;       // 8-bit values of absorbed round trips (make_program_spec)
  // A patch ConvTranspose that reads this one's output (after `post`), itself a patch
  // ConvTranspose: both run as one kernel (deconv_patch.h), and the readers after it are
  // absorbed by `next`.
  std::unique_ptr<ConvSpec> next;
  bool is_next = false;  // the second of such a pair (never chains a third)
  // A ConvTranspose whose patches do not overlap (patch_node), run by the backend's own kernel,
  // which reads its source blocked or channels-last.
  bool patch = false;

  // Nearest Resizes (constant scales or sizes) whose output only this step reads, as a post-op
  // operand: the elementwise kernel after the product reads their sources through the resize
  // tables (ew_program.h, EwUpsampled), so the upsampled tensor is never written (a feature
  // pyramid's top-down path: a coarse map upsampled and added to a finer one).
  // TANDEM_CPU_RESIZE_INTO_POSTOPS=0 keeps them apart.
  struct Resized {
    int value = -1;              // the Resize's output (a post-op operand)
    const Node* node = nullptr;  // owned by the plan
    std::vector<int> inputs;
  };
  std::vector<Resized> resized;

  Status prepare(Builder& b, const Step& step) const override;
  bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) override;
  bool absorb_producer(FusionContext& f, Step& self, const Step& producer, int value) override;
  // A convolution with constant weights reading `value` as its source and nowhere else: the
  // 2-D patch ConvTranspose reads a channels-last source as it lies. So does a 1-D or 3-D one
  // on the channels-last route (conv.cpp), its source and a residual added to its result (a
  // post-op operand of the result's shape); where oneDNN turns that route down, the step takes
  // plain copies.
  bool reads_channels_last_floats(int value) const override {
    if (value == w || value == bias || is_next) return false;
    const bool in_post = std::find(post.operands.begin(), post.operands.end(), value) != post.operands.end();
    if (patch)
      return value == x && !in_post && group == 1 && feature_enabled("NHWC_FLOATS") &&
             (!next ||
              std::find(next->post.operands.begin(), next->post.operands.end(), value) == next->post.operands.end());
    return (value == x || in_post) && !next && wc.defined() && (wc.rank() == 3 || wc.rank() == 5) &&
           float_path_blocked() && feature_enabled_now("CHANNELS_LAST_1D3D");
  }
  // Its source (not also a post-op operand): a 2-D convolution with constant weights, or a
  // patch ConvTranspose computing on bf16 products (patch_computes_bf16). And a 4-D post-op
  // operand larger than the op's own output (a squeeze-excite gate's product with the
  // activations it scales): no oneDNN post-op takes it, the elementwise kernel after the
  // product widens it as it reads it.
  bool reads_bf16_source(const Builder& b, int value) const override {
    for (const Resized& r : resized)  // the source of an absorbed Resize, gathered and widened
      if (!r.inputs.empty() && r.inputs[0] == value && value != x && value != w && value != bias)
        return b.val(value).shape.size() == 4 && feature_enabled_now("BF16_HANDOFF");
    if (value != x && value != w && value != bias && !is_next && !next && y >= 0 && internal.empty() &&
        std::find(post.operands.begin(), post.operands.end(), value) != post.operands.end()) {
      const IValue& v = b.val(value);
      const IValue& own = b.val(y);
      return v.shape.size() == 4 && own.shape.size() == 4 && shape_numel(v.shape) > shape_numel(own.shape) &&
             v.shape[0] == own.shape[0] && v.shape[1] == own.shape[1] && feature_enabled_now("BF16_HANDOFF");
    }
    if (patch && value == x && !is_next && group == 1 && internal.empty() && wc.defined() && wc.rank() == 4 &&
        feature_enabled_now("BF16_HANDOFF") &&
        patch_computes_bf16(out_channels, wc.dim(2), next ? next->out_channels : 0,
                            next && next->wc.defined() ? next->wc.dim(2) : 0))
      return std::find(post.operands.begin(), post.operands.end(), value) == post.operands.end() &&
             (!next || std::find(next->post.operands.begin(), next->post.operands.end(), value) ==
                           next->post.operands.end());
    if (value != x || transposed || next || is_next || !internal.empty() || !wc.defined() || wc.rank() != 4 ||
        value == w || value == bias || !feature_enabled_now("BF16_HANDOFF"))
      return false;
    return std::find(post.operands.begin(), post.operands.end(), value) == post.operands.end();
  }

 private:
  bool fold_affine(FusionContext& f, const Step& reader, int acc_input);
  bool chain(FusionContext& f, const Step& self, const Step& reader, int acc_input);
  void scale_shift(const std::vector<float>& s, const std::vector<float>& t);
  // Packed weights for `md`, reordered once (thread-safe).
  dnnl::memory packed(const dnnl::memory::desc& md, const dnnl::memory::desc& src_md) const;

  mutable std::mutex mu_;
  mutable std::vector<std::pair<dnnl::memory::desc, dnnl::memory>> packed_;
};

// The spec of a Conv or ConvTranspose step (its constant weights and bias copied when known).
std::unique_ptr<ConvSpec> conv_spec(FusionContext& f, const Step& st);

}  // namespace tandem::cpu
