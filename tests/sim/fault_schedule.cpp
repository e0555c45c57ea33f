#include "fault_schedule.h"

#include <algorithm>
#include <array>

#include <fmt/format.h>

namespace rlr::sim {
namespace {

constexpr std::array<FaultProfile, 7> kProfiles = [] {
  FaultProfile mixed;
  mixed.name = "mixed";
  mixed.summary = "a bit of everything (default)";

  FaultProfile elections;
  elections.name = "elections";
  elections.summary = "frequent leader crashes, crashes right after votes and commits";
  elections.crash_per_tick = 0.012;
  elections.leader_crash_share = 0.7;
  elections.down_min_ticks = 1;
  elections.down_max_ticks = 80;
  elections.crash_after_vote_chance = 1.0;
  elections.crash_after_commit_chance = 0.15;
  elections.quick_down_max_ticks = 3;
  elections.quorum_loss_chance = 0.25;
  elections.partition_per_tick = 0.002;
  elections.membership_per_tick = 0.001;

  FaultProfile partitions;
  partitions.name = "partitions";
  partitions.summary = "frequent partitions and lagging nodes, few crashes";
  partitions.crash_per_tick = 0.002;
  partitions.partition_per_tick = 0.012;
  partitions.partition_min_ticks = 10;
  partitions.partition_max_ticks = 600;
  partitions.crash_after_commit_chance = 0.05;
  partitions.quorum_loss_chance = 0.2;
  FaultProfile figure8;
  figure8.name = "figure8";
  figure8.summary = "leaders lose power right after committing, one entry per append (Raft Figure 8)";
  figure8.crash_per_tick = 0.03;
  figure8.leader_crash_share = 0.9;
  figure8.down_min_ticks = 1;
  figure8.down_max_ticks = 60;
  figure8.crash_after_vote_chance = 0.1;
  figure8.crash_after_commit_chance = 0.5;
  figure8.quick_down_max_ticks = 120;
  figure8.quorum_loss_chance = 0.3;
  figure8.partition_per_tick = 0.006;
  figure8.partition_max_ticks = 100;
  figure8.membership_per_tick = 0.0;
  figure8.transfer_per_tick = 0.002;
  figure8.max_append_entries = 1;
  figure8.propose_per_tick = 0.8;
  FaultProfile disconnects = mixed;
  disconnects.name = "disconnects";
  disconnects.summary = "survivors hear of crashed peers' lost connections (fast pre-vote), plus false alarms";
  disconnects.crash_per_tick = 0.008;
  disconnects.leader_crash_share = 0.6;
  disconnects.disconnect_notice_chance = 0.8;
  disconnects.spurious_disconnect_per_tick = 0.01;
  FaultProfile silences = mixed;
  silences.name = "silences";
  silences.summary = "links that go silent (partitions, lossy and slow links) are noticed and reported "
                     "lost, including false alarms from slow heartbeats";
  silences.partition_per_tick = 0.01;
  silences.partition_min_ticks = 5;
  silences.partition_max_ticks = 200;
  silences.storm_loss_max = 0.3;
  silences.storm_slow_max = 0.2;
  silences.storm_latency_max_ticks = 8;
  silences.disconnect_notice_chance = 0.8;
  silences.silence_notice_ticks = kElectionTicks / 2;
  FaultProfile disks = mixed;
  disks.name = "disks";
  disks.summary = "disks that start refusing writes (EIO, full): the node fails at its next write, a leader "
                  "hands over, and the node is restarted on a mended disk";
  disks.disk_error_per_tick = 0.004;
  return std::array<FaultProfile, 7>{mixed, elections, partitions, figure8, disconnects, silences, disks};
}();

std::string ids_to_string(const std::vector<NodeId>& ids) {
  std::string s;
  for (NodeId id : ids) s += fmt::format("{}{}", s.empty() ? "" : ",", id.value());
  return "{" + s + "}";
}

}  // namespace

std::span<const FaultProfile> fault_profiles() noexcept { return kProfiles; }

const FaultProfile* find_fault_profile(std::string_view name) noexcept {
  for (const FaultProfile& p : kProfiles) {
    if (p.name == name) return &p;
  }
  return nullptr;
}

FaultScheduler::FaultScheduler(const FaultProfile& profile, SimCluster& cluster,
                               InvariantChecker& checker, SimRng rng, Trace& trace,
                               std::uint64_t total_ticks, bool check_liveness)
    : profile_(profile),
      cluster_(cluster),
      checker_(checker),
      rng_(rng),
      trace_(trace),
      total_ticks_(total_ticks),
      check_liveness_(check_liveness),
      min_voters_(cluster.slot_count() >= 4 ? 3 : 2) {
  const std::uint64_t tail = std::max(kLivenessBoundTicks + 100, total_ticks_ / 10);
  tail_start_tick_ = total_ticks_ > tail ? total_ticks_ - tail : 0;
  reported_config_index_ = checker_.committed_config_index();
  cluster_.set_silence_notice_ticks(profile_.silence_notice_ticks);
  // The run opens with a calm: the first election is a liveness check too.
  start_calm(tail_start_tick_ == 0);
}

// ---- phases -----------------------------------------------------------------------

void FaultScheduler::start_calm(bool tail) {
  phase_ = tail ? Phase::Tail : Phase::Calm;
  plan_.reset();
  if (!partitions_.empty() || cluster_.network().has_partitions()) {
    cluster_.network().heal();
    partitions_.clear();
  }
  // A disk broken in the storm whose node has not written since is mended unused.
  for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
    SimNode* n = cluster_.node_at(s);
    if (n != nullptr && n->up() && !n->replica->failed()) n->disk_broken = false;
  }
  if (profile_.disk_error_per_tick > 0) restart_failed();
  for (const auto& [slot, tick] : restart_tick_) cluster_.restart(slot);
  restart_tick_.clear();
  cluster_.network().set_profile(NetworkProfile{});
  retire_unused_nodes();
  heal_tick_ = now();
  phase_end_tick_ = tail ? total_ticks_
                         : std::min(tail_start_tick_,
                                    now() + kLivenessBoundTicks +
                                        rng_.uniform(profile_.calm_extra_min_ticks,
                                                     profile_.calm_extra_max_ticks));
  liveness_pending_ = check_liveness_ && phase_end_tick_ >= heal_tick_ + kLivenessBoundTicks;
  if (now() > 0) {
    trace_.line(TraceLevel::Narrative, now(),
                "HEAL: every node up, no partitions{}", liveness_pending_
                    ? fmt::format("; a new proposal must commit by t={}",
                                  heal_tick_ + kLivenessBoundTicks)
                    : "");
  }
}

