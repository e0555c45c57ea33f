// rlr::Client: leader discovery, redirects, retries with backoff, client sessions.
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
#include "rlr/client.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <future>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include <fmt/format.h>

#include "client/backoff.h"
#include "client/connection.h"
#include "client/io_thread.h"
#include "client/subscription.h"
#include "client/suspects.h"

namespace rlr {
namespace client {
namespace {

using Clock = std::chrono::steady_clock;
using Reply = Result<wire::ClientReply>;
using ReplyFn = std::function<void(Reply)>;

/// Most operations outstanding at once; more fail with Busy.
constexpr std::size_t kMaxOutstanding = 10000;
/// Most proposals sent and not yet answered; more wait in the client, in order. The
/// cluster remembers the results of the last 128 sequence numbers of each client
/// (SessionTable::kWindow), so a retry is always answered with the original entry only
/// while no more than that many are in flight.
constexpr std::size_t kMaxProposalsInFlight = 128;
/// Most addresses remembered besides the bootstrap list.
constexpr std::size_t kMaxLearnedAddresses = 64;
/// Most nodes, and most addresses, suspect at once (the bootstrap list and the learned
/// addresses fit); when full, the suspicion that ends first is dropped to make room.
constexpr std::size_t kMaxSuspects = 128;

bool is_refusal(const Status& s) {
  return s.code() == ErrorCode::WrongCluster || s.code() == ErrorCode::InvalidArgument;
}

std::uint64_t draw_client_id() {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0) id = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return id;
}

Status check_options(const ClientOptions& o) {
  if (o.cluster_id.empty()) return Status{ErrorCode::InvalidArgument, "cluster_id is empty"};
  if (o.bootstrap.empty()) return Status{ErrorCode::InvalidArgument, "the bootstrap list is empty"};
  for (const auto& a : o.bootstrap) {
    std::string host;
    std::uint16_t port = 0;
    if (!split_host_port(a, host, port)) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("bootstrap address '{}' is not HOST:PORT", a)};
    }
  }
  if (o.request_timeout.count() <= 0 || o.total_timeout.count() <= 0) {
    return Status{ErrorCode::InvalidArgument, "timeouts must be positive"};
  }
  if (o.backoff_min.count() <= 0 || o.backoff_max < o.backoff_min) {
    return Status{ErrorCode::InvalidArgument, "backoff_min must be positive and <= backoff_max"};
  }
  if (o.max_frame_bytes < 4096) {
    return Status{ErrorCode::InvalidArgument, "max_frame_bytes must be at least 4096"};
  }
  if (o.keepalive_interval.count() < 0 || o.silence_timeout.count() < 0) {
    return Status{ErrorCode::InvalidArgument, "keepalive_interval and silence_timeout must not be negative"};
  }
  if (o.keepalive_interval.count() == 0 && o.silence_timeout.count() != 0) {
    return Status{ErrorCode::InvalidArgument, "silence_timeout needs keepalive_interval (0 turns liveness off)"};
  }
  if (o.silence_timeout.count() != 0 && o.silence_timeout < 2 * o.keepalive_interval) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("silence_timeout ({} ms) must be at least two keepalive intervals ({} ms), "
                              "or 0 for four",
                              o.silence_timeout.count(), 2 * o.keepalive_interval.count())};
  }
  return Status::ok();
}

// Out of line: inlined into a std::function, g++ 12 reports a spurious
// maybe-uninitialized on the variant inside Result.
[[gnu::noinline]] Result<ProposeResult> propose_result(const Reply& r) {
  if (!r.is_ok()) return r.status();
  if (!r.value().propose) return Status{ErrorCode::Corruption, "reply to Propose without a result"};
  return *r.value().propose;
}

class ClientImpl final : public Client {
 public:
  explicit ClientImpl(const ClientOptions& o)
      : o_(o),
        settings_(settings_for(o)),
        client_id_(o.client_id != 0 ? o.client_id : draw_client_id()),
        rng_(std::random_device{}()),
        round_timer_(io_.io()),
        connect_timer_(io_.io()),
        deadline_timer_(io_.io()),
        stall_timer_(io_.io()) {}

  ~ClientImpl() override {
    io_.run_and_wait([this] { shut_down(); });
    io_.stop();
  }
  ClientImpl(const ClientImpl&) = delete;
  ClientImpl& operator=(const ClientImpl&) = delete;

