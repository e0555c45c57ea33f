// Role-aware state machines on a running cluster: the egress gate, exactly-once egress
// across failovers, client sessions, replay and digest verification.
#include <catch2/catch.hpp>

#include <future>
#include <optional>
#include <random>
#include <atomic>
#include <map>
#include <mutex>
#include <set>

#include "local_cluster.h"
#include "node_test_util.h"

using namespace rlr;
using namespace rlr::testing;
using namespace std::chrono_literals;

namespace {

/// A deterministic state machine: counts commands and emits one "order_event" per command
/// (and a second output for commands ending in '!').
class Orders final : public RoleAwareStateMachine {
 public:
  void apply(const Entry& e, const ApplyContext& ctx, Egress& out) override {
    ++count_;
    out.emit("order_event", e.payload);
    if (!e.payload.empty() && e.payload.data()[e.payload.size() - 1] == '!') {
      out.emit("match_result", e.payload);
    }
    applied_ = ctx.index;
    while (blocked_.load()) std::this_thread::sleep_for(1ms);
    if (explode_at_ != 0 && count_ == explode_at_) throw std::runtime_error("boom");
  }
  void on_role_change(Role role, NodeId, LogIndex at) override {
    std::lock_guard lock(mu_);
    roles_.emplace_back(at, role);
  }
  LogIndex last_applied() const override { return applied_; }
  std::vector<std::pair<LogIndex, Role>> roles() const {
    std::lock_guard lock(mu_);
    return roles_;
  }
  std::uint64_t count() const { return count_; }
  std::atomic<bool> blocked_{false};
  std::uint64_t explode_at_ = 0;

 private:
  std::atomic<std::uint64_t> count_{0};
  LogIndex applied_;
  mutable std::mutex mu_;
  std::vector<std::pair<LogIndex, Role>> roles_;
};

/// Downstream: deduplicates by key, counts duplicates.
class Collector {
 public:
  void take(const Output& o) {
    std::lock_guard lock(mu_);
    auto [it, fresh] = received_.emplace(o.key, std::string(o.payload.as_string_view()));
    if (!fresh) {
      ++duplicates_;
      // Same key must mean the same output (checked on the test thread: Catch2 is not
      // thread-safe).
      if (it->second != std::string(o.payload.as_string_view())) ++conflicts_;
    }
  }
  std::map<OutputKey, std::string> received() const {
    std::lock_guard lock(mu_);
    return received_;
  }
  std::uint64_t duplicates() const {
    std::lock_guard lock(mu_);
    return duplicates_;
  }
  std::uint64_t conflicts() const {
    std::lock_guard lock(mu_);
    return conflicts_;
  }

 private:
  mutable std::mutex mu_;
  std::map<OutputKey, std::string> received_;
  std::uint64_t duplicates_ = 0;
  std::uint64_t conflicts_ = 0;
};

/// One node's egress: hands outputs to the collector (synchronously, so "delivered" is
/// "durably taken downstream") and acknowledges through the last index it delivered.
class NodeSink final : public EgressSink {
 public:
  explicit NodeSink(Collector& c) : c_(c) {}
  void deliver(const Output& o) override {
    c_.take(o);
    last_ = std::max(last_.load(), o.key.index.value());
  }
  LogIndex acknowledged() const override { return LogIndex{last_.load()}; }

 private:
  Collector& c_;
  std::atomic<std::uint64_t> last_{0};
};

struct Attached {
  std::shared_ptr<Orders> sm;
  std::shared_ptr<ApplyRunner> runner;
};

Attached attach(node::NodeImpl& n, Collector* c, EgressMode mode = EgressMode::LeaderOnly) {
  Attached a;
  a.sm = std::make_shared<Orders>();
  ApplyOptions o;
  o.egress = mode;
  if (c != nullptr) o.sink = std::make_shared<NodeSink>(*c);
  o.digest_interval = 50;
  o.watermark_interval = std::chrono::milliseconds{20};
  auto r = n.attach(a.sm, o);
  REQUIRE(r.is_ok());
  a.runner = r.value();
  return a;
}

/// Proposes with a session, retrying (same sequence) until committed; nullopt when it
/// never commits (no Catch2 assertions here: the producer thread calls it).
std::optional<ProposeResult> try_propose(LocalCluster& c, std::uint64_t client, std::uint64_t seq,
                                         const std::string& cmd) {
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    auto p = std::make_shared<std::promise<Result<ProposeResult>>>();
    auto f = p->get_future();
    if (c.propose_on_leader(Bytes::copy_of(cmd), ClientSession{client, seq},
                            [p](Result<ProposeResult> r) { p->set_value(std::move(r)); })) {
      if (f.wait_for(3s) == std::future_status::ready) {
        auto r = f.get();
        if (r) return r.value();
      }
    }
    std::this_thread::sleep_for(2ms);
  }
  return std::nullopt;
}

