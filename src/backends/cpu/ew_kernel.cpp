// ew_kernel.cpp: the run of the elementwise kernel (ew_kernel.h): the output walked in tiles of
// kEwTile floats in parallel, each tile's staged operands dequantized or gathered, every op of
// the chain applied to it in L1 (ew_program.cpp), then stored: float32 (with its range where a
// DynamicQuantizeLinear reads it), bfloat16, or 8-bit, quantized as it is stored (qrows.cpp).
#include <algorithm>
#include <array>
#include <cstring>

#include "backends/cpu/cast.h"
#include "backends/cpu/ew_kernel.h"
#include "backends/cpu/ew_layout.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/int8.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/resize.h"

namespace tandem::cpu {

Status EwKernel::run(RunCtx& ctx, KernelState*) const {
  const int64_t lanes = dims[nd - 1];
  const int64_t rows = nd >= 2 ? dims[nd - 2] : 1;
  const int outer_nd = std::max(nd - 2, 0);
  int64_t outer = 1;
  for (int i = 0; i < outer_nd; ++i) outer *= dims[i];
  int64_t lane_chunk = lanes, rows_per_tile = 1;
  if (lanes >= kEwTile) lane_chunk = kEwTile;
  else rows_per_tile = std::max<int64_t>(1, kEwTile / lanes);
  const int64_t lane_tiles = (lanes + lane_chunk - 1) / lane_chunk;
  const int64_t row_tiles = (rows + rows_per_tile - 1) / rows_per_tile;
  const int64_t tasks = outer * row_tiles * lane_tiles;
  const int64_t total = outer * rows * lanes;
  const int threads = total < 32768 ? 1 : ctx.threads;
  void** ptr = ctx.ptr;
  // The tiles of tasks [begin, end); with `lo` and `hi`, also their range.
  auto tiles = [&](int64_t begin, int64_t end, float* lo, float* hi) {
    alignas(64) float acc[kEwTile];
    alignas(64) float stage[kEwMaxStaged][kEwTile];  // 4 KiB each, on the stack
    const size_t no = opnd.size();
    std::array<const float*, 16> base_small;
    std::array<int64_t, 16> rs_small, ls_small;
    std::vector<const float*> base_big;
    std::vector<int64_t> rs_big, ls_big;
    const float** base = base_small.data();
    int64_t* rs = rs_small.data();
    int64_t* ls = ls_small.data();
    if (no > 16) {
      base_big.resize(no);
      rs_big.resize(no);
      ls_big.resize(no);
      base = base_big.data();
      rs = rs_big.data();
      ls = ls_big.data();
    }
    for (size_t k = 0; k < no; ++k) {
      rs[k] = nd >= 2 ? opnd_strides[k][nd - 2] : 0;
      ls[k] = opnd_strides[k][nd - 1];
    }
    const int64_t out_rs = nd >= 2 ? out_strides[nd - 2] : 0;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t lt = task % lane_tiles;
      const int64_t rest = task / lane_tiles;
      const int64_t rt = rows_outer ? rest / outer : rest % row_tiles;
      const int64_t o = rows_outer ? rest % outer : rest / row_tiles;
      const int64_t r0 = rt * rows_per_tile;
      const int64_t nr = std::min(rows_per_tile, rows - r0);
      const int64_t l0 = lt * lane_chunk;
      const int64_t nl = std::min(lane_chunk, lanes - l0);
      // Offsets of the tile's first element.
      int64_t out_off = r0 * out_rs + l0 * out_strides[nd - 1];
      int64_t cb_index = -1;
      std::array<int64_t, 16> off_small{};
      std::vector<int64_t> off_big;
      int64_t* off = off_small.data();
      if (no > 16) {
        off_big.assign(no, 0);
        off = off_big.data();
      }
      for (size_t k = 0; k < no; ++k)
        off[k] = r0 * (nd >= 2 ? opnd_strides[k][nd - 2] : 0) + l0 * opnd_strides[k][nd - 1];
      int64_t rem = o;
      for (int i = outer_nd - 1; i >= 0; --i) {
        int64_t idx = rem % dims[i];
        rem /= dims[i];
        if (i == cb_dim) cb_index = idx;
        out_off += idx * out_strides[i];
        for (size_t k = 0; k < no; ++k) off[k] += idx * opnd_strides[k][i];
      }
      // Lanes of each row that hold channels (the rest of a last channel block is padding;
      // with 8-bit ends a row holds one channel block, add_elementwise checks): `real` for
      // every row, but `tail` for row `tail_row` where rows are channel blocks.
      const bool rows_are_cb = cb_dim >= 0 && cb_dim == nd - 2;
      const int64_t real = cb_dim != -1 && !rows_are_cb && (cb_dim == -2 || cb_index == cb_last) ? tail : nl;
      const int64_t tail_row = rows_are_cb && cb_last >= r0 && cb_last < r0 + nr ? cb_last - r0 : -1;
      auto by_rows = [&](auto&& fn) {  // fn(first row, rows, lanes)
        if (tail_row < 0) return fn(int64_t{0}, nr, real);
        if (tail_row > 0) fn(int64_t{0}, tail_row, real);
        fn(tail_row, int64_t{1}, tail);
        if (tail_row + 1 < nr) fn(tail_row + 1, nr - tail_row - 1, real);
      };
      // A full-size operand read tile after tile streams from memory: fetch the next tile's
      // bytes (which follow this one's in the walk) while this one computes.
      const bool more = task + 1 < end;
      auto fetch_next = [](const void* tile, int64_t bytes) {
        const char* next = static_cast<const char*>(tile) + bytes;
        for (int64_t i = 0; i < bytes; i += 64) __builtin_prefetch(next + i);
      };
      for (size_t k = 0; k < no; ++k) {
        if (stage_slot.empty() || stage_slot[k] < 0) {
          base[k] = static_cast<const float*>(ptr[opnd[k]]) + off[k];
          if (ls[k] == 1 && rs[k] == nl && more) fetch_next(base[k], nr * nl * 4);
          continue;
        }
        rs[k] = nl;
        ls[k] = 1;
        if (same_as[k] >= 0) {
          base[k] = base[same_as[k]];
          continue;
        }
        float* st = stage[stage_slot[k]];
        const int64_t src_rs = nd >= 2 ? opnd_strides[k][nd - 2] : 0;
        const NearestGather& gather = gathers[static_cast<size_t>(stage_slot[k])];
        if (stage_bf16[static_cast<size_t>(stage_slot[k])]) {
          const auto* from = static_cast<const uint16_t*>(ptr[opnd[k]]) + off[k];
          if (src_rs == nl && more) fetch_next(from, nr * nl * 2);
          if (src_rs == nl) widen_from_bf16(from, st, nr * nl);
          else
            for (int64_t r = 0; r < nr; ++r) widen_from_bf16(from + r * src_rs, st + r * nl, nl);
          base[k] = st;
          continue;
        }
        if (!gather.rows.empty()) {
          const void* from = ptr[opnd[k]];
          if (src_rs == nl) {  // the tile's rows follow each other: one walk, decoded once
            gather_copy(gather, from, off[k], nr * nl, st);
          } else {
            for (int64_t r = 0; r < nr; ++r) gather_copy(gather, from, off[k] + r * src_rs, nl, st + r * nl);
          }
          base[k] = st;
          continue;
        }
        const EwByteParams& bp = stage_bytes[static_cast<size_t>(stage_slot[k])];
        const auto* src = static_cast<const uint8_t*>(ptr[opnd[k]]) + off[k];
        if (src_rs == nl && more) fetch_next(src, nr * nl);
        by_rows([&](int64_t r, int64_t n, int64_t lanes) {
          dequantize_rows(src + r * src_rs, src_rs, bp.is_signed, n, lanes, st + r * nl, nl, bp.scale, bp.zero_point);
          if (lanes < nl)
            for (int64_t i = r; i < r + n; ++i) std::fill(st + i * nl + lanes, st + (i + 1) * nl, 0.0f);
        });
        base[k] = st;
      }
      EwTile ta{acc, nr, nl, base, rs, ls};
      for (const EwOp& op : ops) ew_apply_to_tile(op, ta);
      if (byte_out) {
        uint8_t* dst = static_cast<uint8_t*>(ptr[out]) + out_off;
        by_rows([&](int64_t r, int64_t n, int64_t lanes) {
          quantize_rows(acc + r * nl, nl, n, lanes, dst + r * out_rs, out_rs, out_params.is_signed, out_params.scale,
                        static_cast<float>(out_params.zero_point));
        });
        continue;
      }
      if (cb_dim != -1) {
        const bool rows_are_cb = cb_dim == nd - 2;
        const int64_t block = channel_block();
        for (int64_t r = 0; r < nr; ++r) {
          bool last_block = cb_dim == -2 || (rows_are_cb ? r0 + r == cb_last : cb_index == cb_last);
          if (!last_block) continue;
          // Zero the padding lanes [tail, block) of every block the tile's row covers.
          float* a = acc + r * nl;
          for (int64_t l = 0; l < nl;) {
            const int64_t in_block = (l0 + l) & (block - 1);
            const int64_t run = std::min(block - in_block, nl - l);
            const int64_t z0 = std::max(in_block, tail);
            if (z0 < in_block + run) std::fill_n(a + l + (z0 - in_block), in_block + run - z0, 0.0f);
            l += run;
          }
        }
      }
      if (lo) {
        float l, h;
        min_max(acc, nr * nl, &l, &h);
        *lo = std::min(*lo, l);
        *hi = std::max(*hi, h);
      }
      if (bf16_out) {
        uint16_t* dst = static_cast<uint16_t*>(ptr[out]) + out_off;
        if (out_rs == nl) narrow_to_bf16(acc, dst, nr * nl);  // rows follow each other: one pass
        else
          for (int64_t r = 0; r < nr; ++r) narrow_to_bf16(acc + r * nl, dst + r * out_rs, nl);
        continue;
      }
      ew_store_tile(static_cast<float*>(ptr[out]) + out_off, out_rs, acc, nr, nl);
    }
  };
  if (range_out < 0) {
    parallel_range(threads, tasks, 1, [&](int64_t begin, int64_t end) { tiles(begin, end, nullptr, nullptr); });
    return Status::ok();
  }
  const int64_t pieces = std::min<int64_t>(tasks, kMaxParts);
  float lo[kMaxParts] = {}, hi[kMaxParts] = {};
  parallel_range(threads, pieces, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) tiles(tasks * i / pieces, tasks * (i + 1) / pieces, &lo[i], &hi[i]);
  });
  float* range = static_cast<float*>(ptr[range_out]);
  range[0] = *std::min_element(lo, lo + pieces);
  range[1] = *std::max_element(hi, hi + pieces);
  return Status::ok();
}

}  // namespace tandem::cpu