void FaultScheduler::start_storm() {
  phase_ = Phase::Storm;
  ++stats_.storms;
  phase_end_tick_ = std::min(tail_start_tick_,
                             now() + rng_.uniform(profile_.storm_min_ticks, profile_.storm_max_ticks));
  NetworkProfile weather;
  weather.latency_min_ticks = 1;
  weather.latency_max_ticks = rng_.uniform(1, profile_.storm_latency_max_ticks);
  weather.slow_chance = rng_.unit() * profile_.storm_slow_max;
  weather.slow_max_ticks = rng_.uniform(8, 40);
  weather.loss_chance = rng_.unit() * profile_.storm_loss_max;
  weather.duplicate_chance = rng_.unit() * profile_.storm_duplicate_max;
  cluster_.network().set_profile(weather);
  trace_.line(TraceLevel::Narrative, now(),
              "STORM until t={}: latency 1..{} ticks, {:.1f}% loss, {:.1f}% duplicates, "
              "{:.1f}% delayed up to {} ticks",
              phase_end_tick_, weather.latency_max_ticks, weather.loss_chance * 100,
              weather.duplicate_chance * 100, weather.slow_chance * 100, weather.slow_max_ticks);
}

void FaultScheduler::before_tick() {
  if (phase_ != Phase::Tail && now() >= tail_start_tick_) {
    start_calm(true);
  } else if (phase_ != Phase::Tail && now() >= phase_end_tick_) {
    if (phase_ == Phase::Calm) {
      start_storm();
    } else {
      start_calm(false);
    }
  }
  restart_due();
  heal_due();
  if (phase_ == Phase::Storm) storm_faults();
  client_traffic();
}

