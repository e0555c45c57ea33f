// The transport seam between the node runtime and the network (private).
// Implementations: LocalTransport (in process, fault injection, for tests) and
// AsioTransport (TCP, production).
#pragma once

#include <string>
#include <vector>

#include "core/message.h"
#include "rlr/status.h"

namespace rlr::transport {

/// Receives what arrives from peers.
class Inbox {
 public:
  virtual ~Inbox() = default;
  /// Called on a transport thread with a message addressed to this node. Must not block
  /// for long (the runtime only queues it).
  virtual void deliver(core::Message m) = 0;
  /// Called on a transport thread when an established connection to or from `peer`
  /// closed or failed (not when this node closed it). Must not block.
  virtual void peer_lost(NodeId /*peer*/) {}
};

class Transport {
 public:
  virtual ~Transport() = default;
  /// Starts delivering to `inbox` (which must outlive stop()).
  [[nodiscard]] virtual Status start(Inbox& inbox) = 0;
  /// Queues messages for their destinations, in order per destination. Never blocks:
  /// when a destination's queue is full its messages are dropped (Raft retransmits).
  virtual void send(std::vector<core::Message>& msgs) = 0;
  /// Where peer `id` listens ("host:port"); an empty address forgets the peer.
  virtual void set_peer(NodeId id, const std::string& address) = 0;
  /// Stops all threads and closes connections; no delivery happens after it returns.
  virtual void stop() = 0;
};

}  // namespace rlr::transport
