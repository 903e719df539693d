// conv_winograd.cpp: the bf16 Winograd F(2x2, 3x3) convolution (conv_winograd.h): the weight
// transform at build, and per chunk of tiles the input transform, the 16 products of channel
// pairs and the output transform with bias, program and store.
#include "backends/cpu/conv_winograd.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "backends/cpu/cast.h"
#include "backends/cpu/op_family.h"

#define TANDEM_TARGET_AVX512_BF16 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace tandem::cpu {

namespace {

constexpr int64_t kPositions = 16;                   // a 4x4 transformed tile
constexpr int64_t kChunkBytes = 160 * 1024;          // transformed inputs and products per chunk
constexpr int64_t kMaxWeightBytes = int64_t{1} << 20;  // the transformed weight, read per chunk
constexpr int64_t kAhead = 8;                          // pixels fetched ahead along a row
constexpr int64_t kMaxChunk = 128;                     // tiles per chunk at most

struct Wino {
  int64_t N = 0, C = 0, H = 0, W = 0, O = 0, OH = 0, OW = 0, pad_top = 0, pad_left = 0;
  int64_t CB = 0, Cp = 0, OB = 0, Op = 0;  // channel blocks and the channels they hold
  int64_t TH = 0, TW = 0;                   // tiles per image: rows, columns
  int64_t rows = 0;                         // tiles per group of the products (registers)
  int64_t group = 0;                        // output blocks per group of the products
  int64_t chunk = 0;                        // tiles per chunk, a multiple of `rows`
  std::vector<uint16_t> u;                  // [16][Cp / 2][Op][2] bfloat16 channel pairs
  std::vector<float> bias;                  // [Op], zero past O
  EwProgram post;
  bool src_bf16 = false, dst_bf16 = false;
};

// U = G g G^T per (output, input) channel, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
// rounded to bf16 pairs; channels past C and O stay zero.
void pack_weights(Wino* p, const float* w) {
  static const float G[4][3] = {{1, 0, 0}, {0.5f, 0.5f, 0.5f}, {0.5f, -0.5f, 0.5f}, {0, 0, 1}};
  std::vector<float> wide(static_cast<size_t>(kPositions * p->Cp * p->Op), 0.0f);
  for (int64_t o = 0; o < p->O; ++o)
    for (int64_t c = 0; c < p->C; ++c) {
      const float* g = w + (o * p->C + c) * 9;
      float t[4][3];  // G g
      for (int a = 0; a < 4; ++a)
        for (int j = 0; j < 3; ++j) t[a][j] = G[a][0] * g[j] + G[a][1] * g[3 + j] + G[a][2] * g[6 + j];
      for (int a = 0; a < 4; ++a)
        for (int bb = 0; bb < 4; ++bb) {
          const float v = t[a][0] * G[bb][0] + t[a][1] * G[bb][1] + t[a][2] * G[bb][2];
          wide[static_cast<size_t>((((a * 4 + bb) * (p->Cp / 2) + c / 2) * p->Op + o) * 2 + c % 2)] = v;
        }
    }
  p->u.resize(wide.size());
  narrow_to_bf16(wide.data(), p->u.data(), static_cast<int64_t>(wide.size()));
}

// 16 channels of a source pixel at element `at`, widened when held in bfloat16.
template <bool Bf16>
TANDEM_TARGET_AVX512_BF16 inline __m512 load_pixel(const void* src, int64_t at) {
  if constexpr (Bf16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(src) + at));
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
  } else {
    return _mm512_loadu_ps(static_cast<const float*>(src) + at);
  }
}
// The same, or zeros when not `in` (then `at` is any valid offset).
template <bool Bf16>
TANDEM_TARGET_AVX512_BF16 inline __m512 load_pixel(const void* src, int64_t at, bool in) {
  const __mmask16 k = in ? 0xFFFF : 0;
  if constexpr (Bf16) {
    const __m256i h = _mm256_maskz_loadu_epi16(k, static_cast<const uint16_t*>(src) + at);
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(0xFFFF, _mm512_maskz_cvtepu16_epi32(0xFFFF, h), 16));
  } else {
    return _mm512_maskz_loadu_ps(k, static_cast<const float*>(src) + at);
  }
}

