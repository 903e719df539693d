// einsum.cpp: Einsum of two float32 operands as one oneDNN matmul (the reference's
// src/kernels/einsum.cpp has the spec; graph/einsum_equation.h parses the equation).
//
// Every subscript of a two-operand contraction without diagonals is of one kind:
//   batch  in both operands and the output   ("bh" of "bhqd,bhkd->bhqk")
//   M      in the first operand and the output only ("q")
//   N      in the second operand and the output only ("k")
//   K      in both operands, not the output ("d")
// so the Einsum is a batched product [batch..., M, K] x [batch..., K, N] -> [batch..., M, N],
// each batch subscript a dim of its own (size 1 broadcasts) and each of M, N and K the merge of
// its subscripts. The operands and the output are read and written in place through strided
// descriptors where the merged subscripts are adjacent in memory ("bsh,hd->bsd"; the attention
// forms "bqhd,bkhd->bhqk", "bhqk,bkhd->bqhd"); otherwise, or where oneDNN would take its
// reference loops on such strides, the operand is first gathered into that canonical order
// (strided_copy.h), and the output written to a temporary and gathered into place.
//
// Declined, so that placement puts the node on reference with the reason: other operand
// counts, diagonals (a subscript twice in one operand) and subscripts summed within one
// operand; at instance build, sizes that broadcast along M, N or K.
#include <algorithm>
#include <cctype>
#include <map>

#include "backends/cpu/op_family.h"
#include "backends/cpu/strided_copy.h"
#include "graph/einsum_equation.h"

