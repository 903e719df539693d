// http_frontend.cpp: see http_frontend.h.
//
// Event loops: each is an io_context run by one thread, and every connection is pinned, when
// it is accepted, to the loop with the fewest connections among those not inside a handler
// (the acceptor has a loop of its own). A session's handlers all run on its loop's thread, in
// order, with no strand, and a completion never wakes another thread to run it: one loop
// shared by all threads cost about 30 futex calls and 15 context switches per request (the
// shared queue's lock, idle threads woken for each posted handler).
//
// One Session per connection, alive while an operation or a reply in flight holds it (every
// completion handler keeps a shared_ptr). A session moves through
//   reading headers -> [100 Continue] -> reading the body -> handling -> writing -> reading...
// and every read or write has a deadline: one steady_timer per session, whose expiry cancels
// the socket's operation. Deadlines carry a generation number so that a timer which fired
// just as its operation completed cannot cut off the next one.
#include "http_frontend.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/string.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "rest_routes.h"
#include "tandem/sysinfo.h"

namespace tandem::server {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kHeaderLimit = 16 * 1024;
constexpr size_t kReadChunk = 64 * 1024;  // Beast's largest single read
constexpr size_t kBodyAlignment = 64;     // of a sized body's binary data (read_sized_body)
constexpr std::chrono::milliseconds kLingerLimit{1000};
constexpr std::chrono::milliseconds kStopWait{100};  // for a request that has not been read at stop()

// True when the peer of socket `fd` has closed its end or reset the connection, seen without
// reading: end of stream or an error. `readable` (optional) is set to 1 when data waits (a
// pipelined next request: the client is there), else 0.
bool peer_hung_up(int fd, int* readable = nullptr) {
  char byte;
  const ssize_t n = ::recv(fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (readable) *readable = n > 0;
  return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

class Session;

// One event loop: an io_context (told it has one thread) and the thread that runs it.
struct Loop {
  asio::io_context ioc{1};
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{asio::make_work_guard(ioc)};
  std::thread thread;
  std::atomic<int> sessions{0};    // connections pinned to this loop
  std::atomic<bool> handling{false};  // inside a request's handler (maybe an engine call)

  void start() {
    thread = std::thread([this] {
      name_this_thread("tandem-http");
      for (;;) {
        try {
          ioc.run();
          return;
        } catch (...) {
          // A handler threw (out of memory): that connection is lost; the loop goes on.
        }
      }
    });
  }
  ~Loop() { halt(); }
  // Lets the loop run what is pending (a cancelled accept's handler, say) and end, and joins
  // its thread.
  void finish() {
    work.reset();
    if (thread.joinable()) thread.join();
  }
  // Stops the loop (handlers not yet run are dropped) and joins its thread.
  void halt() {
    work.reset();
    ioc.stop();
    if (thread.joinable()) thread.join();
  }
};

// HttpOptions::json_decode_threads with -1 resolved.
int json_decode_threads(int requested) {
  if (requested >= 0) return requested;
  return std::min(7, hardware_threads() - 1);
}

// Everything the frontend holds (HttpFrontend::Impl is this; sessions see it by this name).
struct Frontend {
  Server& server;
  HttpOptions options;
  std::vector<std::unique_ptr<Loop>> loops;  // sessions' loops; fixed after start()
  // The acceptor and its retry timer run on a loop of their own (accepting, and closing at
  // stop(), never at once), so that a loop busy with an engine call never delays an accept.
  // Declared after `loops`, so destroyed before them: a pending accept holds a socket of one.
  Loop accept_loop;
  tcp::acceptor acceptor{accept_loop.ioc};
  asio::steady_timer accept_backoff{accept_loop.ioc};
  size_t next_loop = 0;                       // accept loop only: where ties start
  asio::thread_pool blocking{1};  // repository load and unload
  RestRoutes routes;
  int port = 0;

  std::mutex mutex;
  std::condition_variable sessions_ended;
  std::unordered_map<Session*, std::weak_ptr<Session>> sessions;  // guarded by mutex
  std::atomic<bool> stopping{false};  // set under mutex (sessions register under it too)
  bool stopped = false;                                           // start()/stop() thread only

  Frontend(Server& s, HttpOptions o)
      : server(s),
        options(std::move(o)),
        routes(
            s, options.metrics_only, [this](std::function<void()> task) { asio::post(blocking, std::move(task)); },
            json_decode_threads(options.json_decode_threads)) {}

  bool is_stopping() const { return stopping.load(); }
  Loop& quietest_loop();
  void accept();
  void on_accept(const beast::error_code& ec, Loop& loop, tcp::socket socket);
};

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Frontend& owner, Loop& loop, tcp::socket socket)
      : owner_(owner), loop_(loop), socket_(std::move(socket)), timer_(socket_.get_executor()) {
    loop_.sessions.fetch_add(1);
  }

  ~Session() {
    loop_.sessions.fetch_sub(1);
    std::lock_guard<std::mutex> lock(owner_.mutex);
    owner_.sessions.erase(this);
    if (owner_.sessions.empty()) owner_.sessions_ended.notify_all();
  }

  // Registers with the owner (false when it is stopping) and starts reading.
  bool start() {
    {
      std::lock_guard<std::mutex> lock(owner_.mutex);
      if (owner_.stopping) return false;
      owner_.sessions.emplace(this, weak_from_this());
    }
    asio::post(socket_.get_executor(), [self = shared_from_this()] { self->read_header(); });
    return true;
  }

  // On the session's loop, at stop(): a connection that waits for a request gets kStopWait
  // for one to arrive (a request sent before the stop whose loop was too busy to read it yet
  // is read at once) and is closed after that; one with a request in hand closes after its
  // reply.
  void stop_if_waiting() {
    asio::post(socket_.get_executor(), [self = shared_from_this()] {
      if (self->state_ == State::lingering) return self->close();
      if (self->state_ == State::reading_header) self->arm(std::min(kStopWait, self->owner_.options.read_timeout));
    });
  }

 private:
  enum class State { reading_header, reading_body, handling, writing, lingering, closed };

  // The operation in progress must finish by deadline_ (max: none). One timer per connection,
  // moved only when a deadline comes sooner than the time it waits for: an operation that
  // finishes in time costs no timer call (moving a timer is a system call, timerfd_settime, on
  // its loop: three per request before), and a timer that wakes before the current deadline
  // waits again for the rest.
  void arm(std::chrono::milliseconds timeout) {
    timed_out_ = false;
    deadline_ = Clock::now() + timeout;
    if (timer_waiting_ && timer_.expiry() <= deadline_) return;  // it wakes in time to look
    wait_for_deadline();
  }
  void disarm() { deadline_ = Clock::time_point::max(); }
  void wait_for_deadline() {
    timer_waiting_ = true;
    timer_.expires_at(deadline_);  // a wait already pending ends (operation_aborted)
    const uint64_t generation = ++timer_generation_;
    timer_.async_wait([weak = weak_from_this(), generation](const beast::error_code& ec) {
      auto self = weak.lock();
      if (!self || generation != self->timer_generation_) return;  // a later wait took over
      self->timer_waiting_ = false;
      if (ec || self->deadline_ == Clock::time_point::max()) return;  // cancelled, or nothing to time
      if (Clock::now() < self->deadline_) return self->wait_for_deadline();
      self->deadline_ = Clock::time_point::max();
      self->timed_out_ = true;
      beast::error_code ignored;
      self->socket_.cancel(ignored);
    });
  }

  void read_header() {
    state_ = State::reading_header;
    start_ = Clock::now();
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(owner_.server.options().limits.max_body_bytes);
    // After stop() began, only a request that has already arrived is taken.
    arm(owner_.is_stopping() ? std::min(kStopWait, owner_.options.read_timeout) : owner_.options.read_timeout);
    http::async_read_header(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->disarm();
      if (ec) return self->read_failed(ec, /*in_header=*/true);
      self->on_header();
    });
  }

