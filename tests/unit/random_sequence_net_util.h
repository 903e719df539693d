// random_sequence_net_util.h: seeded random transformer-style networks for the cross-backend
// tests (cpu_random_nets_test.cpp); the convolutional ones are in random_net_util.h.
#pragma once

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "onnx_build_util.h"
#include "tandem/tensor.h"

namespace tandem::testing_util {

// Seeded random transformer-style networks on one input x [B, T, D]: MatMul with constant
// weights (with and without an Add of a bias, as exporters write Linear); the
// decomposed LayerNormalization (ReduceMean, Sub, Pow, ReduceMean, Add epsilon, Sqrt, Div, Mul,
// Add) and opset 17's LayerNormalization; Gelu written as Erf (exact) or Tanh (approximation);
// Relu, Sigmoid, SiLU, Softmax; multi-head self-attention (separate or one fused Linear split
// into queries, keys and values; Reshape to heads, Transpose, MatMul of queries and keys, a
// scale, now and then a causal mask, Softmax, MatMul with values, back; the Reshapes' targets
// constant or computed from the shapes at run time); 1-D convolutions over
// the tokens; LSTM and GRU layers, one way or both; residual sums. The last value is the
// output, and now and then an intermediate too.
class RandomSequenceNet {
 public:
  explicit RandomSequenceNet(uint32_t seed) : gen_(seed) {
    model_ = new_model("random_sequence_net_" + std::to_string(seed), 17);
    g_ = model_.mutable_graph();
    batch_ = uniform(1, 2);
    tokens_ = uniform(1, 24);
    const int64_t d = 8 * uniform(1, 12);
    set_info(g_->add_input(), "x", onnx::TensorProto::FLOAT, {batch_, tokens_, d});
    vals_.push_back({"x", d});
    const int steps = static_cast<int>(uniform(2, 8));
    for (int i = 0; i < steps; ++i) step();
    add_output(vals_.back());
    if (vals_.size() > 2 && uniform(0, 2) == 0) add_output(vals_[static_cast<size_t>(uniform(1, vals_.size() - 2))]);
  }

  const onnx::ModelProto& model() const { return model_; }
  std::string bytes() const {
    std::string s;
    model_.SerializeToString(&s);
    return s;
  }
  std::vector<int64_t> input_shape() const { return {batch_, tokens_, vals_[0].d}; }
  const std::string& summary() const { return summary_; }
  Tensor input(uint32_t seed) const {
    Tensor t(DataType::float32, Shape(input_shape()));
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = dist(g);
    return t;
  }

