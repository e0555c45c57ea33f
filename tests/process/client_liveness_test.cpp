// rlr::Client liveness (ClientOptions::keepalive_interval / silence_timeout): a client
// whose node goes silent gives up on it long before request_timeout and carries on
// elsewhere, exactly once; the keepalive feature is negotiated, so a node or a client
// without it still interoperates; bad settings are refused.
//
// Timing: request_timeout is 30 s wherever the point is "did not wait it out", and the
// checks allow 10 s; nothing else asserts a duration.
#include <catch2/catch.hpp>

#include <signal.h>

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "fake_node.h"
#include "frame_relay.h"
#include "harness.h"
#include "rlr/client.h"
#include "rlr/node.h"

namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

constexpr const char* kCluster = "liveness-test";

/// One in-process node that tells everyone (clients included) it lives at a relay's
/// address, so that every client connection to it crosses the relay.
class RelayedNode {
 public:
  RelayedNode() : real_port_(proc::free_ports(1)[0]), relay_(real_port_) {
    rlr::NodeBuilder b;
    b.cluster_id(kCluster).id(rlr::NodeId{1}).listen("127.0.0.1", real_port_);
    b.member(rlr::NodeId{1}, "127.0.0.1", relay_.port());
    b.storage(rlr::StorageKind::Memory).tick(std::chrono::milliseconds{10}).election_ticks(15).heartbeat_ticks(3);
    auto n = b.build();
    REQUIRE(n);
    node_ = std::move(n).value();
  }
  ~RelayedNode() { node_->stop(); }
  RelayedNode(const RelayedNode&) = delete;
  RelayedNode& operator=(const RelayedNode&) = delete;

  relay::FrameRelay& relay() { return relay_; }
  [[nodiscard]] rlr::ClientOptions options() const {
    rlr::ClientOptions o;
    o.cluster_id = kCluster;
    o.bootstrap = {rlr::Address{"127.0.0.1", relay_.port()}};
    o.request_timeout = 30s;
    o.total_timeout = 60s;
    return o;
  }

 private:
  std::uint16_t real_port_;
  relay::FrameRelay relay_;
  std::unique_ptr<rlr::Node> node_;
};

/// A command as a subscriber sees it: its index, its session and the command.
struct Seen {
  rlr::LogIndex index;
  std::pair<std::uint64_t, std::uint64_t> session;  ///< client id, sequence
  std::string command;
};

/// The commands of `sub` until one is `last`, or 20 s pass. Checks that batches follow
/// each other without a gap and that every command came with a session.
std::vector<Seen> read_until(rlr::Subscription& sub, const std::string& last) {
  std::vector<Seen> seen;
  rlr::LogIndex expect = sub.position();
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline && (seen.empty() || seen.back().command != last)) {
    auto batch = sub.next(200ms);
    if (!batch) continue;  // Unavailable while it looks for a node
    CHECK(batch.value().from == expect);
    expect = batch.value().next;
    for (const auto& e : batch.value().entries) {
      CHECK(e.kind == rlr::EntryKind::Normal);
      CHECK(e.client_id != 0);
      seen.push_back(Seen{e.index, {e.client_id, e.sequence}, std::string(e.payload.as_string_view())});
    }
  }
  return seen;
}

/// Exactly once, as sessions define it: the log may hold more than one copy of a command
/// that was sent again (the node appends a copy that arrives while the first is in the
/// same batch, or held on a path that thawed late), but every copy carries the same
/// session, so only the first is applied, and the proposer was answered with the first.
void check_applied_once(const std::vector<Seen>& seen, const std::string& command, rlr::LogIndex answered) {
  std::vector<const Seen*> copies;
  for (const auto& s : seen) {
    if (s.command == command) copies.push_back(&s);
  }
  INFO("command '" << command << "': " << copies.size() << " copies in the log");
  REQUIRE(!copies.empty());
  CHECK(copies.front()->index == answered);
  for (const Seen* c : copies) CHECK(c->session == copies.front()->session);
}

// ---- separate rlr-node processes, for SIGSTOP ------------------------------------------
const std::string kNodeBin = [] {
  const char* v = std::getenv("RLR_NODE_BIN");
  return std::string(v != nullptr && *v != '\0' ? v : RLR_NODE_BIN);
}();

