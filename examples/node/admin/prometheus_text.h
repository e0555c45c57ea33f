// Prometheus' text exposition format (version 0.0.4) of librlr's metrics.
//
// The format itself (escaping, number formatting, histogram _bucket/_sum/_count lines
// with their `le` label) is prometheus-cpp's TextSerializer: this file only maps
// rlr::NodeMetrics onto prometheus-cpp's MetricFamily.
#pragma once

#include <string>
#include <vector>

#include "rlr/metrics.h"

namespace rlr::admin {

/// The content type of to_prometheus_text()'s output.
inline constexpr const char* kPrometheusContentType = "text/plain; version=0.0.4; charset=utf-8";

/// The metrics of one or more nodes (an embedder running several exports them together:
/// their samples differ by the `node` label) in the text format.
[[nodiscard]] std::string to_prometheus_text(const std::vector<NodeMetrics>& nodes);

}  // namespace rlr::admin
