// The Raft protocol. Each rule of the paper has one home here; the comments name it.
#include "core/raft.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

#include "core/quorum.h"

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

bool is_leader_message(MessageType t) {
  return t == MessageType::Append || t == MessageType::Heartbeat ||
         t == MessageType::Snapshot || t == MessageType::TimeoutNow;
}

}  // namespace

std::string_view to_string(MessageType t) noexcept {
  switch (t) {
    case MessageType::PreVote: return "PreVote";
    case MessageType::PreVoteResponse: return "PreVoteResponse";
    case MessageType::Vote: return "Vote";
    case MessageType::VoteResponse: return "VoteResponse";
    case MessageType::Append: return "Append";
    case MessageType::AppendResponse: return "AppendResponse";
    case MessageType::Heartbeat: return "Heartbeat";
    case MessageType::HeartbeatResponse: return "HeartbeatResponse";
    case MessageType::Snapshot: return "Snapshot";
    case MessageType::SnapshotResponse: return "SnapshotResponse";
    case MessageType::TimeoutNow: return "TimeoutNow";
    case MessageType::DigestReport: return "DigestReport";
  }
  return "?";
}

std::string describe(const Message& m) {
  std::string s = fmt::format("{} {}->{} t{}", to_string(m.type), m.from.value(), m.to.value(),
                              m.term.value());
  switch (m.type) {
    case MessageType::PreVote:
    case MessageType::Vote:
      s += fmt::format(" last={}/t{}{}", m.log_index.value(), m.log_term.value(),
                       m.transfer ? " transfer" : "");
      break;
    case MessageType::PreVoteResponse:
    case MessageType::VoteResponse:
      s += m.reject ? " reject" : " grant";
      break;
    case MessageType::Append:
      s += fmt::format(" prev={}/t{} n={} commit={}", m.log_index.value(), m.log_term.value(),
                       m.entries.size(), m.commit.value());
      if (!m.entries.empty()) {
        s += fmt::format(" [{}..{}]", m.entries.front().index.value(),
                         m.entries.back().index.value());
      }
      break;
    case MessageType::AppendResponse:
      s += m.reject ? fmt::format(" reject prev={} hint={}/t{}", m.log_index.value(),
                                  m.hint_index.value(), m.hint_term.value())
                    : fmt::format(" ok match={}", m.log_index.value());
      break;
    case MessageType::Heartbeat:
      s += fmt::format(" commit={} ctx={}", m.commit.value(), m.context);
      break;
    case MessageType::HeartbeatResponse:
      s += fmt::format(" ctx={}", m.context);
      break;
    case MessageType::Snapshot:
      if (m.snapshot) {
        s += fmt::format(" snap={}/t{}", m.snapshot->index.value(), m.snapshot->term.value());
      }
      break;
    case MessageType::SnapshotResponse:
      s += fmt::format(" {} last={}", m.reject ? "reject" : "ok", m.log_index.value());
      break;
    case MessageType::TimeoutNow:
      break;
    case MessageType::DigestReport:
      s += fmt::format(" checkpoints={}", m.digests.size());
      break;
  }
  return s;
}

// ---------------------------------------------------------------------------------
// Construction and restart
// ---------------------------------------------------------------------------------

Raft::Raft(const RaftOptions& options) : options_(options), rng_(options.random_seed) {}

