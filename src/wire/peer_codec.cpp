// The peer codec (peer_codec.h): core messages and digest reports in Raft frames, and
// the snapshot stream's chunks and acknowledgements.
#include "wire/peer_codec.h"

#include <cassert>
#include <span>
#include <utility>

#include <fmt/format.h>

#include "util/crc32c.h"
#include "wire/codec_support.h"

namespace rlr::wire {
using namespace detail;
namespace {

// ---- the schema's MessageType: core::MessageType, then DigestReport ------------------------
static_assert(static_cast<int>(fb::MessageType::PreVote) ==
              static_cast<int>(core::MessageType::PreVote));
static_assert(static_cast<int>(fb::MessageType::PreVoteResponse) ==
              static_cast<int>(core::MessageType::PreVoteResponse));
static_assert(static_cast<int>(fb::MessageType::Vote) == static_cast<int>(core::MessageType::Vote));
static_assert(static_cast<int>(fb::MessageType::VoteResponse) ==
              static_cast<int>(core::MessageType::VoteResponse));
static_assert(static_cast<int>(fb::MessageType::Append) ==
              static_cast<int>(core::MessageType::Append));
static_assert(static_cast<int>(fb::MessageType::AppendResponse) ==
              static_cast<int>(core::MessageType::AppendResponse));
static_assert(static_cast<int>(fb::MessageType::Heartbeat) ==
              static_cast<int>(core::MessageType::Heartbeat));
static_assert(static_cast<int>(fb::MessageType::HeartbeatResponse) ==
              static_cast<int>(core::MessageType::HeartbeatResponse));
static_assert(static_cast<int>(fb::MessageType::Snapshot) ==
              static_cast<int>(core::MessageType::Snapshot));
static_assert(static_cast<int>(fb::MessageType::SnapshotResponse) ==
              static_cast<int>(core::MessageType::SnapshotResponse));
static_assert(static_cast<int>(fb::MessageType::TimeoutNow) ==
              static_cast<int>(core::MessageType::TimeoutNow));
static_assert(static_cast<int>(fb::MessageType::TimeoutNow) == static_cast<int>(core::kLastMessageType));
// The one value past the core's: a digest report, decoded to wire::DigestReport.
static_assert(static_cast<int>(fb::MessageType::DigestReport) ==
              static_cast<int>(core::kLastMessageType) + 1);
static_assert(fb::MessageType::MAX == fb::MessageType::DigestReport);

/// The message type's name. (core::to_string lives with the Raft state machine; the
/// codec keeps its own so that it links without it, as the fuzz target does.)
std::string_view type_name(core::MessageType t) noexcept {
  switch (t) {
    case core::MessageType::PreVote: return "PreVote";
    case core::MessageType::PreVoteResponse: return "PreVoteResponse";
    case core::MessageType::Vote: return "Vote";
    case core::MessageType::VoteResponse: return "VoteResponse";
    case core::MessageType::Append: return "Append";
    case core::MessageType::AppendResponse: return "AppendResponse";
    case core::MessageType::Heartbeat: return "Heartbeat";
    case core::MessageType::HeartbeatResponse: return "HeartbeatResponse";
    case core::MessageType::Snapshot: return "Snapshot";
    case core::MessageType::SnapshotResponse: return "SnapshotResponse";
    case core::MessageType::TimeoutNow: return "TimeoutNow";
  }
  return "?";
}

flatbuffers::Offset<flatbuffers::Vector<std::uint64_t>> put_ids(flatbuffers::FlatBufferBuilder& b,
                                                                const std::vector<NodeId>& ids) {
  if (ids.empty()) return 0;
  std::uint64_t* out = nullptr;
  auto vec = b.CreateUninitializedVector<std::uint64_t>(ids.size(), &out);
  for (std::size_t i = 0; i < ids.size(); ++i) flatbuffers::WriteScalar(out + i, ids[i].value());
  return vec;
}

flatbuffers::Offset<fb::Config> put_config(flatbuffers::FlatBufferBuilder& b,
                                           const core::Configuration& c) {
  const auto voters = put_ids(b, c.voters);
  const auto outgoing = put_ids(b, c.voters_outgoing);
  const auto learners = put_ids(b, c.learners);
  std::vector<flatbuffers::Offset<fb::MemberEndpoint>> endpoints;
  endpoints.reserve(c.addresses.size());
  for (const auto& e : c.addresses) {
    endpoints.push_back(fb::CreateMemberEndpoint(b, e.id.value(), b.CreateString(e.address)));
  }
  const auto addresses = endpoints.empty() ? 0 : b.CreateVector(endpoints);
  return fb::CreateConfig(b, voters, outgoing, learners, addresses);
}

/// The ids of `v` (may be null); false when its elements are misaligned.
bool get_ids(const flatbuffers::Vector<std::uint64_t>* v, std::vector<NodeId>& ids) {
  ids.clear();
  if (v == nullptr) return true;
  if (!elements_aligned(v->Data())) return false;
  ids.reserve(v->size());
  for (std::uint64_t id : *v) ids.emplace_back(id);
  return true;
}

Result<core::Configuration> get_config(const fb::Config* c, std::string_view what) {
  if (c == nullptr) return invalid(fmt::format("{}: configuration missing", what));
  core::Configuration config;
  if (!get_ids(c->voters(), config.voters) ||
      !get_ids(c->voters_outgoing(), config.voters_outgoing) ||
      !get_ids(c->learners(), config.learners)) {
    return invalid(fmt::format("{}: misaligned id vector", what));
  }
  if (const auto* addresses = c->addresses(); addresses != nullptr) {
    if (addresses->size() > kClusterMembersMax) return invalid(fmt::format("{}: too many addresses", what));
    for (const auto* e : *addresses) {
      if (e == nullptr || e->address() == nullptr) {
        return invalid(fmt::format("{}: address entry missing", what));
      }
      config.addresses.push_back(core::MemberEndpoint{NodeId{e->id()}, e->address()->str()});
    }
  }
  if (Status s = config.validate(); !s) {
    return invalid(fmt::format("{}: invalid configuration: {}", what, s.message()));
  }
  return config;
}

}  // namespace

Frame encode_raft(const core::Message& m, std::uint64_t tag) {
  auto& b = acquire_builder(256 + batch_bytes_hint(m.entries));
  const auto entries = put_entries(b, m.entries);
  flatbuffers::Offset<fb::SnapshotMeta> snapshot = 0;
  if (m.snapshot) {
    const auto config = put_config(b, m.snapshot->config);
    snapshot = fb::CreateSnapshotMeta(b, m.snapshot->index.value(), m.snapshot->term.value(),
                                      config);
  }
  fb::RaftMessageBuilder rb(b);
  rb.add_type(static_cast<fb::MessageType>(m.type));
  rb.add_from(m.from.value());
  rb.add_to(m.to.value());
  rb.add_term(m.term.value());
  rb.add_log_index(m.log_index.value());
  rb.add_log_term(m.log_term.value());
  rb.add_commit(m.commit.value());
  rb.add_reject(m.reject);
  rb.add_transfer(m.transfer);
  rb.add_hint_index(m.hint_index.value());
  rb.add_hint_term(m.hint_term.value());
  rb.add_context(m.context);
  rb.add_entries(entries);
  rb.add_snapshot(snapshot);
  b.Finish(rb.Finish());
  return finish_frame(b, FrameType::Raft, tag);
}

std::optional<Frame> readdress_raft(const Frame& frame, NodeId to) {
  if (frame.size() <= kHeaderBytes || to == kNoNode) return std::nullopt;
  Frame copy(frame);
  std::uint8_t* payload = copy.data() + kHeaderBytes;
  const std::size_t n = copy.size() - kHeaderBytes;
  // Our own encoding (encode_raft's output), not bytes from the network: no Verifier.
  if (!flatbuffers::GetMutableRoot<fb::RaftMessage>(payload)->mutate_to(to.value())) return std::nullopt;
  const std::span<std::uint8_t, kHeaderBytes> header(copy.data(), kHeaderBytes);
  auto h = decode_header(header, 0, n);
  if (!h) return std::nullopt;  // not a frame encode_raft made
  h.value().crc = util::crc32c(0, payload, n);
  encode_header(h.value(), header);
  return copy;
}

namespace {

constexpr std::string_view kRaftWhat = "raft message";

/// The core message in `r`, a verified RaftMessage of a core message type; `payload` is
/// the (aligned) buffer `r` lives in, which entry payloads are views into.
Result<core::Message> core_message(const fb::RaftMessage& r, const Bytes& payload) {
  const auto type = static_cast<std::uint8_t>(r.type());
  if (type > static_cast<std::uint8_t>(core::kLastMessageType)) {
    return invalid(fmt::format("raft message: unknown type {}", type));
  }
  core::Message m;
  m.type = static_cast<core::MessageType>(type);
  m.from = NodeId{r.from()};
  m.to = NodeId{r.to()};
  if (m.from == kNoNode || m.to == kNoNode) {
    return invalid(fmt::format("raft message: {} from {} to {}: node id 0 is reserved",
                               type_name(m.type), m.from.value(), m.to.value()));
  }
  m.term = Term{r.term()};
  m.log_index = LogIndex{r.log_index()};
  m.log_term = Term{r.log_term()};
  m.commit = LogIndex{r.commit()};
  m.reject = r.reject();
  m.transfer = r.transfer();
  m.hint_index = LogIndex{r.hint_index()};
  m.hint_term = Term{r.hint_term()};
  m.context = r.context();

  const fb::EntryBatch* batch = r.entries();
  if (batch != nullptr && m.type != core::MessageType::Append) {
    return invalid(fmt::format("raft message: {} carries entries", type_name(m.type)));
  }
  Views views(payload);
  if (Status s = get_entries(batch, views, m.entries, kRaftWhat); !s) return s;

  const fb::SnapshotMeta* snap = r.snapshot();
  if (m.type == core::MessageType::Snapshot) {
    if (snap == nullptr) return invalid("raft message: Snapshot without snapshot metadata");
    auto config = get_config(snap->config(), "raft message: snapshot");
    if (!config) return config.status();
    m.snapshot = core::SnapshotMeta{LogIndex{snap->index()}, Term{snap->term()},
                                    std::move(config).value(), Bytes{}};
  } else if (snap != nullptr) {
    return invalid(fmt::format("raft message: {} carries a snapshot", type_name(m.type)));
  }
  if (r.digests() != nullptr) {
    return invalid(fmt::format("raft message: {} carries digests", type_name(m.type)));
  }
  return m;
}

/// The digest report in `r`, a verified RaftMessage of type DigestReport. Fields other
/// than from, to and digests are ignored (older nodes set `term`).
Result<DigestReport> digest_report(const fb::RaftMessage& r) {
  DigestReport d{NodeId{r.from()}, NodeId{r.to()}, {}};
  if (d.from == kNoNode || d.to == kNoNode) {
    return invalid(fmt::format("digest report from {} to {}: node id 0 is reserved",
                               d.from.value(), d.to.value()));
  }
  if (r.entries() != nullptr) return invalid("digest report: carries entries");
  if (r.snapshot() != nullptr) return invalid("digest report: carries a snapshot");
  const auto* digests = r.digests();
  if (digests == nullptr || digests->size() == 0) return invalid("digest report: no checkpoints");
  if (digests->size() > kDigestReportCheckpointsMax) {
    return invalid(fmt::format("digest report: {} checkpoints (limit {})", digests->size(),
                               kDigestReportCheckpointsMax));
  }
  if (!elements_aligned(digests->Data())) {
    return invalid("digest report: misaligned checkpoint vector");
  }
  d.digests.reserve(digests->size());
  for (const fb::DigestCheckpoint* c : *digests) {
    d.digests.push_back(DigestCheckpoint{LogIndex{c->index()}, c->digest()});
  }
  return d;
}

}  // namespace

Result<core::Message> decode_raft(const Bytes& payload_in) {
  const Bytes payload = aligned(payload_in);
  auto root = verified_root<fb::RaftMessage>(payload.span(), kRaftWhat);
  if (!root) return root.status();
  if (root.value()->type() == fb::MessageType::DigestReport) {
    return invalid("raft message: a digest report, not a core message");
  }
  return core_message(*root.value(), payload);
}

Frame encode_digest_report(const DigestReport& r, std::uint64_t tag) {
  assert(!r.digests.empty() && r.digests.size() <= kDigestReportCheckpointsMax &&
         "a digest report holds 1 to kDigestReportCheckpointsMax checkpoints");
  auto& b = acquire_builder(96 + r.digests.size() * sizeof(fb::DigestCheckpoint));
  const auto digests = b.CreateVectorOfStructs<fb::DigestCheckpoint>(
      r.digests.size(),
      [](std::size_t i, fb::DigestCheckpoint* out, const std::vector<DigestCheckpoint>* ds) {
        *out = fb::DigestCheckpoint((*ds)[i].index.value(), (*ds)[i].digest);
      },
      &r.digests);
  fb::RaftMessageBuilder rb(b);
  rb.add_type(fb::MessageType::DigestReport);
  rb.add_from(r.from.value());
  rb.add_to(r.to.value());
  rb.add_digests(digests);
  b.Finish(rb.Finish());
  return finish_frame(b, FrameType::Raft, tag);
}

Result<PeerMessage> decode_peer_message(const Bytes& payload_in) {
  const Bytes payload = aligned(payload_in);
  auto root = verified_root<fb::RaftMessage>(payload.span(), kRaftWhat);
  if (!root) return root.status();
  if (root.value()->type() == fb::MessageType::DigestReport) {
    auto d = digest_report(*root.value());
    if (!d) return d.status();
    return PeerMessage{std::move(d).value()};
  }
  auto m = core_message(*root.value(), payload);
  if (!m) return m.status();
  return PeerMessage{std::move(m).value()};
}

Frame encode_snapshot_chunk(const SnapshotChunk& c, std::uint64_t tag) {
  auto& b = acquire_builder(256 + c.data.size());
  const auto data = put_bytes(b, c.data);
  const auto config = put_config(b, c.config);
  fb::SnapshotChunkBuilder cb(b);
  cb.add_from(c.from.value());
  cb.add_to(c.to.value());
  cb.add_term(c.term.value());
  cb.add_snapshot_index(c.snapshot_index.value());
  cb.add_snapshot_term(c.snapshot_term.value());
  cb.add_config(config);
  cb.add_offset(c.offset);
  cb.add_total_bytes(c.total_bytes);
  cb.add_data(data);
  cb.add_last(c.last);
  b.Finish(cb.Finish());
  return finish_frame(b, FrameType::SnapshotChunk, tag);
}

Result<SnapshotChunk> decode_snapshot_chunk(const Bytes& payload_in) {
  constexpr std::string_view kWhat = "snapshot chunk";
  const Bytes payload = aligned(payload_in);
  auto root = verified_root<fb::SnapshotChunk>(payload.span(), kWhat);
  if (!root) return root.status();
  const fb::SnapshotChunk& r = *root.value();
  SnapshotChunk c;
  c.from = NodeId{r.from()};
  c.to = NodeId{r.to()};
  if (c.from == kNoNode || c.to == kNoNode) {
    return invalid(fmt::format("snapshot chunk from {} to {}: node id 0 is reserved",
                               c.from.value(), c.to.value()));
  }
  c.term = Term{r.term()};
  c.snapshot_index = LogIndex{r.snapshot_index()};
  c.snapshot_term = Term{r.snapshot_term()};
  if (c.term.is_zero() || c.snapshot_index.is_zero()) {
    return invalid("snapshot chunk: term and snapshot index must be non-zero");
  }
  auto config = get_config(r.config(), kWhat);
  if (!config) return config.status();
  c.config = std::move(config).value();
  c.offset = r.offset();
  c.total_bytes = r.total_bytes();
  c.last = r.last();
  Views views(payload);
  c.data = views.view(r.data());
  if (c.offset > c.total_bytes || c.data.size() > c.total_bytes - c.offset) {
    return invalid(fmt::format("snapshot chunk: {} bytes at offset {} overrun the {}-byte total",
                               c.data.size(), c.offset, c.total_bytes));
  }
  if (c.last && c.offset + c.data.size() != c.total_bytes) {
    return invalid(fmt::format("snapshot chunk: last chunk ends at {} of {} bytes",
                               c.offset + c.data.size(), c.total_bytes));
  }
  return c;
}

Frame encode_snapshot_ack(const SnapshotAck& a, std::uint64_t tag) {
  auto& b = acquire_builder(96);
  fb::SnapshotAckBuilder ab(b);
  ab.add_from(a.from.value());
  ab.add_to(a.to.value());
  ab.add_snapshot_index(a.snapshot_index.value());
  ab.add_snapshot_term(a.snapshot_term.value());
  ab.add_received(a.received);
  b.Finish(ab.Finish());
  return finish_frame(b, FrameType::SnapshotAck, tag);
}

Result<SnapshotAck> decode_snapshot_ack(std::span<const std::uint8_t> payload) {
  constexpr std::string_view kWhat = "snapshot ack";
  Bytes storage;
  const auto buf = aligned(payload, storage);
  auto root = verified_root<fb::SnapshotAck>(buf, kWhat);
  if (!root) return root.status();
  const fb::SnapshotAck& r = *root.value();
  SnapshotAck a;
  a.from = NodeId{r.from()};
  a.to = NodeId{r.to()};
  a.snapshot_index = LogIndex{r.snapshot_index()};
  a.snapshot_term = Term{r.snapshot_term()};
  a.received = r.received();
  if (a.from == kNoNode || a.to == kNoNode) {
    return invalid(fmt::format("snapshot ack from {} to {}: node id 0 is reserved",
                               a.from.value(), a.to.value()));
  }
  if (a.snapshot_index.is_zero()) return invalid("snapshot ack: snapshot index must be non-zero");
  return a;
}

core::Message snapshot_message(SnapshotChunk&& last, std::vector<std::uint8_t>&& data) {
  core::Message m;
  m.type = core::MessageType::Snapshot;
  m.from = last.from;
  m.to = last.to;
  m.term = last.term;
  m.snapshot = core::SnapshotMeta{last.snapshot_index, last.snapshot_term, std::move(last.config),
                                  Bytes(std::move(data))};
  return m;
}

}  // namespace rlr::wire
