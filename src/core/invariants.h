// The invariants of one core's state (core-private), as pure functions: each returns the
// first invariant its argument violates, so a test can show every one is checked. Raft
// checks them (RLR_INVARIANT, util/invariant.h) when RaftOptions::check_invariants is
// set: on entry to and exit from ready(), after ack_persisted(), where the commit index
// advances, and where the leader changes a follower's progress.
#pragma once

#include <cstddef>

#include "core/progress.h"
#include "rlr/types.h"

namespace rlr::core {

/// The positions in one core's log, which the invariants order.
struct LogMarks {
  LogIndex snapshot;   ///< the log's snapshot index: entries up to it are compacted
  LogIndex applied;    ///< last index handed out to apply (Ready::committed)
  LogIndex commit;     ///< commit index
  LogIndex persisted;  ///< last index acknowledged durable (ack_persisted)
  LogIndex unstable;   ///< first index not yet handed out to persist (Ready::entries)
  LogIndex last;       ///< last index in the log
};

/// The statement of the first invariant `m` violates, or nullptr when all hold:
///   snapshot <= applied <= commit <= last;
///   applied <= persisted, or applied is the snapshot index (an installed snapshot
///     counts as applied before it is durable);
///   persisted <= last, and persisted < unstable <= last + 1.
[[nodiscard]] const char* violated_invariant(const LogMarks& m) noexcept;

/// The statement of the first invariant a follower's progress violates, or nullptr:
///   match < next;
///   the inflight appends end above match and below next, in ascending order, and are
///   at most `max_inflight` (RaftOptions::max_inflight_appends).
[[nodiscard]] const char* violated_invariant(const Progress& pr, std::size_t max_inflight) noexcept;

}  // namespace rlr::core
