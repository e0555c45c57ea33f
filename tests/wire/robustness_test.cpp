// Hostile input: decoders survive arbitrary and mutated bytes, the flatbuffers verifier
// rejects offsets outside the buffer, and every semantic check answers InvalidArgument
// with a message naming the problem.
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "rlr_generated.h"
#include "wire_test_support.h"

namespace rlr::wire::test {
namespace {

constexpr std::uint64_t kTag = 77;

/// Runs every decoder on `bytes`; each must return (ok or an error), never crash. A
/// value that decodes must re-encode to a payload that decodes to the same value.
void decode_everything(const std::vector<std::uint8_t>& bytes) {
  const Bytes b = Bytes::copy_of(bytes);
  (void)decode_header(bytes, 0, kMaxFrame);
  (void)decode_header(bytes, kTag, 16);
  if (auto h = decode_hello(b.span())) {
    auto again = decode_hello(payload_of(encode_hello(h.value())).span());
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(h.value(), again.value()).empty());
  }
  if (auto a = decode_hello_ack(b.span())) {
    auto again = decode_hello_ack(payload_of(encode_hello_ack(a.value(), kTag)).span());
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(a.value(), again.value()).empty());
  }
  if (auto m = decode_raft(b)) {
    auto again = decode_raft(payload_of(encode_raft(m.value(), kTag)));
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(m.value(), again.value()).empty());
  }
  if (auto p = decode_peer_message(b)) {
    const Frame f = std::visit(
        [](const auto& v) {
          if constexpr (std::is_same_v<std::decay_t<decltype(v)>, DigestReport>) {
            return encode_digest_report(v, kTag);
          } else {
            return encode_raft(v, kTag);
          }
        },
        p.value());
    auto again = decode_peer_message(payload_of(f));
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(p.value(), again.value()).empty());
  }
  if (auto c = decode_snapshot_chunk(b)) {
    auto again = decode_snapshot_chunk(payload_of(encode_snapshot_chunk(c.value(), kTag)));
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(c.value(), again.value()).empty());
  }
  if (auto r = decode_client_request(b)) {
    auto again = decode_client_request(payload_of(encode_client_request(r.value(), kTag)));
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(r.value(), again.value()).empty());
  }
  if (auto r = decode_client_reply(b)) {
    auto again = decode_client_reply(payload_of(encode_client_reply(r.value(), kTag)));
    RC_ASSERT(again.is_ok());
    RC_ASSERT(diff(r.value(), again.value()).empty());
  }
  FrameReader reader(0, kMaxFrame);
  reader.feed(bytes);
  for (int i = 0; i < 4; ++i) {
    auto next = reader.next();
    if (!next || !next.value()) break;
  }
}

/// A valid payload of a random kind.
std::vector<std::uint8_t> valid_payload() {
  Frame f;
  switch (*rc::gen::inRange(0, 7)) {
    case 0: f = encode_raft(valid_message(static_cast<core::MessageType>(*rc::gen::inRange(0, kMessageTypes))), kTag); break;
    case 6: f = encode_digest_report(valid_digest_report(), kTag); break;
    case 1: f = encode_snapshot_chunk(valid_chunk(), kTag); break;
    case 2: f = encode_client_request(valid_request(*rc::gen::inRange(0, kRequestKinds)), kTag); break;
    case 3: f = encode_client_reply(valid_reply(*rc::gen::inRange(0, kReplyShapes)), kTag); break;
    case 4: f = encode_hello(valid_hello()); break;
    default: f = encode_hello_ack(valid_hello_ack(), kTag); break;
  }
  return {f.begin() + kHeaderBytes, f.end()};
}

TEST_CASE("decoders survive arbitrary bytes", "[wire][robust]") {
  REQUIRE(rc::check("random bytes", [](const std::vector<std::uint8_t>& bytes) {
    decode_everything(bytes);
  }));
}

TEST_CASE("decoders survive mutated valid payloads", "[wire][robust]") {
  REQUIRE(rc::check("mutations", [] {
    std::vector<std::uint8_t> p = valid_payload();
    const int edits = *rc::gen::inRange(1, 6);
    for (int i = 0; i < edits && !p.empty(); ++i) {
      const auto at = *rc::gen::inRange<std::size_t>(0, p.size());
      switch (*rc::gen::inRange(0, 4)) {
        case 0: p[at] = *rc::gen::arbitrary<std::uint8_t>(); break;
        case 1: p[at] ^= static_cast<std::uint8_t>(1U << *rc::gen::inRange(0, 8)); break;
        case 2: p.resize(at); break;  // truncation
        default: p[at] = *rc::gen::element<std::uint8_t>(0x00, 0x7F, 0x80, 0xFF); break;
      }
    }
    decode_everything(p);
  }));
}

