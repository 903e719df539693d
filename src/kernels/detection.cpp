// Reference kernels: detection ops (NonMaxSuppression).
#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/registry.h"
#include "core/tensor_util.h"

namespace tandem {
namespace {

// A box as (ymin, xmin, ymax, xmax) with min <= max.
struct Box {
  double y1, x1, y2, x2;
  double area() const { return (y2 - y1) * (x2 - x1); }
};

Box make_box(const double* p, bool center_point) {
  if (center_point) {  // [x_center, y_center, width, height]
    double xc = p[0], yc = p[1], w = p[2], h = p[3];
    return {yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0};
  }
  // [y1, x1, y2, x2], any diagonal pair of corners.
  return {std::min(p[0], p[2]), std::min(p[1], p[3]), std::max(p[0], p[2]), std::max(p[1], p[3])};
}

// True when `a` and `b` overlap by more than `threshold` (intersection over union).
bool suppresses(const Box& a, const Box& b, double threshold) {
  double ih = std::min(a.y2, b.y2) - std::max(a.y1, b.y1);
  double iw = std::min(a.x2, b.x2) - std::max(a.x1, b.x1);
  if (ih <= 0.0 || iw <= 0.0) return false;
  double inter = ih * iw;
  double area_a = a.area(), area_b = b.area();
  if (area_a <= 0.0 || area_b <= 0.0) return false;
  double uni = area_a + area_b - inter;
  if (uni <= 0.0) return false;
  return inter / uni > threshold;
}

// Reads a scalar (or one-element) input; `fallback` when the input is omitted.
Result<double> scalar_input(const KernelContext& ctx, size_t i, double fallback, const char* name) {
  if (!ctx.has_input(i)) return fallback;
  const Tensor& t = ctx.input(i);
  if (t.numel() != 1) return ctx.invalid(std::string(name) + " must hold exactly one value");
  std::vector<double> v = to_double_vector(t);
  if (v.empty()) return ctx.invalid(std::string(name) + " has an unsupported dtype");
  return v[0];
}

Status non_max_suppression_kernel(KernelContext& ctx) {
  if (!ctx.has_input(0) || !ctx.has_input(1)) return ctx.invalid("needs inputs boxes and scores");
  const Tensor& boxes = ctx.input(0);
  const Tensor& scores = ctx.input(1);
  if (boxes.rank() != 3 || boxes.dim(2) != 4)
    return ctx.invalid("boxes must have shape [num_batches, spatial_dimension, 4], got " +
                       shape_to_string(boxes.shape()));
  if (scores.rank() != 3) return ctx.invalid("scores must have shape [num_batches, num_classes, spatial_dimension]");
  if (scores.dim(0) != boxes.dim(0) || scores.dim(2) != boxes.dim(1))
    return ctx.invalid("boxes " + shape_to_string(boxes.shape()) + " and scores " + shape_to_string(scores.shape()) +
                       " do not agree");
  if (!is_float_type(boxes.dtype()) || !is_float_type(scores.dtype()))
    return ctx.invalid("boxes and scores must be float tensors");
  const int64_t center = ctx.node().attr_int("center_point_box", 0);
  if (center != 0 && center != 1) return ctx.invalid("center_point_box must be 0 or 1");

  int64_t max_per_class = 0;
  if (ctx.has_input(2)) {
    const Tensor& m = ctx.input(2);
    if (m.numel() != 1 || !is_integer_type(m.dtype()))
      return ctx.invalid("max_output_boxes_per_class must be one integer");
    max_per_class = to_int64_vector(m)[0];
  }
  TANDEM_ASSIGN_OR_RETURN(double iou_threshold, scalar_input(ctx, 3, 0.0, "iou_threshold"));
  const bool has_score_threshold = ctx.has_input(4);
  TANDEM_ASSIGN_OR_RETURN(double score_threshold, scalar_input(ctx, 4, 0.0, "score_threshold"));

  const int64_t B = boxes.dim(0), K = scores.dim(1), S = boxes.dim(1);
  const std::vector<double> box_values = to_double_vector(boxes);
  const std::vector<double> score_values = to_double_vector(scores);
  std::vector<int64_t> selected;  // triples (batch, class, box)
  if (max_per_class > 0) {
    std::vector<Box> all(static_cast<size_t>(S));
    for (int64_t b = 0; b < B; ++b) {
      for (int64_t s = 0; s < S; ++s) all[s] = make_box(&box_values[(b * S + s) * 4], center == 1);
      for (int64_t k = 0; k < K; ++k) {
        const double* sc = &score_values[(b * K + k) * S];
        std::vector<int64_t> order;
        for (int64_t s = 0; s < S; ++s)
          if (!has_score_threshold || sc[s] > score_threshold) order.push_back(s);
        // Highest score first; equal scores keep the lower box index first.
        std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return sc[a] > sc[c]; });
        std::vector<int64_t> kept;
        for (int64_t s : order) {
          if (static_cast<int64_t>(kept.size()) >= max_per_class) break;
          bool drop = false;
          for (int64_t q : kept) {
            if (suppresses(all[s], all[q], iou_threshold)) {
              drop = true;
              break;
            }
          }
          if (drop) continue;
          kept.push_back(s);
          selected.insert(selected.end(), {b, k, s});
        }
      }
    }
  }
  const int64_t count = static_cast<int64_t>(selected.size() / 3);
  ctx.set_output(0, Tensor::from_vector<int64_t>({count, 3}, selected));
  return Status::ok();
}

}  // namespace

void register_detection_kernels(KernelTable& t) { t.add("", "NonMaxSuppression", &non_max_suppression_kernel); }

}  // namespace tandem
