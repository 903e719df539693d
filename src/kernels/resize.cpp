// Reference kernels: resampling ops (Resize, Upsample, GridSample, RoiAlign).
//
// Resize is computed separably: for every axis and every output coordinate along it we derive
// the input coordinate (per coordinate_transformation_mode) and a short list of taps
// (input index, weight) from the interpolation kernel. An output element is the weighted sum
// over the cartesian product of its per-axis taps, accumulated in double. This is the same
// math as the ONNX reference's recursive 1-D interpolation, written without recursion.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "kernels/resize_coordinates.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

// Upper bound on elements we are willing to allocate for an output (Tensor allocation itself
// cannot report failure) and that keeps all index arithmetic far from overflow.
constexpr int64_t kMaxOutputElements = int64_t{1} << 31;

// --- Resize / Upsample ------------------------------------------------------------------------

enum class InterpMode { nearest, linear, cubic };
using resize::CoordMode;
using resize::NearestMode;

struct ResizeParams {
  InterpMode mode = InterpMode::nearest;
  CoordMode coord = CoordMode::half_pixel;
  NearestMode nearest = NearestMode::round_prefer_floor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  bool antialias = false;
  double extrapolation_value = 0.0;
};

using resize::Tap;

// Taps of every output coordinate along one axis.
struct AxisPlan {
  std::vector<std::vector<Tap>> taps;  // [out] -> taps
  std::vector<char> outside;           // [out] -> 1 when tf_crop_and_resize extrapolates
};

