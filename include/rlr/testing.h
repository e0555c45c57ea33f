/// \file
/// librlr — the in-process test kit: a whole cluster in one process, for unit-testing a
/// state machine (and how it behaves across failures) without sockets and without sleeps.
///
/// A testing::Cluster runs N voters of the real runtime on an in-process network. Each node
/// keeps its log in memory; a crash throws away what the node had not yet synced (writes
/// still waiting for their simulated fsync), its state machines and its threads, and a
/// restart reopens the node on what survived. The network drops, delays and duplicates
/// messages and cuts links on request.
///
/// Two clocks:
///  - ClockMode::Manual (the default): the cluster runs on the calling thread, and time
///    moves only when the test advances it (advance(), run_until() and the waiting
///    helpers step it one millisecond at a time). Nothing runs in between: a test is
///    deterministic for a given ClusterOptions::seed, and a second of cluster time takes a
///    few milliseconds of CPU. Each node is the runtime's own replica and apply engine, as
///    in a production node, driven by the kit instead of the node's threads.
///  - ClockMode::RealTime: each node is a real rlr::Node with its threads, on the wall
///    clock; the waiting helpers poll. For tests of code that uses the rlr::Node API
///    itself (node()) or its threads.
///
/// Example (see examples/testing/ for a whole test):
/// \code{.cpp}
///   rlr::testing::ClusterOptions o;
///   o.voters = 3;
///   auto cluster = rlr::testing::Cluster::create(o).value();
///   REQUIRE(cluster->attach([](rlr::NodeId) { return std::make_shared<MyMachine>(); }).is_ok());
///   auto first = cluster->wait_for_leader().value();
///   REQUIRE(cluster->propose(rlr::Bytes::copy_of("order 1")).is_ok());
///   REQUIRE(cluster->crash(first).is_ok());            // the leader dies...
///   REQUIRE(cluster->propose(rlr::Bytes::copy_of("order 2")).is_ok());  // ...a new one takes over
///   REQUIRE(cluster->restart(first).is_ok());
///   REQUIRE(cluster->wait_applied(cluster->last_committed()));
///   REQUIRE(cluster->digests_agree().is_ok());
///   auto outputs = cluster->downstream();  // every output once, by key
/// \endcode
///
/// Bounds: the kit keeps every output and digest checkpoint it sees for the life of the
/// Cluster (it is made for tests, not for long runs), the newest 10,000 log lines, and at
/// most 2^20 messages in flight in Manual mode (beyond, a send is lost, as Raft tolerates).
///
/// Thread-safety: a Cluster is used from one thread (the test's). In RealTime mode the
/// callbacks of state machines and sinks run on the nodes' threads, as in production;
/// the kit's own records (emitted(), downstream(), log_lines()) are safe to read at any
/// time.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "rlr/export.h"
#include "rlr/node.h"
#include "rlr/state_machine.h"
#include "rlr/status.h"
#include "rlr/subscription.h"
#include "rlr/types.h"

/// For users' tests, in library rlr_testing: the in-process cluster (rlr/testing.h) and
/// the conformance suites of the storage and transport seams
/// (rlr/storage_conformance.h, rlr/transport_conformance.h).
namespace rlr::testing {

/// How a Cluster keeps time (see rlr/testing.h).
enum class ClockMode : std::uint8_t {
  Manual,    ///< virtual time, advanced by the test; single-threaded and deterministic
  RealTime,  ///< real rlr::Node objects and their threads, on the wall clock
};

/// Faults of the in-process network, applied to every message independently.
struct RLR_API NetworkFaults {
  double drop = 0;       ///< probability that a message is lost (0..1)
  double duplicate = 0;  ///< probability that a message arrives twice (0..1)
  /// Extra latency of each message, uniform in [delay_min, delay_max]; messages of one
  /// link may then overtake each other.
  std::chrono::milliseconds delay_min{0};
  /// Upper bound of the extra latency; at least delay_min.
  std::chrono::milliseconds delay_max{0};
};

/// How Cluster::create() builds a test cluster.
struct RLR_API ClusterOptions {
  /// Founding voters, with ids 1..voters (1 to 7).
  std::size_t voters = 3;
  /// Virtual time (deterministic) or real nodes on the wall clock; see ClockMode.
  ClockMode clock = ClockMode::Manual;
  /// Manual mode: every random choice (election timers, message fates, fsync times)
  /// derives from it, so a seed replays a test exactly. RealTime mode: the network's.
  std::uint64_t seed = 1;
  /// The nodes' options. The kit sets id, listen, initial_members, storage and data_dir
  /// for each node; everything else is taken as given (validate() rules apply). The
  /// defaults below suit tests: a 10 ms tick, elections after 150-300 ms, no automatic
  /// compaction (a state machine kept only in memory cannot follow a compacted log),
  /// invariant checks on. Null log_sink: the kit keeps the lines (log_lines()).
  NodeOptions node = default_node_options();
  /// Manual mode: how long a node's write takes to become durable, uniform in
  /// [fsync_min, fsync_max]. A crash loses the writes still waiting.
  std::chrono::milliseconds fsync_min{0};
  /// Upper bound of that range; at least fsync_min.
  std::chrono::milliseconds fsync_max{1};
  /// Manual mode: the network's base latency of every message (at least 1 ms).
  std::chrono::milliseconds latency{1};

