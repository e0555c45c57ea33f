// One node's runtime logic as a single-threaded step object (private).
//
// A Replica owns the Raft core and everything the runtime adds on top of it: proposal
// batching and its bound, client-session deduplication, the persistence policy (which
// hard states are written, when the write goes to the Persister and when it is done on
// the caller's thread), compaction points, and every waiter with its deadline. Inputs
// come in as method calls (a peer message, proposals, a tick, persistence done, read,
// membership and transfer requests); effects go out through injected interfaces
// (Storage, Transport, Persister, ReplicaObserver) and as Completions the caller runs.
// It has no threads, takes no locks, never sleeps and never reads a clock: time is the
// `now` each call is given (one exception: given histograms, it times the storage writes
// it makes itself, for them and for the slow-disk policy; the simulator gives none). NodeImpl is a Replica plus the
// threads that feed it; the simulator drives the same object with simulated disk,
// network and clock.
//
// Thread-safety: none. Every method must be called from one thread at a time (the raft
// thread in a node); the injected interfaces are called from inside those calls.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "core/raft.h"
#include "node/executor.h"
#include "node/log_writer.h"
#include "node/node_metrics.h"
#include "node/sessions.h"
#include "node/trace.h"
#include "node/waiters.h"
#include "rlr/node.h"
#include "storage/storage.h"
#include "transport/transport.h"

namespace rlr::node {

/// What a Replica tells the world it runs in. Called from inside Replica methods.
class ReplicaObserver {
 public:
  virtual ~ReplicaObserver() = default;
  /// Role, leader or term changed.
  virtual void on_soft_state(const core::SoftState& s) = 0;
  /// Entries committed, in order, continuing the previous ones (after a snapshot: from
  /// the entry after it). The applied index is now the last one's.
  virtual void on_committed(const std::vector<Entry>& entries) = 0;
  /// A snapshot from the leader was installed: committed entries resume after `index`.
  virtual void on_snapshot_installed(LogIndex index) = 0;
  /// The membership changed; `config` carries every member's address that is known.
  virtual void on_config(const core::Configuration& config) = 0;
  /// A write failed (`why`): the replica takes no part from now on. Called once, after
  /// the Error line that says why.
  virtual void on_storage_failed(const Status& /*why*/) {}
  /// The highest index the log may be compacted to for the node's own readers (the
  /// slowest healthy state machine's applied index); LogIndex max when none limits it.
  [[nodiscard]] virtual LogIndex compaction_floor() = 0;
  /// A line for the operator: Warn for what the node copes with (a dropped message, a
  /// failed compaction), Error for what it cannot (its storage failed).
  virtual void log(LogLevel level, std::string_view line) = 0;
};

/// Everything a Replica acts on. Each must outlive the Replica.
struct ReplicaParts {
  storage::Storage& storage;
  transport::Transport& transport;
  ReplicaObserver& observer;
  /// Writes persistence steps off the replica's thread; nullptr: the replica writes each
  /// step itself before going on.
  Persister* persister = nullptr;
  /// Where commit latencies and the writes this replica makes itself are recorded;
  /// nullptr: nowhere.
  NodeHistograms* histograms = nullptr;
  /// Where the replica stamps each entry's way through it (appended, sent, arrived,
  /// synced when it writes itself, acknowledged, committed); nullptr: tracing is off.
  Tracer* tracer = nullptr;
};

/// What a replica counted since it opened (its own thread reads and writes them).
struct ReplicaStats {
  std::uint64_t proposals_accepted = 0;        ///< appended to the log as new entries
  std::uint64_t proposals_busy = 0;           ///< refused: max_pending_proposals waiting
  std::uint64_t proposals_refused = 0;        ///< refused by the core (not leader, transfer)
  std::uint64_t proposals_failed = 0;         ///< refused or abandoned: storage failed
  std::uint64_t proposals_superseded = 0;     ///< their index committed another entry
  /// Session retries answered with the original entry (committed, in the log, or earlier
  /// in the same batch) instead of appending again.
  std::uint64_t session_duplicates = 0;
  std::uint64_t entries_committed = 0;
  std::uint64_t bytes_committed = 0;          ///< payload bytes of those entries
  std::uint64_t snapshots_installed = 0;
  std::uint64_t storage_errors = 0;
  std::uint64_t messages_invalid = 0;         ///< peer messages the core refused
  std::uint64_t slow_disk_handoffs = 0;       ///< leadership handed over for a slow disk
};

/// A proposal as the runtime receives it.
struct Proposal {
  Bytes command;
  ProposeCallback done;
  EntryKind kind = EntryKind::Normal;
  ClientSession session;  ///< client_id 0: none
  /// When it reached the node (Tracer::now()), set only while tracing; 0 otherwise.
  std::int64_t received_ns = 0;
};

/// Deliberate runtime bugs, for the simulator to show its checks catch them. Never set
/// outside tests.
enum class ReplicaBug : std::uint8_t {
  None = 0,
  AckBeforeDurable,          ///< tells the core a write is durable when it is only queued
  SkipSessionCheck,          ///< appends a session retry again instead of answering it
  ForgetSessionsOnSnapshot,  ///< keeps its old session table when it installs a snapshot
};

/// The core's options a node derives from its own (random_seed left 0: the caller sets it).
[[nodiscard]] core::RaftOptions raft_options_for(const NodeOptions& options);

class Replica {
 public:
  /// A membership operation on the core (add_learner, promote_learner, remove_member).
  using ChangeOp = std::function<Result<core::EntryId>(core::Raft&)>;

