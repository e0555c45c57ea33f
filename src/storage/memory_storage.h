// In-memory Storage for tests and benchmarks: the same contract as RocksDbStorage,
// nothing durable. Thread-safe.
#pragma once

#include <deque>
#include <mutex>

#include "storage/storage.h"

namespace rlr::storage {

class MemoryStorage final : public Storage {
 public:
  /// A fresh store; `initial` is the configuration of a founding member (empty voters
  /// for a node that joins later).
  MemoryStorage(Identity identity, core::Configuration initial);

  [[nodiscard]] LogIndex first_index() const override;
  [[nodiscard]] LogIndex last_index() const override;
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to,
                                                std::size_t max_entries,
                                                std::size_t max_bytes) const override;
  [[nodiscard]] Result<HardState> hard_state() const override;
  [[nodiscard]] Result<LogIndex> applied() const override;
  [[nodiscard]] Identity identity() const override { return identity_; }
  [[nodiscard]] Result<SnapshotMeta> snapshot() const override;
  [[nodiscard]] Status persist(const PersistRequest& req) override;
  [[nodiscard]] Status compact(const SnapshotMeta& s) override;

 private:
  const Identity identity_;
  mutable std::mutex mu_;
  SnapshotMeta snapshot_;
  std::deque<Entry> entries_;  // (snapshot_.index, ...]
  HardState hard_state_;
  LogIndex applied_;
};

}  // namespace rlr::storage
