// op_cases_rnn.cpp: op-suite cases for the recurrent layers RNN, GRU and LSTM: every direction
// and layout, with and without biases, initial states and peepholes, both GRU forms, and the
// RNN activations; weights as initializers (as exported models have them) run on every backend.
// Forms a backend may decline (clip, other activations, shorter sequence_lens, weights given at
// run time) are cases too, so that a backend that accepts them is checked.
#include "op_suite_util.h"

namespace tandem::testing {

namespace {

// One recurrent layer's inputs, sized by the case.
struct Layer {
  std::string op;
  int64_t seq = 3, batch = 2, input = 4, hidden = 5, dirs = 1;
  bool reverse = false;  // with dirs 1
  bool batch_major = false;
  bool bias = true, initial_h = false, initial_c = false, peephole = false;
};

int64_t gates_of(const std::string& op) { return op == "RNN" ? 1 : op == "GRU" ? 3 : 4; }

// The case of `l` with `attrs` (direction and layout are added); weights, biases, sequence_lens
// and peepholes are initializers, the states graph inputs.
OpCase layer_case(CaseRng& rng, const Layer& l, Attrs attrs, const std::string& note, Tensor seq_lens = Tensor()) {
  const int64_t g = gates_of(l.op), H = l.hidden;
  const Shape x = l.batch_major ? Shape{l.batch, l.seq, l.input} : Shape{l.seq, l.batch, l.input};
  const Shape state = l.batch_major ? Shape{l.batch, l.dirs, H} : Shape{l.dirs, l.batch, H};
  std::vector<Tensor> in = {rng.tensor(x),
                            rng.tensor({l.dirs, g * H, l.input}, -0.6f, 0.6f),
                            rng.tensor({l.dirs, g * H, H}, -0.6f, 0.6f),
                            l.bias ? rng.tensor({l.dirs, 2 * g * H}, -0.5f, 0.5f) : Tensor(),
                            seq_lens,
                            l.initial_h ? rng.tensor(state) : Tensor()};
  if (l.op == "LSTM") {
    in.push_back(l.initial_c ? rng.tensor(state) : Tensor());
    in.push_back(l.peephole ? rng.tensor({l.dirs, 3 * H}, -0.5f, 0.5f) : Tensor());
  }
  attrs["hidden_size"] = attr_int(H);
  attrs["direction"] = attr_string(l.dirs == 2 ? "bidirectional" : l.reverse ? "reverse" : "forward");
  OpCase c = with_outputs(op_case(l.op, std::move(in), std::move(attrs), note), l.op == "LSTM" ? 3 : 2);
  c.constants = (1u << 1) | (1u << 2) | (1u << 3) | (1u << 4) | (1u << 7);
  if (l.batch_major) {
    c.attrs["layout"] = attr_int(1);
    c.opset = 14;
  }
  c.tol = Tolerance{1e-4, 1e-5};
  return c;
}

}  // namespace

std::vector<OpCase> recurrent_cases() {
  CaseRng rng(9009);
  std::vector<OpCase> cases;
  for (const std::string op : {"RNN", "GRU", "LSTM"}) {
    // Directions and layouts; batch 2 makes the bidirectional time-major output a permutation of
    // oneDNN's, and layout 1 with two directions permutes the states.
    for (const char* dir : {"forward", "reverse", "bidirectional"})
      for (bool batch_major : {false, true}) {
        Layer l{op};
        l.dirs = std::string(dir) == "bidirectional" ? 2 : 1;
        l.batch_major = batch_major;
        l.reverse = std::string(dir) == "reverse";
        l.initial_h = l.initial_c = true;
        cases.push_back(on_every_backend(
            layer_case(rng, l, {}, std::string(dir) + (batch_major ? ", layout 1" : "") + ", initial states")));
      }
    // No bias and no initial state; batch 1; one sequence step; longer sequences.
    Layer plain{op};
    plain.bias = false;
    cases.push_back(on_every_backend(layer_case(rng, plain, {}, "no bias, zero initial state")));
    Layer one{op};
    one.batch = 1;
    one.dirs = 2;
    one.seq = 7;
    one.hidden = 16;
    one.input = 9;
    cases.push_back(on_every_backend(layer_case(rng, one, {}, "batch 1, bidirectional, 7 steps")));
    Layer step{op};
    step.seq = 1;
    step.initial_h = true;
    cases.push_back(on_every_backend(layer_case(rng, step, {}, "one step")));
    // sequence_lens: equal to the sequence length everywhere runs everywhere; shorter rows and
    // clipping may be declined.
    cases.push_back(on_every_backend(
        layer_case(rng, Layer{op}, {}, "full sequence_lens", Tensor::from_vector<int32_t>({2}, {3, 3}))));
    cases.push_back(layer_case(rng, Layer{op}, {}, "shorter sequence_lens", Tensor::from_vector<int32_t>({2}, {3, 1})));
    cases.push_back(layer_case(rng, Layer{op}, {{"clip", attr_float(0.3f)}}, "clip"));
    // Weights given at run time.
    OpCase runtime = layer_case(rng, Layer{op}, {}, "runtime weights");
    runtime.constants = 0;
    cases.push_back(runtime);
  }
  // GRU: the reset gate applied before (default) and after the recurrent product.
  for (int lbr : {0, 1})
    for (int64_t dirs : {1, 2}) {
      Layer l{"GRU"};
      l.dirs = dirs;
      l.initial_h = true;
      l.hidden = 8;
      cases.push_back(on_every_backend(
          layer_case(rng, l, {{"linear_before_reset", attr_int(lbr)}},
                     "linear_before_reset " + std::to_string(lbr) + ", dirs " + std::to_string(dirs))));
    }
  // LSTM: peepholes; one initial state without the other; other activations (declined).
  for (int64_t dirs : {1, 2}) {
    Layer l{"LSTM"};
    l.dirs = dirs;
    l.peephole = true;
    l.initial_h = l.initial_c = true;
    cases.push_back(on_every_backend(layer_case(rng, l, {}, "peepholes, dirs " + std::to_string(dirs))));
  }
  Layer h_only{"LSTM"};
  h_only.initial_h = true;
  cases.push_back(on_every_backend(layer_case(rng, h_only, {}, "initial_h without initial_c")));
  Layer c_only{"LSTM"};
  c_only.initial_c = true;
  cases.push_back(on_every_backend(layer_case(rng, c_only, {}, "initial_c without initial_h")));
  cases.push_back(layer_case(rng, Layer{"LSTM"}, {{"activations", attr_strings({"HardSigmoid", "Tanh", "Tanh"})}},
                             "HardSigmoid gates"));
  cases.push_back(layer_case(rng, Layer{"LSTM"}, {{"input_forget", attr_int(1)}}, "input_forget"));
  // RNN activations oneDNN has, named in either case, one per direction or one for both.
  for (const char* act : {"Relu", "Sigmoid", "tanh"}) {
    Layer l{"RNN"};
    l.dirs = 2;
    cases.push_back(on_every_backend(
        layer_case(rng, l, {{"activations", attr_strings({act})}}, std::string(act) + " both directions")));
  }
  Layer two{"RNN"};
  two.dirs = 2;
  cases.push_back(on_every_backend(
      layer_case(rng, two, {{"activations", attr_strings({"Relu", "Relu"})}}, "Relu named per direction")));
  cases.push_back(
      layer_case(rng, two, {{"activations", attr_strings({"Relu", "Tanh"})}}, "a different one per direction"));
  cases.push_back(layer_case(rng, Layer{"RNN"}, {{"activations", attr_strings({"Softsign"})}}, "Softsign"));
  return cases;
}

}  // namespace tandem::testing
