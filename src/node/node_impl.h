// The node runtime (private): a node::Replica (replica.h), which holds all per-turn
// logic, and the threads that feed it and wait for it.
//
// Threads:
//  - the raft thread owns the Replica. Each turn it drains its inbox (peer messages,
//    proposals, admin tasks) into the replica, ticks it when a tick is due, lets it
//    handle what became ready (leader messages leave first, then one storage write for
//    the whole turn: group commit), and hands the completions it produced on. With
//    NodeOptions::persist_thread (the default) the write, the acknowledgements and the
//    persistence marks (posted back as a task) happen on the storage thread instead, in
//    order (see log_writer.h).
//  - the completion thread runs user callbacks, so a slow callback never stalls Raft.
//    Each turn hands it one batch of Completions (a callback and its outcome, no heap
//    allocation per entry). With NodeOptions::complete_on_raft_thread the raft thread
//    runs the batch itself at the end of the turn (one thread hand-off less per commit);
//    the blocking methods then refuse to run on the raft thread instead of deadlocking.
//  - subscribers read committed entries on their own threads from a bounded cache of
//    recent entries, falling back to storage; nothing they do can block the raft thread.
//
// Bounds: proposals queued plus pending are at most NodeOptions::max_pending_proposals
// (beyond: Busy); peer messages queued for the raft thread at most kMaxQueuedMessages
// (beyond: dropped, Raft retransmits); callers' requests queued at most
// kMaxQueuedRequests (beyond: Busy); reads waiting at most max_pending_proposals.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "node/committed_cache.h"
#include "node/committed_log.h"
#include "node/executor.h"
#include "node/log_writer.h"
#include "node/node_metrics.h"
#include "node/replica.h"
#include "node/sessions.h"
#include "rlr/metrics.h"
#include "rlr/node.h"
#include "storage/storage.h"
#include "transport/transport.h"
#include "util/logger.h"

