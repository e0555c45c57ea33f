// Everyone a replica owes an answer (private): proposers, session retries, reads,
// leadership transfers and membership changes, each with a deadline.
//
// One table, one expire() and one fail_all(): a deadline passed answers Timeout, a
// failure answers everyone with the same status. Proposals are answered through
// Completions (the user's callback moved, never wrapped); the other waiters' callbacks
// run on the replica's thread, where they only queue their own completion or continue
// the replica's bookkeeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <utility>
#include <vector>

#include "core/raft.h"
#include "node/executor.h"
#include "rlr/node.h"

namespace rlr::node {

using Clock = std::chrono::steady_clock;
using SessionKey = std::pair<std::uint64_t, std::uint64_t>;  ///< (client id, sequence)
using StatusCallback = std::function<void(Status)>;
using ReadCallback = std::function<void(Result<LogIndex>)>;

class Waiters {
 public:
  /// A proposer waiting for its entry to commit. `internal`: `done` continues the
  /// replica's own bookkeeping (a membership change) and runs on the replica's thread.
  struct Proposal {
    core::EntryId id;
    ProposeCallback done;
    Clock::time_point deadline;
    bool internal = false;
  };
  /// A retry of a session command that is in the log, not yet committed.
  struct Session {
    SessionKey key;
    ProposeCallback done;
    Clock::time_point deadline;
  };
  struct Read {
    ReadCallback done;
    Clock::time_point deadline;
  };
  struct Transfer {
    NodeId target;
    StatusCallback done;
    Clock::time_point deadline;
  };
  struct Config {
    StatusCallback done;
    Clock::time_point deadline;
  };

  /// Ordered by index. Their deadlines are non-decreasing except for internal ones
  /// (membership changes carry the caller's timeout): expire() stops at the first
  /// proposal whose deadline has not passed.
  std::deque<Proposal> proposals;
  std::multimap<LogIndex, Session> sessions;  ///< by the index of the entry waited for
  std::map<std::uint64_t, Read> reads;        ///< by read request id
  std::vector<Transfer> transfers;
  std::vector<Config> configs;
  /// User proposals and session retries answered Timeout: at their deadline, and when
  /// leadership was lost before their entry committed.
  std::uint64_t timed_out = 0;
  std::uint64_t released = 0;

  /// Proposers and session retries waiting (what NodeOptions::max_pending_proposals bounds).
  [[nodiscard]] std::size_t pending_proposals() const { return proposals.size() + sessions.size(); }
  /// Every waiter of every kind.
  [[nodiscard]] std::size_t size() const {
    return pending_proposals() + reads.size() + transfers.size() + configs.size();
  }

  /// Answers Timeout to every waiter whose deadline is at or before `now`.
  void expire(Clock::time_point now, std::vector<Completion>& out);
  /// Answers `why` to every waiter and empties the table.
  void fail_all(const Status& why, std::vector<Completion>& out);
  /// On losing leadership: answers every user proposal and session retry Timeout at once
  /// (its entry may still commit under the next leader); internal ones wait for commit
  /// or deadline.
  void release_proposals(std::vector<Completion>& out);

  /// Hands a user proposal's outcome to `out`.
  static void complete(std::vector<Completion>& out, ProposeCallback& done, Result<ProposeResult> r) {
    out.push_back(Completion{std::move(done), std::move(r), {}});
  }
  /// Answers a proposal waiter: internal ones at once, user ones through `out`.
  static void finish(std::vector<Completion>& out, Proposal& p, Result<ProposeResult> r) {
    if (p.internal) {
      p.done(std::move(r));
    } else {
      complete(out, p.done, std::move(r));
    }
  }
};

}  // namespace rlr::node
