// The simulated durable storage of one node: its disk (hard state, snapshot, log, and
// the state machine's checkpoint) and its write queue. A Ready's persistence is queued
// and becomes durable only after a simulated fsync delay; a crash loses the queue.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "core/message.h"
#include "core/raft.h"
#include "rlr/types.h"

namespace rlr::sim {

/// The application state machine's durable progress: it persists as it applies, so a
/// restarted node may resume after `applied` instead of replaying from the snapshot.
struct StateMachineCheckpoint {
  LogIndex applied;
  std::uint64_t state_hash = 0;  ///< digest of every entry applied up to `applied`
};

/// What survives a crash.
struct DurableState {
  core::HardState hard_state;
  core::SnapshotMeta snapshot;
  std::deque<Entry> entries;  ///< entries[k].index == snapshot.index + 1 + k
  StateMachineCheckpoint checkpoint;
};

/// One Ready's persistence, waiting for its simulated fsync.
struct PendingWrite {
  std::uint64_t complete_tick = 0;
  std::optional<core::SnapshotMeta> snapshot;
  std::vector<Entry> entries;
  std::optional<core::HardState> hard_state;
  std::vector<core::Message> messages_after_persist;
  bool must_ack = false;  ///< the Ready had something to persist: ack its mark
  core::PersistMark mark;
};

class SimStorage {
 public:
  /// A fresh disk: a founding member holds a snapshot at index 0 whose config lists the
  /// initial voters; a node that will join later holds an empty config.
  SimStorage(core::SnapshotMeta initial, std::uint64_t initial_state_hash);

  [[nodiscard]] const DurableState& durable() const noexcept { return durable_; }

  /// Queues `w`; it completes no earlier than every write queued before it.
  void enqueue(PendingWrite w);
  [[nodiscard]] bool has_due(std::uint64_t now_tick) const noexcept {
    return !queue_.empty() && queue_.front().complete_tick <= now_tick;
  }
  /// Removes the oldest queued write and makes it durable: snapshot, then entries
  /// (truncating the stored suffix from the first one), then hard state. Sets `error`
  /// when the write breaks the storage contract (a gap in the log).
  PendingWrite complete_next(std::string& error);
  [[nodiscard]] std::size_t queued() const noexcept { return queue_.size(); }

  /// Power loss: every write not yet completed is gone.
  void crash() { queue_.clear(); }

  /// The application's own compaction snapshot, written synchronously.
  void save_snapshot(const core::SnapshotMeta& s);
  void save_checkpoint(StateMachineCheckpoint c) { durable_.checkpoint = c; }

  /// The stored term at `i` (the snapshot's term at its index); nullopt otherwise.
  [[nodiscard]] std::optional<Term> term_at(LogIndex i) const noexcept;
  /// The durable entry at `i`; nullptr when none is stored there.
  [[nodiscard]] const Entry* entry_at(LogIndex i) const noexcept;
  /// True when entry (i, t) is durable, or compacted into the stored snapshot.
  [[nodiscard]] bool holds(LogIndex i, Term t) const noexcept;
  [[nodiscard]] LogIndex last_index() const noexcept {
    return durable_.snapshot.index.plus(durable_.entries.size());
  }

  /// What a restarting node reads back; `applied` is the state machine's position.
  [[nodiscard]] core::RestoreState restore_state(LogIndex applied) const;

 private:
  void install_snapshot(const core::SnapshotMeta& s);
  void write_entries(const std::vector<Entry>& entries, std::string& error);

  DurableState durable_;
  std::deque<PendingWrite> queue_;
};

}  // namespace rlr::sim
