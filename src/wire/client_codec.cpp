// The client codec (client_codec.h): client requests and the nodes' replies.
#include "wire/client_codec.h"

#include <utility>
#include <variant>

#include <fmt/format.h>

#include "wire/codec_support.h"

namespace rlr::wire {
using namespace detail;

// ---- enums mirrored by the schema -----------------------------------------------------
static_assert(static_cast<int>(fb::Role::Follower) == static_cast<int>(Role::Follower));
static_assert(static_cast<int>(fb::Role::PreCandidate) == static_cast<int>(Role::PreCandidate));
static_assert(static_cast<int>(fb::Role::Candidate) == static_cast<int>(Role::Candidate));
static_assert(static_cast<int>(fb::Role::Leader) == static_cast<int>(Role::Leader));
static_assert(static_cast<int>(fb::Role::Learner) == static_cast<int>(Role::Learner));
static_assert(static_cast<int>(fb::Role::MAX) == static_cast<int>(Role::Learner));

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

Frame encode_client_request(const ClientRequest& r, std::uint64_t tag) {
  const auto* propose = std::get_if<ProposeRequest>(&r.body);
  auto& b = acquire_builder(128 + (propose ? propose->command.size() : 0));
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
      const auto host = put_string(b, a.member.address.host);
      body = fb::CreateAddLearnerReq(b, a.member.id.value(), host, a.member.address.port).Union();
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
      req.body = AddLearnerRequest{MemberAddress{id.value(), Address{std::move(host), a->port()}}};
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
  auto& b = acquire_builder(hint);

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
      const auto address = put_string(b, mi.address.to_string());
      fb::MemberInfoBuilder mb(b);
      mb.add_id(mi.id.value());
      mb.add_address(address);
      mb.add_voter(mi.voter);
      mb.add_is_leader(mi.is_leader);
      mb.add_match(mi.match.value());
      mb.add_lag(mi.lag);
      mb.add_last_contact_ms(mi.last_contact.count());
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
        // A member's address travels as text; one that does not parse is unknown.
        member.address = Address::parse(get_string(mi->address())).value_or(Address{});
        member.voter = mi->voter();
        member.is_leader = mi->is_leader();
        member.match = LogIndex{mi->match()};
        member.lag = mi->lag();
        member.last_contact = std::chrono::milliseconds{mi->last_contact_ms()};
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

}  // namespace rlr::wire
