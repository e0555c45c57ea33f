// TCP transport on Boost.Asio (private).
//
// One listener serves peers and clients; a Hello frame says which a connection is.
// Each peer gets one persistent outbound connection that this node writes its Raft
// messages and digest reports to; everything queued while a write is in progress goes out in the next
// single gathered write (coalescing). A lost connection is re-dialled with exponential
// backoff and jitter. Each peer's queue is bounded in bytes: when it is full, new
// messages to that peer are dropped and counted (Raft retransmits what matters).
// With keepalives on, every peer link carries at least a Ping each keepalive interval,
// and a peer whose link to us stays silent for the silence timeout is reported lost and
// our link to it redialled, instead of waiting on TCP. A client connection whose Hello
// offers wire::kFeatureClientKeepalive gets each of its Pings answered with a Ping (on the
// io thread, through the connection's bounded reply queue), so the client can judge the
// node's silence by its own bound; the node never pings a client unasked.
// Snapshots travel as a sequence of SnapshotChunk frames and are reassembled before
// delivery. The receiver acknowledges each chunk (SnapshotAck, on the same connection)
// with how many bytes it holds; the sender keeps a bounded window in flight, and after a
// lost connection resumes from the acknowledged offset instead of from the start. The
// core re-sending a snapshot that is already streaming does not restart the stream.
//
// One io thread runs every socket; frames are encoded on the sender's thread. When a
// peer's connection is idle (nothing queued, no write in progress) the sending thread
// writes the frames itself with one non-blocking sendmsg, saving the hand-off to the io
// thread and its wake-up on the commit path; whatever the socket does not take is queued
// for the io thread in order.
//
// The implementation's parts: asio_impl.h.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "rlr/log.h"
#include "transport/transport.h"
#include "wire/client_codec.h"

namespace rlr::transport {

/// Where client replies go; one per client connection. Thread-safe.
class ClientStream {
 public:
  virtual ~ClientStream() = default;
  /// Queues a reply; false when the connection is closed or its queue is full.
  virtual bool send(const wire::ClientReply& reply) = 0;
  [[nodiscard]] virtual bool open() const = 0;
};

/// Serves client requests (implemented by the node's client service).
class ClientHandler {
 public:
  virtual ~ClientHandler() = default;
  /// Called on the io thread; must not block. Replies through `stream`, from any thread.
  virtual void on_client_request(wire::ClientRequest request,
                                 std::shared_ptr<ClientStream> stream) = 0;
};

struct AsioOptions {
  std::string cluster_id;
  NodeId self;
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 0;  ///< 0: any free port (see bound_port())
  std::string auth_token;
  std::size_t max_frame_bytes = 64U << 20;
  std::size_t max_queue_bytes = 64U << 20;  ///< per peer
  std::size_t snapshot_chunk_bytes = 1U << 20;
  /// Unacknowledged snapshot chunks in flight per peer (the receiver acks each chunk).
  std::size_t snapshot_window_chunks = 4;
  std::uint32_t handshake_timeout_ms = 5000;
  std::uint32_t backoff_min_ms = 20;
  std::uint32_t backoff_max_ms = 2000;
  /// Peer-link liveness; 0 turns it off. A connected outbound link sends a Ping every
  /// `keepalive_interval_ms` (to a peer that understands it: wire::kFeatureKeepalive), so
  /// the acceptor hears from the dialer at least that often whatever Raft has to say.
  std::uint32_t keepalive_interval_ms = 0;
  /// A link from a peer that delivered nothing (not even a Ping) for this long is closed
  /// as if the peer had gone (Inbox::peer_lost, so a follower stops trusting a silent
  /// leader), and this node's own link to that peer is redialled at once: a path that
  /// went silent (a partition, a paused process) is not left to TCP's retransmission
  /// timers. Silence is judged on received bytes only, so a link busy with a backlog on
  /// a slow path is never mistaken for a silent one. A dial (connect and handshake) that gets no answer in time is
  /// abandoned and retried without backoff; its deadline is 2 x keepalive_interval_ms,
  /// doubling after each dial that missed it up to this timeout, so a link comes back
  /// within about one deadline once the path heals, and a path that is merely slow is
  /// not dialled into a storm. The sockets' TCP_USER_TIMEOUT is set to it too. Needs
  /// keepalive_interval_ms; 0: off.
  std::uint32_t silence_timeout_ms = 0;
  /// Where the transport's log lines go (component "transport"); null: nowhere.
  std::shared_ptr<LogSink> log_sink;
};

struct TransportStats {
  std::uint64_t frames_sent = 0;
  std::uint64_t writes = 0;            ///< gathered writes (frames_sent / writes = coalescing)
  std::uint64_t dropped_queue_full = 0;
  std::uint64_t connections_refused = 0;  ///< bad handshake, wrong cluster, bad token, ...
  std::uint64_t frames_rejected = 0;      ///< malformed frames (the connection was closed)
  std::uint64_t snapshot_bytes_sent = 0;  ///< snapshot data queued, resends included
  std::uint64_t snapshot_resumes = 0;     ///< transfers resumed mid-way after a reconnect
  std::uint64_t direct_writes = 0;        ///< writes made by the sending thread (idle connection)
  std::uint64_t links_silent = 0;         ///< peer links closed because nothing arrived in time
  std::uint64_t dials_timed_out = 0;      ///< dial attempts abandoned for want of an answer
};

class AsioTransport final : public Transport {
 public:
  AsioTransport(AsioOptions options, ClientHandler* clients);
  ~AsioTransport() override;
  AsioTransport(const AsioTransport&) = delete;
  AsioTransport& operator=(const AsioTransport&) = delete;

  /// Binds the listener and starts the io thread. Errors: IoError (address in use, ...).
  [[nodiscard]] Status start(Inbox& inbox) override;
  void send(std::vector<core::Message>& msgs) override;
  void send_digests(wire::DigestReport report) override;
  void set_peer(NodeId id, const std::string& address) override;
  void stop() override;

  [[nodiscard]] std::uint16_t bound_port() const { return bound_port_.load(); }
  [[nodiscard]] TransportStats stats() const;
  [[nodiscard]] std::vector<PeerTraffic> traffic() const override;
  [[nodiscard]] std::uint64_t frames_refused() const override;

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
  std::atomic<std::uint16_t> bound_port_{0};
};

}  // namespace rlr::transport
