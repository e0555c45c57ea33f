// Test support for the wire layer: rapidcheck generators of every message the codecs
// carry (always values the decoders must accept), field-by-field comparisons that say
// what differs, and small frame helpers.
#pragma once

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <fmt/format.h>
#include <rapidcheck.h>

#include "core/configuration.h"
#include "core/message.h"
#include "rlr/node.h"
#include "rlr/status.h"
#include "rlr/types.h"
#include "rlr_generated.h"
#include "wire/client_codec.h"
#include "wire/frame.h"
#include "wire/peer_codec.h"

namespace rlr::wire::test {

inline constexpr std::size_t kMaxFrame = 16U << 20;

// ---- generators -------------------------------------------------------------------------

/// Any 64-bit value, biased toward small ones and the extremes.
inline std::uint64_t any_u64() {
  return *rc::gen::weightedOneOf<std::uint64_t>({
      {4, rc::gen::inRange<std::uint64_t>(0, 100)},
      {2, rc::gen::arbitrary<std::uint64_t>()},
      {1, rc::gen::element<std::uint64_t>(0, 1, std::numeric_limits<std::uint64_t>::max())},
  });
}

inline NodeId any_node() {
  return NodeId{*rc::gen::oneOf(rc::gen::inRange<std::uint64_t>(1, 10),
                                rc::gen::inRange<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max()))};
}

inline Bytes any_bytes(int max_size = 64) {
  const auto n = *rc::gen::inRange(0, max_size + 1);
  return Bytes(*rc::gen::container<std::vector<std::uint8_t>>(
      static_cast<std::size_t>(n), rc::gen::arbitrary<std::uint8_t>()));
}

/// A port a member may listen on (1..65535).
inline std::uint16_t any_port() { return *rc::gen::inRange<std::uint16_t>(1, 65535); }

inline std::string any_string(int max_size = 24) {
  const auto n = *rc::gen::inRange(0, max_size + 1);
  return *rc::gen::container<std::string>(static_cast<std::size_t>(n),
                                          rc::gen::arbitrary<char>());
}

/// A configuration that passes Configuration::validate().
inline core::Configuration valid_config() {
  core::Configuration c;
  const int n = *rc::gen::inRange(1, 9);
  for (int k = 0; k < n; ++k) {
    const NodeId id = any_node();
    switch (*rc::gen::inRange(0, 4)) {
      case 0: c.voters.push_back(id); break;
      case 1: c.voters_outgoing.push_back(id); break;
      case 2: c.voters.push_back(id); c.voters_outgoing.push_back(id); break;
      default: c.learners.push_back(id); break;
    }
  }
  c.normalize();
  std::erase_if(c.learners, [&](NodeId id) { return c.is_voter(id); });
  if (c.voters.empty()) {
    c.voters.push_back(NodeId{1000});
    std::erase(c.learners, NodeId{1000});
  }
  c.normalize();
  for (NodeId id : c.members()) {
    if (*rc::gen::arbitrary<bool>()) c.set_address(id, fmt::format("10.0.0.{}:{}", id.value() % 256, 7000 + id.value() % 1000));
  }
  return c;
}

/// Consecutive entries from `first`, of every kind; config entries carry a valid
/// encoded configuration.
inline std::vector<Entry> valid_entries(LogIndex first, int max_count = 12) {
  const int n = *rc::gen::inRange(0, max_count + 1);
  std::vector<Entry> es;
  es.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    Entry e;
    e.index = first.plus(static_cast<std::uint64_t>(i));
    e.term = Term{any_u64()};
    e.kind = static_cast<EntryKind>(*rc::gen::inRange(0, static_cast<int>(kLastEntryKind) + 1));
    e.payload = e.kind == EntryKind::Config ? core::encode_configuration(valid_config())
                                            : any_bytes();
    es.push_back(std::move(e));
  }
  return es;
}

inline LogIndex any_first_index() {
  // Leaves room for the run of entries that follows.
  return LogIndex{*rc::gen::oneOf(rc::gen::inRange<std::uint64_t>(1, 1000),
                                  rc::gen::inRange<std::uint64_t>(1, std::uint64_t{1} << 62))};
}

inline constexpr int kMessageTypes = static_cast<int>(core::kLastMessageType) + 1;

