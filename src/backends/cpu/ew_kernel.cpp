// ew_kernel.cpp: the kernel that runs an elementwise program (ew_program.h) over its output:
// operands broadcast by strides, the output walked in tiles of kEwTile floats that stay in L1
// while every op of the chain is applied to them (ew_program.cpp), plain and blocked (nChw16c or
// nChw8c) layouts, OpenMP across tiles.
#include <algorithm>
#include <array>
#include <cstring>

#include "backends/cpu/ew_program.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

namespace {

constexpr int kMaxDims = 8;

class EwKernel final : public Kernel {
 public:
  int nd = 1;
  std::array<int64_t, kMaxDims> dims{};
  std::vector<EwOp> ops;
  std::vector<int> opnd;                                   // instance value per operand
  std::vector<std::array<int64_t, kMaxDims>> opnd_strides;  // per operand, per dim (elements)
  int out = -1;
  std::array<int64_t, kMaxDims> out_strides{};
  // Blocked outputs whose channels are not a multiple of the block: lanes >= tail of the last channel
  // block are zeroed. cb_dim: the dim indexing channel blocks (-2: every element is in it).
  int cb_dim = -1;
  int64_t cb_last = 0, tail = 0;

  Status run(RunCtx& ctx, KernelState*) const override {
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
    parallel_range(threads, tasks, 1, [&](int64_t begin, int64_t end) {
      alignas(64) float acc[kEwTile];
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
        int64_t lt = task % lane_tiles;
        int64_t rest = task / lane_tiles;
        int64_t rt = rest % row_tiles;
        int64_t o = rest / row_tiles;
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
        for (size_t k = 0; k < no; ++k) off[k] = r0 * rs[k] + l0 * ls[k];
        int64_t rem = o;
        for (int i = outer_nd - 1; i >= 0; --i) {
          int64_t idx = rem % dims[i];
          rem /= dims[i];
          if (i == cb_dim) cb_index = idx;
          out_off += idx * out_strides[i];
          for (size_t k = 0; k < no; ++k) off[k] += idx * opnd_strides[k][i];
        }
        for (size_t k = 0; k < no; ++k) base[k] = static_cast<const float*>(ptr[opnd[k]]) + off[k];
        EwTile ta{acc, nr, nl, base, rs, ls};
        for (const EwOp& op : ops) ew_apply_to_tile(op, ta);
        if (cb_dim != -1) {
          const bool rows_are_cb = cb_dim == nd - 2;
          const int64_t block = channel_block();
          for (int64_t r = 0; r < nr; ++r) {
            bool last_block = cb_dim == -2 || (rows_are_cb ? r0 + r == cb_last : cb_index == cb_last);
            if (!last_block) continue;
            float* a = acc + r * nl;
            for (int64_t l = 0; l < nl; ++l)
              if (((l0 + l) & (block - 1)) >= tail) a[l] = 0.0f;
          }
        }
        ew_store_tile(static_cast<float*>(ptr[out]) + out_off, out_rs, acc, nr, nl);
      }
    });
    return Status::ok();
  }
};

// Physical dims of a value in its layout: plain = shape; blocked = [N, C/B, H, W, B] with B =
// channel_block().
std::vector<int64_t> physical_dims(const IValue& v) {
  const int64_t block = channel_block();
  if (v.layout == Layout::blocked)
    return {v.shape[0], round_up(v.shape[1], block) / block, v.shape[2], v.shape[3], block};
  if (v.shape.empty()) return {1};
  return v.shape;
}