// B^T applied down one column of a tile: the four pixels of column `x` in rows y0 .. y0 + 3 of
// a plane (`plane` its first element, rows `row` elements apart) to c[0..3]; pixels past the
// image border read as zeros.
template <bool Bf16>
TANDEM_TARGET_AVX512_BF16 inline void column_transform(const void* src, int64_t plane, int64_t row, int64_t y0,
                                                      int64_t H, int64_t x, bool x_in, bool rows_in, __m512* c) {
  __m512 d[4];
  for (int i = 0; i < 4; ++i) {
    if (rows_in) {
      // (the rows stream a few hundred bytes at a time, one channel block after another: fetch
      // ahead along them, within the row)
      if ((x + kAhead) * 16 < row)
        _mm_prefetch(static_cast<const char*>(src) + (plane + (y0 + i) * row + (x + kAhead) * 16) * (Bf16 ? 2 : 4),
                     _MM_HINT_T0);
      d[i] = x_in ? load_pixel<Bf16>(src, plane + (y0 + i) * row + x * 16) : _mm512_setzero_ps();
    } else {
      const bool in = x_in && y0 + i >= 0 && y0 + i < H;
      d[i] = load_pixel<Bf16>(src, in ? plane + (y0 + i) * row + x * 16 : 0, in);
    }
  }
  c[0] = _mm512_sub_ps(d[0], d[2]);
  c[1] = _mm512_add_ps(d[1], d[2]);
  c[2] = _mm512_sub_ps(d[2], d[1]);
  c[3] = _mm512_sub_ps(d[1], d[3]);
}

// V = B^T d B of the chunk's `count` tiles from `tile0` (flattened n, row, column) into the
// transformed inputs v [16][CB][chunk][16], B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Channel
// block by channel block, so the reads stream along four rows of one plane; neighbouring
// tiles of a row share two columns, whose column transforms carry over.
template <bool Bf16>
TANDEM_TARGET_AVX512_BF16 void input_chunk(const Wino& p, const void* src, int64_t tile0, int64_t count, uint16_t* v) {
  const int64_t H = p.H, W = p.W, TH = p.TH, TW = p.TW, CB = p.CB, chunk = p.chunk;
  const int64_t pos_stride = chunk * p.Cp, row = W * 16;
  struct At {
    int64_t n, y0, x0;
    bool carried, rows_in;  // carried: the previous tile is its left neighbour
  } at[kMaxChunk];
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = tile0 + t;
    const int64_t ty = tile / TW % TH, tx = tile % TW, y0 = 2 * ty - p.pad_top;
    at[t] = {tile / (TH * TW), y0, 2 * tx - p.pad_left, t > 0 && tx > 0, y0 >= 0 && y0 + 4 <= H};
  }
  for (int64_t cb = 0; cb < CB; ++cb) {
    __m512 c0[4], c1[4], c2[4], c3[4];  // the tile's columns after B^T
    for (int i = 0; i < 4; ++i) c0[i] = c1[i] = c2[i] = c3[i] = _mm512_setzero_ps();
    for (int64_t t = 0; t < count; ++t) {
      const At& a = at[t];
      const int64_t plane = (a.n * CB + cb) * H * row;
      auto in_x = [W](int64_t x) { return x >= 0 && x < W; };
      if (a.carried) {
        for (int i = 0; i < 4; ++i) {
          c0[i] = c2[i];
          c1[i] = c3[i];
        }
      } else {
        column_transform<Bf16>(src, plane, row, a.y0, H, a.x0, in_x(a.x0), a.rows_in, c0);
        column_transform<Bf16>(src, plane, row, a.y0, H, a.x0 + 1, in_x(a.x0 + 1), a.rows_in, c1);
      }
      column_transform<Bf16>(src, plane, row, a.y0, H, a.x0 + 2, in_x(a.x0 + 2), a.rows_in, c2);
      column_transform<Bf16>(src, plane, row, a.y0, H, a.x0 + 3, in_x(a.x0 + 3), a.rows_in, c3);
      uint16_t* vt = v + (cb * chunk + t) * 16;
      for (int r = 0; r < 4; ++r) {
        const __m512 q[4] = {_mm512_sub_ps(c0[r], c2[r]), _mm512_add_ps(c1[r], c2[r]), _mm512_sub_ps(c2[r], c1[r]),
                             _mm512_sub_ps(c1[r], c3[r])};
        for (int bb = 0; bb < 4; ++bb)
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(vt + (r * 4 + bb) * pos_stride), (__m256i)_mm512_cvtneps_pbh(q[bb]));
      }
    }
  }
}

