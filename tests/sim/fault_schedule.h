// What happens to the cluster and when: the fault schedule of one run. A run alternates
// storms (crashes, partitions, membership changes, leadership transfers, bad network
// weather) with calms (everything healed and restarted), and always ends with a calm
// tail. Each calm is a liveness check: once all nodes are up and no partition is left,
// some leader must be elected and a new proposal must commit within a bounded number of
// ticks. Client proposals (some under sessions, some retried), ReadIndex requests and
// the replicas' own log compaction run throughout.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "invariants.h"
#include "sim_cluster.h"
#include "sim_rng.h"
#include "trace.h"

namespace rlr::sim {

/// Base election timeout of every core; each node draws its timeout from [e, 2e).
inline constexpr std::uint32_t kElectionTicks = 20;
/// The liveness bound: after a heal, a new proposal must commit within ten of the
/// longest election timeouts.
inline constexpr std::uint64_t kLivenessBoundTicks = 10ULL * 2 * kElectionTicks;

/// The rates and bounds of one fault mix. Rates are chances per tick.
struct FaultProfile {
  std::string_view name;
  std::string_view summary;
  std::uint64_t storm_min_ticks = 300;
  std::uint64_t storm_max_ticks = 1500;
  std::uint64_t calm_extra_min_ticks = 50;   ///< a calm lasts the liveness bound plus this
  std::uint64_t calm_extra_max_ticks = 300;
  // crashes
  double crash_per_tick = 0.004;
  double leader_crash_share = 0.4;
  std::uint64_t down_min_ticks = 5;
  std::uint64_t down_max_ticks = 400;
  double crash_after_vote_chance = 0.05;    ///< crash a node right after it grants a vote
  double crash_after_commit_chance = 0.02;  ///< crash a leader right after it commits
  /// A node's disk starts refusing writes (EIO, full): its replica fails at its next
  /// write and the node is restarted (as rlr-node exits 3 and systemd restarts it)
  /// after a downtime like a crash's. Shares the leader with leader_crash_share.
  double disk_error_per_tick = 0.0;
  std::uint64_t quick_down_max_ticks = 8;   ///< downtime after those
  double quorum_loss_chance = 0.1;  ///< a fault may go beyond what the quorum tolerates
  // network
  double partition_per_tick = 0.004;
  std::uint64_t partition_min_ticks = 20;
  std::uint64_t partition_max_ticks = 400;
  std::uint64_t storm_latency_max_ticks = 4;
  double storm_loss_max = 0.05;
  double storm_duplicate_max = 0.03;
  double storm_slow_max = 0.08;
  // operations
  double membership_per_tick = 0.003;
  double transfer_per_tick = 0.002;
  // connection-loss notices (Raft::peer_disconnected)
  double disconnect_notice_chance = 0.0;  ///< a survivor is told its connection to a crashed node dropped
  double spurious_disconnect_per_tick = 0.0;  ///< a live leader's connection to a follower "drops"
  /// Link liveness: a follower that heard nothing from its leader for this many ticks is
  /// told its connection dropped (SimCluster::set_silence_notice_ticks); 0: off.
  std::uint64_t silence_notice_ticks = 0;
  // replication shape (0: derived from the seed)
  std::size_t max_append_entries = 0;
  // client load
  double propose_per_tick = 0.3;
  double batch_share = 0.3;
  double read_per_tick = 0.05;
  double session_share = 0.3;        ///< commands sent under a client session
  double session_retry_share = 0.1;  ///< commands that are a retry of a recent session command
};

/// The named fault mixes; the first is the default.
[[nodiscard]] std::span<const FaultProfile> fault_profiles() noexcept;
[[nodiscard]] const FaultProfile* find_fault_profile(std::string_view name) noexcept;

struct SchedulerStats {
  std::uint64_t storms = 0;
  std::uint64_t liveness_checks = 0;
  std::uint64_t max_recovery_ticks = 0;
  std::uint64_t crashes = 0;
  std::uint64_t crashes_after_vote = 0;
  std::uint64_t crashes_after_commit = 0;
  std::uint64_t disk_errors = 0;  ///< disks broken (each node restarted once its replica failed)
  std::uint64_t partitions = 0;
  std::uint64_t membership_changes = 0;   ///< accepted by a leader
  std::uint64_t transfers = 0;            ///< accepted by a leader
  std::uint64_t proposals = 0;        ///< client commands submitted
  std::uint64_t session_retries = 0;  ///< of which retries of a session command
  std::uint64_t reads = 0;
};

class FaultScheduler {
 public:
  FaultScheduler(const FaultProfile& profile, SimCluster& cluster, InvariantChecker& checker,
                 SimRng rng, Trace& trace, std::uint64_t total_ticks,
                 bool check_liveness);