  void on_header() {
    start_ = Clock::now();
    const auto& request = parser_->get();
    auto expect = request.find(http::field::expect);
    const bool expects_continue = expect != request.end() && beast::iequals(expect->value(), "100-continue");
    const auto method = request.method_string();
    const auto target = request.target();
    if (auto refusal = owner_.routes.refuse_early(std::string_view(method.data(), method.size()),
                                                  std::string_view(target.data(), target.size()))) {
      // A client waiting for 100 Continue has not sent its body: refuse and close instead.
      if (expects_continue) return write(std::move(*refusal), /*close_after=*/true);
      return discard_body(std::move(*refusal));
    }
    if (!expects_continue) return read_body();
    static const std::string kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    arm(owner_.options.write_timeout);
    asio::async_write(socket_, asio::buffer(kContinue), [self = shared_from_this()](beast::error_code ec, size_t) {
      self->disarm();
      if (ec) return self->close();
      self->read_body();
    });
  }

  void read_body() {
    state_ = State::reading_body;
    if (parser_->is_done()) return handle(nullptr, {});  // no body
    const auto length = parser_->content_length();
    if (!parser_->chunked() && length) return read_sized_body(*length);
    // A chunked body goes through the parser. Beast reads at most the buffer's free capacity
    // (at least 512 bytes) per call: without room, a 100 KB body would take a hundred reads.
    buffer_.reserve(buffer_.size() + kReadChunk);
    arm(owner_.options.read_timeout);
    http::async_read(socket_, buffer_, *parser_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->disarm();
      if (ec) return self->read_failed(ec, /*in_header=*/false);
      auto body = std::make_shared<std::string>(std::move(self->parser_->get().body()));
      const std::string_view view = *body;
      self->handle(std::move(body), view);
    });
  }

  // A body of known length goes from the socket straight into a buffer of its own (the parser
  // would copy it again out of the read buffer), uninitialized, placed so that the binary data
  // after an Inference-Header-Content-Length header's JSON starts on a 64-byte boundary: the
  // tensors decoded from it can then share it instead of copying it (rest_codec.h).
  void read_sized_body(uint64_t length) {
    size_t json_length = 0;
    if (auto it = parser_->get().find("Inference-Header-Content-Length"); it != parser_->get().end()) {
      const std::string_view text(it->value().data(), it->value().size());
      uint64_t n = 0;
      if (std::from_chars(text.data(), text.data() + text.size(), n).ec == std::errc() && n <= length) json_length = n;
    }
    body_owner_ = std::shared_ptr<char[]>(new char[length + kBodyAlignment]);
    const auto binary_at = reinterpret_cast<uintptr_t>(body_owner_.get()) + json_length;
    body_ = body_owner_.get() + (kBodyAlignment - binary_at % kBodyAlignment) % kBodyAlignment;
    body_length_ = length;
    const size_t have = std::min<uint64_t>(buffer_.size(), length);
    asio::buffer_copy(asio::buffer(body_, have), buffer_.data());
    buffer_.consume(have);
    if (have == length) return handle_sized_body();
    arm(owner_.options.read_timeout);
    asio::async_read(socket_, asio::buffer(body_ + have, length - have),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       self->disarm();
                       if (ec) return self->read_failed(ec, /*in_header=*/false);
                       self->handle_sized_body();
                     });
  }
  void handle_sized_body() {
    const std::string_view view(body_, body_length_);
    body_ = nullptr;
    handle(std::move(body_owner_), view);
  }

  // Reads the body of a request refused from its headers into scratch space (keeping the
  // connection usable), then sends `refusal`.
  void discard_body(RestReply&& refusal) {
    state_ = State::reading_body;
    keep_alive_ = parser_->get().keep_alive();
    version_ = parser_->get().version();
    refusal_ = std::move(refusal);
    const auto length = parser_->content_length();
    if (parser_->is_done() || (!parser_->chunked() && length)) {
      const uint64_t total = parser_->is_done() ? 0 : *length;
      const size_t have = std::min<uint64_t>(buffer_.size(), total);
      buffer_.consume(have);
      skip_left_ = total - have;
      return skip_sized_body();
    }
    discard_.emplace(std::move(*parser_));  // chunked: the parser finds the body's end
    read_discarded();
  }
  void skip_sized_body() {
    if (skip_left_ == 0) return write(std::move(refusal_), /*close_after=*/false);
    arm(owner_.options.read_timeout);
    socket_.async_read_some(asio::buffer(scratch(), std::min<uint64_t>(kReadChunk, skip_left_)),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->disarm();
                              if (ec) return self->read_failed(ec, /*in_header=*/false);
                              self->skip_left_ -= n;
                              self->skip_sized_body();
                            });
  }
  void read_discarded() {
    if (discard_->is_done()) {
      discard_.reset();
      return write(std::move(refusal_), /*close_after=*/false);
    }
    discard_->get().body().data = scratch();
    discard_->get().body().size = kReadChunk;
    arm(owner_.options.read_timeout);
    http::async_read(socket_, buffer_, *discard_, [self = shared_from_this()](beast::error_code ec, size_t) {
      self->disarm();
      if (ec && ec != http::error::need_buffer) return self->read_failed(ec, /*in_header=*/false);
      self->read_discarded();
    });
  }

  void read_failed(const beast::error_code& ec, bool in_header) {
    const bool began = !in_header || buffer_.size() > 0 || parser_->got_some();
    if (timed_out_) {
      if (!began) return close();  // an idle keep-alive connection
      return reply_and_close(bad_request(in_header ? "request headers not complete within the read timeout"
                                                   : "request body ended before its Content-Length (read timeout)"));
    }
    if (ec == http::error::body_limit)
      return reply_and_close(too_large("request body exceeds the limit of " +
                                       std::to_string(owner_.server.options().limits.max_body_bytes) + " bytes"));
    if (ec == http::error::header_limit)
      return reply_and_close(ProtocolError{431, "request headers exceed " + std::to_string(kHeaderLimit) + " bytes"});
    // The client went away (or stop() closed the socket): nobody to answer.
    if (ec == http::error::end_of_stream || ec == http::error::partial_message || ec == asio::error::eof ||
        ec == asio::error::connection_reset || ec == asio::error::operation_aborted || !socket_.is_open())
      return close();
    reply_and_close(bad_request("malformed HTTP request: " + ec.message()));
  }

  // `body` views bytes that `owner` keeps alive (null for an empty body).
  void handle(std::shared_ptr<void> owner, std::string_view body) {
    state_ = State::handling;
    auto& request = parser_->get();
    keep_alive_ = request.keep_alive();
    version_ = request.version();
    head_ = request.method() == http::verb::head;
    RestCall call;
    call.method = std::string_view(request.method_string().data(), request.method_string().size());
    call.target = std::string_view(request.target().data(), request.target().size());
    call.body = body;
    call.body_owner = std::move(owner);
    if (auto it = request.find("Inference-Header-Content-Length"); it != request.end())
      call.inference_header_length = std::string(it->value());
    // An engine call may run on this thread only when no other connection shares the loop:
    // theirs would wait for it (a request already sent, a refusal that should be fast).
    call.may_block = loop_.sessions.load() == 1;
    gone_->store(false, std::memory_order_relaxed);
    // While this thread makes the engine call itself (may_block), the loop cannot watch the
    // socket (watch_for_hangup): the engine's poll of client_gone, made on this very thread,
    // then looks at the socket directly, which only this thread may do, and only while
    // handle() runs (the socket is open until then). Other threads read the flag.
    call.client_gone = [gone = gone_, loop = std::this_thread::get_id(), fd = socket_.native_handle()] {
      if (gone->load(std::memory_order_relaxed)) return true;
      if (std::this_thread::get_id() != loop) return false;
      if (!peer_hung_up(fd)) return false;
      gone->store(true, std::memory_order_relaxed);
      return true;
    };
    // The reply is always posted, also when it comes back inside handle(): the request (whose
    // method and target the call views) stays untouched until handle() returned.
    loop_.handling = true;
    owner_.routes.handle(std::move(call), [self = shared_from_this()](RestReply&& reply) {
      asio::post(self->socket_.get_executor(),
                 [self, reply = std::move(reply)]() mutable { self->write(std::move(reply), /*close_after=*/false); });
    });
    loop_.handling = false;
    // The answer comes later (it is always posted): meanwhile, notice a client that hangs up.
    // With bytes of a next request already read, the client is there.
    if (state_ == State::handling && buffer_.size() == 0) watch_for_hangup();
  }

  // Waits for the socket to turn readable while a request is handled: end of stream or a reset
  // means the client has gone (the scheduler then drops or cancels its request); data means a
  // pipelined next request, so the client is there and the watch ends. write() ends it too.
  void watch_for_hangup() {
    watching_ = true;
    socket_.async_wait(tcp::socket::wait_read, [self = shared_from_this()](beast::error_code ec) {
      if (ec || !self->watching_ || self->state_ != State::handling) return;  // cancelled by write(), or closed
      self->watching_ = false;
      int readable = 0;
      if (peer_hung_up(self->socket_.native_handle(), &readable))
        self->gone_->store(true, std::memory_order_relaxed);
      else if (readable == 0)
        self->watch_for_hangup();  // woken with nothing to read: watch on
    });
  }

  void reply_and_close(const ProtocolError& error) {
    version_ = 11;
    write(rest_error_reply(error), /*close_after=*/true);
  }

  void write(RestReply&& reply, bool close_after) {
    if (watching_) {  // the only operation on the socket now is the watch (handling: nothing is read)
      watching_ = false;
      beast::error_code ignored;
      socket_.cancel(ignored);
    }
    state_ = State::writing;
    response_ = {};
    response_.version(version_);
    response_.result(static_cast<unsigned>(reply.status));
    response_.set(http::field::content_type, reply.content_type);
    for (auto& [name, value] : reply.headers) response_.set(name, value);
    response_.body() = std::move(reply.body);
    const bool keep = keep_alive_ && !close_after && !owner_.is_stopping();
    response_.keep_alive(keep);
    response_.prepare_payload();
    // HEAD: the headers a GET would get (its Content-Length included), no body.
    if (head_) response_.body().clear();
    head_ = false;
    const int status = reply.status;
    arm(owner_.options.write_timeout);
    http::async_write(socket_, response_, [self = shared_from_this(), keep, status](beast::error_code ec, size_t) {
      self->disarm();
      const double seconds = std::chrono::duration<double>(Clock::now() - self->start_).count();
      self->owner_.server.record_request("rest", status, seconds);
      if (ec) return self->close();
      if (!keep) return self->linger();
      self->read_header();
    });
  }

  // Stops sending, then reads and drops what the client still sends (the rest of a refused
  // body) until it closes or kLingerLimit passes: closing with unread data would reset the
  // connection, and the client could lose the reply it has not read yet.
  void linger() {
    state_ = State::lingering;
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_send, ignored);
    arm(std::min(kLingerLimit, owner_.options.read_timeout));
    drain();
  }
  void drain() {
    socket_.async_read_some(asio::buffer(scratch(), kReadChunk), [self = shared_from_this()](beast::error_code ec, size_t) {
      if (ec) return self->close();
      self->drain();
    });
  }

  char* scratch() {
    if (!scratch_) scratch_ = std::make_unique<char[]>(kReadChunk);
    return scratch_.get();
  }

  void close() {
    if (state_ == State::closed) return;
    state_ = State::closed;
    disarm();
    timer_.cancel();
    beast::error_code ignored;
    socket_.shutdown(tcp::socket::shutdown_both, ignored);
    socket_.close(ignored);
  }

  Frontend& owner_;
  Loop& loop_;
  tcp::socket socket_;
  asio::steady_timer timer_;
  Clock::time_point deadline_ = Clock::time_point::max();  // see arm()
  bool timer_waiting_ = false;                             // timer_ has a wait pending
  uint64_t timer_generation_ = 0;                          // of the latest wait (earlier ones' handlers do nothing)
  bool timed_out_ = false;
  State state_ = State::reading_header;
  // Set (by this loop) once the client of the request being handled has gone; read by the
  // scheduler's threads through RestCall::client_gone, which shares it.
  std::shared_ptr<std::atomic<bool>> gone_ = std::make_shared<std::atomic<bool>>(false);
  bool watching_ = false;  // watch_for_hangup() has a wait pending
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::optional<http::request_parser<http::buffer_body>> discard_;  // a refused request's body
  RestReply refusal_;
  uint64_t skip_left_ = 0;  // bytes of a refused body still to read
  // A body of known length while it is read: body_length_ bytes at body_, inside body_owner_.
  std::shared_ptr<char[]> body_owner_;
  char* body_ = nullptr;
  size_t body_length_ = 0;
  http::response<http::string_body> response_;
  bool keep_alive_ = false;
  bool head_ = false;  // the request being answered is a HEAD
  unsigned version_ = 11;
  Clock::time_point start_ = Clock::now();
  std::unique_ptr<char[]> scratch_;  // kReadChunk bytes once a body is discarded
};

