// rlr-bench --trace: where a commit's time goes. Joins the clients' view of each
// acknowledged proposal (OpTrace) with every node's commit-path stamps (node/trace.h, one
// file per node) by log index and term, and takes each commit apart:
//
//   the chain, whose segments add up to the client's latency:
//     proposed -> received by the leader -> appended -> committed -> replied -> acked
//     (a stamp a shape lacks, e.g. `replied` for clients in the leader's process, is
//     skipped: the next segment runs from the stamp before it)
//   the commit wait's two branches, run in parallel (on 3 nodes a leader that writes on
//   its raft thread commits once both are done; with a storage thread, two followers'
//   acknowledgements may commit before its own write ends):
//     the leader's own write:  appended -> synced
//     the replication:         appended -> sent -> follower arrived -> follower synced
//                              -> acknowledgement stepped by the leader
//     then:                    the later of the two -> committed
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "load.h"
#include "rlr/status.h"
#include "stats.h"

namespace rlrbench {

/// One segment's figures over the traced commits, in microseconds.
struct SegmentStats {
  std::string name;
  bool chain = false;    ///< part of the chain (sums to the latency) or a branch detail
  std::size_t count = 0; ///< commits that had both stamps
  double p50_us = 0;
  double p99_us = 0;
  double tail_mean_us = 0;  ///< mean over the tail commits
};

struct Breakdown {
  std::size_t ops = 0;        ///< acknowledged proposals the clients kept
  std::size_t traced = 0;     ///< those the leader's trace held
  std::size_t tail = 0;       ///< the slowest 1% of the traced ones (at least 1)
  double tail_from_us = 0;    ///< the tail's lowest latency
  double tail_mean_us = 0;    ///< the tail's mean latency
  /// Tail commits whose leader's own write ended after the acknowledging follower's, and
  /// the other way round (a commit without the follower's stamps counts in neither).
  std::size_t tail_leader_write_last = 0;
  std::size_t tail_follower_write_last = 0;
  std::vector<SegmentStats> segments;
  std::vector<std::string> slowest;  ///< the slowest commits, each rendered on one line
};

/// Reads every node's trace file (node_files[k] of node k+1), joins `ops` with them and
/// summarizes. Errors: the trace files' read errors; Unavailable when no op
/// could be joined.
[[nodiscard]] rlr::Result<Breakdown> analyze_trace(const std::vector<std::string>& node_files,
                                                  const std::vector<OpTrace>& ops);

/// The breakdown as a table, for the report.
void print_breakdown(std::FILE* out, const Breakdown& b);
[[nodiscard]] Json to_json(const Breakdown& b);

}  // namespace rlrbench
