// A cluster of nodes running the runtime's node::Replica (see sim_node.h) on the
// simulated network and disks. The cluster owns the clock and plays the part of each
// node's threads: it feeds one input at a time to a replica (a delivered message, a tick,
// a proposal, a request, a completed fsync), lets it handle what became ready, runs the
// completions it produced, and hands back the persistence marks that came due. The
// replica's own persistence policy decides what is written and when; the simulated disk
// makes a write durable after a random fsync delay and loses the unsynced ones in a
// crash; a restart opens a new replica on what the disk holds.
// After every input the cluster reports what it observes to the InvariantChecker.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/raft.h"
#include "invariants.h"
#include "node/replica.h"
#include "sim_network.h"
#include "sim_node.h"
#include "sim_rng.h"
#include "sim_storage.h"
#include "trace.h"

namespace rlr::sim {

/// "probe", "replicate" or "snapshot", for reports.
[[nodiscard]] std::string_view progress_state_name(core::Progress::State state) noexcept;

struct ClusterOptions {
  std::size_t slots = 5;           ///< nodes the cluster can host at once (3..7)
  std::size_t initial_voters = 5;  ///< founding members, in slots [0, initial_voters)
  core::RaftOptions raft;          ///< template; id and random_seed are set per node
  NodeOptions node;               ///< the runtime's options (id set per node; 1 tick = 1 ms)
  node::ReplicaBug replica_bug = node::ReplicaBug::None;  ///< a deliberate runtime bug
  double disk_thread_chance = 0.8;  ///< a node writes through its SimDisk (else on its own thread)
  std::uint64_t fsync_min_ticks = 0;
  std::uint64_t fsync_max_ticks = 2;
  /// A write may stall: it takes up to slow_fsync_max_ticks instead (a slow disk).
  double slow_fsync_chance = 0.0;
  std::uint64_t slow_fsync_max_ticks = 60;
  /// A crash may find some queued writes already on the platter: a prefix of them
  /// survives, never acknowledged (a write reaches the disk before its fsync returns).
  double crash_keeps_writes_chance = 0.0;
  // The application (see sim_app.h).
  node::ApplyBug apply_bug = node::ApplyBug::None;  ///< a deliberate apply-side bug
  std::uint64_t digest_interval = 8;    ///< ApplyOptions::digest_interval
  std::uint64_t watermark_ticks = 10;   ///< ApplyOptions::watermark_interval
};

struct ClusterStats {
  std::uint64_t crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t writes_lost = 0;  ///< queued writes a crash threw away
  std::uint64_t writes_kept = 0;  ///< queued writes that reached the disk before a crash
  std::uint64_t slow_fsyncs = 0;
  std::uint64_t fsyncs = 0;
  std::uint64_t applied_entries = 0;
  std::uint64_t nodes_started = 0;
  std::uint64_t nodes_retired = 0;
  std::uint64_t entries_read_back = 0;  ///< evicted entries read back from the disks
  std::uint64_t silence_notices = 0;    ///< followers told their leader's link went silent
  std::uint64_t compactions = 0;        ///< snapshots the replicas took of their logs
  std::uint64_t storage_failures = 0;   ///< replicas told that a write failed
  std::uint64_t leader_storage_failures = 0;  ///< of which leaders (they hand over)
  std::uint64_t proposals_failed = 0;   ///< proposals answered with an error
};

/// What a simulated client proposes: a command, optionally under a client session.
struct SimProposal {
  Bytes command;
  ClientSession session;  ///< client_id 0: none
};

class SimCluster {
 public:
  SimCluster(const ClusterOptions& options, SimRng rng, InvariantChecker& checker, Trace& trace);
  SimCluster(const SimCluster&) = delete;
  SimCluster& operator=(const SimCluster&) = delete;

  [[nodiscard]] std::uint64_t now() const noexcept { return now_tick_; }
  /// Advances the clock by one tick: delivers the messages due, completes the fsyncs
  /// due, ticks every running core, and handles everything they produce.
  void tick();

