// qdq_round_trips.cpp: QuantizeLinear -> DequantizeLinear pairs as float steps.
//
// What is left of the QDQ format after qdq_fusion.cpp, a QuantizeLinear whose output only a
// DequantizeLinear with the same per-tensor constants reads, rounds float values to the 8-bit
// grid and back (around a product that stays float, such as a convolution whose int8 weights the
// CPU cannot multiply exactly, or between float ops). fuse_qdq_round_trips makes each pair one
// elementwise step (Ew::fake_quant_*) with the same arithmetic, so the 8-bit tensor is never
// written and the step can join the ops around it; a convolution before it takes it into its
// output pass. 16-bit pairs (models with 16-bit activations and 8-bit weights, "A16W8": every
// product stays float, between such pairs) become the same steps.
#include <cstring>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/fusion.h"
#include "backends/cpu/op_family.h"
#include "backends/cpu/requant_chain.h"

namespace tandem::cpu {

int fuse_qdq_round_trips(CompiledGraph& g) {
  g.relink();
  FusionContext f{g};
  int fused = 0;
  for (size_t i = 0; i < g.steps.size(); ++i) {
    const Step& qs = g.steps[i];
    if (qs.dead || !qs.spec || qs.originals.size() != 1 || !plain_quant_node(*qs.node, "QuantizeLinear")) continue;
    const int q8 = qs.outputs[0];
    const int d = f.sole_reader(q8);
    if (d < 0) continue;
    Step& ds = g.steps[d];
    if (ds.dead || !ds.spec || ds.originals.size() != 1 || !plain_quant_node(*ds.node, "DequantizeLinear") ||
        ds.inputs[0] != q8)
      continue;
    float scale, dq_scale;
    int32_t zp, dq_zp;
    DataType q_type, dq_type;
    if (!per_tensor_params_any_width(f, qs, &scale, &zp, &q_type) ||
        !per_tensor_params_any_width(f, ds, &dq_scale, &dq_zp, &dq_type) ||
        q_type != dq_type || std::memcmp(&scale, &dq_scale, sizeof scale) != 0 || zp != dq_zp)
      continue;
    const int x = qs.inputs[0];
    EwProgram p;
    p.operands = {x};
    const Ew code = q_type == DataType::uint8   ? Ew::fake_quant_u8
                    : q_type == DataType::int8  ? Ew::fake_quant_s8
                    : q_type == DataType::uint16 ? Ew::fake_quant_u16
                                                 : Ew::fake_quant_s16;
    p.ops = {EwOp{Ew::load, 0, 0, 0}, EwOp{code, -1, scale, static_cast<float>(zp)}};
    // The step takes the DequantizeLinear's place; its head is the QuantizeLinear (its label).
    Step trip;
    trip.node = qs.node;
    trip.originals = {qs.node, ds.node};
    trip.inputs = {x};
    trip.outputs = ds.outputs;
    trip.spec = make_program_spec(std::move(p), {q8});
    g.steps[i] = Step{};
    g.steps[i].dead = true;
    ds = std::move(trip);
    g.relink();
    ++fused;
  }
  if (fused > 0 && verbose()) note("fusion: " + std::to_string(fused) + " QuantizeLinear -> DequantizeLinear round trip(s) -> float steps");
  return fused;
}

}  // namespace tandem::cpu
