#include "prometheus_text.h"

#include <map>
#include <sstream>

#include <prometheus/metric_family.h>
#include <prometheus/text_serializer.h>

namespace rlr::admin {

namespace {

prometheus::MetricType to_prometheus(MetricType t) {
  switch (t) {
    case MetricType::Counter: return prometheus::MetricType::Counter;
    case MetricType::Gauge: return prometheus::MetricType::Gauge;
    case MetricType::Histogram: return prometheus::MetricType::Histogram;
  }
  return prometheus::MetricType::Untyped;
}

prometheus::ClientMetric to_prometheus(const MetricSample& s, MetricType type) {
  prometheus::ClientMetric m;
  for (const auto& l : s.labels) m.label.push_back(prometheus::ClientMetric::Label{l.name, l.value});
  switch (type) {
    case MetricType::Counter: m.counter.value = s.value; break;
    case MetricType::Gauge: m.gauge.value = s.value; break;
    case MetricType::Histogram:
      m.histogram.sample_count = s.count;
      m.histogram.sample_sum = s.sum;
      for (const auto& b : s.buckets) {
        m.histogram.bucket.push_back(prometheus::ClientMetric::Bucket{b.cumulative_count, b.upper_bound});
      }
      // The serializer writes the +Inf bucket from the last bucket it is given.
      m.histogram.bucket.push_back(prometheus::ClientMetric::Bucket{
          s.count, std::numeric_limits<double>::infinity()});
      break;
  }
  return m;
}

}  // namespace

std::string to_prometheus_text(const std::vector<NodeMetrics>& nodes) {
  std::map<std::string, prometheus::MetricFamily> families;  // sorted, one per name
  for (const NodeMetrics& n : nodes) {
    for (const MetricFamily& f : n.families) {
      prometheus::MetricFamily& out = families[f.name];
      out.name = f.name;
      out.help = f.help;
      out.type = to_prometheus(f.type);
      for (const MetricSample& s : f.samples) out.metric.push_back(to_prometheus(s, f.type));
    }
  }
  std::vector<prometheus::MetricFamily> list;
  list.reserve(families.size());
  for (auto& [name, f] : families) list.push_back(std::move(f));
  std::ostringstream out;
  prometheus::TextSerializer().Serialize(out, list);
  return out.str();
}

}  // namespace rlr::admin
