/// \file
/// librlr — the conformance suite of the storage seam (rlr/storage.h), for anyone who
/// writes a store.
///
/// check_storage() holds an implementation to the contract rlr/storage.h writes out, on
/// fresh stores it opens through a factory (and opens again, as a restart would): a fresh
/// store's state; entries, hard state and applied checkpoint written in one step and read
/// back exactly, also after reopening; reads bounded by count and bytes; typed errors
/// outside the retained log; a suffix replaced by later entries; entries that do not
/// continue the log refused with nothing changed; compaction; a leader's snapshot that
/// keeps the suffix only when the terms match; reads concurrent with a writer that never
/// see a torn or altered entry. What it cannot check in one process is the crash contract
/// (a power cut during persist()): test that with your own fault injection.
///
/// Example (Catch2):
/// \code{.cpp}
///   class MyFactory : public rlr::testing::StorageFactory {
///    public:
///     rlr::Result<std::shared_ptr<rlr::Storage>> open(const rlr::StorageIdentity& id) override {
///       return MyStore::open(dir_ / std::to_string(id.node_id.value()), id);
///     }
///   };
///   TEST_CASE("my store keeps the contract") {
///     MyFactory f;
///     const rlr::Status s = rlr::testing::check_storage(f);
///     INFO(s.to_string());
///     CHECK(s.is_ok());
///   }
/// \endcode
///
/// Link rlr_testing. Thread-safety: one check at a time per factory.
#pragma once

#include <map>
#include <memory>
#include <string>

#include "rlr/export.h"
#include "rlr/status.h"
#include "rlr/storage.h"

namespace rlr::testing {

/// Opens the stores that check_storage() tests.
class RLR_API StorageFactory {
 public:
  virtual ~StorageFactory() = default;
  /// Opens the store of `identity`: a new, empty one the first time, and the same store
  /// again (as after a restart) when asked once the previous handle was released. The
  /// suite uses a new node id for each check.
  [[nodiscard]] virtual Result<std::shared_ptr<Storage>> open(const StorageIdentity& identity) = 0;
};

/// Runs every check; Ok, or the first violation (InvalidArgument naming the check and
/// what was expected and seen, or the store's own error where one was not expected).
[[nodiscard]] RLR_API Status check_storage(StorageFactory& factory);

/// The built-in in-memory store: a store lives as long as the factory.
class RLR_API MemoryStorageFactory final : public StorageFactory {
 public:
  [[nodiscard]] Result<std::shared_ptr<Storage>> open(const StorageIdentity& identity) override;

 private:
  std::map<NodeId, std::shared_ptr<Storage>> stores_;
};

/// The built-in RocksDB store, one subdirectory of `directory` per node id.
class RLR_API RocksDbStorageFactory final : public StorageFactory {
 public:
  /// Stores go in subdirectories `node-ID` of `directory`, one per node id.
  explicit RocksDbStorageFactory(std::string directory) : directory_(std::move(directory)) {}
  [[nodiscard]] Result<std::shared_ptr<Storage>> open(const StorageIdentity& identity) override;

 private:
  std::string directory_;
};

}  // namespace rlr::testing
