// Log replication (§5.3): the follower's side of AppendEntries, heartbeats and
// InstallSnapshot; the leader's appends, per-follower progress and flow control
// (Probe / Replicate / Snapshot, the inflight window, storage reads per turn); commit
// advancement (§5.4.2); and client proposals, which the leader appends to its log.
#include "core/raft.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/quorum.h"

namespace rlr::core {

// ---------------------------------------------------------------------------------
// Follower side of replication (Figure 2, AppendEntries RPC)
// ---------------------------------------------------------------------------------

void Raft::handle_append(const Message& m) {
  Message r;
  r.type = MessageType::AppendResponse;
  r.to = m.from;
  r.term = term_;
  if (m.log_index < commit_) {
    // Everything up to our commit index already matches the leader (§5.4 leader
    // completeness); tell it where we are so it moves on.
    r.log_index = commit_;
    send(std::move(r));
    return;
  }
  if (!log_.matches(m.log_index, m.log_term)) {
    // §5.3: reply false if the log doesn't contain an entry at prevLogIndex whose term
    // matches prevLogTerm. The hint lets the leader skip a whole conflicting term: the
    // largest index at or before prevLogIndex whose term is <= prevLogTerm.
    r.reject = true;
    r.log_index = m.log_index;
    r.hint_index = log_.last_index_with_term_at_most(std::min(m.log_index, log_.last_index()),
                                                     m.log_term);
    r.hint_term = log_.term_at(r.hint_index).value_or(Term{});
    send(std::move(r));
    return;
  }
  const LogIndex last_new = m.log_index.plus(m.entries.size());
  if (auto conflict = log_.find_conflict(m.entries)) {
    if (*conflict <= commit_) {
      // Cannot happen with a correct leader; never overwrite a committed entry.
      r.reject = true;
      r.log_index = m.log_index;
      r.hint_index = commit_;
      r.hint_term = log_.term_at(commit_).value_or(Term{});
      send(std::move(r));
      return;
    }
    // §5.3: if an existing entry conflicts with a new one (same index but different
    // terms), delete the existing entry and all that follow it; append new entries.
    if (*conflict <= log_.last_index()) {
      truncate_config_history(*conflict);
      unstable_ = std::min(unstable_, *conflict);
      persisted_ = std::min(persisted_, conflict->prev());
    }
    log_.append(m.entries);
    for (const Entry& e : m.entries) {
      if (e.index >= *conflict && e.kind == EntryKind::Config) apply_config_entry(e);
    }
  }
  // §5.3: if leaderCommit > commitIndex, set commitIndex = min(leaderCommit, index of
  // last new entry).
  update_commit(std::min(m.commit, last_new));
  r.log_index = last_new;
  send(std::move(r));
}

void Raft::handle_heartbeat(const Message& m) {
  // The leader bounds the commit index by what it knows we hold.
  update_commit(std::min(m.commit, log_.last_index()));
  Message r;
  r.type = MessageType::HeartbeatResponse;
  r.to = m.from;
  r.term = term_;
  r.context = m.context;
  send(std::move(r));
}

void Raft::handle_snapshot(const Message& m) {
  const SnapshotMeta& s = *m.snapshot;
  Message r;
  r.type = MessageType::SnapshotResponse;
  r.to = m.from;
  r.term = term_;
  if (s.index <= commit_) {
    r.log_index = commit_;  // we already have everything it covers
  } else if (log_.matches(s.index, s.term)) {
    // Our log already holds the snapshot's last entry: keep the suffix.
    update_commit(s.index);
    r.log_index = commit_;
  } else {
    // Discard the entire log and install the snapshot (§7).
    log_.restore(s);
    config_history_.clear();
    reload_config();
    commit_ = s.index;
    applied_ = s.index;
    unstable_ = s.index.next();
    persisted_ = std::min(persisted_, s.index);
    pending_snapshot_ = s;
    r.log_index = s.index;
  }
  send(std::move(r));
}

void Raft::update_commit(LogIndex commit) {
  if (commit > commit_) commit_ = commit;
  check_state();
}

// ---------------------------------------------------------------------------------
// Leader side of replication
// ---------------------------------------------------------------------------------

void Raft::append_entries_as_leader(std::vector<Entry> entries) {
  LogIndex index = log_.last_index();
  for (Entry& e : entries) {
    index = index.next();
    e.index = index;
    e.term = term_;
    const bool config = e.kind == EntryKind::Config;
    log_.push(std::move(e));
    // §6 (thesis §4.1): a server uses the latest configuration in its log, committed
    // or not.
    if (config) apply_config_entry(log_.at(index));
  }
}

bool Raft::can_send(const Progress& pr) const {
  switch (pr.state) {
    case Progress::State::Snapshot:
      return false;
    case Progress::State::Probe:
      return !pr.probe_sent && (pr.next <= log_.last_index() || pr.sent_commit < commit_);
    case Progress::State::Replicate:
      if (pr.resend_probe) return true;
      // Nothing new to replicate: a new commit index goes out at most once a tick (while
      // entries flow it rides on every append), not after each commit, which would cost
      // a message and a follower wake-up per commit.
      if (pr.next > log_.last_index()) return commit_notice_due_ && pr.sent_commit < commit_;
      return pr.inflight.size() < options_.max_inflight_appends;
  }
  return false;
}

void Raft::send_appends() {
  for (auto& [id, pr] : progress_) {
    if (can_send_now(pr)) {
      send_append_to(id, pr);
      check_progress(pr);
    }
  }
}

bool Raft::needs_read(const Progress& pr) const noexcept {
  // Without a log reader nothing is evicted, so memory_first() == first_index().
  return !pr.resend_probe && pr.next <= log_.last_index() && pr.next < log_.memory_first() &&
         pr.next >= log_.first_index();
}

bool Raft::can_send_now(const Progress& pr) const noexcept {
  if (!can_send(pr)) return false;
  return storage_reads_left_ > 0 || !needs_read(pr);
}

void Raft::send_append_to(NodeId to, Progress& pr) {
  while (can_send_now(pr)) {
    const LogIndex prev = pr.next.prev();
    const auto prev_term = log_.term_at(prev);
    if (!prev_term) {
      // The entries this follower needs were compacted: send the snapshot (§7).
      Message m;
      m.type = MessageType::Snapshot;
      m.to = to;
      m.term = term_;
      m.snapshot = log_.snapshot();
      pr.state = Progress::State::Snapshot;
      pr.pending_snapshot = log_.snapshot().index;
      pr.snapshot_sent_tick = now_;
      pr.inflight.clear();
      send(std::move(m));
      return;
    }
    Message m;
    m.type = MessageType::Append;
    m.to = to;
    m.term = term_;
    m.log_index = prev;
    m.log_term = *prev_term;
    m.commit = commit_;
    if (pr.resend_probe) {
      // An empty append at the end of what we sent: the follower acknowledges it, or
      // rejects it and we fall back to probing (an append was lost).
      pr.resend_probe = false;
      pr.sent_commit = commit_;
      send(std::move(m));
      continue;
    }
    if (pr.next <= log_.last_index() &&
        (pr.state != Progress::State::Replicate ||
         pr.inflight.size() < options_.max_inflight_appends)) {
      if (Status rs = log_.read_into(pr.next, log_.last_index(), options_.max_append_entries,
                                     options_.max_append_bytes, options_.log_reader, m.entries);
          !rs) {
        // Evicted entries could not be read back: send nothing, and read no more this
        // turn (has_ready() would otherwise ask again at once); the next tick or message
        // tries again.
        ++log_read_failures_;
        last_log_read_error_ = std::move(rs);
        storage_reads_left_ = 0;
        return;
      }
      if (pr.next < log_.memory_first()) --storage_reads_left_;
    }
    pr.sent_commit = commit_;
    const bool has_entries = !m.entries.empty();
    const LogIndex last = has_entries ? m.entries.back().index : prev;
    send(std::move(m));
    if (pr.state == Progress::State::Probe) {
      pr.probe_sent = true;
      return;
    }
    if (!has_entries) return;
    // Replicate: optimistically advance and keep the pipeline full (bounded window).
    pr.next = last.next();
    pr.inflight.push_back(last);
  }
}

void Raft::send_heartbeats(std::uint64_t context) {
  for (auto& [id, pr] : progress_) {
    Message m;
    m.type = MessageType::Heartbeat;
    m.to = id;
    m.term = term_;
    // A follower may not yet hold what we committed; never let it commit past its match.
    m.commit = std::min(pr.match, commit_);
    m.context = context;
    send(std::move(m));
  }
  read_heartbeat_needed_ = false;
}

void Raft::handle_append_response(const Message& m, Progress& pr) {
  if (m.reject) {
    // Figure 2: if AppendEntries fails because of log inconsistency, decrement
    // nextIndex and retry — here by a whole term at a time using the follower's hint.
    if (m.log_index < pr.match || m.log_index.next() > pr.next) {
      return;  // stale: answers an append we have already moved past
    }
    LogIndex probe = m.hint_index < log_.snapshot().index
                         ? m.hint_index
                         : log_.last_index_with_term_at_most(m.hint_index, m.hint_term);
    // The follower refused prevLogIndex, so the next probe must start below it.
    if (!m.log_index.is_zero()) probe = std::min(probe, m.log_index.prev());
    const LogIndex next = std::max(probe.next(), pr.match.next());
    pr.next = next;
    pr.state = Progress::State::Probe;
    pr.probe_sent = false;
    pr.inflight.clear();
    check_progress(pr);
    return;
  }
  // Figure 2: if successful, update nextIndex and matchIndex for the follower.
  if (m.log_index > pr.match) pr.match = m.log_index;
  if (pr.next <= pr.match) pr.next = pr.match.next();
  while (!pr.inflight.empty() && pr.inflight.front() <= m.log_index) pr.inflight.pop_front();
  switch (pr.state) {
    case Progress::State::Probe:
      pr.state = Progress::State::Replicate;
      pr.next = pr.match.next();
      pr.probe_sent = false;
      pr.inflight.clear();
      break;
    case Progress::State::Snapshot:
      if (pr.match >= pr.pending_snapshot) {
        pr.state = Progress::State::Replicate;
        pr.next = pr.match.next();
        pr.inflight.clear();
      }
      break;
    case Progress::State::Replicate:
      break;
  }
  check_progress(pr);  // before maybe_commit(): a leader that steps down drops `pr`
  maybe_commit();
  if (role_ == Role::Leader && m.from == transfer_target_ && pr.match == log_.last_index()) {
    send_timeout_now(m.from);
  }
}

void Raft::handle_heartbeat_response(const Message& m, Progress& pr) {
  // A lost probe must not stall the follower forever: any sign of life unpauses it.
  pr.probe_sent = false;
  // In Replicate a lost append is noticed when the next one is rejected; if nothing new
  // is being written there is no next one, so check with an empty append.
  // Only when the follower made no progress since the previous heartbeat: under load
  // appends are merely in flight, and probing then would throw the pipeline away.
  if (pr.state == Progress::State::Replicate && pr.match < log_.last_index()) {
    if (pr.match == pr.match_at_heartbeat) pr.resend_probe = true;
    pr.match_at_heartbeat = pr.match;
  }
  if (pr.state == Progress::State::Snapshot &&
      now_ - pr.snapshot_sent_tick > options_.election_ticks) {
    // The snapshot (or its answer) was lost; probe again, which resends it if needed.
    pr.state = Progress::State::Probe;
  }
  check_progress(pr);
  if (m.context > pr.read_ack_context) {
    pr.read_ack_context = m.context;
    resolve_reads();
  }
}

void Raft::handle_snapshot_response(const Message& m, Progress& pr) {
  if (pr.state != Progress::State::Snapshot) return;
  if (m.reject) {
    pr.state = Progress::State::Probe;
    pr.probe_sent = false;
    return;
  }
  if (m.log_index > pr.match) pr.match = m.log_index;
  pr.state = Progress::State::Probe;
  pr.next = pr.match.next();
  pr.probe_sent = false;
  check_progress(pr);  // before maybe_commit(): a leader that steps down drops `pr`
  maybe_commit();
}

bool Raft::maybe_commit() {
  if (role_ != Role::Leader) return false;
  const LogIndex c = committed_index(config_, [&](NodeId id) {
    if (id == options_.id) return persisted_;
    auto it = progress_.find(id);
    return it == progress_.end() ? LogIndex{} : it->second.match;
  });
  if (c <= commit_) return false;
  // §5.4.2: a leader commits only entries of its current term by counting replicas;
  // earlier entries are committed indirectly (Figure 8).
  const auto t = log_.term_at(c);
  if (!t) return false;
  if (*t != term_ && options_.testing_bug != TestingBug::CommitPreviousTermByCount) return false;
  commit_ = c;
  check_state();
  on_commit_advanced();
  return true;
}

void Raft::on_commit_advanced() {
  if (role_ != Role::Leader) return;
  // ReadIndex requests that waited for this term's first commit may now proceed.
  if (log_.term_at(commit_) == term_) {
    while (!reads_awaiting_term_commit_.empty()) {
      const auto id = reads_awaiting_term_commit_.front().request_id;
      reads_awaiting_term_commit_.pop_front();
      register_read(id);
    }
  }
  maybe_finish_joint();
  if (!config_.is_joint() && config_index_ <= commit_ && !config_.is_voter(options_.id)) {
    // thesis §4.2.2: a leader that is not part of C_new steps down once C_new commits.
    become_follower(term_, kNoNode, RoleChangeReason::RemovedFromConfig);
  }
}

// ---------------------------------------------------------------------------------
// Client requests
// ---------------------------------------------------------------------------------

Result<EntryId> Raft::propose(Bytes command) {
  return propose_batch(std::span<const Bytes>(&command, 1));
}

Result<EntryId> Raft::propose_batch(std::span<const Bytes> commands,
                                    std::span<const EntryKind> kinds) {
  if (role_ != Role::Leader) return Status::not_leader(leader_);
  if (transfer_target_ != kNoNode) {
    return Status{ErrorCode::TransferInProgress,
                  fmt::format("leadership is moving to {}", transfer_target_.value()),
                  transfer_target_};
  }
  if (commands.empty()) return Status{ErrorCode::InvalidArgument, "empty batch"};
  if (!kinds.empty() && kinds.size() != commands.size()) {
    return Status{ErrorCode::InvalidArgument, "one kind per command"};
  }
  std::vector<Entry> entries;
  entries.reserve(commands.size());
  for (std::size_t i = 0; i < commands.size(); ++i) {
    const EntryKind kind = kinds.empty() ? EntryKind::Normal : kinds[i];
    if (kind == EntryKind::Config || kind == EntryKind::Noop || kind > kLastEntryKind) {
      return Status{ErrorCode::InvalidArgument, "only commands, sessions and watermarks are proposed"};
    }
    entries.push_back(Entry{LogIndex{}, Term{}, kind, commands[i]});
  }
  append_entries_as_leader(std::move(entries));
  return EntryId{log_.last_index(), term_};
}

}  // namespace rlr::core
