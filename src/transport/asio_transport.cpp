#include <utility>  // before Asio: Boost 1.74 under C++20 needs it

#include "transport/asio_transport.h"
#include "util/thread_name.h"
#include "wire/peer_codec.h"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdio>
#include <deque>
#include <optional>
#include <random>
#include <set>
#include <type_traits>
#include <variant>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <boost/asio.hpp>
#include <fmt/format.h>

namespace rlr::transport {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

bool split_address(const std::string& address, std::string& host, std::uint16_t& port) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned long p = 0;
  for (std::size_t i = colon + 1; i < address.size(); ++i) {
    const char c = address[i];
    if (c < '0' || c > '9') return false;
    p = p * 10 + static_cast<unsigned long>(c - '0');
    if (p > 65535) return false;
  }
  if (p == 0) return false;
  port = static_cast<std::uint16_t>(p);
  return true;
}

namespace {

void log_line(NodeId self, const std::string& what) {
  std::fprintf(stderr, "rlr transport %lu: %s\n", static_cast<unsigned long>(self.value()),
               what.c_str());
}

/// A bounded queue of encoded frames, filled by any thread and drained by the io thread.
class FrameQueue {
 public:
  explicit FrameQueue(std::size_t max_bytes) : max_bytes_(max_bytes) {}
  /// False when the frame does not fit (it is dropped). `schedule` tells the caller to
  /// arrange a drain: the queue went from idle to non-empty.
  bool push(wire::Frame f, bool& schedule) {
    std::lock_guard lock(mu_);
    schedule = false;
    if (bytes_ + f.size() > max_bytes_ && !frames_.empty()) return false;
    bytes_ += f.size();
    frames_.push_back(std::move(f));
    if (!draining_) {
      draining_ = true;
      schedule = true;
    }
    return true;
  }
  /// Takes everything queued; when empty, marks the queue idle and returns false.
  bool take(std::vector<wire::Frame>& out) {
    std::lock_guard lock(mu_);
    if (frames_.empty()) {
      draining_ = false;
      return false;
    }
    out.swap(frames_);
    frames_.clear();
    bytes_ = 0;
    return true;
  }
  void clear() {
    std::lock_guard lock(mu_);
    frames_.clear();
    bytes_ = 0;
    draining_ = false;
  }

  /// The socket frames may be written to directly (-1: none). Set by the io thread once
  /// the connection is established, and cleared *before* it closes the socket, so a
  /// direct write never reaches a closed (or reused) descriptor.
  void set_fd(int fd) {
    std::lock_guard lock(mu_);
    fd_ = fd;
  }

  /// Sends `frames` on the calling thread when the connection is idle (nothing queued,
  /// no write of the io thread in progress): one non-blocking sendmsg, no hand-off to the
  /// io thread and no wake-up. What the socket does not take (or everything, when the
  /// connection is busy or down) is queued in order, as push() would; `schedule` as there.
  /// Returns the frames queued or sent (`direct`: how many were sent whole, here);
  /// frames that do not fit the queue are dropped.
  std::size_t send_or_push(std::vector<wire::Frame>& frames, bool& schedule, std::uint64_t& direct) {
    std::lock_guard lock(mu_);
    schedule = false;
    direct = 0;
    std::size_t i = 0;
    if (fd_ >= 0 && !draining_ && frames_.empty()) {
      std::array<iovec, 64> iov{};
      const std::size_t n = std::min(frames.size(), iov.size());
      for (std::size_t k = 0; k < n; ++k) {
        iov[k].iov_base = frames[k].data();
        iov[k].iov_len = frames[k].size();
      }
      msghdr msg{};
      msg.msg_iov = iov.data();
      msg.msg_iovlen = n;
      ssize_t sent = ::sendmsg(fd_, &msg, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (sent > 0) {
        auto left = static_cast<std::size_t>(sent);
        while (i < n && left >= frames[i].size()) {
          left -= frames[i].size();
          ++i;
        }
        if (left > 0) {
          // The socket took part of frame i: queue its rest first, so the stream stays whole.
          frames[i].drop_front(left);
        }
      }
      // sent <= 0 (would block, or an error the io thread's write will meet and report):
      // everything goes through the queue.
    }
    const std::size_t done = i;
    direct = done;
    std::size_t queued = 0;
    for (; i < frames.size(); ++i) {
      // The rest of a partly written frame always gets in (a direct write happens only
      // with the queue empty, and an empty queue takes any frame), so the peer never
      // reads a torn frame.
      if (bytes_ + frames[i].size() > max_bytes_ && !frames_.empty()) continue;
      bytes_ += frames[i].size();
      frames_.push_back(std::move(frames[i]));
      ++queued;
    }
    if (queued > 0 && !draining_) {
      draining_ = true;
      schedule = true;
    }
    frames.clear();
    return done + queued;
  }

 private:
  std::mutex mu_;
  std::size_t max_bytes_;
  std::size_t bytes_ = 0;
  std::vector<wire::Frame> frames_;
  bool draining_ = false;
  int fd_ = -1;
};

}  // namespace

class AsioTransport::Impl {
 public:
  Impl(AsioOptions o, ClientHandler* handler)
      : opts(std::move(o)), clients(handler), tag(wire::cluster_tag(opts.cluster_id)),
        acceptor(io), rng(std::random_device{}()) {}

