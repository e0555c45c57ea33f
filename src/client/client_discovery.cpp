// rlr::Client: leader discovery, suspicion of nodes that went silent, and a leader that
// answers Pings but not requests (client_impl.h).
#include <algorithm>

#include <fmt/format.h>

#include "client/backoff.h"
#include "client/client_impl.h"

namespace rlr::client {

void ClientImpl::start_discovery() {
  if (discovering_ || stopping_) return;
  discovering_ = true;
  discovery_round_ = 0;
  probe_round();
}

std::vector<std::string> ClientImpl::candidates() const {
  std::vector<std::string> c = bootstrap_;
  for (const auto& a : learned_) {
    if (std::find(c.begin(), c.end(), a) == c.end()) c.push_back(a);
  }
  return c;
}

void ClientImpl::probe_round() {
  const std::uint64_t epoch = ++probe_epoch_;
  const auto cands = candidates();
  probes_pending_ = cands.size();
  probe_answered_ = false;
  probe_round_capped_ = false;
  probe_refusal_ = Status::ok();
  for (const auto& addr : cands) {
    Connection::Handlers h;
    h.on_ready = [this](Connection& c) {
      wire::ClientRequest req;
      req.request_id = 1;
      req.timeout_ms = static_cast<std::uint32_t>(o_.request_timeout.count());
      req.body = wire::GetLeaderRequest{};
      (void)c.send(req);
    };
    h.on_reply = [this, epoch](Connection& c, wire::ClientReply r) {
      c.close();
      probe_result(epoch, c, std::move(r));
    };
    h.on_closed = [this, epoch](Connection& c, const Status& s) {
      if (c.silent()) suspect(c);  // accepted, or not, but never answered
      probe_result(epoch, c, s);
    };
    auto conn = Connection::create(io_.io(), settings_, addr, std::move(h));
    probes_.push_back(conn);
    conn->start();
  }
  round_timer_.expires_after(o_.request_timeout);
  round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
    if (ec || epoch != probe_epoch_) return;
    round_finished();
  });
}

void ClientImpl::probe_result(std::uint64_t epoch, Connection& c, Reply r) {
  if (epoch != probe_epoch_) return;
  if (r) {
    probe_answered_ = true;
    suspect_addresses_.clear(c.address());  // it answered: reachable there again
    const std::string& named = r.value().leader_address;
    // A stall probe (watch_stall) asks the others: the stalled node's own word on who
    // leads tells nothing.
    const bool stalled_self = conn_ && conn_->ready() && c.node_id() == conn_->node_id();
    if (r.value().leader != kNoNode && !named.empty() && !suspected(r.value().leader, named) && !stalled_self) {
      leader_found(r.value().leader, named);
      return;
    }
    std::string what;
    if (stalled_self) {
      what = "the leader that stopped answering requests";
    } else if (r.value().leader != kNoNode && !named.empty()) {
      what = fmt::format("names {} as the leader, which went silent", named);
    } else {
      what = r.value().status.is_ok() ? std::string("no leader known") : r.value().status.message();
    }
    last_probe_error_ = Status{ErrorCode::Unavailable, fmt::format("{}: {}", c.address(), what)};
  } else {
    last_probe_error_ = r.status();
    if (is_refusal(r.status())) probe_refusal_ = r.status();
  }
  if (probes_pending_ > 0) --probes_pending_;
  if (probes_pending_ == 0) {
    round_finished();
    return;
  }
  if (!probe_round_capped_) {
    // Some node answered without naming a leader (an election may be under way). A
    // node that accepted the probe but does not answer (still starting, overloaded)
    // must not hold the next round back for a whole request_timeout: this round ends
    // one backoff delay from now at the latest.
    probe_round_capped_ = true;
    round_timer_.expires_after(discovery_delay(discovery_round_ + 1));
    round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
      if (ec || epoch != probe_epoch_) return;
      round_finished();
    });
  }
}

void ClientImpl::close_probes() {
  ++probe_epoch_;
  round_timer_.cancel();
  for (auto& p : probes_) p->close();
  probes_.clear();
  probes_pending_ = 0;
}

