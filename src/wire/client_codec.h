// The client codec (private): requests from clients and the nodes' replies, in
// ClientRequest and ClientReply frames (wire/frame.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "rlr/cluster.h"
#include "rlr/status.h"
#include "rlr/types.h"
#include "wire/frame.h"

namespace rlr::wire {

struct ProposeRequest {
  Bytes command;
  std::uint64_t client_id = 0;  ///< 0: no session
  std::uint64_t sequence = 0;
};
struct SubscribeRequest { LogIndex from; };
struct GetRoleRequest {};
struct GetLeaderRequest {};
struct GetClusterInfoRequest {};
struct ReadIndexRequest {};
struct AddLearnerRequest { MemberAddress member; };
struct PromoteRequest { NodeId id; };
struct RemoveRequest { NodeId id; };
struct TransferLeaderRequest { NodeId id; };

using ClientRequestBody =
    std::variant<ProposeRequest, SubscribeRequest, GetRoleRequest, GetLeaderRequest,
                 GetClusterInfoRequest, ReadIndexRequest, AddLearnerRequest, PromoteRequest,
                 RemoveRequest, TransferLeaderRequest>;

struct ClientRequest {
  std::uint64_t request_id = 0;  ///< echoed in the reply
  std::uint32_t timeout_ms = 0;  ///< 0: the server's default
  ClientRequestBody body;
};

/// Replies: `status` ok or an error; for NotLeader `leader` and `leader_address` say
/// where to go. Exactly one of the optional results is set on success, by request kind.
struct ClientReply {
  std::uint64_t request_id = 0;
  Status status;
  NodeId leader;
  std::string leader_address;
  std::optional<ProposeResult> propose;        ///< Propose
  std::optional<Role> role;                    ///< GetRole
  std::optional<ClusterInfo> cluster_info;     ///< GetClusterInfo
  std::optional<LogIndex> read_index;          ///< ReadIndex
  std::vector<Entry> entries;                  ///< Subscribe: a batch of the stream
};

[[nodiscard]] Frame encode_client_request(const ClientRequest& r, std::uint64_t tag);
[[nodiscard]] Result<ClientRequest> decode_client_request(const Bytes& payload);
[[nodiscard]] Frame encode_client_reply(const ClientReply& r, std::uint64_t tag);
[[nodiscard]] Result<ClientReply> decode_client_reply(const Bytes& payload);

}  // namespace rlr::wire
