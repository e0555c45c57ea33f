// rlr::testing::check_transport (rlr/transport_conformance.h).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "rlr/node.h"
#include "rlr/transport_conformance.h"

namespace rlr::testing {

namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// A test frame: sender, stream (a sending thread), sequence number, then a pattern
/// derived from them, so that a frame altered anywhere is noticed.
Bytes make_frame(NodeId from, std::uint32_t stream, std::uint32_t seq, std::size_t size) {
  size = std::max<std::size_t>(size, 16);
  std::vector<std::uint8_t> b(size);
  const std::uint64_t f = from.value();
  std::memcpy(b.data(), &f, 8);
  std::memcpy(b.data() + 8, &stream, 4);
  std::memcpy(b.data() + 12, &seq, 4);
  for (std::size_t k = 16; k < size; ++k) b[k] = static_cast<std::uint8_t>(f * 31 + stream * 7 + seq * 131 + k);
  return Bytes(std::move(b));
}

struct Seen {
  NodeId handler_from;  ///< who the transport said sent it
  NodeId from;          ///< who the frame says sent it
  std::uint32_t stream = 0;
  std::uint32_t seq = 0;
  bool intact = false;
  std::size_t size = 0;
};

class Recorder final : public FrameHandler {
 public:
  void on_frame(NodeId from, Bytes frame) override {
    Seen s;
    s.handler_from = from;
    s.size = frame.size();
    if (frame.size() >= 16) {
      std::uint64_t f = 0;
      std::memcpy(&f, frame.data(), 8);
      std::memcpy(&s.stream, frame.data() + 8, 4);
      std::memcpy(&s.seq, frame.data() + 12, 4);
      s.from = NodeId{f};
      const Bytes expect = make_frame(s.from, s.stream, s.seq, frame.size());
      s.intact = expect == frame;
    }
    std::lock_guard lock(mu_);
    if (stopped_) ++after_stop_;
    seen_.push_back(s);
    cv_.notify_all();
  }
  void on_peer_lost(NodeId /*peer*/) override {}

  bool wait_for(std::size_t n, std::chrono::milliseconds timeout) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, timeout, [&] { return seen_.size() >= n; });
  }
  std::vector<Seen> seen() const {
    std::lock_guard lock(mu_);
    return seen_;
  }
  void mark_stopped() {
    std::lock_guard lock(mu_);
    stopped_ = true;
  }
  std::size_t after_stop() const {
    std::lock_guard lock(mu_);
    return after_stop_;
  }

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Seen> seen_;
  bool stopped_ = false;
  std::size_t after_stop_ = 0;
};

Status violation(std::string_view check, std::string what) {
  return Status{ErrorCode::InvalidArgument, fmt::format("transport check '{}': {}", check, what)};
}

/// Handlers outlive the checks that use them: a transport that breaks stop() may still
/// call one afterwards, and must be reported, not crash the suite. check_transport keeps
/// them until it returns.
using Graveyard = std::vector<std::shared_ptr<Recorder>>;

/// Three started endpoints (nodes 1, 2, 3) that know each other's addresses.
struct Trio {
  explicit Trio(Graveyard& g) : graveyard(g) {}
  Graveyard& graveyard;
  std::map<NodeId, std::shared_ptr<Transport>> t;
  std::map<NodeId, std::shared_ptr<Recorder>> r;
  ~Trio() {
    for (auto& [id, tr] : t) tr->stop();
  }
};

Status start_trio(TransportFactory& factory, Trio& trio) {
  for (std::uint64_t i = 1; i <= 3; ++i) {
    const NodeId id{i};
    trio.t[id] = factory.make(id);
    if (!trio.t[id]) return violation("start", fmt::format("the factory made no transport for node {}", i));
    trio.r[id] = std::make_shared<Recorder>();
    trio.graveyard.push_back(trio.r[id]);
    if (Status s = trio.t[id]->start(id, *trio.r[id]); !s) return s;
  }
  for (auto& [id, tr] : trio.t) {
    for (std::uint64_t j = 1; j <= 3; ++j) {
      if (NodeId{j} != id) tr->set_peer(NodeId{j}, factory.address(NodeId{j}));
    }
  }
  return Status::ok();
}

/// Every frame in `seen` of (from, stream) is intact, from the right sender, and their
/// sequence numbers run 0, 1, 2, ... with none missing.
Status check_stream(std::string_view check, const std::vector<Seen>& seen, NodeId from,
                    std::uint32_t stream, std::uint32_t count) {
  std::uint32_t next = 0;
  for (const Seen& s : seen) {
    if (s.from != from || s.stream != stream) continue;
    if (!s.intact) return violation(check, fmt::format("frame {} from node {} arrived altered", s.seq, from.value()));
    if (s.handler_from != from) {
      return violation(check, fmt::format("a frame node {} sent was handed over as from node {}", from.value(),
                                          s.handler_from.value()));
    }
    if (s.seq != next) {
      return violation(check, fmt::format("from node {} (stream {}) frame {} arrived where {} was due "
                                          "(frames must arrive in order, each once)",
                                          from.value(), stream, s.seq, next));
    }
    ++next;
  }
  if (next != count) {
    return violation(check, fmt::format("{} of {} frames from node {} arrived", next, count, from.value()));
  }
  return Status::ok();
}

