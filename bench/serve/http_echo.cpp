// http_echo.cpp: the smallest inference-shaped HTTP server on each candidate library, to
// compare what the library itself costs per request (bench/serve/http_libraries.sh).
// POST /infer reads the whole body (about the classifier's 110 KB input) and answers a small
// JSON document, like an inference reply. Built three times: -DECHO_HTTPLIB (cpp-httplib's
// thread pool), -DECHO_LIBEVENT (libevent's evhttp, one event loop per thread sharing the
// socket) and -DECHO_BEAST (Boost.Beast, synchronous, a thread per connection).
//   http_echo PORT THREADS
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {
const char kReply[] = R"({"model_name":"cls","outputs":[{"name":"y","datatype":"FP32","shape":[1,2],"data":[0.25,0.75]}]})";
}

#ifdef ECHO_HTTPLIB
#include <httplib.h>

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int port = std::atoi(argv[1]);
  const int threads = std::atoi(argv[2]);
  httplib::Server server;
  server.set_tcp_nodelay(true);  // off by default: replies would wait for the client's delayed ACK
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server.Post("/infer", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(req.body.size() > 0 ? kReply : "{}", "application/json");
  });
  return server.listen("127.0.0.1", port) ? 0 : 1;
}
#endif

#ifdef ECHO_LIBEVENT
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>

#include <sys/socket.h>

namespace {
void on_infer(evhttp_request* req, void*) {
  evbuffer* in = evhttp_request_get_input_buffer(req);
  const size_t n = evbuffer_get_length(in);
  std::string body(n, '\0');
  evbuffer_remove(in, body.data(), n);
  evbuffer* out = evbuffer_new();
  evbuffer_add(out, kReply, sizeof(kReply) - 1);
  evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
  evhttp_send_reply(req, 200, "OK", out);
  evbuffer_free(out);
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  const int port = std::atoi(argv[1]);
  const int threads = std::atoi(argv[2]);
  evthread_use_pthreads();
  // The first loop binds; the others accept on the same listening socket.
  event_base* first = event_base_new();
  evhttp* http = evhttp_new(first);
  evhttp_bound_socket* bound = evhttp_bind_socket_with_handle(http, "127.0.0.1", static_cast<uint16_t>(port));
  if (!bound) return 1;
  const evutil_socket_t fd = evhttp_bound_socket_get_fd(bound);
  evhttp_set_cb(http, "/infer", on_infer, nullptr);
  evhttp_set_max_body_size(http, 64 << 20);
  std::vector<std::thread> loops;
  for (int i = 1; i < threads; ++i) {
    loops.emplace_back([fd] {
      event_base* base = event_base_new();
      evhttp* h = evhttp_new(base);
      evhttp_accept_socket(h, fd);
      evhttp_set_cb(h, "/infer", on_infer, nullptr);
      evhttp_set_max_body_size(h, 64 << 20);
      event_base_dispatch(base);
    });
  }
  event_base_dispatch(first);
  for (auto& t : loops) t.join();
  return 0;
}
#endif

#ifdef ECHO_BEAST
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace {
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;

void serve(tcp::socket socket) {
  beast::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(64u << 20);
    http::read(socket, buffer, parser, ec);
    if (ec) return;
    http::response<http::string_body> res{http::status::ok, parser.get().version()};
    res.set(http::field::content_type, "application/json");
    res.body() = parser.get().body().empty() ? "{}" : kReply;
    res.keep_alive(parser.get().keep_alive());
    res.prepare_payload();
    http::write(socket, res, ec);
    if (ec || !res.keep_alive()) return;
  }
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) return 2;
  boost::asio::io_context io;
  tcp::acceptor acceptor(io, {boost::asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(std::atoi(argv[1]))});
  for (;;) {
    tcp::socket socket(io);
    acceptor.accept(socket);
    std::thread(serve, std::move(socket)).detach();
  }
}
#endif
