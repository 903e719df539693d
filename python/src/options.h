// options.h: Python keyword arguments -> EngineOptions / PrepareOptions.
#pragma once

#include <pybind11/pybind11.h>

#include "tandem/engine.h"

namespace tandem::python {

namespace py = pybind11;

// Every keyword names a PrepareOptions field (same spelling); `strict=True` is fallback="strict";
// `breaker` and `parity_budget` take dicts of their struct's fields. Unknown keys, wrong types
// and bad values: invalid_argument. Needs the GIL.
Status prepare_options_from_kwargs(const py::kwargs& kw, PrepareOptions* out);

}  // namespace tandem::python
