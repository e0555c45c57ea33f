// One simulation run: a seed, a number of steps (ticks of simulated time), a cluster
// size and optionally a deliberate bug (core or runtime). Everything else (network weather, fault
// schedule, core options, client load) derives from the seed, so the replay command
// printed on a failure reproduces the run exactly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/raft.h"
#include "fault_schedule.h"
#include "invariants.h"
#include "sim_cluster.h"
#include "trace.h"

namespace rlr::sim {

/// A deliberate bug, in the core or in the runtime, to show the checks catch it.
enum class Bug : std::uint8_t {
  None = 0,
  CommitPreviousTermByCount,  ///< core: violates §5.4.2 (Figure 8)
  GrantVoteWithoutLogCheck,   ///< core: violates §5.4.1
  ForgetVoteOnRestart,        ///< core: votes twice in one term after a crash
  AckBeforeDurable,           ///< runtime: claims a write durable when it is only queued
  SkipSessionCheck,           ///< runtime: appends a session retry again
  ForgetSessionsOnSnapshot,   ///< runtime: keeps its old session table over a snapshot
  EmitFromFollower,           ///< apply: every node's outputs leave, leader or not
  SkipReemit,                 ///< apply: a new leader does not re-emit above the watermark
};
[[nodiscard]] core::TestingBug core_bug(Bug bug) noexcept;
[[nodiscard]] node::ReplicaBug replica_bug(Bug bug) noexcept;
[[nodiscard]] node::ApplyBug apply_bug(Bug bug) noexcept;

struct SimConfig {
  std::uint64_t seed = 1;
  std::uint64_t steps = 10'000;
  std::size_t nodes = 0;  ///< cluster slots, 3..7; 0 derives it from the seed
  Bug bug = Bug::None;
  std::string faults = "mixed";  ///< a FaultProfile name
  bool check_liveness = true;    ///< false: only safety (lets a run go on past a stall)
};

struct SimResult {
  SimConfig config;
  std::size_t nodes = 0;
  std::uint64_t steps_run = 0;
  std::vector<Violation> violations;
  std::string replay_command;
  std::string cluster_state;  ///< every node at the end (or at the failure)
  std::string summary;        ///< one line of statistics
  std::uint64_t entries_read_back = 0;  ///< evicted entries the nodes read back from disk
  std::uint64_t silence_notices = 0;    ///< followers told their leader's link went silent
  std::uint64_t compactions = 0;        ///< log compactions the replicas made
  std::uint64_t session_retries = 0;    ///< session commands the clients sent again
  std::uint64_t outputs_delivered = 0;  ///< outputs the leaders' sinks delivered downstream
  std::uint64_t digests_compared = 0;   ///< digest checkpoints compared across nodes
  std::uint64_t storage_failures = 0;   ///< replicas whose disk refused a write (disks mix)
  std::uint64_t leader_storage_failures = 0;  ///< of which leaders
  [[nodiscard]] bool ok() const noexcept { return violations.empty(); }
};

/// 3..7, from the seed alone (independent of every other draw of the run).
[[nodiscard]] std::size_t derive_node_count(std::uint64_t seed) noexcept;

[[nodiscard]] std::optional<Bug> parse_bug(std::string_view name) noexcept;
[[nodiscard]] std::string_view bug_name(Bug bug) noexcept;

/// The one-line command that replays `config` with `nodes` slots.
[[nodiscard]] std::string replay_command(const SimConfig& config, std::size_t nodes);

/// Runs one seed to the end or to the step where the first violation shows.
/// REQUIRES: config.faults names a profile, config.nodes is 0 or in [3, 7].
[[nodiscard]] SimResult run_simulation(const SimConfig& config, Trace& trace);

/// The cluster options a seed uses (exposed for the demo and tests).
[[nodiscard]] ClusterOptions derive_cluster_options(std::size_t nodes, Bug bug,
                                                    const FaultProfile& profile, SimRng& rng);

}  // namespace rlr::sim
