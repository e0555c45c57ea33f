#include "node/node_metrics.h"

#include <algorithm>
#include <utility>

namespace rlr::node {

MetricsBuilder::MetricsBuilder(std::string cluster, NodeId node)
    : base_{MetricLabel{"cluster", std::move(cluster)}, MetricLabel{"node", std::to_string(node.value())}} {}

void MetricsBuilder::declare(std::string_view name, std::string_view help, MetricType type) {
  for (const auto& f : families_) {
    if (f.name == name) return;
  }
  families_.push_back(MetricFamily{std::string(name), std::string(help), type, {}});
}

MetricSample& MetricsBuilder::sample(std::string_view name, std::string_view help, MetricType type,
                                     std::vector<MetricLabel> labels) {
  declare(name, help, type);
  auto it = std::find_if(families_.begin(), families_.end(), [&](const auto& f) { return f.name == name; });
  MetricSample s;
  s.labels = base_;
  for (auto& l : labels) s.labels.push_back(std::move(l));
  it->samples.push_back(std::move(s));
  return it->samples.back();
}

void MetricsBuilder::counter(std::string_view name, std::string_view help, double value,
                             std::vector<MetricLabel> labels) {
  sample(name, help, MetricType::Counter, std::move(labels)).value = value;
}

void MetricsBuilder::gauge(std::string_view name, std::string_view help, double value,
                           std::vector<MetricLabel> labels) {
  sample(name, help, MetricType::Gauge, std::move(labels)).value = value;
}

void MetricsBuilder::histogram(std::string_view name, std::string_view help,
                               const util::LogLinearHistogram& h, double scale,
                               std::vector<MetricLabel> labels) {
  h.fill(sample(name, help, MetricType::Histogram, std::move(labels)), scale);
}

NodeMetrics MetricsBuilder::finish(std::vector<RoleChange> role_changes) && {
  NodeMetrics m;
  std::erase_if(families_, [](const MetricFamily& f) { return f.samples.empty(); });
  std::sort(families_.begin(), families_.end(),
            [](const MetricFamily& a, const MetricFamily& b) { return a.name < b.name; });
  m.families = std::move(families_);
  m.role_changes = std::move(role_changes);
  return m;
}

}  // namespace rlr::node