void FaultScheduler::after_tick() {
  if (profile_.disk_error_per_tick > 0) restart_failed();
  if (phase_ == Phase::Storm) {
    for (std::size_t slot : cluster_.take_vote_grants()) {
      if (rng_.chance(profile_.crash_after_vote_chance) && may_lose(slot)) {
        ++stats_.crashes_after_vote;
        crash(slot, "right after granting a vote", rng_.uniform(1, profile_.quick_down_max_ticks));
      }
    }
    for (std::size_t slot : cluster_.take_leader_commits()) {
      if (rng_.chance(profile_.crash_after_commit_chance) && may_lose(slot)) {
        ++stats_.crashes_after_commit;
        crash(slot, "right after committing", rng_.uniform(1, profile_.quick_down_max_ticks));
      }
    }
  } else {
    (void)cluster_.take_vote_grants();
    (void)cluster_.take_leader_commits();
  }

  if (checker_.committed_config_index() != reported_config_index_) {
    reported_config_index_ = checker_.committed_config_index();
    trace_.line(TraceLevel::Narrative, now(), "configuration committed at index {}: {}",
                reported_config_index_.value(), checker_.committed_config().to_string());
  }

  if (!liveness_pending_) return;
  if (checker_.last_acknowledged_submit_tick() >= heal_tick_ &&
      checker_.acknowledged_count() > 0) {
    liveness_pending_ = false;
    ++stats_.liveness_checks;
    stats_.max_recovery_ticks = std::max(stats_.max_recovery_ticks, now() - heal_tick_);
    if (trace_.enabled(TraceLevel::Narrative) && heal_tick_ > 0) {
      const SimNode* leader = cluster_.leader();
      trace_.line(TraceLevel::Narrative, now(),
                  "recovered: leader {} in term {}, first new commit {} ticks after the heal",
                  leader ? leader->id.value() : 0, leader ? leader->core().term().value() : 0,
                  now() - heal_tick_);
    }
  } else if (now() >= heal_tick_ + kLivenessBoundTicks) {
    liveness_pending_ = false;
    const SimNode* leader = cluster_.leader();
    std::string suspect;
    if (leader != nullptr) {
      // Name the followers a leader has stopped sending entries to, if any.
      for (const auto& [peer, pr] : leader->core().progress()) {
        const std::uint64_t last_sent = cluster_.last_replication_tick(leader->id, peer);
        if (pr.match < leader->core().log().last_index() &&
            now() - last_sent > 2ULL * kElectionTicks) {
          suspect += fmt::format(
              "; replication to node {} is stalled: match {} < last index {}, no entries sent "
              "since t={} (progress: {}, {} in flight{})",
              peer.value(), pr.match.value(), leader->core().log().last_index().value(),
              last_sent, progress_state_name(pr.state), pr.inflight.size(),
              pr.probe_sent ? ", probe sent" : "");
        }
      }
    } else {
      // Name nodes that still honour a leader that is gone: they ignore vote requests.
      for (std::size_t slot = 0; slot < cluster_.slot_count(); ++slot) {
        const SimNode* n = cluster_.node_at(slot);
        if (n == nullptr || !n->up() || n->core().leader().is_zero()) continue;
        const SimNode* named = cluster_.find(n->core().leader());
        if (named == nullptr || !named->up() || named->core().role() != Role::Leader) {
          suspect += fmt::format("; node {} ({}) still follows node {}, which is not leading",
                                 n->id.value(), to_string(n->core().role()),
                                 n->core().leader().value());
        }
      }
    }
    checker_.fail("liveness",
                  fmt::format("all nodes up and no partition since t={}, but no new proposal "
                              "committed within {} ticks (leader now: {}){}",
                              heal_tick_, kLivenessBoundTicks,
                              leader ? fmt::format("node {} term {}", leader->id.value(),
                                                   leader->core().term().value())
                                     : std::string("none"),
                              suspect));
  }
}

