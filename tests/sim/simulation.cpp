#include "simulation.h"

#include <array>

#include <fmt/format.h>

namespace rlr::sim {
namespace {

struct BugName {
  Bug bug;
  std::string_view name;
};
constexpr std::array<BugName, 9> kBugNames{{
    {Bug::None, "none"},
    {Bug::CommitPreviousTermByCount, "commit-previous-term-by-count"},
    {Bug::GrantVoteWithoutLogCheck, "grant-vote-without-log-check"},
    {Bug::ForgetVoteOnRestart, "forget-vote-on-restart"},
    {Bug::AckBeforeDurable, "ack-before-durable"},
    {Bug::SkipSessionCheck, "skip-session-check"},
    {Bug::ForgetSessionsOnSnapshot, "forget-sessions-on-snapshot"},
    {Bug::EmitFromFollower, "emit-from-follower"},
    {Bug::SkipReemit, "skip-reemit"},
}};

template <class T, std::size_t N>
const T& pick(SimRng& rng, const std::array<T, N>& options) {
  return options[rng.index(N)];
}

}  // namespace

std::size_t derive_node_count(std::uint64_t seed) noexcept {
  std::uint64_t state = seed ^ 0x5eed5eed5eed5eedULL;
  return 3 + static_cast<std::size_t>(splitmix64(state) % 5);
}

core::TestingBug core_bug(Bug bug) noexcept {
  switch (bug) {
    case Bug::CommitPreviousTermByCount: return core::TestingBug::CommitPreviousTermByCount;
    case Bug::GrantVoteWithoutLogCheck: return core::TestingBug::GrantVoteWithoutLogCheck;
    case Bug::ForgetVoteOnRestart: return core::TestingBug::ForgetVoteOnRestart;
    default: return core::TestingBug::None;
  }
}

node::ReplicaBug replica_bug(Bug bug) noexcept {
  switch (bug) {
    case Bug::AckBeforeDurable: return node::ReplicaBug::AckBeforeDurable;
    case Bug::SkipSessionCheck: return node::ReplicaBug::SkipSessionCheck;
    case Bug::ForgetSessionsOnSnapshot: return node::ReplicaBug::ForgetSessionsOnSnapshot;
    default: return node::ReplicaBug::None;
  }
}

node::ApplyBug apply_bug(Bug bug) noexcept {
  switch (bug) {
    case Bug::EmitFromFollower: return node::ApplyBug::EmitFromFollower;
    case Bug::SkipReemit: return node::ApplyBug::SkipReemit;
    default: return node::ApplyBug::None;
  }
}

std::optional<Bug> parse_bug(std::string_view name) noexcept {
  for (const BugName& b : kBugNames) {
    if (b.name == name) return b.bug;
  }
  return std::nullopt;
}

std::string_view bug_name(Bug bug) noexcept {
  for (const BugName& b : kBugNames) {
    if (b.bug == bug) return b.name;
  }
  return "?";
}

std::string replay_command(const SimConfig& config, std::size_t nodes) {
  std::string cmd = fmt::format("build/bin/rlr-sim --seed {} --steps {} --nodes {}", config.seed,
                                config.steps, nodes);
  if (config.bug != Bug::None) cmd += fmt::format(" --bug {}", bug_name(config.bug));
  if (config.faults != fault_profiles().front().name) cmd += fmt::format(" --faults {}", config.faults);
  if (!config.check_liveness) cmd += " --no-liveness";
  return cmd;
}

ClusterOptions derive_cluster_options(std::size_t nodes, Bug bug,
                                      const FaultProfile& profile, SimRng& rng) {
  ClusterOptions o;
  o.slots = nodes;
  // Some slots may start empty, to host nodes added later.
  o.initial_voters = nodes;
  if (nodes >= 4 && rng.chance(0.5)) o.initial_voters = nodes - rng.uniform(1, std::min<std::size_t>(2, nodes - 3));
  o.raft.election_ticks = kElectionTicks;
  o.raft.heartbeat_ticks = static_cast<std::uint32_t>(rng.uniform(2, 5));
  o.raft.max_append_entries = pick(rng, std::array<std::size_t, 4>{1, 4, 64, 4096});
  o.raft.max_append_bytes = pick(rng, std::array<std::size_t, 3>{256, 4096, 1U << 20});
  o.raft.max_inflight_appends = pick(rng, std::array<std::size_t, 4>{1, 4, 64, 256});
  if (profile.max_append_entries != 0) o.raft.max_append_entries = profile.max_append_entries;
  // Fewer than 16 entries per round trip (an entry per tick or so) cannot clear a
  // follower's backlog of several hundred entries within the liveness bound, whatever the
  // core does; a joint configuration that needs that follower would stall the cluster.
  if (o.raft.max_append_entries * o.raft.max_inflight_appends < 16) {
    o.raft.max_inflight_appends = (16 + o.raft.max_append_entries - 1) / o.raft.max_append_entries;
  }
  o.raft.max_promote_lag = pick(rng, std::array<std::uint64_t, 2>{16, 1024});
  o.raft.pre_vote = rng.chance(0.85);
  o.raft.check_quorum = rng.chance(0.85);
  o.raft.testing_bug = core_bug(bug);
  o.raft.check_invariants = true;
  o.replica_bug = replica_bug(bug);
  o.fsync_min_ticks = 0;
  o.fsync_max_ticks = rng.uniform(0, 4);
  // Drawn last, so the draws above (and every seed's scenario) are what they always were.
  // Most runs keep only a few entries in memory and read the rest back from the disk.
  o.raft.max_memory_entries = pick(rng, std::array<std::size_t, 5>{0, 1, 4, 16, 64});
  o.raft.max_memory_bytes = pick(rng, std::array<std::size_t, 3>{0, 0, 256});
  o.raft.max_storage_reads_per_turn = pick(rng, std::array<std::size_t, 3>{0, 1, 4});
  // Likewise when evicted entries are read back: each read fills one append, so fewer
  // than 4 entries a turn cannot clear a backlog of hundreds within the liveness bound.
  if (o.raft.max_storage_reads_per_turn != 0 &&
      o.raft.max_storage_reads_per_turn * o.raft.max_append_entries < 4) {
    o.raft.max_storage_reads_per_turn = (4 + o.raft.max_append_entries - 1) / o.raft.max_append_entries;
  }
  // The runtime's own policy: compaction points, the proposal bound and timeout,
  // sessions, and whether writes go through the storage thread.
  o.node.tick = std::chrono::milliseconds{1};
  o.node.compact_after_entries = pick(rng, std::array<std::uint64_t, 4>{0, 4, 16, 64});
  o.node.max_pending_proposals = pick(rng, std::array<std::size_t, 3>{8, 64, 4096});
  o.node.proposal_timeout = std::chrono::milliseconds{pick(rng, std::array<std::uint32_t, 3>{50, 400, 5000})};
  // Sessions never expire here: a retry after its session expired is applied again
  // (the documented limit of NodeOptions::session_ttl_entries and max_sessions), which
  // the exactly-once check would report.
  o.node.max_sessions = pick(rng, std::array<std::size_t, 2>{4, 1000});
  o.node.session_ttl_entries = 1'000'000;
  o.disk_thread_chance = pick(rng, std::array<double, 3>{0.0, 0.8, 1.0});
  // The disk: occasional stalls, and writes that outlive a crash without an fsync.
  o.slow_fsync_chance = pick(rng, std::array<double, 3>{0.0, 0.0, 0.01});
  o.crash_keeps_writes_chance = pick(rng, std::array<double, 2>{0.0, 0.5});
  // The application: digest checkpoints and egress watermarks.
  o.apply_bug = apply_bug(bug);
  o.digest_interval = pick(rng, std::array<std::uint64_t, 3>{1, 8, 64});
  o.watermark_ticks = pick(rng, std::array<std::uint64_t, 3>{10, 50, 200});
  return o;
}

SimResult run_simulation(const SimConfig& config, Trace& trace) {
  SimResult result;
  result.config = config;
  result.nodes = config.nodes != 0 ? config.nodes : derive_node_count(config.seed);
  result.replay_command = replay_command(config, result.nodes);
  const FaultProfile* profile = find_fault_profile(config.faults);
  if (profile == nullptr) profile = &fault_profiles().front();

  SimRng master(config.seed);
  SimRng params = master.fork();
  const ClusterOptions options = derive_cluster_options(result.nodes, config.bug, *profile, params);
  trace.line(TraceLevel::Narrative, 0,
             "seed {}: {} slots, {} founding voters, heartbeat {} ticks, election {} ticks, "
             "pre-vote {}, check-quorum {}, appends of <= {} entries / {} bytes, <= {} in flight, "
             "fsync 0..{} ticks, in memory <= {} entries / {} bytes, <= {} reads a turn (0: no limit), "
             "compact every {} entries, <= {} proposals pending, proposal timeout {} ticks, "
             "<= {} sessions (ttl {} entries), storage thread {:.0f}% of boots, slow fsyncs {:.0f}%, "
             "crash keeps queued writes {:.0f}%, digest every {} entries, watermark every {} ticks, "
             "faults '{}', bug '{}'",
             config.seed, options.slots, options.initial_voters, options.raft.heartbeat_ticks,
             options.raft.election_ticks, options.raft.pre_vote ? "on" : "off",
             options.raft.check_quorum ? "on" : "off", options.raft.max_append_entries,
             options.raft.max_append_bytes, options.raft.max_inflight_appends, options.fsync_max_ticks,
             options.raft.max_memory_entries, options.raft.max_memory_bytes,
             options.raft.max_storage_reads_per_turn, options.node.compact_after_entries,
             options.node.max_pending_proposals, options.node.proposal_timeout.count(),
             options.node.max_sessions, options.node.session_ttl_entries,
             options.disk_thread_chance * 100, options.slow_fsync_chance * 100,
             options.crash_keeps_writes_chance * 100, options.digest_interval,
             options.watermark_ticks, profile->name, bug_name(config.bug));

  InvariantChecker checker;
  SimCluster cluster(options, master.fork(), checker, trace);
  FaultScheduler scheduler(*profile, cluster, checker, master.fork(), trace, config.steps,
                           config.check_liveness);
  constexpr std::uint64_t kFullLogCheckEveryTicks = 100;
  while (result.steps_run < config.steps && checker.ok()) {
    scheduler.before_tick();
    cluster.tick();
    scheduler.after_tick();
    ++result.steps_run;
    if (result.steps_run % kFullLogCheckEveryTicks == 0 || result.steps_run == config.steps) {
      cluster.check_all_logs();
    }
  }
  // The run ended with a calm tail: the leader's downstream must now be complete.
  if (checker.ok() && result.steps_run == config.steps) cluster.check_egress_complete();
  result.violations = checker.violations();
  result.outputs_delivered = cluster.downstream().delivered();
  result.digests_compared = cluster.downstream().checkpoints_compared();
  result.cluster_state = cluster.describe_nodes();
  result.entries_read_back = cluster.stats().entries_read_back;
  result.silence_notices = cluster.stats().silence_notices;
  result.compactions = cluster.stats().compactions;
  result.storage_failures = cluster.stats().storage_failures;
  result.leader_storage_failures = cluster.stats().leader_storage_failures;
  result.session_retries = scheduler.stats().session_retries;
  const CheckerStats& cs = checker.stats();
  const SchedulerStats& ss = scheduler.stats();
  const NetworkStats& ns = cluster.network().stats();
  const ClusterStats cst = cluster.stats();
  result.summary = fmt::format(
      "leaders {} | committed {} | proposals {} (session retries {}) acked {} failed {} | "
      "reads {}/{} | crashes {} "
      "(after vote {}, after commit {}) | disk errors {} (replicas failed {}) | partitions {} | membership {} | transfers {} | "
      "compactions {} snapshots installed {} | read back from disk {} | liveness checks {} "
      "(slowest {} ticks) | messages {} lost {} cut {} dup {} | silence notices {} | "
      "fsyncs slow {}, writes kept at a crash {} | outputs delivered {} (again {}), "
      "downstream complete through {}, digests compared {}",
      cs.leaders_elected, checker.known_commit().value(), ss.proposals, ss.session_retries,
      cs.acknowledged, cst.proposals_failed, cs.reads_confirmed, ss.reads, ss.crashes,
      ss.crashes_after_vote, ss.crashes_after_commit, ss.disk_errors, cst.storage_failures, ss.partitions, ss.membership_changes,
      ss.transfers, cst.compactions, cs.snapshots_installed, cst.entries_read_back,
      ss.liveness_checks, ss.max_recovery_ticks, ns.sent, ns.lost, ns.cut, ns.duplicated,
      cst.silence_notices, cst.slow_fsyncs, cst.writes_kept, cluster.downstream().delivered(),
      cluster.downstream().redelivered(), cluster.downstream().acknowledged().value(),
      cluster.downstream().checkpoints_compared());
  return result;
}

}  // namespace rlr::sim