TEST_CASE("truncated payloads are rejected", "[wire][robust]") {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.entries.push_back(Entry{LogIndex{1}, Term{1}, EntryKind::Normal, Bytes::copy_of("abcdefgh")});
  const Frame f = encode_raft(m, kTag);
  const std::vector<std::uint8_t> payload(f.begin() + kHeaderBytes, f.end());
  for (std::size_t n = 0; n < payload.size(); ++n) {
    CAPTURE(n);
    auto got = decode_raft(Bytes::copy_of(std::span(payload).first(n)));
    CHECK(!got.is_ok());
  }
}

/// The position of `needle` in `hay` (it must be there).
std::size_t find(const std::vector<std::uint8_t>& hay, std::string_view needle) {
  auto it = std::search(hay.begin(), hay.end(), needle.begin(), needle.end());
  REQUIRE(it != hay.end());
  return static_cast<std::size_t>(it - hay.begin());
}

void put_le32(std::vector<std::uint8_t>& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(v >> (8 * i));
}

TEST_CASE("offsets pointing outside the buffer are rejected by the verifier", "[wire][robust]") {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.entries.push_back(Entry{LogIndex{1}, Term{1}, EntryKind::Normal, Bytes::copy_of("PAYLOAD-MARKER")});
  const Frame f = encode_raft(m, kTag);
  const std::vector<std::uint8_t> good(f.begin() + kHeaderBytes, f.end());
  REQUIRE(decode_raft(Bytes::copy_of(good)).is_ok());

  SECTION("root offset past the end") {
    auto bad = good;
    put_le32(bad, 0, static_cast<std::uint32_t>(bad.size() + 64));
    auto got = decode_raft(Bytes::copy_of(bad));
    REQUIRE(!got.is_ok());
    CHECK(got.status().code() == ErrorCode::InvalidArgument);
    CHECK_THAT(got.status().message(), Catch::Contains("not a valid flatbuffer"));
  }
  SECTION("a vector length reaching past the end") {
    auto bad = good;
    // A [ubyte] vector is its little-endian u32 length followed by the bytes.
    put_le32(bad, find(bad, "PAYLOAD-MARKER") - 4, 0x7FFFFFF0);
    auto got = decode_raft(Bytes::copy_of(bad));
    REQUIRE(!got.is_ok());
    CHECK_THAT(got.status().message(), Catch::Contains("not a valid flatbuffer"));
  }
  SECTION("a string offset pointing outside") {
    Hello h;
    h.node_id = NodeId{1};
    h.cluster_id = "CLUSTER-MARKER";
    const Frame hf = encode_hello(h);
    std::vector<std::uint8_t> bad(hf.begin() + kHeaderBytes, hf.end());
    put_le32(bad, find(bad, "CLUSTER-MARKER") - 4, 0xFFFFFFFF);
    CHECK(!decode_hello(bad).is_ok());
  }
}

std::uint32_t get_le32(const std::vector<std::uint8_t>& b, std::size_t at) {
  std::uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | b[at + static_cast<std::size_t>(i)];
  return v;
}