double cubic_kernel(double x, double a) {
  x = std::fabs(x);
  if (x <= 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0;
  if (x < 2.0) return ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a;
  return 0.0;
}

// Interpolation weights for fractional position `ratio` in (0, 1] right of tap `first + k`
// where first is the returned start offset relative to the base index.
void kernel_weights(const ResizeParams& p, double ratio, double scale, int64_t* first, std::vector<double>* w) {
  w->clear();
  if (p.mode == InterpMode::linear) {
    if (p.antialias && scale < 1.0) {
      int64_t start = static_cast<int64_t>(std::floor(-1.0 / scale)) + 1;
      int64_t footprint = 2 - 2 * start;
      double sum = 0.0;
      for (int64_t i = 0; i < footprint; ++i) {
        double arg = (static_cast<double>(start + i) - ratio) * scale;
        double c = std::clamp(1.0 - std::fabs(arg), 0.0, 1.0);
        w->push_back(c);
        sum += c;
      }
      for (double& c : *w) c /= sum;
      *first = start;
    } else {
      *w = {1.0 - ratio, ratio};
      *first = 0;
    }
    return;
  }
  // cubic
  if (p.antialias && scale < 1.0) {
    int64_t start = static_cast<int64_t>(std::floor(-2.0 / scale)) + 1;
    int64_t end = 2 - start;
    double sum = 0.0;
    for (int64_t i = start; i < end; ++i) {
      double c = cubic_kernel(scale * (static_cast<double>(i) - ratio), p.cubic_a);
      w->push_back(c);
      sum += c;
    }
    for (double& c : *w) c /= sum;
    *first = start;
  } else {
    const double a = p.cubic_a;
    double r = ratio;
    double q = 1.0 - ratio;
    *w = {((a * (r + 1.0) - 5.0 * a) * (r + 1.0) + 8.0 * a) * (r + 1.0) - 4.0 * a,
          ((a + 2.0) * r - (a + 3.0)) * r * r + 1.0,
          ((a + 2.0) * q - (a + 3.0)) * q * q + 1.0,
          ((a * (q + 1.0) - 5.0 * a) * (q + 1.0) + 8.0 * a) * (q + 1.0) - 4.0 * a};
    *first = -1;
  }
}

AxisPlan plan_axis(int64_t in_len, int64_t out_size, double scale, double roi_start, double roi_end,
                   const ResizeParams& p) {
  AxisPlan plan;
  plan.taps.resize(static_cast<size_t>(out_size));
  plan.outside.assign(static_cast<size_t>(out_size), 0);
  const double out_len = scale * static_cast<double>(in_len);
  std::vector<double> w;
  for (int64_t o = 0; o < out_size; ++o) {
    double x = resize::original_coordinate(p.coord, static_cast<double>(o), scale, in_len, out_len, out_size, roi_start,
                                   roi_end);
    if (p.coord == CoordMode::tf_crop_and_resize && (x < 0.0 || x > static_cast<double>(in_len - 1))) {
      plan.outside[o] = 1;
      continue;
    }
    if (!std::isfinite(x)) x = 0.0;
    std::vector<Tap>& taps = plan.taps[o];
    if (p.mode == InterpMode::nearest) {
      taps.push_back({resize::nearest_index(p.nearest, x, scale, in_len), 1.0});
      continue;
    }
    if (p.mode == InterpMode::linear && !p.antialias && !p.exclude_outside) {
      Tap two[2];
      taps.assign(two, two + resize::linear_taps(x, in_len, two));
      continue;
    }
    // The ONNX reference takes ratio in (0, 1]: an integral x sits at ratio 1 right of x - 1.
    double fl = std::floor(x);
    int64_t base = static_cast<int64_t>(fl);
    double ratio = x - fl;
    if (ratio == 0.0) {
      base -= 1;
      ratio = 1.0;
    }
    int64_t first = 0;
    kernel_weights(p, ratio, scale, &first, &w);
    if (p.exclude_outside) {
      double sum = 0.0;
      for (size_t k = 0; k < w.size(); ++k) {
        int64_t idx = base + first + static_cast<int64_t>(k);
        if (idx < 0 || idx >= in_len) w[k] = 0.0;
        sum += w[k];
      }
      if (sum != 0.0)
        for (double& c : w) c /= sum;
    }
    for (size_t k = 0; k < w.size(); ++k) {
      if (w[k] == 0.0) continue;  // exact zero weight: contributes nothing
      int64_t idx = std::clamp<int64_t>(base + first + static_cast<int64_t>(k), 0, in_len - 1);
      taps.push_back({idx, w[k]});
    }
  }
  return plan;
}

// Resamples X into out_shape. `scales` and `roi` (2*rank: starts then ends) are per axis.
Status resample(KernelContext& ctx, const Tensor& x, const Shape& out_shape, const std::vector<double>& scales,
                const std::vector<double>& roi, const ResizeParams& p) {
  const size_t rank = x.rank();
  int64_t total = 1;
  for (int64_t d : out_shape) {
    if (d < 0) return ctx.invalid("output dimension " + std::to_string(d) + " is negative");
    if (d > 0 && total > kMaxOutputElements / d) return ctx.invalid("output shape is too large");
    total *= d;
  }
  Tensor out(x.dtype(), out_shape);
  if (total == 0) {
    ctx.set_output(0, std::move(out));
    return Status::ok();
  }
  if (x.numel() == 0) return ctx.invalid("cannot resize an empty input into a non-empty output");

  std::vector<AxisPlan> plans(rank);
  for (size_t d = 0; d < rank; ++d)
    plans[d] = plan_axis(x.dim(d), out_shape[d], scales[d], roi[d], roi[rank + d], p);
  const std::vector<int64_t> in_strides = strides_of(x.shape());

  if (p.mode == InterpMode::nearest) {
    // Pure selection: copy elements, which works for every dtype (strings included).
    bool ok = visit_any(x.dtype(), [&]<class T>() {
      const T* src = x.data<T>();
      T* dst = out.data<T>();
      const T fill = [&] {
        if constexpr (std::is_arithmetic_v<T> || std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>)
          return from_double<T>(p.extrapolation_value);
        else
          return T{};
      }();
      std::vector<int64_t> coord(rank, 0);
      for (int64_t i = 0; i < total; ++i) {
        int64_t off = 0;
        bool outside = false;
        for (size_t d = 0; d < rank; ++d) {
          if (plans[d].outside[coord[d]]) {
            outside = true;
            break;
          }
          off += plans[d].taps[coord[d]][0].index * in_strides[d];
        }
        dst[i] = outside ? fill : src[off];
        for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
          if (++coord[d] < out_shape[d]) break;
          coord[d] = 0;
        }
      }
    });
    if (!ok) return ctx.invalid("unsupported input dtype " + std::string(dtype_name(x.dtype())));
    ctx.set_output(0, std::move(out));
    return Status::ok();
  }

  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    std::vector<int64_t> coord(rank, 0);
    std::vector<size_t> tap(rank, 0);
    for (int64_t i = 0; i < total; ++i) {
      bool outside = false;
      for (size_t d = 0; d < rank; ++d) outside = outside || plans[d].outside[coord[d]];
      double acc = 0.0;
      if (outside) {
        acc = p.extrapolation_value;
      } else {
        // Odometer over the cartesian product of the per-axis taps.
        std::fill(tap.begin(), tap.end(), 0);
        bool empty = false;
        for (size_t d = 0; d < rank; ++d) empty = empty || plans[d].taps[coord[d]].empty();
        while (!empty) {
          double w = 1.0;
          int64_t off = 0;
          for (size_t d = 0; d < rank; ++d) {
            const Tap& t = plans[d].taps[coord[d]][tap[d]];
            w *= t.weight;
            off += t.index * in_strides[d];
          }
          acc += w * to_double(src[off]);
          int64_t d = static_cast<int64_t>(rank) - 1;
          for (; d >= 0; --d) {
            if (++tap[d] < plans[d].taps[coord[d]].size()) break;
            tap[d] = 0;
          }
          if (d < 0) break;
        }
      }
      dst[i] = from_double<T>(acc);
      for (int64_t d = static_cast<int64_t>(rank) - 1; d >= 0; --d) {
        if (++coord[d] < out_shape[d]) break;
        coord[d] = 0;
      }
    }
  });
  if (!ok) return ctx.invalid("unsupported input dtype " + std::string(dtype_name(x.dtype())) + " for " +
                              (p.mode == InterpMode::linear ? "linear" : "cubic") + " mode");
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

