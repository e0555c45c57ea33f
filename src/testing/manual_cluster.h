// The test kit's Manual clock (private): the cluster runs on the caller's thread and time
// moves only in advance()/run_until(), one millisecond at a time.
//
// Each node is the runtime's node::Replica (the same object a production node's raft
// thread drives) over an in-memory disk, with its state machines under the runtime's
// ApplyEngine. The kit plays each node's threads: it feeds one input at a time (a
// delivered message, a tick, proposals, a completed fsync), lets the replica handle what
// became ready, runs the completions it produced, and applies what it committed. A
// write step becomes durable only after its simulated fsync (ClusterOptions::fsync_min
// ..fsync_max); a crash throws the waiting steps away with everything else in memory.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <random>
#include <vector>

#include "node/apply_engine.h"
#include "node/log_writer.h"
#include "node/replica.h"
#include "storage/memory_storage.h"
#include "testing/kit.h"
#include "transport/transport.h"

namespace rlr::testing {

class ManualCluster;

/// One node: its disk (which survives a crash) and, while it runs, its replica and
/// state machines. It is the replica's Transport, Persister and observer.
class ManualNode final : public node::ReplicaObserver,
                         public node::Persister,
                         public transport::Transport {
 public:
  ManualNode(ManualCluster& cluster, NodeId id, NodeOptions options, core::Configuration initial);
  ManualNode(const ManualNode&) = delete;
  ManualNode& operator=(const ManualNode&) = delete;

  /// Opens the replica on the disk and starts every attachment. Errors: the replica's
  /// open errors, an attachment's start errors.
  [[nodiscard]] Status boot();
  /// Drops everything in memory and every write not yet durable.
  void crash();
  [[nodiscard]] bool up() const { return replica_ != nullptr; }
  [[nodiscard]] node::Replica& replica() { return *replica_; }
  [[nodiscard]] const node::Replica& replica() const { return *replica_; }
  [[nodiscard]] NodeId id() const { return id_; }

  /// Starts attachment `n` (a fresh state machine, caught up from the disk).
  [[nodiscard]] Status start_attachment(std::size_t n);
  [[nodiscard]] std::shared_ptr<RoleAwareStateMachine> state_machine(std::size_t n) const;
  /// The users' commands committed from `from` on (REQUIRES: up()).
  [[nodiscard]] Result<std::vector<CommittedEntry>> committed(LogIndex from) const;
  /// The lowest applied index of the healthy state machines; nullopt when none runs.
  [[nodiscard]] std::optional<LogIndex> apps_applied() const;

  // ---- driven by the cluster ------------------------------------------------------
  void step(const core::Message& m);
  /// A millisecond passed: ticks the core when a tick is due; a leader proposes the
  /// egress watermarks its state machines' sinks acknowledged.
  void on_clock(std::uint64_t now_ms);
  void propose(std::vector<node::Proposal>& props);
  /// Completes the writes whose fsync is due.
  void complete_due_writes(std::uint64_t now_ms);
  /// After an input: handles what became ready, runs the completions, hands back the
  /// marks of writes a drain completed, until nothing is left.
  void after_input();

  // ---- node::ReplicaObserver --------------------------------------------------------
  void on_soft_state(const core::SoftState& /*s*/) override {}
  void on_committed(const std::vector<Entry>& entries) override;
  void on_snapshot_installed(LogIndex index) override;
  void on_config(const core::Configuration& /*config*/) override {}
  [[nodiscard]] LogIndex compaction_floor() override;
  void log(LogLevel level, std::string_view line) override { log_.log(level, line); }

  // ---- node::Persister ------------------------------------------------------------
  void submit(node::WriteStep step) override;
  [[nodiscard]] bool idle() const override { return writes_.empty(); }
  void drain() override;

  // ---- transport::Transport ---------------------------------------------------------
  [[nodiscard]] Status start(transport::Inbox& /*inbox*/) override { return Status::ok(); }
  void send(std::vector<core::Message>& msgs) override;
  /// Dropped: the kit compares every node's digest checkpoints itself.
  void send_digests(wire::DigestReport /*report*/) override {}
  void set_peer(NodeId /*id*/, const std::string& /*address*/) override {}
  void stop() override {}

 private:
  struct PendingWrite {
    std::uint64_t due_ms = 0;
    node::WriteStep step;
  };
  /// One attachment's state machine while the node runs.
  struct App {
    std::shared_ptr<RoleAwareStateMachine> sm;
    std::unique_ptr<node::ApplyEngine> engine;  ///< null once it stopped (health says why)
    Status health;
    LogIndex proposed_watermark;
    std::uint64_t next_watermark_ms = 0;
  };
  /// Makes the oldest waiting write durable; its mark goes to the replica now, or (a
  /// drain, inside a replica call) into deferred_marks_.
  void complete_write(bool deferred);
  /// Applies the disk's committed entries in (from, to] to `app`.
  [[nodiscard]] Status apply_from_disk(App& app, LogIndex from, LogIndex to);
  void run_completions();

  ManualCluster& cluster_;
  const NodeId id_;
  const NodeOptions options_;
  util::Logger log_;
  std::shared_ptr<storage::MemoryStorage> disk_;
  std::unique_ptr<node::Replica> replica_;
  std::deque<PendingWrite> writes_;
  std::vector<core::PersistMark> deferred_marks_;
  std::vector<App> apps_;
  Status broken_;  ///< a write to the disk failed: the node crashes after the current input
  std::uint64_t next_tick_ms_ = 0;
  std::uint64_t boots_ = 0;
};

class ManualCluster final : public Kit {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Cluster>> create(ClusterOptions options);
  explicit ManualCluster(ClusterOptions options);