  /// Injects this tick's faults and client requests (before the cluster ticks).
  void before_tick();
  /// Reacts to what happened during the tick and checks liveness.
  void after_tick();

  [[nodiscard]] const SchedulerStats& stats() const noexcept { return stats_; }

 private:
  enum class Phase : std::uint8_t { Calm, Storm, Tail };
  struct Partition {
    std::vector<std::pair<NodeId, NodeId>> links;  ///< blocked one-way links
    std::uint64_t heal_tick = 0;
  };
  struct ReplacePlan {
    NodeId old_node;
    NodeId new_node;
    std::uint64_t deadline_tick = 0;
  };

  [[nodiscard]] std::uint64_t now() const noexcept { return cluster_.now(); }
  void start_calm(bool tail);
  void start_storm();
  void restart_due();
  void heal_due();
  void storm_faults();
  void client_traffic();

  void crash(std::size_t slot, std::string_view why, std::uint64_t down_ticks);
  /// A live node, the leader with leader_crash_share; nullopt when none is up.
  [[nodiscard]] std::optional<std::size_t> pick_target();
  /// Restarts (after a downtime) every node whose replica failed on a broken disk.
  void restart_failed();
  [[nodiscard]] bool may_lose(std::size_t slot);
  [[nodiscard]] core::Configuration current_config();
  void make_partition();
  void membership_change();
  void drive_replace_plan();
  void transfer_leadership();
  /// `count` client commands: new ones, with or without a session, and retries.
  [[nodiscard]] std::vector<SimProposal> client_commands(std::size_t count);
  void retire_unused_nodes();
  /// A slot that can host a node to be added: empty, or hosting a non-member.
  [[nodiscard]] std::optional<std::size_t> spare_slot(const core::Configuration& config);
  NodeId node_for_spare(std::size_t slot);
  void propose_membership(SimNode& leader, std::string_view what, NodeId id);

  const FaultProfile& profile_;
  SimCluster& cluster_;
  InvariantChecker& checker_;
  SimRng rng_;
  Trace& trace_;
  std::uint64_t total_ticks_;
  bool check_liveness_;
  std::uint64_t tail_start_tick_;
  std::size_t min_voters_;

  Phase phase_ = Phase::Calm;
  std::uint64_t phase_end_tick_ = 0;
  std::uint64_t heal_tick_ = 0;
  bool liveness_pending_ = false;
  std::map<std::size_t, std::uint64_t> restart_tick_;  ///< down slot -> when it restarts
  std::vector<Partition> partitions_;
  std::optional<ReplacePlan> plan_;
  LogIndex reported_config_index_;
  std::uint64_t next_command_ = 0;
  struct SimClient {
    std::uint64_t id = 0;
    std::uint64_t sequence = 0;
  };
  std::vector<SimClient> clients_{{1, 0}, {2, 0}, {3, 0}, {4, 0}};
  /// Recent session commands a client may send again.
  static constexpr std::size_t kRetryableCommands = 64;
  std::vector<std::pair<ClientSession, Bytes>> sessions_;
  std::uint64_t next_read_id_ = 0;
  SchedulerStats stats_;
};

}  // namespace rlr::sim
