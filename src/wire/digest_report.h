// A node's recent output-digest checkpoints, sent to its peers so that each can tell
// whether its replicas' outputs diverge (private). Not Raft: the node runtime sends and
// reads these; the Raft core never sees them.
//
// On the wire a report is a Raft frame whose RaftMessage has type DigestReport (11) and
// carries only `from`, `to` and `digests` (src/wire/rlr.fbs); see encode_digest_report
// and decode_peer_message in wire/peer_codec.h.
#pragma once

#include <cstddef>
#include <vector>

#include "rlr/state_machine.h"
#include "rlr/types.h"

namespace rlr::wire {

/// Checkpoints a node sends in one report at most: its most recent ones.
inline constexpr std::size_t kDigestReportSendCheckpointsMax = 16;
/// Checkpoints a decoder accepts in one report at most; a report with more is malformed.
/// Above the send limit, so that a sender may send more later without being refused.
inline constexpr std::size_t kDigestReportCheckpointsMax = 256;
static_assert(kDigestReportSendCheckpointsMax <= kDigestReportCheckpointsMax);

/// Invariants (checked on decode): `from` and `to` are not kNoNode, and `digests` holds
/// 1 to kDigestReportCheckpointsMax checkpoints (a sender holds itself to
/// kDigestReportSendCheckpointsMax). Checkpoints are in the sender's order; the receiver
/// keeps those past the last one it has from that sender.
struct DigestReport {
  NodeId from;
  NodeId to;
  std::vector<DigestCheckpoint> digests;
  friend bool operator==(const DigestReport&, const DigestReport&) = default;
};

}  // namespace rlr::wire
