// Commit-path tracing: the Tracer's ring and rules, its file, and a traced cluster.
#include <catch2/catch.hpp>

#include <fstream>
#include <vector>

#include <fmt/format.h>

#include "local_cluster.h"
#include "node/trace.h"
#include "node_test_util.h"
#include "tcp_cluster.h"

using namespace rlr;
using rlr::node::TraceRecord;
using rlr::node::Tracer;
using rlr::testing::LocalCluster;
using namespace std::chrono_literals;

namespace {

const TraceRecord* find(const std::vector<TraceRecord>& recs, std::uint64_t index) {
  for (const auto& r : recs) {
    if (r.index == index) return &r;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("trace: the leader's stamps of an entry, in the order they happen", "[trace]") {
  Tracer t(64);
  const std::vector<std::int64_t> received = {100, 0};
  t.appended(LogIndex{5}, Term{2}, received);
  t.sent(LogIndex{5}, LogIndex{6});
  t.synced(LogIndex{5}, LogIndex{6});
  t.acked(LogIndex{5}, NodeId{3});
  t.acked(LogIndex{6}, NodeId{2});
  t.acked(LogIndex{5}, NodeId{1});  // older news: changes nothing
  t.committed(LogIndex{5}, LogIndex{6});
  t.replied(LogIndex{5});
  const auto recs = t.records();
  REQUIRE(recs.size() == 2);
  const TraceRecord& a = recs[0];
  CHECK(a.index == 5);
  CHECK(a.term == 2);
  CHECK(a.received == 100);
  CHECK(a.appended > 0);
  CHECK(a.appended <= a.sent);
  CHECK(a.sent <= a.synced);
  CHECK(a.synced <= a.acked);
  CHECK(a.acked_by == 3);
  CHECK(a.acked <= a.committed);
  CHECK(a.committed <= a.replied);
  const TraceRecord& b = recs[1];
  CHECK(b.received == 0);
  CHECK(b.acked_by == 2);
  CHECK(b.replied == 0);
}

TEST_CASE("trace: a second stamp of the same kind keeps the first", "[trace]") {
  Tracer t(64);
  t.appended(LogIndex{1}, Term{1}, std::vector<std::int64_t>{0});
  t.sent(LogIndex{1}, LogIndex{1});
  const std::int64_t first_sent = t.records().at(0).sent;
  t.arrived(LogIndex{7}, LogIndex{7});
  const std::int64_t first_arrival = t.records().at(1).arrived;
  while (Tracer::now() == first_sent || Tracer::now() == first_arrival) {
  }
  t.sent(LogIndex{1}, LogIndex{1});       // a retransmission
  t.arrived(LogIndex{7}, LogIndex{7});    // the same append again
  CHECK(t.records().at(0).sent == first_sent);
  CHECK(t.records().at(1).arrived == first_arrival);
}

TEST_CASE("trace: acknowledgements stamp only entries this node appended as leader", "[trace]") {
  Tracer t(64);
  t.arrived(LogIndex{3}, LogIndex{4});  // a follower's view
  t.acked(LogIndex{4}, NodeId{2});
  for (const auto& r : t.records()) CHECK(r.acked == 0);
}

TEST_CASE("trace: a new leader's entry at an index starts its record over", "[trace]") {
  Tracer t(64);
  t.appended(LogIndex{6}, Term{1}, std::vector<std::int64_t>{11});
  t.acked(LogIndex{6}, NodeId{2});
  REQUIRE(t.records().at(0).acked_by == 2);
  // Term 1's entry 6 was never committed; this node leads term 3 and appends 6 anew.
  t.appended(LogIndex{6}, Term{3}, std::vector<std::int64_t>{22});
  auto r = t.records().at(0);
  CHECK(r.term == 3);
  CHECK(r.received == 22);
  CHECK(r.acked == 0);
  CHECK(r.acked_by == 0);
  // Its acknowledgement is stamped although an earlier one reached index 6 already.
  t.acked(LogIndex{6}, NodeId{3});
  CHECK(t.records().at(0).acked_by == 3);
}

TEST_CASE("trace: the ring keeps the latest `capacity` indexes", "[trace]") {
  Tracer t(4);
  t.appended(LogIndex{1}, Term{1}, std::vector<std::int64_t>(6, 0));  // 1..6: 1 and 2 overwritten
  t.committed(LogIndex{1}, LogIndex{100});                            // stamps 97..100 only
  const auto recs = t.records();
  REQUIRE(recs.size() == 4);
  CHECK(recs.front().index == 97);
  CHECK(recs.back().index == 100);
  for (const auto& r : recs) CHECK(r.appended == 0);
}

TEST_CASE("trace: a stamp of an older index never replaces a later index's record", "[trace]") {
  Tracer t(4);
  t.appended(LogIndex{9}, Term{1}, std::vector<std::int64_t>{0});  // slot 1
  t.arrived(LogIndex{5}, LogIndex{5});                              // slot 1 too, older
  t.committed(LogIndex{5}, LogIndex{5});
  const auto recs = t.records();
  REQUIRE(recs.size() == 1);
  CHECK(recs[0].index == 9);
  CHECK(recs[0].arrived == 0);
  CHECK(recs[0].committed == 0);
}

TEST_CASE("trace: the file round-trips, and a malformed one is refused", "[trace]") {
  rlr::testing::TempDir dir;
  const std::string path = (dir.path() / "n1.trace").string();
  Tracer t(16);
  t.appended(LogIndex{1}, Term{4}, std::vector<std::int64_t>{123, 456});
  t.acked(LogIndex{2}, NodeId{9});
  REQUIRE(t.write(path).is_ok());
  auto back = Tracer::read(path);
  REQUIRE(back.is_ok());
  REQUIRE(back.value().size() == 2);
  CHECK(back.value()[1].received == 456);
  CHECK(back.value()[1].acked_by == 9);
  CHECK(back.value()[0].appended == t.records()[0].appended);

  SECTION("a truncated line") {
    std::ofstream(path, std::ios::app) << "3 4 5\n";
    auto bad = Tracer::read(path);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().code() == ErrorCode::Corruption);
    CHECK(bad.status().message().find(":4:") != std::string::npos);
  }
  SECTION("not a trace") {
    std::ofstream(path, std::ios::trunc) << "index term\n1 2\n";
    auto bad = Tracer::read(path);
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().code() == ErrorCode::Corruption);
  }
  SECTION("missing") {
    auto bad = Tracer::read((dir.path() / "none").string());
    REQUIRE_FALSE(bad.is_ok());
    CHECK(bad.status().code() == ErrorCode::IoError);
  }
  SECTION("an unwritable path") {
    const Status s = t.write((dir.path() / "no-such-dir" / "x").string());
    CHECK(s.code() == ErrorCode::IoError);
  }
}

TEST_CASE("trace: trace_entries needs a path and has a bound", "[trace]") {
  NodeOptions o;
  o.cluster_id = "t";
  o.id = NodeId{1};
  o.storage = StorageKind::Memory;
  o.trace_entries = 10;
  CHECK(validate(o).code() == ErrorCode::InvalidArgument);
  o.trace_path = "/tmp/x";
  CHECK(validate(o).is_ok());
  o.trace_entries = kMaxTraceEntries + 1;
  CHECK(validate(o).code() == ErrorCode::InvalidArgument);
}

TEST_CASE("trace: every node of a traced cluster writes the way of each entry through it at stop",
          "[trace][node]") {
  // Written by the raft thread itself, or by each node's storage thread.
  const bool persist_thread = GENERATE(false, true);
  INFO("persist_thread " << persist_thread);
  rlr::testing::TempDir dir;
  const auto file = [&](NodeId id) { return (dir.path() / fmt::format("n{}.trace", id.value())).string(); };
  std::vector<NodeId> ids;
  {
    LocalCluster c(3, [&](NodeOptions& o) {
      o.trace_entries = 4096;
      o.trace_path = file(o.id);
      o.persist_thread = persist_thread;
    });
    const NodeId leader = c.wait_leader();
    REQUIRE(leader != kNoNode);
    REQUIRE(rlr::testing::propose_many(c.node(leader), 300, 16, "t") == 300);
    // Every follower has stepped (and written) what the leader committed.
    const LogIndex commit = c.node(leader).cluster_info().commit;
    for (auto& [id, n] : c.nodes()) {
      ids.push_back(id);
      const auto deadline = std::chrono::steady_clock::now() + 10s;
      while (n->cluster_info().commit < commit && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(1ms);
      }
      REQUIRE(n->cluster_info().commit >= commit);
    }
    for (NodeId id : ids) c.stop(id);
    auto recs = Tracer::read(file(leader));
    REQUIRE(recs.is_ok());
    std::size_t proposed = 0;
    for (const TraceRecord& r : recs.value()) {
      if (r.received == 0) continue;  // the term's no-op, or a membership entry
      ++proposed;
      INFO("index " << r.index);
      CHECK(r.received <= r.appended);
      CHECK(r.appended <= r.sent);
      CHECK(r.appended <= r.synced);
      CHECK(r.sent <= r.acked);
      CHECK(r.acked_by != 0);
      CHECK(r.acked_by != leader.value());
      // Written by its raft thread, the leader counts itself only once its own write is
      // done; with a storage thread, two followers' acknowledgements may commit first.
      if (!persist_thread) CHECK(r.synced <= r.committed);
      CHECK(r.synced > 0);
      CHECK(r.acked <= r.committed);
    }
    CHECK(proposed == 300);
    for (NodeId id : ids) {
      if (id == leader) continue;
      auto f = Tracer::read(file(id));
      REQUIRE(f.is_ok());
      std::size_t seen = 0;
      for (const TraceRecord& r : f.value()) {
        const TraceRecord* l = find(recs.value(), r.index);
        if (l == nullptr || l->received == 0) continue;
        ++seen;
        INFO("follower " << id.value() << " index " << r.index);
        CHECK(r.appended == 0);
        CHECK(r.arrived >= l->sent);
        CHECK(r.synced >= r.arrived);
        CHECK(r.committed > 0);
      }
      CHECK(seen == 300);
    }
  }
}

TEST_CASE("trace: a node without trace_entries holds no tracer", "[trace][node]") {
  LocalCluster c(1);
  REQUIRE(c.wait_leader() != kNoNode);
  CHECK(c.node(NodeId{1}).tracer() == nullptr);
}