  class Conn;
  class Peer;

  AsioOptions opts;
  ClientHandler* clients;
  const std::uint64_t tag;
  asio::io_context io;
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> work;
  tcp::acceptor acceptor;
  std::thread thread;
  Inbox* inbox = nullptr;
  std::mt19937_64 rng;  // io thread only

  std::mutex peers_mu;
  std::map<NodeId, std::shared_ptr<Peer>> peers;
  std::set<std::shared_ptr<Conn>> conns;  // io thread only

  std::atomic<std::uint64_t> frames_sent{0};
  std::atomic<std::uint64_t> writes{0};
  std::atomic<std::uint64_t> direct_writes{0};
  std::atomic<std::uint64_t> dropped{0};
  std::atomic<std::uint64_t> refused{0};
  std::atomic<std::uint64_t> rejected{0};
  std::atomic<std::uint64_t> snapshot_bytes_sent{0};
  std::atomic<std::uint64_t> snapshot_resumes{0};
  std::atomic<std::uint64_t> links_silent{0};
  std::atomic<std::uint64_t> dials_timed_out{0};
  std::atomic<bool> stopped{false};

  [[nodiscard]] bool keepalive_on() const {
    return opts.keepalive_interval_ms > 0 && opts.silence_timeout_ms > 0;
  }
  /// io thread: the kernel gives up on unacknowledged data as soon as we would.
  void tune_socket(tcp::socket& s) const {
    boost::system::error_code ignored;
    s.set_option(tcp::no_delay(true), ignored);
    if (!keepalive_on()) return;
    const int fd = s.native_handle();
    const unsigned user_timeout = opts.silence_timeout_ms;
    const int on = 1;
    const int idle_s = 1;
    const int count = 3;
    // Best effort: a socket that refuses an option still works, only less promptly.
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout, sizeof user_timeout);
    (void)::setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &idle_s, sizeof idle_s);
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof count);
  }

  /// A snapshot being received from one sender. It outlives the connection it arrived
  /// on, so a transfer cut by a lost connection resumes where it stopped.
  struct Reassembly {
    LogIndex index;
    Term term;
    std::uint64_t total = 0;
    std::vector<std::uint8_t> data;
    bool delivered = false;  ///< handed to the core; later chunks of it are acknowledged
  };
  std::map<NodeId, Reassembly> snapshots;  // io thread only
  std::string advertise;  // "host:port" sent in our Hello

  /// Adds, re-addresses or (with an empty address) removes a peer. Any thread.
  void set_peer(NodeId id, const std::string& address, bool learned_only = false);
  /// Learns the address of a node that dialled us, when we have none for it.
  void learn_peer(NodeId id, const std::string& address) {
    if (address.empty()) return;
    {
      std::lock_guard lock(peers_mu);
      if (peers.count(id) != 0) return;
      learned.insert(id);
    }
    set_peer(id, address, /*learned=*/true);
  }
  /// io thread: peer `id` connected to us; our own connection to it stops backing off.
  void dialled_by(NodeId id);
  /// io thread: peer `id`'s link to us went silent; our own link to it is redialled.
  void silent_peer(NodeId id);
  /// Our link to `id`, or null. Any thread.
  [[nodiscard]] std::shared_ptr<Peer> find_peer(NodeId id);
  /// Peers we dialled back only because they dialled us (not from the configuration).
  std::set<NodeId> learned;  // guarded by peers_mu

  void accept();
  bool known_peer(NodeId id) {
    std::lock_guard lock(peers_mu);
    return peers.count(id) != 0;
  }
  void on_snapshot_chunk(wire::SnapshotChunk c, Conn& from);
};