Status check_delivery(TransportFactory& factory, Graveyard& graveyard) {
  Trio trio(graveyard);
  if (Status s = start_trio(factory, trio); !s) return s;
  const std::size_t sizes[] = {16, 100, 4096, 65536, 1U << 20};
  constexpr std::uint32_t kFrames = 200;
  for (std::uint32_t i = 0; i < kFrames; ++i) {
    trio.t[NodeId{1}]->send(NodeId{2}, make_frame(NodeId{1}, 0, i, sizes[i % 5]));
  }
  for (std::uint32_t i = 0; i < 50; ++i) {
    trio.t[NodeId{2}]->send(NodeId{3}, make_frame(NodeId{2}, 0, i, 64));
    trio.t[NodeId{3}]->send(NodeId{1}, make_frame(NodeId{3}, 0, i, 64));
  }
  if (!trio.r[NodeId{2}]->wait_for(kFrames, 10s) || !trio.r[NodeId{3}]->wait_for(50, 10s) ||
      !trio.r[NodeId{1}]->wait_for(50, 10s)) {
    return Status{ErrorCode::Timeout, "transport check 'delivery': frames did not arrive within 10 s"};
  }
  if (Status s = check_stream("delivery", trio.r[NodeId{2}]->seen(), NodeId{1}, 0, kFrames); !s) return s;
  if (Status s = check_stream("sender", trio.r[NodeId{3}]->seen(), NodeId{2}, 0, 50); !s) return s;
  return check_stream("sender", trio.r[NodeId{1}]->seen(), NodeId{3}, 0, 50);
}

Status check_concurrent_senders(TransportFactory& factory, Graveyard& graveyard) {
  Trio trio(graveyard);
  if (Status s = start_trio(factory, trio); !s) return s;
  constexpr std::uint32_t kThreads = 4;
  constexpr std::uint32_t kFrames = 500;
  std::vector<std::thread> threads;
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (std::uint32_t i = 0; i < kFrames; ++i) {
        trio.t[NodeId{1}]->send(NodeId{3}, make_frame(NodeId{1}, t, i, 200));
      }
    });
  }
  for (auto& th : threads) th.join();
  if (!trio.r[NodeId{3}]->wait_for(kThreads * kFrames, 10s)) {
    return Status{ErrorCode::Timeout, "transport check 'concurrent senders': frames did not arrive within 10 s"};
  }
  const auto seen = trio.r[NodeId{3}]->seen();
  for (std::uint32_t t = 0; t < kThreads; ++t) {
    if (Status s = check_stream("concurrent senders", seen, NodeId{1}, t, kFrames); !s) return s;
  }
  return Status::ok();
}

Status check_send_never_blocks(TransportFactory& factory, Graveyard& graveyard) {
  Trio trio(graveyard);
  if (Status s = start_trio(factory, trio); !s) return s;
  const NodeId absent{9};
  trio.t[NodeId{1}]->set_peer(absent, factory.address(absent));
  const auto began = Clock::now();
  for (std::uint32_t i = 0; i < 1000; ++i) trio.t[NodeId{1}]->send(absent, make_frame(NodeId{1}, 0, i, 1024));
  const auto took = Clock::now() - began;
  if (took > 2s) {
    return violation("send never blocks",
                     fmt::format("1,000 sends to a node that is not there took {} ms",
                                 std::chrono::duration_cast<std::chrono::milliseconds>(took).count()));
  }
  // The others still talk.
  trio.t[NodeId{1}]->send(NodeId{2}, make_frame(NodeId{1}, 0, 0, 64));
  if (!trio.r[NodeId{2}]->wait_for(1, 10s)) {
    return Status{ErrorCode::Timeout, "transport check 'send never blocks': a frame to a live peer did not arrive"};
  }
  return Status::ok();
}

Status check_stop(TransportFactory& factory, Graveyard& graveyard) {
  Trio trio(graveyard);
  if (Status s = start_trio(factory, trio); !s) return s;
  std::atomic<bool> sending{true};
  std::thread sender([&] {
    for (std::uint32_t i = 0; sending.load(); ++i) {
      trio.t[NodeId{1}]->send(NodeId{2}, make_frame(NodeId{1}, 0, i, 64));
      std::this_thread::sleep_for(100us);
    }
  });
  trio.r[NodeId{2}]->wait_for(10, 5s);
  trio.t[NodeId{2}]->stop();
  trio.r[NodeId{2}]->mark_stopped();
  std::this_thread::sleep_for(200ms);
  trio.t[NodeId{2}]->stop();  // idempotent
  sending.store(false);
  sender.join();
  if (trio.r[NodeId{2}]->after_stop() != 0) {
    return violation("stop", fmt::format("{} frames were delivered after stop() returned",
                                         trio.r[NodeId{2}]->after_stop()));
  }
  return Status::ok();
}

