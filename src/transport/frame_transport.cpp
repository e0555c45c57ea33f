#include "transport/frame_transport.h"

#include <algorithm>
#include <bit>

#include <fmt/format.h>

namespace rlr::transport {

FrameTransport::FrameTransport(Options options, std::shared_ptr<rlr::Transport> user)
    : options_(std::move(options)),
      tag_(wire::cluster_tag(options_.cluster_id)),
      user_(std::move(user)),
      log_(options_.log_sink, "transport", options_.self) {}

FrameTransport::~FrameTransport() { FrameTransport::stop(); }

Status FrameTransport::start(Inbox& inbox) {
  inbox_.store(&inbox);
  if (Status s = user_->start(options_.self, *this); !s) {
    inbox_.store(nullptr);
    return s;
  }
  started_ = true;
  return Status::ok();
}

void FrameTransport::stop() {
  if (!started_) return;
  started_ = false;
  user_->stop();
  inbox_.store(nullptr);
}

void FrameTransport::send_frame(NodeId to, wire::Frame frame) {
  auto held = std::make_shared<wire::Frame>(std::move(frame));
  const std::uint8_t* data = held->data();
  const std::size_t size = held->size();
  user_->send(to, Bytes(std::move(held), data, size));
  std::lock_guard lock(traffic_mu_);
  PeerTraffic& t = traffic_[to];
  ++t.frames_sent;
  t.bytes_sent += size;
}

std::vector<PeerTraffic> FrameTransport::traffic() const {
  std::lock_guard lock(traffic_mu_);
  std::vector<PeerTraffic> out;
  out.reserve(traffic_.size());
  for (const auto& [id, t] : traffic_) {
    out.push_back(t);
    out.back().peer = id;
  }
  return out;
}

void FrameTransport::send(std::vector<core::Message>& msgs) {
  for (const core::Message& m : msgs) {
    if (m.type == core::MessageType::Snapshot && m.snapshot) {
      send_snapshot(m);
    } else {
      send_frame(m.to, wire::encode_raft(m, tag_));
    }
  }
  msgs.clear();
}

void FrameTransport::send_snapshot(const core::Message& m) {
  {
    std::lock_guard lock(traffic_mu_);
    ++traffic_[m.to].snapshots_sent;
  }
  const core::SnapshotMeta& meta = *m.snapshot;
  const std::size_t chunk = std::max<std::size_t>(1, options_.snapshot_chunk_bytes);
  const std::size_t total = meta.data.size();
  std::size_t offset = 0;
  do {
    const std::size_t n = std::min(chunk, total - offset);
    wire::SnapshotChunk c;
    c.from = m.from;
    c.to = m.to;
    c.term = m.term;
    c.snapshot_index = meta.index;
    c.snapshot_term = meta.term;
    c.config = meta.config;
    c.offset = offset;
    c.total_bytes = total;
    c.data = meta.data.slice(offset, n);  // the encoder copies it once, into the frame
    c.last = offset + n >= total;
    send_frame(m.to, wire::encode_snapshot_chunk(c, tag_));
    offset += n;
  } while (offset < total);
}

void FrameTransport::send_digests(wire::DigestReport report) {
  const NodeId to = report.to;
  send_frame(to, wire::encode_digest_report(report, tag_));
}

void FrameTransport::set_peer(NodeId id, const std::string& address) {
  if (address.empty()) {
    user_->set_peer(id, Address{});
    return;
  }
  auto parsed = Address::parse(address);
  if (!parsed) {
    log_.logf(LogLevel::Warn, {}, "peer {} has an unreadable address '{}': {}", id.value(), address,
              parsed.status().message());
    return;
  }
  user_->set_peer(id, parsed.value());
}

void FrameTransport::refuse(NodeId from, std::string_view why) {
  const std::uint64_t n = refused_.fetch_add(1) + 1;
  if (std::has_single_bit(n)) {
    log_.logf(LogLevel::Warn, {}, "refused a frame from node {} ({} refused so far): {}", from.value(),
              n, why);
  }
}

void FrameTransport::on_frame(NodeId from, Bytes frame) {
  Inbox* inbox = inbox_.load();
  if (inbox == nullptr) return;
  {
    // Counted per sender the user's transport names; a bounded table (beyond it, new
    // senders go uncounted).
    std::lock_guard lock(traffic_mu_);
    auto it = traffic_.find(from);
    if (it == traffic_.end() && traffic_.size() < kMaxTrafficPeers) it = traffic_.try_emplace(from).first;
    if (it != traffic_.end()) {
      ++it->second.frames_received;
      it->second.bytes_received += frame.size();
    }
  }
  if (frame.size() < wire::kHeaderBytes) return refuse(from, "shorter than a frame header");
  auto header = wire::decode_header(frame.span().first(wire::kHeaderBytes), tag_, options_.max_frame_bytes);
  if (!header) return refuse(from, header.status().message());
  const wire::FrameHeader& h = header.value();
  if (h.length != frame.size() - wire::kHeaderBytes) {
    return refuse(from, fmt::format("the header says {} payload bytes, the frame holds {}", h.length,
                                    frame.size() - wire::kHeaderBytes));
  }
  const Bytes payload = frame.slice(wire::kHeaderBytes, h.length);
  if (Status s = wire::check_payload(h, payload.span()); !s) return refuse(from, s.message());
  auto addressed = [&](NodeId claimed_from, NodeId to) {
    if (claimed_from != from) {
      refuse(from, fmt::format("its content says it is from node {}", claimed_from.value()));
      return false;
    }
    if (to != options_.self) {
      refuse(from, fmt::format("it is addressed to node {}", to.value()));
      return false;
    }
    return true;
  };
  switch (h.type) {
    case wire::FrameType::Raft: {
      auto decoded = wire::decode_peer_message(payload);
      if (!decoded) return refuse(from, decoded.status().message());
      if (auto* m = std::get_if<core::Message>(&decoded.value())) {
        if (addressed(m->from, m->to)) inbox->deliver(std::move(*m));
      } else {
        auto& r = std::get<wire::DigestReport>(decoded.value());
        if (addressed(r.from, r.to)) inbox->deliver_digests(std::move(r));
      }
      return;
    }
    case wire::FrameType::SnapshotChunk: {
      auto c = wire::decode_snapshot_chunk(payload);
      if (!c) return refuse(from, c.status().message());
      if (!addressed(c.value().from, c.value().to)) return;
      if (c.value().total_bytes > kMaxSnapshotBytes) {
        return refuse(from, fmt::format("a snapshot of {} bytes", c.value().total_bytes));
      }
      return on_chunk(std::move(c).value());
    }
    default:
      return refuse(from, fmt::format("frame type {} does not travel between nodes",
                                      static_cast<unsigned>(h.type)));
  }
}

void FrameTransport::on_chunk(wire::SnapshotChunk c) {
  std::unique_lock lock(mu_);
  auto it = snapshots_.find(c.from);
  const bool continues = it != snapshots_.end() && it->second.index == c.snapshot_index &&
                         it->second.term == c.snapshot_term && it->second.total == c.total_bytes &&
                         it->second.data.size() == c.offset;
  if (!continues) {
    if (it != snapshots_.end()) snapshots_.erase(it);
    if (c.offset != 0) return;  // a piece of a stream whose start we do not hold
    it = snapshots_.emplace(c.from, Reassembly{c.snapshot_index, c.snapshot_term, c.total_bytes, {}}).first;
  }
  Reassembly& r = it->second;
  if (r.data.size() + c.data.size() > r.total) {
    snapshots_.erase(it);
    lock.unlock();
    return refuse(c.from, "a snapshot chunk runs past the snapshot's size");
  }
  r.data.insert(r.data.end(), c.data.data(), c.data.data() + c.data.size());
  if (!c.last && r.data.size() < r.total) return;
  if (r.data.size() != r.total) {
    snapshots_.erase(it);
    lock.unlock();
    return refuse(c.from, "the last snapshot chunk leaves the snapshot short");
  }
  core::Message m = wire::snapshot_message(std::move(c), std::move(r.data));
  snapshots_.erase(it);
  lock.unlock();
  if (Inbox* inbox = inbox_.load()) inbox->deliver(std::move(m));
}

void FrameTransport::on_peer_lost(NodeId peer) {
  if (Inbox* inbox = inbox_.load()) inbox->peer_lost(peer);
}

}  // namespace rlr::transport
