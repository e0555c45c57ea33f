// Real nodes: RocksDB on disk, Asio TCP on loopback, in one process.
#include <catch2/catch.hpp>

#include <boost/asio.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <string>

#include "node_test_util.h"
#include "tcp_cluster.h"
#include "wire/frame.h"

using namespace rlr;
using namespace rlr::testing;
using namespace std::chrono_literals;

namespace {

void expect_identical(Node& a, Node& b, LogIndex upto) {
  auto la = read_all(a, LogIndex{1}, upto);
  auto lb = read_all(b, LogIndex{1}, upto);
  check_gap_free(la, LogIndex{1});
  check_gap_free(lb, LogIndex{1});
  REQUIRE(la.size() >= upto.value());
  REQUIRE(lb.size() >= upto.value());
  for (std::uint64_t k = 0; k < upto.value(); ++k) {
    REQUIRE(la[k].term == lb[k].term);
    REQUIRE(la[k].kind == lb[k].kind);
    REQUIRE(la[k].payload == lb[k].payload);
  }
}

}  // namespace

TEST_CASE("tcp: 3 nodes replicate 100,000 entries, survive the leader's stop and a full restart", "[tcp]") {
  const bool persist_thread = GENERATE(false, true);
  INFO("persist_thread " << persist_thread);
  TcpCluster c(3);
  c.set_persist_thread(persist_thread);
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) {
    c.stop(id);
    REQUIRE(c.start(id).is_ok());
  }
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 100000, 4096, "a") == 100000);

  // Stop the leader; the others elect a new one and continue.
  c.stop(leader);
  const NodeId old = leader;
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(leader != old);
  REQUIRE(propose_many(c.node(leader), 1000, 256, "b") == 1000);
  REQUIRE(c.start(old).is_ok());
  const LogIndex commit = c.node(leader).cluster_info().commit;
  for (auto& [id, n] : c.nodes()) {
    if (id != leader) expect_identical(c.node(leader), *n, commit);
  }

  // Restart the whole cluster from RocksDB and continue.
  std::vector<NodeId> ids;
  for (auto& [id, n] : c.nodes()) ids.push_back(id);
  for (NodeId id : ids) c.stop(id);
  for (NodeId id : ids) REQUIRE(c.start(id).is_ok());
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 1000, 256, "c") == 1000);
  const LogIndex after = c.node(leader).cluster_info().commit;
  REQUIRE(after.value() >= commit.value() + 1000);
  for (auto& [id, n] : c.nodes()) {
    if (id != leader) expect_identical(c.node(leader), *n, after);
  }
}

TEST_CASE("tcp: a learner added late catches up through a snapshot and the log, then replaces a member", "[tcp]") {
  const bool persist_thread = GENERATE(false, true);
  INFO("persist_thread " << persist_thread);
  TcpCluster c(3);
  c.set_compact_after(500);  // nodes started from now on compact
  c.set_persist_thread(persist_thread);
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  // Restart everyone with compaction on, then write enough to compact.
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) {
    c.stop(id);
    REQUIRE(c.start(id).is_ok());
  }
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 3000, 256, "s") == 3000);
  std::this_thread::sleep_for(100ms);
  auto info = c.node(leader).cluster_info();
  REQUIRE(info.first_index.value() > 1);  // the leader compacted

  REQUIRE(c.start(NodeId{4}, false).is_ok());
  REQUIRE(c.node(leader).add_learner(MemberAddress{NodeId{4}, {"127.0.0.1", c.port(NodeId{4})}}, 10s).is_ok());
  const LogIndex commit = c.node(leader).cluster_info().commit;
  // The learner's log starts after the snapshot it received.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (c.node(NodeId{4}).cluster_info().commit < commit && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  auto learner = c.node(NodeId{4}).cluster_info();
  CHECK(learner.role == Role::Learner);
  CHECK(learner.commit >= commit);
  CHECK(learner.first_index.value() > 1);
  auto tail = read_all(c.node(NodeId{4}), learner.first_index, commit);
  check_gap_free(tail, learner.first_index);

  // Replace: promote the learner, remove a follower.
  Status promoted{ErrorCode::Timeout, "not tried"};
  for (int i = 0; i < 50 && !promoted.is_ok(); ++i) {
    promoted = c.node(leader).promote(NodeId{4}, 5s);
    if (!promoted.is_ok()) std::this_thread::sleep_for(50ms);
  }
  REQUIRE(promoted.is_ok());
  const NodeId victim = leader == NodeId{1} ? NodeId{2} : NodeId{1};
  REQUIRE(c.node(leader).remove(victim, 10s).is_ok());
  c.stop(victim);
  REQUIRE(propose_many(c.node(leader), 200, 64, "r") == 200);
}

TEST_CASE("tcp: leadership transfer over TCP", "[tcp]") {
  TcpCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  const NodeId target{leader.value() % 3 + 1};
  REQUIRE(c.node(leader).transfer_leadership(target, 5s).is_ok());
  CHECK(c.wait_leader() == target);
  REQUIRE(propose_many(c.node(target), 100, 32, "t") == 100);
}