void FaultScheduler::restart_due() {
  for (auto it = restart_tick_.begin(); it != restart_tick_.end();) {
    if (it->second <= now()) {
      cluster_.restart(it->first);
      it = restart_tick_.erase(it);
    } else {
      ++it;
    }
  }
}

void FaultScheduler::heal_due() {
  for (auto it = partitions_.begin(); it != partitions_.end();) {
    if (it->heal_tick <= now()) {
      for (const auto& [from, to] : it->links) cluster_.network().unblock(from, to);
      trace_.line(TraceLevel::Narrative, now(), "HEAL partition ({} links)", it->links.size());
      it = partitions_.erase(it);
    } else {
      ++it;
    }
  }
}

// ---- storms -----------------------------------------------------------------------

void FaultScheduler::storm_faults() {
  if (rng_.chance(profile_.crash_per_tick)) {
    const std::optional<std::size_t> target = pick_target();
    if (target && may_lose(*target)) {
      crash(*target, "", rng_.uniform(profile_.down_min_ticks, profile_.down_max_ticks));
    }
  }
  // Only profiles that use it draw from the rng here (see below).
  if (profile_.disk_error_per_tick > 0 && rng_.chance(profile_.disk_error_per_tick)) {
    const std::optional<std::size_t> target = pick_target();
    if (target && may_lose(*target) && !cluster_.node_at(*target)->disk_broken) {
      ++stats_.disk_errors;
      cluster_.break_disk(*target);
    }
  }
  if (rng_.chance(profile_.partition_per_tick) && partitions_.size() < 2) make_partition();
  if (rng_.chance(profile_.membership_per_tick)) membership_change();
  if (plan_ && now() % 5 == 0) drive_replace_plan();
  if (rng_.chance(profile_.transfer_per_tick)) transfer_leadership();
  // Only profiles that use it draw from the rng here, so other profiles' seeds keep
  // their schedules.
  if (profile_.spurious_disconnect_per_tick > 0 && rng_.chance(profile_.spurious_disconnect_per_tick)) {
    // A connection drops while both ends live: the follower must not disturb its leader.
    std::vector<std::size_t> up;
    for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
      const SimNode* n = cluster_.node_at(s);
      if (n != nullptr && n->up() && n->core().leader() != kNoNode && n->core().leader() != n->id) {
        up.push_back(s);
      }
    }
    if (!up.empty()) {
      const std::size_t s = up[rng_.index(up.size())];
      cluster_.notify_disconnect(s, cluster_.node_at(s)->core().leader());
    }
  }
}

std::optional<std::size_t> FaultScheduler::pick_target() {
  const SimNode* leader = cluster_.leader();
  if (leader != nullptr && rng_.chance(profile_.leader_crash_share)) return leader->slot;
  std::vector<std::size_t> up;
  for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
    if (cluster_.node_at(s) != nullptr && cluster_.node_at(s)->up()) up.push_back(s);
  }
  if (up.empty()) return std::nullopt;
  return up[rng_.index(up.size())];
}

void FaultScheduler::restart_failed() {
  for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
    const SimNode* n = cluster_.node_at(s);
    if (n == nullptr || !n->up() || !n->replica->failed()) continue;
    // The process exits (rlr-node's status 3) and is restarted on a mended disk; within a
    // calm, at once.
    crash(s, "its storage failed: the process exits",
          phase_ == Phase::Storm ? rng_.uniform(profile_.down_min_ticks, profile_.down_max_ticks) : 1);
  }
}