/// A message of type `t` with every field random; entries only in Append, a snapshot
/// (without data: it travels in chunks) exactly in Snapshot.
inline core::Message valid_message(core::MessageType t) {
  core::Message m;
  m.type = t;
  m.from = any_node();
  m.to = any_node();
  m.term = Term{any_u64()};
  m.log_index = LogIndex{any_u64()};
  m.log_term = Term{any_u64()};
  m.commit = LogIndex{any_u64()};
  m.reject = *rc::gen::arbitrary<bool>();
  m.transfer = *rc::gen::arbitrary<bool>();
  m.hint_index = LogIndex{any_u64()};
  m.hint_term = Term{any_u64()};
  m.context = any_u64();
  if (t == core::MessageType::Append) m.entries = valid_entries(any_first_index());
  if (t == core::MessageType::Snapshot) {
    m.snapshot = core::SnapshotMeta{LogIndex{any_u64()}, Term{any_u64()}, valid_config(), Bytes{}};
  }
  return m;
}

/// A report of 1 to kDigestReportCheckpointsMax checkpoints, mostly as many as are sent.
inline DigestReport valid_digest_report() {
  DigestReport r{any_node(), any_node(), {}};
  const auto n = *rc::gen::weightedOneOf<std::size_t>(
      {{4, rc::gen::inRange<std::size_t>(1, kDigestReportSendCheckpointsMax + 1)},
       {1, rc::gen::inRange<std::size_t>(1, kDigestReportCheckpointsMax + 1)}});
  for (std::size_t i = 0; i < n; ++i) r.digests.push_back(DigestCheckpoint{LogIndex{any_u64()}, any_u64()});
  return r;
}

inline SnapshotChunk valid_chunk() {
  SnapshotChunk c;
  c.from = any_node();
  c.to = any_node();
  c.term = Term{*rc::gen::inRange<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max())};
  c.snapshot_index =
      LogIndex{*rc::gen::inRange<std::uint64_t>(1, std::numeric_limits<std::uint64_t>::max())};
  c.snapshot_term = Term{any_u64()};
  c.config = valid_config();
  c.data = any_bytes(256);
  c.last = *rc::gen::arbitrary<bool>();
  const std::uint64_t extra = *rc::gen::inRange<std::uint64_t>(0, std::uint64_t{1} << 40);
  c.total_bytes = c.data.size() + extra;
  c.offset = c.last ? extra : *rc::gen::inRange<std::uint64_t>(0, extra + 1);
  return c;
}

inline Hello valid_hello() {
  Hello h;
  h.kind = *rc::gen::element(PeerKind::Node, PeerKind::Client);
  h.node_id = h.kind == PeerKind::Node ? any_node() : kNoNode;
  h.cluster_id = "c" + any_string();
  h.token = any_string(64);
  h.protocol_version = *rc::gen::arbitrary<std::uint16_t>();
  if (h.kind == PeerKind::Node) h.address = any_string();
  h.features = *rc::gen::arbitrary<std::uint32_t>();
  return h;
}

inline HelloAck valid_hello_ack() {
  HelloAck a;
  a.accepted = *rc::gen::arbitrary<bool>();
  a.reason = any_string(80);
  a.node_id = a.accepted ? any_node() : NodeId{any_u64()};
  a.features = *rc::gen::arbitrary<std::uint32_t>();
  return a;
}

inline constexpr int kRequestKinds = static_cast<int>(std::variant_size_v<ClientRequestBody>);

inline ClientRequest valid_request(int kind) {
  ClientRequest r;
  r.request_id = any_u64();
  r.timeout_ms = *rc::gen::arbitrary<std::uint32_t>();
  switch (kind) {
    case 0: {
      ProposeRequest p;
      p.command = any_bytes(512);
      p.client_id = any_u64();
      p.sequence = p.client_id == 0 ? 0 : any_u64();
      r.body = p;
      break;
    }
    case 1:
      r.body = SubscribeRequest{LogIndex{*rc::gen::inRange<std::uint64_t>(
          1, std::numeric_limits<std::uint64_t>::max())}};
      break;
    case 2: r.body = GetRoleRequest{}; break;
    case 3: r.body = GetLeaderRequest{}; break;
    case 4: r.body = GetClusterInfoRequest{}; break;
    case 5: r.body = ReadIndexRequest{}; break;
    case 6:
      r.body = AddLearnerRequest{MemberAddress{any_node(), Address{"h" + any_string(),
                                                                   *rc::gen::arbitrary<std::uint16_t>()}}};
      break;
    case 7: r.body = PromoteRequest{any_node()}; break;
    case 8: r.body = RemoveRequest{any_node()}; break;
    default: r.body = TransferLeaderRequest{any_node()}; break;
  }
  return r;
}

