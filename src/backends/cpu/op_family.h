// op_family.h: what an op family file (conv.cpp, pool.cpp, elementwise.cpp, ...) builds on: the
// compile-time model (compiled_graph.h), the Builder and instance model (builder.h,
// instance.h), oneDNN kernels (dnnl_kernel.h), elementwise programs and post-ops
// (ew_program.h, ew_post_ops.h, elementwise.h), threading (threads.h), the environment and ISA
// dispatch (runtime_env.h) and the op table the family registers in (op_table.h).
//
// A family file defines OpSpecs in an anonymous namespace and one register_*_ops function.
// This header declares nothing of its own.
#pragma once

#include "backends/cpu/builder.h"
#include "backends/cpu/compiled_graph.h"
#include "backends/cpu/dnnl_kernel.h"
#include "backends/cpu/elementwise.h"
#include "backends/cpu/ew_post_ops.h"
#include "backends/cpu/ew_program.h"
#include "backends/cpu/instance.h"
#include "backends/cpu/op_table.h"
#include "backends/cpu/runtime_env.h"
#include "backends/cpu/threads.h"
