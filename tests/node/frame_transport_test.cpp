// The public transport seam (rlr/transport.h): FrameTransport runs the node's messages
// over a user's frame transport and refuses every frame it cannot trust; the conformance
// suite (rlr/transport_conformance.h) passes the shipped in-process network and fails
// transports that break the contract, naming the check.
#include <catch2/catch.hpp>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <vector>

#include "rlr/transport_conformance.h"
#include "transport/frame_transport.h"
#include "wire/peer_codec.h"

using namespace rlr;
using namespace std::chrono_literals;

namespace {

class Inbox final : public transport::Inbox {
 public:
  void deliver(core::Message m) override {
    std::lock_guard lock(mu_);
    messages.push_back(std::move(m));
    cv_.notify_all();
  }
  void deliver_digests(wire::DigestReport r) override {
    std::lock_guard lock(mu_);
    reports.push_back(std::move(r));
    cv_.notify_all();
  }
  void peer_lost(NodeId peer) override {
    std::lock_guard lock(mu_);
    lost.push_back(peer);
  }
  bool wait(std::size_t messages_n, std::size_t reports_n = 0) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 5s, [&] { return messages.size() >= messages_n && reports.size() >= reports_n; });
  }
  std::size_t count() {
    std::lock_guard lock(mu_);
    return messages.size() + reports.size();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<core::Message> messages;
  std::vector<wire::DigestReport> reports;
  std::vector<NodeId> lost;
};

/// A user transport that keeps what it is given and lets the test deliver by hand.
class Hand final : public Transport {
 public:
  Status start(NodeId /*self*/, FrameHandler& h) override {
    handler = &h;
    return Status::ok();
  }
  void send(NodeId to, Bytes frame) override { sent.emplace_back(to, std::move(frame)); }
  void set_peer(NodeId id, const Address& a) override { peers.emplace_back(id, a); }
  void stop() override { handler = nullptr; }
  FrameHandler* handler = nullptr;
  std::vector<std::pair<NodeId, Bytes>> sent;
  std::vector<std::pair<NodeId, Address>> peers;
};

transport::FrameTransport::Options options_for(NodeId self, std::string cluster = "c") {
  transport::FrameTransport::Options o;
  o.cluster_id = std::move(cluster);
  o.self = self;
  o.snapshot_chunk_bytes = 1000;
  return o;
}

core::Message append(NodeId from, NodeId to) {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = from;
  m.to = to;
  m.term = Term{3};
  m.log_index = LogIndex{7};
  m.log_term = Term{2};
  m.commit = LogIndex{6};
  m.entries.push_back(Entry{LogIndex{8}, Term{3}, EntryKind::Normal, Bytes::copy_of("order 1")});
  return m;
}

Bytes frame_bytes(const wire::Frame& f) { return Bytes(std::vector<std::uint8_t>(f.begin(), f.end())); }

}  // namespace

TEST_CASE("frame transport: messages, digest reports and chunked snapshots arrive whole",
          "[transport][seam]") {
  testing::InProcessNetwork net;
  Inbox in1, in2;
  transport::FrameTransport t1(options_for(NodeId{1}), net.make(NodeId{1}));
  transport::FrameTransport t2(options_for(NodeId{2}), net.make(NodeId{2}));
  REQUIRE(t1.start(in1).is_ok());
  REQUIRE(t2.start(in2).is_ok());

  std::vector<core::Message> out{append(NodeId{1}, NodeId{2})};
  core::Message snap;
  snap.type = core::MessageType::Snapshot;
  snap.from = NodeId{1};
  snap.to = NodeId{2};
  snap.term = Term{3};
  std::vector<std::uint8_t> data(2500);
  for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<std::uint8_t>(i * 7);
  core::Configuration config;
  config.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  snap.snapshot = core::SnapshotMeta{LogIndex{40}, Term{2}, config, Bytes(data)};
  out.push_back(snap);
  t1.send(out);
  CHECK(out.empty());
  t1.send_digests(wire::DigestReport{NodeId{1}, NodeId{2}, {DigestCheckpoint{LogIndex{10}, 99}}});

  REQUIRE(in2.wait(2, 1));
  CHECK(in2.messages[0].type == core::MessageType::Append);
  CHECK(in2.messages[0].entries == append(NodeId{1}, NodeId{2}).entries);
  CHECK(in2.messages[0].commit == LogIndex{6});
  REQUIRE(in2.messages[1].type == core::MessageType::Snapshot);
  REQUIRE(in2.messages[1].snapshot.has_value());
  CHECK(in2.messages[1].snapshot->index == LogIndex{40});
  CHECK(in2.messages[1].snapshot->data == Bytes(data));  // three chunks, reassembled
  CHECK(in2.messages[1].snapshot->config.voters == config.voters);
  CHECK(in2.reports[0].digests[0].digest == 99);
  CHECK(t2.frames_refused() == 0);
  t1.stop();
  t2.stop();
}

