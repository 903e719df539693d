// Tests of the HTTP frontend (src/server/http_frontend.h) over a real Server holding the
// PaddleOCR direction classifier: routes, errors as JSON, the size check before the body is
// read, slow headers, the metrics-only mode and stopping. Everything binds to 127.0.0.1 on
// ports the system picks.
#include "server/http_frontend.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "server/rest_codec.h"

namespace tandem::server {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

class HttpFrontendTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    repo_ = fs::temp_directory_path() / ("tandem_http_frontend_test_" + std::to_string(::getpid()));
    fs::create_directories(repo_ / "cls" / "1");
    fs::copy_file(fs::path(TANDEM_SOURCE_DIR) / "models" / "ch_ppocr_mobile_v2.0_cls_infer.onnx",
                  repo_ / "cls" / "1" / "model.onnx");
    std::FILE* f = std::fopen((repo_ / "cls" / "config.json").c_str(), "w");
    std::fputs(R"({"input_shapes": {"x": [1, 3, 48, 192]}, "instances": 1})", f);
    std::fclose(f);
    // Calls to "slow" take a few hundred milliseconds: 1.5 s of injected latency on the
    // reference backend, cut short by the route's time budget.
    fs::create_directories(repo_ / "slow" / "1");
    fs::copy_file(repo_ / "cls" / "1" / "model.onnx", repo_ / "slow" / "1" / "model.onnx");
    f = std::fopen((repo_ / "slow" / "config.json").c_str(), "w");
    std::fputs(R"({"input_shapes": {"x": [1, 3, 48, 192]}, "instances": 1, "backends": ["reference"],
                  "fault_injection": "latency_ms=1500"})", f);
    std::fclose(f);
    ServerOptions options;
    options.model_repository = repo_;
    options.limits.max_body_bytes = 1 << 20;
    auto server = Server::create(options);
    ASSERT_TRUE(server.is_ok()) << server.status().to_string();
    server_ = std::move(server.value()).release();
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!server_->ready() && std::chrono::steady_clock::now() < give_up)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    ASSERT_TRUE(server_->ready());
    bool slow_ready = false;
    while (!slow_ready && std::chrono::steady_clock::now() < give_up) {
      server_->model_ready("slow", "", &slow_ready);
      if (!slow_ready) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_TRUE(slow_ready);
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
    std::error_code ignored;
    fs::remove_all(repo_, ignored);
  }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    HttpOptions options;
    options.port = 0;
    options.threads = 4;
    options.read_timeout = std::chrono::milliseconds(1000);
    auto frontend = HttpFrontend::start(*server_, options);
    ASSERT_TRUE(frontend.is_ok()) << frontend.status().to_string();
    frontend_ = std::move(frontend.value());
    client_ = std::make_unique<httplib::Client>("127.0.0.1", frontend_->port());
    client_->set_read_timeout(std::chrono::seconds(30));
  }

  // Another frontend on the suite's server, with a single event loop (nullptr on failure).
  std::unique_ptr<HttpFrontend> start_one_loop() const {
    HttpOptions options;
    options.port = 0;
    options.threads = 1;
    auto started = HttpFrontend::start(*server_, options);
    EXPECT_TRUE(started.is_ok()) << started.status().to_string();
    return started.is_ok() ? std::move(started.value()) : nullptr;
  }

  // A socket connected to the frontend (or to `port`), reads timing out after `timeout_s`; -1
  // when it cannot connect.
  int connect_raw(int port = 0, long timeout_s = 10) const {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port ? port : frontend_->port()));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    timeval timeout{timeout_s, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  // Sends raw bytes and returns the server's answer: its headers and Content-Length bytes of
  // body, or what came before the server closed the connection; with `to_close`, everything
  // until the server closes it. (The client never half-closes.)
  std::string raw_exchange(const std::string& bytes, bool to_close = false) {
    const int fd = connect_raw();
    if (fd < 0) return "connect failed";
    ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    std::string reply;
    char buffer[4096];
    for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) {
      reply.append(buffer, static_cast<size_t>(n));
      const size_t end = reply.find("\r\n\r\n");
      const size_t length = reply.find("Content-Length: ");
      if (!to_close && end != std::string::npos && length != std::string::npos && length < end &&
          reply.size() >= end + 4 + std::stoul(reply.substr(length + 16)))
        break;
    }
    ::close(fd);
    return reply;
  }

  static std::string infer_body(float value) {
    json x = {{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 3, 48, 192}}, {"data", std::vector<float>(27648, value)}};
    return json{{"id", "t"}, {"inputs", {x}}}.dump();
  }

  static inline fs::path repo_;
  static inline Server* server_ = nullptr;
  std::unique_ptr<HttpFrontend> frontend_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpFrontendTest, HealthAndMetadata) {
  auto res = client_->Get("/v2/health/live");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(json::parse(res->body)["live"], true);
  res = client_->Get("/v2/health/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/v2");
  ASSERT_TRUE(res);
  EXPECT_EQ(json::parse(res->body)["name"], "tandem");
  res = client_->Get("/v2/models/cls/versions/1");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200);
  json meta = json::parse(res->body);
  EXPECT_EQ(meta["inputs"][0]["name"], "x");
  EXPECT_EQ(meta["inputs"][0]["datatype"], "FP32");
  res = client_->Get("/v2/models/cls/ready");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  res = client_->Get("/v2/models/stats");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_TRUE(json::parse(res->body)["model_stats"].is_array());
}