TEST_CASE("a vector of 8-byte elements at a misaligned offset is rejected", "[wire][robust]") {
  // The verifier checks only the alignment of a vector's length; reading misaligned
  // 64-bit elements in place would be undefined behaviour (found by the fuzzer).
  SnapshotChunk c;
  c.from = NodeId{1};
  c.to = NodeId{2};
  c.term = Term{1};
  c.snapshot_index = LogIndex{1};
  c.config.voters = {NodeId{0x1111}, NodeId{0x2222}, NodeId{0x3333}};
  const Frame f = encode_snapshot_chunk(c, kTag);
  std::vector<std::uint8_t> p(f.begin() + kHeaderBytes, f.end());
  REQUIRE(decode_snapshot_chunk(Bytes::copy_of(p)).is_ok());
  // Find the voters vector (length 3, then 0x1111) and the offset field that points to it.
  std::size_t vec = 0;
  for (std::size_t at = 0; at + 12 <= p.size(); at += 4) {
    if (get_le32(p, at) == 3 && get_le32(p, at + 4) == 0x1111) vec = at;
  }
  REQUIRE(vec != 0);
  std::size_t field = 0;
  for (std::size_t at = 0; at < vec; at += 4) {
    if (at + get_le32(p, at) == vec) field = at;
  }
  REQUIRE(field != 0);
  // Copy the vector to the end of the buffer so that its elements sit at 4 mod 8.
  while (p.size() % 8 != 0) p.push_back(0);
  const std::size_t moved = p.size();
  p.insert(p.end(), p.begin() + static_cast<std::ptrdiff_t>(vec),
           p.begin() + static_cast<std::ptrdiff_t>(vec + 4 + 3 * 8));
  put_le32(p, field, static_cast<std::uint32_t>(moved - field));
  auto got = decode_snapshot_chunk(Bytes::copy_of(p));
  REQUIRE(!got.is_ok());
  CHECK_THAT(got.status().message(), Catch::Contains("misaligned"));
}

/// Encodes with the (non-validating) encoder and expects InvalidArgument mentioning `what`.
void expect_rejected(const Frame& f, std::string_view what) {
  const Bytes p = payload_of(f);
  Status s;
  switch (decode_header(f, 0, kMaxFrame).value().type) {
    case FrameType::Raft: s = decode_raft(p).status(); break;
    case FrameType::SnapshotChunk: s = decode_snapshot_chunk(p).status(); break;
    case FrameType::ClientRequest: s = decode_client_request(p).status(); break;
    case FrameType::ClientReply: s = decode_client_reply(p).status(); break;
    case FrameType::Hello: s = decode_hello(p.span()).status(); break;
    case FrameType::HelloAck: s = decode_hello_ack(p.span()).status(); break;
    case FrameType::SnapshotAck: s = decode_snapshot_ack(p.span()).status(); break;
    case FrameType::Ping: FAIL("a Ping has no payload to validate"); break;
  }
  INFO(s.to_string());
  CHECK(s.code() == ErrorCode::InvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains(std::string(what)));
}

core::Message append() {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{2};
  m.log_index = LogIndex{4};
  m.entries.push_back(Entry{LogIndex{5}, Term{2}, EntryKind::Normal, Bytes::copy_of("a")});
  m.entries.push_back(Entry{LogIndex{6}, Term{2}, EntryKind::Normal, Bytes::copy_of("b")});
  return m;
}

TEST_CASE("raft messages with bad fields are refused with a reason", "[wire][validate]") {
  SECTION("unknown message type") {
    core::Message m = append();
    m.entries.clear();
    m.type = static_cast<core::MessageType>(42);
    expect_rejected(encode_raft(m, kTag), "unknown type 42");
  }
  SECTION("node id 0") {
    core::Message m = append();
    m.from = kNoNode;
    expect_rejected(encode_raft(m, kTag), "node id 0");
  }
  SECTION("unknown entry kind") {
    core::Message m = append();
    m.entries[1].kind = static_cast<EntryKind>(9);
    expect_rejected(encode_raft(m, kTag), "unknown kind 9");
  }
  SECTION("config entry that does not decode") {
    core::Message m = append();
    m.entries[0].kind = EntryKind::Config;
    m.entries[0].payload = Bytes::copy_of("garbage");
    expect_rejected(encode_raft(m, kTag), "config entry 5 does not decode");
  }
  SECTION("gap between entries") {
    core::Message m = append();
    m.entries[1].index = LogIndex{8};
    expect_rejected(encode_raft(m, kTag), "does not follow");
  }
  SECTION("entry index 0") {
    core::Message m = append();
    m.entries.resize(1);
    m.entries[0].index = LogIndex{0};
    expect_rejected(encode_raft(m, kTag), "index 0");
  }
  SECTION("entries outside Append") {
    core::Message m = append();
    m.type = core::MessageType::Heartbeat;
    expect_rejected(encode_raft(m, kTag), "Heartbeat carries entries");
  }
  SECTION("Snapshot without metadata") {
    core::Message m = append();
    m.entries.clear();
    m.type = core::MessageType::Snapshot;
    expect_rejected(encode_raft(m, kTag), "without snapshot");
  }
  SECTION("snapshot with an invalid configuration") {
    core::Message m = append();
    m.entries.clear();
    m.type = core::MessageType::Snapshot;
    m.snapshot = core::SnapshotMeta{LogIndex{3}, Term{1}, core::Configuration{}, Bytes{}};
    expect_rejected(encode_raft(m, kTag), "no voters");
  }
  SECTION("digests outside a digest report") {
    RawRaftMessage m;
    m.type = fb::MessageType::Heartbeat;
    auto got = decode_raft(encode_raw(m));
    REQUIRE(!got.is_ok());
    CHECK_THAT(got.status().message(), Catch::Contains("Heartbeat carries digests"));
  }
  SECTION("snapshot outside Snapshot") {
    core::Message m = append();
    m.entries.clear();
    m.type = core::MessageType::Vote;
    core::Configuration c;
    c.voters = {NodeId{1}};
    m.snapshot = core::SnapshotMeta{LogIndex{3}, Term{1}, c, Bytes{}};
    expect_rejected(encode_raft(m, kTag), "Vote carries a snapshot");
  }
}