class NodeProcesses {
 public:
  explicit NodeProcesses(int n) : ports_(proc::free_ports(static_cast<std::size_t>(n))) {
    for (int i = 1; i <= n; ++i) {
      std::string t = "cluster_id = \"" + std::string(kCluster) + "\"\nid = " + std::to_string(i) +
                      "\ndata_dir = \"" + dir_.file("data" + std::to_string(i)) + "\"\nsync = false\npeers = [\n";
      for (int j = 1; j <= n; ++j) t += "  { id = " + std::to_string(j) + ", address = \"" + address(j) + "\" },\n";
      t += "]\n[timeouts]\ntick_ms = 10\nelection_ticks = 15\nheartbeat_ticks = 3\n";
      const std::string cfg = dir_.file("n" + std::to_string(i) + ".toml");
      proc::write_file(cfg, t);
      procs_.push_back(std::make_unique<proc::Process>(std::vector<std::string>{kNodeBin, "--config", cfg},
                                                       log(i), log(i)));
    }
  }
  ~NodeProcesses() {
    for (auto& p : procs_) {
      p->signal(SIGCONT);  // a stopped child ignores nothing but SIGKILL; be tidy anyway
      p.reset();
    }
  }
  NodeProcesses(const NodeProcesses&) = delete;
  NodeProcesses& operator=(const NodeProcesses&) = delete;

  [[nodiscard]] std::string address(int i) const {
    return "127.0.0.1:" + std::to_string(ports_[static_cast<std::size_t>(i - 1)]);
  }
  [[nodiscard]] std::string log(int i) const { return dir_.file("n" + std::to_string(i) + ".log"); }
  void signal(int i, int sig) { procs_[static_cast<std::size_t>(i - 1)]->signal(sig); }
  /// Waits (up to 10 s) until node i's process is stopped (state T): kill() returns
  /// before a busy machine has stopped it.
  [[nodiscard]] bool wait_stopped(int i) {
    const std::string stat = "/proc/" + std::to_string(procs_[static_cast<std::size_t>(i - 1)]->pid()) + "/stat";
    const auto deadline = Clock::now() + 10s;
    while (Clock::now() < deadline) {
      const std::string s = proc::read_file(stat);
      const auto paren = s.rfind(')');
      if (paren != std::string::npos && paren + 2 < s.size() && s[paren + 2] == 'T') return true;
      std::this_thread::sleep_for(1ms);
    }
    return false;
  }
  [[nodiscard]] rlr::ClientOptions options() const {
    rlr::ClientOptions o;
    o.cluster_id = kCluster;
    for (int i = 1; i <= static_cast<int>(ports_.size()); ++i) {
      o.bootstrap.push_back(rlr::Address{"127.0.0.1", ports_[static_cast<std::size_t>(i - 1)]});
    }
    o.request_timeout = 30s;
    o.total_timeout = 60s;
    return o;
  }
  [[nodiscard]] std::string logs() const {
    std::string s;
    for (int i = 1; i <= static_cast<int>(ports_.size()); ++i) {
      std::string l = proc::read_file(log(i));
      if (l.size() > 3000) l = "..." + l.substr(l.size() - 3000);
      s += "---- node " + std::to_string(i) + " ----\n" + l;
    }
    return s;
  }

 private:
  proc::TempDir dir_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<proc::Process>> procs_;
};

}  // namespace

