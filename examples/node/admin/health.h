// The admin server's health checks (/healthz, /readyz).
//
//  - healthy: the process answers, the node's storage has not failed a write, and its
//    data directory takes a small write and fsync now (a full or read-only disk fails
//    it). For a liveness probe: restart the process when it fails.
//  - ready: healthy, a leader is known, and this node trails that leader's commit index
//    by at most `max_lag` entries (the leader is ready when healthy). For a load
//    balancer or a readiness probe: send readers elsewhere while it fails.
#pragma once

#include <cstdint>
#include <string>

#include "rlr/node.h"

namespace rlr::admin {

struct Verdict {
  bool ok = false;
  std::string detail;  ///< one line per check, "ok: ..." or "failed: ..."
};

/// /healthz. `data_dir` empty: no directory to probe (in-memory storage).
[[nodiscard]] Verdict check_health(const Node& node, const NodeMetrics& m, const std::string& data_dir);
/// /readyz, given the /healthz verdict.
[[nodiscard]] Verdict check_ready(const Node& node, const NodeMetrics& m, const Verdict& health,
                                  std::uint64_t max_lag);

}  // namespace rlr::admin
