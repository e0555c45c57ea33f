// The client side of one TCP connection to a node (private to the client library).
//
// A Connection lives on an io_context driven by one thread (the owner's). It connects,
// performs the client handshake (Hello with PeerKind::Client, then HelloAck), then sends
// ClientRequest frames and hands every ClientReply to its owner. Everything here runs on
// that io thread; none of it blocks.
//
// Limits: a frame larger than max_frame_bytes is refused before it is sent and a larger
// incoming frame closes the connection; the queue of unsent frames is bounded
// (max_queue_bytes): send() returns Busy beyond it.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio.hpp>

#include "rlr/status.h"
#include "wire/wire.h"

namespace rlr::client {

namespace asio = boost::asio;

/// Splits "host:port" (or "[v6]:port"). False when it is not of that form or the port is
/// not in 1..65535.
[[nodiscard]] bool split_host_port(const std::string& address, std::string& host,
                                   std::uint16_t& port);

struct ConnectionSettings {
  std::string cluster_id;
  std::string token;
  std::size_t max_frame_bytes = 64U << 20;
  std::size_t max_queue_bytes = 64U << 20;
  std::chrono::milliseconds connect_timeout{5000};  ///< connect + handshake
};

class Connection : public std::enable_shared_from_this<Connection> {
 public:
  struct Handlers {
    std::function<void(Connection&)> on_ready;                   ///< handshake accepted
    std::function<void(Connection&, wire::ClientReply)> on_reply;  ///< one reply frame
    /// The connection failed or the peer closed it. Unavailable for network trouble;
    /// WrongCluster / InvalidArgument when the node refused the handshake. Called at
    /// most once, and never after close().
    std::function<void(Connection&, const Status&)> on_closed;
  };

  /// Creates an idle connection; start() begins connecting.
  [[nodiscard]] static std::shared_ptr<Connection> create(asio::io_context& io,
                                                          const ConnectionSettings& settings,
                                                          std::string address, Handlers handlers);
  Connection(asio::io_context& io, const ConnectionSettings& settings, std::string address,
             Handlers handlers);
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  /// io thread.
  void start();
  /// Encodes and queues a request. io thread. Errors: InvalidArgument (frame too big),
  /// Busy (queue full), Unavailable (closed).
  Status send(const wire::ClientRequest& request);
  /// Closes without calling on_closed. io thread.
  void close();
  /// Stops / resumes reading (back-pressure from a slow consumer). io thread.
  void pause_reading() { paused_ = true; }
  void resume_reading();

  [[nodiscard]] const std::string& address() const { return address_; }
  [[nodiscard]] bool ready() const { return ready_; }
  [[nodiscard]] bool closed() const { return closed_; }
  /// The id of the node at the other end (known once ready).
  [[nodiscard]] NodeId node_id() const { return node_id_; }

 private:
  void on_connected();
  void read_ack();
  void read();
  void handle_bytes(std::size_t n);
  void flush();
  void fail(Status why);

  asio::io_context& io_;
  ConnectionSettings settings_;
  std::string address_;
  Handlers handlers_;
  const std::uint64_t tag_;
  asio::ip::tcp::resolver resolver_;
  asio::ip::tcp::socket sock_;
  asio::steady_timer timer_;
  wire::FrameReader reader_;
  std::array<std::uint8_t, 65536> rbuf_{};
  std::deque<wire::Frame> queue_;
  std::size_t queued_bytes_ = 0;
  wire::Frame hello_;
  bool writing_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool ready_ = false;
  bool closed_ = false;
  NodeId node_id_;
};

}  // namespace rlr::client
