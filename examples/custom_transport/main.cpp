// A toy transport through the public seam (rlr/transport.h), as a user with their own
// network stack would write one: a "bus" of per-node mailboxes, each drained by a thread
// of its own, bounded, dropping when full. Then the conformance suite checks it, and a
// 3-node cluster runs on it: elect, commit, apply on every node.
//
// Only public headers (<rlr/...>) are used; this directory is built as a separate
// project against librlr's build tree.
#include <rlr/node.h>
#include <rlr/transport.h>
#include <rlr/transport_conformance.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;

/// One node's mailbox: frames queue here and a thread hands them to the node.
class Mailbox {
 public:
  static constexpr std::size_t kCapacity = 4096;  // beyond: dropped (Raft resends)

  explicit Mailbox(rlr::FrameHandler& handler) : handler_(handler), thread_([this] { run(); }) {}
  ~Mailbox() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
    }
    cv_.notify_all();
    thread_.join();  // after this, nothing reaches the handler
  }
  Mailbox(const Mailbox&) = delete;
  Mailbox& operator=(const Mailbox&) = delete;

  void post(rlr::NodeId from, rlr::Bytes frame) {
    {
      std::lock_guard lock(mu_);
      if (closed_ || queue_.size() >= kCapacity) return;
      queue_.emplace_back(from, std::move(frame));
    }
    cv_.notify_one();
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return closed_ || !queue_.empty(); });
      if (closed_) return;
      auto [from, frame] = std::move(queue_.front());
      queue_.pop_front();
      lock.unlock();
      handler_.on_frame(from, std::move(frame));
      lock.lock();
    }
  }

  rlr::FrameHandler& handler_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::pair<rlr::NodeId, rlr::Bytes>> queue_;
  bool closed_ = false;
  std::thread thread_;
};

/// The bus: mailboxes by node id.
class Bus {
 public:
  void open(rlr::NodeId id, std::shared_ptr<Mailbox> box) {
    std::lock_guard lock(mu_);
    boxes_[id] = std::move(box);
  }
  /// The mailbox leaves the bus; it is destroyed (its thread joined) once no sender holds it.
  std::shared_ptr<Mailbox> close(rlr::NodeId id) {
    std::lock_guard lock(mu_);
    auto it = boxes_.find(id);
    if (it == boxes_.end()) return nullptr;
    auto box = std::move(it->second);
    boxes_.erase(it);
    return box;
  }
  void post(rlr::NodeId from, rlr::NodeId to, rlr::Bytes frame) {
    std::shared_ptr<Mailbox> box;
    {
      std::lock_guard lock(mu_);
      auto it = boxes_.find(to);
      if (it == boxes_.end()) return;  // nobody there: dropped
      box = it->second;
    }
    box->post(from, std::move(frame));
  }

 private:
  std::mutex mu_;
  std::map<rlr::NodeId, std::shared_ptr<Mailbox>> boxes_;
};

class BusTransport final : public rlr::Transport {
 public:
  BusTransport(std::shared_ptr<Bus> bus, rlr::NodeId id) : bus_(std::move(bus)), id_(id) {}
  ~BusTransport() override { BusTransport::stop(); }
  BusTransport(const BusTransport&) = delete;
  BusTransport& operator=(const BusTransport&) = delete;

  rlr::Status start(rlr::NodeId self, rlr::FrameHandler& handler) override {
    if (self != id_) return rlr::Status{rlr::ErrorCode::InvalidArgument, "made for another node"};
    bus_->open(id_, std::make_shared<Mailbox>(handler));
    return rlr::Status::ok();
  }
  void send(rlr::NodeId to, rlr::Bytes frame) override { bus_->post(id_, to, std::move(frame)); }
  void set_peer(rlr::NodeId, const rlr::Address&) override {}  // the bus routes by id
  void stop() override {
    std::shared_ptr<Mailbox> box = bus_->close(id_);
    // A sender may still hold the mailbox for a moment; wait for it to let go, so that
    // the mailbox's thread has ended (and delivers nothing more) when stop() returns.
    while (box && box.use_count() > 1) std::this_thread::yield();
  }

 private:
  std::shared_ptr<Bus> bus_;
  rlr::NodeId id_;
};

class BusFactory final : public rlr::testing::TransportFactory {
 public:
  std::shared_ptr<rlr::Transport> make(rlr::NodeId id) override {
    return std::make_shared<BusTransport>(bus_, id);
  }

 private:
  std::shared_ptr<Bus> bus_ = std::make_shared<Bus>();
};

/// Counts what it applies.
class Counter final : public rlr::RoleAwareStateMachine {
 public:
  void apply(const rlr::Entry& e, const rlr::ApplyContext&, rlr::Egress&) override { applied_ = e.index.value(); }
  rlr::LogIndex last_applied() const override { return rlr::LogIndex{applied_.load()}; }

 private:
  std::atomic<std::uint64_t> applied_{0};
};

int run_cluster() {
  BusFactory factory;
  std::map<rlr::NodeId, std::unique_ptr<rlr::Node>> nodes;
  std::map<rlr::NodeId, std::shared_ptr<Counter>> counters;
  std::vector<std::shared_ptr<rlr::ApplyRunner>> runners;  // a runner stops when released
  for (std::uint64_t i = 1; i <= 3; ++i) {
    const rlr::NodeId id{i};
    rlr::NodeBuilder b;
    b.cluster_id("toy").id(id).storage(rlr::StorageKind::Memory).transport(factory.make(id));
    for (std::uint64_t j = 1; j <= 3; ++j) b.member(rlr::NodeId{j}, factory.address(rlr::NodeId{j}));
    auto node = b.build();
    if (!node) {
      std::fprintf(stderr, "node %llu: %s\n", static_cast<unsigned long long>(i), node.status().to_string().c_str());
      return 1;
    }
    counters[id] = std::make_shared<Counter>();
    auto runner = node.value()->attach(counters[id], rlr::ApplyOptions{});
    if (!runner) return 1;
    runners.push_back(std::move(runner).value());
    nodes[id] = std::move(node).value();
  }
  rlr::LogIndex last;
  for (int i = 0; i < 100;) {
    for (auto& [id, n] : nodes) {
      if (n->role() != rlr::Role::Leader) continue;
      auto r = n->propose_sync(rlr::Bytes::copy_of("command " + std::to_string(i)), 2s);
      if (r) {
        last = r.value().index;
        ++i;
      }
    }
    if (i == 0) std::this_thread::sleep_for(10ms);  // no leader yet
  }
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  for (auto& [id, c] : counters) {
    while (c->last_applied() < last) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "node %llu applied only %llu of %llu\n", static_cast<unsigned long long>(id.value()),
                     static_cast<unsigned long long>(c->last_applied().value()),
                     static_cast<unsigned long long>(last.value()));
        return 1;
      }
      std::this_thread::sleep_for(1ms);
    }
  }
  std::printf("3 nodes on the toy bus transport: 100 commands committed, applied through index %llu on every node\n",
              static_cast<unsigned long long>(last.value()));
  return 0;
}

}  // namespace

int main() {
  BusFactory factory;
  const rlr::Status s = rlr::testing::check_transport(factory);
  if (!s) {
    std::fprintf(stderr, "the toy transport breaks the contract: %s\n", s.to_string().c_str());
    return 1;
  }
  std::printf("the toy transport passes the conformance suite\n");
  return run_cluster();
}