/// decode_peer_message refuses `m` with InvalidArgument mentioning `what`.
void expect_report_rejected(const RawRaftMessage& m, std::string_view what) {
  const Status s = decode_peer_message(encode_raw(m)).status();
  INFO(s.to_string());
  CHECK(s.code() == ErrorCode::InvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains(std::string(what)));
}

TEST_CASE("digest reports with bad fields are refused with a reason", "[wire][validate][digest]") {
  RawRaftMessage m;
  REQUIRE(decode_peer_message(encode_raw(m)).is_ok());
  SECTION("node id 0") {
    m.from = 0;
    expect_report_rejected(m, "node id 0");
  }
  SECTION("no checkpoints") {
    m.checkpoints = 0;
    expect_report_rejected(m, "digest report: no checkpoints");
    m.digests = false;
    expect_report_rejected(m, "digest report: no checkpoints");
  }
  SECTION("more checkpoints than the limit") {
    m.checkpoints = kDigestReportCheckpointsMax;
    CHECK(decode_peer_message(encode_raw(m)).is_ok());
    m.checkpoints = kDigestReportCheckpointsMax + 1;
    expect_report_rejected(m, fmt::format("{} checkpoints (limit {})", kDigestReportCheckpointsMax + 1,
                                          kDigestReportCheckpointsMax));
  }
  SECTION("entries") {
    m.entries = true;
    expect_report_rejected(m, "digest report: carries entries");
  }
  SECTION("a snapshot") {
    m.snapshot = true;
    expect_report_rejected(m, "digest report: carries a snapshot");
  }
  SECTION("truncated") {
    const Bytes whole = encode_raw(m);
    for (std::size_t n = 0; n < whole.size(); ++n) {
      CAPTURE(n);
      const Status s = decode_peer_message(Bytes::copy_of(whole.span().first(n))).status();
      CHECK(s.code() == ErrorCode::InvalidArgument);
      CHECK_THAT(s.message(), Catch::Contains("raft message"));
    }
  }
}

TEST_CASE("snapshot chunks with bad fields are refused with a reason", "[wire][validate]") {
  SnapshotChunk c;
  c.from = NodeId{1};
  c.to = NodeId{2};
  c.term = Term{3};
  c.snapshot_index = LogIndex{10};
  c.config.voters = {NodeId{1}, NodeId{2}};
  c.data = Bytes::copy_of("0123456789");
  c.offset = 0;
  c.total_bytes = 10;
  c.last = true;
  REQUIRE(decode_snapshot_chunk(payload_of(encode_snapshot_chunk(c, kTag))).is_ok());
  SECTION("overrun") {
    c.total_bytes = 5;
    c.last = false;
    expect_rejected(encode_snapshot_chunk(c, kTag), "overrun");
  }
  SECTION("offset near the top of the range") {
    c.offset = std::numeric_limits<std::uint64_t>::max() - 3;
    c.total_bytes = std::numeric_limits<std::uint64_t>::max();
    c.last = false;
    expect_rejected(encode_snapshot_chunk(c, kTag), "overrun");
  }
  SECTION("last chunk that does not end the data") {
    c.total_bytes = 11;
    expect_rejected(encode_snapshot_chunk(c, kTag), "last chunk");
  }
  SECTION("invalid configuration") {
    c.config.learners = {NodeId{2}};
    expect_rejected(encode_snapshot_chunk(c, kTag), "both a learner and a voter");
  }
  SECTION("node id 0") {
    c.to = kNoNode;
    expect_rejected(encode_snapshot_chunk(c, kTag), "node id 0");
  }
}

