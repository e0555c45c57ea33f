#include "util/histogram.h"

#include <cassert>

namespace rlr::util {

LogLinearHistogram::LogLinearHistogram(std::uint64_t base, int decades)
    : base_(base), decades_(decades), finite_buckets_(1 + 9 * static_cast<std::size_t>(decades)) {
  assert(base >= 1 && decades >= 1 && decades <= kMaxDecades);
  bounds_[0] = base;
  std::uint64_t p = base;
  for (int d = 0; d < decades; ++d) {
    for (std::uint64_t m = 2; m <= 10; ++m) bounds_[1 + static_cast<std::size_t>(d) * 9 + (m - 2)] = m * p;
    p *= 10;
  }
}

void LogLinearHistogram::fill(MetricSample& out, double scale) const {
  out.buckets.clear();
  out.buckets.reserve(finite_buckets_);
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < finite_buckets_; ++i) {
    cumulative += buckets_[i].load(std::memory_order_relaxed);
    out.buckets.push_back(HistogramBucket{static_cast<double>(bounds_[i]) * scale, cumulative});
  }
  cumulative += buckets_[finite_buckets_].load(std::memory_order_relaxed);
  out.count = cumulative;
  out.sum = static_cast<double>(sum_.load(std::memory_order_relaxed)) * scale;
}

std::uint64_t LogLinearHistogram::count() const noexcept {
  std::uint64_t n = 0;
  for (std::size_t i = 0; i <= finite_buckets_; ++i) n += buckets_[i].load(std::memory_order_relaxed);
  return n;
}

}  // namespace rlr::util