 private:
  struct Val {
    std::string name;
    int64_t d;  // the last dim; all values are [batch, tokens, d]
  };
  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); }
  std::string fresh(const std::string& stem) { return stem + std::to_string(next_++); }
  std::string tensor(const std::vector<int64_t>& dims, const std::vector<float>& values, int type = onnx::TensorProto::FLOAT) {
    const std::string name = fresh("k");
    auto* t = g_->add_initializer();
    t->set_name(name);
    t->set_data_type(type);
    for (int64_t d : dims) t->add_dims(d);
    for (float v : values) {
      if (type == onnx::TensorProto::INT64) t->add_int64_data(static_cast<int64_t>(v));
      else t->add_float_data(v);
    }
    return name;
  }
  std::string constant(const std::vector<int64_t>& dims, float bound) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::uniform_real_distribution<float> dist(-bound, bound);
    std::vector<float> v(static_cast<size_t>(n));
    for (float& x : v) x = dist(gen_);
    return tensor(dims, v);
  }
  std::string scalar(float v) { return tensor({}, {v}); }
  std::string ints(const std::vector<int64_t>& v) {
    return tensor({static_cast<int64_t>(v.size())}, std::vector<float>(v.begin(), v.end()), onnx::TensorProto::INT64);
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out) {
    summary_ += op + " -> " + out + "\n";
    return add_node(g_, op, fresh("n"), in, {out});
  }
  void add_output(const Val& v) {
    for (const auto& o : g_->output())
      if (o.name() == v.name) return;
    set_info(g_->add_output(), v.name, onnx::TensorProto::FLOAT, {batch_, tokens_, v.d});
  }
  Val push(const std::string& name, int64_t d) {
    vals_.push_back({name, d});
    return vals_.back();
  }

  // x W (+ b): a Linear layer to `d` features.
  Val linear(const Val& v, int64_t d) {
    const std::string mm = fresh("mm");
    node("MatMul", {v.name, constant({v.d, d}, std::sqrt(3.0f / static_cast<float>(v.d)))}, mm);
    if (uniform(0, 2) == 0) return push(mm, d);
    const std::string out = fresh("lin");
    node("Add", {mm, constant({d}, 0.3f)}, out);
    return push(out, d);
  }

  // epsilon 1e-2: a row that barely varies (a Sigmoid of a Softmax's small values: about 0.5
  // plus a few thousandths) is scaled up at most 10x, so float16's roundings of it stay within
  // the tests' tolerance.
  static constexpr float kEpsilon = 1e-2f;
  Val layer_norm(const Val& v) {
    const std::string out = fresh("ln");
    const std::string gamma = constant({v.d}, 1.5f), beta = constant({v.d}, 0.5f);
    if (uniform(0, 1) == 0) {
      auto* n = node("LayerNormalization", {v.name, gamma, beta}, out);
      set_int_attr(n, "axis", -1);
      set_float_attr(n, "epsilon", kEpsilon);
      return push(out, v.d);
    }
    const std::string mean = fresh("mean"), centred = fresh("cen"), sq = fresh("sq"), var = fresh("var"),
                      eps = fresh("eps"), sd = fresh("sd"), norm = fresh("norm"), scaled = fresh("sc");
    set_ints_attr(node("ReduceMean", {v.name}, mean), "axes", {-1});
    node("Sub", {v.name, mean}, centred);
    node("Pow", {centred, scalar(2.0f)}, sq);
    set_ints_attr(node("ReduceMean", {sq}, var), "axes", {-1});
    node("Add", {var, scalar(kEpsilon)}, eps);
    node("Sqrt", {eps}, sd);
    node("Div", {centred, sd}, norm);
    node("Mul", {norm, gamma}, scaled);
    node("Add", {scaled, beta}, out);
    return push(out, v.d);
  }

  Val activation(const Val& v) {
    const std::string out = fresh("act");
    switch (uniform(0, 5)) {
      case 0: node("Relu", {v.name}, out); break;
      case 1: node("Sigmoid", {v.name}, out); break;
      case 2: {  // exact Gelu: x * 0.5 * (1 + erf(x / sqrt(2)))
        const std::string a = fresh("a"), e = fresh("e"), p = fresh("p"), m = fresh("m");
        node("Div", {v.name, scalar(1.4142135f)}, a);
        node("Erf", {a}, e);
        node("Add", {e, scalar(1.0f)}, p);
        node("Mul", {v.name, p}, m);
        node("Mul", {m, scalar(0.5f)}, out);
        break;
      }
      case 3: {  // tanh Gelu: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
        const std::string c = fresh("c"), k = fresh("k"), s = fresh("s"), t = fresh("t"), h = fresh("h"),
                          p = fresh("p"), m = fresh("m");
        node("Pow", {v.name, scalar(3.0f)}, c);
        node("Mul", {c, scalar(0.044715f)}, k);
        node("Add", {v.name, k}, s);
        node("Mul", {s, scalar(0.7978846f)}, t);
        node("Tanh", {t}, h);
        node("Add", {h, scalar(1.0f)}, p);
        node("Mul", {v.name, p}, m);
        node("Mul", {m, scalar(0.5f)}, out);
        break;
      }
      case 4: {  // SiLU
        const std::string g = fresh("g");
        node("Sigmoid", {v.name}, g);
        node("Mul", {v.name, g}, out);
        break;
      }
      default: set_int_attr(node("Softmax", {v.name}, out), "axis", -1); break;
    }
    return push(out, v.d);
  }

  // A 1-D convolution over the tokens (features as channels), depthwise or dense, as
  // convolution-augmented encoders have it: Transpose, Conv, Transpose.
  Val token_conv(const Val& v) {
    const std::string a = fresh("t"), c = fresh("conv1d"), out = fresh("tc");
    const bool depthwise = uniform(0, 1) == 0;
    const int64_t k = uniform(0, 1) == 0 ? 3 : 5, in_per_group = depthwise ? 1 : v.d;
    set_ints_attr(node("Transpose", {v.name}, a), "perm", {0, 2, 1});
    auto* n = node("Conv", {a, constant({v.d, in_per_group, k}, std::sqrt(3.0f / static_cast<float>(in_per_group * k))),
                            constant({v.d}, 0.3f)},
                   c);
    set_ints_attr(n, "kernel_shape", {k});
    set_ints_attr(n, "pads", {k / 2, k / 2});
    if (depthwise) set_int_attr(n, "group", v.d);
    set_ints_attr(node("Transpose", {c}, out), "perm", {0, 2, 1});
    return push(out, v.d);
  }

  // An LSTM or GRU over the tokens, one direction or both (their outputs side by side):
  // [B, T, D] -> [T, B, D] -> Y [T, directions, B, H] -> [B, T, directions * H].
  Val recurrent(const Val& v) {
    const bool lstm = uniform(0, 1) == 0, both = uniform(0, 1) == 0;
    const int64_t dirs = both ? 2 : 1, hidden = 4 * uniform(1, 6), gates = lstm ? 4 : 3;
    const float bound = std::sqrt(1.0f / static_cast<float>(hidden));
    const std::string a = fresh("t"), y = fresh("y"), t = fresh("t"), out = fresh("rnn");
    set_ints_attr(node("Transpose", {v.name}, a), "perm", {1, 0, 2});
    auto* n = node(lstm ? "LSTM" : "GRU",
                   {a, constant({dirs, gates * hidden, v.d}, std::sqrt(3.0f / static_cast<float>(v.d))),
                    constant({dirs, gates * hidden, hidden}, bound),
                    constant({dirs, 2 * gates * hidden}, bound)},
                   y);
    set_int_attr(n, "hidden_size", hidden);
    if (both) set_string_attr(n, "direction", "bidirectional");
    if (!lstm && uniform(0, 1) == 0) set_int_attr(n, "linear_before_reset", 1);
    set_ints_attr(node("Transpose", {y}, t), "perm", {2, 0, 1, 3});  // [B, T, dirs, H]
    node("Reshape", {t, ints({0, 0, dirs * hidden})}, out);  // 0: that dim as it is
    return push(out, dirs * hidden);
  }

  // Self-attention over the tokens with `heads` heads of d / heads features.
  Val attention(const Val& v) {
    int64_t heads = 1;
    for (int64_t h : {4, 2})
      if (v.d % h == 0 && uniform(0, 1) == 0) {
        heads = h;
        break;
      }
    const int64_t hd = v.d / heads;
    // The Reshapes' targets: constants, or computed from the values' shapes at run time, as
    // PyTorch exports write view(B, T, heads, hd).
    const bool computed = uniform(0, 1) == 0;
    auto split = [&](const Val& p, const std::vector<int64_t>& perm) {
      const std::string r = fresh("r"), t = fresh("t");
      node("Reshape", {p.name, computed ? leading_dims_and(p.name, {heads, hd}) : ints({0, 0, heads, hd})}, r);
      set_ints_attr(node("Transpose", {r}, t), "perm", perm);
      return t;
    };
    Val qv, kv, vv;
    if (uniform(0, 1) == 0) {
      qv = linear(v, v.d);
      kv = linear(v, v.d);
      vv = linear(v, v.d);
    } else {  // one Linear to 3d features, split into queries, keys and values
      const Val qkv = linear(v, 3 * v.d);
      qv = {fresh("q"), v.d};
      kv = {fresh("k"), v.d};
      vv = {fresh("v"), v.d};
      summary_ += "Split -> " + qv.name + ", " + kv.name + ", " + vv.name + "\n";
      set_int_attr(add_node(g_, "Split", fresh("n"), {qkv.name, ints({v.d, v.d, v.d})}, {qv.name, kv.name, vv.name}),
                   "axis", -1);
    }
    const std::string q = split(qv, {0, 2, 1, 3});
    const std::string k = split(kv, {0, 2, 3, 1});
    const std::string val = split(vv, {0, 2, 1, 3});
    const std::string s = fresh("scores"), p = fresh("probs"), o = fresh("o"), t = fresh("t"), out = fresh("attn");
    std::string sc = fresh("scaled");
    node("MatMul", {q, k}, s);
    node("Mul", {s, scalar(1.0f / std::sqrt(static_cast<float>(hd)))}, sc);
    if (uniform(0, 2) == 0) {  // causal: a key after the query is masked by a large negative sum (for T tokens only)
      std::vector<float> mask(static_cast<size_t>(tokens_ * tokens_), 0.0f);
      for (int64_t i = 0; i < tokens_; ++i)
        for (int64_t j = i + 1; j < tokens_; ++j) mask[static_cast<size_t>(i * tokens_ + j)] = -10000.0f;
      const std::string masked = fresh("masked");
      node("Add", {sc, tensor({tokens_, tokens_}, mask)}, masked);
      sc = masked;
    }
    set_int_attr(node("Softmax", {sc}, p), "axis", -1);
    node("MatMul", {p, val}, o);
    set_ints_attr(node("Transpose", {o}, t), "perm", {0, 2, 1, 3});
    node("Reshape", {t, computed ? leading_dims_and(t, {v.d}) : ints({0, 0, v.d})}, out);
    return push(out, v.d);
  }

  // The first two dims of `of`'s shape (batch and tokens) followed by `tail`, computed at run
  // time: Shape, Slice, Concat.
  std::string leading_dims_and(const std::string& of, const std::vector<int64_t>& tail) {
    const std::string shape = fresh("shape"), lead = fresh("lead"), dims = fresh("dims");
    node("Shape", {of}, shape);
    node("Slice", {shape, ints({0}), ints({2})}, lead);
    set_int_attr(node("Concat", {lead, ints(tail)}, dims), "axis", 0);
    return dims;
  }

  void step() {
    const Val v = vals_.back();
    switch (uniform(0, 8)) {
      case 7: {
        const Val c = token_conv(v);
        const std::string out = fresh("res");
        node("Add", {v.name, c.name}, out);
        push(out, v.d);
        break;
      }
      case 8: recurrent(v); break;
      case 0: case 1: {
        Val l = linear(v, 8 * uniform(1, 16));
        if (uniform(0, 1) == 1) activation(l);
        break;
      }
      case 2: layer_norm(v); break;
      case 3: activation(v); break;
      case 4: {
        const Val a = attention(layer_norm(v));
        const std::string out = fresh("res");
        node("Add", {v.name, a.name}, out);
        push(out, v.d);
        break;
      }
      default: {  // a feed-forward block with its residual
        const Val h = activation(linear(v, 8 * uniform(2, 24)));
        const Val back = linear(h, v.d);
        const std::string out = fresh("res");
        node("Add", {v.name, back.name}, out);
        push(out, v.d);
        break;
      }
    }
  }

  std::mt19937 gen_;
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  std::vector<Val> vals_;
  int64_t batch_ = 1, tokens_ = 1;
  int next_ = 0;
  std::string summary_;
};

}  // namespace tandem::testing_util