TEST_CASE("client requests with bad fields are refused with a reason", "[wire][validate]") {
  SECTION("no body") {
    flatbuffers::FlatBufferBuilder b;
    b.Finish(fb::CreateClientRequest(b, 1, 0, fb::RequestBody::NONE, 0));
    const std::vector<std::uint8_t> p(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
    auto got = decode_client_request(Bytes::copy_of(p));
    REQUIRE(!got.is_ok());
    CHECK_THAT(got.status().message(), Catch::Contains("missing or unknown body"));
  }
  SECTION("unknown union type") {
    flatbuffers::FlatBufferBuilder b;
    const auto body = fb::CreatePromoteReq(b, 3).Union();
    b.Finish(fb::CreateClientRequest(b, 1, 0, static_cast<fb::RequestBody>(200), body));
    const std::vector<std::uint8_t> p(b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize());
    CHECK(!decode_client_request(Bytes::copy_of(p)).is_ok());
  }
  SECTION("sequence number without a client id") {
    expect_rejected(encode_client_request({1, 0, ProposeRequest{Bytes::copy_of("x"), 0, 5}}, kTag),
                    "no client id");
  }
  SECTION("subscribe from 0") {
    expect_rejected(encode_client_request({1, 0, SubscribeRequest{LogIndex{0}}}, kTag), "index 0");
  }
  SECTION("admin calls on node 0") {
    expect_rejected(encode_client_request({1, 0, PromoteRequest{kNoNode}}, kTag), "promote of node 0");
    expect_rejected(encode_client_request({1, 0, RemoveRequest{kNoNode}}, kTag), "remove of node 0");
    expect_rejected(encode_client_request({1, 0, TransferLeaderRequest{kNoNode}}, kTag), "node 0");
    expect_rejected(encode_client_request({1, 0, AddLearnerRequest{MemberAddress{kNoNode, {"h", 1}}}}, kTag),
                    "node 0");
    expect_rejected(encode_client_request({1, 0, AddLearnerRequest{MemberAddress{NodeId{4}, {"", 1}}}}, kTag),
                    "without a host");
  }
}

TEST_CASE("client replies with bad fields are refused with a reason", "[wire][validate]") {
  SECTION("unknown error code") {
    ClientReply r;
    r.status = Status{static_cast<ErrorCode>(99), "?"};
    expect_rejected(encode_client_reply(r, kTag), "unknown error code 99");
  }
  SECTION("two results") {
    ClientReply r;
    r.propose = ProposeResult{LogIndex{1}, Term{1}};
    r.read_index = LogIndex{1};
    expect_rejected(encode_client_reply(r, kTag), "2 results");
  }
  SECTION("an error with a result") {
    ClientReply r;
    r.status = Status{ErrorCode::Timeout, "slow"};
    r.role = Role::Leader;
    expect_rejected(encode_client_reply(r, kTag), "error status Timeout");
  }
  SECTION("unknown role") {
    ClientReply r;
    r.role = static_cast<Role>(17);
    expect_rejected(encode_client_reply(r, kTag), "unknown role 17");
  }
  SECTION("member with node id 0") {
    ClientReply r;
    r.cluster_info = ClusterInfo{};
    r.cluster_info->members.push_back(MemberInfo{});
    expect_rejected(encode_client_reply(r, kTag), "node id 0");
  }
}

TEST_CASE("handshakes with bad fields are refused with a reason", "[wire][validate]") {
  Hello h;
  h.cluster_id = "c";
  SECTION("node without an id") { expect_rejected(encode_hello(h), "must give its id"); }
  SECTION("client with an id") {
    h.kind = PeerKind::Client;
    h.node_id = NodeId{3};
    expect_rejected(encode_hello(h), "must not claim");
  }
  SECTION("unknown peer kind") {
    h.kind = static_cast<PeerKind>(5);
    expect_rejected(encode_hello(h), "unknown peer kind");
  }
  SECTION("empty cluster id") {
    h.node_id = NodeId{1};
    h.cluster_id.clear();
    expect_rejected(encode_hello(h), "empty cluster id");
  }
  SECTION("accepted without an id") {
    expect_rejected(encode_hello_ack(HelloAck{true, "", kNoNode}, kTag), "without a node id");
  }
}

}  // namespace
}  // namespace rlr::wire::test
