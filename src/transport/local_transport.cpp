#include "transport/local_transport.h"

#include "util/thread_name.h"

namespace rlr::transport {

LocalNetwork::LocalNetwork()
    : thread_([this] {
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
  for (auto& m : msgs) {
    if (blocked_.count({m.from, m.to}) != 0 || isolated_.count(m.from) != 0 ||
        isolated_.count(m.to) != 0) {
      ++dropped_;
      continue;
    }
    if (drop_rate_ > 0 && std::uniform_real_distribution<double>(0, 1)(rng_) < drop_rate_) {
      ++dropped_;
      continue;
    }
    if (delay_max_.count() == 0) {
      // Delivered inline: the inbox only queues, so this never blocks for long.
      auto it = inboxes_.find(m.to);
      if (it == inboxes_.end()) {
        ++dropped_;
        continue;
      }
      it->second->deliver(std::move(m));
      continue;
    }
    const auto d = std::uniform_int_distribution<std::int64_t>(delay_min_.count(),
                                                               delay_max_.count())(rng_);
    delayed_.emplace(std::make_pair(now + std::chrono::microseconds(d), seq_++), std::move(m));
    queued = true;
  }
  msgs.clear();
  lock.unlock();
  if (queued) cv_.notify_all();
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
    core::Message m = std::move(delayed_.extract(delayed_.begin()).mapped());
    auto it = inboxes_.find(m.to);
    if (it == inboxes_.end()) {
      ++dropped_;
      continue;
    }
    it->second->deliver(std::move(m));
  }
}

Status LocalTransport::start(Inbox& inbox) {
  net_->attach(self_, &inbox);
  started_ = true;
  return Status::ok();
}

void LocalTransport::send(std::vector<core::Message>& msgs) { net_->route(msgs); }

void LocalTransport::stop() {
  if (!started_) return;
  started_ = false;
  net_->detach(self_);
}

}  // namespace rlr::transport

