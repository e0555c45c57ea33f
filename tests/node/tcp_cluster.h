// A cluster of real nodes in one process: NodeBuilder, RocksDB in temporary
// directories, Asio TCP on loopback.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <memory>
#include <thread>

#include <boost/asio/ip/tcp.hpp>
#include <fmt/format.h>

#include "node_test_util.h"
#include "rlr/node.h"

namespace rlr::testing {

using namespace std::chrono_literals;

/// A port that was free a moment ago (bind to 0, read, close).
inline std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, boost::asio::ip::tcp::endpoint(boost::asio::ip::make_address("127.0.0.1"), 0));
  return a.local_endpoint().port();
}

class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::temp_directory_path() /
            fmt::format("rlr-test-{}-{}", ::getpid(), counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

class TcpCluster {
 public:
  explicit TcpCluster(int voters, std::string token = "secret") : token_(std::move(token)) {
    for (int i = 1; i <= voters; ++i) {
      const NodeId id{static_cast<std::uint64_t>(i)};
      ports_[id] = free_port();
      founders_.push_back(id);
    }
    for (NodeId id : founders_) REQUIRE(start(id).is_ok());
  }
  ~TcpCluster() {
    for (auto& [id, n] : nodes_) n->stop();
  }

  NodeOptions options_for(NodeId id, bool founder) {
    if (!ports_.count(id)) ports_[id] = free_port();
    NodeOptions o;
    o.cluster_id = "tcp-test";
    o.id = id;
    o.listen = Address{"127.0.0.1", ports_[id]};
    o.data_dir = (dir_.path() / fmt::format("n{}", id.value())).string();
    o.auth_token = token_;
    o.tick = 10ms;
    o.check_invariants = true;
    o.election_ticks = 15;
    o.heartbeat_ticks = 3;
    o.compact_after_entries = compact_after_;
    o.persist_thread = persist_thread_;
    if (founder) {
      for (NodeId f : founders_) o.initial_members.push_back(MemberAddress{f, {"127.0.0.1", ports_[f]}});
    }
    return o;
  }

  Status start(NodeId id, bool founder = true) {
    auto n = NodeBuilder().options(options_for(id, founder)).build();
    if (!n) return n.status();
    nodes_[id] = std::move(n).value();
    return Status::ok();
  }
  void stop(NodeId id) {
    nodes_.at(id)->stop();
    nodes_.erase(id);
  }
  void set_compact_after(std::uint64_t n) { compact_after_ = n; }
  /// NodeOptions::persist_thread for nodes started from now on.
  void set_persist_thread(bool on) { persist_thread_ = on; }
  Node& node(NodeId id) { return *nodes_.at(id); }
  std::uint16_t port(NodeId id) { return ports_.at(id); }
  const std::map<NodeId, std::unique_ptr<Node>>& nodes() const { return nodes_; }

  NodeId wait_leader(std::chrono::milliseconds timeout = 15s) {
    return wait_single_leader(nodes_, timeout);
  }

 private:
  TempDir dir_;
  std::string token_;
  std::uint64_t compact_after_ = 0;
  bool persist_thread_ = false;
  std::vector<NodeId> founders_;
  std::map<NodeId, std::uint16_t> ports_;
  std::map<NodeId, std::unique_ptr<Node>> nodes_;
};

}  // namespace rlr::testing
