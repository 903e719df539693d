// op_cases_random.cpp: op-suite cases drawn entirely at random (shapes, kernels, strides, pads,
// axes, slices), and float16 inputs for the ops the models run in half precision.
#include "op_suite_util.h"

namespace tandem::testing {
namespace {

// A random permutation of 0 .. rank-1.
std::vector<int64_t> permutation(CaseRng& rng, size_t rank) {
  std::vector<int64_t> p(rank);
  for (size_t i = 0; i < rank; ++i) p[i] = static_cast<int64_t>(i);
  for (size_t i = rank; i > 1; --i)
    std::swap(p[i - 1], p[static_cast<size_t>(rng.dim(0, static_cast<int64_t>(i) - 1))]);
  return p;
}

void add_random_cases(CaseRng& rng, std::vector<OpCase>& cases) {
  for (int i = 0; i < 6; ++i) {
    // Pools: kernel up to 4, stride up to 3, pads below the kernel, ceil mode either way.
    const int64_t kh = rng.dim(1, 4), kw = rng.dim(1, 4);
    const Shape x{rng.dim(1, 2), rng.dim(1, 19), rng.dim(kh, 15), rng.dim(kw, 15)};
    Attrs a{{"kernel_shape", attr_ints({kh, kw})},
            {"strides", attr_ints({rng.dim(1, 3), rng.dim(1, 3)})},
            {"pads", attr_ints({rng.dim(0, kh - 1), rng.dim(0, kw - 1), rng.dim(0, kh - 1), rng.dim(0, kw - 1)})},
            {"ceil_mode", attr_int(rng.dim(0, 1))}};
    const char* op = i % 2 ? "MaxPool" : "AveragePool";
    if (i % 2 == 0) a["count_include_pad"] = attr_int(rng.dim(0, 1));
    cases.push_back(with_opset(op_case(op, {rng.tensor(x)}, a, "random " + shape_to_string(x)), 12));
  }
  for (int i = 0; i < 6; ++i) {
    // Reductions over a random set of axes, given negative half of the time.
    const size_t rank = static_cast<size_t>(rng.dim(1, 4));
    std::vector<int64_t> axes;
    for (size_t d = 0; d < rank; ++d)
      if (rng.dim(0, 1))
        axes.push_back(rng.dim(0, 1) ? static_cast<int64_t>(d) - static_cast<int64_t>(rank) : static_cast<int64_t>(d));
    const char* op =
        std::vector<const char*>{"ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin"}[static_cast<size_t>(i % 4)];
    Attrs a{{"keepdims", attr_int(rng.dim(0, 1))}};
    if (!axes.empty()) a["axes"] = attr_ints(axes);
    cases.push_back(
        with_opset(op_case(op, {rng.tensor(rng.shape(rank, 1, 8))}, a, "random axes " + shape_to_string(axes)), 11));
  }
  for (int i = 0; i < 6; ++i) {
    const size_t rank = static_cast<size_t>(rng.dim(1, 5));
    const Shape s = rng.shape(rank, 1, 6);
    cases.push_back(op_case("Transpose", {rng.tensor(s)}, {{"perm", attr_ints(permutation(rng, rank))}},
                            "random " + shape_to_string(s)));
    // Slice one random axis with a random step (either sign) and bounds that may overshoot.
    const int64_t axis = rng.dim(0, static_cast<int64_t>(rank) - 1), n = s[static_cast<size_t>(axis)];
    int64_t step = rng.dim(1, 3) * (rng.dim(0, 1) ? 1 : -1);
    int64_t start = rng.dim(-n - 2, n + 2), end = rng.dim(-n - 2, n + 2);
    cases.push_back(with_constants(
        op_case("Slice",
                {rng.tensor(s), i64({start}), i64({end}), i64({axis - static_cast<int64_t>(rank)}), i64({step})}, {},
                "random axis " + std::to_string(axis)),
        30));
    // Concat of three pieces along a random axis.
    Shape s1 = s, s2 = s;
    s1[static_cast<size_t>(axis)] = rng.dim(1, 4);
    s2[static_cast<size_t>(axis)] = rng.dim(1, 4);
    cases.push_back(
        op_case("Concat", {rng.tensor(s), rng.tensor(s1), rng.tensor(s2)}, {{"axis", attr_int(axis)}}, "random"));
    cases.push_back(op_case("Softmax", {rng.tensor(s, -4, 4)},
                            {{"axis", attr_int(-1 - axis % static_cast<int64_t>(rank))}}, "random"));
  }
  // Long rows (vectorized partial sums and a tail) and strided axes wider than the kernel's
  // column chunk.
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    cases.push_back(op_case(op, {rng.tensor({3, 1001}, -6, 6)}, {{"axis", attr_int(-1)}}, "long rows"));
    cases.push_back(op_case(op, {rng.tensor({2, 37, 300}, -6, 6)}, {{"axis", attr_int(1)}}, "strided, 300 columns"));
  }
}

void add_half_cases(CaseRng& rng, std::vector<OpCase>& cases) {
  const DataType h = DataType::float16;
  auto half = [](OpCase c) { return with_tol(std::move(c), 1e-2, 1e-2); };
  cases.push_back(half(op_case("MaxPool", {rng.tensor({1, 5, 9, 8}, -2, 2, h)},
                               {{"kernel_shape", attr_ints({3, 3})}, {"strides", attr_ints({2, 2})}}, "float16")));
  cases.push_back(half(
      op_case("AveragePool", {rng.tensor({1, 5, 9, 8}, -2, 2, h)}, {{"kernel_shape", attr_ints({2, 2})}}, "float16")));
  cases.push_back(half(op_case("GlobalAveragePool", {rng.tensor({2, 3, 7, 6}, -2, 2, h)}, {}, "float16")));
  cases.push_back(half(op_case("GlobalMaxPool", {rng.tensor({2, 3, 7, 6}, -2, 2, h)}, {}, "float16")));
  cases.push_back(half(op_case("Softmax", {rng.tensor({3, 17}, -3, 3, h)}, {}, "float16")));
  cases.push_back(half(op_case("LogSoftmax", {rng.tensor({3, 17}, -3, 3, h)}, {}, "float16")));
  cases.push_back(half(with_opset(
      op_case("ReduceMean", {rng.tensor({4, 6, 5}, -2, 2, h)}, {{"axes", attr_ints({-1})}}, "float16"), 11)));
  cases.push_back(half(with_constants(
      with_opset(op_case("BatchNormalization",
                         {rng.tensor({1, 4, 5, 5}, -2, 2, h), rng.tensor({4}, 0.5f, 1.5f, h), rng.tensor({4}, -1, 1, h),
                          rng.tensor({4}, -1, 1, h), rng.tensor({4}, 0.5f, 2, h)},
                         {}, "float16"),
                 15),
      30)));
  cases.push_back(half(with_constants(
      op_case("LayerNormalization",
              {rng.tensor({3, 16}, -2, 2, h), rng.tensor({16}, 0.5f, 1.5f, h), rng.tensor({16}, -1, 1, h)}, {},
              "float16"),
      6)));
  cases.push_back(half(with_constants(
      op_case("Gemm", {rng.tensor({4, 8}, -1, 1, h), rng.tensor({8, 6}, -1, 1, h), rng.tensor({6}, -1, 1, h)}, {},
              "float16"),
      6)));
  cases.push_back(half(with_constants(
      op_case("ConvTranspose", {rng.tensor({1, 4, 5, 5}, -1, 1, h), rng.tensor({4, 3, 2, 2}, -0.5f, 0.5f, h)},
              {{"strides", attr_ints({2, 2})}}, "float16"),
      2)));
  cases.push_back(half(with_constants(
      with_opset(op_case("Resize",
                         {rng.tensor({1, 3, 4, 5}, -2, 2, h), Tensor(DataType::float32, {0}), f32({4}, {1, 1, 2, 2})},
                         {{"mode", attr_string("linear")}}, "float16"),
                 13),
      6)));
  cases.push_back(
      half(op_case("PRelu", {rng.tensor({2, 4, 3}, -2, 2, h), rng.tensor({4, 1}, -1, 1, h)}, {}, "float16")));
  cases.push_back(half(op_case(
      "Clip",
      {rng.tensor({5, 6}, -3, 3, h), Tensor::scalar<Float16>(Float16(-1.f)), Tensor::scalar<Float16>(Float16(1.5f))},
      {}, "float16")));
  for (const char* op : {"Transpose", "Identity", "Flatten"})
    cases.push_back(op_case(op, {rng.tensor({2, 3, 4}, -2, 2, h)}, {}, "float16"));
  cases.push_back(
      with_constants(op_case("Reshape", {rng.tensor({2, 3, 4}, -2, 2, h), i64({4, -1})}, {}, "float16"), 2));
  cases.push_back(with_constants(
      op_case("Slice", {rng.tensor({5, 6}, -2, 2, h), i64({1}), i64({4}), i64({1})}, {}, "float16"), 14));
  cases.push_back(op_case("Concat", {rng.tensor({2, 3}, -2, 2, h), rng.tensor({2, 5}, -2, 2, h)},
                          {{"axis", attr_int(-1)}}, "float16"));
}

}  // namespace

std::vector<OpCase> random_and_half_cases() {
  CaseRng rng(9009);
  std::vector<OpCase> cases;
  add_random_cases(rng, cases);
  add_half_cases(rng, cases);
  return cases;
}

}  // namespace tandem::testing
