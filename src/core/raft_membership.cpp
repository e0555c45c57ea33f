// Membership (thesis §4): configuration history in the log, joint consensus, learners
// and their promotion, and leadership transfer (thesis §3.10).
#include "core/raft.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

namespace rlr::core {

// ---------------------------------------------------------------------------------
// Membership changes
// ---------------------------------------------------------------------------------

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

// ---------------------------------------------------------------------------------
// Configuration history
// ---------------------------------------------------------------------------------

Configuration Raft::config_at(LogIndex index) const {
  Configuration c = log_.snapshot().config;
  for (const auto& [i, conf] : config_history_) {
    if (i <= index) c = conf;
  }
  return c;
}

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
  // A learner promoted to voter (or a voter demoted) changes role with no election.
  if (role() != last_soft_state_.role) events_.last_reason = RoleChangeReason::MembershipChanged;
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
// Leadership transfer (thesis §3.10)
// ---------------------------------------------------------------------------------

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

}  // namespace rlr::core
