// Round trips: every message kind encodes to a frame whose header is right and whose
// payload decodes back to the same value; entry payloads decode as views, not copies.
#include <cstdint>
#include <string>
#include <variant>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "util/crc32c.h"
#include "wire_test_support.h"

namespace rlr::wire::test {
namespace {

constexpr std::uint64_t kTag = 0x1234'5678'9ABC'DEF0ULL;

/// The header of `f` says `type`, `kTag`, the payload's length and crc.
void check_frame(const Frame& f, FrameType type, std::uint64_t tag = kTag) {
  RC_ASSERT(f.size() >= kHeaderBytes);
  auto h = decode_header(f, tag, kMaxFrame);
  RC_ASSERT(h.is_ok());
  RC_ASSERT(h.value().type == type);
  RC_ASSERT(h.value().cluster_tag == tag);
  RC_ASSERT(h.value().length == f.size() - kHeaderBytes);
  RC_ASSERT(check_payload(h.value(), std::span(f).subspan(kHeaderBytes)).is_ok());
}

/// A message of `type` from node 1 to node 2 at term 3; every other field default.
core::Message message(core::MessageType type) {
  core::Message m;
  m.type = type;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{3};
  return m;
}

template <class T>
void assert_same(const T& want, const Result<T>& got) {
  if (!got) RC_FAIL("decode failed: " + got.status().to_string());
  if (auto d = diff(want, got.value()); !d.empty()) RC_FAIL(d);
}

TEST_CASE("every core message type round-trips through a Raft frame", "[wire][codec]") {
  for (int t = 0; t < kMessageTypes; ++t) {
    const auto type = static_cast<core::MessageType>(t);
    CAPTURE(t);
    REQUIRE(rc::check("Raft frame round trip", [type] {
      const core::Message m = valid_message(type);
      const Frame f = encode_raft(m, kTag);
      check_frame(f, FrameType::Raft);
      assert_same(m, decode_raft(payload_of(f)));
      // decode_peer_message gives the same core message.
      const auto peer = decode_peer_message(payload_of(f));
      if (!peer) RC_FAIL("decode_peer_message failed: " + peer.status().to_string());
      RC_ASSERT(std::holds_alternative<core::Message>(peer.value()));
      if (auto d = diff(m, std::get<core::Message>(peer.value())); !d.empty()) RC_FAIL(d);
    }));
  }
}

TEST_CASE("digest reports round-trip through a Raft frame", "[wire][codec][digest]") {
  REQUIRE(rc::check("DigestReport round trip", [] {
    const DigestReport r = valid_digest_report();
    const Frame f = encode_digest_report(r, kTag);
    check_frame(f, FrameType::Raft);
    const auto got = decode_peer_message(payload_of(f));
    if (!got) RC_FAIL("decode failed: " + got.status().to_string());
    RC_ASSERT(std::holds_alternative<DigestReport>(got.value()));
    if (auto d = diff(r, std::get<DigestReport>(got.value())); !d.empty()) RC_FAIL(d);
  }));
}

TEST_CASE("a Raft frame of message type 11 is a digest report, never a core message", "[wire][codec][digest]") {
  const DigestReport r{NodeId{1}, NodeId{2}, {DigestCheckpoint{LogIndex{1000}, 0xAB}}};
  const Bytes payload = payload_of(encode_digest_report(r, kTag));
  const auto as_core = decode_raft(payload);
  REQUIRE(!as_core.is_ok());
  CHECK(as_core.status().code() == ErrorCode::InvalidArgument);
  CHECK_THAT(as_core.status().message(), Catch::Contains("a digest report, not a core message"));
  const auto got = decode_peer_message(payload);
  REQUIRE(got.is_ok());
  REQUIRE(std::holds_alternative<DigestReport>(got.value()));
  CHECK(std::get<DigestReport>(got.value()) == r);
}

TEST_CASE("a digest report as older nodes encode it decodes to the same report", "[wire][codec][digest]") {
  // Older nodes sent a core::Message of type DigestReport: the sender's term and
  // log_index set, the checkpoints in `digests`. The bytes on the wire are unchanged.
  RawRaftMessage old;
  old.from = 3;
  old.to = 1;
  old.term = 7;
  old.log_index = 40;
  old.checkpoints = kDigestReportSendCheckpointsMax;
  const auto got = decode_peer_message(encode_raw(old));
  REQUIRE(got.is_ok());
  REQUIRE(std::holds_alternative<DigestReport>(got.value()));
  const DigestReport& r = std::get<DigestReport>(got.value());
  CHECK(r.from == NodeId{3});
  CHECK(r.to == NodeId{1});
  REQUIRE(r.digests.size() == kDigestReportSendCheckpointsMax);
  CHECK(r.digests.front() == DigestCheckpoint{LogIndex{10}, 1});
  CHECK(r.digests.back() == DigestCheckpoint{LogIndex{160}, 16});
}

TEST_CASE("a snapshot message travels without its data", "[wire][codec]") {
  core::Message m = message(core::MessageType::Snapshot);
  core::Configuration config;
  config.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  m.snapshot = core::SnapshotMeta{LogIndex{10}, Term{2}, config, Bytes::copy_of("sessions")};
  auto got = decode_raft(payload_of(encode_raft(m, kTag)));
  REQUIRE(got.is_ok());
  REQUIRE(got.value().snapshot.has_value());
  CHECK(got.value().snapshot->data.empty());
  CHECK(got.value().snapshot->index == LogIndex{10});
  CHECK(got.value().snapshot->config == config);
}

TEST_CASE("decoded entry payloads are views into the frame payload", "[wire][codec]") {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{5};
  for (std::uint64_t i = 1; i <= 3; ++i) {
    m.entries.push_back(Entry{LogIndex{i}, Term{5}, EntryKind::Normal,
                              Bytes::copy_of("command-" + std::to_string(i))});
  }
  Bytes payload = payload_of(encode_raft(m, kTag));
  const std::uint8_t* begin = payload.data();
  const std::uint8_t* end = begin + payload.size();
  auto got = decode_raft(payload);
  REQUIRE(got.is_ok());
  payload = Bytes{};  // the entries alone keep the buffer alive
  REQUIRE(got.value().entries.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    const Bytes& p = got.value().entries[i].payload;
    CHECK(p.data() >= begin);
    CHECK(p.data() + p.size() <= end);
    CHECK(p.as_string_view() == "command-" + std::to_string(i + 1));
  }
}

TEST_CASE("a readdressed Append is the frame encoded for the other node", "[wire][codec]") {
  rc::prop("same bytes as encoding the message to the new addressee", [] {
    core::Message m = valid_message(core::MessageType::Append);
    // Large enough that the first frame keeps its builder's buffer (no copy at encode).
    const auto extra = *rc::gen::inRange<std::size_t>(0, 2000);
    for (std::size_t k = 0; k < extra; ++k) {
      const LogIndex next = m.entries.empty() ? LogIndex{1} : m.entries.back().index.next();
      m.entries.push_back(Entry{next, m.term, EntryKind::Normal, Bytes::copy_of(std::string(64, 'e'))});
    }
    const Frame first = encode_raft(m, kTag);
    core::Message other = m;
    other.to = NodeId{m.to.value() == 1 ? 2U : 1U};
    const auto re = readdress_raft(first, other.to);
    RC_ASSERT(re.has_value());
    RC_ASSERT(*re == encode_raft(other, kTag));
    check_frame(*re, FrameType::Raft);
    assert_same(other, decode_raft(payload_of(*re)));
    assert_same(m, decode_raft(payload_of(first)));  // the original is untouched
  });
}

TEST_CASE("readdress_raft refuses what it cannot rewrite", "[wire][codec]") {
  const Frame f = encode_raft(message(core::MessageType::Append), kTag);
  CHECK(readdress_raft(f, NodeId{3}).has_value());
  CHECK_FALSE(readdress_raft(f, kNoNode).has_value());
  CHECK_FALSE(readdress_raft(Frame{}, NodeId{3}).has_value());
}

TEST_CASE("a payload at an unaligned address still decodes", "[wire][codec]") {
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.entries.push_back(Entry{LogIndex{7}, Term{1}, EntryKind::Normal, Bytes::copy_of("x")});
  const Frame f = encode_raft(m, kTag);
  // One byte of padding in front of the payload puts it at an odd address.
  std::vector<std::uint8_t> shifted(1, 0);
  shifted.insert(shifted.end(), f.begin() + kHeaderBytes, f.end());
  auto owner = std::make_shared<const std::vector<std::uint8_t>>(std::move(shifted));
  const Bytes odd(owner, owner->data() + 1, owner->size() - 1);
  auto got = decode_raft(odd);
  REQUIRE(got.is_ok());
  CHECK(got.value().entries.at(0).payload.as_string_view() == "x");
}

TEST_CASE("snapshot chunks round-trip", "[wire][codec]") {
  REQUIRE(rc::check("SnapshotChunk round trip", [] {
    const SnapshotChunk c = valid_chunk();
    const Frame f = encode_snapshot_chunk(c, kTag);
    check_frame(f, FrameType::SnapshotChunk);
    assert_same(c, decode_snapshot_chunk(payload_of(f)));
  }));
}

TEST_CASE("snapshot acks round-trip; node id 0 and snapshot index 0 are refused", "[wire][codec]") {
  REQUIRE(rc::check("SnapshotAck round trip", [] {
    const SnapshotAck a{NodeId{*rc::gen::inRange<std::uint64_t>(1, 1000)},
                        NodeId{*rc::gen::inRange<std::uint64_t>(1, 1000)},
                        LogIndex{*rc::gen::inRange<std::uint64_t>(1, 1U << 30)},
                        Term{*rc::gen::arbitrary<std::uint64_t>()}, *rc::gen::arbitrary<std::uint64_t>()};
    const Frame f = encode_snapshot_ack(a, kTag);
    check_frame(f, FrameType::SnapshotAck);
    auto got = decode_snapshot_ack(std::span(f).subspan(kHeaderBytes));
    RC_ASSERT(got.is_ok());
    RC_ASSERT(got.value() == a);
  }));
  const Frame no_sender = encode_snapshot_ack(SnapshotAck{NodeId{2}, kNoNode, LogIndex{5}, Term{1}, 0}, kTag);
  CHECK(decode_snapshot_ack(std::span(no_sender).subspan(kHeaderBytes)).status().code() ==
        ErrorCode::InvalidArgument);
  const Frame no_index = encode_snapshot_ack(SnapshotAck{NodeId{2}, NodeId{1}, LogIndex{}, Term{1}, 0}, kTag);
  CHECK(decode_snapshot_ack(std::span(no_index).subspan(kHeaderBytes)).status().code() ==
        ErrorCode::InvalidArgument);
}

TEST_CASE("Hello and HelloAck round-trip", "[wire][codec]") {
  REQUIRE(rc::check("Hello round trip", [] {
    const Hello h = valid_hello();
    const Frame f = encode_hello(h);
    // A Hello is tagged with its own cluster id: the receiver can check it at once.
    check_frame(f, FrameType::Hello, cluster_tag(h.cluster_id));
    assert_same(h, decode_hello(std::span(f).subspan(kHeaderBytes)));
  }));
  REQUIRE(rc::check("HelloAck round trip", [] {
    const HelloAck a = valid_hello_ack();
    const Frame f = encode_hello_ack(a, kTag);
    check_frame(f, FrameType::HelloAck);
    assert_same(a, decode_hello_ack(std::span(f).subspan(kHeaderBytes)));
  }));
}

TEST_CASE("every client request body round-trips", "[wire][codec]") {
  for (int kind = 0; kind < kRequestKinds; ++kind) {
    CAPTURE(kind);
    REQUIRE(rc::check("ClientRequest round trip", [kind] {
      const ClientRequest r = valid_request(kind);
      RC_ASSERT(r.body.index() == static_cast<std::size_t>(kind));
      const Frame f = encode_client_request(r, kTag);
      check_frame(f, FrameType::ClientRequest);
      assert_same(r, decode_client_request(payload_of(f)));
    }));
  }
}

TEST_CASE("client replies round-trip with each result and with errors", "[wire][codec]") {
  for (int shape = 0; shape < kReplyShapes; ++shape) {
    CAPTURE(shape);
    REQUIRE(rc::check("ClientReply round trip", [shape] {
      const ClientReply r = valid_reply(shape);
      const Frame f = encode_client_reply(r, kTag);
      check_frame(f, FrameType::ClientReply);
      assert_same(r, decode_client_reply(payload_of(f)));
    }));
  }
}

TEST_CASE("a NotLeader reply carries the leader's id and address", "[wire][codec]") {
  ClientReply r;
  r.request_id = 9;
  r.status = Status::not_leader(NodeId{3});
  r.leader = NodeId{3};
  r.leader_address = "10.0.0.3:7003";
  auto got = decode_client_reply(payload_of(encode_client_reply(r, kTag)));
  REQUIRE(got.is_ok());
  CHECK(got.value().status.code() == ErrorCode::NotLeader);
  CHECK(got.value().status.leader_hint() == NodeId{3});
  CHECK(got.value().leader == NodeId{3});
  CHECK(got.value().leader_address == "10.0.0.3:7003");
}

TEST_CASE("an ok reply with no result decodes with an ok status", "[wire][codec]") {
  ClientReply r;
  r.request_id = 1;
  auto got = decode_client_reply(payload_of(encode_client_reply(r, kTag)));
  REQUIRE(got.is_ok());
  CHECK(got.value().status.is_ok());
  CHECK(!got.value().propose);
  CHECK(got.value().entries.empty());
}

TEST_CASE("cluster tags are stable, distinct and never zero", "[wire][header]") {
  CHECK(cluster_tag("venue-a") == cluster_tag("venue-a"));
  CHECK(cluster_tag("venue-a") != cluster_tag("venue-b"));
  CHECK(cluster_tag("") != 0);
  // Pinned: the tag is part of the protocol and must not change between builds.
  CHECK(cluster_tag("venue-a") == 0x909FCC5F2E021B56ULL);
  REQUIRE(rc::check("tags are non-zero", [](const std::string& id) { RC_ASSERT(cluster_tag(id) != 0); }));
}

TEST_CASE("encoding an AppendEntries batch keeps one copy of each payload", "[wire][codec]") {
  // 1000 entries of 100 bytes: the frame is the payloads plus 24 bytes of metadata per
  // entry plus a small constant, i.e. no per-entry table overhead.
  core::Message m;
  m.type = core::MessageType::Append;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.term = Term{1};
  const Bytes payload = Bytes(std::vector<std::uint8_t>(100, 0xAB));
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    m.entries.push_back(Entry{LogIndex{i}, Term{1}, EntryKind::Normal, payload});
  }
  const Frame f = encode_raft(m, kTag);
  CHECK(f.size() <= kHeaderBytes + 1000 * (100 + 24) + 256);
  auto got = decode_raft(payload_of(f));
  REQUIRE(got.is_ok());
  CHECK(got.value().entries.size() == 1000);
  CHECK(got.value().entries.back().payload == payload);
}

}  // namespace
}  // namespace rlr::wire::test