  [[nodiscard]] std::chrono::milliseconds now() const override {
    return std::chrono::milliseconds(static_cast<std::int64_t>(now_ms_));
  }
  void advance(std::chrono::milliseconds d) override;
  [[nodiscard]] bool run_until(const std::function<bool()>& done,
                               std::chrono::milliseconds timeout) override;
  [[nodiscard]] std::shared_ptr<RoleAwareStateMachine> state_machine(NodeId id,
                                                                     std::size_t n) const override;
  void propose_async(NodeId id, Bytes command, ClientSession session, ProposeCallback done) override;
  [[nodiscard]] Result<ProposeResult> propose_at(NodeId id, Bytes command, ClientSession session,
                                                 std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<std::vector<CommittedEntry>> committed(NodeId id, LogIndex from) const override;
  [[nodiscard]] Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<ClusterInfo> cluster_info(NodeId id) const override;
  [[nodiscard]] Node* node(NodeId /*id*/) override { return nullptr; }
  void set_network_faults(const NetworkFaults& faults) override { faults_ = faults; }
  [[nodiscard]] Status crash(NodeId id) override;
  [[nodiscard]] Status restart(NodeId id) override;
  [[nodiscard]] bool running(NodeId id) const override;

  // ---- for the nodes --------------------------------------------------------------
  [[nodiscard]] std::uint64_t now_ms() const { return now_ms_; }
  /// Puts a message on the network (or loses it, by the faults and cuts).
  void send(core::Message m);
  /// The fsync time of one write, drawn from the options' range.
  [[nodiscard]] std::uint64_t fsync_delay_ms();
  [[nodiscard]] std::uint64_t seed_for(NodeId id, std::uint64_t boot) const;
  using Kit::attachments;
  using Kit::records;
  using Kit::sink;

  /// Messages on the network at once; beyond, a send is dropped (as a full socket
  /// buffer would lose it; Raft retransmits).
  static constexpr std::size_t kMaxInFlight = 1U << 20;

 protected:
  [[nodiscard]] NodeView view(NodeId id) const override;
  void apply_cuts() override {}  // is_cut() is read at every send and delivery
  [[nodiscard]] Status start_attachment(NodeId id, std::size_t n) override;

 private:
  /// One millisecond: deliver what is due, complete the due fsyncs, tick the nodes.
  void step_ms();
  [[nodiscard]] ManualNode* find(NodeId id) const;
  [[nodiscard]] std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi);
  [[nodiscard]] bool chance(double p);
  /// A request to `id`'s replica answered through a StatusCallback, waited for.
  [[nodiscard]] Status request(NodeId id, std::chrono::milliseconds timeout,
                               const std::function<void(node::Replica&, node::StatusCallback)>& call);

  std::uint64_t now_ms_ = 0;
  std::mt19937_64 rng_;
  NetworkFaults faults_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, core::Message> in_flight_;  ///< (due, seq)
  std::uint64_t next_seq_ = 0;
  std::map<NodeId, std::unique_ptr<ManualNode>> nodes_;
};

}  // namespace rlr::testing
