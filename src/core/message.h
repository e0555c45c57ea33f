// The messages exchanged by Raft cores (core-private). The wire layer maps these to
// flatbuffers frames; the core never sees bytes from the network.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

#include "core/configuration.h"
#include "core/state.h"
#include "rlr/types.h"

namespace rlr::core {

enum class MessageType : std::uint8_t {
  PreVote,         ///< thesis §9.6: would you vote for me at term+1? (term not bumped)
  PreVoteResponse,
  Vote,            ///< RequestVote RPC (Figure 2)
  VoteResponse,
  Append,          ///< AppendEntries RPC carrying entries (Figure 2)
  AppendResponse,
  Heartbeat,       ///< AppendEntries without entries and without log matching; carries
                   ///< commit (bounded by the follower's match) and a ReadIndex context
  HeartbeatResponse,
  Snapshot,        ///< InstallSnapshot: the follower needs entries the leader compacted
  SnapshotResponse,
  TimeoutNow,      ///< thesis §3.10: start an election now (leadership transfer)
};
inline constexpr MessageType kLastMessageType = MessageType::TimeoutNow;

[[nodiscard]] std::string_view to_string(MessageType t) noexcept;

/// One message between cores. Fields are used according to `type`:
/// - PreVote/Vote: `term` (proposed term), `log_index`/`log_term` = candidate's last entry,
///   `transfer` set when the election follows a TimeoutNow.
/// - *VoteResponse: `term`, `reject`.
/// - Append: `log_index`/`log_term` = previous entry, `entries`, `commit`.
/// - AppendResponse: on success `log_index` = last index now matching the leader; on
///   rejection `log_index` = the rejected previous index, `hint_index` / `hint_term` =
///   the conflict hint for fast back-off (§5.3 optimisation).
/// - Heartbeat: `commit`, `context`; HeartbeatResponse echoes `context`.
/// - Snapshot: `snapshot`; SnapshotResponse: `log_index` = follower's last index, `reject`.
/// - TimeoutNow: `term`.
struct Message {
  MessageType type = MessageType::Heartbeat;
  NodeId from;
  NodeId to;
  Term term;
  LogIndex log_index;
  Term log_term;
  LogIndex commit;
  bool reject = false;
  bool transfer = false;
  LogIndex hint_index;
  Term hint_term;
  std::uint64_t context = 0;
  std::vector<Entry> entries;
  std::optional<SnapshotMeta> snapshot;
};

/// A compact human-readable rendering, for traces.
[[nodiscard]] std::string describe(const Message& m);

}  // namespace rlr::core
