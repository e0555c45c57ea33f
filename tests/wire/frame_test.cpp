// Framing: header checks (magic, version, type, cluster tag, length limit, crc) and the
// incremental FrameReader (arbitrary splits, many frames per read, truncation, limits
// enforced before allocation, permanent failure).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <new>
#include <vector>

#include <cstring>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "util/crc32c.h"
#include "wire_test_support.h"

// ---- allocation probe -----------------------------------------------------------------
// Replaces global operator new to remember the largest single request while armed, so a
// test can prove that a claimed frame length never turns into an allocation.
namespace {
std::atomic<bool> g_probe_armed{false};
std::atomic<std::size_t> g_probe_largest{0};
std::atomic<std::size_t> g_probe_big{0};  // allocations of 512 KiB or more

void* probe_alloc(std::size_t n) {
  if (g_probe_armed.load(std::memory_order_relaxed)) {
    if (n >= (512U << 10)) g_probe_big.fetch_add(1);
    std::size_t seen = g_probe_largest.load(std::memory_order_relaxed);
    while (n > seen && !g_probe_largest.compare_exchange_weak(seen, n)) {
    }
  }
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
}  // namespace

void* operator new(std::size_t n) { return probe_alloc(n); }
void* operator new[](std::size_t n) { return probe_alloc(n); }
void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  try {
    return probe_alloc(n);
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t n, const std::nothrow_t& t) noexcept { return operator new(n, t); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }

namespace rlr::wire::test {
namespace {

constexpr std::uint64_t kTag = 0xC0FFEEULL;

struct AllocationProbe {
  AllocationProbe() {
    g_probe_largest = 0;
    g_probe_big = 0;
    g_probe_armed = true;
  }
  ~AllocationProbe() { g_probe_armed = false; }
  [[nodiscard]] std::size_t largest() const { return g_probe_largest.load(); }
  [[nodiscard]] std::size_t big_allocations() const { return g_probe_big.load(); }
};

/// A well-formed 24-byte header, fields written big-endian.
std::vector<std::uint8_t> header(std::uint32_t magic, std::uint16_t version, std::uint16_t type,
                                 std::uint64_t tag, std::uint32_t length, std::uint32_t crc) {
  std::vector<std::uint8_t> h;
  auto put = [&h](std::uint64_t v, int bytes) {
    for (int i = bytes - 1; i >= 0; --i) h.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  };
  put(magic, 4);
  put(version, 2);
  put(type, 2);
  put(tag, 8);
  put(length, 4);
  put(crc, 4);
  return h;
}

core::Message heartbeat(std::uint64_t context) {
  core::Message m;
  m.type = core::MessageType::Heartbeat;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{4};
  m.context = context;
  return m;
}

TEST_CASE("the header is big-endian with the documented layout", "[wire][header]") {
  const Frame f = encode_raft(heartbeat(7), 0x0102030405060708ULL);
  REQUIRE(f.size() > kHeaderBytes);
  CHECK(std::vector<std::uint8_t>(f.begin(), f.begin() + 4) ==
        std::vector<std::uint8_t>{'R', 'L', 'R', '1'});
  CHECK(f[4] == 0);
  CHECK(f[5] == kProtocolVersion);
  CHECK(f[6] == 0);
  CHECK(f[7] == static_cast<std::uint8_t>(FrameType::Raft));
  CHECK(std::vector<std::uint8_t>(f.begin() + 8, f.begin() + 16) ==
        std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
  const std::size_t n = f.size() - kHeaderBytes;
  CHECK(f[16] == ((n >> 24) & 0xFF));
  CHECK(f[19] == (n & 0xFF));
  const std::uint32_t crc = util::crc32c(0, f.data() + kHeaderBytes, n);
  CHECK(f[20] == (crc >> 24));
  CHECK(f[23] == (crc & 0xFF));
}

TEST_CASE("decode_header rejects what it must", "[wire][header]") {
  const auto ok = header(kMagic, kProtocolVersion, 3, kTag, 10, 0);
  REQUIRE(decode_header(ok, kTag, 100).is_ok());
  REQUIRE(decode_header(ok, 0, 100).is_ok());  // before the handshake: any tag

  SECTION("short header") {
    CHECK(decode_header(std::span(ok).first(23), kTag, 100).status().code() ==
          ErrorCode::InvalidArgument);
  }
  SECTION("wrong magic") {
    CHECK(decode_header(header(0x48545450, kProtocolVersion, 3, kTag, 10, 0), kTag, 100)
              .status()
              .code() == ErrorCode::Corruption);
  }
  SECTION("wrong version") {
    auto r = decode_header(header(kMagic, 2, 3, kTag, 10, 0), kTag, 100);
    CHECK(r.status().code() == ErrorCode::InvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("version"));
  }
  SECTION("unknown frame types") {
    for (std::uint16_t t : {0, 9, 0xFFFF}) {
      CHECK(decode_header(header(kMagic, kProtocolVersion, t, kTag, 10, 0), kTag, 100)
                .status()
                .code() == ErrorCode::InvalidArgument);
    }
  }
  SECTION("wrong cluster tag") {
    CHECK(decode_header(ok, kTag + 1, 100).status().code() == ErrorCode::WrongCluster);
  }
  SECTION("length over the limit") {
    CHECK(decode_header(ok, kTag, 9).status().code() == ErrorCode::InvalidArgument);
    CHECK(decode_header(ok, kTag, 10).is_ok());
  }
}

TEST_CASE("check_payload catches a flipped bit and a wrong length", "[wire][header]") {
  Frame f = encode_raft(heartbeat(1), kTag);
  auto h = decode_header(f, kTag, kMaxFrame);
  REQUIRE(h.is_ok());
  std::vector<std::uint8_t> payload(f.begin() + kHeaderBytes, f.end());
  REQUIRE(check_payload(h.value(), payload).is_ok());
  payload[payload.size() / 2] ^= 0x10;
  CHECK(check_payload(h.value(), payload).code() == ErrorCode::Corruption);
  payload.pop_back();
  CHECK(check_payload(h.value(), payload).code() == ErrorCode::Corruption);
}

/// Every item the reader yields now.
std::vector<FrameReader::Item> drain(FrameReader& r) {
  std::vector<FrameReader::Item> out;
  for (;;) {
    auto next = r.next();
    REQUIRE(next.is_ok());
    if (!next.value()) return out;
    out.push_back(std::move(*next.value()));
  }
}

TEST_CASE("a Ping is a bare header the reader yields with an empty payload", "[wire][reader]") {
  std::vector<std::uint8_t> stream;
  for (int i = 0; i < 3; ++i) {
    const Frame f = encode_ping(kTag);
    CHECK(f.size() == kHeaderBytes);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  const Frame hb = encode_raft(heartbeat(7), kTag);
  stream.insert(stream.end(), hb.begin(), hb.end());
  FrameReader r(kTag, kMaxFrame);
  r.feed(stream);
  auto items = drain(r);
  REQUIRE(items.size() == 4);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(items[i].header.type == FrameType::Ping);
    CHECK(items[i].payload.size() == 0);
  }
  REQUIRE(items[3].header.type == FrameType::Raft);
  CHECK(decode_raft(items[3].payload).value().context == 7);
  // Another cluster's Ping is refused like any other frame of it.
  FrameReader other(cluster_tag("another"), kMaxFrame);
  other.feed(encode_ping(kTag));
  CHECK(!other.next().is_ok());
}

TEST_CASE("FrameReader: many frames in one read, then one byte at a time", "[wire][reader]") {
  std::vector<std::uint8_t> stream;
  for (std::uint64_t i = 0; i < 50; ++i) {
    const Frame f = encode_raft(heartbeat(i), kTag);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  SECTION("all at once") {
    FrameReader r(kTag, kMaxFrame);
    r.feed(stream);
    auto items = drain(r);
    REQUIRE(items.size() == 50);
    for (std::uint64_t i = 0; i < 50; ++i) {
      auto m = decode_raft(items[i].payload);
      REQUIRE(m.is_ok());
      CHECK(m.value().context == i);
    }
  }
  SECTION("byte by byte") {
    FrameReader r(kTag, kMaxFrame);
    std::vector<FrameReader::Item> items;
    for (std::uint8_t b : stream) {
      r.feed(std::span(&b, 1));
      for (auto& it : drain(r)) items.push_back(std::move(it));
    }
    REQUIRE(items.size() == 50);
    CHECK(decode_raft(items.back().payload).value().context == 49);
  }
}

TEST_CASE("FrameReader reassembles any split of a stream of frames", "[wire][reader]") {
  // Bytes arrive through feed() or straight into the room prepare() offers (as the
  // transport's reads do), in any mix; large frames take the hand-over path.
  REQUIRE(rc::check("random splits", [] {
    std::vector<Frame> frames;
    const int n = *rc::gen::inRange(0, 12);
    for (int i = 0; i < n; ++i) {
      switch (*rc::gen::inRange(0, 5)) {
        case 4: {
          core::Message big = valid_message(core::MessageType::Append);
          const std::size_t size = *rc::gen::inRange<std::size_t>(60000, 300000);
          std::vector<std::uint8_t> payload(size, static_cast<std::uint8_t>(size));
          big.log_index = LogIndex{1000};
          big.entries = {Entry{LogIndex{1001}, big.term, EntryKind::Normal, Bytes(std::move(payload))}};
          RC_ASSERT(decode_raft(payload_of(encode_raft(big, kTag))).is_ok());
          frames.push_back(encode_raft(big, kTag));
          break;
        }
        case 0: frames.push_back(encode_raft(valid_message(core::MessageType::Append), kTag)); break;
        case 1: frames.push_back(encode_snapshot_chunk(valid_chunk(), kTag)); break;
        case 2: frames.push_back(encode_client_request(valid_request(*rc::gen::inRange(0, kRequestKinds)), kTag)); break;
        default: frames.push_back(encode_client_reply(valid_reply(*rc::gen::inRange(0, kReplyShapes)), kTag)); break;
      }
    }
    std::vector<std::uint8_t> stream;
    for (const Frame& f : frames) stream.insert(stream.end(), f.begin(), f.end());

    FrameReader r(kTag, kMaxFrame);
    std::vector<FrameReader::Item> items;
    std::size_t at = 0;
    while (at < stream.size()) {
      const std::size_t chunk = *rc::gen::weightedOneOf<std::size_t>(
          {{3, rc::gen::inRange<std::size_t>(1, 40)}, {1, rc::gen::inRange<std::size_t>(1, 4000)}});
      const std::size_t k = std::min(chunk, stream.size() - at);
      if (*rc::gen::arbitrary<bool>()) {
        const std::span<std::uint8_t> room = r.prepare(*rc::gen::inRange<std::size_t>(1, 70000));
        RC_ASSERT(!room.empty());
        const std::size_t m = std::min(room.size(), stream.size() - at);
        // A socket read fills any prefix of the room, here up to `chunk` or all of it.
        const std::size_t got = *rc::gen::arbitrary<bool>() ? m : std::min(m, k);
        std::copy_n(stream.begin() + static_cast<std::ptrdiff_t>(at), got, room.begin());
        r.commit(got);
        at += got;
      } else {
        r.feed(std::span(stream).subspan(at, k));
        at += k;
      }
      for (;;) {
        auto next = r.next();
        RC_ASSERT(next.is_ok());
        if (!next.value()) break;
        items.push_back(std::move(*next.value()));
      }
    }
    RC_ASSERT(items.size() == frames.size());
    for (std::size_t i = 0; i < frames.size(); ++i) {
      const FrameHeader want = header_of(frames[i]);
      RC_ASSERT(items[i].header.type == want.type);
      RC_ASSERT(items[i].header.cluster_tag == kTag);
      RC_ASSERT(items[i].payload == payload_of(frames[i]));
      bool decoded = false;
      switch (want.type) {
        case FrameType::Raft: decoded = decode_raft(items[i].payload).is_ok(); break;
        case FrameType::SnapshotChunk: decoded = decode_snapshot_chunk(items[i].payload).is_ok(); break;
        case FrameType::ClientRequest: decoded = decode_client_request(items[i].payload).is_ok(); break;
        case FrameType::ClientReply: decoded = decode_client_reply(items[i].payload).is_ok(); break;
        default: break;
      }
      RC_ASSERT(decoded);
    }
    auto tail = r.next();
    RC_ASSERT(tail.is_ok());
    RC_ASSERT(!tail.value().has_value());
  }));
}

TEST_CASE("FrameReader waits on a truncated frame", "[wire][reader]") {
  const Frame f = encode_raft(heartbeat(3), kTag);
  FrameReader r(kTag, kMaxFrame);
  r.feed(std::span(f).first(kHeaderBytes - 1));
  CHECK(drain(r).empty());
  r.feed(std::span(f).subspan(kHeaderBytes - 1, f.size() - kHeaderBytes));  // all but 1
  CHECK(drain(r).empty());
  r.feed(std::span(f).last(1));
  CHECK(drain(r).size() == 1);
}

TEST_CASE("a giant length prefix is refused before anything is allocated", "[wire][reader]") {
  SECTION("over the limit: refused at the header") {
    const auto h = header(kMagic, kProtocolVersion, 3, kTag, 0xFFFFFFFF, 0);
    FrameReader r(kTag, 64U << 20);
    AllocationProbe probe;
    r.feed(h);
    auto next = r.next();
    REQUIRE(!next.is_ok());
    CHECK(next.status().code() == ErrorCode::InvalidArgument);
    CHECK_THAT(next.status().message(), Catch::Contains("4294967295"));
    CHECK(probe.largest() < 4096);
  }
  SECTION("under a huge limit: memory follows the bytes received, not the claim") {
    FrameReader r(kTag, std::numeric_limits<std::size_t>::max());
    AllocationProbe probe;
    r.feed(header(kMagic, kProtocolVersion, 3, kTag, 0xFFFFFFFF, 0));
    CHECK(drain(r).empty());
    const std::vector<std::uint8_t> some(10000, 0);
    r.feed(some);
    CHECK(drain(r).empty());
    CHECK(probe.largest() < 64 * 1024);
  }
}

TEST_CASE("FrameReader fails for good on a bad header or a bad crc", "[wire][reader]") {
  const Frame good = encode_raft(heartbeat(1), kTag);
  Frame bad = good;
  ErrorCode want = ErrorCode::Ok;
  std::uint64_t expect = kTag;
  SECTION("wrong magic") {
    bad[0] = 'X';
    want = ErrorCode::Corruption;
  }
  SECTION("wrong version") {
    bad[5] = 9;
    want = ErrorCode::InvalidArgument;
  }
  SECTION("wrong cluster tag") {
    expect = kTag + 1;
    want = ErrorCode::WrongCluster;
  }
  SECTION("bad crc") {
    bad[bad.size() - 1] ^= 1;
    want = ErrorCode::Corruption;
  }
  FrameReader r(expect, kMaxFrame);
  r.feed(bad);
  auto first = r.next();
  REQUIRE(!first.is_ok());
  CHECK(first.status().code() == want);
  // The stream is unusable from here on, whatever arrives.
  r.expect_tag(kTag);
  r.feed(good);
  auto again = r.next();
  REQUIRE(!again.is_ok());
  CHECK(again.status().code() == want);
}

TEST_CASE("FrameReader checks the tag set after the handshake", "[wire][reader]") {
  Hello hello;
  hello.node_id = NodeId{4};
  hello.cluster_id = "venue-a";
  const Frame h = encode_hello(hello);
  const Frame other = encode_raft(heartbeat(1), cluster_tag("venue-b"));
  FrameReader r(0, kMaxFrame);
  r.feed(h);
  auto items = drain(r);
  REQUIRE(items.size() == 1);
  CHECK(items[0].header.type == FrameType::Hello);
  auto decoded = decode_hello(items[0].payload.span());
  REQUIRE(decoded.is_ok());
  r.expect_tag(cluster_tag(decoded.value().cluster_id));
  r.feed(other);
  auto next = r.next();
  REQUIRE(!next.is_ok());
  CHECK(next.status().code() == ErrorCode::WrongCluster);
}

TEST_CASE("FrameReader streams a long run of small reads in linear time", "[wire][reader]") {
  // 20000 frames fed 7 bytes at a time; quadratic buffer handling would take minutes.
  std::vector<std::uint8_t> stream;
  for (std::uint64_t i = 0; i < 20000; ++i) {
    const Frame f = encode_raft(heartbeat(i), kTag);
    stream.insert(stream.end(), f.begin(), f.end());
  }
  FrameReader r(kTag, kMaxFrame);
  std::size_t count = 0;
  for (std::size_t at = 0; at < stream.size(); at += 7) {
    r.feed(std::span(stream).subspan(at, std::min<std::size_t>(7, stream.size() - at)));
    count += drain(r).size();
  }
  CHECK(count == 20000);
}

TEST_CASE("a large frame is encoded in place: one buffer, header in front, no copy",
          "[wire][encode]") {
  // The leader encodes an Append per follower on its raft thread; copying each built
  // payload into a frame buffer was a quarter of that thread's CPU under load.
  core::Message m = heartbeat(0);
  m.type = core::MessageType::Append;
  for (std::uint64_t i = 1; i <= 8; ++i) {
    m.entries.push_back(Entry{LogIndex{i}, Term{1}, EntryKind::Normal,
                              Bytes(std::vector<std::uint8_t>(128U << 10, static_cast<std::uint8_t>(i)))});
  }
  Frame f;
  {
    AllocationProbe probe;
    f = encode_raft(m, kTag);
    CHECK(probe.big_allocations() == 1);
    CHECK(probe.largest() < f.size() + 4096);
  }
  auto h = decode_header(f, kTag, kMaxFrame);
  REQUIRE(h.is_ok());
  REQUIRE(f.size() == kHeaderBytes + h.value().length);
  const Bytes payload = Bytes::copy_of(std::span<const std::uint8_t>(f.data() + kHeaderBytes, h.value().length));
  REQUIRE(check_payload(h.value(), payload.span()).is_ok());
  auto got = decode_raft(payload);
  REQUIRE(got.is_ok());
  CHECK(got.value().entries == m.entries);
  // A copy is deep, and a partly sent frame drops its front.
  Frame copy = f;
  copy[kHeaderBytes] ^= 1;
  CHECK(!(copy == f));
  copy[kHeaderBytes] ^= 1;
  CHECK(copy == f);
  copy.drop_front(kHeaderBytes);
  CHECK(copy.size() == f.size() - kHeaderBytes);
  CHECK(std::equal(copy.begin(), copy.end(), f.begin() + kHeaderBytes));
}

TEST_CASE("a large frame arriving in pieces is handed over without a copy", "[wire][reader]") {
  core::Message m = heartbeat(0);
  m.type = core::MessageType::Append;
  m.entries.push_back(Entry{LogIndex{1}, Term{1}, EntryKind::Normal,
                            Bytes(std::vector<std::uint8_t>(1U << 20, 0x5A))});
  const Frame f = encode_raft(m, kTag);
  FrameReader r(kTag, kMaxFrame);
  AllocationProbe probe;
  std::vector<FrameReader::Item> items;
  for (std::size_t at = 0; at < f.size(); at += 65536) {
    r.feed(std::span(f).subspan(at, std::min<std::size_t>(65536, f.size() - at)));
    for (auto& it : drain(r)) items.push_back(std::move(it));
  }
  REQUIRE(items.size() == 1);
  // The receive buffer grows to exactly the frame and becomes the payload's owner: one
  // large allocation, no copy.
  CHECK(probe.largest() <= f.size());
  CHECK(probe.big_allocations() == 1);
  auto got = decode_raft(items[0].payload);
  REQUIRE(got.is_ok());
  CHECK(got.value().entries.at(0).payload.size() == (1U << 20));
}

TEST_CASE("large frames back to back through prepare/commit are each handed over",
          "[wire][reader]") {
  // A follower catching up receives one large Append after another: a socket read with
  // room to spare would take the next frame's first bytes along, and the frame could not
  // become its buffer's payload. prepare() stops the read at the frame's end instead.
  core::Message m = heartbeat(0);
  m.type = core::MessageType::Append;
  m.entries.push_back(Entry{LogIndex{1}, Term{1}, EntryKind::Normal,
                            Bytes(std::vector<std::uint8_t>(600000, 0x5A))});
  const Frame big = encode_raft(m, kTag);
  const Frame small = encode_raft(heartbeat(7), kTag);
  // With a small frame first, the first large frame starts inside a buffer: what has
  // arrived of it moves to a buffer of its own, and it is handed over too.
  const bool small_first = GENERATE(false, true);
  INFO("a small frame first: " << small_first);
  std::vector<std::uint8_t> stream;
  if (small_first) stream.insert(stream.end(), small.begin(), small.end());
  for (int i = 0; i < 3; ++i) stream.insert(stream.end(), big.begin(), big.end());
  stream.insert(stream.end(), small.begin(), small.end());

  FrameReader r(kTag, kMaxFrame);
  AllocationProbe probe;
  std::vector<FrameReader::Item> items;
  std::size_t at = 0;
  while (at < stream.size()) {
    // The socket has everything queued: each read fills all the room it is given.
    const std::span<std::uint8_t> room = r.prepare(65536);
    const std::size_t n = std::min(room.size(), stream.size() - at);
    std::memcpy(room.data(), stream.data() + at, n);
    r.commit(n);
    at += n;
    for (auto& it : drain(r)) items.push_back(std::move(it));
  }
  REQUIRE(items.size() == (small_first ? 5U : 4U));
  // One buffer per large frame, handed over: no copy.
  CHECK(probe.big_allocations() == 3U);
  CHECK(probe.largest() <= big.size());
  const std::size_t first_big = small_first ? 1 : 0;
  for (std::size_t i = first_big; i < first_big + 3; ++i) {
    auto got = decode_raft(items[i].payload);
    REQUIRE(got.is_ok());
    CHECK(got.value().entries.at(0).payload == m.entries[0].payload);
  }
  auto last = decode_raft(items.back().payload);
  REQUIRE(last.is_ok());
  CHECK(last.value().type == core::MessageType::Heartbeat);
}

}  // namespace
}  // namespace rlr::wire::test
