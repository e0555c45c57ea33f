#include "transport/inbound_conn.h"

#include <algorithm>
#include <type_traits>
#include <utility>
#include <variant>

#include <fmt/format.h>

namespace rlr::transport {

void AsioTransport::Impl::accept() {
  acceptor.async_accept([this](boost::system::error_code ec, tcp::socket sock) {
    if (stopped) return;
    if (!ec) {
      auto c = std::make_shared<Conn>(*this, std::move(sock));
      conns.insert(c);
      c->start();
    }
    accept();
  });
}

void AsioTransport::Impl::Conn::start() {
  impl_.tune_socket(sock_);
  timer_.expires_after(std::chrono::milliseconds(impl_.opts.handshake_timeout_ms));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec && self->kind_ == Kind::Unknown) self->close("no handshake in time");
  });
  read();
}

void AsioTransport::Impl::Conn::close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  if (!why.empty()) {
    const std::string from = remote();
    if (kind_ == Kind::Node) {
      impl_.log.logf(LogLevel::Warn, {{"remote", from}, {"peer", std::to_string(peer_.value())}},
                     "closing inbound connection: {}", why);
    } else {
      impl_.log.logf(LogLevel::Warn, {{"remote", from}}, "closing inbound connection: {}", why);
    }
  }
  boost::system::error_code ec;
  timer_.cancel();
  sock_.close(ec);
  queue_.clear();
  impl_.conns.erase(shared_from_this());
}

bool AsioTransport::Impl::Conn::send(wire::Frame f) {
  if (closed_flag_.load()) return false;
  bool schedule = false;
  if (!queue_.push(std::move(f), schedule)) return false;
  if (schedule) asio::post(impl_.io, [self = shared_from_this()] { self->flush(); });
  return true;
}

std::string AsioTransport::Impl::Conn::remote() const {
  boost::system::error_code ec;
  const auto ep = sock_.remote_endpoint(ec);
  return ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
}

void AsioTransport::Impl::Conn::read() {
  // Straight into the frame reader's buffer: a large frame arrives in the buffer that
  // becomes its payload's owner, with no copy through a separate read buffer.
  const std::span<std::uint8_t> room = reader_.prepare(kReadBytes);
  sock_.async_read_some(asio::buffer(room.data(), room.size()), [self = shared_from_this()](
                                                 boost::system::error_code ec, std::size_t n) {
    self->reader_.commit(ec ? 0 : n);
    if (self->closed_) return;
    if (ec) {
      self->closed_flag_ = true;
      if (self->kind_ == Kind::Node && !self->impl_.stopped) self->impl_.inbox->peer_lost(self->peer_);
      self->close(ec == asio::error::eof ? "" : "read: " + ec.message());
      return;
    }
    // Any bytes count, not only whole frames: a large frame on a slow path is progress.
    self->last_heard_ = Clock::now();
    if (self->rx_) self->rx_->bytes.fetch_add(n, std::memory_order_relaxed);
    for (;;) {
      auto item = self->reader_.next();
      if (!item) {
        ++self->impl_.rejected;
        self->closed_flag_ = true;
        self->close("malformed frame: " + item.status().to_string());
        return;
      }
      if (!item.value()) break;
      if (!self->handle(std::move(*item.value()))) {
        self->closed_flag_ = true;
        return;
      }
    }
    self->read();
  });
}

template <class M>
bool AsioTransport::Impl::Conn::on_peer_message(M m) {
  if (m.from != peer_ || m.to != impl_.opts.self) {
    return reject(fmt::format("message from {} to {} on the connection of node {}",
                              m.from.value(), m.to.value(), peer_.value()));
  }
  if constexpr (std::is_same_v<M, wire::DigestReport>) {
    impl_.inbox->deliver_digests(std::move(m));
  } else {
    if (m.type == core::MessageType::Snapshot) return reject("snapshots must arrive as chunks");
    impl_.inbox->deliver(std::move(m));
  }
  return true;
}

