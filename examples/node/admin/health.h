// The admin server's health checks (/healthz, /readyz).
//
//  - healthy: the process answers, its raft thread answers (Node::metrics() got the
//    numbers only that thread has), the node's storage has not failed a write, and its
//    data directory takes a small write and fsync (a full or read-only disk fails it;
//    the probe runs at most once a second, later checks reuse its result). For a
//    liveness probe: restart the process when it fails.
//  - ready: healthy, a leader is known, and this node trails that leader's commit index
//    by at most `max_lag` entries (the leader is ready when healthy). For a load
//    balancer or a readiness probe: send readers elsewhere while it fails.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "rlr/node.h"

namespace rlr::admin {

struct Verdict {
  bool ok = false;
  std::string detail;  ///< one line per check, "ok: ..." or "failed: ..."
};

/// Whether `m` holds the numbers only the node's raft thread has (it answered in time).
[[nodiscard]] bool raft_thread_answered(const NodeMetrics& m);

/// Creates, writes, fdatasyncs and removes a small file in `dir`: "" when the directory
/// takes a durable write now, else why not. Used at start-up (the configured data_dir)
/// and by DiskProbe.
[[nodiscard]] std::string probe_durable_write(const std::string& dir);

/// The data-directory probe of /healthz, run at most once per second. Thread-safety:
/// none (the admin server's thread).
class DiskProbe {
 public:
  /// `dir` empty: no directory to probe (in-memory storage).
  explicit DiskProbe(std::string dir) : dir_(std::move(dir)) {}
  /// "" when the directory took a write and fsync, else why not.
  [[nodiscard]] std::string check(std::chrono::steady_clock::time_point now);
  [[nodiscard]] bool enabled() const { return !dir_.empty(); }

 private:
  std::string dir_;
  std::chrono::steady_clock::time_point last_{};
  bool ran_ = false;
  std::string result_;
};

/// /healthz.
[[nodiscard]] Verdict check_health(const NodeMetrics& m, DiskProbe& disk);
/// /readyz, given the /healthz verdict.
[[nodiscard]] Verdict check_ready(const Node& node, const NodeMetrics& m, const Verdict& health,
                                  std::uint64_t max_lag);

}  // namespace rlr::admin
