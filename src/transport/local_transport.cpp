#include "transport/local_transport.h"

#include <cassert>

#include "util/thread_name.h"

namespace rlr::transport {

LocalNetwork::LocalNetwork(std::uint64_t seed)
    : rng_(seed),
      thread_([this] {
        util::set_thread_name("rlr-local-net");
        run();
      }) {}

LocalNetwork::~LocalNetwork() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void LocalNetwork::set_drop_rate(double p) {
  std::lock_guard lock(mu_);
  drop_rate_ = p;
}

void LocalNetwork::set_duplicate_rate(double p) {
  std::lock_guard lock(mu_);
  duplicate_rate_ = p;
}

void LocalNetwork::set_delay(std::chrono::microseconds min, std::chrono::microseconds max) {
  std::lock_guard lock(mu_);
  delay_min_ = min;
  delay_max_ = std::max(min, max);
}

void LocalNetwork::block(NodeId from, NodeId to) {
  std::lock_guard lock(mu_);
  blocked_.emplace(from, to);
}

void LocalNetwork::isolate(NodeId a) {
  std::lock_guard lock(mu_);
  isolated_.insert(a);
}

void LocalNetwork::heal() {
  std::lock_guard lock(mu_);
  blocked_.clear();
  isolated_.clear();
}

std::uint64_t LocalNetwork::dropped() const {
  std::lock_guard lock(mu_);
  return dropped_;
}

void LocalNetwork::attach(NodeId id, Inbox* inbox) {
  std::lock_guard lock(mu_);
  inboxes_[id] = inbox;
}

void LocalNetwork::detach(NodeId id) {
  std::lock_guard lock(mu_);
  inboxes_.erase(id);
}

void LocalNetwork::route(std::vector<core::Message>& msgs) {
  std::unique_lock lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  bool queued = false;
  for (auto& m : msgs) queued = route_locked(Packet{std::move(m)}, now) || queued;
  msgs.clear();
  lock.unlock();
  if (queued) cv_.notify_all();
}

void LocalNetwork::route(wire::DigestReport report) {
  std::unique_lock lock(mu_);
  const bool queued = route_locked(Packet{std::move(report)}, std::chrono::steady_clock::now());
  lock.unlock();
  if (queued) cv_.notify_all();
}

bool LocalNetwork::route_locked(Packet&& p, std::chrono::steady_clock::time_point now) {
  const auto [from, to] = std::visit([](const auto& x) { return std::pair{x.from, x.to}; }, p);
  if (blocked_.count({from, to}) != 0 || isolated_.count(from) != 0 || isolated_.count(to) != 0) {
    ++dropped_;
    return false;
  }
  if (drop_rate_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < drop_rate_) {
    ++dropped_;
    return false;
  }
  bool queued = false;
  if (const auto* m = std::get_if<core::Message>(&p);
      m != nullptr && duplicate_rate_ > 0 &&
      std::uniform_real_distribution<double>(0, 1)(rng_) < duplicate_rate_) {
    queued = route_one_locked(Packet{*m}, now);
  }
  return route_one_locked(std::move(p), now) || queued;
}

bool LocalNetwork::route_one_locked(Packet&& p, std::chrono::steady_clock::time_point now) {
  if (delay_max_.count() == 0) {
    // Delivered inline: the inbox only queues, so this never blocks for long.
    deliver_locked(std::move(p));
    return false;
  }
  if (delayed_.size() >= kMaxDelayed) {
    ++dropped_;
    return false;
  }
  const auto d = std::uniform_int_distribution<std::int64_t>(delay_min_.count(),
                                                             delay_max_.count())(rng_);
  delayed_.emplace(std::make_pair(now + std::chrono::microseconds(d), seq_++), std::move(p));
  return true;
}

void LocalNetwork::deliver_locked(Packet&& p) {
  const NodeId to = std::visit([](const auto& x) { return x.to; }, p);
  auto it = inboxes_.find(to);
  if (it == inboxes_.end()) {
    ++dropped_;
    return;
  }
  Inbox& inbox = *it->second;
  if (auto* m = std::get_if<core::Message>(&p)) {
    inbox.deliver(std::move(*m));
  } else {
    inbox.deliver_digests(std::get<wire::DigestReport>(std::move(p)));
  }
}

void LocalNetwork::run() {
  std::unique_lock lock(mu_);
  while (!stop_) {
    if (delayed_.empty()) {
      cv_.wait(lock);
      continue;
    }
    const auto at = delayed_.begin()->first.first;
    if (std::chrono::steady_clock::now() < at) {
      cv_.wait_until(lock, at);
      continue;
    }
    deliver_locked(std::move(delayed_.extract(delayed_.begin()).mapped()));
  }
}

Status LocalTransport::start(Inbox& inbox) {
  net_->attach(self_, &inbox);
  started_ = true;
  return Status::ok();
}

void LocalTransport::send(std::vector<core::Message>& msgs) { net_->route(msgs); }

void LocalTransport::send_digests(wire::DigestReport report) {
  assert(!report.digests.empty() && report.digests.size() <= wire::kDigestReportSendCheckpointsMax);
  net_->route(std::move(report));
}

void LocalTransport::stop() {
  if (!started_) return;
  started_ = false;
  net_->detach(self_);
}

}  // namespace rlr::transport

