// qdq_format.cpp: recognizing the QDQ format, for the QDQ passes (fusion.h): the
// QuantizeLinear and DequantizeLinear nodes they take (plain_quant_node), and the graph's
// preparation before them (qdq_shapes_read_the_bytes).
#include "backends/cpu/fusion.h"
#include "backends/cpu/op_family.h"

namespace tandem::cpu {

bool plain_quant_node(const Node& n, const char* op) {
  const std::string domain = canonical_domain(n.domain);
  if (n.op_type != op || (!domain.empty() && domain != kMicrosoftDomain)) return false;
  if (n.attr_int("block_size", 0) != 0) return false;
  if (n.op_type == "QuantizeLinear" && n.attr_int("saturate", 1) != 1) return false;
  return n.inputs.size() == 3 && !n.inputs[0].empty() && !n.inputs[1].empty() && !n.inputs[2].empty() &&
         n.outputs.size() == 1;
}

void qdq_shapes_read_the_bytes(CompiledGraph& g) {
  g.relink();
  for (Step& s : g.steps) {
    if (s.dead || !s.node || s.originals.size() != 1 || s.node->op_type != "Shape" ||
        !canonical_domain(s.node->domain).empty() || s.inputs.empty() || s.inputs[0] < 0)
      continue;
    const int d = g.values[s.inputs[0]].producer;
    if (d < 0 || g.steps[d].dead || !g.steps[d].node || g.steps[d].originals.size() != 1 ||
        g.steps[d].node->op_type != "DequantizeLinear" || g.steps[d].inputs.empty() || g.steps[d].inputs[0] < 0)
      continue;
    const std::string domain = canonical_domain(g.steps[d].node->domain);
    if (!domain.empty() && domain != kMicrosoftDomain) continue;
    Node n = *s.node;
    n.inputs[0] = g.name_of(g.steps[d].inputs[0]);
    g.synthesized.push_back(std::move(n));
    s.node = &g.synthesized.back();
    s.originals = {s.node};
    s.inputs[0] = g.steps[d].inputs[0];
  }
}

}  // namespace tandem::cpu
