// engine/shape_latency.h: a route's latency, kept per input shape.
//
// A model with free dims (an image size, a batch dim, a sequence length) takes longer per call
// at larger inputs: the PaddleOCR detector answers a 960x1280 image in about 60 ms on a CPU
// where its warm-up input (free dims set to 1) took 0.3 ms. Judged by one figure per route, every
// large request would overrun its route's time budget, be abandoned as a hung call and fall back
// to the reference, a hundred times slower, and the timeouts would trip the breaker. So the time
// budgets, fallback reserves, retry decisions and hedging thresholds are judged per shape.
//
// A shape the route has answered uses its own figures. A shape it has not answered yet borrows
// the figures of the nearest shape it has (nearest in input elements), scaled by the ratio of
// their input elements. Most models' cost grows about linearly with their inputs (a batch, an
// image area), and a small shape's time is partly fixed overhead, so scaling up from a smaller
// shape errs toward more time, which is the safe side for a budget; the shape's own answers
// replace the guess from its first one on.
// Some costs grow faster than the input (attention over a sequence: its square). Once two
// measured shapes lie at least kGrowthSpan apart in elements, the growth they show between them
// (the exponent of a power law through their typical latencies) scales a larger unseen shape
// when it is steeper than linear, up to kMaxGrowthExponent. Flatter growth is not used: it comes
// from fixed overhead at small shapes, and would guess too little time for large ones; a smaller
// unseen shape is always scaled linearly (more time, the safe side).
//
// Thread-safety: none; the owner (a route's slot) guards it with its mutex.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "tandem/telemetry.h"
#include "tandem/value.h"

namespace tandem::engine_internal {

// Which shape a request has: a hash of every input's dims (of each tensor of a sequence) and
// the number of input elements.
struct ShapeKey {
  uint64_t hash = 0;
  double elements = 1;  // at least 1
  static ShapeKey of(const std::vector<Value>& inputs);
  bool operator==(const ShapeKey& o) const { return hash == o.hash && elements == o.elements; }
};

// A route's figures for one request shape (ms; 0: unknown).
struct ShapeLatencyView {
  double typical_ms = 0;      // usual latency: the median answer (or warm run)
  double estimate_ms = 0;     // a high latency: the p99 answer, or the slowest warm run
  double hedge_after_ms = 0;  // when a hedge may start; 0: do not hedge (the shape is unmeasured)
  bool measured = false;      // from this shape's own runs (false: scaled from another, or unknown)
};

class ShapeLatency {
 public:
  // Answers needed before a shape's quantiles replace its warm-up (or first answers') figures.
  static constexpr uint64_t kMinAnswers = 20;
  // Two shapes fit a growth exponent when their input elements differ by this factor or more.
  static constexpr double kGrowthSpan = 2.0;
  // The steepest growth used: cubic (a sequence's attention is quadratic; a volume's side, cubic).
  static constexpr double kMaxGrowthExponent = 3.0;
  // A shape fits growth once its typical latency is this many answers' median (or the warm-up's):
  // a first answer alone may include building the shape's plan, and would steepen the fit.
  static constexpr uint64_t kGrowthAnswers = 3;

  // Keeps at most `capacity` shapes (at least 2); the shape used least recently goes first,
  // except the warm-up shape.
  explicit ShapeLatency(size_t capacity = 16);

  // The warm-up's figures for its input shape: its slowest and median warm run.
  void set_warm(const ShapeKey& key, double estimate_ms, double typical_ms);
  // One answer of `ms` at `key`.
  void record(const ShapeKey& key, double ms);

  // The figures for a request of shape `key`:
  // - a shape with kMinAnswers answers: its median, its p99 and its `hedge_quantile` answer;
  //   the estimate is never below its slowest warm run nor its first answer (a backend that
  //   builds per shape built it then, and may have to again once it has dropped that build
  //   from its cache);
  // - a shape with fewer: its warm-up figures, or else its median and slowest answer so far;
  // - a shape not seen: the nearest seen shape's typical and estimate, times the ratio of input
  //   elements (raised to the measured growth exponent, when larger and steeper than linear),
  //   with no hedging; all zero when no shape is seen.
  ShapeLatencyView view(const ShapeKey& key, double hedge_quantile) const;

  size_t shapes() const { return entries_.size(); }

 private:
  struct Entry {
    ShapeKey key;
    double warm_estimate_ms = 0, warm_typical_ms = 0;  // 0: not the warm-up shape
    double first_answer_ms = 0;                        // 0: no answer yet
    LatencyHistogram latency;
    uint64_t last_use = 0;
    // own_view()'s last result, made at `view_count` answers with `view_quantile`: the request
    // path asks for a route's figures several times per request, and each quantile walks the
    // histogram. Past 256 answers it is remade every 16 answers (the quantiles move slowly).
    mutable ShapeLatencyView view;
    mutable uint64_t view_count = UINT64_MAX;
    mutable double view_quantile = -1;
  };
  Entry* find(const ShapeKey& key) const;
  // This entry's own figures; measured is false when it has none yet.
  ShapeLatencyView own_view(const Entry& e, double hedge_quantile) const;
  Entry& insert(const ShapeKey& key);
  // Whether `e`'s typical latency is settled enough to fit growth: the warm-up shape, or one
  // with kGrowthAnswers answers.
  static bool settled(const Entry& e);
  // The exponent scaling `from` (typical latency `from_typical_ms`) up to larger shapes: the
  // growth between it and the nearest settled shape kGrowthSpan or more away, within
  // [1, kMaxGrowthExponent]; 1 when `from` is not settled or there is no such shape.
  double growth_exponent(const Entry& from, double from_typical_ms, double hedge_quantile) const;

  size_t capacity_;
  uint64_t uses_ = 0;
  std::vector<std::unique_ptr<Entry>> entries_;  // few: searched linearly
};

}  // namespace tandem::engine_internal