Loop& Frontend::quietest_loop() {
  Loop* best = nullptr;
  const auto load = [](const Loop& loop) { return std::pair(loop.handling.load(), loop.sessions.load()); };
  for (size_t i = 0; i < loops.size(); ++i) {
    Loop& loop = *loops[(next_loop + i) % loops.size()];
    if (!best || load(loop) < load(*best)) best = &loop;
  }
  next_loop = (next_loop + 1) % loops.size();
  return *best;
}

void Frontend::accept() {
  Loop& loop = quietest_loop();
  acceptor.async_accept(loop.ioc, [this, &loop](beast::error_code ec, tcp::socket socket) {
    on_accept(ec, loop, std::move(socket));
  });
}

void Frontend::on_accept(const beast::error_code& ec, Loop& loop, tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
  if (ec) {
    // Out of descriptors or memory: accepting again at once would spin; retry shortly.
    accept_backoff.expires_after(std::chrono::milliseconds(10));
    accept_backoff.async_wait([this](const beast::error_code& wait_ec) {
      if (!wait_ec && acceptor.is_open()) accept();
    });
    return;
  }
  beast::error_code ignored;
  // Replies are sent whole; without TCP_NODELAY a reply could wait for the client's delayed ACK.
  socket.set_option(tcp::no_delay(true), ignored);
  auto session = std::make_shared<Session>(*this, loop, std::move(socket));
  if (session->start()) accept();
}

}  // namespace