  // ---- nodes --------------------------------------------------------------------
  [[nodiscard]] std::size_t slot_count() const noexcept { return slots_.size(); }
  /// The node hosted in `slot` (up or down); nullptr when the slot is empty.
  [[nodiscard]] SimNode* node_at(std::size_t slot) noexcept { return slots_[slot].get(); }
  [[nodiscard]] const SimNode* node_at(std::size_t slot) const noexcept { return slots_[slot].get(); }
  [[nodiscard]] SimNode* find(NodeId id) noexcept;
  [[nodiscard]] const SimNode* find(NodeId id) const noexcept;
  /// The running leader with the highest term, if any.
  [[nodiscard]] SimNode* leader() noexcept;
  [[nodiscard]] std::vector<NodeId> hosted_ids() const;
  [[nodiscard]] std::size_t up_count() const noexcept;

  // ---- faults -------------------------------------------------------------------
  void crash(std::size_t slot, std::string_view why);
  /// The node's disk refuses every write from now on: its next write (the one queued
  /// for the disk thread, or one the replica makes itself) fails, everything queued
  /// behind it is dropped unsynced, and the replica is told (Replica::storage_failed).
  /// A restart mends it.
  void break_disk(std::size_t slot);
  /// Tells the node in `slot` that its connection to `lost` dropped (Raft::peer_disconnected).
  void notify_disconnect(std::size_t slot, NodeId lost);
  /// The transport's link liveness (AsioOptions::silence_timeout_ms): a node that has
  /// received nothing from its leader for `ticks` is told its connection to the leader
  /// dropped, once per silence. 0 (the default): off.
  void set_silence_notice_ticks(std::uint64_t ticks) { silence_notice_ticks_ = ticks; }
  void restart(std::size_t slot);
  /// Starts a brand-new node (fresh id, empty configuration) in an empty slot.
  NodeId start_new_node(std::size_t slot);
  /// Removes the node in `slot` for good; its id is never used again.
  void retire(std::size_t slot);
  [[nodiscard]] SimNetwork& network() noexcept { return network_; }

  // ---- requests (each answered later, through the replica's completions) ----------
  /// Proposes `batch` at node `id` (in one turn, as a node batches what queued); each
  /// acknowledgement is checked against the committed log. REQUIRES: the node is up.
  void propose(NodeId id, std::vector<SimProposal> batch);
  /// A membership change at node `id`; the error when it is refused at once.
  Status change(NodeId id, const node::Replica::ChangeOp& op, std::string what);
  /// Leadership transfer from node `id` to `to`; the error when refused at once.
  Status transfer(NodeId id, NodeId to);
  /// A ReadIndex request at node `id`, checked when it is confirmed.
  void read_index(NodeId id, std::uint64_t request_id);

  // ---- what the fault scheduler reacts to ---------------------------------------
  /// Slots whose node granted a vote (the response left) since the last call.
  std::vector<std::size_t> take_vote_grants() { return std::exchange(vote_grants_, {}); }
  /// Slots whose node, as leader, advanced the commit index since the last call.
  std::vector<std::size_t> take_leader_commits() { return std::exchange(leader_commits_, {}); }

  /// When node `from` last sent entries or a snapshot to `to` (0: never).
  [[nodiscard]] std::uint64_t last_replication_tick(NodeId from, NodeId to) const;

  // ---- checks -------------------------------------------------------------------
  /// Full pairwise log matching between every two running nodes.
  void check_all_logs();
  /// After the final heal: the leader's downstream holds every output of what it applied.
  void check_egress_complete();
  [[nodiscard]] const Downstream& downstream() const noexcept { return downstream_; }
  /// One line per slot, for failure reports.
  [[nodiscard]] std::string describe_nodes() const;
  /// The run's counts so far (entries read back include the running nodes').
  [[nodiscard]] ClusterStats stats() const noexcept;
  [[nodiscard]] const ClusterOptions& options() const noexcept { return options_; }