bool AsioTransport::Impl::Conn::handle(wire::FrameReader::Item item) {
  using wire::FrameType;
  if (kind_ == Kind::Unknown) return handshake(item);
  if (kind_ == Kind::Node) {
    rx_->frames.fetch_add(1, std::memory_order_relaxed);
    if (item.header.type == FrameType::Ping && keepalive_) return true;  // hearing it is the point
    if (item.header.type == FrameType::Raft) {
      auto decoded = wire::decode_peer_message(item.payload);
      if (!decoded) return reject("bad raft message: " + decoded.status().to_string());
      return std::visit([this](auto&& m) { return on_peer_message(std::move(m)); },
                        std::move(decoded).value());
    }
    if (item.header.type == FrameType::SnapshotChunk) {
      auto c = wire::decode_snapshot_chunk(item.payload);
      if (!c) return reject("bad snapshot chunk: " + c.status().to_string());
      if (c.value().from != peer_ || c.value().to != impl_.opts.self) {
        return reject("snapshot chunk with the wrong sender or destination");
      }
      impl_.on_snapshot_chunk(std::move(c).value(), *this);
      return true;
    }
    return reject(fmt::format("unexpected frame type {} from a node",
                              static_cast<int>(item.header.type)));
  }
  if (item.header.type == FrameType::Ping && client_pings_) {
    // The echo a client's liveness check waits for. Dropped when the reply queue is
    // full: the client then has replies on their way to hear instead.
    send(wire::encode_ping(impl_.tag));
    return true;
  }
  if (item.header.type != FrameType::ClientRequest) {
    return reject("clients may only send requests (and Pings, when their Hello offered them)");
  }
  auto req = wire::decode_client_request(item.payload);
  if (!req) return reject("bad client request: " + req.status().to_string());
  if (impl_.clients == nullptr) {
    wire::ClientReply r;
    r.request_id = req.value().request_id;
    r.status = Status{ErrorCode::Unavailable, "this endpoint serves no clients"};
    send(wire::encode_client_reply(r, impl_.tag));
    return true;
  }
  impl_.clients->on_client_request(std::move(req).value(), stream());
  return true;
}

bool AsioTransport::Impl::Conn::handshake(const wire::FrameReader::Item& item) {
  if (item.header.type != wire::FrameType::Hello) return reject("expected Hello");
  auto h = wire::decode_hello(item.payload.span());
  if (!h) return reject("bad Hello: " + h.status().to_string());
  const wire::Hello& hello = h.value();
  std::string refusal;
  if (hello.protocol_version != wire::kProtocolVersion) {
    refusal = fmt::format("protocol version {} not supported (this node speaks {})",
                          hello.protocol_version, wire::kProtocolVersion);
  } else if (hello.cluster_id != impl_.opts.cluster_id) {
    refusal = fmt::format("wrong cluster '{}' (this is '{}')", hello.cluster_id, impl_.opts.cluster_id);
  } else if (hello.token != impl_.opts.auth_token) {
    refusal = "bad token";
  } else if (hello.kind == wire::PeerKind::Node &&
             (hello.node_id == kNoNode || hello.node_id == impl_.opts.self)) {
    refusal = fmt::format("invalid node id {}", hello.node_id.value());
  } else if (hello.kind == wire::PeerKind::Node && !impl_.known_peer(hello.node_id) &&
             !impl_accept_unknown()) {
    refusal = fmt::format("unknown node {}", hello.node_id.value());
  }
  wire::HelloAck ack;
  ack.node_id = impl_.opts.self;
  // Every node answers client Pings (wire::kFeatureClientKeepalive), whatever its
  // peer-link settings: the answer is one frame on the io thread, and the client's
  // bound is the client's own.
  ack.features = (impl_.keepalive_on() ? wire::kFeatureKeepalive : 0) | wire::kFeatureClientKeepalive;
  ack.accepted = refusal.empty();
  ack.reason = refusal;
  if (!refusal.empty()) {
    ++impl_.refused;
    // Tell the other side why, then close once the reply is written.
    auto frame = std::make_shared<wire::Frame>(wire::encode_hello_ack(ack, impl_.tag));
    asio::async_write(sock_, asio::buffer(frame->data(), frame->size()),
                      [self = shared_from_this(), frame, refusal](boost::system::error_code, std::size_t) {
                        self->closed_flag_ = true;
                        self->close("handshake refused: " + refusal);
                      });
    return false;
  }
  kind_ = hello.kind == wire::PeerKind::Node ? Kind::Node : Kind::Client;
  peer_ = hello.node_id;
  if (kind_ == Kind::Node) {
    rx_ = impl_.received_from(peer_);
    impl_.learn_peer(peer_, hello.address);
    impl_.dialled_by(peer_);
  }
  timer_.cancel();
  reader_ = wire::FrameReader(impl_.tag, impl_.opts.max_frame_bytes);
  send(wire::encode_hello_ack(ack, impl_.tag));
  keepalive_ = kind_ == Kind::Node && impl_.keepalive_on() && (hello.features & wire::kFeatureKeepalive) != 0;
  client_pings_ = kind_ == Kind::Client && (hello.features & wire::kFeatureClientKeepalive) != 0;
  last_heard_ = Clock::now();
  watch_silence();
  return true;
}

