// grpc_load.cpp: a closed-loop load generator for unary gRPC calls over HTTP/2 (cleartext), for
// the server's benchmark (bench/serve/serve_bench.py). Each of --connections connections keeps
// one call open at a time and starts the next as soon as the last one closed. With --rate R it
// paces instead (the soak): calls are due R per second whatever the server does, each due call
// starts on an idle connection, and its latency counts from when it was due, so time waiting
// for a connection counts too (no coordinated omission); calls due within S seconds are
// counted when they close up to 5 s later.
//
// Why not only h2load: h2load sends a request body in 16 KB DATA frames, one write each (seven
// writes for the classifier's 110 KB message), and cannot read grpc-status. gRPC's own clients
// (grpc++, grpcio) send a message in one write of as few frames as the peer's frame size and
// flow-control windows allow; this client does the same (the body is written straight from
// memory, one writev per call) and counts answers by their grpc-status.
//
//   grpc_load --port P --path /inference.GRPCInferenceService/ModelInfer --frame FILE
//             --seconds S [--connections C] [--rate R]
// FILE holds one gRPC length-prefixed message (flag byte, 4-byte big-endian length, message).
// One thread. Prints one JSON object: calls completed within S seconds and their rate, calls by
// grpc-status with p50/p99/max latency (ms, from the call's start to its stream's close), calls
// that ended without a grpc-status, and transport errors.
// Build: g++ -O2 -std=c++20 bench/serve/grpc_load.cpp -o grpc_load -lnghttp2
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  int port = 0;
  std::string path, frame_file;
  double seconds = 10;
  int connections = 1;
  double rate = 0;  // calls due per second; 0: closed loop
};

struct Run;

// One connection: its socket, its HTTP/2 session and the bytes waiting to be written. Bytes
// nghttp2 produces are copied into `owned`; the message is referenced in place.
struct Connection {
  Run* run = nullptr;
  int fd = -1;
  nghttp2_session* session = nullptr;
  std::deque<std::string> owned;  // storage of copied segments (never moved), alive until written
  std::vector<iovec> pending;     // what is left to write, in order
  int32_t stream = -1;            // the open call's stream
  size_t body_sent = 0;           // bytes of the message given to nghttp2 for that call
  Clock::time_point started;      // when the call started, or with --rate when it was due
  int grpc_status = -1;  // from the trailers; -1: none seen
  bool failed = false;
};

struct Run {
  Options options;
  std::string message;  // the gRPC frame sent by every call
  Clock::time_point begin, end;
  uint64_t started = 0;                           // calls started (with --rate: the next due call's index)
  std::map<int, std::vector<double>> latency_ms;  // by grpc-status (-1: none)
  uint64_t completed = 0, transport_errors = 0;
};

void queue_bytes(Connection& c, const uint8_t* data, size_t length) {
  c.owned.emplace_back(reinterpret_cast<const char*>(data), length);
  c.pending.push_back(iovec{c.owned.back().data(), length});
}

ssize_t on_send(nghttp2_session*, const uint8_t* data, size_t length, int, void* user) {
  queue_bytes(*static_cast<Connection*>(user), data, length);
  return static_cast<ssize_t>(length);
}

// DATA frames: the 9-byte header is copied, the payload referenced in the message.
int on_send_data(nghttp2_session*, nghttp2_frame*, const uint8_t* header, size_t length, nghttp2_data_source*,
                 void* user) {
  auto& c = *static_cast<Connection*>(user);
  queue_bytes(c, header, 9);
  if (length) c.pending.push_back(iovec{const_cast<char*>(c.run->message.data()) + c.body_sent, length});
  c.body_sent += length;
  return 0;
}

ssize_t on_read_body(nghttp2_session*, int32_t, uint8_t*, size_t length, uint32_t* flags, nghttp2_data_source*,
                     void* user) {
  auto& c = *static_cast<Connection*>(user);
  const size_t left = c.run->message.size() - c.body_sent;
  const size_t n = std::min(length, left);
  *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
  if (n == left) *flags |= NGHTTP2_DATA_FLAG_EOF;
  return static_cast<ssize_t>(n);
}

// As large a DATA frame as the windows and the peer's frame size allow (h2load: 16 KB).
ssize_t on_read_length(nghttp2_session*, uint8_t, int32_t, int32_t session_window, int32_t stream_window,
                       uint32_t max_frame, void*) {
  return std::max<ssize_t>(1, std::min<ssize_t>({session_window, stream_window, static_cast<ssize_t>(max_frame)}));
}

int on_header(nghttp2_session*, const nghttp2_frame*, const uint8_t* name, size_t name_length, const uint8_t* value,
              size_t value_length, uint8_t, void* user) {
  auto& c = *static_cast<Connection*>(user);
  if (name_length == 11 && std::memcmp(name, "grpc-status", 11) == 0)
    c.grpc_status = std::atoi(std::string(reinterpret_cast<const char*>(value), value_length).c_str());
  return 0;
}

