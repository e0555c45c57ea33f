// The wire protocol's framing (private): frame headers, encoded frames, the incremental
// reader of a byte stream, and the connection handshake. The codecs of what frames carry:
// wire/peer_codec.h (node to node) and wire/client_codec.h (client to node). Schema:
// src/wire/rlr.fbs, compiled by flatc at build time.
//
// Frame = 24-byte header + flatbuffers payload:
//   magic:u32 "RLR1" | version:u16 | type:u16 | cluster_tag:u64 | length:u32 | crc32c:u32
// all big-endian; `length` is the payload size and is checked against the limit before
// anything is allocated; `crc32c` covers the payload. The flatbuffers Verifier runs on
// every payload before any field is read. Nothing here trusts the peer: every decoder
// returns InvalidArgument/Corruption/WrongCluster on bad input and never aborts.
//
// A connection starts with Hello (node id or client, cluster id, token, version) and its
// HelloAck; the cluster tag in every later header must match.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <new>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <flatbuffers/detached_buffer.h>

#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::wire {

inline constexpr std::uint32_t kMagic = 0x524C5231;  // "RLR1"
inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr std::size_t kHeaderBytes = 24;

enum class FrameType : std::uint16_t {
  Hello = 1,
  HelloAck = 2,
  Raft = 3,           ///< a core::Message (snapshot data travels in SnapshotChunks) or a
                      ///< digest report: wire/peer_codec.h
  SnapshotChunk = 4,
  ClientRequest = 5,
  ClientReply = 6,
  SnapshotAck = 7,    ///< receiver -> sender flow control and resume point of a snapshot
  Ping = 8,           ///< "still here" (no payload): dialer -> acceptor on an idle peer
                      ///< link; client <-> node as a request and its echo (see
                      ///< kFeatureClientKeepalive)
};

struct FrameHeader {
  std::uint16_t version = kProtocolVersion;
  FrameType type = FrameType::Raft;
  std::uint64_t cluster_tag = 0;
  std::uint32_t length = 0;
  std::uint32_t crc = 0;
};

/// A stable 64-bit tag of a cluster id, carried by every frame.
[[nodiscard]] std::uint64_t cluster_tag(std::string_view cluster_id) noexcept;

/// Parses and checks a header: magic, version, type, cluster tag (skipped when
/// expected_tag is 0, as before the handshake), length <= max_frame_bytes.
[[nodiscard]] Result<FrameHeader> decode_header(std::span<const std::uint8_t> header,
                                                std::uint64_t expected_tag,
                                                std::size_t max_frame_bytes);
/// Checks the payload crc against the header.
[[nodiscard]] Status check_payload(const FrameHeader& h, std::span<const std::uint8_t> payload);
/// Writes `h` (and kMagic) into `out`: the inverse of decode_header.
void encode_header(const FrameHeader& h, std::span<std::uint8_t, kHeaderBytes> out) noexcept;

/// A complete frame (header + payload) ready to write, in one buffer of its own: a
/// large frame keeps the buffer it was encoded in (no copy), a small one a vector.
/// Copies are deep. Reads like a byte vector.
class Frame {
 public:
  Frame() = default;
  /// A frame of the given bytes (tests and tools build frames by hand).
  Frame(std::vector<std::uint8_t> bytes) : bytes_(std::move(bytes)) {}  // NOLINT: implicit on purpose
  explicit Frame(flatbuffers::DetachedBuffer built) : built_(std::move(built)) {}
  Frame(const Frame& o) : bytes_(o.begin(), o.end()) {}
  Frame& operator=(const Frame& o) {
    if (this != &o) *this = Frame(o);
    return *this;
  }
  Frame(Frame&&) noexcept = default;
  Frame& operator=(Frame&&) noexcept = default;
  ~Frame() = default;

  [[nodiscard]] std::uint8_t* data() { return base() + skip_; }
  [[nodiscard]] const std::uint8_t* data() const { return base() + skip_; }
  [[nodiscard]] std::size_t size() const {
    return (built_.data() != nullptr ? built_.size() : bytes_.size()) - skip_;
  }
  /// Same bytes.
  friend bool operator==(const Frame& a, const Frame& b) {
    return std::equal(a.begin(), a.end(), b.begin(), b.end());
  }
  /// Drops the first `n` bytes (those a partial write has sent). REQUIRES: n <= size().
  void drop_front(std::size_t n) { skip_ += n; }
  [[nodiscard]] bool empty() const { return size() == 0; }
  [[nodiscard]] std::uint8_t* begin() { return data(); }
  [[nodiscard]] std::uint8_t* end() { return data() + size(); }
  [[nodiscard]] const std::uint8_t* begin() const { return data(); }
  [[nodiscard]] const std::uint8_t* end() const { return data() + size(); }
  [[nodiscard]] std::uint8_t& operator[](std::size_t i) { return data()[i]; }
  [[nodiscard]] std::uint8_t operator[](std::size_t i) const { return data()[i]; }

 private:
  [[nodiscard]] std::uint8_t* base() { return built_.data() != nullptr ? built_.data() : bytes_.data(); }
  [[nodiscard]] const std::uint8_t* base() const {
    return built_.data() != nullptr ? built_.data() : bytes_.data();
  }
  std::vector<std::uint8_t> bytes_;
  flatbuffers::DetachedBuffer built_;
  std::size_t skip_ = 0;
};

