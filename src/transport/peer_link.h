// The outbound link from this node to one peer (private to AsioTransport, asio_impl.h).
//
// One persistent connection that this node writes its frames for the peer to: dialled
// (with a deadline when keepalives are on), Hello/HelloAck, then whatever is queued goes
// out in one gathered write per flush. What the peer sends back on it is snapshot acks
// only. A lost connection is redialled with exponential backoff and jitter. The snapshot
// being streamed to the peer lives here too (its methods: snapshot_stream.cpp).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "transport/asio_impl.h"
#include "transport/frame_queue.h"

namespace rlr::transport {

class AsioTransport::Impl::Peer : public std::enable_shared_from_this<Peer> {
 public:
  Peer(Impl& impl, NodeId id, std::string address)
      : impl_(impl), id_(id), address_(std::move(address)), queue_(impl.opts.max_queue_bytes),
        retry_(impl.io), liveness_(impl.io), reader_(impl.tag, impl.opts.max_frame_bytes) {}

  /// Any thread: sends `frames` at once when the connection is idle, else queues them.
  void send_batch(std::vector<wire::Frame>& frames);

  /// io thread.
  void begin() { connect(); }

  /// io thread.
  void close_for_good();

  /// io thread: the peer's link to us went silent, so this link is suspect too (it may
  /// look established through a path that drops everything): drop it and dial again.
  void restart_silent();

  /// io thread: the peer has just dialled us, so it listens again. A backoff wait (up to
  /// backoff_max_ms after a long outage) ends now: a restarted node must hear votes and
  /// acknowledgements at once, not after our next scheduled attempt.
  void dial_now();

  /// io thread: a new address takes effect at the next (re)connect.
  void set_address(std::string a);
  /// What was sent to this peer (any thread); the received side is filled elsewhere.
  [[nodiscard]] PeerTraffic sent() const {
    const FrameQueue::Counts c = queue_.counts();
    PeerTraffic t;
    t.peer = id_;
    t.frames_sent = c.frames;
    t.bytes_sent = c.bytes;
    t.frames_dropped = c.dropped;
    t.snapshots_sent = snapshots_sent_.load(std::memory_order_relaxed);
    return t;
  }

  // ---- snapshot streaming (snapshot_stream.cpp) ----
  /// io thread. Starts streaming the snapshot of `m`, or, when it is the snapshot already
  /// being streamed (the core sends it again when it heard nothing back for a while),
  /// lets that stream go on from where it is.
  void start_snapshot(core::Message m);
  /// io thread: the receiver reports how much of the snapshot it holds.
  void on_snapshot_ack(const wire::SnapshotAck& a);

 private:
  void connect();
  void dial(tcp::endpoint ep);
  void hello();
  void read_ack();
  /// Reads what the peer sends back on our outbound connection (snapshot acks only), and
  /// notices when it closes.
  void watch();
  void flush();
  /// io thread, while connected: a Ping every keepalive interval, so that the acceptor
  /// hears from this node at least that often whatever Raft has to say. Whether the
  /// path works is judged elsewhere: by the acceptor (silence on this link), by this
  /// node's side of the peer's link to it (silence there resets this link too, see
  /// restart_silent()), and by the kernel (TCP_USER_TIMEOUT on unacknowledged bytes).
  /// Not by answers on this link: behind a backlog on a slow path an answer can be late
  /// while the path is busy, not silent.
  void keep_alive();
  /// `silent`: the path stopped answering (rather than refusing): retry at once, since
  /// each such attempt already waited its time, and a healed path must not find us
  /// deep in a backoff.
  void fail(const std::string& why, bool loud = false, bool silent = false);
  /// Queues chunks of the outgoing snapshot while fewer than the window's worth are
  /// unacknowledged. io thread.
  void pump_snapshot();  // snapshot_stream.cpp

  Impl& impl_;
  NodeId id_;
  std::string address_;
  FrameQueue queue_;
  asio::steady_timer retry_;
  asio::steady_timer liveness_;  ///< the dial's deadline, then the keepalive tick
  std::unique_ptr<tcp::socket> sock_;
  /// Incremented by every dial and every failure: a handler of an older socket is stale.
  std::uint64_t gen_ = 0;
  std::uint32_t dial_deadline_ms_ = 0;  ///< the next dial's deadline; 0: the first one's
  bool peer_keepalive_ = false;  ///< the acceptor answers Pings (its HelloAck said so)
  wire::FrameReader reader_;
  std::array<std::uint8_t, 4096> rbuf_{};
  wire::Frame hello_frame_;
  std::vector<wire::Frame> writing_frames_;
  std::vector<asio::const_buffer> buffers_;
  std::uint32_t attempts_ = 0;
  bool retry_waiting_ = false;  ///< a backoff timer will call connect()
  bool connected_ = false;
  bool writing_ = false;
  bool closed_ = false;

  /// The snapshot this peer is being sent, and how far it got.
  struct OutgoingSnapshot {
    NodeId from;
    Term term;           ///< the leader's term, carried by every chunk
    LogIndex index;
    Term snap_term;
    core::Configuration config;
    std::shared_ptr<Bytes> data;
    std::uint64_t acked = 0;  ///< the receiver holds [0, acked)
    std::uint64_t next = 0;   ///< the next offset to queue
    bool sent_all = false;    ///< the last chunk is queued
  };
  std::optional<OutgoingSnapshot> snap_;
  std::atomic<std::uint64_t> snapshots_sent_{0};
};

}  // namespace rlr::transport
