// compare.h: numerical comparison of outputs, shared by the conformance runner, the golden
// tests and parity sampling. The declarations are public (tandem/compare.h); core/compare.cpp
// implements them.
#pragma once

#include "tandem/compare.h"