void FaultScheduler::crash(std::size_t slot, std::string_view why, std::uint64_t down_ticks) {
  const NodeId lost = cluster_.node_at(slot)->id;
  cluster_.crash(slot, why);
  if (profile_.disconnect_notice_chance > 0) {
    // A crashed process's sockets close at once; its peers may notice before any timeout.
    for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
      const SimNode* n = cluster_.node_at(s);
      if (s == slot || n == nullptr || !n->up()) continue;
      if (rng_.chance(profile_.disconnect_notice_chance)) cluster_.notify_disconnect(s, lost);
    }
  }
  restart_tick_[slot] = now() + down_ticks;
  ++stats_.crashes;
}

core::Configuration FaultScheduler::current_config() {
  if (const SimNode* leader = cluster_.leader()) return leader->core().config();
  return checker_.committed_config();
}

bool FaultScheduler::may_lose(std::size_t slot) {
  const SimNode* n = cluster_.node_at(slot);
  if (n == nullptr || !n->up()) return false;
  const core::Configuration config = current_config();
  for (const auto* set : {&config.voters, &config.voters_outgoing}) {
    if (set->empty() || !std::binary_search(set->begin(), set->end(), n->id)) continue;
    std::size_t down = 0;
    for (NodeId id : *set) {
      const SimNode* m = cluster_.find(id);
      if (m == nullptr || !m->up()) ++down;
    }
    // A majority must stay up: at most (size - 1) / 2 voters of each set may be down.
    if (down + 1 > (set->size() - 1) / 2) return rng_.chance(profile_.quorum_loss_chance);
  }
  return true;
}

void FaultScheduler::make_partition() {
  std::vector<NodeId> ids = cluster_.hosted_ids();
  if (ids.size() < 2) return;
  const SimNode* leader = cluster_.leader();
  const NodeId focus = leader != nullptr && rng_.chance(0.5) ? leader->id : ids[rng_.index(ids.size())];
  Partition p;
  p.heal_tick = now() + rng_.uniform(profile_.partition_min_ticks, profile_.partition_max_ticks);
  std::string what;
  switch (rng_.index(4)) {
    case 0: {  // one node cut off in both directions
      for (NodeId other : ids) {
        if (other == focus) continue;
        p.links.emplace_back(focus, other);
        p.links.emplace_back(other, focus);
      }
      what = fmt::format("node {} isolated", focus.value());
      break;
    }
    case 1: {  // a minority split from the rest (sometimes any split)
      for (std::size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[rng_.index(i + 1)]);
      const std::size_t max_minority = std::max<std::size_t>(1, (ids.size() - 1) / 2);
      const std::size_t k = rng_.chance(profile_.quorum_loss_chance)
                                ? rng_.uniform(1, ids.size() - 1)
                                : rng_.uniform(1, max_minority);
      const std::vector<NodeId> a(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(k));
      const std::vector<NodeId> b(ids.begin() + static_cast<std::ptrdiff_t>(k), ids.end());
      for (NodeId x : a) {
        for (NodeId y : b) {
          p.links.emplace_back(x, y);
          p.links.emplace_back(y, x);
        }
      }
      std::vector<NodeId> sa = a;
      std::vector<NodeId> sb = b;
      std::sort(sa.begin(), sa.end());
      std::sort(sb.begin(), sb.end());
      what = fmt::format("{} | {}", ids_to_string(sa), ids_to_string(sb));
      break;
    }
    case 2: {  // one node can receive but its messages are lost
      for (NodeId other : ids) {
        if (other != focus) p.links.emplace_back(focus, other);
      }
      what = fmt::format("node {} cannot send (one-way)", focus.value());
      break;
    }
    default: {  // one node can send but hears nothing
      for (NodeId other : ids) {
        if (other != focus) p.links.emplace_back(other, focus);
      }
      what = fmt::format("node {} cannot receive (one-way)", focus.value());
      break;
    }
  }
  for (const auto& [from, to] : p.links) cluster_.network().block(from, to);
  trace_.line(TraceLevel::Narrative, now(), "PARTITION {} until t={}", what, p.heal_tick);
  partitions_.push_back(std::move(p));
  ++stats_.partitions;
}