TEST_CASE("frame transport: a frame it cannot trust is refused, counted, and harms nothing",
          "[transport][seam]") {
  auto hand = std::make_shared<Hand>();
  Inbox inbox;
  transport::FrameTransport t(options_for(NodeId{2}), hand);
  REQUIRE(t.start(inbox).is_ok());
  REQUIRE(hand->handler != nullptr);
  const std::uint64_t tag = wire::cluster_tag("c");
  const wire::Frame good = wire::encode_raft(append(NodeId{1}, NodeId{2}), tag);

  std::uint64_t refused = 0;
  auto refuse = [&](NodeId from, Bytes frame) {
    hand->handler->on_frame(from, std::move(frame));
    CHECK(t.frames_refused() == ++refused);
    CHECK(inbox.count() == 0);
  };
  refuse(NodeId{1}, Bytes::copy_of("short"));
  refuse(NodeId{1}, Bytes(std::vector<std::uint8_t>(100, 0xAB)));  // no magic
  refuse(NodeId{1}, frame_bytes(wire::encode_raft(append(NodeId{1}, NodeId{2}), wire::cluster_tag("other"))));
  std::vector<std::uint8_t> flipped(good.begin(), good.end());
  flipped.back() ^= 0x01;  // the crc no longer matches
  refuse(NodeId{1}, Bytes(flipped));
  std::vector<std::uint8_t> cut(good.begin(), good.end() - 3);  // shorter than its header says
  refuse(NodeId{1}, Bytes(cut));
  refuse(NodeId{3}, frame_bytes(good));  // node 3 passing off node 1's message
  refuse(NodeId{1}, frame_bytes(wire::encode_raft(append(NodeId{1}, NodeId{5}), tag)));  // not for us
  refuse(NodeId{1}, frame_bytes(wire::encode_ping(tag)));  // not a peer frame here

  hand->handler->on_frame(NodeId{1}, frame_bytes(good));
  REQUIRE(inbox.wait(1));
  CHECK(inbox.messages[0].log_index == LogIndex{7});

  hand->handler->on_peer_lost(NodeId{1});
  CHECK(inbox.lost == std::vector<NodeId>{NodeId{1}});
  t.stop();
}

TEST_CASE("frame transport: snapshot chunks out of order drop the partial copy; a whole stream "
          "after it arrives",
          "[transport][seam]") {
  auto hand = std::make_shared<Hand>();
  Inbox inbox;
  transport::FrameTransport t(options_for(NodeId{2}), hand);
  REQUIRE(t.start(inbox).is_ok());
  const std::uint64_t tag = wire::cluster_tag("c");
  std::vector<std::uint8_t> data(300, 5);
  auto chunk = [&](std::uint64_t offset, std::uint64_t n, bool last) {
    wire::SnapshotChunk c;
    c.from = NodeId{1};
    c.to = NodeId{2};
    c.term = Term{4};
    c.snapshot_index = LogIndex{20};
    c.snapshot_term = Term{4};
    c.config.voters = {NodeId{1}, NodeId{2}};
    c.offset = offset;
    c.total_bytes = data.size();
    c.data = Bytes(std::vector<std::uint8_t>(data.begin() + static_cast<long>(offset),
                                             data.begin() + static_cast<long>(offset + n)));
    c.last = last;
    hand->handler->on_frame(NodeId{1}, frame_bytes(wire::encode_snapshot_chunk(c, tag)));
  };
  chunk(0, 100, false);
  chunk(200, 100, true);  // 100..200 is missing
  CHECK(inbox.count() == 0);
  chunk(100, 100, false);  // continues nothing now
  CHECK(inbox.count() == 0);
  chunk(0, 100, false);
  chunk(100, 100, false);
  chunk(200, 100, true);
  REQUIRE(inbox.wait(1));
  CHECK(inbox.messages[0].snapshot->data == Bytes(data));
  t.stop();
}