Result<Raft> Raft::create(const RaftOptions& options, RestoreState restored) {
  if (options.id == kNoNode) return Status{ErrorCode::InvalidArgument, "node id 0 is reserved"};
  if (options.heartbeat_ticks == 0 || options.election_ticks <= options.heartbeat_ticks) {
    return Status{ErrorCode::InvalidArgument,
                  "need 0 < heartbeat_ticks < election_ticks"};
  }
  if (options.max_append_entries == 0 || options.max_append_bytes == 0 ||
      options.max_inflight_appends == 0) {
    return Status{ErrorCode::InvalidArgument, "append limits must be positive"};
  }
  SnapshotMeta& snap = restored.snapshot;
  snap.config.normalize();
  if (!snap.config.voters.empty()) {
    if (Status s = snap.config.validate(); !s) return s;
  }
  // The restored entries must continue the snapshot without gaps, with terms that
  // never decrease and never exceed the current term.
  LogIndex expect = snap.index.next();
  Term prev_term = snap.term;
  for (const Entry& e : restored.entries) {
    if (e.index != expect) {
      return Status{ErrorCode::Corruption,
                    fmt::format("restored log has a gap: expected index {}, found {}",
                                expect.value(), e.index.value())};
    }
    if (e.term < prev_term || e.term > restored.hard_state.term) {
      return Status{ErrorCode::Corruption,
                    fmt::format("restored entry {} has term {} out of order", e.index.value(),
                                e.term.value())};
    }
    if (e.kind == EntryKind::Config) {
      if (auto c = decode_configuration(e.payload.span()); !c) {
        return Status{ErrorCode::Corruption,
                      fmt::format("restored entry {}: {}", e.index.value(),
                                  c.status().message())};
      }
    }
    prev_term = e.term;
    expect = expect.next();
  }

  Raft r(options);
  r.log_ = RaftLog(std::move(restored.snapshot), std::move(restored.entries));
  r.term_ = restored.hard_state.term;
  r.vote_ = restored.hard_state.vote;
  if (options.testing_bug == TestingBug::ForgetVoteOnRestart) r.vote_ = kNoNode;
  // The stored commit is a hint; it can never exceed what the log holds.
  r.commit_ = std::clamp(restored.hard_state.commit, r.log_.snapshot().index, r.log_.last_index());
  r.applied_ = std::clamp(restored.applied, r.log_.snapshot().index, r.commit_);
  r.persisted_ = r.log_.last_index();
  r.unstable_ = r.log_.last_index().next();
  r.reload_config();
  r.maybe_evict();
  r.new_turn();
  r.become_follower(r.term_, kNoNode);
  r.last_hard_state_ = HardState{r.term_, r.vote_, r.commit_};
  r.last_soft_state_ = SoftState{r.role(), r.leader_, r.term_};
  return r;
}

Role Raft::role() const noexcept {
  if (role_ == Role::Follower && config_.is_learner(options_.id)) return Role::Learner;
  return role_;
}

bool Raft::promotable() const noexcept {
  if (pending_snapshot_.has_value()) return false;
  if (config_.is_voter(options_.id)) return true;
  // A voter whose removal is appended but not committed may still be needed to elect a
  // leader (the committed configuration counts its vote, and its log may be the most up
  // to date): it campaigns, counting votes by its latest configuration as every server
  // does (thesis §4.1), and a leader it becomes steps down once that commits.
  return config_index_ > commit_ && config_at(commit_).is_voter(options_.id);
}

void Raft::reset_timers() {
  election_elapsed_ = 0;
  heartbeat_elapsed_ = 0;
  randomized_election_ticks_ =
      options_.election_ticks +
      static_cast<std::uint32_t>(rng_() % options_.election_ticks);
}

// ---------------------------------------------------------------------------------
// Role transitions (§5.2)
// ---------------------------------------------------------------------------------

void Raft::become_follower(Term term, NodeId leader) {
  const bool was_leader = role_ == Role::Leader;
  if (term > term_) {
    term_ = term;
    vote_ = kNoNode;
  }
  role_ = Role::Follower;
  leader_ = leader;
  votes_.clear();
  reset_timers();
  if (was_leader) {
    fail_pending_reads();
    progress_.clear();
    transfer_target_ = kNoNode;
    read_heartbeat_needed_ = false;
  }
}

void Raft::become_pre_candidate() {
  // thesis §9.6: a pre-candidate asks whether it could win before bumping its term, so
  // a node that rejoins from a partition cannot disrupt a working leader.
  role_ = Role::PreCandidate;
  leader_ = kNoNode;
  votes_.clear();
  votes_[options_.id] = true;
  reset_timers();
}

void Raft::become_candidate() {
  // §5.2: increment currentTerm, vote for self, reset the election timer.
  term_ = term_.next();
  vote_ = options_.id;
  role_ = Role::Candidate;
  leader_ = kNoNode;
  votes_.clear();
  votes_[options_.id] = true;
  self_vote_durable_ = false;
  reset_timers();
}

