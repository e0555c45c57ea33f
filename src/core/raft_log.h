// The in-memory view of one node's log (core-private): a snapshot base followed by
// the retained entries. Durability is the runtime's job; this class only knows which
// entries exist. Indexes below first_index() were compacted into the snapshot.
//
// The retained entries need not all be in memory: evict() lets go of a prefix that is
// durable (and committed), keeping only each entry's term, as runs of equal terms; the
// entries themselves are then read back through a LogReader when a lagging follower
// needs them. So a node's memory holds the recent tail of the log, not everything since
// the last snapshot.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <utility>
#include <vector>

#include "core/entry_deque.h"
#include "core/message.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::core {

/// Reads entries that the RaftLog evicted from memory back from durable storage.
class LogReader {
 public:
  virtual ~LogReader() = default;
  /// Replaces `out` with the stored entries from `from` on, up to `to`, at most
  /// `max_entries` and about `max_bytes` of payload (at least one when from <= to).
  /// Errors: whatever the storage reports (IoError, Corruption, Compacted).
  [[nodiscard]] virtual Status read(LogIndex from, LogIndex to, std::size_t max_entries,
                                    std::size_t max_bytes, std::vector<Entry>& out) = 0;
};

class RaftLog {
 public:
  RaftLog() = default;
  RaftLog(SnapshotMeta base, std::vector<Entry> entries);

  /// The first index still held as an entry (snapshot index + 1).
  [[nodiscard]] LogIndex first_index() const noexcept { return snapshot_.index.next(); }
  [[nodiscard]] LogIndex last_index() const noexcept {
    return LogIndex{memory_first_.value() - 1 + entries_.size()};
  }
  /// The first index whose entry is in memory; entries in [first_index(), memory_first())
  /// were evicted (their terms are kept).
  [[nodiscard]] LogIndex memory_first() const noexcept { return memory_first_; }
  /// Entries and payload bytes held in memory.
  [[nodiscard]] std::size_t memory_entries() const noexcept { return entries_.size(); }
  [[nodiscard]] std::size_t memory_bytes() const noexcept { return memory_bytes_; }
  [[nodiscard]] Term last_term() const noexcept;
  /// The term of entry `i`; the snapshot's term for its index; Term{0} for index 0;
  /// nullopt when `i` is compacted away or beyond the end.
  [[nodiscard]] std::optional<Term> term_at(LogIndex i) const noexcept;
  /// True when the log holds an entry at `i` with term `t` (or i is the snapshot point).
  [[nodiscard]] bool matches(LogIndex i, Term t) const noexcept;
  /// REQUIRES: memory_first() <= i <= last_index().
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

  /// Entries in [from, to] limited by count and bytes, into `out` (cleared first; its
  /// capacity is reused); at least one entry when the range is non-empty.
  /// REQUIRES: memory_first() <= from.
  void slice_into(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
                  std::vector<Entry>& out) const;
  /// As slice_into(), also for evicted entries (first_index() <= from): those come from
  /// `reader` and end the slice at memory_first() - 1 (the next slice continues in
  /// memory). Errors (`out` is then cleared): the reader's; InvalidArgument when it is
  /// needed and null; Corruption when it returns other entries than asked for (a wrong
  /// index, or a term that differs from the one kept for that index).
  [[nodiscard]] Status read_into(LogIndex from, LogIndex to, std::size_t max_entries,
                                 std::size_t max_bytes, LogReader* reader,
                                 std::vector<Entry>& out) const;
  /// Lets go of the entries up to `upto` (memory_first() <= upto + 1 <= last_index() + 1),
  /// keeping their terms. REQUIRES: they are durable, so that a LogReader finds them.
  void evict(LogIndex upto);

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
  /// The term of an evicted index: the last run starting at or before it.
  [[nodiscard]] Term evicted_term(LogIndex i) const noexcept;
  void drop_front(std::size_t n);

  SnapshotMeta snapshot_;
  LogIndex memory_first_{1};  ///< index of entries_[0]
  EntryDeque entries_;
  std::size_t memory_bytes_ = 0;  ///< payload bytes in entries_
  /// Terms of [first_index(), memory_first()): (first index of the run, its term), in
  /// increasing order; the first run starts at first_index(). Empty when nothing is evicted.
  std::vector<std::pair<LogIndex, Term>> evicted_terms_;
};

}  // namespace rlr::core
