/// \file
/// librlr — the replicator node: the public API a host process embeds.
///
/// A Node owns the Raft core, its storage and its transport. One internal thread owns the
/// core; committed entries reach subscribers on their own threads. Every method here is
/// thread-safe and none throws.
///
/// Example:
/// \code{.cpp}
///   auto node = rlr::NodeBuilder()
///                   .cluster_id("venue-a")
///                   .id(rlr::NodeId{1})
///                   .listen("127.0.0.1", 7001)
///                   .member(rlr::NodeId{1}, "127.0.0.1", 7001)
///                   .member(rlr::NodeId{2}, "127.0.0.1", 7002)
///                   .member(rlr::NodeId{3}, "127.0.0.1", 7003)
///                   .data_dir("/var/lib/rlr/n1")
///                   .build();
///   if (!node) { /* node.status() says why */ }
///   auto r = node.value()->propose_sync(rlr::Bytes::copy_of("order 42"), std::chrono::seconds(1));
///   if (!r && r.status().code() == rlr::ErrorCode::NotLeader) { /* ask r.status().leader_hint() */ }
/// \endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "rlr/export.h"
#include "rlr/cluster.h"
#include "rlr/log.h"
#include "rlr/metrics.h"
#include "rlr/state_machine.h"
#include "rlr/status.h"
#include "rlr/subscription.h"
#include "rlr/types.h"

