// rnn.cpp: RNN, GRU and LSTM on oneDNN's recurrent primitives (the reference's
// src/kernels/rnn.cpp has the spec).
//
// Weights are rearranged once, at compile, into oneDNN's logical order. ONNX stores each
// direction's gates as rows: W [dirs, gates * hidden, input], R [dirs, gates * hidden, hidden],
// LSTM gates in the order i, o, f, c and GRU gates z, r, h, with an input bias and a recurrent
// bias per gate. oneDNN reads weights as [layer, dir, input, gate, hidden] (ldigo) with LSTM
// gates in the order i, f, c, o and GRU gates u (= z), r, o (= h), and one bias per gate: the
// two ONNX biases summed, except the candidate of a GRU with linear_before_reset, whose
// recurrent bias is multiplied by the reset gate and stays apart (oneDNN's linear-before-reset
// GRU, four bias slots). LSTM peepholes: ONNX i, o, f; oneDNN i, f, o. Each instance reorders
// the weights into the format its primitive chooses, once per format, shared by instances.
//
// Layouts: time-major X [seq, batch, input] (layout 0) is oneDNN's tnc, batch-major (layout 1)
// its ntc. oneDNN writes the output sequence as [seq, batch, dirs * hidden] (tnc) or
// [batch, seq, dirs * hidden] (ntc). ONNX's layout-1 Y [batch, seq, dirs, hidden] is the latter's
// bytes; its layout-0 Y [seq, dirs, batch, hidden] is the former's only when batch or dirs is 1,
// and is otherwise written through a temporary and a permuting reorder. States are oneDNN's
// ldnc [1, dirs, batch, hidden], ONNX's layout 0; layout-1 states [batch, dirs, hidden] of two
// directions are permuted the same way.
//
// Declined, so that placement puts the node on reference with the reason: clip, input_forget,
// activations oneDNN lacks (LSTM and GRU: only the defaults; RNN: Tanh, Relu or Sigmoid, the
// same in both directions), weights or biases given at run time, and sequence_lens given at run
// time or shorter than the sequence (oneDNN runs every batch row to the full length); lengths
// computed inside the segment (from shapes) are checked when the instance is built.
//
// Bidirectional layers on an instance of two or more threads run as two one-direction
// primitives side by side, one thread each (ConcurrentKernels): a step of a recurrent layer is a
// small product that a second thread only slows, while the two directions are independent.
#include <algorithm>
#include <cctype>
#include <mutex>
#include <tuple>

#include "backends/cpu/op_family.h"
#include "core/tensor_util.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;

// Batches up to this size give the primitive plain (ldigo) weights (make_kernel).
constexpr int64_t kPlainWeightsMaxBatch = 8;

enum class Cell { rnn, gru, lbr_gru, lstm };

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// oneDNN's slot of ONNX gate g.
int64_t dnnl_gate(Cell cell, int64_t g) {
  static constexpr int64_t kLstm[] = {0, 3, 1, 2};  // ONNX i, o, f, c -> oneDNN i, f, c, o
  return cell == Cell::lstm ? kLstm[g] : g;
}

// Where one primitive's operands live: value ids, and byte offsets into them (a direction's
// part of a two-direction value).
struct Operand {
  int value = -1;
  int64_t offset = 0;
};

// Kernels run at once, one per OpenMP thread, each on its own oneDNN stream and part of the
// scratchpad: the two directions of a bidirectional layer. A recurrent primitive's steps are
// small products that one thread runs best; two directions side by side keep two cores busy.
class ConcurrentKernels final : public Kernel {
 public:
  std::vector<std::unique_ptr<DnnlKernel>> parts;
  std::vector<int64_t> scratch_offsets;  // bytes into the scratchpad, per part

  std::unique_ptr<KernelState> make_state(void* const* ptr, const std::vector<bool>& fixed,
                                          void* scratch) const override {
    auto st = std::make_unique<State>();
    for (size_t i = 0; i < parts.size(); ++i) {
      st->parts.push_back(parts[i]->make_state(ptr, fixed, static_cast<std::byte*>(scratch) + scratch_offsets[i]));
      st->streams.emplace_back(cpu_engine());
    }
    st->status.assign(parts.size(), Status::ok());
    return st;
  }