void Raft::become_leader() {
  assert(role_ == Role::Candidate);
  role_ = Role::Leader;
  leader_ = options_.id;
  votes_.clear();
  reset_timers();
  transfer_target_ = kNoNode;
  progress_.clear();
  sync_progress_with_config();
  for (auto& [id, pr] : progress_) pr.recent_active = true;
  // Any configuration entry still uncommitted from an earlier term blocks a new change
  // until this leader's own no-op commits.
  pending_config_index_ = log_.last_index();
  // §8: a new leader commits a blank no-op entry at the start of its term, which also
  // commits every earlier entry it holds and makes ReadIndex safe (§6.4).
  // Its payload names the leader, so every replica can tell from the log alone who led
  // each term (state machines switch egress at exactly this index).
  std::vector<std::uint8_t> id(8);
  for (int i = 0; i < 8; ++i) {
    id[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(options_.id.value() >> (56 - 8 * i));
  }
  append_entries_as_leader({Entry{LogIndex{}, Term{}, EntryKind::Noop, Bytes(std::move(id))}});
}

void Raft::campaign(bool pre_vote, bool transfer) {
  if (pre_vote) {
    become_pre_candidate();
  } else {
    become_candidate();
  }
  campaign_transfer_ = transfer;
  request_votes(false);
  poll();
}

void Raft::request_votes(bool unanswered_only) {
  const bool pre_vote = role_ == Role::PreCandidate;
  const Term vote_term = pre_vote ? term_.next() : term_;
  for (NodeId peer : config_.members()) {
    if (peer == options_.id || !config_.is_voter(peer)) continue;
    if (unanswered_only && votes_.count(peer) != 0) continue;
    Message m;
    m.type = pre_vote ? MessageType::PreVote : MessageType::Vote;
    m.to = peer;
    m.term = vote_term;
    m.log_index = log_.last_index();
    m.log_term = log_.last_term();
    m.transfer = campaign_transfer_;
    send(std::move(m));
  }
}

void Raft::poll() {
  // The candidate's own vote counts once it is durable: a vote lost in a crash could
  // otherwise be cast again in the same term.
  const auto result = vote_result(config_, [&](NodeId id) -> std::optional<bool> {
    if (id == options_.id && role_ == Role::Candidate && !self_vote_durable_) return std::nullopt;
    auto it = votes_.find(id);
    if (it == votes_.end()) return std::nullopt;
    return it->second;
  });
  if (result == VoteResult::Won) {
    if (role_ == Role::PreCandidate) {
      campaign(false, false);
    } else if (role_ == Role::Candidate) {
      become_leader();
    }
  } else if (result == VoteResult::Lost) {
    become_follower(term_, kNoNode);
  }
}

// ---------------------------------------------------------------------------------
// Time
// ---------------------------------------------------------------------------------

void Raft::tick() {
  ++now_;
  new_turn();
  if (role_ == Role::Leader) {
    tick_leader();
    return;
  }
  ++election_elapsed_;
  // §5.2: if the election timeout elapses without hearing from a leader or granting a
  // vote, start an election (a pre-vote first when enabled).
  if (election_elapsed_ >= randomized_election_ticks_) {
    election_elapsed_ = 0;
    if (promotable()) {
      campaign(options_.pre_vote, false);
    } else {
      // A node that cannot campaign (a learner, or not in its configuration) still stops
      // trusting a leader it no longer hears from; otherwise the lease (§4.2.3) would
      // make it ignore every candidate forever, and a configuration that counts its vote
      // could never elect a leader.
      become_follower(term_, kNoNode);
    }
    return;
  }
  // A request can be lost, or dropped by a voter that still heard from the old leader
  // (§4.2.3) and learns of its loss a moment later. Asking the voters that have not
  // answered again, every tick, keeps one lost request from costing a whole election
  // timeout. A repeated request is a duplicate: a voter answers it as before. Every tick,
  // not every heartbeat interval: the next survivor by rank campaigns a few ticks after
  // the first (peer_disconnected), and two pre-candidates grant each other and then
  // split the vote (seen in the failover bench with a 3-tick interval).
  if (role_ == Role::PreCandidate || role_ == Role::Candidate) request_votes(true);
}

void Raft::peer_disconnected(NodeId peer) {
  if (role_ != Role::Follower || peer == kNoNode || peer != leader_) return;
  leader_ = kNoNode;
  if (!options_.pre_vote || options_.disconnect_campaign_ticks == 0 || !promotable()) return;
  // Staggered by rank rather than randomized over a few ticks: survivors that all notice
  // the same crash at once would otherwise often campaign in the same tick and split the
  // vote, costing a whole election timeout.
  std::uint32_t rank = 0;
  for (NodeId v : config_.members()) {
    if (v != peer && v < options_.id && config_.is_voter(v)) ++rank;
  }
  // Two steps apart: ticks of different nodes are not in phase, so one tick apart could
  // still be the same instant.
  const std::uint32_t wait = options_.disconnect_campaign_ticks * (2 * rank + 1);
  // Move the clock, not the deadline: anything that restarts the timer (a vote granted
  // to another survivor, a leader's append) then restores a whole election timeout.
  if (wait < randomized_election_ticks_) {
    election_elapsed_ = std::max(election_elapsed_, randomized_election_ticks_ - wait);
  }
}

void Raft::tick_leader() {
  commit_notice_due_ = true;
  ++heartbeat_elapsed_;
  ++election_elapsed_;
  if (transfer_target_ != kNoNode && ++transfer_elapsed_ >= options_.election_ticks) {
    abort_transfer();  // thesis §3.10: give up after an election timeout
  }
  if (election_elapsed_ >= options_.election_ticks) {
    election_elapsed_ = 0;
    if (options_.check_quorum) {
      // thesis §6.2: a leader that has not heard from a quorum within an election
      // timeout steps down, so clients can find the real leader.
      const bool active = has_quorum(config_, [&](NodeId id) {
        if (id == options_.id) return true;
        auto it = progress_.find(id);
        return it != progress_.end() && it->second.recent_active;
      });
      for (auto& [id, pr] : progress_) pr.recent_active = false;
      if (!active) {
        become_follower(term_, kNoNode);
        return;
      }
    }
  }
  if (heartbeat_elapsed_ >= options_.heartbeat_ticks) {
    heartbeat_elapsed_ = 0;
    send_heartbeats(read_context_);
  }
}

// ---------------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------------

Status Raft::validate(const Message& m) const {
  if (m.to != options_.id) {
    return {ErrorCode::InvalidArgument, fmt::format("message addressed to {}", m.to.value())};
  }
  if (m.from == kNoNode || m.from == options_.id) {
    return {ErrorCode::InvalidArgument, "message has no valid sender"};
  }
  if (m.type == MessageType::DigestReport) {
    return {ErrorCode::InvalidArgument, "digest reports are for the runtime, not the core"};
  }
  if (m.type == MessageType::Append) {
    LogIndex expect = m.log_index.next();
    Term prev = m.log_term;
    for (const Entry& e : m.entries) {
      if (e.index != expect || e.term < prev || e.term > m.term) {
        return {ErrorCode::InvalidArgument,
                fmt::format("append from {} has out-of-order entry {}", m.from.value(),
                            e.index.value())};
      }
      if (e.kind == EntryKind::Config && !decode_configuration(e.payload.span())) {
        return {ErrorCode::InvalidArgument,
                fmt::format("append from {} has a malformed config entry {}", m.from.value(),
                            e.index.value())};
      }
      prev = e.term;
      expect = expect.next();
    }
    if (m.log_term > m.term) return {ErrorCode::InvalidArgument, "append prev term > term"};
  }
  if (m.type == MessageType::Snapshot) {
    if (!m.snapshot) return {ErrorCode::InvalidArgument, "snapshot message without snapshot"};
    if (Status s = m.snapshot->config.validate(); !s) return s;
    if (m.snapshot->term > m.term) return {ErrorCode::InvalidArgument, "snapshot term > term"};
  }
  return Status::ok();
}

Status Raft::step(const Message& m) {
  if (Status s = validate(m); !s) return s;
  new_turn();

  // §5.1: terms act as a logical clock.
  if (m.term > term_) {
    const bool vote_request = m.type == MessageType::PreVote || m.type == MessageType::Vote;
    if (vote_request && !m.transfer && leader_ != kNoNode &&
        election_elapsed_ < options_.election_ticks) {
      // thesis §4.2.3: while this node hears from a leader, it disregards vote requests,
      // so a removed or partitioned server cannot depose a working leader.
      return Status::ok();
    }
    if (m.type == MessageType::PreVote) {
      // A pre-vote never changes our term.
    } else if (m.type == MessageType::PreVoteResponse && !m.reject) {
      // A granted pre-vote carries the proposed term; not a reason to step down.
    } else if (is_leader_message(m.type)) {
      become_follower(m.term, m.from);
    } else {
      // §5.1: if RPC request or response contains term T > currentTerm: set
      // currentTerm = T, convert to follower.
      const std::uint32_t elapsed = election_elapsed_;
      become_follower(m.term, kNoNode);
      // Figure 2: only hearing from a leader or granting a vote restarts the election
      // timer. A vote request we may yet reject must not, or stale candidates would keep
      // the one electable node from ever timing out first (seed 111, pre-vote off).
      if (m.type == MessageType::Vote) election_elapsed_ = elapsed;
    }
  } else if (m.term < term_) {
    // §5.1: reply false if term < currentTerm. A stale leader learns our term from the
    // response and steps down; stale responses are dropped.
    if (m.type == MessageType::Append || m.type == MessageType::Heartbeat ||
        m.type == MessageType::Snapshot) {
      Message r;
      r.type = MessageType::AppendResponse;
      r.to = m.from;
      r.term = term_;
      r.reject = true;
      r.log_index = m.log_index;
      send(std::move(r));
    } else if (m.type == MessageType::PreVote || m.type == MessageType::Vote) {
      Message r;
      r.type = m.type == MessageType::PreVote ? MessageType::PreVoteResponse
                                              : MessageType::VoteResponse;
      r.to = m.from;
      r.term = term_;
      r.reject = true;
      send(std::move(r));
    }
    return Status::ok();
  }

  if (m.type == MessageType::PreVote || m.type == MessageType::Vote) {
    handle_vote_request(m);
    return Status::ok();
  }
  switch (role_) {
    case Role::Leader: return step_leader(m);
    case Role::PreCandidate:
    case Role::Candidate: return step_candidate(m);
    case Role::Follower:
    case Role::Learner: return step_follower(m);
  }
  return Status::ok();
}

void Raft::handle_vote_request(const Message& m) {
  const bool pre = m.type == MessageType::PreVote;
  // §5.2: each server votes for at most one candidate in a given term, first come first
  // served. A pre-vote for a later term promises nothing, so it may always be granted.
  // A learner answers too: a candidate whose log is at least as up to date as ours and
  // who asks us may know a configuration in which we are a voter; the candidate counts
  // only the voters of its own configuration.
  const bool can_vote = (vote_ == m.from) || (vote_ == kNoNode && leader_ == kNoNode) ||
                        (pre && m.term > term_);
  // §5.4.1: grant only if the candidate's log is at least as up to date as ours.
  const bool log_ok = options_.testing_bug == TestingBug::GrantVoteWithoutLogCheck ||
                      log_.is_up_to_date(m.log_index, m.log_term);
  Message r;
  r.type = pre ? MessageType::PreVoteResponse : MessageType::VoteResponse;
  r.to = m.from;
  if (can_vote && log_ok) {
    r.term = m.term;
    if (!pre) {
      vote_ = m.from;
      election_elapsed_ = 0;
    }
  } else {
    r.term = term_;
    r.reject = true;
  }
  send(std::move(r));
}

Status Raft::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::Append:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_append(m);
      break;
    case MessageType::Heartbeat:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_heartbeat(m);
      break;
    case MessageType::Snapshot:
      election_elapsed_ = 0;
      leader_ = m.from;
      handle_snapshot(m);
      break;
    case MessageType::TimeoutNow:
      // thesis §3.10: the leader asks us to start an election at once, skipping the
      // pre-vote and the lease, because it is handing over leadership.
      if (promotable()) campaign(false, true);
      break;
    default:
      break;  // stale responses from an earlier role
  }
  return Status::ok();
}

