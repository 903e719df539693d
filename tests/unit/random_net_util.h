// random_net_util.h: seeded random convolutional networks for the cross-backend tests
// (cpu_random_nets_test.cpp). Each is a serialized ONNX model of one 4-D float32 input whose
// nodes are the patterns real vision models are made of, with random sizes: convolutions (1x1
// to 5x5, strides, dilations, groups and depthwise, with or without bias and padding) followed
// by activations (Relu, Clip, HardSigmoid, hard swish written both ways, Sigmoid, LeakyRelu)
// or a BatchNormalization; squeeze-and-excitation gates; residual sums; channel Concats;
// nearest upsampling, alone or summed with a value of its size; pooling; ConvTranspose; and
// per-channel affine ops; now and then a classifier head (GlobalAveragePool, Flatten, Gemm,
// Softmax) as a second output. Values keep about unit scale (weights of variance 1 / fan-in), so
// that a relative tolerance means the same at any depth. Some intermediates also become
// outputs, as values with readers inside and outside a fused kernel.
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

class RandomNet {
 public:
  explicit RandomNet(uint32_t seed) : gen_(seed) {
    model_ = new_model("random_net_" + std::to_string(seed), 13);
    g_ = model_.mutable_graph();
    const int64_t c = pick({1, 3, 3, 4, 8, 16}), h = uniform(8, 40), w = uniform(8, 40);
    set_info(g_->add_input(), "x", onnx::TensorProto::FLOAT, {1, c, h, w});
    vals_.push_back({"x", c, h, w});
    const int steps = static_cast<int>(uniform(3, 10));
    for (int i = 0; i < steps; ++i) step();
    add_output(vals_.back());
    // Now and then an intermediate is an output too (a value read inside and outside a kernel).
    if (vals_.size() > 2 && uniform(0, 2) == 0) add_output(vals_[static_cast<size_t>(uniform(1, vals_.size() - 2))]);
    if (uniform(0, 3) == 0) classifier(vals_.back());
  }

  const onnx::ModelProto& model() const { return model_; }
  std::string bytes() const {
    std::string s;
    model_.SerializeToString(&s);
    return s;
  }
  std::vector<int64_t> input_shape() const { return {1, vals_[0].c, vals_[0].h, vals_[0].w}; }
  // One line per node: op type and the shape it produces.
  const std::string& summary() const { return summary_; }

  // A seeded input in [-1, 1).
  Tensor input(uint32_t seed) const {
    Tensor t(DataType::float32, Shape(input_shape()));
    std::mt19937 g(seed);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(g);
    return t;
  }

