// ReadIndex (thesis §6.4): linearizable reads confirmed by a quorum's heartbeats,
// without writing the log.
#include "core/raft.h"

#include "core/quorum.h"

namespace rlr::core {

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

}  // namespace rlr::core