namespace rlr {

class Storage;    // rlr/storage.h
class Transport;  // rlr/transport.h

/// The built-in stores of a node's log and metadata: RocksDb, durable, in
/// NodeOptions::data_dir; Memory, gone with the process (tests, benchmarks).
enum class StorageKind : std::uint8_t { RocksDb, Memory };

/// The most log entries NodeOptions::trace_entries may keep (about 1.5 GiB of records).
inline constexpr std::size_t kMaxTraceEntries = std::size_t{1} << 24;

/// Every setting of a node; NodeBuilder fills it in with defaults a production cluster
/// on one LAN can start from.
struct RLR_API NodeOptions {
  /// Names the cluster: 1 to 128 printable ASCII characters, no spaces. Peers, clients
  /// and stores of another cluster are refused (WrongCluster).
  std::string cluster_id;
  /// This node's id: positive, unique in the cluster, and one of initial_members when
  /// those are given.
  NodeId id;
  /// Where peers and clients reach this node; port 0: any free port.
  Address listen{"127.0.0.1", 0};
  /// The founding voters (including this node). Empty for a node that will join as a
  /// learner later; it then waits for the leader to contact it.
  std::vector<MemberAddress> initial_members;
  /// Directory of the RocksDB store; required with StorageKind::RocksDb, unused with
  /// Memory or a store given to NodeBuilder::storage(std::shared_ptr<Storage>).
  std::string data_dir;
  /// Which built-in store keeps the log and metadata (see data_dir).
  StorageKind storage = StorageKind::RocksDb;
  bool sync = true;                      ///< fsync every persistence step
  std::string auth_token;                ///< shared secret checked in every handshake
  std::chrono::milliseconds tick{10};    ///< the Raft clock's period; timeouts count ticks
  std::uint32_t election_ticks = 15;     ///< election timeout in [e, 2e) ticks
  /// The leader's heartbeat interval in ticks; 0 < heartbeat_ticks < election_ticks.
  std::uint32_t heartbeat_ticks = 3;
  /// Fast failover: when a follower's TCP connection to its leader drops (a crashed
  /// process's sockets close at once), it starts a pre-vote after this many ticks times
  /// (1 + 2 x its rank by id among the other voters) instead of a whole election timeout.
  /// A pre-vote still needs a majority that no longer hears from the leader, so a
  /// connection that drops while the leader lives changes nothing. 0: off.
  std::uint32_t disconnect_campaign_ticks = 1;
  /// Peer-link liveness: every link carries a keepalive (a Ping frame) at least each
  /// heartbeat interval, and a link that heard nothing for `link_silence` is closed
  /// and redialled at once. A follower whose link from its leader goes silent treats
  /// that like a dropped connection (disconnect_campaign_ticks above), so a paused or
  /// partitioned leader is replaced without waiting for a whole election timeout, and a
  /// healed partition is rejoined without waiting on TCP's retransmission backoff.
  /// Nodes without it interoperate (the handshake says who sends keepalives).
  bool link_keepalive = true;
  /// 0: the minimum election timeout (election_ticks x tick). Otherwise at least three
  /// heartbeat intervals.
  std::chrono::milliseconds link_silence{0};
  /// Limits of one AppendEntries message: at most max_append_entries entries and about
  /// max_append_bytes of payload. Positive; max_append_bytes + 64 KiB must fit in
  /// max_frame_bytes.
  std::size_t max_append_entries = 4096;
  /// See max_append_entries.
  std::size_t max_append_bytes = 1U << 20;
  /// AppendEntries messages sent to one follower and not yet acknowledged: the window of
  /// its replication pipeline. Positive.
  std::size_t max_inflight_appends = 64;
  /// Proposals accepted and not yet answered (waiting to commit, or committed with their
  /// callback still queued for the completion thread); beyond: propose fails with Busy.
  /// Also the bound on pending reads and on pending membership changes, each.
  std::size_t max_pending_proposals = 65536;
  /// Recent committed entries kept in memory for subscriptions and attached state
  /// machines (at least 1024 are kept); a reader further behind reads from the log in
  /// storage. Positive.
  std::size_t subscriber_buffer_entries = 65536;
  /// A snapshot sent to a follower or learner travels in pieces of this many bytes.
  /// Positive.
  std::size_t snapshot_chunk_bytes = 1U << 20;
  std::uint64_t compact_after_entries = 1'000'000;  ///< 0: never compact automatically
  /// The log entries a node keeps in memory: at most this many (0: no limit) and about
  /// this many payload bytes (0: no limit). Older entries, once durable and applied, are
  /// dropped from memory and read back from storage when a follower or learner that lags
  /// further needs them (the log on disk keeps everything since the last snapshot, see
  /// compact_after_entries). Bounds a node's memory by these, not by the retained log.
  std::size_t memory_log_entries = 262'144;
  /// See memory_log_entries.
  std::size_t memory_log_bytes = std::size_t{64} << 20;
  /// A proposal not committed within this long is answered Timeout.
  std::chrono::milliseconds proposal_timeout{5000};
  /// The largest frame this node sends or accepts, in bytes, on peer links and client
  /// connections (at least 4096). A custom transport is handed no larger frame.
  std::size_t max_frame_bytes = 64U << 20;
  /// A client session expires when it has not been used for this many log entries (a
  /// deterministic, replicated rule: every replica expires it at the same index).
  std::uint64_t session_ttl_entries = 10'000'000;
  std::size_t max_sessions = 100'000;  ///< beyond: the least recently used expires
  /// A follower that receives a client's proposal relays it to the leader and returns
  /// the leader's answer, instead of answering NotLeader (one extra hop; see
  /// docs/leader-routing.md). Off: clients follow the NotLeader hint themselves.
  bool forward_proposals = false;
  /// Run the callbacks of propose() on the node's raft thread at the end of its turn,
  /// instead of handing them to the completion thread: one thread hand-off (a futex
  /// wake-up) less per commit. Only for short, non-blocking callbacks: while one runs,
  /// the node neither replicates nor commits. From such a callback, propose(),
  /// role(), leader(), leader_address() and cluster_info() work;
  /// propose_sync(), read_index(), add_learner(), promote(), remove() and
  /// transfer_leadership() return InvalidArgument at once (they would wait for the
  /// thread that runs the callback); stop() only requests the stop (~Node, or a later
  /// stop() from another thread, completes it; a callback must never destroy the Node).
  /// Off: callbacks run on a dedicated completion thread.
  bool complete_on_raft_thread = false;
  /// Write the log on a storage thread of its own, so the raft thread keeps stepping
  /// messages and proposals during an fsync; steps that queue meanwhile are merged into
  /// the next write (one fsync). Acknowledgements still leave only once durable. Off
  /// (the default): the raft thread writes each step itself and waits for it. It pays
  /// where throughput is bound by the fsyncs rather than the CPU: on the 2-vCPU machine of
  /// bench/README.md, 1.07-1.17M vs 0.94-0.96M entries/s (64 B, 3 nodes in one process),
  /// for two more thread hand-offs per commit (p50 commit latency +4%, p99 more).
  bool persist_thread = false;
  /// Slow-disk hand-off: a leader whose own log writes have all taken at least
  /// `slow_disk_write` for `slow_disk_period` hands leadership to the voter that stores
  /// the most of its log (a leadership transfer; logged at Warn), then not again for
  /// another period. While its writes are that slow every commit waits for them, and a
  /// write longer than an election timeout makes the followers elect anyway, abruptly.
  /// 0 (either): off. Both in [0, 1 h].
  std::chrono::milliseconds slow_disk_write{100};
  /// See slow_disk_write.
  std::chrono::milliseconds slow_disk_period{1000};
  /// Checks the runtime's and the Raft core's invariants after every step (applied <=
  /// commit, queues within their bounds, one thread in the runtime at a time, and the
  /// core's own) and aborts the process on a violation: a violated invariant means the
  /// state is already wrong. For tests and soak runs; off, each check point costs one
  /// branch.
  bool check_invariants = false;
  /// Commit-path tracing, to find where a slow commit spends its time. When positive, the
  /// node stamps the way of each of the last `trace_entries` log entries through it:
  /// proposal received, appended, first append sent, append arrived (on a follower),
  /// write synced, first follower acknowledgement (and which follower), committed, reply
  /// handed to the client's connection. At stop() it writes them to `trace_path`, one
  /// line per entry in steady-clock nanoseconds (comparable across the processes of one
  /// machine; rlr-bench --trace joins every node's file with its clients' timings). Costs
  /// about 90 bytes per entry of trace_entries, allocated at start (build() fails with
  /// InvalidArgument when it cannot be), and at each stamp one clock read and one lock
  /// per batch of entries. 0 (the default): off, one untaken branch per stamp. At most
  /// kMaxTraceEntries.
  std::size_t trace_entries = 0;
  /// Where the trace goes at stop() (replaced); required when trace_entries > 0. A
  /// failure to write it is logged (Warn), not returned.
  std::string trace_path;
  /// Where the node's log lines go: its runtime ("node") and its transport
  /// ("transport"). Null: make_stderr_log_sink() (text, Info and above). The sink is
  /// shared, so one sink may serve several nodes of a process; LogRecord::node tells
  /// them apart.
  std::shared_ptr<LogSink> log_sink;
};

/// Receives a proposal's outcome: where the entry committed, or why not (Node::propose()).
using ProposeCallback = std::function<void(Result<ProposeResult>)>;

/// A replicator node (see rlr/node.h), built by NodeBuilder::build(). Every method is
/// thread-safe and none throws. Destroying a Node stops it (stop()).
class RLR_API Node {
 public:
  virtual ~Node() = default;

