#include "rlr/metrics.h"

#include <algorithm>
#include <cmath>

namespace rlr {

std::string_view MetricSample::label(std::string_view name) const {
  for (const auto& l : labels) {
    if (l.name == name) return l.value;
  }
  return {};
}

std::string_view to_string(RoleChangeReason reason) {
  switch (reason) {
    case RoleChangeReason::Started: return "started";
    case RoleChangeReason::ElectionTimeout: return "election_timeout";
    case RoleChangeReason::LeaderLost: return "leader_lost";
    case RoleChangeReason::TransferRequested: return "transfer_requested";
    case RoleChangeReason::ElectionWon: return "election_won";
    case RoleChangeReason::ElectionLost: return "election_lost";
    case RoleChangeReason::LeaderHeard: return "leader_heard";
    case RoleChangeReason::HigherTerm: return "higher_term";
    case RoleChangeReason::QuorumLost: return "quorum_lost";
    case RoleChangeReason::RemovedFromConfig: return "removed_from_config";
    case RoleChangeReason::MembershipChanged: return "membership_changed";
    case RoleChangeReason::StorageFailed: return "storage_failed";
    case RoleChangeReason::Other: return "other";
  }
  return "other";
}

const MetricFamily* NodeMetrics::find(std::string_view name) const {
  for (const auto& f : families) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

std::optional<double> NodeMetrics::value(std::string_view name,
                                         const std::vector<MetricLabel>& labels) const {
  const MetricFamily* f = find(name);
  if (f == nullptr || f->type == MetricType::Histogram) return std::nullopt;
  for (const auto& s : f->samples) {
    const bool all = std::all_of(labels.begin(), labels.end(), [&](const MetricLabel& want) {
      return std::find(s.labels.begin(), s.labels.end(), want) != s.labels.end();
    });
    if (all) return s.value;
  }
  return std::nullopt;
}

double histogram_quantile(const MetricSample& sample, double q) {
  if (sample.count == 0 || sample.buckets.empty()) return 0;
  q = std::clamp(q, 0.0, 1.0);
  const double rank = q * static_cast<double>(sample.count);
  double lower = 0;
  std::uint64_t below = 0;
  for (const auto& b : sample.buckets) {
    if (static_cast<double>(b.cumulative_count) >= rank && b.cumulative_count > below) {
      const double in_bucket = static_cast<double>(b.cumulative_count - below);
      return lower + (b.upper_bound - lower) * ((rank - static_cast<double>(below)) / in_bucket);
    }
    lower = b.upper_bound;
    below = b.cumulative_count;
  }
  return sample.buckets.back().upper_bound;
}

}  // namespace rlr
