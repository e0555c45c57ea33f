#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include "fault_proxy.h"

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <optional>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

namespace rlrbench {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

struct LinkProxies::Impl {
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work{asio::make_work_guard(io)};
  std::thread thread;
  std::mutex mu;
  std::set<std::uint64_t> isolated;  // guarded by mu

  bool cut(std::uint64_t a, std::uint64_t b) {
    std::lock_guard lock(mu);
    return isolated.count(a) != 0 || isolated.count(b) != 0;
  }

  struct Proxy;
  std::vector<std::shared_ptr<Proxy>> proxies;  // io thread after start

  /// One proxied connection.
  struct Link : std::enable_shared_from_this<Link> {
    Link(Impl& i, std::uint64_t f, std::uint64_t t, tcp::socket s) : impl(i), from(f), to(t), in(std::move(s)), out(i.io) {}
    Impl& impl;
    std::uint64_t from;
    std::uint64_t to;
    tcp::socket in;
    tcp::socket out;
    std::array<std::uint8_t, 64 * 1024> up{};
    std::array<std::uint8_t, 64 * 1024> down{};
    bool closed = false;

    void close() {
      if (closed) return;
      closed = true;
      boost::system::error_code ec;
      in.close(ec);
      out.close(ec);
    }
    /// Runs `then` once the link is not cut; a timer per wait (both directions may wait).
    void when_open(std::function<void()> then) {
      if (!impl.cut(from, to)) return then();
      auto t = std::make_shared<asio::steady_timer>(impl.io, std::chrono::milliseconds(1));
      t->async_wait([self = shared_from_this(), then = std::move(then), t](boost::system::error_code ec) mutable {
        if (ec || self->closed) return self->close();
        self->when_open(std::move(then));
      });
    }
    void start(std::uint16_t target) {
      boost::system::error_code ignored;
      in.set_option(tcp::no_delay(true), ignored);
      out.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), target),
                        [self = shared_from_this()](boost::system::error_code ec) {
                          if (ec) return self->close();
                          boost::system::error_code e;
                          self->out.set_option(tcp::no_delay(true), e);
                          self->pump(self->in, self->out, self->up);
                          self->pump(self->out, self->in, self->down);
                        });
    }
    template <std::size_t N>
    void pump(tcp::socket& src, tcp::socket& dst, std::array<std::uint8_t, N>& buf) {
      src.async_read_some(asio::buffer(buf), [self = shared_from_this(), &src, &dst, &buf](
                                                 boost::system::error_code ec, std::size_t n) {
        // Neither data nor a close crosses a cut.
        if (ec || self->closed) return self->when_open([self] { self->close(); });
        self->when_open([self, &src, &dst, &buf, n] {
          asio::async_write(dst, asio::buffer(buf.data(), n),
                            [self, &src, &dst, &buf](boost::system::error_code e, std::size_t) {
                              if (e || self->closed) return self->close();
                              self->pump(src, dst, buf);
                            });
        });
      });
    }
  };

  struct Proxy {
    Proxy(Impl& i, std::uint64_t f, std::uint64_t t, std::uint16_t target_port)
        : impl(i), from(f), to(t), target(target_port), acceptor(i.io) {}
    Impl& impl;
    std::uint64_t from;
    std::uint64_t to;
    std::uint16_t target;
    tcp::acceptor acceptor;
    void accept() {
      acceptor.async_accept([this](boost::system::error_code ec, tcp::socket s) {
        if (ec) return;
        std::make_shared<Link>(impl, from, to, std::move(s))->start(target);
        accept();
      });
    }
  };
};

LinkProxies::LinkProxies() : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::thread([this] { impl_->io.run(); });
}

LinkProxies::~LinkProxies() {
  impl_->work.reset();
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t LinkProxies::add(std::uint64_t from, std::uint64_t to, std::uint16_t target_port) {
  auto p = std::make_shared<Impl::Proxy>(*impl_, from, to, target_port);
  boost::system::error_code ec;
  const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
  p->acceptor.open(ep.protocol(), ec);
  if (!ec) p->acceptor.bind(ep, ec);
  if (!ec) p->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return 0;
  const std::uint16_t port = p->acceptor.local_endpoint().port();
  std::promise<void> done;
  asio::post(impl_->io, [this, p, &done] {
    impl_->proxies.push_back(p);
    p->accept();
    done.set_value();
  });
  done.get_future().wait();
  return port;
}

void LinkProxies::isolate(std::uint64_t node, bool cut) {
  std::lock_guard lock(impl_->mu);
  if (cut) {
    impl_->isolated.insert(node);
  } else {
    impl_->isolated.erase(node);
  }
}

}  // namespace rlrbench