Status Raft::step_candidate(const Message& m) {
  switch (m.type) {
    case MessageType::Append:
    case MessageType::Heartbeat:
    case MessageType::Snapshot:
      // §5.2: if AppendEntries is received from the new leader, convert to follower.
      become_follower(m.term, m.from);
      return step_follower(m);
    case MessageType::PreVoteResponse:
      if (role_ == Role::PreCandidate && config_.is_voter(m.from)) {
        votes_[m.from] = !m.reject;
        poll();
      }
      break;
    case MessageType::VoteResponse:
      if (role_ == Role::Candidate && config_.is_voter(m.from)) {
        votes_[m.from] = !m.reject;
        poll();
      }
      break;
    default:
      break;
  }
  return Status::ok();
}

Status Raft::step_leader(const Message& m) {
  auto it = progress_.find(m.from);
  if (it == progress_.end()) return Status::ok();  // not (any longer) a member
  Progress& pr = it->second;
  switch (m.type) {
    case MessageType::AppendResponse:
      pr.recent_active = true;
      pr.last_contact_tick = now_;
      handle_append_response(m, pr);
      break;
    case MessageType::HeartbeatResponse:
      pr.recent_active = true;
      pr.last_contact_tick = now_;
      handle_heartbeat_response(m, pr);
      break;
    case MessageType::SnapshotResponse:
      pr.recent_active = true;
      pr.last_contact_tick = now_;
      handle_snapshot_response(m, pr);
      break;
    case MessageType::Append:
    case MessageType::Heartbeat:
    case MessageType::Snapshot:
      // Two leaders in one term would break election safety (§5.2); refuse loudly.
      return {ErrorCode::InvalidArgument,
              fmt::format("leader {} got {} from {} in its own term {}", options_.id.value(),
                          to_string(m.type), m.from.value(), term_.value())};
    default:
      break;
  }
  return Status::ok();
}

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
    if (can_send_now(pr)) send_append_to(id, pr);
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
    become_follower(term_, kNoNode);
  }
}

