/// \file
/// librlr — a node's metrics: counters, gauges and histograms a host exports (rlr-node
/// serves them to Prometheus), and the node's recent role changes with their reasons.
///
/// Node::metrics() returns a NodeMetrics: a snapshot taken at the call, plain data the
/// caller owns. Names and labels follow Prometheus' conventions (a `rlr_` prefix, the
/// unit in the name, `_total` on counters, `_seconds` and `_bytes` on histograms); every
/// sample carries the labels `cluster` and `node`. The hot path only adds to counters
/// and buckets; nothing is formatted until a snapshot is taken.
///
/// Example: print the commit count and the median commit latency.
/// \code{.cpp}
///   rlr::NodeMetrics m = node->metrics();
///   if (auto v = m.value("rlr_entries_committed_total")) std::printf("%.0f\n", *v);
///   if (const auto* f = m.find("rlr_proposal_commit_duration_seconds"); f && !f->samples.empty()) {
///     std::printf("p50 %.6f s\n", rlr::histogram_quantile(f->samples[0], 0.5));
///   }
/// \endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/export.h"
#include "rlr/types.h"

namespace rlr {

/// What a metric measures, as Prometheus types it.
enum class MetricType : std::uint8_t {
  Counter,    ///< only grows (from 0 at the node's start)
  Gauge,      ///< a current value
  Histogram,  ///< observations counted in buckets, with their sum and count
};

/// One label of a sample: a name and its value.
struct RLR_API MetricLabel {
  std::string name;   ///< [a-zA-Z_][a-zA-Z0-9_]*
  std::string value;  ///< any UTF-8
  /// Same name and value.
  friend bool operator==(const MetricLabel&, const MetricLabel&) = default;
};

/// One bucket of a histogram sample: the observations at or below `upper_bound`
/// (cumulative, as Prometheus' `le` buckets).
struct RLR_API HistogramBucket {
  double upper_bound = 0;             ///< in the metric's unit (seconds, bytes, entries)
  std::uint64_t cumulative_count = 0; ///< observations at or below upper_bound
};

/// One time series of a family: its labels and its value (counters and gauges) or its
/// buckets, sum and count (histograms).
struct RLR_API MetricSample {
  std::vector<MetricLabel> labels;  ///< `cluster` and `node` first, then the family's own
  double value = 0;                 ///< counters and gauges
  /// Histograms: upper bounds ascending, counts cumulative; the +Inf bucket is `count`.
  std::vector<HistogramBucket> buckets;
  double sum = 0;                   ///< histograms: the sum of the observations
  std::uint64_t count = 0;          ///< histograms: the number of observations
  /// The value of label `name`; empty when the sample has no such label.
  [[nodiscard]] std::string_view label(std::string_view name) const;
};

/// A metric: its name, help text, type and samples (one per label set).
struct RLR_API MetricFamily {
  std::string name;  ///< e.g. rlr_entries_committed_total
  std::string help;  ///< one line: what is counted or measured, in which unit
  MetricType type = MetricType::Counter;  ///< counter, gauge or histogram
  std::vector<MetricSample> samples;      ///< one per label set, at least one
};

/// Why a node's role or leader changed (RoleChange::reason).
enum class RoleChangeReason : std::uint8_t {
  Started,          ///< the node started (as a follower, with the stored term)
  ElectionTimeout,  ///< it heard from no leader within the election timeout: campaigns
  LeaderLost,       ///< its connection to the leader dropped or went silent: campaigns early
  TransferRequested,  ///< the leader handed leadership to it (TimeoutNow): campaigns
  ElectionWon,      ///< a majority voted for it: leads
  ElectionLost,     ///< its (pre-)vote failed: back to follower
  LeaderHeard,      ///< a leader of the current or a higher term contacted it
  HigherTerm,       ///< a message carried a higher term: follower without a leader
  QuorumLost,       ///< as leader, it heard from no majority for an election timeout
  RemovedFromConfig,  ///< as leader, a configuration without it committed
  MembershipChanged,  ///< a configuration made it a learner or a voter
  StorageFailed,    ///< a write to its storage failed: it takes no part any more
  Other,            ///< any other step to follower (e.g. a learner's lease expired)
};

/// The reason's name in snake_case, as the status page and logs show it.
[[nodiscard]] RLR_API std::string_view to_string(RoleChangeReason reason);

/// A change of this node's role, term or known leader.
struct RLR_API RoleChange {
  /// When the node saw the change (wall clock).
  std::chrono::system_clock::time_point at;
  Term term;                 ///< the term after the change
  Role role = Role::Follower;  ///< the role after the change
  NodeId leader;             ///< the leader known after the change; kNoNode when none
  RoleChangeReason reason = RoleChangeReason::Other;  ///< why it changed
};

/// A snapshot of one node's metrics (Node::metrics()).
struct RLR_API NodeMetrics {
  /// Every family, sorted by name; families with no sample (e.g. per-peer traffic on
  /// a node without peers) are omitted.
  std::vector<MetricFamily> families;
  /// The most recent role changes (at most 64), oldest first.
  std::vector<RoleChange> role_changes;

  /// The family named `name`, or null.
  [[nodiscard]] const MetricFamily* find(std::string_view name) const;
  /// The value of the first sample of counter or gauge `name` whose labels include every
  /// (name, value) of `labels`; nullopt when there is none.
  [[nodiscard]] std::optional<double> value(std::string_view name,
                                            const std::vector<MetricLabel>& labels = {}) const;
};

/// The `q`-quantile (0 <= q <= 1) of a histogram sample, interpolated linearly within
/// the bucket it falls in (as Prometheus' histogram_quantile()); 0 for an empty sample,
/// the highest finite bound when it falls in the +Inf bucket.
[[nodiscard]] RLR_API double histogram_quantile(const MetricSample& sample, double q);

}  // namespace rlr