inline ClusterInfo valid_cluster_info() {
  ClusterInfo ci;
  ci.cluster_id = any_string();
  ci.id = NodeId{any_u64()};
  ci.term = Term{any_u64()};
  ci.role = *rc::gen::element(Role::Follower, Role::PreCandidate, Role::Candidate, Role::Leader,
                              Role::Learner);
  ci.leader = NodeId{any_u64()};
  ci.commit = LogIndex{any_u64()};
  ci.applied = LogIndex{any_u64()};
  ci.first_index = LogIndex{any_u64()};
  ci.last_index = LogIndex{any_u64()};
  ci.digest = DigestCheckpoint{LogIndex{any_u64()}, any_u64()};
  ci.diverged = *rc::gen::arbitrary<bool>();
  const int n = *rc::gen::inRange(0, 8);
  for (int i = 0; i < n; ++i) {
    MemberInfo mi;
    mi.id = any_node();
    // Unknown, or a host name, IPv4 or IPv6 address (they travel as text and must parse).
    switch (*rc::gen::inRange(0, 4)) {
      case 0: break;
      case 1: mi.address = Address{fmt::format("n{}.venue.example", any_u64() % 1000), any_port()}; break;
      case 2: mi.address = Address{fmt::format("10.0.{}.{}", any_u64() % 256, any_u64() % 256), any_port()}; break;
      default: mi.address = Address{fmt::format("fd00::{:x}", any_u64() % 65536), any_port()}; break;
    }
    mi.voter = *rc::gen::arbitrary<bool>();
    mi.is_leader = *rc::gen::arbitrary<bool>();
    mi.match = LogIndex{any_u64()};
    mi.lag = any_u64();
    mi.last_contact = std::chrono::milliseconds{*rc::gen::arbitrary<std::int64_t>()};
    mi.digest = DigestCheckpoint{LogIndex{any_u64()}, any_u64()};
    mi.diverged_at = LogIndex{any_u64()};
    ci.members.push_back(std::move(mi));
  }
  return ci;
}

/// Reply shapes: 0 propose, 1 role, 2 cluster info, 3 read index, 4 subscribe batch,
/// 5 no result (GetLeader, admin calls), 6 an error status.
inline constexpr int kReplyShapes = 7;

inline ClientReply valid_reply(int shape) {
  ClientReply r;
  r.request_id = any_u64();
  r.leader = NodeId{any_u64()};
  r.leader_address = any_string();
  switch (shape) {
    case 0: r.propose = ProposeResult{LogIndex{any_u64()}, Term{any_u64()}}; break;
    case 1:
      r.role = *rc::gen::element(Role::Follower, Role::PreCandidate, Role::Candidate,
                                 Role::Leader, Role::Learner);
      break;
    case 2: r.cluster_info = valid_cluster_info(); break;
    case 3: r.read_index = LogIndex{any_u64()}; break;
    case 4: r.entries = valid_entries(any_first_index(), 20); break;
    case 5: break;
    default: {
      const auto code = static_cast<ErrorCode>(*rc::gen::inRange<int>(
          static_cast<int>(ErrorCode::NotLeader), static_cast<int>(ErrorCode::WrongCluster) + 1));
      r.status = Status{code, any_string(100), NodeId{any_u64()}};
      break;
    }
  }
  return r;
}

// ---- comparisons: "" when equal, else what differs ----------------------------------------

