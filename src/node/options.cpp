#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "rlr/node.h"

namespace rlr {

Status validate(const NodeOptions& o) {
  auto bad = [](std::string msg) { return Status{ErrorCode::InvalidArgument, std::move(msg)}; };
  if (o.cluster_id.empty() || o.cluster_id.size() > 128) {
    return bad("cluster_id must have 1 to 128 characters");
  }
  if (std::any_of(o.cluster_id.begin(), o.cluster_id.end(),
                  [](char c) { return c < 0x21 || c > 0x7e; })) {
    return bad("cluster_id must be printable ASCII without spaces");
  }
  if (o.id == kNoNode) return bad("node id must be positive");
  std::set<NodeId> seen;
  bool self_listed = false;
  for (const auto& m : o.initial_members) {
    if (m.id == kNoNode) return bad("member id must be positive");
    if (!seen.insert(m.id).second) return bad(fmt::format("member {} is listed twice", m.id.value()));
    if (m.address.host.empty() || m.address.port == 0) {
      return bad(fmt::format("member {} needs a host and a non-zero port", m.id.value()));
    }
    self_listed = self_listed || m.id == o.id;
  }
  if (!o.initial_members.empty() && !self_listed) {
    return bad(fmt::format("initial members must include this node ({})", o.id.value()));
  }
  if (o.storage == StorageKind::RocksDb && o.data_dir.empty()) {
    return bad("data_dir is required with RocksDB storage");
  }
  // Upper bounds keep every derived interval (ticks x tick) within 32-bit milliseconds.
  if (o.tick.count() <= 0 || o.tick > std::chrono::seconds(10)) return bad("tick must be in (0, 10 s]");
  if (o.election_ticks > 100'000) return bad("election_ticks must be at most 100,000");
  if (o.proposal_timeout.count() <= 0 || o.proposal_timeout > std::chrono::hours(24)) {
    return bad("proposal_timeout must be in (0, 24 h]");
  }
  if (o.heartbeat_ticks == 0 || o.election_ticks <= o.heartbeat_ticks) {
    return bad("need 0 < heartbeat_ticks < election_ticks");
  }
  if (o.link_silence.count() < 0 || o.link_silence > std::chrono::hours(1) ||
      (o.link_silence.count() != 0 && o.link_silence < 3 * o.heartbeat_ticks * o.tick)) {
    return bad("link_silence must be 0 (the election timeout) or from three heartbeat intervals up to 1 h");
  }
  if (o.disconnect_campaign_ticks >= o.election_ticks) {
    return bad("disconnect_campaign_ticks must be below election_ticks (0 turns it off)");
  }
  if (o.max_append_entries == 0 || o.max_append_bytes == 0 || o.max_inflight_appends == 0 ||
      o.max_pending_proposals == 0 || o.subscriber_buffer_entries == 0 ||
      o.snapshot_chunk_bytes == 0 || o.max_frame_bytes < 4096) {
    return bad("batch, window, queue and frame limits must be positive (frames >= 4096 bytes)");
  }
  if (o.max_append_bytes + (1U << 16) > o.max_frame_bytes) {
    return bad("max_append_bytes must leave room in max_frame_bytes");
  }
  if (o.slow_disk_write.count() < 0 || o.slow_disk_write > std::chrono::hours(1) ||
      o.slow_disk_period.count() < 0 || o.slow_disk_period > std::chrono::hours(1)) {
    return bad("slow_disk_write and slow_disk_period must be in [0, 1 h]");
  }
  if (o.trace_entries > kMaxTraceEntries) {
    return bad(fmt::format("trace_entries must be at most {}", kMaxTraceEntries));
  }
  if (o.trace_entries > 0 && o.trace_path.empty()) return bad("trace_entries needs a trace_path");
  return Status::ok();
}

}  // namespace rlr