  Status run(RunCtx& ctx, KernelState* state) const override {
    auto* st = static_cast<State*>(state);
    std::vector<Status>& status = st->status;
    const int n = static_cast<int>(parts.size());
    parallel_range(std::min(ctx.threads, n), n, 1, [&](int64_t lo, int64_t hi) {
      for (int64_t i = lo; i < hi; ++i) {
        RunCtx part = ctx;
        part.stream = &st->streams[i];
        part.threads = 1;
        status[i] = parts[i]->run(part, st->parts[i].get());
      }
    });
    for (const Status& s : status) TANDEM_RETURN_IF_ERROR(s);
    return Status::ok();
  }

 private:
  struct State final : KernelState {
    std::vector<std::unique_ptr<KernelState>> parts;
    std::vector<dnnl::stream> streams;
    std::vector<Status> status;  // per part, of the current run
  };
};

class RecurrentSpec final : public OpSpec {
 public:
  Cell cell = Cell::lstm;
  dnnl::algorithm activation = dnnl::algorithm::eltwise_tanh;  // RNN cells only
  std::string direction = "forward";
  int64_t dirs = 1, hidden = 0, input = 0;
  bool batch_major = false;  // layout 1
  // In oneDNN's order: weights_layer [1, dirs, input, slots, hidden], weights_iter [1, dirs,
  // hidden, slots, hidden], bias [1, dirs, bias slots, hidden], peephole [1, dirs, 3, hidden]
  // (undefined without peepholes).
  Tensor weights_layer, weights_iter, bias, peephole;

  Status prepare(Builder& b, const Step& step) const override;

 private:
  // The operands of one primitive: its value ids and their oneDNN descriptors.
  struct Operands {
    Operand x, h_in, c_in, layer_out, h_out, c_out;
    dnnl::memory::desc src_layer, dst_layer, state;
  };
  // A kernel of one primitive over `count` directions starting at direction `first` (both, or one
  // of a pair): oneDNN's direction, the weights' part, the operands at their offsets.
  Result<std::unique_ptr<DnnlKernel>> make_kernel(Builder& b, const std::string& label, const Operands& io,
                                                  int64_t first, int64_t count, int threads) const;
  // Direction `first` (of `count` from it) of `t` [1, dirs, ...] reordered into `md`, made on
  // first use and shared by instances.
  dnnl::memory packed(const Tensor& t, int64_t first, int64_t count, const dnnl::memory::desc& md) const;
  mutable std::mutex mu_;
  mutable std::vector<std::tuple<const void*, dnnl::memory::desc, dnnl::memory>> packed_;
};

// Part [first, first + count) of dim 1 of a tensor shaped [1, dirs, ...]: its shape and bytes.
Shape directions_shape(const Tensor& t, int64_t count) {
  Shape s = t.shape();
  s[1] = count;
  return s;
}
std::byte* directions_data(const Tensor& t, int64_t first) {
  const int64_t per = t.numel() / t.dim(1) * static_cast<int64_t>(sizeof(float));
  return static_cast<std::byte*>(const_cast<void*>(t.raw_data())) + first * per;
}

dnnl::memory RecurrentSpec::packed(const Tensor& t, int64_t first, int64_t count, const dnnl::memory::desc& md) const {
  void* data = directions_data(t, first);
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [d, m, out] : packed_)
    if (d == data && m == md) return out;
  dnnl::memory dst(md, cpu_engine());
  dnnl::memory src(plain_md(directions_shape(t, count)), cpu_engine(), data);
  dnnl::stream s(cpu_engine());
  dnnl::reorder(src, dst).execute(s, src, dst);
  s.wait();
  packed_.emplace_back(data, md, dst);
  return dst;
}