void Raft::maybe_finish_joint() {
  // thesis §4.3: once C_old,new commits, the leader appends C_new.
  if (!config_.is_joint() || config_index_ > commit_ || pending_config_index_ > commit_) return;
  Configuration next;
  next.voters = config_.voters;
  next.learners = config_.learners;
  next.addresses = config_.addresses;
  next.normalize();  // drops the addresses of members that left
  Entry e{LogIndex{}, Term{}, EntryKind::Config, encode_configuration(next)};
  append_entries_as_leader({std::move(e)});
  pending_config_index_ = log_.last_index();
}

void Raft::send_timeout_now(NodeId to) {
  Message m;
  m.type = MessageType::TimeoutNow;
  m.to = to;
  m.term = term_;
  send(std::move(m));
}

void Raft::abort_transfer() {
  transfer_target_ = kNoNode;
  transfer_elapsed_ = 0;
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

Result<EntryId> Raft::change_membership(Configuration target) {
  if (role_ != Role::Leader) return Status::not_leader(leader_);
  if (transfer_target_ != kNoNode) {
    return Status{ErrorCode::TransferInProgress, "leadership transfer in progress"};
  }
  // thesis §4.1: one change at a time; a joint configuration is itself a change in
  // flight until C_new is appended and committed.
  if (pending_config_index_ > commit_ || config_.is_joint()) {
    return Status{ErrorCode::ChangeInProgress,
                  fmt::format("configuration change at index {} not yet committed",
                              pending_config_index_.value())};
  }
  target.normalize();
  if (target.is_joint()) {
    return Status{ErrorCode::InvalidArgument, "target configuration must not be joint"};
  }
  if (Status s = target.validate(); !s) return s;
  for (NodeId v : target.voters) {
    if (config_.is_voter(v)) continue;
    if (!config_.is_learner(v)) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("node {} must join as a learner and catch up first", v.value())};
    }
    const auto it = progress_.find(v);
    const LogIndex match = it == progress_.end() ? LogIndex{} : it->second.match;
    if (match.plus(options_.max_promote_lag) < log_.last_index()) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("learner {} has not caught up: match {} of {}", v.value(),
                                match.value(), log_.last_index().value())};
    }
  }
  Configuration entry_config;
  if (target.voters == config_.voters) {
    entry_config = target;  // only learners change: quorums are unaffected
  } else {
    entry_config.voters = target.voters;
    entry_config.voters_outgoing = config_.voters;
    entry_config.learners = target.learners;
    entry_config.addresses = target.addresses;
    for (const auto& e : config_.addresses) {
      if (target.address_of(e.id).empty()) entry_config.addresses.push_back(e);
    }
    entry_config.normalize();
    if (Status s = entry_config.validate(); !s) {
      return Status{ErrorCode::InvalidArgument,
                    "a voter cannot become a learner in the same change: " + s.message()};
    }
  }
  append_entries_as_leader({Entry{LogIndex{}, Term{}, EntryKind::Config,
                                  encode_configuration(entry_config)}});
  pending_config_index_ = log_.last_index();
  return EntryId{log_.last_index(), term_};
}