Result<InterpMode> parse_interp_mode(const KernelContext& ctx, const std::string& mode) {
  if (mode == "nearest") return InterpMode::nearest;
  if (mode == "linear" || mode == "bilinear" || mode == "trilinear") return InterpMode::linear;
  if (mode == "cubic" || mode == "bicubic") return InterpMode::cubic;
  return ctx.invalid("unknown mode '" + mode + "'");
}

Status check_scales(const KernelContext& ctx, const std::vector<double>& scales) {
  for (double s : scales)
    if (!(s > 0.0) || !std::isfinite(s)) return ctx.invalid("scales must be positive and finite");
  return Status::ok();
}

// Output shape from scales: floor(in * scale).
Result<Shape> shape_from_scales(const KernelContext& ctx, const Tensor& x, const std::vector<double>& scales) {
  Shape out(x.rank());
  for (size_t d = 0; d < x.rank(); ++d) {
    double v = std::floor(static_cast<double>(x.dim(d)) * scales[d]);
    if (v > static_cast<double>(kMaxOutputElements)) return ctx.invalid("output shape is too large");
    out[d] = static_cast<int64_t>(v);
  }
  return out;
}

// Upsample (opsets 1, 7, 9; deprecated in 10) and Resize-10: nearest/linear, asymmetric coordinates.
Status legacy_resample(KernelContext& ctx, const std::vector<double>& scales, const std::string& mode_name) {
  const Tensor& x = ctx.input(0);
  if (scales.size() != x.rank())
    return ctx.invalid("scales has " + std::to_string(scales.size()) + " elements, expected the input rank " +
                       std::to_string(x.rank()));
  TANDEM_RETURN_IF_ERROR(check_scales(ctx, scales));
  ResizeParams p;
  TANDEM_ASSIGN_OR_RETURN(p.mode, parse_interp_mode(ctx, mode_name));
  if (p.mode == InterpMode::cubic) return ctx.invalid("cubic mode needs Resize opset 11 or later");
  p.coord = CoordMode::asymmetric;
  p.nearest = NearestMode::legacy;
  TANDEM_ASSIGN_OR_RETURN(Shape out_shape, shape_from_scales(ctx, x, scales));
  std::vector<double> roi(2 * x.rank(), 0.0);
  for (size_t d = 0; d < x.rank(); ++d) roi[x.rank() + d] = 1.0;
  return resample(ctx, x, out_shape, scales, roi, p);
}

Status upsample_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input X");
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  std::vector<double> scales;
  if (ctx.has_input(1)) {
    if (!is_float_type(ctx.input(1).dtype())) return ctx.invalid("scales must be a float tensor");
    scales = to_double_vector(ctx.input(1));
  } else if (n.has_attr("scales")) {
    for (float f : n.attr_floats("scales")) scales.push_back(f);
  } else if (n.has_attr("height_scale") || n.has_attr("width_scale")) {
    if (x.rank() != 4) return ctx.invalid("height_scale/width_scale need a 4-D input");
    scales = {1.0, 1.0, n.attr_float("height_scale", 1.0f), n.attr_float("width_scale", 1.0f)};
  } else {
    return ctx.invalid("missing scales");
  }
  return legacy_resample(ctx, scales, n.attr_string("mode", "nearest"));
}

