// A stand-in for a node on the client protocol, for client tests that need a node to
// misbehave in one precise way: it completes the handshake (offering the client
// keepalive), answers Pings and GetLeader (naming whichever leader it is told to), and
// swallows every other request without a reply.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio.hpp>

#include "wire/client_codec.h"

namespace fake {

namespace asio = boost::asio;
namespace wire = rlr::wire;
using tcp = asio::ip::tcp;

class FakeNode {
 public:
  /// Node `id` of cluster `cluster_id`, on 127.0.0.1 (any free port).
  FakeNode(std::uint64_t id, const std::string& cluster_id)
      : id_(id), tag_(wire::cluster_tag(cluster_id)), acceptor_(io_) {
    const tcp::endpoint ep(asio::ip::make_address("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen();
    accept();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~FakeNode() {
    asio::post(io_, [this] {
      boost::system::error_code ec;
      acceptor_.close(ec);
      for (auto& c : conns_) c->sock.close(ec);
    });
    io_.stop();
    thread_.join();
  }
  FakeNode(const FakeNode&) = delete;
  FakeNode& operator=(const FakeNode&) = delete;

  [[nodiscard]] std::string address() const {
    return "127.0.0.1:" + std::to_string(acceptor_.local_endpoint().port());
  }
  /// GetLeader answers name this leader (kNoNode-like 0: none).
  void name_leader(std::uint64_t id, const std::string& address) {
    std::lock_guard lock(mu_);
    leader_id_ = id;
    leader_address_ = address;
  }
  /// The GetLeader answers on the first `n` connections wait `delay` first.
  void delay_first_answers(int n, std::chrono::milliseconds delay) {
    slow_connections_ = n;
    delay_ = delay;
  }
  [[nodiscard]] int proposals_swallowed() const { return swallowed_.load(); }

 private:
  struct Conn {
    explicit Conn(asio::io_context& io) : sock(io), reader(0, 1U << 20) {}
    tcp::socket sock;
    wire::FrameReader reader;
    std::array<std::uint8_t, 4096> buf{};
    bool slow = false;
  };

  void accept() {
    acceptor_.async_accept([this](boost::system::error_code ec, tcp::socket s) {
      if (ec) return;
      auto c = std::make_shared<Conn>(io_);
      c->sock = std::move(s);
      c->slow = slow_connections_.fetch_sub(1) > 0;
      conns_.push_back(c);
      read(c);
      accept();
    });
  }

  void send(const std::shared_ptr<Conn>& c, wire::Frame f) {
    auto frame = std::make_shared<wire::Frame>(std::move(f));
    asio::async_write(c->sock, asio::buffer(frame->data(), frame->size()),
                      [c, frame](boost::system::error_code, std::size_t) {});
  }

  void read(const std::shared_ptr<Conn>& c) {
    c->sock.async_read_some(asio::buffer(c->buf), [this, c](boost::system::error_code ec, std::size_t n) {
      if (ec) return;
      c->reader.feed(std::span<const std::uint8_t>(c->buf.data(), n));
      for (;;) {
        auto item = c->reader.next();
        if (!item || !item.value()) break;
        handle(c, *item.value());
      }
      read(c);
    });
  }

  void handle(const std::shared_ptr<Conn>& c, const wire::FrameReader::Item& it) {
    switch (it.header.type) {
      case wire::FrameType::Hello: {
        wire::HelloAck ack;
        ack.accepted = true;
        ack.node_id = rlr::NodeId{id_};
        ack.features = wire::kFeatureClientKeepalive;
        send(c, wire::encode_hello_ack(ack, tag_));
        c->reader.expect_tag(tag_);
        return;
      }
      case wire::FrameType::Ping:
        send(c, wire::encode_ping(tag_));
        return;
      case wire::FrameType::ClientRequest: {
        auto req = wire::decode_client_request(it.payload);
        if (!req) return;
        if (!std::holds_alternative<wire::GetLeaderRequest>(req.value().body)) {
          ++swallowed_;
          return;
        }
        wire::ClientReply reply;
        reply.request_id = req.value().request_id;
        {
          std::lock_guard lock(mu_);
          reply.leader = rlr::NodeId{leader_id_};
          reply.leader_address = leader_address_;
        }
        if (!c->slow) {
          send(c, wire::encode_client_reply(reply, tag_));
          return;
        }
        auto t = std::make_shared<asio::steady_timer>(io_, delay_);
        t->async_wait([this, c, t, reply](boost::system::error_code ec) {
          if (!ec) send(c, wire::encode_client_reply(reply, tag_));
        });
        return;
      }
      default:
        return;
    }
  }

  const std::uint64_t id_;
  const std::uint64_t tag_;
  std::mutex mu_;
  std::uint64_t leader_id_ = 0;  // guarded by mu_
  std::string leader_address_;   // guarded by mu_
  std::atomic<int> slow_connections_{0};
  std::chrono::milliseconds delay_{0};
  std::atomic<int> swallowed_{0};
  asio::io_context io_;
  tcp::acceptor acceptor_;
  std::vector<std::shared_ptr<Conn>> conns_;  // io thread only
  std::thread thread_;
};

}  // namespace fake
