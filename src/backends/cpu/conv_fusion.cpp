// conv_fusion.cpp: compile-time rewrites of Conv and ConvTranspose steps (conv_spec.h):
// BatchNormalization and per-channel Mul, Add, Sub, Div readers folded into the constant
// weights and bias, other elementwise readers absorbed as the step's post-op program, and a
// patch ConvTranspose chained to the one it reads (deconv_patch.h).
#include <algorithm>
#include <vector>

#include "backends/cpu/conv_geometry.h"
#include "backends/cpu/conv_spec.h"
#include "backends/cpu/deconv_patch.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

// Per-channel (or scalar) float constant of `v` against a rank-r output with O channels.
bool channel_vector(FusionContext& f, int v, size_t rank, int64_t O, std::vector<float>* out) {
  const Tensor* t = f.constant(v);
  if (!t || t->dtype() != DataType::float32 || t->rank() > rank) return false;
  if (t->numel() == 1) {
    out->assign(O, t->data<float>()[0]);
    return true;
  }
  Shape s(rank, 1);
  std::copy(t->shape().begin(), t->shape().end(), s.begin() + (rank - t->rank()));
  for (size_t i = 0; i < rank; ++i)
    if (s[i] != 1 && !(i == 1 && s[i] == O)) return false;
  if (s[1] != O) return false;
  out->assign(t->data<float>(), t->data<float>() + O);
  return true;
}

}  // namespace

void ConvSpec::scale_shift(const std::vector<float>& s, const std::vector<float>& t) {
  const int64_t O = out_channels;
  // Weights: per output channel.
  Tensor nw = wc.clone();
  float* p = nw.data<float>();
  const Shape& ws = wc.shape();
  int64_t k = 1;
  for (size_t i = 2; i < ws.size(); ++i) k *= ws[i];
  if (!transposed) {
    const int64_t per = ws[1] * k;
    for (int64_t o = 0; o < O; ++o)
      for (int64_t i = 0; i < per; ++i) p[o * per + i] *= s[o];
  } else {
    const int64_t C = ws[0], Og = ws[1], Cg = C / group;
    for (int64_t c = 0; c < C; ++c) {
      const int64_t gidx = c / Cg;
      for (int64_t j = 0; j < Og; ++j) {
        float sc = s[gidx * Og + j];
        float* q = p + (c * Og + j) * k;
        for (int64_t i = 0; i < k; ++i) q[i] *= sc;
      }
    }
  }
  wc = std::move(nw);
  Tensor nb(DataType::float32, {O});
  float* bp = nb.data<float>();
  for (int64_t o = 0; o < O; ++o) {
    float b0 = bc.defined() ? bc.data<float>()[o] : 0.0f;
    bp[o] = b0 * s[o] + t[o];
  }
  bc = std::move(nb);
}

