/// \file
/// librlr — the client library: talks to a cluster over TCP, finds the leader by itself.
///
/// A Client knows a bootstrap list of node addresses. It asks them who leads (GetLeader),
/// follows NotLeader hints, and retries with backoff. Every proposal carries the client's
/// session (a random client id and an increasing sequence number), so a retry after a
/// timeout or a failover is applied once: the cluster answers a retry of a committed
/// proposal with the original index. Thread-safe; many proposals may be outstanding.
///
/// Example:
/// \code{.cpp}
///   rlr::ClientOptions o;
///   o.cluster_id = "venue-a";
///   o.bootstrap = {{"127.0.0.1", 7001}, {"127.0.0.1", 7002}, {"127.0.0.1", 7003}};
///   auto c = rlr::Client::connect(o);
///   auto r = c.value()->propose_sync(rlr::Bytes::copy_of("BUY 100 XYZ @ 10.5"));
///   if (r) std::printf("sequenced at %llu\n", (unsigned long long)r.value().index.value());
/// \endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "rlr/export.h"
#include "rlr/node.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// How Client::connect() reaches a cluster, and how long a request keeps trying.
/// connect() checks them (InvalidArgument).
struct RLR_API ClientOptions {
  /// The cluster's NodeOptions::cluster_id (required); a node of another cluster refuses
  /// the handshake (WrongCluster).
  std::string cluster_id;
  std::vector<Address> bootstrap;  ///< some nodes of the cluster (Address::parse reads "host:port")
  /// Shared secret of the handshake: the nodes' NodeOptions::auth_token.
  std::string auth_token;
  std::chrono::milliseconds request_timeout{5000};  ///< per attempt
  std::chrono::milliseconds total_timeout{30000};   ///< across retries and redirects
  /// Delay before a retry: starts at backoff_min and doubles per attempt up to
  /// backoff_max, each delay drawn at random between half of it and all of it.
  /// backoff_min must be positive.
  std::chrono::milliseconds backoff_min{20};
  /// Upper bound of the retry delay; at least backoff_min.
  std::chrono::milliseconds backoff_max{1000};
  std::uint64_t client_id = 0;  ///< 0: a random id is drawn
  /// The largest frame the client sends or accepts, in bytes (at least 4096): a larger
  /// request fails with InvalidArgument before it is sent, and a larger incoming frame
  /// closes its connection.
  std::size_t max_frame_bytes = 64U << 20;
  /// Liveness of the client's connections. A connection that has heard nothing from its
  /// node for a keepalive interval sends a Ping, which the node echoes (at most one per
  /// interval, 24 bytes each way). A connection that received nothing at all (no reply,
  /// no echo, no subscribed entries) for `silence_timeout` is closed, and its node is
  /// treated as unreachable for twice the silence timeout: answers that name it as the
  /// leader are disregarded (a false alarm costs at most that long), and meanwhile
  /// leader discovery asks the other nodes at least once per keepalive interval. Every
  /// request that was outstanding on the connection is sent again through leader
  /// discovery, so a paused, hung or cut-off leader costs about the silence timeout plus
  /// the cluster's election rather than `request_timeout`:
  ///  - a proposal carries this client's session (client_id, sequence), and every
  ///    proposal made through Client has one, so a proposal sent again is applied once:
  ///    if the silent node had appended it and it commits, the retry is answered with the
  ///    original index. (A proposal without a session, as Node::propose allows in
  ///    process, would be appended again by a retry; Client never makes one.)
  ///  - leader(), cluster_info(), role() and read_index() change nothing and are simply
  ///    asked again; membership changes and leadership transfers carry no session, so a
  ///    retry may find the change already made by the first attempt.
  ///  - a subscription resubscribes on another node from the first index it has not
  ///    received, and the caller sees no gap and no repeat.
  ///
  /// A leader that keeps answering Pings while requests wait on it with no reply for
  /// the silence timeout (cut off from the other nodes, until it notices and steps down)
  /// makes the client ask the other nodes who leads, once per keepalive interval while
  /// that lasts, and move the waiting requests (as above) to another leader they name.
  /// Every connection's connect and handshake must also complete within the silence
  /// timeout. Silence is judged on received bytes only, and not while a subscription
  /// has stopped reading because its caller is behind. A request frame too large to
  /// cross the path within the silence timeout can be taken for silence.
  /// A node without the feature (wire::kFeatureClientKeepalive, negotiated in the
  /// handshake) gets no Pings; its connections are then judged by request_timeout only.
  /// 0: off. Errors from connect(): InvalidArgument when negative.
  std::chrono::milliseconds keepalive_interval{50};
  /// 0: four keepalive intervals. Otherwise at least two keepalive intervals, so that an
  /// echo may take one interval to come back. Errors from connect(): InvalidArgument
  /// when shorter, negative, or set while keepalive_interval is 0.
  std::chrono::milliseconds silence_timeout{0};
};

