// rlr-bench: exact latency statistics, resource accounting and a small JSON writer.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace rlrbench {

using Clock = std::chrono::steady_clock;

/// Monotonic time in nanoseconds (steady_clock; vDSO, no syscall).
[[nodiscard]] inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count();
}

/// Exact percentiles of a sample set, in microseconds (nearest-rank on the sorted samples:
/// every sample is kept, nothing is bucketed).
struct Percentiles {
  std::size_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
  double p999_us = 0;
  double max_us = 0;
};

/// Sorts `samples_ns` in place and summarizes it.
[[nodiscard]] Percentiles summarize(std::vector<std::int64_t>& samples_ns);
/// Nearest-rank percentile of sorted samples, q in [0, 1]; 0 for an empty set.
[[nodiscard]] std::int64_t percentile_sorted(const std::vector<std::int64_t>& sorted, double q);

/// CPU seconds (user + system) of this process so far (getrusage).
[[nodiscard]] double self_cpu_seconds();
/// CPU seconds (user + system) of another process from /proc/PID/stat; -1 when unreadable.
[[nodiscard]] double proc_cpu_seconds(pid_t pid);
/// Peak resident set (VmHWM) in MiB from /proc/PID/status (0: this process); -1 when unreadable.
[[nodiscard]] double peak_rss_mib(pid_t pid = 0);
/// Resets this process's peak RSS so that VmHWM covers only what follows (Linux clear_refs 5).
void reset_peak_rss();

/// A JSON value built by hand: objects keep their insertion order.
class Json {
 public:
  static Json object();
  static Json array();
  static Json number(double v);
  static Json integer(std::int64_t v);
  static Json boolean(bool v);
  static Json string(const std::string& v);
  /// Adds `key: value` to an object.
  Json& set(const std::string& key, Json value);
  /// Appends to an array.
  Json& push(Json value);
  [[nodiscard]] std::string dump(int indent = 0) const;
  [[nodiscard]] bool empty() const { return items_.empty(); }

 private:
  enum class Kind { Object, Array, Raw };
  Kind kind_ = Kind::Raw;
  std::string raw_;
  std::vector<std::pair<std::string, Json>> items_;
};

[[nodiscard]] Json to_json(const Percentiles& p);

}  // namespace rlrbench
