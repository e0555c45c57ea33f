// rlr::Client's implementation (private to the client library): leader discovery,
// redirects, retries with backoff, client sessions.
//
// Everything stateful runs on the client's io thread: the connection to the leader, the
// table of operations, the discovery probes. Public methods post to that thread; the
// blocking ones wait for the operation's outcome.
//
// An operation lives until it has an outcome or its total deadline passes:
//   Waiting  -- no ready connection to the leader yet (discovery may be running)
//   InFlight -- sent under one request id; a reply or the attempt timeout ends the attempt
//   Backoff  -- waiting out a backoff delay before the next attempt
// Retries of a proposal carry the same (client_id, sequence), so the cluster applies it
// once however many attempts reach it.
//
// Discovery: when the leader's address is not known, every candidate address (the
// bootstrap list plus addresses learned from replies) is asked GetLeader in parallel;
// the first answer naming a leader with an address wins. Rounds repeat with backoff
// while operations wait.
//
// Liveness (ClientOptions::keepalive_interval): a connection that hears nothing for the
// silence timeout closes itself as silent. Its node (by id, and by address, since a node
// may be reached at several) becomes suspect for two silence timeouts: answers naming it
// as the leader (probe answers, NotLeader hints) are disregarded, so the requests go to
// the other nodes; a node suspected only by address (it never finished a handshake) is
// forgiven when it answers a probe. While any suspicion lasts, discovery rounds repeat at
// least once per keepalive interval, since the cluster is expected to replace a silent
// leader within about that time. Operations in flight on the silent connection wait for
// the next leader like those of any broken connection. A leader that keeps answering
// Pings while requests wait on it for a silence timeout with no reply (cut off from the
// other nodes until it steps down) sets off a discovery round beside the connection; if
// the other nodes name another leader, the waiting requests move there (watch_stall).
//
// Files: client.cpp (the public calls, one-shot requests, shutdown),
// client_operations.cpp (operations and their deadlines), client_connection.cpp (the
// connection to the leader and its replies), client_discovery.cpp (finding the leader,
// suspicion of silent nodes).
#pragma once

#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <boost/asio.hpp>

#include "client/connection.h"
#include "client/io_thread.h"
#include "client/suspects.h"
#include "rlr/client.h"
#include "wire/client_codec.h"

namespace rlr::client {

using Clock = std::chrono::steady_clock;
using Reply = Result<wire::ClientReply>;
using ReplyFn = std::function<void(Reply)>;

/// Most operations outstanding at once; more fail with Busy.
inline constexpr std::size_t kMaxOutstanding = 10000;
/// Most proposals sent and not yet answered; more wait in the client, in order. The
/// cluster remembers the results of the last 128 sequence numbers of each client
/// (SessionTable::kWindow), so a retry is always answered with the original entry only
/// while no more than that many are in flight.
inline constexpr std::size_t kMaxProposalsInFlight = 128;
/// Most addresses remembered besides the bootstrap list.
inline constexpr std::size_t kMaxLearnedAddresses = 64;
/// Most nodes, and most addresses, suspect at once (the bootstrap list and the learned
/// addresses fit); when full, the suspicion that ends first is dropped to make room.
inline constexpr std::size_t kMaxSuspects = 128;

/// A closed connection's error that no retry cures: the node refused the handshake
/// (WrongCluster; InvalidArgument: a bad token, say) or the address is malformed.
inline bool is_refusal(const Status& s) {
  return s.code() == ErrorCode::WrongCluster || s.code() == ErrorCode::InvalidArgument;
}

class ClientImpl final : public Client {
 public:
  /// REQUIRES: check_options(o) is ok.
  explicit ClientImpl(const ClientOptions& o);
  /// Fails whatever is outstanding with ShuttingDown and stops the io thread.
  ~ClientImpl() override;
  ClientImpl(const ClientImpl&) = delete;
  ClientImpl& operator=(const ClientImpl&) = delete;
  /// Blocks until a leader is known, or some node answered that none is, or the total
  /// timeout passed, or a node refused the handshake.
  Status connect_initial();
  Result<ProposeResult> propose_sync(Bytes command) override;
  void propose(Bytes command, std::function<void(Result<ProposeResult>)> done) override;
  Result<std::unique_ptr<Subscription>> subscribe(LogIndex from, SubscribeOptions options) override;
  using Client::subscribe;
  Result<NodeId> leader() override;
  Result<ClusterInfo> cluster_info(const Address& at) override;
  Result<Role> role(const Address& at) override;
  Result<LogIndex> read_index() override;
  Status add_learner(const MemberAddress& member) override {
    return admin(wire::AddLearnerRequest{member});
  }
  Status promote(NodeId id) override { return admin(wire::PromoteRequest{id}); }
  Status remove(NodeId id) override { return admin(wire::RemoveRequest{id}); }
  Status transfer_leadership(NodeId to) override { return admin(wire::TransferLeaderRequest{to}); }

