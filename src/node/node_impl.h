// The node runtime (private): threads, timers, batching, persistence, fan-out.
//
// Threads:
//  - the raft thread owns core::Raft. Each turn it drains its inbox (peer messages,
//    proposals, admin tasks), ticks the core when a tick is due, and handles every
//    Ready: leader messages leave first, then one storage write for the whole Ready
//    (group commit: every proposal that queued during the previous fsync rides in this
//    one), then the acknowledgements, then ack_persisted. With NodeOptions::persist_thread
//    (the default) the write, the acknowledgements and the ack_persisted call (posted
//    back as a task) happen on the storage thread instead, in order (see log_writer.h).
//  - the completion thread runs user callbacks, so a slow callback never stalls Raft.
//    Each turn hands it one batch of Completions (a callback and its outcome, no heap
//    allocation per entry). With NodeOptions::complete_on_raft_thread the raft thread
//    runs the batch itself at the end of the turn (one thread hand-off less per commit);
//    the blocking methods then refuse to run on the raft thread instead of deadlocking.
//  - subscribers read committed entries on their own threads from a bounded cache of
//    recent entries, falling back to storage; nothing they do can block the raft thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/entry_deque.h"
#include "core/raft.h"
#include "node/log_writer.h"
#include "node/sessions.h"
#include "rlr/node.h"
#include "storage/storage.h"
#include "transport/transport.h"

namespace rlr::node {

/// One user-visible outcome: a proposal's callback with its result, or any closure.
/// Stored by value in a reused vector, so completing a proposal allocates nothing (the
/// callback is moved, never wrapped in another std::function).
struct Completion {
  ProposeCallback done;                          ///< when set: done(std::move(result))
  Result<ProposeResult> result = ProposeResult{};
  std::function<void()> task;                    ///< when `done` is empty
  void run() {
    if (done) {
      done(std::move(result));
    } else if (task) {
      task();
    }
  }
};

/// Runs completions in order on one thread, named `thread_name` (15 bytes at most).
class Executor {
 public:
  explicit Executor(const char* thread_name);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  void post(std::function<void()> f);
  /// Takes every completion of `batch` (left empty, capacity kept when possible).
  void post_batch(std::vector<Completion>& batch);
  /// Runs what is queued, then stops. From a completion itself it only asks the thread to
  /// end (it cannot join itself); the destructor, on another thread, completes it.
  void shutdown();
  /// True on the executor's own thread (inside a completion).
  [[nodiscard]] bool on_thread() const { return std::this_thread::get_id() == thread_.get_id(); }

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Completion> queue_;
  bool stop_ = false;
  bool idle_ = false;  ///< the thread waits on cv_ (guarded by mu_): only then notify
  std::thread thread_;
};

/// The most recent committed entries, shared by every subscriber. Kept in a
/// core::EntryDeque, whose blocks are reused once it is full: appending allocates
/// nothing then (a std::deque allocated a node per ~9 entries and freed one as often,
/// on the raft thread: ~2% of a follower's CPU under load), and the memory is taken a
/// block at a time as it first fills, not all at once at the first commit.
class CommittedCache {
 public:
  explicit CommittedCache(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}
  /// Appends `entries`; entries that do not continue the cached ones replace them.
  void append(const std::vector<Entry>& entries);
  /// Empties the cache (e.g. after a snapshot was installed).
  void reset(LogIndex index);
  /// Copies entries from `from` (at most max), if the cache holds `from`.
  [[nodiscard]] bool read(LogIndex from, std::size_t max, std::vector<Entry>& out) const;

 private:
  mutable std::mutex mu_;
  std::size_t capacity_;
  core::EntryDeque entries_;  // guarded by mu_
};

class NodeImpl final : public Node, private transport::Inbox {
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
           std::unique_ptr<core::LogReader> log_reader,
           std::unique_ptr<transport::Transport> transport, core::Raft raft);
  NodeImpl(const NodeImpl&) = delete;
  NodeImpl& operator=(const NodeImpl&) = delete;