 private:
  struct Val {
    std::string name;
    int64_t c, h, w;
  };

  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); }
  int64_t pick(std::initializer_list<int64_t> v) { return *(v.begin() + uniform(0, static_cast<int64_t>(v.size()) - 1)); }
  std::string fresh(const std::string& stem) { return stem + std::to_string(next_++); }
  // Output channels: mostly under three blocks of 16, sometimes up to six.
  int64_t channels() { return uniform(0, 4) == 0 ? uniform(49, 96) : uniform(1, 48); }

  // A float32 initializer of `dims`, uniform in [-bound, bound).
  std::string constant(const std::vector<int64_t>& dims, float bound) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    std::uniform_real_distribution<float> d(-bound, bound);
    std::vector<float> values(static_cast<size_t>(n));
    for (float& v : values) v = d(gen_);
    const std::string name = fresh("w");
    add_float_initializer(g_, name, dims, values);
    return name;
  }
  std::string scalar(float v) {
    const std::string name = fresh("s");
    add_float_initializer(g_, name, {}, {v});
    return name;
  }
  onnx::NodeProto* node(const std::string& op, const std::vector<std::string>& in, const std::string& out,
                        const Val& shape) {
    summary_ += op + " -> " + out + " [" + std::to_string(shape.c) + "x" + std::to_string(shape.h) + "x" +
                std::to_string(shape.w) + "]\n";
    return add_node(g_, op, fresh("n"), in, {out});
  }
  static void ints(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  static void integer(onnx::NodeProto* n, const std::string& name, int64_t v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  static void real(onnx::NodeProto* n, const std::string& name, float v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  static void text(onnx::NodeProto* n, const std::string& name, const std::string& v) {
    auto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  void add_output(const Val& v) {
    for (const auto& o : g_->output())
      if (o.name() == v.name) return;
    set_info(g_->add_output(), v.name, onnx::TensorProto::FLOAT, {1, v.c, v.h, v.w});
  }
  const Val& any() { return vals_[static_cast<size_t>(uniform(0, static_cast<int64_t>(vals_.size()) - 1))]; }
  Val push(const std::string& name, int64_t c, int64_t h, int64_t w) {
    vals_.push_back({name, c, h, w});
    return vals_.back();
  }

  // A convolution of `v` to `out_c` channels; k, stride, dilation and padding random unless
  // `same` (3x3 or 1x1, stride 1, the input's size kept).
  Val conv(const Val& v, int64_t out_c, bool same) {
    int64_t k = same ? pick({1, 3}) : pick({1, 1, 3, 3, 3, 5});
    int64_t stride = same ? 1 : pick({1, 1, 2});
    int64_t dil = k > 1 && !same && uniform(0, 5) == 0 ? 2 : 1;
    int64_t pad = same || uniform(0, 3) > 0 ? dil * (k - 1) / 2 : 0;
    auto out_dim = [&](int64_t d) { return (d + 2 * pad - dil * (k - 1) - 1) / stride + 1; };
    auto fits = [&](int64_t d) { return d + 2 * pad >= dil * (k - 1) + 1; };
    if (!fits(v.h) || !fits(v.w)) {
      k = 1;
      dil = 1;
      pad = 0;
      stride = 1;
    }
    // Groups: dense, depthwise (the same channels, or twice as many), or a common divisor.
    int64_t group = 1;
    const int64_t kind = uniform(0, 5);
    if (kind == 0 || kind == 1) {
      group = v.c;
      if (!same) out_c = v.c * (kind == 0 ? 1 : 2);
      else out_c = v.c;
    } else if (kind == 2) {
      for (int64_t gr : {8, 4, 3, 2})
        if (v.c % gr == 0 && out_c % gr == 0) {
          group = gr;
          break;
        }
    }
    const int64_t fan_in = v.c / group * k * k;
    std::vector<std::string> in = {v.name, constant({out_c, v.c / group, k, k}, std::sqrt(3.0f / static_cast<float>(fan_in)))};
    if (uniform(0, 1) == 1) in.push_back(constant({out_c}, 0.3f));
    const std::string out = fresh("conv");
    auto* n = node("Conv", in, out, {out, out_c, out_dim(v.h), out_dim(v.w)});
    ints(n, "kernel_shape", {k, k});
    ints(n, "strides", {stride, stride});
    ints(n, "pads", {pad, pad, pad, pad});
    if (dil > 1) ints(n, "dilations", {dil, dil});
    if (group > 1) integer(n, "group", group);
    return push(out, out_c, out_dim(v.h), out_dim(v.w));
  }

  Val activation(const Val& v) {
    const std::string out = fresh("act");
    switch (uniform(0, 8)) {
      case 0: node("Relu", {v.name}, out, v); break;
      case 1: node("Clip", {v.name, scalar(0.0f), scalar(6.0f)}, out, v); break;
      case 2: {
        auto* n = node("HardSigmoid", {v.name}, out, v);
        real(n, "alpha", 0.2f);
        real(n, "beta", 0.5f);
        break;
      }
      case 3: {  // hard swish as x * HardSigmoid(x)
        const std::string gate = fresh("hs");
        auto* n = node("HardSigmoid", {v.name}, gate, v);
        real(n, "alpha", 1.0f / 6.0f);
        real(n, "beta", 0.5f);
        node("Mul", {v.name, gate}, out, v);
        break;
      }
      case 4: {  // hard swish as x * Clip(x + 3, 0, 6) / 6
        const std::string a = fresh("a"), c = fresh("c"), m = fresh("m");
        node("Add", {v.name, scalar(3.0f)}, a, v);
        node("Clip", {a, scalar(0.0f), scalar(6.0f)}, c, v);
        node("Mul", {v.name, c}, m, v);
        node("Div", {m, scalar(6.0f)}, out, v);
        break;
      }
      case 5: node("Sigmoid", {v.name}, out, v); break;
      case 6: {
        auto* n = node("LeakyRelu", {v.name}, out, v);
        real(n, "alpha", 0.1f);
        break;
      }
      case 7: {  // inference batch normalization
        std::uniform_real_distribution<float> d(0.5f, 1.5f);
        const std::string scale = constant({v.c}, 1.0f), bias = constant({v.c}, 0.2f), mean = constant({v.c}, 0.2f);
        const std::string var = fresh("var");
        std::vector<float> variance(static_cast<size_t>(v.c));
        for (float& x : variance) x = d(gen_);
        add_float_initializer(g_, var, {v.c}, variance);
        node("BatchNormalization", {v.name, scale, bias, mean, var}, out, v);
        break;
      }
      default: {  // per-channel affine
        const std::string m = fresh("m");
        node("Mul", {v.name, constant({1, v.c, 1, 1}, 1.5f)}, m, v);
        node("Add", {m, constant({1, v.c, 1, 1}, 0.5f)}, out, v);
        break;
      }
    }
    return push(out, v.c, v.h, v.w);
  }

  // Squeeze and excitation: v * HardSigmoid(Conv(Relu(Conv(GlobalAveragePool(v))))).
  Val excitation(const Val& v) {
    const int64_t mid = std::max<int64_t>(1, v.c / 4);
    const std::string pooled = fresh("gap"), r = fresh("r"), e = fresh("e"), gate = fresh("g"), out = fresh("se");
    const std::string c1 = fresh("c"), c2 = fresh("c");
    node("GlobalAveragePool", {v.name}, pooled, {pooled, v.c, 1, 1});
    auto* a = node("Conv", {pooled, constant({mid, v.c, 1, 1}, std::sqrt(3.0f / v.c)), constant({mid}, 0.2f)}, c1,
                   {c1, mid, 1, 1});
    ints(a, "kernel_shape", {1, 1});
    node("Relu", {c1}, r, {r, mid, 1, 1});
    auto* b = node("Conv", {r, constant({v.c, mid, 1, 1}, std::sqrt(3.0f / mid)), constant({v.c}, 0.2f)}, c2,
                   {c2, v.c, 1, 1});
    ints(b, "kernel_shape", {1, 1});
    auto* h = node("HardSigmoid", {c2}, gate, {gate, v.c, 1, 1});
    real(h, "alpha", 0.2f);
    real(h, "beta", 0.5f);
    node("Mul", {v.name, gate}, out, v);
    return push(out, v.c, v.h, v.w);
  }

  // The first other value of v's shape (or of v's size, any channels, for a Concat), or a
  // convolution of v made to fit.
  Val partner(const Val& v, bool any_channels) {
    for (size_t i = vals_.size(); i-- > 0;) {
      const Val& o = vals_[i];
      if (o.name != v.name && o.h == v.h && o.w == v.w && (any_channels || o.c == v.c)) return o;
    }
    return conv(v, any_channels ? uniform(1, 40) : v.c, /*same=*/true);
  }

  Val upsample(const Val& v) {
    const std::string scales = fresh("scales"), out = fresh("up");
    add_float_initializer(g_, scales, {4}, {1.0f, 1.0f, 2.0f, 2.0f});
    auto* n = node("Resize", {v.name, "", scales}, out, {out, v.c, 2 * v.h, 2 * v.w});
    text(n, "mode", "nearest");
    text(n, "coordinate_transformation_mode", "asymmetric");
    text(n, "nearest_mode", "floor");
    Val up = push(out, v.c, 2 * v.h, 2 * v.w);
    for (size_t i = 0; i + 1 < vals_.size(); ++i) {  // a value of its size: the FPN sum
      const Val o = vals_[i];
      if (o.c == up.c && o.h == up.h && o.w == up.w) {
        const std::string sum = fresh("fpn");
        node("Add", {o.name, up.name}, sum, up);
        return push(sum, up.c, up.h, up.w);
      }
    }
    return up;
  }

  // GlobalAveragePool -> Flatten -> Gemm (B transposed, with bias) [-> Softmax]: a second output
  // of [1, classes].
  void classifier(const Val& v) {
    const int64_t classes = uniform(2, 40);
    const std::string pooled = fresh("gap"), flat = fresh("flat"), logits = fresh("logits");
    node("GlobalAveragePool", {v.name}, pooled, {pooled, v.c, 1, 1});
    auto* f = node("Flatten", {pooled}, flat, {flat, v.c, 1, 1});
    integer(f, "axis", 1);
    auto* gm = node("Gemm", {flat, constant({classes, v.c}, std::sqrt(3.0f / v.c)), constant({classes}, 0.2f)}, logits,
                    {logits, classes, 1, 1});
    integer(gm, "transB", 1);
    std::string out = logits;
    if (uniform(0, 1) == 1) {
      out = fresh("probs");
      auto* sm = node("Softmax", {logits}, out, {out, classes, 1, 1});
      integer(sm, "axis", 1);
    }
    set_info(g_->add_output(), out, onnx::TensorProto::FLOAT, {1, classes});
  }

  void step() {
    const Val v = vals_.back().h * vals_.back().w > 4 && uniform(0, 3) > 0 ? vals_.back() : any();
    switch (uniform(0, 11)) {
      case 0: case 1: case 2: case 3: {
        Val c = conv(v, channels(), false);
        if (uniform(0, 3) > 0) activation(c);
        break;
      }
      case 4: activation(v); break;
      case 5: excitation(v); break;
      case 6: {
        const Val o = partner(v, false);
        const std::string out = fresh("res");
        node(uniform(0, 3) > 0 ? "Add" : "Mul", {v.name, o.name}, out, v);
        push(out, v.c, v.h, v.w);
        break;
      }
      case 7: {
        const Val o = partner(v, true);
        const std::string out = fresh("cat");
        auto* n = node("Concat", {v.name, o.name}, out, {out, v.c + o.c, v.h, v.w});
        integer(n, "axis", 1);
        push(out, v.c + o.c, v.h, v.w);
        break;
      }
      case 8:
        if (v.h * v.w <= 48 * 48) upsample(v);
        break;
      case 9: {
        const std::string out = fresh("pool");
        if (v.h >= 2 && v.w >= 2 && uniform(0, 1) == 0) {
          auto* n = node("MaxPool", {v.name}, out, {out, v.c, v.h / 2, v.w / 2});
          ints(n, "kernel_shape", {2, 2});
          ints(n, "strides", {2, 2});
          push(out, v.c, v.h / 2, v.w / 2);
        } else {
          auto* n = node("AveragePool", {v.name}, out, v);
          ints(n, "kernel_shape", {3, 3});
          ints(n, "pads", {1, 1, 1, 1});
          push(out, v.c, v.h, v.w);
        }
        break;
      }
      case 10:
        if (v.h * v.w <= 32 * 32) {
          const int64_t o = uniform(1, 24);
          const std::string out = fresh("deconv");
          std::vector<std::string> in = {v.name, constant({v.c, o, 2, 2}, std::sqrt(3.0f / v.c))};
          if (uniform(0, 1) == 1) in.push_back(constant({o}, 0.3f));
          auto* n = node("ConvTranspose", in, out, {out, o, 2 * v.h, 2 * v.w});
          ints(n, "kernel_shape", {2, 2});
          ints(n, "strides", {2, 2});
          push(out, o, 2 * v.h, 2 * v.w);
        }
        break;
      default: {
        Val c = conv(v, channels(), false);
        excitation(activation(c));
        break;
      }
    }
  }

  std::mt19937 gen_;
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  std::vector<Val> vals_;
  int next_ = 0;
  std::string summary_;
};

}  // namespace tandem::testing_util