  std::uint64_t client_id() const override { return client_id_; }

 private:
  enum class OpState : std::uint8_t { Queued, Waiting, InFlight, Backoff };
  struct Op {
    wire::ClientRequestBody body;
    ReplyFn done;
    Clock::time_point deadline;
    std::uint32_t attempts = 0;
    std::uint64_t request_id = 0;  ///< the attempt in flight (InFlight only)
    OpState state = OpState::Waiting;
    /// The one timer of this operation (see arm()): a generation, so that re-arming or
    /// finishing turns the earlier heap entry stale; when and what it fires.
    std::uint64_t timer_gen = 0;
    Clock::time_point timer_when;
    void (ClientImpl::*timer_fire)(std::uint64_t) = nullptr;
    Status last_error;
    bool admitted = false;  ///< a proposal counted in proposals_in_flight_
    /// Some attempt ended without a definite answer (it may be in the log): from then on
    /// every retry must carry the same sequence number.
    bool ambiguous = false;
  };

  // ---- calling thread (client.cpp) ---------------------------------------------------
  template <class Submit>
  Reply call_sync(Submit&& submit_fn) {
    if (io_.on_thread()) {
      return Status{ErrorCode::InvalidArgument,
                    "blocking client call from a client callback (use the async form)"};
    }
    std::promise<Reply> p;
    auto f = p.get_future();
    submit_fn([&p](Reply r) { p.set_value(std::move(r)); });
    return f.get();
  }

  Status admin(wire::ClientRequestBody body);
  void propose_async_reply(Bytes command, ReplyFn done);
  /// Any thread: starts an operation on the io thread; `done` gets its outcome there.
  /// Submissions queue under submit_mu_ and are drained in order, one post per batch.
  void submit(wire::ClientRequestBody body, ReplyFn done);
  /// io thread: starts every submission queued so far, in submission order.
  void drain_submissions();
  /// io thread: the operation of one submission (fails at once when stopping or full).
  void start_operation(wire::ClientRequestBody body, ReplyFn done);

  // ---- io thread: operations (client_operations.cpp) ---------------------------------
  // Every operation has at most one pending deadline (its total deadline, the end of
  // the attempt in flight, or the end of a backoff). They live in one min-heap served by
  // one asio timer for the whole client: arming is a heap push (no timer object, no
  // asio operation, usually no timerfd update, since later operations have later
  // deadlines); re-arming or finishing leaves the old entry stale (its generation no
  // longer matches) and it is dropped when it reaches the top, or when stale entries
  // outnumber live ones (the heap is then rebuilt from ops_).
  struct Deadline {
    Clock::time_point when;
    std::uint64_t id;
    std::uint64_t gen;
    bool operator>(const Deadline& o) const { return when > o.when; }
  };
  /// Starts queued proposals while fewer than kMaxProposalsInFlight are outstanding.
  void admit_proposals();
  /// Sets the operation's one pending deadline: `on_fire` runs at `when`.
  void arm(std::uint64_t id, Clock::time_point when, void (ClientImpl::*on_fire)(std::uint64_t));
  /// Drops the operation's pending deadline (it is finishing).
  void disarm(Op& op);
  [[nodiscard]] bool live(const Deadline& d) const;
  void rebuild_deadlines();
  /// Points the timer at the earliest deadline when it is not armed for that already.
  void rearm_deadline_timer();
  void on_deadlines();
  void dispatch(std::uint64_t id);
  void send_attempt(std::uint64_t id);
  void attempt_timed_out(std::uint64_t id);
  void retry_later(std::uint64_t id, Status why);
  void give_up(std::uint64_t id);
  void finish(std::uint64_t id, Reply r);

  // ---- io thread: the connection to the leader (client_connection.cpp) ---------------
  void ensure_connection();
  void on_conn_ready(Connection& c);
  void on_conn_closed(Connection& c, const Status& why);
  /// Closes the connection to the leader; operations in flight on it wait for the next.
  void drop_connection();
  void requeue_inflight(const Status& why);
  void fail_waiting(const Status& why);
  void on_conn_reply(Connection& c, wire::ClientReply r);

  // ---- io thread: leader discovery (client_discovery.cpp) ----------------------------
  void start_discovery();
  std::vector<std::string> candidates() const;
  void probe_round();
  void probe_result(std::uint64_t epoch, Connection& c, Reply r);
  void close_probes();
  void round_finished();
  /// The pause before discovery round `round`: the backoff, but at most a keepalive
  /// interval while some node is suspect (a new leader is due soon).
  std::chrono::milliseconds discovery_delay(std::uint32_t round);

