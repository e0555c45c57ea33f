// What the apply side reads and asks of its node (private): the narrow interfaces an
// apply runner and replay() use, so they depend on these and not on the node runtime.
#pragma once

#include <chrono>
#include <cstddef>
#include <vector>

#include "core/raft.h"
#include "node/sessions.h"
#include "rlr/node.h"
#include "rlr/state_machine.h"

namespace rlr::node {

/// A node's committed log, as readers see it. Thread-safe.
class CommittedLog {
 public:
  virtual ~CommittedLog() = default;
  [[nodiscard]] virtual NodeId self() const = 0;
  /// Where the retained log starts: the latest snapshot (its index, configuration and
  /// RLR's session table as of it).
  [[nodiscard]] virtual Result<core::SnapshotMeta> base() const = 0;
  /// Entries [from, to] as stored (at most max_entries and about max_bytes; at least one
  /// when any is in range). Only indexes up to applied_index() are committed.
  [[nodiscard]] virtual Result<std::vector<Entry>> read(LogIndex from, LogIndex to,
                                                        std::size_t max_entries,
                                                        std::size_t max_bytes) const = 0;
  /// Committed entries from `from` (at most `max`), waiting up to `timeout` for `from` to
  /// commit: empty on timeout, ShuttingDown once the node stopped.
  [[nodiscard]] virtual Result<std::vector<Entry>> read_committed(
      LogIndex from, std::size_t max, std::chrono::milliseconds timeout) = 0;
  /// The last committed index handed to readers.
  [[nodiscard]] virtual LogIndex applied_index() const = 0;
  /// An empty session table with the node's expiry rules.
  [[nodiscard]] virtual SessionTable new_session_table() const = 0;
};

/// What an apply runner asks of its node besides the log. Thread-safe.
class RunnerHost {
 public:
  virtual ~RunnerHost() = default;
  /// True while this node leads `term`.
  [[nodiscard]] virtual bool leads(Term term) const = 0;
  /// True while this node leads (any term).
  [[nodiscard]] virtual bool is_leader() const = 0;
  /// Proposes one of RLR's own entries (an egress watermark); `done` gets the outcome.
  virtual void propose_internal(EntryKind kind, Bytes payload, ProposeCallback done) = 0;
  /// A runner recorded a digest checkpoint (the first attached runner's are the node's).
  virtual void publish_checkpoint(const ApplyRunner* runner, const DigestCheckpoint& cp) = 0;
};

/// Replays committed entries [from, to] of `log` into `sm` (replay=true, egress off,
/// outputs digested). Errors: Compacted when `from` is not retained; read errors.
[[nodiscard]] Result<std::vector<DigestCheckpoint>> replay_log(const CommittedLog& log,
                                                               RoleAwareStateMachine& sm,
                                                               LogIndex from, LogIndex to,
                                                               std::uint64_t digest_interval);

}  // namespace rlr::node