  /// Blocks until a leader is known, or some node answered that none is, or the total
  /// timeout passed, or a node refused the handshake.
  Status connect_initial() {
    std::promise<Status> p;
    auto f = p.get_future();
    io_.post([this, &p] {
      connect_waiters_.push_back([&p](Status s) { p.set_value(std::move(s)); });
      connect_timer_.expires_after(o_.total_timeout);
      connect_timer_.async_wait([this](boost::system::error_code ec) {
        if (ec) return;
        notify_connect_waiters(Status{
            ErrorCode::Unavailable,
            fmt::format("no node of [{}] answered within {} ms{}", fmt::join(o_.bootstrap, ", "),
                        o_.total_timeout.count(),
                        last_probe_error_.is_ok() ? "" : " (last: " + last_probe_error_.message() + ")")});
      });
      ensure_connection();
    });
    return f.get();
  }

  Result<ProposeResult> propose(Bytes command) override {
    auto r = call_sync([&](ReplyFn done) { propose_async_reply(std::move(command), std::move(done)); });
    return propose_result(r);
  }

  void propose_async(Bytes command, std::function<void(Result<ProposeResult>)> done) override {
    propose_async_reply(std::move(command),
                        [done = std::move(done)](Reply r) { done(propose_result(r)); });
  }

  Result<std::unique_ptr<ClientSubscription>> subscribe(LogIndex from) override {
    std::vector<std::string> cands;
    {
      std::lock_guard lock(known_mu_);
      if (!known_leader_address_.empty()) cands.push_back(known_leader_address_);
      for (const auto& a : o_.bootstrap) cands.push_back(a);
      for (const auto& a : known_learned_) cands.push_back(a);
    }
    std::vector<std::string> unique;
    for (auto& a : cands) {
      if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
    }
    return make_subscription(o_, std::move(unique), from);
  }

  Result<NodeId> leader() override {
    auto r = call_sync([&](ReplyFn done) { submit(wire::GetLeaderRequest{}, std::move(done)); });
    if (!r) return r.status();
    return r.value().leader;
  }

  Result<ClusterInfo> cluster_info(const std::string& address) override {
    auto r = call_sync([&](ReplyFn done) {
      if (address.empty()) {
        submit(wire::GetClusterInfoRequest{}, std::move(done));
      } else {
        request_once(address, wire::GetClusterInfoRequest{}, std::move(done));
      }
    });
    if (!r) return r.status();
    if (!r.value().cluster_info) return Status{ErrorCode::Corruption, "reply without cluster info"};
    return *r.value().cluster_info;
  }

  Result<Role> role(const std::string& address) override {
    auto r = call_sync([&](ReplyFn done) {
      if (address.empty()) {
        submit(wire::GetRoleRequest{}, std::move(done));
      } else {
        request_once(address, wire::GetRoleRequest{}, std::move(done));
      }
    });
    if (!r) return r.status();
    if (!r.value().role) return Status{ErrorCode::Corruption, "reply without a role"};
    return *r.value().role;
  }

  Result<LogIndex> read_index() override {
    auto r = call_sync([&](ReplyFn done) { submit(wire::ReadIndexRequest{}, std::move(done)); });
    if (!r) return r.status();
    if (!r.value().read_index) return Status{ErrorCode::Corruption, "reply without a read index"};
    return *r.value().read_index;
  }

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

  // ---- calling thread --------------------------------------------------------------
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

  Status admin(wire::ClientRequestBody body) {
    auto r = call_sync([&](ReplyFn done) { submit(std::move(body), std::move(done)); });
    return r.status();
  }

  void propose_async_reply(Bytes command, ReplyFn done) {
    wire::ProposeRequest p;
    p.command = std::move(command);
    p.client_id = client_id_;  // the sequence is drawn on the io thread, in send order
    submit(std::move(p), std::move(done));
  }

  void submit(wire::ClientRequestBody body, ReplyFn done) {
    io_.post([this, body = std::move(body), done = std::move(done)]() mutable {
      if (stopping_) {
        done(Status{ErrorCode::ShuttingDown, "the client is closing"});
        return;
      }
      if (ops_.size() >= kMaxOutstanding) {
        done(Status{ErrorCode::Busy, fmt::format("more than {} requests outstanding", kMaxOutstanding)});
        return;
      }
      const std::uint64_t id = next_op_id_++;
      Op& op = ops_[id];
      op.body = std::move(body);
      op.done = std::move(done);
      op.deadline = Clock::now() + o_.total_timeout;
      if (auto* p = std::get_if<wire::ProposeRequest>(&op.body)) {
        p->sequence = ++last_sequence_;
        op.state = OpState::Queued;
        proposal_queue_.push_back(id);
        arm(id, op.deadline, &ClientImpl::give_up);
        admit_proposals();
        return;
      }
      dispatch(id);
    });
  }

