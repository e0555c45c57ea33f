// The in-process test kit (rlr/testing.h): both clocks, the faults it injects, crash and
// restart with unsynced writes lost, and the records it keeps. The kit is what users test
// their state machines with, so each of its promises is checked here against something
// that could go wrong.
#include <catch2/catch.hpp>

#include <atomic>
#include <map>
#include <memory>
#include <string>

#include <fmt/format.h>

#include "rlr/testing.h"

using namespace std::chrono_literals;
using rlr::Bytes;
using rlr::ErrorCode;
using rlr::LogIndex;
using rlr::NodeId;
using rlr::testing::Cluster;
using rlr::testing::ClusterOptions;
using rlr::testing::ClockMode;

namespace {

/// Emits each command back on topic "echo" and folds it into a running hash.
class Echo final : public rlr::RoleAwareStateMachine {
 public:
  void apply(const rlr::Entry& e, const rlr::ApplyContext&, rlr::Egress& out) override {
    for (char c : e.payload.as_string_view()) hash_ = (hash_ ^ static_cast<unsigned char>(c)) * 1099511628211ULL;
    out.emit("echo", e.payload);
    applied_ = e.index.value();
  }
  [[nodiscard]] LogIndex last_applied() const override { return LogIndex{applied_.load()}; }
  [[nodiscard]] std::uint64_t hash() const { return hash_; }

 private:
  std::atomic<std::uint64_t> applied_{0};
  std::uint64_t hash_ = 1469598103934665603ULL;
};

std::unique_ptr<Cluster> make(ClusterOptions o) {
  auto c = Cluster::create(std::move(o));
  REQUIRE(c.is_ok());
  return std::move(c).value();
}

ClusterOptions manual(std::size_t voters, std::uint64_t seed) {
  ClusterOptions o;
  o.voters = voters;
  o.seed = seed;
  return o;
}

std::map<LogIndex, std::string> log_of(const Cluster& c, NodeId id) {
  auto entries = c.committed(id, LogIndex{1});
  REQUIRE(entries.is_ok());
  std::map<LogIndex, std::string> out;
  for (const auto& e : entries.value()) out[e.index] = std::string(e.payload.as_string_view());
  return out;
}

Bytes cmd(int i) { return Bytes::copy_of(fmt::format("cmd-{}", i)); }

}  // namespace

TEST_CASE("kit: create refuses bad options with clear errors", "[testing]") {
  ClusterOptions o;
  o.voters = 0;
  auto c = Cluster::create(o);
  REQUIRE_FALSE(c.is_ok());
  CHECK(c.status().code() == ErrorCode::InvalidArgument);
  o.voters = 3;
  o.node.election_ticks = 0;
  c = Cluster::create(o);
  REQUIRE_FALSE(c.is_ok());
  CHECK(c.status().code() == ErrorCode::InvalidArgument);
  o = ClusterOptions{};
  o.fsync_min = 5ms;
  o.fsync_max = 1ms;
  CHECK(Cluster::create(o).status().code() == ErrorCode::InvalidArgument);
}

TEST_CASE("kit manual: a seed replays the same run exactly", "[testing]") {
  auto run = [](std::uint64_t seed) {
    auto o = manual(3, seed);
    o.fsync_max = 3ms;
    auto c = make(o);
    c->set_network_faults({.drop = 0.05, .duplicate = 0.05, .delay_min = 0ms, .delay_max = 4ms});
    std::string trace;
    const auto l = c->wait_for_leader();
    REQUIRE(l.is_ok());
    trace += fmt::format("leader {} at {} ms;", l.value().value(), c->now().count());
    for (int i = 0; i < 20; ++i) {
      const auto r = c->propose(cmd(i));
      REQUIRE(r.is_ok());
      trace += fmt::format("{}@{}/{};", i, r.value().index.value(), c->now().count());
    }
    return trace;
  };
  const std::string a = run(11);
  CHECK(a == run(11));
  // Another seed draws other timers and message fates (the clock readings differ).
  CHECK(a != run(12));
}

