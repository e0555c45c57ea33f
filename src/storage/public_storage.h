// The storage seam's adapters (private): a user's rlr::Storage (rlr/storage.h) as the
// runtime's storage::Storage, and the built-in stores as rlr::Storage.
//
// The public types mirror the core's (HardState, SnapshotMeta) with the membership as
// rlr::Membership instead of core::Configuration; entries pass through as they are (a
// span, no copy), so a write costs the adapter nothing per entry. A snapshot converts
// its membership (only at snapshot installs and compactions).
#pragma once

#include <memory>

#include "rlr/storage.h"
#include "storage/storage.h"

namespace rlr::storage {

[[nodiscard]] core::Configuration to_configuration(const Membership& m);
[[nodiscard]] Membership to_membership(const core::Configuration& c);
[[nodiscard]] core::SnapshotMeta to_core(const rlr::SnapshotMeta& s);
[[nodiscard]] rlr::SnapshotMeta to_public(const core::SnapshotMeta& s);

/// A user's store under the runtime. While the store's snapshot is at index 0 with no
/// members (it was never compacted nor given a snapshot), it reads as holding
/// `initial`, the node's founding configuration, as the built-in stores do from birth.
class UserStorage final : public Storage {
 public:
  UserStorage(std::shared_ptr<rlr::Storage> user, core::Configuration initial)
      : user_(std::move(user)), initial_(std::move(initial)) {}

  [[nodiscard]] LogIndex first_index() const override { return user_->first_index(); }
  [[nodiscard]] LogIndex last_index() const override { return user_->last_index(); }
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                                std::size_t max_bytes) const override {
    return user_->read(from, to, max_entries, max_bytes);
  }
  [[nodiscard]] Result<HardState> hard_state() const override;
  [[nodiscard]] Result<LogIndex> applied() const override { return user_->applied(); }
  [[nodiscard]] Identity identity() const override;
  [[nodiscard]] Result<SnapshotMeta> snapshot() const override;
  [[nodiscard]] Status persist(const PersistRequest& req) override;
  [[nodiscard]] Status compact(const SnapshotMeta& s) override;

 private:
  std::shared_ptr<rlr::Storage> user_;
  const core::Configuration initial_;
};

/// A built-in store as an rlr::Storage (rlr::make_memory_storage, rlr::open_rocksdb_storage).
class PublicStorage final : public rlr::Storage {
 public:
  explicit PublicStorage(std::unique_ptr<storage::Storage> inner) : inner_(std::move(inner)) {}

  [[nodiscard]] LogIndex first_index() const override { return inner_->first_index(); }
  [[nodiscard]] LogIndex last_index() const override { return inner_->last_index(); }
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                                std::size_t max_bytes) const override {
    return inner_->read(from, to, max_entries, max_bytes);
  }
  [[nodiscard]] Result<rlr::HardState> hard_state() const override;
  [[nodiscard]] Result<LogIndex> applied() const override { return inner_->applied(); }
  [[nodiscard]] StorageIdentity identity() const override;
  [[nodiscard]] Result<rlr::SnapshotMeta> snapshot() const override;
  [[nodiscard]] Status persist(const rlr::PersistRequest& req) override;
  [[nodiscard]] Status compact(const rlr::SnapshotMeta& s) override;

 private:
  std::unique_ptr<storage::Storage> inner_;  // (`Storage` here names the base, rlr::Storage)
};

}  // namespace rlr::storage
