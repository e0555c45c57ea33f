// rlr::Client: the connection to the leader (client_impl.h): opened when operations
// wait, and the outcome of each reply on it (an answer, a redirect, a retry).
#include <utility>
#include <variant>

#include <fmt/format.h>

#include "client/client_impl.h"

namespace rlr::client {

void ClientImpl::ensure_connection() {
  if (stopping_ || conn_) return;
  if (!leader_address_.empty() && suspected(kNoNode, leader_address_)) forget_leader();
  if (leader_address_.empty()) {
    start_discovery();
    return;
  }
  Connection::Handlers h;
  h.on_ready = [this](Connection& c) { on_conn_ready(c); };
  h.on_reply = [this](Connection& c, wire::ClientReply r) { on_conn_reply(c, std::move(r)); };
  h.on_closed = [this](Connection& c, const Status& s) { on_conn_closed(c, s); };
  conn_ = Connection::create(io_.io(), settings_, leader_address_, std::move(h));
  conn_->start();
}

void ClientImpl::on_conn_ready(Connection& c) {
  if (&c != conn_.get()) return;
  progress_at_ = Clock::now();
  stall_pause_ = std::chrono::milliseconds{0};
  watch_stall();
  std::deque<std::uint64_t> ready;
  ready.swap(waiting_);
  for (std::uint64_t id : ready) {
    auto it = ops_.find(id);
    if (it == ops_.end() || it->second.state != OpState::Waiting) continue;
    dispatch(id);  // sends now while the connection is ready, else waits again
  }
  // Operations backing off because no leader was reachable go now too: after a
  // failover their exponential backoff (up to backoff_max) would otherwise outlast the
  // election by far. Those that backed off for other reasons (Busy, Timeout) wait on.
  std::vector<std::uint64_t> woken;
  for (const auto& [id, op] : ops_) {
    if (op.state != OpState::Backoff) continue;
    const ErrorCode why = op.last_error.code();
    if (why == ErrorCode::NotLeader || why == ErrorCode::Unavailable || why == ErrorCode::ShuttingDown) {
      woken.push_back(id);
    }
  }
  for (std::uint64_t id : woken) {
    auto it = ops_.find(id);
    if (it != ops_.end() && it->second.state == OpState::Backoff) dispatch(id);
  }
}

void ClientImpl::on_conn_closed(Connection& c, const Status& why) {
  if (&c != conn_.get()) return;
  if (c.silent()) suspect(c);
  conn_.reset();
  forget_leader();
  requeue_inflight(why);
  if (is_refusal(why)) {
    fail_waiting(why);
    return;
  }
  if (!waiting_.empty()) ensure_connection();
}

void ClientImpl::drop_connection() {
  if (!conn_) return;
  conn_->close();
  conn_.reset();
  requeue_inflight(Status{ErrorCode::Unavailable, "connection dropped"});
  if (!waiting_.empty()) ensure_connection();
}

void ClientImpl::requeue_inflight(const Status& why) {
  std::map<std::uint64_t, std::uint64_t> inflight;
  inflight.swap(inflight_);
  for (const auto& [rid, id] : inflight) {
    Op& op = ops_.at(id);
    op.request_id = 0;
    op.ambiguous = true;  // the node may have appended it before the connection broke
    if (op.last_error.is_ok() || why.code() != ErrorCode::Unavailable ||
        why.message() != "connection dropped") {
      op.last_error = why;
    }
    op.state = OpState::Waiting;
    waiting_.push_back(id);
    arm(id, op.deadline, &ClientImpl::give_up);
  }
}

void ClientImpl::fail_waiting(const Status& why) {
  std::deque<std::uint64_t> w;
  w.swap(waiting_);
  for (std::uint64_t id : w) {
    auto it = ops_.find(id);
    if (it != ops_.end() && it->second.state == OpState::Waiting) finish(id, why);
  }
}

void ClientImpl::on_conn_reply(Connection& c, wire::ClientReply r) {
  if (&c != conn_.get()) return;
  progress_at_ = Clock::now();
  stall_pause_ = std::chrono::milliseconds{0};
  if (r.leader != kNoNode && !r.leader_address.empty()) learn(r.leader_address);
  auto it = inflight_.find(r.request_id);
  if (it == inflight_.end()) return;  // a late reply to an abandoned attempt
  const std::uint64_t id = it->second;
  inflight_.erase(it);
  Op& op = ops_.at(id);
  op.request_id = 0;

  // A cluster-info answer from a node that no longer leads is a redirect.
  if (r.status.is_ok() && std::holds_alternative<wire::GetClusterInfoRequest>(op.body) &&
      r.cluster_info && r.cluster_info->role != Role::Leader) {
    r.status = Status::not_leader(r.cluster_info->leader, "the node no longer leads");
  }
  if (r.cluster_info) {
    for (const auto& m : r.cluster_info->members) {
      if (!m.address.empty()) learn(m.address.to_string());
    }
  }

  // The ordering rule of sessions: the cluster takes any sequence at or below the
  // client's highest as a duplicate. A proposal that was refused outright (never
  // appended) must therefore not come back with its old number after later ones
  // committed: it gets a fresh one, unless an earlier attempt may be in the log.
  if (auto* p = std::get_if<wire::ProposeRequest>(&op.body)) {
    switch (r.status.code()) {
      case ErrorCode::NotLeader:
      case ErrorCode::Busy:
      case ErrorCode::TransferInProgress:
      case ErrorCode::Unavailable:
        if (!op.ambiguous) p->sequence = ++last_sequence_;
        break;
      case ErrorCode::Timeout:
      case ErrorCode::ShuttingDown:
        op.ambiguous = true;
        break;
      default:
        break;
    }
  }

  switch (r.status.code()) {
    case ErrorCode::Ok:
      finish(id, std::move(r));
      return;
    case ErrorCode::NotLeader: {
      const bool has_hint = !r.leader_address.empty() && r.leader_address != c.address() &&
                            !suspected(r.leader, r.leader_address);
      forget_leader();
      if (has_hint) set_leader_address(r.leader_address);
      drop_connection();
      op.last_error = Status{ErrorCode::NotLeader,
                             fmt::format("{} is not the leader{}", c.address(),
                                         has_hint ? " (redirected to " + r.leader_address + ")" : ""),
                             r.leader};
      // Follow a fresh hint at once; back off when redirects keep coming (a stale
      // hint, or leadership in flux) and when there is no hint at all.
      if (has_hint && op.attempts <= 2) {
        dispatch(id);
      } else {
        retry_later(id, op.last_error);
      }
      return;
    }
    case ErrorCode::Unavailable:
    case ErrorCode::ShuttingDown:
      forget_leader();
      drop_connection();
      retry_later(id, r.status);
      return;
    case ErrorCode::Busy:
    case ErrorCode::TransferInProgress:
    case ErrorCode::Timeout:
      // The same session makes the retry of a proposal safe.
      retry_later(id, r.status);
      return;
    default:
      finish(id, r.status);
      return;
  }
}

}  // namespace rlr::client