  /// Appends `command` to the replicated log. `done` runs (on an internal thread, never
  /// under a lock of the node; see NodeOptions::complete_on_raft_thread) once
  /// the entry committed, or with an error: NotLeader (with the leader's id when known),
  /// TransferInProgress, Busy (too many proposals pending), Timeout (no outcome within
  /// proposal_timeout, or this node lost leadership before the entry committed; either
  /// way the entry may still commit), ShuttingDown.
  virtual void propose(Bytes command, ProposeCallback done) = 0;
  /// propose() with a client session: a retry of a (client_id, sequence) that already
  /// committed returns the original index and term instead of appending again.
  virtual void propose(Bytes command, ClientSession session, ProposeCallback done) = 0;
  /// Blocking form of propose().
  [[nodiscard]] virtual Result<ProposeResult> propose_sync(Bytes command,
                                                           std::chrono::milliseconds timeout) = 0;
  /// Streams committed entries starting at `from` (1 = the beginning): users' commands,
  /// and the runtime's own entries too when `options` ask (rlr/subscription.h).
  /// Errors: Compacted when `from` is below the first retained index.
  [[nodiscard]] virtual Result<std::unique_ptr<Subscription>> subscribe(LogIndex from,
                                                                        SubscribeOptions options) = 0;
  /// subscribe(from, {}): users' commands only.
  [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(LogIndex from) {
    return subscribe(from, SubscribeOptions{});
  }
  /// This node's role as it sees itself now.
  [[nodiscard]] virtual Role role() const = 0;
  /// The leader this node knows of; kNoNode when none (e.g. during an election).
  [[nodiscard]] virtual NodeId leader() const = 0;
  /// The leader's address; empty when no leader is known or its address is not.
  [[nodiscard]] virtual Address leader_address() const = 0;
  /// This node's view of the cluster; the per-member details are meaningful on the
  /// leader.
  [[nodiscard]] virtual ClusterInfo cluster_info() const = 0;
  /// A snapshot of this node's metrics (rlr/metrics.h): counters since the node started,
  /// current gauges, latency and size histograms, and its recent role changes. Takes a
  /// turn of the node's internal thread (like cluster_info()); when that thread does
  /// not answer within 2 s, the gauges it owns are missing. Cheap enough to call every
  /// second. A Node that keeps no metrics (a test double) returns none, the default.
  [[nodiscard]] virtual NodeMetrics metrics() const { return {}; }
  /// Linearizable read barrier (thesis §6.4): returns an index such that a state
  /// machine that has applied it reflects every write committed before the call.
  [[nodiscard]] virtual Result<LogIndex> read_index(std::chrono::milliseconds timeout) = 0;

  // Membership. Each waits until the change is committed (or fails).
  /// Adds `member` as a learner (it receives the log, never votes) and records its
  /// address. Errors: NotLeader, InvalidArgument (id 0, or already a member),
  /// ChangeInProgress (an earlier change is not yet committed), TransferInProgress,
  /// Timeout (the change may still commit), ShuttingDown.
  [[nodiscard]] virtual Status add_learner(const MemberAddress& member,
                                           std::chrono::milliseconds timeout) = 0;
  /// Makes learner `id` a voter (through joint consensus). Errors: as add_learner(), and
  /// InvalidArgument when `id` is not a learner or trails the leader's log by more than
  /// 1024 entries (let it catch up first).
  [[nodiscard]] virtual Status promote(NodeId id, std::chrono::milliseconds timeout) = 0;
  /// Removes voter or learner `id`. Errors: as add_learner(), and InvalidArgument when
  /// `id` is not a member or is the last voter.
  [[nodiscard]] virtual Status remove(NodeId id, std::chrono::milliseconds timeout) = 0;
  /// Hands leadership to voter `to`: brings its log up to date, then has it campaign;
  /// returns once `to` leads. Meanwhile proposals fail with TransferInProgress. Errors:
  /// NotLeader, InvalidArgument (`to` is not a voter), Timeout (this node may still
  /// lead), ShuttingDown.
  [[nodiscard]] virtual Status transfer_leadership(NodeId to, std::chrono::milliseconds timeout) = 0;

  /// Runs `sm` on its own thread: it applies every committed command after
  /// sm->last_applied(), with egress gated as `options` says. A slow or failing state
  /// machine never stalls replication (it reads committed entries at its own pace). The
  /// loop runs while the returned ApplyRunner is held: releasing it stops the loop.
  /// Errors: Compacted when sm->last_applied() is below the retained log.
  [[nodiscard]] virtual Result<std::shared_ptr<ApplyRunner>> attach(
      std::shared_ptr<RoleAwareStateMachine> sm, ApplyOptions options) = 0;

  /// Stops the node: pending proposals fail with ShuttingDown, storage is closed cleanly.
  /// Idempotent. It may be called from a callback of this node (the completion thread
  /// then ends once the callback returns); destroying the Node from its own callback is
  /// not allowed (the destructor joins the thread the callback runs on).
  virtual void stop() = 0;

  /// Replays committed entries [from, to] of this node's log into `sm` with replay=true
  /// and egress suppressed (outputs are still digested every `digest_interval` entries);
  /// returns the digest checkpoints seen. `to` is capped at the last committed index.
  /// Errors: Compacted when `from` is below the retained log; storage read errors.
  /// Thread-safe; reads on the caller's thread. rlr::replay(node, ...) is the same call.
  /// A Node that keeps no log (a test double) answers InvalidArgument, the default.
  [[nodiscard]] virtual Result<std::vector<DigestCheckpoint>> replay(
      RoleAwareStateMachine& /*sm*/, LogIndex /*from*/, LogIndex /*to*/,
      std::uint64_t /*digest_interval*/) {
    return Status{ErrorCode::InvalidArgument, "this Node keeps no log to replay"};
  }
};

/// Builds a node from options with validation (clear InvalidArgument errors).
class RLR_API NodeBuilder {
 public:
  /// Sets NodeOptions::cluster_id.
  NodeBuilder& cluster_id(std::string v) { o_.cluster_id = std::move(v); return *this; }
  /// Sets NodeOptions::id.
  NodeBuilder& id(NodeId v) { o_.id = v; return *this; }
  /// Sets NodeOptions::listen.
  NodeBuilder& listen(Address a) { o_.listen = std::move(a); return *this; }
  /// Sets NodeOptions::listen to `host`:`port`.
  NodeBuilder& listen(std::string host, std::uint16_t port) { return listen(Address{std::move(host), port}); }
  /// Adds a founding voter to NodeOptions::initial_members (list this node too).
  NodeBuilder& member(NodeId id, Address a) {
    o_.initial_members.push_back(MemberAddress{id, std::move(a)});
    return *this;
  }
  /// member(id, Address{host, port}).
  NodeBuilder& member(NodeId id, std::string host, std::uint16_t port) {
    return member(id, Address{std::move(host), port});
  }
  /// Sets NodeOptions::data_dir.
  NodeBuilder& data_dir(std::string v) { o_.data_dir = std::move(v); return *this; }
  /// Sets NodeOptions::storage.
  NodeBuilder& storage(StorageKind v) { o_.storage = v; return *this; }
  /// Keeps the node's log and metadata in `s` (rlr/storage.h) instead of a built-in
  /// store; data_dir and the storage kind are then unused. build() checks that `s`
  /// belongs to this cluster and node (WrongCluster otherwise). The node must be the only
  /// user of `s` while it runs. Null: back to the storage kind.
  NodeBuilder& storage(std::shared_ptr<Storage> s) { storage_ = std::move(s); return *this; }
  /// Sets NodeOptions::sync.
  NodeBuilder& sync(bool v) { o_.sync = v; return *this; }
  /// Sets NodeOptions::auth_token.
  NodeBuilder& auth_token(std::string v) { o_.auth_token = std::move(v); return *this; }
  /// Sets NodeOptions::tick.
  NodeBuilder& tick(std::chrono::milliseconds v) { o_.tick = v; return *this; }
  /// Sets NodeOptions::election_ticks.
  NodeBuilder& election_ticks(std::uint32_t v) { o_.election_ticks = v; return *this; }
  /// Sets NodeOptions::heartbeat_ticks.
  NodeBuilder& heartbeat_ticks(std::uint32_t v) { o_.heartbeat_ticks = v; return *this; }
  /// Sets NodeOptions::disconnect_campaign_ticks.
  NodeBuilder& disconnect_campaign_ticks(std::uint32_t v) { o_.disconnect_campaign_ticks = v; return *this; }
  /// Sets NodeOptions::max_append_entries.
  NodeBuilder& max_append_entries(std::size_t v) { o_.max_append_entries = v; return *this; }
  /// Sets NodeOptions::max_append_bytes.
  NodeBuilder& max_append_bytes(std::size_t v) { o_.max_append_bytes = v; return *this; }
  /// Sets NodeOptions::max_inflight_appends.
  NodeBuilder& max_inflight_appends(std::size_t v) { o_.max_inflight_appends = v; return *this; }
  /// Sets NodeOptions::compact_after_entries.
  NodeBuilder& compact_after_entries(std::uint64_t v) { o_.compact_after_entries = v; return *this; }
  /// Sets NodeOptions::memory_log_entries.
  NodeBuilder& memory_log_entries(std::size_t v) { o_.memory_log_entries = v; return *this; }
  /// Sets NodeOptions::memory_log_bytes.
  NodeBuilder& memory_log_bytes(std::size_t v) { o_.memory_log_bytes = v; return *this; }
  /// Sets NodeOptions::proposal_timeout.
  NodeBuilder& proposal_timeout(std::chrono::milliseconds v) { o_.proposal_timeout = v; return *this; }
  /// Sets NodeOptions::link_silence.
  NodeBuilder& link_silence(std::chrono::milliseconds v) { o_.link_silence = v; return *this; }
  /// Sets NodeOptions::complete_on_raft_thread.
  NodeBuilder& complete_on_raft_thread(bool v) { o_.complete_on_raft_thread = v; return *this; }
  /// Sets NodeOptions::persist_thread.
  NodeBuilder& persist_thread(bool v) { o_.persist_thread = v; return *this; }
  /// Sets NodeOptions::slow_disk_write and slow_disk_period (0: off).
  NodeBuilder& slow_disk(std::chrono::milliseconds write, std::chrono::milliseconds period) {
    o_.slow_disk_write = write;
    o_.slow_disk_period = period;
    return *this;
  }
  /// Sets NodeOptions::trace_entries and NodeOptions::trace_path.
  NodeBuilder& trace(std::size_t entries, std::string path) {
    o_.trace_entries = entries;
    o_.trace_path = std::move(path);
    return *this;
  }
  /// Sets NodeOptions::log_sink.
  NodeBuilder& log_sink(std::shared_ptr<LogSink> v) { o_.log_sink = std::move(v); return *this; }
  /// Carries the node's peer traffic over `t` (rlr/transport.h) instead of the built-in
  /// TCP transport. The node then listens on no socket: it serves no rlr::Client (propose
  /// in process), and forward_proposals must stay off. `listen` is only the address it
  /// records for itself. Null: back to TCP.
  NodeBuilder& transport(std::shared_ptr<Transport> t) { transport_ = std::move(t); return *this; }
  /// Replaces every option at once; storage() and transport() stay as set.
  NodeBuilder& options(NodeOptions v) { o_ = std::move(v); return *this; }
  /// The options as set so far (validated only by build()).
  [[nodiscard]] const NodeOptions& options() const { return o_; }
  /// Validates the options, opens storage and starts the node (on the TCP transport, or
  /// the one given to transport()). Errors: InvalidArgument (bad option, or
  /// forward_proposals with a custom transport), and whatever opening storage, binding
  /// the listen address or starting the custom transport reports (IoError,
  /// WrongCluster, Corruption, ...).
  [[nodiscard]] Result<std::unique_ptr<Node>> build() const;

 private:
  NodeOptions o_;
  std::shared_ptr<Storage> storage_;
  std::shared_ptr<Transport> transport_;
};

/// Checks options without starting anything.
[[nodiscard]] RLR_API Status validate(const NodeOptions& options);

}  // namespace rlr
