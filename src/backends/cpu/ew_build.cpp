// ew_build.cpp: add_elementwise (ew_program.h), which lays out an elementwise program's walk
// (its layout, operand strides and conversions, staged 8-bit and upsampled operands, an 8-bit
// or bf16 output) and configures the kernel of ew_kernel.h.
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

Status add_elementwise(Builder& b, const EwProgram& program, int acc, int out, const std::string& label,
                       const EwByteEnds* bytes, const std::vector<EwUpsampled>* upsampled) {
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
  const Shape out_shape = b.val(out).shape;
  // 8-bit operands: the byte value replaces the float32 value it stands for.
  // One the kernel would broadcast (a per-channel gate's bytes) is dequantized into a float32
  // temporary first.
  std::vector<int> byte_of(p.operands.size(), -1);  // index into bytes->inputs
  std::vector<int> dequantized(bytes ? bytes->inputs.size() : 0, -1);
  if (bytes)
    for (size_t i = 0; i < p.operands.size(); ++i)
      for (size_t j = 0; j < bytes->inputs.size(); ++j)
        if (bytes->inputs[j].first == p.operands[i]) {
          const EwByteValue& e = bytes->inputs[j].second;
          if (b.typed(e.value) && b.val(e.value).shape != out_shape) {
            if (dequantized[j] < 0) {
              TANDEM_ASSIGN_OR_RETURN(dequantized[j], add_dequantized(b, e.value, e.scale, e.zero_point,
                                                                      label + " (dequantize operand)"));
            }
            p.operands[i] = dequantized[j];
            break;
          }
          byte_of[i] = static_cast<int>(j);
          p.operands[i] = e.value;
        }
  // Upsampled operands: the Resize's source replaces its output (4-D, same images and channels).
  std::vector<int> up_of(p.operands.size(), -1);  // index into *upsampled
  // Of those, the ones whose source is 8-bit: gathered from channels-last bytes whatever the
  // walk's layout.
  std::vector<bool> up_bytes(p.operands.size(), false);
  if (upsampled && out_shape.size() == 4)
    for (size_t i = 0; i < p.operands.size(); ++i)
      for (size_t j = 0; j < upsampled->size(); ++j) {
        const EwUpsampled& u = (*upsampled)[j];
        if (u.value != p.operands[i] || byte_of[i] >= 0 || !b.typed(u.source)) continue;
        const Shape& src = b.val(u.source).shape;
        if (src.size() != 4 || src[0] != out_shape[0] || src[1] != out_shape[1] ||
            static_cast<int64_t>(u.rows.size()) != out_shape[2] || static_cast<int64_t>(u.cols.size()) != out_shape[3])
          return unsupported(label + " upsampled operand does not match the output");
        up_of[i] = static_cast<int>(j);
        p.operands[i] = u.source;
        up_bytes[i] = u.bytes.value >= 0;
      }
  if (upsampled)
    for (const EwUpsampled& u : *upsampled)
      if (std::find(p.operands.begin(), p.operands.end(), u.value) != p.operands.end())
        return unsupported(label + " upsampled operand of a value that is not 4-D");
  // Operands held in bfloat16 (a hand-off, blocked): widened into a staging tile as the tile is
  // visited when full-size and a slot is free; otherwise (and below, when the walk is not
  // blocked) read through a float32 copy.
  std::vector<bool> bf16_of(p.operands.size(), false);
  int staged_operands = 0;
  for (size_t i = 0; i < p.operands.size(); ++i) staged_operands += byte_of[i] >= 0 || up_of[i] >= 0;
  for (size_t i = 0; i < p.operands.size(); ++i) {
    const int v = p.operands[i];
    if (byte_of[i] >= 0 || up_of[i] >= 0 || !b.val(v).handed_off) continue;
    bool same = false;
    for (size_t j = 0; j < i && !same; ++j) same = bf16_of[j] && p.operands[j] == v;
    if (b.val(v).shape == out_shape && b.val(v).layout == Layout::blocked &&
        (same || staged_operands < kEwMaxStaged)) {
      bf16_of[i] = true;
      staged_operands += !same;
      continue;
    }
    TANDEM_ASSIGN_OR_RETURN(p.operands[i], b.require(v, b.val(v).layout));
  }
  for (size_t i = 0; i < p.operands.size(); ++i) {
    const int v = p.operands[i];
    // An upsampled operand's source may be held in bfloat16 too (gathered and widened below).
    const bool bf16_source = bf16_of[i] || (up_of[i] >= 0 && b.val(v).handed_off);
    const bool eight_bit = byte_of[i] >= 0 || up_bytes[i];
    const DataType want = eight_bit ? b.val(v).dtype : bf16_source ? DataType::bfloat16 : DataType::float32;
    if (!b.typed(v) || b.val(v).dtype != want || (eight_bit && !is_8bit(want)))
      return unsupported(label + " operand is not float32" + (eight_bit ? " or 8-bit" : ""));
    if (b.val(v).kind == IValue::Kind::none) return unsupported(label + " operand missing");
  }
  const bool byte_out = bytes && bytes->output.value >= 0;
  const int stored = byte_out ? bytes->output.value : out;  // the value the kernel writes
  if (!b.typed(stored) || b.val(stored).dtype != (byte_out ? b.val(stored).dtype : DataType::float32) ||
      (byte_out && (!is_8bit(b.val(stored).dtype) || b.val(stored).shape != out_shape)))
    return unsupported(label + " output is not float32" + (byte_out ? " or 8-bit of the program's shape" : ""));
  if (b.val(out).dtype != DataType::float32) return unsupported(label + " program output is not float32");
  if (shape_numel(out_shape) == 0) return unsupported(label + " empty output");
  if (out_shape.size() > kEwMaxDims - 1) return unsupported(label + " rank too large");
  if (staged_operands > kEwMaxStaged) return unsupported(label + " too many 8-bit or upsampled operands");

  // Layout of the walk: blocked when a full-size operand is blocked float32; else channels-last
  // when one is channels-last float32 and the output is 8-bit or every reader of it takes
  // channels-last floats (Builder::readers_take_channels_last_floats: no other step sees one);
  // else blocked when one is channels-last bytes; else plain. An 8-bit output of a blocked or
  // channels-last walk is written channels-last. (Upsampled operands count with their source's
  // layout.)
  Layout l = Layout::plain;
  if (b.val(stored).defined) {
    l = b.val(stored).layout;
    if (byte_out) {
      if (l != Layout::nhwc && l != Layout::plain) return unsupported(label + " 8-bit output layout");
      l = l == Layout::nhwc ? Layout::blocked : Layout::plain;
    }
  } else {
    // 4-D walks take every layout; 3-D and 5-D ones (1-D and 3-D convolutions' values) plain
    // and channels-last floats only.
    const size_t rank = out_shape.size();
    const bool four_d = rank == 4;
    bool blocked_floats = false, channels_last_floats = false, channels_last_bytes = false;
    if (four_d || ((rank == 3 || rank == 5) && staged_operands == 0 && !byte_out))
      for (size_t i = 0; i < p.operands.size(); ++i) {
        const IValue& v = b.val(p.operands[i]);
        if (v.shape != out_shape && up_of[i] < 0) continue;
        const bool floats = byte_of[i] < 0 && !up_bytes[i];
        blocked_floats = blocked_floats || (floats && v.layout == Layout::blocked);
        channels_last_floats = channels_last_floats || (floats && v.layout == Layout::nhwc);
        channels_last_bytes = channels_last_bytes || (!floats && v.layout == Layout::nhwc);
      }
    // A float operand of another rank is read along a channels-last walk only when it is plain
    // and constant along the channels or the pixels (no conversion gives it that layout).
    bool lower_ranks_fit = true;
    for (size_t i = 0; i < p.operands.size() && channels_last_floats; ++i) {
      const IValue& v = b.val(p.operands[i]);
      if (byte_of[i] >= 0 || up_of[i] >= 0 || v.shape.size() == rank) continue;
      Shape os(rank, 1);
      if (v.shape.size() < rank) std::copy(v.shape.begin(), v.shape.end(), os.begin() + (rank - v.shape.size()));
      int64_t pixels = 1;
      for (size_t d = 2; d < rank; ++d) pixels *= os[d];
      lower_ranks_fit =
          lower_ranks_fit && v.shape.size() < rank && v.layout == Layout::plain && (os[1] == 1 || pixels == 1);
    }
    if (channels_last_floats && !blocked_floats && lower_ranks_fit &&
        ((byte_out && four_d) || b.readers_take_channels_last_floats(out)))
      l = Layout::nhwc;
    else if (blocked_floats || channels_last_bytes) l = Layout::blocked;
    // bf16 hand-off (conv.cpp): a blocked float32 result that only bf16 convolutions read.
    if (!byte_out && l == Layout::blocked && b.may_hand_off_bf16() && b.readers_take_bf16(stored))
      b.define_handed_off(stored, l);
    else
      b.define(stored, byte_out ? (l == Layout::plain ? Layout::plain : Layout::nhwc) : l);
  }
  IValue outv = b.val(out);
  outv.dtype = DataType::float32;  // the walk's geometry (a handed-off result is stored in bf16)
  outv.layout = l;
  for (size_t i = 0; i < p.operands.size(); ++i)
    if (bf16_of[i] && l != Layout::blocked) {
      bf16_of[i] = false;
      TANDEM_ASSIGN_OR_RETURN(p.operands[i], b.require(p.operands[i], l));
    }
  const bool any_bf16 = std::find(bf16_of.begin(), bf16_of.end(), true) != bf16_of.end();
  auto k = std::make_unique<EwKernel>();
  k->label = label;
  k->ops = p.ops;
  k->out = stored;
  k->bf16_out = b.val(stored).handed_off;
  std::vector<int64_t> pd = physical_dims(outv);
  const int r = static_cast<int>(pd.size());
  // Element strides of a channels-last 8-bit value of the output's shape over the blocked walk.
  std::vector<int64_t> nhwc_strides;
  if (l == Layout::blocked) {
    const int64_t C = out_shape[1], H = out_shape[2], W = out_shape[3];
    nhwc_strides = {H * W * C, channel_block(), W * C, C, 1};
  }
  // Element strides of a contiguous full-size operand in the walk's layout (the upsampled
  // tensor the kernel reads from its source).
  std::vector<int64_t> contiguous(r);
  for (int64_t i = r, st = 1; i-- > 0;) {
    contiguous[static_cast<size_t>(i)] = st;
    st *= pd[static_cast<size_t>(i)];
  }
  std::vector<std::vector<int64_t>> strides;
  for (size_t i = 0; i < p.operands.size(); ++i) {
    int v = p.operands[i];
    if (up_bytes[i]) {
      TANDEM_ASSIGN_OR_RETURN(p.operands[i], b.require(v, Layout::nhwc));
      strides.push_back(contiguous);
      continue;
    }
    if (up_of[i] >= 0) {
      if (!b.val(v).handed_off || l != Layout::blocked) {
        TANDEM_ASSIGN_OR_RETURN(p.operands[i], b.require(v, l));
      }
      strides.push_back(contiguous);
      continue;
    }
    if (byte_of[i] >= 0) {
      const Layout want = l == Layout::plain ? Layout::plain : Layout::nhwc;
      TANDEM_ASSIGN_OR_RETURN(p.operands[i], b.require(v, want));
      strides.push_back(l == Layout::blocked ? nhwc_strides : operand_strides(b.val(p.operands[i]), outv));
      continue;
    }
    std::vector<int64_t> st = operand_strides(b.val(v), outv);
    if (st.empty()) {
      // Convert the operand to the output's layout.
      int cv = -1;
      if (outv.layout == Layout::nhwc) {
        TANDEM_ASSIGN_OR_RETURN(cv, b.require(v, Layout::nhwc));
      } else if (outv.layout == Layout::blocked) {
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
  if (byte_out && l == Layout::blocked) {
    ost = nhwc_strides;
  } else {
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
  // Drop size-1 dims and merge contiguous neighbours (ew_layout.h).
  const MergedWalk merged = merge_walk_dims(pd, ost, strides, cb_dim);
  const std::vector<int64_t>& dims = merged.dims;
  const std::vector<int64_t>& os = merged.out_strides;
  const std::vector<std::vector<int64_t>>& ops = merged.operand_strides;
  const int new_cb = merged.cb_dim;
  if (static_cast<int>(dims.size()) > kEwMaxDims) return unsupported(label + " too many dims");
  k->nd = static_cast<int>(dims.size());
  for (int i = 0; i < k->nd; ++i) {
    k->dims[i] = dims[i];
    k->out_strides[i] = os[i];
  }
  for (size_t i = 0; i < ops.size(); ++i) {
    std::array<int64_t, kEwMaxDims> a{};
    for (int d = 0; d < k->nd; ++d) a[d] = ops[i][d];
    k->opnd_strides.push_back(a);
  }
  if (cb_dim >= 0) {
    k->cb_dim = new_cb;
    k->cb_last = pd[1] - 1;
    k->tail = tail;
    if (new_cb >= 0 && new_cb == k->nd - 1) return internal_error(label + " channel-block dim became the lane dim");
  }
  if (bytes || upsampled || any_bf16) {
    // 8-bit operands and outputs are read and written a row at a time, with unit lane stride;
    // where channel blocks are padded, a row holds one channel block (the kernel's `real`).
    // So are bf16 operands (their padding lanes hold zeros, widened with the rest).
    bool fits = (!byte_out || os.back() == 1) && (tail == 0 || !bytes || dims.back() == channel_block());
    for (size_t i = 0; i < ops.size(); ++i)
      fits = fits && ((byte_of[i] < 0 && up_of[i] < 0 && !bf16_of[i]) || ops[i].back() == 1);
    if (!fits) return unsupported(label + " 8-bit or bf16 operand or output does not lie along the walk's rows");
    k->stage_slot.assign(ops.size(), -1);
    k->same_as.assign(ops.size(), -1);
    for (size_t i = 0; i < ops.size(); ++i) {
      if (byte_of[i] < 0 && up_of[i] < 0 && !bf16_of[i]) continue;
      for (size_t j = 0; j < i && k->same_as[i] < 0; ++j)
        if (byte_of[j] == byte_of[i] && up_of[j] == up_of[i] && p.operands[j] == p.operands[i] && ops[j] == ops[i])
          k->same_as[i] = static_cast<int>(j);
      if (k->same_as[i] >= 0) {
        k->stage_slot[i] = k->stage_slot[static_cast<size_t>(k->same_as[i])];
        continue;
      }
      k->stage_slot[i] = static_cast<int>(k->stage_bytes.size());
      EwByteParams bp;
      NearestGather gather;
      if (byte_of[i] >= 0) {
        const EwByteValue& e = bytes->inputs[static_cast<size_t>(byte_of[i])].second;
        bp = EwByteParams{b.val(p.operands[i]).dtype == DataType::int8, e.scale, e.zero_point};
      } else if (up_of[i] >= 0) {
        const EwUpsampled& u = (*upsampled)[static_cast<size_t>(up_of[i])];
        const Shape& src = b.val(p.operands[i]).shape;
        gather.block = l == Layout::blocked ? channel_block() : l == Layout::nhwc ? src[1] : 1;
        gather.ih = src[2];
        gather.iw = src[3];
        gather.oh = out_shape[2];
        gather.ow = out_shape[3];
        gather.rows = u.rows;
        gather.cols = u.cols;
        gather.bf16 = b.val(p.operands[i]).dtype == DataType::bfloat16;
        if (up_bytes[i]) {
          gather.bytes = true;
          gather.is_signed = b.val(p.operands[i]).dtype == DataType::int8;
          gather.channels = src[1];
          gather.scale = u.bytes.scale;
          gather.zero_point = u.bytes.zero_point;
        }
      }
      k->stage_bytes.push_back(bp);
      k->gathers.push_back(std::move(gather));
      k->stage_bf16.push_back(bf16_of[i] ? 1 : 0);
    }
    k->rows_outer = bytes && l == Layout::blocked;
    if (byte_out) {
      k->byte_out = true;
      k->out_params = EwByteParams{b.val(stored).dtype == DataType::int8, bytes->output.scale, bytes->output.zero_point};
    }
  }
  k->opnd = p.operands;
  k->reads = p.operands;
  k->writes = {stored};
  // A float32 output that a DynamicQuantizeLinear reads: its range as the tiles are stored.
  if (!byte_out && read_by(b, out, "DynamicQuantizeLinear")) {
    k->range_out = b.add_temp(DataType::float32, {2}, Layout::plain);
    k->writes.push_back(k->range_out);
    b.set_range(out, k->range_out);
  }
  b.add_kernel(std::move(k));
  return Status::ok();
}

}  // namespace tandem::cpu
