// In-process transport for tests: nodes in one process exchange core::Messages and digest
// reports through a LocalNetwork that can drop, duplicate, delay and partition traffic
// (both alike). At most kMaxDelayed packets wait for their delay; beyond, a packet is
// dropped (counted in dropped()), as a full socket buffer would lose it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <variant>

#include "transport/transport.h"

namespace rlr::transport {

class LocalNetwork {
 public:
  /// `seed` drives the random faults (which packets drop, duplicate, how long each waits).
  explicit LocalNetwork(std::uint64_t seed = 12345);
  ~LocalNetwork();
  static constexpr std::size_t kMaxDelayed = 1U << 20;
  LocalNetwork(const LocalNetwork&) = delete;
  LocalNetwork& operator=(const LocalNetwork&) = delete;

  /// Every message is dropped with this probability (0..1).
  void set_drop_rate(double p);
  /// Every peer message is delivered twice with this probability (0..1).
  void set_duplicate_rate(double p);
  /// Every message is delayed by a uniform random time in [min, max].
  void set_delay(std::chrono::microseconds min, std::chrono::microseconds max);
  /// Blocks traffic from `from` to `to` (one way).
  void block(NodeId from, NodeId to);
  /// Blocks both directions between `a` and every other node.
  void isolate(NodeId a);
  /// Removes every block.
  void heal();
  [[nodiscard]] std::uint64_t dropped() const;

 private:
  friend class LocalTransport;
  /// What travels between inboxes.
  using Packet = std::variant<core::Message, wire::DigestReport>;
  void attach(NodeId id, Inbox* inbox);
  void detach(NodeId id);
  void route(std::vector<core::Message>& msgs);
  void route(wire::DigestReport report);
  /// Drops, delivers or delays `p`; true when it was delayed (run() must wake).
  /// REQUIRES: mu_ held.
  bool route_locked(Packet&& p, std::chrono::steady_clock::time_point now);
  /// Delivers `p` at once or queues it for its delay; true when queued. REQUIRES: mu_ held.
  bool route_one_locked(Packet&& p, std::chrono::steady_clock::time_point now);
  /// Hands `p` to its destination's inbox, or counts it dropped. REQUIRES: mu_ held.
  void deliver_locked(Packet&& p);
  void run();

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::map<NodeId, Inbox*> inboxes_;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::set<NodeId> isolated_;
  double drop_rate_ = 0;
  double duplicate_rate_ = 0;
  std::chrono::microseconds delay_min_{0};
  std::chrono::microseconds delay_max_{0};
  std::mt19937_64 rng_;
  std::uint64_t dropped_ = 0;
  std::uint64_t seq_ = 0;
  /// Packets in flight, ordered by delivery time then by send order.
  std::map<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>, Packet> delayed_;
  bool stop_ = false;
  std::thread thread_;
};

class LocalTransport final : public Transport {
 public:
  LocalTransport(std::shared_ptr<LocalNetwork> net, NodeId self)
      : net_(std::move(net)), self_(self) {}
  ~LocalTransport() override { LocalTransport::stop(); }
  [[nodiscard]] Status start(Inbox& inbox) override;
  void send(std::vector<core::Message>& msgs) override;
  void send_digests(wire::DigestReport report) override;
  void set_peer(NodeId /*id*/, const std::string& /*address*/) override {}
  void stop() override;

 private:
  std::shared_ptr<LocalNetwork> net_;
  NodeId self_;
  bool started_ = false;
};

}  // namespace rlr::transport