ProposeResult propose_until_committed(LocalCluster& c, std::uint64_t client, std::uint64_t seq,
                                      const std::string& cmd) {
  auto r = try_propose(c, client, seq, cmd);
  if (!r) FAIL("proposal " << seq << " never committed");
  return r.value_or(ProposeResult{});
}

void wait_applied(const std::vector<Attached>& as, LogIndex upto) {
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (const auto& a : as) {
    while (a.runner->applied() < upto && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(1ms);
    }
    REQUIRE(a.runner->applied() >= upto);
  }
}

}  // namespace

TEST_CASE("sm: only the leader's egress emits; followers apply and suppress", "[sm]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  std::map<NodeId, Collector> collectors;
  std::map<NodeId, Attached> attached;
  for (auto& [id, n] : c.nodes()) attached[id] = attach(*n, &collectors[id]);
  REQUIRE(propose_many(c.node(leader), 200, 32, "o") == 200);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  std::vector<Attached> all;
  for (auto& [id, a] : attached) all.push_back(a);
  wait_applied(all, commit);
  for (auto& [id, a] : attached) {
    CHECK(a.sm->count() == 200);  // every node applies
    INFO("node " << id.value());
    if (id == leader) {
      CHECK(collectors[id].received().size() == 200);
    } else {
      CHECK(collectors[id].received().empty());
    }
  }
  // The leader learned its role at its own no-op, in log order.
  const auto roles = attached[leader].sm->roles();
  REQUIRE_FALSE(roles.empty());
  CHECK(roles.back().second == Role::Leader);
}

TEST_CASE("sm: a persist-mode node keeps its egress whatever its role", "[sm]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeId follower{leader.value() % 3 + 1};
  Collector audit;
  auto a = attach(c.node(follower), &audit, EgressMode::Persist);
  REQUIRE(propose_many(c.node(leader), 100, 32, "p") == 100);
  wait_applied({a}, c.node(leader).cluster_info().commit);
  CHECK(audit.received().size() == 100);
}

