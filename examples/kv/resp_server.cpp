#include "kv/resp_server.h"

#include <utility>  // before Boost.Asio (see the build notes)

#include <algorithm>
#include <array>
#include <cctype>
#include <optional>

#include <boost/asio.hpp>
#include <fmt/format.h>

#include "kv/resp.h"

namespace rlr::kv {
namespace asio = boost::asio;
using tcp = asio::ip::tcp;

namespace {

constexpr auto kReadIndexTimeout = std::chrono::milliseconds(2000);
constexpr auto kApplyWaitTimeout = std::chrono::milliseconds(2000);
constexpr std::size_t kPipelinedMax = 4096;       ///< unanswered commands per connection
constexpr std::size_t kConnectionsMax = 10'000;

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

std::string wrong_args(std::string_view cmd) {
  return resp::error(fmt::format("ERR wrong number of arguments for '{}' command", lower(cmd)));
}

/// The reply of a node that does not lead (see KvService::redirect).
std::string redirect_reply(const Node& node, const std::map<NodeId, std::string>& resp_peers,
                           NodeId hint) {
  const NodeId known = node.leader();
  const NodeId leader = hint.is_zero() ? known : hint;
  if (leader.is_zero()) return resp::error("CLUSTERDOWN not leader; no leader known yet, retry");
  if (auto it = resp_peers.find(leader); it != resp_peers.end()) {
    return resp::error(fmt::format("MOVED 0 {}", it->second));
  }
  const std::string address = leader == known ? node.leader_address().to_string() : std::string{};
  if (address.empty()) return resp::error(fmt::format("ERR not leader; leader is {}", leader.value()));
  return resp::error(fmt::format("ERR not leader; leader is {} at {}", leader.value(), address));
}

std::string status_reply(const Node& node, const std::map<NodeId, std::string>& resp_peers,
                         const Status& s) {
  switch (s.code()) {
    case ErrorCode::NotLeader:
      return redirect_reply(node, resp_peers, s.leader_hint());
    case ErrorCode::Timeout:
      return resp::error("ERR timeout: the outcome is unknown (a write may still be applied)");
    case ErrorCode::Busy:
      return resp::error("BUSY too many requests in flight, retry");
    case ErrorCode::TransferInProgress:
      return resp::error("TRYAGAIN leadership transfer in progress");
    default:
      return resp::error(fmt::format("ERR {}", s.to_string()));
  }
}

}  // namespace

// ---------------------------------------------------------------------------------
// KvService
// ---------------------------------------------------------------------------------

KvService::KvService(Node& node, std::shared_ptr<KvStore> store, std::function<LogIndex()> progress,
                     std::map<NodeId, std::string> resp_peers)
    : node_(node),
      store_(std::move(store)),
      progress_(std::move(progress)),
      resp_peers_(std::move(resp_peers)) {
  reader_ = std::thread([this] { read_loop(); });
}

KvService::~KvService() { stop(); }

void KvService::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (reader_.joinable()) reader_.join();
  std::vector<PendingRead> left;
  {
    std::lock_guard lock(mu_);
    left.swap(reads_);
  }
  for (auto& r : left) r.done(resp::error("ERR server shutting down"), false);
}

std::string KvService::redirect(NodeId hint) const { return redirect_reply(node_, resp_peers_, hint); }

std::string KvService::error_reply(const Status& s) const { return status_reply(node_, resp_peers_, s); }

CommandKind KvService::classify(const std::vector<std::string>& args) {
  if (args.empty()) return CommandKind::Local;
  const std::string cmd = lower(args[0]);
  if (cmd == "get" || cmd == "exists" || cmd == "dbsize") return CommandKind::Read;
  if (cmd == "set" || cmd == "del") return CommandKind::Write;
  return CommandKind::Local;
}