namespace rlr::node {

class ApplyRunnerImpl;

class NodeImpl final : public Node,
                       public CommittedLog,
                       public RunnerHost,
                       private transport::Inbox,
                       private ReplicaObserver {
 public:
  /// Starts a node on the given storage and transport (the builder and tests use this).
  [[nodiscard]] static Result<std::unique_ptr<NodeImpl>> start(
      NodeOptions options, std::unique_ptr<storage::Storage> storage,
      std::unique_ptr<transport::Transport> transport);
  ~NodeImpl() override;
  /// Only start() can make the key.
  class Key {
    friend class NodeImpl;
    Key() = default;
  };
  NodeImpl(Key key, NodeOptions options, std::unique_ptr<storage::Storage> storage,
           std::unique_ptr<transport::Transport> transport);
  NodeImpl(const NodeImpl&) = delete;
  NodeImpl& operator=(const NodeImpl&) = delete;

  void propose(Bytes command, ProposeCallback done) override;
  void propose(Bytes command, ClientSession session, ProposeCallback done) override;
  [[nodiscard]] Result<std::shared_ptr<ApplyRunner>> attach(
      std::shared_ptr<RoleAwareStateMachine> sm, ApplyOptions options) override;
  [[nodiscard]] Result<ProposeResult> propose_sync(Bytes command,
                                                   std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(LogIndex from,
                                                                SubscribeOptions options) override;
  using Node::subscribe;
  /// Where a subscription asked to start at `from` starts (0 means 1).
  /// Errors: Compacted when `from` is below the first retained index.
  [[nodiscard]] Result<LogIndex> subscription_start(LogIndex from) const;
  [[nodiscard]] Role role() const override;
  [[nodiscard]] NodeId leader() const override;
  [[nodiscard]] Address leader_address() const override;
  [[nodiscard]] ClusterInfo cluster_info() const override;
  [[nodiscard]] NodeMetrics metrics() const override;
  [[nodiscard]] Result<LogIndex> read_index(std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status add_learner(const MemberAddress& member,
                                   std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status promote(NodeId id, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status remove(NodeId id, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<std::vector<DigestCheckpoint>> replay(RoleAwareStateMachine& sm,
                                                             LogIndex from, LogIndex to,
                                                             std::uint64_t digest_interval) override;
  void stop() override;

  /// Asynchronous read_index(); `done` runs on the completion thread.
  void read_index_async(std::chrono::milliseconds timeout,
                        std::function<void(Result<LogIndex>)> done);
  /// A reader of the committed log (a subscription, a client's stream) registers its
  /// position (the next index it reads) for the subscriber metrics while it holds the
  /// returned pointer.
  [[nodiscard]] std::shared_ptr<std::atomic<std::uint64_t>> register_reader(LogIndex next);
  /// Keeps `thing` alive until the node is destroyed (after stop()): e.g. the client
  /// service that the transport calls into.
  void keep_alive(std::shared_ptr<void> thing) { attachments_.push_back(std::move(thing)); }

  [[nodiscard]] NodeId id() const { return options_.id; }
  [[nodiscard]] const NodeOptions& options() const { return options_; }
  /// The commit-path tracer; null unless NodeOptions::trace_entries > 0. Lives as long as
  /// the node.
  [[nodiscard]] Tracer* tracer() const { return tracer_.get(); }

  // CommittedLog (the apply runners', replay's and the subscriptions' view)
  [[nodiscard]] NodeId self() const override { return options_.id; }
  [[nodiscard]] Result<core::SnapshotMeta> base() const override { return storage_->snapshot(); }
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                                std::size_t max_bytes) const override {
    return storage_->read(from, to, max_entries, max_bytes);
  }
  [[nodiscard]] Result<std::vector<Entry>> read_committed(LogIndex from, std::size_t max,
                                                          std::chrono::milliseconds timeout) override;
  [[nodiscard]] LogIndex applied_index() const override { return LogIndex{applied_.load()}; }
  [[nodiscard]] SessionTable new_session_table() const override {
    return SessionTable(options_.session_ttl_entries, options_.max_sessions);
  }

  // RunnerHost
  [[nodiscard]] bool leads(Term term) const override {
    return role() == Role::Leader && Term{term_.load()} == term;
  }
  [[nodiscard]] bool is_leader() const override { return role() == Role::Leader; }
  void propose_internal(EntryKind kind, Bytes payload, ProposeCallback done) override;
  void publish_checkpoint(const ApplyRunner* runner, const DigestCheckpoint& cp) override;

 private:
  void deliver(core::Message m) override;                   // transport::Inbox
  void deliver_digests(wire::DigestReport report) override;  // transport::Inbox
  void peer_lost(NodeId peer) override;                     // transport::Inbox
  // ReplicaObserver (on the raft thread)
  void on_soft_state(const core::SoftState& s) override;
  void on_committed(const std::vector<Entry>& entries) override;
  void on_snapshot_installed(LogIndex index) override;
  void on_config(const core::Configuration& config) override;
  void on_storage_failed(const Status& why) override;
  [[nodiscard]] LogIndex compaction_floor() override;
  void log(LogLevel level, std::string_view line) override;

  /// Runs `task` on the raft thread (dropped when the node is stopping). For the node's
  /// own work (the storage thread's marks), which its producers bound.
  void post(std::function<void()> task) const;
  /// Runs a caller's request on the raft thread: ShuttingDown when the node is stopping,
  /// Busy when kMaxQueuedRequests wait already (the task is dropped then).
  [[nodiscard]] Status post_request(std::function<void()> task) const;
  /// Both: queues `task` unless the node is stopping or `bound` tasks wait already.
  [[nodiscard]] Status queue_task(std::function<void()> task, std::size_t bound) const;
  void run();
  /// Runs or hands off the completions of this turn.
  void flush_completions();
  /// Publishes applied_ and wakes the subscribers waiting for it.
  void publish_applied(LogIndex index);
  /// True on the raft thread (where waiting for the raft thread would deadlock).
  [[nodiscard]] bool on_raft_thread() const {
    return std::this_thread::get_id() == raft_thread_id_.load(std::memory_order_relaxed);
  }
  /// The error the blocking methods return on the raft thread.
  [[nodiscard]] static Status refused_on_raft_thread(const char* what);
  /// The cluster as this node sees it. Raft thread.
  [[nodiscard]] ClusterInfo cluster_info_here() const;
  /// The metrics only the raft thread may read (the core's, the replica's), into `b`.
  void raft_metrics_here(MetricsBuilder& b, const ClusterInfo& ci) const;
  /// Sends this node's latest checkpoints (kDigestReportSendCheckpointsMax at most) to
  /// every other member. Raft thread.
  void send_digest_report();
  /// Runs a membership change on the raft thread; completes when committed.
  Status change(Replica::ChangeOp op, std::chrono::milliseconds timeout);
  void enqueue(Proposal p);

  /// Peer messages queued for the raft thread at most; beyond, a message is dropped (Raft
  /// retransmits what is lost) and counted in inbox_dropped_.
  static constexpr std::size_t kMaxQueuedMessages = 1U << 16;
  /// Callers' requests (reads, membership, transfers, status) queued for the raft thread.
  static constexpr std::size_t kMaxQueuedRequests = 1U << 14;

  const NodeOptions options_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<transport::Transport> transport_;
  const util::Logger log_;
  NodeHistograms histograms_;  // before writer_ and replica_, which record into it
  /// Commit-path stamps (NodeOptions::trace_entries); null when off. Before writer_ and
  /// replica_, which stamp into it.
  const std::unique_ptr<Tracer> tracer_;

  // inbox (any thread -> raft thread); mutable so const queries can post tasks
  mutable std::mutex in_mu_;
  mutable std::condition_variable in_cv_;
  std::vector<core::Message> in_msgs_;
  /// Lost peer connections, each with the number of in_msgs_ that came before it.
  std::vector<std::pair<std::size_t, NodeId>> in_lost_;
  std::vector<Proposal> in_props_;
  mutable std::vector<std::function<void()>> in_tasks_;
  std::uint64_t inbox_dropped_ = 0;    // guarded by in_mu_
  bool stopping_ = false;              // guarded by in_mu_
  mutable bool raft_waiting_ = false;  // the raft thread sleeps on in_cv_ (guarded by in_mu_)
  std::atomic<std::thread::id> raft_thread_id_{};
  std::atomic<bool> stopped_{false};   // tells blocked subscribers to return
  bool transport_started_ = false;     // set by start() before the raft thread exists
  /// Proposals waiting in the replica, as of the end of the last turn (enqueue's early
  /// refusal; the replica enforces the bound itself).
  std::atomic<std::size_t> pending_proposals_{0};
  /// Proposals refused before they reached the raft thread, by reason.
  std::atomic<std::uint64_t> refused_not_leader_{0};
  std::atomic<std::uint64_t> refused_busy_{0};
  std::atomic<std::uint64_t> refused_stopping_{0};

  // raft thread only
  std::unique_ptr<Replica> replica_;
  std::string storage_error_;  ///< raft thread only: why the storage failed ("" while it works)
  std::vector<Completion> running_;  // complete_on_raft_thread: the batch being run
  std::uint64_t ticks_ = 0;
  std::uint64_t leader_changes_ = 0;

  /// Appends to role_changes_, dropping the oldest beyond kRoleChangesKept.
  void record_role_change(Term term, Role role, NodeId leader, RoleChangeReason why);
  /// Recent role changes (at most kRoleChangesKept), for metrics.
  static constexpr std::size_t kRoleChangesKept = 64;
  mutable std::mutex role_changes_mu_;
  std::deque<RoleChange> role_changes_;  // guarded by role_changes_mu_
  /// Registered readers of the committed log (register_reader); expired ones are pruned
  /// as new ones register.
  mutable std::mutex readers_mu_;
  std::vector<std::pair<std::uint64_t, std::weak_ptr<std::atomic<std::uint64_t>>>> readers_;  // guarded
  std::uint64_t next_reader_id_ = 1;  // guarded by readers_mu_

  // apply runners and digests
  mutable std::mutex runners_mu_;
  std::vector<std::weak_ptr<ApplyRunnerImpl>> runners_;  // guarded by runners_mu_
  std::size_t runners_attached_ = 0;                     // guarded by runners_mu_
  const ApplyRunner* primary_runner_ = nullptr;       // guarded by runners_mu_
  /// Checkpoints kept per node (ours and each peer's), the most recent ones.
  static constexpr std::size_t kDigestsKept = 256;
  mutable std::mutex digests_mu_;
  std::deque<DigestCheckpoint> my_digests_;                      // guarded by digests_mu_
  std::map<NodeId, std::deque<DigestCheckpoint>> peer_digests_;  // guarded by digests_mu_

  // published state (read by any thread)
  std::atomic<std::uint8_t> role_{0};
  std::atomic<std::uint64_t> leader_{0};
  std::atomic<std::uint64_t> term_{0};
  std::atomic<std::uint64_t> applied_{0};
  mutable std::mutex config_mu_;
  core::Configuration config_;  // guarded by config_mu_
  std::mutex applied_mu_;
  std::condition_variable applied_cv_;

  CommittedCache cache_;
  Executor executor_{"rlr-callbacks"};
  std::unique_ptr<LogWriter> writer_;  // after storage_ and transport_: it uses both
  std::thread thread_;
  std::once_flag stop_once_;
  std::vector<std::shared_ptr<void>> attachments_;  // destroyed first
};

}  // namespace rlr::node