namespace tandem::cpu {

namespace {

using dt = dnnl::memory::data_type;

// Subscripts that no oneDNN product can take, from the equation alone; empty when none.
std::string equation_problem(const Node& n) {
  if (n.inputs.size() != 2 || n.inputs[0].empty() || n.inputs[1].empty()) return "has other than two operands";
  // Letters only matter here: parse as if every ellipsis were empty.
  const std::string eq = n.attr_string("equation", "");
  const std::string lhs = eq.substr(0, eq.find("->"));
  const size_t comma = lhs.find(',');
  if (comma == std::string::npos) return "has other than two operands";
  auto letters = [](const std::string& term) {
    size_t count = 0;
    for (char c : term) count += std::isalpha(static_cast<unsigned char>(c)) != 0;
    return count;
  };
  Result<EinsumLabels> labels = einsum_labels(eq, {letters(lhs.substr(0, comma)), letters(lhs.substr(comma + 1))});
  if (!labels) return labels.status().message();
  for (const std::vector<int>& in : labels->inputs)
    for (size_t i = 0; i < in.size(); ++i)
      if (std::count(in.begin(), in.end(), in[i]) > 1) return "takes a diagonal (a subscript twice in one operand)";
  for (size_t op = 0; op < 2; ++op)
    for (int l : labels->inputs[op]) {
      const auto& other = labels->inputs[1 - op];
      if (std::find(other.begin(), other.end(), l) == other.end() &&
          std::find(labels->output.begin(), labels->output.end(), l) == labels->output.end())
        return "sums a subscript of one operand alone";
    }
  return {};
}

Status supports_einsum(const Node& n) {
  const std::string problem = equation_problem(n);
  return problem.empty() ? Status::ok()
                         : unsupported(n.label() + " equation '" + n.attr_string("equation", "") + "' " + problem);
}

// Where one subscript sits in a tensor: its size and its stride (elements); size 0 when absent.
struct Place {
  int64_t size = 0, stride = 0;
};

// The places of every label in a tensor of `shape` with `labels` (row-major strides).
std::map<int, Place> places(const std::vector<int>& labels, const Shape& shape) {
  std::map<int, Place> out;
  int64_t stride = 1;
  for (size_t i = labels.size(); i-- > 0;) {
    out[labels[i]] = Place{shape[i], stride};
    stride *= shape[i];
  }
  return out;
}

// The merged dim of `group` in a tensor (its labels in that order must chain: each one's
// stride the next one's stride times size; size-1 labels are skipped); false when they do not.
bool merged(const std::vector<int>& group, const std::map<int, Place>& at, Place* out) {
  Place m{1, 1};
  bool first = true;
  for (size_t i = group.size(); i-- > 0;) {
    const Place& p = at.at(group[i]);
    if (p.size == 1) continue;
    if (first)
      m = p;
    else if (p.stride != m.stride * m.size)
      return false;
    else
      m.size *= p.size;
    first = false;
  }
  *out = m;
  return true;
}

class EinsumSpec final : public OpSpec {
 public:
  Status prepare(Builder& b, const Step& step) const override;
};

Status EinsumSpec::prepare(Builder& b, const Step& step) const {
  const Node& n = *step.node;
  const std::string label = n.label();
  if (!all_float32(b, step)) return unsupported(label + " not float32");
  const int a = step.inputs[0], bv = step.inputs[1], out = step.outputs[0];
  if (!b.typed(a) || !b.typed(bv) || !b.typed(out)) return unsupported(label + " shape unknown");
  const Shape as = b.val(a).shape, bs = b.val(bv).shape, os = b.val(out).shape;
  if (shape_numel(as) == 0 || shape_numel(bs) == 0 || shape_numel(os) == 0) return unsupported(label + " empty");
  Result<EinsumLabels> labels = einsum_labels(n.attr_string("equation", ""), {as.size(), bs.size()});
  if (!labels) return unsupported(label + " " + labels.status().message());
  const std::vector<int>&la = labels->inputs[0], &lb = labels->inputs[1], &lo = labels->output;
  if (lo.size() != os.size()) return unsupported(label + " output rank differs from inference");
  const std::map<int, Place> pa = places(la, as), pb = places(lb, bs), po = places(lo, os);

  // Kinds, each group in the order of the operand it comes from (batch: the output's).
  std::vector<int> batch, m_group, n_group, k_group;
  for (int l : lo)
    if (pa.count(l) && pb.count(l)) batch.push_back(l);
  for (int l : la) {
    if (pb.count(l) && !po.count(l))
      k_group.push_back(l);
    else if (!pb.count(l) && po.count(l))
      m_group.push_back(l);
    else if (!pb.count(l))
      return unsupported(label + " sums a subscript of one operand alone");
  }
  for (int l : lb) {
    if (!pa.count(l) && po.count(l))
      n_group.push_back(l);
    else if (!pa.count(l))
      return unsupported(label + " sums a subscript of one operand alone");
  }
  for (const std::vector<int>* g : {&m_group, &k_group})
    for (int l : *g)
      if ((pb.count(l) && pb.at(l).size != pa.at(l).size) || (po.count(l) && po.at(l).size != pa.at(l).size))
        return unsupported(label + " a contracted or kept subscript broadcasts");
  for (int l : n_group)
    if (po.at(l).size != pb.at(l).size) return unsupported(label + " a kept subscript broadcasts");
  if (batch.size() + 2 > 12) return unsupported(label + " too many batch subscripts for oneDNN");

  auto group_size = [](const std::vector<int>& g, const std::map<int, Place>& at) {
    int64_t s = 1;
    for (int l : g) s *= at.at(l).size;
    return s;
  };
  const int64_t K = group_size(k_group, pa);

  // One operand of the product (or the output) as [batch..., rows, cols]: a strided view of
  // the tensor, or, when its groups do not merge (or `dense`), a canonical copy [batch...,
  // rows..., cols...] gathered from it (for the output: gathered into it after the product).
  struct View {
    dnnl::memory::desc md;
    bool copy = false;
    Shape copy_shape;                   // the canonical copy's dims
    std::vector<int64_t> copy_strides;  // the tensor's stride for each of them
  };
  auto view = [&](const std::map<int, Place>& at, const std::vector<int>& rows, const std::vector<int>& cols,
                  bool dense) {
    View result;
    dnnl::memory::dims dims, strides;
    for (int l : batch) dims.push_back(at.at(l).size);
    dims.insert(dims.end(), {group_size(rows, at), group_size(cols, at)});
    Place r, c;
    if (!dense && merged(rows, at, &r) && merged(cols, at, &c)) {
      for (int l : batch) strides.push_back(at.at(l).stride);
      strides.insert(strides.end(), {r.stride, c.stride});
      for (size_t i = 0; i < dims.size(); ++i)
        if (dims[i] == 1) strides[i] = 1;  // any stride serves a dim of size 1
      result.md = dnnl::memory::desc(dims, dt::f32, strides);
      return result;
    }
    result.copy = true;
    result.md = plain_md(Shape(dims.begin(), dims.end()));
    for (const std::vector<int>* g : {static_cast<const std::vector<int>*>(&batch), &rows, &cols})
      for (int l : *g) {
        result.copy_shape.push_back(at.at(l).size);
        result.copy_strides.push_back(at.at(l).stride);
      }
    return result;
  };

  const double work = static_cast<double>(shape_numel(os)) * static_cast<double>(K);
  const int threads = threads_for(b, work);
  ThreadScope scope(threads);
  View va, vb, vo;
  dnnl::matmul::primitive_desc pd;
  bool found = false;
  for (bool dense : {false, true}) {
    va = view(pa, m_group, k_group, dense);
    vb = view(pb, k_group, n_group, dense);
    vo = view(po, m_group, n_group, dense);
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(va.md, vb.md, vo.md), attr, cpu_engine());
    } catch (const dnnl::error&) {
      continue;
    }
    found = true;
    // Strided views oneDNN only takes with its reference loops: the canonical copies may get a
    // fast kernel.
    const bool reference_loops = std::string(pd.impl_info_str()).rfind("ref", 0) == 0;
    if (!reference_loops || dense || (va.copy && vb.copy && vo.copy)) break;
    found = false;
  }
  if (!found) return unsupported(label + " no oneDNN matmul takes it");

