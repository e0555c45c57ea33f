// The Raft core (core-private): one node's protocol state machine, pure and
// deterministic. It does no I/O, reads no clock and owns no thread. The runtime (or the
// simulator) drives it:
//
//   tick()                 every tick of the runtime's clock
//   step(msg)              for each message received from a peer
//   propose(...) etc.      for client requests
//   ready()                collects what the node must do: persist, send, apply
//   ack_persisted(mark)    once the Ready's hard state and entries are durable
//
// The Ready contract (what may be sent before persisting, what must wait) is in
// core/ready.h.
//
// Protocol references: "§" is the Raft paper (Ongaro & Ousterhout, 2014), "thesis" is
// Ongaro's dissertation (2014).
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <span>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/configuration.h"
#include "core/message.h"
#include "core/progress.h"
#include "core/raft_log.h"
#include "core/raft_options.h"
#include "core/ready.h"
#include "core/state.h"
#include "rlr/metrics.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::core {

/// Identifies a proposed entry; it committed iff the committed entry at `index` has `term`.
struct EntryId {
  LogIndex index;
  Term term;
  friend bool operator==(const EntryId&, const EntryId&) = default;
};

class Raft {
 public:
  /// Builds a node from its options and what storage held. Returns InvalidArgument on
  /// inconsistent options or restored state.
  [[nodiscard]] static Result<Raft> create(const RaftOptions& options, RestoreState restored);

  // ---- inputs ---------------------------------------------------------------------
  /// Advances logical time by one tick (election and heartbeat timers).
  void tick();
  /// Handles a message from a peer. Messages of a stale term are answered with our term
  /// (so a stale leader steps down) or dropped; a malformed message gets InvalidArgument
  /// and changes nothing. Membership of the sender is not checked here: a leader or
  /// candidate this node does not know yet may be legitimate (its configuration entry
  /// has not reached us); authenticating peers is the transport's job.
  Status step(const Message& m);
  /// The transport lost its connection to `peer` (closed or reset: a crashed process's
  /// sockets close at once). A follower whose leader that is stops trusting it now, so
  /// the lease (thesis §4.2.3) no longer makes it ignore candidates, and, with pre-vote
  /// on, campaigns after a short delay set by `disconnect_campaign_ticks` instead of a
  /// whole election timeout. Only liveness depends on it: the pre-vote still needs a majority that no
  /// longer hears from the leader, so a connection that drops while the leader lives
  /// (and the others still hear it) disturbs nothing. Ignored in any other case.
  void peer_disconnected(NodeId peer);
  /// Appends a command to the log. Leader only: other roles get NotLeader with the
  /// known leader; a transfer in progress gives TransferInProgress.
  [[nodiscard]] Result<EntryId> propose(Bytes command);
  /// Appends several entries; all or none. Returns the id of the last one. `kinds`
  /// (Normal, Session or Watermark; empty: all Normal) gives each entry's kind.
  [[nodiscard]] Result<EntryId> propose_batch(std::span<const Bytes> commands,
                                              std::span<const EntryKind> kinds = {});
  /// Proposes a new membership. `target` must be simple (not joint). Learner-only
  /// changes apply directly; a change of voters goes through joint consensus (thesis
  /// §4.3): C_old,new is appended now and C_new once C_old,new commits.
  /// Errors: NotLeader, ChangeInProgress (a change is uncommitted or joint),
  /// InvalidArgument (bad target, or promoting a learner that has not caught up).
  [[nodiscard]] Result<EntryId> change_membership(Configuration target);
  /// Helpers that build the target configuration from the current one.
  [[nodiscard]] Result<EntryId> add_learner(NodeId id, std::string address = {});
  [[nodiscard]] Result<EntryId> promote_learner(NodeId id);
  [[nodiscard]] Result<EntryId> remove_member(NodeId id);
  /// thesis §3.10: hands leadership to `target` (a voter). Proposals are refused until
  /// the transfer completes or is abandoned after an election timeout.
  Status transfer_leadership(NodeId target);
  /// thesis §6.4: confirms leadership with a quorum without writing the log; the result
  /// arrives in Ready::read_states under `request_id`.
  Status read_index(std::uint64_t request_id);
  /// Makes a durable snapshot at `index` (<= applied) the log's base and drops the
  /// entries it covers from memory. `data` is stored with it, opaque to the core.
  Status compact(LogIndex index, Bytes data);
  /// Acknowledges that a Ready's snapshot, entries and hard state are durable.
  void ack_persisted(PersistMark mark);