// m[t][o] = sum_c v[t][c] u[c][o] for the chunk's rows [t0, t0 + R) and output blocks
// [ob0, ob0 + G) of one position: v [CB][chunk][16], u [Cp / 2][Op][2], m [chunk][Op]. Within a
// channel block the R rows' channel pairs lie at fixed offsets from one pointer.
template <int G, int R>
TANDEM_TARGET_AVX512_BF16 void product_group(const Wino& p, const uint16_t* v, const uint16_t* u, float* m, int64_t t0,
                                             int64_t ob0) {
  __m512 acc[R][G];
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) acc[r][g] = _mm512_setzero_ps();
  const int64_t CB = p.CB, chunk = p.chunk, pair_step = p.Op * 2;
  const uint16_t* ub = u + ob0 * 32;
  for (int64_t cb = 0; cb < CB; ++cb) {
    const uint16_t* vb = v + (cb * chunk + t0) * 16;
    for (int kk = 0; kk < 8; ++kk, ub += pair_step) {
      __m512i w[G];
      for (int g = 0; g < G; ++g) w[g] = _mm512_loadu_si512(ub + g * 32);
      for (int r = 0; r < R; ++r) {
        int32_t pair;
        std::memcpy(&pair, vb + r * 16 + 2 * kk, sizeof(pair));
        const __m512i bcast = _mm512_set1_epi32(pair);
        for (int g = 0; g < G; ++g) acc[r][g] = _mm512_dpbf16_ps(acc[r][g], (__m512bh)bcast, (__m512bh)w[g]);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int g = 0; g < G; ++g) _mm512_storeu_ps(m + (t0 + r) * p.Op + (ob0 + g) * 16, acc[r][g]);
}

// Tiles per group of the products for G output blocks: the register budget, R x G
// accumulators, G weights and a broadcast in 32 registers (index G, 1 to 4).
constexpr int64_t kRowsForGroup[5] = {0, 24, 14, 9, 6};

template <int G>
TANDEM_TARGET_AVX512_BF16 void products_g(const Wino& p, const uint16_t* v, float* m) {
  constexpr int R = static_cast<int>(kRowsForGroup[G]);
  for (int64_t pos = 0; pos < kPositions; ++pos) {
    const uint16_t* vp = v + pos * p.chunk * p.Cp;
    const uint16_t* up = p.u.data() + pos * p.Cp * p.Op;
    float* mp = m + pos * p.chunk * p.Op;
    for (int64_t ob = 0; ob < p.OB; ob += G)
      for (int64_t t = 0; t < p.chunk; t += R) product_group<G, R>(p, vp, up, mp, t, ob);
  }
}

void products(const Wino& p, const uint16_t* v, float* m) {
  switch (p.group) {
    case 1: products_g<1>(p, v, m); return;
    case 2: products_g<2>(p, v, m); return;
    case 3: products_g<3>(p, v, m); return;
    default: products_g<4>(p, v, m); return;
  }
}

// Y = A^T M A (A^T = [1 1 1 0; 0 1 -1 -1]) plus the bias for `count` tiles of the chunk, into
// y [count][OB][4][16] (rows then columns of the 2x2 tile).
TANDEM_TARGET_AVX512_BF16 void output_tiles(const Wino& p, const float* m, int64_t count, float* y) {
  for (int64_t t = 0; t < count; ++t)
    for (int64_t ob = 0; ob < p.OB; ++ob) {
      __m512 x[2][4];
      for (int bb = 0; bb < 4; ++bb) {
        const float* mb = m + (bb * p.chunk + t) * p.Op + ob * 16;  // position (a, bb) is 4a + bb
        const int64_t step = 4 * p.chunk * p.Op;
        const __m512 m0 = _mm512_loadu_ps(mb), m1 = _mm512_loadu_ps(mb + step), m2 = _mm512_loadu_ps(mb + 2 * step),
                     m3 = _mm512_loadu_ps(mb + 3 * step);
        x[0][bb] = _mm512_add_ps(_mm512_add_ps(m0, m1), m2);
        x[1][bb] = _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3);
      }
      const __m512 bias = _mm512_loadu_ps(p.bias.data() + ob * 16);
      float* yt = y + (t * p.OB + ob) * 64;
      for (int r = 0; r < 2; ++r) {
        _mm512_storeu_ps(yt + (2 * r) * 16, _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(x[r][0], x[r][1]), x[r][2]), bias));
        _mm512_storeu_ps(yt + (2 * r + 1) * 16, _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(x[r][1], x[r][2]), x[r][3]), bias));
      }
    }
}

