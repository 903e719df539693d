// resize_coordinates.h: the ONNX Resize coordinate rules, written once for the reference kernel
// and the backends: how an output coordinate maps to an input coordinate
// (coordinate_transformation_mode) and how mode "nearest" rounds it to an input index
// (nearest_mode).
//
// Units: coordinates are in elements along one axis; `scale` is output / input length.
// Everything here is a pure inline function: thread-safe, no state.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>

namespace tandem::resize {

enum class CoordMode {
  half_pixel,
  half_pixel_symmetric,
  pytorch_half_pixel,
  align_corners,
  asymmetric,
  tf_half_pixel_for_nn,
  tf_crop_and_resize,
};

enum class NearestMode {
  round_prefer_floor,
  round_prefer_ceil,
  floor,
  ceil,
  legacy,  // Resize-10 / Upsample: floor when upsampling, ceil when downsampling (as onnxruntime)
};

// The mode named by a coordinate_transformation_mode attribute; nullopt when unknown.
inline std::optional<CoordMode> parse_coord_mode(const std::string& s) {
  if (s == "half_pixel") return CoordMode::half_pixel;
  if (s == "half_pixel_symmetric") return CoordMode::half_pixel_symmetric;
  if (s == "pytorch_half_pixel") return CoordMode::pytorch_half_pixel;
  if (s == "align_corners") return CoordMode::align_corners;
  if (s == "asymmetric") return CoordMode::asymmetric;
  if (s == "tf_half_pixel_for_nn") return CoordMode::tf_half_pixel_for_nn;
  if (s == "tf_crop_and_resize") return CoordMode::tf_crop_and_resize;
  return std::nullopt;
}

// The mode named by a nearest_mode attribute (legacy is never named); nullopt when unknown.
inline std::optional<NearestMode> parse_nearest_mode(const std::string& s) {
  if (s == "round_prefer_floor") return NearestMode::round_prefer_floor;
  if (s == "round_prefer_ceil") return NearestMode::round_prefer_ceil;
  if (s == "floor") return NearestMode::floor;
  if (s == "ceil") return NearestMode::ceil;
  return std::nullopt;
}

// Maps output coordinate x to the input coordinate. `out_len` is scale * in_len, a real number:
// like the ONNX reference (which generated the conformance data), align_corners and
// tf_crop_and_resize divide by out_len - 1 rather than by the integer output size - 1; the two
// differ only when the scale does not divide the length evenly. `out_size` is the integer
// length. `roi_start` and `roi_end` (normalized) matter for tf_crop_and_resize only.
inline double original_coordinate(CoordMode coord, double x, double scale, int64_t in_len, double out_len,
                                  int64_t out_size, double roi_start = 0.0, double roi_end = 1.0) {
  switch (coord) {
    case CoordMode::half_pixel:
      return (x + 0.5) / scale - 0.5;
    case CoordMode::half_pixel_symmetric: {
      double adjustment = static_cast<double>(out_size) / out_len;
      double center = static_cast<double>(in_len) / 2.0;
      double offset = center * (1.0 - adjustment);
      return offset + (x + 0.5) / scale - 0.5;
    }
    case CoordMode::pytorch_half_pixel:
      return out_size > 1 ? (x + 0.5) / scale - 0.5 : 0.0;  // as the spec and onnxruntime
    case CoordMode::align_corners:
      return out_len == 1.0 ? 0.0 : x * static_cast<double>(in_len - 1) / (out_len - 1.0);
    case CoordMode::asymmetric:
      return x / scale;
    case CoordMode::tf_half_pixel_for_nn:
      return (x + 0.5) / scale;
    case CoordMode::tf_crop_and_resize: {
      double span = static_cast<double>(in_len - 1);
      double v = out_len == 1.0 ? (roi_end - roi_start) * span / 2.0
                                : x * (roi_end - roi_start) * span / (out_len - 1.0);
      return v + roi_start * span;
    }
  }
  return 0.0;
}

// The input index mode "nearest" reads for input coordinate x, clamped into [0, in_len). An
// integral x is its own index; otherwise the fraction decides per `mode` (`scale` only matters
// for legacy).
inline int64_t nearest_index(NearestMode mode, double x, double scale, int64_t in_len) {
  const double fl = std::floor(x);
  int64_t idx;
  if (x == fl) {
    idx = static_cast<int64_t>(x);
  } else {
    const double ratio = x - fl;
    bool right = false;
    switch (mode) {
      case NearestMode::round_prefer_floor: right = ratio > 0.5; break;
      case NearestMode::round_prefer_ceil: right = ratio >= 0.5; break;
      case NearestMode::floor: right = false; break;
      case NearestMode::ceil: right = true; break;
      case NearestMode::legacy: right = scale < 1.0; break;
    }
    idx = static_cast<int64_t>(fl) + (right ? 1 : 0);
  }
  return std::clamp<int64_t>(idx, 0, in_len - 1);
}

// One input element that an output coordinate reads, and its weight.
struct Tap {
  int64_t index;  // already clamped into [0, in_len)
  double weight;
};

// The taps of mode "linear" (no antialias, exclude_outside 0) at input coordinate `x` (finite)
// along an axis of `in_len` elements, as the reference kernel reads them; returns their count
// (1 or 2). Like the ONNX reference, the fraction is taken in (0, 1]: an integral x is weight
// 1 at index x (and weight 0 at x - 1, left out); otherwise floor(x) has weight 1 - fraction
// and floor(x) + 1 weight fraction. Indices are clamped into the axis, so both taps of an edge
// coordinate may read the same element.
inline int linear_taps(double x, int64_t in_len, Tap taps[2]) {
  const double fl = std::floor(x);
  int64_t base = static_cast<int64_t>(fl);
  double ratio = x - fl;
  if (ratio == 0.0) {
    base -= 1;
    ratio = 1.0;
  }
  const double w[2] = {1.0 - ratio, ratio};
  int n = 0;
  for (int k = 0; k < 2; ++k) {
    if (w[k] == 0.0) continue;  // exact zero weight: contributes nothing
    taps[n++] = {std::clamp<int64_t>(base + k, 0, in_len - 1), w[k]};
  }
  return n;
}

}  // namespace tandem::resize
