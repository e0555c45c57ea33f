// rlr::testing::InProcessNetwork (rlr/transport_conformance.h): a transport written
// against the public seam only, as a user's would be.
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include "rlr/transport_conformance.h"

namespace rlr::testing {

Address TransportFactory::address(NodeId id) {
  return Address{"127.0.0.1", static_cast<std::uint16_t>(20000 + id.value())};
}

class InProcessNetwork::State {
 public:
  State() : thread_([this] { run(); }) {}
  ~State() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  State(const State&) = delete;
  State& operator=(const State&) = delete;

  void attach(NodeId id, const void* endpoint, FrameHandler& handler) {
    std::lock_guard lock(mu_);
    handlers_[id] = Registration{endpoint, &handler};
  }
  /// Returns once no delivery to `endpoint` runs or will run.
  void detach(NodeId id, const void* endpoint) {
    std::unique_lock lock(mu_);
    if (auto it = handlers_.find(id); it != handlers_.end() && it->second.endpoint == endpoint) {
      handlers_.erase(it);
    }
    idle_cv_.wait(lock, [&] { return delivering_ != endpoint; });
  }
  void send(NodeId from, NodeId to, Bytes frame) {
    {
      std::lock_guard lock(mu_);
      if (queue_.size() >= kMaxQueued) {
        ++dropped_;
        return;
      }
      queue_.push_back(Packet{from, to, std::move(frame)});
    }
    cv_.notify_one();
  }
  [[nodiscard]] std::uint64_t dropped() const {
    std::lock_guard lock(mu_);
    return dropped_;
  }

 private:
  struct Packet {
    NodeId from;
    NodeId to;
    Bytes frame;
  };
  struct Registration {
    const void* endpoint = nullptr;
    FrameHandler* handler = nullptr;
  };

  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (stop_) return;
      Packet p = std::move(queue_.front());
      queue_.pop_front();
      const auto it = handlers_.find(p.to);
      if (it == handlers_.end()) {
        ++dropped_;
        continue;
      }
      const Registration r = it->second;
      delivering_ = r.endpoint;
      lock.unlock();
      r.handler->on_frame(p.from, std::move(p.frame));
      lock.lock();
      delivering_ = nullptr;
      idle_cv_.notify_all();
    }
  }

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;
  std::deque<Packet> queue_;                    // guarded by mu_
  std::map<NodeId, Registration> handlers_;     // guarded by mu_
  const void* delivering_ = nullptr;            // guarded by mu_
  std::uint64_t dropped_ = 0;                   // guarded by mu_
  bool stop_ = false;                           // guarded by mu_
  std::thread thread_;
};

namespace {

class Endpoint final : public Transport {
 public:
  Endpoint(std::shared_ptr<InProcessNetwork::State> state, NodeId id) : state_(std::move(state)), id_(id) {}
  ~Endpoint() override { Endpoint::stop(); }
  Endpoint(const Endpoint&) = delete;
  Endpoint& operator=(const Endpoint&) = delete;

  Status start(NodeId self, FrameHandler& handler) override {
    if (self != id_) return Status{ErrorCode::InvalidArgument, "this endpoint was made for another node"};
    state_->attach(id_, this, handler);
    started_ = true;
    return Status::ok();
  }
  void send(NodeId to, Bytes frame) override { state_->send(id_, to, std::move(frame)); }
  void set_peer(NodeId /*id*/, const Address& /*address*/) override {}  // routes by id
  void stop() override {
    std::lock_guard lock(stop_mu_);
    if (!started_) return;
    started_ = false;
    state_->detach(id_, this);
  }

 private:
  std::shared_ptr<InProcessNetwork::State> state_;
  const NodeId id_;
  std::mutex stop_mu_;
  bool started_ = false;  // guarded by stop_mu_
};

}  // namespace

InProcessNetwork::InProcessNetwork() : state_(std::make_shared<State>()) {}
InProcessNetwork::~InProcessNetwork() = default;

std::shared_ptr<Transport> InProcessNetwork::make(NodeId id) { return std::make_shared<Endpoint>(state_, id); }

std::uint64_t InProcessNetwork::dropped() const { return state_->dropped(); }

}  // namespace rlr::testing
