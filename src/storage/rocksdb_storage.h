// RocksDB-backed Storage: the production store.
//
// Layout: column family "log" maps an 8-byte big-endian index to
// [crc32c:4][term:8][kind:1][payload]; column family "meta" holds the format version,
// the identity (cluster id, node id), the hard state, the applied checkpoint and the
// snapshot metadata, each prefixed by its crc32c. An entry's checksum covers its key, so
// a damaged key is caught as surely as a damaged value. Every persistence step is one
// WriteBatch, synced by default.
#pragma once

#include <atomic>
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
  std::shared_ptr<rocksdb::Env> env;    ///< for fault injection in tests; null: default
};

class RocksDbStorage final : public Storage {
 public:
  /// Opens (or creates) the store at options.path.
  /// Errors: NotFound (no store and create_if_missing is off); WrongCluster (the store
  /// belongs to another cluster or node: it is opened read-only to check and left
  /// untouched); Corruption (unknown format version, damaged metadata); IoError (locked
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
  /// Flushes memtables to SST files (tests and tools).
  [[nodiscard]] Status flush();

  static constexpr std::uint32_t kFormatVersion = 1;

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
