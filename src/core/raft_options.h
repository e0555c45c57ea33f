// The options of one Raft core (core-private): timers, message and flow-control limits,
// protocol features, memory bounds of the in-memory log, and test-only switches.
#pragma once

#include <cstddef>
#include <cstdint>

#include "rlr/types.h"

namespace rlr::core {

class LogReader;

/// Deliberate protocol bugs, switched on only by tests that prove the simulator can
/// detect them. Never set in production.
enum class TestingBug : std::uint8_t {
  None = 0,
  CommitPreviousTermByCount,  ///< violates §5.4.2 (Figure 8)
  GrantVoteWithoutLogCheck,   ///< violates §5.4.1 election restriction
  ForgetVoteOnRestart,        ///< votes twice in one term after a crash
};

struct RaftOptions {
  NodeId id;
  /// Base election timeout in ticks; each node draws its timeout in [e, 2e).
  std::uint32_t election_ticks = 10;
  /// Interval between leader heartbeats in ticks; must be < election_ticks.
  std::uint32_t heartbeat_ticks = 1;
  /// Limits of one AppendEntries message.
  std::size_t max_append_entries = 4096;
  std::size_t max_append_bytes = 1U << 20;
  /// Unacknowledged AppendEntries messages allowed per follower in the Replicate state.
  std::size_t max_inflight_appends = 256;
  /// Maximum entries a learner may trail the leader's last index and still be promoted.
  std::uint64_t max_promote_lag = 1024;
  bool pre_vote = true;      ///< thesis §9.6
  /// When the transport reports the connection to this follower's leader lost, a
  /// pre-vote starts after this many ticks times (1 + 2 x the follower's rank by id among
  /// the other voters) instead of a full election timeout (see peer_disconnected): the
  /// survivors of a crash campaign one after the other, not at once, so their votes do
  /// not split. 0, or pre_vote off, waits for the election timeout as usual.
  std::uint32_t disconnect_campaign_ticks = 1;
  bool check_quorum = true;  ///< thesis §6.2: a leader without a quorum steps down
  /// With `log_reader` set, the log keeps at most this many entries (0: no limit) and
  /// about this many payload bytes (0: no limit) in memory: the oldest entries beyond are
  /// evicted once durable and applied, and read back through `log_reader` when a lagging
  /// follower needs them. Without a reader everything since the snapshot stays in memory.
  std::size_t max_memory_entries = 0;
  std::size_t max_memory_bytes = 0;
  /// Reads evicted entries back from this node's durable log (not owned; it outlives the
  /// Raft, and is called on the thread that drives it).
  LogReader* log_reader = nullptr;
  /// Appends whose entries must be read back through log_reader, per turn (a tick or a
  /// received message; 0: no limit). Reading is synchronous: without a bound, filling the
  /// pipeline of a follower far behind (max_inflight_appends reads) would keep the thread
  /// from its ticks and heartbeats for long enough to lose the leadership.
  std::size_t max_storage_reads_per_turn = 4;
  std::uint64_t random_seed = 0;
  /// Checks the core's invariants (core/invariants.h) at every Ready, acknowledgement,
  /// commit advance and progress change, and aborts the process on a violation. On in
  /// tests and the simulator; off by default, where each check point costs one branch.
  bool check_invariants = false;
  TestingBug testing_bug = TestingBug::None;
};

}  // namespace rlr::core
