// The simulated network between cores: per-message latency drawn from a distribution,
// loss, duplication, and partitions made of blocked one-way links. Like the production
// transport (one TCP connection per peer), a link normally delivers in order; a message
// that takes the slow path (a retransmission, a reconnect) is overtaken by later ones,
// which is how messages get reordered. A partition cuts messages both when they are sent and when they
// would arrive, like a link that fails while packets are in flight.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "core/message.h"
#include "rlr/types.h"
#include "sim_rng.h"

namespace rlr::sim {

struct NetworkProfile {
  std::uint64_t latency_min_ticks = 1;
  std::uint64_t latency_max_ticks = 2;
  double slow_chance = 0.02;          ///< a message leaves the link's order...
  std::uint64_t slow_max_ticks = 12;  ///< ...and arrives up to this late
  double loss_chance = 0.01;
  double duplicate_chance = 0.01;
};

struct NetworkStats {
  std::uint64_t sent = 0;
  std::uint64_t delivered = 0;
  std::uint64_t lost = 0;        ///< dropped at random
  std::uint64_t cut = 0;         ///< dropped by a partition
  std::uint64_t duplicated = 0;
};

class SimNetwork {
 public:
  explicit SimNetwork(SimRng rng) : rng_(rng) {}

  void set_profile(const NetworkProfile& profile) { profile_ = profile; }
  [[nodiscard]] const NetworkProfile& profile() const noexcept { return profile_; }

  /// Puts `m` on the wire at `now_tick` (or loses it).
  void send(core::Message m, std::uint64_t now_tick);

  /// The next message due at or before `now_tick`, earliest first and in sending order
  /// among equals; nullopt when none is due. Messages cut by a partition are skipped.
  std::optional<core::Message> pop_due(std::uint64_t now_tick);

  /// Blocks the one-way link from -> to. Blocks nest: each block needs its own unblock.
  void block(NodeId from, NodeId to);
  void unblock(NodeId from, NodeId to);
  /// Blocks both directions between every node of `a` and every node of `b`.
  void block_between(const std::vector<NodeId>& a, const std::vector<NodeId>& b);
  void unblock_between(const std::vector<NodeId>& a, const std::vector<NodeId>& b);
  /// Removes every partition.
  void heal() { blocked_.clear(); }
  [[nodiscard]] bool is_blocked(NodeId from, NodeId to) const;
  [[nodiscard]] bool has_partitions() const noexcept { return !blocked_.empty(); }

  [[nodiscard]] std::size_t in_flight() const noexcept { return queue_.size(); }
  [[nodiscard]] const NetworkStats& stats() const noexcept { return stats_; }

 private:
  struct InFlight {
    std::uint64_t deliver_tick;
    std::uint64_t seq;  ///< tie-breaker: FIFO among messages due at the same tick
    core::Message message;
  };
  struct LaterFirst {
    bool operator()(const InFlight& a, const InFlight& b) const noexcept {
      return a.deliver_tick != b.deliver_tick ? a.deliver_tick > b.deliver_tick : a.seq > b.seq;
    }
  };
  void enqueue(core::Message m, std::uint64_t now_tick);

  SimRng rng_;
  NetworkProfile profile_;
  NetworkStats stats_;
  std::vector<InFlight> queue_;  ///< a binary heap ordered by LaterFirst
  std::uint64_t next_seq_ = 0;
  /// Per link, the delivery tick of the last in-order message (keeps links FIFO).
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint64_t> link_tail_tick_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, int> blocked_;  ///< link -> nesting
};

}  // namespace rlr::sim
