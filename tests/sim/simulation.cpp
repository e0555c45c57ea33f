#include "simulation.h"

#include <array>

#include <fmt/format.h>

namespace rlr::sim {
namespace {

struct BugName {
  core::TestingBug bug;
  std::string_view name;
};
constexpr std::array<BugName, 4> kBugNames{{
    {core::TestingBug::None, "none"},
    {core::TestingBug::CommitPreviousTermByCount, "commit-previous-term-by-count"},
    {core::TestingBug::GrantVoteWithoutLogCheck, "grant-vote-without-log-check"},
    {core::TestingBug::ForgetVoteOnRestart, "forget-vote-on-restart"},
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

std::optional<core::TestingBug> parse_bug(std::string_view name) noexcept {
  for (const BugName& b : kBugNames) {
    if (b.name == name) return b.bug;
  }
  return std::nullopt;
}

std::string_view bug_name(core::TestingBug bug) noexcept {
  for (const BugName& b : kBugNames) {
    if (b.bug == bug) return b.name;
  }
  return "?";
}

std::string replay_command(const SimConfig& config, std::size_t nodes) {
  std::string cmd = fmt::format("build/bin/rlr-sim --seed {} --steps {} --nodes {}", config.seed,
                                config.steps, nodes);
  if (config.bug != core::TestingBug::None) cmd += fmt::format(" --bug {}", bug_name(config.bug));
  if (config.faults != fault_profiles().front().name) cmd += fmt::format(" --faults {}", config.faults);
  if (!config.check_liveness) cmd += " --no-liveness";
  return cmd;
}

ClusterOptions derive_cluster_options(std::size_t nodes, core::TestingBug bug,
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
  // One entry per append with one append in flight moves about an entry per round trip:
  // too slow to clear a backlog within the liveness bound, whatever the core does.
  if (o.raft.max_append_entries * o.raft.max_inflight_appends < 4) o.raft.max_inflight_appends = 4;
  o.raft.max_promote_lag = pick(rng, std::array<std::uint64_t, 2>{16, 1024});
  o.raft.pre_vote = rng.chance(0.85);
  o.raft.check_quorum = rng.chance(0.85);
  o.raft.testing_bug = bug;
  o.fsync_min_ticks = 0;
  o.fsync_max_ticks = rng.uniform(0, 4);
  // Drawn last, so the draws above (and every seed's scenario) are what they always were.
  // Most runs keep only a few entries in memory and read the rest back from the disk.
  o.raft.max_memory_entries = pick(rng, std::array<std::size_t, 5>{0, 1, 4, 16, 64});
  o.raft.max_memory_bytes = pick(rng, std::array<std::size_t, 3>{0, 0, 256});
  o.raft.max_storage_reads_per_turn = pick(rng, std::array<std::size_t, 3>{0, 1, 4});
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
             "faults '{}', bug '{}'",
             config.seed, options.slots, options.initial_voters, options.raft.heartbeat_ticks,
             options.raft.election_ticks, options.raft.pre_vote ? "on" : "off",
             options.raft.check_quorum ? "on" : "off", options.raft.max_append_entries,
             options.raft.max_append_bytes, options.raft.max_inflight_appends, options.fsync_max_ticks,
             options.raft.max_memory_entries, options.raft.max_memory_bytes,
             options.raft.max_storage_reads_per_turn, profile->name, bug_name(config.bug));

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
  result.violations = checker.violations();
  result.cluster_state = cluster.describe_nodes();
  result.entries_read_back = cluster.stats().entries_read_back;
  result.silence_notices = cluster.stats().silence_notices;
  const CheckerStats& cs = checker.stats();
  const SchedulerStats& ss = scheduler.stats();
  const NetworkStats& ns = cluster.network().stats();
  result.summary = fmt::format(
      "leaders {} | committed {} | proposals {} acked {} | reads {}/{} | crashes {} "
      "(after vote {}, after commit {}) | partitions {} | membership {} | transfers {} | "
      "compactions {} snapshots installed {} | read back from disk {} | liveness checks {} "
      "(slowest {} ticks) | messages {} lost {} cut {} dup {} | silence notices {}",
      cs.leaders_elected, checker.known_commit().value(), ss.proposals_accepted, cs.acknowledged,
      cs.reads_confirmed, ss.reads, ss.crashes, ss.crashes_after_vote, ss.crashes_after_commit,
      ss.partitions, ss.membership_changes, ss.transfers, ss.compactions, cs.snapshots_installed,
      cluster.stats().entries_read_back, ss.liveness_checks, ss.max_recovery_ticks, ns.sent, ns.lost, ns.cut, ns.duplicated,
      cluster.stats().silence_notices);
  return result;
}

}  // namespace rlr::sim
