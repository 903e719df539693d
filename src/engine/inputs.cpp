#include "engine/inputs.h"

#include <cstdlib>

#include "core/tensor_util.h"
#include "engine/splitmix.h"

namespace tandem {

bool is_required_input(const Graph& graph, const ValueInfo& input) {
  return graph.initializers.find(input.name) == graph.initializers.end();
}

Shape made_up_shape(const ValueInfo& input, int64_t first_dim) {
  Shape shape;
  for (size_t i = 0; i < input.type.dims.size(); ++i) {
    const Dim& d = input.type.dims[i];
    shape.push_back(d.fixed() ? d.value : (i == 0 && first_dim > 0 ? first_dim : 1));
  }
  return shape;
}

namespace {

std::string declared_string(const TypeInfo& t) { return t.to_string(); }

Status check_tensor_against(const ValueInfo& vi, const Tensor& t) {
  const TypeInfo& type = vi.type;
  if (type.kind != TypeInfo::Kind::tensor) return Status::ok();
  if (type.elem != DataType::undefined && t.dtype() != type.elem)
    return invalid_argument("input '" + vi.name + "' has dtype " + std::string(dtype_name(t.dtype())) + ", expected " +
                            std::string(dtype_name(type.elem)));
  if (!type.has_shape) return Status::ok();
  if (t.rank() != type.dims.size())
    return invalid_argument("input '" + vi.name + "' has rank " + std::to_string(t.rank()) + " (shape " +
                            shape_to_string(t.shape()) + "), expected rank " + std::to_string(type.dims.size()) + " (" +
                            declared_string(type) + ")");
  for (size_t d = 0; d < t.rank(); ++d)
    if (type.dims[d].fixed() && type.dims[d].value != t.dim(d))
      return invalid_argument("input '" + vi.name + "' has shape " + shape_to_string(t.shape()) + ", expected " +
                              declared_string(type) + " (dim " + std::to_string(d) + " must be " +
                              std::to_string(type.dims[d].value) + ")");
  return Status::ok();
}

}  // namespace

Result<std::vector<Value>> bind_inputs(const Graph& graph, const std::map<std::string, Value>& provided) {
  for (const auto& [name, v] : provided) {
    bool known = false;
    for (const auto& vi : graph.inputs) known = known || vi.name == name;
    if (!known) {
      std::string names;
      for (const auto& vi : graph.inputs)
        if (is_required_input(graph, vi)) names += (names.empty() ? "" : ", ") + vi.name;
      return invalid_argument("unknown input '" + name + "'; the model's inputs are: " + names);
    }
  }
  std::vector<Value> ordered;
  ordered.reserve(graph.inputs.size());
  for (const auto& vi : graph.inputs) {
    auto it = provided.find(vi.name);
    if (it == provided.end()) {
      if (is_required_input(graph, vi) && vi.type.kind != TypeInfo::Kind::optional)
        return invalid_argument("missing input '" + vi.name + "' (" + declared_string(vi.type) + ")");
      ordered.emplace_back();
      continue;
    }
    const Value& v = it->second;
    if (vi.type.kind == TypeInfo::Kind::tensor && !v.is_tensor())
      return invalid_argument("input '" + vi.name + "' must be a tensor");
    if (vi.type.kind == TypeInfo::Kind::sequence && !v.is_sequence())
      return invalid_argument("input '" + vi.name + "' must be a sequence");
    if (v.is_tensor()) TANDEM_RETURN_IF_ERROR(check_tensor_against(vi, v.tensor));
    ordered.push_back(v);
  }
  return ordered;
}

Result<Shape> parse_dims(const std::string& text) {
  Shape shape;
  if (text.empty() || text == "scalar") return shape;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find_first_of("x,", pos);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(pos, end - pos);
    char* stop = nullptr;
    long long v = std::strtoll(item.c_str(), &stop, 10);
    if (item.empty() || *stop != '\0' || v < 0 || v > (int64_t{1} << 40))
      return invalid_argument("bad dims '" + text + "': expected sizes like 1x3x640x640");
    shape.push_back(v);
    pos = end + 1;
  }
  return shape;
}

namespace {
std::string kind_name(TypeInfo::Kind k) {
  switch (k) {
    case TypeInfo::Kind::tensor: return "tensor";
    case TypeInfo::Kind::sequence: return "sequence";
    case TypeInfo::Kind::optional: return "optional";
    case TypeInfo::Kind::map: return "map";
    default: return "unknown";
  }
}
}  // namespace

IoInfo describe_io(const Graph& g, const ValueInfo& vi, bool is_input) {
  IoInfo info;
  info.name = vi.name;
  info.kind = kind_name(vi.type.kind);
  info.dtype = vi.type.elem;
  info.has_shape = vi.type.has_shape;
  for (const Dim& d : vi.type.dims) info.dims.push_back({d.value, d.symbol});
  info.required = is_input ? is_required_input(g, vi) : true;
  info.type = vi.type.to_string();
  return info;
}

Result<Shape> concrete_input_shape(const ValueInfo& input, const Shape* override_shape) {
  const TypeInfo& type = input.type;
  if (override_shape) {
    if (type.has_shape && type.dims.size() != override_shape->size())
      return invalid_argument("--shape for input '" + input.name + "' has rank " + std::to_string(override_shape->size()) +
                              ", but the model declares " + type.to_string());
    if (type.has_shape)
      for (size_t d = 0; d < type.dims.size(); ++d)
        if (type.dims[d].fixed() && type.dims[d].value != (*override_shape)[d])
          return invalid_argument("--shape for input '" + input.name + "' sets dim " + std::to_string(d) + " to " +
                                  std::to_string((*override_shape)[d]) + ", but the model fixes it at " +
                                  std::to_string(type.dims[d].value));
    return *override_shape;
  }
  if (!type.has_shape) return invalid_argument("input '" + input.name + "' has no declared shape; pass --shape " + input.name + "=DIMS");
  Shape s;
  for (const Dim& d : type.dims) {
    if (!d.fixed())
      return invalid_argument("input '" + input.name + "' has a " + (d.symbol.empty() ? "dynamic" : "symbolic '" + d.symbol + "'") +
                              " dim (" + type.to_string() + "); pass --shape " + input.name + "=DIMS");
    s.push_back(d.value);
  }
  return s;
}

namespace {
// SplitMix64: tiny, portable, good enough for test inputs.
uint64_t next_random(uint64_t& state) {
  const uint64_t r = engine_internal::mix64(state);
  state += engine_internal::kSplitMixGamma;
  return r;
}
}  // namespace

Result<Tensor> random_tensor(DataType dtype, const Shape& shape, uint64_t seed) {
  if (dtype == DataType::string || dtype == DataType::undefined || dtype == DataType::complex64 ||
      dtype == DataType::complex128)
    return unsupported("cannot make random values of dtype " + std::string(dtype_name(dtype)));
  Tensor t(dtype, shape);
  uint64_t state = seed;
  visit_numeric(dtype, [&]<class T>() {
    T* p = t.data<T>();
    for (int64_t i = 0; i < t.numel(); ++i) {
      const uint64_t r = next_random(state);
      if constexpr (std::is_same_v<T, bool>) p[i] = (r >> 63) != 0;
      else if constexpr (std::is_integral_v<T>) p[i] = static_cast<T>(r % 10);
      else p[i] = from_double<T>(static_cast<double>(r >> 11) * (1.0 / 9007199254740992.0));
    }
  });
  return t;
}

}  // namespace tandem
