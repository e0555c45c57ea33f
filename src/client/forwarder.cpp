#include "client/forwarder.h"

#include <map>

#include <fmt/format.h>

#include "client/connection.h"
#include "client/io_thread.h"

namespace rlr::client {

class Forwarder::Impl {
 public:
  explicit Impl(ForwarderOptions o) : o_(std::move(o)) {
    settings_.cluster_id = o_.cluster_id;
    settings_.token = o_.token;
    settings_.max_frame_bytes = o_.max_frame_bytes;
    settings_.connect_timeout = std::chrono::milliseconds(2000);
  }
  ~Impl() {
    io_.run_and_wait([this] {
      stopping_ = true;
      drop(Status{ErrorCode::ShuttingDown, "the node is stopping"});
    });
    io_.stop();
  }
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  void forward(const std::string& address, wire::ProposeRequest p, std::chrono::milliseconds timeout,
               Done done) {
    io_.post([this, address, p = std::move(p), timeout, done = std::move(done)]() mutable {
      if (stopping_) {
        done(Status{ErrorCode::ShuttingDown, "the node is stopping"});
        return;
      }
      if (inflight_.size() >= o_.max_inflight) {
        done(Status{ErrorCode::Busy, "too many proposals being forwarded"});
        return;
      }
      if (conn_ && conn_->address() != address) {
        drop(Status{ErrorCode::Unavailable, "the leader changed while forwarding"});
      }
      if (!conn_) open(address);
      wire::ClientRequest req;
      req.request_id = kForwardedRequestBit | next_id_++;
      req.timeout_ms = static_cast<std::uint32_t>(timeout.count());
      req.body = std::move(p);
      if (Status s = conn_->send(req); !s) {
        done(s);
        return;
      }
      Pending& pending = inflight_[req.request_id];
      pending.done = std::move(done);
      pending.timer = std::make_unique<asio::steady_timer>(io_.io());
      pending.timer->expires_after(timeout);
      pending.timer->async_wait([this, rid = req.request_id](boost::system::error_code ec) {
        if (ec) return;
        complete(rid, Status{ErrorCode::Timeout, "the leader did not answer the forwarded proposal in time"});
      });
    });
  }

 private:
  struct Pending {
    Done done;
    std::unique_ptr<asio::steady_timer> timer;
  };

  void open(const std::string& address) {
    Connection::Handlers h;
    h.on_reply = [this](Connection& c, wire::ClientReply r) {
      if (&c != conn_.get()) return;
      const std::uint64_t rid = r.request_id;
      complete(rid, std::move(r));
    };
    h.on_closed = [this](Connection& c, const Status& s) {
      if (&c != conn_.get()) return;
      drop(Status{ErrorCode::Unavailable, fmt::format("forwarding to the leader failed: {}", s.message())});
    };
    conn_ = Connection::create(io_.io(), settings_, address, std::move(h));
    conn_->start();
  }

  void complete(std::uint64_t rid, Result<wire::ClientReply> r) {
    auto it = inflight_.find(rid);
    if (it == inflight_.end()) return;
    Pending p = std::move(it->second);
    inflight_.erase(it);
    p.timer->cancel();
    p.done(std::move(r));
  }

  void drop(const Status& why) {
    if (conn_) {
      conn_->close();
      conn_.reset();
    }
    auto all = std::move(inflight_);
    inflight_.clear();
    for (auto& [rid, p] : all) {
      p.timer->cancel();
      p.done(why);
    }
  }

  ForwarderOptions o_;
  ConnectionSettings settings_;
  IoThread io_;
  // io thread only
  bool stopping_ = false;
  std::shared_ptr<Connection> conn_;
  std::map<std::uint64_t, Pending> inflight_;
  std::uint64_t next_id_ = 1;
};

Forwarder::Forwarder(ForwarderOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Forwarder::~Forwarder() = default;

void Forwarder::forward(const std::string& leader_address, wire::ProposeRequest proposal,
                        std::chrono::milliseconds timeout, Done done) {
  impl_->forward(leader_address, std::move(proposal), timeout, std::move(done));
}

}  // namespace rlr::client