  /// Opens the replica on what `parts.storage` holds: the core (with `raft`, usually
  /// raft_options_for(options) and a seed; its log_reader is set here when the options
  /// evict entries from memory), the session table as of the applied index, and the
  /// compaction point it gives; tells the transport where the members are. Errors: the
  /// storage's load errors, Corruption for an unreadable session table or a committed
  /// entry missing from the log, the core's validation errors.
  [[nodiscard]] static Result<std::unique_ptr<Replica>> open(const NodeOptions& options,
                                                              core::RaftOptions raft,
                                                              ReplicaParts parts);
  Replica(const Replica&) = delete;
  Replica& operator=(const Replica&) = delete;
  ~Replica();

  // ---- inputs -------------------------------------------------------------------
  /// A message from a peer. Invalid ones are dropped with a warning.
  void step(const core::Message& m);
  /// The connection to or from `peer` closed or went silent.
  void peer_lost(NodeId peer);
  /// Proposes a batch in order, as consecutive entries when accepted. Each proposal is
  /// answered through completions(): when its entry commits (or, for a session retry,
  /// when the original does), or with NotLeader, Busy (more than
  /// NodeOptions::max_pending_proposals waiting), IoError (storage failed) or, at its
  /// deadline (now + proposal_timeout), Timeout. Leaves `props` empty.
  void propose(std::vector<Proposal>& props, Clock::time_point now);
  /// One clock tick of the core; answers waiters whose deadline passed.
  void tick(Clock::time_point now);
  /// Steps submitted to the Persister are durable, up to these marks (in order).
  void persisted(std::span<const core::PersistMark> marks);
  /// A write the Persister made took `took`, and ended at `now` (the slow-disk hand-off,
  /// NodeOptions::slow_disk_write). The replica times the writes it makes itself.
  void write_timed(Clock::duration took, Clock::time_point now);
  /// A write failed: memory is ahead of disk, so the replica stops taking part (it
  /// steps no message, proposes nothing, writes nothing) and answers every waiter. A
  /// leader first hands leadership to its most caught-up voter (a TimeoutNow: that voter
  /// campaigns at once instead of after an election timeout).
  void storage_failed(const Status& why);
  /// ReadIndex: `done` gets the index a linearizable read may be served at once applied,
  /// or NotLeader, Timeout, or Busy (max_pending_proposals reads already waiting). Runs
  /// on the replica's thread.
  void read_index(Clock::time_point deadline, ReadCallback done);
  /// A membership change; `done` (on the replica's thread) once the entry has committed
  /// and the configuration it leads to is final, or with the error.
  void change(const ChangeOp& op, Clock::time_point deadline, StatusCallback done);
  /// Hands leadership to `to`; `done` once `to` is the leader this replica knows of.
  void transfer(NodeId to, Clock::time_point deadline, StatusCallback done);
  /// Handles everything the inputs made ready: messages out, the persistence step,
  /// committed entries, reads, membership and transfer bookkeeping, compaction. Call
  /// after a batch of inputs (a node calls it once per turn). Handles at most
  /// kMaxReadysPerCall Readys; core().has_ready() says whether more wait (a core that
  /// stays ready forever is a bug the simulator reports).
  void process_ready();
  /// process_ready() at `now` (commit latencies are measured against it).
  void process_ready(Clock::time_point now) {
    now_ = std::max(now_, now);
    process_ready();
  }
  static constexpr int kMaxReadysPerCall = 10'000;
  /// Answers every waiter with `why` (the node is stopping).
  void shutdown(const Status& why);
  /// Switches on a deliberate bug (tests only).
  void set_testing_bug(ReplicaBug bug) { bug_ = bug; }

