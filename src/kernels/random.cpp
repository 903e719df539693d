// Reference kernels: random generators (RandomUniform, RandomNormal and their *Like forms,
// Bernoulli, Multinomial).
//
// With a `seed` attribute the output is deterministic: every run of the node gives the same
// values. Without one the generator is seeded from std::random_device. The streams are built
// from std::mt19937_64 with our own uniform/normal transforms (the std:: distributions are
// implementation-defined), so seeded results are the same on every platform.
#include <bit>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {

namespace {

constexpr int64_t kMaxElements = int64_t{1} << 31;

class Rng {
 public:
  explicit Rng(const Node& node) {
    if (const Attribute* a = node.attr("seed")) {
      // The seed is a float attribute; its bit pattern keeps distinct seeds (0.5, 0.7) distinct.
      const uint64_t bits = a->type == AttrType::i ? static_cast<uint64_t>(a->i)
                                                   : static_cast<uint64_t>(std::bit_cast<uint32_t>(a->f));
      engine_.seed(bits);
    } else {
      std::random_device rd;
      engine_.seed((static_cast<uint64_t>(rd()) << 32) ^ rd());
    }
  }
  // Uniform in [0, 1) with 53 random bits.
  double uniform() { return static_cast<double>(engine_() >> 11) * 0x1.0p-53; }
  // Standard normal (Box-Muller; 1 - u keeps the logarithm's argument in (0, 1]).
  double normal() {
    const double u1 = 1.0 - uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * 3.14159265358979323846 * u2);
  }

 private:
  std::mt19937_64 engine_;
};

Status check_shape(const KernelContext& ctx, const Shape& shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) return ctx.invalid("shape " + shape_to_string(shape) + " has a negative dimension");
    if (d != 0 && n > kMaxElements / d) return ctx.invalid("shape " + shape_to_string(shape) + " is too large");
    n *= d;
  }
  return Status::ok();
}

// Output dtype of the generators: the `dtype` attribute, else `fallback`; must be a float type.
Result<DataType> float_output_dtype(const KernelContext& ctx, DataType fallback) {
  DataType dt = fallback;
  if (ctx.node().has_attr("dtype")) dt = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  if (!is_float_type(dt)) return ctx.invalid("output dtype must be a float type, got " + std::string(dtype_name(dt)));
  return dt;
}

// Fills a new tensor with uniform values in [low, high).
Tensor make_uniform(Rng& rng, DataType dt, const Shape& shape, double low, double high) {
  Tensor out(dt, shape);
  visit_float(dt, [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) {
      // Rounding to a narrow type can land exactly on `high`; draw again in that rare case.
      T v = from_double<T>(low);
      for (int tries = 0; tries < 64; ++tries) {
        T candidate = from_double<T>(low + (high - low) * rng.uniform());
        if (to_double(candidate) < high || high <= low) {
          v = candidate;
          break;
        }
      }
      o[i] = v;
    }
  });
  return out;
}

Tensor make_normal(Rng& rng, DataType dt, const Shape& shape, double mean, double scale) {
  Tensor out(dt, shape);
  visit_float(dt, [&]<class T>() {
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = from_double<T>(mean + scale * rng.normal());
  });
  return out;
}

Result<Shape> shape_attr(const KernelContext& ctx) {
  if (!ctx.node().has_attr("shape")) return ctx.invalid("missing attribute 'shape'");
  Shape shape = ctx.node().attr_ints("shape");
  TANDEM_RETURN_IF_ERROR(check_shape(ctx, shape));
  return shape;
}

Result<Tensor> like_input(const KernelContext& ctx) {
  const Tensor& t = ctx.input(0);
  if (!t.defined()) return ctx.invalid("missing required input 'input'");
  return t;
}

Status random_uniform_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Shape shape, shape_attr(ctx));
  TANDEM_ASSIGN_OR_RETURN(DataType dt, float_output_dtype(ctx, DataType::float32));
  const double low = ctx.node().attr_float("low", 0.0f), high = ctx.node().attr_float("high", 1.0f);
  if (!(low <= high)) return ctx.invalid("low must not exceed high");
  Rng rng(ctx.node());
  ctx.set_output(0, make_uniform(rng, dt, shape, low, high));
  return Status::ok();
}

Status random_uniform_like_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor in, like_input(ctx));
  TANDEM_ASSIGN_OR_RETURN(DataType dt, float_output_dtype(ctx, in.dtype()));
  const double low = ctx.node().attr_float("low", 0.0f), high = ctx.node().attr_float("high", 1.0f);
  if (!(low <= high)) return ctx.invalid("low must not exceed high");
  Rng rng(ctx.node());
  ctx.set_output(0, make_uniform(rng, dt, in.shape(), low, high));
  return Status::ok();
}

