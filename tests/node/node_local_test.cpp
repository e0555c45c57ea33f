// The node runtime over the in-process transport: threads, batching, fan-out, failover,
// membership, with real concurrency but no sockets.
#include <catch2/catch.hpp>

#include <atomic>
#include <future>
#include <thread>
#include <fmt/format.h>

#include "local_cluster.h"
#include "node_test_util.h"

using namespace rlr;
using namespace std::chrono_literals;
using rlr::testing::LocalCluster;
using namespace rlr::testing;


TEST_CASE("node: a 3-node cluster elects one leader and every subscriber sees the same log", "[node]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 5000, 512, "a") == 5000);
  const LogIndex last{c.node(leader).cluster_info().commit};
  std::vector<std::vector<CommittedEntry>> logs;
  for (auto& [id, n] : c.nodes()) {
    logs.push_back(read_all(*n, LogIndex{1}, last));
    check_gap_free(logs.back(), LogIndex{1});
  }
  for (std::size_t i = 1; i < logs.size(); ++i) {
    REQUIRE(logs[i].size() >= logs[0].size());
    for (std::size_t k = 0; k < logs[0].size(); ++k) {
      REQUIRE(logs[i][k].term == logs[0][k].term);
      REQUIRE(logs[i][k].payload == logs[0][k].payload);
    }
  }
  std::size_t normal = 0;
  for (const auto& e : logs[0]) normal += e.kind == EntryKind::Normal ? 1 : 0;
  CHECK(normal == 5000);
}

TEST_CASE("node: a subscription yields what users proposed, sessions as fields, and covers every "
          "index", "[node][subscribe]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  Node& n = c.node(leader);
  // Commands with and without a session, and a membership change between them.
  REQUIRE(n.propose_sync(Bytes::copy_of("plain"), 5s).is_ok());
  auto promise = std::make_shared<std::promise<Result<ProposeResult>>>();
  n.propose(Bytes::copy_of("with session"), ClientSession{77, 5},
            [promise](Result<ProposeResult> r) { promise->set_value(std::move(r)); });
  auto sessioned = promise->get_future().get();
  REQUIRE(sessioned.is_ok());
  const NodeId other = leader == NodeId{1} ? NodeId{2} : NodeId{1};
  REQUIRE(n.transfer_leadership(other, 5s).is_ok());
  Result<ProposeResult> last = Status{ErrorCode::NotLeader, "not yet"};
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (!last.is_ok() && std::chrono::steady_clock::now() < until) {
    last = c.node(other).propose_sync(Bytes::copy_of("after transfer"), 5s);
    if (!last.is_ok()) std::this_thread::sleep_for(10ms);
  }
  REQUIRE(last.is_ok());

  for (auto& [id, node] : c.nodes()) {
    INFO("node " << id.value());
    auto sub = node->subscribe(LogIndex{1});
    REQUIRE(sub.is_ok());
    std::vector<CommittedEntry> got;
    LogIndex covered{1};
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (covered <= last.value().index && std::chrono::steady_clock::now() < deadline) {
      auto batch = sub.value()->next(100ms);
      REQUIRE(batch.is_ok());
      CHECK(batch.value().from == covered);
      CHECK(batch.value().from <= batch.value().next);
      for (auto& e : batch.value().entries) {
        CHECK(e.index >= batch.value().from);
        CHECK(e.index < batch.value().next);
        got.push_back(std::move(e));
      }
      covered = batch.value().next;
    }
    REQUIRE(got.size() == 3);
    CHECK(got[0].payload.as_string_view() == "plain");
    CHECK(got[0].client_id == 0);
    CHECK(got[1].payload.as_string_view() == "with session");
    CHECK(got[1].client_id == 77);
    CHECK(got[1].sequence == 5);
    CHECK(got[1].index == sessioned.value().index);
    CHECK(got[2].payload.as_string_view() == "after transfer");
    CHECK(got[2].index == last.value().index);
    for (const auto& e : got) CHECK(e.kind == EntryKind::Normal);
    // Two leaders' no-ops at least were skipped, not lost.
    CHECK(covered.value() - 1 >= got.size() + 2);
    CHECK(sub.value()->position() == covered);

    // With include_internal: every index, each in its kind; the session still a field.
    const auto all = read_all(*node, LogIndex{1}, last.value().index);
    check_gap_free(all, LogIndex{1});
    std::size_t noops = 0;
    for (const auto& e : all) {
      CHECK(e.kind != EntryKind::Session);
      noops += e.kind == EntryKind::Noop ? 1 : 0;
      if (e.index == sessioned.value().index) {
        CHECK(e.payload.as_string_view() == "with session");
        CHECK(e.client_id == 77);
      }
    }
    CHECK(noops >= 2);
  }
}