Result<std::unique_ptr<DnnlKernel>> RecurrentSpec::make_kernel(Builder& b, const std::string& label, const Operands& io,
                                                               int64_t first, int64_t count, int threads) const {
  using dnnl::rnn_direction;
  const rnn_direction dir = count == 2                               ? rnn_direction::bidirectional_concat
                            : (direction == "reverse" || first == 1) ? rnn_direction::unidirectional_right2left
                                                                     : rnn_direction::unidirectional_left2right;
  const dnnl::memory::desc none;
  const int64_t slots = weights_layer.dim(3);
  // Weights in oneDNN's plain ldigo order for small batches: oneDNN 2.6 then takes its
  // gemm-based kernel, where with a free choice of format it takes its brgemm kernel on AVX-512,
  // 1.4 to 5x slower for batches of 1 and as fast at 8 (measured on an Intel Xeon, see
  // docs/cpu-backend.md, "Recurrent layers"); larger batches leave the choice to oneDNN.
  const int64_t batch = io.src_layer.dims()[1];
  const tag weights_tag = batch <= kPlainWeightsMaxBatch ? tag::ldigo : tag::any;
  const dnnl::memory::desc wl_any({1, count, input, slots, hidden}, dt::f32, weights_tag);
  const dnnl::memory::desc wi_any({1, count, hidden, slots, hidden}, dt::f32, weights_tag);
  const dnnl::memory::desc bias_md = plain_md(directions_shape(bias, count));
  const dnnl::memory::desc peephole_md = peephole.defined() ? plain_md(directions_shape(peephole, count)) : none;
  const dnnl::memory::desc h_in = io.h_in.value >= 0 ? io.state : none, c_in = io.c_in.value >= 0 ? io.state : none;
  const dnnl::memory::desc h_out = io.h_out.value >= 0 ? io.state : none, c_out = io.c_out.value >= 0 ? io.state : none;

  ThreadScope scope(threads);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  const auto prop = dnnl::prop_kind::forward_inference;
  const dnnl::engine& eng = cpu_engine();
  dnnl::rnn_primitive_desc_base pd;
  try {
    switch (cell) {
      case Cell::lstm:
        pd = dnnl::lstm_forward::primitive_desc(
            dnnl::lstm_forward::desc(prop, dir, io.src_layer, h_in, c_in, wl_any, wi_any, peephole_md, bias_md,
                                     io.dst_layer, h_out, c_out),
            attr, eng);
        break;
      case Cell::gru:
        pd = dnnl::gru_forward::primitive_desc(
            dnnl::gru_forward::desc(prop, dir, io.src_layer, h_in, wl_any, wi_any, bias_md, io.dst_layer, h_out), attr,
            eng);
        break;
      case Cell::lbr_gru:
        pd = dnnl::lbr_gru_forward::primitive_desc(
            dnnl::lbr_gru_forward::desc(prop, dir, io.src_layer, h_in, wl_any, wi_any, bias_md, io.dst_layer, h_out),
            attr, eng);
        break;
      case Cell::rnn:
        pd = dnnl::vanilla_rnn_forward::primitive_desc(
            dnnl::vanilla_rnn_forward::desc(prop, activation, dir, io.src_layer, h_in, wl_any, wi_any, bias_md,
                                            io.dst_layer, h_out),
            attr, eng);
        break;
    }
  } catch (const dnnl::error& e) {
    return unsupported(label + " oneDNN has no recurrent primitive for it: " + e.what());
  }

  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = threads;
  attach_primitive(b, *k, dnnl::primitive(pd), pd.scratchpad_desc());
  auto bind = [&](int arg, const Operand& o, const dnnl::memory::desc& md, bool written) {
    if (o.value < 0) return;
    DnnlKernel::Arg a{arg, o.value, md, {}};
    a.offset = o.offset;
    k->args.push_back(a);
    (written ? k->writes : k->reads).push_back(o.value);
  };
  auto fixed = [&](int arg, const dnnl::memory::desc& md, dnnl::memory m) { k->args.push_back({arg, -1, md, m}); };
  bind(DNNL_ARG_SRC_LAYER, io.x, io.src_layer, false);
  bind(DNNL_ARG_SRC_ITER, io.h_in, io.state, false);
  bind(DNNL_ARG_SRC_ITER_C, io.c_in, io.state, false);
  fixed(DNNL_ARG_WEIGHTS_LAYER, pd.weights_layer_desc(), packed(weights_layer, first, count, pd.weights_layer_desc()));
  fixed(DNNL_ARG_WEIGHTS_ITER, pd.weights_iter_desc(), packed(weights_iter, first, count, pd.weights_iter_desc()));
  if (peephole.defined())
    fixed(DNNL_ARG_WEIGHTS_PEEPHOLE, peephole_md, dnnl::memory(peephole_md, eng, directions_data(peephole, first)));
  fixed(DNNL_ARG_BIAS, bias_md, dnnl::memory(bias_md, eng, directions_data(bias, first)));
  bind(DNNL_ARG_DST_LAYER, io.layer_out, io.dst_layer, true);
  bind(DNNL_ARG_DST_ITER, io.h_out, io.state, true);
  bind(DNNL_ARG_DST_ITER_C, io.c_out, io.state, true);
  return k;
}

