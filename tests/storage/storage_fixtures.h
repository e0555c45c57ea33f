// The two Storage implementations behind one factory interface, so every conformance
// test runs against both (TEMPLATE_TEST_CASE over MemoryFixture and RocksFixture).
#pragma once

#include <memory>
#include <string>

#include "storage/memory_storage.h"
#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"

namespace rlr::storage::test {

inline Identity test_identity() { return Identity{"conformance", NodeId{1}}; }

struct MemoryFixture {
  static constexpr bool kDurable = false;
  bool sync = true;  // no meaning here; mirrors RocksFixture
  std::unique_ptr<Storage> make(core::Configuration initial = config_of({1, 2, 3}),
                                Identity id = test_identity()) {
    return std::make_unique<MemoryStorage>(std::move(id), std::move(initial));
  }
};

struct RocksFixture {
  static constexpr bool kDurable = true;
  TempDir dir{"rlr-conformance"};
  int stores = 0;
  bool sync = true;  // fsync every persist (the production setting)
  std::unique_ptr<Storage> make(core::Configuration initial = config_of({1, 2, 3}),
                                Identity id = test_identity()) {
    RocksDbOptions o;
    o.path = dir.sub("db" + std::to_string(stores++));
    o.identity = std::move(id);
    o.initial_config = std::move(initial);
    o.sync = sync;
    auto r = RocksDbStorage::open(o);
    RLR_REQUIRE_OK(r);
    return std::move(r).value();
  }
};

}  // namespace rlr::storage::test
