// Reference kernels: recurrent layers RNN, GRU and LSTM.
//
// One shared driver handles shapes, layouts (0: time-major, 1: batch-major), directions
// (forward / reverse / bidirectional), per-batch sequence_lens, initial states, clipping and
// the activations/activation_alpha/activation_beta attributes; the three cells differ only
// in their gate equations. Everything is computed in double, one batch row at a time.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

enum class CellKind { rnn, gru, lstm };

// One activation function with its (defaulted) alpha/beta parameters.
struct Activation {
  enum Kind { relu, tanh_, sigmoid, affine, leaky_relu, thresholded_relu, scaled_tanh, hard_sigmoid, elu, softsign,
              softplus };
  Kind kind = tanh_;
  double alpha = 0.0;
  double beta = 0.0;

  double operator()(double x) const {
    switch (kind) {
      case relu: return std::max(0.0, x);
      case tanh_: return std::tanh(x);
      case sigmoid: return 1.0 / (1.0 + std::exp(-x));
      case affine: return alpha * x + beta;
      case leaky_relu: return x >= 0 ? x : alpha * x;
      case thresholded_relu: return x >= alpha ? x : 0.0;
      case scaled_tanh: return alpha * std::tanh(beta * x);
      case hard_sigmoid: return std::min(std::max(alpha * x + beta, 0.0), 1.0);
      case elu: return x >= 0 ? x : alpha * (std::exp(x) - 1.0);
      case softsign: return x / (1.0 + std::fabs(x));
      case softplus: return std::log1p(std::exp(-std::fabs(x))) + std::max(x, 0.0);  // stable log(1+e^x)
    }
    return x;
  }
};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Looks up an activation by name; `uses_alpha`/`uses_beta` say which parameters it consumes.
bool find_activation(const std::string& name, Activation* a, bool* uses_alpha, bool* uses_beta) {
  const std::string n = lower(name);
  *uses_alpha = *uses_beta = false;
  a->alpha = a->beta = 0.0;
  if (n == "relu") a->kind = Activation::relu;
  else if (n == "tanh") a->kind = Activation::tanh_;
  else if (n == "sigmoid") a->kind = Activation::sigmoid;
  else if (n == "softsign") a->kind = Activation::softsign;
  else if (n == "softplus") a->kind = Activation::softplus;
  else if (n == "affine") { a->kind = Activation::affine; a->alpha = 1.0; a->beta = 0.0; *uses_alpha = *uses_beta = true; }
  else if (n == "leakyrelu") { a->kind = Activation::leaky_relu; a->alpha = 0.01; *uses_alpha = true; }
  else if (n == "thresholdedrelu") { a->kind = Activation::thresholded_relu; a->alpha = 1.0; *uses_alpha = true; }
  else if (n == "scaledtanh") { a->kind = Activation::scaled_tanh; a->alpha = 1.0; a->beta = 1.0; *uses_alpha = *uses_beta = true; }
  else if (n == "hardsigmoid") { a->kind = Activation::hard_sigmoid; a->alpha = 0.2; a->beta = 0.5; *uses_alpha = *uses_beta = true; }
  else if (n == "elu") { a->kind = Activation::elu; a->alpha = 1.0; *uses_alpha = true; }
  else return false;
  return true;
}