// ---- handshake ----------------------------------------------------------------------
enum class PeerKind : std::uint8_t { Node = 0, Client = 1 };

/// Hello / HelloAck feature bits: what the sender of the handshake understands.
/// kFeatureKeepalive: Ping frames on a peer link; a dialer sends Pings only to an
/// acceptor whose HelloAck has the bit, and an acceptor expects them (and may close a
/// link that stays silent) only from a dialer whose Hello has it, so a node without the
/// feature keeps working with one that has it.
inline constexpr std::uint32_t kFeatureKeepalive = 1U << 0;
/// kFeatureClientKeepalive: Ping frames on a client connection. A client that has it in
/// its Hello may send a Ping (at most one per keepalive interval, and only when it heard
/// nothing for that long) to a node whose HelloAck has it; the node answers each with a
/// Ping, so a client that hears nothing (no reply, no Ping) for its silence bound knows
/// the node or the path went silent. A node never sends an unrequested Ping to a client,
/// and a client sends none to a node without the bit, so either side without the feature
/// keeps working with one that has it. (A bit of its own: a node that predates it sets
/// kFeatureKeepalive in every HelloAck and refuses a Ping from a client.)
inline constexpr std::uint32_t kFeatureClientKeepalive = 1U << 1;

struct Hello {
  PeerKind kind = PeerKind::Node;
  NodeId node_id;            ///< the sender's id (kNoNode for clients)
  std::string cluster_id;
  std::string token;
  std::uint16_t protocol_version = kProtocolVersion;
  std::string address;       ///< where a sending node listens ("host:port"), so a node
                             ///< that was just added can answer a leader it never met
  std::uint32_t features = 0;  ///< kFeature* bits
};

struct HelloAck {
  bool accepted = false;
  std::string reason;        ///< why the handshake was refused
  NodeId node_id;            ///< the acceptor's id
  std::uint32_t features = 0;  ///< kFeature* bits
};

[[nodiscard]] Frame encode_hello(const Hello& h);
[[nodiscard]] Frame encode_hello_ack(const HelloAck& a, std::uint64_t tag);
/// `payload` is the frame's payload (after the header).
[[nodiscard]] Result<Hello> decode_hello(std::span<const std::uint8_t> payload);
[[nodiscard]] Result<HelloAck> decode_hello_ack(std::span<const std::uint8_t> payload);
/// A Ping frame (header only, no payload).
[[nodiscard]] Frame encode_ping(std::uint64_t tag);

// ---- incremental decoding of a byte stream ---------------------------------------------
/// Splits a byte stream into frames. Feed it what the socket read; take complete
/// frames. A bad header makes it fail for good (the connection must be closed).
class FrameReader {
 public:
  FrameReader(std::uint64_t expected_tag, std::size_t max_frame_bytes)
      : expected_tag_(expected_tag), max_frame_bytes_(max_frame_bytes) {}
  /// Sets the tag expected from now on (after the handshake).
  void expect_tag(std::uint64_t tag) { expected_tag_ = tag; }
  /// Appends received bytes.
  void feed(std::span<const std::uint8_t> data);
  /// Room for the next socket read, at the end of the buffer, so received bytes land
  /// where frames are taken from (no copy through a separate read buffer): at least
  /// `min_bytes`, more when the frame being received has a believable length (up to its
  /// end, so one read can take all of it). While a large frame (64 KiB or more) is being
  /// received, no more than the bytes it still lacks, which may be fewer than
  /// `min_bytes`: its buffer then ends with it and next() can hand the buffer over as the
  /// frame's payload instead of copying it. Not zeroed. Follow with commit(n), n <= the size of the span, before any other call.
  [[nodiscard]] std::span<std::uint8_t> prepare(std::size_t min_bytes);
  /// Keeps the first `n` bytes written into the span prepare() returned.
  void commit(std::size_t n);
  struct Item {
    FrameHeader header;
    Bytes payload;  ///< owns its buffer; decoders may keep views into it
  };
  /// The next complete, crc-checked frame; nullopt when more bytes are needed; an
  /// error when the stream is malformed (then every later call returns that error).
  [[nodiscard]] Result<std::optional<Item>> next();

 private:
  std::uint64_t expected_tag_;
  std::size_t max_frame_bytes_;
  /// Leaves new elements uninitialised (prepare() hands out room the socket overwrites).
  template <class T>
  struct NoInit : std::allocator<T> {
    template <class U>
    struct rebind {
      using other = NoInit<U>;
    };
    NoInit() = default;
    template <class U>
    explicit NoInit(const NoInit<U>& /*other*/) noexcept {}
    template <class U>
    void construct(U* p) noexcept {
      ::new (static_cast<void*>(p)) U;
    }
    template <class U, class... Args>
    void construct(U* p, Args&&... args) {
      ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
    }
  };
  using Buffer = std::vector<std::uint8_t, NoInit<std::uint8_t>>;
  void make_room(std::size_t more);
  /// Moves buf_ into a buffer of `capacity` (> its size).
  void grow(std::size_t capacity);
  /// Appends `n` bytes at `data` to `to`.
  static void append(Buffer& to, const std::uint8_t* data, std::size_t n);
  Buffer buf_;
  std::size_t prepared_at_ = 0;  ///< buf_'s size before prepare() (while a read is pending)
  std::size_t consumed_ = 0;
  std::optional<FrameHeader> pending_;
  Status failed_;
};

}  // namespace rlr::wire