/// The nodes' log lines, kept for the error message.
class KeepLines final : public LogSink {
 public:
  void write(const LogRecord& r) noexcept override {
    try {
      std::string line = format_log_record(r, LogFormat::Text);
      std::lock_guard lock(mu_);
      lines_.push_back(std::move(line));
      if (lines_.size() > 50) lines_.erase(lines_.begin());
    } catch (...) {  // NOLINT(bugprone-empty-catch): a lost line only shortens the report
    }
  }
  [[nodiscard]] LogLevel min_level() const noexcept override { return LogLevel::Warn; }
  std::string tail() const {
    std::lock_guard lock(mu_);
    std::string out;
    for (const auto& l : lines_) out += "\n  " + l;
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> lines_;
};

class ClusterCheck {
 public:
  ClusterCheck(TransportFactory& factory) : factory_(factory), sink_(std::make_shared<KeepLines>()) {}

  Status run() {
    for (std::uint64_t i = 1; i <= 3; ++i) {
      if (Status s = start(NodeId{i}, true); !s) return s;
    }
    auto l = wait_leader();
    if (!l) return l.status();
    if (Status s = propose(100); !s) return s;
    nodes_.erase(l.value());  // the leader is gone
    auto l2 = wait_leader();
    if (!l2) return fail("failover", "no new leader after the leader stopped");
    if (Status s = propose(100); !s) return s;
    // A new learner: the log was compacted, so it starts from a snapshot, in pieces.
    if (Status s = start(NodeId{4}, false); !s) return s;
    Node& leader = *nodes_.at(l2.value());
    if (Status s = leader.add_learner(MemberAddress{NodeId{4}, factory_.address(NodeId{4})}, 10s); !s) {
      return fail("snapshot", "add_learner: " + s.to_string());
    }
    const LogIndex target = leader.cluster_info().commit;
    const auto deadline = Clock::now() + 15s;
    for (;;) {
      const ClusterInfo ci = nodes_.at(NodeId{4})->cluster_info();
      if (ci.applied >= target) {
        if (ci.first_index.value() <= 1) {
          return fail("snapshot", "the learner caught up from the log, not from a snapshot");
        }
        return Status::ok();
      }
      if (Clock::now() > deadline) {
        return fail("snapshot", fmt::format("the learner reached {} of {} within 15 s", ci.applied.value(),
                                            target.value()));
      }
      std::this_thread::sleep_for(5ms);
    }
  }

 private:
  Status fail(std::string_view step, std::string what) const {
    return Status{ErrorCode::Timeout, fmt::format("transport check 'cluster' ({}): {}; the nodes' last "
                                                  "warnings:{}",
                                                  step, what, sink_->tail())};
  }

  Status start(NodeId id, bool founder) {
    NodeBuilder b;
    b.cluster_id("conformance").id(id).listen(factory_.address(id)).storage(StorageKind::Memory);
    b.tick(5ms).election_ticks(20).heartbeat_ticks(2).compact_after_entries(50);
    b.log_sink(sink_).transport(factory_.make(id));
    if (founder) {
      for (std::uint64_t i = 1; i <= 3; ++i) b.member(NodeId{i}, factory_.address(NodeId{i}));
    }
    auto n = b.build();
    if (!n) return n.status();
    nodes_[id] = std::move(n).value();
    return Status::ok();
  }

  Result<NodeId> wait_leader() {
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      for (auto& [id, n] : nodes_) {
        if (n->role() == Role::Leader) return id;
      }
      std::this_thread::sleep_for(5ms);
    }
    return fail("election", "no leader within 10 s");
  }

  Status propose(int count) {
    for (int i = 0; i < count;) {
      auto l = wait_leader();
      if (!l) return l.status();
      auto r = nodes_.at(l.value())->propose_sync(Bytes::copy_of(fmt::format("entry {}", i)), 5s);
      if (r) {
        ++i;
        continue;
      }
      if (r.status().code() != ErrorCode::NotLeader) return fail("commit", r.status().to_string());
    }
    return Status::ok();
  }

  TransportFactory& factory_;
  std::shared_ptr<KeepLines> sink_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
};

}  // namespace

Status check_transport(TransportFactory& factory) {
  Graveyard graveyard;
  Status s = check_delivery(factory, graveyard);
  if (s) s = check_concurrent_senders(factory, graveyard);
  if (s) s = check_send_never_blocks(factory, graveyard);
  if (s) s = check_stop(factory, graveyard);
  if (s) s = ClusterCheck(factory).run();
  // Every endpoint is stopped; what a transport still had queued drains to live handlers.
  std::this_thread::sleep_for(100ms);
  return s;
}

}  // namespace rlr::testing
