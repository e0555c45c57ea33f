// Commit-path tracing (private): timestamps taken along each log entry's way through one
// node, so that a slow commit can be taken apart into queueing, fsync, network and
// thread hand-offs (rlr-bench --trace joins every node's records with its clients').
//
// Off unless NodeOptions::trace_entries > 0. Off, the node holds a null Tracer* and every
// hook is one untaken branch; no clock is read. On, each hook reads the steady clock once
// and takes the tracer's mutex once per batch of entries.
//
// Records live in a ring indexed by log index (index mod capacity): the last `capacity`
// indexes are kept, an older record is overwritten by the entry that maps to its slot.
// Times are std::chrono::steady_clock nanoseconds (CLOCK_MONOTONIC), comparable across
// the processes of one machine.
#pragma once

#include <cstdint>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::node {

/// What one node saw of one log entry (0: not seen on this node).
struct TraceRecord {
  std::uint64_t index = 0;
  std::uint64_t term = 0;      ///< as appended by the leader (0 on a follower)
  std::int64_t received = 0;   ///< leader: the proposal reached the node (Node::propose)
  std::int64_t appended = 0;   ///< leader: appended to the core's log on the raft thread
  std::int64_t sent = 0;       ///< leader: the first append carrying it went to the transport
  std::int64_t arrived = 0;    ///< follower: the append carrying it was stepped into the core
  std::int64_t synced = 0;     ///< its write returned (fsynced when the node syncs)
  std::int64_t acked = 0;      ///< leader: the first follower acknowledgement covering it
  std::uint64_t acked_by = 0;  ///< leader: the follower that sent that acknowledgement
  std::int64_t committed = 0;  ///< the core handed it out as committed
  std::int64_t replied = 0;    ///< leader: its outcome handed to the client's connection
};

/// The trace file's first line; each following line is one TraceRecord, its fields in
/// declaration order separated by single spaces.
inline constexpr const char* kTraceHeader =
    "# rlr-trace v1: index term received appended sent arrived synced acked acked_by committed replied";

/// Thread-safety: every method may be called from any thread.
class Tracer {
 public:
  /// Keeps the records of the last `capacity` log indexes. REQUIRES: capacity > 0.
  explicit Tracer(std::size_t capacity);

  /// The steady clock, in nanoseconds.
  [[nodiscard]] static std::int64_t now();

  /// The leader appended entries [first, first + received.size()) of `term`; received[k]
  /// is when entry first+k's proposal reached the node (0: unknown).
  void appended(LogIndex first, Term term, std::span<const std::int64_t> received);
  /// The leader handed an append carrying [from, to] to the transport.
  void sent(LogIndex from, LogIndex to);
  /// A follower stepped an append carrying [from, to].
  void arrived(LogIndex from, LogIndex to);
  /// The write of [from, to] returned.
  void synced(LogIndex from, LogIndex to);
  /// The leader stepped `peer`'s acknowledgement of everything up to `match`.
  void acked(LogIndex match, NodeId peer);
  /// The core handed out [from, to] as committed.
  void committed(LogIndex from, LogIndex to);
  /// The outcome of `index` went to the proposer's connection.
  void replied(LogIndex index);

  /// The records held, by index.
  [[nodiscard]] std::vector<TraceRecord> records() const;
  /// Writes kTraceHeader and records() to `path` (replacing it). Errors: IoError.
  [[nodiscard]] Status write(const std::string& path) const;
  /// Parses what write() wrote. Errors: Corruption (a malformed line), IoError.
  [[nodiscard]] static Result<std::vector<TraceRecord>> read(const std::string& path);

 private:
  /// The record of `index`, reset when its slot held an earlier index; null when it holds
  /// a later one (kept). REQUIRES: mu_ held.
  TraceRecord* at(std::uint64_t index);
  /// The record of `index` when its slot holds it; null otherwise. REQUIRES: mu_ held.
  TraceRecord* find(std::uint64_t index);
  /// Stamps `field` of the records of [from, to] that have none yet, now; `create`: also
  /// of indexes without a record (else those are skipped).
  void stamp_first(LogIndex from, LogIndex to, std::int64_t TraceRecord::*field, bool create);

  mutable std::mutex mu_;
  std::vector<TraceRecord> ring_;  // guarded by mu_
  std::uint64_t acked_upto_ = 0;   // guarded by mu_: every record up to it has `acked`
};

}  // namespace rlr::node
