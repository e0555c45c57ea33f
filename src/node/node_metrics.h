// A node's metrics (private): the histograms its threads record into, the counters its
// runtime keeps, and the builder that turns them into the public NodeMetrics
// (rlr/metrics.h).
//
// Where each number is kept, so that recording costs the hot path next to nothing:
//  - what the raft thread alone changes (the core's events, the replica's counters, the
//    log positions) stays in plain fields there; Node::metrics() reads them on the raft
//    thread, as cluster_info() does;
//  - what several threads record (durable-write and apply latencies, batch sizes) goes
//    into lock-free histograms (util/histogram.h), one relaxed add per bucket and sum;
//  - a proposal's commit latency is recorded once per run of proposals that share a
//    deadline (one propose batch), not once per entry.
#pragma once

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/metrics.h"
#include "rlr/types.h"
#include "util/histogram.h"

namespace rlr::node {

/// Histograms recorded by the raft, storage, completion and apply threads. Values in
/// nanoseconds, entries or bytes.
struct NodeHistograms {
  util::LogLinearHistogram commit_latency{10'000, 6};   ///< proposal accepted -> committed
  util::LogLinearHistogram persist_latency{10'000, 6};  ///< one durable write (append + fsync)
  util::LogLinearHistogram read_latency{10'000, 6};     ///< read_index() call -> answer
  util::LogLinearHistogram batch_entries{1, 6};         ///< entries per durable write
  util::LogLinearHistogram batch_bytes{100, 7};         ///< payload bytes per durable write
};

/// Records one durable write of `entries` that took `took` (no-op when `h` is null): its
/// latency, and its size in entries and payload bytes.
inline void record_write(NodeHistograms* h, std::chrono::steady_clock::duration took,
                         std::span<const Entry> entries) {
  if (h == nullptr) return;
  h->persist_latency.observe(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()));
  if (entries.empty()) return;
  std::size_t bytes = 0;
  for (const Entry& e : entries) bytes += e.payload.size();
  h->batch_entries.observe(entries.size());
  h->batch_bytes.observe(bytes);
}

/// Builds a NodeMetrics: every sample gets the `cluster` and `node` labels first.
class MetricsBuilder {
 public:
  MetricsBuilder(std::string cluster, NodeId node);
  void counter(std::string_view name, std::string_view help, double value,
               std::vector<MetricLabel> labels = {});
  void gauge(std::string_view name, std::string_view help, double value,
             std::vector<MetricLabel> labels = {});
  /// A histogram in nanoseconds exported in seconds (`scale` 1e-9), or in its own unit
  /// (`scale` 1).
  void histogram(std::string_view name, std::string_view help, const util::LogLinearHistogram& h,
                 double scale, std::vector<MetricLabel> labels = {});
  /// Declares a family that may have no sample on this node (it is then omitted).
  void declare(std::string_view name, std::string_view help, MetricType type);
  /// The families sorted by name, without empty ones.
  [[nodiscard]] NodeMetrics finish(std::vector<RoleChange> role_changes) &&;

 private:
  MetricSample& sample(std::string_view name, std::string_view help, MetricType type,
                       std::vector<MetricLabel> labels);
  std::vector<MetricLabel> base_;
  std::vector<MetricFamily> families_;
};

}  // namespace rlr::node
