// An in-process cluster of NodeImpl over LocalTransport, for runtime tests.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "node/node_impl.h"
#include "node_test_util.h"
#include "storage/memory_storage.h"
#include "transport/local_transport.h"

namespace rlr::testing {

using namespace std::chrono_literals;

class LocalCluster {
 public:
  explicit LocalCluster(int voters, std::function<void(NodeOptions&)> tweak = {})
      : tweak_(std::move(tweak)), net_(std::make_shared<transport::LocalNetwork>()) {
    for (int i = 1; i <= voters; ++i) founders_.push_back(NodeId{static_cast<std::uint64_t>(i)});
    for (NodeId id : founders_) start(id, true);
  }
  ~LocalCluster() {
    for (auto& [id, n] : nodes_) n->stop();
  }

  NodeOptions options_for(NodeId id, bool founder) const {
    NodeOptions o;
    o.cluster_id = "test";
    o.id = id;
    o.storage = StorageKind::Memory;
    o.tick = std::chrono::milliseconds{5};
    o.election_ticks = 10;
    o.heartbeat_ticks = 2;
    o.proposal_timeout = std::chrono::milliseconds{3000};
    o.compact_after_entries = 0;
    o.check_invariants = true;
    if (tweak_) tweak_(o);
    if (founder) {
      for (NodeId f : founders_) o.initial_members.push_back(MemberAddress{f, {"127.0.0.1", static_cast<std::uint16_t>(9000 + f.value())}});
    }
    return o;
  }

  /// Starts (or restarts with its old storage) node `id`.
  node::NodeImpl& start(NodeId id, bool founder) {
    if (!storages_.count(id)) {
      core::Configuration initial;
      if (founder) initial.voters = founders_;
      storages_[id] = std::make_shared<storage::MemoryStorage>(storage::Identity{"test", id}, initial);
    }
    auto& refuse = refuse_writes_[id];
    if (!refuse) refuse = std::make_shared<std::atomic<bool>>(false);
    auto& delay = write_delays_[id];
    if (!delay) delay = std::make_shared<std::atomic<int>>(0);
    auto st = std::make_unique<SharedStorage>(storages_[id], refuse, delay);
    auto n = node::NodeImpl::start(options_for(id, founder), std::move(st),
                                   std::make_unique<transport::LocalTransport>(net_, id));
    REQUIRE(n.is_ok());
    std::lock_guard lock(mu_);
    nodes_[id] = std::move(n).value();
    return *nodes_[id];
  }

  void stop(NodeId id) {
    std::unique_ptr<node::NodeImpl> gone;
    {
      std::lock_guard lock(mu_);
      gone = std::move(nodes_.at(id));
      nodes_.erase(id);
    }
    gone->stop();
  }

  /// Proposes on whichever node currently claims leadership; false when none does.
  /// Safe to call from another thread while nodes are stopped and started.
  bool propose_on_leader(Bytes cmd, ClientSession session, ProposeCallback done) {
    std::lock_guard lock(mu_);
    for (auto& [id, n] : nodes_) {
      if (n->role() != Role::Leader) continue;
      n->propose(std::move(cmd), session, std::move(done));
      return true;
    }
    return false;
  }

  /// From now on (true) node `id`'s storage refuses every write with an IoError that
  /// says the disk is full, as a full or failing disk does.
  void refuse_writes(NodeId id, bool refuse) { refuse_writes_.at(id)->store(refuse); }
  /// From now on every write of node `id`'s storage takes `ms` longer (a slow disk).
  void slow_writes(NodeId id, int ms) { write_delays_.at(id)->store(ms); }

  node::NodeImpl& node(NodeId id) { return *nodes_.at(id); }
  bool running(NodeId id) const { return nodes_.count(id) != 0; }
  transport::LocalNetwork& net() { return *net_; }
  const std::map<NodeId, std::unique_ptr<node::NodeImpl>>& nodes() const { return nodes_; }

  /// Waits until exactly one running node claims leadership and the others agree.
  NodeId wait_leader(std::chrono::milliseconds timeout = 10s) {
    return wait_single_leader(nodes_, timeout);
  }

 private:
  /// Lets a restarted node reopen the same in-memory store.
  class SharedStorage final : public storage::Storage {
   public:
    SharedStorage(std::shared_ptr<storage::MemoryStorage> s, std::shared_ptr<std::atomic<bool>> refuse,
                  std::shared_ptr<std::atomic<int>> delay_ms)
        : s_(std::move(s)), refuse_(std::move(refuse)), delay_ms_(std::move(delay_ms)) {}
    LogIndex first_index() const override { return s_->first_index(); }
    LogIndex last_index() const override { return s_->last_index(); }
    Result<std::vector<Entry>> read(LogIndex f, LogIndex t, std::size_t n, std::size_t b) const override {
      return s_->read(f, t, n, b);
    }
    Result<storage::HardState> hard_state() const override { return s_->hard_state(); }
    Result<LogIndex> applied() const override { return s_->applied(); }
    storage::Identity identity() const override { return s_->identity(); }
    Result<storage::SnapshotMeta> snapshot() const override { return s_->snapshot(); }
    Status persist(const storage::PersistRequest& r) override {
      if (refuse_->load()) return Status{ErrorCode::IoError, "writing the log: disk full (injected)"};
      if (const int ms = delay_ms_->load(); ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(ms));
      return s_->persist(r);
    }
    Status compact(const storage::SnapshotMeta& m) override {
      if (refuse_->load()) return Status{ErrorCode::IoError, "compacting the log: disk full (injected)"};
      return s_->compact(m);
    }

   private:
    std::shared_ptr<storage::MemoryStorage> s_;
    std::shared_ptr<std::atomic<bool>> refuse_;
    std::shared_ptr<std::atomic<int>> delay_ms_;
  };

  std::mutex mu_;  // guards nodes_ against a concurrent propose_on_leader()
  std::function<void(NodeOptions&)> tweak_;
  std::shared_ptr<transport::LocalNetwork> net_;
  std::vector<NodeId> founders_;
  std::map<NodeId, std::shared_ptr<storage::MemoryStorage>> storages_;
  std::map<NodeId, std::shared_ptr<std::atomic<bool>>> refuse_writes_;
  std::map<NodeId, std::shared_ptr<std::atomic<int>>> write_delays_;
  std::map<NodeId, std::unique_ptr<node::NodeImpl>> nodes_;
};

}  // namespace rlr::testing
