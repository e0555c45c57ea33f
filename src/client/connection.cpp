#include "client/connection.h"

#include <algorithm>

#include <fmt/format.h>

namespace rlr::client {

using tcp = asio::ip::tcp;

ConnectionSettings settings_for(const ClientOptions& o) {
  ConnectionSettings s;
  s.cluster_id = o.cluster_id;
  s.token = o.auth_token;
  s.max_frame_bytes = o.max_frame_bytes;
  s.max_queue_bytes = std::max<std::size_t>(o.max_frame_bytes * 2, 1U << 20);
  s.connect_timeout = o.request_timeout;
  if (o.keepalive_interval.count() > 0) {
    s.keepalive_interval = o.keepalive_interval;
    s.silence_timeout = o.silence_timeout.count() != 0 ? o.silence_timeout : 4 * o.keepalive_interval;
    s.connect_timeout = std::min(s.connect_timeout, s.silence_timeout);
  }
  return s;
}

std::shared_ptr<Connection> Connection::create(asio::io_context& io,
                                               const ConnectionSettings& settings,
                                               std::string address, Handlers handlers) {
  return std::make_shared<Connection>(io, settings, std::move(address), std::move(handlers));
}

Connection::Connection(asio::io_context& io, const ConnectionSettings& settings,
                       std::string address, Handlers handlers)
    : io_(io),
      settings_(settings),
      address_(std::move(address)),
      handlers_(std::move(handlers)),
      tag_(wire::cluster_tag(settings.cluster_id)),
      resolver_(io),
      sock_(io),
      timer_(io),
      // The HelloAck of a node of another cluster carries that cluster's tag: read it
      // without the check, so that its refusal can be reported; checked from then on.
      reader_(0, settings.max_frame_bytes),
      liveness_(io) {}

void Connection::start() {
  auto parsed = Address::parse(address_);
  if (!parsed) {
    auto self = shared_from_this();
    asio::post(io_, [self, why = parsed.status()] { self->fail(why); });
    return;
  }
  timer_.expires_after(settings_.connect_timeout);
  timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (ec || self->closed_ || self->ready_) return;
    self->silent_ = true;
    self->fail(Status{ErrorCode::Unavailable,
                      fmt::format("{}: no handshake within {} ms", self->address_,
                                  self->settings_.connect_timeout.count())});
  });
  resolver_.async_resolve(
      parsed.value().host, std::to_string(parsed.value().port),
      [self = shared_from_this()](boost::system::error_code ec, tcp::resolver::results_type eps) {
        if (self->closed_) return;
        if (ec) {
          self->fail(Status{ErrorCode::Unavailable,
                            fmt::format("{}: resolve: {}", self->address_, ec.message())});
          return;
        }
        asio::async_connect(self->sock_, eps,
                            [self](boost::system::error_code ec2, const tcp::endpoint&) {
                              if (self->closed_) return;
                              if (ec2) {
                                self->fail(Status{ErrorCode::Unavailable,
                                                  fmt::format("{}: connect: {}", self->address_,
                                                              ec2.message())});
                                return;
                              }
                              self->on_connected();
                            });
      });
}

void Connection::on_connected() {
  boost::system::error_code ignored;
  sock_.set_option(tcp::no_delay(true), ignored);
  wire::Hello h;
  h.kind = wire::PeerKind::Client;
  h.cluster_id = settings_.cluster_id;
  h.token = settings_.token;
  if (settings_.keepalive_interval.count() > 0) h.features |= wire::kFeatureClientKeepalive;
  hello_ = wire::encode_hello(h);
  asio::async_write(sock_, asio::buffer(hello_.data(), hello_.size()),
                    [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                      if (self->closed_) return;
                      if (ec) {
                        self->fail(Status{ErrorCode::Unavailable,
                                          fmt::format("{}: hello: {}", self->address_, ec.message())});
                        return;
                      }
                      self->read();
                    });
}

void Connection::read() {
  if (closed_ || reading_ || paused_) return;
  reading_ = true;
  sock_.async_read_some(asio::buffer(rbuf_), [self = shared_from_this()](
                                                 boost::system::error_code ec, std::size_t n) {
    self->reading_ = false;
    if (self->closed_) return;
    if (ec) {
      self->fail(Status{ErrorCode::Unavailable,
                        ec == asio::error::eof
                            ? fmt::format("{}: connection closed by the node", self->address_)
                            : fmt::format("{}: read: {}", self->address_, ec.message())});
      return;
    }
    self->last_heard_ = std::chrono::steady_clock::now();
    self->handle_bytes(n);
    self->read();
  });
}

void Connection::resume_reading() {
  if (!paused_) return;
  paused_ = false;
  // Nothing was read while paused: the silence bound starts over.
  last_heard_ = std::chrono::steady_clock::now();
  // Frames already buffered may be waiting; hand them over first.
  handle_bytes(0);
  read();
}

