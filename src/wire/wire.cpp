// The wire protocol: frame headers, the flatbuffers codecs and the incremental reader.
//
// Trust model: every byte handed to a decoder may come from a hostile or broken peer.
// Headers are parsed byte by byte; every payload goes through the flatbuffers Verifier
// before any field is read; enum values, ids and cross-field invariants are checked
// before a C++ value is built. Decoders return errors, never abort.
#include "wire/wire.h"

#include <algorithm>
#include <bit>
#include <cassert>
#include <cstring>
#include <limits>
#include <memory>
#include <utility>

#include <fmt/format.h>

#include "rlr_generated.h"
#include "util/crc32c.h"

namespace rlr::wire {
namespace {

// ---- enums mirrored by the schema -----------------------------------------------------
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

static_assert(static_cast<int>(fb::EntryKind::Normal) == static_cast<int>(EntryKind::Normal));
static_assert(static_cast<int>(fb::EntryKind::Config) == static_cast<int>(EntryKind::Config));
static_assert(static_cast<int>(fb::EntryKind::Noop) == static_cast<int>(EntryKind::Noop));
static_assert(static_cast<int>(fb::EntryKind::Session) == static_cast<int>(EntryKind::Session));
static_assert(static_cast<int>(fb::EntryKind::Watermark) ==
              static_cast<int>(EntryKind::Watermark));
static_assert(static_cast<int>(fb::EntryKind::MAX) == static_cast<int>(kLastEntryKind));

static_assert(static_cast<int>(fb::Role::Follower) == static_cast<int>(Role::Follower));
static_assert(static_cast<int>(fb::Role::PreCandidate) == static_cast<int>(Role::PreCandidate));
static_assert(static_cast<int>(fb::Role::Candidate) == static_cast<int>(Role::Candidate));
static_assert(static_cast<int>(fb::Role::Leader) == static_cast<int>(Role::Leader));
static_assert(static_cast<int>(fb::Role::Learner) == static_cast<int>(Role::Learner));
static_assert(static_cast<int>(fb::Role::MAX) == static_cast<int>(Role::Learner));

static_assert(static_cast<int>(fb::PeerKind::Node) == static_cast<int>(PeerKind::Node));
static_assert(static_cast<int>(fb::PeerKind::Client) == static_cast<int>(PeerKind::Client));
static_assert(static_cast<int>(fb::PeerKind::MAX) == static_cast<int>(PeerKind::Client));

static_assert(static_cast<int>(fb::ErrorCode::Ok) == static_cast<int>(ErrorCode::Ok));
static_assert(static_cast<int>(fb::ErrorCode::NotLeader) == static_cast<int>(ErrorCode::NotLeader));
static_assert(static_cast<int>(fb::ErrorCode::Timeout) == static_cast<int>(ErrorCode::Timeout));
static_assert(static_cast<int>(fb::ErrorCode::ShuttingDown) ==
              static_cast<int>(ErrorCode::ShuttingDown));
static_assert(static_cast<int>(fb::ErrorCode::InvalidArgument) ==
              static_cast<int>(ErrorCode::InvalidArgument));
static_assert(static_cast<int>(fb::ErrorCode::ChangeInProgress) ==
              static_cast<int>(ErrorCode::ChangeInProgress));
static_assert(static_cast<int>(fb::ErrorCode::TransferInProgress) ==
              static_cast<int>(ErrorCode::TransferInProgress));
static_assert(static_cast<int>(fb::ErrorCode::Compacted) == static_cast<int>(ErrorCode::Compacted));
static_assert(static_cast<int>(fb::ErrorCode::Corruption) ==
              static_cast<int>(ErrorCode::Corruption));
static_assert(static_cast<int>(fb::ErrorCode::IoError) == static_cast<int>(ErrorCode::IoError));
static_assert(static_cast<int>(fb::ErrorCode::NotFound) == static_cast<int>(ErrorCode::NotFound));
static_assert(static_cast<int>(fb::ErrorCode::Busy) == static_cast<int>(ErrorCode::Busy));
static_assert(static_cast<int>(fb::ErrorCode::Unavailable) ==
              static_cast<int>(ErrorCode::Unavailable));
static_assert(static_cast<int>(fb::ErrorCode::WrongCluster) ==
              static_cast<int>(ErrorCode::WrongCluster));
static_assert(static_cast<int>(fb::ErrorCode::MAX) == static_cast<int>(ErrorCode::WrongCluster));

static_assert(sizeof(fb::EntryMeta) == 24, "EntryMeta is 24 bytes on the wire");

// ---- limits ---------------------------------------------------------------------------
/// Our schema nests at most five levels (reply > cluster info > members > member).
constexpr flatbuffers::uoffset_t kVerifierDepthMax = 16;
/// Bounds the verifier's work on buffers that reference one table many times.
constexpr flatbuffers::uoffset_t kVerifierTablesMax = 1U << 20;
/// Members listed in one ClusterInfo (the configuration codec allows 1024 per set).
constexpr std::size_t kClusterMembersMax = 4096;
/// The thread-local builder keeps at most this much memory between encodes.
constexpr std::size_t kBuilderKeepBytes = 4U << 20;
constexpr std::size_t kBuilderInitialBytes = 1024;
/// A frame at least this large keeps the buffer it was built in (no copy); a smaller one
/// is copied out and the builder's buffer reused (cheaper than an allocation).
constexpr std::size_t kHandOverBytes = 64U << 10;
/// FrameReader reserves room for a whole frame as soon as its header is read only up to
/// this size: a peer cannot make it hold more than this without sending the bytes.
constexpr std::size_t kEagerReserveBytesMax = 4U << 20;
/// FrameReader hands its buffer over (instead of copying) to payloads at least this big.
constexpr std::size_t kHandOverBytesMin = 64U << 10;
/// An emptied receive buffer larger than this is released rather than kept.
constexpr std::size_t kKeepBufferBytes = 2 * kHandOverBytesMin;
/// Payload offsets are 8-byte aligned so 64-bit fields are read at aligned addresses.
constexpr std::size_t kPayloadAlign = 8;

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

Status invalid(std::string message) {
  return Status{ErrorCode::InvalidArgument, std::move(message)};
}

// ---- big-endian header fields, byte by byte -------------------------------------------
void put_be(std::uint8_t* out, std::uint64_t v, int bytes) noexcept {
  for (int i = bytes - 1; i >= 0; --i) {
    out[i] = static_cast<std::uint8_t>(v & 0xFFU);
    v >>= 8;
  }
}

std::uint64_t get_be(const std::uint8_t* in, int bytes) noexcept {
  std::uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v = (v << 8) | in[i];
  return v;
}

// Offsets of the header fields.
constexpr std::size_t kOffMagic = 0;
constexpr std::size_t kOffVersion = 4;
constexpr std::size_t kOffType = 6;
constexpr std::size_t kOffTag = 8;
constexpr std::size_t kOffLength = 16;
constexpr std::size_t kOffCrc = 20;
static_assert(kOffCrc + 4 == kHeaderBytes);

bool known_frame_type(std::uint16_t t) noexcept {
  return t >= static_cast<std::uint16_t>(FrameType::Hello) &&
         t <= static_cast<std::uint16_t>(FrameType::Ping);
}

// ---- encoding -------------------------------------------------------------------------
/// One builder per thread, reused: a steady stream of small encodes allocates nothing.
/// A large frame is built in a buffer of its own, which the frame then keeps (see
/// finish_frame).
class BuilderCache {
 public:
  /// A cleared builder with room for about `bytes_hint` bytes.
  flatbuffers::FlatBufferBuilder& acquire(std::size_t bytes_hint) {
    if (bytes_hint >= kHandOverBytes) {
      // Sized for this frame (and its header, pushed in front at the end); lazily
      // allocated by the builder on first use.
      builder_ = flatbuffers::FlatBufferBuilder(bytes_hint + kHeaderBytes + 64);
      capacity_ = 0;  // the buffer leaves with the frame: make a new one next time
    } else if (bytes_hint > capacity_) {
      capacity_ = std::max(bytes_hint, 2 * capacity_);
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
    } else {
      builder_.Clear();
    }
    return builder_;
  }
  /// Called once the finished buffer has been copied out or handed over.
  void release() {
    if (capacity_ == 0) {
      capacity_ = kBuilderInitialBytes;
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
      return;
    }
    capacity_ = std::max<std::size_t>(capacity_, builder_.GetSize());
    if (capacity_ > kBuilderKeepBytes) {
      capacity_ = kBuilderInitialBytes;
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
    }
  }

