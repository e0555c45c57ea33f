// AsioTransport: the Transport interface, the table of peers, start and stop. The parts
// it is made of are listed in asio_impl.h.
#include "transport/asio_impl.h"

#include <algorithm>
#include <cassert>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <fmt/format.h>

#include "transport/inbound_conn.h"
#include "transport/peer_link.h"
#include "util/thread_name.h"

namespace rlr::transport {

// ---------------------------------------------------------------------------------
// AsioTransport::Impl: sockets and the peer table
// ---------------------------------------------------------------------------------

void AsioTransport::Impl::tune_socket(tcp::socket& s) const {
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

void AsioTransport::Impl::learn_peer(NodeId id, const std::string& address) {
  if (address.empty()) return;
  {
    std::lock_guard lock(peers_mu);
    if (peers.count(id) != 0) return;
    learned.insert(id);
  }
  set_peer(id, address, /*learned=*/true);
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
// AsioTransport
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

std::vector<PeerTraffic> AsioTransport::traffic() const {
  std::map<NodeId, PeerTraffic> by_peer;
  {
    std::lock_guard lock(impl_->peers_mu);
    for (const auto& [id, p] : impl_->peers) by_peer[id] = p->sent();
    for (const auto& [id, r] : impl_->received_by_peer) {
      PeerTraffic& t = by_peer[id];
      t.peer = id;
      t.frames_received = r->frames.load(std::memory_order_relaxed);
      t.bytes_received = r->bytes.load(std::memory_order_relaxed);
    }
  }
  std::vector<PeerTraffic> out;
  out.reserve(by_peer.size());
  for (auto& [id, t] : by_peer) out.push_back(t);
  return out;
}

std::uint64_t AsioTransport::frames_refused() const {
  return impl_->refused.load() + impl_->rejected.load();
}

TransportStats AsioTransport::stats() const {
  return TransportStats{impl_->frames_sent.load(), impl_->writes.load(), impl_->dropped.load(),
                        impl_->refused.load(), impl_->rejected.load(),
                        impl_->snapshot_bytes_sent.load(), impl_->snapshot_resumes.load(),
                        impl_->direct_writes.load(), impl_->links_silent.load(),
                        impl_->dials_timed_out.load()};
}

}  // namespace rlr::transport

