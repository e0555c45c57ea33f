// One simulated node: the runtime's node::Replica wired to a simulated disk, network and
// clock. The disk survives a crash; the replica, the state machine and the write queue
// do not.
//
// What the runtime's threads do in a real node, the cluster does here, one input at a
// time: it calls the replica, lets it handle what became ready, runs the completions it
// produced, then hands it the persistence marks that came due meanwhile. The adapters
// below are the replica's injected world:
//   SimStore  storage::Storage over the node's SimStorage (synchronous writes: snapshot
//             installs, compaction; reads of evicted and committed entries)
//   SimDisk   node::Persister: a write step becomes durable after a random fsync delay;
//             only then do its messages leave and its mark reach the replica
//   SimWire   transport::Transport onto the simulated network
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "invariants.h"
#include "node/apply_engine.h"
#include "node/replica.h"
#include "sim_app.h"
#include "sim_storage.h"
#include "storage/storage.h"
#include "transport/transport.h"

namespace rlr::sim {

class SimCluster;
struct SimNode;

/// The node's durable storage as the runtime sees it. Reads must find what they ask for:
/// the core evicts only what is durable, and a miss is reported as a failed invariant.
class SimStore final : public storage::Storage {
 public:
  explicit SimStore(SimNode& node) : node_(node) {}
  [[nodiscard]] LogIndex first_index() const override;
  [[nodiscard]] LogIndex last_index() const override;
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                                std::size_t max_bytes) const override;
  [[nodiscard]] Result<core::HardState> hard_state() const override;
  [[nodiscard]] Result<LogIndex> applied() const override { return LogIndex{}; }
  [[nodiscard]] storage::Identity identity() const override;
  [[nodiscard]] Result<core::SnapshotMeta> snapshot() const override;
  /// Durable at once (the replica drains the SimDisk before it writes here).
  [[nodiscard]] Status persist(const storage::PersistRequest& req) override;
  [[nodiscard]] Status compact(const core::SnapshotMeta& s) override;

  /// The first read that did not find its entries ("" when none has failed).
  [[nodiscard]] const std::string& miss() const noexcept { return miss_; }
  /// Entries returned by reads (for the run's statistics).
  [[nodiscard]] std::uint64_t entries_read() const noexcept { return entries_read_; }
  /// Compactions the replica made.
  [[nodiscard]] std::uint64_t compactions() const noexcept { return compactions_; }

 private:
  SimNode& node_;
  mutable std::string miss_;
  mutable std::uint64_t entries_read_ = 0;
  std::uint64_t compactions_ = 0;
};

/// The node's storage thread.
class SimDisk final : public node::Persister {
 public:
  SimDisk(SimCluster& cluster, SimNode& node) : cluster_(cluster), node_(node) {}
  void submit(node::WriteStep step) override;
  [[nodiscard]] bool idle() const override;
  /// Completes every queued write now; their marks reach the replica after the call
  /// that drained (as a real node's storage thread posts them back).
  void drain() override;

 private:
  SimCluster& cluster_;
  SimNode& node_;
};

/// The node's network endpoint.
class SimWire final : public transport::Transport {
 public:
  SimWire(SimCluster& cluster, SimNode& node) : cluster_(cluster), node_(node) {}
  [[nodiscard]] Status start(transport::Inbox& /*inbox*/) override { return Status::ok(); }
  void send(std::vector<core::Message>& msgs) override;
  /// Dropped: the simulator compares every node's digest checkpoints directly, as each
  /// node's apply engine records them (Downstream::on_checkpoint, sim_app.h), which is
  /// what digest reports let nodes check of each other. (And no NodeImpl runs here to
  /// send any.)
  void send_digests(wire::DigestReport /*report*/) override {}
  void set_peer(NodeId /*id*/, const std::string& /*address*/) override {}
  void stop() override {}

 private:
  SimCluster& cluster_;
  SimNode& node_;
};

/// One hosted node.
struct SimNode final : node::ReplicaObserver {
  SimNode(SimCluster& cluster, std::size_t slot, NodeId id, SimStorage storage);
  SimNode(const SimNode&) = delete;  // the adapters refer to it
  SimNode& operator=(const SimNode&) = delete;

  SimCluster& cluster;
  std::size_t slot;
  NodeId id;
  SimStorage storage;  ///< the disk and its write queue
  SimStore store{*this};
  SimDisk disk;
  SimWire wire;
  NodeOptions options;  ///< set at each boot
  bool use_disk_thread = true;    ///< writes go through `disk` (else the replica writes)
  /// Its disk refuses every write from now on (an EIO, a full disk) until the node
  /// restarts on a mended disk (SimCluster::break_disk).
  bool disk_broken = false;
  /// A write the disk thread dropped failed during a drain: the replica hears of it once
  /// the call that drained returns.
  bool failure_pending = false;
  std::unique_ptr<node::Replica> replica;  ///< empty while crashed
  /// Marks of writes completed by a drain, for the replica once the current call returns.
  std::vector<core::PersistMark> deferred_marks;
  /// The application state machine: its position and state.
  LogIndex applied;
  std::uint64_t state_hash = kInitialStateHash;
  /// The application as the runtime runs it: the test state machine under the runtime's
  /// ApplyEngine (sessions, roles, egress gate, outbox, digests), with its sink. The
  /// engine is rebuilt at each boot and state-machine restore; it applied everything in
  /// (engine_start, applied].
  std::shared_ptr<SimStateMachine> app;
  std::shared_ptr<SimSink> sink;
  std::unique_ptr<node::ApplyEngine> engine;
  LogIndex engine_start;
  LogIndex proposed_watermark;  ///< the last egress watermark this node proposed
  std::uint64_t next_watermark_tick = 0;
  /// What the cluster last observed of the core, to notice changes.
  bool seen_leader = false;
  Term seen_term;
  LogIndex seen_commit;
  std::uint64_t down_since_tick = 0;
  /// Session commands this node appended as leader in `appended_term`, by index.
  Term appended_term;
  std::map<std::pair<std::uint64_t, std::uint64_t>, LogIndex> appended_sessions;

  [[nodiscard]] bool up() const noexcept { return replica != nullptr; }
  /// True while the node is up and leads its current term.
  [[nodiscard]] bool leads() const { return up() && replica->core().role() == Role::Leader; }
  /// REQUIRES: up().
  [[nodiscard]] const core::Raft& core() const { return replica->core(); }

  // node::ReplicaObserver: forwarded to the cluster.
  void on_soft_state(const core::SoftState& s) override;
  void on_committed(const std::vector<Entry>& entries) override;
  void on_snapshot_installed(LogIndex index) override;
  void on_config(const core::Configuration& /*config*/) override {}
  void on_storage_failed(const Status& why) override;
  [[nodiscard]] LogIndex compaction_floor() override { return applied; }
  void log(LogLevel level, std::string_view line) override;
};

}  // namespace rlr::sim
