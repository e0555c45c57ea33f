#include "admin_server.h"

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <atomic>
#include <chrono>
#include <thread>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "health.h"
#include "prometheus_text.h"
#include "status_history.h"
#include "status_page.h"

namespace rlr::admin {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

class AdminServer::Impl {
 public:
  Impl(Node& node, AdminOptions options)
      : node_(node), options_(std::move(options)), disk_(options_.data_dir), acceptor_(io_), sampler_(io_),
        retry_(io_) {}

  Status bind() {
    boost::system::error_code ec;
    const auto ip = asio::ip::make_address(options_.listen.host, ec);
    if (ec) return Status{ErrorCode::InvalidArgument, "admin listen: " + ec.message()};
    const tcp::endpoint ep(ip, options_.listen.port);
    acceptor_.open(ep.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(ep, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return Status{ErrorCode::IoError,
                    "admin server cannot listen on " + options_.listen.to_string() + ": " + ec.message()};
    }
    bound_ = Address{options_.listen.host, acceptor_.local_endpoint().port()};
    return Status::ok();
  }

  void run() {
    accept();
    sample();
    thread_ = std::thread([this] {
      // A handler that throws (out of memory, a formatting error) must not end the
      // process that runs the node: drop it and keep serving.
      for (;;) {
        try {
          io_.run();
          return;
        } catch (...) {
          ++handler_failures_;
        }
      }
    });
  }

  void stop() {
    if (stopped_.exchange(true)) return;
    io_.stop();
    if (thread_.joinable()) thread_.join();
    // The thread is gone: nothing else touches these now. Pending sessions are destroyed
    // with io_ (they only decrement sessions_, declared before it).
    boost::system::error_code ec;
    acceptor_.close(ec);
    sampler_.cancel();
    retry_.cancel();
  }

  [[nodiscard]] Address address() const { return bound_; }

 private:
  class Session;

  void accept();

  /// Once a second: a sample for the status page's charts.
  void sample() {
    history_.add(node_.metrics(), std::chrono::system_clock::now());
    sampler_.expires_after(std::chrono::seconds(1));
    sampler_.async_wait([this](boost::system::error_code ec) {
      if (!ec) sample();
    });
  }

  http::response<http::string_body> answer(const http::request<http::string_body>& req) {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, "rlr-node");
    res.set(http::field::cache_control, "no-store");
    const auto reply = [&](http::status status, const char* type, std::string body) {
      res.result(status);
      res.set(http::field::content_type, type);
      res.body() = req.method() == http::verb::head ? std::string() : std::move(body);
      res.prepare_payload();
      return res;
    };
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      res.set(http::field::allow, "GET, HEAD");
      return reply(http::status::method_not_allowed, "text/plain", "only GET and HEAD\n");
    }
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (target == "/metrics") {
      return reply(http::status::ok, kPrometheusContentType, to_prometheus_text({node_.metrics()}));
    }
    if (target == "/healthz" || target == "/readyz") {
      const NodeMetrics m = node_.metrics();
      Verdict v = check_health(m, disk_);
      if (target == "/readyz") v = check_ready(node_, m, v, options_.ready_max_lag);
      return reply(v.ok ? http::status::ok : http::status::service_unavailable, "text/plain; charset=utf-8",
                   v.detail);
    }
    if (target == "/") {
      const ClusterInfo ci = node_.cluster_info();
      const NodeMetrics m = node_.metrics();
      const auto points = history_.points();
      return reply(http::status::ok, "text/html; charset=utf-8",
                   render_status_page(StatusInputs{ci, m, points, options_.ready_max_lag}));
    }
    return reply(http::status::not_found, "text/plain", "not found: try /, /metrics, /healthz or /readyz\n");
  }

  Node& node_;
  const AdminOptions options_;
  DiskProbe disk_;            // io thread only
  StatusHistory history_;     // io thread only
  std::size_t sessions_ = 0;  // io thread only; before io_, whose destructor ends sessions
  std::uint64_t handler_failures_ = 0;  // io thread only
  asio::io_context io_;
  tcp::acceptor acceptor_;
  asio::steady_timer sampler_;
  asio::steady_timer retry_;  ///< backs accept() off after an error (out of descriptors)
  Address bound_;
  std::atomic<bool> stopped_{false};
  std::thread thread_;
};

/// One connection: requests in turn, each answered before the next is read.
class AdminServer::Impl::Session : public std::enable_shared_from_this<Session> {
 public:
  Session(Impl& server, tcp::socket socket) : server_(server), stream_(std::move(socket)) { ++server_.sessions_; }
  ~Session() { --server_.sessions_; }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  void start() { read(); }

 private:
  static constexpr std::size_t kMaxRequestBytes = 8 * 1024;
  static constexpr std::size_t kMaxRequestsPerConnection = 100;

  void read() {
    parser_.emplace();
    parser_->header_limit(kMaxRequestBytes);
    parser_->body_limit(kMaxRequestBytes);
    stream_.expires_after(std::chrono::seconds(10));
    http::async_read(stream_, buffer_, *parser_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec) {
        self->close();
        return;
      }
      self->respond(self->parser_->release());
    });
  }

  void respond(http::request<http::string_body> req) {
    response_ = server_.answer(req);
    // A connection serves a bounded number of requests, so a few clients cannot keep
    // every slot forever by sending one request just before each idle timeout.
    if (++served_ >= kMaxRequestsPerConnection) response_.keep_alive(false);
    stream_.expires_after(std::chrono::seconds(10));
    http::async_write(stream_, response_, [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
      if (ec || !self->response_.keep_alive()) {
        self->close();
        return;
      }
      self->read();
    });
  }

  void close() {
    boost::system::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.socket().close(ec);
  }

  Impl& server_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_{kMaxRequestBytes};
  std::optional<http::request_parser<http::string_body>> parser_;
  http::response<http::string_body> response_;
  std::size_t served_ = 0;
};

void AdminServer::Impl::accept() {
  acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket socket) {
    if (ec) {
      if (ec == asio::error::operation_aborted || stopped_) return;
      // Out of descriptors, or the like: try again shortly rather than spin.
      retry_.expires_after(std::chrono::milliseconds(100));
      retry_.async_wait([this](boost::system::error_code e) {
        if (!e) accept();
      });
      return;
    }
    if (sessions_ >= kMaxConnections) {
      boost::system::error_code ignored;
      socket.close(ignored);  // over the bound: the client retries
    } else {
      std::make_shared<Session>(*this, std::move(socket))->start();
    }
    accept();
  });
}

Result<std::unique_ptr<AdminServer>> AdminServer::start(Node& node, AdminOptions options) {
  auto impl = std::make_unique<Impl>(node, std::move(options));
  if (Status s = impl->bind(); !s) return s;
  impl->run();
  return std::make_unique<AdminServer>(Key{}, std::move(impl));
}

AdminServer::AdminServer(Key /*key*/, std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AdminServer::~AdminServer() { stop(); }
Address AdminServer::address() const { return impl_->address(); }
void AdminServer::stop() { impl_->stop(); }

}  // namespace rlr::admin
