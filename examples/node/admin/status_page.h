// The admin server's status page (/): the cluster table of `rlr-ctl status`, charts of
// the commit rate and commit latency over the last minutes, recent role changes, and a
// warning banner. Server-rendered HTML with inline SVG; no script. Refreshes itself
// every 5 s.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "rlr/cluster.h"
#include "rlr/metrics.h"
#include "status_history.h"

namespace rlr::admin {

struct StatusInputs {
  const ClusterInfo& cluster;
  const NodeMetrics& metrics;
  const std::vector<HistoryPoint>& history;
  /// A follower further behind than this is flagged (the /readyz bound).
  std::uint64_t max_lag = 0;
};

/// The warnings the banner shows (empty: none): divergence, a lagging member, a failed
/// or stalled state machine, failed storage, no leader.
[[nodiscard]] std::vector<std::string> status_warnings(const StatusInputs& in);

/// The whole page.
[[nodiscard]] std::string render_status_page(const StatusInputs& in);

}  // namespace rlr::admin
