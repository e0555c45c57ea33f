#include "demo.h"

#include <functional>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "invariants.h"
#include "sim_cluster.h"
#include "simulation.h"

namespace rlr::sim {
namespace {

constexpr std::uint64_t kSummaryEveryTicks = 100;

/// One scripted scene: at `tick` (or as soon after as it can), `act` runs; it returns
/// false when it must be retried on the next tick (for example: no leader yet).
struct Scene {
  std::uint64_t tick;
  std::string title;
  std::function<bool()> act;
};

class Demo {
 public:
  Demo(std::uint64_t seed, Trace& trace)
      : rng_(seed), trace_(trace), cluster_(options(), rng_.fork(), checker_, trace_) {
    NetworkProfile calm;
    calm.latency_max_ticks = 2;
    calm.loss_chance = 0.005;
    calm.duplicate_chance = 0.005;
    cluster_.network().set_profile(calm);
  }

  std::size_t run() {
    say("== librlr simulated cluster: 5 Raft cores, simulated network and disks ==");
    say("   one tick is one step of simulated time; elections time out after 20-40 ticks,");
    say("   leaders send heartbeats every 3 ticks, a client proposes about 1 entry per 2 ticks.");
    script();
    std::size_t next_scene = 0;
    while (cluster_.now() < kDemoTicks && checker_.ok()) {
      if (next_scene < scenes_.size() && cluster_.now() >= scenes_[next_scene].tick) {
        if (!scenes_[next_scene].title.empty()) {
          say(fmt::format("-- {} --", scenes_[next_scene].title));
          scenes_[next_scene].title.clear();
        }
        if (scenes_[next_scene].act()) ++next_scene;
      }
      client_traffic();
      cluster_.tick();
      (void)cluster_.take_vote_grants();
      (void)cluster_.take_leader_commits();
      report_config();
      if (cluster_.now() % kSummaryEveryTicks == 0) summary();
      if (cluster_.now() % 500 == 0) cluster_.check_all_logs();
    }
    cluster_.check_all_logs();
    verdict();
    return checker_.violations().size();
  }

 private:
  static ClusterOptions options() {
    ClusterOptions o;
    o.slots = 6;  // the sixth slot hosts the node added during the run
    o.initial_voters = 5;
    o.raft.election_ticks = kElectionTicks;
    o.raft.heartbeat_ticks = 3;
    o.raft.max_append_entries = 64;
    o.raft.check_invariants = true;
    o.fsync_max_ticks = 2;
    o.node.tick = std::chrono::milliseconds{1};
    o.node.compact_after_entries = 64;  // each replica compacts its log as it goes
    return o;
  }

  void say(const std::string& text) { trace_.line(TraceLevel::Narrative, cluster_.now(), "{}", text); }

  SimNode* leader() { return cluster_.leader(); }

  /// The k-th running voter other than the leader, in the leader's configuration.
  SimNode* follower(std::size_t k = 0) {
    SimNode* l = leader();
    if (l == nullptr) return nullptr;
    for (NodeId id : l->core().config().voters) {
      SimNode* n = cluster_.find(id);
      if (n == nullptr || n == l || !n->up()) continue;
      if (k-- == 0) return n;
    }
    return nullptr;
  }

  void script() {
    scenes_.push_back({300, "scene 1: the leader crashes; a follower times out and takes over", [this] {
      SimNode* l = leader();
      if (l == nullptr) return false;
      crashed_ = l->slot;
      cluster_.crash(l->slot, "power loss");
      return true;
    }});
    scenes_.push_back({450, "", [this] {
      say("the old leader comes back from its disk and catches up as a follower");
      cluster_.restart(crashed_);
      return true;
    }});
    scenes_.push_back({600, "scene 2: two followers are cut off; the majority carries on", [this] {
      SimNode* a = follower(0);
      SimNode* b = follower(1);
      if (a == nullptr || b == nullptr) return false;
      minority_ = {a->id, b->id};
      majority_.clear();
      for (NodeId id : cluster_.hosted_ids()) {
        if (id != a->id && id != b->id) majority_.push_back(id);
      }
      cluster_.network().block_between(minority_, majority_);
      say(fmt::format("PARTITION nodes {} and {} | the other three", a->id.value(), b->id.value()));
      say("watch the applied index of the two cut-off nodes stand still, then catch up");
      return true;
    }});
    scenes_.push_back({800, "", [this] {
      cluster_.network().heal();
      say("HEAL partition");
      return true;
    }});
    scenes_.push_back({900, "scene 3: the leader is isolated; the others elect a new one", [this] {
      SimNode* l = leader();
      if (l == nullptr) return false;
      std::vector<NodeId> others;
      for (NodeId id : cluster_.hosted_ids()) {
        if (id != l->id) others.push_back(id);
      }
      cluster_.network().block_between({l->id}, others);
      say(fmt::format("PARTITION leader {} isolated (it steps down once it misses a quorum)",
                      l->id.value()));
      return true;
    }});
    scenes_.push_back({1100, "", [this] {
      cluster_.network().heal();
      say("HEAL partition: the old leader rejoins as a follower");
      return true;
    }});
    scenes_.push_back({1200, "scene 4: replace node 1 by a new node 6", [this] {
      SimNode* l = leader();
      if (l == nullptr) return false;
      if (cluster_.node_at(5) == nullptr) {
        newcomer_ = cluster_.start_new_node(5);
        say("joint consensus (thesis 4.3): learner first, then C_old,new, then C_new");
      }
      return membership(*l, "add learner", newcomer_);
    }});
    scenes_.push_back({1300, "", [this] {
      SimNode* l = leader();
      return l != nullptr && membership(*l, "promote", newcomer_);
    }});
    scenes_.push_back({1450, "", [this] {
      SimNode* l = leader();
      return l != nullptr && membership(*l, "remove", NodeId{1});
    }});
    scenes_.push_back({1550, "", [this] {
      const SimNode* old_node = cluster_.find(NodeId{1});
      if (old_node != nullptr && !checker_.committed_config().is_member(NodeId{1})) {
        cluster_.retire(old_node->slot);
      }
      return true;
    }});
    scenes_.push_back({1650, "scene 5: leadership transfer", [this] {
      SimNode* l = leader();
      SimNode* f = follower(0);
      if (l == nullptr || f == nullptr) return false;
      const NodeId target = f->id;
      const Status s = cluster_.transfer(l->id, target);
      if (!s) return false;
      say(fmt::format("TRANSFER leadership from node {} to node {}", l->id.value(), target.value()));
      return true;
    }});
    scenes_.push_back({1850, "scene 6: a follower misses a lot; the log is compacted meanwhile",
                       [this] {
      SimNode* f = follower(0);
      if (f == nullptr) return false;
      crashed_ = f->slot;
      cluster_.crash(f->slot, "long outage");
      say("while it is down every replica compacts its log (every 64 entries), so it must get a snapshot");
      return true;
    }});
    scenes_.push_back({2250, "", [this] {
      cluster_.restart(crashed_);
      return true;
    }});
    scenes_.push_back({2450, "scene 7: the leader stops hearing anything (one-way partition)",
                       [this] {
      SimNode* l = leader();
      if (l == nullptr) return false;
      for (NodeId id : cluster_.hosted_ids()) {
        if (id != l->id) cluster_.network().block(id, l->id);
      }
      say(fmt::format("PARTITION messages to leader {} are lost; its own still arrive",
                      l->id.value()));
      return true;
    }});
    scenes_.push_back({2650, "", [this] {
      cluster_.network().heal();
      say("HEAL partition");
      return true;
    }});
    scenes_.push_back({2700, "quiet until the end", [] { return true; }});
  }

