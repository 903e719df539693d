// inputs.h: checking and binding a request's inputs against a model's declared inputs.
//
// Graph inputs that are also initializers are optional (the initializer is the default).
// Every other input is required. Fixed declared dims must match; symbolic or unknown dims
// accept any size. Errors are one line naming the input, e.g.
//   input 'x' has dtype int64, expected float32
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "graph/graph.h"
#include "tandem/value.h"

namespace tandem {

// Orders `provided` (by name) into the graph's input order, ready for Backend::run().
Result<std::vector<Value>> bind_inputs(const Graph& graph, const std::map<std::string, Value>& provided);

// True when the graph input must be provided (it is not backed by an initializer).
bool is_required_input(const Graph& graph, const ValueInfo& input);

// Parses "1x3x640x640" (also "1,3,640,640"; "scalar" or "" for rank 0).
Result<Shape> parse_dims(const std::string& text);

// The concrete shape of a declared input: `override_shape` if given (its rank must match a
// declared rank), else the declared dims, which must all be fixed.
Result<Shape> concrete_input_shape(const ValueInfo& input, const Shape* override_shape);

// A tensor of seeded pseudo-random values: floats uniform in [0, 1), integers in [0, 10),
// bools fair coin flips. The same seed gives the same values on every platform.
Result<Tensor> random_tensor(DataType dtype, const Shape& shape, uint64_t seed);

}  // namespace tandem
