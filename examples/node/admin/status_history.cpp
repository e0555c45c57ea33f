#include "status_history.h"

namespace rlr::admin {

void StatusHistory::add(const NodeMetrics& m, std::chrono::system_clock::time_point at) {
  // Without the raft thread's numbers (it did not answer) there is no commit count: a
  // zero would chart as a drop and then a spike.
  if (!m.value("rlr_entries_committed_total")) return;
  Sample s;
  s.at = at;
  s.committed = m.value("rlr_entries_committed_total").value_or(0);
  if (const MetricFamily* f = m.find("rlr_proposal_commit_duration_seconds"); f && !f->samples.empty()) {
    s.latency = f->samples.front();
  }
  samples_.push_back(std::move(s));
  while (samples_.size() > kMaxSamples) samples_.pop_front();
}

std::vector<HistoryPoint> StatusHistory::points() const {
  std::vector<HistoryPoint> out;
  for (std::size_t i = 1; i < samples_.size(); ++i) {
    const Sample& prev = samples_[i - 1];
    const Sample& cur = samples_[i];
    HistoryPoint p;
    p.at = cur.at;
    const double seconds = std::chrono::duration<double>(cur.at - prev.at).count();
    if (seconds > 0 && cur.committed >= prev.committed) p.commit_rate = (cur.committed - prev.committed) / seconds;
    // The commits of the window: the difference of two cumulative histograms.
    const Sample& base = samples_[i >= kPercentileWindow ? i - kPercentileWindow : 0];
    if (cur.latency.buckets.size() == base.latency.buckets.size() && cur.latency.count > base.latency.count) {
      MetricSample window = cur.latency;
      window.count = cur.latency.count - base.latency.count;
      for (std::size_t b = 0; b < window.buckets.size(); ++b) {
        window.buckets[b].cumulative_count -= base.latency.buckets[b].cumulative_count;
      }
      p.commit_p50 = histogram_quantile(window, 0.5);
      p.commit_p99 = histogram_quantile(window, 0.99);
    }
    out.push_back(p);
  }
  return out;
}

}  // namespace rlr::admin