Result<EntryId> Raft::add_learner(NodeId id, std::string address) {
  if (id == kNoNode) return Status{ErrorCode::InvalidArgument, "node id 0 is reserved"};
  if (config_.is_member(id)) {
    return Status{ErrorCode::InvalidArgument, fmt::format("node {} is already a member", id.value())};
  }
  Configuration t = config_;
  t.voters_outgoing.clear();
  t.learners.push_back(id);
  t.normalize();
  if (!address.empty()) t.set_address(id, std::move(address));
  return change_membership(std::move(t));
}

Result<EntryId> Raft::promote_learner(NodeId id) {
  if (!config_.is_learner(id)) {
    return Status{ErrorCode::InvalidArgument, fmt::format("node {} is not a learner", id.value())};
  }
  Configuration t = config_;
  t.voters_outgoing.clear();
  t.learners.erase(std::find(t.learners.begin(), t.learners.end(), id));
  t.voters.push_back(id);
  return change_membership(std::move(t));
}

Result<EntryId> Raft::remove_member(NodeId id) {
  if (!config_.is_member(id)) {
    return Status{ErrorCode::InvalidArgument, fmt::format("node {} is not a member", id.value())};
  }
  Configuration t = config_;
  t.voters_outgoing.clear();
  std::erase(t.voters, id);
  std::erase(t.learners, id);
  if (t.voters.empty()) return Status{ErrorCode::InvalidArgument, "cannot remove the last voter"};
  return change_membership(std::move(t));
}

