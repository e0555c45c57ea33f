// Follower forwarding (private): a node that is not the leader relays a client's
// proposal to the leader over one internal client connection and hands back the
// leader's reply. Used by the node's client service when NodeOptions::forward_proposals
// is set; see docs/leader-routing.md.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "rlr/status.h"
#include "wire/client_codec.h"

namespace rlr::client {

/// Request ids with this bit set come from a node forwarding a proposal. A node never
/// forwards such a request again, so two nodes that each think the other leads cannot
/// bounce a proposal between them. Ordinary clients count their ids up from 1.
inline constexpr std::uint64_t kForwardedRequestBit = std::uint64_t{1} << 63;

struct ForwarderOptions {
  std::string cluster_id;
  std::string token;
  std::size_t max_frame_bytes = 64U << 20;
  std::size_t max_inflight = 4096;  ///< more forwarded proposals at once fail with Busy
};

class Forwarder {
 public:
  explicit Forwarder(ForwarderOptions options);
  ~Forwarder();
  Forwarder(const Forwarder&) = delete;
  Forwarder& operator=(const Forwarder&) = delete;

  using Done = std::function<void(Result<wire::ClientReply>)>;
  /// Sends `proposal` (with the client's own session) to the node at `leader_address`:
  /// one attempt, no redirects. `done` runs once, on the forwarder's thread, with the
  /// leader's reply (which may itself be an error, e.g. NotLeader) or with Busy (too many
  /// in flight), Unavailable (the connection failed), Timeout (no reply in time; the
  /// proposal may still commit), ShuttingDown. Thread-safe.
  void forward(const std::string& leader_address, wire::ProposeRequest proposal,
               std::chrono::milliseconds timeout, Done done);

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace rlr::client
