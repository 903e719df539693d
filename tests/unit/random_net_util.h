// random_net_util.h: seeded random convolutional networks for the cross-backend tests
// (cpu_random_nets_test.cpp). Each is a serialized ONNX model of one 4-D float32 input whose
// nodes are the patterns real vision models are made of, with random sizes: convolutions (1x1
// to 5x5, strides, dilations, groups and depthwise, with or without bias and padding) followed
// by activations (Relu, Clip, HardSigmoid, hard swish written both ways, swish, Sigmoid, Tanh,
// LeakyRelu, PRelu) or a BatchNormalization; squeeze-and-excitation gates; residual sums,
// products, differences and maxima; channel Concats; nearest upsampling, alone or summed with
// a value of its size; pooling; ConvTranspose; per-channel affine ops; ops that move or
// renormalize values (channel shuffles, Pad in each mode, Slice, Split, linear Resize, a
// channel-mean gate, DepthToSpace and SpaceToDepth, InstanceNormalization, a channel Softmax,
// a round trip through channels-last); now and then a classifier head (GlobalAveragePool,
// Flatten, Gemm, Softmax) as a second output. Values keep about unit scale (weights of variance 1 / fan-in), so
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
  // `opset` 13, or 11 as older exporters write: Split's sizes as an attribute, Resize's roi as
  // an (empty) input, and Softmax over all of a value's dims from its axis on (flattened to 2-D).
  explicit RandomNet(uint32_t seed, int64_t opset = 13) : gen_(seed), opset_(opset) {
    model_ = new_model("random_net_" + std::to_string(seed), opset);
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
  const char* pick_op(std::initializer_list<const char*> v) {
    return *(v.begin() + uniform(0, static_cast<int64_t>(v.size()) - 1));
  }
  std::string fresh(const std::string& stem) { return stem + std::to_string(next_++); }
  std::string int64s(const std::vector<int64_t>& v) {
    const std::string name = fresh("i");
    add_int64_initializer(g_, name, {static_cast<int64_t>(v.size())}, v);
    return name;
  }
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
    set_ints_attr(n, "kernel_shape", {k, k});
    set_ints_attr(n, "strides", {stride, stride});
    set_ints_attr(n, "pads", {pad, pad, pad, pad});
    if (dil > 1) set_ints_attr(n, "dilations", {dil, dil});
    if (group > 1) set_int_attr(n, "group", group);
    return push(out, out_c, out_dim(v.h), out_dim(v.w));
  }

  Val activation(const Val& v) {
    const std::string out = fresh("act");
    switch (uniform(0, 11)) {
      case 0: node("Relu", {v.name}, out, v); break;
      case 1: node("Clip", {v.name, scalar(0.0f), scalar(6.0f)}, out, v); break;
      case 2: {
        auto* n = node("HardSigmoid", {v.name}, out, v);
        set_float_attr(n, "alpha", 0.2f);
        set_float_attr(n, "beta", 0.5f);
        break;
      }
      case 3: {  // hard swish as x * HardSigmoid(x)
        const std::string gate = fresh("hs");
        auto* n = node("HardSigmoid", {v.name}, gate, v);
        set_float_attr(n, "alpha", 1.0f / 6.0f);
        set_float_attr(n, "beta", 0.5f);
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
        set_float_attr(n, "alpha", 0.1f);
        break;
      }
      case 9: node("Tanh", {v.name}, out, v); break;
      case 10: node("PRelu", {v.name, constant({v.c, 1, 1}, 0.5f)}, out, v); break;
      case 11: {  // swish
        const std::string gate = fresh("sg");
        node("Sigmoid", {v.name}, gate, v);
        node("Mul", {v.name, gate}, out, v);
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
    set_ints_attr(a, "kernel_shape", {1, 1});
    node("Relu", {c1}, r, {r, mid, 1, 1});
    auto* b = node("Conv", {r, constant({v.c, mid, 1, 1}, std::sqrt(3.0f / mid)), constant({v.c}, 0.2f)}, c2,
                   {c2, v.c, 1, 1});
    set_ints_attr(b, "kernel_shape", {1, 1});
    auto* h = node("HardSigmoid", {c2}, gate, {gate, v.c, 1, 1});
    set_float_attr(h, "alpha", 0.2f);
    set_float_attr(h, "beta", 0.5f);
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
    std::string roi;
    if (opset_ < 13) {
      roi = fresh("roi");
      add_float_initializer(g_, roi, {0}, {});
    }
    auto* n = node("Resize", {v.name, roi, scales}, out, {out, v.c, 2 * v.h, 2 * v.w});
    set_string_attr(n, "mode", "nearest");
    set_string_attr(n, "coordinate_transformation_mode", "asymmetric");
    set_string_attr(n, "nearest_mode", "floor");
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
    set_int_attr(f, "axis", 1);
    auto* gm = node("Gemm", {flat, constant({classes, v.c}, std::sqrt(3.0f / v.c)), constant({classes}, 0.2f)}, logits,
                    {logits, classes, 1, 1});
    set_int_attr(gm, "transB", 1);
    std::string out = logits;
    if (uniform(0, 1) == 1) {
      out = fresh("probs");
      auto* sm = node("Softmax", {logits}, out, {out, classes, 1, 1});
      set_int_attr(sm, "axis", 1);
    }
    set_info(g_->add_output(), out, onnx::TensorProto::FLOAT, {1, classes});
  }

  // Ops that move, select or renormalize values rather than compute products: a channel
  // shuffle (Reshape, Transpose, Reshape), Pad, Slice, Split and a swapped Concat, linear
  // Resize, a mean over channels as a spatial gate, DepthToSpace and SpaceToDepth,
  // InstanceNormalization, a channel Softmax, and a round trip through channels-last.
  Val reshape(const Val& v) {
    const std::string out = fresh("sh");
    switch (uniform(0, 9)) {
      case 0: {  // channel shuffle
        const int64_t g = v.c % 4 == 0 && uniform(0, 1) == 0 ? 4 : 2;
        if (v.c % g != 0) break;
        const std::string r = fresh("r"), t = fresh("t");
        node("Reshape", {v.name, int64s({0, g, v.c / g, v.h, v.w})}, r, v);  // 0: the batch as it is
        set_ints_attr(node("Transpose", {r}, t, v), "perm", {0, 2, 1, 3, 4});
        node("Reshape", {t, int64s({0, v.c, v.h, v.w})}, out, v);
        return push(out, v.c, v.h, v.w);
      }
      case 1: {  // Pad: constant, reflect or edge
        const int64_t t = uniform(0, 2), l = uniform(0, 2), b = uniform(0, 2), r = uniform(0, 2);
        const char* mode = pick_op({"constant", "reflect", "edge"});
        if (std::string(mode) == "reflect" && (std::max(t, b) >= v.h || std::max(l, r) >= v.w)) break;
        const Val o{out, v.c, v.h + t + b, v.w + l + r};
        std::vector<std::string> in = {v.name, int64s({0, 0, t, l, 0, 0, b, r})};
        if (std::string(mode) == "constant" && uniform(0, 1) == 0) in.push_back(scalar(0.25f));
        set_string_attr(node("Pad", in, out, o), "mode", mode);
        return push(out, o.c, o.h, o.w);
      }
      case 2: {  // Slice: a run of channels, or every first or second row and column of a window
        if (v.c >= 2 && uniform(0, 1) == 0) {
          const int64_t begin = uniform(0, v.c - 1), end = uniform(begin + 1, v.c);
          node("Slice", {v.name, int64s({begin}), int64s({end}), int64s({1})}, out, {out, end - begin, v.h, v.w});
          return push(out, end - begin, v.h, v.w);
        }
        if (v.h < 3 || v.w < 3) break;
        const int64_t step = uniform(1, 2), top = uniform(0, 1), left = uniform(0, 1);
        const int64_t h = (v.h - top + step - 1) / step, w = (v.w - left + step - 1) / step;
        node("Slice", {v.name, int64s({top, left}), int64s({v.h, INT64_MAX}), int64s({2, 3}), int64s({step, step})},
             out, {out, v.c, h, w});
        return push(out, v.c, h, w);
      }
      case 3: {  // Split into two, concatenated back swapped
        if (v.c < 2) break;
        const int64_t first = uniform(1, v.c - 1);
        const std::string a = fresh("sa"), b = fresh("sb");
        onnx::NodeProto* n = nullptr;
        if (opset_ >= 13) {
          n = add_node(g_, "Split", fresh("n"), {v.name, int64s({first, v.c - first})}, {a, b});
        } else {
          n = add_node(g_, "Split", fresh("n"), {v.name}, {a, b});
          set_ints_attr(n, "split", {first, v.c - first});
        }
        set_int_attr(n, "axis", 1);
        summary_ += "Split -> " + a + ", " + b + "\n";
        set_int_attr(node("Concat", {b, a}, out, v), "axis", 1);
        return push(out, v.c, v.h, v.w);
      }
      case 4: {  // linear Resize by 2 or 1.5
        if (v.h * v.w > 32 * 32) break;
        const bool by_two = uniform(0, 1) == 0;
        const int64_t h = by_two ? 2 * v.h : v.h * 3 / 2, w = by_two ? 2 * v.w : v.w * 3 / 2;
        const std::string roi = fresh("roi"), scales = fresh("scales");
        add_float_initializer(g_, roi, {0}, {});
        const float f = by_two ? 2.0f : 1.5f;
        add_float_initializer(g_, scales, {4}, {1.0f, 1.0f, f, f});
        auto* n = node("Resize", {v.name, roi, scales}, out, {out, v.c, h, w});
        set_string_attr(n, "mode", "linear");
        set_string_attr(n, "coordinate_transformation_mode",
                        pick_op({"half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel"}));
        return push(out, v.c, h, w);
      }
      case 5: {  // v * Sigmoid(ReduceMean over channels): a spatial gate
        const std::string m = fresh("mean"), g = fresh("gate");
        auto* r = node(uniform(0, 2) > 0 ? "ReduceMean" : "ReduceMax", {v.name}, m, {m, 1, v.h, v.w});
        set_ints_attr(r, "axes", {1});
        node("Sigmoid", {m}, g, {g, 1, v.h, v.w});
        node("Mul", {v.name, g}, out, v);
        return push(out, v.c, v.h, v.w);
      }
      case 6: {  // DepthToSpace (4k channels) or SpaceToDepth (even sides)
        if (v.c % 4 == 0 && uniform(0, 1) == 0) {
          auto* n = node("DepthToSpace", {v.name}, out, {out, v.c / 4, 2 * v.h, 2 * v.w});
          set_int_attr(n, "blocksize", 2);
          set_string_attr(n, "mode", uniform(0, 1) == 0 ? "DCR" : "CRD");
          return push(out, v.c / 4, 2 * v.h, 2 * v.w);
        }
        if (v.h % 2 != 0 || v.w % 2 != 0 || v.c > 24) break;
        set_int_attr(node("SpaceToDepth", {v.name}, out, {out, 4 * v.c, v.h / 2, v.w / 2}), "blocksize", 2);
        return push(out, 4 * v.c, v.h / 2, v.w / 2);
      }
      case 7: {
        if (v.h * v.w < 4) break;
        // epsilon 1e-2: a channel that barely varies (after a Softmax or a saturated Sigmoid) is
        // scaled up at most 10x, so float16's roundings stay within the tests' tolerance.
        auto* n = node("InstanceNormalization", {v.name, constant({v.c}, 1.0f), constant({v.c}, 0.5f)}, out, v);
        set_float_attr(n, "epsilon", 1e-2f);
        return push(out, v.c, v.h, v.w);
      }
      case 8:
        set_int_attr(node("Softmax", {v.name}, out, v), "axis", 1);
        return push(out, v.c, v.h, v.w);
      default: {  // to channels-last, a per-channel scale along the last axis, and back
        const std::string t = fresh("t"), m = fresh("m");
        set_ints_attr(node("Transpose", {v.name}, t, {t, v.h, v.w, v.c}), "perm", {0, 2, 3, 1});
        node("Mul", {t, constant({v.c}, 1.5f)}, m, {m, v.h, v.w, v.c});
        set_ints_attr(node("Transpose", {m}, out, v), "perm", {0, 3, 1, 2});
        return push(out, v.c, v.h, v.w);
      }
    }
    return v;
  }

  void step() {
    const Val v = vals_.back().h * vals_.back().w > 4 && uniform(0, 3) > 0 ? vals_.back() : any();
    switch (uniform(0, 13)) {
      case 12: case 13: reshape(v); break;
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
        node(pick_op({"Add", "Add", "Add", "Mul", "Sub", "Max"}), {v.name, o.name}, out, v);
        push(out, v.c, v.h, v.w);
        break;
      }
      case 7: {
        const Val o = partner(v, true);
        const std::string out = fresh("cat");
        auto* n = node("Concat", {v.name, o.name}, out, {out, v.c + o.c, v.h, v.w});
        set_int_attr(n, "axis", 1);
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
          set_ints_attr(n, "kernel_shape", {2, 2});
          set_ints_attr(n, "strides", {2, 2});
          push(out, v.c, v.h / 2, v.w / 2);
        } else {
          auto* n = node("AveragePool", {v.name}, out, v);
          set_ints_attr(n, "kernel_shape", {3, 3});
          set_ints_attr(n, "pads", {1, 1, 1, 1});
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
          set_ints_attr(n, "kernel_shape", {2, 2});
          set_ints_attr(n, "strides", {2, 2});
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
  int64_t opset_ = 13;
  onnx::ModelProto model_;
  onnx::GraphProto* g_ = nullptr;
  std::vector<Val> vals_;
  int next_ = 0;
  std::string summary_;
};

}  // namespace tandem::testing_util
