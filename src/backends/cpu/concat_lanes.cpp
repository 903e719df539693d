// concat_lanes.cpp: see concat_lanes.h.
#include "backends/cpu/concat_lanes.h"

#include <immintrin.h>

#include <cstring>
#include <memory>

#include "backends/cpu/resize.h"
#include "backends/cpu/threads.h"

namespace tandem::cpu {

namespace {

// Where input `i`'s pixel for output pixel p lies: p itself, or (an upsampled input, the source
// of a nearest Resize) the source pixel the resize tables give, in a plane of in_hw[i] pixels.
struct Sources {
  const float* const* in;
  const int64_t* in_blocks;
  const int64_t* in_hw;
  const int32_t* const* pixel;  // per input: source pixel per output pixel, or null
  const float* at(int input, int64_t n, int64_t block, int64_t p, int64_t lanes) const {
    const int64_t sp = pixel[input] ? pixel[input][p] : p;
    return in[input] + ((n * in_blocks[input] + block) * in_hw[input] + sp) * lanes;
  }
};

struct LaneMove {
  int input = 0;           // index into ins
  int64_t block = 0;       // source channel block
  uint16_t mask = 0;       // output lanes it fills
  int32_t idx[kMaxBlock] = {0};  // source lane per output lane
};

// One output block's pixels [p0, p1) of image n, 16 lanes: each move's source plane, lane
// indices and mask are set up once, then every pixel is one permute per move; `store` writes the
// assembled vector of pixel p.
template <class Store>
__attribute__((target("avx512f"), always_inline)) inline void shuffle_block16(const Sources& in,
                                                                             const std::vector<LaneMove>& moves,
                                                                             int64_t n, int64_t p0, int64_t p1,
                                                                             Store store) {
  constexpr size_t kHeld = 4;  // moves held in registers (a block gathers from a few inputs)
  if (moves.size() > kHeld) {
    for (int64_t p = p0; p < p1; ++p) {
      __m512 v = _mm512_setzero_ps();
      for (const LaneMove& m : moves)
        v = _mm512_mask_permutexvar_ps(v, m.mask, _mm512_loadu_si512(m.idx),
                                       _mm512_loadu_ps(in.at(m.input, n, m.block, p, 16)));
      store(p, v);
    }
    return;
  }
  const size_t count = moves.size();
  const float* plane[kHeld];
  const int32_t* pixel[kHeld];
  __m512i idx[kHeld];
  __mmask16 mask[kHeld];
  for (size_t k = 0; k < count; ++k) {
    const LaneMove& m = moves[k];
    plane[k] = in.in[m.input] + (n * in.in_blocks[m.input] + m.block) * in.in_hw[m.input] * 16;
    pixel[k] = in.pixel[m.input];
    idx[k] = _mm512_loadu_si512(m.idx);
    mask[k] = m.mask;
  }
  for (int64_t p = p0; p < p1; ++p) {
    __m512 v = _mm512_setzero_ps();
    for (size_t k = 0; k < count; ++k) {
      const int64_t sp = pixel[k] ? pixel[k][p] : p;
      v = _mm512_mask_permutexvar_ps(v, mask[k], idx[k], _mm512_loadu_ps(plane[k] + sp * 16));
    }
    store(p, v);
  }
}

__attribute__((target("avx512f"))) void shuffle_blocks_avx512(const Sources& in, float* out,
                                                              const std::vector<LaneMove>& moves, int64_t n,
                                                              int64_t out_blocks, int64_t ob, int64_t hw,
                                                              int64_t p0, int64_t p1) {
  float* o = out + ((n * out_blocks + ob) * hw) * 16;
  shuffle_block16(in, moves, n, p0, p1, [o](int64_t p, __m512 v) __attribute__((target("avx512f"))) {
    _mm512_storeu_ps(o + p * 16, v);
  });
}

// The same, each output vector rounded to bfloat16 as it is stored (vcvtneps2bf16: to nearest
// even, denormals to zero, as the narrowing kernel of cast.h).
__attribute__((target("avx512f,avx512bf16"))) void shuffle_blocks_bf16_avx512(const Sources& in, uint16_t* out,
                                                                           const std::vector<LaneMove>& moves,
                                                                           int64_t n, int64_t out_blocks, int64_t ob,
                                                                           int64_t hw, int64_t p0, int64_t p1) {
  uint16_t* o = out + ((n * out_blocks + ob) * hw) * 16;
  shuffle_block16(in, moves, n, p0, p1, [o](int64_t p, __m512 v) __attribute__((target("avx512f,avx512bf16"))) {
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + p * 16), reinterpret_cast<__m256i>(_mm512_cvtneps_pbh(v)));
  });
}

void shuffle_blocks_scalar(const Sources& in, float* out,
                           const std::vector<LaneMove>& moves, int64_t n, int64_t out_blocks, int64_t ob, int64_t hw,
                           int64_t p0, int64_t p1, int64_t lanes) {
  float* o = out + ((n * out_blocks + ob) * hw) * lanes;
  for (int64_t p = p0; p < p1; ++p) {
    float v[kMaxBlock] = {0};
    for (const LaneMove& m : moves) {
      const float* src = in.at(m.input, n, m.block, p, lanes);
      for (int64_t l = 0; l < lanes; ++l)
        if (m.mask & (1u << l)) v[l] = src[m.idx[l]];
    }
    std::memcpy(o + p * lanes, v, sizeof(float) * static_cast<size_t>(lanes));
  }
}

