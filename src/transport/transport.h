// The transport seam between the node runtime and the network (private).
// Implementations: LocalTransport (in process, fault injection, for tests) and
// AsioTransport (TCP, production).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/message.h"
#include "rlr/status.h"
#include "wire/digest_report.h"

namespace rlr::transport {

/// Receives what arrives from peers.
class Inbox {
 public:
  virtual ~Inbox() = default;
  /// Called on a transport thread with a message addressed to this node. Must not block
  /// for long (the runtime only queues it).
  virtual void deliver(core::Message m) = 0;
  /// Called on a transport thread with a peer's digest report addressed to this node
  /// (never handed to deliver()). Must not block for long. An inbox that does not check
  /// for divergence ignores them.
  virtual void deliver_digests(wire::DigestReport /*report*/) {}
  /// Called on a transport thread when an established connection to or from `peer`
  /// closed or failed (not when this node closed it). Must not block.
  virtual void peer_lost(NodeId /*peer*/) {}
};

/// Traffic with one peer since the transport started: frames of the peer protocol
/// (messages, keepalives, snapshot chunks) and their bytes on the wire.
struct PeerTraffic {
  NodeId peer;
  std::uint64_t frames_sent = 0;      ///< accepted for sending (written, or queued)
  std::uint64_t bytes_sent = 0;
  std::uint64_t frames_received = 0;
  std::uint64_t bytes_received = 0;
  std::uint64_t frames_dropped = 0;   ///< not sent: the peer's queue was full, or no route
  std::uint64_t snapshots_sent = 0;   ///< snapshot transfers started
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Starts delivering to `inbox` (which must outlive stop()).
  [[nodiscard]] virtual Status start(Inbox& inbox) = 0;
  /// Queues messages for their destinations, in order per destination. Never blocks:
  /// when a destination's queue is full its messages are dropped (Raft retransmits).
  virtual void send(std::vector<core::Message>& msgs) = 0;
  /// Queues a digest report for `report.to`, behind the messages queued for it, or drops
  /// it (as send() drops; the next report supersedes it). Never blocks.
  /// REQUIRES: 1 <= report.digests.size() <= wire::kDigestReportSendCheckpointsMax.
  virtual void send_digests(wire::DigestReport report) = 0;
  /// Where peer `id` listens ("host:port"); an empty address forgets the peer.
  virtual void set_peer(NodeId id, const std::string& address) = 0;
  /// Stops all threads and closes connections; no delivery happens after it returns.
  virtual void stop() = 0;
  /// Traffic per peer, for metrics (any thread). A transport that counts nothing
  /// returns none.
  [[nodiscard]] virtual std::vector<PeerTraffic> traffic() const { return {}; }
  /// Connections and frames refused on arrival (a failed handshake, another cluster, a
  /// bad token, a malformed frame), for metrics (any thread).
  [[nodiscard]] virtual std::uint64_t frames_refused() const { return 0; }
};

}  // namespace rlr::transport