Status resize_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0)) return ctx.invalid("missing input X");
  const Tensor& x = ctx.input(0);
  const Node& n = ctx.node();
  const size_t rank = x.rank();
  if (ctx.opset() > 0 && ctx.opset() < 11) {
    if (!ctx.has_input(1)) return ctx.invalid("missing input scales");
    if (!is_float_type(ctx.input(1).dtype())) return ctx.invalid("scales must be a float tensor");
    return legacy_resample(ctx, to_double_vector(ctx.input(1)), n.attr_string("mode", "nearest"));
  }

  ResizeParams p;
  TANDEM_ASSIGN_OR_RETURN(p.mode, parse_interp_mode(ctx, n.attr_string("mode", "nearest")));
  const std::string coord = n.attr_string("coordinate_transformation_mode", "half_pixel");
  const std::optional<CoordMode> coord_mode = resize::parse_coord_mode(coord);
  if (!coord_mode) return ctx.invalid("unknown coordinate_transformation_mode '" + coord + "'");
  p.coord = *coord_mode;
  const std::string nearest = n.attr_string("nearest_mode", "round_prefer_floor");
  const std::optional<NearestMode> nearest_mode = resize::parse_nearest_mode(nearest);
  if (!nearest_mode) return ctx.invalid("unknown nearest_mode '" + nearest + "'");
  p.nearest = *nearest_mode;
  p.cubic_a = n.attr_float("cubic_coeff_a", -0.75f);
  p.exclude_outside = n.attr_int("exclude_outside", 0) != 0;
  p.antialias = n.attr_int("antialias", 0) != 0;
  p.extrapolation_value = n.attr_float("extrapolation_value", 0.0f);
  const std::string policy = n.attr_string("keep_aspect_ratio_policy", "stretch");
  if (policy != "stretch" && policy != "not_larger" && policy != "not_smaller")
    return ctx.invalid("unknown keep_aspect_ratio_policy '" + policy + "'");

  // Axes the roi/scales/sizes inputs refer to (opset 18); all axes by default.
  std::vector<int64_t> axes;
  if (n.has_attr("axes")) {
    std::vector<char> seen(rank, 0);
    for (int64_t a : n.attr_ints("axes")) {
      Result<int64_t> na = normalize_axis(a, static_cast<int64_t>(rank));
      if (!na.is_ok()) return ctx.invalid(na.status().message());
      if (seen[*na]) return ctx.invalid("axes contains a duplicate");
      seen[*na] = 1;
      axes.push_back(*na);
    }
  } else {
    for (size_t d = 0; d < rank; ++d) axes.push_back(static_cast<int64_t>(d));
  }
  const size_t k = axes.size();

  // roi: starts then ends, in normalized input coordinates.
  std::vector<double> roi(2 * rank, 0.0);
  for (size_t d = 0; d < rank; ++d) roi[rank + d] = 1.0;
  if (ctx.has_input(1) && ctx.input(1).numel() > 0) {
    if (!is_float_type(ctx.input(1).dtype())) return ctx.invalid("roi must be a float tensor");
    std::vector<double> r = to_double_vector(ctx.input(1));
    if (r.size() != 2 * k)
      return ctx.invalid("roi has " + std::to_string(r.size()) + " elements, expected " + std::to_string(2 * k));
    for (size_t i = 0; i < k; ++i) {
      roi[axes[i]] = r[i];
      roi[rank + axes[i]] = r[k + i];
    }
  }

  const bool has_scales = ctx.has_input(2) && ctx.input(2).numel() > 0;
  const bool has_sizes = ctx.has_input(3) && ctx.input(3).numel() > 0;
  if (has_scales == has_sizes) return ctx.invalid("exactly one of scales and sizes must be given");
  std::vector<double> scales(rank, 1.0);
  Shape out_shape = x.shape();
  if (has_scales) {
    if (!is_float_type(ctx.input(2).dtype())) return ctx.invalid("scales must be a float tensor");
    std::vector<double> s = to_double_vector(ctx.input(2));
    if (s.size() != k)
      return ctx.invalid("scales has " + std::to_string(s.size()) + " elements, expected " + std::to_string(k));
    TANDEM_RETURN_IF_ERROR(check_scales(ctx, s));
    for (size_t i = 0; i < k; ++i) scales[axes[i]] = s[i];
    TANDEM_ASSIGN_OR_RETURN(out_shape, shape_from_scales(ctx, x, scales));
  } else {
    const Tensor& st = ctx.input(3);
    if (st.dtype() != DataType::int64) return ctx.invalid("sizes must be an int64 tensor");
    std::vector<int64_t> sizes = to_int64_vector(st);
    if (sizes.size() != k)
      return ctx.invalid("sizes has " + std::to_string(sizes.size()) + " elements, expected " + std::to_string(k));
    for (int64_t v : sizes)
      if (v < 0) return ctx.invalid("sizes must be non-negative");
    for (size_t i = 0; i < k; ++i)
      if (x.dim(axes[i]) == 0 && sizes[i] != 0) return ctx.invalid("cannot resize an empty axis to a non-empty one");
    if (policy == "stretch") {
      for (size_t i = 0; i < k; ++i) {
        out_shape[axes[i]] = sizes[i];
        if (x.dim(axes[i]) > 0) scales[axes[i]] = static_cast<double>(sizes[i]) / static_cast<double>(x.dim(axes[i]));
      }
    } else {
      // One common scale so the aspect ratio is kept; the output is rounded to nearest.
      double scale = policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (size_t i = 0; i < k; ++i) {
        if (x.dim(axes[i]) == 0) continue;
        double r = static_cast<double>(sizes[i]) / static_cast<double>(x.dim(axes[i]));
        scale = policy == "not_larger" ? std::min(scale, r) : std::max(scale, r);
      }
      if (!std::isfinite(scale) || scale <= 0.0) return ctx.invalid("sizes do not define a positive scale");
      for (size_t i = 0; i < k; ++i) {
        scales[axes[i]] = scale;
        double v = scale * static_cast<double>(x.dim(axes[i])) + 0.5;
        if (v > static_cast<double>(kMaxOutputElements)) return ctx.invalid("output shape is too large");
        out_shape[axes[i]] = static_cast<int64_t>(v);
      }
    }
  }
  return resample(ctx, x, out_shape, scales, roi, p);
}