  /// Starts queued proposals while fewer than kMaxProposalsInFlight are outstanding.
  void admit_proposals() {
    while (proposals_in_flight_ < kMaxProposalsInFlight && !proposal_queue_.empty()) {
      const std::uint64_t id = proposal_queue_.front();
      proposal_queue_.pop_front();
      auto it = ops_.find(id);
      if (it == ops_.end() || it->second.state != OpState::Queued) continue;
      it->second.admitted = true;
      ++proposals_in_flight_;
      dispatch(id);
    }
  }

  // ---- io thread: operations ---------------------------------------------------------
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

  void arm(std::uint64_t id, Clock::time_point when, void (ClientImpl::*on_fire)(std::uint64_t)) {
    if (deadlines_.size() >= 2 * ops_.size() + 1024) rebuild_deadlines();  // bounds stale entries
    Op& op = ops_.at(id);
    op.timer_gen += 1;
    op.timer_when = when;
    op.timer_fire = on_fire;
    deadlines_.push_back(Deadline{when, id, op.timer_gen});
    std::push_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
    rearm_deadline_timer();
  }

  /// Drops the operation's pending deadline (it is finishing).
  void disarm(Op& op) {
    op.timer_gen += 1;
    op.timer_fire = nullptr;
  }

  [[nodiscard]] bool live(const Deadline& d) const {
    auto it = ops_.find(d.id);
    return it != ops_.end() && it->second.timer_gen == d.gen && it->second.timer_fire != nullptr;
  }

  void rebuild_deadlines() {
    deadlines_.clear();
    for (const auto& [id, op] : ops_) {
      if (op.timer_fire != nullptr) deadlines_.push_back(Deadline{op.timer_when, id, op.timer_gen});
    }
    std::make_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
  }

