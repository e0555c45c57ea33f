// Framing: frame headers, the handshake codecs and the incremental reader (frame.h).
//
// Headers are parsed byte by byte; payloads go through the flatbuffers Verifier before
// any field is read (codec_support.h).
#include "wire/frame.h"

#include <cassert>
#include <cstring>
#include <utility>

#include <fmt/format.h>

#include "util/crc32c.h"
#include "wire/codec_support.h"

namespace rlr::wire {
using namespace detail;
namespace {

static_assert(static_cast<int>(fb::PeerKind::Node) == static_cast<int>(PeerKind::Node));
static_assert(static_cast<int>(fb::PeerKind::Client) == static_cast<int>(PeerKind::Client));
static_assert(static_cast<int>(fb::PeerKind::MAX) == static_cast<int>(PeerKind::Client));

/// FrameReader reserves room for a whole frame as soon as its header is read only up to
/// this size: a peer cannot make it hold more than this without sending the bytes.
constexpr std::size_t kEagerReserveBytesMax = 4U << 20;
/// FrameReader hands its buffer over (instead of copying) to payloads at least this big.
constexpr std::size_t kHandOverBytesMin = 64U << 10;
/// An emptied receive buffer larger than this is released rather than kept.
constexpr std::size_t kKeepBufferBytes = 2 * kHandOverBytesMin;

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

void encode_header(const FrameHeader& h, std::span<std::uint8_t, kHeaderBytes> out) noexcept {
  std::uint8_t* p = out.data();
  put_be(p + kOffMagic, kMagic, 4);
  put_be(p + kOffVersion, h.version, 2);
  put_be(p + kOffType, static_cast<std::uint16_t>(h.type), 2);
  put_be(p + kOffTag, h.cluster_tag, 8);
  put_be(p + kOffLength, h.length, 4);
  put_be(p + kOffCrc, h.crc, 4);
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
  auto& b = acquire_builder(128 + h.cluster_id.size() + h.token.size() + h.address.size());
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
  auto& b = acquire_builder(128 + a.reason.size());
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
  encode_header(FrameHeader{kProtocolVersion, FrameType::Ping, tag, 0, util::crc32c(0, v.data(), 0)},
                std::span<std::uint8_t, kHeaderBytes>(v.data(), kHeaderBytes));
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