TEST_CASE("node: a proposal on a follower fails with NotLeader naming the leader", "[node]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  for (auto& [id, n] : c.nodes()) {
    if (id == leader) continue;
    auto r = n->propose_sync(Bytes::copy_of("x"), 1s);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == ErrorCode::NotLeader);
    CHECK(r.status().leader_hint() == leader);
  }
}

TEST_CASE("node: after the leader stops, a new leader is elected and the log continues", "[node]") {
  const bool persist_thread = GENERATE(false, true);
  INFO("persist_thread " << persist_thread);
  LocalCluster c(3, [&](NodeOptions& o) { o.persist_thread = persist_thread; });
  const NodeId first = c.wait_leader();
  REQUIRE(first != kNoNode);
  REQUIRE(propose_many(c.node(first), 500, 128, "before") == 500);
  c.stop(first);
  const NodeId second = c.wait_leader();
  REQUIRE(second != kNoNode);
  REQUIRE(second != first);
  REQUIRE(propose_many(c.node(second), 500, 128, "after") == 500);
  c.start(first, true);
  const LogIndex last = c.node(second).cluster_info().commit;
  auto restarted = read_all(c.node(first), LogIndex{1}, last);
  check_gap_free(restarted, LogIndex{1});
  REQUIRE(restarted.back().index >= last);
  auto on_leader = read_all(c.node(second), LogIndex{1}, last);
  for (std::size_t k = 0; k < on_leader.size() && k < restarted.size(); ++k) {
    REQUIRE(restarted[k].term == on_leader[k].term);
    REQUIRE(restarted[k].payload == on_leader[k].payload);
  }
}

TEST_CASE("node: leadership transfer moves the leader to the chosen voter", "[node]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeId target{leader.value() % 3 + 1};
  REQUIRE(c.node(leader).transfer_leadership(target, 5s).is_ok());
  CHECK(c.wait_leader() == target);
}

TEST_CASE("node: add a learner, promote it, remove an old voter", "[node]") {
  LocalCluster c(3);
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 200, 64, "x") == 200);
  c.start(NodeId{4}, false);
  REQUIRE(c.node(leader).add_learner(MemberAddress{NodeId{4}, {"127.0.0.1", 9004}}, 5s).is_ok());
  const LogIndex commit = c.node(leader).cluster_info().commit;
  auto learned = read_all(c.node(NodeId{4}), LogIndex{1}, commit);
  check_gap_free(learned, LogIndex{1});
  CHECK(c.node(NodeId{4}).role() == Role::Learner);
  Status promoted = Status{ErrorCode::Timeout, "not tried"};
  for (int i = 0; i < 50 && !promoted.is_ok(); ++i) {
    promoted = c.node(leader).promote(NodeId{4}, 5s);
    if (!promoted.is_ok()) std::this_thread::sleep_for(20ms);
  }
  REQUIRE(promoted.is_ok());
  const NodeId old = leader == NodeId{1} ? NodeId{2} : NodeId{1};
  REQUIRE(c.node(leader).remove(old, 5s).is_ok());
  auto info = c.node(leader).cluster_info();
  std::vector<NodeId> voters;
  for (const auto& m : info.members) if (m.voter) voters.push_back(m.id);
  CHECK(voters.size() == 3);
  CHECK(std::find(voters.begin(), voters.end(), NodeId{4}) != voters.end());
  CHECK(std::find(voters.begin(), voters.end(), old) == voters.end());
  c.stop(old);
  REQUIRE(propose_many(c.node(leader), 100, 32, "y") == 100);
}

TEST_CASE("node: read_index on the leader returns at least the commit index; NotLeader elsewhere", "[node]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 50, 16, "r") == 50);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  auto r = c.node(leader).read_index(2s);
  REQUIRE(r.is_ok());
  CHECK(r.value() >= commit);
  const NodeId follower{leader.value() % 3 + 1};
  auto f = c.node(follower).read_index(1s);
  REQUIRE_FALSE(f.is_ok());
  CHECK(f.status().code() == ErrorCode::NotLeader);
}

