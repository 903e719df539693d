// alloc_count_test.cpp: counts heap allocations in the steady-state run path.
//
// This program replaces the C allocator (malloc, calloc, realloc, the aligned variants; operator
// new lands in malloc) with wrappers that count calls, on every thread, while a counting window
// is open, and forward to glibc. It is its own executable because the wrappers apply to the
// whole process, and it is not built under sanitizers, which replace the allocator themselves.
//
// What it proves: once a model placed wholly on the cpu backend has run once for an input shape
// (instance built, weights packed, a run context pooled), further runs that hand back the
// previous outputs (pooled output buffers) make zero heap allocations — in tandem, in oneDNN
// and in the OpenMP runtime — on one thread and with a two-thread team. It also measures the
// engine's request path (Engine::infer), which adds a small per-request envelope (name maps,
// result struct, the hand-off to a worker thread) that must not grow with the model.
#include <gtest/gtest.h>

#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>

#include <atomic>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <thread>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "backends/backend.h"
#include "engine/placement.h"
#include "onnx/loader.h"
#include "tandem/engine.h"

#include <dnnl.h>

extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void* __libc_memalign(size_t, size_t);
void __libc_free(void*);
}

namespace {
std::atomic<bool> g_counting{false};
std::atomic<long> g_allocations{0};       // every counted allocation
std::atomic<long> g_dnnl_allocations{0};  // those made inside oneDNN (a frame in libdnnl)
const void* g_dnnl_base = nullptr;        // libdnnl's load address (dladdr's dli_fbase)

// TANDEM_ALLOC_TRACE=N prints the call stacks of the first N counted allocations made outside
// oneDNN (to find them).
const long g_trace_limit = [] {
  const char* e = std::getenv("TANDEM_ALLOC_TRACE");
  return e ? std::atol(e) : 0L;
}();
thread_local bool t_in_hook = false;

bool inside_dnnl(void* const* frames, int depth) {
  if (!g_dnnl_base) return false;
  for (int i = 0; i < depth; ++i) {
    Dl_info info;
    if (dladdr(frames[i], &info) && info.dli_fbase == g_dnnl_base) return true;
  }
  return false;
}

inline void count() {
  if (!g_counting.load(std::memory_order_relaxed) || t_in_hook) return;
  t_in_hook = true;  // backtrace() may allocate on its first call
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  void* frames[48];
  const int depth = backtrace(frames, 48);
  if (inside_dnnl(frames, depth)) {
    g_dnnl_allocations.fetch_add(1, std::memory_order_relaxed);
  } else if (g_allocations.load() - g_dnnl_allocations.load() <= g_trace_limit) {
    std::fprintf(stderr, "--- allocation outside oneDNN\n");
    backtrace_symbols_fd(frames, depth, 2);
  }
  t_in_hook = false;
}
}  // namespace