// The names of this process's threads, from /proc (what `top -H` and perf show).
static std::multiset<std::string> thread_names() {
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    std::ifstream in(task.path() / "comm");
    std::string name;
    if (std::getline(in, name)) names.insert(name);
  }
  return names;
}

TEST_CASE("tcp: a node's threads carry its id in their names", "[tcp]") {
  TcpCluster c(3);
  REQUIRE(c.wait_leader() != kNoNode);
  const auto names = thread_names();
  for (int id = 1; id <= 3; ++id) {
    CHECK(names.count(fmt::format("rlr-raft-{}", id)) == 1);
    CHECK(names.count(fmt::format("rlr-io-{}", id)) == 1);
  }
  CHECK(names.count("rlr-callbacks") == 3);
  CHECK(names.count("rlr-admin") == 3);
}

TEST_CASE("tcp: malformed input closes the connection and the node keeps serving", "[tcp]") {
  TcpCluster c(3);
  const NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  namespace asio = boost::asio;
  asio::io_context io;
  auto send_and_expect_close = [&](const std::vector<std::uint8_t>& bytes) {
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), c.port(leader)});
    boost::system::error_code ec;
    asio::write(s, asio::buffer(bytes), ec);
    std::array<std::uint8_t, 4096> buf{};
    // The node answers (a refusal) or not, then closes: read until EOF.
    s.non_blocking(false);
    struct timeval tv{5, 0};
    ::setsockopt(s.native_handle(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    std::size_t total = 0;
    for (;;) {
      const std::size_t n = s.read_some(asio::buffer(buf), ec);
      total += n;
      if (ec) break;
    }
    return ec == asio::error::eof || ec == asio::error::connection_reset;
  };
  std::mt19937_64 rng(7);
  std::vector<std::uint8_t> junk(1000);
  for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
  CHECK(send_and_expect_close(junk));  // random bytes
  // A giant length prefix with a valid magic.
  std::vector<std::uint8_t> giant = {0x52, 0x4C, 0x52, 0x31, 0, 1, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF, 0, 0, 0, 0};
  CHECK(send_and_expect_close(giant));
  auto hello = [&](std::string cluster, std::string token, NodeId id, wire::PeerKind kind) {
    wire::Hello h;
    h.kind = kind;
    h.node_id = id;
    h.cluster_id = std::move(cluster);
    h.token = std::move(token);
    const wire::Frame f = wire::encode_hello(h);
    return std::vector<std::uint8_t>(f.begin(), f.end());
  };
  CHECK(send_and_expect_close(hello("other-cluster", "secret", NodeId{9}, wire::PeerKind::Node)));
  CHECK(send_and_expect_close(hello("tcp-test", "wrong-token", NodeId{2}, wire::PeerKind::Node)));
  CHECK(send_and_expect_close(hello("tcp-test", "secret", NodeId{77}, wire::PeerKind::Node)));  // unknown node
  // A truncated frame after a good handshake, then EOF.
  auto good = hello("tcp-test", "secret", NodeId{0}, wire::PeerKind::Client);
  std::vector<std::uint8_t> truncated = good;
  truncated.insert(truncated.end(), {0x52, 0x4C, 0x52, 0x31, 0, 1, 0, 5});
  {
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), c.port(leader)});
    asio::write(s, asio::buffer(truncated));
    s.close();
  }
  // Everyone keeps working.
  REQUIRE(propose_many(c.node(leader), 100, 32, "ok") == 100);
  CHECK(c.wait_leader() == leader);
}

TEST_CASE("tcp: a node refuses a data directory of another cluster", "[tcp]") {
  TempDir dir;
  NodeOptions o;
  o.cluster_id = "one";
  o.id = NodeId{1};
  o.listen.port = free_port();
  o.data_dir = (dir.path() / "n1").string();
  o.initial_members = {MemberAddress{NodeId{1}, o.listen}};
  {
    auto n = NodeBuilder().options(o).build();
    REQUIRE(n.is_ok());
    n.value()->stop();
  }
  o.cluster_id = "two";
  auto n = NodeBuilder().options(o).build();
  REQUIRE_FALSE(n.is_ok());
  CHECK(n.status().code() == ErrorCode::WrongCluster);
}

TEST_CASE("tcp: 5 nodes replicate, lose their leader and a follower, and agree", "[tcp]") {
  TcpCluster c(5);
  NodeId leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 10000, 1024, "five") == 10000);
  // Two of five may fail: stop the leader and one follower.
  const NodeId old = leader;
  const NodeId follower{leader.value() % 5 + 1};
  c.stop(old);
  c.stop(follower);
  leader = c.wait_leader();
  REQUIRE(leader != kNoNode);
  REQUIRE(propose_many(c.node(leader), 1000, 256, "three-left") == 1000);
  REQUIRE(c.start(old).is_ok());
  REQUIRE(c.start(follower).is_ok());
  REQUIRE(propose_many(c.node(leader), 100, 64, "back") == 100);
  const LogIndex commit = c.node(leader).cluster_info().commit;
  for (auto& [id, n] : c.nodes()) {
    if (id != leader) expect_identical(c.node(leader), *n, commit);
  }
}
