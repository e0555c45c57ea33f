// Writes the seed corpus of the wire fuzz target: one valid payload of every message
// kind, both as a raw input (mode 0) and as a record that the target frames (mode 1),
// plus a stream of several records.
//
// Usage: rlr-wire-fuzz-corpus <seed dir> [<more dirs to create>...]
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/configuration.h"
#include "wire/client_codec.h"
#include "wire/frame.h"
#include "wire/peer_codec.h"

namespace {

using namespace rlr;
using namespace rlr::wire;

std::vector<std::uint8_t> payload(const Frame& f) { return {f.begin() + kHeaderBytes, f.end()}; }

core::Configuration config() {
  core::Configuration c;
  c.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  c.learners = {NodeId{4}};
  c.set_address(NodeId{1}, "127.0.0.1:7001");
  c.set_address(NodeId{4}, "127.0.0.1:7004");
  return c;
}

std::vector<std::pair<FrameType, Frame>> samples() {
  std::vector<std::pair<FrameType, Frame>> out;
  const std::uint64_t tag = 42;
  for (int t = 0; t <= static_cast<int>(core::kLastMessageType); ++t) {
    core::Message m;
    m.type = static_cast<core::MessageType>(t);
    m.from = NodeId{1};
    m.to = NodeId{2};
    m.term = Term{3};
    m.log_index = LogIndex{9};
    m.log_term = Term{2};
    m.commit = LogIndex{8};
    m.reject = t % 2 == 1;
    m.hint_index = LogIndex{5};
    m.hint_term = Term{1};
    m.context = 77;
    if (m.type == core::MessageType::Append) {
      m.entries.push_back(Entry{LogIndex{10}, Term{3}, EntryKind::Normal, Bytes::copy_of("set x=1")});
      m.entries.push_back(Entry{LogIndex{11}, Term{3}, EntryKind::Config, core::encode_configuration(config())});
      m.entries.push_back(Entry{LogIndex{12}, Term{3}, EntryKind::Noop, Bytes{}});
      m.entries.push_back(Entry{LogIndex{13}, Term{3}, EntryKind::Session,
                                Bytes::copy_of(std::string(15, '\0') + "\x07" + std::string(7, '\0') + "\x01cmd")});
      m.entries.push_back(Entry{LogIndex{14}, Term{3}, EntryKind::Watermark,
                                Bytes::copy_of(std::string(7, '\0') + "\x0c")});
    }
    if (m.type == core::MessageType::Snapshot) {
      m.snapshot = core::SnapshotMeta{LogIndex{100}, Term{2}, config(), Bytes{}};
    }
    out.emplace_back(FrameType::Raft, encode_raft(m, tag));
  }
  const DigestReport report{NodeId{1}, NodeId{2},
                            {DigestCheckpoint{LogIndex{100}, 0x1234}, DigestCheckpoint{LogIndex{200}, 0x5678}}};
  out.emplace_back(FrameType::Raft, encode_digest_report(report, tag));
  SnapshotChunk c{NodeId{1}, NodeId{2}, Term{3}, LogIndex{100}, Term{2}, config(), 4, 10,
                  Bytes::copy_of("456789"), true};
  out.emplace_back(FrameType::SnapshotChunk, encode_snapshot_chunk(c, tag));
  out.emplace_back(FrameType::SnapshotAck,
                   encode_snapshot_ack(SnapshotAck{NodeId{2}, NodeId{1}, LogIndex{100}, Term{2}, 6}, tag));
  out.emplace_back(FrameType::Hello, encode_hello(Hello{PeerKind::Node, NodeId{2}, "venue-a", "secret", kProtocolVersion, "127.0.0.1:7002"}));
  out.emplace_back(FrameType::HelloAck, encode_hello_ack(HelloAck{true, "", NodeId{1}}, tag));
  const ClientRequestBody bodies[] = {
      ProposeRequest{Bytes::copy_of("order 42"), 7, 1}, SubscribeRequest{LogIndex{1}},
      GetRoleRequest{}, GetLeaderRequest{}, GetClusterInfoRequest{}, ReadIndexRequest{},
      AddLearnerRequest{MemberAddress{NodeId{4}, {"127.0.0.1", 7004}}}, PromoteRequest{NodeId{4}},
      RemoveRequest{NodeId{4}}, TransferLeaderRequest{NodeId{2}}};
  for (const auto& body : bodies) {
    out.emplace_back(FrameType::ClientRequest, encode_client_request(ClientRequest{5, 1000, body}, tag));
  }
  ClientReply r;
  r.request_id = 5;
  r.propose = ProposeResult{LogIndex{12}, Term{3}};
  out.emplace_back(FrameType::ClientReply, encode_client_reply(r, tag));
  r.propose.reset();
  r.status = Status::not_leader(NodeId{2});
  r.leader = NodeId{2};
  r.leader_address = "127.0.0.1:7002";
  out.emplace_back(FrameType::ClientReply, encode_client_reply(r, tag));
  r.status = Status{};
  ClusterInfo ci;
  ci.cluster_id = "venue-a";
  ci.id = NodeId{1};
  ci.role = Role::Leader;
  for (std::uint64_t id : {1, 4}) {
    MemberInfo mi;
    mi.id = NodeId{id};
    mi.address = Address{"127.0.0.1", static_cast<std::uint16_t>(7000 + id)};
    mi.voter = id == 1;
    mi.is_leader = id == 1;
    mi.match = LogIndex{id == 1 ? 12U : 3U};
    mi.lag = id == 1 ? 0 : 9;
    mi.last_contact = std::chrono::milliseconds{id == 1 ? 0 : 120};
    mi.digest = DigestCheckpoint{LogIndex{10}, 0xABCDEF};
    ci.members.push_back(std::move(mi));
  }
  ci.digest = DigestCheckpoint{LogIndex{10}, 0xABCDEF};
  r.cluster_info = ci;
  out.emplace_back(FrameType::ClientReply, encode_client_reply(r, tag));
  r.cluster_info.reset();
  r.entries.push_back(Entry{LogIndex{1}, Term{1}, EntryKind::Noop, Bytes{}});
  r.entries.push_back(Entry{LogIndex{2}, Term{1}, EntryKind::Normal, Bytes::copy_of("x")});
  out.emplace_back(FrameType::ClientReply, encode_client_reply(r, tag));
  return out;
}

/// A mode-1 record: [type index][length u16 BE][payload].
void append_record(std::vector<std::uint8_t>& out, FrameType type, const std::vector<std::uint8_t>& p) {
  out.push_back(static_cast<std::uint8_t>(static_cast<int>(type) - 1));
  out.push_back(static_cast<std::uint8_t>(p.size() >> 8));
  out.push_back(static_cast<std::uint8_t>(p.size()));
  out.insert(out.end(), p.begin(), p.end());
}

void write(const std::filesystem::path& file, const std::vector<std::uint8_t>& bytes) {
  std::FILE* f = std::fopen(file.c_str(), "wb");
  if (f == nullptr || std::fwrite(bytes.data(), 1, bytes.size(), f) != bytes.size()) {
    std::perror(file.c_str());
    std::exit(1);
  }
  std::fclose(f);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s <seed dir> [<dirs to create>...]\n", argv[0]);
    return 2;
  }
  for (int i = 1; i < argc; ++i) std::filesystem::create_directories(argv[i]);
  const std::filesystem::path dir = argv[1];
  std::vector<std::uint8_t> stream{0x0F};  // mode 1, pieces of up to 8 bytes
  int n = 0;
  for (const auto& [type, frame] : samples()) {
    const auto p = payload(frame);
    std::vector<std::uint8_t> raw{0x00};
    raw.insert(raw.end(), p.begin(), p.end());
    write(dir / ("raw-" + std::to_string(n)), raw);
    std::vector<std::uint8_t> framed{0x01};
    append_record(framed, type, p);
    write(dir / ("framed-" + std::to_string(n)), framed);
    append_record(stream, type, p);
    ++n;
  }
  write(dir / "stream", stream);
  std::vector<std::uint8_t> whole{0x02};  // a complete encoded frame as a raw stream
  const auto first = samples().front().second;
  whole.insert(whole.end(), first.begin(), first.end());
  write(dir / "raw-frame", whole);
  return 0;
}