void Connection::handle_bytes(std::size_t n) {
  auto self = shared_from_this();  // a handler may drop the owner's reference
  if (n > 0) reader_.feed(std::span<const std::uint8_t>(rbuf_.data(), n));
  while (!closed_ && !paused_) {
    auto item = reader_.next();
    if (!item) {
      fail(Status{ErrorCode::Corruption,
                  fmt::format("{}: malformed frame: {}", address_, item.status().to_string())});
      return;
    }
    if (!item.value()) return;
    const wire::FrameReader::Item& it = *item.value();
    if (!ready_) {
      if (it.header.type != wire::FrameType::HelloAck) {
        fail(Status{ErrorCode::Corruption, fmt::format("{}: expected HelloAck", address_)});
        return;
      }
      auto ack = wire::decode_hello_ack(it.payload.span());
      if (!ack) {
        fail(Status{ErrorCode::Corruption,
                    fmt::format("{}: bad HelloAck: {}", address_, ack.status().to_string())});
        return;
      }
      if (!ack.value().accepted) {
        const std::string& reason = ack.value().reason;
        const ErrorCode code = reason.find("cluster") != std::string::npos ? ErrorCode::WrongCluster
                                                                            : ErrorCode::InvalidArgument;
        fail(Status{code, fmt::format("{} refused the connection: {}", address_, reason)});
        return;
      }
      node_id_ = ack.value().node_id;
      reader_.expect_tag(tag_);
      ready_ = true;
      timer_.cancel();
      keepalive_ = settings_.keepalive_interval.count() > 0 && settings_.silence_timeout.count() > 0 &&
                   (ack.value().features & wire::kFeatureClientKeepalive) != 0;
      if (keepalive_) {
        last_ping_ = last_heard_;
        watch_liveness();
      }
      flush();
      if (handlers_.on_ready) handlers_.on_ready(*this);
      continue;
    }
    if (it.header.type == wire::FrameType::Ping && keepalive_) continue;  // hearing it is the point
    if (it.header.type != wire::FrameType::ClientReply) {
      fail(Status{ErrorCode::Corruption,
                  fmt::format("{}: unexpected frame type {}", address_,
                              static_cast<int>(it.header.type))});
      return;
    }
    auto reply = wire::decode_client_reply(it.payload);
    if (!reply) {
      fail(Status{ErrorCode::Corruption,
                  fmt::format("{}: bad reply: {}", address_, reply.status().to_string())});
      return;
    }
    if (handlers_.on_reply) handlers_.on_reply(*this, std::move(reply).value());
  }
}

Status Connection::send(const wire::ClientRequest& request) {
  if (closed_) return Status{ErrorCode::Unavailable, fmt::format("{}: connection closed", address_)};
  wire::Frame f = wire::encode_client_request(request, tag_);
  if (f.size() > settings_.max_frame_bytes + wire::kHeaderBytes) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("request of {} bytes exceeds the frame limit of {} bytes", f.size(),
                              settings_.max_frame_bytes)};
  }
  if (queued_bytes_ + f.size() > settings_.max_queue_bytes && !queue_.empty()) {
    return Status{ErrorCode::Busy, "too many bytes queued on the connection"};
  }
  queued_bytes_ += f.size();
  queue_.push_back(std::move(f));
  flush();
  return Status::ok();
}

void Connection::flush() {
  if (!ready_ || writing_ || closed_ || queue_.empty()) return;
  // Every queued frame (up to kMaxGather) in one gathering write: under load, the
  // frames queued while the last write was on its way leave in one system call.
  writing_ = true;
  gather_.clear();
  const std::size_t n = std::min(queue_.size(), kMaxGather);
  for (std::size_t i = 0; i < n; ++i) gather_.emplace_back(queue_[i].data(), queue_[i].size());
  asio::async_write(sock_, gather_, [self = shared_from_this(), n](boost::system::error_code ec, std::size_t) {
    self->writing_ = false;
    if (self->closed_) return;
    if (ec) {
      self->fail(Status{ErrorCode::Unavailable, fmt::format("{}: write: {}", self->address_, ec.message())});
      return;
    }
    for (std::size_t i = 0; i < n; ++i) {
      self->queued_bytes_ -= self->queue_.front().size();
      self->queue_.pop_front();
    }
    self->flush();
  });
}

void Connection::watch_liveness() {
  using Clock = std::chrono::steady_clock;
  if (closed_ || !keepalive_) return;
  const auto now = Clock::now();
  if (paused_) last_heard_ = now;  // not reading: nothing to judge by
  const auto silent_for = now - last_heard_;
  if (silent_for >= settings_.silence_timeout) {
    silent_ = true;
    fail(Status{ErrorCode::Unavailable,
                fmt::format("{}: nothing heard for {} ms", address_,
                            std::chrono::duration_cast<std::chrono::milliseconds>(silent_for).count())});
    return;
  }
  if (silent_for >= settings_.keepalive_interval && now - last_ping_ >= settings_.keepalive_interval &&
      queue_.empty()) {
    wire::Frame ping = wire::encode_ping(tag_);
    queued_bytes_ += ping.size();
    queue_.push_back(std::move(ping));
    last_ping_ = now;
    flush();
  }
  // Wake for the next Ping (an interval from now when one was due but frames were
  // queued) or the silence deadline, whichever comes first; both lie ahead of now.
  auto next_ping = std::max(last_heard_, last_ping_) + settings_.keepalive_interval;
  if (next_ping <= now) next_ping = now + settings_.keepalive_interval;
  liveness_.expires_at(std::min(next_ping, last_heard_ + settings_.silence_timeout));
  liveness_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    if (!ec) self->watch_liveness();
  });
}

void Connection::close() {
  if (closed_) return;
  closed_ = true;
  ready_ = false;
  boost::system::error_code ignored;
  timer_.cancel();
  liveness_.cancel();
  resolver_.cancel();
  sock_.shutdown(tcp::socket::shutdown_both, ignored);
  sock_.close(ignored);
  // queue_ stays: an aborted write may still name its first frames until it completes.
}

void Connection::fail(Status why) {
  if (closed_) return;
  auto self = shared_from_this();
  close();
  if (handlers_.on_closed) handlers_.on_closed(*this, why);
}

}  // namespace rlr::client
