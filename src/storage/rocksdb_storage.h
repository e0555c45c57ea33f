// RocksDB-backed Storage: the production store.
//
// Layout (format 2): column family "log" holds records of consecutive entries, each
// under the 8-byte big-endian index of its first entry:
//   [crc32c:4][count:4] then per entry [term:8][kind:1][payload size:4][payload].
// A persistence step's entries go into records of about `log_record_bytes`, so RocksDB
// pays its per-key cost (WAL record, memtable insert, key comparisons) once per record,
// not once per entry: that cost bounded a catching-up follower. A record's checksum
// covers its key, so a damaged key is caught as surely as a damaged value; damage
// anywhere in a record makes every entry it holds unreadable (reported, never served).
// Records never overlap. A truncation inside a record rewrites it with the entries
// before the cut; a compaction inside a record leaves it whole (the entries it holds
// below the snapshot are never read again and go with the record later).
// Column family "meta" holds the format version, the identity (cluster id, node id), the
// hard state, the applied checkpoint and the snapshot metadata, each prefixed by its
// crc32c. Every persistence step is one WriteBatch, synced by default.
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>

#include "storage/storage.h"

namespace rocksdb {
class DB;
class ColumnFamilyHandle;
class Env;
}  // namespace rocksdb

namespace rlr::storage {

struct RocksDbOptions {
  std::string path;                     ///< the data directory
  Identity identity;                    ///< written on creation, checked on every open
  core::Configuration initial_config;   ///< the snapshot config of a new store
  bool create_if_missing = true;
  bool sync = true;                     ///< fsync every persist(); off only for benchmarks
  /// A step's entries are packed into log records of at most this many bytes (an entry
  /// larger than that gets a record of its own). Larger records cost less per entry to
  /// write; a read of one entry checks its whole record.
  std::size_t log_record_bytes = 64U << 10;
  std::shared_ptr<rocksdb::Env> env;    ///< for fault injection in tests; null: default
};

class RocksDbStorage final : public Storage {
 public:
  /// Opens (or creates) the store at options.path.
  /// Errors: NotFound (no store and create_if_missing is off); WrongCluster (the store
  /// belongs to another cluster or node: it is opened read-only to check and left
  /// untouched); Corruption (unknown format version, damaged metadata, a damaged last log
  /// record, which tells where the log ends); IoError (locked
  /// by another process, unreadable or read-only directory, disk full).
  [[nodiscard]] static Result<std::unique_ptr<RocksDbStorage>> open(const RocksDbOptions& options);
  ~RocksDbStorage() override;
  RocksDbStorage(const RocksDbStorage&) = delete;
  RocksDbStorage& operator=(const RocksDbStorage&) = delete;

  [[nodiscard]] LogIndex first_index() const override;
  [[nodiscard]] LogIndex last_index() const override;
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to,
                                                std::size_t max_entries,
                                                std::size_t max_bytes) const override;
  [[nodiscard]] Result<HardState> hard_state() const override;
  [[nodiscard]] Result<LogIndex> applied() const override;
  [[nodiscard]] Identity identity() const override { return options_.identity; }
  [[nodiscard]] Result<SnapshotMeta> snapshot() const override;
  [[nodiscard]] Status persist(const PersistRequest& req) override;
  [[nodiscard]] Status compact(const SnapshotMeta& s) override;

  /// Bytes of live SST files in the log column family (to observe compaction).
  [[nodiscard]] std::uint64_t log_sst_bytes() const;
  /// Waits until the space of compacted entries is freed, then flushes memtables to SST
  /// files (tests and tools). Errors: IoError, also for a failed space reclaim.
  [[nodiscard]] Status flush();

  /// 1: one RocksDB key per entry (not readable by this build); 2: records of entries.
  static constexpr std::uint32_t kFormatVersion = 2;

  struct Handles;
  /// Only open() can make the key; use open().
  class Key {
    friend class RocksDbStorage;
    Key() = default;
  };
  RocksDbStorage(Key key, RocksDbOptions options, std::unique_ptr<Handles> handles);

 private:
  [[nodiscard]] Status load_state();
  [[nodiscard]] Result<Term> stored_term(LogIndex i) const;
  /// The index of the first entry of the record holding entry i (i in the stored log),
  /// and the record itself in `value` when that is not null. Errors: Corruption.
  [[nodiscard]] Result<LogIndex> record_holding(LogIndex i, std::string* value) const;
  [[nodiscard]] Result<std::vector<Entry>> read_once(LogIndex from, LogIndex to,
                                                     std::size_t max_entries,
                                                     std::size_t max_bytes) const;

  RocksDbOptions options_;
  std::unique_ptr<Handles> h_;
  std::atomic<std::uint64_t> snapshot_index_{0};
  std::atomic<std::uint64_t> last_index_{0};
  /// Bumped (before the write) whenever a write deletes entries.
  std::atomic<std::uint64_t> log_version_{0};
  mutable std::mutex snapshot_mu_;
  SnapshotMeta snapshot_;  // guarded by snapshot_mu_
};

}  // namespace rlr::storage
