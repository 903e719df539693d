// compiled_graph.h: the compile-time model of a segment on the cpu backend: its values (with
// the constants known at compile), its steps in execution order (one per node, or one per fused
// chain) and the OpSpec each op family gives a step. See plan.h for the life of a segment.
//
// compile.cpp builds a CompiledGraph and defines the methods declared here; fusion.cpp rewrites
// its steps. After compile a CompiledGraph is immutable and shared by every instance and run.
#pragma once

#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/ew_program.h"
#include "graph/graph.h"
#include "tandem/status.h"
#include "tandem/tensor.h"

namespace tandem::cpu {

struct CompiledValue {
  std::string name;
  Tensor constant;           // defined when known at compile time
  int producer = -1;         // step index
  std::vector<int> readers;  // step indices (duplicates when a step reads it twice)
  int input_index = -1;      // position among the segment inputs
  bool is_output = false;    // a segment output
  bool shape_param = false;  // read where a value decides a shape (Reshape shape, Resize sizes...)
};

class OpSpec;
class Builder;

struct Step {
  const Node* node = nullptr;               // the head node (label, attributes); owned by the plan
  std::vector<const Node*> originals;       // the nodes this step stands for, in order
  std::vector<int> inputs;                  // value ids (-1: omitted)
  std::vector<int> outputs;                 // value ids (-1: omitted)
  std::unique_ptr<OpSpec> spec;             // null: the generic (reference kernel) path
  bool dead = false;                        // absorbed into another step
};

struct CompiledGraph;

// What fusion and spec construction may see and change.
struct FusionContext {
  CompiledGraph& graph;
  // The single live reader of `value`, or -1 (several readers, a segment output, none).
  int sole_reader(int value) const;
  const Tensor* constant(int value) const;
  // Adds a compile-time constant value (e.g. a folded bias) and returns its id.
  int add_constant(Tensor t);
};

class OpSpec {
 public:
  virtual ~OpSpec() = default;
  // Instance time: choose layouts, define the step's outputs and add kernels. Returning
  // `unsupported` makes the builder run the step's original nodes with reference kernels.
  virtual Status prepare(Builder& b, const Step& step) const = 0;
  // Fusion: offered the sole reader of this step's output (its input `acc_input` is that
  // output). Return true when absorbed; the caller then retires the reader.
  virtual bool absorb(FusionContext& f, Step& self, const Step& reader, int acc_input) { return false; }
  // Fusion: offered the producer of input `value`, which this step alone reads. Return true
  // when absorbed; the caller then retires the producer and this step reads the producer's
  // inputs instead of `value`.
  virtual bool absorb_producer(FusionContext& f, Step& self, const Step& producer, int value) { return false; }
  // True for a plain elementwise program step (used by the fusion of elementwise chains).
  virtual EwProgram* program() { return nullptr; }
  // Instance time, asked by a producer before it lays out its float32 output `value`: true when
  // this step reads `value` as it lies if it is channels-last (it quantizes per tensor, walks
  // channels-last, or sums over pixels), so the producer need not convert it to the float path's
  // layout. A float32 value is channels-last only where every reader answers true.
  virtual bool reads_channels_last_floats(int value) const { return false; }
  // Instance time, asked by a producer (precision bf16, Builder::may_hand_off_bf16) before it
  // lays out its float32 output `value` (its shape in `b`): true when this step can read
  // `value` held in bfloat16 (blocked), as the source of a product that may run on bf16
  // operands or as an operand it widens as it reads it, so the producer may hold it so
  // (IValue::handed_off). The reader must then either read it as it lies or take
  // Builder::require's float32 copy.
  virtual bool reads_bf16_source(const Builder& b, int value) const { return false; }
};

struct CompiledGraph {
  std::shared_ptr<Graph> graph;  // an owned copy of the segment graph
  std::deque<Node> synthesized;  // nodes made by fusion (stable addresses)
  std::vector<CompiledValue> values;
  std::map<std::string, int> value_of;
  std::vector<Step> steps;         // in execution order; dead steps stay in place
  std::vector<int> inputs;         // value id per segment input
  std::vector<int> outputs;        // value id per segment output
  int threads = 1;
  Precision precision = Precision::fp32;  // CompileOptions::precision (bf16: checked at compile)
  std::filesystem::path cache_dir;        // CompileOptions::cache_dir: where timed choices are kept
  size_t shape_cache_bytes = 0;           // CompileOptions::shape_cache_bytes (0: the default)
  // Steps whose family declined them at compile (OpSpec make returned unsupported: what the
  // node needs depends on values only a run has), with the reason; CpuPlan::declined() hands
  // them back to placement.
  std::vector<std::pair<int, std::string>> declined_steps;
  int folded_nodes = 0;            // nodes whose outputs were all known at compile time
  int widened_values = 0;          // float16 values computed in float32 (widen_half_precision)

  int find(const std::string& name) const {
    auto it = value_of.find(name);
    return it == value_of.end() ? -1 : it->second;
  }
  // The name of value `v`, or "" for an omitted optional input (v < 0), as a node spells it.
  std::string name_of(int v) const { return v >= 0 ? values[static_cast<size_t>(v)].name : std::string(); }
  // Re-derives producers/readers from live steps.
  void relink();
};

}  // namespace tandem::cpu