void start_call(Connection& c, Clock::time_point due);

// With --rate: when call `index` is due.
Clock::time_point due_at(const Run& run, uint64_t index) {
  return run.begin + std::chrono::duration_cast<Clock::duration>(
                         std::chrono::duration<double>(static_cast<double>(index) / run.options.rate));
}

int on_stream_close(nghttp2_session*, int32_t stream, uint32_t, void* user) {
  auto& c = *static_cast<Connection*>(user);
  if (stream != c.stream) return 0;
  Run& run = *c.run;
  const auto now = Clock::now();
  if (now <= run.end || run.options.rate > 0) {  // paced: every due call counts, however late
    run.latency_ms[c.grpc_status].push_back(std::chrono::duration<double, std::milli>(now - c.started).count());
    ++run.completed;
  }
  c.stream = -1;
  if (now < run.end && run.options.rate <= 0) start_call(c, now);
  return 0;
}

void start_call(Connection& c, Clock::time_point due) {
  const std::string authority = "127.0.0.1:" + std::to_string(c.run->options.port);
  const std::string path = c.run->options.path;
  auto nv = [](const char* name, const std::string& value) {
    return nghttp2_nv{reinterpret_cast<uint8_t*>(const_cast<char*>(name)),
                      reinterpret_cast<uint8_t*>(const_cast<char*>(value.data())), std::strlen(name), value.size(),
                      NGHTTP2_NV_FLAG_NONE};
  };
  const std::string post = "POST", http = "http", grpc = "application/grpc", trailers = "trailers";
  nghttp2_nv headers[] = {nv(":method", post),         nv(":scheme", http),      nv(":path", path),
                          nv(":authority", authority), nv("content-type", grpc), nv("te", trailers)};
  nghttp2_data_provider body{};
  body.read_callback = on_read_body;
  c.body_sent = 0;
  c.grpc_status = -1;
  c.started = due;
  ++c.run->started;
  c.stream = nghttp2_submit_request(c.session, nullptr, headers, std::size(headers), &body, nullptr);
  if (c.stream < 0) c.failed = true;
}

// Writes what is pending; false on a transport error. Leaves the rest when the socket is full.
bool flush(Connection& c) {
  while (!c.pending.empty()) {
    const int count = static_cast<int>(std::min<size_t>(c.pending.size(), IOV_MAX));
    const ssize_t n = writev(c.fd, c.pending.data(), count);
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    // Drops the segments written whole and trims the one written in part.
    size_t written = static_cast<size_t>(n), done = 0;
    while (done < c.pending.size() && written >= c.pending[done].iov_len) written -= c.pending[done++].iov_len;
    c.pending.erase(c.pending.begin(), c.pending.begin() + static_cast<long>(done));
    if (written) {
      c.pending.front().iov_base = static_cast<char*>(c.pending.front().iov_base) + written;
      c.pending.front().iov_len -= written;
    }
  }
  c.owned.clear();
  return true;
}

bool pump(Connection& c) {
  if (nghttp2_session_send(c.session) != 0) return false;
  return flush(c);
}

bool read_ready(Connection& c) {
  uint8_t buffer[65536];
  for (;;) {
    const ssize_t n = read(c.fd, buffer, sizeof buffer);
    if (n == 0) return false;
    if (n < 0) return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
    if (nghttp2_session_mem_recv(c.session, buffer, static_cast<size_t>(n)) < 0) return false;
  }
}

int connect_to(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd < 0 || connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    if (fd >= 0) close(fd);
    return -1;
  }
  const int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

double quantile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