// ---------------------------------------------------------------------------------
// Outbound connection to one peer
// ---------------------------------------------------------------------------------

class AsioTransport::Impl::Peer : public std::enable_shared_from_this<Peer> {
 public:
  Peer(Impl& impl, NodeId id, std::string address)
      : impl_(impl), id_(id), address_(std::move(address)), queue_(impl.opts.max_queue_bytes),
        retry_(impl.io), liveness_(impl.io), reader_(impl.tag, impl.opts.max_frame_bytes) {}

  /// Any thread: sends `frames` at once when the connection is idle, else queues them.
  void send_batch(std::vector<wire::Frame>& frames) {
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

  /// io thread.
  void begin() { connect(); }

  /// io thread.
  void close_for_good() {
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

  /// io thread. Starts streaming the snapshot of `m`, or, when it is the snapshot already
  /// being streamed (the core sends it again when it heard nothing back for a while),
  /// lets that stream go on from where it is.
  void start_snapshot(core::Message m) {
    if (closed_) return;
    const core::SnapshotMeta& meta = *m.snapshot;
    if (snap_ && snap_->index == meta.index && snap_->snap_term == meta.term &&
        snap_->data->size() == meta.data.size()) {
      snap_->term = m.term;
      pump_snapshot();
      return;
    }
    snap_.emplace(OutgoingSnapshot{m.from, m.term, meta.index, meta.term, meta.config,
                                   std::make_shared<Bytes>(meta.data)});
    pump_snapshot();
  }

  /// io thread: the receiver reports how much of the snapshot it holds.
  void on_snapshot_ack(const wire::SnapshotAck& a) {
    if (!snap_ || a.snapshot_index != snap_->index || a.snapshot_term != snap_->snap_term) {
      return;  // an answer about a stream we are no longer sending
    }
    const std::uint64_t total = snap_->data->size();
    if (a.received >= total && (total > 0 || snap_->sent_all)) {
      snap_.reset();  // delivered
      return;
    }
    if (a.received < snap_->acked) {
      // The receiver lost what it had (it restarted, or dropped a different snapshot's
      // partial copy): send again from what it says it holds.
      snap_->next = a.received;
      snap_->sent_all = false;
    }
    snap_->acked = a.received;
    if (snap_->next < snap_->acked) snap_->next = snap_->acked;
    pump_snapshot();
  }

  /// io thread: the peer's link to us went silent, so this link is suspect too (it may
  /// look established through a path that drops everything): drop it and dial again.
  void restart_silent() {
    if (closed_ || impl_.stopped || !connected_) return;
    ++impl_.links_silent;
    fail("the peer's link to us went silent", true, /*silent=*/true);
  }

  /// io thread: the peer has just dialled us, so it listens again. A backoff wait (up to
  /// backoff_max_ms after a long outage) ends now: a restarted node must hear votes and
  /// acknowledgements at once, not after our next scheduled attempt.
  void dial_now() {
    if (closed_ || impl_.stopped || !retry_waiting_) return;
    retry_waiting_ = false;
    attempts_ = 0;
    retry_.cancel();
    connect();
  }

  void set_address(std::string a) {
    // io thread: a new address takes effect at the next (re)connect.
    if (a == address_) return;
    address_ = std::move(a);
    queue_.set_fd(-1);
    if (sock_) {
      boost::system::error_code ec;
      sock_->close(ec);
    }
  }

 private:
  void connect() {
    if (closed_ || impl_.stopped) return;
    std::string host;
    std::uint16_t port = 0;
    if (!split_address(address_, host, port)) {
      log_line(impl_.opts.self, fmt::format("peer {}: bad address '{}'", id_.value(), address_));
      return;
    }
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

  void dial(tcp::endpoint ep) {
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

  void hello() {
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

  void read_ack() {
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

  /// Reads what the peer sends back on our outbound connection (snapshot acks only), and
  /// notices when it closes.
  void watch() {
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

  /// Queues chunks of the outgoing snapshot while fewer than the window's worth are
  /// unacknowledged. io thread.
  void pump_snapshot() {
    if (!snap_ || !connected_ || closed_) return;
    OutgoingSnapshot& o = *snap_;
    const Bytes& data = *o.data;
    const std::uint64_t chunk = std::max<std::size_t>(1, impl_.opts.snapshot_chunk_bytes);
    const std::uint64_t window = chunk * std::max<std::size_t>(1, impl_.opts.snapshot_window_chunks);
    bool queued = false;
    while (!o.sent_all && o.next - o.acked < window) {
      const std::uint64_t n = std::min<std::uint64_t>(chunk, data.size() - o.next);
      wire::SnapshotChunk c;
      c.from = o.from;
      c.to = id_;
      c.term = o.term;
      c.snapshot_index = o.index;
      c.snapshot_term = o.snap_term;
      c.config = o.config;
      c.offset = o.next;
      c.total_bytes = data.size();
      // A view: the frame encoder copies the bytes once, into the frame.
      c.data = Bytes(o.data, data.data() + o.next, static_cast<std::size_t>(n));
      c.last = o.next + n >= data.size();
      bool schedule = false;
      if (!queue_.push(wire::encode_snapshot_chunk(c, impl_.tag), schedule)) {
        ++impl_.dropped;
        break;  // the queue is full: the next ack or finished write pumps again
      }
      queued = true;
      impl_.snapshot_bytes_sent += n;
      o.next += n;
      o.sent_all = c.last;
    }
    if (queued && !writing_) flush();
  }

  void flush() {
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

  /// io thread, while connected: a Ping every keepalive interval, so that the acceptor
  /// hears from this node at least that often whatever Raft has to say. Whether the
  /// path works is judged elsewhere: by the acceptor (silence on this link), by this
  /// node's side of the peer's link to it (silence there resets this link too, see
  /// restart_silent()), and by the kernel (TCP_USER_TIMEOUT on unacknowledged bytes).
  /// Not by answers on this link: behind a backlog on a slow path an answer can be late
  /// while the path is busy, not silent.
  void keep_alive() {
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

  /// `silent`: the path stopped answering (rather than refusing): retry at once, since
  /// each such attempt already waited its time, and a healed path must not find us
  /// deep in a backoff.
  void fail(const std::string& why, bool loud = false, bool silent = false) {
    if (closed_ || impl_.stopped) return;
    if (connected_ || loud || attempts_ == 3) {
      log_line(impl_.opts.self, fmt::format("peer {} at {}: {}", id_.value(), address_, why));
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

  Impl& impl_;
  NodeId id_;
  std::string address_;
  FrameQueue queue_;
  asio::steady_timer retry_;
  asio::steady_timer liveness_;  ///< the dial's deadline, then the keepalive tick
  std::unique_ptr<tcp::socket> sock_;
  /// Incremented by every dial and every failure: a handler of an older socket is stale.
  std::uint64_t gen_ = 0;
  std::uint32_t dial_deadline_ms_ = 0;  ///< the next dial's deadline; 0: the first one's
  bool peer_keepalive_ = false;  ///< the acceptor answers Pings (its HelloAck said so)
  wire::FrameReader reader_;
  std::array<std::uint8_t, 4096> rbuf_{};
  wire::Frame hello_frame_;
  std::vector<wire::Frame> writing_frames_;
  std::vector<asio::const_buffer> buffers_;
  std::uint32_t attempts_ = 0;
  bool retry_waiting_ = false;  ///< a backoff timer will call connect()
  bool connected_ = false;
  bool writing_ = false;
  bool closed_ = false;

  /// The snapshot this peer is being sent, and how far it got.
  struct OutgoingSnapshot {
    NodeId from;
    Term term;           ///< the leader's term, carried by every chunk
    LogIndex index;
    Term snap_term;
    core::Configuration config;
    std::shared_ptr<Bytes> data;
    std::uint64_t acked = 0;  ///< the receiver holds [0, acked)
    std::uint64_t next = 0;   ///< the next offset to queue
    bool sent_all = false;    ///< the last chunk is queued
  };
  std::optional<OutgoingSnapshot> snap_;
};

// ---------------------------------------------------------------------------------
// Inbound connection (a peer or a client)
// ---------------------------------------------------------------------------------

class AsioTransport::Impl::Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(Impl& impl, tcp::socket sock)
      : impl_(impl), sock_(std::move(sock)), timer_(impl.io),
        reader_(0, std::min<std::size_t>(impl.opts.max_frame_bytes, 1U << 16)),
        queue_(impl.opts.max_queue_bytes) {}

  void start() {
    impl_.tune_socket(sock_);
    timer_.expires_after(std::chrono::milliseconds(impl_.opts.handshake_timeout_ms));
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec && self->kind_ == Kind::Unknown) self->close("no handshake in time");
    });
    read();
  }

  void close(const std::string& why) {
    if (closed_) return;
    closed_ = true;
    if (!why.empty()) {
      log_line(impl_.opts.self, fmt::format("closing connection from {}{}: {}", remote(),
                                            kind_ == Kind::Node ? fmt::format(" (node {})", peer_.value()) : "",
                                            why));
    }
    boost::system::error_code ec;
    timer_.cancel();
    sock_.close(ec);
    queue_.clear();
    impl_.conns.erase(shared_from_this());
  }

  /// Any thread.
  bool send(wire::Frame f) {
    if (closed_flag_.load()) return false;
    bool schedule = false;
    if (!queue_.push(std::move(f), schedule)) return false;
    if (schedule) asio::post(impl_.io, [self = shared_from_this()] { self->flush(); });
    return true;
  }
  [[nodiscard]] bool is_open() const { return !closed_flag_.load(); }

 private:
  enum class Kind { Unknown, Node, Client };
  using Clock = std::chrono::steady_clock;

  std::string remote() const {
    boost::system::error_code ec;
    const auto ep = sock_.remote_endpoint(ec);
    return ec ? std::string("?") : fmt::format("{}:{}", ep.address().to_string(), ep.port());
  }

  void read() {
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

  /// False when the connection was closed.
  bool handle(wire::FrameReader::Item item) {
    using wire::FrameType;
    if (kind_ == Kind::Unknown) return handshake(item);
    if (kind_ == Kind::Node) {
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

  /// A core message or a digest report from the node of this connection. False when
  /// the connection was closed.
  template <class M>
  bool on_peer_message(M m) {
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

  bool handshake(const wire::FrameReader::Item& item) {
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

  /// io thread: a peer that promised Pings (its Hello) and went quiet for the silence
  /// timeout is gone as far as this node can tell: the connection is closed and the
  /// core told (peer_lost), as when a crashed process's socket closes.
  void watch_silence() {
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

  bool impl_accept_unknown() const;

  bool reject(const std::string& why) {
    ++impl_.rejected;
    closed_flag_ = true;
    close(why);
    return false;
  }

  void flush() {
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

  std::shared_ptr<ClientStream> stream();

  Impl& impl_;
  tcp::socket sock_;
  asio::steady_timer timer_;
  wire::FrameReader reader_;
  FrameQueue queue_;
  static constexpr std::size_t kReadBytes = 64U << 10;  ///< least room offered to a read
  std::vector<wire::Frame> frames_;
  std::vector<asio::const_buffer> buffers_;
  Kind kind_ = Kind::Unknown;
  NodeId peer_;
  bool writing_ = false;
  bool closed_ = false;
  bool keepalive_ = false;  ///< a node link whose dialer sends Pings (its Hello said so)
  bool client_pings_ = false;  ///< a client whose Hello offered Pings: each is answered
  Clock::time_point last_heard_;
  std::atomic<bool> closed_flag_{false};
};

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
  return std::make_shared<ConnStream>(weak_from_this(), impl_.tag);
}

bool AsioTransport::Impl::Conn::impl_accept_unknown() const {
  // A node that no configuration has given peers yet is waiting to be added to a
  // cluster: it cannot know the leader (or the next leader) that will contact it.
  std::lock_guard lock(impl_.peers_mu);
  return impl_.peers.size() == impl_.learned.size();
}

std::shared_ptr<AsioTransport::Impl::Peer> AsioTransport::Impl::find_peer(NodeId id) {
  std::lock_guard lock(peers_mu);
  auto it = peers.find(id);
  return it == peers.end() ? nullptr : it->second;
}

void AsioTransport::Impl::dialled_by(NodeId id) {
  // Outside peers_mu: connect() may take it.
  if (auto peer = find_peer(id)) peer->dial_now();
}

void AsioTransport::Impl::silent_peer(NodeId id) {
  if (auto peer = find_peer(id)) peer->restart_silent();
}

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

void AsioTransport::Impl::on_snapshot_chunk(wire::SnapshotChunk c, Conn& from) {
  const auto ack = [&](std::uint64_t received) {
    (void)from.send(wire::encode_snapshot_ack(
        wire::SnapshotAck{opts.self, c.from, c.snapshot_index, c.snapshot_term, received}, tag));
  };
  auto it = snapshots.find(c.from);
  const bool same = it != snapshots.end() && it->second.index == c.snapshot_index &&
                    it->second.term == c.snapshot_term && it->second.total == c.total_bytes;
  if (same && it->second.delivered && c.offset != 0) {
    ack(c.total_bytes);  // a resumed stream of what we already have
    return;
  }
  if (!same || it->second.delivered) {
    if (c.offset != 0) {
      ack(0);  // we hold none of this snapshot: the sender must start over
      return;
    }
    Reassembly fresh{c.snapshot_index, c.snapshot_term, c.total_bytes, {}, false};
    fresh.data.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(c.total_bytes, opts.max_frame_bytes)));
    it = snapshots.insert_or_assign(c.from, std::move(fresh)).first;
  }
  Reassembly& r = it->second;
  const std::uint64_t have = r.data.size();
  if (c.offset > have) {
    ack(have);  // a gap (chunks were lost with a connection): resume from what we hold
    return;
  }
  const std::uint64_t skip = have - c.offset;  // bytes of this chunk we already hold
  if (skip < c.data.size()) {
    r.data.insert(r.data.end(), c.data.data() + skip, c.data.data() + c.data.size());
  }
  if (r.data.size() < r.total) {
    ack(r.data.size());
    return;
  }
  core::Message m;
  m.type = core::MessageType::Snapshot;
  m.from = c.from;
  m.to = c.to;
  m.term = c.term;
  m.snapshot = core::SnapshotMeta{c.snapshot_index, c.snapshot_term, std::move(c.config),
                                  Bytes(std::move(r.data))};
  r.data = {};
  r.delivered = true;
  inbox->deliver(std::move(m));
  ack(r.total);
}

// ---------------------------------------------------------------------------------
// AsioTransport
void AsioTransport::Impl::set_peer(NodeId id, const std::string& address, bool learned_only) {
  Impl& i = *this;
  if (id == i.opts.self) return;
  if (!learned_only) {
    std::lock_guard lock(i.peers_mu);
    i.learned.erase(id);  // the configuration names it now
  }
  std::shared_ptr<Impl::Peer> gone;
  std::shared_ptr<Impl::Peer> created;
  std::shared_ptr<Impl::Peer> changed;
  {
    std::lock_guard lock(i.peers_mu);
    auto it = i.peers.find(id);
    if (address.empty()) {
      if (it != i.peers.end()) {
        gone = it->second;
        i.peers.erase(it);
      }
    } else if (it == i.peers.end()) {
      created = std::make_shared<Impl::Peer>(i, id, address);
      i.peers.emplace(id, created);
    } else {
      changed = it->second;
    }
  }
  if (gone) asio::post(i.io, [gone] { gone->close_for_good(); });
  if (created && i.work) asio::post(i.io, [created] { created->begin(); });
  if (changed) asio::post(i.io, [changed, address] { changed->set_address(address); });
}

// ---------------------------------------------------------------------------------

AsioTransport::AsioTransport(AsioOptions options, ClientHandler* clients)
    : impl_(std::make_unique<Impl>(std::move(options), clients)) {}

AsioTransport::~AsioTransport() { stop(); }

Status AsioTransport::start(Inbox& inbox) {
  Impl& i = *impl_;
  i.inbox = &inbox;
  boost::system::error_code ec;
  const auto ip = asio::ip::make_address(i.opts.listen_host, ec);
  if (ec) return {ErrorCode::InvalidArgument, fmt::format("bad listen address '{}'", i.opts.listen_host)};
  const tcp::endpoint ep(ip, i.opts.listen_port);
  i.acceptor.open(ep.protocol(), ec);
  if (!ec) i.acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) i.acceptor.bind(ep, ec);
  if (!ec) i.acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return {ErrorCode::IoError, fmt::format("cannot listen on {}:{}: {}", i.opts.listen_host,
                                            i.opts.listen_port, ec.message())};
  }
  bound_port_ = i.acceptor.local_endpoint().port();
  i.advertise = fmt::format("{}:{}", i.opts.listen_host, bound_port_.load());
  i.work.emplace(asio::make_work_guard(i.io));
  i.accept();
  {
    std::lock_guard lock(i.peers_mu);
    for (auto& [id, p] : i.peers) asio::post(i.io, [p = p] { p->begin(); });
  }
  i.thread = std::thread([&i] {
    util::set_thread_name(fmt::format("rlr-io-{}", i.opts.self.value()));
    i.io.run();
  });
  return Status::ok();
}

namespace {

/// Appends with fewer entries are encoded for each peer (a copy saves nothing).
constexpr std::size_t kShareEntriesMin = 64;

/// True when `b` is `a` sent to another node: the leader's Appends of one step to
/// followers that are equally caught up. Entries are compared by index, term, kind and
/// payload buffer (the same log entries), so equal means the same bytes.
bool same_but_addressee(const core::Message& a, const core::Message& b) {
  if (a.type != core::MessageType::Append || b.type != core::MessageType::Append) return false;
  if (a.from != b.from || a.term != b.term || a.log_index != b.log_index || a.log_term != b.log_term ||
      a.commit != b.commit || a.reject != b.reject || a.transfer != b.transfer ||
      a.hint_index != b.hint_index || a.hint_term != b.hint_term || a.context != b.context ||
      a.snapshot || b.snapshot ||
      a.entries.size() != b.entries.size()) {
    return false;
  }
  return std::equal(a.entries.begin(), a.entries.end(), b.entries.begin(), [](const Entry& x, const Entry& y) {
    return x.index == y.index && x.term == y.term && x.kind == y.kind &&
           x.payload.data() == y.payload.data() && x.payload.size() == y.payload.size();
  });
}

}  // namespace

void AsioTransport::send(std::vector<core::Message>& msgs) {
  Impl& i = *impl_;
  // Frames grouped by destination, in order: each peer gets them in one write (at once
  // from this thread when its connection is idle; see FrameQueue::send_or_push).
  std::vector<std::pair<std::shared_ptr<Impl::Peer>, std::vector<wire::Frame>>> batches;
  // The Appends encoded in full so far, so that an identical one to another follower is
  // a copy of that frame with the addressee rewritten (wire::readdress_raft). A step's
  // Appends come follower by follower, each in runs of max_append_entries.
  struct SharedAppend {
    const core::Message* message = nullptr;
    std::size_t batch = 0;
    std::size_t frame = 0;
  };
  std::vector<SharedAppend> encoded;
  {
    std::lock_guard lock(i.peers_mu);
    for (auto& m : msgs) {
      auto it = i.peers.find(m.to);
      if (it == i.peers.end()) {
        ++i.dropped;
        continue;
      }
      const std::shared_ptr<Impl::Peer>& peer = it->second;
      if (m.type == core::MessageType::Snapshot && m.snapshot) {
        // Streamed in chunks by the io thread, a window at a time (see Peer::start_snapshot).
        asio::post(i.io, [peer, m = std::move(m)]() mutable { peer->start_snapshot(std::move(m)); });
        continue;
      }
      auto b = std::find_if(batches.begin(), batches.end(), [&](const auto& x) { return x.first == peer; });
      if (b == batches.end()) {
        batches.emplace_back(peer, std::vector<wire::Frame>{});
        b = std::prev(batches.end());
      }
      std::optional<wire::Frame> frame;
      const bool shareable = m.type == core::MessageType::Append && m.entries.size() >= kShareEntriesMin;
      if (shareable) {
        for (const SharedAppend& e : encoded) {
          if (same_but_addressee(*e.message, m)) {
            frame = wire::readdress_raft(batches[e.batch].second[e.frame], m.to);
            break;
          }
        }
      }
      if (!frame) {
        frame = wire::encode_raft(m, i.tag);
        if (shareable) encoded.push_back({&m, static_cast<std::size_t>(b - batches.begin()), b->second.size()});
      }
      b->second.push_back(std::move(*frame));
    }
  }
  for (auto& [peer, frames] : batches) peer->send_batch(frames);
  msgs.clear();
}

void AsioTransport::send_digests(wire::DigestReport report) {
  assert(!report.digests.empty() && report.digests.size() <= wire::kDigestReportSendCheckpointsMax);
  Impl& i = *impl_;
  auto peer = i.find_peer(report.to);
  if (!peer) {
    ++i.dropped;
    return;
  }
  std::vector<wire::Frame> frames;
  frames.push_back(wire::encode_digest_report(report, i.tag));
  peer->send_batch(frames);
}

void AsioTransport::set_peer(NodeId id, const std::string& address) { impl_->set_peer(id, address); }

void AsioTransport::stop() {
  Impl& i = *impl_;
  if (i.stopped.exchange(true)) return;
  if (!i.thread.joinable()) return;
  asio::post(i.io, [&i] {
    boost::system::error_code ec;
    i.acceptor.close(ec);
    auto conns = i.conns;
    for (auto& c : conns) c->close("");
    std::lock_guard lock(i.peers_mu);
    for (auto& [id, p] : i.peers) p->close_for_good();
  });
  i.work.reset();
  i.io.stop();
  i.thread.join();
}

TransportStats AsioTransport::stats() const {
  return TransportStats{impl_->frames_sent.load(), impl_->writes.load(), impl_->dropped.load(),
                        impl_->refused.load(), impl_->rejected.load(),
                        impl_->snapshot_bytes_sent.load(), impl_->snapshot_resumes.load(),
                        impl_->direct_writes.load(), impl_->links_silent.load(),
                        impl_->dials_timed_out.load()};
}

}  // namespace rlr::transport
