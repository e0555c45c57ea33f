// The safety properties the simulator checks, observed from outside the cores (Raft
// paper Figure 3 plus this project's contracts). The cluster reports what it sees after
// every call into a core; the checker keeps the global history those properties are
// stated over and records a Violation the moment one breaks:
//
//   election safety       at most one leader per term, over the whole run
//   log matching          an (index, term) pair names one entry and one predecessor term
//   leader completeness   an entry committed in term U is in every leader of a term > U
//                         (or below that leader's snapshot)
//   acknowledged writes   the same, reported separately for proposals the client saw commit
//   state machine safety  every node applies the same entry and reaches the same state at
//                         each index; snapshots carry that state
//   committed never changes  no node rewrites an entry it knows is committed
//   applied order         each node applies gap-free and in order
//   linearizable reads    a confirmed ReadIndex covers every write committed before it
//   acknowledged proposals  an acknowledgement names the committed entry (index, term)
//   exactly once          a session command is acknowledged with its first committed copy
// The application's egress contracts are checked by the Downstream (sim_app.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "core/configuration.h"
#include "core/raft.h"
#include "core/raft_log.h"
#include "rlr/node.h"
#include "rlr/types.h"

namespace rlr::sim {

struct Violation {
  std::uint64_t tick = 0;
  std::string invariant;  ///< which property broke
  std::string detail;     ///< nodes, indexes, terms
};

/// Digest of an entry's kind and payload (its index and term are compared separately).
[[nodiscard]] std::uint64_t entry_digest(const Entry& e) noexcept;
/// The state machine's state after applying `e` on top of `state_hash`.
[[nodiscard]] std::uint64_t next_state_hash(std::uint64_t state_hash, const Entry& e) noexcept;
/// The state of an empty state machine.
inline constexpr std::uint64_t kInitialStateHash = 0x6a09e667f3bcc908ULL;


struct CheckerStats {
  std::uint64_t leaders_elected = 0;
  std::uint64_t proposals = 0;
  std::uint64_t acknowledged = 0;
  std::uint64_t reads_confirmed = 0;
  std::uint64_t reads_failed = 0;
  std::uint64_t snapshots_installed = 0;
};

class InvariantChecker {
 public:
  /// A node's entry by index: from memory, or from its disk when the log evicted it;
  /// nullptr when neither holds it.
  using EntryLookup = std::function<const Entry*(LogIndex)>;

  InvariantChecker();

  void set_tick(std::uint64_t tick) noexcept { tick_ = tick; }
  void fail(std::string invariant, std::string detail);
  [[nodiscard]] const std::vector<Violation>& violations() const noexcept { return violations_; }
  [[nodiscard]] bool ok() const noexcept { return violations_.empty(); }

  // ---- leaders ------------------------------------------------------------------
  /// `id` is observed as leader of `term` for the first time: election safety, and
  /// leader completeness against everything committed in an earlier term.
  void on_leader(NodeId id, Term term, const core::RaftLog& log, const EntryLookup& entries);
  /// Leader completeness for entries [from, to] just committed: a leader `id` of `term`
  /// elected before they were observed committed must hold those committed earlier.
  void check_leader_holds(NodeId id, Term term, const core::RaftLog& log,
                          const EntryLookup& entries, LogIndex from, LogIndex to);

  // ---- commits ------------------------------------------------------------------
  /// Node `id`'s commit index moved from `from` to `to`. A leader's commit defines the
  /// committed entries (with the leader's term as their commit term); every other node
  /// must agree with them. Returns the range newly committed, if any.
  std::optional<std::pair<LogIndex, LogIndex>> on_commit_advanced(NodeId id, bool is_leader,
                                                                  Term term,
                                                                  const core::RaftLog& log,
                                                                  const EntryLookup& entries,
                                                                  LogIndex from, LogIndex to);
  [[nodiscard]] LogIndex known_commit() const noexcept {
    return LogIndex{static_cast<std::uint64_t>(committed_.size())};
  }
  /// The state after applying everything up to `i`, once some node has applied it.
  [[nodiscard]] std::optional<std::uint64_t> state_hash_at(LogIndex i) const noexcept;
  /// The latest committed configuration and its index.
  [[nodiscard]] const core::Configuration& committed_config() const noexcept {
    return committed_config_;
  }
  [[nodiscard]] LogIndex committed_config_index() const noexcept { return committed_config_index_; }
  void set_initial_config(const core::Configuration& c) { committed_config_ = c; }

