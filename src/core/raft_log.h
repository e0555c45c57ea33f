// The in-memory view of one node's log (core-private): a snapshot base followed by
// the retained entries. Durability is the runtime's job; this class only knows which
// entries exist. Indexes below first_index() were compacted into the snapshot.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "core/entry_deque.h"
#include "core/message.h"
#include "rlr/types.h"

namespace rlr::core {

class RaftLog {
 public:
  RaftLog() = default;
  RaftLog(SnapshotMeta base, std::vector<Entry> entries);

  /// The first index still held as an entry (snapshot index + 1).
  [[nodiscard]] LogIndex first_index() const noexcept { return snapshot_.index.next(); }
  [[nodiscard]] LogIndex last_index() const noexcept {
    return snapshot_.index.plus(entries_.size());
  }
  [[nodiscard]] Term last_term() const noexcept;
  /// The term of entry `i`; the snapshot's term for its index; Term{0} for index 0;
  /// nullopt when `i` is compacted away or beyond the end.
  [[nodiscard]] std::optional<Term> term_at(LogIndex i) const noexcept;
  /// True when the log holds an entry at `i` with term `t` (or i is the snapshot point).
  [[nodiscard]] bool matches(LogIndex i, Term t) const noexcept;
  /// REQUIRES: first_index() <= i <= last_index().
  [[nodiscard]] const Entry& at(LogIndex i) const;

  /// §5.4.1: is a log ending at (last_index, last_term) at least as up to date as ours?
  [[nodiscard]] bool is_up_to_date(LogIndex last_index, Term last_term) const noexcept;

  /// Appends `entries` (contiguous, entries[0].index <= last_index()+1). §5.3: an
  /// existing entry that conflicts with a new one (same index, different term) is
  /// deleted together with all that follow it; entries already present are skipped.
  /// Returns the first index that was written (nullopt when nothing changed).
  /// REQUIRES: no entry at or below the commit index is overwritten (checked by caller).
  std::optional<LogIndex> append(std::span<const Entry> entries);
  /// Appends one entry at last_index()+1. REQUIRES e.index == last_index()+1.
  void push(Entry e);

  /// The index of the first conflicting entry in `entries` (nullopt if none conflicts).
  [[nodiscard]] std::optional<LogIndex> find_conflict(std::span<const Entry> entries) const;

  /// Entries in [from, to] limited by count and bytes; at least one entry when the range
  /// is non-empty. REQUIRES: first_index() <= from.
  [[nodiscard]] std::vector<Entry> slice(LogIndex from, LogIndex to, std::size_t max_entries,
                                         std::size_t max_bytes) const;
  /// As slice(), into `out` (cleared first; its capacity is reused).
  void slice_into(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
                  std::vector<Entry>& out) const;

  /// The first index of term `t` at or before `i`, walking back while terms equal t;
  /// used to build the conflict hint of a rejected append.
  [[nodiscard]] LogIndex first_index_of_term_at(LogIndex i) const;
  /// The largest index <= i whose term is <= t (used by the leader to skip a whole
  /// conflicting term at once). Returns the snapshot index at worst.
  [[nodiscard]] LogIndex last_index_with_term_at_most(LogIndex i, Term t) const;

  /// Drops entries up to and including `s.index` and makes `s` the base. REQUIRES
  /// first_index() <= s.index+1 <= last_index()+1 and the term matches.
  void compact(SnapshotMeta s);
  /// Replaces the whole log by snapshot `s` (follower installing a leader's snapshot).
  void restore(SnapshotMeta s);
  [[nodiscard]] const SnapshotMeta& snapshot() const noexcept { return snapshot_; }

 private:
  SnapshotMeta snapshot_;
  EntryDeque entries_;
};

}  // namespace rlr::core
