// A replica's health policy (part of node::Replica, replica.h): what it does when its
// storage refuses a write (stop taking part; a leader hands over first) and when its own
// writes stay slow (a leader hands over).
#include <fmt/format.h>

#include "node/replica.h"

namespace rlr::node {

void Replica::fail(const Status& why) {
  if (failed_) return;
  observer_.log(LogLevel::Error, fmt::format("storage failed, node stops participating: {}", why.to_string()));
  failed_ = true;
  ++stats_.storage_errors;
  stats_.proposals_failed += waiters_.pending_proposals();
  waiters_.fail_all(why, completions_);
  inflight_sessions_.clear();
  if (raft_.role() == Role::Leader) hand_off_leadership();
  observer_.on_storage_failed(why);
}

NodeId Replica::most_caught_up_voter() const {
  NodeId best;
  LogIndex best_match;
  for (const auto& [id, pr] : raft_.progress()) {
    if (id == options_.id || !raft_.config().is_voter(id)) continue;
    if (best == kNoNode || pr.match > best_match) {
      best = id;
      best_match = pr.match;
    }
  }
  return best;
}

void Replica::note_write(Clock::duration took, Clock::time_point now) {
  const auto bound = options_.slow_disk_write;
  const auto period = options_.slow_disk_period;
  if (bound.count() == 0 || period.count() == 0) return;
  if (took < bound) {
    slow_since_.reset();
    return;
  }
  if (!slow_since_) slow_since_ = now - took;
  if (raft_.role() != Role::Leader || now - *slow_since_ < period) return;
  if (slow_handoff_at_ && now - *slow_handoff_at_ < period) return;
  const NodeId to = most_caught_up_voter();
  if (to == kNoNode) return;
  slow_handoff_at_ = now;
  slow_since_.reset();
  if (Status s = raft_.transfer_leadership(to); !s) return;  // e.g. a transfer under way
  ++stats_.slow_disk_handoffs;
  observer_.log(LogLevel::Warn,
                fmt::format("own disk slow: every log write took at least {} ms for {} ms (the last {} ms); "
                            "handing leadership to node {}",
                            bound.count(), std::chrono::duration_cast<std::chrono::milliseconds>(period).count(),
                            std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), to.value()));
}

void Replica::hand_off_leadership() {
  // The voter that stores the most of the log. It need not hold all of it: TimeoutNow
  // only makes it campaign now (skipping pre-vote and the leader lease), and it wins only
  // with the votes of a majority whose logs it is at least as up to date as (§5.4.1).
  // This node, failed, votes for nobody.
  const NodeId best = most_caught_up_voter();
  if (best == kNoNode) return;
  const LogIndex best_match = raft_.progress().at(best).match;
  core::Message m;
  m.type = core::MessageType::TimeoutNow;
  m.from = options_.id;
  m.to = best;
  m.term = raft_.term();
  std::vector<core::Message> out{std::move(m)};
  transport_.send(out);
  observer_.log(LogLevel::Warn, fmt::format("handing leadership to node {} (it stores up to {}; the log ends at {})",
                                            best.value(), best_match.value(), raft_.log().last_index().value()));
}

}  // namespace rlr::node
