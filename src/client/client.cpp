// rlr::Client: the public calls, one-shot requests to a named node, and shutdown. The
// implementation's design and its other parts: client_impl.h.
#include "rlr/client.h"

#include <algorithm>
#include <future>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "client/client_impl.h"
#include "client/subscription.h"

namespace rlr {
namespace client {
namespace {

std::uint64_t draw_client_id() {
  std::random_device rd;
  std::uint64_t id = 0;
  while (id == 0) id = (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
  return id;
}

Status check_options(const ClientOptions& o) {
  if (o.cluster_id.empty()) return Status{ErrorCode::InvalidArgument, "cluster_id is empty"};
  if (o.bootstrap.empty()) return Status{ErrorCode::InvalidArgument, "the bootstrap list is empty"};
  for (const Address& a : o.bootstrap) {
    // The text form must read back as the same address (a host with a space, say, would
    // not), since that is how the client dials it.
    const auto back = Address::parse(a.to_string());
    if (a.empty() || !back || back.value() != a) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("bootstrap address '{}' is not a valid HOST:PORT{}", a.to_string(),
                                back ? "" : ": " + back.status().message())};
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

}  // namespace

ClientImpl::ClientImpl(const ClientOptions& o)
    : o_(o),
      bootstrap_([&o] {
        std::vector<std::string> v;
        for (const Address& a : o.bootstrap) v.push_back(a.to_string());
        return v;
      }()),
      settings_(settings_for(o)),
      client_id_(o.client_id != 0 ? o.client_id : draw_client_id()),
      rng_(std::random_device{}()),
      round_timer_(io_.io()),
      connect_timer_(io_.io()),
      deadline_timer_(io_.io()),
      stall_timer_(io_.io()) {}

ClientImpl::~ClientImpl() {
  io_.run_and_wait([this] { shut_down(); });
  io_.stop();
}

Status ClientImpl::connect_initial() {
  std::promise<Status> p;
  auto f = p.get_future();
  io_.post([this, &p] {
    connect_waiters_.push_back([&p](Status s) { p.set_value(std::move(s)); });
    connect_timer_.expires_after(o_.total_timeout);
    connect_timer_.async_wait([this](boost::system::error_code ec) {
      if (ec) return;
      notify_connect_waiters(Status{
          ErrorCode::Unavailable,
          fmt::format("no node of [{}] answered within {} ms{}", fmt::join(bootstrap_, ", "),
                      o_.total_timeout.count(),
                      last_probe_error_.is_ok() ? "" : " (last: " + last_probe_error_.message() + ")")});
    });
    ensure_connection();
  });
  return f.get();
}

Result<ProposeResult> ClientImpl::propose_sync(Bytes command) {
  auto r = call_sync([&](ReplyFn done) { propose_async_reply(std::move(command), std::move(done)); });
  return propose_result(r);
}

void ClientImpl::propose(Bytes command, std::function<void(Result<ProposeResult>)> done) {
  propose_async_reply(std::move(command),
                      [done = std::move(done)](Reply r) { done(propose_result(r)); });
}

Result<std::unique_ptr<Subscription>> ClientImpl::subscribe(LogIndex from, SubscribeOptions options) {
  std::vector<std::string> cands;
  {
    std::lock_guard lock(known_mu_);
    if (!known_leader_address_.empty()) cands.push_back(known_leader_address_);
    for (const auto& a : bootstrap_) cands.push_back(a);
    for (const auto& a : known_learned_) cands.push_back(a);
  }
  std::vector<std::string> unique;
  for (auto& a : cands) {
    if (std::find(unique.begin(), unique.end(), a) == unique.end()) unique.push_back(std::move(a));
  }
  return make_subscription(o_, std::move(unique), from, options);
}

Result<NodeId> ClientImpl::leader() {
  auto r = call_sync([&](ReplyFn done) { submit(wire::GetLeaderRequest{}, std::move(done)); });
  if (!r) return r.status();
  return r.value().leader;
}

Result<ClusterInfo> ClientImpl::cluster_info(const Address& at) {
  const std::string address = at.to_string();
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

Result<Role> ClientImpl::role(const Address& at) {
  const std::string address = at.to_string();
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

Result<LogIndex> ClientImpl::read_index() {
  auto r = call_sync([&](ReplyFn done) { submit(wire::ReadIndexRequest{}, std::move(done)); });
  if (!r) return r.status();
  if (!r.value().read_index) return Status{ErrorCode::Corruption, "reply without a read index"};
  return *r.value().read_index;
}

Status ClientImpl::admin(wire::ClientRequestBody body) {
  auto r = call_sync([&](ReplyFn done) { submit(std::move(body), std::move(done)); });
  return r.status();
}

void ClientImpl::propose_async_reply(Bytes command, ReplyFn done) {
  wire::ProposeRequest p;
  p.command = std::move(command);
  p.client_id = client_id_;  // the sequence is drawn on the io thread, in send order
  submit(std::move(p), std::move(done));
}

void ClientImpl::submit(wire::ClientRequestBody body, ReplyFn done) {
  // One post per batch of submissions, not one per call: a caller that proposes faster
  // than the io thread drains pays one wake-up for many requests.
  bool taken = false;
  bool schedule = false;
  {
    std::lock_guard lock(submit_mu_);
    if (submitted_.size() < kMaxOutstanding) {
      submitted_.push_back(Submission{std::move(body), std::move(done)});
      taken = true;
      schedule = !std::exchange(drain_scheduled_, true);
    }
  }
  if (!taken) {  // the io thread has kMaxOutstanding submissions still to start
    done(Status{ErrorCode::Busy,
                fmt::format("more than {} requests waiting for the client's thread", kMaxOutstanding)});
    return;
  }
  if (schedule) io_.post([this] { drain_submissions(); });
}

void ClientImpl::drain_submissions() {
  {
    std::lock_guard lock(submit_mu_);
    draining_.swap(submitted_);
    drain_scheduled_ = false;
  }
  for (Submission& s : draining_) start_operation(std::move(s.body), std::move(s.done));
  draining_.clear();
}

void ClientImpl::start_operation(wire::ClientRequestBody body, ReplyFn done) {
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
}

void ClientImpl::request_once(const std::string& address, wire::ClientRequestBody body, ReplyFn done) {
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

void ClientImpl::complete_once(const std::shared_ptr<OneShot>& state, Reply r) {
  if (!state->done) return;
  auto done = std::move(state->done);
  state->done = nullptr;
  state->timer->cancel();
  state->conn.reset();  // breaks the handlers' reference cycle
  oneshots_.erase(state);
  done(std::move(r));
}

void ClientImpl::shut_down() {
  stopping_ = true;
  const Status s{ErrorCode::ShuttingDown, "the client is closing"};
  close_probes();
  if (conn_) {
    conn_->close();
    conn_.reset();
  }
  notify_connect_waiters(s);
  while (!ops_.empty()) finish(ops_.begin()->first, s);
  // Submissions not yet drained: their post may never run once the loop stops.
  drain_submissions();
  deadlines_.clear();
  deadline_timer_.cancel();
  stall_timer_.cancel();
  while (!oneshots_.empty()) {
    auto st = *oneshots_.begin();
    if (st->conn) st->conn->close();
    complete_once(st, s);
  }
}

}  // namespace client

Result<std::unique_ptr<Client>> Client::connect(const ClientOptions& options) {
  if (Status s = client::check_options(options); !s) return s;
  auto c = std::make_unique<client::ClientImpl>(options);
  if (Status s = c->connect_initial(); !s) return s;
  return std::unique_ptr<Client>(std::move(c));
}

}  // namespace rlr

