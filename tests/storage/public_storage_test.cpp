// The public storage seam (rlr/storage.h): the conformance suite
// (rlr/storage_conformance.h) passes the built-in stores and fails stores that break the
// contract, naming the check; a node runs on a store given to NodeBuilder::storage(),
// keeps its log across a restart on it, and refuses a store of another node.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <thread>

#include "rlr/node.h"
#include "rlr/storage_conformance.h"
#include "storage_test_util.h"

using namespace rlr;
using namespace std::chrono_literals;

namespace {

enum class Breach { AcceptGap, KeepSuffix, ForgetHardState, AlterPayload };

/// The built-in memory store with one deliberate breach of the contract.
class Breaching final : public Storage {
 public:
  Breaching(std::shared_ptr<Storage> inner, Breach b) : inner_(std::move(inner)), b_(b) {}
  LogIndex first_index() const override { return inner_->first_index(); }
  LogIndex last_index() const override { return inner_->last_index(); }
  Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t n, std::size_t bytes) const override {
    auto r = inner_->read(from, to, n, bytes);
    if (r && b_ == Breach::AlterPayload) {
      for (Entry& e : r.value()) {
        if (e.index.value() % 17 == 0) e.payload = Bytes::copy_of("altered");
      }
    }
    return r;
  }
  Result<HardState> hard_state() const override {
    if (b_ == Breach::ForgetHardState) return HardState{};
    return inner_->hard_state();
  }
  Result<LogIndex> applied() const override { return inner_->applied(); }
  StorageIdentity identity() const override { return inner_->identity(); }
  Result<SnapshotMeta> snapshot() const override { return inner_->snapshot(); }
  Status persist(const PersistRequest& req) override {
    if (b_ == Breach::AcceptGap && !req.entries.empty() && req.entries.front().index > last_index().next()) {
      return Status::ok();  // claims a step it did not write
    }
    if (b_ == Breach::KeepSuffix && !req.entries.empty() && req.entries.front().index <= last_index()) {
      // Writes only the entries past the stored end, keeping the old suffix.
      std::vector<Entry> tail;
      for (const Entry& e : req.entries) {
        if (e.index > last_index()) tail.push_back(e);
      }
      PersistRequest r = req;
      r.entries = tail;
      return inner_->persist(r);
    }
    return inner_->persist(req);
  }
  Status compact(const SnapshotMeta& s) override { return inner_->compact(s); }

 private:
  std::shared_ptr<Storage> inner_;
  Breach b_;
};

class BreachingFactory final : public testing::StorageFactory {
 public:
  explicit BreachingFactory(Breach b) : b_(b) {}
  Result<std::shared_ptr<Storage>> open(const StorageIdentity& id) override {
    auto inner = memory_.open(id);
    if (!inner) return inner.status();
    return std::shared_ptr<Storage>(std::make_shared<Breaching>(inner.value(), b_));
  }

 private:
  testing::MemoryStorageFactory memory_;
  Breach b_;
};

}  // namespace

TEST_CASE("storage conformance: the built-in stores pass", "[storage][seam]") {
  testing::MemoryStorageFactory memory;
  const Status m = testing::check_storage(memory);
  INFO(m.to_string());
  CHECK(m.is_ok());
  storage::test::TempDir dir("rlr-public-storage");
  testing::RocksDbStorageFactory rocks(dir.path());
  const Status r = testing::check_storage(rocks);
  INFO(r.to_string());
  CHECK(r.is_ok());
}

TEST_CASE("storage conformance: stores that break the contract fail by name", "[storage][seam]") {
  const std::pair<Breach, std::string> breaches[] = {
      {Breach::AcceptGap, "do not continue the log"},
      {Breach::KeepSuffix, "suffix replaced"},
      {Breach::ForgetHardState, "one step, read back"},
      {Breach::AlterPayload, "one step, read back"},
  };
  for (const auto& [breach, check] : breaches) {
    BreachingFactory f(breach);
    const Status s = testing::check_storage(f);
    INFO(s.to_string());
    CHECK_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Matchers::Contains(check));
  }
}

TEST_CASE("a node runs on a store given to the builder, and keeps its log across a restart on it",
          "[storage][seam]") {
  storage::test::TempDir dir("rlr-node-store");
  const StorageIdentity id{"solo", NodeId{1}};
  auto build = [&] {
    auto store = open_rocksdb_storage(dir.sub("n1"), id);
    REQUIRE(store.is_ok());
    return NodeBuilder()
        .cluster_id("solo")
        .id(NodeId{1})
        .listen("127.0.0.1", 0)
        .member(NodeId{1}, "127.0.0.1", 1)
        .tick(5ms)
        .election_ticks(4)
        .storage(store.value())
        .build();
  };
  LogIndex written;
  {
    auto node = build();
    INFO(node.status().to_string());
    REQUIRE(node.is_ok());
    for (int i = 0; i < 50 && node.value()->role() != Role::Leader; ++i) std::this_thread::sleep_for(20ms);
    auto r = node.value()->propose_sync(Bytes::copy_of("kept"), 2s);
    REQUIRE(r.is_ok());
    written = r.value().index;
  }
  auto node = build();
  REQUIRE(node.is_ok());
  for (int i = 0; i < 50 && node.value()->role() != Role::Leader; ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(node.value()->propose_sync(Bytes::copy_of("after"), 2s).is_ok());
  auto sub = node.value()->subscribe(written);
  REQUIRE(sub.is_ok());
  auto batch = sub.value()->next(1s);
  REQUIRE(batch.is_ok());
  REQUIRE_FALSE(batch.value().entries.empty());
  CHECK(batch.value().entries.front().index == written);
  CHECK(batch.value().entries.front().payload == Bytes::copy_of("kept"));
}

TEST_CASE("the builder refuses a store of another node", "[storage][seam]") {
  auto node = NodeBuilder()
                  .cluster_id("a")
                  .id(NodeId{1})
                  .member(NodeId{1}, "127.0.0.1", 1)
                  .storage(make_memory_storage(StorageIdentity{"a", NodeId{2}}))
                  .build();
  REQUIRE_FALSE(node.is_ok());
  CHECK(node.status().code() == ErrorCode::WrongCluster);
}
