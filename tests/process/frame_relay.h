// A TCP relay for client-protocol tests that understands frames: it forwards whole
// frames in both directions, counts the Pings each way, can hide the node's client
// keepalive feature (as a node that predates it would answer), and can freeze the path.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <span>
#include <memory>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "wire/frame.h"

namespace relay {

namespace asio = boost::asio;
namespace wire = rlr::wire;
using tcp = asio::ip::tcp;

class FrameRelay {
 public:
  /// Listens on 127.0.0.1 (any free port) and forwards every connection to `target`.
  explicit FrameRelay(std::uint16_t target) : target_(target), acceptor_(io_) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FrameRelay() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto& l : links_) l->close();
    });
    io_.stop();
    thread_.join();
  }
  FrameRelay(const FrameRelay&) = delete;
  FrameRelay& operator=(const FrameRelay&) = delete;

  [[nodiscard]] std::uint16_t port() const { return acceptor_.local_endpoint().port(); }
  /// HelloAcks reach the client without wire::kFeatureClientKeepalive (an older node).
  void hide_client_keepalive(bool on) { hide_ = on; }
  /// While frozen, bytes (and closes) are held in both directions and delivered on thaw:
  /// the path goes silent the way a paused process or a partition looks to TCP.
  void freeze(bool on) { frozen_ = on; }
  [[nodiscard]] int connections() const { return connections_.load(); }
  [[nodiscard]] int pings_to_node() const { return pings_up_.load(); }
  [[nodiscard]] int pings_to_client() const { return pings_down_.load(); }

 private:
  struct Pump {
    std::array<std::uint8_t, 16384> buf{};
    std::vector<std::uint8_t> pending;  ///< bytes of a frame not yet complete
    std::vector<std::uint8_t> out;      ///< whole frames being written
  };

  struct Link : std::enable_shared_from_this<Link> {
    Link(FrameRelay& r, tcp::socket s) : relay(r), client(std::move(s)), node(r.io_) {}
    FrameRelay& relay;
    tcp::socket client;
    tcp::socket node;
    Pump up;    // client -> node
    Pump down;  // node -> client
    bool closed = false;

    void close() {
      if (closed) return;
      closed = true;
      boost::system::error_code ec;
      client.close(ec);
      node.close(ec);
    }
    template <class F>
    void when_thawed(F then) {
      if (!relay.frozen_.load()) return then();
      auto hold = std::make_shared<asio::steady_timer>(relay.io_, std::chrono::milliseconds(5));
      hold->async_wait([self = shared_from_this(), then, hold](boost::system::error_code ec) {
        if (ec || self->closed) return self->close();
        self->when_thawed(then);
      });
    }
    void start() {
      node.async_connect(tcp::endpoint(asio::ip::make_address("127.0.0.1"), relay.target_),
                         [self = shared_from_this()](boost::system::error_code ec) {
                           if (ec) return self->close();
                           self->pump(self->client, self->node, self->up, true);
                           self->pump(self->node, self->client, self->down, false);
                         });
    }
    /// Reads from `from`, cuts whole frames, rewrites or counts them, writes them to `to`.
    void pump(tcp::socket& from, tcp::socket& to, Pump& p, bool upward) {
      from.async_read_some(asio::buffer(p.buf), [self = shared_from_this(), &from, &to, &p, upward](
                                                    boost::system::error_code ec, std::size_t n) {
        if (ec || self->closed) return self->when_thawed([self] { self->close(); });
        p.pending.insert(p.pending.end(), p.buf.begin(), p.buf.begin() + static_cast<std::ptrdiff_t>(n));
        p.out.clear();
        std::size_t at = 0;
        while (p.pending.size() - at >= wire::kHeaderBytes) {
          const std::uint8_t* h = p.pending.data() + at;
          const std::size_t len = (std::size_t{h[16]} << 24) | (std::size_t{h[17]} << 16) |
                                  (std::size_t{h[18]} << 8) | std::size_t{h[19]};
          if (p.pending.size() - at < wire::kHeaderBytes + len) break;
          const auto type = static_cast<wire::FrameType>((h[6] << 8) | h[7]);
          std::uint64_t tag = 0;
          for (int i = 8; i < 16; ++i) tag = (tag << 8) | h[i];
          const std::span<const std::uint8_t> payload(h + wire::kHeaderBytes, len);
          if (type == wire::FrameType::Ping) ++(upward ? self->relay.pings_up_ : self->relay.pings_down_);
          auto ack = !upward && type == wire::FrameType::HelloAck && self->relay.hide_.load()
                         ? wire::decode_hello_ack(payload)
                         : rlr::Result<wire::HelloAck>(rlr::Status{rlr::ErrorCode::NotFound, "kept as it is"});
          if (ack) {
            ack.value().features &= ~wire::kFeatureClientKeepalive;
            const wire::Frame f = wire::encode_hello_ack(ack.value(), tag);
            p.out.insert(p.out.end(), f.begin(), f.end());
          } else {
            p.out.insert(p.out.end(), h, h + wire::kHeaderBytes + len);
          }
          at += wire::kHeaderBytes + len;
        }
        p.pending.erase(p.pending.begin(), p.pending.begin() + static_cast<std::ptrdiff_t>(at));
        self->when_thawed([self, &from, &to, &p, upward] {
          asio::async_write(to, asio::buffer(p.out), [self, &from, &to, &p, upward](boost::system::error_code e,
                                                                                   std::size_t) {
            if (e || self->closed) return self->close();
            self->pump(from, to, p, upward);
          });
        });
      });
    }
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      ++connections_;
      auto l = std::make_shared<Link>(*this, std::move(s));
      links_.push_back(l);
      l->start();
      accept();
    });
  }

  const std::uint16_t target_;
  std::atomic<bool> hide_{false};
  std::atomic<bool> frozen_{false};
  std::atomic<int> connections_{0};
  std::atomic<int> pings_up_{0};
  std::atomic<int> pings_down_{0};
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Link>> links_;  // io thread only
  std::thread thread_;
};

}  // namespace relay