// Builds `count * num_dirs` activations from the attributes (defaults when absent). A list
// of `count` names for a bidirectional layer is used for both directions. activation_alpha
// and activation_beta are consumed in order by the activations that take them.
Status parse_activations(const KernelContext& ctx, const std::vector<std::string>& defaults, int64_t num_dirs,
                         std::vector<Activation>* out) {
  std::vector<std::string> names = ctx.node().attr_strings("activations");
  const size_t count = defaults.size();
  if (names.empty()) {
    for (int64_t d = 0; d < num_dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  } else if (names.size() == count && num_dirs == 2) {
    std::vector<std::string> twice = names;
    twice.insert(twice.end(), names.begin(), names.end());
    names = twice;
  } else if (names.size() != count * static_cast<size_t>(num_dirs)) {
    return ctx.invalid("activations has " + std::to_string(names.size()) + " entries, expected " +
                       std::to_string(count * num_dirs));
  }
  const std::vector<float> alphas = ctx.node().attr_floats("activation_alpha");
  const std::vector<float> betas = ctx.node().attr_floats("activation_beta");
  size_t ai = 0, bi = 0;
  out->clear();
  for (const std::string& name : names) {
    Activation a;
    bool ua = false, ub = false;
    if (!find_activation(name, &a, &ua, &ub)) return ctx.invalid("unknown activation '" + name + "'");
    if (ua && ai < alphas.size()) a.alpha = alphas[ai++];
    if (ub && bi < betas.size()) a.beta = betas[bi++];
    out->push_back(a);
  }
  return Status::ok();
}

Tensor tensor_from_doubles(DataType dtype, const Shape& shape, const std::vector<double>& v) {
  Tensor t(dtype, shape);
  visit_float(dtype, [&]<class T>() {
    T* p = t.data<T>();
    for (size_t i = 0; i < v.size(); ++i) p[i] = from_double<T>(v[i]);
  });
  return t;
}

Status check_shape(const KernelContext& ctx, const Tensor& t, const Shape& want, const char* name) {
  if (t.shape() != want)
    return ctx.invalid(std::string(name) + " has shape " + shape_to_string(t.shape()) + ", expected " +
                       shape_to_string(want));
  return Status::ok();
}

Status run_recurrent(KernelContext& ctx, CellKind kind) {
  const int64_t G = kind == CellKind::rnn ? 1 : kind == CellKind::gru ? 3 : 4;  // gates
  const Node& node = ctx.node();
  const Tensor& X = ctx.input(0);
  const Tensor& W = ctx.input(1);
  const Tensor& R = ctx.input(2);
  const Tensor& Bias = ctx.input(3);
  const Tensor& SeqLens = ctx.input(4);
  const Tensor& H0 = ctx.input(5);
  const Tensor& C0 = kind == CellKind::lstm ? ctx.input(6) : Tensor();
  const Tensor& P = kind == CellKind::lstm ? ctx.input(7) : Tensor();
  if (!X.defined() || !W.defined() || !R.defined()) return ctx.invalid("requires inputs X, W and R");
  const DataType dtype = X.dtype();
  if (!is_float_type(dtype)) return ctx.unsupported("dtype " + std::string(dtype_name(dtype)) + " is not supported");
  for (const Tensor* t : {&W, &R, &Bias, &H0, &C0, &P})
    if (t->defined() && t->dtype() != dtype) return ctx.invalid("all float inputs must share X's dtype");
  if (X.rank() != 3) return ctx.invalid("X must be 3-D, got " + shape_to_string(X.shape()));
  if (W.rank() != 3 || R.rank() != 3) return ctx.invalid("W and R must be 3-D");

  const int64_t layout = node.attr_int("layout", 0);
  if (layout != 0 && layout != 1) return ctx.invalid("layout must be 0 or 1");
  const std::string direction = node.attr_string("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return ctx.invalid("unknown direction '" + direction + "'");
  const int64_t D = direction == "bidirectional" ? 2 : 1;
  const int64_t S = layout == 0 ? X.dim(0) : X.dim(1);
  const int64_t Bt = layout == 0 ? X.dim(1) : X.dim(0);
  const int64_t I = X.dim(2);
  const int64_t H = node.has_attr("hidden_size") ? node.attr_int("hidden_size", 0) : R.dim(2);
  if (H <= 0 || H > (int64_t{1} << 24)) return ctx.invalid("hidden_size must be positive, got " + std::to_string(H));
  TANDEM_RETURN_IF_ERROR(check_shape(ctx, W, {D, G * H, I}, "W"));
  TANDEM_RETURN_IF_ERROR(check_shape(ctx, R, {D, G * H, H}, "R"));
  if (Bias.defined()) TANDEM_RETURN_IF_ERROR(check_shape(ctx, Bias, {D, 2 * G * H}, "B"));
  const Shape state_shape = layout == 0 ? Shape{D, Bt, H} : Shape{Bt, D, H};
  if (H0.defined()) TANDEM_RETURN_IF_ERROR(check_shape(ctx, H0, state_shape, "initial_h"));
  if (C0.defined()) TANDEM_RETURN_IF_ERROR(check_shape(ctx, C0, state_shape, "initial_c"));
  if (P.defined()) TANDEM_RETURN_IF_ERROR(check_shape(ctx, P, {D, 3 * H}, "P"));
  const Shape y_shape = layout == 0 ? Shape{S, D, Bt, H} : Shape{Bt, S, D, H};
  for (int64_t d : y_shape)
    if (d < 0) return ctx.invalid("negative dimension");
  if (static_cast<double>(S) * D * Bt * H > static_cast<double>(int64_t{1} << 40)) return ctx.invalid("output is too large");

  std::vector<int64_t> lens(static_cast<size_t>(Bt), S);
  if (SeqLens.defined()) {
    if (!is_integer_type(SeqLens.dtype())) return ctx.invalid("sequence_lens must be an integer tensor");
    if (SeqLens.shape() != Shape{Bt}) return ctx.invalid("sequence_lens must have shape [" + std::to_string(Bt) + "]");
    lens = to_int64_vector(SeqLens);
    for (int64_t l : lens)
      if (l < 0 || l > S) return ctx.invalid("sequence_lens value " + std::to_string(l) + " is outside [0, seq_length]");
  }

  std::vector<std::string> default_acts;
  if (kind == CellKind::rnn) default_acts = {"Tanh"};
  else if (kind == CellKind::gru) default_acts = {"Sigmoid", "Tanh"};
  else default_acts = {"Sigmoid", "Tanh", "Tanh"};
  const int64_t n_act = static_cast<int64_t>(default_acts.size());
  std::vector<Activation> acts;
  TANDEM_RETURN_IF_ERROR(parse_activations(ctx, default_acts, D, &acts));
  const double clip = node.has_attr("clip") ? node.attr_float("clip", 0.0f) : std::numeric_limits<double>::infinity();
  if (!(clip > 0)) return ctx.invalid("clip must be positive");
  const bool linear_before_reset = node.attr_int("linear_before_reset", 0) != 0;
  const bool input_forget = node.attr_int("input_forget", 0) != 0;
  auto clamp = [clip](double v) { return std::min(std::max(v, -clip), clip); };

  const std::vector<double> x = to_double_vector(X);
  const std::vector<double> w = to_double_vector(W);
  const std::vector<double> r = to_double_vector(R);
  const std::vector<double> bias = Bias.defined() ? to_double_vector(Bias) : std::vector<double>(D * 2 * G * H, 0.0);
  const std::vector<double> h0 = H0.defined() ? to_double_vector(H0) : std::vector<double>(D * Bt * H, 0.0);
  const std::vector<double> c0 = C0.defined() ? to_double_vector(C0) : std::vector<double>(D * Bt * H, 0.0);
  const std::vector<double> peep = P.defined() ? to_double_vector(P) : std::vector<double>(D * 3 * H, 0.0);

  std::vector<double> y(static_cast<size_t>(S * D * Bt * H), 0.0);
  std::vector<double> yh(static_cast<size_t>(D * Bt * H), 0.0), yc(yh.size(), 0.0);
  auto x_index = [&](int64_t t, int64_t b) { return layout == 0 ? (t * Bt + b) * I : (b * S + t) * I; };
  auto state_index = [&](int64_t d, int64_t b) { return layout == 0 ? (d * Bt + b) * H : (b * D + d) * H; };
  auto y_index = [&](int64_t t, int64_t d, int64_t b) {
    return layout == 0 ? ((t * D + d) * Bt + b) * H : ((b * S + t) * D + d) * H;
  };

  std::vector<double> h(H), c(H), wx(G * H), rh(G * H), h_new(H), gate_r(H);
  for (int64_t d = 0; d < D; ++d) {
    const bool reverse = direction == "reverse" || d == 1;
    const double* Wd = w.data() + d * G * H * I;
    const double* Rd = r.data() + d * G * H * H;
    const double* Wb = bias.data() + d * 2 * G * H;
    const double* Rb = Wb + G * H;
    const double* Pd = peep.data() + d * 3 * H;
    const Activation* act = acts.data() + d * n_act;
    for (int64_t b = 0; b < Bt; ++b) {
      const int64_t si = state_index(d, b);
      std::copy(h0.begin() + si, h0.begin() + si + H, h.begin());
      std::copy(c0.begin() + si, c0.begin() + si + H, c.begin());
      const int64_t len = lens[b];
      for (int64_t step = 0; step < len; ++step) {
        const int64_t t = reverse ? len - 1 - step : step;
        const double* xt = x.data() + x_index(t, b);
        // Input and recurrent projections of every gate, each with its own bias.
        for (int64_t row = 0; row < G * H; ++row) {
          double sx = Wb[row], sr = Rb[row];
          for (int64_t i = 0; i < I; ++i) sx += Wd[row * I + i] * xt[i];
          for (int64_t k = 0; k < H; ++k) sr += Rd[row * H + k] * h[k];
          wx[row] = sx;
          rh[row] = sr;
        }
        if (kind == CellKind::rnn) {
          for (int64_t j = 0; j < H; ++j) h_new[j] = act[0](clamp(wx[j] + rh[j]));
        } else if (kind == CellKind::gru) {
          // Gates z, r, h (rows [0,H), [H,2H), [2H,3H)).
          for (int64_t j = 0; j < H; ++j) gate_r[j] = act[0](clamp(wx[H + j] + rh[H + j]));
          for (int64_t j = 0; j < H; ++j) {
            const double z = act[0](clamp(wx[j] + rh[j]));
            double pre;
            if (linear_before_reset) {
              pre = wx[2 * H + j] + gate_r[j] * rh[2 * H + j];
            } else {
              double s = Rb[2 * H + j];
              for (int64_t k = 0; k < H; ++k) s += Rd[(2 * H + j) * H + k] * (gate_r[k] * h[k]);
              pre = wx[2 * H + j] + s;
            }
            const double hh = act[1](clamp(pre));
            h_new[j] = (1.0 - z) * hh + z * h[j];
          }
        } else {
          // Gates i, o, f, c (rows [0,H), [H,2H), [2H,3H), [3H,4H)); peepholes i, o, f.
          for (int64_t j = 0; j < H; ++j) {
            const double gi = act[0](clamp(wx[j] + rh[j] + Pd[j] * c[j]));
            double gf = act[0](clamp(wx[2 * H + j] + rh[2 * H + j] + Pd[2 * H + j] * c[j]));
            if (input_forget) gf = 1.0 - gi;
            const double gc = act[1](clamp(wx[3 * H + j] + rh[3 * H + j]));
            const double cn = gf * c[j] + gi * gc;
            const double go = act[0](clamp(wx[H + j] + rh[H + j] + Pd[H + j] * cn));
            c[j] = cn;  // c[j] is only read for unit j above, so updating in place is safe
            h_new[j] = go * act[2](cn);
          }
        }
        h = h_new;
        std::copy(h.begin(), h.end(), y.begin() + y_index(t, d, b));
      }
      std::copy(h.begin(), h.end(), yh.begin() + si);
      std::copy(c.begin(), c.end(), yc.begin() + si);
    }
  }
  if (ctx.has_output(0)) ctx.set_output(0, tensor_from_doubles(dtype, y_shape, y));
  if (ctx.has_output(1)) ctx.set_output(1, tensor_from_doubles(dtype, state_shape, yh));
  if (kind == CellKind::lstm && ctx.has_output(2)) ctx.set_output(2, tensor_from_doubles(dtype, state_shape, yc));
  return Status::ok();
}

Status rnn_kernel(KernelContext& ctx) { return run_recurrent(ctx, CellKind::rnn); }
Status gru_kernel(KernelContext& ctx) { return run_recurrent(ctx, CellKind::gru); }
Status lstm_kernel(KernelContext& ctx) { return run_recurrent(ctx, CellKind::lstm); }

}  // namespace

void register_rnn_kernels(KernelTable& t) {
  t.add("", "RNN", &rnn_kernel);
  t.add("", "GRU", &gru_kernel);
  t.add("", "LSTM", &lstm_kernel);
}

}  // namespace tandem
