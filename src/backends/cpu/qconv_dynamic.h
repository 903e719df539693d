// qconv_dynamic.h: a ConvInteger whose float tail ends in a DynamicQuantizeLinear (dynamically
// quantized models: every layer's float result is quantized again for the next one), run as one
// kernel that computes the float result in bands of output rows and takes each band's range
// while the band is still in its core's caches:
//
//   in parallel, each thread over its bands:  product + tail (one oneDNN primitive per band
//                                             shape) -> float32 band -> the band's range
//   barrier: scale and zero point from all ranges (DynamicQuantizeLinear's arithmetic)
//   in parallel, each thread over its bands:  quantize the band (uint8, channels-last)
//
// Apart, the convolution writes the whole float result, and the quantization reads it twice
// (range, then values) with a second fork of the team. The float32 values are those the
// convolution's primitive computes on the whole image (the same post-ops on the same
// accumulators), and the quantization is quantize.cpp's, so the bytes are the same.
//
// Two ways to hold the float result:
//   kept        one band per thread, written into the result, whose quantizing pass reads it
//               back (from the core's caches when the band fits them);
//   recomputed  bands of a few hundred KiB, each computed twice into a buffer of its thread,
//               once for the range and once to quantize: the float result never goes to
//               memory. For cheap products of large results (a 1x1 convolution of 16 channels
//               at 320x320 spent most of its time writing 13 MB of floats), chosen by
//               conv_band_recompute.
//
// Bands: rows of one image; a band of R output rows reads the input rows its window covers, with
// the convolution's padding where the band touches the image's top or bottom edge. Bands of
// the same row count and edge padding share a primitive (a "kind").
//
// Thread-safety: the kernel is const after build; its state (per-thread oneDNN memories,
// streams and scratchpads) belongs to one context.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/cpu/builder.h"
#include "backends/cpu/dnnl_kernel.h"

namespace tandem::cpu {

// The input rows a band of output rows reads, and the padding its primitive adds.
struct ConvBandKind {
  int64_t rows = 0;        // output rows
  int64_t in_rows = 0;     // input rows read
  int64_t pad_top = 0, pad_bottom = 0;
};

struct ConvBand {
  int kind = 0;           // index into ConvBandPlan::kinds
  int64_t src_bytes = 0;  // where its first input row starts in the channels-last source
  int64_t dst_floats = 0; // where its first output element starts in the float32 result
  int64_t floats = 0;     // its output elements
};

struct ConvBandPlan {
  std::vector<ConvBandKind> kinds;
  std::vector<ConvBand> bands;  // in order: image, then rows
  int threads = 1;              // the most threads that run bands at once
  bool recompute = false;
  int64_t band_floats = 0;      // the largest band's output elements
};

inline constexpr int kMaxBandKinds = 6;

// True when a product of `macs` multiply-adds per output element in `groups` groups and a
// float32 result of `result_bytes` is better recomputed than kept: dense products of at most 16
// multiply-adds per output and results of 4 MiB or more (TANDEM_CPU_QDYNAMIC_RECOMPUTE=0: never).
bool conv_band_recompute(int64_t macs, int64_t groups, int64_t result_bytes);

// The bands of a 2-D convolution of a channels-last source [N, C, H, W] of `src_element_bytes`
// into [N, O, OH, OW] (window height `kh`, stride `sh`, dilation `dh` (1: none), top padding
// `pad_top`) run by up to `threads` threads: kept, one band per thread (or per image); or
// recomputed, bands of about TANDEM_CPU_QDYNAMIC_BAND_KB KiB of output (default 256). Empty
// (no kinds) when more than kMaxBandKinds kinds would be needed or a band would read no input
// row.
ConvBandPlan plan_conv_bands(const Shape& src, const Shape& dst, int64_t src_element_bytes, int64_t kh, int64_t sh,
                             int64_t dh, int64_t pad_top, bool recompute, int threads);

// Adds the kernel: `kinds[k]` runs plan.kinds[k] (a primitive made for that band's shape, whose
// DNNL_ARG_SRC and DNNL_ARG_DST args bind the source's and `floats`' first bytes), each band's
// offsets added at each run. `floats` is the float32 result (kept: defined here, channels-last)
// or a temporary of plan.threads * plan.band_floats elements (recomputed). `outputs` are the
// DynamicQuantizeLinear's (data, scale, zero point; -1 where omitted), the data of `shape`,
// defined channels-last (its readers must be integer convolutions).
Status add_banded_dynamic_quantize(Builder& b, std::vector<std::unique_ptr<DnnlKernel>> kinds, ConvBandPlan plan,
                                   int floats, const Shape& shape, const std::vector<int>& outputs,
                                   const std::string& label);

}  // namespace tandem::cpu