TEST_CASE("node: cluster_info reports members, roles and replication on the leader", "[node]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 100, 32, "i") == 100);
  std::this_thread::sleep_for(50ms);
  auto info = c.node(leader).cluster_info();
  CHECK(info.role == Role::Leader);
  CHECK(info.leader == leader);
  REQUIRE(info.members.size() == 3);
  for (const auto& m : info.members) {
    CHECK(m.voter);
    CHECK(m.match >= info.commit);
    CHECK(m.last_contact.count() >= 0);
    CHECK_FALSE(m.address.empty());
  }
}

TEST_CASE("node: complete_on_raft_thread runs callbacks that may propose; blocking calls refuse at once",
          "[node][completion]") {
  LocalCluster c(3, [](NodeOptions& o) { o.complete_on_raft_thread = true; });
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  Node& n = c.node(leader);
  std::promise<void> done;
  Result<ProposeResult> first = Status{ErrorCode::Timeout, "not run"};
  Result<ProposeResult> second = Status{ErrorCode::Timeout, "not run"};
  Status sync_status;
  std::chrono::steady_clock::duration sync_took{};
  LogIndex commit_seen;
  std::thread::id callback_thread;
  n.propose(Bytes::copy_of("a"), [&](Result<ProposeResult> r) {
    first = std::move(r);
    callback_thread = std::this_thread::get_id();
    // propose_sync would wait for the very thread running this callback.
    const auto t0 = std::chrono::steady_clock::now();
    sync_status = n.propose_sync(Bytes::copy_of("b"), 2s).status();
    sync_took = std::chrono::steady_clock::now() - t0;
    commit_seen = n.cluster_info().commit;
    n.propose(Bytes::copy_of("c"), [&](Result<ProposeResult> r2) {
      second = std::move(r2);
      done.set_value();
    });
  });
  REQUIRE(done.get_future().wait_for(10s) == std::future_status::ready);
  REQUIRE(first.is_ok());
  CHECK(callback_thread != std::this_thread::get_id());
  CHECK(sync_status.code() == ErrorCode::InvalidArgument);
  CHECK(sync_took < 1s);
  CHECK(commit_seen >= first.value().index);
  REQUIRE(second.is_ok());
  CHECK(second.value().index > first.value().index);
}

TEST_CASE("node: a node that restarts still compacts its log", "[node][compaction]") {
  // Compaction points (log index + session table) lived only in memory and were taken at
  // multiples of compact_after_entries; a node restarted between two of them forgot its
  // point and kept its whole log (rlr-bench failover: 3M entries, 20 s restarts). The
  // applied index at start-up is a point now.
  constexpr std::uint64_t kKeep = 500;
  LocalCluster c(3, [](NodeOptions& o) { o.compact_after_entries = kKeep; });
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 700, 64, "a") == 700);  // one point (500), not usable yet
  const LogIndex before = c.node(leader).cluster_info().commit;
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.stop(id);
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.start(id, true);
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  CHECK(c.node(leader).cluster_info().first_index == LogIndex{1});
  // The next multiple of kKeep lies ahead; only the restart point is behind applied - kKeep.
  REQUIRE(propose_many(c.node(leader), kKeep + 150, 64, "b") == kKeep + 150);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (c.node(leader).cluster_info().first_index == LogIndex{1} &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  const auto info = c.node(leader).cluster_info();
  INFO("commit before the restart " << before.value() << ", now " << info.commit.value());
  CHECK(info.first_index > LogIndex{1});
  CHECK(info.first_index.value() <= before.value() + 2);  // compacted to the restart point
  auto tail = read_all(c.node(leader), info.first_index, info.commit);
  check_gap_free(tail, info.first_index);
}

TEST_CASE("node: stop() from a proposal callback stops the node", "[node][stop]") {
  // The callback runs on the node's completion thread; stop() used to join that thread
  // from itself (std::system_error).
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  Node& n = c.node(leader);
  std::promise<ErrorCode> stopped;
  n.propose(Bytes::copy_of("last"), [&](Result<ProposeResult> r) {
    CHECK(r.is_ok());
    n.stop();
    stopped.set_value(r.status().code());
  });
  auto f = stopped.get_future();
  REQUIRE(f.wait_for(10s) == std::future_status::ready);
  CHECK(f.get() == ErrorCode::Ok);
  auto after = n.propose_sync(Bytes::copy_of("too late"), 1s);
  REQUIRE_FALSE(after.is_ok());
  CHECK(after.status().code() == ErrorCode::ShuttingDown);
  // ~LocalCluster stops (again) and destroys every node from this thread.
}