TEST_F(HttpFrontendTest, InfersJsonAndBinary) {
  auto res = client_->Post("/v2/models/cls/infer", infer_body(0.25f), "application/json");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  json answer = json::parse(res->body);
  EXPECT_EQ(answer["id"], "t");
  EXPECT_EQ(answer["model_name"], "cls");
  ASSERT_EQ(answer["outputs"][0]["shape"], json::array({1, 2}));
  const float p0 = answer["outputs"][0]["data"][0].get<float>(), p1 = answer["outputs"][0]["data"][1].get<float>();
  EXPECT_NEAR(p0 + p1, 1.0f, 1e-4);

  // The same input as binary data, the output asked for as binary: the same bits.
  std::string head = json{{"inputs", {{{"name", "x"}, {"datatype", "FP32"}, {"shape", {1, 3, 48, 192}},
                                       {"parameters", {{"binary_data_size", 27648 * 4}}}}}},
                          {"parameters", {{"binary_data_output", true}}}}
                         .dump();
  std::vector<float> x(27648, 0.25f);
  std::string body = head + std::string(reinterpret_cast<const char*>(x.data()), x.size() * 4);
  httplib::Headers headers = {{"Inference-Header-Content-Length", std::to_string(head.size())}};
  res = client_->Post("/v2/models/cls/infer", headers, body, "application/octet-stream");
  ASSERT_TRUE(res);
  ASSERT_EQ(res->status, 200) << res->body;
  const size_t json_length = std::stoul(res->get_header_value("Inference-Header-Content-Length"));
  ASSERT_EQ(res->body.size(), json_length + 8);
  float binary[2];
  std::memcpy(binary, res->body.data() + json_length, 8);
  EXPECT_EQ(binary[0], p0);
  EXPECT_EQ(binary[1], p1);
}

TEST_F(HttpFrontendTest, ErrorsAreJsonWithTheirStatus) {
  auto expect_error = [](const httplib::Result& res, int status) {
    ASSERT_TRUE(res);
    EXPECT_EQ(res->status, status) << res->body;
    json doc = json::parse(res->body);
    EXPECT_TRUE(doc["error"].is_string()) << res->body;
    EXPECT_EQ(res->body.find('\n'), std::string::npos);
  };
  expect_error(client_->Post("/v2/models/cls/infer", "{nope", "application/json"), 400);
  expect_error(client_->Post("/v2/models/nosuch/infer", infer_body(0), "application/json"), 404);
  expect_error(client_->Post("/v2/models/cls/versions/5/infer", infer_body(0), "application/json"), 404);
  expect_error(client_->Get("/v2/models/nosuch"), 404);
  expect_error(client_->Get("/v2/nothing/here"), 404);
  expect_error(client_->Post("/v2/repository/index", "[1]", "application/json"), 400);
  // Past the server's 1 MiB body limit, from the declared length alone: nothing is sent after the headers.
  std::string reply = raw_exchange("POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999\r\n\r\n");
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply;
  EXPECT_NE(reply.find("{\"error\":"), std::string::npos) << reply;
  reply = raw_exchange("POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nContent-Length: 50\r\n\r\n{\"inputs\"");
  EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0u) << reply;
}

