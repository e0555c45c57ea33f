// A cluster of Raft cores wired to the simulated network and disks. The cluster owns the
// clock and honours the Ready contract of core/raft.h exactly:
//   - `messages` go on the wire as soon as the Ready is taken;
//   - the Ready's snapshot, entries and hard state are queued on the node's disk and
//     become durable after a random fsync delay; only then are `messages_after_persist`
//     sent and ack_persisted(persist_mark) called, one Ready after another;
//   - `committed` entries are applied at once (the check that they are already durable
//     is one of the invariants);
//   - a crash loses the core, the in-memory state machine and the disk's write queue;
//     a restart rebuilds the core with Raft::create from what the disk holds.
// After every call into a core the cluster reports what it observes to the
// InvariantChecker.
#pragma once

#include <cstdint>
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
#include "sim_network.h"
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
  std::uint64_t fsync_min_ticks = 0;
  std::uint64_t fsync_max_ticks = 2;
};

/// Reads a node's evicted entries back from its simulated disk, as the runtime reads them
/// from its log store. Every read must find what it asks for: the core evicts only what
/// is durable, and a miss is reported as a failed invariant.
class SimLogReader final : public core::LogReader {
 public:
  explicit SimLogReader(const SimStorage& storage) : storage_(storage) {}
  Status read(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
              std::vector<Entry>& out) override;
  /// The first read that did not find its entries ("" when none has failed).
  [[nodiscard]] const std::string& miss() const noexcept { return miss_; }
  /// Adds the number of entries each read returns to `*total`.
  void count_into(std::uint64_t* total) noexcept { total_ = total; }

 private:
  const SimStorage& storage_;
  std::string miss_;
  std::uint64_t* total_ = nullptr;
};

/// One hosted node: its disk survives crashes, everything else does not.
struct SimNode {
  SimNode(std::size_t slot_, NodeId id_, SimStorage storage_)
      : slot(slot_), id(id_), storage(std::move(storage_)) {}
  SimNode(const SimNode&) = delete;  // `reader` refers to `storage`
  SimNode& operator=(const SimNode&) = delete;

  std::size_t slot;
  NodeId id;
  SimStorage storage;
  SimLogReader reader{storage};
  std::optional<core::Raft> raft;  ///< empty while crashed
  /// The in-memory application state machine.
  LogIndex applied;
  std::uint64_t state_hash = kInitialStateHash;
  /// What the cluster last observed of the core, to notice changes.
  bool seen_leader = false;
  Term seen_term;
  LogIndex seen_commit;
  std::uint64_t down_since_tick = 0;

  [[nodiscard]] bool up() const noexcept { return raft.has_value(); }
};

struct ClusterStats {
  std::uint64_t crashes = 0;
  std::uint64_t restarts = 0;
  std::uint64_t writes_lost = 0;  ///< queued writes a crash threw away
  std::uint64_t fsyncs = 0;
  std::uint64_t applied_entries = 0;
  std::uint64_t nodes_started = 0;
  std::uint64_t nodes_retired = 0;
  std::uint64_t entries_read_back = 0;  ///< evicted entries read back from the disks
  std::uint64_t silence_notices = 0;    ///< followers told their leader's link went silent
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

  // ---- requests -----------------------------------------------------------------
  /// Runs `f` on the running core of node `id`, then observes it and handles its Ready.
  /// REQUIRES: the node is up.
  template <class F>
  auto call(NodeId id, F&& f) {
    SimNode& n = *find(id);
    auto result = std::forward<F>(f)(*n.raft);
    after_input(n);
    return result;
  }
  /// Compacts node `id`'s log up to `index` with a snapshot of its state machine, and
  /// stores that snapshot on its disk as the application would.
  Status compact(NodeId id, LogIndex index);

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
  /// One line per slot, for failure reports.
  [[nodiscard]] std::string describe_nodes() const;
  [[nodiscard]] const ClusterStats& stats() const noexcept { return stats_; }
  [[nodiscard]] const ClusterOptions& options() const noexcept { return options_; }

 private:
  void deliver(const core::Message& m);
  void complete_due_writes();
  void complete_write(SimNode& n);
  void after_input(SimNode& n);
  void observe(SimNode& n);
  void drain(SimNode& n);
  void handle_ready(SimNode& n, core::Ready rd);
  void send(SimNode& from, core::Message m);
  void apply(SimNode& n, const Entry& e);
  void restore_state_machine(SimNode& n, const core::SnapshotMeta& s);
  /// Builds the core from the node's disk. False (and a violation) when it cannot.
  bool boot(SimNode& n);
  [[nodiscard]] core::RaftOptions options_for(SimNode& n);
  /// Entries of `n` (up) by index, from memory or, when evicted, from its disk.
  [[nodiscard]] static InvariantChecker::EntryLookup lookup(const SimNode& n);

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
};

}  // namespace rlr::sim
