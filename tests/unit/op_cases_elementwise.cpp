// op_cases_elementwise.cpp: op-suite cases for elementwise math, comparisons, logic, casts and
// activations: random shapes (odd sizes, every broadcasting form) and several element types.
#include <limits>
#include <set>

#include "op_suite_util.h"

namespace tandem::testing {
namespace {

// Two shapes that broadcast against each other: `b` drops leading dims of `a` and sets
// others to 1; the pair is swapped at random so either side may be the smaller.
std::pair<Shape, Shape> broadcast_pair(CaseRng& rng) {
  Shape a = rng.shape(static_cast<size_t>(rng.dim(1, 4)), 1, 7);
  Shape b(a.begin() + rng.dim(0, static_cast<int64_t>(a.size()) - 1), a.end());
  for (auto& d : b)
    if (rng.dim(0, 2) == 0) d = 1;
  if (rng.dim(0, 1)) std::swap(a, b);
  return {a, b};
}

const DataType kF32 = DataType::float32;

}  // namespace

std::vector<OpCase> elementwise_cases() {
  CaseRng rng(1001);
  std::vector<OpCase> cases;
  // Binary arithmetic over random broadcast pairs, plus fixed forms: scalar, row, column,
  // both sides broadcasting, and a long vector.
  std::vector<std::pair<Shape, Shape>> shapes = {{{2, 3, 4, 5}, {}},
                                                 {{2, 3, 4, 5}, {1, 3, 1, 1}},
                                                 {{3, 1}, {1, 4}},
                                                 {{2, 1, 4, 1}, {1, 3, 1, 5}},
                                                 {{1001}, {1001}}};
  for (int i = 0; i < 6; ++i) shapes.push_back(broadcast_pair(rng));
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Pow"}) {
    const bool pow = std::string(op) == "Pow";
    for (const auto& [sa, sb] : shapes)
      cases.push_back(
          on_every_backend(op_case(op, {rng.tensor(sa, pow ? 0.5f : -1.f, pow ? 2.f : 1.f), rng.tensor(sb, 0.5f, 1.5f)},
                                   {}, shape_to_string(sa) + " with " + shape_to_string(sb))));
    // Constant second operand (packed at compile time), and float16.
    cases.push_back(on_every_backend(with_constants(
        op_case(op, {rng.tensor({3, 5, 7}, 0.5f, 2.f), rng.tensor({5, 1}, 0.5f, 1.5f)}, {}, "constant operand"), 2)));
    cases.push_back(with_tol(
        op_case(op, {rng.tensor({4, 9}, 0.5f, 2.f, DataType::float16), rng.tensor({9}, 0.5f, 1.5f, DataType::float16)},
                {}, "float16"),
        1e-2, 1e-2));
  }
  for (const char* op : {"Add", "Sub", "Mul", "Div", "Max", "Min", "Mod"})
    for (DataType t : {DataType::int32, DataType::int64})
      cases.push_back(op_case(op, {rng.ints({3, 4}, -20, 20, t), rng.ints({4}, 1, 6, t)}, {}, "integers"));
  cases.push_back(op_case(
      "Add", {rng.tensor({5, 3}, -1, 1, DataType::float64), rng.tensor({3}, -1, 1, DataType::float64)}, {}, "float64"));
  cases.push_back(
      op_case("Mod", {rng.tensor({3, 7}, -5, 5), rng.tensor({7}, 0.5f, 2)}, {{"fmod", attr_int(1)}}, "fmod"));
  cases.push_back(op_case("Pow", {rng.tensor({2, 5}, 0.5f, 2), rng.ints({5}, 0, 3)}, {}, "integer exponent"));
  // Constant scalar exponents, which the cpu backend evaluates without pow where it can; odd
  // ones over negative bases too.
  for (float e : {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 2.5f}) {
    const bool signed_base = e == 1.0f || e == 2.0f || e == 3.0f || e == -1.0f;
    cases.push_back(on_every_backend(with_constants(
        op_case("Pow", {rng.tensor({3, 4, 67}, signed_base ? -2.0f : 0.25f, 2.0f), Tensor::scalar<float>(e)}, {},
                "constant exponent " + std::to_string(e)),
        2)));
  }
  cases.push_back(op_case("BitShift",
                          {rng.ints({2, 6}, 0, 100, DataType::uint32), rng.ints({6}, 0, 4, DataType::uint32)},
                          {{"direction", attr_string("LEFT")}}));
  cases.push_back(op_case("BitShift", {rng.ints({7}, 0, 255, DataType::uint8), rng.ints({1}, 0, 3, DataType::uint8)},
                          {{"direction", attr_string("RIGHT")}}));
  // Variadic ops: one, two and three inputs with broadcasting.
  for (const char* op : {"Sum", "Max", "Min", "Mean"}) {
    cases.push_back(op_case(op, {rng.tensor({3, 4})}, {}, "one input"));
    cases.push_back(op_case(op, {rng.tensor({2, 3, 4}), rng.tensor({3, 1}), rng.tensor({4})}, {}, "three inputs"));
    const auto [sa, sb] = broadcast_pair(rng);
    cases.push_back(op_case(op, {rng.tensor(sa), rng.tensor(sb)}, {}, "two inputs"));
  }
  // Unary math over its domain; the common functions in float32 run on every backend.
  const std::set<std::string> kCoreUnary = {"Abs",   "Neg",  "Exp",   "Log", "Sqrt", "Reciprocal", "Floor",
                                            "Ceil",  "Round", "Erf",  "Sin", "Cos",  "Sign"};
  struct Unary {
    const char* op;
    float lo, hi;
  };
  for (const Unary& u :
       {Unary{"Abs", -3, 3},      {"Neg", -3, 3},          {"Exp", -5, 5},          {"Log", 0.05f, 9},
        {"Sqrt", 0, 9},           {"Reciprocal", 0.3f, 4}, {"Floor", -4, 4},        {"Ceil", -4, 4},
        {"Round", -4, 4},         {"Erf", -3, 3},          {"Sin", -4, 4},          {"Cos", -4, 4},
        {"Tan", -1.2f, 1.2f},     {"Asin", -0.99f, 0.99f}, {"Acos", -0.99f, 0.99f}, {"Atan", -5, 5},
        {"Sinh", -3, 3},          {"Cosh", -3, 3},         {"Asinh", -5, 5},        {"Acosh", 1.01f, 6},
        {"Atanh", -0.95f, 0.95f}, {"Sign", -2, 2}}) {
    const bool core = kCoreUnary.count(u.op) > 0;
    cases.push_back(
        on_every_backend(op_case(u.op, {rng.tensor(rng.shape(3, 1, 9), u.lo, u.hi)}, {}, "random shape"), core));
    cases.push_back(on_every_backend(op_case(u.op, {rng.tensor({1027}, u.lo, u.hi)}, {}, "long vector"), core));
  }
  for (const char* op : {"Abs", "Neg", "Sign"})
    cases.push_back(op_case(op, {rng.ints({4, 5}, -9, 9, DataType::int32)}, {}, "int32"));
  cases.push_back(with_tol(op_case("Exp", {rng.tensor({6, 7}, -3, 3, DataType::float16)}, {}, "float16"), 1e-2, 1e-2));
  {
    Tensor special = f32({8}, {1.f, -INFINITY, INFINITY, NAN, 0.f, -0.f, -2.5f, 1e-30f});
    cases.push_back(on_every_backend(op_case("Sign", {special}, {}, "infinities, NaN, signed zeros")));
  }
  // Mod of floats (fmod=1 is required for them): C's fmod, the remainder with the dividend's sign.
  cases.push_back(on_every_backend(op_case("Mod", {rng.tensor({4, 5, 6}, -9, 9), rng.tensor({6}, 0.5f, 3)},
                                           {{"fmod", attr_int(1)}}, "fmod, broadcast divisor")));
  cases.push_back(on_every_backend(with_constants(
      op_case("Mod", {rng.tensor({3, 7}, -9, 9), Tensor::scalar<float>(-2.5f)}, {{"fmod", attr_int(1)}}, "fmod by a constant"),
      2)));
  cases.push_back(on_every_backend(with_constants(
      op_case("Mod", {Tensor::scalar<float>(7.25f), rng.tensor({3, 7}, 0.5f, 4)}, {{"fmod", attr_int(1)}},
              "fmod of a constant"),
      1)));
  {
    Tensor special = f32({6}, {1.f, -INFINITY, INFINITY, NAN, 0.f, -2.5f});
    cases.push_back(op_case("IsNaN", {special}));
    cases.push_back(op_case("IsInf", {special}));
    cases.push_back(op_case("IsInf", {special}, {{"detect_negative", attr_int(0)}}, "positive only"));
  }
  // Comparisons and logic.
  for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"}) {
    cases.push_back(op_case(op, {rng.ints({3, 5}, -2, 2, DataType::int64), rng.ints({5}, -2, 2, DataType::int64)}));
    cases.push_back(op_case(
        op, {rng.ints({2, 1, 4}, -2, 2, DataType::float32), rng.ints({3, 1}, -2, 2, DataType::float32)}, {}, "float"));
  }
  {
    // NaNs compare false (and unequal) on every backend; a broadcast row against a column.
    const float nan = std::numeric_limits<float>::quiet_NaN();
    const Tensor a = Tensor::from_vector<float>({3, 1}, {nan, 1.0f, -0.0f});
    const Tensor b = Tensor::from_vector<float>({1, 4}, {nan, 1.0f, 0.0f, -2.0f});
    for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"})
      cases.push_back(on_every_backend(op_case(op, {a, b}, {}, "NaN and signed zero")));
    // float16 operands (a float16 model's masks): values that differ in the last half-precision
    // bit, NaN and signed zero, and a Where choosing between float16 values.
    Tensor ha(DataType::float16, {2, 4}), hb(DataType::float16, {1, 4});
    const float av[] = {1.0f, 1.0009765625f, nan, -0.0f, 65504.0f, -3.5f, 0.099975586f, 2.0f};
    const float bv[] = {1.0009765625f, 1.0f, 0.0f, 0.0f};
    for (int i = 0; i < 8; ++i) ha.data<Float16>()[i] = Float16(av[i]);
    for (int i = 0; i < 4; ++i) hb.data<Float16>()[i] = Float16(bv[i]);
    for (const char* op : {"Equal", "Greater", "Less", "GreaterOrEqual", "LessOrEqual"})
      cases.push_back(on_every_backend(op_case(op, {ha, hb}, {}, "float16")));
    cases.push_back(on_every_backend(
        op_case("Where", {rng.ints({2, 4}, 0, 1, DataType::boolean), ha, hb}, {}, "float16 values")));
  }
  for (const char* op : {"And", "Or", "Xor"})
    cases.push_back(op_case(op, {rng.ints({4, 6}, 0, 1, DataType::boolean), rng.ints({6}, 0, 1, DataType::boolean)}));
  cases.push_back(op_case("Not", {rng.ints({3, 7}, 0, 1, DataType::boolean)}));
  cases.push_back(
      op_case("Where", {rng.ints({3, 1, 5}, 0, 1, DataType::boolean), rng.tensor({4, 5}), rng.tensor({5})}));
  cases.push_back(op_case("Where", {rng.ints({6}, 0, 1, DataType::boolean), rng.ints({6}, -9, 9), rng.ints({1}, 0, 0)},
                          {}, "int64"));
  // Clip: attribute bounds (opset 6), input bounds (opset 13), constant and omitted bounds.
  for (OpCase c :
       {with_opset(op_case("Clip", {rng.tensor({2, 9}, -3, 3)}, {{"min", attr_float(-1)}, {"max", attr_float(0.5f)}},
                           "opset 6 attributes"),
                   6),
        with_opset(
            op_case("Clip", {rng.tensor({3, 8}, -3, 3), f32_scalar(-0.2f), f32_scalar(0.3f)}, {}, "runtime bounds"),
            13),
        with_constants(with_opset(op_case("Clip", {rng.tensor({5, 5}, -3, 3), f32_scalar(-0.5f), f32_scalar(2)}, {},
                                          "constant bounds"),
                                  13),
                       6),
        with_opset(op_case("Clip", {rng.tensor({11}, -3, 3), Tensor(), f32_scalar(0.4f)}, {}, "max only"), 13),
        with_opset(op_case("Clip", {rng.tensor({11}, -3, 3)}, {}, "no bounds"), 13)})
    cases.push_back(on_every_backend(std::move(c)));
  cases.push_back(with_opset(
      op_case("Clip", {rng.ints({9}, -9, 9, DataType::int32), Tensor::scalar<int32_t>(-2), Tensor::scalar<int32_t>(4)},
              {}, "int32"),
      13));
  // Casts between the types models use.
  auto cast_to = [](DataType t) { return Attrs{{"to", attr_int(static_cast<int64_t>(t))}}; };
  cases.push_back(op_case("Cast", {rng.ints({3, 5}, -50, 50, DataType::int64)}, cast_to(kF32), "int64 to float32"));
  cases.push_back(op_case("Cast", {rng.ints({7}, -50, 50, DataType::int32)}, cast_to(kF32), "int32 to float32"));
  cases.push_back(op_case("Cast", {rng.ints({2, 5}, 0, 1, DataType::boolean)}, cast_to(kF32), "bool to float32"));
  cases.push_back(op_case("Cast", {rng.tensor({4, 6}, -4, 4, DataType::float16)}, cast_to(kF32), "float16 to float32"));
  cases.push_back(op_case("Cast", {rng.tensor({4, 6}, -4, 4)}, cast_to(DataType::float16), "float32 to float16"));
  cases.push_back(
      op_case("Cast", {rng.ints({9}, -40, 40, DataType::int64)}, cast_to(DataType::int32), "int64 to int32"));
  cases.push_back(op_case("Cast", {rng.tensor({9}, -40, 40)}, cast_to(DataType::int64), "float32 to int64"));
  cases.push_back(op_case("Cast", {rng.tensor({9}, -1, 1)}, cast_to(DataType::boolean), "float32 to bool"));
  cases.push_back(op_case("Cast", {rng.tensor({3, 3}, -9, 9)}, cast_to(DataType::float64), "float32 to float64"));
  cases.push_back(
      op_case("CastLike", {rng.ints({2, 4}, -9, 9, DataType::int32), rng.tensor({1})}, {}, "int32 like float"));
  cases.push_back(
      op_case("CastLike", {rng.tensor({5}, -9, 9), rng.ints({1}, 0, 0, DataType::int64)}, {}, "float like int64"));
  return cases;
}