struct HttpFrontend::Impl : Frontend {
  using Frontend::Frontend;
};

Result<std::unique_ptr<HttpFrontend>> HttpFrontend::start(Server& server, HttpOptions options) {
  const std::string where = options.host + ":" + std::to_string(options.port);
  auto impl = std::make_unique<Impl>(server, options);
  Impl& s = *impl;
  try {
    beast::error_code ec;
    asio::ip::address address = asio::ip::make_address(options.host, ec);
    if (ec) {
      tcp::resolver resolver(s.accept_loop.ioc);
      auto found = resolver.resolve(options.host, "", ec);
      if (ec || found.empty()) return Status(StatusCode::unavailable, "cannot resolve HTTP host " + options.host);
      address = found.begin()->endpoint().address();
    }
    const tcp::endpoint endpoint(address, static_cast<uint16_t>(options.port));
    s.acceptor.open(endpoint.protocol(), ec);
    // SO_REUSEADDR only (never SO_REUSEPORT, which would let a second server share a taken port).
    if (!ec) s.acceptor.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) s.acceptor.bind(endpoint, ec);
    if (!ec) s.acceptor.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) return Status(StatusCode::unavailable, "cannot bind HTTP on " + where + ": " + ec.message());
    s.port = s.acceptor.local_endpoint().port();
    const int threads = options.threads > 0 ? options.threads : options.metrics_only ? 1 : default_request_threads();
    for (int i = 0; i < threads; ++i) s.loops.push_back(std::make_unique<Loop>());
    for (auto& loop : s.loops) loop->start();
    s.accept();
    s.accept_loop.start();
  } catch (const std::exception& e) {
    impl->accept_loop.halt();
    for (auto& loop : impl->loops) loop->halt();
    return Status(StatusCode::unavailable, std::string("cannot start HTTP on ") + where + ": " + e.what());
  }
  return std::unique_ptr<HttpFrontend>(new HttpFrontend(std::move(impl)));
}

HttpFrontend::HttpFrontend(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

HttpFrontend::~HttpFrontend() { stop(); }

int HttpFrontend::port() const { return impl_->port; }

int HttpFrontend::connections() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  return static_cast<int>(impl_->sessions.size());
}

void HttpFrontend::stop() {
  Impl& s = *impl_;
  if (s.stopped) return;
  s.stopped = true;
  std::vector<std::shared_ptr<Session>> live;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stopping = true;
    for (auto& [_, weak] : s.sessions)
      if (auto session = weak.lock()) live.push_back(std::move(session));
  }
  asio::post(s.accept_loop.ioc, [&s] {
    beast::error_code ignored;
    s.acceptor.close(ignored);
    s.accept_backoff.cancel();
  });
  for (auto& session : live) session->stop_if_waiting();
  live.clear();
  {
    std::unique_lock<std::mutex> lock(s.mutex);
    s.sessions_ended.wait(lock, [&s] { return s.sessions.empty(); });
  }
  s.blocking.join();
  s.accept_loop.finish();  // runs the cancelled accept's handler, which frees its socket
  for (auto& loop : s.loops) loop->finish();
}

}  // namespace tandem::server
