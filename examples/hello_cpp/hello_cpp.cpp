// hello_cpp: loads an ONNX model through tandem's C++ API (tandem/engine.h), prints its
// inputs, runs it once on seeded pseudo-random inputs and prints each output's shape and
// checksum.
//
//   hello_cpp MODEL.onnx [SHAPES [SEED]]
//
// SHAPES fixes input shapes at prepare (PrepareOptions::input_shapes): "x=1x3x48x192;y=1x4"
// ("-": none); other inputs' symbolic or unknown dims are taken as 1. float32 inputs are filled with values in
// [0, 1) from a fixed generator (the same as hello_c's, so both print the same numbers);
// inputs of other types are zeros. The checksum is the sum of a float32 output's elements
// ("first" is its first element). Exit status: 0 on success, 1 on any tandem error.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <tandem/engine.h>
#include <tandem/tandem.h>  // TANDEM_ABI_VERSION, tandem_abi_version()

namespace {

// A 64-bit linear congruential generator; the top 24 bits give a float in [0, 1).
float next_uniform(uint64_t& state) {
  state = state * 6364136223846793005ULL + 1442695040888963407ULL;
  return static_cast<float>(state >> 40) / 16777216.0f;
}

// Parses SHAPES ("x=1x3x48x192;y=1x4") into dims by input name; false when malformed.
bool parse_shapes(const std::string& spec, std::map<std::string, std::vector<int64_t>>* out) {
  size_t pos = 0;
  while (pos < spec.size()) {
    size_t end = spec.find(';', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(pos, end - pos);
    const size_t eq = item.find('=');
    if (eq == std::string::npos || eq == 0) return false;
    std::vector<int64_t> dims;
    const std::string text = item.substr(eq + 1);
    size_t p = 0;
    while (p < text.size()) {
      size_t x = text.find('x', p);
      if (x == std::string::npos) x = text.size();
      char* stop = nullptr;
      const std::string num = text.substr(p, x - p);
      dims.push_back(std::strtoll(num.c_str(), &stop, 10));
      if (num.empty() || *stop != '\0') return false;
      p = x + 1;
    }
    (*out)[item.substr(0, eq)] = dims;
    pos = end + 1;
  }
  return true;
}

int fail(const char* what, const tandem::Status& status) {
  std::fprintf(stderr, "hello_cpp: %s: %s\n", what, status.to_string().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argc > 4) {
    std::fprintf(stderr, "usage: hello_cpp MODEL.onnx [SHAPES [SEED]]\n");
    return 2;
  }
  tandem::PrepareOptions options;
  if (argc >= 3 && std::strcmp(argv[2], "-") != 0 && !parse_shapes(argv[2], &options.input_shapes)) {
    std::fprintf(stderr, "hello_cpp: SHAPES must look like x=1x3x48x192;y=1x4\n");
    return 2;
  }
  uint64_t state = argc == 4 ? std::strtoull(argv[3], nullptr, 10) : 42;
  std::printf("tandem C++ API, ABI %d (header %d)\n", static_cast<int>(tandem_abi_version()), TANDEM_ABI_VERSION);

  auto engine = tandem::Engine::create();
  if (!engine) return fail("engine", engine.status());
  auto model = (*engine)->prepare(argv[1], options);
  if (!model) return fail("prepare", model.status());

  std::map<std::string, tandem::Value> inputs;
  const tandem::IoSchema& schema = (*model)->io_schema();
  for (size_t i = 0; i < schema.inputs.size(); ++i) {
    const tandem::IoInfo& in = schema.inputs[i];
    std::printf("input %zu: %s %s\n", i, in.name.c_str(), in.type.c_str());
    if (!in.required) continue;  // an initializer provides it
    tandem::Shape shape;
    if (auto fixed = options.input_shapes.find(in.name); fixed != options.input_shapes.end()) {
      shape = fixed->second;
    } else {
      for (const tandem::IoDim& d : in.dims) shape.push_back(d.value >= 0 ? d.value : 1);
    }
    tandem::Tensor t(in.dtype, shape);
    if (in.dtype == tandem::DataType::float32) {
      float* x = t.data<float>();
      for (int64_t k = 0; k < t.numel(); ++k) x[k] = next_uniform(state);
    } else if (t.nbytes() > 0) {
      std::memset(t.raw_data(), 0, t.nbytes());
    }
    inputs.emplace(in.name, tandem::Value::of(std::move(t)));
  }

  auto result = (*engine)->infer(**model, inputs);
  if (!result) return fail("infer", result.status());
  std::printf("backend: %s\n", result->backend.c_str());
  for (size_t i = 0; i < result->output_order.size(); ++i) {
    const std::string& name = result->output_order[i];
    const tandem::Value& v = result->outputs.at(name);
    if (!v.is_tensor()) {
      std::printf("output %zu: %s (not a tensor)\n", i, name.c_str());
      continue;
    }
    const tandem::Tensor& t = v.tensor;
    std::printf("output %zu: %s %s ", i, name.c_str(), std::string(tandem::dtype_name(t.dtype())).c_str());
    std::printf("[");
    for (size_t d = 0; d < t.rank(); ++d) std::printf(d ? ",%lld" : "%lld", static_cast<long long>(t.dim(d)));
    std::printf("]");
    if (t.dtype() == tandem::DataType::float32) {
      const float* y = t.data<float>();
      double sum = 0;
      for (int64_t k = 0; k < t.numel(); ++k) sum += y[k];
      std::printf(" checksum=%.6f first=%.6f", sum, t.numel() ? static_cast<double>(y[0]) : 0.0);
    }
    std::printf("\n");
  }
  return 0;
}