  TANDEM_ASSIGN_OR_RETURN(int a_value, b.require(a, Layout::plain));
  TANDEM_ASSIGN_OR_RETURN(int b_value, b.require(bv, Layout::plain));
  for (auto [v, vw] : {std::pair{&a_value, &va}, std::pair{&b_value, &vb}}) {
    if (!vw->copy) continue;
    const int temp = b.add_temp(DataType::float32, vw->copy_shape, Layout::plain);
    TANDEM_RETURN_IF_ERROR(
        add_gather(b, *v, temp, vw->copy_shape, vw->copy_strides, 0, label + " (operand in product order)"));
    *v = temp;
  }
  b.define(out, Layout::plain);
  const int product = vo.copy ? b.add_temp(DataType::float32, vo.copy_shape, Layout::plain) : out;
  auto k = std::make_unique<DnnlKernel>();
  k->label = label;
  k->threads = threads;
  attach_primitive(b, *k, dnnl::matmul(pd), pd.scratchpad_desc());
  k->args = {
      {DNNL_ARG_SRC, a_value, va.md, {}}, {DNNL_ARG_WEIGHTS, b_value, vb.md, {}}, {DNNL_ARG_DST, product, vo.md, {}}};
  k->reads = {a_value, b_value};
  k->writes = {product};
  b.add_kernel(std::move(k));
  if (!vo.copy) return Status::ok();
  // The product [batch..., M..., N...] gathered into the equation's output order.
  std::vector<int> order = batch;
  order.insert(order.end(), m_group.begin(), m_group.end());
  order.insert(order.end(), n_group.begin(), n_group.end());
  const std::map<int, Place> pt = places(order, vo.copy_shape);
  std::vector<int64_t> strides;
  for (int l : lo) strides.push_back(pt.at(l).stride);
  return add_gather(b, product, out, os, strides, 0, label + " (output in the equation's order)");
}

Result<std::unique_ptr<OpSpec>> make_einsum(FusionContext&, const Step&) {
  return std::unique_ptr<OpSpec>(std::make_unique<EinsumSpec>());
}

}  // namespace

void register_einsum_ops(OpTable& t) { t.add("Einsum", &supports_einsum, &make_einsum); }

}  // namespace tandem::cpu