bool ConvSpec::fold_affine(FusionContext& f, const Step& reader, int acc_input) {
  if (!wc.defined() || out_channels <= 0 || !post.empty()) return false;
  if (!(bias < 0 || bc.defined())) return false;
  const Node& n = *reader.node;
  const size_t rank = wc.rank();
  const int64_t O = out_channels;
  std::vector<float> s(O, 1.0f), t(O, 0.0f);
  if (n.op_type == "BatchNormalization") {
    if (acc_input != 0 || reader.inputs.size() < 5) return false;
    if (n.outputs.size() > 1) {
      for (size_t i = 1; i < n.outputs.size(); ++i)
        if (!n.outputs[i].empty()) return false;
    }
    if (n.attr_int("training_mode", 0) != 0) return false;
    std::vector<float> gamma, beta, mean, var;
    auto vec = [&](int v, std::vector<float>* o) {
      const Tensor* c = f.constant(v);
      if (!c || c->dtype() != DataType::float32 || c->numel() != O) return false;
      o->assign(c->data<float>(), c->data<float>() + O);
      return true;
    };
    if (!vec(reader.inputs[1], &gamma) || !vec(reader.inputs[2], &beta) || !vec(reader.inputs[3], &mean) ||
        !vec(reader.inputs[4], &var))
      return false;
    const float eps = n.attr_float("epsilon", 1e-5f);
    for (int64_t o = 0; o < O; ++o) {
      // Same arithmetic order as the reference: (x - mean) / sqrt(var + eps) * gamma + beta.
      double inv = 1.0 / std::sqrt(static_cast<double>(var[o]) + eps);
      s[o] = static_cast<float>(gamma[o] * inv);
      t[o] = static_cast<float>(beta[o] - mean[o] * gamma[o] * inv);
    }
    scale_shift(s, t);
    return true;
  }
  const std::string& op = n.op_type;
  if (op != "Add" && op != "Sub" && op != "Mul" && op != "Div") return false;
  if (reader.inputs.size() != 2) return false;
  std::vector<float> c;
  if (!channel_vector(f, reader.inputs[1 - acc_input], rank, O, &c)) return false;
  if (op == "Add") t = c;
  else if (op == "Sub" && acc_input == 0) for (int64_t o = 0; o < O; ++o) t[o] = -c[o];
  else if (op == "Sub") {
    for (int64_t o = 0; o < O; ++o) {
      s[o] = -1.0f;
      t[o] = c[o];
    }
  } else if (op == "Mul") s = c;
  else if (op == "Div" && acc_input == 0) for (int64_t o = 0; o < O; ++o) s[o] = 1.0f / c[o];
  else return false;
  scale_shift(s, t);
  return true;
}

bool ConvSpec::chain(FusionContext& f, const Step& self, const Step& reader, int acc_input) {
  if (is_next || !transposed || !wc.defined() || out_channels <= 0 || !ew_pointwise(post) || !float_path_blocked())
    return false;
  if (acc_input != 0 || reader.node->op_type != "ConvTranspose" || reader.inputs.size() < 2 || reader.inputs[1] < 0)
    return false;
  if (!patch_node(*self.originals.front(), wc)) return false;
  if (!(bias < 0 || bc.defined())) return false;
  std::unique_ptr<ConvSpec> second = conv_spec(f, reader);
  if (!second->wc.defined() || !patch_node(*reader.node, second->wc) || second->wc.dim(0) != out_channels) return false;
  if (second->bias >= 0 && !second->bc.defined()) return false;
  next = std::move(second);
  next->is_next = true;
  return true;
}

bool ConvSpec::absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) {
  if (next) {
    // The readers after the second ConvTranspose: its own pointwise ops, or none.
    auto saved = next->post;
    if (!next->absorb(f, self, reader, acc_input)) return false;
    if (ew_pointwise(next->post)) return true;
    next->post = std::move(saved);
    return false;
  }
  if (fold_affine(f, reader, acc_input)) return true;
  if (chain(f, self, reader, acc_input)) return true;
  EwProgram p = post;
  if (!node_to_ew(f, *reader.node, reader.inputs, acc_input, &p) &&
      !append_unary_program(reader, reader.inputs[acc_input], &p, &internal))
    return false;
  post = std::move(p);
  return true;
}

bool ConvSpec::absorb_producer(FusionContext& f, Step&, const Step& producer, int value) {
  if (next || is_next || patch || value == x || value == w || value == bias ||
      std::find(post.operands.begin(), post.operands.end(), value) == post.operands.end() ||
      resized.size() >= static_cast<size_t>(kEwMaxStaged) || !feature_enabled("RESIZE_INTO_POSTOPS"))
    return false;
  const Node* n = producer.node;
  if (!n || producer.dead || producer.originals.size() != 1 || !producer.spec ||
      !canonical_domain(n->domain).empty() || (n->op_type != "Resize" && n->op_type != "Upsample") ||
      n->attr_string("mode", "nearest") != "nearest" || producer.inputs.empty() || producer.inputs[0] < 0 ||
      producer.outputs.size() != 1)
    return false;
  for (size_t i = 1; i < producer.inputs.size(); ++i)
    if (producer.inputs[i] >= 0 && !f.constant(producer.inputs[i])) return false;
  resized.push_back(Resized{value, n, producer.inputs});
  return true;
}

}  // namespace tandem::cpu