void KvService::execute(std::vector<std::string> args, Done done) {
  switch (classify(args)) {
    case CommandKind::Local:
      local(args, done);
      return;
    case CommandKind::Write:
      write(std::move(args), std::move(done));
      return;
    case CommandKind::Read:
      break;
  }
  const std::string cmd = lower(args[0]);
  if ((cmd == "get" && args.size() != 2) || (cmd == "exists" && args.size() < 2) ||
      (cmd == "dbsize" && args.size() != 1)) {
    done(wrong_args(args[0]), false);
    return;
  }
  {
    std::lock_guard lock(mu_);
    if (!stopping_) {
      reads_.push_back(PendingRead{std::move(args), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(resp::error("ERR server shutting down"), false);
}

void KvService::local(const std::vector<std::string>& args, const Done& done) {
  if (args.empty()) {
    done(resp::error("ERR empty command"), false);
    return;
  }
  const std::string cmd = lower(args[0]);
  if (cmd == "ping") {
    if (args.size() > 2) return done(wrong_args(args[0]), false);
    return done(args.size() == 2 ? resp::bulk(args[1]) : resp::simple("PONG"), false);
  }
  if (cmd == "echo") {
    if (args.size() != 2) return done(wrong_args(args[0]), false);
    return done(resp::bulk(args[1]), false);
  }
  if (cmd == "quit") return done(resp::simple("OK"), true);
  if (cmd == "select") {
    if (args.size() != 2) return done(wrong_args(args[0]), false);
    return done(args[1] == "0" ? resp::simple("OK") : resp::error("ERR DB index is out of range"),
                false);
  }
  if (cmd == "config") {
    // redis-benchmark reads "save" and "appendonly" at startup.
    if (args.size() >= 3 && lower(args[1]) == "get") {
      const std::string param = lower(args[2]);
      if (param == "save") return done(resp::array({resp::bulk("save"), resp::bulk("")}), false);
      if (param == "appendonly") {
        return done(resp::array({resp::bulk("appendonly"), resp::bulk("no")}), false);
      }
      return done(resp::array({}), false);
    }
    return done(resp::error("ERR only CONFIG GET is supported"), false);
  }
  if (cmd == "command") return done(resp::array({}), false);  // no command table
  if (cmd == "client") return done(resp::simple("OK"), false);
  if (cmd == "hello") return done(resp::error("NOPROTO this server speaks RESP2 only"), false);
  if (cmd == "info") {
    const Role role = node_.role();
    return done(resp::bulk(fmt::format("# Server\r\nredis_version:7.0.0\r\nrlr_app:kv\r\n"
                                       "# Replication\r\nrole:{}\r\nrlr_leader:{}\r\n"
                                       "rlr_leader_address:{}\r\n",
                                       role == Role::Leader ? "master" : "slave",
                                       node_.leader().value(), node_.leader_address().to_string())),
                false);
  }
  std::string preview;
  for (std::size_t i = 1; i < args.size() && i < 4; ++i) {
    preview += fmt::format("'{}' ", args[i].substr(0, 32));
  }
  done(resp::error(fmt::format("ERR unknown command '{}', with args beginning with: {}",
                               args[0].substr(0, 64), preview)),
       false);
}

void KvService::write(std::vector<std::string> args, Done done) {
  const std::string cmd = lower(args[0]);
  KvCommand c;
  if (cmd == "set") {
    if (args.size() < 3) return done(wrong_args(args[0]), false);
    if (args.size() > 3) return done(resp::error("ERR syntax error (SET options are not supported)"), false);
    if (args[2].size() > kValueBytesMax) return done(resp::error("ERR value too large"), false);
    c.op = Op::Put;
    c.args = {std::move(args[1]), std::move(args[2])};
  } else {
    if (args.size() < 2) return done(wrong_args(args[0]), false);
    if (args.size() - 1 > kDeleteKeysMax) return done(resp::error("ERR too many keys"), false);
    c.op = Op::Delete;
    c.args.assign(std::make_move_iterator(args.begin() + 1), std::make_move_iterator(args.end()));
  }
  for (std::size_t i = 0; i < (c.op == Op::Put ? 1 : c.args.size()); ++i) {
    if (c.args[i].size() > kKeyBytesMax) return done(resp::error("ERR key too large"), false);
  }
  if (node_.role() != Role::Leader) return done(redirect(kNoNode), false);

  // The callback may run after this service is gone (node shutdown): it holds only what
  // outlives the service.
  auto peers = std::make_shared<const std::map<NodeId, std::string>>(resp_peers_);
  Node* node = &node_;
  const bool is_put = c.op == Op::Put;
  node_.propose(encode(c), [store = store_, node, peers, is_put,
                            done = std::move(done)](Result<ProposeResult> r) mutable {
    if (!r) {
      done(status_reply(*node, *peers, r.status()), false);
      return;
    }
    // Committed; answer once applied here, so the reply carries the result.
    store->when_applied(r.value().index, [is_put, done = std::move(done)](std::optional<KvResult> res) {
      if (res && !res->ok) return done(resp::error(fmt::format("ERR {}", res->error)), false);
      if (is_put) return done(resp::simple("OK"), false);
      done(resp::integer(res ? res->deleted : 0), false);
    });
  });
}

std::string KvService::read_now(const std::vector<std::string>& args) const {
  const std::string cmd = lower(args[0]);
  if (cmd == "get") {
    auto v = store_->get(args[1]);
    return v ? resp::bulk(*v) : resp::null_bulk();
  }
  if (cmd == "exists") {
    std::int64_t n = 0;
    for (std::size_t i = 1; i < args.size(); ++i) n += store_->exists(args[i]) ? 1 : 0;
    return resp::integer(n);
  }
  return resp::integer(static_cast<std::int64_t>(store_->size()));  // dbsize
}

void KvService::read_loop() {
  while (true) {
    std::vector<PendingRead> batch;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stopping_ || !reads_.empty(); });
      if (stopping_) return;
      batch.swap(reads_);
    }
    // One barrier serves the whole batch: every read in it arrived before the barrier.
    std::string failure;
    if (node_.role() != Role::Leader) {
      failure = redirect(kNoNode);
    } else if (auto r = node_.read_index(kReadIndexTimeout); !r) {
      failure = error_reply(r.status());
    } else if (!store_->wait_applied(r.value(), progress_,
                                     std::chrono::steady_clock::now() + kApplyWaitTimeout)) {
      failure = resp::error("ERR timeout waiting for the local state machine to catch up");
    }
    for (auto& read : batch) read.done(failure.empty() ? read_now(read.args) : failure, false);
  }
}

// ---------------------------------------------------------------------------------
// RespServer
// ---------------------------------------------------------------------------------

namespace {

/// Posts to the io thread while the server lives; drops the job after stop().
class Poster {
 public:
  explicit Poster(asio::io_context& ioc) : ioc_(&ioc) {}
  template <class F>
  void post(F&& f) {
    std::lock_guard lock(mu_);
    if (ioc_ != nullptr) asio::post(*ioc_, std::forward<F>(f));
  }
  void close() {
    std::lock_guard lock(mu_);
    ioc_ = nullptr;
  }

 private:
  std::mutex mu_;
  asio::io_context* ioc_;
};

/// One client connection. Used on the io thread only; the last reference may be dropped
/// elsewhere (a reply callback outliving the server), which is safe once close() released
/// the socket: nothing else refers to the io_context.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, KvService& service, std::shared_ptr<Poster> poster)
      : socket_(std::move(socket)), service_(service), poster_(std::move(poster)) {}

  void start() { do_read(); }

  void close() {
    if (closed_) return;
    closed_ = true;
    boost::system::error_code ec;
    socket_->shutdown(tcp::socket::shutdown_both, ec);
    socket_->close(ec);
    socket_.reset();
    slots_.clear();
    waiting_.clear();
  }

 private:
  struct Slot {
    CommandKind kind = CommandKind::Local;
    bool ready = false;
    bool close = false;
    std::string reply;
  };
  struct Waiting {
    std::uint64_t seq;
    CommandKind kind;
    std::vector<std::string> args;
  };

  void do_read() {
    if (closed_ || closing_) return;
    if (slots_.size() >= kPipelinedMax) {
      reading_paused_ = true;
      return;
    }
    socket_->async_read_some(asio::buffer(rbuf_), [self = shared_from_this()](
                                                     const boost::system::error_code& ec, std::size_t n) {
      self->on_read(ec, n);
    });
  }

  void on_read(const boost::system::error_code& ec, std::size_t n) {
    if (closed_) return;
    if (ec) {
      if (ec != asio::error::eof) return close();
      // The peer finished sending: answer what it asked, then close.
      closing_ = true;
      waiting_and_flush();
      return;
    }
    parser_.feed(std::string_view(rbuf_.data(), n));
    std::vector<std::string> args;
    std::string error;
    while (!closing_) {
      const auto state = parser_.next(args, error);
      if (state == resp::Parser::State::NeedMore) break;
      if (state == resp::Parser::State::Error) {
        // The stream cannot be resynchronized: answer the error, then close.
        slots_.push_back(Slot{CommandKind::Local, true, true, resp::error(fmt::format("ERR {}", error))});
        closing_ = true;
        break;
      }
      on_command(std::move(args));
      args.clear();
    }
    waiting_and_flush();
    do_read();
  }

  void on_command(std::vector<std::string> args) {
    const std::uint64_t seq = base_seq_ + slots_.size();
    const CommandKind kind = KvService::classify(args);
    slots_.push_back(Slot{kind, false, false, {}});
    if (waiting_.empty() && can_dispatch(kind)) {
      dispatch(seq, kind, std::move(args));
    } else {
      waiting_.push_back(Waiting{seq, kind, std::move(args)});
    }
  }

  [[nodiscard]] bool can_dispatch(CommandKind kind) const {
    switch (kind) {
      case CommandKind::Read: return writes_ == 0;
      case CommandKind::Write: return reads_ == 0;
      case CommandKind::Local: return true;
    }
    return true;
  }

  void dispatch(std::uint64_t seq, CommandKind kind, std::vector<std::string> args) {
    if (kind == CommandKind::Read) ++reads_;
    if (kind == CommandKind::Write) ++writes_;
    service_.execute(std::move(args), [self = shared_from_this(), poster = poster_, seq](
                                          std::string reply, bool close) mutable {
      poster->post([self, seq, reply = std::move(reply), close]() mutable {
        self->complete(seq, std::move(reply), close);
      });
    });
  }

  void complete(std::uint64_t seq, std::string reply, bool close) {
    if (closed_ || seq < base_seq_ || seq - base_seq_ >= slots_.size()) return;
    Slot& slot = slots_[seq - base_seq_];
    if (slot.kind == CommandKind::Read) --reads_;
    if (slot.kind == CommandKind::Write) --writes_;
    slot.ready = true;
    slot.close = close;
    slot.reply = std::move(reply);
    waiting_and_flush();
  }

  /// Dispatches what may go now, moves finished replies (in order) to the output.
  void waiting_and_flush() {
    while (!waiting_.empty() && can_dispatch(waiting_.front().kind)) {
      Waiting w = std::move(waiting_.front());
      waiting_.pop_front();
      dispatch(w.seq, w.kind, std::move(w.args));
    }
    while (!slots_.empty() && slots_.front().ready) {
      Slot& s = slots_.front();
      out_.append(s.reply);
      const bool close_now = s.close;
      slots_.pop_front();
      ++base_seq_;
      if (close_now) {
        // QUIT or a protocol error: nothing after it is answered.
        closing_ = true;
        base_seq_ += slots_.size();
        slots_.clear();
        waiting_.clear();
        break;
      }
    }
    do_write();
    if (reading_paused_ && slots_.size() < kPipelinedMax / 2) {
      reading_paused_ = false;
      do_read();
    }
  }

  void do_write() {
    if (closed_ || writing_) return;
    if (out_.empty()) {
      if (closing_ && slots_.empty()) close();
      return;
    }
    writing_ = true;
    wbuf_.swap(out_);
    out_.clear();
    asio::async_write(*socket_, asio::buffer(wbuf_), [self = shared_from_this()](
                                                        const boost::system::error_code& ec, std::size_t) {
      self->writing_ = false;
      self->wbuf_.clear();
      if (ec) return self->close();
      self->do_write();
    });
  }

  std::optional<tcp::socket> socket_;  // reset by close()
  KvService& service_;
  std::shared_ptr<Poster> poster_;
  resp::Parser parser_;
  std::array<char, 16384> rbuf_{};
  std::deque<Slot> slots_;     // unanswered commands, in request order
  std::uint64_t base_seq_ = 0;  // the sequence number of slots_.front()
  std::deque<Waiting> waiting_;
  std::size_t reads_ = 0;   // dispatched, unanswered reads
  std::size_t writes_ = 0;  // dispatched, unanswered writes
  std::string out_;
  std::string wbuf_;
  bool writing_ = false;
  bool reading_paused_ = false;
  bool closing_ = false;  // no more requests: close once everything is answered
  bool closed_ = false;
};

}  // namespace

