// What a leader knows about each follower's log (core-private), and the flow-control
// state that decides what to send it next.
#pragma once

#include <cstdint>
#include <deque>

#include "rlr/types.h"

namespace rlr::core {

/// Replication state of one follower or learner, kept by the leader (thesis §4 / etcd's
/// progress tracker): Probe sends one append at a time until the follower's position is
/// known; Replicate pipelines up to max_inflight_appends; Snapshot waits for a snapshot.
struct Progress {
  enum class State : std::uint8_t { Probe, Replicate, Snapshot };
  State state = State::Probe;
  LogIndex match;             ///< highest index known to be replicated there
  LogIndex next;              ///< next index to send
  bool probe_sent = false;    ///< Probe: an append is outstanding
  std::deque<LogIndex> inflight;  ///< Replicate: last index of each unacknowledged append
  LogIndex pending_snapshot;  ///< Snapshot: index of the snapshot sent
  std::uint64_t snapshot_sent_tick = 0;
  LogIndex sent_commit;       ///< commit index last told to this peer in an append
  bool resend_probe = false;  ///< Replicate: send an empty append to detect a lost one
  LogIndex match_at_heartbeat;  ///< match when the previous heartbeat was answered
  bool recent_active = false; ///< heard from within the current check-quorum interval
  std::uint64_t last_contact_tick = 0;
  std::uint64_t read_ack_context = 0;  ///< highest ReadIndex context acknowledged
};

}  // namespace rlr::core