  /// The default of `node`: cluster "test", a 10 ms tick, elections after 15 ticks,
  /// heartbeats every 3, a 3 s proposal timeout, no automatic compaction, invariant
  /// checks on.
  [[nodiscard]] static NodeOptions default_node_options();
};

/// Makes a node's state machine; called at attach() for each running node, and again
/// for a node each time it restarts (a restarted process starts a fresh one, which then
/// catches up from the log after its last_applied()).
using StateMachineFactory = std::function<std::shared_ptr<RoleAwareStateMachine>(NodeId)>;

/// What left the cluster through the egress gates, as one downstream system sees it when
/// it deduplicates by key.
struct RLR_API Downstream {
  /// Every distinct output by key (the first copy delivered).
  std::map<OutputKey, Output> outputs;
  /// Deliveries of a key already delivered (re-emissions after failovers).
  std::uint64_t redelivered = 0;
  /// Keys delivered twice with different topic or payload: each is a determinism bug.
  std::vector<OutputKey> conflicts;
  /// Outputs of a LeaderOnly attachment that a node delivered while it did not lead:
  /// each is a broken egress gate (a follower's side effect leaving the process).
  std::uint64_t not_leader = 0;
};

/// A whole cluster in one process, for tests (see rlr/testing.h): made by create(),
/// used from one thread.
class RLR_API Cluster {
 public:
  /// Builds and starts the cluster. Errors: InvalidArgument (voters out of range, node
  /// options that validate() rejects), and a node's start errors.
  [[nodiscard]] static Result<std::unique_ptr<Cluster>> create(ClusterOptions options);
  virtual ~Cluster() = default;
  Cluster(const Cluster&) = delete;
  Cluster& operator=(const Cluster&) = delete;

  /// The options the cluster was created with.
  [[nodiscard]] virtual const ClusterOptions& options() const = 0;
  /// Every node's id, 1..voters.
  [[nodiscard]] virtual std::vector<NodeId> ids() const = 0;
  /// Time since the cluster was created (virtual in Manual mode).
  [[nodiscard]] virtual std::chrono::milliseconds now() const = 0;

  // ---- time -----------------------------------------------------------------------
  /// Lets the cluster run for `d`: Manual mode steps virtual time; RealTime mode sleeps.
  virtual void advance(std::chrono::milliseconds d) = 0;
  /// Runs until `done()` holds (checked after each millisecond step, or poll) or
  /// `timeout` passed; returns whether it held.
  [[nodiscard]] virtual bool run_until(const std::function<bool()>& done,
                                       std::chrono::milliseconds timeout) = 0;

  // ---- state machines and egress --------------------------------------------------
  /// Attaches a state machine made by `make` on every running node, and on each node
  /// again whenever it restarts. Every output that passes a node's gate is recorded
  /// (emitted(), downstream()) and then handed to `options.sink` when one is set. When
  /// `options.sink` is null, the kit's own sink acknowledges each index once it
  /// delivered its outputs, so the egress watermark advances as with a prompt downstream.
  /// Errors: whatever Node::attach reports (Compacted).
  [[nodiscard]] virtual Status attach(StateMachineFactory make, ApplyOptions options) = 0;
  /// attach(make, ApplyOptions{}): LeaderOnly egress, recorded by the kit.
  [[nodiscard]] Status attach(StateMachineFactory make) { return attach(std::move(make), ApplyOptions{}); }
  /// The state machine attached `n`-th (0: the first attach()) running on node `id`
  /// now; null while the node is down or when there is no such attachment.
  [[nodiscard]] virtual std::shared_ptr<RoleAwareStateMachine> state_machine(NodeId id,
                                                                             std::size_t n = 0) const = 0;
  /// Every output that passed node `id`'s gates, in delivery order, across restarts.
  [[nodiscard]] virtual std::vector<Output> emitted(NodeId id) const = 0;
  /// Every node's emitted outputs merged as one downstream that deduplicates by key.
  [[nodiscard]] virtual Downstream downstream() const = 0;
  /// Compares the digest checkpoints every node recorded (across restarts) for each
  /// attachment: Ok when every index checkpointed by two nodes has the same digest.
  /// Errors: Corruption naming the first index, nodes and digests that differ.
  [[nodiscard]] virtual Status digests_agree() const = 0;
  /// The lowest applied index among the running nodes' state machines (0 when none is
  /// attached or no node runs).
  [[nodiscard]] virtual LogIndex min_applied() const = 0;