 private:
  std::size_t capacity_ = kBuilderInitialBytes;
  flatbuffers::FlatBufferBuilder builder_{kBuilderInitialBytes};
};

BuilderCache& builders() {
  thread_local BuilderCache cache;
  return cache;
}

/// Header + the finished payload of `b`, as one buffer ready to write. A large payload
/// is not copied: the header goes in front of it, in the builder's own buffer (built
/// back to front, so the room is there), and the frame takes that buffer over.
Frame finish_frame(flatbuffers::FlatBufferBuilder& b, FrameType type, std::uint64_t tag) {
  const std::uint8_t* payload = b.GetBufferPointer();
  const std::size_t n = b.GetSize();
  assert(n <= std::numeric_limits<std::uint32_t>::max() && "frame payload over 4 GiB");
  std::uint8_t header[kHeaderBytes];
  put_be(header + kOffMagic, kMagic, 4);
  put_be(header + kOffVersion, kProtocolVersion, 2);
  put_be(header + kOffType, static_cast<std::uint16_t>(type), 2);
  put_be(header + kOffTag, tag, 8);
  put_be(header + kOffLength, n, 4);
  put_be(header + kOffCrc, util::crc32c(0, payload, n), 4);
  Frame f;
  if (n >= kHandOverBytes) {
    b.PushBytes(header, kHeaderBytes);
    f = Frame(b.Release());
  } else {
    std::vector<std::uint8_t> v;
    v.reserve(kHeaderBytes + n);
    v.insert(v.end(), header, header + kHeaderBytes);
    v.insert(v.end(), payload, payload + n);
    f = Frame(std::move(v));
  }
  builders().release();
  return f;
}

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> put_bytes(flatbuffers::FlatBufferBuilder& b,
                                                                 const Bytes& bytes) {
  if (bytes.empty()) return 0;
  return b.CreateVector(bytes.data(), bytes.size());
}

flatbuffers::Offset<flatbuffers::String> put_string(flatbuffers::FlatBufferBuilder& b,
                                                    std::string_view s) {
  if (s.empty()) return 0;
  return b.CreateString(s.data(), s.size());
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

std::size_t payload_bytes(const std::vector<Entry>& entries) noexcept {
  std::size_t n = 0;
  for (const Entry& e : entries) n += e.payload.size();
  return n;
}

/// Room an entry batch takes in a builder (for the size hint).
std::size_t batch_bytes_hint(const std::vector<Entry>& entries) noexcept {
  return entries.size() * sizeof(fb::EntryMeta) + payload_bytes(entries) + 64;
}

/// One struct vector and one byte vector, whatever the number of entries.
flatbuffers::Offset<fb::EntryBatch> put_entries(flatbuffers::FlatBufferBuilder& b,
                                                const std::vector<Entry>& entries) {
  if (entries.empty()) return 0;
  std::uint8_t* blob = nullptr;
  const auto payloads = b.CreateUninitializedVector(payload_bytes(entries), 1, &blob);
  for (const Entry& e : entries) {
    if (e.payload.empty()) continue;
    std::memcpy(blob, e.payload.data(), e.payload.size());
    blob += e.payload.size();
  }
  const auto meta = b.CreateVectorOfStructs<fb::EntryMeta>(
      entries.size(),
      [](std::size_t i, fb::EntryMeta* out, const std::vector<Entry>* es) {
        const Entry& e = (*es)[i];
        assert(e.payload.size() <= std::numeric_limits<std::uint32_t>::max());
        *out = fb::EntryMeta(e.index.value(), e.term.value(),
                             static_cast<std::uint32_t>(e.payload.size()),
                             static_cast<fb::EntryKind>(e.kind));
      },
      &entries);
  return fb::CreateEntryBatch(b, meta, payloads);
}

// ---- decoding -------------------------------------------------------------------------
/// The verified root table of `buf`, or InvalidArgument. No field of `buf` is read
/// before the Verifier has accepted the whole buffer.
template <class Table>
Result<const Table*> verified_root(std::span<const std::uint8_t> buf, std::string_view what) {
  if (buf.empty()) return invalid(fmt::format("{}: empty payload", what));
  if (buf.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return invalid(fmt::format("{}: payload of {} bytes is too large", what, buf.size()));
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = kVerifierDepthMax;
  opts.max_tables = kVerifierTablesMax;
  opts.check_alignment = true;
  opts.check_nested_flatbuffers = true;
  flatbuffers::Verifier verifier(buf.data(), buf.size(), opts);
  if (!verifier.VerifyBuffer<Table>(nullptr)) {
    return invalid(fmt::format("{}: payload is not a valid flatbuffer ({} bytes)", what,
                               buf.size()));
  }
  return flatbuffers::GetRoot<Table>(buf.data());
}

bool is_aligned(const std::uint8_t* p) noexcept {
  return std::bit_cast<std::uintptr_t>(p) % kPayloadAlign == 0;
}

/// `payload` itself when its first byte is 8-byte aligned in memory (always the case for
/// FrameReader payloads), otherwise an aligned copy: flatbuffers reads scalars in place.
Bytes aligned(const Bytes& payload) {
  return is_aligned(payload.data()) ? payload : Bytes::copy_of(payload.span());
}

/// The same for a span; a copy, when needed, lives in `storage`.
std::span<const std::uint8_t> aligned(std::span<const std::uint8_t> bytes, Bytes& storage) {
  if (is_aligned(bytes.data())) return bytes;
  storage = Bytes::copy_of(bytes);
  return storage.span();
}

/// Hands out Bytes that view the payload buffer and keep it alive. The shared owner is
/// created once per decoded frame, on the first non-empty view.
class Views {
 public:
  explicit Views(const Bytes& payload) : payload_(payload) {}
  Bytes view(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return Bytes{};
    if (!owner_) owner_ = std::make_shared<const Bytes>(payload_);
    return Bytes(owner_, data, size);
  }
  Bytes view(const flatbuffers::Vector<std::uint8_t>* v) {
    return v == nullptr ? Bytes{} : view(v->data(), v->size());
  }

 private:
  const Bytes& payload_;
  std::shared_ptr<const Bytes> owner_;
};

std::string get_string(const flatbuffers::String* s) {
  return s == nullptr ? std::string{} : std::string(s->string_view());
}

/// The flatbuffers Verifier checks the alignment of a vector's length but not of its
/// elements; a builder always aligns 8-byte elements, so a vector whose elements are not
/// is malformed (and reading them in place would be a misaligned load).
bool elements_aligned(const std::uint8_t* data) noexcept { return is_aligned(data); }

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

/// Appends the entries of `batch` (may be null) to `out`, payloads as views. Checks
/// kinds, that indexes are consecutive and non-zero, that config payloads decode and
/// that the payload lengths account for the blob exactly.
Status get_entries(const fb::EntryBatch* batch, Views& views, std::vector<Entry>& out,
                   std::string_view what) {
  if (batch == nullptr) return Status::ok();
  const auto* meta = batch->meta();
  const auto* blob = batch->payloads();
  const std::size_t count = meta == nullptr ? 0 : meta->size();
  const std::size_t blob_bytes = blob == nullptr ? 0 : blob->size();
  const std::uint8_t* blob_data = blob == nullptr ? nullptr : blob->data();
  if (meta != nullptr && !elements_aligned(meta->Data())) {
    return invalid(fmt::format("{}: misaligned entry vector", what));
  }
  out.reserve(out.size() + count);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const fb::EntryMeta* m = meta->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::uint64_t index = m->index();
    if (index == 0) return invalid(fmt::format("{}: entry {} has index 0", what, i));
    if (i > 0 && index != out.back().index.value() + 1) {
      return invalid(fmt::format("{}: entry index {} does not follow {}", what, index,
                                 out.back().index.value()));
    }
    const auto kind = static_cast<std::uint8_t>(m->kind());
    if (kind > static_cast<std::uint8_t>(kLastEntryKind)) {
      return invalid(fmt::format("{}: entry {} has unknown kind {}", what, index, kind));
    }
    const std::size_t size = m->payload_bytes();
    if (size > blob_bytes - offset) {
      return invalid(fmt::format("{}: entry {} payload of {} bytes overruns the batch", what,
                                 index, size));
    }
    const std::uint8_t* data = blob_data + offset;
    if (kind == static_cast<std::uint8_t>(EntryKind::Config)) {
      if (auto c = core::decode_configuration({data, size}); !c) {
        return invalid(fmt::format("{}: config entry {} does not decode: {}", what, index,
                                   c.status().message()));
      }
    }
    out.push_back(Entry{LogIndex{index}, Term{m->term()}, static_cast<EntryKind>(kind),
                        views.view(data, size)});
    offset += size;
  }
  if (offset != blob_bytes) {
    return invalid(fmt::format("{}: {} payload bytes belong to no entry", what,
                               blob_bytes - offset));
  }
  return Status::ok();
}

}  // namespace

// ---- header ---------------------------------------------------------------------------

std::uint64_t cluster_tag(std::string_view cluster_id) noexcept {
  // FNV-1a over the bytes, then a 64-bit finalizer so that similar ids differ in many
  // bits. Never 0: 0 means "no tag expected yet".
  std::uint64_t h = 0xCBF29CE484222325ULL;
  for (char c : cluster_id) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001B3ULL;
  }
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDULL;
  h ^= h >> 33;
  h *= 0xC4CEB9FE1A85EC53ULL;
  h ^= h >> 33;
  return h == 0 ? 1 : h;
}

Result<FrameHeader> decode_header(std::span<const std::uint8_t> header,
                                  std::uint64_t expected_tag, std::size_t max_frame_bytes) {
  if (header.size() < kHeaderBytes) {
    return invalid(fmt::format("frame header: {} bytes, need {}", header.size(), kHeaderBytes));
  }
  const std::uint8_t* p = header.data();
  const auto magic = static_cast<std::uint32_t>(get_be(p + kOffMagic, 4));
  if (magic != kMagic) {
    return Status{ErrorCode::Corruption,
                  fmt::format("frame header: bad magic {:#010x} (not an rlr stream)", magic)};
  }
  FrameHeader h;
  h.version = static_cast<std::uint16_t>(get_be(p + kOffVersion, 2));
  if (h.version != kProtocolVersion) {
    return invalid(fmt::format("frame header: protocol version {} (this build speaks {})",
                               h.version, kProtocolVersion));
  }
  const auto type = static_cast<std::uint16_t>(get_be(p + kOffType, 2));
  if (!known_frame_type(type)) return invalid(fmt::format("frame header: unknown type {}", type));
  h.type = static_cast<FrameType>(type);
  h.cluster_tag = get_be(p + kOffTag, 8);
  if (expected_tag != 0 && h.cluster_tag != expected_tag) {
    return Status{ErrorCode::WrongCluster,
                  fmt::format("frame header: cluster tag {:#018x}, expected {:#018x}",
                              h.cluster_tag, expected_tag)};
  }
  h.length = static_cast<std::uint32_t>(get_be(p + kOffLength, 4));
  if (h.length > max_frame_bytes) {
    return invalid(fmt::format("frame header: payload of {} bytes exceeds the limit of {}",
                               h.length, max_frame_bytes));
  }
  h.crc = static_cast<std::uint32_t>(get_be(p + kOffCrc, 4));
  return h;
}

Status check_payload(const FrameHeader& h, std::span<const std::uint8_t> payload) {
  if (payload.size() != h.length) {
    return {ErrorCode::Corruption, fmt::format("frame payload: {} bytes, header says {}",
                                               payload.size(), h.length)};
  }
  const std::uint32_t crc = util::crc32c(0, payload);
  if (crc != h.crc) {
    return {ErrorCode::Corruption,
            fmt::format("frame payload: crc32c {:#010x}, header says {:#010x}", crc, h.crc)};
  }
  return Status::ok();
}

// ---- handshake ------------------------------------------------------------------------

Frame encode_hello(const Hello& h) {
  auto& b = builders().acquire(128 + h.cluster_id.size() + h.token.size() + h.address.size());
  const auto cluster = put_string(b, h.cluster_id);
  const auto token = put_string(b, h.token);
  const auto address = put_string(b, h.address);
  fb::HelloBuilder hb(b);
  hb.add_address(address);
  hb.add_kind(static_cast<fb::PeerKind>(h.kind));
  hb.add_node_id(h.node_id.value());
  hb.add_cluster_id(cluster);
  hb.add_token(token);
  hb.add_protocol_version(h.protocol_version);
  hb.add_features(h.features);
  b.Finish(hb.Finish());
  return finish_frame(b, FrameType::Hello, cluster_tag(h.cluster_id));
}

Frame encode_hello_ack(const HelloAck& a, std::uint64_t tag) {
  auto& b = builders().acquire(128 + a.reason.size());
  const auto reason = put_string(b, a.reason);
  fb::HelloAckBuilder ab(b);
  ab.add_accepted(a.accepted);
  ab.add_reason(reason);
  ab.add_node_id(a.node_id.value());
  ab.add_features(a.features);
  b.Finish(ab.Finish());
  return finish_frame(b, FrameType::HelloAck, tag);
}

Frame encode_ping(std::uint64_t tag) {
  std::vector<std::uint8_t> v(kHeaderBytes);
  put_be(v.data() + kOffMagic, kMagic, 4);
  put_be(v.data() + kOffVersion, kProtocolVersion, 2);
  put_be(v.data() + kOffType, static_cast<std::uint16_t>(FrameType::Ping), 2);
  put_be(v.data() + kOffTag, tag, 8);
  put_be(v.data() + kOffLength, 0, 4);
  put_be(v.data() + kOffCrc, util::crc32c(0, v.data(), 0), 4);
  return Frame(std::move(v));
}

Result<Hello> decode_hello(std::span<const std::uint8_t> payload) {
  constexpr std::string_view kWhat = "hello";
  Bytes storage;
  const auto buf = aligned(payload, storage);
  auto root = verified_root<fb::Hello>(buf, kWhat);
  if (!root) return root.status();
  const fb::Hello& r = *root.value();
  const auto kind = static_cast<std::uint8_t>(r.kind());
  if (kind > static_cast<std::uint8_t>(PeerKind::Client)) {
    return invalid(fmt::format("hello: unknown peer kind {}", kind));
  }
  Hello h;
  h.kind = static_cast<PeerKind>(kind);
  h.node_id = NodeId{r.node_id()};
  h.cluster_id = get_string(r.cluster_id());
  h.token = get_string(r.token());
  h.protocol_version = r.protocol_version();
  h.address = get_string(r.address());
  h.features = r.features();
  if (h.address.size() > 1024) return invalid("hello: address too long");
  if (h.kind == PeerKind::Node && h.node_id == kNoNode) {
    return invalid("hello: a node must give its id");
  }
  if (h.kind == PeerKind::Client && h.node_id != kNoNode) {
    return invalid("hello: a client must not claim a node id");
  }
  if (h.cluster_id.empty()) return invalid("hello: empty cluster id");
  return h;
}

Result<HelloAck> decode_hello_ack(std::span<const std::uint8_t> payload) {
  constexpr std::string_view kWhat = "hello ack";
  Bytes storage;
  const auto buf = aligned(payload, storage);
  auto root = verified_root<fb::HelloAck>(buf, kWhat);
  if (!root) return root.status();
  const fb::HelloAck& r = *root.value();
  HelloAck a;
  a.accepted = r.accepted();
  a.reason = get_string(r.reason());
  a.node_id = NodeId{r.node_id()};
  a.features = r.features();
  if (a.accepted && a.node_id == kNoNode) return invalid("hello ack: accepted without a node id");
  return a;
}

// ---- peer messages --------------------------------------------------------------------

Frame encode_raft(const core::Message& m, std::uint64_t tag) {
  auto& b = builders().acquire(256 + batch_bytes_hint(m.entries));
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
  put_be(copy.data() + kOffCrc, util::crc32c(0, payload, n), 4);
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
  auto& b = builders().acquire(96 + r.digests.size() * sizeof(fb::DigestCheckpoint));
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
  auto& b = builders().acquire(256 + c.data.size());
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
  auto& b = builders().acquire(96);
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

// ---- client protocol ------------------------------------------------------------------

Frame encode_client_request(const ClientRequest& r, std::uint64_t tag) {
  const auto* propose = std::get_if<ProposeRequest>(&r.body);
  auto& b = builders().acquire(128 + (propose ? propose->command.size() : 0));
  fb::RequestBody type = fb::RequestBody::NONE;
  flatbuffers::Offset<void> body = 0;
  struct Put {
    flatbuffers::FlatBufferBuilder& b;
    fb::RequestBody& type;
    flatbuffers::Offset<void>& body;
    void operator()(const ProposeRequest& p) {
      const auto cmd = put_bytes(b, p.command);
      body = fb::CreateProposeReq(b, cmd, p.client_id, p.sequence).Union();
      type = fb::RequestBody::ProposeReq;
    }
    void operator()(const SubscribeRequest& s) {
      body = fb::CreateSubscribeReq(b, s.from.value()).Union();
      type = fb::RequestBody::SubscribeReq;
    }
    void operator()(const GetRoleRequest&) {
      body = fb::CreateGetRoleReq(b).Union();
      type = fb::RequestBody::GetRoleReq;
    }
    void operator()(const GetLeaderRequest&) {
      body = fb::CreateGetLeaderReq(b).Union();
      type = fb::RequestBody::GetLeaderReq;
    }
    void operator()(const GetClusterInfoRequest&) {
      body = fb::CreateGetClusterInfoReq(b).Union();
      type = fb::RequestBody::GetClusterInfoReq;
    }
    void operator()(const ReadIndexRequest&) {
      body = fb::CreateReadIndexReq(b).Union();
      type = fb::RequestBody::ReadIndexReq;
    }
    void operator()(const AddLearnerRequest& a) {
      const auto host = put_string(b, a.member.host);
      body = fb::CreateAddLearnerReq(b, a.member.id.value(), host, a.member.port).Union();
      type = fb::RequestBody::AddLearnerReq;
    }
    void operator()(const PromoteRequest& p) {
      body = fb::CreatePromoteReq(b, p.id.value()).Union();
      type = fb::RequestBody::PromoteReq;
    }
    void operator()(const RemoveRequest& p) {
      body = fb::CreateRemoveReq(b, p.id.value()).Union();
      type = fb::RequestBody::RemoveReq;
    }
    void operator()(const TransferLeaderRequest& p) {
      body = fb::CreateTransferLeaderReq(b, p.id.value()).Union();
      type = fb::RequestBody::TransferLeaderReq;
    }
  };
  std::visit(Put{b, type, body}, r.body);
  fb::ClientRequestBuilder rb(b);
  rb.add_request_id(r.request_id);
  rb.add_timeout_ms(r.timeout_ms);
  rb.add_body_type(type);
  rb.add_body(body);
  b.Finish(rb.Finish());
  return finish_frame(b, FrameType::ClientRequest, tag);
}

Result<ClientRequest> decode_client_request(const Bytes& payload_in) {
  constexpr std::string_view kWhat = "client request";
  const Bytes payload = aligned(payload_in);
  auto root = verified_root<fb::ClientRequest>(payload.span(), kWhat);
  if (!root) return root.status();
  const fb::ClientRequest& r = *root.value();
  ClientRequest req;
  req.request_id = r.request_id();
  req.timeout_ms = r.timeout_ms();
  // The verifier checked that the body matches body_type; a missing body or an unknown
  // union type leaves every body_as_*() null and is rejected below.
  auto need_id = [](std::uint64_t id, std::string_view call) -> Result<NodeId> {
    if (id == 0) return invalid(fmt::format("client request: {} of node 0", call));
    return NodeId{id};
  };
  switch (r.body_type()) {
    case fb::RequestBody::ProposeReq: {
      const fb::ProposeReq* p = r.body_as_ProposeReq();
      if (p == nullptr) break;
      if (p->client_id() == 0 && p->sequence() != 0) {
        return invalid("client request: propose with a sequence number but no client id");
      }
      Views views(payload);
      req.body = ProposeRequest{views.view(p->command()), p->client_id(), p->sequence()};
      return req;
    }
    case fb::RequestBody::SubscribeReq: {
      const fb::SubscribeReq* s = r.body_as_SubscribeReq();
      if (s == nullptr) break;
      if (s->from_index() == 0) return invalid("client request: subscribe from index 0");
      req.body = SubscribeRequest{LogIndex{s->from_index()}};
      return req;
    }
    case fb::RequestBody::GetRoleReq:
      if (r.body_as_GetRoleReq() == nullptr) break;
      req.body = GetRoleRequest{};
      return req;
    case fb::RequestBody::GetLeaderReq:
      if (r.body_as_GetLeaderReq() == nullptr) break;
      req.body = GetLeaderRequest{};
      return req;
    case fb::RequestBody::GetClusterInfoReq:
      if (r.body_as_GetClusterInfoReq() == nullptr) break;
      req.body = GetClusterInfoRequest{};
      return req;
    case fb::RequestBody::ReadIndexReq:
      if (r.body_as_ReadIndexReq() == nullptr) break;
      req.body = ReadIndexRequest{};
      return req;
    case fb::RequestBody::AddLearnerReq: {
      const fb::AddLearnerReq* a = r.body_as_AddLearnerReq();
      if (a == nullptr) break;
      auto id = need_id(a->id(), "add learner");
      if (!id) return id.status();
      std::string host = get_string(a->host());
      if (host.empty()) return invalid("client request: add learner without a host");
      req.body = AddLearnerRequest{MemberAddress{id.value(), std::move(host), a->port()}};
      return req;
    }
    case fb::RequestBody::PromoteReq: {
      const fb::PromoteReq* p = r.body_as_PromoteReq();
      if (p == nullptr) break;
      auto id = need_id(p->id(), "promote");
      if (!id) return id.status();
      req.body = PromoteRequest{id.value()};
      return req;
    }
    case fb::RequestBody::RemoveReq: {
      const fb::RemoveReq* p = r.body_as_RemoveReq();
      if (p == nullptr) break;
      auto id = need_id(p->id(), "remove");
      if (!id) return id.status();
      req.body = RemoveRequest{id.value()};
      return req;
    }
    case fb::RequestBody::TransferLeaderReq: {
      const fb::TransferLeaderReq* p = r.body_as_TransferLeaderReq();
      if (p == nullptr) break;
      auto id = need_id(p->id(), "transfer leadership");
      if (!id) return id.status();
      req.body = TransferLeaderRequest{id.value()};
      return req;
    }
    case fb::RequestBody::NONE:
      break;
  }
  return invalid(fmt::format("client request: missing or unknown body (type {})",
                             static_cast<unsigned>(r.body_type())));
}

Frame encode_client_reply(const ClientReply& r, std::uint64_t tag) {
  std::size_t hint = 256 + r.status.message().size() + r.leader_address.size() +
                     batch_bytes_hint(r.entries);
  if (r.cluster_info) {
    hint += 128 + r.cluster_info->cluster_id.size() + 96 * r.cluster_info->members.size();
  }
  auto& b = builders().acquire(hint);

  flatbuffers::Offset<fb::ReplyStatus> status = 0;
  if (!r.status.is_ok() || !r.status.message().empty() || !r.status.leader_hint().is_zero()) {
    const auto message = put_string(b, r.status.message());
    status = fb::CreateReplyStatus(b, static_cast<fb::ErrorCode>(r.status.code()), message,
                                   r.status.leader_hint().value());
  }
  const auto leader_address = put_string(b, r.leader_address);
  flatbuffers::Offset<fb::ProposeResult> propose = 0;
  if (r.propose) propose = fb::CreateProposeResult(b, r.propose->index.value(), r.propose->term.value());
  flatbuffers::Offset<fb::RoleResult> role = 0;
  if (r.role) role = fb::CreateRoleResult(b, static_cast<fb::Role>(*r.role));
  flatbuffers::Offset<fb::ReadIndexResult> read_index = 0;
  if (r.read_index) read_index = fb::CreateReadIndexResult(b, r.read_index->value());
  flatbuffers::Offset<fb::ClusterInfo> cluster_info = 0;
  if (r.cluster_info) {
    const ClusterInfo& ci = *r.cluster_info;
    const auto cluster_id = put_string(b, ci.cluster_id);
    std::vector<flatbuffers::Offset<fb::MemberInfo>> member_offsets;
    member_offsets.reserve(ci.members.size());
    for (const MemberInfo& mi : ci.members) {
      const auto address = put_string(b, mi.address);
      fb::MemberInfoBuilder mb(b);
      mb.add_id(mi.id.value());
      mb.add_address(address);
      mb.add_voter(mi.voter);
      mb.add_is_leader(mi.is_leader);
      mb.add_match(mi.match.value());
      mb.add_lag(mi.lag);
      mb.add_last_contact_ms(mi.last_contact_ms);
      mb.add_digest_index(mi.digest.index.value());
      mb.add_digest(mi.digest.digest);
      mb.add_diverged_at(mi.diverged_at.value());
      member_offsets.push_back(mb.Finish());
    }
    const auto members = member_offsets.empty() ? 0 : b.CreateVector(member_offsets);
    fb::ClusterInfoBuilder cb(b);
    cb.add_cluster_id(cluster_id);
    cb.add_id(ci.id.value());
    cb.add_term(ci.term.value());
    cb.add_role(static_cast<fb::Role>(ci.role));
    cb.add_leader(ci.leader.value());
    cb.add_commit(ci.commit.value());
    cb.add_applied(ci.applied.value());
    cb.add_first_index(ci.first_index.value());
    cb.add_last_index(ci.last_index.value());
    cb.add_members(members);
    cb.add_digest_index(ci.digest.index.value());
    cb.add_digest(ci.digest.digest);
    cb.add_diverged(ci.diverged);
    cluster_info = cb.Finish();
  }
  const auto entries = put_entries(b, r.entries);
  fb::ClientReplyBuilder rb(b);
  rb.add_request_id(r.request_id);
  rb.add_status(status);
  rb.add_leader(r.leader.value());
  rb.add_leader_address(leader_address);
  rb.add_propose(propose);
  rb.add_role(role);
  rb.add_cluster_info(cluster_info);
  rb.add_read_index(read_index);
  rb.add_entries(entries);
  b.Finish(rb.Finish());
  return finish_frame(b, FrameType::ClientReply, tag);
}

Result<ClientReply> decode_client_reply(const Bytes& payload_in) {
  constexpr std::string_view kWhat = "client reply";
  const Bytes payload = aligned(payload_in);
  auto root = verified_root<fb::ClientReply>(payload.span(), kWhat);
  if (!root) return root.status();
  const fb::ClientReply& r = *root.value();
  ClientReply reply;
  reply.request_id = r.request_id();
  if (const fb::ReplyStatus* st = r.status(); st != nullptr) {
    const auto code = static_cast<std::uint8_t>(st->code());
    if (code > static_cast<std::uint8_t>(ErrorCode::WrongCluster)) {
      return invalid(fmt::format("client reply: unknown error code {}", code));
    }
    reply.status = Status{static_cast<ErrorCode>(code), get_string(st->message()),
                          NodeId{st->leader_hint()}};
  }
  reply.leader = NodeId{r.leader()};
  reply.leader_address = get_string(r.leader_address());
  int results = 0;
  if (const fb::ProposeResult* p = r.propose(); p != nullptr) {
    reply.propose = ProposeResult{LogIndex{p->index()}, Term{p->term()}};
    ++results;
  }
  if (const fb::RoleResult* role = r.role(); role != nullptr) {
    const auto v = static_cast<std::uint8_t>(role->role());
    if (v > static_cast<std::uint8_t>(Role::Learner)) {
      return invalid(fmt::format("client reply: unknown role {}", v));
    }
    reply.role = static_cast<Role>(v);
    ++results;
  }
  if (const fb::ReadIndexResult* ri = r.read_index(); ri != nullptr) {
    reply.read_index = LogIndex{ri->index()};
    ++results;
  }
  if (const fb::ClusterInfo* ci = r.cluster_info(); ci != nullptr) {
    ClusterInfo info;
    info.cluster_id = get_string(ci->cluster_id());
    info.id = NodeId{ci->id()};
    info.term = Term{ci->term()};
    const auto role = static_cast<std::uint8_t>(ci->role());
    if (role > static_cast<std::uint8_t>(Role::Learner)) {
      return invalid(fmt::format("client reply: cluster info with unknown role {}", role));
    }
    info.role = static_cast<Role>(role);
    info.leader = NodeId{ci->leader()};
    info.commit = LogIndex{ci->commit()};
    info.applied = LogIndex{ci->applied()};
    info.first_index = LogIndex{ci->first_index()};
    info.last_index = LogIndex{ci->last_index()};
    if (const auto* members = ci->members(); members != nullptr) {
      if (members->size() > kClusterMembersMax) {
        return invalid(fmt::format("client reply: cluster info lists {} members (limit {})",
                                   members->size(), kClusterMembersMax));
      }
      info.members.reserve(members->size());
      for (const fb::MemberInfo* mi : *members) {
        if (mi == nullptr) return invalid("client reply: null member");
        if (mi->id() == 0) return invalid("client reply: member with node id 0");
        MemberInfo member;
        member.id = NodeId{mi->id()};
        member.address = get_string(mi->address());
        member.voter = mi->voter();
        member.is_leader = mi->is_leader();
        member.match = LogIndex{mi->match()};
        member.lag = mi->lag();
        member.last_contact_ms = mi->last_contact_ms();
        member.digest = DigestCheckpoint{LogIndex{mi->digest_index()}, mi->digest()};
        member.diverged_at = LogIndex{mi->diverged_at()};
        info.members.push_back(std::move(member));
      }
    }
    info.digest = DigestCheckpoint{LogIndex{ci->digest_index()}, ci->digest()};
    info.diverged = ci->diverged();
    reply.cluster_info = std::move(info);
    ++results;
  }
  Views views(payload);
  if (Status s = get_entries(r.entries(), views, reply.entries, kWhat); !s) return s;
  if (!reply.entries.empty()) ++results;
  if (results > 1) return invalid(fmt::format("client reply: {} results in one reply", results));
  if (results > 0 && !reply.status.is_ok()) {
    return invalid(fmt::format("client reply: a result with error status {}",
                               to_string(reply.status.code())));
  }
  return reply;
}

// ---- FrameReader ------------------------------------------------------------------------

void FrameReader::make_room(std::size_t more) {
  // Compaction: drop consumed bytes once they are at least half the buffer, so that each
  // byte is moved at most once more on average (amortized O(1) per byte).
  if (consumed_ == buf_.size()) {
    buf_.clear();
    consumed_ = 0;
  } else if (consumed_ > 0 && consumed_ >= buf_.size() - consumed_) {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(consumed_));
    consumed_ = 0;
  }
  // Growth: doubling, but never beyond the end of the frame being received, so that a
  // large frame ends up in a buffer of exactly its size (handed over without a copy by
  // next()). Memory follows the bytes actually received, never a claimed length.
  const std::size_t want = buf_.size() + more;
  if (want > buf_.capacity()) {
    std::size_t capacity = std::max(want, 2 * buf_.capacity());
    if (pending_) {
      const std::size_t frame_end = consumed_ + pending_->length;
      if (want <= frame_end) capacity = std::min(capacity, frame_end);
    }
    grow(capacity);
  }
}

void FrameReader::grow(std::size_t capacity) {
  // Not buf_.reserve(): with an allocator of its own, the vector moves the bytes one by
  // one through construct(); resize() of NoInit elements writes nothing, then one memcpy.
  Buffer bigger;
  bigger.reserve(capacity);
  append(bigger, buf_.data(), buf_.size());
  buf_.swap(bigger);
}

void FrameReader::append(Buffer& to, const std::uint8_t* data, std::size_t n) {
  if (n == 0) return;
  const std::size_t at = to.size();
  to.resize(at + n);
  std::memcpy(to.data() + at, data, n);
}

void FrameReader::feed(std::span<const std::uint8_t> data) {
  if (!failed_.is_ok() || data.empty()) return;
  make_room(data.size());
  append(buf_, data.data(), data.size());
}

std::span<std::uint8_t> FrameReader::prepare(std::size_t min_bytes) {
  min_bytes = std::max<std::size_t>(min_bytes, 1);
  if (!failed_.is_ok()) {
    // Reads still need somewhere to go until the owner sees the error from next().
    buf_.resize(min_bytes);
    prepared_at_ = 0;
    return {buf_.data(), min_bytes};
  }
  std::size_t more = min_bytes;
  std::size_t rest = 0;  // bytes the pending frame still lacks
  if (pending_) {
    // A header already checked against max_frame_bytes: room up to the frame's end, as
    // far as the buffer already holds or the length is believed at once.
    const std::size_t frame_end = consumed_ + pending_->length;
    if (frame_end > buf_.size()) {
      rest = frame_end - buf_.size();
      if (pending_->length <= kEagerReserveBytesMax || rest <= buf_.capacity() - buf_.size()) {
        more = std::max(more, rest);
      }
    }
  }
  make_room(more);
  // Use what the buffer has anyway (a read may bring more than one frame)...
  more = std::max(more, buf_.capacity() - buf_.size());
  // ...except for the rest of a large frame: it then ends the buffer, and next() can hand
  // the buffer over or, after a copy, start the next frame in a fresh one (an extra read
  // is far cheaper than copying a large frame).
  if (rest > 0 && rest < more && pending_->length >= kHandOverBytesMin) more = rest;
  prepared_at_ = buf_.size();
  buf_.resize(prepared_at_ + more);  // NoInit: no zeroing
  return {buf_.data() + prepared_at_, more};
}

void FrameReader::commit(std::size_t n) {
  if (!failed_.is_ok()) {
    buf_ = {};
    return;
  }
  assert(prepared_at_ + n <= buf_.size());
  buf_.resize(prepared_at_ + n);
}

Result<std::optional<FrameReader::Item>> FrameReader::next() {
  if (!failed_.is_ok()) return failed_;
  auto fail = [this](Status s) {
    failed_ = std::move(s);
    pending_.reset();
    buf_ = {};
    consumed_ = 0;
    return failed_;
  };
  if (!pending_) {
    if (buf_.size() - consumed_ < kHeaderBytes) return std::optional<Item>{};
    auto h = decode_header(std::span(buf_).subspan(consumed_, kHeaderBytes), expected_tag_,
                           max_frame_bytes_);
    if (!h) return fail(h.status());
    pending_ = h.value();
    consumed_ += kHeaderBytes;
    // A frame of moderate size gets its room now (its length is within the limit); a
    // larger claim is only believed as its bytes arrive (see feed()).
    const std::size_t frame_end = consumed_ + pending_->length;
    if (pending_->length <= kEagerReserveBytesMax && frame_end > buf_.capacity()) {
      if (consumed_ > kHeaderBytes && pending_->length >= kHandOverBytesMin) {
        // A large frame that starts inside the buffer, behind other frames: what has
        // arrived of it moves to a buffer of its own (header first, so the payload stays
        // aligned), where it can be handed over once complete instead of copied whole.
        const std::size_t start = consumed_ - kHeaderBytes;
        Buffer own;
        own.reserve(kHeaderBytes + pending_->length);
        append(own, buf_.data() + start, buf_.size() - start);
        buf_.swap(own);
        consumed_ = kHeaderBytes;
      } else {
        grow(consumed_ <= kHeaderBytes ? frame_end : std::max(frame_end, 2 * buf_.capacity()));
      }
    }
  }
  const std::size_t length = pending_->length;
  if (buf_.size() - consumed_ < length) return std::optional<Item>{};
  const auto bytes = std::span(buf_).subspan(consumed_, length);
  if (Status s = check_payload(*pending_, bytes); !s) return fail(std::move(s));

  Item item{*pending_, Bytes{}};
  // A large frame that is at least half of its buffer is handed over: the buffer becomes
  // the payload's owner (bytes after the frame, if any, move to a new buffer). The growth
  // policy makes a large frame's buffer exactly its size, and prepare() ends reads at its
  // end. Anything else is copied out, so that a small payload kept alive by the log
  // never pins a large receive buffer.
  const std::size_t end = consumed_ + length;
  const bool hand_over = length >= kHandOverBytesMin && consumed_ % kPayloadAlign == 0 &&
                         buf_.capacity() <= 2 * length;
  if (hand_over) {
    Buffer rest;
    if (end < buf_.size()) {
      rest.reserve(std::max(buf_.size() - end, kHeaderBytes));
      append(rest, buf_.data() + end, buf_.size() - end);
    }
    auto owner = std::make_shared<const Buffer>(std::move(buf_));
    item.payload = Bytes(owner, owner->data() + consumed_, length);
    buf_ = std::move(rest);
    consumed_ = 0;
  } else {
    item.payload = Bytes::copy_of(bytes);
    consumed_ = end;
    if (consumed_ == buf_.size()) {
      // An empty buffer grown for large frames is let go: the next large frame gets a
      // buffer of its own size, which can be handed over.
      if (buf_.capacity() > kKeepBufferBytes) {
        buf_ = {};
      } else {
        buf_.clear();
      }
      consumed_ = 0;
    }
  }
  pending_.reset();
  return std::optional<Item>{std::move(item)};
}

}  // namespace rlr::wire