Status RecurrentSpec::prepare(Builder& b, const Step& step) const {
  const std::string label = step.node->label();
  auto input_at = [&](size_t i) { return i < step.inputs.size() ? step.inputs[i] : -1; };
  auto output_at = [&](size_t i) { return i < step.outputs.size() ? step.outputs[i] : -1; };
  const int x = input_at(0);
  if (x < 0 || !b.typed(x) || b.val(x).dtype != DataType::float32 || b.val(x).shape.size() != 3)
    return unsupported(label + " X is not a 3-D float32 value");
  const Shape xs = b.val(x).shape;
  const int64_t seq = batch_major ? xs[1] : xs[0], batch = batch_major ? xs[0] : xs[1];
  if (xs[2] != input)
    return unsupported(label + " X has " + std::to_string(xs[2]) + " features, W " + std::to_string(input));
  if (seq <= 0 || batch <= 0) return unsupported(label + " empty sequence or batch");
  if (const int lens = input_at(4); lens >= 0) {
    const Tensor* t = b.known(lens);
    if (!t)
      return unsupported(label + " sequence_lens is known only at run time (oneDNN runs every sequence to its end)");
    for (int64_t l : to_int64_vector(*t))
      if (l != seq)
        return unsupported(label + " sequence_lens holds " + std::to_string(l) + ", not the sequence length " +
                           std::to_string(seq) + " (oneDNN runs every sequence to its end)");
  }
  const int y = output_at(0), h_out_v = output_at(1), c_out_v = cell == Cell::lstm ? output_at(2) : -1;
  const Shape state = batch_major ? Shape{batch, dirs, hidden} : Shape{dirs, batch, hidden};
  const Shape y_shape = batch_major ? Shape{batch, seq, dirs, hidden} : Shape{seq, dirs, batch, hidden};
  for (int v : {y, h_out_v, c_out_v})
    if (v >= 0 && (!b.typed(v) || b.val(v).shape != (v == y ? y_shape : state)))
      return unsupported(label + " an output's shape differs from inference");
  for (int v : {input_at(5), input_at(6)})
    if (v >= 0 && (!b.typed(v) || b.val(v).dtype != DataType::float32 || b.val(v).shape != state))
      return unsupported(label + " an initial state is not float32 of shape " + shape_to_string(state));

  // Two directions run side by side when the instance has two threads for this much work.
  const double work = static_cast<double>(seq) * batch * dirs * weights_layer.dim(3) * hidden * (input + hidden);
  const int threads = threads_for(b, work);
  const bool split = dirs == 2 && threads >= 2;
  const int64_t per = split ? 1 : dirs;  // directions per primitive

  // States in oneDNN's order (ldnc [1, dirs, batch, hidden]); ONNX's layout-1 states of two
  // directions [batch, dirs, hidden] are that permuted.
  const int64_t state_bytes = batch * hidden * 4;  // one direction's
  const dnnl::memory::desc ldnc = plain_md({1, dirs, batch, hidden});
  const bool state_permuted = batch_major && dirs > 1;
  const dnnl::memory::desc state_view =
      state_permuted
          ? dnnl::memory::desc({1, dirs, batch, hidden}, dt::f32, {dirs * batch * hidden, hidden, dirs * hidden, 1})
          : ldnc;
  const bool lstm = cell == Cell::lstm;
  Operands io;
  TANDEM_ASSIGN_OR_RETURN(io.x.value, b.require(x, Layout::plain));
  for (auto [v, slot] : {std::pair{input_at(5), &io.h_in}, std::pair{lstm ? input_at(6) : -1, &io.c_in}}) {
    if (v < 0) continue;
    TANDEM_ASSIGN_OR_RETURN(slot->value, b.require(v, Layout::plain));
    if (!state_permuted) continue;
    const int copy = b.add_temp(DataType::float32, {1, dirs, batch, hidden}, Layout::plain);
    TANDEM_RETURN_IF_ERROR(
        add_reorder(b, slot->value, state_view, copy, ldnc, label + " (initial state to oneDNN's order)"));
    slot->value = copy;
  }
  if (lstm && (io.h_in.value >= 0) != (io.c_in.value >= 0))  // oneDNN takes both initial states or neither
    (io.h_in.value >= 0 ? io.c_in : io.h_in).value =
        b.add_constant(Tensor(DataType::float32, {1, dirs, batch, hidden}));

  // Outputs. oneDNN always writes the sequence; final states only when asked, an LSTM's two
  // together. Y is written in place where oneDNN's order is ONNX's: always for layout 1 (ntc
  // [batch, seq, dirs * hidden]), for layout 0 with one direction or batch 1 when one primitive
  // writes both directions; otherwise through a temporary, directions first when split.
  const bool y_direct = !split && (batch_major || dirs == 1 || batch == 1);
  if (y >= 0 && y_direct) {
    b.define(y, Layout::plain);
    io.layer_out.value = y;
  } else {
    io.layer_out.value = split ? b.add_temp(DataType::float32, {dirs, seq, batch, hidden}, Layout::plain)
                               : b.add_temp(DataType::float32, {seq, batch, dirs * hidden}, Layout::plain);
  }
  if (h_out_v >= 0 || c_out_v >= 0) {
    for (auto [v, slot] : {std::pair{h_out_v, &io.h_out}, std::pair{lstm ? c_out_v : -1, &io.c_out}}) {
      if (v < 0 && slot == &io.c_out && !lstm) continue;
      if (v >= 0 && !state_permuted) {
        b.define(v, Layout::plain);
        slot->value = v;
      } else {
        slot->value = b.add_temp(DataType::float32, {1, dirs, batch, hidden}, Layout::plain);
      }
    }
  }
  const tag seq_tag = batch_major ? tag::ntc : tag::tnc;
  io.src_layer = dnnl::memory::desc({seq, batch, input}, dt::f32, seq_tag);
  io.dst_layer = dnnl::memory::desc({seq, batch, per * hidden}, dt::f32, seq_tag);
  io.state = plain_md({1, per, batch, hidden});

  if (!split) {
    TANDEM_ASSIGN_OR_RETURN(auto k, make_kernel(b, label, io, 0, dirs, threads));
    b.add_kernel(std::move(k));
  } else {
    auto group = std::make_unique<ConcurrentKernels>();
    int64_t scratch = 0;
    for (int64_t d = 0; d < 2; ++d) {
      Operands part = io;
      for (Operand* o : {&part.h_in, &part.c_in, &part.h_out, &part.c_out}) o->offset = d * state_bytes;
      part.layer_out.offset = d * seq * batch * hidden * 4;
      TANDEM_ASSIGN_OR_RETURN(auto k, make_kernel(b, label, part, d, 1, 1));
      group->scratch_offsets.push_back(scratch);
      scratch += round_up(static_cast<int64_t>(k->uses_scratch ? k->scratch_md.get_size() : 0), kAlign);
      for (int v : k->reads) group->reads.push_back(v);
      for (int v : k->writes) group->writes.push_back(v);
      group->parts.push_back(std::move(k));
    }
    b.need_scratch(scratch);
    group->label = label;
    group->implementation = group->parts[0]->implementation + ", a thread per direction";
    b.add_kernel(std::move(group));
  }

  // Permuted outputs into ONNX's order.
  if (y >= 0 && !y_direct) {
    b.define(y, Layout::plain);
    // The temporary seen in Y's dims: split [dirs, seq, batch, hidden] (layout 0) or [dirs,
    // batch, seq, hidden] (layout 1); one primitive [seq, batch, dirs, hidden] (layout 0).
    const int64_t S = seq, B = batch, D = dirs, H = hidden;
    const dnnl::memory::desc from = !split        ? dnnl::memory::desc({S, D, B, H}, dt::f32, {B * D * H, H, D * H, 1})
                                    : batch_major ? dnnl::memory::desc({B, S, D, H}, dt::f32, {S * H, H, B * S * H, 1})
                                                  : dnnl::memory::desc({S, D, B, H}, dt::f32, {B * H, S * B * H, H, 1});
    TANDEM_RETURN_IF_ERROR(
        add_reorder(b, io.layer_out.value, from, y, plain_md(y_shape), label + " (Y to ONNX's order)"));
  }
  for (auto [from, to] : {std::pair{io.h_out.value, h_out_v}, std::pair{io.c_out.value, c_out_v}}) {
    if (to < 0 || from == to) continue;
    b.define(to, Layout::plain);
    TANDEM_RETURN_IF_ERROR(add_reorder(b, from, ldnc, to, state_view, label + " (final state to ONNX's order)"));
  }
  return Status::ok();
}