/// A connection to a cluster: finds and follows the leader, retries with a session,
/// and carries subscriptions across failovers (see rlr/client.h). Made by connect().
/// Thread-safe. Destroying it fails the requests still outstanding with ShuttingDown.
class RLR_API Client {
 public:
  virtual ~Client() = default;
  /// Connects to some node of the bootstrap list and learns the leader.
  /// Errors: InvalidArgument (bad options), Unavailable (no node reachable),
  /// WrongCluster / InvalidArgument from a refused handshake.
  [[nodiscard]] static Result<std::unique_ptr<Client>> connect(const ClientOptions& options);

  /// Proposes a command to the leader (found and followed automatically) and waits for
  /// it to commit. Retries are idempotent (client session).
  [[nodiscard]] virtual Result<ProposeResult> propose_sync(Bytes command) = 0;
  /// Asynchronous propose_sync(); `done` runs on the client's thread. Many may be
  /// outstanding (10,000 operations at most; beyond, Busy). The one exception to the
  /// thread: when 10,000 calls are still waiting for the client's thread to take them,
  /// `done` runs at once on the calling thread with Busy. Named as Node's are: propose()
  /// answers through a callback, propose_sync() waits.
  virtual void propose(Bytes command, std::function<void(Result<ProposeResult>)> done) = 0;
  /// Streams committed entries from `from` (rlr/subscription.h): users' commands, and the
  /// runtime's own entries when `options` ask. The stream survives reconnects and
  /// failovers: after a broken connection it resubscribes (to any node) from the index
  /// after the last one it received, so batches stay contiguous.
  /// Errors of its next(): Compacted (the next index is no longer retained anywhere it
  /// asked), Unavailable (no node answered within the client's total timeout; the
  /// subscription keeps trying).
  [[nodiscard]] virtual Result<std::unique_ptr<Subscription>> subscribe(LogIndex from,
                                                                        SubscribeOptions options) = 0;
  /// subscribe(from, {}): users' commands only.
  [[nodiscard]] Result<std::unique_ptr<Subscription>> subscribe(LogIndex from) {
    return subscribe(from, SubscribeOptions{});
  }

  /// The leader's id, as the node the client reaches through leader discovery names it.
  /// Errors: Unavailable when no node names a leader within total_timeout.
  [[nodiscard]] virtual Result<NodeId> leader() = 0;
  /// The leader's answer (or the node's at `at` when given).
  [[nodiscard]] virtual Result<ClusterInfo> cluster_info(const Address& at = {}) = 0;
  /// The role of the node at `at`, as it sees itself.
  [[nodiscard]] virtual Result<Role> role(const Address& at) = 0;
  /// Linearizable read barrier on the leader.
  [[nodiscard]] virtual Result<LogIndex> read_index() = 0;

  /// Has the leader run Node::add_learner(): `member` joins as a learner, and the call
  /// returns once the change is committed. The leader waits at most request_timeout.
  /// Errors: as Node::add_learner(), and as any request (Unavailable, Timeout). A retry
  /// after a lost reply may find the change already made (InvalidArgument).
  [[nodiscard]] virtual Status add_learner(const MemberAddress& member) = 0;
  /// Has the leader make learner `id` a voter (Node::promote()); as add_learner().
  [[nodiscard]] virtual Status promote(NodeId id) = 0;
  /// Has the leader remove member `id` (Node::remove()); as add_learner().
  [[nodiscard]] virtual Status remove(NodeId id) = 0;
  /// Has the leader hand leadership to voter `to` (Node::transfer_leadership()); returns
  /// once `to` leads. Errors: as Node::transfer_leadership(), and as any request.
  [[nodiscard]] virtual Status transfer_leadership(NodeId to) = 0;

  /// The session id every proposal of this client carries: ClientOptions::client_id, or
  /// the random id drawn when that was 0.
  [[nodiscard]] virtual std::uint64_t client_id() const = 0;
};

}  // namespace rlr
