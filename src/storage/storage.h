// Storage interfaces used by the node runtime (private to the library).
//
// Three concerns, one object: the LogStore holds entries, the MetaStore the state that
// survives restarts (term, vote, commit, applied checkpoint, cluster identity), the
// SnapshotStore the RLR snapshot metadata (membership, last included index/term and the
// RLR's own opaque data such as client sessions; never business state). A persistence
// step from the core touches all three at once. After a crash during Storage::persist
// the step is there whole, or not at all, or (RocksDbStorage, which writes metadata and
// log separately) its metadata without its entries, or a prefix of its entries. None of
// it was acknowledged, and the core restarts from any of these (it clamps a commit
// index that is ahead of the log).
//
// Invariant kept by every implementation: the log holds exactly the entries
// (snapshot().index, last_index()], contiguous, each with the term it was written with.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "core/state.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::storage {

using core::HardState;
using core::RestoreState;
using core::SnapshotMeta;

/// Which cluster and node a data directory belongs to; written once, checked at open.
struct Identity {
  std::string cluster_id;
  NodeId node_id;
  friend bool operator==(const Identity&, const Identity&) = default;
};

/// One persistence step of the core (see core::Ready), written atomically.
struct PersistRequest {
  /// A snapshot received from the leader: replaces the log up to its index. When the
  /// stored entry at that index has the snapshot's term, later entries are kept.
  const SnapshotMeta* snapshot = nullptr;
  /// Entries to append; any stored entry at or after entries.front().index is replaced.
  std::span<const Entry> entries;
  /// A successor of the last hard state persisted, as the core makes them: the term
  /// never goes down, a vote once cast stays for its term, commit never goes down
  /// (RocksDbStorage restores the newest of several copies by that order).
  std::optional<HardState> hard_state;
  /// The applied checkpoint, when the caller wants it recorded in the same write.
  std::optional<LogIndex> applied;
};

class LogStore {
 public:
  virtual ~LogStore() = default;
  /// The first retained index (snapshot index + 1), also when the log is empty.
  [[nodiscard]] virtual LogIndex first_index() const = 0;
  /// The last stored index (the snapshot index when no entry follows it).
  [[nodiscard]] virtual LogIndex last_index() const = 0;
  /// Entries in [from, to], at most `max_entries` and about `max_bytes` of payload (at
  /// least one entry when the range is not empty).
  /// Errors: Compacted when from < first_index(); InvalidArgument when to > last_index();
  /// Corruption naming the index when a stored entry fails its checksum or is missing.
  [[nodiscard]] virtual Result<std::vector<Entry>> read(LogIndex from, LogIndex to,
                                                        std::size_t max_entries,
                                                        std::size_t max_bytes) const = 0;
};

class MetaStore {
 public:
  virtual ~MetaStore() = default;
  [[nodiscard]] virtual Result<HardState> hard_state() const = 0;
  [[nodiscard]] virtual Result<LogIndex> applied() const = 0;
  [[nodiscard]] virtual Identity identity() const = 0;
};

class SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  /// The latest snapshot; for a new founding member index 0 with the initial
  /// configuration, for a node that will join later index 0 with no members.
  [[nodiscard]] virtual Result<SnapshotMeta> snapshot() const = 0;
};

/// Thread safety: reads may run on any thread concurrently with one writer; persist()
/// and compact() must not run concurrently with each other.
class Storage : public LogStore, public MetaStore, public SnapshotStore {
 public:
  /// Writes one step (see the file comment for a crash during the call); durable on
  /// return when the storage syncs.
  /// Errors: IoError (disk full, I/O failure; nothing of the step is visible),
  /// InvalidArgument (entries not contiguous with the stored log).
  [[nodiscard]] virtual Status persist(const PersistRequest& req) = 0;
  /// Records a snapshot taken locally at s.index (an index this log holds, with the same
  /// term) and deletes the entries it covers; their space may be freed later (RocksDbStorage
  /// frees it a whole log segment at a time). The call stays short: it runs on the node's
  /// raft thread.
  /// Errors: as persist(); IoError also when freeing the space failed (the entries are
  /// deleted all the same).
  [[nodiscard]] virtual Status compact(const SnapshotMeta& s) = 0;
  /// Reads back everything the core needs to restart (entries after the snapshot, hard
  /// state, snapshot, applied checkpoint).
  [[nodiscard]] Result<RestoreState> load() const;
};

/// Checks that `entries` continue a log whose base (snapshot index) and end will be
/// `base` and `end` once the request's snapshot, if any, is applied: they must start in
/// (base, end + 1] and be contiguous. Shared by implementations.
[[nodiscard]] Status check_entries(std::span<const Entry> entries, LogIndex base, LogIndex end);

}  // namespace rlr::storage
