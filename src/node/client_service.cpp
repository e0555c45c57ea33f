#include "node/client_service.h"

#include <concepts>
#include <map>

#include <fmt/format.h>

#include "client/forwarder.h"

namespace rlr::node {

namespace {
constexpr std::chrono::milliseconds kDefaultAdminTimeout{10000};
}  // namespace

// ---- follower forwarding (NodeOptions::forward_proposals) ------------------------------
// A follower with forwarding on relays a client's Propose to the leader through one
// internal client connection (client::Forwarder) and sends the leader's reply back under
// the client's request id. The client's session travels unchanged, so a retry that later
// reaches the leader directly is still deduplicated. A request that was itself forwarded
// (its id has kForwardedRequestBit) is never forwarded again.

client::Forwarder& ClientService::forwarder(const NodeOptions& o) {
  std::lock_guard lock(forwarder_mu_);
  if (!forwarder_) {
    client::ForwarderOptions fo;
    fo.cluster_id = o.cluster_id;
    fo.token = o.auth_token;
    fo.max_frame_bytes = o.max_frame_bytes;
    forwarder_ = std::make_unique<client::Forwarder>(fo);
  }
  return *forwarder_;
}

bool ClientService::maybe_forward(NodeImpl& node, std::uint64_t request_id, std::uint32_t timeout_ms,
                                  wire::ProposeRequest& body,
                                  const std::shared_ptr<transport::ClientStream>& stream) {
  const NodeOptions* o = &node.options();
  if (!o->forward_proposals) return false;
  if ((request_id & client::kForwardedRequestBit) != 0) return false;
  if (node.role() == Role::Leader) return false;
  const NodeId leader = node.leader();
  if (leader == kNoNode || leader == o->id) return false;
  std::string address = node.leader_address().to_string();
  if (address.empty()) return false;
  const auto timeout = timeout_ms != 0 ? std::chrono::milliseconds(timeout_ms) : o->proposal_timeout;
  forwarder(*o).forward(
      address, std::move(body), timeout,
      [stream, request_id, leader, address](Result<wire::ClientReply> r) {
        wire::ClientReply reply;
        if (r) {
          reply = std::move(r).value();
        } else {
          // Could not relay. Busy and ShuttingDown mean the proposal never left; anything
          // else may have reached the leader, so it is a Timeout (the client retries with
          // the same session, which is safe either way). The leader's address goes along.
          const ErrorCode code = r.status().code() == ErrorCode::Busy ||
                                         r.status().code() == ErrorCode::ShuttingDown
                                     ? r.status().code()
                                     : ErrorCode::Timeout;
          reply.status = Status{code, fmt::format("forwarding to the leader failed: {}", r.status().message()),
                                leader};
          reply.leader = leader;
          reply.leader_address = address;
        }
        reply.request_id = request_id;
        (void)stream->send(reply);
      });
  return true;
}

ClientService::ClientService() = default;

ClientService::~ClientService() {
  stopping_ = true;
  std::list<Streamer> streamers;
  {
    std::lock_guard lock(streamers_mu_);
    streamers.swap(streamers_);
  }
  for (auto& s : streamers) {
    if (s.thread.joinable()) s.thread.join();
  }
  blocking_.shutdown();
}

void ClientService::reply_error(const std::shared_ptr<transport::ClientStream>& stream,
                                std::uint64_t id, Status status) {
  wire::ClientReply r;
  r.request_id = id;
  if (NodeImpl* n = node_.load(); n != nullptr && status.code() == ErrorCode::NotLeader) {
    r.leader = status.leader_hint();
    if (r.leader == n->leader()) r.leader_address = n->leader_address().to_string();
  }
  r.status = std::move(status);
  (void)stream->send(r);
}

void ClientService::on_client_request(wire::ClientRequest request,
                                      std::shared_ptr<transport::ClientStream> stream) {
  NodeImpl* node = node_.load();
  const std::uint64_t id = request.request_id;
  if (node == nullptr || stopping_) {
    reply_error(stream, id, Status{ErrorCode::Unavailable, "node is starting or stopping"});
    return;
  }
  const auto timeout = request.timeout_ms == 0 ? kDefaultAdminTimeout
                                               : std::chrono::milliseconds(request.timeout_ms);
  std::visit(
      [&](auto& body) {
        using T = std::decay_t<decltype(body)>;
        if constexpr (std::is_same_v<T, wire::ProposeRequest>) {
          if (maybe_forward(*node, id, request.timeout_ms, body, stream)) return;
          const ClientSession session{body.client_id, body.sequence};
          node->propose(std::move(body.command), session,
                        [this, stream, id, tracer = node->tracer()](Result<ProposeResult> r) {
            if (!r) {
              reply_error(stream, id, r.status());
              return;
            }
            if (tracer != nullptr) tracer->replied(r.value().index);
            wire::ClientReply reply;
            reply.request_id = id;
            reply.propose = r.value();
            (void)stream->send(reply);
          });
        } else if constexpr (std::is_same_v<T, wire::SubscribeRequest>) {
          stream_subscription(id, body.from, stream);
        } else if constexpr (std::is_same_v<T, wire::GetRoleRequest>) {
          wire::ClientReply reply;
          reply.request_id = id;
          reply.role = node->role();
          reply.leader = node->leader();
          reply.leader_address = node->leader_address().to_string();
          (void)stream->send(reply);
        } else if constexpr (std::is_same_v<T, wire::GetLeaderRequest>) {
          wire::ClientReply reply;
          reply.request_id = id;
          reply.leader = node->leader();
          reply.leader_address = node->leader_address().to_string();
          if (reply.leader == kNoNode) reply.status = Status{ErrorCode::Unavailable, "no leader known"};
          (void)stream->send(reply);
        } else if constexpr (std::is_same_v<T, wire::GetClusterInfoRequest>) {
          blocking_.post([node, stream, id] {
            wire::ClientReply reply;
            reply.request_id = id;
            reply.cluster_info = node->cluster_info();
            reply.leader = reply.cluster_info->leader;
            reply.leader_address = node->leader_address().to_string();
            (void)stream->send(reply);
          });
        } else if constexpr (std::is_same_v<T, wire::ReadIndexRequest>) {
          node->read_index_async(timeout, [this, stream, id](Result<LogIndex> r) {
            if (!r) {
              reply_error(stream, id, r.status());
              return;
            }
            wire::ClientReply reply;
            reply.request_id = id;
            reply.read_index = r.value();
            (void)stream->send(reply);
          });
        } else {
          // Membership administration: blocks until committed or timed out.
          blocking_.post([this, node, stream, id, timeout, body = std::move(body)] {
            Status s;
            if constexpr (std::is_same_v<T, wire::AddLearnerRequest>) {
              s = node->add_learner(body.member, timeout);
            } else if constexpr (std::is_same_v<T, wire::PromoteRequest>) {
              s = node->promote(body.id, timeout);
            } else if constexpr (std::is_same_v<T, wire::RemoveRequest>) {
              s = node->remove(body.id, timeout);
            } else {
              s = node->transfer_leadership(body.id, timeout);
            }
            if (!s) {
              reply_error(stream, id, s);
              return;
            }
            wire::ClientReply reply;
            reply.request_id = id;
            reply.leader = node->leader();
            reply.leader_address = node->leader_address().to_string();
            (void)stream->send(reply);
          });
        }
      },
      request.body);
}

void ClientService::reap_finished() {
  std::lock_guard lock(streamers_mu_);
  for (auto it = streamers_.begin(); it != streamers_.end();) {
    if (it->done.load()) {
      it->thread.join();
      it = streamers_.erase(it);
    } else {
      ++it;
    }
  }
}

void ClientService::stream_subscription(std::uint64_t request_id, LogIndex from,
                                        std::shared_ptr<transport::ClientStream> stream) {
  reap_finished();
  NodeImpl* node = node_.load();
  auto start = node->subscription_start(from);
  if (!start) {
    reply_error(stream, request_id, start.status());
    return;
  }
  std::lock_guard lock(streamers_mu_);
  if (streamers_.size() >= kMaxSubscribers) {
    reply_error(stream, request_id, Status{ErrorCode::Busy, "too many subscribers"});
    return;
  }
  Streamer& s = streamers_.emplace_back();
  s.thread = std::thread([this, &s, node, request_id, stream, next = start.value()]() mutable {
    // One thread per remote subscriber: it reads at its own pace and never holds up the
    // raft thread. If the connection's queue fills (the consumer is too slow), the
    // stream is cut off and the client resubscribes from its last index. Entries go out
    // as they are in the log (internal ones and session headers included): the client
    // library makes of them what its subscriber asked for (core/subscriber_view.h).
    const auto position = node->register_reader(next);
    while (!stopping_ && stream->open()) {
      auto r = node->read_committed(next, kStreamBatchEntries, std::chrono::milliseconds(200));
      if (!r) {
        reply_error(stream, request_id, r.status());
        break;
      }
      if (r.value().empty()) continue;
      next = r.value().back().index.next();
      position->store(next.value(), std::memory_order_relaxed);
      wire::ClientReply reply;
      reply.request_id = request_id;
      reply.entries = std::move(r).value();
      if (!stream->send(reply)) {
        reply_error(stream, request_id,
                    Status{ErrorCode::Busy, "subscriber fell behind; resubscribe from its last index"});
        break;
      }
    }
    s.done = true;
  });
}

}  // namespace rlr::node