TEST_CASE("sm: exactly-once egress across 50 leader failovers", "[sm][failover]") {
  LocalCluster c(3);
  REQUIRE(c.wait_leader() != kNoNode);
  Collector downstream;
  std::map<NodeId, Attached> attached;
  for (auto& [id, n] : c.nodes()) attached[id] = attach(*n, &downstream);

  std::atomic<bool> done{false};
  std::atomic<bool> stuck{false};
  std::atomic<std::uint64_t> proposed{0};
  constexpr std::uint64_t kClient = 42;
  std::thread producer([&] {
    for (std::uint64_t seq = 1; !done && !stuck; ++seq) {
      if (!try_propose(c, kClient, seq, fmt::format("order-{}{}", seq, seq % 7 == 0 ? "!" : ""))) {
        stuck = true;
        break;
      }
      proposed = seq;
    }
  });
  // Stops the producer however this test exits (a failed REQUIRE throws).
  struct Joiner {
    std::atomic<bool>& done;
    std::thread& t;
    ~Joiner() {
      done = true;
      if (t.joinable()) t.join();
    }
  } joiner{done, producer};
  std::mt19937_64 rng(2026);
  int failovers = 0;
  for (; failovers < 50; ++failovers) {
    const int failover = failovers;
    const NodeId leader = c.wait_leader();
    if (leader == kNoNode) break;
    const std::uint64_t before = proposed.load();
    while (proposed.load() < before + 5 && !stuck) std::this_thread::sleep_for(1ms);
    if (stuck) break;
    if (failover % 5 == 4) {
      // A crash: the leader stops; it comes back with a fresh in-memory state machine
      // that replays the log (its egress stays shut until it leads again).
      c.stop(leader);
      attached.erase(leader);
      if (c.wait_leader() == kNoNode) break;
      c.start(leader, true);
      attached[leader] = attach(c.node(leader), &downstream);
    } else {
      const NodeId target{(leader.value() + rng() % 2) % 3 + 1};  // one of the other two
      (void)c.node(leader).transfer_leadership(target, 2s);
    }
  }
  done = true;
  if (producer.joinable()) producer.join();
  REQUIRE_FALSE(stuck);
  REQUIRE(failovers == 50);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  std::vector<Attached> all;
  for (auto& [id, a] : attached) all.push_back(a);
  wait_applied(all, commit);
  std::this_thread::sleep_for(100ms);

  // Expected: one order_event per sequence number, a match_result for every 7th.
  std::map<std::string, int> expected;
  for (std::uint64_t seq = 1; seq <= proposed.load(); ++seq) {
    const std::string cmd = fmt::format("order-{}{}", seq, seq % 7 == 0 ? "!" : "");
    expected[cmd] += seq % 7 == 0 ? 2 : 1;
  }
  std::map<std::string, int> seen;
  for (const auto& [key, payload] : downstream.received()) seen[payload] += 1;
  CHECK(seen.size() == expected.size());
  std::uint64_t missing = 0, extra = 0;
  for (const auto& [cmd, n] : expected) {
    if (seen[cmd] < n) ++missing;
    if (seen[cmd] > n) ++extra;
  }
  INFO("proposed " << proposed.load() << " commands, downstream saw " << downstream.received().size()
                   << " distinct keys, " << downstream.duplicates() << " duplicates (deduplicated)");
  CHECK(missing == 0);
  CHECK(extra == 0);
  CHECK(downstream.conflicts() == 0);
}

TEST_CASE("sm: a retried proposal with the same session returns the original index", "[sm][session]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  std::map<NodeId, Attached> attached;
  for (auto& [id, n] : c.nodes()) attached[id] = attach(*n, nullptr);
  const auto first = propose_until_committed(c, 7, 1, "once");
  const auto again = propose_until_committed(c, 7, 1, "once");
  CHECK(again.index == first.index);
  CHECK(again.term == first.term);
  const auto next = propose_until_committed(c, 7, 2, "twice");
  CHECK(next.index > first.index);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  std::vector<Attached> all;
  for (auto& [id, a] : attached) all.push_back(a);
  wait_applied(all, commit);
  for (auto& [id, a] : attached) CHECK(a.sm->count() == 2);  // applied once each
}

TEST_CASE("sm: sessions survive a restart of the whole cluster", "[sm][session]") {
  LocalCluster c(3);
  REQUIRE(c.wait_leader() != kNoNode);
  const auto first = propose_until_committed(c, 9, 1, "x");
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.stop(id);
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) c.start(id, true);
  REQUIRE(c.wait_leader() != kNoNode);
  const auto again = propose_until_committed(c, 9, 1, "x");
  CHECK(again.index == first.index);
}

TEST_CASE("sm: replay into a fresh state machine reproduces the digests", "[sm][replay]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  auto live = attach(c.node(leader), nullptr);
  REQUIRE(propose_many(c.node(leader), 500, 64, "r") == 500);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  wait_applied({live}, commit);
  Orders fresh;
  auto replayed = replay(c.node(leader), fresh, LogIndex{1}, commit, 50);
  REQUIRE(replayed.is_ok());
  CHECK(fresh.count() == 500);
  const auto checkpoints = live.runner->checkpoints();
  REQUIRE(checkpoints.size() >= 5);
  REQUIRE(replayed.value().size() >= checkpoints.size());
  for (std::size_t i = 0; i < checkpoints.size(); ++i) {
    CHECK(replayed.value()[i] == checkpoints[i]);
  }
}

namespace {
/// Differs from Orders on one node: emits something else for one command.
class Divergent final : public RoleAwareStateMachine {
 public:
  void apply(const Entry& e, const ApplyContext& ctx, Egress& out) override {
    const bool odd = e.payload.as_string_view() == "d-77";
    out.emit("order_event", odd ? Bytes::copy_of("something else") : e.payload);
    applied_ = ctx.index;
  }
  LogIndex last_applied() const override { return applied_; }

 private:
  LogIndex applied_;
};
}  // namespace

