// The log of RocksDbStorage (format 3): append-only segment files, no LSM.
//
// A Raft log is written once, in order, read back rarely (start-up, lagging readers) and
// dropped from the front. RocksDB paid for every entry four times over - WAL, memtable,
// flush to an SST file, compaction - which made its write path the limit of a durable
// cluster (bench/README.md). Here each persistence step is one write() and one
// fdatasync of the bytes themselves.
//
// Files: <dir>/<seq, 20 digits>.seg, numbered from 1. Each holds records (big-endian):
//   [size:4][first:8][count:4][term:8][vote:8][commit:8][body crc32c:4][header crc32c:4]
//   then `count` entries, each [term:8][kind:1][payload size:4][payload]
// `size` is the whole record's; the header checksum covers the 44 bytes before it, so a
// damaged size is told from a record cut short. A record means "the log from `first`
// on is these entries": one whose `first` is at or below the end of the log replaces
// what is there, so a truncation costs nothing and is durable exactly when the entries
// that replace the suffix are. Replaying the records in file order rebuilds the log.
// (term, vote, commit) is the hard state as of the record, so a step that appends
// entries is one write, hard state included: it is there after a crash with its entries
// or not at all. Hard states only move forward (newer_hard_state()), so the newest is
// the merge of every record's and the metadata's.
//
// Only appends reach the files: a record is never rewritten. Writes go to the newest
// segment, and to a new one once it passes segment_bytes, after every open, and after a
// reset (a snapshot that replaces the whole log: the metadata names the segment the new
// log starts in, so the older ones are garbage atomically with the snapshot).
//
// Crash safety: a record reaches the file whole or the power failed while it was being
// written. At open, a record of the last segment that is cut short by the end of the
// file (with an intact header, or with the header itself cut), or followed by nothing
// but zeros, is such a torn write of a step never acknowledged: the file is cut back to
// the record before it. Any other damage - a checksum mismatch, a bad record in an older
// segment, a gap - is Corruption: the open fails and nothing is dropped.
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "core/raft.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rocksdb {
class FileSystem;
class FSWritableFile;
class FSRandomAccessFile;
}  // namespace rocksdb

namespace rlr::storage {

using core::HardState;

/// The later of two hard states of one node: the higher term; in the same term the one
/// with a vote (a vote, once cast, never changes within a term); the higher commit.
[[nodiscard]] HardState newer_hard_state(const HardState& a, const HardState& b);

/// Where the log starts after a reset: segments before `segment` are garbage, and the
/// (empty) log continues at index `next`.
struct LogStart {
  std::uint64_t segment = 1;
  LogIndex next{1};
  friend bool operator==(const LogStart&, const LogStart&) = default;
};

struct SegmentLogOptions {
  std::string dir;                      ///< created if missing
  std::shared_ptr<rocksdb::FileSystem> fs;  ///< RocksDB's file system (tests wrap it)
  bool sync = true;                     ///< fdatasync every append
  std::size_t record_bytes = 1U << 20;  ///< a step is split into records of about this size
  std::uint64_t segment_bytes = 64U << 20;  ///< a segment this large is closed
  /// Called with a new segment's number once its file is durable, before anything is
  /// written to it: the owner records it (RocksDbStorage, in its metadata), and passes
  /// it back to open() as `newest`, so that a newest segment lost to outside harm is
  /// noticed (its entries were acknowledged) instead of silently shortening the log.
  /// An error fails the append that needed the segment.
  std::function<Status(std::uint64_t)> segment_started;
};

class SegmentLog {
 public:
  /// Opens the log in options.dir, replaying the segments from `start.segment` on and
  /// deleting older ones. `newest`: the highest segment number segment_started reported
  /// (0: none); when it is at or after start.segment, that segment must be there. A torn last record is cut off (see the file comment). With no
  /// records the log is empty at start.next; otherwise it is what the records say, and
  /// the caller checks that against its snapshot.
  /// Errors: Corruption (damage other than a torn tail, a record that does not continue
  /// the log), IoError.
  [[nodiscard]] static Result<std::unique_ptr<SegmentLog>> open(SegmentLogOptions options,
                                                                LogStart start,
                                                                std::uint64_t newest = 0);
  ~SegmentLog();
  SegmentLog(const SegmentLog&) = delete;
  SegmentLog& operator=(const SegmentLog&) = delete;