void AsioTransport::Impl::Conn::watch_silence() {
  if (!keepalive_ || closed_) return;
  timer_.expires_after(std::chrono::milliseconds(impl_.opts.keepalive_interval_ms));
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_) return;
    const auto silent = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - self->last_heard_);
    if (silent.count() > static_cast<std::int64_t>(self->impl_.opts.silence_timeout_ms)) {
      ++self->impl_.links_silent;
      self->closed_flag_ = true;
      if (!self->impl_.stopped) self->impl_.inbox->peer_lost(self->peer_);
      self->close(fmt::format("nothing heard for {} ms", silent.count()));
      self->impl_.silent_peer(self->peer_);
      return;
    }
    self->watch_silence();
  });
}

bool AsioTransport::Impl::Conn::reject(const std::string& why) {
  ++impl_.rejected;
  closed_flag_ = true;
  close(why);
  return false;
}

void AsioTransport::Impl::Conn::flush() {
  if (writing_ || closed_) return;
  frames_.clear();
  if (!queue_.take(frames_)) return;
  writing_ = true;
  buffers_.clear();
  for (const auto& f : frames_) buffers_.emplace_back(f.data(), f.size());
  ++impl_.writes;
  impl_.frames_sent += frames_.size();
  asio::async_write(sock_, buffers_, [self = shared_from_this()](boost::system::error_code ec,
                                                                std::size_t) {
    self->writing_ = false;
    if (ec) {
      self->closed_flag_ = true;
      self->close("write: " + ec.message());
      return;
    }
    self->flush();
  });
}

namespace {

class ConnStream final : public ClientStream {
 public:
  ConnStream(std::weak_ptr<AsioTransport::Impl::Conn> c, std::uint64_t tag) : c_(std::move(c)), tag_(tag) {}
  bool send(const wire::ClientReply& reply) override {
    auto c = c_.lock();
    return c && c->send(wire::encode_client_reply(reply, tag_));
  }
  bool open() const override {
    auto c = c_.lock();
    return c && c->is_open();
  }

 private:
  std::weak_ptr<AsioTransport::Impl::Conn> c_;
  std::uint64_t tag_;
};

}  // namespace

std::shared_ptr<ClientStream> AsioTransport::Impl::Conn::stream() {
  // One per connection, made on its first request: every request's reply path shares it.
  if (!stream_) stream_ = std::make_shared<ConnStream>(weak_from_this(), impl_.tag);
  return stream_;
}

bool AsioTransport::Impl::Conn::impl_accept_unknown() const {
  // A node that no configuration has given peers yet is waiting to be added to a
  // cluster: it cannot know the leader (or the next leader) that will contact it.
  std::lock_guard lock(impl_.peers_mu);
  return impl_.peers.size() == impl_.learned.size();
}

}  // namespace rlr::transport