struct RespServer::Impl {
  explicit Impl(KvService& s) : service(s) {}

  void accept() {
    acceptor.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
        accept();
        return;
      }
      std::erase_if(sessions, [](const std::weak_ptr<Session>& w) { return w.expired(); });
      if (sessions.size() >= kConnectionsMax) {
        boost::system::error_code ignored;
        socket.close(ignored);
      } else {
        boost::system::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        auto session = std::make_shared<Session>(std::move(socket), service, poster);
        sessions.push_back(session);
        session->start();
      }
      accept();
    });
  }

  KvService& service;
  asio::io_context ioc{1};
  tcp::acceptor acceptor{ioc};
  std::shared_ptr<Poster> poster = std::make_shared<Poster>(ioc);
  std::vector<std::weak_ptr<Session>> sessions;  // io thread only
  std::thread thread;
  bool stopped = false;
};

RespServer::RespServer(std::unique_ptr<Impl> impl, std::uint16_t port)
    : impl_(std::move(impl)), port_(port) {}

RespServer::~RespServer() { stop(); }

Result<std::unique_ptr<RespServer>> RespServer::start(KvService& service, const std::string& host,
                                                      std::uint16_t port) {
  auto impl = std::make_unique<Impl>(service);
  boost::system::error_code ec;
  tcp::resolver resolver(impl->ioc);
  const auto endpoints = resolver.resolve(host, std::to_string(port), ec);
  if (ec || endpoints.empty()) {
    return Status{ErrorCode::IoError,
                  fmt::format("kv: cannot resolve listen address {}:{}: {}", host, port, ec.message())};
  }
  const tcp::endpoint ep = endpoints.begin()->endpoint();
  const auto fail = [&](std::string_view what) {
    return Status{ErrorCode::IoError,
                  fmt::format("kv: cannot listen on {}:{} ({}): {}", host, port, what, ec.message())};
  };
  if (impl->acceptor.open(ep.protocol(), ec); ec) return fail("open");
  if (impl->acceptor.set_option(tcp::acceptor::reuse_address(true), ec); ec) return fail("option");
  if (impl->acceptor.bind(ep, ec); ec) return fail("bind");
  if (impl->acceptor.listen(asio::socket_base::max_listen_connections, ec); ec) return fail("listen");
  const std::uint16_t bound = impl->acceptor.local_endpoint(ec).port();
  if (ec) return fail("local address");
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] { raw->ioc.run(); });
  return std::make_unique<RespServer>(std::move(impl), bound);
}

void RespServer::stop() {
  if (!impl_ || impl_->stopped) return;
  impl_->stopped = true;
  impl_->poster->close();
  Impl* raw = impl_.get();
  asio::post(raw->ioc, [raw] {
    boost::system::error_code ignored;
    raw->acceptor.close(ignored);
    for (auto& w : raw->sessions) {
      if (auto s = w.lock()) s->close();
    }
    raw->sessions.clear();
    raw->ioc.stop();
  });
  if (raw->thread.joinable()) raw->thread.join();
}

}  // namespace rlr::kv