std::vector<OpCase> activation_cases() {
  CaseRng rng(2002);
  std::vector<OpCase> cases;
  const std::vector<std::pair<const char*, Attrs>> ops = {
      {"Relu", {}},
      {"Sigmoid", {}},
      {"Tanh", {}},
      {"Softplus", {}},
      {"Softsign", {}},
      {"HardSwish", {}},
      {"Selu", {}},
      {"Mish", {}},
      {"LeakyRelu", {{"alpha", attr_float(0.2f)}}},
      {"Elu", {{"alpha", attr_float(0.7f)}}},
      {"Celu", {{"alpha", attr_float(1.3f)}}},
      {"HardSigmoid", {{"alpha", attr_float(1.0f / 6)}, {"beta", attr_float(0.5f)}}},
      {"ThresholdedRelu", {{"alpha", attr_float(0.4f)}}},
      {"Shrink", {{"lambd", attr_float(0.6f)}, {"bias", attr_float(0.1f)}}},
      {"Gelu", {}},
      {"Gelu", {{"approximate", attr_string("tanh")}}},
  };
  for (const auto& [op, attrs] : ops) {
    const int64_t opset = std::string(op) == "Gelu" ? 20 : (std::string(op) == "Mish" ? 18 : 14);
    // Every activation runs on every backend in float32.
    cases.push_back(
        on_every_backend(with_opset(op_case(op, {rng.tensor({3, 5, 7, 11}, -6, 6)}, attrs, "4-D"), opset)));
    cases.push_back(on_every_backend(
        with_opset(op_case(op, {rng.tensor(rng.shape(2, 1, 40), -6, 6)}, attrs, "random 2-D"), opset)));
    cases.push_back(with_opset(
        with_tol(op_case(op, {rng.tensor({2, 17}, -4, 4, DataType::float16)}, attrs, "float16"), 1e-2, 1e-2), opset));
  }
  // Mish far out on both sides (its large-x branch, and e^x underflowing).
  cases.push_back(on_every_backend(with_opset(
      op_case("Mish", {f32({8}, {-100.f, -30.f, -5.f, -1e-3f, 0.f, 19.5f, 25.f, 1e30f})}, {}, "extremes"), 18)));
  cases.push_back(op_case("Relu", {rng.ints({3, 4}, -9, 9, DataType::int32)}, {}, "int32"));
  cases.push_back(op_case("Relu", {rng.tensor({4, 4}, -2, 2, DataType::float64)}, {}, "float64"));
  // PRelu: per-channel, scalar and fully broadcast slopes.
  for (const Shape& slope : {Shape{4, 1, 1}, Shape{1}, Shape{3, 5}, Shape{4, 3, 5}})
    cases.push_back(on_every_backend(
        op_case("PRelu", {rng.tensor({2, 4, 3, 5}), rng.tensor(slope)}, {}, "slope " + shape_to_string(slope))));
  cases.push_back(
      with_constants(op_case("PRelu", {rng.tensor({1, 6, 5}), rng.tensor({6, 1})}, {}, "constant slope"), 2));
  return cases;
}

}  // namespace tandem::testing
