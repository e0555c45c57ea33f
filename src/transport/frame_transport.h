// The node's transport seam (transport.h: core messages) over a user's rlr::Transport
// (rlr/transport.h: opaque frames) (private).
//
// Sending: each message becomes one frame of the peer protocol (wire/peer_codec.h); a
// snapshot becomes SnapshotChunk frames of snapshot_chunk_bytes, sent back to back (the
// user's transport has no connection to carry the TCP transport's acknowledgement
// window). Receiving, before anything reaches the node: the header (magic, version, this
// cluster's tag, a length within max_frame_bytes that matches the frame), the crc32c,
// the flatbuffers Verifier, and the sender and receiver the content names (the sender
// must be who the transport says sent it). A frame that fails any check is counted,
// logged (the first, then at each power of two) and dropped. Snapshot chunks are
// reassembled per sender in order: a chunk that does not continue the partial copy
// drops it (the leader sends the snapshot again when its follower does not answer).
//
// Bounds: one partial snapshot per sender, at most kMaxSnapshotBytes.
// Thread-safety: send paths from any thread; the user's transport calls on_frame from
// any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "rlr/transport.h"
#include "transport/transport.h"
#include "util/logger.h"
#include "wire/frame.h"
#include "wire/peer_codec.h"

namespace rlr::transport {

class FrameTransport final : public Transport, private FrameHandler {
 public:
  struct Options {
    std::string cluster_id;
    NodeId self;
    std::size_t max_frame_bytes = 64U << 20;
    std::size_t snapshot_chunk_bytes = 1U << 20;
    std::shared_ptr<LogSink> log_sink;  ///< null: nothing is logged
  };
  static constexpr std::uint64_t kMaxSnapshotBytes = std::uint64_t{1} << 32;
  /// Peers whose traffic is counted at most (traffic()).
  static constexpr std::size_t kMaxTrafficPeers = 1024;

  FrameTransport(Options options, std::shared_ptr<rlr::Transport> user);
  ~FrameTransport() override;
  FrameTransport(const FrameTransport&) = delete;
  FrameTransport& operator=(const FrameTransport&) = delete;

  [[nodiscard]] Status start(Inbox& inbox) override;
  void send(std::vector<core::Message>& msgs) override;
  void send_digests(wire::DigestReport report) override;
  void set_peer(NodeId id, const std::string& address) override;
  void stop() override;

  /// Frames refused on arrival (malformed, another cluster, a sender that does not match).
  [[nodiscard]] std::uint64_t frames_refused() const override { return refused_.load(); }
  [[nodiscard]] std::vector<PeerTraffic> traffic() const override;

 private:
  void on_frame(NodeId from, Bytes frame) override;
  void on_peer_lost(NodeId peer) override;
  void send_frame(NodeId to, wire::Frame frame);
  void send_snapshot(const core::Message& m);
  void on_chunk(wire::SnapshotChunk c);
  void refuse(NodeId from, std::string_view why);

  struct Reassembly {
    LogIndex index;
    Term term;
    std::uint64_t total = 0;
    std::vector<std::uint8_t> data;
  };

  const Options options_;
  const std::uint64_t tag_;
  std::shared_ptr<rlr::Transport> user_;
  util::Logger log_;
  std::atomic<Inbox*> inbox_{nullptr};
  bool started_ = false;
  std::atomic<std::uint64_t> refused_{0};
  std::mutex mu_;
  std::map<NodeId, Reassembly> snapshots_;  // guarded by mu_
  mutable std::mutex traffic_mu_;
  std::map<NodeId, PeerTraffic> traffic_;   // guarded by traffic_mu_
};

}  // namespace rlr::transport