TEST_CASE("node: with a small memory log, a follower far behind catches up from storage, "
          "and a restart rebuilds sessions from evicted entries",
          "[node][evict]") {
  constexpr std::size_t kMemory = 32;
  LocalCluster c(3, [](NodeOptions& o) {
    o.memory_log_entries = kMemory;
    o.max_append_entries = 16;
  });
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeId lagging{leader.value() % 3 + 1};
  c.stop(lagging);
  // Session proposals first: a restart must replay them from storage to rebuild the table.
  const ClientSession s1{77, 1};
  auto first = std::make_shared<std::promise<Result<ProposeResult>>>();
  REQUIRE(c.propose_on_leader(Bytes::copy_of("once"), s1,
                              [first](Result<ProposeResult> r) { first->set_value(r); }));
  const auto original = first->get_future().get();
  REQUIRE(original.is_ok());
  REQUIRE(propose_many(c.node(leader), 400, 64, "far") == 400);
  const auto before = c.node(leader).cluster_info();
  INFO("the leader holds only the recent entries in memory");
  CHECK(before.memory_log_entries <= kMemory);
  CHECK(before.last_index.value() - before.first_index.value() + 1 > 400);

  c.start(lagging, true);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.node(lagging).cluster_info().commit < before.commit &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  INFO("the restarted follower got its 400+ missing entries from the leader's storage");
  REQUIRE(c.node(lagging).cluster_info().commit >= before.commit);
  auto theirs = read_all(c.node(lagging), LogIndex{1}, before.commit);
  auto ours = read_all(c.node(leader), LogIndex{1}, before.commit);
  check_gap_free(theirs, LogIndex{1});
  REQUIRE(theirs.size() == ours.size());
  for (std::size_t k = 0; k < ours.size(); ++k) {
    REQUIRE(theirs[k].term == ours[k].term);
    REQUIRE(theirs[k].payload == ours[k].payload);
  }

  // Every node restarts; the session entry is long evicted from memory everywhere.
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.stop(id);
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.start(id, true);
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  auto retry = std::make_shared<std::promise<Result<ProposeResult>>>();
  REQUIRE(c.propose_on_leader(Bytes::copy_of("once"), s1,
                              [retry](Result<ProposeResult> r) { retry->set_value(r); }));
  const auto again = retry->get_future().get();
  INFO("a retry of the session's command returns the original index: the table was rebuilt");
  REQUIRE(again.is_ok());
  CHECK(again.value().index == original.value().index);
}

TEST_CASE("node: callbacks slower than commits turn new proposals away with Busy, and every "
          "callback still runs once",
          "[node][bounds]") {
  constexpr std::size_t kBound = 8;
  LocalCluster c(3, [](NodeOptions& o) { o.max_pending_proposals = kBound; });
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  Node& n = c.node(leader);
  std::promise<void> release;
  std::shared_future<void> released = release.get_future().share();
  std::atomic<int> answered{0};
  std::atomic<int> busy{0};
  // The first callback holds the completion thread: later answers queue behind it.
  n.propose(Bytes::copy_of("hold"), [&, released](Result<ProposeResult>) {
    released.wait();
    ++answered;
  });
  constexpr int kMore = 40;
  for (int i = 0; i < kMore; ++i) {
    n.propose(Bytes::copy_of(fmt::format("p{}", i)), [&](Result<ProposeResult> r) {
      if (!r.is_ok() && r.status().code() == ErrorCode::Busy) ++busy;
      ++answered;
    });
    std::this_thread::sleep_for(2ms);  // let each one commit and queue its answer
  }
  // At most kBound proposals wait, committed or not, while the thread is held.
  CHECK(busy.load() >= kMore - static_cast<int>(kBound));
  release.set_value();
  for (int i = 0; i < 500 && answered.load() < kMore + 1; ++i) std::this_thread::sleep_for(10ms);
  CHECK(answered.load() == kMore + 1);
}
