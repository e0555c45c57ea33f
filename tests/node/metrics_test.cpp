// Node::metrics() on a live in-process cluster: the counters, gauges and histograms move
// with what the nodes do, and role changes carry their reasons.
#include <catch2/catch.hpp>

#include <algorithm>
#include <future>

#include "local_cluster.h"
#include "node_test_util.h"

using namespace rlr;
using namespace std::chrono_literals;
using rlr::testing::LocalCluster;
using namespace rlr::testing;

namespace {

double value_of(const NodeMetrics& m, const char* name, std::vector<MetricLabel> labels = {}) {
  auto v = m.value(name, labels);
  INFO("metric " << name);
  REQUIRE(v.has_value());
  return *v;
}

const MetricSample& histogram_of(const NodeMetrics& m, const char* name) {
  const MetricFamily* f = m.find(name);
  INFO("histogram " << name);
  REQUIRE(f != nullptr);
  REQUIRE(f->type == MetricType::Histogram);
  REQUIRE(!f->samples.empty());
  return f->samples.front();
}

}  // namespace

TEST_CASE("metrics: commits, proposals, latencies and follower lag move with the load", "[node][metrics]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeMetrics before = c.node(leader).metrics();
  const double committed_before = value_of(before, "rlr_entries_committed_total");
  REQUIRE(propose_many(c.node(leader), 2000, 256, "m") == 2000);
  const NodeMetrics m = c.node(leader).metrics();

  CHECK(value_of(m, "rlr_proposals_accepted_total") == 2000);
  CHECK(value_of(m, "rlr_entries_committed_total") >= committed_before + 2000);
  CHECK(value_of(m, "rlr_committed_payload_bytes_total") > 0);
  CHECK(value_of(m, "rlr_role", {{"role", "leader"}}) == 1);
  CHECK(value_of(m, "rlr_role", {{"role", "follower"}}) == 0);
  CHECK(value_of(m, "rlr_leader_id") == static_cast<double>(leader.value()));
  CHECK(value_of(m, "rlr_elections_won_total") == 1);
  CHECK(value_of(m, "rlr_commit_index") >= 2001);
  CHECK(value_of(m, "rlr_proposals_rejected_total", {{"reason", "busy"}}) == 0);
  CHECK(histogram_of(m, "rlr_read_index_duration_seconds").count == 0);
  // Every proposal of this node committed, and each one's latency was recorded.
  const MetricSample& commit = histogram_of(m, "rlr_proposal_commit_duration_seconds");
  CHECK(commit.count == 2000);
  CHECK(commit.sum > 0);
  CHECK(histogram_quantile(commit, 0.5) > 0);
  CHECK(histogram_of(m, "rlr_storage_persist_duration_seconds").count > 0);
  const MetricSample& batch = histogram_of(m, "rlr_append_batch_entries");
  CHECK(batch.sum >= 2000);  // every entry was written in some batch
  CHECK(batch.count < 2000);  // and batches held more than one entry on average

  const MetricFamily* lag = m.find("rlr_follower_lag_entries");
  REQUIRE(lag != nullptr);
  CHECK(lag->samples.size() == 2);
  const MetricFamily* match = m.find("rlr_follower_match_index");
  REQUIRE(match != nullptr);
  for (const auto& s : match->samples) CHECK(s.label("peer") != std::to_string(leader.value()));

  for (const auto& s : m.families.front().samples) {
    CHECK(s.labels.at(0) == MetricLabel{"cluster", "test"});
    CHECK(s.labels.at(1) == MetricLabel{"node", std::to_string(leader.value())});
  }
  CHECK(std::is_sorted(m.families.begin(), m.families.end(),
                       [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; }));
  REQUIRE(!m.role_changes.empty());
  CHECK(m.role_changes.back().role == Role::Leader);
  CHECK(m.role_changes.back().reason == RoleChangeReason::ElectionWon);

  // Each confirmed read_index() is one observation of its latency.
  for (int i = 0; i < 3; ++i) REQUIRE(c.node(leader).read_index(2s).is_ok());
  const NodeMetrics after_reads = c.node(leader).metrics();
  const MetricSample& reads = histogram_of(after_reads, "rlr_read_index_duration_seconds");
  CHECK(reads.count == 3);
  CHECK(reads.sum > 0);
}

