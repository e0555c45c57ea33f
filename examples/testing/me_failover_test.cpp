// Testing your own state machine with rlr/testing.h: the matching engine across a leader
// failover, in one process, with no sockets and no sleeps.
//
// The cluster below runs three replicas of the real runtime on the kit's manual clock:
// time moves only while the kit waits for something (a leader, a commit), so the whole
// test is deterministic for its seed and takes a few milliseconds of CPU. The checks are
// the ones a venue cares about:
//  - exactly once: downstream, deduplicating by output key, receives exactly the outputs
//    a single order book produces from the committed commands, nothing missing, nothing
//    extra, no key with two different payloads, although the leader died mid-stream and
//    its successor re-emitted what downstream had not acknowledged;
//  - determinism: every replica's output digests agree at every checkpoint, and their
//    books are identical.
#include <catch2/catch.hpp>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "matching_engine/matching_engine.h"
#include "matching_engine/order_book.h"
#include "rlr/testing.h"

namespace {

using rlr::NodeId;
using rlr::me::MatchingEngine;

/// The i-th order of the test: buys and sells around 100 that cross often.
std::string order(std::uint64_t i) {
  const auto side = i % 2 == 0 ? rlr::me::Side::Buy : rlr::me::Side::Sell;
  const std::uint64_t price = side == rlr::me::Side::Buy ? 99 + i % 3 : 100 - i % 3;
  return rlr::me::encode(rlr::me::NewOrder{i + 1, side, "XYZ", price, 1 + i % 5});
}

/// Collects what a state machine emits, keyed as the egress keys it.
class Collect final : public rlr::Egress {
 public:
  explicit Collect(rlr::LogIndex index) : index_(index) {}
  void emit(std::string_view topic, rlr::Bytes payload) override {
    out.push_back(rlr::Output{rlr::OutputKey{index_, position_++}, std::string(topic), std::move(payload)});
  }
  std::vector<rlr::Output> out;

 private:
  rlr::LogIndex index_;
  std::uint32_t position_ = 0;
};

}  // namespace

TEST_CASE("matching engine: egress exactly once across a leader failover, replicas agree",
          "[example][testing]") {
  rlr::testing::ClusterOptions options;
  options.voters = 3;
  options.seed = 7;
  auto made = rlr::testing::Cluster::create(options);
  REQUIRE(made.is_ok());
  auto& cluster = *made.value();

  rlr::ApplyOptions apply;
  apply.digest_interval = 10;
  REQUIRE(cluster.attach([](NodeId) { return std::make_shared<MatchingEngine>(); }, apply).is_ok());

  const auto first = cluster.wait_for_leader();
  REQUIRE(first.is_ok());

  // 60 orders one after another, then 40 at once, and the leader dies while they are in
  // flight: some commit before the crash, some only under the next leader, some never.
  std::map<rlr::LogIndex, std::string> acknowledged;
  for (std::uint64_t i = 0; i < 60; ++i) {
    const auto r = cluster.propose(rlr::Bytes::copy_of(order(i)));
    REQUIRE(r.is_ok());
    acknowledged[r.value().index] = order(i);
  }
  for (std::uint64_t i = 60; i < 100; ++i) {
    cluster.propose_async(first.value(), rlr::Bytes::copy_of(order(i)), {},
                          [&acknowledged, i](rlr::Result<rlr::ProposeResult> r) {
                            if (r) acknowledged[r.value().index] = order(i);
                          });
  }
  cluster.advance(std::chrono::milliseconds{2});
  REQUIRE(cluster.crash(first.value()).is_ok());

  // 40 more through whoever leads next; then the old leader comes back and catches up.
  for (std::uint64_t i = 100; i < 140; ++i) {
    const auto r = cluster.propose(rlr::Bytes::copy_of(order(i)));
    REQUIRE(r.is_ok());
    acknowledged[r.value().index] = order(i);
  }
  CHECK(cluster.leader() != first.value());
  REQUIRE(cluster.restart(first.value()).is_ok());
  REQUIRE(cluster.wait_applied(cluster.last_committed()));

  // The log as committed: every acknowledged order is in it, at the index acknowledged.
  const auto log = cluster.committed(first.value(), rlr::LogIndex{1});
  REQUIRE(log.is_ok());
  std::map<rlr::LogIndex, std::string> committed;
  for (const rlr::CommittedEntry& e : log.value()) committed[e.index] = std::string(e.payload.as_string_view());
  for (const auto& [index, cmd] : acknowledged) CHECK(committed[index] == cmd);
  CHECK(committed.size() > 100);  // most of the in-flight orders made it, too

  // The reference: one order book applying the committed orders in log order.
  MatchingEngine reference;
  std::map<rlr::OutputKey, rlr::Output> expected;
  for (const auto& [index, cmd] : committed) {
    rlr::Entry e;
    e.index = index;
    e.payload = rlr::Bytes::copy_of(cmd);
    rlr::ApplyContext ctx;
    ctx.index = index;
    Collect collect(index);
    reference.apply(e, ctx, collect);
    for (rlr::Output& o : collect.out) expected.emplace(o.key, std::move(o));
  }

  // Exactly once: deduplicated by key, downstream holds exactly the reference's outputs;
  // only leaders let outputs out.
  const rlr::testing::Downstream downstream = cluster.downstream();
  CHECK(downstream.conflicts.empty());
  CHECK(downstream.not_leader == 0);
  REQUIRE(downstream.outputs.size() == expected.size());
  for (const auto& [key, want] : expected) {
    const auto it = downstream.outputs.find(key);
    REQUIRE(it != downstream.outputs.end());
    CHECK(it->second.topic == want.topic);
    CHECK(it->second.payload == want.payload);
  }

  // Every replica computed the same outputs and holds the same book.
  CHECK(cluster.digests_agree().is_ok());
  for (NodeId id : cluster.ids()) {
    const auto me = std::dynamic_pointer_cast<MatchingEngine>(cluster.state_machine(id));
    REQUIRE(me != nullptr);
    CHECK(me->dump() == reference.dump());
  }
}
