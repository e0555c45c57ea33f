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
//
// Liveness (keepalive_interval > 0): the Hello offers wire::kFeatureClientKeepalive. When
// the node's HelloAck has it too, the connection sends a Ping whenever it has heard
// nothing for a keepalive interval (at most one per interval, and none while unsent
// frames are queued: those will be answered), the node echoes it, and a connection that
// has received no byte for silence_timeout is closed as silent (on_closed with
// Unavailable, silent() true). Silence is judged on received bytes only, and not while
// reading is paused (the consumer's back-pressure is not the node's silence). With a node
// that lacks the feature, nothing is sent and silence is not judged. The handshake itself
// must complete within connect_timeout.
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "rlr/client.h"
#include "rlr/status.h"
#include "wire/client_codec.h"

namespace rlr::client {

namespace asio = boost::asio;

struct ConnectionSettings {
  std::string cluster_id;
  std::string token;
  std::size_t max_frame_bytes = 64U << 20;
  std::size_t max_queue_bytes = 64U << 20;
  std::chrono::milliseconds connect_timeout{5000};  ///< connect + handshake
  /// 0: no keepalives. Otherwise see the liveness rule above; REQUIRES silence_timeout
  /// >= 2 x keepalive_interval when both are set.
  std::chrono::milliseconds keepalive_interval{0};
  std::chrono::milliseconds silence_timeout{0};
};

/// The settings of a connection made for `options`: its frame and queue limits, its
/// keepalives (ClientOptions::keepalive_interval, the silence timeout with its default
/// applied) and its handshake deadline: request_timeout, or with liveness on at most the
/// silence timeout (the HelloAck is the first thing a node owes).
[[nodiscard]] ConnectionSettings settings_for(const ClientOptions& options);

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
  /// Closed because nothing arrived in time: the handshake's deadline passed, or the
  /// node went silent for silence_timeout while keepalives were agreed.
  [[nodiscard]] bool silent() const { return silent_; }
  /// Keepalives were agreed in the handshake (both sides have the feature).
  [[nodiscard]] bool keepalive() const { return keepalive_; }

 private:
  void on_connected();
  void read_ack();
  void read();
  void handle_bytes(std::size_t n);
  void flush();
  void fail(Status why);
  /// Liveness: pings when idle, closes when silent; re-arms itself until closed.
  void watch_liveness();

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
  std::deque<wire::Frame> queue_;  // unsent frames; the first gather_.size() are being written
  std::size_t queued_bytes_ = 0;
  /// Most frames one write gathers (IOV_MAX is 1024 on Linux).
  static constexpr std::size_t kMaxGather = 512;
  std::vector<asio::const_buffer> gather_;
  wire::Frame hello_;
  bool writing_ = false;
  bool reading_ = false;
  bool paused_ = false;
  bool ready_ = false;
  bool closed_ = false;
  bool keepalive_ = false;  ///< agreed in the handshake
  bool silent_ = false;
  asio::steady_timer liveness_;
  std::chrono::steady_clock::time_point last_heard_;  ///< the last byte received
  std::chrono::steady_clock::time_point last_ping_;   ///< the last Ping queued
  NodeId node_id_;
};

}  // namespace rlr::client