  // ---- requests -------------------------------------------------------------------
  /// Waits until one running node leads and every running node that is not cut off
  /// from it knows it. Errors: Timeout.
  [[nodiscard]] virtual Result<NodeId> wait_for_leader(std::chrono::milliseconds timeout) = 0;
  /// wait_for_leader() with a 5 s timeout.
  [[nodiscard]] Result<NodeId> wait_for_leader() { return wait_for_leader(std::chrono::seconds(5)); }
  /// The running node that leads the highest term; kNoNode when none does.
  [[nodiscard]] virtual NodeId leader() const = 0;
  /// Proposes `command` at node `id` and waits for the outcome (the node's errors as
  /// Node::propose reports them, without retrying). Errors also: InvalidArgument when
  /// `id` is unknown, Unavailable when it is down, Timeout.
  [[nodiscard]] virtual Result<ProposeResult> propose_at(NodeId id, Bytes command,
                                                         ClientSession session,
                                                         std::chrono::milliseconds timeout) = 0;
  /// Proposes `command` at node `id` without waiting: `done` runs while the cluster runs
  /// (Manual mode: inside advance() or a wait, on the calling thread; RealTime mode: on
  /// the node's completion thread). A node that crashes first never calls it. Errors
  /// (through `done`): as propose_at().
  virtual void propose_async(NodeId id, Bytes command, ClientSession session, ProposeCallback done) = 0;
  /// Proposes at the current leader, waiting for one first and proposing again at the
  /// new leader after NotLeader (never after another error, so nothing is appended
  /// twice unless `session` dedups it). Errors: Timeout, and the leader's errors.
  [[nodiscard]] virtual Result<ProposeResult> propose(Bytes command, ClientSession session,
                                                      std::chrono::milliseconds timeout) = 0;
  /// propose() without a session, with a 5 s timeout.
  [[nodiscard]] Result<ProposeResult> propose(Bytes command) {
    return propose(std::move(command), ClientSession{}, std::chrono::seconds(5));
  }
  /// Hands leadership from the current leader to `to`. Errors: as Node::transfer_leadership.
  [[nodiscard]] virtual Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) = 0;
  /// The users' commands node `id` has committed from `from` on, as subscriptions
  /// deliver them (rlr/subscription.h: sessions as fields, internal entries skipped).
  /// Errors: InvalidArgument (unknown id), Unavailable (down), Compacted (`from` is below
  /// the retained log).
  [[nodiscard]] virtual Result<std::vector<CommittedEntry>> committed(NodeId id, LogIndex from) const = 0;
  /// The highest commit index among the running nodes.
  [[nodiscard]] virtual LogIndex last_committed() const = 0;
  /// Waits until every state machine on every running node applied `index`; false when
  /// `timeout` passed first.
  [[nodiscard]] virtual bool wait_applied(LogIndex index, std::chrono::milliseconds timeout) = 0;
  /// wait_applied() with a 5 s timeout.
  [[nodiscard]] bool wait_applied(LogIndex index) { return wait_applied(index, std::chrono::seconds(5)); }
  /// Node `id`'s role as it sees itself; Follower while it is down, and for an unknown id.
  [[nodiscard]] virtual Role role(NodeId id) const = 0;
  /// What node `id` knows of the cluster. Errors: InvalidArgument for an unknown id,
  /// Unavailable while it is down.
  [[nodiscard]] virtual Result<ClusterInfo> cluster_info(NodeId id) const = 0;
  /// RealTime mode: node `id` as a real rlr::Node (null while down). Manual mode: null
  /// (its nodes have no threads to serve the blocking API; use the Cluster's methods).
  [[nodiscard]] virtual Node* node(NodeId id) = 0;

  // ---- faults ---------------------------------------------------------------------
  /// Applies `faults` to every message from now on, replacing the earlier ones; links cut
  /// by partition() or isolate() stay cut.
  virtual void set_network_faults(const NetworkFaults& faults) = 0;
  /// Cuts every link between nodes of different groups (both ways); nodes not named
  /// form a group of their own. Replaces any earlier partition.
  virtual void partition(const std::vector<std::vector<NodeId>>& groups) = 0;
  /// Cuts every link to and from `id`.
  virtual void isolate(NodeId id) = 0;
  /// Removes every cut (the random faults stay as set).
  virtual void heal() = 0;
  /// Kills node `id` as a power cut would: writes not yet synced are lost, its state
  /// machines and everything in memory are gone. Errors: InvalidArgument (unknown id),
  /// Unavailable (already down).
  [[nodiscard]] virtual Status crash(NodeId id) = 0;
  /// Starts node `id` again on what its storage kept, with fresh state machines from the
  /// attach() factories. Errors: InvalidArgument, Unavailable (already running), the
  /// node's start errors.
  [[nodiscard]] virtual Status restart(NodeId id) = 0;
  /// True while node `id` runs: false from crash() to restart(), and for an unknown id.
  [[nodiscard]] virtual bool running(NodeId id) const = 0;

  /// The nodes' log lines and the kit's own (crashes, restarts), newest last, at most
  /// 10,000, each as format_log_record(LogFormat::Text) lays it out; empty when
  /// ClusterOptions::node has a log_sink of its own (the lines go there).
  [[nodiscard]] virtual std::vector<std::string> log_lines() const = 0;

 protected:
  Cluster() = default;
};

}  // namespace rlr::testing