  // ---- outputs --------------------------------------------------------------------
  [[nodiscard]] bool has_ready() const;
  /// Takes everything pending (see the contract in core/ready.h).
  [[nodiscard]] Ready ready();
  /// Takes back a Ready the caller is done with, so that the next ready() fills its
  /// entry vectors again instead of allocating new ones. Optional. A catching-up
  /// follower's steps hold a hundred thousand entries and more: fresh memory for each
  /// costs a page fault per 4 KiB, and the allocator hands such sizes back to the system.
  void recycle(Ready&& rd);

  // ---- observation ----------------------------------------------------------------
  [[nodiscard]] NodeId id() const noexcept { return options_.id; }
  [[nodiscard]] Role role() const noexcept;
  [[nodiscard]] NodeId leader() const noexcept { return leader_; }
  [[nodiscard]] Term term() const noexcept { return term_; }
  [[nodiscard]] NodeId voted_for() const noexcept { return vote_; }
  [[nodiscard]] LogIndex commit_index() const noexcept { return commit_; }
  [[nodiscard]] LogIndex applied_index() const noexcept { return applied_; }
  [[nodiscard]] LogIndex persisted_index() const noexcept { return persisted_; }
  [[nodiscard]] const RaftLog& log() const noexcept { return log_; }
  [[nodiscard]] const Configuration& config() const noexcept { return config_; }
  [[nodiscard]] const RaftOptions& options() const noexcept { return options_; }
  /// Index of the entry that set config() (the snapshot index when none did).
  [[nodiscard]] LogIndex config_index() const noexcept { return config_index_; }
  [[nodiscard]] NodeId transfer_target() const noexcept { return transfer_target_; }
  [[nodiscard]] std::uint64_t now_tick() const noexcept { return now_; }
  /// Leader only: replication progress per member (empty otherwise).
  [[nodiscard]] const std::map<NodeId, Progress>& progress() const noexcept { return progress_; }
  [[nodiscard]] std::string describe() const;
  /// Appends that could not be sent because evicted entries could not be read back, and
  /// the last such error (ok when none). The leader retries on its next turn.
  [[nodiscard]] std::uint64_t log_read_failures() const noexcept { return log_read_failures_; }
  [[nodiscard]] const Status& last_log_read_error() const noexcept { return last_log_read_error_; }
  /// Counts of the campaigns this node ran, and why its role or leader last changed.
  struct Events {
    std::uint64_t pre_votes_started = 0;
    std::uint64_t elections_started = 0;  ///< real (term-bumping) campaigns
    std::uint64_t elections_won = 0;
    RoleChangeReason last_reason = RoleChangeReason::Started;
  };
  [[nodiscard]] const Events& events() const noexcept { return events_; }
  /// The highest commit index the current term's leader has sent this node (0 before
  /// any): with the applied index, how far a follower trails its leader.
  [[nodiscard]] LogIndex leader_commit() const noexcept { return leader_commit_; }

 private:
  explicit Raft(const RaftOptions& options);

  // role transitions
  void become_follower(Term term, NodeId leader, RoleChangeReason reason);
  void become_pre_candidate();
  void become_candidate();
  void become_leader();
  void campaign(bool pre_vote, bool transfer, RoleChangeReason reason);
  /// Sends (pre-)vote requests for the current campaign; with `unanswered_only`, only to
  /// the voters that have not answered yet.
  void request_votes(bool unanswered_only);
  void poll();
  void reset_timers();
  [[nodiscard]] bool promotable() const noexcept;

  // per-role handlers
  Status step_leader(const Message& m);
  Status step_candidate(const Message& m);
  Status step_follower(const Message& m);
  /// A follower heard from the leader `m` comes from: records it and its commit index.
  void heard_leader(const Message& m);
  void handle_vote_request(const Message& m);
  void handle_append(const Message& m);
  void handle_heartbeat(const Message& m);
  void handle_snapshot(const Message& m);
  void handle_append_response(const Message& m, Progress& pr);
  void handle_heartbeat_response(const Message& m, Progress& pr);
  void handle_snapshot_response(const Message& m, Progress& pr);
  [[nodiscard]] Status validate(const Message& m) const;

  // leader machinery
  void append_entries_as_leader(std::vector<Entry> entries);
  void send_appends();
  void send_append_to(NodeId to, Progress& pr);
  [[nodiscard]] bool can_send(const Progress& pr) const;
  void send_timeout_now(NodeId to);
  void register_read(std::uint64_t request_id);
  void on_commit_advanced();
  void send_heartbeats(std::uint64_t context);
  bool maybe_commit();
  void maybe_finish_joint();
  void tick_leader();
  void resolve_reads();
  void fail_pending_reads();
  void abort_transfer();

