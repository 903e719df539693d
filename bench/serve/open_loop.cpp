// open_loop.cpp: an open-loop HTTP/1.1 load generator for the server's overload benchmark
// (bench/serve/serve_bench.py). Requests are due at a fixed rate whatever the server does; each
// due request goes out on an idle keep-alive connection (a new one is opened while fewer than
// --connections exist, otherwise it waits for one). Latency is measured from the moment the
// request was due, so time spent waiting for a connection counts (no coordinated omission).
// A closed-loop client (wrk, h2load) measures its own concurrency instead: with N connections
// and X answers/s its mean latency is N / X however fast each answer is.
//
//   open_loop --port P --path /v2/models/cls/infer --body FILE [--header "K: V"]...
//             --rate R --seconds S [--connections C]
// One thread. Prints one JSON object: due and sent counts, answers by status with the
// p50/p99/max latency of each (ms), transport errors, stale kept-alive connections retried, and
// connections opened.
// Build: g++ -O2 -std=c++20 bench/serve/open_loop.cpp -o open_loop -pthread
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  std::string path, body_file;
  std::vector<std::string> headers;
  double rate = 1000, seconds = 10;
  int connections = 256;
};

struct Load {
  Options options;
  asio::io_context ioc;
  std::string request;  // the whole request, sent as it is for every call
  Clock::time_point start;
  uint64_t due = 0, sent = 0, errors = 0, opened = 0, stale = 0;
  std::deque<Clock::time_point> waiting;  // due times of requests with no connection yet
  std::map<int, std::vector<double>> latency_ms;  // by status
  int open = 0;
  bool done_issuing = false;

  struct Connection;
  std::vector<std::shared_ptr<Connection>> idle;

  void issue();
  void dispatch();
  void finished(const std::shared_ptr<Connection>& c, bool reusable);
};

struct Load::Connection : std::enable_shared_from_this<Connection> {
  Load& load;
  tcp::socket socket;
  beast::flat_buffer buffer;
  std::optional<http::response_parser<http::string_body>> parser;
  Clock::time_point due;
  bool reused = false;  // it has carried an answer before
  explicit Connection(Load& l) : load(l), socket(l.ioc) {}

  void connect_then_send(Clock::time_point when) {
    due = when;
    socket.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), static_cast<uint16_t>(load.options.port)),
                         [self = shared_from_this()](beast::error_code ec) {
                           if (ec) return self->fail();
                           self->socket.set_option(tcp::no_delay(true));
                           self->send(self->due);
                         });
  }
  void send(Clock::time_point when) {
    due = when;
    ++load.sent;
    asio::async_write(socket, asio::buffer(load.request), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->fail();
      self->parser.emplace();
      self->parser->body_limit(64u << 20);
      http::async_read(self->socket, self->buffer, *self->parser, [self](beast::error_code ec2, size_t) {
        if (ec2) return self->fail();
        const double ms = std::chrono::duration<double, std::milli>(Clock::now() - self->due).count();
        self->load.latency_ms[static_cast<int>(self->parser->get().result_int())].push_back(ms);
        self->reused = true;
        self->load.finished(self, self->parser->get().keep_alive());
      });
    });
  }
  // A kept-alive connection that the server closed while it was idle (its keep-alive timeout)
  // fails before any byte of the answer: the request goes again on a new connection, as HTTP
  // clients do, and keeps its due time. Any other failure is counted as an error.
  void fail() {
    if (reused && !(parser && parser->got_some())) {
      ++load.stale;
      --load.sent;
      load.waiting.push_front(due);
    } else {
      ++load.errors;
    }
    load.finished(shared_from_this(), false);
  }
};

void Load::finished(const std::shared_ptr<Connection>& c, bool reusable) {
  if (reusable) {
    idle.push_back(c);
  } else {
    beast::error_code ignored;
    c->socket.close(ignored);
    --open;
  }
  dispatch();
}