extern "C" {
void* malloc(size_t n) {
  count();
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  count();
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  count();
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
void* memalign(size_t alignment, size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
void* aligned_alloc(size_t alignment, size_t n) {
  count();
  return __libc_memalign(alignment, n);
}
int posix_memalign(void** out, size_t alignment, size_t n) {
  count();
  void* p = __libc_memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}
void* valloc(size_t n) {
  count();
  return __libc_memalign(4096, n);
}
}

namespace tandem {
namespace {

// Counting makes runs slow in ways unrelated to the machine's load; keep the cpu backend's
// TeamSizer from reacting to that by building one-thread instances mid-test.
const bool kFixedTeams = ::setenv("TANDEM_CPU_TEAM_SIZER", "0", 1) == 0;

struct Allocations {
  long total = 0;
  long in_dnnl = 0;
  long outside_dnnl() const { return total - in_dnnl; }
};

// Allocations made by `fn` on any thread.
template <class Fn>
Allocations allocations_during(Fn&& fn) {
  if (!g_dnnl_base) {
    Dl_info info;
    if (dladdr(reinterpret_cast<void*>(&dnnl_primitive_execute), &info)) g_dnnl_base = info.dli_fbase;
  }
  g_allocations.store(0);
  g_dnnl_allocations.store(0);
  g_counting.store(true);
  fn();
  g_counting.store(false);
  return {g_allocations.load(), g_dnnl_allocations.load()};
}

Tensor random_tensor(const Shape& shape, uint32_t seed) {
  Tensor t(DataType::float32, shape);
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(0.0f, 1.0f);
  for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = d(rng);
  return t;
}

std::filesystem::path model_path(const std::string& file) {
  return std::filesystem::path(TANDEM_SOURCE_DIR) / "models" / file;
}

TEST(AllocationCounter, SeesAllocationsOnEveryThread) {
  ASSERT_TRUE(kFixedTeams);
  // The counter itself must work, or a zero below would prove nothing.
  const Allocations n = allocations_during([] {
    std::vector<int>* v = new std::vector<int>(100);
    delete v;
    void* p = std::malloc(10);
    std::free(p);
    std::thread t([] { std::string s(1000, 'x'); });
    t.join();
  });
  EXPECT_GE(n.total, 4);
  EXPECT_EQ(n.in_dnnl, 0);
}

// Runs `placed` twice to warm up, then measures five runs one by one. Every run must make no
// allocation outside oneDNN, and oneDNN's own count (its execute entry point copies each call's
// argument list into a hash map) must be the same every run. Returns oneDNN's count per run.
long expect_steady_state_allocation_free(const PlacedModel& placed, const std::vector<Value>& inputs,
                                         const std::string& what) {
  std::vector<Value> outputs;
  for (int i = 0; i < 2; ++i) {
    Status s = placed.run(inputs, &outputs);
    EXPECT_TRUE(s.is_ok()) << s.to_string();
    if (!s.is_ok()) return -1;
  }
  const Tensor first = outputs.at(0).tensor.clone();
  long dnnl_per_run = -1;
  for (int i = 0; i < 5; ++i) {
    Status status;
    const Allocations n = allocations_during([&] { status = placed.run(inputs, &outputs); });
    EXPECT_TRUE(status.is_ok()) << status.to_string();
    EXPECT_EQ(n.outside_dnnl(), 0) << what << ", run " << i << ": " << n.outside_dnnl()
                                   << " allocations outside oneDNN (TANDEM_ALLOC_TRACE=20 shows where)";
    if (i > 0) {
      EXPECT_EQ(n.in_dnnl, dnnl_per_run) << what << ": oneDNN's allocations changed between runs";
    }
    dnnl_per_run = n.in_dnnl;
  }
  // The reused buffers hold this run's results (the same input gives the same output).
  EXPECT_EQ(outputs.at(0).tensor.shape(), first.shape());
  EXPECT_EQ(std::memcmp(outputs.at(0).tensor.raw_data(), first.raw_data(), first.nbytes()), 0);
  // An output the caller still shares is never overwritten: the backend allocates a fresh one.
  const Tensor kept = outputs.at(0).tensor;
  EXPECT_TRUE(placed.run(inputs, &outputs).is_ok());
  EXPECT_NE(outputs.at(0).tensor.raw_data(), kept.raw_data());
  EXPECT_EQ(std::memcmp(outputs.at(0).tensor.raw_data(), first.raw_data(), first.nbytes()), 0);
  return dnnl_per_run;
}

Node make_node(const std::string& op, std::vector<std::string> in, std::vector<std::string> out,
               std::map<std::string, Attribute> attrs = {}) {
  static int counter = 0;
  Node n;
  n.op_type = op;
  n.name = op + std::to_string(counter++);
  n.opset = 17;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attrs = std::move(attrs);
  return n;
}

// A graph only tandem's own kernels run (elementwise, activation, normalization, reduction,
// shape ops): not one allocation at all, oneDNN included, on one and on two threads.
TEST(SteadyStateRun, OwnKernelsMakeNoHeapAllocationsAtAll) {
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "this build has no cpu backend";
  auto g = std::make_shared<Graph>();
  g->name = "own_kernels";
  g->opsets[""] = 17;
  ValueInfo x{"x", {}};
  x.type.kind = TypeInfo::Kind::tensor;
  x.type.elem = DataType::float32;
  x.type.has_shape = true;
  for (int64_t d : {2, 8, 33, 17}) x.type.dims.push_back(Dim{d, {}});
  g->inputs.push_back(x);
  g->initializers["b"] = random_tensor({8, 1, 1}, 3);
  g->initializers["gamma"] = random_tensor({17}, 4);
  g->initializers["beta"] = random_tensor({17}, 5);
  Attribute axis;
  axis.type = AttrType::i;
  axis.i = -1;
  Attribute perm;
  perm.type = AttrType::ints;
  perm.ints = {0, 2, 1, 3};
  g->nodes = {make_node("Add", {"x", "b"}, {"a"}), make_node("Sigmoid", {"a"}, {"s"}),
              make_node("Mul", {"a", "s"}, {"m"}), make_node("LayerNormalization", {"m", "gamma", "beta"}, {"n"}, {{"axis", axis}}),
              make_node("Transpose", {"n"}, {"t"}, {{"perm", perm}}), make_node("Softmax", {"t"}, {"y"}, {{"axis", axis}}),
              make_node("ReduceMean", {"y"}, {"r"})};
  for (size_t i = 0; i < g->nodes.size(); ++i) g->nodes[i].index = static_cast<int>(i);
  g->outputs = {ValueInfo{"y", {}}, ValueInfo{"r", {}}};
  const std::vector<Value> inputs{Value::of(random_tensor({2, 8, 33, 17}, 1))};
  for (int threads : {1, 2}) {
    auto placed =
        PlacedModel::create(g, {cpu, find_backend("reference")}, CompileOptions{threads, Precision::fp32, {}});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    for (const auto& n : (*placed)->report().nodes)
      ASSERT_EQ(n.backend, "cpu") << n.node << " runs on " << n.backend;
    EXPECT_EQ(expect_steady_state_allocation_free(**placed, inputs, "own kernels"), 0);
  }
}

// The com.microsoft quantized ops of a QOperator model (qelementwise.cpp, qpool.cpp, qgemm.cpp),
// with runtime scales and zero points (from DynamicQuantizeLinear: tables built per run, on the
// stack and in the arena) and constant ones (tables built with the instance): nothing outside
// oneDNN's execute calls allocates.
TEST(SteadyStateRun, QuantizedContribOpsAllocateNothingOutsideOneDnn) {
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "this build has no cpu backend";
  auto g = std::make_shared<Graph>();
  g->name = "quantized_contrib";
  g->opsets[""] = 17;
  g->opsets["com.microsoft"] = 1;
  auto input = [&](const std::string& name, const Shape& dims) {
    ValueInfo v{name, {}};
    v.type.kind = TypeInfo::Kind::tensor;
    v.type.elem = DataType::float32;
    v.type.has_shape = true;
    for (int64_t d : dims) v.type.dims.push_back(Dim{d, {}});
    g->inputs.push_back(v);
  };
  input("x", {1, 16, 20, 20});
  input("t", {8, 32});
  auto scalar_u8 = [](uint8_t v) { return Tensor::from_vector<uint8_t>({}, {v}); };
  auto ints8 = [](const Shape& s, uint32_t seed) {
    Tensor f = random_tensor(s, seed), t(DataType::int8, s);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<int8_t>()[i] = static_cast<int8_t>(f.data<float>()[i] * 100.0f);
    return t;
  };
  for (const char* name : {"s1", "s2", "s3", "s4", "s5", "s6"}) g->initializers[name] = Tensor::scalar<float>(0.05f);
  for (const char* name : {"z1", "z2", "z3", "z4", "z5", "z6"}) g->initializers[name] = scalar_u8(120);
  g->initializers["m"] = Tensor::from_vector<uint8_t>({16, 1, 1}, std::vector<uint8_t>(16, 140));
  g->initializers["w"] = ints8({10, 32}, 7);
  g->initializers["ws"] = Tensor::from_vector<float>({10}, std::vector<float>(10, 0.004f));
  g->initializers["wz"] = Tensor(DataType::int8, {10});
  g->initializers["dw"] = ints8({32, 24}, 8);
  g->initializers["dws"] = Tensor::scalar<float>(0.003f);
  g->initializers["bias"] = random_tensor({24}, 9);
  auto ms = [](Node n) {
    n.domain = "com.microsoft";
    n.opset = 1;
    return n;
  };
  auto ints = [](std::vector<int64_t> v) {
    Attribute a;
    a.type = AttrType::ints;
    a.ints = std::move(v);
    return a;
  };
  Attribute one;
  one.type = AttrType::i;
  one.i = 1;
  g->nodes = {
      make_node("DynamicQuantizeLinear", {"x"}, {"xq", "xs", "xz"}),
      ms(make_node("QLinearLeakyRelu", {"xq", "xs", "xz", "s1", "z1"}, {"lr"})),
      ms(make_node("QLinearAveragePool", {"lr", "s1", "z1", "s2", "z2"}, {"pool"},
                   {{"kernel_shape", ints({3, 3})}, {"pads", ints({1, 1, 1, 1})}})),
      ms(make_node("QLinearAdd", {"pool", "s2", "z2", "xq", "xs", "xz", "s3", "z3"}, {"add"})),
      ms(make_node("QLinearMul", {"add", "s3", "z3", "m", "s4", "z4", "s4", "z4"}, {"mul"})),
      ms(make_node("QLinearSigmoid", {"mul", "s4", "z4", "s5", "z5"}, {"sig"})),
      ms(make_node("QLinearConcat", {"s5", "z5", "sig", "s5", "z5", "xq", "xs", "xz"}, {"cat"}, {{"axis", one}})),
      ms(make_node("QLinearGlobalAveragePool", {"cat", "s5", "z5", "s6", "z6"}, {"gap"})),
      make_node("Flatten", {"gap"}, {"flat"}),
      ms(make_node("QGemm", {"flat", "s6", "z6", "w", "ws", "wz"}, {"y"}, {{"transB", one}})),
      ms(make_node("DynamicQuantizeMatMul", {"t", "dw", "dws", "", "bias"}, {"d"})),
  };
  for (size_t i = 0; i < g->nodes.size(); ++i) g->nodes[i].index = static_cast<int>(i);
  g->outputs = {ValueInfo{"y", {}}, ValueInfo{"d", {}}};
  const std::vector<Value> inputs{Value::of(random_tensor({1, 16, 20, 20}, 1)), Value::of(random_tensor({8, 32}, 2))};
  for (int threads : {1, 2}) {
    auto placed =
        PlacedModel::create(g, {cpu, find_backend("reference")}, CompileOptions{threads, Precision::fp32, {}});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    for (const auto& n : (*placed)->report().nodes)
      ASSERT_EQ(n.backend, "cpu") << n.node << " runs on " << n.backend;
    expect_steady_state_allocation_free(**placed, inputs, "quantized contrib ops");
  }
}

// Recurrent layers (rnn.cpp): a bidirectional LSTM with enough work that two threads run its
// directions side by side (ConcurrentKernels), and a GRU; nothing outside oneDNN's execute
// calls allocates.
TEST(SteadyStateRun, RecurrentLayersAllocateNothingOutsideOneDnn) {
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "this build has no cpu backend";
  auto g = std::make_shared<Graph>();
  g->name = "recurrent";
  g->opsets[""] = 17;
  ValueInfo x{"x", {}};
  x.type.kind = TypeInfo::Kind::tensor;
  x.type.elem = DataType::float32;
  x.type.has_shape = true;
  for (int64_t d : {50, 4, 128}) x.type.dims.push_back(Dim{d, {}});
  g->inputs.push_back(x);
  auto scaled = [](const Shape& s, uint32_t seed) {
    Tensor t = random_tensor(s, seed);
    for (int64_t i = 0; i < t.numel(); ++i) t.data<float>()[i] = (t.data<float>()[i] - 0.5f) * 0.15f;
    return t;
  };
  g->initializers["w"] = scaled({2, 512, 128}, 2);
  g->initializers["r"] = scaled({2, 512, 128}, 3);
  g->initializers["gw"] = scaled({1, 3 * 64, 256}, 4);
  g->initializers["gr"] = scaled({1, 3 * 64, 64}, 5);
  auto int_attr = [](int64_t v) {
    Attribute a;
    a.type = AttrType::i;
    a.i = v;
    return a;
  };
  Attribute both;
  both.type = AttrType::s;
  both.s = "bidirectional";
  const std::vector<int64_t> flat = {50, 4, 256};
  g->initializers["flat"] = Tensor::from_vector<int64_t>({3}, flat);
  Attribute perm;
  perm.type = AttrType::ints;
  perm.ints = {0, 2, 1, 3};
  g->nodes = {make_node("LSTM", {"x", "w", "r"}, {"y", "yh", "yc"}, {{"hidden_size", int_attr(128)}, {"direction", both}}),
              make_node("Transpose", {"y"}, {"t"}, {{"perm", perm}}), make_node("Reshape", {"t", "flat"}, {"s"}),
              make_node("GRU", {"s", "gw", "gr"}, {"gy", "gh"}, {{"hidden_size", int_attr(64)}, {"linear_before_reset", int_attr(1)}})};
  for (size_t i = 0; i < g->nodes.size(); ++i) g->nodes[i].index = static_cast<int>(i);
  g->outputs = {ValueInfo{"yc", {}}, ValueInfo{"gy", {}}};  // in the order the segment makes them
  const std::vector<Value> inputs{Value::of(random_tensor({50, 4, 128}, 1))};
  for (int threads : {1, 2}) {
    auto placed =
        PlacedModel::create(g, {cpu, find_backend("reference")}, CompileOptions{threads, Precision::fp32, {}});
    ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
    for (const auto& n : (*placed)->report().nodes)
      ASSERT_EQ(n.backend, "cpu") << n.node << " runs on " << n.backend;
    if (threads == 2) {
      EXPECT_NE((*placed)->describe().find("a thread per direction"), std::string::npos);
    }
    expect_steady_state_allocation_free(**placed, inputs, "recurrent layers");
  }
}

struct Case {
  const char* file;
  Shape shape;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.file << " " << shape_to_string(c.shape); }

class PaddleOcrRun : public ::testing::TestWithParam<std::tuple<Case, int>> {};

// The PaddleOCR models, wholly on the cpu backend: no allocation outside oneDNN's execute call.
TEST_P(PaddleOcrRun, AllocatesNothingOutsideOneDnn) {
  const auto& [c, threads] = GetParam();
  Backend* cpu = find_backend("cpu");
  if (!cpu) GTEST_SKIP() << "this build has no cpu backend";
  const auto path = model_path(c.file);
  ASSERT_TRUE(std::filesystem::exists(path)) << path.string() << " is missing: run scripts/setup";
  auto model = load_model(path);
  ASSERT_TRUE(model.is_ok()) << model.status().to_string();
  auto placed =
      PlacedModel::create(model->graph, {cpu, find_backend("reference")}, CompileOptions{threads, Precision::fp32, {}});
  ASSERT_TRUE(placed.is_ok()) << placed.status().to_string();
  ASSERT_EQ((*placed)->report().nodes_per_backend.count("reference"), 0u) << "the model must run wholly on cpu";
  const std::string what = std::string(c.file) + " with " + std::to_string(threads) + " thread(s)";
  const long dnnl = expect_steady_state_allocation_free(**placed, {Value::of(random_tensor(c.shape, 1))}, what);
  std::printf("%s: 0 allocations outside oneDNN, %ld inside oneDNN per run\n", what.c_str(), dnnl);
}

INSTANTIATE_TEST_SUITE_P(Models, PaddleOcrRun,
                         ::testing::Combine(::testing::Values(Case{"ch_ppocr_mobile_v2.0_cls_infer.onnx", {1, 3, 48, 192}},
                                                              Case{"ch_PP-OCRv4_rec_infer.onnx", {1, 3, 48, 320}},
                                                              Case{"ch_PP-OCRv4_det_infer.onnx", {1, 3, 256, 256}}),
                                            ::testing::Values(1, 2)),
                         [](const auto& info) {
                           std::string name = std::get<0>(info.param).file;
                           name = name.substr(0, name.find("_infer"));
                           for (char& ch : name)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name + "_threads" + std::to_string(std::get<1>(info.param));
                         });

// The engine's request path adds a fixed envelope per request; it must not scale with the
// model (the detector has ~40x the classifier's kernels).
TEST(EngineInfer, AllocationsPerRequestDoNotGrowWithTheModel) {
  if (!find_backend("cpu")) GTEST_SKIP() << "this build has no cpu backend";
  EngineOptions eo;
  eo.backends = {"cpu"};
  eo.threads = 1;
  auto engine = Engine::create(eo);
  ASSERT_TRUE(engine.is_ok()) << engine.status().to_string();
  long per_request[2] = {0, 0};
  const Case cases[2] = {{"ch_ppocr_mobile_v2.0_cls_infer.onnx", {1, 3, 48, 192}},
                         {"ch_PP-OCRv4_det_infer.onnx", {1, 3, 128, 128}}};
  for (int m = 0; m < 2; ++m) {
    const auto path = model_path(cases[m].file);
    ASSERT_TRUE(std::filesystem::exists(path)) << path.string() << " is missing: run scripts/setup";
    PrepareOptions po;
    po.input_shapes["x"] = cases[m].shape;
    po.warmup_runs = 2;
    // A call slower than its budget falls back to reference, whose allocations would swamp the
    // count: on a busy machine, never let timing decide the route here.
    po.min_attempt_budget_ms = 60000;
    auto model = (*engine)->prepare(path, po);
    ASSERT_TRUE(model.is_ok()) << model.status().to_string();
    const std::map<std::string, Value> inputs{{"x", Value::of(random_tensor(cases[m].shape, 2))}};
    for (int i = 0; i < 3; ++i) ASSERT_TRUE((*model)->infer(inputs).is_ok());
    constexpr int kRequests = 20;
    Status status;
    const Allocations n = allocations_during([&] {
      for (int i = 0; i < kRequests && status.is_ok(); ++i) {
        auto r = (*model)->infer(inputs);
        if (!r.is_ok()) status = r.status();
        else if (r->backend != "cpu") status = internal_error("request served by " + r->backend);
      }
    });
    ASSERT_TRUE(status.is_ok()) << status.to_string();
    per_request[m] = n.outside_dnnl() / kRequests;
    std::printf("engine infer, %s: %ld allocations per request outside oneDNN\n", cases[m].file, per_request[m]);
  }
  EXPECT_LE(per_request[1], per_request[0] + 8) << "the detector's requests allocate more than the classifier's";
  EXPECT_LE(per_request[0], 200);
}

}  // namespace
}  // namespace tandem