  /// Points the timer at the earliest deadline when it is not armed for that already.
  void rearm_deadline_timer() {
    while (!deadlines_.empty() && !live(deadlines_.front())) {
      std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
      deadlines_.pop_back();
    }
    if (deadlines_.empty() || stopping_) return;
    const Clock::time_point first = deadlines_.front().when;
    if (deadline_armed_ && deadline_armed_at_ <= first) return;  // fires early enough
    deadline_armed_ = true;
    deadline_armed_at_ = first;
    deadline_timer_.expires_at(first);  // cancels a later wait (it returns aborted)
    deadline_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec == asio::error::operation_aborted) return;
      deadline_armed_ = false;
      on_deadlines();
    });
  }

  void on_deadlines() {
    const auto now = Clock::now();
    while (!deadlines_.empty() && deadlines_.front().when <= now) {
      const Deadline d = deadlines_.front();
      std::pop_heap(deadlines_.begin(), deadlines_.end(), std::greater<>());
      deadlines_.pop_back();
      if (!live(d)) continue;
      Op& op = ops_.at(d.id);
      auto fire = std::exchange(op.timer_fire, nullptr);
      (this->*fire)(d.id);  // may arm again, finish, or start other operations
    }
    rearm_deadline_timer();
  }

  void dispatch(std::uint64_t id) {
    Op& op = ops_.at(id);
    if (Clock::now() >= op.deadline) {
      give_up(id);
      return;
    }
    if (conn_ && conn_->ready()) {
      send_attempt(id);
      return;
    }
    op.state = OpState::Waiting;
    waiting_.push_back(id);
    arm(id, op.deadline, &ClientImpl::give_up);
    ensure_connection();
  }

  void send_attempt(std::uint64_t id) {
    Op& op = ops_.at(id);
    const auto now = Clock::now();
    const auto attempt_end = std::min(op.deadline, now + o_.request_timeout);
    wire::ClientRequest req;
    req.request_id = next_request_id_++;
    req.timeout_ms = static_cast<std::uint32_t>(std::max<std::int64_t>(
        1, std::chrono::duration_cast<std::chrono::milliseconds>(attempt_end - now).count()));
    req.body = op.body;
    if (Status s = conn_->send(req); !s) {
      if (s.code() == ErrorCode::InvalidArgument) {
        finish(id, s);
      } else {
        retry_later(id, s);
      }
      return;
    }
    ++op.attempts;
    op.request_id = req.request_id;
    op.state = OpState::InFlight;
    if (inflight_.empty()) progress_at_ = Clock::now();
    inflight_[req.request_id] = id;
    arm(id, attempt_end, &ClientImpl::attempt_timed_out);
  }

  void attempt_timed_out(std::uint64_t id) {
    Op& op = ops_.at(id);
    op.ambiguous = true;
    inflight_.erase(op.request_id);
    op.request_id = 0;
    op.last_error = Status{ErrorCode::Timeout,
                           fmt::format("no reply from {} within {} ms",
                                       conn_ ? conn_->address() : std::string("the node"),
                                       o_.request_timeout.count())};
    if (Clock::now() >= op.deadline) {
      give_up(id);
      return;
    }
    // A node that does not answer in time is suspect: find the leader again.
    forget_leader();
    drop_connection();
    dispatch(id);
  }

  void retry_later(std::uint64_t id, Status why) {
    Op& op = ops_.at(id);
    op.last_error = std::move(why);
    const auto delay = backoff_delay(std::max<std::uint32_t>(op.attempts, 1), o_.backoff_min,
                                     o_.backoff_max, rng_);
    if (Clock::now() + delay >= op.deadline) {
      give_up(id);
      return;
    }
    op.state = OpState::Backoff;
    arm(id, Clock::now() + delay, &ClientImpl::dispatch);
  }

  void give_up(std::uint64_t id) {
    const Op& op = ops_.at(id);
    if (op.state == OpState::Queued) {
      finish(id, Status{ErrorCode::Timeout,
                        fmt::format("not sent within {} ms: {} earlier proposals still outstanding",
                                    o_.total_timeout.count(), kMaxProposalsInFlight)});
      return;
    }
    const std::string last = op.last_error.is_ok() ? "no leader found" : op.last_error.message();
    const bool reached = op.attempts > 0 && op.last_error.code() != ErrorCode::Unavailable;
    Status s = reached
                   ? Status{ErrorCode::Timeout,
                            fmt::format("no outcome within {} ms (last: {}); a proposal may still commit",
                                        o_.total_timeout.count(), last)}
                   : Status{ErrorCode::Unavailable,
                            fmt::format("no leader reachable within {} ms (last: {})",
                                        o_.total_timeout.count(), last)};
    finish(id, std::move(s));
  }

  void finish(std::uint64_t id, Reply r) {
    auto it = ops_.find(id);
    if (it == ops_.end()) return;
    Op op = std::move(it->second);
    ops_.erase(it);
    if (op.request_id != 0) inflight_.erase(op.request_id);
    disarm(op);
    if (op.admitted) {
      --proposals_in_flight_;
      if (!stopping_) admit_proposals();
    }
    if (op.done) op.done(std::move(r));
  }

  // ---- io thread: the connection to the leader -------------------------------------
  void ensure_connection() {
    if (stopping_ || conn_) return;
    if (!leader_address_.empty() && suspected(kNoNode, leader_address_)) forget_leader();
    if (leader_address_.empty()) {
      start_discovery();
      return;
    }
    Connection::Handlers h;
    h.on_ready = [this](Connection& c) { on_conn_ready(c); };
    h.on_reply = [this](Connection& c, wire::ClientReply r) { on_conn_reply(c, std::move(r)); };
    h.on_closed = [this](Connection& c, const Status& s) { on_conn_closed(c, s); };
    conn_ = Connection::create(io_.io(), settings_, leader_address_, std::move(h));
    conn_->start();
  }

  void on_conn_ready(Connection& c) {
    if (&c != conn_.get()) return;
    progress_at_ = Clock::now();
    stall_pause_ = std::chrono::milliseconds{0};
    watch_stall();
    std::deque<std::uint64_t> ready;
    ready.swap(waiting_);
    for (std::uint64_t id : ready) {
      auto it = ops_.find(id);
      if (it == ops_.end() || it->second.state != OpState::Waiting) continue;
      dispatch(id);  // sends now while the connection is ready, else waits again
    }
    // Operations backing off because no leader was reachable go now too: after a
    // failover their exponential backoff (up to backoff_max) would otherwise outlast the
    // election by far. Those that backed off for other reasons (Busy, Timeout) wait on.
    std::vector<std::uint64_t> woken;
    for (const auto& [id, op] : ops_) {
      if (op.state != OpState::Backoff) continue;
      const ErrorCode why = op.last_error.code();
      if (why == ErrorCode::NotLeader || why == ErrorCode::Unavailable || why == ErrorCode::ShuttingDown) {
        woken.push_back(id);
      }
    }
    for (std::uint64_t id : woken) {
      auto it = ops_.find(id);
      if (it != ops_.end() && it->second.state == OpState::Backoff) dispatch(id);
    }
  }

  void on_conn_closed(Connection& c, const Status& why) {
    if (&c != conn_.get()) return;
    if (c.silent()) suspect(c);
    conn_.reset();
    forget_leader();
    requeue_inflight(why);
    if (is_refusal(why)) {
      fail_waiting(why);
      return;
    }
    if (!waiting_.empty()) ensure_connection();
  }

  /// Closes the connection to the leader; operations in flight on it wait for the next.
  void drop_connection() {
    if (!conn_) return;
    conn_->close();
    conn_.reset();
    requeue_inflight(Status{ErrorCode::Unavailable, "connection dropped"});
    if (!waiting_.empty()) ensure_connection();
  }

  void requeue_inflight(const Status& why) {
    std::map<std::uint64_t, std::uint64_t> inflight;
    inflight.swap(inflight_);
    for (const auto& [rid, id] : inflight) {
      Op& op = ops_.at(id);
      op.request_id = 0;
      op.ambiguous = true;  // the node may have appended it before the connection broke
      if (op.last_error.is_ok() || why.code() != ErrorCode::Unavailable ||
          why.message() != "connection dropped") {
        op.last_error = why;
      }
      op.state = OpState::Waiting;
      waiting_.push_back(id);
      arm(id, op.deadline, &ClientImpl::give_up);
    }
  }

  void fail_waiting(const Status& why) {
    std::deque<std::uint64_t> w;
    w.swap(waiting_);
    for (std::uint64_t id : w) {
      auto it = ops_.find(id);
      if (it != ops_.end() && it->second.state == OpState::Waiting) finish(id, why);
    }
  }

  void on_conn_reply(Connection& c, wire::ClientReply r) {
    if (&c != conn_.get()) return;
    progress_at_ = Clock::now();
    stall_pause_ = std::chrono::milliseconds{0};
    if (r.leader != kNoNode && !r.leader_address.empty()) learn(r.leader_address);
    auto it = inflight_.find(r.request_id);
    if (it == inflight_.end()) return;  // a late reply to an abandoned attempt
    const std::uint64_t id = it->second;
    inflight_.erase(it);
    Op& op = ops_.at(id);
    op.request_id = 0;

    // A cluster-info answer from a node that no longer leads is a redirect.
    if (r.status.is_ok() && std::holds_alternative<wire::GetClusterInfoRequest>(op.body) &&
        r.cluster_info && r.cluster_info->role != Role::Leader) {
      r.status = Status::not_leader(r.cluster_info->leader, "the node no longer leads");
    }
    if (r.cluster_info) {
      for (const auto& m : r.cluster_info->members) {
        if (!m.address.empty()) learn(m.address);
      }
    }

    // The ordering rule of sessions: the cluster takes any sequence at or below the
    // client's highest as a duplicate. A proposal that was refused outright (never
    // appended) must therefore not come back with its old number after later ones
    // committed: it gets a fresh one, unless an earlier attempt may be in the log.
    if (auto* p = std::get_if<wire::ProposeRequest>(&op.body)) {
      switch (r.status.code()) {
        case ErrorCode::NotLeader:
        case ErrorCode::Busy:
        case ErrorCode::TransferInProgress:
        case ErrorCode::Unavailable:
          if (!op.ambiguous) p->sequence = ++last_sequence_;
          break;
        case ErrorCode::Timeout:
        case ErrorCode::ShuttingDown:
          op.ambiguous = true;
          break;
        default:
          break;
      }
    }

    switch (r.status.code()) {
      case ErrorCode::Ok:
        finish(id, std::move(r));
        return;
      case ErrorCode::NotLeader: {
        const bool has_hint = !r.leader_address.empty() && r.leader_address != c.address() &&
                              !suspected(r.leader, r.leader_address);
        forget_leader();
        if (has_hint) set_leader_address(r.leader_address);
        drop_connection();
        op.last_error = Status{ErrorCode::NotLeader,
                               fmt::format("{} is not the leader{}", c.address(),
                                           has_hint ? " (redirected to " + r.leader_address + ")" : ""),
                               r.leader};
        // Follow a fresh hint at once; back off when redirects keep coming (a stale
        // hint, or leadership in flux) and when there is no hint at all.
        if (has_hint && op.attempts <= 2) {
          dispatch(id);
        } else {
          retry_later(id, op.last_error);
        }
        return;
      }
      case ErrorCode::Unavailable:
      case ErrorCode::ShuttingDown:
        forget_leader();
        drop_connection();
        retry_later(id, r.status);
        return;
      case ErrorCode::Busy:
      case ErrorCode::TransferInProgress:
      case ErrorCode::Timeout:
        // The same session makes the retry of a proposal safe.
        retry_later(id, r.status);
        return;
      default:
        finish(id, r.status);
        return;
    }
  }

  // ---- io thread: leader discovery -------------------------------------------------
  void start_discovery() {
    if (discovering_ || stopping_) return;
    discovering_ = true;
    discovery_round_ = 0;
    probe_round();
  }

  std::vector<std::string> candidates() const {
    std::vector<std::string> c = o_.bootstrap;
    for (const auto& a : learned_) {
      if (std::find(c.begin(), c.end(), a) == c.end()) c.push_back(a);
    }
    return c;
  }

  void probe_round() {
    const std::uint64_t epoch = ++probe_epoch_;
    const auto cands = candidates();
    probes_pending_ = cands.size();
    probe_answered_ = false;
    probe_round_capped_ = false;
    probe_refusal_ = Status::ok();
    for (const auto& addr : cands) {
      Connection::Handlers h;
      h.on_ready = [this](Connection& c) {
        wire::ClientRequest req;
        req.request_id = 1;
        req.timeout_ms = static_cast<std::uint32_t>(o_.request_timeout.count());
        req.body = wire::GetLeaderRequest{};
        (void)c.send(req);
      };
      h.on_reply = [this, epoch](Connection& c, wire::ClientReply r) {
        c.close();
        probe_result(epoch, c, std::move(r));
      };
      h.on_closed = [this, epoch](Connection& c, const Status& s) {
        if (c.silent()) suspect(c);  // accepted, or not, but never answered
        probe_result(epoch, c, s);
      };
      auto conn = Connection::create(io_.io(), settings_, addr, std::move(h));
      probes_.push_back(conn);
      conn->start();
    }
    round_timer_.expires_after(o_.request_timeout);
    round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
      if (ec || epoch != probe_epoch_) return;
      round_finished();
    });
  }

  void probe_result(std::uint64_t epoch, Connection& c, Reply r) {
    if (epoch != probe_epoch_) return;
    if (r) {
      probe_answered_ = true;
      suspect_addresses_.clear(c.address());  // it answered: reachable there again
      const std::string& named = r.value().leader_address;
      // A stall probe (watch_stall) asks the others: the stalled node's own word on who
      // leads tells nothing.
      const bool stalled_self = conn_ && conn_->ready() && c.node_id() == conn_->node_id();
      if (r.value().leader != kNoNode && !named.empty() && !suspected(r.value().leader, named) && !stalled_self) {
        leader_found(r.value().leader, named);
        return;
      }
      std::string what;
      if (stalled_self) {
        what = "the leader that stopped answering requests";
      } else if (r.value().leader != kNoNode && !named.empty()) {
        what = fmt::format("names {} as the leader, which went silent", named);
      } else {
        what = r.value().status.is_ok() ? std::string("no leader known") : r.value().status.message();
      }
      last_probe_error_ = Status{ErrorCode::Unavailable, fmt::format("{}: {}", c.address(), what)};
    } else {
      last_probe_error_ = r.status();
      if (is_refusal(r.status())) probe_refusal_ = r.status();
    }
    if (probes_pending_ > 0) --probes_pending_;
    if (probes_pending_ == 0) {
      round_finished();
      return;
    }
    if (!probe_round_capped_) {
      // Some node answered without naming a leader (an election may be under way). A
      // node that accepted the probe but does not answer (still starting, overloaded)
      // must not hold the next round back for a whole request_timeout: this round ends
      // one backoff delay from now at the latest.
      probe_round_capped_ = true;
      round_timer_.expires_after(discovery_delay(discovery_round_ + 1));
      round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
        if (ec || epoch != probe_epoch_) return;
        round_finished();
      });
    }
  }

  void close_probes() {
    ++probe_epoch_;
    round_timer_.cancel();
    for (auto& p : probes_) p->close();
    probes_.clear();
    probes_pending_ = 0;
  }

  void round_finished() {
    close_probes();
    if (!probe_refusal_.is_ok()) {
      discovering_ = false;
      notify_connect_waiters(probe_refusal_);
      fail_waiting(probe_refusal_);
      return;
    }
    if (probe_answered_) notify_connect_waiters(Status::ok());
    if ((waiting_.empty() && connect_waiters_.empty()) || stopping_) {
      discovering_ = false;
      return;
    }
    for (std::uint64_t id : waiting_) {
      auto it = ops_.find(id);
      if (it != ops_.end() && it->second.state == OpState::Waiting) it->second.last_error = last_probe_error_;
    }
    const auto delay = discovery_delay(++discovery_round_);
    const std::uint64_t epoch = probe_epoch_;
    round_timer_.expires_after(delay);
    round_timer_.async_wait([this, epoch](boost::system::error_code ec) {
      if (ec || epoch != probe_epoch_) return;
      probe_round();
    });
  }

  /// The pause before discovery round `round`: the backoff, but at most a keepalive
  /// interval while some node is suspect (a new leader is due soon).
  std::chrono::milliseconds discovery_delay(std::uint32_t round) {
    auto d = backoff_delay(round, o_.backoff_min, o_.backoff_max, rng_);
    if (any_suspect()) d = std::min(d, o_.keepalive_interval);
    return d;
  }

  // ---- io thread: nodes that went silent -------------------------------------------
  /// `c` closed as silent: its address, and its node when the handshake named it.
  void suspect(const Connection& c) {
    const auto silence = settings_.silence_timeout;
    if (silence.count() == 0) return;
    const auto until = Clock::now() + 2 * silence;
    suspect_addresses_.add(c.address(), until);
    if (c.node_id() != kNoNode) suspect_nodes_.add(c.node_id(), until);
  }

  /// The node `id` (kNoNode: unknown) at `address` is suspect.
  [[nodiscard]] bool suspected(NodeId id, const std::string& address) {
    const auto now = Clock::now();
    return (id != kNoNode && suspect_nodes_.has(id, now)) || suspect_addresses_.has(address, now);
  }

  [[nodiscard]] bool any_suspect() {
    const auto now = Clock::now();
    const bool nodes = suspect_nodes_.any(now);
    return suspect_addresses_.any(now) || nodes;
  }

  void leader_found(NodeId id, const std::string& address) {
    close_probes();
    discovering_ = false;
    if (conn_ && conn_->ready() && conn_->node_id() == id) {
      // A stall probe, and the others still follow it: they may not have noticed yet (a
      // cut-off leader is replaced, or steps down, within about two silence timeouts),
      // or the request is merely long. Past that window, ask again after a pause that
      // doubles each time up to a silence timeout, so a long request costs about a
      // round per silence timeout.
      const auto now = Clock::now();
      if (now - progress_at_ >= 2 * settings_.silence_timeout) {
        stall_pause_ = std::min(stall_pause_.count() == 0 ? o_.keepalive_interval : 2 * stall_pause_,
                                settings_.silence_timeout);
        stall_next_at_ = now + stall_pause_;
      }
      return;
    }
    set_leader_address(address);
    notify_connect_waiters(Status::ok());
    // A stall probe found another leader: what waits at the old one goes there.
    if (conn_ && conn_->ready()) drop_connection();
    ensure_connection();
  }

  // ---- io thread: a leader that answers Pings but not requests ---------------------
  /// Runs while a connection to the leader is ready, once per keepalive interval. A node
  /// that was cut off from the others keeps answering Pings while the requests it took
  /// wait (until it notices and steps down, up to two election timeouts later): when
  /// requests have waited a silence timeout with no reply at all, ask the other nodes who
  /// leads; leader_found() moves to another leader if they name one.
  void watch_stall() {
    if (stall_armed_ || settings_.silence_timeout.count() == 0 || stopping_) return;
    stall_armed_ = true;
    stall_timer_.expires_after(o_.keepalive_interval);
    stall_timer_.async_wait([this](boost::system::error_code ec) {
      stall_armed_ = false;
      if (ec || stopping_ || !conn_ || !conn_->ready()) return;
      // A round at a time, one per interval while the stall lasts, paused while other
      // nodes vouch for the leader (see leader_found).
      const auto now = Clock::now();
      if (!inflight_.empty() && now - progress_at_ >= settings_.silence_timeout && now >= stall_next_at_ &&
          !discovering_) {
        start_discovery();
      }
      watch_stall();
    });
  }

  void notify_connect_waiters(const Status& s) {
    if (connect_waiters_.empty()) return;
    connect_timer_.cancel();
    auto w = std::move(connect_waiters_);
    connect_waiters_.clear();
    for (auto& f : w) f(s);
  }

  void set_leader_address(const std::string& a) {
    leader_address_ = a;
    learn(a);
    std::lock_guard lock(known_mu_);
    known_leader_address_ = a;
  }
  void forget_leader() { leader_address_.clear(); }

  void learn(const std::string& address) {
    if (std::find(o_.bootstrap.begin(), o_.bootstrap.end(), address) != o_.bootstrap.end()) return;
    if (std::find(learned_.begin(), learned_.end(), address) != learned_.end()) return;
    std::string host;
    std::uint16_t port = 0;
    if (!split_host_port(address, host, port)) return;
    if (learned_.size() >= kMaxLearnedAddresses) learned_.erase(learned_.begin());
    learned_.push_back(address);
    std::lock_guard lock(known_mu_);
    known_learned_ = learned_;
  }

  // ---- io thread: one-shot requests to a given node ---------------------------------
  void request_once(const std::string& address, wire::ClientRequestBody body, ReplyFn done) {
    io_.post([this, address, body = std::move(body), done = std::move(done)]() mutable {
      if (stopping_) {
        done(Status{ErrorCode::ShuttingDown, "the client is closing"});
        return;
      }
      auto state = std::make_shared<OneShot>();
      state->done = std::move(done);
      state->timer = std::make_shared<asio::steady_timer>(io_.io());
      Connection::Handlers h;
      h.on_ready = [this, state, body](Connection& c) {
        wire::ClientRequest req;
        req.request_id = 1;
        req.timeout_ms = static_cast<std::uint32_t>(o_.request_timeout.count());
        req.body = body;
        if (Status s = c.send(req); !s) {
          c.close();
          complete_once(state, s);
        }
      };
      h.on_reply = [this, state](Connection& c, wire::ClientReply r) {
        c.close();
        if (!r.status.is_ok()) {
          complete_once(state, r.status);
        } else {
          complete_once(state, std::move(r));
        }
      };
      h.on_closed = [this, state](Connection&, const Status& s) { complete_once(state, s); };
      state->conn = Connection::create(io_.io(), settings_, address, std::move(h));
      oneshots_.insert(state);
      state->timer->expires_after(o_.request_timeout);
      state->timer->async_wait([this, state, address](boost::system::error_code ec) {
        if (ec) return;
        if (state->conn) state->conn->close();
        complete_once(state, Status{ErrorCode::Unavailable,
                                    fmt::format("{}: no answer within {} ms", address,
                                                o_.request_timeout.count())});
      });
      state->conn->start();
    });
  }

  struct OneShot {
    std::shared_ptr<Connection> conn;
    std::shared_ptr<asio::steady_timer> timer;
    ReplyFn done;
  };

  void complete_once(const std::shared_ptr<OneShot>& state, Reply r) {
    if (!state->done) return;
    auto done = std::move(state->done);
    state->done = nullptr;
    state->timer->cancel();
    state->conn.reset();  // breaks the handlers' reference cycle
    oneshots_.erase(state);
    done(std::move(r));
  }

  // ---- io thread: shutdown ---------------------------------------------------------
  void shut_down() {
    stopping_ = true;
    const Status s{ErrorCode::ShuttingDown, "the client is closing"};
    close_probes();
    if (conn_) {
      conn_->close();
      conn_.reset();
    }
    notify_connect_waiters(s);
    while (!ops_.empty()) finish(ops_.begin()->first, s);
    deadlines_.clear();
    deadline_timer_.cancel();
    stall_timer_.cancel();
    while (!oneshots_.empty()) {
      auto st = *oneshots_.begin();
      if (st->conn) st->conn->close();
      complete_once(st, s);
    }
  }

  const ClientOptions o_;
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

  // what subscribe() (any thread) needs to know
  mutable std::mutex known_mu_;
  std::string known_leader_address_;
  std::vector<std::string> known_learned_;
};

}  // namespace
}  // namespace client

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  if (Status s = client::check_options(options); !s) return s;
  auto c = std::make_unique<client::ClientImpl>(options);
  if (Status s = c->connect_initial(); !s) return s;
  return std::unique_ptr<Client>(std::move(c));
}

}  // namespace rlr