TEST_CASE("sm: digests agree across replicas, and a divergent replica is flagged", "[sm][digest]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeId bad{leader.value() % 3 + 1};
  std::vector<Attached> good;
  for (auto& [id, n] : c.nodes()) {
    if (id != bad) good.push_back(attach(*n, nullptr));
  }
  ApplyOptions o;
  o.digest_interval = 50;
  auto divergent = c.node(bad).attach(std::make_shared<Divergent>(), o);
  REQUIRE(divergent.is_ok());
  REQUIRE(propose_many(c.node(leader), 300, 64, "d") == 300);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  wait_applied(good, commit);
  // Reports travel every few ticks.
  ClusterInfo info;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  do {
    std::this_thread::sleep_for(50ms);
    info = c.node(leader).cluster_info();
  } while (!info.diverged && std::chrono::steady_clock::now() < deadline);
  CHECK(info.diverged);
  for (const auto& m : info.members) {
    INFO("member " << m.id.value());
    if (m.id == bad) {
      CHECK(m.diverged_at.value() > 0);
      CHECK(m.diverged_at.value() % 50 == 0);
    } else {
      CHECK(m.diverged_at.is_zero());
      CHECK(m.digest.index.value() > 0);
    }
  }
}

TEST_CASE("sm: node replacement: learner joins, catches up, digests match, promote, remove old", "[sm][replace]") {
  LocalCluster c(3);
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  std::map<NodeId, Attached> attached;
  for (auto& [id, n] : c.nodes()) attached[id] = attach(*n, nullptr);
  REQUIRE(propose_many(c.node(leader), 400, 64, "n") == 400);
  c.start(NodeId{4}, false);
  attached[NodeId{4}] = attach(c.node(NodeId{4}), nullptr);
  REQUIRE(c.node(leader).add_learner(MemberAddress{NodeId{4}, {"127.0.0.1", 9004}}, 5s).is_ok());
  REQUIRE(propose_many(c.node(leader), 100, 32, "m") == 100);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  std::vector<Attached> all;
  for (auto& [id, a] : attached) all.push_back(a);
  wait_applied(all, commit);
  // The learner's digests equal the leader's at every common checkpoint.
  const auto mine = attached[leader].runner->checkpoints();
  const auto theirs = attached[NodeId{4}].runner->checkpoints();
  REQUIRE(theirs.size() >= 5);
  std::map<LogIndex, std::uint64_t> m;
  for (const auto& cp : mine) m[cp.index] = cp.digest;
  std::size_t compared = 0;
  for (const auto& cp : theirs) {
    if (m.count(cp.index)) {
      CHECK(m[cp.index] == cp.digest);
      ++compared;
    }
  }
  CHECK(compared >= 5);
  REQUIRE(c.node(leader).promote(NodeId{4}, 5s).is_ok());
  const NodeId old = leader == NodeId{1} ? NodeId{2} : NodeId{1};
  REQUIRE(c.node(leader).remove(old, 5s).is_ok());
  attached.erase(old);
  c.stop(old);
  REQUIRE(propose_many(c.node(leader), 50, 16, "after") == 50);
}

TEST_CASE("sm: a slow or failing state machine never stalls replication", "[sm][isolation]") {
  LocalCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  auto slow = attach(c.node(leader), nullptr);
  slow.sm->blocked_ = true;  // the state machine hangs inside apply()
  const NodeId other{leader.value() % 3 + 1};
  auto failing = std::make_shared<Orders>();
  failing->explode_at_ = 10;
  auto fr = c.node(other).attach(failing, ApplyOptions{});
  REQUIRE(fr.is_ok());
  // Every proposal commits while the state machine is stuck on the first command.
  REQUIRE(propose_many(c.node(leader), 2000, 256, "s") == 2000);
  CHECK(slow.runner->applied().value() + 2000 <= c.node(leader).cluster_info().commit.value());
  slow.sm->blocked_ = false;
  wait_applied({slow}, c.node(leader).cluster_info().commit);
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (fr.value()->health().is_ok() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(5ms);
  }
  CHECK_FALSE(fr.value()->health().is_ok());
  CHECK(fr.value()->health().message().find("boom") != std::string::npos);
  // The node itself keeps working.
  REQUIRE(propose_many(c.node(leader), 100, 32, "still") == 100);
}