Status Raft::transfer_leadership(NodeId target) {
  if (role_ != Role::Leader) return Status::not_leader(leader_);
  if (target == options_.id) return Status::ok();
  if (!config_.is_voter(target)) {
    return {ErrorCode::InvalidArgument, fmt::format("node {} is not a voter", target.value())};
  }
  transfer_target_ = target;
  transfer_elapsed_ = 0;
  // thesis §3.10: bring the target up to date, then tell it to time out now.
  const auto it = progress_.find(target);
  if (it != progress_.end() && it->second.match == log_.last_index()) send_timeout_now(target);
  return Status::ok();
}

Status Raft::read_index(std::uint64_t request_id) {
  if (role_ != Role::Leader) return Status::not_leader(leader_);
  // thesis §6.4: the leader must have committed an entry of its own term first, so its
  // commit index is at least as large as any previous leader's.
  if (log_.term_at(commit_) != term_) {
    reads_awaiting_term_commit_.push_back(PendingRead{request_id, 0, LogIndex{}});
    return Status::ok();
  }
  register_read(request_id);
  return Status::ok();
}

void Raft::register_read(std::uint64_t request_id) {
  const bool alone = has_quorum(config_, [&](NodeId id) { return id == options_.id; });
  if (alone) {
    read_states_.push_back(ReadState{request_id, commit_, true});
    return;
  }
  // Confirm leadership with one round of heartbeats; one round serves every read
  // registered before it is sent.
  pending_reads_.push_back(PendingRead{request_id, ++read_context_, commit_});
  read_heartbeat_needed_ = true;
}

