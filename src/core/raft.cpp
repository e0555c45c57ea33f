// The Raft state machine: construction and restart, role transitions and elections
// (§5.2, thesis §9.6 pre-vote), the timers, and the dispatch of each received message to
// its role's handler. Replication, membership, ReadIndex and the Ready seam each have a
// file of their own (raft_replication.cpp, raft_membership.cpp, raft_read_index.cpp,
// raft_ready.cpp); the comments name the rule of the paper each piece implements.
#include "core/entry_payloads.h"
#include "core/raft.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

#include "core/quorum.h"

namespace rlr::core {
namespace {

bool is_leader_message(MessageType t) {
  return t == MessageType::Append || t == MessageType::Heartbeat ||
         t == MessageType::Snapshot || t == MessageType::TimeoutNow;
}

}  // namespace

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
  r.become_follower(r.term_, kNoNode, RoleChangeReason::Started);
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

void Raft::become_follower(Term term, NodeId leader, RoleChangeReason reason) {
  const bool was_leader = role_ == Role::Leader;
  if (term > term_) {
    term_ = term;
    vote_ = kNoNode;
    leader_commit_ = LogIndex{};
  }
  events_.last_reason = reason;
  if (leader != kNoNode) leader_lost_ = false;
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
  ++events_.pre_votes_started;
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
  leader_commit_ = LogIndex{};
  ++events_.elections_started;
  votes_.clear();
  votes_[options_.id] = true;
  self_vote_durable_ = false;
  reset_timers();
}

void Raft::become_leader() {
  assert(role_ == Role::Candidate);
  role_ = Role::Leader;
  leader_ = options_.id;
  ++events_.elections_won;
  events_.last_reason = RoleChangeReason::ElectionWon;
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
  append_entries_as_leader({Entry{LogIndex{}, Term{}, EntryKind::Noop, encode_noop(options_.id)}});
}

void Raft::campaign(bool pre_vote, bool transfer, RoleChangeReason reason) {
  events_.last_reason = reason;
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
      campaign(false, false, events_.last_reason);
    } else if (role_ == Role::Candidate) {
      become_leader();
    }
  } else if (result == VoteResult::Lost) {
    become_follower(term_, kNoNode, RoleChangeReason::ElectionLost);
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
      campaign(options_.pre_vote, false,
               leader_lost_ ? RoleChangeReason::LeaderLost : RoleChangeReason::ElectionTimeout);
      leader_lost_ = false;  // said once: a later timeout is a timeout
    } else {
      // A node that cannot campaign (a learner, or not in its configuration) still stops
      // trusting a leader it no longer hears from; otherwise the lease (§4.2.3) would
      // make it ignore every candidate forever, and a configuration that counts its vote
      // could never elect a leader.
      become_follower(term_, kNoNode, RoleChangeReason::Other);
    }
    return;
  }
  // A request can be lost, or dropped by a voter that still heard from the old leader
  // (§4.2.3) and learns of its loss a moment later. Asking the voters that have not
  // answered again, every tick, keeps one lost request from costing a whole election
  // timeout. A repeated request is a duplicate: a voter answers it as before. Every tick,
  // not every heartbeat interval: the next survivor by rank campaigns a few ticks after
  // the first (peer_disconnected), and a retry slower than that lets two pre-candidates
  // grant each other and then split the vote.
  if (role_ == Role::PreCandidate || role_ == Role::Candidate) request_votes(true);
}

void Raft::peer_disconnected(NodeId peer) {
  if (role_ != Role::Follower || peer == kNoNode || peer != leader_) return;
  leader_ = kNoNode;
  leader_lost_ = true;
  events_.last_reason = RoleChangeReason::LeaderLost;
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
        become_follower(term_, kNoNode, RoleChangeReason::QuorumLost);
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
      become_follower(m.term, m.from, RoleChangeReason::LeaderHeard);
    } else {
      // §5.1: if RPC request or response contains term T > currentTerm: set
      // currentTerm = T, convert to follower.
      const std::uint32_t elapsed = election_elapsed_;
      become_follower(m.term, kNoNode, RoleChangeReason::HigherTerm);
      // Figure 2: only hearing from a leader or granting a vote restarts the election
      // timer. A vote request we may yet reject must not, or (without pre-vote) stale
      // candidates would keep the one electable node from ever timing out first.
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

void Raft::heard_leader(const Message& m) {
  if (leader_ != m.from) {
    leader_ = m.from;
    events_.last_reason = RoleChangeReason::LeaderHeard;
  }
  leader_lost_ = false;
  // Heartbeats carry the commit index capped at what the leader knows we hold, so a
  // follower sent a snapshot learns how far the log goes from the snapshot instead.
  leader_commit_ = std::max(leader_commit_, m.commit);
  if (m.snapshot) leader_commit_ = std::max(leader_commit_, m.snapshot->index);
}

Status Raft::step_follower(const Message& m) {
  switch (m.type) {
    case MessageType::Append:
      election_elapsed_ = 0;
      heard_leader(m);
      handle_append(m);
      break;
    case MessageType::Heartbeat:
      election_elapsed_ = 0;
      heard_leader(m);
      handle_heartbeat(m);
      break;
    case MessageType::Snapshot:
      election_elapsed_ = 0;
      heard_leader(m);
      handle_snapshot(m);
      break;
    case MessageType::TimeoutNow:
      // thesis §3.10: the leader asks us to start an election at once, skipping the
      // pre-vote and the lease, because it is handing over leadership.
      if (promotable()) campaign(false, true, RoleChangeReason::TransferRequested);
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
      become_follower(m.term, m.from, RoleChangeReason::LeaderHeard);
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

std::string Raft::describe() const {
  return fmt::format("node {} {} term {} vote {} leader {} commit {} applied {} persisted {} "
                     "log [{}..{}] in memory from {} {}",
                     options_.id.value(), to_string(role()), term_.value(), vote_.value(),
                     leader_.value(), commit_.value(), applied_.value(), persisted_.value(),
                     log_.first_index().value(), log_.last_index().value(),
                     log_.memory_first().value(), config_.to_string());
}

}  // namespace rlr::core
