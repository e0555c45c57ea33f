// A node whose storage refuses a write: it stops taking part, says so, and a leader
// hands its leadership over first; the others go on and lose nothing acknowledged.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "local_cluster.h"
#include "node_test_util.h"

using namespace rlr;
using namespace std::chrono_literals;
using rlr::testing::LocalCluster;

namespace {

/// Waits until a node other than `excluded` leads and every node but `excluded` agrees.
NodeId wait_other_leader(LocalCluster& c, NodeId excluded) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    for (auto& [id, n] : c.nodes()) {
      if (id == excluded || n->role() != Role::Leader) continue;
      bool agreed = true;
      for (auto& [other, m] : c.nodes()) agreed = agreed && (other == excluded || m->leader() == id);
      if (agreed) return id;
    }
    std::this_thread::sleep_for(2ms);
  }
  return kNoNode;
}

bool saw_reason(const Node& n, RoleChangeReason reason) {
  for (const RoleChange& rc : n.metrics().role_changes) {
    if (rc.reason == reason) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("node: a leader whose storage fails hands leadership to a voter and stops claiming it",
          "[node][storage-failure]") {
  LocalCluster c(3);
  const NodeId old = c.wait_leader();
  REQUIRE(old != kNoNode);
  REQUIRE(rlr::testing::propose_many(c.node(old), 100, 16, "before") == 100);

  c.refuse_writes(old, true);
  auto refused = c.node(old).propose_sync(Bytes::copy_of("unwritten"), 5s);
  REQUIRE_FALSE(refused.is_ok());
  CHECK(refused.status().code() == ErrorCode::IoError);

  // It says it does not lead, knows no leader, and why.
  node::NodeImpl& failed = c.node(old);
  CHECK(failed.role() == Role::Follower);
  CHECK(failed.leader() == kNoNode);
  const ClusterInfo ci = failed.cluster_info();
  CHECK(ci.role == Role::Follower);
  CHECK(ci.leader == kNoNode);
  CHECK(ci.storage_error.find("disk full (injected)") != std::string::npos);
  CHECK(saw_reason(failed, RoleChangeReason::StorageFailed));
  auto later = failed.propose_sync(Bytes::copy_of("to a failed node"), 1s);
  REQUIRE_FALSE(later.is_ok());
  CHECK(later.status().code() == ErrorCode::NotLeader);

  // Another voter leads, elected because the failing leader handed over (TimeoutNow), not
  // after an election timeout.
  const NodeId next = wait_other_leader(c, old);
  REQUIRE(next != kNoNode);
  CHECK(saw_reason(c.node(next), RoleChangeReason::TransferRequested));
  REQUIRE(rlr::testing::propose_many(c.node(next), 100, 16, "after") == 100);

  // Nothing acknowledged is lost.
  const LogIndex commit = c.node(next).cluster_info().commit;
  std::set<std::string> payloads;
  for (const auto& e : rlr::testing::read_all(c.node(next), LogIndex{1}, commit)) {
    payloads.emplace(e.payload.as_string_view());
  }
  for (int i = 0; i < 100; ++i) {
    CHECK(payloads.count(fmt::format("before-{}", i)) == 1);
    CHECK(payloads.count(fmt::format("after-{}", i)) == 1);
  }
}

TEST_CASE("node: a follower whose storage fails stops taking part; the others commit on",
          "[node][storage-failure]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  NodeId follower;
  for (auto& [id, n] : c.nodes()) {
    if (id != leader) follower = id;
  }
  const auto match_of = [&](NodeId id) {
    for (const auto& m : c.node(leader).cluster_info().members) {
      if (m.id == id) return m.match;
    }
    return LogIndex{};
  };
  c.refuse_writes(follower, true);
  REQUIRE(rlr::testing::propose_many(c.node(leader), 200, 16, "x") == 200);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.node(follower).cluster_info().storage_error.empty() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(2ms);
  }
  CHECK(c.node(follower).cluster_info().storage_error.find("disk full (injected)") != std::string::npos);
  CHECK(c.node(follower).role() == Role::Follower);
  CHECK(c.node(follower).leader() == kNoNode);
  CHECK(c.node(leader).role() == Role::Leader);
  CHECK(c.node(leader).cluster_info().storage_error.empty());
  // It acknowledges nothing any more: the leader's view of what it stores stays put.
  const LogIndex frozen = match_of(follower);
  REQUIRE(rlr::testing::propose_many(c.node(leader), 100, 16, "y") == 100);
  CHECK(match_of(follower) == frozen);
  CHECK(c.node(leader).cluster_info().last_index > frozen.plus(99));
}

TEST_CASE("node: a leader whose own writes stay slow hands leadership to a caught-up voter",
          "[node][slow-disk]") {
  // Long election timeouts: the followers must not elect on their own while the slow
  // leader's raft thread waits for its writes; the leader itself must hand over.
  for (const bool persist_thread : {false, true}) {
    INFO("persist_thread " << persist_thread);
    LocalCluster c(3, [&](NodeOptions& o) {
      o.election_ticks = 100;
      o.heartbeat_ticks = 4;
      o.slow_disk_write = 30ms;
      o.slow_disk_period = 300ms;
      o.persist_thread = persist_thread;
    });
    const NodeId old = c.wait_leader();
    REQUIRE(old != kNoNode);
    REQUIRE(rlr::testing::propose_many(c.node(old), 200, 16, "fast") == 200);
    for (auto& [id, n] : c.nodes()) CHECK_FALSE(saw_reason(*n, RoleChangeReason::TransferRequested));

    c.slow_writes(old, 40);
    // Keep it writing until someone else leads.
    NodeId next;
    const auto deadline = std::chrono::steady_clock::now() + 20s;
    for (int k = 0; next == kNoNode && std::chrono::steady_clock::now() < deadline; ++k) {
      (void)c.propose_on_leader(Bytes::copy_of(fmt::format("slow-{}", k)), ClientSession{},
                                [](Result<ProposeResult>) {});
      std::this_thread::sleep_for(5ms);
      for (auto& [id, n] : c.nodes()) {
        if (id != old && n->role() == Role::Leader) next = id;
      }
    }
    REQUIRE(next != kNoNode);
    CHECK(saw_reason(c.node(next), RoleChangeReason::TransferRequested));
    c.slow_writes(old, 0);
    CHECK(wait_other_leader(c, old) == next);
    REQUIRE(rlr::testing::propose_many(c.node(next), 50, 16, "after") == 50);
  }
}