#define RLR_WIRE_CMP(field)                                                        \
  do {                                                                             \
    if (!(a.field == b.field)) return std::string("field `" #field "` differs"); \
  } while (0)

inline std::string diff(const core::Message& a, const core::Message& b) {
  RLR_WIRE_CMP(type);
  RLR_WIRE_CMP(from);
  RLR_WIRE_CMP(to);
  RLR_WIRE_CMP(term);
  RLR_WIRE_CMP(log_index);
  RLR_WIRE_CMP(log_term);
  RLR_WIRE_CMP(commit);
  RLR_WIRE_CMP(reject);
  RLR_WIRE_CMP(transfer);
  RLR_WIRE_CMP(hint_index);
  RLR_WIRE_CMP(hint_term);
  RLR_WIRE_CMP(context);
  RLR_WIRE_CMP(entries);
  RLR_WIRE_CMP(snapshot);
  return {};
}

inline std::string diff(const DigestReport& a, const DigestReport& b) {
  RLR_WIRE_CMP(from);
  RLR_WIRE_CMP(to);
  RLR_WIRE_CMP(digests);
  return {};
}

/// What differs between two decoded Raft frames (a core message or a digest report).
inline std::string diff(const PeerMessage& a, const PeerMessage& b) {
  if (a.index() != b.index()) return "one is a core message, the other a digest report";
  return std::visit([&b](const auto& x) { return diff(x, std::get<std::decay_t<decltype(x)>>(b)); }, a);
}

inline std::string diff(const SnapshotChunk& a, const SnapshotChunk& b) {
  RLR_WIRE_CMP(from);
  RLR_WIRE_CMP(to);
  RLR_WIRE_CMP(term);
  RLR_WIRE_CMP(snapshot_index);
  RLR_WIRE_CMP(snapshot_term);
  RLR_WIRE_CMP(config);
  RLR_WIRE_CMP(offset);
  RLR_WIRE_CMP(total_bytes);
  RLR_WIRE_CMP(data);
  RLR_WIRE_CMP(last);
  return {};
}

inline std::string diff(const Hello& a, const Hello& b) {
  RLR_WIRE_CMP(kind);
  RLR_WIRE_CMP(node_id);
  RLR_WIRE_CMP(cluster_id);
  RLR_WIRE_CMP(token);
  RLR_WIRE_CMP(protocol_version);
  RLR_WIRE_CMP(address);
  RLR_WIRE_CMP(features);
  return {};
}

inline std::string diff(const HelloAck& a, const HelloAck& b) {
  RLR_WIRE_CMP(accepted);
  RLR_WIRE_CMP(reason);
  RLR_WIRE_CMP(node_id);
  RLR_WIRE_CMP(features);
  return {};
}

inline bool same_body(const ClientRequestBody& x, const ClientRequestBody& y) {
  if (x.index() != y.index()) return false;
  if (const auto* a = std::get_if<ProposeRequest>(&x)) {
    const auto& b = std::get<ProposeRequest>(y);
    return a->command == b.command && a->client_id == b.client_id && a->sequence == b.sequence;
  }
  if (const auto* a = std::get_if<SubscribeRequest>(&x)) return a->from == std::get<SubscribeRequest>(y).from;
  if (const auto* a = std::get_if<AddLearnerRequest>(&x)) return a->member == std::get<AddLearnerRequest>(y).member;
  if (const auto* a = std::get_if<PromoteRequest>(&x)) return a->id == std::get<PromoteRequest>(y).id;
  if (const auto* a = std::get_if<RemoveRequest>(&x)) return a->id == std::get<RemoveRequest>(y).id;
  if (const auto* a = std::get_if<TransferLeaderRequest>(&x)) return a->id == std::get<TransferLeaderRequest>(y).id;
  return true;  // the bodies without fields
}

inline std::string diff(const ClientRequest& a, const ClientRequest& b) {
  RLR_WIRE_CMP(request_id);
  RLR_WIRE_CMP(timeout_ms);
  if (!same_body(a.body, b.body)) return "body differs";
  return {};
}

inline std::string diff(const Status& a, const Status& b) {
  RLR_WIRE_CMP(code());
  RLR_WIRE_CMP(message());
  RLR_WIRE_CMP(leader_hint());
  return {};
}

inline std::string diff(const MemberInfo& a, const MemberInfo& b) {
  RLR_WIRE_CMP(id);
  RLR_WIRE_CMP(address);
  RLR_WIRE_CMP(voter);
  RLR_WIRE_CMP(is_leader);
  RLR_WIRE_CMP(match);
  RLR_WIRE_CMP(lag);
  RLR_WIRE_CMP(last_contact);
  RLR_WIRE_CMP(digest);
  RLR_WIRE_CMP(diverged_at);
  return {};
}

inline std::string diff(const ClusterInfo& a, const ClusterInfo& b) {
  RLR_WIRE_CMP(cluster_id);
  RLR_WIRE_CMP(id);
  RLR_WIRE_CMP(term);
  RLR_WIRE_CMP(role);
  RLR_WIRE_CMP(leader);
  RLR_WIRE_CMP(commit);
  RLR_WIRE_CMP(applied);
  RLR_WIRE_CMP(first_index);
  RLR_WIRE_CMP(last_index);
  RLR_WIRE_CMP(digest);
  RLR_WIRE_CMP(diverged);
  RLR_WIRE_CMP(members.size());
  for (std::size_t i = 0; i < a.members.size(); ++i) {
    if (auto d = diff(a.members[i], b.members[i]); !d.empty()) {
      return fmt::format("member {}: {}", i, d);
    }
  }
  return {};
}

inline std::string diff(const ClientReply& a, const ClientReply& b) {
  RLR_WIRE_CMP(request_id);
  if (auto d = diff(a.status, b.status); !d.empty()) return "status: " + d;
  RLR_WIRE_CMP(leader);
  RLR_WIRE_CMP(leader_address);
  RLR_WIRE_CMP(propose.has_value());
  if (a.propose) {
    RLR_WIRE_CMP(propose->index);
    RLR_WIRE_CMP(propose->term);
  }
  RLR_WIRE_CMP(role);
  RLR_WIRE_CMP(read_index);
  RLR_WIRE_CMP(cluster_info.has_value());
  if (a.cluster_info) {
    if (auto d = diff(*a.cluster_info, *b.cluster_info); !d.empty()) return "cluster info: " + d;
  }
  RLR_WIRE_CMP(entries);
  return {};
}

#undef RLR_WIRE_CMP

// ---- frames -------------------------------------------------------------------------------

/// The fields of a RaftMessage payload built by hand, past what the encoders allow: a
/// digest report as older nodes encode it (with a term), or a malformed one.
struct RawRaftMessage {
  fb::MessageType type = fb::MessageType::DigestReport;
  std::uint64_t from = 1;
  std::uint64_t to = 2;
  std::uint64_t term = 0;
  std::uint64_t log_index = 0;
  std::size_t checkpoints = 2;  ///< (i * 10, i) for i = 1..checkpoints
  bool digests = true;          ///< false: no digest vector at all
  bool entries = false;         ///< with an (empty) entry batch
  bool snapshot = false;        ///< with snapshot metadata
};

inline Bytes encode_raw(const RawRaftMessage& m) {
  flatbuffers::FlatBufferBuilder b;
  std::vector<fb::DigestCheckpoint> cps;
  for (std::size_t i = 1; i <= m.checkpoints; ++i) cps.emplace_back(10 * i, i);
  const auto digests = m.digests ? b.CreateVectorOfStructs(cps) : 0;
  const auto entries = m.entries ? fb::CreateEntryBatch(b) : 0;
  const auto snapshot = m.snapshot ? fb::CreateSnapshotMeta(b, 5, 1) : 0;
  fb::RaftMessageBuilder rb(b);
  rb.add_type(m.type);
  rb.add_from(m.from);
  rb.add_to(m.to);
  rb.add_term(m.term);
  rb.add_log_index(m.log_index);
  rb.add_entries(entries);
  rb.add_snapshot(snapshot);
  rb.add_digests(digests);
  b.Finish(rb.Finish());
  return Bytes::copy_of(std::span<const std::uint8_t>(b.GetBufferPointer(), b.GetSize()));
}

/// The payload of an encoded frame, as an owning (aligned) Bytes.
inline Bytes payload_of(const Frame& f) {
  return Bytes::copy_of(std::span<const std::uint8_t>(f).subspan(kHeaderBytes));
}

/// Header fields of an encoded frame, without checks beyond the size.
inline FrameHeader header_of(const Frame& f) {
  auto h = decode_header(f, 0, std::numeric_limits<std::size_t>::max());
  RC_ASSERT(h.is_ok());
  return h.value();
}

}  // namespace rlr::wire::test