// Inference bodies in every framing: chunked, chunked past the limit, labelled as a form, and
// requests of different sizes on one keep-alive connection.
TEST_F(HttpFrontendTest, InferenceBodiesInEveryFraming) {
  const std::string body = infer_body(0.5f);
  auto plain = client_->Post("/v2/models/cls/infer", body, "application/json");
  ASSERT_TRUE(plain);
  ASSERT_EQ(plain->status, 200) << plain->body;

  // Chunked, in chunks of 64 KiB: the same answer.
  std::string chunked = "POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
                        "Content-Type: application/json\r\n\r\n";
  for (size_t at = 0; at < body.size(); at += 65536) {
    const size_t n = std::min<size_t>(65536, body.size() - at);
    char size_line[32];
    std::snprintf(size_line, sizeof size_line, "%zx\r\n", n);
    chunked += size_line + body.substr(at, n) + "\r\n";
  }
  chunked += "0\r\n\r\n";
  std::string reply = raw_exchange(chunked);
  ASSERT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 300);
  EXPECT_EQ(reply.substr(reply.find("\r\n\r\n") + 4), plain->body);

  // Chunked past the 1 MiB limit: 413 once the limit is crossed, and the connection closes.
  std::string huge = "POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
  const std::string chunk(256 * 1024, ' ');
  for (int i = 0; i < 5; ++i) huge += "40000\r\n" + chunk + "\r\n";
  huge += "0\r\n\r\n";
  reply = raw_exchange(huge, /*to_close=*/true);
  EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply.substr(0, 300);
  EXPECT_NE(reply.find("Connection: close"), std::string::npos) << reply.substr(0, 300);
  EXPECT_EQ(reply.find("HTTP/1.1", 1), std::string::npos) << "the rest of the body was taken for a request";

  // A form label does not make the body a form.
  auto form = client_->Post("/v2/models/cls/infer", body, "multipart/form-data; boundary=x");
  ASSERT_TRUE(form);
  EXPECT_EQ(form->status, 200) << form->body;
  EXPECT_EQ(form->body, plain->body);

  // One connection, a large body, a small bad one, then the large one again.
  httplib::Client keep("127.0.0.1", frontend_->port());
  keep.set_keep_alive(true);
  for (int round = 0; round < 2; ++round) {
    auto big = keep.Post("/v2/models/cls/infer", body, "application/json");
    ASSERT_TRUE(big);
    EXPECT_EQ(big->status, 200);
    EXPECT_EQ(big->body, plain->body);
    auto small = keep.Post("/v2/models/cls/infer", "{\"inputs\": 7}", "application/json");
    ASSERT_TRUE(small);
    EXPECT_EQ(small->status, 400) << small->body;
  }
}

