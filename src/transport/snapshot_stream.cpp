// Snapshots between peers: the sending side streams a window of SnapshotChunk frames on
// its link to the peer and moves the window on the receiver's SnapshotAcks; the
// receiving side reassembles the chunks, delivers the whole snapshot, and acknowledges
// on the connection the chunks came in on. A transfer cut by a lost connection resumes
// from the acknowledged offset; a receiver that lost its partial copy answers 0 and the
// sender starts over.
#include <algorithm>
#include <utility>

#include "transport/inbound_conn.h"
#include "transport/peer_link.h"

namespace rlr::transport {

// ---- sending: the snapshot of one Peer ------------------------------------------------

void AsioTransport::Impl::Peer::start_snapshot(core::Message m) {
  if (closed_) return;
  const core::SnapshotMeta& meta = *m.snapshot;
  if (snap_ && snap_->index == meta.index && snap_->snap_term == meta.term &&
      snap_->data->size() == meta.data.size()) {
    snap_->term = m.term;
    pump_snapshot();
    return;
  }
  snapshots_sent_.fetch_add(1, std::memory_order_relaxed);
  snap_.emplace(OutgoingSnapshot{m.from, m.term, meta.index, meta.term, meta.config,
                                 std::make_shared<Bytes>(meta.data)});
  pump_snapshot();
}

void AsioTransport::Impl::Peer::on_snapshot_ack(const wire::SnapshotAck& a) {
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

void AsioTransport::Impl::Peer::pump_snapshot() {
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

// ---- receiving ------------------------------------------------------------------------

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
  core::Message m = wire::snapshot_message(std::move(c), std::move(r.data));
  r.data = {};
  r.delivered = true;
  inbox->deliver(std::move(m));
  ack(r.total);
}

}  // namespace rlr::transport
