// The peer codec (private): what nodes send each other in Raft, SnapshotChunk and
// SnapshotAck frames (wire/frame.h): core messages, digest reports, snapshot streams.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

#include "core/configuration.h"
#include "core/message.h"
#include "rlr/status.h"
#include "rlr/types.h"
#include "wire/digest_report.h"
#include "wire/frame.h"

namespace rlr::wire {

/// Encodes a core message. A Snapshot message's SnapshotMeta is carried without its
/// data (the data travels in SnapshotChunk frames).
[[nodiscard]] Frame encode_raft(const core::Message& m, std::uint64_t tag);
/// The frame `frame` (made by encode_raft from a message to another node) addressed to
/// `to` instead: a copy of its bytes with the `to` field and the crc rewritten. A leader
/// sends the same Append to every follower that is caught up; this costs one copy and
/// one crc pass instead of a second encoding of every entry. nullopt when `frame` does
/// not hold a `to` field to rewrite (then encode the message instead).
[[nodiscard]] std::optional<Frame> readdress_raft(const Frame& frame, NodeId to);
/// Decodes a Raft frame payload that holds a core message. Entry payloads are views into
/// `payload` (no copy): the Bytes keep the frame buffer alive. Checks field ranges (known
/// message type, config payloads decodable) and returns InvalidArgument naming the
/// problem; a digest report is refused (it is no core message: see decode_peer_message).
[[nodiscard]] Result<core::Message> decode_raft(const Bytes& payload);

/// Encodes a digest report as a Raft frame (message type DigestReport).
/// REQUIRES: 1 <= r.digests.size() <= kDigestReportCheckpointsMax.
[[nodiscard]] Frame encode_digest_report(const DigestReport& r, std::uint64_t tag);
/// What a Raft frame holds: a core message, or a digest report for the runtime.
using PeerMessage = std::variant<core::Message, DigestReport>;
/// Decodes any Raft frame payload, after one Verifier pass: a core message as
/// decode_raft does, or a digest report checked against its invariants (digest_report.h).
/// Errors: InvalidArgument naming the problem.
[[nodiscard]] Result<PeerMessage> decode_peer_message(const Bytes& payload);

/// One piece of a snapshot stream from a leader to a follower or learner.
struct SnapshotChunk {
  NodeId from;
  NodeId to;
  Term term;                 ///< leader's term
  LogIndex snapshot_index;
  Term snapshot_term;
  core::Configuration config;
  std::uint64_t offset = 0;  ///< byte offset of `data` within the snapshot data
  std::uint64_t total_bytes = 0;
  Bytes data;
  bool last = false;
};
[[nodiscard]] Frame encode_snapshot_chunk(const SnapshotChunk& c, std::uint64_t tag);
[[nodiscard]] Result<SnapshotChunk> decode_snapshot_chunk(const Bytes& payload);
/// The Snapshot message a completed stream stands for: `last` is its final chunk (sender,
/// receiver, term, snapshot index, term and config), `data` the whole snapshot data.
[[nodiscard]] core::Message snapshot_message(SnapshotChunk&& last, std::vector<std::uint8_t>&& data);

/// The receiver's progress on one snapshot stream (see rlr.fbs SnapshotAck).
struct SnapshotAck {
  NodeId from;               ///< the receiver
  NodeId to;                 ///< the sender
  LogIndex snapshot_index;
  Term snapshot_term;
  std::uint64_t received = 0;  ///< contiguous bytes held, from offset 0
  friend bool operator==(const SnapshotAck&, const SnapshotAck&) = default;
};
[[nodiscard]] Frame encode_snapshot_ack(const SnapshotAck& a, std::uint64_t tag);
/// Errors: InvalidArgument (not a valid flatbuffer, node id 0, snapshot index 0).
[[nodiscard]] Result<SnapshotAck> decode_snapshot_ack(std::span<const std::uint8_t> payload);

}  // namespace rlr::wire