  /// The entries the records hold: [first, last]; last = first - 1 when there are none.
  [[nodiscard]] LogIndex first() const;
  [[nodiscard]] LogIndex last() const;
  /// The newest hard state of the records replayed at open (all zero when none).
  [[nodiscard]] HardState recovered_hard_state() const { return recovered_hard_state_; }

  /// Appends `entries` (contiguous, entries.front().index <= last() + 1), replacing the
  /// entries from entries.front().index on, with the hard state `hs` in the same
  /// records; durable on return when sync is on.
  /// Errors: InvalidArgument (a gap, a step too large for a record), IoError. After an
  /// IoError the log refuses further appends: what reached the file is unknown until
  /// the next open.
  [[nodiscard]] Status append(std::span<const Entry> entries, const HardState& hs);

  /// The segment number a reset would start at; record it (with the snapshot) before
  /// calling reset().
  [[nodiscard]] std::uint64_t next_segment() const { return next_seq_; }
  /// Forgets every entry; the next append starts at `start.next`, in segment
  /// `start.segment` (== next_segment()). Older segments are deleted.
  /// Errors: IoError (deleting; the reset itself holds, and the files are tried again).
  [[nodiscard]] Status reset(LogStart start);

  /// The first segment a compaction through `through` keeps: the oldest segments whose
  /// every record lies at or below it can go, never the one being written. Record it in
  /// the metadata (as LogStart::segment) before drop_before(), so that a crash in
  /// between, or a deletion that fails, leaves nothing a reopen would replay.
  [[nodiscard]] std::uint64_t first_kept(LogIndex through) const;
  /// Deletes the segments numbered below `segment` (and any whose deletion failed
  /// before). Errors: IoError (the files are tried again next time).
  [[nodiscard]] Status drop_before(std::uint64_t segment);

  /// Entries [from, to], at most max_entries and max_bytes of payload but at least one.
  /// Errors: NotFound when the log no longer holds `from` or `to` (it moved since the
  /// caller checked: a concurrent truncation or drop), Corruption, IoError.
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to,
                                                std::size_t max_entries,
                                                std::size_t max_bytes) const;

  /// Bytes in the segment files.
  [[nodiscard]] std::uint64_t bytes() const;
  /// The segment files' numbers, oldest first (tests).
  [[nodiscard]] std::vector<std::uint64_t> segments() const;
  /// The path of segment `seq`.
  [[nodiscard]] std::string segment_path(std::uint64_t seq) const;

  struct Segment;
  struct Record {
    std::uint64_t first;
    std::uint32_t count;  ///< live entries (fewer than written after a truncation)
    std::uint64_t segment;
    std::uint64_t offset;
    std::uint64_t size;   ///< the whole record, length field included
  };
  /// Only open() can make the key.
  class Key {
    friend class SegmentLog;
    Key() = default;
  };
  SegmentLog(Key key, SegmentLogOptions options);

 private:
  [[nodiscard]] Status replay(LogStart start, std::uint64_t newest);
  [[nodiscard]] Status replay_segment(std::uint64_t seq, bool last_segment, bool& started);
  [[nodiscard]] Status start_segment();
  /// Makes `r` the log's record from r.first on (under mu_).
  void attach(const Record& r);

  SegmentLogOptions options_;
  mutable std::mutex mu_;
  std::map<std::uint64_t, std::shared_ptr<Segment>> segments_;  // guarded by mu_
  std::deque<Record> records_;                                  // guarded by mu_
  LogIndex first_{1};                                           // guarded by mu_
  LogIndex last_{0};                                            // guarded by mu_
  HardState recovered_hard_state_;
  // Writer state: the thread that appends only.
  std::unique_ptr<rocksdb::FSWritableFile> active_;
  std::uint64_t active_seq_ = 0;  // written under mu_ (first_kept reads it there)
  std::uint64_t active_size_ = 0;
  std::uint64_t next_seq_ = 1;
  bool failed_ = false;
  std::vector<std::pair<std::size_t, std::size_t>> plan_;  ///< a step's records: [begin, end)
  std::vector<Record> written_;                            ///< a step's records, as written
  std::vector<std::string> garbage_;  ///< segment files whose deletion failed
  std::unique_ptr<char[]> buf_;
  std::size_t buf_cap_ = 0;
  int small_steps_ = 0;
};

}  // namespace rlr::storage