std::optional<std::size_t> FaultScheduler::spare_slot(const core::Configuration& config) {
  std::vector<std::size_t> spares;
  for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
    const SimNode* n = cluster_.node_at(s);
    if (n == nullptr || !config.is_member(n->id)) spares.push_back(s);
  }
  if (spares.empty()) return std::nullopt;
  return spares[rng_.index(spares.size())];
}

NodeId FaultScheduler::node_for_spare(std::size_t slot) {
  if (const SimNode* n = cluster_.node_at(slot)) return n->id;
  return cluster_.start_new_node(slot);
}

void FaultScheduler::propose_membership(SimNode& leader, std::string_view what, NodeId id) {
  const Status result = cluster_.change(
      leader.id,
      [what, id](core::Raft& r) -> Result<core::EntryId> {
        if (what == "add learner") return r.add_learner(id);
        if (what == "promote") return r.promote_learner(id);
        return r.remove_member(id);
      },
      std::string(what));
  if (result) ++stats_.membership_changes;
  trace_.line(result ? TraceLevel::Narrative : TraceLevel::Verbose, now(),
              "MEMBERSHIP leader {}: {} node {}: {}", leader.id.value(), what, id.value(),
              result ? std::string("proposed") : result.to_string());
}

void FaultScheduler::membership_change() {
  SimNode* leader = cluster_.leader();
  if (leader == nullptr) return;
  const core::Configuration config = leader->core().config();
  if (config.is_joint()) return;
  const auto spare = spare_slot(config);
  std::vector<int> ops;
  if (spare) ops.push_back(0);
  if (!config.learners.empty()) ops.push_back(1);
  if (config.voters.size() > min_voters_ || !config.learners.empty()) ops.push_back(2);
  if (spare && !plan_) ops.push_back(3);
  if (ops.empty()) return;
  switch (ops[rng_.index(ops.size())]) {
    case 0:
      propose_membership(*leader, "add learner", node_for_spare(*spare));
      break;
    case 1:
      propose_membership(*leader, "promote", config.learners[rng_.index(config.learners.size())]);
      break;
    case 2: {
      std::vector<NodeId> candidates = config.learners;
      if (config.voters.size() > min_voters_) {
        candidates.insert(candidates.end(), config.voters.begin(), config.voters.end());
      }
      propose_membership(*leader, "remove", candidates[rng_.index(candidates.size())]);
      break;
    }
    default: {
      const NodeId old_node = rng_.chance(0.3) ? leader->id
                                               : config.voters[rng_.index(config.voters.size())];
      const NodeId new_node = node_for_spare(*spare);
      plan_ = ReplacePlan{old_node, new_node, now() + 1500};
      trace_.line(TraceLevel::Narrative, now(), "MEMBERSHIP replace node {} by node {}",
                  old_node.value(), new_node.value());
      break;
    }
  }
}

void FaultScheduler::drive_replace_plan() {
  if (now() > plan_->deadline_tick) {
    trace_.line(TraceLevel::Narrative, now(), "MEMBERSHIP replacing node {} by node {}: gave up",
                plan_->old_node.value(), plan_->new_node.value());
    plan_.reset();
    return;
  }
  SimNode* leader = cluster_.leader();
  if (leader == nullptr) return;
  const core::Configuration& config = leader->core().config();
  if (config.is_joint()) return;
  if (!config.is_member(plan_->new_node)) {
    propose_membership(*leader, "add learner", plan_->new_node);
  } else if (config.is_learner(plan_->new_node)) {
    propose_membership(*leader, "promote", plan_->new_node);
  } else if (config.is_member(plan_->old_node)) {
    propose_membership(*leader, "remove", plan_->old_node);
  } else {
    trace_.line(TraceLevel::Narrative, now(), "MEMBERSHIP replaced node {} by node {}",
                plan_->old_node.value(), plan_->new_node.value());
    plan_.reset();
  }
}