// The tiles' outputs into the blocked result (bf16 when handed off); lanes past O are zeros and
// rows or columns past the output (an odd size) are left out.
TANDEM_TARGET_AVX512_BF16 void store_tiles(const Wino& p, const float* y, int64_t tile0, int64_t count, void* out) {
  for (int64_t t = 0; t < count; ++t) {
    const int64_t tile = tile0 + t;
    const int64_t n = tile / (p.TH * p.TW), ty = tile / p.TW % p.TH, tx = tile % p.TW;
    for (int64_t ob = 0; ob < p.OB; ++ob) {
      const __mmask16 real = static_cast<__mmask16>((1u << std::min<int64_t>(16, p.O - ob * 16)) - 1u);
      for (int r = 0; r < 2; ++r) {
        const int64_t oy = 2 * ty + r;
        if (oy >= p.OH) break;
        for (int s = 0; s < 2; ++s) {
          const int64_t ox = 2 * tx + s;
          if (ox >= p.OW) break;
          const __m512 val = _mm512_maskz_mov_ps(real, _mm512_loadu_ps(y + ((t * p.OB + ob) * 4 + 2 * r + s) * 16));
          const int64_t at = (((n * p.OB + ob) * p.OH + oy) * p.OW + ox) * 16;
          if (p.dst_bf16)
            _mm256_storeu_si256(reinterpret_cast<__m256i*>(static_cast<uint16_t*>(out) + at),
                                (__m256i)_mm512_cvtneps_pbh(val));
          else
            _mm512_storeu_ps(static_cast<float*>(out) + at, val);
        }
      }
    }
  }
}

class WinogradBf16Kernel final : public Kernel {
 public:
  int x = -1, out = -1;
  Wino p;
  int64_t scratch_bytes = 0;  // per thread

  Status run(RunCtx& ctx, KernelState*) const override {
    const int64_t tiles = p.N * p.TH * p.TW;
    const int64_t chunks = (tiles + p.chunk - 1) / p.chunk;
    const void* src = ctx.ptr[x];
    void* dst = ctx.ptr[out];
    auto* scratch = static_cast<char*>(ctx.scratch);
    const int threads = chunks < 2 ? 1 : ctx.threads;
    parallel_range(threads, chunks, 1, [&](int64_t b, int64_t e) {
      const int64_t slot = omp_get_thread_num() % std::max(ctx.threads, 1);  // also inside a caller's team
      char* mine = scratch + slot * scratch_bytes;
      auto* v = reinterpret_cast<uint16_t*>(mine);
      auto* m = reinterpret_cast<float*>(mine + kPositions * p.chunk * p.Cp * 2);
      float* y = m + kPositions * p.chunk * p.Op;
      for (int64_t c = b; c < e; ++c) {
        const int64_t tile0 = c * p.chunk;
        const int64_t count = std::min(p.chunk, tiles - tile0);
        if (count < p.chunk)  // the last chunk's idle rows: zeros, not stale values
          for (int64_t pos = 0; pos < kPositions; ++pos)
            std::memset(v + (pos * p.chunk + count) * p.Cp, 0, static_cast<size_t>((p.chunk - count) * p.Cp * 2));
        if (p.src_bf16) input_chunk<true>(p, src, tile0, count, v);
        else input_chunk<false>(p, src, tile0, count, v);
        products(p, v, m);
        output_tiles(p, m, count, y);
        if (!p.post.empty()) ew_apply_pointwise(p.post, y, count * p.OB * 64);
        store_tiles(p, y, tile0, count, dst);
      }
    });
    return Status::ok();
  }
};

}  // namespace