TEST_CASE("kit manual: a crash loses the writes not yet synced, never an acknowledged one",
          "[testing]") {
  auto o = manual(1, 3);
  o.fsync_min = 50ms;
  o.fsync_max = 50ms;
  auto c = make(o);
  const NodeId n{1};
  REQUIRE(c->wait_for_leader().is_ok());
  REQUIRE(c->propose(Bytes::copy_of("synced"), {}, 1s).is_ok());

  std::optional<rlr::Result<rlr::ProposeResult>> outcome;
  c->propose_async(n, Bytes::copy_of("lost"), {}, [&](rlr::Result<rlr::ProposeResult> r) { outcome = r; });
  c->advance(20ms);  // appended, its write waits for its fsync
  CHECK_FALSE(outcome.has_value());
  REQUIRE(c->crash(n).is_ok());
  CHECK(c->crash(n).code() == ErrorCode::Unavailable);
  CHECK_FALSE(c->running(n));
  REQUIRE(c->restart(n).is_ok());
  // Its commit index rode on the lost write too: a new command commits everything before.
  REQUIRE(c->propose(Bytes::copy_of("after"), {}, 1s).is_ok());
  const auto after = log_of(*c, n);
  CHECK_FALSE(outcome.has_value());  // a crashed node never answers
  REQUIRE(after.size() == 2);
  CHECK(after.begin()->second == "synced");
  CHECK(after.rbegin()->second == "after");

  // The same write, given time for its fsync, survives the crash.
  c->propose_async(n, Bytes::copy_of("kept"), {}, [&](rlr::Result<rlr::ProposeResult> r) { outcome = r; });
  REQUIRE(c->run_until([&] { return outcome.has_value(); }, 1s));
  REQUIRE(outcome->is_ok());
  REQUIRE(c->crash(n).is_ok());
  REQUIRE(c->restart(n).is_ok());
  REQUIRE(c->propose(Bytes::copy_of("after"), {}, 1s).is_ok());
  const auto kept = log_of(*c, n);
  REQUIRE(kept.count(outcome->value().index) == 1);
  CHECK(kept.at(outcome->value().index) == "kept");
}

TEST_CASE("kit manual: a follower refuses proposals with the leader's id", "[testing]") {
  auto c = make(manual(3, 5));
  const auto l = c->wait_for_leader();
  REQUIRE(l.is_ok());
  for (NodeId id : c->ids()) {
    if (id == l.value()) continue;
    const auto r = c->propose_at(id, cmd(1), {}, 1s);
    REQUIRE_FALSE(r.is_ok());
    CHECK(r.status().code() == ErrorCode::NotLeader);
    CHECK(r.status().leader_hint() == l.value());
  }
  CHECK(c->propose_at(NodeId{9}, cmd(1), {}, 1s).status().code() == ErrorCode::InvalidArgument);
}

TEST_CASE("kit manual: an isolated leader commits nothing; the majority goes on; heal converges",
          "[testing]") {
  auto c = make(manual(3, 8));
  REQUIRE(c->attach([](NodeId) { return std::make_shared<Echo>(); }).is_ok());
  const auto old = c->wait_for_leader();
  REQUIRE(old.is_ok());
  REQUIRE(c->propose(cmd(0)).is_ok());

  c->isolate(old.value());
  const auto stuck = c->propose_at(old.value(), cmd(1), {}, 500ms);
  CHECK(stuck.status().code() == ErrorCode::Timeout);
  const auto fresh = c->wait_for_leader();
  REQUIRE(fresh.is_ok());
  CHECK(fresh.value() != old.value());
  for (int i = 2; i < 10; ++i) REQUIRE(c->propose(cmd(i)).is_ok());

  c->heal();
  REQUIRE(c->wait_for_leader().is_ok());
  REQUIRE(c->run_until([&] { return c->role(old.value()) != rlr::Role::Leader; }, 2s));
  REQUIRE(c->wait_applied(c->last_committed()));
  const auto reference = log_of(*c, c->leader());
  for (NodeId id : c->ids()) CHECK(log_of(*c, id) == reference);
  CHECK(c->digests_agree().is_ok());
  const auto d = c->downstream();
  CHECK(d.conflicts.empty());
  CHECK(d.not_leader == 0);
}

TEST_CASE("kit manual: partitions into groups; the minority side cannot elect", "[testing]") {
  auto c = make(manual(5, 21));
  REQUIRE(c->wait_for_leader().is_ok());
  c->partition({{NodeId{1}, NodeId{2}}, {NodeId{3}, NodeId{4}, NodeId{5}}});
  c->advance(1s);
  const NodeId l = c->leader();
  REQUIRE(l != rlr::kNoNode);
  CHECK(l.value() >= 3);  // only the majority side can have a leader of the newest term
  for (NodeId id : {NodeId{1}, NodeId{2}}) {
    CHECK(c->propose_at(id, cmd(1), {}, 300ms).status().code() != ErrorCode::Ok);
  }
  REQUIRE(c->propose(cmd(2)).is_ok());
  c->heal();
  REQUIRE(c->wait_for_leader().is_ok());
}