void FaultScheduler::transfer_leadership() {
  SimNode* leader = cluster_.leader();
  if (leader == nullptr) return;
  std::vector<NodeId> voters = leader->core().config().voters;
  std::erase(voters, leader->id);
  if (voters.empty()) return;
  const NodeId target = voters[rng_.index(voters.size())];
  const Status s = cluster_.transfer(leader->id, target);
  if (s) ++stats_.transfers;
  trace_.line(TraceLevel::Narrative, now(), "TRANSFER leadership from node {} to node {}: {}",
              leader->id.value(), target.value(), s ? std::string("started") : s.to_string());
}

void FaultScheduler::retire_unused_nodes() {
  // Only with every hosted node up is every configuration that could still commit in view.
  if (cluster_.up_count() != cluster_.hosted_ids().size()) return;
  const core::Configuration& committed = checker_.committed_config();
  for (std::size_t s = 0; s < cluster_.slot_count(); ++s) {
    const SimNode* n = cluster_.node_at(s);
    if (n == nullptr || committed.is_member(n->id)) continue;
    bool referenced = false;
    for (std::size_t o = 0; o < cluster_.slot_count() && !referenced; ++o) {
      const SimNode* other = cluster_.node_at(o);
      referenced = other != nullptr && other != n && other->core().config().is_member(n->id);
    }
    if (!referenced) cluster_.retire(s);
  }
}

// ---- always -----------------------------------------------------------------------

void FaultScheduler::client_traffic() {
  SimNode* leader = cluster_.leader();
  // Clients wait for acknowledgements: a leader that cannot commit stops receiving new
  // work once this much is pending, so the backlog a heal has to clear stays bounded.
  constexpr std::uint64_t kMaxUncommittedEntries = 64;
  const bool backlogged =
      leader != nullptr && leader->core().log().last_index().value() >
                               leader->core().commit_index().value() + kMaxUncommittedEntries;
  if (rng_.chance(profile_.propose_per_tick) && !backlogged) {
    NodeId target = leader != nullptr ? leader->id : NodeId{};
    if (leader == nullptr || rng_.chance(0.1)) {
      const std::vector<NodeId> ids = cluster_.hosted_ids();
      const NodeId pick = ids[rng_.index(ids.size())];
      if (cluster_.find(pick)->up()) target = pick;
    }
    if (!target.is_zero()) {
      const std::size_t count = rng_.chance(profile_.batch_share) ? rng_.uniform(2, 8) : 1;
      cluster_.propose(target, client_commands(count));
      stats_.proposals += count;
    }
  }
  if (leader != nullptr && rng_.chance(profile_.read_per_tick)) {
    cluster_.read_index(leader->id, ++next_read_id_);
    ++stats_.reads;
  }
}

std::vector<SimProposal> FaultScheduler::client_commands(std::size_t count) {
  std::vector<SimProposal> batch;
  for (std::size_t i = 0; i < count; ++i) {
    SimProposal p;
    if (!sessions_.empty() && rng_.chance(profile_.session_retry_share)) {
      // A client that lost its answer sends the same command again (to whoever leads).
      const auto& [session, command] = sessions_[rng_.index(sessions_.size())];
      p.session = session;
      p.command = command;
      ++stats_.session_retries;
    } else if (rng_.chance(profile_.session_share)) {
      SimClient& client = clients_[rng_.index(clients_.size())];
      p.session = ClientSession{client.id, ++client.sequence};
      p.command = Bytes::copy_of(fmt::format("c{}-s{}", client.id, client.sequence));
      sessions_.emplace_back(p.session, p.command);
      if (sessions_.size() > kRetryableCommands) sessions_.erase(sessions_.begin());
    } else {
      p.command = Bytes::copy_of(fmt::format("cmd-{}", ++next_command_));
    }
    batch.push_back(std::move(p));
  }
  return batch;
}


}  // namespace rlr::sim