  // ---- io thread: nodes that went silent ---------------------------------------------
  /// `c` closed as silent: its address, and its node when the handshake named it.
  void suspect(const Connection& c);
  /// The node `id` (kNoNode: unknown) at `address` is suspect.
  [[nodiscard]] bool suspected(NodeId id, const std::string& address);
  [[nodiscard]] bool any_suspect();
  void leader_found(NodeId id, const std::string& address);

  // ---- io thread: a leader that answers Pings but not requests -----------------------
  /// Runs while a connection to the leader is ready, once per keepalive interval. A node
  /// that was cut off from the others keeps answering Pings while the requests it took
  /// wait (until it notices and steps down, up to two election timeouts later): when
  /// requests have waited a silence timeout with no reply at all, ask the other nodes who
  /// leads; leader_found() moves to another leader if they name one.
  void watch_stall();

  // ---- io thread: the leader's address and the addresses learned ---------------------
  /// Completes the connect_initial() calls waiting, with `s`.
  void notify_connect_waiters(const Status& s);
  void set_leader_address(const std::string& a);
  void forget_leader() { leader_address_.clear(); }
  /// Remembers `address` (a member's, from a reply) as a discovery candidate.
  void learn(const std::string& address);

  // ---- io thread: one-shot requests to a given node (client.cpp) ---------------------
  void request_once(const std::string& address, wire::ClientRequestBody body, ReplyFn done);

  struct OneShot {
    std::shared_ptr<Connection> conn;
    std::shared_ptr<asio::steady_timer> timer;
    ReplyFn done;
  };
  void complete_once(const std::shared_ptr<OneShot>& state, Reply r);

  // ---- io thread: shutdown (client.cpp) ----------------------------------------------
  void shut_down();

  const ClientOptions o_;
  /// o_.bootstrap as "host:port", the form every address takes inside the client.
  const std::vector<std::string> bootstrap_;
  const ConnectionSettings settings_;
  const std::uint64_t client_id_;

  // Declared before everything the io thread touches, destroyed after it was stopped.
  IoThread io_;

  // io thread only
  std::mt19937_64 rng_;
  bool stopping_ = false;
  std::map<std::uint64_t, Op> ops_;
  std::uint64_t next_op_id_ = 1;
  std::uint64_t next_request_id_ = 1;
  std::map<std::uint64_t, std::uint64_t> inflight_;  // request id -> op id
  std::deque<std::uint64_t> waiting_;
  std::deque<std::uint64_t> proposal_queue_;  // Queued proposals, in sequence order
  std::size_t proposals_in_flight_ = 0;
  std::uint64_t last_sequence_ = 0;  // the highest sequence number drawn
  std::shared_ptr<Connection> conn_;
  std::string leader_address_;
  std::vector<std::string> learned_;
  bool discovering_ = false;
  std::uint32_t discovery_round_ = 0;
  std::uint64_t probe_epoch_ = 0;
  std::vector<std::shared_ptr<Connection>> probes_;
  std::size_t probes_pending_ = 0;
  bool probe_answered_ = false;
  bool probe_round_capped_ = false;  ///< this round ends one backoff delay after its first answer
  Status probe_refusal_;
  Status last_probe_error_;
  asio::steady_timer round_timer_;
  asio::steady_timer connect_timer_;
  asio::steady_timer deadline_timer_;       // serves deadlines_
  asio::steady_timer stall_timer_;          // serves watch_stall()
  bool stall_armed_ = false;
  Clock::time_point progress_at_;           // the leader's last reply, or the first request since
  std::chrono::milliseconds stall_pause_{0};  // 0, or the pause after the last vouching round
  Clock::time_point stall_next_at_;         // no stall round before this
  std::vector<Deadline> deadlines_;         // min-heap on `when`
  bool deadline_armed_ = false;             // a wait on deadline_timer_ is pending
  Clock::time_point deadline_armed_at_;     // ... for this time
  std::vector<std::function<void(Status)>> connect_waiters_;
  std::set<std::shared_ptr<OneShot>> oneshots_;
  /// Nodes whose connection went silent, by id and by address, and until when.
  Suspicions<NodeId> suspect_nodes_{kMaxSuspects};
  Suspicions<std::string> suspect_addresses_{kMaxSuspects};

  // Submissions from any thread, drained on the io thread (submit()). At most
  // kMaxOutstanding wait; beyond that submit() refuses with Busy on the calling thread.
  struct Submission {
    wire::ClientRequestBody body;
    ReplyFn done;
  };
  std::mutex submit_mu_;
  std::vector<Submission> submitted_;  // guarded by submit_mu_
  bool drain_scheduled_ = false;       // guarded by submit_mu_: a drain is posted
  std::vector<Submission> draining_;   // io thread only

  // what subscribe() (any thread) needs to know
  mutable std::mutex known_mu_;
  std::string known_leader_address_;
  std::vector<std::string> known_learned_;
};

}  // namespace rlr::client