// Strides of operand `ov` iterated over the physical dims of `out` (broadcast dims get 0).
// Empty result when the operand needs a layout conversion first.
std::vector<int64_t> operand_strides(const IValue& ov, const IValue& outv) {
  const size_t r = outv.shape.size();
  Shape os(r, 1);
  if (ov.shape.size() > r) return {};
  std::copy(ov.shape.begin(), ov.shape.end(), os.begin() + (r - ov.shape.size()));
  if (outv.layout == Layout::plain) {
    if (ov.layout != Layout::plain) return {};
    std::vector<int64_t> st(std::max<size_t>(r, 1), 0);
    int64_t s = 1;
    for (size_t i = r; i-- > 0;) {
      st[i] = (os[i] == 1 && outv.shape[i] != 1) ? 0 : s;
      s *= os[i];
    }
    return st;
  }
  // Blocked output [N, C, H, W].
  const int64_t C = outv.shape[1];
  if (ov.layout == Layout::blocked) {
    const int64_t block = channel_block();
    const int64_t cb = round_up(ov.shape[1], block) / block;
    const int64_t sw = block, sh = os[3] * block, scb = os[2] * os[3] * block, sn = cb * scb;
    const bool cbc = os[1] == 1 && C != 1;
    return {os[0] == 1 ? 0 : sn, cbc ? 0 : scb, os[2] == 1 ? 0 : sh, os[3] == 1 ? 0 : sw, cbc ? 0 : 1};
  }
  if (os[1] != 1) return {};
  // Plain operand constant along channels.
  const int64_t sw = 1, sh = os[3], sn = os[1] * os[2] * os[3];
  return {os[0] == 1 ? 0 : sn, 0, os[2] == 1 ? 0 : sh, os[3] == 1 ? 0 : sw, 0};
}

// Pads a plain constant to rank 4 and reorders it to the blocked layout.
Result<int> blocked_constant(Builder& b, int v) {
  IValue& ov = b.val(v);
  if (ov.shape.size() > 4) return unsupported("operand of rank > 4 in a blocked op");
  Shape s4(4, 1);
  std::copy(ov.shape.begin(), ov.shape.end(), s4.begin() + (4 - ov.shape.size()));
  Tensor t = ov.holder.reshaped(s4);
  int c = b.add_constant(t);
  return b.require(c, Layout::blocked);
}

}  // namespace

