// The production store: metadata in RocksDB, the log in append-only segment files.
//
// Layout (format 3) of the data directory:
//   RocksDB, column family "meta": the format version, the identity (cluster id, node
//     id), the hard state, the applied checkpoint, the snapshot metadata and where the
//     log starts (segment number and index: moved by a snapshot that replaces the log,
//     and by a compaction to the first segment it keeps) and the newest segment started
//     (a missing newest segment fails the open), each prefixed by its crc32c.
//   log/: the entries, in segment files of records (storage/segment_log.h).
// A persistence step writes its metadata first, when it has any (one synced RocksDB
// write: a snapshot, a checkpoint, or a hard state without entries), then its entries
// with the hard state in their record (one write and one fdatasync). After a crash a
// step whose persist() had not returned is there whole, or not at all, or without its
// entries, or with a prefix of its records; a commit index may then be ahead of the
// log (the core clamps it). None of it was acknowledged, so the node may restart from
// any of these. (Format 2 kept the log in RocksDB too; its write path - WAL, memtable,
// flush, compaction for every entry - was the limit of a durable cluster.)
#pragma once

#include <atomic>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "storage/storage.h"
#include "storage/segment_log.h"

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
  /// larger than that gets a record of its own). A read of one entry reads and checks its
  /// whole record.
  std::size_t log_record_bytes = 1U << 20;
  /// A log segment file this large is closed and the next one started; compaction frees
  /// space a whole segment at a time.
  std::uint64_t log_segment_bytes = 64U << 20;
  std::shared_ptr<rocksdb::Env> env;    ///< for fault injection in tests; null: default
};

class RocksDbStorage final : public Storage {
 public:
  /// Opens (or creates) the store at options.path.
  /// Errors: NotFound (no store and create_if_missing is off); WrongCluster (the store
  /// belongs to another cluster or node: it is opened read-only to check and left
  /// untouched); Corruption (unknown format version, damaged metadata, a damaged log
  /// record other than a torn last write, a log that does not continue the snapshot);
  /// IoError (locked by another process, unreadable or read-only directory, disk full).
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

  /// Bytes in the log's segment files (to observe compaction).
  [[nodiscard]] std::uint64_t log_bytes() const;
  /// The log's segment file numbers, oldest first (tests).
  [[nodiscard]] std::vector<std::uint64_t> log_segments() const;

  /// 1: one RocksDB key per entry; 2: records of entries in RocksDB (neither readable by
  /// this build); 3: the log in segment files.
  static constexpr std::uint32_t kFormatVersion = 3;

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
  /// The body of the sealed metadata record `key`, which must be `size` bytes.
  /// Errors: NotFound (absent), Corruption "<what> record damaged", IoError.
  [[nodiscard]] Result<std::string> read_meta(const char* key, std::size_t size,
                                              std::string_view what) const;

  RocksDbOptions options_;
  std::unique_ptr<Handles> h_;
  std::atomic<std::uint64_t> snapshot_index_{0};
  std::atomic<std::uint64_t> last_index_{0};
  mutable std::mutex hard_state_mu_;
  HardState hard_state_;  // guarded by hard_state_mu_: the metadata's, with the log's commit
  mutable std::mutex snapshot_mu_;
  SnapshotMeta snapshot_;  // guarded by snapshot_mu_
};

}  // namespace rlr::storage
