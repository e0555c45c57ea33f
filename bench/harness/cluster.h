// rlr-bench: a cluster on loopback, either every node in this process (NodeBuilder over
// TCP) or one `rlr-node` process per node.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fault_proxy.h"
#include "rlr/client.h"
#include "rlr/node.h"

namespace rlrbench {

struct ClusterSpec {
  int nodes = 3;
  rlr::StorageKind storage = rlr::StorageKind::Memory;
  bool sync = false;
  std::string dir;  ///< data directories live below it (n1, n2, ...)
  std::uint32_t tick_ms = 10;
  std::uint32_t election_ticks = 15;
  std::uint32_t heartbeat_ticks = 3;
  std::string cluster_id = "rlr-bench";
  std::string node_binary;  ///< rlr-node, for the multi-process cluster
  std::string node_log_level = "warn";  ///< rlr-node --log-level (logs: <dir>/n<id>.log)
  /// In process only: NodeOptions::complete_on_raft_thread (callbacks on the raft thread).
  bool complete_on_raft_thread = false;
  /// In process only: NodeOptions::persist_thread (log writes on a storage thread).
  bool persist_thread = false;
  /// In process only: NodeOptions::compact_after_entries (0: the library's default).
  std::uint64_t compact_after_entries = 0;
  /// In process only: NodeOptions::memory_log_entries / memory_log_bytes (nullopt: defaults).
  std::optional<std::size_t> memory_log_entries;
  std::optional<std::size_t> memory_log_bytes;
  /// Multi-process only: every peer link goes through a LinkProxies proxy, so that
  /// ProcCluster::isolate() can cut a node off.
  bool proxied_links = false;
  /// Non-empty: every node traces its commit path (NodeOptions::trace_entries, rlr-node
  /// --trace) and writes the stamps to trace_file(id) when it stops.
  std::string trace_dir;
  /// Entries each node's trace keeps.
  std::size_t trace_entries = std::size_t{1} << 18;
  [[nodiscard]] std::string trace_file(std::uint64_t id) const;
};

/// A free TCP port on 127.0.0.1 (bound, read back, released).
[[nodiscard]] std::uint16_t free_port();

/// Every node in this process.
class InProcCluster {
 public:
  explicit InProcCluster(ClusterSpec spec) : spec_(std::move(spec)) {}
  ~InProcCluster() { stop(); }
  InProcCluster(const InProcCluster&) = delete;
  InProcCluster& operator=(const InProcCluster&) = delete;

  [[nodiscard]] rlr::Status start();
  /// The leader once one is elected and has committed an entry of its term; null on timeout.
  [[nodiscard]] rlr::Node* wait_leader(std::chrono::milliseconds timeout);
  /// Starts an empty node (id nodes+1) that waits to be added as a learner.
  [[nodiscard]] rlr::Result<rlr::Node*> start_joiner(rlr::MemberAddress& address);
  [[nodiscard]] rlr::Node& node(std::size_t i) { return *nodes_.at(i); }
  [[nodiscard]] std::size_t size() const { return nodes_.size(); }
  void stop();

 private:
  [[nodiscard]] rlr::NodeBuilder builder(std::uint64_t id, std::uint16_t port) const;
  ClusterSpec spec_;
  std::vector<std::uint16_t> ports_;
  std::vector<std::unique_ptr<rlr::Node>> nodes_;
};

/// One `rlr-node` process per node; each dies with this process (PR_SET_PDEATHSIG).
class ProcCluster {
 public:
  explicit ProcCluster(ClusterSpec spec) : spec_(std::move(spec)) {}
  ~ProcCluster() { stop(); }
  ProcCluster(const ProcCluster&) = delete;
  ProcCluster& operator=(const ProcCluster&) = delete;

  [[nodiscard]] rlr::Status start();
  /// "127.0.0.1:PORT" of every founding node.
  [[nodiscard]] std::vector<rlr::Address> bootstrap() const;
  [[nodiscard]] std::string address(std::uint64_t id) const;
  [[nodiscard]] pid_t pid(std::uint64_t id) const;
  /// Every live node process.
  [[nodiscard]] std::vector<pid_t> pids() const;
  /// kill -9 and reap.
  void kill9(std::uint64_t id);
  /// Sends `sig` (SIGSTOP, SIGCONT, ...) to the node's process.
  void signal(std::uint64_t id, int sig);
  /// Cuts the node's peer links (true) or heals them (false). Needs proxied_links.
  void isolate(std::uint64_t id, bool cut);
  /// Starts the node again on its data directory.
  [[nodiscard]] rlr::Status restart(std::uint64_t id);
  /// Starts an empty node (id nodes+1, role join); returns its address.
  [[nodiscard]] rlr::Result<rlr::MemberAddress> start_joiner();
  /// SIGTERM, then SIGKILL after a grace period; reaps everything.
  void stop();
  [[nodiscard]] const ClusterSpec& spec() const { return spec_; }
  /// Client options for this cluster.
  [[nodiscard]] rlr::ClientOptions client_options() const;

 private:
  struct Proc {
    std::uint64_t id = 0;
    std::uint16_t port = 0;
    pid_t pid = -1;
    bool join = false;
  };
  [[nodiscard]] rlr::Status spawn(Proc& p);
  ClusterSpec spec_;
  std::vector<Proc> procs_;
  std::unique_ptr<LinkProxies> proxies_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::uint16_t> link_port_;  ///< (from, to) -> proxy
};

}  // namespace rlrbench