TEST_CASE("kit manual: drops, duplicates and delays lose nothing and keep replicas equal",
          "[testing]") {
  auto c = make(manual(3, 31));
  REQUIRE(c->attach([](NodeId) { return std::make_shared<Echo>(); }).is_ok());
  c->set_network_faults({.drop = 0.2, .duplicate = 0.2, .delay_min = 0ms, .delay_max = 8ms});
  std::map<LogIndex, std::string> acked;
  for (int i = 0; i < 40; ++i) {
    const auto r = c->propose(cmd(i), {}, 10s);
    REQUIRE(r.is_ok());
    acked[r.value().index] = fmt::format("cmd-{}", i);
  }
  c->set_network_faults({});
  REQUIRE(c->wait_applied(c->last_committed()));
  const auto reference = log_of(*c, c->leader());
  for (const auto& [i, s] : acked) CHECK(reference.at(i) == s);
  std::uint64_t hash = 0;
  for (NodeId id : c->ids()) {
    CHECK(log_of(*c, id) == reference);
    const auto echo = std::dynamic_pointer_cast<Echo>(c->state_machine(id));
    REQUIRE(echo != nullptr);
    if (hash == 0) hash = echo->hash();
    CHECK(echo->hash() == hash);
  }
  CHECK(c->digests_agree().is_ok());
  CHECK(c->downstream().outputs.size() == acked.size());
}

TEST_CASE("kit manual: sessions deduplicate a retried proposal", "[testing]") {
  auto c = make(manual(3, 4));
  const rlr::ClientSession s{77, 1};
  const auto a = c->propose(cmd(1), s, 1s);
  REQUIRE(a.is_ok());
  const auto b = c->propose(cmd(1), s, 1s);
  REQUIRE(b.is_ok());
  CHECK(b.value().index == a.value().index);
  const auto log = c->committed(c->leader(), LogIndex{1});
  REQUIRE(log.is_ok());
  REQUIRE(log.value().size() == 1);
  CHECK(log.value()[0].client_id == 77);
  CHECK(log.value()[0].sequence == 1);
}

TEST_CASE("kit manual: leadership transfer", "[testing]") {
  auto c = make(manual(3, 6));
  const auto l = c->wait_for_leader();
  REQUIRE(l.is_ok());
  const NodeId to{l.value().value() % 3 + 1};
  REQUIRE(c->transfer_leadership(to, 2s).is_ok());
  REQUIRE(c->wait_for_leader().is_ok());
  CHECK(c->leader() == to);
  const auto info = c->cluster_info(to);
  REQUIRE(info.is_ok());
  CHECK(info.value().role == rlr::Role::Leader);
  CHECK(info.value().members.size() == 3);
}

TEST_CASE("kit manual: a state machine the compacted log cannot feed fails to start, clearly",
          "[testing]") {
  auto o = manual(3, 9);
  o.node.compact_after_entries = 10;
  auto c = make(o);
  REQUIRE(c->attach([](NodeId) { return std::make_shared<Echo>(); }).is_ok());
  for (int i = 0; i < 40; ++i) REQUIRE(c->propose(cmd(i)).is_ok());
  REQUIRE(c->wait_applied(c->last_committed()));
  const NodeId victim = c->leader();
  REQUIRE(c->crash(victim).is_ok());
  // A fresh in-memory Echo starts at 0, below the compacted log.
  const rlr::Status s = c->restart(victim);
  CHECK(s.code() == ErrorCode::Compacted);
  CHECK(c->running(victim));  // the node itself runs; its state machine did not start
}

TEST_CASE("kit real time: real nodes, crash and restart, exactly-once egress", "[testing]") {
  ClusterOptions o;
  o.clock = ClockMode::RealTime;
  o.node.tick = 5ms;
  o.node.election_ticks = 10;
  o.node.heartbeat_ticks = 2;
  auto c = make(o);
  REQUIRE(c->attach([](NodeId) { return std::make_shared<Echo>(); }).is_ok());
  c->set_network_faults({.drop = 0.0, .duplicate = 0.1, .delay_min = 0ms, .delay_max = 1ms});
  const auto first = c->wait_for_leader(10s);
  REQUIRE(first.is_ok());
  REQUIRE(c->node(first.value()) != nullptr);
  CHECK(c->node(first.value())->role() == rlr::Role::Leader);
  std::map<LogIndex, std::string> acked;
  for (int i = 0; i < 20; ++i) {
    const auto r = c->propose(cmd(i), {}, 10s);
    REQUIRE(r.is_ok());
    acked[r.value().index] = fmt::format("cmd-{}", i);
  }
  REQUIRE(c->crash(first.value()).is_ok());
  CHECK(c->node(first.value()) == nullptr);
  for (int i = 20; i < 40; ++i) {
    const auto r = c->propose(cmd(i), {}, 10s);
    REQUIRE(r.is_ok());
    acked[r.value().index] = fmt::format("cmd-{}", i);
  }
  REQUIRE(c->restart(first.value()).is_ok());
  REQUIRE(c->wait_applied(c->last_committed(), 10s));
  for (NodeId id : c->ids()) {
    const auto log = log_of(*c, id);
    for (const auto& [i, s] : acked) CHECK(log.at(i) == s);
  }
  CHECK(c->digests_agree().is_ok());
  const auto d = c->downstream();
  CHECK(d.conflicts.empty());
  CHECK(d.outputs.size() == acked.size());
  CHECK_FALSE(c->log_lines().empty());  // the kit kept the nodes' lines
}
