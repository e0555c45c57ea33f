// rlr::Client: the operations table and its deadlines (client_impl.h): an operation
// is dispatched to the leader's connection or waits for one, retried with backoff, and
// finished exactly once, with its outcome or when its total deadline passes.
#include <algorithm>
#include <utility>

#include <fmt/format.h>

#include "client/backoff.h"
#include "client/client_impl.h"

namespace rlr::client {

void ClientImpl::admit_proposals() {
  while (proposals_in_flight_ < kMaxProposalsInFlight && !proposal_queue_.empty()) {
    const std::uint64_t id = proposal_queue_.front();
    proposal_queue_.pop_front();
    auto it = ops_.find(id);
    if (it == ops_.end() || it->second.state != OpState::Queued) continue;
    it->second.admitted = true;
    ++proposals_in_flight_;
    dispatch(id);
  }
}

void ClientImpl::arm(std::uint64_t id, Clock::time_point when, void (ClientImpl::*on_fire)(std::uint64_t)) {
  if (deadlines_.size() >= 2 * ops_.size() + 1024) rebuild_deadlines();  // bounds stale entries
  Op& op = ops_.at(id);
  op.timer_gen += 1;
  op.timer_when = when;
  op.timer_fire = on_fire;
  deadlines_.push_back(Deadline{when, id, op.timer_gen});
  std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
  rearm_deadline_timer();
}

void ClientImpl::disarm(Op& op) {
  op.timer_gen += 1;
  op.timer_fire = nullptr;
}

bool ClientImpl::live(const Deadline& d) const {
  auto it = ops_.find(d.id);
  return it != ops_.end() && it->second.timer_gen == d.gen && it->second.timer_fire != nullptr;
}

void ClientImpl::rebuild_deadlines() {
  deadlines_.clear();
  for (const auto& [id, op] : ops_) {
    if (op.timer_fire != nullptr) deadlines_.push_back(Deadline{op.timer_when, id, op.timer_gen});
  }
  std::make_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
}

void ClientImpl::rearm_deadline_timer() {
  while (!deadlines_.empty() && !live(deadlines_.front())) {
    std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
    deadlines_.pop_back();
  }
  if (deadlines_.empty() || stopping_) return;
  const Clock::time_point first = deadlines_.front().when;
  if (deadline_armed_ && deadline_armed_at_ <= first) return;  // fires early enough
  deadline_armed_ = true;
  deadline_armed_at_ = first;
  deadline_timer_.expires_at(first);  // cancels a later wait (it returns aborted)
  deadline_timer_.async_wait([this](boost::system::error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    deadline_armed_ = false;
    on_deadlines();
  });
}

void ClientImpl::on_deadlines() {
  const auto now = Clock::now();
  while (!deadlines_.empty() && deadlines_.front().when <= now) {
    const Deadline d = deadlines_.front();
    std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
    deadlines_.pop_back();
    if (!live(d)) continue;
    Op& op = ops_.at(d.id);
    auto fire = std::exchange(op.timer_fire, nullptr);
    (this->*fire)(d.id);  // may arm again, finish, or start other operations
  }
  rearm_deadline_timer();
}

void ClientImpl::dispatch(std::uint64_t id) {
  Op& op = ops_.at(id);
  if (Clock::now() >= op.deadline) {
    give_up(id);
    return;
  }
  if (conn_ && conn_->ready()) {
    send_attempt(id);
    return;
  }
  op.state = OpState::Waiting;
  waiting_.push_back(id);
  arm(id, op.deadline, &ClientImpl::give_up);
  ensure_connection();
}

void ClientImpl::send_attempt(std::uint64_t id) {
  Op& op = ops_.at(id);
  const auto now = Clock::now();
  const auto attempt_end = std::min(op.deadline, now + o_.request_timeout);
  wire::ClientRequest req;
  req.request_id = next_request_id_++;
  req.timeout_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(
      1, std::chrono::duration_cast<std::chrono::milliseconds>(attempt_end - now).count()));
  req.body = op.body;
  if (Status s = conn_->send(req); !s) {
    if (s.code() == ErrorCode::InvalidArgument) {
      finish(id, s);
    } else {
      retry_later(id, s);
    }
    return;
  }
  ++op.attempts;
  op.request_id = req.request_id;
  op.state = OpState::InFlight;
  if (inflight_.empty()) progress_at_ = Clock::now();
  inflight_[req.request_id] = id;
  arm(id, attempt_end, &ClientImpl::attempt_timed_out);
}

void ClientImpl::attempt_timed_out(std::uint64_t id) {
  Op& op = ops_.at(id);
  op.ambiguous = true;
  inflight_.erase(op.request_id);
  op.request_id = 0;
  op.last_error = Status{ErrorCode::Timeout,
                         fmt::format("no reply from {} within {} ms",
                                     conn_ ? conn_->address() : std::string("the node"),
                                     o_.request_timeout.count())};
  if (Clock::now() >= op.deadline) {
    give_up(id);
    return;
  }
  // A node that does not answer in time is suspect: find the leader again.
  forget_leader();
  drop_connection();
  dispatch(id);
}

void ClientImpl::retry_later(std::uint64_t id, Status why) {
  Op& op = ops_.at(id);
  op.last_error = std::move(why);
  const auto delay = backoff_delay(std::max<std::uint32_t>(op.attempts, 1), o_.backoff_min,
                                   o_.backoff_max, rng_);
  if (Clock::now() + delay >= op.deadline) {
    give_up(id);
    return;
  }
  op.state = OpState::Backoff;
  arm(id, Clock::now() + delay, &ClientImpl::dispatch);
}

void ClientImpl::give_up(std::uint64_t id) {
  const Op& op = ops_.at(id);
  if (op.state == OpState::Queued) {
    finish(id, Status{ErrorCode::Timeout,
                      fmt::format("not sent within {} ms: {} earlier proposals still outstanding",
                                  o_.total_timeout.count(), kMaxProposalsInFlight)});
    return;
  }
  const std::string last = op.last_error.is_ok() ? "no leader found" : op.last_error.message();
  const bool reached = op.attempts > 0 && op.last_error.code() != ErrorCode::Unavailable;
  Status s = reached
                 ? Status{ErrorCode::Timeout,
                          fmt::format("no outcome within {} ms (last: {}); a proposal may still commit",
                                      o_.total_timeout.count(), last)}
                 : Status{ErrorCode::Unavailable,
                          fmt::format("no leader reachable within {} ms (last: {})",
                                      o_.total_timeout.count(), last)};
  finish(id, std::move(s));
}

void ClientImpl::finish(std::uint64_t id, Reply r) {
  auto it = ops_.find(id);
  if (it == ops_.end()) return;
  Op op = std::move(it->second);
  ops_.erase(it);
  if (op.request_id != 0) inflight_.erase(op.request_id);
  disarm(op);
  if (op.admitted) {
    --proposals_in_flight_;
    if (!stopping_) admit_proposals();
  }
  if (op.done) op.done(std::move(r));
}

}  // namespace rlr::client
