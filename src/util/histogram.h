// A log-linear histogram of non-negative integers (private): lock-free observation,
// buckets with one significant decimal digit.
//
// Bucket bounds are base x {1} then, for each of `decades` decades, 10^d x base x
// {2, 3, ..., 10}: for base 10'000 ns (10 us) and 6 decades, 10 us, 20 us, ..., 90 us,
// 100 us, 200 us, ... 10 s. A value lands in the first bucket whose bound is at or above
// it; values above the last bound land in the overflow bucket (+Inf). So a quantile read
// from the buckets is within one significant digit of the truth.
//
// Thread-safety: observe() from any number of threads (relaxed atomic adds: a
// concurrent snapshot() may see a bucket's count before the sum that goes with it);
// snapshot() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

#include "rlr/metrics.h"

namespace rlr::util {

class LogLinearHistogram {
 public:
  static constexpr int kMaxDecades = 9;
  static constexpr std::size_t kMaxBuckets = 1 + 9 * kMaxDecades + 1;  // + overflow

  /// REQUIRES: base >= 1, 1 <= decades <= kMaxDecades, base x 10^decades fits 64 bits.
  LogLinearHistogram(std::uint64_t base, int decades);
  LogLinearHistogram(const LogLinearHistogram&) = delete;
  LogLinearHistogram& operator=(const LogLinearHistogram&) = delete;

  /// Records `n` observations of `value`.
  void observe(std::uint64_t value, std::uint64_t n = 1) noexcept {
    buckets_[index_of(value)].fetch_add(n, std::memory_order_relaxed);
    sum_.fetch_add(value * n, std::memory_order_relaxed);
  }
  /// The bucket `value` falls in.
  [[nodiscard]] std::size_t index_of(std::uint64_t value) const noexcept {
    if (value <= base_) return 0;
    std::uint64_t p = base_;
    int d = 0;
    while (d < decades_ && value > p * 10) {
      p *= 10;
      ++d;
    }
    if (d == decades_) return finite_buckets_;  // overflow
    const std::uint64_t m = value / p + (value % p != 0 ? 1 : 0);  // 2..10, no overflow
    return 1 + static_cast<std::size_t>(d) * 9 + static_cast<std::size_t>(m - 2);
  }
  /// The upper bound of finite bucket `i` (i < finite_buckets()).
  [[nodiscard]] std::uint64_t bound(std::size_t i) const noexcept { return bounds_[i]; }
  [[nodiscard]] std::size_t finite_buckets() const noexcept { return finite_buckets_; }

  /// The histogram as a sample, each bound and the sum multiplied by `scale` (1e-9
  /// turns nanoseconds into seconds).
  void fill(MetricSample& out, double scale) const;
  /// Observations so far.
  [[nodiscard]] std::uint64_t count() const noexcept;

 private:
  const std::uint64_t base_;
  const int decades_;
  const std::size_t finite_buckets_;
  std::array<std::uint64_t, kMaxBuckets> bounds_{};
  std::array<std::atomic<std::uint64_t>, kMaxBuckets> buckets_{};
  std::atomic<std::uint64_t> sum_{0};
};

}  // namespace rlr::util