// Hands waiting requests to idle connections, or to new ones while the cap allows.
void Load::dispatch() {
  while (!waiting.empty()) {
    const Clock::time_point when = waiting.front();
    if (!idle.empty()) {
      auto c = idle.back();
      idle.pop_back();
      waiting.pop_front();
      c->parser.reset();
      c->send(when);
    } else if (open < options.connections) {
      waiting.pop_front();
      ++open;
      ++opened;
      std::make_shared<Connection>(*this)->connect_then_send(when);
    } else {
      break;
    }
  }
}

// Every due time from the start up to now joins the waiting list.
void Load::issue() {
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  const double until = std::min(elapsed, options.seconds);
  const auto total = static_cast<uint64_t>(until * options.rate);
  for (; due < total; ++due)
    waiting.push_back(start + std::chrono::nanoseconds(static_cast<int64_t>(due * 1e9 / options.rate)));
  dispatch();
}

double quantile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i], v = argv[i + 1];
    if (k == "--port") o.port = std::atoi(v.c_str());
    else if (k == "--path") o.path = v;
    else if (k == "--body") o.body_file = v;
    else if (k == "--header") o.headers.push_back(v);
    else if (k == "--rate") o.rate = std::atof(v.c_str());
    else if (k == "--seconds") o.seconds = std::atof(v.c_str());
    else if (k == "--connections") o.connections = std::atoi(v.c_str());
    else {
      std::fprintf(stderr, "open_loop: unknown option %s\n", k.c_str());
      return 2;
    }
  }
  if (o.port <= 0 || o.path.empty() || o.rate <= 0 || o.seconds <= 0) {
    std::fprintf(stderr, "open_loop: --port, --path, --rate and --seconds are required\n");
    return 2;
  }
  std::string body;
  if (!o.body_file.empty()) {
    std::ifstream f(o.body_file, std::ios::binary);
    std::stringstream s;
    s << f.rdbuf();
    body = s.str();
  }
  Load load;
  load.options = o;
  load.request = "POST " + o.path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  for (const std::string& h : o.headers) load.request += h + "\r\n";
  load.request += "\r\n" + body;

  asio::steady_timer tick(load.ioc);
  std::function<void()> on_tick = [&] {
    load.issue();
    if (Clock::now() - load.start < std::chrono::duration<double>(o.seconds)) {
      tick.expires_after(std::chrono::microseconds(200));
      tick.async_wait([&](beast::error_code) { on_tick(); });
    }
  };
  load.start = Clock::now();
  on_tick();
  // Stop 5 s after the last request was due, answered or not.
  asio::steady_timer end(load.ioc);
  end.expires_at(load.start + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds + 5)));
  end.async_wait([&](beast::error_code) { load.ioc.stop(); });
  load.ioc.run();

  uint64_t answered = 0;
  std::string by_status;
  for (auto& [status, v] : load.latency_ms) {
    answered += v.size();
    char row[200];
    const double p50 = quantile(v, 0.5), p99 = quantile(v, 0.99), max = v.empty() ? 0 : v.back();
    std::snprintf(row, sizeof row, "%s\"%d\": {\"n\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}",
                  by_status.empty() ? "" : ", ", status, v.size(), p50, p99, max);
    by_status += row;
  }
  std::printf("{\"rate\": %.1f, \"seconds\": %.1f, \"due\": %llu, \"sent\": %llu, \"answered\": %llu, "
              "\"unanswered\": %llu, \"errors\": %llu, \"stale_connections_retried\": %llu, \"connections_opened\": %llu, \"by_status\": {%s}}\n",
              o.rate, o.seconds, static_cast<unsigned long long>(load.due), static_cast<unsigned long long>(load.sent),
              static_cast<unsigned long long>(answered), static_cast<unsigned long long>(load.due - answered),
              static_cast<unsigned long long>(load.errors), static_cast<unsigned long long>(load.stale),
              static_cast<unsigned long long>(load.opened),
              by_status.c_str());
  return 0;
}
