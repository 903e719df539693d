// ew_layout.cpp: the walk geometry of the elementwise kernel (ew_layout.h).
#include "backends/cpu/ew_layout.h"

#include <algorithm>

namespace tandem::cpu {

std::vector<int64_t> physical_dims(const IValue& v) {
  const int64_t block = channel_block();
  if (v.layout == Layout::blocked)
    return {v.shape[0], round_up(v.shape[1], block) / block, v.shape[2], v.shape[3], block};
  if (v.layout == Layout::nhwc) {  // [N, spatial..., C]
    std::vector<int64_t> dims(v.shape.begin(), v.shape.end());
    dims.erase(dims.begin() + 1);
    dims.push_back(v.shape[1]);
    return dims;
  }
  if (v.shape.empty()) return {1};
  return v.shape;
}

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
  if (outv.layout == Layout::nhwc) {
    // Channels-last output [N, spatial..., C] (nwc, nhwc, ndhwc): a channels-last operand, or a
    // plain one that is constant along the channels or along the pixels (a full-size plain
    // operand would be read a whole channel apart: it is converted instead).
    if (r < 3 || r > 5 || ov.layout == Layout::blocked) return {};
    int64_t pixels = 1;
    for (size_t d = 2; d < r; ++d) pixels *= os[d];
    if (ov.layout == Layout::plain && os[1] != 1 && pixels != 1) return {};
    const bool last = ov.layout == Layout::nhwc;
    auto along = [&](size_t d, int64_t s) { return os[d] == 1 && outv.shape[d] != 1 ? 0 : s; };
    std::vector<int64_t> st(r);
    int64_t inner = last ? os[1] : 1;  // the last spatial dim's stride
    for (size_t d = r; d-- > 2;) {
      st[d - 1] = along(d, inner);
      inner *= os[d];
    }
    st[0] = along(0, os[1] * pixels);
    st[r - 1] = along(1, last ? 1 : pixels);
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

Result<int> blocked_constant(Builder& b, int v) {
  IValue& ov = b.val(v);
  if (ov.shape.size() > 4) return unsupported("operand of rank > 4 in a blocked op");
  Shape s4(4, 1);
  std::copy(ov.shape.begin(), ov.shape.end(), s4.begin() + (4 - ov.shape.size()));
  Tensor t = ov.holder.reshaped(s4);
  int c = b.add_constant(t);
  return b.require(c, Layout::blocked);
}

MergedWalk merge_walk_dims(const std::vector<int64_t>& pd, const std::vector<int64_t>& out_strides,
                           const std::vector<std::vector<int64_t>>& operand_strides, int cb_dim) {
  MergedWalk m;
  std::vector<int64_t>& dims = m.dims;
  std::vector<int64_t>& os = m.out_strides;
  std::vector<std::vector<int64_t>>& ops = m.operand_strides;
  ops.resize(operand_strides.size());
  const int r = static_cast<int>(pd.size());
  int cb_pos = -1;
  for (int i = 0; i < r; ++i) {
    if (pd[i] == 1 && !(i == r - 1 && dims.empty())) continue;
    bool can_merge = !dims.empty() && i != cb_dim && cb_pos != static_cast<int>(dims.size()) - 1;
    if (can_merge) {
      can_merge = os.back() == out_strides[i] * pd[i];
      for (size_t k = 0; k < ops.size() && can_merge; ++k) can_merge = ops[k].back() == operand_strides[k][i] * pd[i];
    }
    if (can_merge) {
      dims.back() *= pd[i];
      os.back() = out_strides[i];
      for (size_t k = 0; k < ops.size(); ++k) ops[k].back() = operand_strides[k][i];
    } else {
      if (i == cb_dim) cb_pos = static_cast<int>(dims.size());
      dims.push_back(pd[i]);
      os.push_back(out_strides[i]);
      for (size_t k = 0; k < ops.size(); ++k) ops[k].push_back(operand_strides[k][i]);
    }
  }
  m.cb_dim = cb_dim < 0 ? -1 : (pd[cb_dim] == 1 ? -2 : cb_pos);
  if (dims.empty()) {
    dims.push_back(1);
    os.push_back(1);
    for (auto& s : ops) s.push_back(0);
  }
  return m;
}

}  // namespace tandem::cpu