Status add_elementwise(Builder& b, const EwProgram& program, int acc, int out, const std::string& label) {
  EwProgram p;
  if (acc >= 0) {
    p.operands.push_back(acc);
    p.ops.push_back(EwOp{Ew::load, 0, 0, 0});
  }
  const int shift = static_cast<int>(p.operands.size());
  for (int v : program.operands) p.operands.push_back(v);
  for (EwOp op : program.ops) {
    if (op.operand >= 0) op.operand += shift;
    p.ops.push_back(op);
  }
  if (p.ops.empty() || p.ops.front().code != Ew::load || p.ops.front().operand < 0)
    return internal_error(label + " elementwise program does not start with a load");
  if (!b.typed(out)) return unsupported(label + " output shape unknown");
  for (int v : p.operands) {
    if (!b.typed(v) || b.val(v).dtype != DataType::float32) return unsupported(label + " operand is not float32");
    if (b.val(v).kind == IValue::Kind::none) return unsupported(label + " operand missing");
  }
  IValue& ov = b.val(out);
  if (ov.dtype != DataType::float32) return unsupported(label + " output is not float32");
  if (shape_numel(ov.shape) == 0) return unsupported(label + " empty output");
  if (ov.shape.size() > kMaxDims - 1) return unsupported(label + " rank too large");

  // Layout: blocked when a full-size operand is blocked.
  if (!ov.defined) {
    Layout l = Layout::plain;
    if (ov.shape.size() == 4)
      for (int v : p.operands)
        if (b.val(v).layout == Layout::blocked && b.val(v).shape == ov.shape) l = Layout::blocked;
    b.define(out, l);
  }
  const IValue outv = b.val(out);
  auto k = std::make_unique<EwKernel>();
  k->label = label;
  k->ops = p.ops;
  k->out = out;
  std::vector<int64_t> pd = physical_dims(outv);
  const int r = static_cast<int>(pd.size());
  std::vector<std::vector<int64_t>> strides;
  for (size_t i = 0; i < p.operands.size(); ++i) {
    int v = p.operands[i];
    std::vector<int64_t> st = operand_strides(b.val(v), outv);
    if (st.empty()) {
      // Convert the operand to the output's layout.
      int cv = -1;
      if (outv.layout == Layout::blocked) {
        if (b.val(v).kind == IValue::Kind::constant) {
          TANDEM_ASSIGN_OR_RETURN(cv, blocked_constant(b, v));
        } else if (b.val(v).shape.size() == 4) {
          TANDEM_ASSIGN_OR_RETURN(cv, b.require(v, Layout::blocked));
        } else {
          return unsupported(label + " operand of rank " + std::to_string(b.val(v).shape.size()) +
                             " cannot join a blocked op");
        }
      } else {
        TANDEM_ASSIGN_OR_RETURN(cv, b.require(v, Layout::plain));
      }
      p.operands[i] = cv;
      st = operand_strides(b.val(cv), outv);
      if (st.empty()) return internal_error(label + " operand layout conversion failed");
    }
    strides.push_back(std::move(st));
  }
  std::vector<int64_t> ost(r);
  {
    int64_t s = 1;
    for (int i = r; i-- > 0;) {
      ost[i] = s;
      s *= pd[i];
    }
  }
  // Blocked tail handling.
  int cb_dim = -1;
  int64_t tail = 0;
  if (outv.layout == Layout::blocked && outv.shape[1] % channel_block() != 0) {
    cb_dim = 1;
    tail = outv.shape[1] % channel_block();
  }
  // Drop size-1 dims and merge contiguous neighbours (the channel-block dim stays alone).
  std::vector<int64_t> dims;
  std::vector<int64_t> os;
  std::vector<std::vector<int64_t>> ops(strides.size());
  int cb_pos = -1;
  for (int i = 0; i < r; ++i) {
    if (pd[i] == 1 && !(i == r - 1 && dims.empty())) continue;
    bool can_merge = !dims.empty() && i != cb_dim && cb_pos != static_cast<int>(dims.size()) - 1;
    if (can_merge) {
      can_merge = os.back() == ost[i] * pd[i];
      for (size_t k2 = 0; k2 < ops.size() && can_merge; ++k2) can_merge = ops[k2].back() == strides[k2][i] * pd[i];
    }
    if (can_merge) {
      dims.back() *= pd[i];
      os.back() = ost[i];
      for (size_t k2 = 0; k2 < ops.size(); ++k2) ops[k2].back() = strides[k2][i];
    } else {
      if (i == cb_dim) cb_pos = static_cast<int>(dims.size());
      dims.push_back(pd[i]);
      os.push_back(ost[i]);
      for (size_t k2 = 0; k2 < ops.size(); ++k2) ops[k2].push_back(strides[k2][i]);
    }
  }
  const int new_cb = cb_dim < 0 ? -1 : (pd[cb_dim] == 1 ? -2 : cb_pos);
  if (dims.empty()) {
    dims.push_back(1);
    os.push_back(1);
    for (auto& s : ops) s.push_back(0);
  }
  if (static_cast<int>(dims.size()) > kMaxDims) return unsupported(label + " too many dims");
  k->nd = static_cast<int>(dims.size());
  for (int i = 0; i < k->nd; ++i) {
    k->dims[i] = dims[i];
    k->out_strides[i] = os[i];
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    std::array<int64_t, kMaxDims> a{};
    for (int d = 0; d < k->nd; ++d) a[d] = ops[i][d];
    k->opnd_strides.push_back(a);
  }
  if (cb_dim >= 0) {
    k->cb_dim = new_cb;
    k->cb_last = pd[1] - 1;
    k->tail = tail;
    if (new_cb >= 0 && new_cb == k->nd - 1) return internal_error(label + " channel-block dim became the lane dim");
  }
  k->opnd = p.operands;
  k->reads = p.operands;
  k->writes = {out};
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