  // ---- logs ---------------------------------------------------------------------
  /// Node `id` wrote `entries` into its log after an entry of term `prev_term`
  /// (nullopt: unknown, compacted). `node_commit` is the node's commit index.
  void on_entries_written(NodeId id, std::span<const Entry> entries,
                          std::optional<Term> prev_term, LogIndex node_commit);
  /// Full pairwise log matching: every index both logs hold up to their last common
  /// (index, term) must be the same entry. An index that either log holds but whose entry
  /// `fa`/`fb` cannot find fails "evicted entries are durable".
  void check_logs_match(NodeId a, const core::RaftLog& la, const EntryLookup& fa, NodeId b,
                        const core::RaftLog& lb, const EntryLookup& fb);

  // ---- state machines -------------------------------------------------------------
  /// Node `id`, having applied up to `applied_before`, applies `e` reaching `state_hash`.
  void on_apply(NodeId id, LogIndex applied_before, const Entry& e, std::uint64_t state_hash);
  /// Node `id`'s state machine was replaced by snapshot `s` whose data says `state_hash`.
  void on_snapshot_restored(NodeId id, const core::SnapshotMeta& s, std::uint64_t state_hash);

  // ---- clients ------------------------------------------------------------------
  /// Node `id` acknowledged a proposal submitted at `submit_tick` with `result`: the
  /// committed log must hold it there (acknowledged writes); under a client session the
  /// entry there must be that command's first committed copy (exactly once: a retry gets
  /// the original index, and no later copy is ever acknowledged).
  void on_acknowledged(NodeId id, const ProposeResult& result, std::uint64_t submit_tick,
                       const ClientSession& session);
  /// The index of the first copy of a session command some node applied, if any.
  [[nodiscard]] std::optional<LogIndex> first_session_copy(
      const std::pair<std::uint64_t, std::uint64_t>& key) const;
  /// The submit tick of the newest proposal acknowledged (0 before the first).
  [[nodiscard]] std::uint64_t last_acknowledged_submit_tick() const noexcept {
    return last_ack_submit_tick_;
  }
  [[nodiscard]] std::uint64_t acknowledged_count() const noexcept { return stats_.acknowledged; }
  void on_read_requested(std::uint64_t request_id, NodeId node);
  void on_read_cancelled(std::uint64_t request_id) { reads_.erase(request_id); }
  void on_read_state(NodeId node, const core::ReadState& rs);

  [[nodiscard]] const CheckerStats& stats() const noexcept { return stats_; }

 private:
  struct Committed {
    Term term;
    std::uint64_t digest = 0;
    bool digest_known = false;
    Term commit_term;  ///< term of the leader observed committing it
    std::optional<std::uint64_t> state_hash;
    bool acknowledged = false;
  };
  struct Written {  ///< one (index, term) pair as first written by some node
    Term term;
    std::optional<Term> prev_term;
    std::uint64_t digest = 0;
    NodeId first_writer;
  };
  struct PendingRead {
    NodeId node;
    LogIndex commit_at_request;
  };

  [[nodiscard]] const Committed* committed_at(LogIndex i) const noexcept;
  Committed* committed_at(LogIndex i) noexcept;
  void check_holds(NodeId id, Term term, const core::RaftLog& log, const EntryLookup& entries,
                   LogIndex i, const Committed& c, const char* when);
  /// entries(i), or nullptr after failing "evicted entries are durable".
  const Entry* entry_or_fail(NodeId id, const EntryLookup& entries, LogIndex i);

  std::uint64_t tick_ = 0;
  std::vector<Violation> violations_;
  std::map<std::uint64_t, NodeId> leader_of_term_;
  std::vector<Committed> committed_;           ///< [k] describes index k+1
  std::vector<std::vector<Written>> written_;  ///< [i] holds the pairs seen at index i
  core::Configuration committed_config_;
  LogIndex committed_config_index_;
  /// Session commands seen applied: (client, sequence) -> the committed indexes of
  /// their copies.
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::set<LogIndex>> session_copies_;
  std::uint64_t last_ack_submit_tick_ = 0;
  std::map<std::uint64_t, PendingRead> reads_;  ///< by request id
  CheckerStats stats_;
};

}  // namespace rlr::sim