TEST_CASE("client liveness: a proposal sent to a paused (SIGSTOP) leader commits through the new one, once",
          "[client][liveness]") {
  NodeProcesses nodes(3);
  auto c = rlr::Client::connect(nodes.options());  // default keepalives: 50 ms, silent after 200 ms
  REQUIRE(c);
  auto first = c.value()->propose_sync(rlr::Bytes::copy_of("before"));
  INFO(first.status().to_string());
  REQUIRE(first);
  auto leader = c.value()->leader();
  REQUIRE(leader);
  const int old_leader = static_cast<int>(leader.value().value());
  // The subscription starts at the leader and has seen "before": its stream is live there.
  auto sub = c.value()->subscribe(rlr::LogIndex{1});
  REQUIRE(sub);
  check_applied_once(read_until(*sub.value(), "before"), "before", first.value().index);

  nodes.signal(old_leader, SIGSTOP);
  REQUIRE(nodes.wait_stopped(old_leader));
  // Sent on the open connection to the stopped leader: it sits in that node's socket
  // buffer until the client gives up on the connection.
  const auto t0 = Clock::now();
  auto during = c.value()->propose_sync(rlr::Bytes::copy_of("during"));
  const auto took = Clock::now() - t0;
  INFO(during.status().to_string() << "\n" << nodes.logs());
  REQUIRE(during);
  CHECK(during.value().index > first.value().index);
  CHECK(took < 10s);  // request_timeout is 30 s
  auto now_leader = c.value()->leader();
  REQUIRE(now_leader);
  CHECK(static_cast<int>(now_leader.value().value()) != old_leader);

  // The subscription left the silent node and resumed elsewhere, without a gap.
  check_applied_once(read_until(*sub.value(), "during"), "during", during.value().index);

  // The stopped leader comes back and may still read "during" from its socket: the
  // session makes any copy of it a duplicate.
  nodes.signal(old_leader, SIGCONT);
  auto later = c.value()->propose_sync(rlr::Bytes::copy_of("later"));
  REQUIRE(later);
  auto all = c.value()->subscribe(rlr::LogIndex{1});
  REQUIRE(all);
  const auto seen = read_until(*all.value(), "later");
  check_applied_once(seen, "before", first.value().index);
  check_applied_once(seen, "during", during.value().index);
  check_applied_once(seen, "later", later.value().index);
}

TEST_CASE("client liveness: a frozen path is given up and the proposal applied once after it thaws",
          "[client][liveness]") {
  RelayedNode node;
  auto o = node.options();
  o.keepalive_interval = 20ms;
  o.silence_timeout = 100ms;
  auto c = rlr::Client::connect(o);
  REQUIRE(c);
  REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("before")));
  const int connections_before = node.relay().connections();

  node.relay().freeze(true);
  std::promise<rlr::Result<rlr::ProposeResult>> done;
  auto outcome = done.get_future();
  const auto t0 = Clock::now();
  c.value()->propose(rlr::Bytes::copy_of("during"),
                           [&done](rlr::Result<rlr::ProposeResult> r) { done.set_value(std::move(r)); });
  // The relay is the only way to the node: nothing can complete while it is frozen.
  CHECK(outcome.wait_for(1500ms) == std::future_status::timeout);
  node.relay().freeze(false);
  REQUIRE(outcome.wait_for(20s) == std::future_status::ready);
  const auto took = Clock::now() - t0;
  auto r = outcome.get();
  INFO(r.status().to_string());
  REQUIRE(r);
  CHECK(took < 10s);  // request_timeout is 30 s
  // The silent connection was abandoned and the request went out on a new one; the copy
  // held on the old one reached the node on thaw too, under the same session.
  CHECK(node.relay().connections() > connections_before);
  auto after = c.value()->propose_sync(rlr::Bytes::copy_of("after"));
  REQUIRE(after);
  auto sub = c.value()->subscribe(rlr::LogIndex{1});
  REQUIRE(sub);
  const auto seen = read_until(*sub.value(), "after");
  check_applied_once(seen, "during", r.value().index);
  check_applied_once(seen, "after", after.value().index);
}

