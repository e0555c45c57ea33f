// The core's own account of its campaigns and role changes (Raft::events()), which the
// node's metrics and role-change history report, and the leader commit index a follower
// records (its /readyz lag).
#include "test_cluster.h"

namespace rlr::test {
namespace {

TEST_CASE("events: an elected leader counts its campaign; its followers heard it", "[features][events]") {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.settle(1, 3);
  const auto& e1 = c.node(1).events();
  CHECK(e1.elections_started == 1);
  CHECK(e1.elections_won == 1);
  CHECK(e1.last_reason == RoleChangeReason::ElectionWon);
  for (std::uint64_t id : {2, 3}) {
    INFO("node " << id);
    CHECK(c.node(id).events().elections_won == 0);
    CHECK(c.node(id).events().last_reason == RoleChangeReason::LeaderHeard);
    CHECK(c.node(id).leader_commit() == c.node(1).commit_index());
  }
  CHECK(c.node(1).leader_commit() == LogIndex{});  // a leader records none
}

TEST_CASE("events: an isolated leader steps down for want of a quorum", "[features][events]") {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.settle(1, 2);
  c.isolate(1);
  for (int i = 0; i < 3 * static_cast<int>(kElectionTicks) && c.node(1).role() == Role::Leader; ++i) c.tick(1, 1);
  REQUIRE(c.node(1).role() == Role::Follower);
  const auto& e = c.node(1).events();
  INFO(c.node(1).describe());
  CHECK(e.last_reason == RoleChangeReason::QuorumLost);
  CHECK(e.elections_won == 1);
  // Its next campaign, an election timeout later, says so.
  for (int i = 0; i < 3 * static_cast<int>(kElectionTicks) && c.node(1).role() == Role::Follower; ++i) c.tick(1, 1);
  CHECK(c.node(1).events().last_reason == RoleChangeReason::ElectionTimeout);
}

TEST_CASE("events: a follower told its leader's connection dropped says so", "[features][events]") {
  Cluster c({1, 2, 3});
  c.elect(1);
  c.settle(1, 3);
  c.crash(1);
  c.node(2).peer_disconnected(N(1));
  CHECK(c.node(2).leader() == kNoNode);
  CHECK(c.node(2).events().last_reason == RoleChangeReason::LeaderLost);
  SECTION("the early campaign is labelled leader_lost") {
    // Node 2 ranks first among the survivors: it campaigns after one fast-campaign wait.
    for (int i = 0; i < 10 && c.node(2).role() == Role::Follower; ++i) c.node(2).tick();
    REQUIRE(c.node(2).role() == Role::PreCandidate);
    CHECK(c.node(2).events().last_reason == RoleChangeReason::LeaderLost);
    return;
  }
  const std::uint64_t pre_votes = c.node(2).events().pre_votes_started;
  c.node(3).peer_disconnected(N(1));
  c.tick_all(3 * RaftOptions{}.disconnect_campaign_ticks);
  INFO(c.node(2).describe() << "\n" << c.node(3).describe());
  const std::uint64_t campaigns = c.node(2).events().pre_votes_started + c.node(3).events().pre_votes_started;
  CHECK(campaigns > pre_votes);
  CHECK(c.node(2).events().elections_won + c.node(3).events().elections_won == 1);
}

}  // namespace
}  // namespace rlr::test