TEST_CASE("metrics: a session retry is a duplicate, not a second accepted proposal", "[node][metrics]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  auto propose = [&](std::uint64_t sequence) {
    std::promise<Result<ProposeResult>> p;
    auto f = p.get_future();
    c.node(leader).propose(Bytes::copy_of("s"), ClientSession{7, sequence},
                           [&p](Result<ProposeResult> r) { p.set_value(std::move(r)); });
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    return f.get();
  };
  const auto first = propose(1);
  REQUIRE(first.is_ok());
  const auto retry = propose(1);
  REQUIRE(retry.is_ok());
  CHECK(retry.value().index == first.value().index);
  const NodeMetrics m = c.node(leader).metrics();
  CHECK(value_of(m, "rlr_proposals_accepted_total") == 1);
  CHECK(value_of(m, "rlr_session_duplicates_total") == 1);
}

TEST_CASE("metrics: a follower counts refused proposals and knows its leader's commit", "[node][metrics]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(propose_many(c.node(leader), 100, 50, "f") == 100);
  const NodeId follower{leader.value() % 3 + 1};
  auto r = c.node(follower).propose_sync(Bytes::copy_of("no"), 1s);
  REQUIRE(r.status().code() == ErrorCode::NotLeader);
  // The follower hears the commit index with the next append or heartbeat.
  NodeMetrics m;
  for (int i = 0; i < 200; ++i) {
    m = c.node(follower).metrics();
    if (m.value("rlr_leader_commit_index").value_or(0) >= 101) break;
    std::this_thread::sleep_for(10ms);
  }
  CHECK(value_of(m, "rlr_proposals_rejected_total", {{"reason", "not_leader"}}) == 1);
  CHECK(value_of(m, "rlr_leader_commit_index") >= 101);
  CHECK(value_of(m, "rlr_role", {{"role", "follower"}}) == 1);
  CHECK(m.find("rlr_follower_lag_entries") == nullptr);  // only a leader has followers
  CHECK(m.find("rlr_proposal_commit_duration_seconds")->samples.front().count == 0);
  REQUIRE(!m.role_changes.empty());
  CHECK(m.role_changes.back().leader == leader);
}

TEST_CASE("metrics: a subscription is counted with its lag, and a transfer is the reason given",
          "[node][metrics]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(propose_many(c.node(leader), 50, 50, "s") == 50);
  {
    auto sub = c.node(leader).subscribe(LogIndex{1});
    REQUIRE(sub.is_ok());
    const NodeMetrics m = c.node(leader).metrics();
    CHECK(value_of(m, "rlr_subscribers") == 1);
    CHECK(value_of(m, "rlr_subscriber_lag_entries") >= 50);  // it has read nothing yet
    auto batch = sub.value()->next(1s);
    REQUIRE(batch.is_ok());
    const NodeMetrics after = c.node(leader).metrics();
    CHECK(value_of(after, "rlr_subscriber_lag_entries") < value_of(m, "rlr_subscriber_lag_entries"));
  }
  CHECK(value_of(c.node(leader).metrics(), "rlr_subscribers") == 0);

  const NodeId target{leader.value() % 3 + 1};
  REQUIRE(c.node(leader).transfer_leadership(target, 5s).is_ok());
  const NodeMetrics t = c.node(target).metrics();
  const bool transferred = std::any_of(t.role_changes.begin(), t.role_changes.end(), [](const RoleChange& rc) {
    return rc.reason == RoleChangeReason::TransferRequested;
  });
  CHECK(transferred);
  CHECK(t.role_changes.back().reason == RoleChangeReason::ElectionWon);
  CHECK(value_of(c.node(leader).metrics(), "rlr_leader_changes_total") >= 2);
}