// Expect: 100-continue gets its interim answer before the body is read; headers past the
// limit get 431; two requests written at once (pipelined) get two answers in order.
TEST_F(HttpFrontendTest, ContinueHeaderLimitAndPipelining) {
  const std::string body = infer_body(0.25f);
  const int fd = connect_raw();
  ASSERT_GE(fd, 0);
  const std::string head = "POST /v2/models/cls/infer HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: " +
                           std::to_string(body.size()) + "\r\n\r\n";
  ASSERT_EQ(::send(fd, head.data(), head.size(), MSG_NOSIGNAL), static_cast<ssize_t>(head.size()));
  char buffer[4096];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  ASSERT_GT(n, 0);
  EXPECT_EQ(std::string(buffer, static_cast<size_t>(n)), "HTTP/1.1 100 Continue\r\n\r\n");
  ASSERT_EQ(::send(fd, body.data(), body.size(), MSG_NOSIGNAL), static_cast<ssize_t>(body.size()));
  std::string reply;
  for (ssize_t got; reply.find("\"outputs\"") == std::string::npos && (got = ::recv(fd, buffer, sizeof buffer, 0)) > 0;)
    reply.append(buffer, static_cast<size_t>(got));
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply.substr(0, 300);

  const std::string big_header = "GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(20000, 'a') + "\r\n\r\n";
  reply = raw_exchange(big_header);
  EXPECT_EQ(reply.rfind("HTTP/1.1 431", 0), 0u) << reply.substr(0, 300);
  EXPECT_NE(reply.find("{\"error\":"), std::string::npos) << reply.substr(0, 300);

  reply = raw_exchange("GET /v2/health/ready HTTP/1.1\r\nHost: t\r\n\r\nGET /v2/nothing HTTP/1.1\r\nHost: t\r\n"
                       "Connection: close\r\n\r\n",
                       /*to_close=*/true);
  const size_t second = reply.find("HTTP/1.1 404");
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  EXPECT_NE(second, std::string::npos) << reply;
  EXPECT_NE(reply.find("\"ready\":true"), std::string::npos) << reply;
}

TEST_F(HttpFrontendTest, SlowHeadersAreCutOffWithinTheReadTimeout) {
  const auto start = std::chrono::steady_clock::now();
  std::thread slow([&] { raw_exchange("GET /v2/health/live HTTP/1.1\r\nHost: t\r\nX-Half: "); });
  auto res = client_->Get("/v2/health/live");  // others are still served meanwhile
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  slow.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
}

// The read timeout (1 s here) runs from each request's start, not from the connection's: a
// keep-alive connection sending a request every 600 ms is served on, and closed about a second
// after it falls silent.
TEST_F(HttpFrontendTest, AKeepAliveConnectionIsTimedFromItsLatestRequest) {
  const int fd = connect_raw();
  ASSERT_GE(fd, 0);
  const std::string request = "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n";
  char buffer[4096];
  for (int i = 0; i < 4; ++i) {
    if (i > 0) std::this_thread::sleep_for(std::chrono::milliseconds(600));
    ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
    std::string reply;
    while (reply.find("{\"live\":true}") == std::string::npos) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
      ASSERT_GT(n, 0) << "request " << i << " after " << 600 * i << " ms: the connection was closed";
      reply.append(buffer, static_cast<size_t>(n));
    }
    EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  }
  const auto silent = std::chrono::steady_clock::now();
  EXPECT_EQ(::recv(fd, buffer, sizeof buffer, 0), 0);  // closed by the server (SO_RCVTIMEO is 10 s)
  const auto closed_after = std::chrono::steady_clock::now() - silent;
  EXPECT_GE(closed_after, std::chrono::milliseconds(900));
  EXPECT_LT(closed_after, std::chrono::milliseconds(3000));
  ::close(fd);
}

TEST_F(HttpFrontendTest, MetricsOnlyModeServesOnlyMetrics) {
  HttpOptions options;
  options.port = 0;
  options.metrics_only = true;
  auto metrics = HttpFrontend::start(*server_, options);
  ASSERT_TRUE(metrics.is_ok()) << metrics.status().to_string();
  httplib::Client client("127.0.0.1", (*metrics)->port());
  ASSERT_TRUE(client_->Get("/v2/health/live"));  // counted as a REST request
  auto res = client.Get("/metrics");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 200);
  EXPECT_NE(res->body.find("tandem_server_requests_total"), std::string::npos);
  res = client.Get("/v2/health/live");
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 404);
}