namespace {

/// Wraps the in-process network's endpoints with one deliberate fault.
enum class Fault { Alter, Reorder, DeliverAfterStop };

class Faulty final : public Transport, private FrameHandler {
 public:
  Faulty(std::shared_ptr<Transport> inner, Fault fault) : inner_(std::move(inner)), fault_(fault) {}
  ~Faulty() override { inner_->stop(); }
  Faulty(const Faulty&) = delete;
  Faulty& operator=(const Faulty&) = delete;
  Status start(NodeId self, FrameHandler& h) override {
    handler_ = &h;
    return inner_->start(self, *this);
  }
  void send(NodeId to, Bytes frame) override {
    std::lock_guard lock(mu_);
    ++sent_;
    if (fault_ == Fault::Alter && sent_ % 7 == 0 && frame.size() > 20) {
      std::vector<std::uint8_t> b(frame.data(), frame.data() + frame.size());
      b[20] ^= 0x40;
      frame = Bytes(std::move(b));
    }
    if (fault_ == Fault::Reorder && sent_ % 2 == 1) {  // hold odd frames back one
      held_.emplace_back(to, std::move(frame));
      return;
    }
    inner_->send(to, std::move(frame));
    for (auto& [t, f] : held_) inner_->send(t, std::move(f));
    held_.clear();
  }
  void set_peer(NodeId id, const Address& a) override { inner_->set_peer(id, a); }
  void stop() override {
    if (fault_ != Fault::DeliverAfterStop) inner_->stop();
  }

 private:
  void on_frame(NodeId from, Bytes frame) override { handler_->on_frame(from, std::move(frame)); }
  void on_peer_lost(NodeId peer) override { handler_->on_peer_lost(peer); }
  std::shared_ptr<Transport> inner_;
  Fault fault_;
  FrameHandler* handler_ = nullptr;
  std::mutex mu_;
  std::uint64_t sent_ = 0;
  std::deque<std::pair<NodeId, Bytes>> held_;
};

class FaultyNetwork final : public testing::TransportFactory {
 public:
  explicit FaultyNetwork(Fault f) : fault_(f) {}
  std::shared_ptr<Transport> make(NodeId id) override {
    auto t = std::make_shared<Faulty>(net_.make(id), fault_);
    return t;
  }

 private:
  testing::InProcessNetwork net_;
  Fault fault_;
};

}  // namespace

TEST_CASE("transport conformance: the in-process network passes; broken transports fail by name",
          "[transport][seam][conformance]") {
  testing::InProcessNetwork net;
  const Status ok = testing::check_transport(net);
  INFO(ok.to_string());
  CHECK(ok.is_ok());

  const std::pair<Fault, std::string> broken[] = {
      {Fault::Alter, "arrived altered"},
      {Fault::Reorder, "must arrive in order"},
      {Fault::DeliverAfterStop, "after stop() returned"},
  };
  for (const auto& [fault, says] : broken) {
    FaultyNetwork f(fault);
    const Status s = testing::check_transport(f);
    INFO(s.to_string());
    CHECK_FALSE(s.is_ok());
    CHECK_THAT(s.message(), Catch::Matchers::Contains(says));
  }
}