  bool membership(SimNode& l, std::string_view what, NodeId id) {
    const Status r = cluster_.change(
        l.id,
        [what, id](core::Raft& raft) -> Result<core::EntryId> {
          if (what == "add learner") return raft.add_learner(id);
          if (what == "promote") return raft.promote_learner(id);
          return raft.remove_member(id);
        },
        std::string(what));
    if (!r) return false;  // e.g. the learner has not caught up yet: retry next tick
    say(fmt::format("MEMBERSHIP leader {}: {} node {} (config entry appended)", l.id.value(), what,
                    id.value()));
    return true;
  }

  void client_traffic() {
    SimNode* l = leader();
    if (l == nullptr || !rng_.chance(0.5)) return;
    std::vector<SimProposal> batch(1);
    batch.front().command = Bytes::copy_of(fmt::format("order-{}", ++commands_));
    cluster_.propose(l->id, std::move(batch));
  }

  void report_config() {
    if (checker_.committed_config_index() == reported_config_) return;
    reported_config_ = checker_.committed_config_index();
    say(fmt::format("configuration committed at index {}: {}", reported_config_.value(),
                    checker_.committed_config().to_string()));
  }

  void summary() {
    const LogIndex commit = checker_.known_commit();
    std::string nodes;
    for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
      const SimNode* n = cluster_.node_at(s);
      if (n == nullptr) continue;
      nodes += n->up() ? fmt::format(" {}:{}", n->id.value(), n->applied.value())
                       : fmt::format(" {}:down", n->id.value());
    }
    const SimNode* l = cluster_.leader();
    say(fmt::format("commit index {} (+{}), {} acknowledged writes; leader {}; applied by node:{}",
                    commit.value(), commit.value() - last_commit_.value(),
                    checker_.acknowledged_count(),
                    l ? fmt::format("node {} (term {})", l->id.value(), l->core().term().value())
                      : std::string("none"),
                    nodes));
    last_commit_ = commit;
  }

  void verdict() {
    const CheckerStats& s = checker_.stats();
    say("== verdict ==");
    say("checked after every tick: election safety, log matching, leader completeness,");
    say("acknowledged writes kept, state machine safety, committed entries never change,");
    say("gap-free applies, linearizable ReadIndex results");
    if (checker_.ok()) {
      say(fmt::format("all invariants held after every one of {} ticks:", cluster_.now()));
      say(fmt::format("  election safety: {} leaderships, never two leaders in one term",
                      s.leaders_elected));
      say(fmt::format("  log matching and state machine safety: {} entries committed, every node "
                      "applied the same entries in the same order",
                      checker_.known_commit().value()));
      say(fmt::format("  leader completeness: every new leader held every committed entry; "
                      "{} of {} client writes acknowledged, none lost",
                      s.acknowledged, s.proposals));
      say(fmt::format("  {} crashes, {} restarts, {} snapshot installs, {} fsyncs",
                      cluster_.stats().crashes, cluster_.stats().restarts,
                      s.snapshots_installed, cluster_.stats().fsyncs));
    } else {
      for (const Violation& v : checker_.violations()) {
        say(fmt::format("VIOLATION at t={}: {}: {}", v.tick, v.invariant, v.detail));
      }
    }
  }

  SimRng rng_;
  Trace& trace_;
  InvariantChecker checker_;
  SimCluster cluster_;
  std::vector<Scene> scenes_;
  std::size_t crashed_ = 0;
  std::vector<NodeId> minority_;
  std::vector<NodeId> majority_;
  NodeId newcomer_;
  std::uint64_t commands_ = 0;
  LogIndex reported_config_;
  LogIndex last_commit_;
};

}  // namespace

std::size_t run_demo(std::uint64_t seed, Trace& trace) {
  Demo demo(seed, trace);
  return demo.run();
}

}  // namespace rlr::sim