  // ---- outputs and queries ------------------------------------------------------
  /// The outcomes produced since the caller last took them: run them (or hand them to
  /// another thread) and clear the vector.
  [[nodiscard]] std::vector<Completion>& completions() { return completions_; }
  [[nodiscard]] const core::Raft& core() const { return raft_; }
  /// For the simulator's and the tests' direct requests to the core.
  [[nodiscard]] core::Raft& core_for_testing() { return raft_; }
  [[nodiscard]] bool failed() const { return failed_; }
  /// The last committed entry handed out by on_committed (or the snapshot's index).
  [[nodiscard]] LogIndex applied() const { return applied_; }
  [[nodiscard]] const Waiters& waiters() const { return waiters_; }
  [[nodiscard]] const ReplicaStats& stats() const { return stats_; }
  [[nodiscard]] const SessionTable& sessions() const { return sessions_; }
  /// The hard state the storage holds or is about to (the commit index may lag).
  [[nodiscard]] const core::HardState& persisted_hard_state() const { return persisted_hard_state_; }

 private:
  struct Key {};

 public:
  Replica(Key key, const NodeOptions& options, ReplicaParts parts,
          std::unique_ptr<core::LogReader> log_reader, core::Raft raft);

 private:
  [[nodiscard]] Status restore_sessions();
  void handle_ready(core::Ready& rd);
  /// Writes a Ready on this thread (no Persister, a snapshot, or an idle Persister and
  /// nothing to write), then sends its acknowledgements and acks the core.
  void persist_here(core::Ready& rd, bool must_write);
  /// What follows persistence: apply, reads, membership and transfer bookkeeping.
  void after_ready(core::Ready& rd);
  /// The hard state a write of `rd` carries (its own, or the latest commit index riding
  /// along); records it as persisted_hard_state_.
  [[nodiscard]] std::optional<core::HardState> hard_state_to_write(const core::Ready& rd);
  void on_committed(std::vector<Entry>& committed);
  void update_peers();
  void maybe_compact();
  void report_log_read_failures(Clock::time_point now);
  /// Stamps what `msgs` carry: appends sent (leader). REQUIRES: tracer_.
  void trace_sent(const std::vector<core::Message>& msgs);
  /// Stops taking part after a storage failure (storage_failed(), inside a turn).
  void fail(const Status& why);
  /// A failing leader's last message: TimeoutNow to the voter with the highest match.
  void hand_off_leadership();
  /// The voter other than this node that stores the most of the log; kNoNode when none
  /// (or when this node does not lead).
  [[nodiscard]] NodeId most_caught_up_voter() const;
  /// The slow-disk policy, after each timed write of this node's own log.
  void note_write(Clock::duration took, Clock::time_point now);
  class Turn;
  /// The replica's invariants (RLR_INVARIANT), checked after each input when on.
  void check_invariants() const;

  const NodeOptions options_;
  storage::Storage& storage_;
  transport::Transport& transport_;
  ReplicaObserver& observer_;
  Persister* persister_;
  NodeHistograms* histograms_;
  Tracer* tracer_;
  std::unique_ptr<core::LogReader> log_reader_;  ///< the core's view of storage_ (evicted entries)
  core::Raft raft_;

  ReplicaBug bug_ = ReplicaBug::None;
  bool failed_ = false;
  bool leader_ = false;  ///< as of the last soft state handled
  LogIndex applied_;
  LogIndex config_index_seen_;
  core::Configuration config_seen_;
  core::HardState persisted_hard_state_;
  Waiters waiters_;
  ReplicaStats stats_;
  std::vector<Completion> completions_;
  std::uint64_t next_read_id_ = 1;
  SessionTable sessions_;  ///< as of the applied index
  /// Session commands proposed and not yet committed: (client, sequence) -> index.
  std::map<SessionKey, LogIndex> inflight_sessions_;
  /// Session tables saved at snapshot points, for compaction: (index, encoded table).
  std::deque<std::pair<LogIndex, Bytes>> snapshot_points_;
  std::uint64_t log_read_failures_seen_ = 0;
  /// The end of the write that began the current run of slow writes; nullopt: the last
  /// write was fast.
  std::optional<Clock::time_point> slow_since_;
  std::optional<Clock::time_point> slow_handoff_at_;  ///< the last slow-disk hand-off
  Clock::time_point log_read_failure_logged_{};
  Clock::time_point now_{};  ///< the latest time an input carried
  // propose()'s scratch, reused every call
  std::vector<Bytes> prop_commands_;
  std::vector<EntryKind> prop_kinds_;
  std::vector<Proposal*> prop_accepted_;
  std::vector<std::int64_t> prop_received_;  ///< the accepted ones' received_ns, while tracing
  /// Session commands repeated within the batch being proposed, each with the index its
  /// first copy gets.
  std::vector<std::pair<Proposal*, LogIndex>> batch_repeats_;
  const bool checking_;                ///< RaftOptions::check_invariants
  std::atomic<bool> in_turn_{false};   ///< an input is running (checked when checking_)
};

}  // namespace rlr::node
