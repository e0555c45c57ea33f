// Serves the client protocol on the node's listener (private): maps each ClientRequest
// to the Node API and streams subscriptions.
#pragma once

#include <atomic>
#include <list>
#include <memory>
#include <mutex>
#include <thread>

#include "node/node_impl.h"
#include "transport/asio_transport.h"

namespace rlr::client {
class Forwarder;
}

namespace rlr::node {

class ClientService final : public transport::ClientHandler {
 public:
  ClientService();
  ~ClientService() override;
  ClientService(const ClientService&) = delete;
  ClientService& operator=(const ClientService&) = delete;

  /// Connects the service to its node; requests before this get Unavailable.
  void attach(NodeImpl* node) { node_.store(node); }
  void on_client_request(wire::ClientRequest request,
                         std::shared_ptr<transport::ClientStream> stream) override;

  /// Most concurrent remote subscriptions served; more get Busy.
  static constexpr std::size_t kMaxSubscribers = 64;
  /// Most committed entries a remote subscription reads and sends in one reply.
  static constexpr std::size_t kStreamBatchEntries = 4096;

 private:
  void reply_error(const std::shared_ptr<transport::ClientStream>& stream, std::uint64_t id,
                   Status status);
  void stream_subscription(std::uint64_t request_id, LogIndex from,
                           std::shared_ptr<transport::ClientStream> stream);
  void reap_finished();
  /// Forwards a follower's Propose to the leader when this node should: forwarding is
  /// on, the request was not forwarded already, and this node follows a leader whose
  /// address it knows. True when the request was taken (the reply comes from the
  /// forwarder's thread).
  bool maybe_forward(NodeImpl& node, std::uint64_t request_id, std::uint32_t timeout_ms,
                     wire::ProposeRequest& body, const std::shared_ptr<transport::ClientStream>& stream);
  /// The connection to the leader used for forwarding, made on first use.
  client::Forwarder& forwarder(const NodeOptions& o);

  std::atomic<NodeImpl*> node_{nullptr};
  std::atomic<bool> stopping_{false};
  Executor blocking_{"rlr-admin"};  // admin calls and cluster info, which block up to a timeout

  struct Streamer {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex streamers_mu_;
  std::list<Streamer> streamers_;
  std::mutex forwarder_mu_;
  std::unique_ptr<client::Forwarder> forwarder_;  // guarded by forwarder_mu_
};

}  // namespace rlr::node
