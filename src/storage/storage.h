// The runtime's view of storage (private): the contract of rlr::Storage, which
// rlr/storage.h writes out (the log invariant, atomic steps, the crash contract, forward-
// only hard states, thread-safety), over the core's own types (core::HardState,
// core::SnapshotMeta with its core::Configuration). Implementations: MemoryStorage,
// RocksDbStorage (metadata and log written separately: after a crash its step may be
// there as metadata without entries, or a prefix of its entries, as the contract allows)
// and UserStorage (public_storage.h: a user's rlr::Storage).
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

/// One persistence step of the core (see core::Ready): rlr::PersistRequest's fields.
/// RocksDbStorage restores the newest of several hard-state copies by their forward-only
/// order.
struct PersistRequest {
  const SnapshotMeta* snapshot = nullptr;
  std::span<const Entry> entries;
  std::optional<HardState> hard_state;
  std::optional<LogIndex> applied;
};

/// Each method as rlr::LogStore / MetaStore / SnapshotStore / Storage documents it.
class LogStore {
 public:
  virtual ~LogStore() = default;
  [[nodiscard]] virtual LogIndex first_index() const = 0;
  [[nodiscard]] virtual LogIndex last_index() const = 0;
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
  /// As rlr::SnapshotStore, except that a store that was never given a snapshot holds
  /// index 0 with the node's initial configuration (no members for a node that joins
  /// later).
  [[nodiscard]] virtual Result<SnapshotMeta> snapshot() const = 0;
};

class Storage : public LogStore, public MetaStore, public SnapshotStore {
 public:
  [[nodiscard]] virtual Status persist(const PersistRequest& req) = 0;
  /// RocksDbStorage frees the space a whole log segment at a time, and returns IoError
  /// also when freeing failed (the entries are dropped all the same).
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