int usage(const char* why) {
  std::fprintf(stderr,
               "grpc_load: %s\nusage: grpc_load --port P --path PATH --frame FILE --seconds S [--connections C] "
               "[--rate R]\n",
               why);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Run run;
  Options& o = run.options;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string key = argv[i], value = argv[i + 1];
    if (key == "--port")
      o.port = std::atoi(value.c_str());
    else if (key == "--path")
      o.path = value;
    else if (key == "--frame")
      o.frame_file = value;
    else if (key == "--seconds")
      o.seconds = std::atof(value.c_str());
    else if (key == "--connections")
      o.connections = std::atoi(value.c_str());
    else if (key == "--rate")
      o.rate = std::atof(value.c_str());
    else
      return usage(("unknown option " + key).c_str());
  }
  if (o.port <= 0 || o.path.empty() || o.frame_file.empty() || o.seconds <= 0 || o.connections < 1)
    return usage("--port, --path, --frame and --seconds are required");
  if (o.rate < 0) return usage("--rate must not be negative");
  std::ifstream in(o.frame_file, std::ios::binary);
  run.message.assign(std::istreambuf_iterator<char>(in), {});
  if (run.message.size() < 5) return usage("the frame file holds no gRPC message");

  nghttp2_session_callbacks* raw_callbacks = nullptr;
  if (nghttp2_session_callbacks_new(&raw_callbacks) != 0) return usage("out of memory");
  const std::unique_ptr<nghttp2_session_callbacks, void (*)(nghttp2_session_callbacks*)> owned_callbacks(
      raw_callbacks, nghttp2_session_callbacks_del);
  nghttp2_session_callbacks* callbacks = raw_callbacks;
  nghttp2_session_callbacks_set_send_callback(callbacks, on_send);
  nghttp2_session_callbacks_set_send_data_callback(callbacks, on_send_data);
  nghttp2_session_callbacks_set_data_source_read_length_callback(callbacks, on_read_length);
  nghttp2_session_callbacks_set_on_header_callback(callbacks, on_header);
  nghttp2_session_callbacks_set_on_stream_close_callback(callbacks, on_stream_close);

  std::vector<std::unique_ptr<Connection>> connections;
  for (int i = 0; i < o.connections; ++i) {
    auto c = std::make_unique<Connection>();
    c->run = &run;
    c->fd = connect_to(o.port);
    if (c->fd < 0) {
      std::fprintf(stderr, "grpc_load: cannot connect to 127.0.0.1:%d: %s\n", o.port, std::strerror(errno));
      for (auto& open : connections) {
        close(open->fd);
        nghttp2_session_del(open->session);
      }
      return 1;
    }
    nghttp2_session_client_new(&c->session, callbacks, c.get());
    const nghttp2_settings_entry settings[] = {{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 4 << 20}};
    nghttp2_submit_settings(c->session, NGHTTP2_FLAG_NONE, settings, std::size(settings));
    connections.push_back(std::move(c));
  }
  run.begin = Clock::now();
  run.end = run.begin + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(o.seconds));
  if (o.rate <= 0)
    for (auto& c : connections) start_call(*c, run.begin);

  // Past the end, calls still open get a second to close (they are not counted); paced calls
  // get five, and count.
  const auto give_up = run.end + std::chrono::seconds(o.rate > 0 ? 5 : 1);
  std::vector<pollfd> fds(connections.size());
  for (;;) {
    bool open = false;
    auto now = Clock::now();
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = *connections[i];
      const auto due = due_at(run, run.started);
      if (o.rate > 0 && c.fd >= 0 && c.stream < 0 && due <= now && due < run.end) start_call(c, due);
      if (c.fd >= 0 && (c.failed || !pump(c))) {
        ++run.transport_errors;
        close(c.fd);
        c.fd = -1;
      }
      open = open || (c.fd >= 0 && (c.stream >= 0 || (o.rate > 0 && now < run.end)));
      fds[i] = pollfd{c.fd, static_cast<short>(POLLIN | (c.pending.empty() ? 0 : POLLOUT)), 0};
    }
    now = Clock::now();
    if (!open || now >= give_up) break;
    // Wakes for the next due call too (rounded up to a millisecond; a paced call starts late by
    // at most that, and its latency counts from when it was due).
    auto wake = give_up;
    if (o.rate > 0 && now < run.end) wake = std::min(wake, std::max(now, due_at(run, run.started)));
    const int wait_ms =
        static_cast<int>(std::chrono::duration_cast<std::chrono::microseconds>(wake - now).count() / 1000 + 1);
    if (poll(fds.data(), fds.size(), wait_ms) < 0 && errno != EINTR) break;
    for (size_t i = 0; i < connections.size(); ++i) {
      Connection& c = *connections[i];
      if (c.fd < 0 || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      if (!read_ready(c)) {
        ++run.transport_errors;
        close(c.fd);
        c.fd = -1;
      }
    }
  }
  for (auto& c : connections) {
    if (c->fd >= 0) close(c->fd);
    nghttp2_session_del(c->session);
  }

  // With --rate, "due" is the calls due within S seconds and "started" those that got a
  // connection; due calls never started were left waiting for one.
  // Calls k = 0, 1, ... are due at k / R, those before S: ceil(S * R) of them.
  const uint64_t due = o.rate > 0 ? static_cast<uint64_t>(std::ceil(o.seconds * o.rate)) : run.started;
  std::printf(
      "{\"calls\": %llu, \"seconds\": %.3f, \"rps\": %.1f, \"due\": %llu, \"started\": %llu, "
      "\"transport_errors\": %llu, \"by_grpc_status\": {",
      static_cast<unsigned long long>(run.completed), o.seconds, static_cast<double>(run.completed) / o.seconds,
      static_cast<unsigned long long>(due), static_cast<unsigned long long>(run.started),
      static_cast<unsigned long long>(run.transport_errors));
  bool first = true;
  for (const auto& [status, latencies] : run.latency_ms) {
    std::printf("%s\"%d\": {\"n\": %zu, \"p50_ms\": %.3f, \"p99_ms\": %.3f, \"max_ms\": %.3f}", first ? "" : ", ",
                status, latencies.size(), quantile(latencies, 0.5), quantile(latencies, 0.99),
                quantile(latencies, 1.0));
    first = false;
  }
  std::printf("}}\n");
  return 0;
}