 private:
  friend class SimDisk;
  friend class SimStore;
  friend class SimWire;
  friend struct SimNode;
  using Clock = node::Clock;

  // What the nodes' adapters report.
  void on_soft_state(SimNode& n, const core::SoftState& s);
  void on_committed(SimNode& n, const std::vector<Entry>& entries);
  void on_snapshot_installed(SimNode& n, LogIndex index);
  void on_warn(SimNode& n, std::string_view line);
  /// Its replica reports that its storage failed (once per failure).
  void on_storage_failed(SimNode& n);
  void on_write_submitted(SimNode& n, node::WriteStep step);
  /// Entries about to be written to `n`'s disk (through the SimDisk or inline).
  void on_entries_written(SimNode& n, std::span<const Entry> entries);
  void on_drain(SimNode& n);

  /// A request to node `id`'s replica that answers through a StatusCallback (`what`
  /// names it in the trace); the error when it is refused at once.
  Status request(NodeId id, std::string what,
                 const std::function<void(node::Replica&, node::StatusCallback)>& call);
  void deliver(const core::Message& m);
  void complete_due_writes();
  void complete_write(SimNode& n, bool deferred);
  /// After an input to `n`: handles what became ready, observes, runs the completions,
  /// then the marks a drain deferred (each of those again).
  void after_input(SimNode& n);
  /// Tells the replica its disk refused a write.
  void fail_storage(SimNode& n);
  void observe(SimNode& n);
  void run_completions(SimNode& n);
  void send(SimNode& from, core::Message m);
  void apply(SimNode& n, const Entry& e);
  /// The state machine takes the state at `index` from outside the log (the committed
  /// history), as one restored from its own snapshot does.
  void restore_state_machine(SimNode& n, LogIndex index, std::string_view why);
  /// Starts the node's application at `start_after` (its state machine's checkpoint) on
  /// top of `base`, the log's snapshot: a new engine, caught up from the disk.
  void start_app(SimNode& n, const core::SnapshotMeta& base, LogIndex start_after);
  /// A leader proposes the egress watermark its engine asks for, every watermark_ticks.
  void propose_watermark(SimNode& n);
  /// Opens a replica on the node's disk. False (and a violation) when it cannot.
  bool boot(SimNode& n);
  [[nodiscard]] core::RaftOptions options_for(SimNode& n);
  /// Entries of `n` (up) by index, from memory or, when evicted, from its disk.
  [[nodiscard]] static InvariantChecker::EntryLookup lookup(const SimNode& n);
  [[nodiscard]] Clock::time_point clock() const noexcept {
    return Clock::time_point{} + std::chrono::milliseconds(now_tick_);
  }
  [[nodiscard]] std::uint64_t fsync_delay() {
    if (options_.slow_fsync_chance > 0 && rng_.chance(options_.slow_fsync_chance)) {
      ++stats_.slow_fsyncs;
      return rng_.uniform(options_.fsync_max_ticks + 1,
                          std::max(options_.slow_fsync_max_ticks, options_.fsync_max_ticks + 1));
    }
    return rng_.uniform(options_.fsync_min_ticks, options_.fsync_max_ticks);
  }

  ClusterOptions options_;
  SimRng rng_;
  InvariantChecker& checker_;
  Trace& trace_;
  SimNetwork network_;
  std::uint64_t now_tick_ = 0;
  std::vector<std::unique_ptr<SimNode>> slots_;
  std::map<NodeId, std::size_t> slot_of_;
  std::uint64_t next_node_id_ = 1;
  std::vector<std::size_t> vote_grants_;
  std::vector<std::size_t> leader_commits_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> replication_tick_;
  /// Silence detection: (to, from) -> the tick `to` last received from `from`; the pairs
  /// already notified in the current silence.
  void notice_silences();
  std::uint64_t silence_notice_ticks_ = 0;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> heard_tick_;
  std::set<std::pair<std::uint64_t, std::uint64_t>> silence_noticed_;
  ClusterStats stats_;
  Downstream downstream_;
};

}  // namespace rlr::sim
