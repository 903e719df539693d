// json_codec_bench.cpp: what the REST JSON codec costs per request, parsed or written whole
// against in pieces on helper threads (docs/serving.md, "JSON tensors in pieces").
//
//     build/bin/tandem_json_codec_bench [RUNS]
//
// Request: the serve benchmark's JSON body (a 1x3x48x192 FP32 tensor, each value printed as
// Python prints a float32 widened to double: 17 significant digits, 580 KB), flat and nested
// as the shape, decoded by decode_rest_infer_request. Response: a 1x1x640x640 FP32 output (PaddleOCR det's map at
// 640x640) encoded by encode_rest_infer_response. Each line gives the median and the fastest
// of RUNS calls (default 200 and 20), with 0.3 ms idle between calls so that a helper goes to
// sleep between them, as it does between requests. The helpers are hardware threads - 1, as
// in `tandem serve`.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/rest_codec.h"
#include "server/side_tasks.h"

namespace {

using namespace tandem;
using namespace tandem::server;
using Clock = std::chrono::steady_clock;

template <class Call>
void report(const char* what, int runs, const Call& call) {
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto start = Clock::now();
    if (!call()) {
      std::fprintf(stderr, "json_codec_bench: %s failed\n", what);
      std::exit(1);
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - start).count());
    std::this_thread::sleep_for(std::chrono::microseconds(300));
  }
  std::sort(ms.begin(), ms.end());
  std::printf("%-44s median %8.3f ms, fastest %8.3f ms\n", what, ms[ms.size() / 2], ms.front());
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 200;
  const int hardware = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  SideTasks helpers(std::min(7, hardware - 1));
  JsonSplitOptions split;
  split.helpers = &helpers;
  std::printf("helper threads: %d\n", helpers.threads());

  std::mt19937 rng(0);
  std::uniform_real_distribution<float> unit(0.f, 1.f);
  // The same values flat (x.ravel().tolist()) and nested as the shape (x.tolist()).
  std::string flat, nested;
  for (int i = 0; i < 3 * 48 * 192; ++i) {
    char text[32];
    std::snprintf(text, sizeof text, "%.17g", static_cast<double>(unit(rng)));
    flat += (i ? ", " : "") + std::string(text);
    nested += i == 0 ? "[[[" : i % (48 * 192) == 0 ? "]], [[" : i % 192 == 0 ? "], [" : ", ";
    nested += text;
  }
  const std::string head = R"({"inputs":[{"name":"x","datatype":"FP32","shape":[1,3,48,192],"data":)";
  const std::string flat_body = head + "[" + flat + "]}]}";
  const std::string nested_body = head + "[" + nested + "]]]]}]}";
  std::printf("request body: %zu bytes flat, %zu nested\n", flat_body.size(), nested_body.size());
  auto decode = [&](const std::string& body, const JsonSplitOptions* options) {
    return [&body, options] {
      InferRequest request;
      return !decode_rest_infer_request(body, std::nullopt, RequestLimits{}, &request, options);
    };
  };
  report("decode 1x3x48x192 FP32, flat, whole", runs, decode(flat_body, nullptr));
  report("decode 1x3x48x192 FP32, flat, in pieces", runs, decode(flat_body, &split));
  report("decode 1x3x48x192 FP32, nested, whole", runs, decode(nested_body, nullptr));
  report("decode 1x3x48x192 FP32, nested, in pieces", runs, decode(nested_body, &split));

  InferResponse response;
  response.model = "det";
  InferTensor map{"sigmoid_0.tmp_0", Tensor(DataType::float32, {1, 1, 640, 640}), false};
  for (int64_t i = 0; i < map.tensor.numel(); ++i) map.tensor.data<float>()[i] = unit(rng);
  response.outputs.push_back(map);
  auto encode = [&](SideTasks* tasks) {
    return [&response, tasks] { return !encode_rest_infer_response(response, tasks).body.empty(); };
  };
  const int encode_runs = std::max(1, runs / 10);
  report("encode 1x1x640x640 FP32, whole", encode_runs, encode(nullptr));
  report("encode 1x1x640x640 FP32, in pieces", encode_runs, encode(&helpers));
  return 0;
}