void ClientImpl::round_finished() {
  close_probes();
  if (!probe_refusal_.is_ok()) {
    discovering_ = false;
    notify_connect_waiters(probe_refusal_);
    fail_waiting(probe_refusal_);
    return;
  }
  if (probe_answered_) notify_connect_waiters(Status::ok());
  if ((waiting_.empty() && connect_waiters_.empty()) || stopping_) {
    discovering_ = false;
    return;
  }
  for (std::uint64_t id : waiting_) {
    auto it = ops_.find(id);
    if (it != ops_.end() && it->second.state == OpState::Waiting) it->second.last_error = last_probe_error_;
  }
  const auto delay = discovery_delay(++discovery_round_);
  const std::uint64_t epoch = probe_epoch_;
  round_timer_.expires_after(delay);
  round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
    if (ec || epoch != probe_epoch_) return;
    probe_round();
  });
}

std::chrono::milliseconds ClientImpl::discovery_delay(std::uint32_t round) {
  auto d = backoff_delay(round, o_.backoff_min, o_.backoff_max, rng_);
  if (any_suspect()) d = std::min(d, o_.keepalive_interval);
  return d;
}

void ClientImpl::suspect(const Connection& c) {
  const auto silence = settings_.silence_timeout;
  if (silence.count() == 0) return;
  const auto until = Clock::now() + 2 * silence;
  suspect_addresses_.add(c.address(), until);
  if (c.node_id() != kNoNode) suspect_nodes_.add(c.node_id(), until);
}

bool ClientImpl::suspected(NodeId id, const std::string& address) {
  const auto now = Clock::now();
  return (id != kNoNode && suspect_nodes_.has(id, now)) || suspect_addresses_.has(address, now);
}

bool ClientImpl::any_suspect() {
  const auto now = Clock::now();
  const bool nodes = suspect_nodes_.any(now);
  return suspect_addresses_.any(now) || nodes;
}

void ClientImpl::leader_found(NodeId id, const std::string& address) {
  close_probes();
  discovering_ = false;
  if (conn_ && conn_->ready() && conn_->node_id() == id) {
    // A stall probe, and the others still follow it: they may not have noticed yet (a
    // cut-off leader is replaced, or steps down, within about two silence timeouts),
    // or the request is merely long. Past that window, ask again after a pause that
    // doubles each time up to a silence timeout, so a long request costs about a
    // round per silence timeout.
    const auto now = Clock::now();
    if (now - progress_at_ >= 2 * settings_.silence_timeout) {
      stall_pause_ = std::min(stall_pause_.count() == 0 ? o_.keepalive_interval : 2 * stall_pause_,
                              settings_.silence_timeout);
      stall_next_at_ = now + stall_pause_;
    }
    return;
  }
  set_leader_address(address);
  notify_connect_waiters(Status::ok());
  // A stall probe found another leader: what waits at the old one goes there.
  if (conn_ && conn_->ready()) drop_connection();
  ensure_connection();
}

void ClientImpl::watch_stall() {
  if (stall_armed_ || settings_.silence_timeout.count() == 0 || stopping_) return;
  stall_armed_ = true;
  stall_timer_.expires_after(o_.keepalive_interval);
  stall_timer_.async_wait([this](boost::system::error_code ec) {
    stall_armed_ = false;
    if (ec || stopping_ || !conn_ || !conn_->ready()) return;
    // A round at a time, one per interval while the stall lasts, paused while other
    // nodes vouch for the leader (see leader_found).
    const auto now = Clock::now();
    if (!inflight_.empty() && now - progress_at_ >= settings_.silence_timeout && now >= stall_next_at_ &&
        !discovering_) {
      start_discovery();
    }
    watch_stall();
  });
}

void ClientImpl::notify_connect_waiters(const Status& s) {
  if (connect_waiters_.empty()) return;
  connect_timer_.cancel();
  auto w = std::move(connect_waiters_);
  connect_waiters_.clear();
  for (auto& f : w) f(s);
}

void ClientImpl::set_leader_address(const std::string& a) {
  leader_address_ = a;
  learn(a);
  std::lock_guard lock(known_mu_);
  known_leader_address_ = a;
}

void ClientImpl::learn(const std::string& address) {
  if (std::find(bootstrap_.begin(), bootstrap_.end(), address) != bootstrap_.end()) return;
  if (std::find(learned_.begin(), learned_.end(), address) != learned_.end()) return;
  if (!Address::parse(address)) return;
  if (learned_.size() >= kMaxLearnedAddresses) learned_.erase(learned_.begin());
  learned_.push_back(address);
  std::lock_guard lock(known_mu_);
  known_learned_ = learned_;
}

}  // namespace rlr::client