  void propose(Bytes command, ProposeCallback done) override;
  void propose(Bytes command, ClientSession session, ProposeCallback done) override;
  [[nodiscard]] Result<std::shared_ptr<ApplyRunner>> attach(
      std::shared_ptr<RoleAwareStateMachine> sm, ApplyOptions options) override;
  [[nodiscard]] Result<ProposeResult> propose_sync(Bytes command,
                                                   std::chrono::milliseconds timeout) override;
  [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(LogIndex from) override;
  [[nodiscard]] Role get_role() const override;
  [[nodiscard]] NodeId get_leader() const override;
  [[nodiscard]] std::string get_leader_address() const override;
  [[nodiscard]] ClusterInfo get_cluster_info() const override;
  [[nodiscard]] Result<LogIndex> read_index(std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status add_learner(const MemberAddress& member,
                                   std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status promote(NodeId id, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status remove(NodeId id, std::chrono::milliseconds timeout) override;
  [[nodiscard]] Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) override;
  void stop() override;

  /// Asynchronous read_index(); `done` runs on the completion thread.
  void read_index_async(std::chrono::milliseconds timeout,
                        std::function<void(Result<LogIndex>)> done);
  /// Keeps `thing` alive until the node is destroyed (after stop()): e.g. the client
  /// service that the transport calls into.
  void keep_alive(std::shared_ptr<void> thing) { attachments_.push_back(std::move(thing)); }

  /// Proposes one of RLR's own entries (e.g. an egress watermark).
  void propose_internal(EntryKind kind, Bytes payload, ProposeCallback done);
  [[nodiscard]] NodeId id() const { return options_.id; }
  [[nodiscard]] const NodeOptions& options() const { return options_; }
  [[nodiscard]] Term current_term() const { return Term{term_.load()}; }
  [[nodiscard]] SessionTable new_session_table() const {
    return SessionTable(options_.session_ttl_entries, options_.max_sessions);
  }
  /// An apply runner reports a digest checkpoint (the first attached runner's are the
  /// node's published digests).
  void publish_checkpoint(const ApplyRunner* runner, const DigestCheckpoint& cp);

  // For subscriptions.
  [[nodiscard]] LogIndex applied_index() const { return LogIndex{applied_.load()}; }
  /// Reads committed entries from `from`; waits up to `timeout` for one to exist.
  [[nodiscard]] Result<std::vector<Entry>> read_committed(LogIndex from, std::size_t max,
                                                          std::chrono::milliseconds timeout);
  [[nodiscard]] const storage::Storage& storage() const { return *storage_; }

 private:
  void deliver(core::Message m) override;  // transport::Inbox
  void peer_lost(NodeId peer) override;    // transport::Inbox
  /// Runs `task` on the raft thread (dropped when the node is stopping).
  void post(std::function<void()> task) const;
  /// As post(); false when the node is stopping and the task was dropped.
  [[nodiscard]] bool post_checked(std::function<void()> task) const;
  void run();
  /// Runs or hands off the completions of this turn.
  void flush_completions();
  /// True on the raft thread (where waiting for the raft thread would deadlock).
  [[nodiscard]] bool on_raft_thread() const {
    return std::this_thread::get_id() == raft_thread_id_.load(std::memory_order_relaxed);
  }
  /// The error the blocking methods return on the raft thread.
  [[nodiscard]] static Status refused_on_raft_thread(const char* what);
  void complete(ProposeCallback& done, Result<ProposeResult> r) {
    completions_.push_back(Completion{std::move(done), std::move(r), {}});
  }
  void handle_ready(core::Ready& rd);
  /// Logs (at most once a second) appends the core could not send for want of evicted entries.
  void report_log_read_failures(std::chrono::steady_clock::time_point now);
  /// Writes a Ready on the raft thread (no storage thread, a snapshot, or an idle writer
  /// and nothing to write), then sends its acknowledgements and acks the core.
  void handle_ready_persistence(core::Ready& rd, bool must_write);
  /// What follows persistence: apply, reads, membership and transfer bookkeeping.
  void after_ready(core::Ready& rd);
  /// The hard state a write of `rd` carries (its own, or the latest commit index riding
  /// along); records it as persisted_hard_state_.
  [[nodiscard]] std::optional<core::HardState> hard_state_to_write(const core::Ready& rd);
  /// A write failed: report it once, stop taking part, fail everything pending.
  void storage_failed(const Status& why);
  void on_committed(std::vector<Entry>& committed);
  void expire_pending(std::chrono::steady_clock::time_point now);
  void fail_everything(const Status& why);
  void update_peers();
  void maybe_compact();
  void send_digest_report();
  void on_digest_report(const core::Message& m);
  [[nodiscard]] Status restore_sessions();
  /// Runs a membership change on the raft thread; completes when committed.
  Status change(std::function<Result<core::EntryId>(core::Raft&)> op,
                std::chrono::milliseconds timeout);

  struct Proposal {
    Bytes command;
    ProposeCallback done;
    EntryKind kind = EntryKind::Normal;
    ClientSession session;
  };
  void enqueue(Proposal p);
  void propose_queued(std::vector<Proposal>& props);

  /// On losing leadership: proposers waiting for their entries get Timeout at once.
  void release_pending_on_step_down();
  struct Pending {
    core::EntryId id;
    std::function<void(Result<ProposeResult>)> done;
    std::chrono::steady_clock::time_point deadline;
    bool internal = false;  ///< run `done` on the raft thread (membership bookkeeping)
  };
  struct ConfigWaiter {
    std::function<void(Status)> done;
    std::chrono::steady_clock::time_point deadline;
  };
  struct PendingRead {
    std::function<void(Result<LogIndex>)> done;
    std::chrono::steady_clock::time_point deadline;
  };
  struct PendingTransfer {
    NodeId target;
    std::function<void(Status)> done;
    std::chrono::steady_clock::time_point deadline;
  };

  const NodeOptions options_;
  std::unique_ptr<storage::Storage> storage_;
  std::unique_ptr<transport::Transport> transport_;

  // inbox (any thread -> raft thread); mutable so const queries can post tasks
  mutable std::mutex in_mu_;
  mutable std::condition_variable in_cv_;
  std::vector<core::Message> in_msgs_;
  /// Lost peer connections, each with the number of in_msgs_ that came before it.
  std::vector<std::pair<std::size_t, NodeId>> in_lost_;
  std::vector<Proposal> in_props_;
  mutable std::vector<std::function<void()>> in_tasks_;
  std::size_t queued_proposals_ = 0;  // guarded by in_mu_
  bool stopping_ = false;              // guarded by in_mu_
  mutable bool raft_waiting_ = false;  // the raft thread sleeps on in_cv_ (guarded by in_mu_)
  std::atomic<std::thread::id> raft_thread_id_{};
  std::atomic<bool> stopped_{false};   // tells blocked subscribers to return

  // raft thread only
  std::unique_ptr<core::LogReader> log_reader_;  ///< the core's view of storage_ (evicted entries)
  core::Raft raft_;
  std::uint64_t log_read_failures_seen_ = 0;  // raft thread
  std::chrono::steady_clock::time_point log_read_failure_logged_{};  // raft thread
  std::deque<Pending> pending_;  // ordered by index
  std::map<std::uint64_t, PendingRead> reads_;
  std::uint64_t next_read_id_ = 1;
  std::vector<PendingTransfer> transfers_;
  std::vector<ConfigWaiter> config_waiters_;
  struct SessionWaiter {
    std::pair<std::uint64_t, std::uint64_t> key;
    std::function<void(Result<ProposeResult>)> done;
    std::chrono::steady_clock::time_point deadline;
  };
  std::multimap<LogIndex, SessionWaiter> session_waiters_;
  std::vector<Completion> completions_;  // run or handed to the executor once per turn
  std::vector<Completion> running_;      // complete_on_raft_thread: the batch being run
  // propose_queued's scratch, reused every turn
  std::vector<Bytes> prop_commands_;
  std::vector<EntryKind> prop_kinds_;
  std::vector<Proposal*> prop_accepted_;
  bool failed_ = false;
  LogIndex config_index_seen_;
  core::HardState persisted_hard_state_;  ///< what storage holds (commit may lag)
  SessionTable sessions_;  ///< as of the applied index
  /// Session commands proposed and not yet committed: (client, sequence) -> index.
  std::map<std::pair<std::uint64_t, std::uint64_t>, LogIndex> inflight_sessions_;
  /// Session tables saved at snapshot points, for compaction: (index, encoded table).
  std::deque<std::pair<LogIndex, Bytes>> snapshot_points_;
  std::uint64_t ticks_ = 0;

  // apply runners and digests
  mutable std::mutex runners_mu_;
  std::vector<std::weak_ptr<ApplyRunner>> runners_;   // guarded by runners_mu_
  const ApplyRunner* primary_runner_ = nullptr;       // guarded by runners_mu_
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