TEST_CASE("client liveness: a leader that answers Pings but no requests is left for the one the others name",
          "[client][liveness]") {
  // A real one-node cluster (node 1) and two stand-ins: node 7 claims to lead, echoes
  // Pings and swallows proposals (a leader cut off from its peers, before it steps
  // down); node 8 names node 1, slowly on its first connection so that the client
  // settles on node 7 first.
  const std::uint16_t port = proc::free_ports(1)[0];
  rlr::NodeBuilder b;
  b.cluster_id(kCluster).id(rlr::NodeId{1}).listen("127.0.0.1", port).member(rlr::NodeId{1}, "127.0.0.1", port);
  b.storage(rlr::StorageKind::Memory).tick(std::chrono::milliseconds{10}).election_ticks(15).heartbeat_ticks(3);
  auto real = b.build();
  REQUIRE(real);
  struct Stop {
    rlr::Node& n;
    ~Stop() { n.stop(); }
  } stop{*real.value()};
  fake::FakeNode stalled(7, kCluster);
  fake::FakeNode follower(8, kCluster);
  stalled.name_leader(7, stalled.address());
  follower.name_leader(1, "127.0.0.1:" + std::to_string(port));
  follower.delay_first_answers(1, 1000ms);

  rlr::ClientOptions o;
  o.cluster_id = kCluster;
  o.bootstrap = {rlr::Address::parse(stalled.address()).value(), rlr::Address::parse(follower.address()).value()};
  o.request_timeout = 30s;
  o.total_timeout = 60s;
  o.keepalive_interval = 20ms;
  o.silence_timeout = 100ms;
  auto c = rlr::Client::connect(o);
  REQUIRE(c);
  const auto t0 = Clock::now();
  auto r = c.value()->propose_sync(rlr::Bytes::copy_of("x"));
  const auto took = Clock::now() - t0;
  INFO(r.status().to_string());
  REQUIRE(r);
  CHECK(took < 10s);  // request_timeout is 30 s
  CHECK(stalled.proposals_swallowed() >= 1);
  auto leader = c.value()->leader();
  REQUIRE(leader);
  CHECK(leader.value() == rlr::NodeId{1});
}

TEST_CASE("client liveness: the keepalive is negotiated; either side without it interoperates",
          "[client][liveness]") {
  RelayedNode node;
  auto o = node.options();
  o.keepalive_interval = 20ms;

  SECTION("both sides have it: an idle connection is kept alive by echoed Pings") {
    o.silence_timeout = 1000ms;
    auto c = rlr::Client::connect(o);
    REQUIRE(c);
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("a")));
    const int connections = node.relay().connections();
    std::this_thread::sleep_for(1500ms);
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("b")));
    CHECK(node.relay().pings_to_node() >= 5);
    CHECK(node.relay().pings_to_client() >= 5);
    CHECK(node.relay().connections() == connections);
  }
  SECTION("a node without it (an older one): no Pings, and idleness is not taken for silence") {
    node.relay().hide_client_keepalive(true);
    o.silence_timeout = 60ms;
    auto c = rlr::Client::connect(o);
    REQUIRE(c);
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("a")));
    const int connections = node.relay().connections();
    std::this_thread::sleep_for(1000ms);  // many silence bounds with nothing to hear
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("b")));
    CHECK(node.relay().pings_to_node() == 0);
    CHECK(node.relay().pings_to_client() == 0);
    CHECK(node.relay().connections() == connections);
  }
  SECTION("a client without it (keepalive_interval 0): the node sends no Pings") {
    o.keepalive_interval = 0ms;
    auto c = rlr::Client::connect(o);
    REQUIRE(c);
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("a")));
    std::this_thread::sleep_for(500ms);
    REQUIRE(c.value()->propose_sync(rlr::Bytes::copy_of("b")));
    CHECK(node.relay().pings_to_node() == 0);
    CHECK(node.relay().pings_to_client() == 0);
  }
}

TEST_CASE("client liveness: bad settings are refused", "[client][liveness]") {
  rlr::ClientOptions o;
  o.cluster_id = kCluster;
  o.bootstrap = {rlr::Address{"127.0.0.1", 1}};
  o.total_timeout = 1s;  // were the options taken, connect() would give up soon
  const auto refused = [&](const char* why) {
    auto c = rlr::Client::connect(o);
    INFO(why << ": " << c.status().to_string());
    CHECK(c.status().code() == rlr::ErrorCode::InvalidArgument);
  };
  o.keepalive_interval = -1ms;
  refused("negative interval");
  o.keepalive_interval = 50ms;
  o.silence_timeout = -1ms;
  refused("negative silence timeout");
  o.silence_timeout = 99ms;
  refused("silence timeout under two intervals");
  o.keepalive_interval = 0ms;
  o.silence_timeout = 200ms;
  refused("silence timeout without keepalives");
}
