// The recent history the status page charts: commit rate and commit latency percentiles,
// sampled from Node::metrics() once a second.
//
// Bounded: the last kMaxSamples samples (ten minutes at one a second); the oldest is
// dropped when a new one comes. Thread-safety: none (the admin server's one thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <vector>

#include "rlr/metrics.h"

namespace rlr::admin {

/// One point of a chart.
struct HistoryPoint {
  std::chrono::system_clock::time_point at;
  double commit_rate = 0;   ///< entries committed per second since the previous sample
  double commit_p50 = 0;    ///< seconds; 0 when no proposal committed in the window
  double commit_p99 = 0;
};

class StatusHistory {
 public:
  static constexpr std::size_t kMaxSamples = 600;
  /// Percentiles are computed over the commits of this many samples (a second's worth on
  /// a quiet node holds too few).
  static constexpr std::size_t kPercentileWindow = 10;

  /// Takes a sample from `m` at `at` (none when `m` lacks the commit count: the node's
  /// raft thread did not answer).
  void add(const NodeMetrics& m, std::chrono::system_clock::time_point at);
  /// Every point, oldest first (the first sample has no rate: there is none).
  [[nodiscard]] std::vector<HistoryPoint> points() const;
  [[nodiscard]] std::size_t size() const { return samples_.size(); }

 private:
  struct Sample {
    std::chrono::system_clock::time_point at;
    double committed = 0;
    MetricSample latency;  ///< cumulative buckets of rlr_proposal_commit_duration_seconds
  };
  std::deque<Sample> samples_;
};

}  // namespace rlr::admin