Status random_normal_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Shape shape, shape_attr(ctx));
  TANDEM_ASSIGN_OR_RETURN(DataType dt, float_output_dtype(ctx, DataType::float32));
  Rng rng(ctx.node());
  ctx.set_output(0, make_normal(rng, dt, shape, ctx.node().attr_float("mean", 0.0f), ctx.node().attr_float("scale", 1.0f)));
  return Status::ok();
}

Status random_normal_like_kernel(KernelContext& ctx) {
  TANDEM_ASSIGN_OR_RETURN(Tensor in, like_input(ctx));
  TANDEM_ASSIGN_OR_RETURN(DataType dt, float_output_dtype(ctx, in.dtype()));
  Rng rng(ctx.node());
  ctx.set_output(0,
                 make_normal(rng, dt, in.shape(), ctx.node().attr_float("mean", 0.0f), ctx.node().attr_float("scale", 1.0f)));
  return Status::ok();
}

// Bernoulli: output[i] = 1 with probability input[i], else 0, in the `dtype` attribute's type
// (default: the input's type).
Status bernoulli_kernel(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  if (!in.defined()) return ctx.invalid("missing required input 'input'");
  if (!is_float_type(in.dtype())) return ctx.invalid("input must hold float probabilities");
  DataType dt = in.dtype();
  if (ctx.node().has_attr("dtype")) dt = static_cast<DataType>(ctx.node().attr_int("dtype", 1));
  const std::vector<double> p = to_double_vector(in);
  for (double v : p)
    if (!(v >= 0.0 && v <= 1.0)) return ctx.invalid("probabilities must be in [0, 1]");
  Rng rng(ctx.node());
  Tensor out;
  bool ok = visit_numeric(dt, [&]<class T>() {
    out = Tensor(dt, in.shape());
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = from_double<T>(rng.uniform() < p[i] ? 1.0 : 0.0);
  });
  if (!ok) return ctx.invalid("unsupported output dtype " + std::string(dtype_name(dt)));
  ctx.set_output(0, out);
  return Status::ok();
}

// Multinomial: input [batch, classes] holds unnormalized log-probabilities; draws sample_size
// class indices per batch row.
Status multinomial_kernel(KernelContext& ctx) {
  const Tensor& in = ctx.input(0);
  if (!in.defined()) return ctx.invalid("missing required input 'input'");
  if (!is_float_type(in.dtype())) return ctx.invalid("input must be a float tensor");
  if (in.rank() != 2) return ctx.invalid("input must be 2-D [batch, classes], got rank " + std::to_string(in.rank()));
  const int64_t batch = in.dim(0), classes = in.dim(1);
  const int64_t samples = ctx.node().attr_int("sample_size", 1);
  if (samples < 1) return ctx.invalid("sample_size must be positive");
  const DataType dt = static_cast<DataType>(ctx.node().attr_int("dtype", static_cast<int64_t>(DataType::int32)));
  if (dt != DataType::int32 && dt != DataType::int64) return ctx.invalid("dtype must be int32 or int64");
  TANDEM_RETURN_IF_ERROR(check_shape(ctx, {batch, samples}));
  if (batch > 0 && classes == 0) return ctx.invalid("input has no classes");
  const std::vector<double> logits = to_double_vector(in);
  Rng rng(ctx.node());
  std::vector<int64_t> drawn(static_cast<size_t>(batch * samples));
  std::vector<double> cumulative(static_cast<size_t>(classes));
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = logits.data() + b * classes;
    double max = -INFINITY;
    for (int64_t c = 0; c < classes; ++c) {
      if (std::isnan(row[c]) || row[c] == INFINITY) return ctx.invalid("log-probabilities must not be NaN or +inf");
      max = std::max(max, row[c]);
    }
    if (max == -INFINITY) return ctx.invalid("row " + std::to_string(b) + " has no class with nonzero probability");
    double total = 0.0;
    for (int64_t c = 0; c < classes; ++c) cumulative[c] = total += std::exp(row[c] - max);
    for (int64_t s = 0; s < samples; ++s) {
      const double u = rng.uniform() * total;
      int64_t pick = classes - 1;
      for (int64_t c = 0; c < classes; ++c)
        if (u < cumulative[c]) {
          pick = c;
          break;
        }
      drawn[b * samples + s] = pick;
    }
  }
  if (dt == DataType::int64) {
    ctx.set_output(0, Tensor::from_vector<int64_t>({batch, samples}, drawn));
  } else {
    std::vector<int32_t> narrow(drawn.begin(), drawn.end());
    ctx.set_output(0, Tensor::from_vector<int32_t>({batch, samples}, narrow));
  }
  return Status::ok();
}

}  // namespace

void register_random_kernels(KernelTable& t) {
  t.add("", "RandomUniform", &random_uniform_kernel);
  t.add("", "RandomUniformLike", &random_uniform_like_kernel);
  t.add("", "RandomNormal", &random_normal_kernel);
  t.add("", "RandomNormalLike", &random_normal_like_kernel);
  t.add("", "Bernoulli", &bernoulli_kernel);
  t.add("", "Multinomial", &multinomial_kernel);
}

}  // namespace tandem
