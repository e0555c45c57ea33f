// The resubscribing stream of committed entries behind Client::subscribe (private).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "rlr/client.h"

namespace rlr::client {

/// Most entries buffered between the network and the consumer; past it the
/// subscription stops reading (the node may then cut it off, and it resubscribes).
inline constexpr std::size_t kSubscriptionBufferEntries = 65536;
/// Most entries one next() returns.
inline constexpr std::size_t kSubscriptionBatchEntries = 4096;

/// Starts a subscription from `from` (0 is taken as 1). `candidates` are the node
/// addresses to try, best first (the leader's, then the bootstrap list).
[[nodiscard]] std::unique_ptr<Subscription> make_subscription(
    const ClientOptions& options, std::vector<std::string> candidates, LogIndex from,
    SubscribeOptions subscribe_options);

}  // namespace rlr::client