bool winograd_bf16_fits(const Shape& xs, const Shape& ws, const Geometry& g, int64_t groups) {
  if (xs.size() != 4 || ws.size() != 4 || groups != 1 || ws[2] != 3 || ws[3] != 3 || g.dst.size() != 4) return false;
  for (size_t i = 0; i < 2; ++i)
    if (g.strides[i] != 1 || g.dilations[i] != 1) return false;
  const int64_t C = xs[1], O = ws[0];
  const int64_t weight_bytes = kPositions * round_up(C, 16) * round_up(O, 16) * 2;
  return C >= 16 && O >= 8 && g.dst[2] >= 4 && g.dst[3] >= 4 && weight_bytes <= kMaxWeightBytes &&
         has_native_bf16() && channel_block() == 16 && feature_enabled_now("BF16_WINOGRAD");
}

Status add_winograd_bf16(Builder& b, int src, int out, const Shape& xs, const Geometry& g, const Tensor& weight,
                         const Tensor* bias, const EwProgram& post, bool hand_off, const std::string& label) {
  const IValue& sv = b.val(src);
  if (sv.layout != Layout::blocked || (sv.dtype != DataType::float32 && sv.dtype != DataType::bfloat16))
    return internal_error(label + " Winograd source is not blocked float32 or bfloat16");
  if (!post.empty() && !ew_pointwise(post)) return internal_error(label + " Winograd program has operands");
  auto k = std::make_unique<WinogradBf16Kernel>();
  Wino& p = k->p;
  p.N = xs[0];
  p.C = xs[1];
  p.H = xs[2];
  p.W = xs[3];
  p.O = g.dst[1];
  p.OH = g.dst[2];
  p.OW = g.dst[3];
  p.pad_top = g.pads_begin[0];
  p.pad_left = g.pads_begin[1];
  p.CB = (p.C + 15) / 16;
  p.Cp = p.CB * 16;
  p.OB = (p.O + 15) / 16;
  p.Op = p.OB * 16;
  p.TH = (p.OH + 1) / 2;
  p.TW = (p.OW + 1) / 2;
  // Output blocks per group: all of them up to four, else pairs or ones (the groups must tile
  // OB exactly).
  p.group = p.OB <= 4 ? p.OB : p.OB % 2 == 0 ? 2 : 1;
  p.rows = kRowsForGroup[p.group];
  const int64_t per_tile = kPositions * (p.Cp * 2 + p.Op * 4);
  const int64_t tiles = p.N * p.TH * p.TW;
  p.chunk = std::max<int64_t>(1, kChunkBytes / per_tile / p.rows) * p.rows;
  p.chunk = std::min({p.chunk, round_up(tiles, p.rows), kMaxChunk / p.rows * p.rows});
  pack_weights(&p, weight.data<float>());
  p.bias.assign(static_cast<size_t>(p.Op), 0.0f);
  if (bias && bias->defined()) std::copy(bias->data<float>(), bias->data<float>() + p.O, p.bias.begin());
  p.post = post;
  p.src_bf16 = sv.dtype == DataType::bfloat16;
  p.dst_bf16 = hand_off;
  k->scratch_bytes = round_up(p.chunk * per_tile + p.chunk * p.Op * 16, 64);
  k->x = src;
  k->out = out;
  k->label = label + (p.src_bf16 ? " (bf16 Winograd, source handed off)" : " (bf16 Winograd)");
  if (hand_off) b.define_handed_off(out, Layout::blocked);
  else b.define(out, Layout::blocked);
  b.need_scratch(static_cast<int64_t>(b.threads()) * k->scratch_bytes);
  b.add_work(static_cast<double>(tiles * kPositions * p.Cp * p.Op) / 2);
  k->reads = {src};
  k->writes = {out};
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
