#include "transport/peer_link.h"

#include <algorithm>
#include <span>
#include <utility>

#include <fmt/format.h>

namespace rlr::transport {

void AsioTransport::Impl::Peer::send_batch(std::vector<wire::Frame>& frames) {
  const std::size_t n = frames.size();
  bool schedule = false;
  std::uint64_t direct = 0;
  const std::size_t taken = queue_.send_or_push(frames, schedule, direct);
  impl_.dropped += n - taken;
  if (direct != 0) {
    ++impl_.writes;
    ++impl_.direct_writes;
    impl_.frames_sent += direct;  // queued frames are counted when the io thread writes them
  }
  if (schedule) asio::post(impl_.io, [self = shared_from_this()] { self->flush(); });
}

void AsioTransport::Impl::Peer::close_for_good() {
  closed_ = true;
  retry_.cancel();
  liveness_.cancel();
  queue_.set_fd(-1);
  if (sock_) {
    boost::system::error_code ec;
    sock_->close(ec);
  }
  queue_.clear();
  snap_.reset();
}

void AsioTransport::Impl::Peer::restart_silent() {
  if (closed_ || impl_.stopped || !connected_) return;
  ++impl_.links_silent;
  fail("the peer's link to us went silent", true, /*silent=*/true);
}

void AsioTransport::Impl::Peer::dial_now() {
  if (closed_ || impl_.stopped || !retry_waiting_) return;
  retry_waiting_ = false;
  attempts_ = 0;
  retry_.cancel();
  connect();
}

void AsioTransport::Impl::Peer::set_address(std::string a) {
  if (a == address_) return;
  address_ = std::move(a);
  queue_.set_fd(-1);
  if (sock_) {
    boost::system::error_code ec;
    sock_->close(ec);
  }
}

void AsioTransport::Impl::Peer::connect() {
  if (closed_ || impl_.stopped) return;
  auto parsed = Address::parse(address_);
  if (!parsed) {
    impl_.log.log(LogLevel::Error, "cannot dial: " + parsed.status().message(),
                  {{"peer", std::to_string(id_.value())}, {"address", address_}});
    return;
  }
  const std::string host = std::move(parsed.value().host);
  const std::uint16_t port = parsed.value().port;
  connected_ = false;
  writing_ = false;
  peer_keepalive_ = false;
  const std::uint64_t gen = ++gen_;
  sock_ = std::make_unique<tcp::socket>(impl_.io);
  if (impl_.keepalive_on()) {
    // The whole dial (connect, Hello, HelloAck) must be answered in time: a silent
    // path is retried at once rather than left to the kernel's SYN retries. The
    // deadline starts at two keepalive intervals and doubles with every dial that
    // misses it, up to the silence timeout, so a path that is only slow (a long round
    // trip, a loaded peer) is not dialled into a storm.
    if (dial_deadline_ms_ == 0) dial_deadline_ms_ = 2 * impl_.opts.keepalive_interval_ms;
    liveness_.expires_after(std::chrono::milliseconds(dial_deadline_ms_));
    liveness_.async_wait([self = shared_from_this(), gen](boost::system::error_code ec) {
      if (ec || gen != self->gen_ || self->connected_) return;
      ++self->impl_.dials_timed_out;
      self->dial_deadline_ms_ =
          std::min(2 * self->dial_deadline_ms_,
                   std::max(self->impl_.opts.silence_timeout_ms, 2 * self->impl_.opts.keepalive_interval_ms));
      self->fail("no answer to the dial in time", false, /*silent=*/true);
    });
  }
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(host, ec);
  if (ec) {
    auto resolver = std::make_shared<tcp::resolver>(impl_.io);
    resolver->async_resolve(host, std::to_string(port),
                            [self = shared_from_this(), resolver, gen](boost::system::error_code e,
                                                                       tcp::resolver::results_type r) {
                              if (gen != self->gen_) return;
                              if (e || r.empty()) {
                                self->fail("resolve: " + e.message());
                                return;
                              }
                              self->dial(r.begin()->endpoint());
                            });
    return;
  }
  dial(tcp::endpoint(ip, port));
}

void AsioTransport::Impl::Peer::dial(tcp::endpoint ep) {
  if (closed_) return;
  sock_->async_connect(ep, [self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
    if (gen != self->gen_) return;
    if (ec) {
      self->fail("connect: " + ec.message());
      return;
    }
    self->impl_.tune_socket(*self->sock_);
    self->hello();
  });
}

void AsioTransport::Impl::Peer::hello() {
  wire::Hello h;
  h.kind = wire::PeerKind::Node;
  h.node_id = impl_.opts.self;
  h.cluster_id = impl_.opts.cluster_id;
  h.token = impl_.opts.auth_token;
  h.address = impl_.advertise;
  h.features = impl_.keepalive_on() ? wire::kFeatureKeepalive : 0;
  hello_frame_ = wire::encode_hello(h);
  reader_ = wire::FrameReader(impl_.tag, impl_.opts.max_frame_bytes);
  asio::async_write(*sock_, asio::buffer(hello_frame_.data(), hello_frame_.size()),
                    [self = shared_from_this(), gen = gen_](boost::system::error_code ec, std::size_t) {
                      if (gen != self->gen_) return;
                      if (ec) {
                        self->fail("hello: " + ec.message());
                        return;
                      }
                      self->read_ack();
                    });
}

void AsioTransport::Impl::Peer::read_ack() {
  sock_->async_read_some(asio::buffer(rbuf_), [self = shared_from_this(), gen = gen_](
                                                  boost::system::error_code ec, std::size_t n) {
    if (gen != self->gen_) return;
    if (ec) {
      self->fail("waiting for hello ack: " + ec.message());
      return;
    }
    self->reader_.feed(std::span<const std::uint8_t>(self->rbuf_.data(), n));
    auto item = self->reader_.next();
    if (!item) {
      self->fail("bad hello ack: " + item.status().to_string());
      return;
    }
    if (!item.value()) {
      self->read_ack();
      return;
    }
    auto ack = item.value()->header.type == wire::FrameType::HelloAck
                   ? wire::decode_hello_ack(item.value()->payload.span())
                   : Result<wire::HelloAck>(Status{ErrorCode::InvalidArgument, "expected HelloAck"});
    if (!ack || !ack.value().accepted) {
      self->fail("handshake refused: " +
                 (ack ? ack.value().reason : ack.status().to_string()), true);
      return;
    }
    self->attempts_ = 0;
    self->dial_deadline_ms_ = 0;
    self->connected_ = true;
    self->peer_keepalive_ = (ack.value().features & wire::kFeatureKeepalive) != 0;
    self->queue_.set_fd(self->sock_->native_handle());
    self->watch();
    self->keep_alive();
    if (self->snap_) {
      // What was in flight on the lost connection is gone; the receiver kept what it
      // acknowledged, so go on from there.
      if (self->snap_->acked > 0) ++self->impl_.snapshot_resumes;
      self->snap_->next = self->snap_->acked;
      self->snap_->sent_all = false;
      self->pump_snapshot();
    }
    self->flush();
  });
}

void AsioTransport::Impl::Peer::watch() {
  sock_->async_read_some(asio::buffer(rbuf_), [self = shared_from_this(), gen = gen_](
                                                  boost::system::error_code ec, std::size_t n) {
    if (gen != self->gen_) return;
    if (ec) {
      self->fail("connection lost: " + ec.message());
      return;
    }
    self->reader_.feed(std::span<const std::uint8_t>(self->rbuf_.data(), n));
    for (;;) {
      auto item = self->reader_.next();
      if (!item) {
        self->fail("malformed frame: " + item.status().to_string(), true);
        return;
      }
      if (!item.value()) break;
      if (item.value()->header.type != wire::FrameType::SnapshotAck) {
        self->fail(fmt::format("unexpected frame type {} on an outbound connection",
                               static_cast<int>(item.value()->header.type)), true);
        return;
      }
      auto ack = wire::decode_snapshot_ack(item.value()->payload.span());
      if (!ack || ack.value().from != self->id_ || ack.value().to != self->impl_.opts.self) {
        self->fail("bad snapshot ack: " +
                   (ack ? std::string("wrong sender or destination") : ack.status().to_string()), true);
        return;
      }
      self->on_snapshot_ack(ack.value());
    }
    self->watch();
  });
}

void AsioTransport::Impl::Peer::flush() {
  if (!connected_ || writing_ || closed_) return;
  writing_frames_.clear();
  if (!queue_.take(writing_frames_)) return;
  writing_ = true;
  buffers_.clear();
  buffers_.reserve(writing_frames_.size());
  for (const auto& f : writing_frames_) buffers_.emplace_back(f.data(), f.size());
  impl_.frames_sent += writing_frames_.size();
  ++impl_.writes;
  asio::async_write(*sock_, buffers_, [self = shared_from_this(), gen = gen_](boost::system::error_code ec,
                                                                           std::size_t) {
    if (gen != self->gen_) return;
    self->writing_ = false;
    if (ec) {
      self->fail("write: " + ec.message());
      return;
    }
    self->pump_snapshot();
    self->flush();
  });
}

void AsioTransport::Impl::Peer::keep_alive() {
  if (!impl_.keepalive_on() || !peer_keepalive_) return;
  liveness_.expires_after(std::chrono::milliseconds(impl_.opts.keepalive_interval_ms));
  liveness_.async_wait([self = shared_from_this(), gen = gen_](boost::system::error_code ec) {
    if (ec || gen != self->gen_ || !self->connected_ || self->closed_) return;
    bool schedule = false;
    (void)self->queue_.push(wire::encode_ping(self->impl_.tag), schedule);
    self->flush();
    self->keep_alive();
  });
}

void AsioTransport::Impl::Peer::fail(const std::string& why, bool loud, bool silent) {
  if (closed_ || impl_.stopped) return;
  if (connected_ || loud || attempts_ == 3) {
    impl_.log.log(LogLevel::Warn, why, {{"peer", std::to_string(id_.value())}, {"address", address_}});
  }
  if (connected_) impl_.inbox->peer_lost(id_);
  ++gen_;  // whatever is still pending on the old socket is stale now
  liveness_.cancel();
  connected_ = false;
  writing_ = false;
  queue_.set_fd(-1);
  if (sock_) {
    boost::system::error_code ec;
    sock_->close(ec);
  }
  if (silent) attempts_ = 0;
  // Exponential backoff with jitter, so restarted clusters don't dial in lockstep.
  const std::uint32_t base = impl_.opts.backoff_min_ms << std::min(attempts_, 16U);
  const std::uint32_t cap = std::min(base, impl_.opts.backoff_max_ms);
  const std::uint32_t wait = cap / 2 + static_cast<std::uint32_t>(impl_.rng() % (cap / 2 + 1));
  ++attempts_;
  retry_waiting_ = true;
  retry_.expires_after(std::chrono::milliseconds(wait));
  retry_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
    // dial_now() may have dialled already (a handler that was due cannot be cancelled).
    if (ec || !self->retry_waiting_) return;
    self->retry_waiting_ = false;
    self->connect();
  });
}

}  // namespace rlr::transport