// What oneDNN cannot compute; empty when it can.
std::string unsupported_attributes(const Node& n, Cell cell, int64_t dirs) {
  if (n.has_attr("clip")) return "clip (oneDNN's recurrent cells do not clip)";
  if (n.attr_int("input_forget", 0) != 0) return "input_forget (oneDNN's LSTM has no coupled gates)";
  const std::vector<std::string> names = n.attr_strings("activations");
  if (names.empty()) return {};
  std::vector<std::string> want;
  if (cell == Cell::lstm)
    want = {"sigmoid", "tanh", "tanh"};
  else if (cell != Cell::rnn)
    want = {"sigmoid", "tanh"};
  else
    want = {lower(names[0])};
  const std::string text =
      "activations other than " +
      std::string(cell == Cell::rnn ? "one of Tanh, Relu and Sigmoid in both directions" : "the defaults");
  if (names.size() != want.size() && names.size() != want.size() * static_cast<size_t>(dirs)) return text;
  for (size_t i = 0; i < names.size(); ++i)
    if (lower(names[i]) != want[i % want.size()]) return text;
  if (cell == Cell::rnn && want[0] != "tanh" && want[0] != "relu" && want[0] != "sigmoid") return text;
  return {};
}

Status supports_recurrent(const Node& n) {
  if (n.inputs.size() < 3 || n.inputs[0].empty() || n.inputs[1].empty() || n.inputs[2].empty())
    return unsupported(n.label() + " needs X, W and R");
  const std::string direction = n.attr_string("direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    return unsupported(n.label() + " direction '" + direction + "'");
  const int64_t layout = n.attr_int("layout", 0);
  if (layout != 0 && layout != 1) return unsupported(n.label() + " layout " + std::to_string(layout));
  const Cell cell = n.op_type == "LSTM" ? Cell::lstm : n.op_type == "GRU" ? Cell::gru : Cell::rnn;
  const std::string why = unsupported_attributes(n, cell, direction == "bidirectional" ? 2 : 1);
  if (!why.empty()) return unsupported(n.label() + " " + why);
  return Status::ok();
}

Result<std::unique_ptr<OpSpec>> make_recurrent(FusionContext& f, const Step& st) {
  const Node& n = *st.node;
  auto s = std::make_unique<RecurrentSpec>();
  const bool gru = n.op_type == "GRU";
  s->cell = n.op_type == "LSTM" ? Cell::lstm
            : gru               ? (n.attr_int("linear_before_reset", 0) ? Cell::lbr_gru : Cell::gru)
                                : Cell::rnn;
  const std::string direction = n.attr_string("direction", "forward");
  s->dirs = direction == "bidirectional" ? 2 : 1;
  s->direction = direction;
  s->batch_major = n.attr_int("layout", 0) == 1;
  if (s->cell == Cell::rnn) {
    const std::vector<std::string> names = n.attr_strings("activations");
    const std::string a = names.empty() ? "tanh" : lower(names[0]);
    s->activation = a == "relu"      ? dnnl::algorithm::eltwise_relu
                    : a == "sigmoid" ? dnnl::algorithm::eltwise_logistic
                                     : dnnl::algorithm::eltwise_tanh;
  }
  const int64_t gates = s->cell == Cell::lstm ? 4 : s->cell == Cell::rnn ? 1 : 3;
  auto constant_at = [&](size_t i) -> const Tensor* {
    if (i >= st.inputs.size() || st.inputs[i] < 0) return nullptr;
    const Tensor* t = f.constant(st.inputs[i]);
    return t && t->dtype() == DataType::float32 ? t : nullptr;
  };
  const Tensor* W = constant_at(1);
  const Tensor* R = constant_at(2);
  const Tensor* B = constant_at(3);
  const Tensor* P = s->cell == Cell::lstm ? constant_at(7) : nullptr;
  const bool has_b = st.inputs.size() > 3 && st.inputs[3] >= 0;
  const bool has_p = s->cell == Cell::lstm && st.inputs.size() > 7 && st.inputs[7] >= 0;
  if (!W || !R || (has_b && !B) || (has_p && !P))
    return unsupported(n.label() + " weights, biases or peepholes given at run time (oneDNN packs them once)");
  // Lengths that come from outside the segment are a run's data: they may differ run by run.
  if (st.inputs.size() > 4 && st.inputs[4] >= 0 && !f.constant(st.inputs[4]) &&
      f.graph.values[st.inputs[4]].producer < 0)
    return unsupported(n.label() + " sequence_lens given at run time (oneDNN runs every sequence to its end)");
  const int64_t D = s->dirs, H = R->rank() == 3 ? R->dim(2) : 0, I = W->rank() == 3 ? W->dim(2) : 0;
  if (H <= 0 || I <= 0 || W->shape() != Shape{D, gates * H, I} || R->shape() != Shape{D, gates * H, H} ||
      (B && B->shape() != Shape{D, 2 * gates * H}) || (P && P->shape() != Shape{D, 3 * H}) ||
      n.attr_int("hidden_size", H) != H)
    return unsupported(n.label() + " weights whose shapes disagree with each other or with hidden_size");
  s->hidden = H;
  s->input = I;

  // weights_layer[0][d][i][slot(g)][h] = W[d][g * H + h][i]; likewise R.
  auto rearrange = [&](const Tensor& src, int64_t cols) {
    Tensor t(DataType::float32, {1, D, cols, gates, H});
    const float* in = src.data<float>();
    float* out = t.data<float>();
    for (int64_t d = 0; d < D; ++d)
      for (int64_t g = 0; g < gates; ++g)
        for (int64_t h = 0; h < H; ++h)
          for (int64_t c = 0; c < cols; ++c)
            out[((d * cols + c) * gates + dnnl_gate(s->cell, g)) * H + h] = in[(d * gates * H + g * H + h) * cols + c];
    return t;
  };
  s->weights_layer = rearrange(*W, I);
  s->weights_iter = rearrange(*R, H);

  // Bias slots: input + recurrent bias per gate; the linear-before-reset GRU's fourth slot is
  // the candidate's recurrent bias, its third the candidate's input bias alone.
  const int64_t slots = s->cell == Cell::lbr_gru ? 4 : gates;
  s->bias = Tensor(DataType::float32, {1, D, slots, H});
  if (B) {
    const float* in = B->data<float>();
    float* out = s->bias.data<float>();
    for (int64_t d = 0; d < D; ++d)
      for (int64_t g = 0; g < gates; ++g)
        for (int64_t h = 0; h < H; ++h) {
          const float wb = in[d * 2 * gates * H + g * H + h], rb = in[d * 2 * gates * H + (gates + g) * H + h];
          const bool apart = s->cell == Cell::lbr_gru && g == 2;
          out[(d * slots + dnnl_gate(s->cell, g)) * H + h] = apart ? wb : wb + rb;
          if (apart) out[(d * slots + 3) * H + h] = rb;
        }
  }
  if (P) {
    static constexpr int64_t kPeephole[] = {0, 2, 1};  // ONNX i, o, f -> oneDNN i, f, o
    s->peephole = Tensor(DataType::float32, {1, D, 3, H});
    for (int64_t d = 0; d < D; ++d)
      for (int64_t g = 0; g < 3; ++g)
        std::copy_n(P->data<float>() + (d * 3 + g) * H, H, s->peephole.data<float>() + (d * 3 + kPeephole[g]) * H);
  }
  return std::unique_ptr<OpSpec>(std::move(s));
}

}  // namespace

void register_rnn_ops(OpTable& t) {
  for (const char* op : {"RNN", "GRU", "LSTM"}) t.add(op, &supports_recurrent, &make_recurrent);
}

}  // namespace tandem::cpu
