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
#include "tandem/engine.h"
#include "tandem/tensor_io.h"  // parse_dims, random_tensor (defined in inputs.cpp)
#include "tandem/value.h"

namespace tandem {

// Orders `provided` (by name) into the graph's input order, ready for Backend::run().
Result<std::vector<Value>> bind_inputs(const Graph& graph, const std::map<std::string, Value>& provided);

// True when the graph input must be provided (it is not backed by an initializer).
bool is_required_input(const Graph& graph, const ValueInfo& input);

// The shape of made-up values for a declared input (warm-up, the batch-rows check): its fixed
// dims, `first_dim` for a free first dim when it is > 0, and 1 for every other free dim.
Shape made_up_shape(const ValueInfo& input, int64_t first_dim = 0);

// A graph input or output as the public API describes it (`is_input`: IoInfo::required is
// computed; outputs are always required).
IoInfo describe_io(const Graph& graph, const ValueInfo& value, bool is_input);

// The concrete shape of a declared input: `override_shape` if given (its rank must match a
// declared rank), else the declared dims, which must all be fixed.
Result<Shape> concrete_input_shape(const ValueInfo& input, const Shape* override_shape);

}  // namespace tandem
