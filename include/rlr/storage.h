/// \file
/// librlr — the storage seam: bring your own log and metadata store.
///
/// A node keeps three things durable, in one object: the log (LogStore), the state that
/// must survive a restart (MetaStore: term, vote, commit, the applied checkpoint, and
/// which cluster and node the store belongs to) and the RLR snapshot (SnapshotStore: the
/// membership and last included index and term of a compacted log prefix, with RLR's own
/// opaque data such as client sessions; never business state). NodeBuilder::storage(...)
/// puts a node on an implementation of Storage; the defaults stay the built-in RocksDB
/// store (StorageKind::RocksDb) and the in-memory one (StorageKind::Memory).
///
/// The contract, which rlr/storage_conformance.h checks:
///  - The log holds exactly the entries (snapshot().index, last_index()], contiguous,
///    each with the term and payload it was written with; first_index() is
///    snapshot().index + 1 also when the log is empty.
///  - persist() writes one step of the node atomically as seen by readers. When it
///    returns Ok and the store syncs, everything in it is durable.
///  - Crash contract: after a crash (power loss, kill) during persist(), the step is
///    there whole, or not at all, or only its metadata (hard state, applied) without its
///    entries, or a prefix of its entries. Nothing else: a step persist() returned Ok for
///    (when syncing) is never lost, and no entry is ever kept with altered bytes or a
///    hole before it. The node acknowledges nothing of a step before persist() returned,
///    and restarts from any of these states.
///  - Hard states only move forward as the node writes them (the term never goes down, a
///    vote once cast stays for its term, commit never goes down).
///  - A store that fails a write returns IoError and must not claim the step later; the
///    node then stops taking part (it answers every request with an error) until it is
///    restarted.
///  - A store that has never been written reports snapshot() at index 0 with an empty
///    membership: the node supplies its founding members (NodeOptions::initial_members).
///
/// Thread-safety: reads may run on any thread, concurrently with each other and with one
/// writer; persist() and compact() are never called concurrently with each other.
#pragma once

#include <cstddef>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "rlr/export.h"
#include "rlr/cluster.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// The state that must be durable before a vote or an acknowledgement leaves the node.
struct RLR_API HardState {
  /// The latest term this node has seen.
  Term term;
  /// The node this node voted for in `term`; kNoNode when none.
  NodeId vote;
  /// The highest index this node knows to be committed.
  LogIndex commit;
  /// Same term, vote and commit.
  friend bool operator==(const HardState&, const HardState&) = default;
};

/// Who is in the cluster at a point of the log. Sorted sets; during a membership change
/// (joint consensus) `voters_outgoing` holds the old voters, else it is empty.
struct RLR_API Membership {
  /// The voters: a majority of them elects a leader and commits.
  std::vector<NodeId> voters;
  /// During joint consensus, the old voters, whose majority is needed too; else empty.
  std::vector<NodeId> voters_outgoing;
  /// Members that receive the log but neither vote nor count toward commit.
  std::vector<NodeId> learners;
  std::vector<MemberAddress> addresses;  ///< of members, where known
  /// Same sets and addresses.
  friend bool operator==(const Membership&, const Membership&) = default;
};

/// A compacted log prefix: the log up to and including `index` is replaced by it.
struct RLR_API SnapshotMeta {
  /// The last index the snapshot covers.
  LogIndex index;
  /// The term of the entry at `index`.
  Term term;
  /// The membership in force at `index`.
  Membership membership;
  Bytes data;  ///< RLR's own state at `index` (client sessions), opaque to the store
  /// Same index, term, membership and data bytes.
  friend bool operator==(const SnapshotMeta&, const SnapshotMeta&) = default;
};

/// Which cluster and node a store belongs to: written once, checked at every start (a
/// node refuses a store of another cluster or node with WrongCluster).
struct RLR_API StorageIdentity {
  /// The owning node's NodeOptions::cluster_id.
  std::string cluster_id;
  /// The owning node's NodeOptions::id.
  NodeId node_id;
  /// Same cluster and node.
  friend bool operator==(const StorageIdentity&, const StorageIdentity&) = default;
};

/// One persistence step of the node, written atomically (see the crash contract above).
struct RLR_API PersistRequest {
  /// A snapshot received from the leader, applied first: it replaces the log up to its
  /// index; when the stored entry at that index has the snapshot's term, the entries
  /// after it are kept, otherwise the whole log goes.
  const SnapshotMeta* snapshot = nullptr;
  /// Entries to append; any stored entry at or after entries.front().index is replaced.
  /// They start in (snapshot index, last_index() + 1] and are contiguous.
  std::span<const Entry> entries;
  /// The hard state to record, when it changed.
  std::optional<HardState> hard_state;
  /// The applied checkpoint, when the node wants it recorded in the same write.
  std::optional<LogIndex> applied;
};

/// The log part of a Storage: reads of the retained entries (see the contract in
/// rlr/storage.h). Reads may run on any thread, also during persist().
class RLR_API LogStore {
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

/// The metadata part of a Storage: what a restarted node resumes from besides the log.
class RLR_API MetaStore {
 public:
  virtual ~MetaStore() = default;
  /// The last hard state persisted (all zero when none was).
  [[nodiscard]] virtual Result<HardState> hard_state() const = 0;
  /// The last applied checkpoint persisted (0 when none was).
  [[nodiscard]] virtual Result<LogIndex> applied() const = 0;
  /// The cluster and node the store belongs to, as written when it was created.
  /// NodeBuilder::build() refuses a store of another with WrongCluster.
  [[nodiscard]] virtual StorageIdentity identity() const = 0;
};

/// The snapshot part of a Storage: the compacted log prefix.
class RLR_API SnapshotStore {
 public:
  virtual ~SnapshotStore() = default;
  /// The latest snapshot (index 0 with an empty membership before any).
  [[nodiscard]] virtual Result<SnapshotMeta> snapshot() const = 0;
};

/// A node's durable state in one object: log, metadata and snapshot, written together
/// by persist() (see the contract in rlr/storage.h). Given to NodeBuilder::storage();
/// make_memory_storage() and open_rocksdb_storage() return the built-in ones.
class RLR_API Storage : public LogStore, public MetaStore, public SnapshotStore {
 public:
  /// Writes one step. Errors: IoError (disk full, I/O failure: nothing of the step is
  /// visible), InvalidArgument (entries that do not continue the log; nothing changes).
  [[nodiscard]] virtual Status persist(const PersistRequest& req) = 0;
  /// Records a snapshot the node took at s.index (an index the log holds, with that
  /// entry's term) and drops the entries it covers; their space may be freed later. It
  /// runs on the node's raft thread: keep it short. Errors: as persist().
  [[nodiscard]] virtual Status compact(const SnapshotMeta& s) = 0;
};

/// The built-in stores behind this interface, to wrap or decorate (or to check a store of
/// one's own against, rlr/storage_conformance.h). A node given one through
/// NodeBuilder::storage(...) behaves as with StorageKind::Memory / RocksDb.
/// make_memory_storage: nothing durable; the store lives as long as the pointer.
[[nodiscard]] RLR_API std::shared_ptr<Storage> make_memory_storage(StorageIdentity identity);
/// Opens (or creates) the RocksDB store in `directory`. `sync` off: no fsync (benchmarks
/// only). Errors: WrongCluster (the directory holds another cluster's or node's store),
/// Corruption, IoError.
[[nodiscard]] RLR_API Result<std::shared_ptr<Storage>> open_rocksdb_storage(std::string directory,
                                                                            StorageIdentity identity,
                                                                            bool sync = true);

}  // namespace rlr
