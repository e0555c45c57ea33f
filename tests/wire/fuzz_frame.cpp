// libFuzzer target for the wire layer (built with clang++ -fsanitize=fuzzer,address,
// undefined by tests/wire/CMakeLists.txt when clang++ is available).
//
// Input layout: the first byte picks a mode.
//   even: the rest goes, as is, to every decoder and through a FrameReader (raw stream;
//         reaches the header checks and, with the right crc, the payload path).
//   odd:  the rest is a list of records [type:u8][length:u16 BE][payload]; each record
//         becomes a well-formed frame (correct length and crc), the frames are fed to a
//         FrameReader in pieces whose sizes come from the mode byte, and every frame is
//         decoded by the decoder its type names. This gets past the crc check, which
//         random inputs almost never do.
// Whatever decodes must re-encode to bytes that decode and re-encode identically (the
// encoding is a function of the value); a mismatch aborts.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <variant>
#include <vector>

#include "util/crc32c.h"
#include "wire/client_codec.h"
#include "wire/frame.h"
#include "wire/peer_codec.h"

namespace {

using namespace rlr;
using namespace rlr::wire;

constexpr std::size_t kMaxFrame = 1U << 20;
constexpr std::uint64_t kTag = 42;

void require(bool ok) {
  if (!ok) std::abort();
}

/// encode(decode(x)) is a fixed point of encode∘decode.
template <class Decode, class Encode>
void stable(const Frame& first, Decode decode, Encode encode) {
  const Bytes p = Bytes::copy_of(std::span(first).subspan(kHeaderBytes));
  auto again = decode(p);
  require(again.is_ok());
  require(encode(again.value()) == first);
}

void decode_as(FrameType type, const Bytes& payload) {
  switch (type) {
    case FrameType::Hello: {
      auto enc = [](const Hello& h) { return encode_hello(h); };
      auto dec = [](const Bytes& b) { return decode_hello(b.span()); };
      if (auto v = dec(payload)) stable(enc(v.value()), dec, enc);
      break;
    }
    case FrameType::HelloAck: {
      auto enc = [](const HelloAck& a) { return encode_hello_ack(a, kTag); };
      auto dec = [](const Bytes& b) { return decode_hello_ack(b.span()); };
      if (auto v = dec(payload)) stable(enc(v.value()), dec, enc);
      break;
    }
    case FrameType::Raft: {
      auto enc = [](const PeerMessage& p) {
        if (const auto* r = std::get_if<DigestReport>(&p)) return encode_digest_report(*r, kTag);
        return encode_raft(std::get<core::Message>(p), kTag);
      };
      if (auto v = decode_peer_message(payload)) stable(enc(v.value()), decode_peer_message, enc);
      (void)decode_raft(payload);
      break;
    }
    case FrameType::SnapshotChunk: {
      auto enc = [](const SnapshotChunk& c) { return encode_snapshot_chunk(c, kTag); };
      if (auto v = decode_snapshot_chunk(payload)) stable(enc(v.value()), decode_snapshot_chunk, enc);
      break;
    }
    case FrameType::SnapshotAck: {
      auto enc = [](const SnapshotAck& a) { return encode_snapshot_ack(a, kTag); };
      auto dec = [](const Bytes& b) { return decode_snapshot_ack(b.span()); };
      if (auto v = dec(payload)) stable(enc(v.value()), dec, enc);
      break;
    }
    case FrameType::Ping:
      break;  // no payload: the header is all there is
    case FrameType::ClientRequest: {
      auto enc = [](const ClientRequest& r) { return encode_client_request(r, kTag); };
      if (auto v = decode_client_request(payload)) stable(enc(v.value()), decode_client_request, enc);
      break;
    }
    case FrameType::ClientReply: {
      auto enc = [](const ClientReply& r) { return encode_client_reply(r, kTag); };
      if (auto v = decode_client_reply(payload)) stable(enc(v.value()), decode_client_reply, enc);
      break;
    }
  }
}

constexpr FrameType kTypes[] = {FrameType::Hello,         FrameType::HelloAck,
                                FrameType::Raft,          FrameType::SnapshotChunk,
                                FrameType::ClientRequest, FrameType::ClientReply,
                                FrameType::SnapshotAck};

/// Feeds `stream` in pieces of 1..(step) bytes and decodes whatever comes out.
void read_stream(const std::vector<std::uint8_t>& stream, std::size_t step, std::uint64_t tag) {
  FrameReader reader(tag, kMaxFrame);
  std::size_t at = 0;
  std::size_t piece = 1;
  while (at < stream.size()) {
    const std::size_t n = std::min(piece, stream.size() - at);
    reader.feed(std::span(stream).subspan(at, n));
    at += n;
    piece = piece % step + 1;
    for (;;) {
      auto next = reader.next();
      if (!next) {
        // Permanent: later calls report the same failure.
        require(!reader.next().is_ok());
        return;
      }
      if (!next.value()) break;
      const auto& item = *next.value();
      require(item.payload.size() == item.header.length);
      decode_as(item.header.type, item.payload);
    }
  }
}

void put_be(std::vector<std::uint8_t>& out, std::uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint8_t mode = data[0];
  const std::span<const std::uint8_t> rest(data + 1, size - 1);
  if (mode % 2 == 0) {
    const Bytes b = Bytes::copy_of(rest);
    for (FrameType t : kTypes) decode_as(t, b);
    (void)decode_header(rest, kTag, kMaxFrame);
    read_stream({rest.begin(), rest.end()}, 1 + mode / 2, 0);
    return 0;
  }
  // Records to well-formed frames.
  std::vector<std::uint8_t> stream;
  std::size_t at = 0;
  while (at + 3 <= rest.size()) {
    const FrameType type = kTypes[rest[at] % std::size(kTypes)];
    std::size_t n = (std::size_t{rest[at + 1]} << 8) | rest[at + 2];
    at += 3;
    n = std::min(n, rest.size() - at);
    const auto payload = rest.subspan(at, n);
    at += n;
    put_be(stream, kMagic, 4);
    put_be(stream, kProtocolVersion, 2);
    put_be(stream, static_cast<std::uint16_t>(type), 2);
    put_be(stream, kTag, 8);
    put_be(stream, n, 4);
    put_be(stream, rlr::util::crc32c(0, payload), 4);
    stream.insert(stream.end(), payload.begin(), payload.end());
  }
  read_stream(stream, 1 + mode / 2, kTag);
  return 0;
}
