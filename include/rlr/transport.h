/// \file
/// librlr — the transport seam: bring your own network between nodes.
///
/// A node hands its transport opaque frames, each addressed to one peer node, and takes
/// the frames that arrive for it. What a frame holds (Raft messages, snapshot pieces,
/// digest reports, in a versioned flatbuffers schema with a header carrying the cluster's
/// tag, the length and a crc32c) is the library's business: the node encodes what it
/// sends and verifies everything it receives before reading a field, so a transport can
/// neither see nor corrupt the protocol, and the schema can evolve without breaking a
/// transport. Opaque frames are also what other stacks move naturally: a kernel-bypass
/// NIC, RDMA writes, a message bus topic per node all carry bytes to an address.
///
/// The default transport (NodeBuilder without transport()) is the built-in TCP one, which
/// also serves rlr::Client connections on the same port. A node on a custom transport
/// serves no clients over TCP: embed it and propose in process.
///
/// What a transport must do, and what it may get wrong:
///  - deliver each frame to the node it is addressed to, byte for byte, or not at all
///    (loss is tolerated: Raft retransmits; a duplicated frame is tolerated);
///  - keep the frames sent to one peer in order; reordering is tolerated but costs
///    throughput (an out-of-order append is refused and re-sent), and a snapshot that
///    travels in several frames is restarted when its pieces arrive out of order;
///  - never block in send(): drop instead when a peer's queue is full;
///  - not deliver after stop() returned.
///
/// rlr/transport_conformance.h checks an implementation against this contract and runs
/// a cluster on it.
///
/// Example (a transport over a message bus that already has per-node inboxes):
/// \code{.cpp}
///   class BusTransport final : public rlr::Transport {
///    public:
///     rlr::Status start(rlr::NodeId self, rlr::FrameHandler& h) override {
///       return bus_.subscribe(topic(self), [&h](rlr::NodeId from, rlr::Bytes f) { h.on_frame(from, std::move(f)); });
///     }
///     void send(rlr::NodeId to, rlr::Bytes frame) override { bus_.try_publish(topic(to), frame); }
///     void set_peer(rlr::NodeId, const rlr::Address&) override {}  // the bus routes by id
///     void stop() override { bus_.unsubscribe(); }
///   };
///   auto node = rlr::NodeBuilder()...transport(std::make_shared<BusTransport>()).build();
/// \endcode
#pragma once

#include <cstddef>

#include "rlr/export.h"
#include "rlr/address.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// The node's side of a transport: what the transport calls when something arrives.
/// Thread-safety: callable from any thread, concurrently; neither call blocks for long
/// (the node checks the frame's header and queues it).
class RLR_API FrameHandler {
 public:
  virtual ~FrameHandler() = default;
  /// A frame addressed to this node, sent by node `from` (as far as the transport knows;
  /// the node checks that the frame's content names the same sender, and drops the frame
  /// otherwise). The Bytes may share the transport's receive buffer (zero copy): the node
  /// keeps it alive as long as it needs it. A malformed frame is counted, logged and
  /// dropped; it never harms the node.
  virtual void on_frame(NodeId from, Bytes frame) = 0;
  /// The transport lost its connection or route to `peer` (a closed socket, a link that
  /// went silent). Optional: it lets a follower whose leader is gone start an election
  /// at once instead of after an election timeout (NodeOptions::disconnect_campaign_ticks).
  virtual void on_peer_lost(NodeId peer) = 0;
};

/// A network between the nodes of one cluster, carrying opaque frames.
class RLR_API Transport {
 public:
  virtual ~Transport() = default;
  /// Starts carrying frames for node `self`: from now on, frames for it go to `handler`,
  /// which outlives stop(). Called once, before any send(). Errors: whatever keeps the
  /// transport from starting (the node then fails to build with it).
  [[nodiscard]] virtual Status start(NodeId self, FrameHandler& handler) = 0;
  /// Sends one frame to node `to`. Never blocks; may drop (see the contract above). The
  /// frame is at most NodeOptions::max_frame_bytes. Thread-safe: the node calls it from
  /// several of its threads at once (the raft thread, the storage thread).
  virtual void send(NodeId to, Bytes frame) = 0;
  /// Where node `id` can be reached, from the cluster's membership (the address each
  /// member was added with); an empty address: `id` left the cluster. A transport that
  /// routes by node id may ignore it.
  virtual void set_peer(NodeId id, const Address& address) = 0;
  /// Stops: no on_frame() or on_peer_lost() runs after it returns. Idempotent.
  virtual void stop() = 0;
};

}  // namespace rlr