// --- GridSample -------------------------------------------------------------------------------

enum class PadMode { zeros, border, reflection };

// Reflects x into [lo, hi], repeatedly, as the ONNX reference does.
double reflect_coordinate(double x, double lo, double hi) {
  double range = hi - lo;
  if (range <= 0.0) return lo;
  if (x < lo) {
    double dx = lo - x;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2.0) == 0.0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    double n = std::floor(dx / range);
    double r = dx - n * range;
    return std::fmod(n, 2.0) == 0.0 ? hi - r : lo + r;
  }
  return x;
}

Status grid_sample_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.invalid("needs inputs X and grid");
  const Tensor& x = ctx.input(0);
  const Tensor& grid = ctx.input(1);
  const Node& n = ctx.node();
  if (x.rank() < 3) return ctx.invalid("X must have rank >= 3 (N, C, spatial...)");
  const size_t r = x.rank() - 2;  // number of spatial dims
  if (grid.rank() != r + 2 || grid.dim(0) != x.dim(0) || grid.dim(r + 1) != static_cast<int64_t>(r))
    return ctx.invalid("grid shape " + shape_to_string(grid.shape()) + " does not match X shape " +
                       shape_to_string(x.shape()));
  if (!is_float_type(grid.dtype())) return ctx.invalid("grid must be a float tensor");
  const std::string mode_name = n.attr_string("mode", ctx.opset() >= 20 ? "linear" : "bilinear");
  TANDEM_ASSIGN_OR_RETURN(InterpMode mode, parse_interp_mode(ctx, mode_name));
  const std::string pad_name = n.attr_string("padding_mode", "zeros");
  PadMode pad;
  if (pad_name == "zeros") pad = PadMode::zeros;
  else if (pad_name == "border") pad = PadMode::border;
  else if (pad_name == "reflection") pad = PadMode::reflection;
  else return ctx.invalid("unknown padding_mode '" + pad_name + "'");
  const bool align = n.attr_int("align_corners", 0) != 0;

  const int64_t N = x.dim(0), C = x.dim(1);
  Shape out_shape = {N, C};
  for (size_t i = 0; i < r; ++i) out_shape.push_back(grid.dim(1 + i));
  Tensor out(x.dtype(), out_shape);
  if (out.numel() == 0) {
    ctx.set_output(0, std::move(out));
    return Status::ok();
  }
  // Spatial dims of X in grid-component order: component 0 is the last (W) axis.
  std::vector<int64_t> dims(r), in_strides_sp(r);
  const std::vector<int64_t> xs = strides_of(x.shape());
  for (size_t i = 0; i < r; ++i) {
    dims[i] = x.dim(2 + r - 1 - i);
    in_strides_sp[i] = xs[2 + r - 1 - i];
  }
  for (int64_t d : dims)
    if (d == 0) return ctx.invalid("X has an empty spatial dimension");
  std::vector<double> lo(r), hi(r);
  for (size_t i = 0; i < r; ++i) {
    lo[i] = align ? 0.0 : -0.5;
    hi[i] = align ? static_cast<double>(dims[i] - 1) : static_cast<double>(dims[i]) - 0.5;
  }
  const std::vector<double> g = to_double_vector(grid);
  int64_t out_spatial = 1;
  for (size_t i = 0; i < r; ++i) out_spatial *= grid.dim(1 + i);

  bool ok = visit_numeric(x.dtype(), [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    std::vector<double> pos(r);
    std::vector<std::vector<Tap>> taps(r);
    std::vector<size_t> tap(r);
    for (int64_t b = 0; b < N; ++b) {
      for (int64_t s = 0; s < out_spatial; ++s) {
        const double* gp = g.data() + (b * out_spatial + s) * static_cast<int64_t>(r);
        for (size_t i = 0; i < r; ++i) {
          double v = align ? (gp[i] + 1.0) / 2.0 * static_cast<double>(dims[i] - 1)
                           : ((gp[i] + 1.0) * static_cast<double>(dims[i]) - 1.0) / 2.0;
          if (mode == InterpMode::nearest) v = std::nearbyint(v);
          if (v < lo[i] || v > hi[i]) {
            if (pad == PadMode::border) v = std::clamp(v, 0.0, static_cast<double>(dims[i] - 1));
            else if (pad == PadMode::reflection) v = reflect_coordinate(v, lo[i], hi[i]);
          }
          if (!std::isfinite(v)) v = -2.0 * static_cast<double>(dims[i]) - 4.0;  // NaN grid: far outside
          pos[i] = v;
        }
        // Per-axis taps; an index outside the input is padded per padding_mode (index -1 marks zero).
        auto add_tap = [&](size_t i, double idx_d, double w) {
          int64_t len = dims[i];
          int64_t idx = static_cast<int64_t>(idx_d);
          if (pad == PadMode::zeros) {
            if (idx < 0 || idx >= len) idx = -1;
          } else if (pad == PadMode::border) {
            idx = std::clamp<int64_t>(idx, 0, len - 1);
          } else {
            idx = static_cast<int64_t>(reflect_coordinate(idx_d, lo[i], hi[i]));
            idx = std::clamp<int64_t>(idx, 0, len - 1);
          }
          taps[i].push_back({idx, w});
        };
        for (size_t i = 0; i < r; ++i) {
          taps[i].clear();
          double v = pos[i];
          // Far-out coordinates only ever read padding; keep index arithmetic in range.
          v = std::clamp(v, -2.0 * static_cast<double>(dims[i]) - 4.0, 3.0 * static_cast<double>(dims[i]) + 4.0);
          if (mode == InterpMode::nearest) {
            add_tap(i, v, 1.0);
          } else if (mode == InterpMode::linear) {
            double f = std::floor(v);
            add_tap(i, f, f + 1.0 - v);
            add_tap(i, f + 1.0, v - f);
          } else {
            double f = std::floor(v);
            double t = v - f;
            const double a = -0.75;
            double c[4] = {((a * (t + 1.0) - 5.0 * a) * (t + 1.0) + 8.0 * a) * (t + 1.0) - 4.0 * a,
                           ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0,
                           ((a + 2.0) * (1.0 - t) - (a + 3.0)) * (1.0 - t) * (1.0 - t) + 1.0,
                           ((a * (2.0 - t) - 5.0 * a) * (2.0 - t) + 8.0 * a) * (2.0 - t) - 4.0 * a};
            for (int k = 0; k < 4; ++k) add_tap(i, f - 1.0 + k, c[k]);
          }
        }
        for (int64_t c = 0; c < C; ++c) {
          const T* plane = src + (b * C + c) * xs[1];
          double acc = 0.0;
          std::fill(tap.begin(), tap.end(), 0);
          while (true) {
            double w = 1.0;
            int64_t off = 0;
            bool zero = false;
            for (size_t i = 0; i < r; ++i) {
              const Tap& t = taps[i][tap[i]];
              w *= t.weight;
              if (t.index < 0) zero = true;
              else off += t.index * in_strides_sp[i];
            }
            if (!zero) acc += w * to_double(plane[off]);
            size_t i = 0;
            for (; i < r; ++i) {
              if (++tap[i] < taps[i].size()) break;
              tap[i] = 0;
            }
            if (i == r) break;
          }
          dst[(b * C + c) * out_spatial + s] = from_double<T>(acc);
        }
      }
    }
  });
  if (!ok) return ctx.invalid("unsupported input dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

// --- RoiAlign ---------------------------------------------------------------------------------

// Bilinear sample of one H x W plane at (y, x) with RoiAlign's edge rules; the four weighted
// corner values are returned separately because max mode takes their maximum.
struct BilinearSample {
  bool valid = false;
  double v[4] = {0, 0, 0, 0};  // weight * value at the four corners
};

template <class T>
BilinearSample roi_bilinear(const T* plane, int64_t H, int64_t W, double y, double x) {
  BilinearSample s;
  if (!std::isfinite(y) || !std::isfinite(x)) return s;
  if (y < -1.0 || y > static_cast<double>(H) || x < -1.0 || x > static_cast<double>(W)) return s;
  if (y <= 0) y = 0;
  if (x <= 0) x = 0;
  int64_t y_low = static_cast<int64_t>(y), x_low = static_cast<int64_t>(x);
  int64_t y_high, x_high;
  if (y_low >= H - 1) {
    y_high = y_low = H - 1;
    y = static_cast<double>(y_low);
  } else {
    y_high = y_low + 1;
  }
  if (x_low >= W - 1) {
    x_high = x_low = W - 1;
    x = static_cast<double>(x_low);
  } else {
    x_high = x_low + 1;
  }
  double ly = y - static_cast<double>(y_low), lx = x - static_cast<double>(x_low);
  double hy = 1.0 - ly, hx = 1.0 - lx;
  s.valid = true;
  s.v[0] = hy * hx * to_double(plane[y_low * W + x_low]);
  s.v[1] = hy * lx * to_double(plane[y_low * W + x_high]);
  s.v[2] = ly * hx * to_double(plane[y_high * W + x_low]);
  s.v[3] = ly * lx * to_double(plane[y_high * W + x_high]);
  return s;
}

Status roi_align_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1) || !ctx.has_input(2))
    return ctx.invalid("needs inputs X, rois and batch_indices");
  const Tensor& x = ctx.input(0);
  const Tensor& rois = ctx.input(1);
  const Tensor& batch = ctx.input(2);
  const Node& n = ctx.node();
  if (x.rank() != 4) return ctx.invalid("X must be 4-D (N, C, H, W), got " + shape_to_string(x.shape()));
  if (rois.rank() != 2 || rois.dim(1) != 4) return ctx.invalid("rois must have shape (num_rois, 4)");
  if (batch.rank() != 1 || batch.dim(0) != rois.dim(0))
    return ctx.invalid("batch_indices must have shape (num_rois)");
  if (!is_float_type(rois.dtype())) return ctx.invalid("rois must be a float tensor");
  if (!is_integer_type(batch.dtype())) return ctx.invalid("batch_indices must be an integer tensor");
  const std::string mode = n.attr_string("mode", "avg");
  if (mode != "avg" && mode != "max") return ctx.invalid("unknown mode '" + mode + "'");
  // Opset 10 had no coordinate_transformation_mode and behaved like output_half_pixel.
  const std::string coord =
      n.attr_string("coordinate_transformation_mode", ctx.opset() >= 16 ? "half_pixel" : "output_half_pixel");
  if (coord != "half_pixel" && coord != "output_half_pixel")
    return ctx.invalid("unknown coordinate_transformation_mode '" + coord + "'");
  const bool half_pixel = coord == "half_pixel";
  const bool avg = mode == "avg";
  const int64_t out_h = n.attr_int("output_height", 1), out_w = n.attr_int("output_width", 1);
  constexpr int64_t kMaxGridPoints = 4096;
  const int64_t sampling_ratio = n.attr_int("sampling_ratio", 0);
  const double spatial_scale = n.attr_float("spatial_scale", 1.0f);
  if (out_h <= 0 || out_w <= 0 || out_h > kMaxOutputElements || out_w > kMaxOutputElements)
    return ctx.invalid("output_height and output_width must be positive");
  if (sampling_ratio < 0) return ctx.invalid("sampling_ratio must be >= 0");

  const int64_t N = x.dim(0), C = x.dim(1), H = x.dim(2), W = x.dim(3);
  const int64_t R = rois.dim(0);
  if (C > 0 && R > 0 && out_h * out_w > kMaxOutputElements / (C * R)) return ctx.invalid("output is too large");
  Tensor out(x.dtype(), {R, C, out_h, out_w});
  const std::vector<double> box = to_double_vector(rois);
  const std::vector<int64_t> bidx = to_int64_vector(batch);
  for (int64_t b : bidx)
    if (b < 0 || b >= N) return ctx.invalid("batch index " + std::to_string(b) + " out of range [0, " +
                                            std::to_string(N) + ")");
  if (out.numel() > 0 && (H == 0 || W == 0)) return ctx.invalid("X has an empty spatial dimension");

  bool ok = visit_float(x.dtype(), [&]<class T>() {
    const T* src = x.data<T>();
    T* dst = out.data<T>();
    const double offset = half_pixel ? 0.5 : 0.0;
    for (int64_t r = 0; r < R; ++r) {
      double x1 = box[r * 4 + 0] * spatial_scale - offset, y1 = box[r * 4 + 1] * spatial_scale - offset;
      double x2 = box[r * 4 + 2] * spatial_scale - offset, y2 = box[r * 4 + 3] * spatial_scale - offset;
      double roi_w = x2 - x1, roi_h = y2 - y1;
      if (!half_pixel) {  // legacy: force malformed RoIs to be at least 1x1
        roi_w = std::max(roi_w, 1.0);
        roi_h = std::max(roi_h, 1.0);
      }
      double bin_h = roi_h / static_cast<double>(out_h), bin_w = roi_w / static_cast<double>(out_w);
      // Adaptive sampling: ceil(roi size / bins) points per bin. Capped (and NaN-safe) so a
      // malformed RoI cannot make the loop run for ever; real RoIs stay far below the cap.
      auto grid_points = [&](double roi_len, int64_t bins) -> int64_t {
        if (sampling_ratio > 0) return std::min<int64_t>(sampling_ratio, kMaxGridPoints);
        double g = std::ceil(roi_len / static_cast<double>(bins));
        if (!(g > 0.0)) return 0;
        return g > static_cast<double>(kMaxGridPoints) ? kMaxGridPoints : static_cast<int64_t>(g);
      };
      const int64_t grid_h = grid_points(roi_h, out_h), grid_w = grid_points(roi_w, out_w);
      const double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = src + (bidx[r] * C + c) * H * W;
        for (int64_t ph = 0; ph < out_h; ++ph) {
          for (int64_t pw = 0; pw < out_w; ++pw) {
            double acc = 0.0;
            bool have_max = false;
            for (int64_t iy = 0; iy < grid_h; ++iy) {
              double yy = y1 + ph * bin_h + (iy + 0.5) * bin_h / static_cast<double>(grid_h);
              for (int64_t ix = 0; ix < grid_w; ++ix) {
                double xx = x1 + pw * bin_w + (ix + 0.5) * bin_w / static_cast<double>(grid_w);
                BilinearSample s = roi_bilinear(plane, H, W, yy, xx);
                if (avg) {
                  acc += s.v[0] + s.v[1] + s.v[2] + s.v[3];
                } else {
                  // onnxruntime's max mode: max over samples of the max weighted corner.
                  double v = std::max(std::max(s.v[0], s.v[1]), std::max(s.v[2], s.v[3]));
                  acc = have_max ? std::max(acc, v) : v;
                  have_max = true;
                }
              }
            }
            if (avg) acc /= count;
            dst[((r * C + c) * out_h + ph) * out_w + pw] = from_double<T>(acc);
          }
        }
      }
    }
  });
  if (!ok) return ctx.invalid("unsupported input dtype " + std::string(dtype_name(x.dtype())));
  ctx.set_output(0, std::move(out));
  return Status::ok();
}

}  // namespace

void register_resize_kernels(KernelTable& t) {
  t.add("", "Resize", &resize_kernel);
  t.add("", "Upsample", &upsample_kernel);
  t.add("", "GridSample", &grid_sample_kernel);
  t.add("", "RoiAlign", &roi_align_kernel);
}

}  // namespace tandem
