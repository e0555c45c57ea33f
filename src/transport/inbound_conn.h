// A connection accepted from a peer or a client (private to AsioTransport, asio_impl.h).
//
// The first frame must be a Hello within the handshake timeout; it says whether a node
// (cluster, token and a known node id checked) or a client is calling, and the HelloAck
// answers. A node's connection then carries its Raft frames (core messages and digest
// reports) and snapshot chunks to this node; this node sends back only snapshot acks
// and, with keepalives on, judges the link by what it hears. A client's connection
// carries requests (and Pings, when its Hello offered them) and this node's replies.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "transport/asio_impl.h"
#include "transport/frame_queue.h"

namespace rlr::transport {

class AsioTransport::Impl::Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(Impl& impl, tcp::socket sock)
      : impl_(impl), sock_(std::move(sock)), timer_(impl.io),
        reader_(0, std::min<std::size_t>(impl.opts.max_frame_bytes, 1U << 16)),
        queue_(impl.opts.max_queue_bytes) {}

  /// io thread: arms the handshake deadline and starts reading.
  void start();
  /// io thread: closes the socket and forgets the connection; `why` (if not empty) is
  /// logged.
  void close(const std::string& why);
  /// Any thread: queues `f` for the other side; false when closed or the queue is full.
  bool send(wire::Frame f);
  [[nodiscard]] bool is_open() const { return !closed_flag_.load(); }

 private:
  enum class Kind { Unknown, Node, Client };
  using Clock = std::chrono::steady_clock;

  std::string remote() const;
  void read();
  /// False when the connection was closed.
  bool handle(wire::FrameReader::Item item);

  /// A core message or a digest report from the node of this connection. False when
  /// the connection was closed.
  template <class M>
  bool on_peer_message(M m);
  bool handshake(const wire::FrameReader::Item& item);

  /// io thread: a peer that promised Pings (its Hello) and went quiet for the silence
  /// timeout is gone as far as this node can tell: the connection is closed and the
  /// core told (peer_lost), as when a crashed process's socket closes.
  void watch_silence();
  /// True while no configuration has given this node peers: it then accepts nodes it
  /// does not know, since it waits to be added to a cluster by a leader it never met.
  bool impl_accept_unknown() const;
  /// Counts a malformed frame, closes the connection; false.
  bool reject(const std::string& why);
  void flush();
  /// Where client replies to this connection go.
  std::shared_ptr<ClientStream> stream();

  Impl& impl_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  wire::FrameReader reader_;
  FrameQueue queue_;
  static constexpr std::size_t kReadBytes = 64U << 10;  ///< least room offered to a read
  std::vector<wire::Frame> frames_;
  std::vector<asio::const_buffer> buffers_;
  Kind kind_ = Kind::Unknown;
  NodeId peer_;
  std::shared_ptr<ClientStream> stream_;  ///< a client's connection: where replies go (io thread)
  std::shared_ptr<Impl::Received> rx_;  ///< a node's connection: what arrived from it
  bool writing_ = false;
  bool closed_ = false;
  bool keepalive_ = false;  ///< a node link whose dialer sends Pings (its Hello said so)
  bool client_pings_ = false;  ///< a client whose Hello offered Pings: each is answered
  Clock::time_point last_heard_;
  std::atomic<bool> closed_flag_{false};
};

}  // namespace rlr::transport