// Two connections on a frontend with one event loop: while the first waits for a slow engine
// call, the second is answered (the call runs on a scheduler thread, not on the loop both
// connections share; run on the loop, it would hold the second connection until it ended).
TEST_F(HttpFrontendTest, AConnectionDoesNotWaitForAnotherConnectionsEngineCall) {
  std::unique_ptr<HttpFrontend> one_loop = start_one_loop();
  ASSERT_NE(one_loop, nullptr);
  httplib::Client fast("127.0.0.1", one_loop->port()), slow("127.0.0.1", one_loop->port());
  fast.set_keep_alive(true);
  slow.set_keep_alive(true);
  slow.set_read_timeout(std::chrono::seconds(30));
  ASSERT_TRUE(fast.Get("/v2/health/live"));  // both connections are open before the slow call
  ASSERT_TRUE(slow.Get("/v2/health/live"));
  std::atomic<bool> slow_done{false};
  int slow_status = 0;
  std::chrono::steady_clock::duration slow_took{};
  std::thread caller([&] {
    const auto start = std::chrono::steady_clock::now();
    auto res = slow.Post("/v2/models/slow/infer", infer_body(0.5f), "application/json");
    slow_took = std::chrono::steady_clock::now() - start;
    slow_status = res ? res->status : -1;
    slow_done = true;
  });
  // The stats come back over the other connection while the call is still in flight.
  bool seen_in_flight = false;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!seen_in_flight && !slow_done && std::chrono::steady_clock::now() < give_up) {
    auto res = fast.Get("/v2/models/slow/stats");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200);
    seen_in_flight = json::parse(res->body)["model_stats"][0]["in_flight"].get<int>() == 1 && !slow_done;
  }
  EXPECT_TRUE(seen_in_flight) << "the second connection was not answered while the first one's call ran";
  caller.join();
  EXPECT_EQ(slow_status, 200);
  // Slow next to the stats calls (a few milliseconds): its length is the route's time budget,
  // which follows the measured estimate and came out at 199.95 ms on one CI run.
  EXPECT_GE(slow_took, std::chrono::milliseconds(100));
}

// A request that reached the server before stop() is answered, even when its loop was busy
// with another connection's engine call and had not read it yet.
TEST_F(HttpFrontendTest, ARequestSentBeforeStopIsAnsweredWhenItsLoopWasBusy) {
  std::unique_ptr<HttpFrontend> one_loop = start_one_loop();
  ASSERT_NE(one_loop, nullptr);
  const int port = one_loop->port();
  // Alone on the loop, this connection's call runs on the loop's thread.
  std::thread slow_caller([port] {
    httplib::Client slow("127.0.0.1", port);
    slow.set_read_timeout(std::chrono::seconds(30));
    auto res = slow.Post("/v2/models/slow/infer", infer_body(0.5f), "application/json");
    EXPECT_TRUE(res && res->status == 200);
  });
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  for (;;) {
    std::vector<ModelStats> stats;
    ASSERT_FALSE(server_->model_stats("slow", "", &stats));
    if (!stats.empty() && stats[0].scheduler.in_flight == 1) break;
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the slow call never started";
    std::this_thread::yield();
  }
  // Sent while the loop is inside that call, so still unread when stop() begins.
  const int fd = connect_raw(port, 30);
  ASSERT_GE(fd, 0);
  const std::string request = "GET /v2/health/live HTTP/1.1\r\nHost: t\r\n\r\n";
  ASSERT_EQ(::send(fd, request.data(), request.size(), MSG_NOSIGNAL), static_cast<ssize_t>(request.size()));
  while (one_loop->connections() < 2) {  // accepted (a connection still in the listen queue is not)
    ASSERT_LT(std::chrono::steady_clock::now(), give_up) << "the second connection was never accepted";
    std::this_thread::yield();
  }
  one_loop->stop();
  std::string reply;
  char buffer[4096];
  for (ssize_t n; (n = ::recv(fd, buffer, sizeof buffer, 0)) > 0;) reply.append(buffer, static_cast<size_t>(n));
  ::close(fd);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << reply;
  slow_caller.join();
}

TEST_F(HttpFrontendTest, StopEndsServingAndIsIdempotent) {
  const int port = frontend_->port();
  frontend_->stop();
  frontend_->stop();
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(std::chrono::seconds(2));
  EXPECT_FALSE(client.Get("/v2/health/live"));
}

TEST_F(HttpFrontendTest, BindingATakenPortIsAnError) {
  HttpOptions options;
  options.port = frontend_->port();
  auto second = HttpFrontend::start(*server_, options);
  ASSERT_FALSE(second.is_ok());
  EXPECT_NE(second.status().message().find(std::to_string(options.port)), std::string::npos);
}

}  // namespace
}  // namespace tandem::server
