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

namespace rlr::node {

class ClientService final : public transport::ClientHandler {
 public:
  ClientService() = default;
  ~ClientService() override;
  ClientService(const ClientService&) = delete;
  ClientService& operator=(const ClientService&) = delete;

  /// Connects the service to its node; requests before this get Unavailable.
  void attach(NodeImpl* node) { node_.store(node); }
  void on_client_request(wire::ClientRequest request,
                         std::shared_ptr<transport::ClientStream> stream) override;

  /// Most concurrent remote subscriptions served; more get Busy.
  static constexpr std::size_t kMaxSubscribers = 64;

 private:
  void reply_error(const std::shared_ptr<transport::ClientStream>& stream, std::uint64_t id,
                   Status status);
  void stream_subscription(std::uint64_t request_id, LogIndex from,
                           std::shared_ptr<transport::ClientStream> stream);
  void reap_finished();

  std::atomic<NodeImpl*> node_{nullptr};
  std::atomic<bool> stopping_{false};
  Executor blocking_{"rlr-admin"};  // admin calls and cluster info, which block up to a timeout

  struct Streamer {
    std::thread thread;
    std::atomic<bool> done{false};
  };
  std::mutex streamers_mu_;
  std::list<Streamer> streamers_;
};

}  // namespace rlr::node
