// The Ready seam (contract in core/ready.h): routing outgoing messages by whether they
// may leave before persistence, assembling a Ready, taking back its vectors, the
// acknowledgement of what became durable, and what durability lets the core drop from
// memory (compaction into a snapshot, eviction of the oldest entries).
#include "core/raft.h"

#include <algorithm>

#include <fmt/format.h>

#include "util/invariant.h"

namespace rlr::core {
namespace {

// Bound on the committed entries handed out by one Ready, so that a node replaying a
// long log after a restart yields to its other duties between batches.
constexpr std::size_t kMaxCommittedPerReady = 8192;
/// A spare entry vector is let go after this many uses in a row that needed less than a
/// quarter of it.
constexpr int kSpareSmallUses = 64;

bool is_immediate(MessageType t) {
  // The leader's replication traffic leaves before its own persistence (thesis §10.2.1);
  // a pre-vote changes no state. Everything else acknowledges state that must be
  // durable first: a vote, appended entries, a term.
  switch (t) {
    case MessageType::Append:
    case MessageType::Heartbeat:
    case MessageType::Snapshot:
    case MessageType::TimeoutNow:
    case MessageType::PreVote:
      return true;
    default:
      return false;
  }
}

}  // namespace

// ---------------------------------------------------------------------------------
// Persistence and compaction
// ---------------------------------------------------------------------------------

void Raft::ack_persisted(PersistMark mark) {
  if (options_.check_invariants) {
    // The mark was taken from a Ready of this core, and its term never goes down.
    RLR_INVARIANT(mark.hard_state_term <= term_,
                  "a persist mark's term is not ahead of the core's");
  }
  if (role_ == Role::Candidate && mark.hard_state_term == term_ && vote_ == options_.id) {
    self_vote_durable_ = true;
  }
  if (mark.index > persisted_ && mark.index < unstable_ && log_.matches(mark.index, mark.term)) {
    persisted_ = mark.index;
  }
  if (role_ == Role::Leader) {
    maybe_commit();
  } else if (role_ == Role::Candidate && self_vote_durable_) {
    poll();
  }
  check_state();
}

Status Raft::compact(LogIndex index, Bytes data) {
  if (index <= log_.snapshot().index) return Status::ok();
  if (index > applied_ || index > persisted_) {
    return {ErrorCode::InvalidArgument,
            fmt::format("cannot compact to {}: applied {}, persisted {}", index.value(),
                        applied_.value(), persisted_.value())};
  }
  SnapshotMeta s;
  s.index = index;
  s.term = *log_.term_at(index);
  s.config = config_at(index);
  if (s.config.voters.empty()) {
    // A node that joined later knows no configuration before its first config entry
    // (the founders' configuration is never an entry): a snapshot there would carry no
    // voters, so it may not compact that far.
    return {ErrorCode::InvalidArgument,
            fmt::format("cannot compact to {}: no configuration is known there", index.value())};
  }
  s.data = std::move(data);
  log_.compact(std::move(s));
  std::erase_if(config_history_, [&](const auto& p) { return p.first <= index; });
  return Status::ok();
}

void Raft::maybe_evict() {
  const std::size_t max_entries = options_.max_memory_entries;
  const std::size_t max_bytes = options_.max_memory_bytes;
  if (options_.log_reader == nullptr) return;
  const bool over_entries = max_entries > 0 && log_.memory_entries() > max_entries;
  const bool over_bytes = max_bytes > 0 && log_.memory_bytes() > max_bytes;
  if (!over_entries && !over_bytes) return;
  // The reader must find what goes (durable), and the committed batches of ready() are
  // sliced from memory (applied).
  const LogIndex limit = std::min({applied_, persisted_, commit_});
  if (limit < log_.memory_first()) return;
  LogIndex upto = log_.memory_first().prev();
  if (over_entries) upto = LogIndex{log_.last_index().value() - max_entries};
  if (over_bytes) {
    std::size_t bytes = log_.memory_bytes();
    LogIndex i = log_.memory_first();
    for (; i <= limit && bytes > max_bytes; i = i.next()) bytes -= log_.at(i).payload.size();
    upto = std::max(upto, i.prev());
  }
  upto = std::min(upto, limit);
  if (upto >= log_.memory_first()) log_.evict(upto);
}

// ---------------------------------------------------------------------------------
// Output
// ---------------------------------------------------------------------------------

void Raft::send(Message m) {
  m.from = options_.id;
  if (is_immediate(m.type)) {
    msgs_.push_back(std::move(m));
  } else {
    msgs_after_persist_.push_back(std::move(m));
  }
}

bool Raft::has_ready() const {
  if (!msgs_.empty() || !msgs_after_persist_.empty() || !read_states_.empty()) return true;
  if (pending_snapshot_ || unstable_ <= log_.last_index()) return true;
  if (HardState{term_, vote_, commit_} != last_hard_state_) return true;
  if (SoftState{role(), leader_, term_} != last_soft_state_) return true;
  if (applied_ < std::min(commit_, persisted_)) return true;
  if (role_ == Role::Leader) {
    if (read_heartbeat_needed_) return true;
    for (const auto& [id, pr] : progress_) {
      if (can_send_now(pr)) return true;
    }
  }
  return false;
}

Ready Raft::ready() {
  check_state();
  const LogIndex applied_before = applied_;
  if (role_ == Role::Leader) {
    if (read_heartbeat_needed_) send_heartbeats(read_context_);
    send_appends();
    commit_notice_due_ = false;
  }
  Ready rd;
  const SoftState soft{role(), leader_, term_};
  if (soft != last_soft_state_) {
    rd.soft_state = soft;
    last_soft_state_ = soft;
  }
  const HardState hard{term_, vote_, commit_};
  if (hard != last_hard_state_) {
    rd.hard_state = hard;
    last_hard_state_ = hard;
  }
  if (pending_snapshot_) {
    rd.snapshot = std::move(*pending_snapshot_);
    pending_snapshot_.reset();
  }
  if (unstable_ <= log_.last_index()) {
    rd.entries = spare_entries_.take();
    log_.slice_into(std::max(unstable_, log_.first_index()), log_.last_index(), SIZE_MAX,
                    SIZE_MAX, rd.entries);
    unstable_ = log_.last_index().next();
  }
  if (rd.snapshot || !rd.entries.empty()) {
    rd.persist_mark.index = log_.last_index();
    rd.persist_mark.term = log_.last_term();
  } else {
    rd.persist_mark.index = persisted_;
    rd.persist_mark.term = log_.term_at(persisted_).value_or(Term{});
  }
  rd.persist_mark.hard_state_term = rd.hard_state ? rd.hard_state->term : Term{};
  const LogIndex apply_to = std::min(commit_, persisted_);
  if (applied_ < apply_to) {
    rd.committed = spare_committed_.take();
    log_.slice_into(applied_.next(), apply_to, kMaxCommittedPerReady, SIZE_MAX, rd.committed);
    applied_ = rd.committed.back().index;
  }
  maybe_evict();
  rd.messages = std::move(msgs_);
  msgs_.clear();
  rd.messages_after_persist = std::move(msgs_after_persist_);
  msgs_after_persist_.clear();
  rd.read_states = std::move(read_states_);
  read_states_.clear();
  check_ready(rd, applied_before);
  return rd;
}

void Raft::recycle(Ready&& rd) {
  spare_entries_.give(std::move(rd.entries));
  spare_committed_.give(std::move(rd.committed));
}

void Raft::SpareEntries::give(std::vector<Entry>&& v) {
  const std::size_t used = v.size();
  v.clear();  // the payload references go now
  small_uses_ = used * 4 < v.capacity() ? small_uses_ + 1 : 0;
  if (small_uses_ >= kSpareSmallUses) {
    small_uses_ = 0;
    return;  // recent steps needed far less: the memory goes back
  }
  if (v.capacity() > v_.capacity()) v_ = std::move(v);
}

}  // namespace rlr::core