  // membership
  void apply_config_entry(const Entry& e);
  void reload_config();
  void sync_progress_with_config();
  void on_config_changed();
  void truncate_config_history(LogIndex from);
  [[nodiscard]] Configuration config_at(LogIndex index) const;

  // helpers
  void send(Message m);
  /// Evicts the oldest in-memory entries beyond the memory limits (durable and applied only).
  void maybe_evict();
  /// True when the next append to `pr` carries entries that must be read back from storage.
  [[nodiscard]] bool needs_read(const Progress& pr) const noexcept;
  /// can_send(pr), and a read for it is within this turn's budget.
  [[nodiscard]] bool can_send_now(const Progress& pr) const noexcept;
  void new_turn() noexcept {
    storage_reads_left_ = options_.max_storage_reads_per_turn == 0 ? SIZE_MAX
                                                                    : options_.max_storage_reads_per_turn;
  }
  void update_commit(LogIndex commit);

  // invariants (core/invariants.h): each aborts on a violation, and does nothing unless
  // options_.check_invariants
  /// The log positions and every follower's progress.
  void check_state() const;
  /// One follower's progress, after the leader changed it.
  void check_progress(const Progress& pr) const;
  /// A Ready just assembled, against the state it was taken from (and then
  /// check_state()); `applied_before` is the applied index before it.
  void check_ready(const Ready& rd, LogIndex applied_before) const;

  RaftOptions options_;
  std::mt19937_64 rng_;
  RaftLog log_;
  Configuration config_;        ///< latest config in the log (used immediately, §6)
  LogIndex config_index_;       ///< index of the entry that set config_
  std::vector<std::pair<LogIndex, Configuration>> config_history_;  ///< config entries in log

  // persistent state (Figure 2)
  Term term_;
  NodeId vote_;
  // volatile state
  LogIndex commit_;
  LogIndex applied_;      ///< last index handed out in Ready::committed
  LogIndex persisted_;    ///< last index acknowledged durable (with its term)
  LogIndex unstable_;     ///< first index not yet handed out for persistence
  bool snapshot_unsent_ = false;
  HardState last_hard_state_;
  SoftState last_soft_state_;

  Role role_ = Role::Follower;
  NodeId leader_;
  std::uint64_t now_ = 0;
  std::uint32_t election_elapsed_ = 0;
  std::uint32_t heartbeat_elapsed_ = 0;
  std::uint32_t randomized_election_ticks_ = 0;
  bool self_vote_durable_ = false;
  std::map<NodeId, bool> votes_;
  bool campaign_transfer_ = false;  ///< the current campaign was started by TimeoutNow
  bool leader_lost_ = false;        ///< the leader's connection dropped; none heard since
  LogIndex leader_commit_;          ///< see leader_commit()
  Events events_;
  std::optional<SnapshotMeta> pending_snapshot_;  ///< received, not yet handed out

  // leader state
  std::map<NodeId, Progress> progress_;
  LogIndex pending_config_index_;  ///< last config entry appended by this leader
  NodeId transfer_target_;
  std::uint32_t transfer_elapsed_ = 0;
  struct PendingRead {
    std::uint64_t request_id;
    std::uint64_t context;
    LogIndex index;
  };
  std::deque<PendingRead> pending_reads_;
  std::deque<PendingRead> reads_awaiting_term_commit_;
  std::uint64_t read_context_ = 0;
  bool read_heartbeat_needed_ = false;
  bool commit_notice_due_ = false;  ///< a tick passed: idle followers may be told the commit index

  std::size_t storage_reads_left_ = 0;  ///< this turn's reads (see max_storage_reads_per_turn)
  std::uint64_t log_read_failures_ = 0;
  Status last_log_read_error_;

  // outputs
  /// A vector kept for the next ready() (see recycle()); let go once recent steps
  /// needed much less than its capacity.
  class SpareEntries {
   public:
    [[nodiscard]] std::vector<Entry> take() { return std::exchange(v_, {}); }
    void give(std::vector<Entry>&& v);

   private:
    std::vector<Entry> v_;
    int small_uses_ = 0;  ///< uses in a row that needed < 1/4 of the capacity
  };
  SpareEntries spare_entries_;
  SpareEntries spare_committed_;
  std::vector<Message> msgs_;
  std::vector<Message> msgs_after_persist_;
  std::vector<ReadState> read_states_;
};

}  // namespace rlr::core
