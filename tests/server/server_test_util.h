// server_test_util.h: what the server's unit tests share: tiny ONNX models written at test
// time (python3's onnx), temporary model repositories, and helpers that start a server, wait
// for a condition and run requests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "server/server.h"

namespace tandem::server::server_test {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// This process's folder of test models, removed when the tests end.
inline fs::path model_dir() { return fs::temp_directory_path() / ("tandem_server_test_" + std::to_string(::getpid())); }
class RemoveModelDir final : public ::testing::Environment {
 public:
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(model_dir(), ec);
  }
};
inline const auto* const kRemoveModelDir = ::testing::AddGlobalTestEnvironment(new RemoveModelDir);

// Writes model_dir()/`file` from Python statements that build an opset-13 graph `g` (onnx's
// `h` helper and `T` TensorProto at hand); an empty path when that fails.
inline fs::path write_model(const std::string& file, const std::string& graph_code) {
  const fs::path dir = model_dir();
  fs::create_directories(dir);
  const fs::path out = dir / file;
  const std::string command = "/usr/bin/python3 -c \"import onnx; from onnx import helper as h, TensorProto as T; " +
                              graph_code +
                              "; m = h.make_model(g, opset_imports=[h.make_opsetid('', 13)]); m.ir_version = 8; "
                              "onnx.save(m, '" +
                              out.string() + "')\"";
  return std::system(command.c_str()) == 0 ? out : fs::path();
}

// A graph named 'g' from x float32 [N, 4] (N symbolic) to y float32 [N, 4] through one node
// (onnx helper code), with the initializers named in `initializers` (Python names defined by
// `setup`). Models whose op names are as long are files of one size.
inline fs::path write_x_to_y_model(const std::string& file, const std::string& node, const std::string& setup = "",
                                   const std::string& initializers = "") {
  return write_model(file,
                     "x = h.make_tensor_value_info('x', T.FLOAT, ['N', 4]); "
                     "y = h.make_tensor_value_info('y', T.FLOAT, ['N', 4]); " +
                         setup + "g = h.make_graph([" + node + "], 'g', [x], [y], [" + initializers + "])");
}

// y = x + x.
inline const fs::path& double_model() {
  static const fs::path path = write_x_to_y_model("double.onnx", "h.make_node('Add', ['x', 'x'], ['y'])");
  return path;
}

// y = x - x (zeros): double_model() with Sub for Add, a file of the same size.
inline const fs::path& zero_model() {
  static const fs::path path = write_x_to_y_model("zero.onnx", "h.make_node('Sub', ['x', 'x'], ['y'])");
  return path;
}

// y = x * 3: double_model()'s inputs and outputs, another answer.
inline const fs::path& triple_model() {
  static const fs::path path = write_x_to_y_model("triple.onnx", "h.make_node('Mul', ['x', 'three'], ['y'])",
                                                  "three = h.make_tensor('three', T.FLOAT, [], [3.0]); ", "three");
  return path;
}

// s = SplitToSequence(x), with x float32 [2, 3]: an output the protocol cannot carry.
inline const fs::path& sequence_output_model() {
  static const fs::path path =
      write_model("sequence_output.onnx",
                  "x = h.make_tensor_value_info('x', T.FLOAT, [2, 3]); "
                  "s = h.make_value_info('s', h.make_sequence_type_proto(h.make_tensor_type_proto(T.FLOAT, None))); "
                  "g = h.make_graph([h.make_node('SplitToSequence', ['x'], ['s'], axis=0)], 'split', [x], [s])");
  return path;
}

// A temporary repository, removed at the end of the test.
class Repository {
 public:
  Repository() {
    static std::atomic<int> counter{0};
    root_ = fs::temp_directory_path() /
            ("tandem_server_repo_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  ~Repository() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  const fs::path& root() const { return root_; }
  void add_version(const std::string& model, int version) {
    fs::create_directories(root_ / model / std::to_string(version));
    fs::copy_file(double_model(), root_ / model / std::to_string(version) / "model.onnx",
                  fs::copy_options::overwrite_existing);
  }
  void add_file(const std::string& model, int version, const fs::path& file) {
    fs::create_directories(root_ / model / std::to_string(version));
    fs::copy_file(file, root_ / model / std::to_string(version) / "model.onnx", fs::copy_options::overwrite_existing);
  }
  void add_broken(const std::string& model, int version) {
    fs::create_directories(root_ / model / std::to_string(version));
    std::ofstream(root_ / model / std::to_string(version) / "model.onnx") << "not an onnx model";
  }
  void config(const std::string& model, const std::string& json) {
    fs::create_directories(root_ / model);
    std::ofstream(root_ / model / "config.json") << json;
  }

 private:
  fs::path root_;
};

inline std::unique_ptr<Server> start(const Repository& repo, std::chrono::milliseconds poll = 0ms) {
  ServerOptions options;
  options.model_repository = repo.root();
  options.default_instances = 2;
  options.poll_interval = poll;
  options.shutdown_grace = 10s;
  auto server = Server::create(options);
  EXPECT_TRUE(server) << server.status().to_string();
  return server ? std::move(*server) : nullptr;
}

// Waits (at most 60 s) until `condition` holds.
inline bool eventually(const std::function<bool()>& condition) {
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

// Nothing LOADING in the index any more.
inline bool loaded(const Server& server) {
  for (const RepositoryEntry& e : server.repository_index())
    if (e.state == "LOADING") return false;
  return true;
}

inline InferRequest request(const std::string& model, float value = 1.5f, const std::string& version = "") {
  InferRequest r;
  r.model = model;
  r.version = version;
  r.id = "req";
  InferTensor x;
  x.name = "x";
  x.tensor = Tensor::from_vector<float>({1, 4}, {value, value, value, value});
  r.inputs.push_back(std::move(x));
  return r;
}

// Collects outcomes of asynchronous requests.
class Outcomes {
 public:
  Scheduler::Done callback() {
    return [this](InferOutcome&& o) {
      std::lock_guard<std::mutex> lock(mu_);
      outcomes_.push_back(std::move(o));
      cv_.notify_all();
    };
  }
  bool wait_for(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, 60s, [&] { return outcomes_.size() >= n; });
  }
  std::vector<InferOutcome> take() {
    std::lock_guard<std::mutex> lock(mu_);
    return outcomes_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<InferOutcome> outcomes_;
};

// Runs one request to completion.
inline InferOutcome infer_sync(Server& server, InferRequest r, std::optional<ProtocolError>* refused = nullptr) {
  Outcomes outcomes;
  auto error = server.infer(std::move(r), outcomes.callback());
  if (refused) *refused = error;
  if (error) {
    InferOutcome o;
    o.error = error;
    return o;
  }
  EXPECT_TRUE(outcomes.wait_for(1));
  return outcomes.take().at(0);
}

inline const RepositoryEntry* find_entry(const std::vector<RepositoryEntry>& index, const std::string& name,
                                         const std::string& version) {
  for (const RepositoryEntry& e : index)
    if (e.name == name && e.version == version) return &e;
  return nullptr;
}

}  // namespace tandem::server::server_test