void Raft::resolve_reads() {
  while (!pending_reads_.empty()) {
    const PendingRead& r = pending_reads_.front();
    const bool confirmed = has_quorum(config_, [&](NodeId id) {
      if (id == options_.id) return true;
      auto it = progress_.find(id);
      return it != progress_.end() && it->second.read_ack_context >= r.context;
    });
    if (!confirmed) break;
    read_states_.push_back(ReadState{r.request_id, r.index, true});
    pending_reads_.pop_front();
  }
}

void Raft::fail_pending_reads() {
  for (const auto& r : reads_awaiting_term_commit_) {
    read_states_.push_back(ReadState{r.request_id, LogIndex{}, false});
  }
  for (const auto& r : pending_reads_) {
    read_states_.push_back(ReadState{r.request_id, LogIndex{}, false});
  }
  reads_awaiting_term_commit_.clear();
  pending_reads_.clear();
}

// ---------------------------------------------------------------------------------
// Persistence and compaction
// ---------------------------------------------------------------------------------

void Raft::ack_persisted(PersistMark mark) {
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

Configuration Raft::config_at(LogIndex index) const {
  Configuration c = log_.snapshot().config;
  for (const auto& [i, conf] : config_history_) {
    if (i <= index) c = conf;
  }
  return c;
}

// ---------------------------------------------------------------------------------
// Membership
// ---------------------------------------------------------------------------------

void Raft::reload_config() {
  config_ = log_.snapshot().config;
  config_index_ = log_.snapshot().index;
  config_history_.clear();
  for (LogIndex i = log_.first_index(); i <= log_.last_index(); i = i.next()) {
    const Entry& e = log_.at(i);
    if (e.kind == EntryKind::Config) apply_config_entry(e);
  }
}

void Raft::apply_config_entry(const Entry& e) {
  auto c = decode_configuration(e.payload.span());
  // Config payloads are verified where they enter the node (validate(), create()).
  assert(c.is_ok());
  if (!c) return;
  config_history_.emplace_back(e.index, c.value());
  config_ = std::move(c).value();
  config_index_ = e.index;
  on_config_changed();
}

void Raft::truncate_config_history(LogIndex from) {
  if (config_index_ < from) return;
  std::erase_if(config_history_, [&](const auto& p) { return p.first >= from; });
  if (config_history_.empty()) {
    config_ = log_.snapshot().config;
    config_index_ = log_.snapshot().index;
  } else {
    config_ = config_history_.back().second;
    config_index_ = config_history_.back().first;
  }
  on_config_changed();
}

void Raft::on_config_changed() {
  if (role_ == Role::Leader) {
    sync_progress_with_config();
    if (transfer_target_ != kNoNode && !config_.is_voter(transfer_target_)) abort_transfer();
  }
}

void Raft::sync_progress_with_config() {
  const auto members = config_.members();
  std::erase_if(progress_, [&](const auto& p) {
    return !std::binary_search(members.begin(), members.end(), p.first);
  });
  for (NodeId id : members) {
    if (id == options_.id || progress_.count(id) != 0) continue;
    Progress pr;
    pr.next = log_.last_index().next();
    pr.recent_active = true;
    pr.last_contact_tick = now_;
    progress_.emplace(id, pr);
  }
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

std::string Raft::describe() const {
  return fmt::format("node {} {} term {} vote {} leader {} commit {} applied {} persisted {} "
                     "log [{}..{}] in memory from {} {}",
                     options_.id.value(), to_string(role()), term_.value(), vote_.value(),
                     leader_.value(), commit_.value(), applied_.value(), persisted_.value(),
                     log_.first_index().value(), log_.last_index().value(),
                     log_.memory_first().value(), config_.to_string());
}

}  // namespace rlr::core
