#include "sim_network.h"

#include <algorithm>

namespace rlr::sim {

void SimNetwork::enqueue(core::Message m, std::uint64_t now_tick) {
  std::uint64_t deliver_tick = 0;
  if (rng_.chance(profile_.slow_chance)) {
    // Out of order: later messages on the link may overtake this one.
    deliver_tick = now_tick + rng_.uniform(profile_.latency_min_ticks,
                                           std::max(profile_.latency_min_ticks, profile_.slow_max_ticks));
  } else {
    std::uint64_t& tail = link_tail_tick_[{m.from.value(), m.to.value()}];
    deliver_tick = std::max(tail, now_tick + rng_.uniform(profile_.latency_min_ticks,
                                                          std::max(profile_.latency_min_ticks,
                                                                   profile_.latency_max_ticks)));
    tail = deliver_tick;
  }
  queue_.push_back(InFlight{deliver_tick, next_seq_++, std::move(m)});
  std::push_heap(queue_.begin(), queue_.end(), LaterFirst{});
}

void SimNetwork::send(core::Message m, std::uint64_t now_tick) {
  ++stats_.sent;
  if (is_blocked(m.from, m.to)) {
    ++stats_.cut;
    return;
  }
  if (rng_.chance(profile_.loss_chance)) {
    ++stats_.lost;
    return;
  }
  if (rng_.chance(profile_.duplicate_chance)) {
    ++stats_.duplicated;
    enqueue(m, now_tick);  // the copy takes its own path, possibly overtaking the original
  }
  enqueue(std::move(m), now_tick);
}

std::optional<core::Message> SimNetwork::pop_due(std::uint64_t now_tick) {
  while (!queue_.empty() && queue_.front().deliver_tick <= now_tick) {
    std::pop_heap(queue_.begin(), queue_.end(), LaterFirst{});
    core::Message m = std::move(queue_.back().message);
    queue_.pop_back();
    if (is_blocked(m.from, m.to)) {
      ++stats_.cut;
      continue;
    }
    ++stats_.delivered;
    return m;
  }
  return std::nullopt;
}

void SimNetwork::block(NodeId from, NodeId to) { ++blocked_[{from.value(), to.value()}]; }

void SimNetwork::unblock(NodeId from, NodeId to) {
  auto it = blocked_.find({from.value(), to.value()});
  if (it == blocked_.end()) return;
  if (--it->second <= 0) blocked_.erase(it);
}

void SimNetwork::block_between(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  for (NodeId x : a) {
    for (NodeId y : b) {
      block(x, y);
      block(y, x);
    }
  }
}

void SimNetwork::unblock_between(const std::vector<NodeId>& a, const std::vector<NodeId>& b) {
  for (NodeId x : a) {
    for (NodeId y : b) {
      unblock(x, y);
      unblock(y, x);
    }
  }
}

bool SimNetwork::is_blocked(NodeId from, NodeId to) const {
  return !blocked_.empty() && blocked_.count({from.value(), to.value()}) != 0;
}

}  // namespace rlr::sim