class ShuffleConcatKernel final : public Kernel {
 public:
  int out = -1;
  std::vector<int> ins;
  std::vector<int64_t> in_blocks, in_hw;
  std::vector<std::vector<int32_t>> pixel;  // per input: empty, or its source pixel per output pixel
  std::vector<const int32_t*> pixel_of;
  int64_t N = 0, out_blocks = 0, hw = 0;
  std::vector<std::vector<LaneMove>> moves;  // per output block
  bool bf16_out = false;                     // `out` is bfloat16 (block 16 only)

  Status run(RunCtx& ctx, KernelState*) const override {
    const float** in = static_cast<const float**>(ctx.scratch);  // one pointer per input
    for (size_t i = 0; i < ins.size(); ++i) in[i] = static_cast<const float*>(ctx.ptr[ins[i]]);
    const Sources src{in, in_blocks.data(), in_hw.data(), pixel_of.data()};
    float* o = static_cast<float*>(ctx.ptr[out]);
    const int64_t lanes = channel_block();
    const bool avx512 = lanes == 16;  // 16 only on the AVX-512 path
    const int64_t chunk = 1024;
    const int64_t chunks = (hw + chunk - 1) / chunk;
    const int64_t tasks = N * out_blocks * chunks;
    const int threads = N * out_blocks * hw < 65536 ? 1 : ctx.threads;
    parallel_range(threads, tasks, 1, [&](int64_t b, int64_t e) {
      for (int64_t t = b; t < e; ++t) {
        const int64_t c = t % chunks, ob = (t / chunks) % out_blocks, n = t / chunks / out_blocks;
        const int64_t p0 = c * chunk, p1 = std::min(hw, p0 + chunk);
        if (bf16_out)
          shuffle_blocks_bf16_avx512(src, static_cast<uint16_t*>(ctx.ptr[out]), moves[ob], n, out_blocks, ob, hw, p0,
                                     p1);
        else if (avx512) shuffle_blocks_avx512(src, o, moves[ob], n, out_blocks, ob, hw, p0, p1);
        else shuffle_blocks_scalar(src, o, moves[ob], n, out_blocks, ob, hw, p0, p1, lanes);
      }
    });
    return Status::ok();
  }
};

}  // namespace

Status add_lane_concat(Builder& b, const std::vector<int>& ins, int out, const Shape& out_shape, bool bf16_out,
                       const std::string& label, const std::vector<const NearestResize*>& upsampled) {
  const bool in_bf16 = bf16_out && channel_block() == 16;
  if (in_bf16) b.define_handed_off(out, Layout::blocked);
  else b.define(out, Layout::blocked);
  auto sk = std::make_unique<ShuffleConcatKernel>();
  sk->bf16_out = in_bf16;
  sk->label = label;
  sk->out = out;
  sk->ins = ins;
  sk->N = out_shape[0];
  sk->hw = out_shape[2] * out_shape[3];
  const int64_t block = channel_block();
  sk->out_blocks = round_up(out_shape[1], block) / block;
  sk->moves.resize(static_cast<size_t>(sk->out_blocks));
  int64_t c0 = 0;
  for (size_t i = 0; i < ins.size(); ++i) {
    const Shape& is = b.val(ins[i]).shape;
    const int64_t ci = is[1];
    sk->in_blocks.push_back(round_up(ci, block) / block);
    sk->in_hw.push_back(is[2] * is[3]);
    sk->pixel.emplace_back();
    const NearestResize* up = i < upsampled.size() ? upsampled[i] : nullptr;
    if (up) {
      if (static_cast<int64_t>(up->rows.size()) != out_shape[2] || static_cast<int64_t>(up->cols.size()) != out_shape[3])
        return internal_error(label + " upsampled input does not match the output");
      std::vector<int32_t>& px = sk->pixel.back();
      px.resize(static_cast<size_t>(sk->hw));
      for (int64_t h = 0; h < out_shape[2]; ++h)
        for (int64_t w = 0; w < out_shape[3]; ++w)
          px[static_cast<size_t>(h * out_shape[3] + w)] = static_cast<int32_t>(up->rows[h] * is[3] + up->cols[w]);
    } else if (is[2] != out_shape[2] || is[3] != out_shape[3]) {
      return internal_error(label + " input pixels differ from the output's");
    }
    for (int64_t c = 0; c < ci; ++c) {
      const int64_t oc = c0 + c, ob = oc / block, ol = oc % block, sb = c / block, sl = c % block;
      auto& list = sk->moves[static_cast<size_t>(ob)];
      if (list.empty() || list.back().input != static_cast<int>(i) || list.back().block != sb) {
        LaneMove m;
        m.input = static_cast<int>(i);
        m.block = sb;
        list.push_back(m);
      }
      list.back().mask = static_cast<uint16_t>(list.back().mask | (1u << ol));
      list.back().idx[ol] = static_cast<int32_t>(sl);
    }
    c0 += ci;
  }
  for (const auto& px : sk->pixel) sk->pixel_of.push_back(px.empty() ? nullptr : px.data());
  b.need_scratch(static_cast<int64_t>(ins.size() * sizeof(float*)));
  sk->reads = ins;
  sk->writes = {out};
  b.add_kernel(std::move(sk));
  return Status::ok();
}

}  // namespace tandem::cpu
