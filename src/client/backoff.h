// Exponential backoff with jitter (private to the client library).
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace rlr::client {

/// The delay before retry number `attempt` (1, 2, ...): min * 2^(attempt-1), capped at
/// max, then drawn uniformly from [delay/2, delay] so that clients that failed together
/// do not retry together.
inline std::chrono::milliseconds backoff_delay(std::uint32_t attempt, std::chrono::milliseconds min,
                                               std::chrono::milliseconds max, std::mt19937_64& rng) {
  const std::int64_t lo = std::max<std::int64_t>(1, min.count());
  const std::int64_t hi = std::max<std::int64_t>(lo, max.count());
  std::int64_t d = lo;
  for (std::uint32_t i = 1; i < attempt && d < hi; ++i) d *= 2;
  d = std::min(d, hi);
  std::uniform_int_distribution<std::int64_t> pick(d / 2, d);
  return std::chrono::milliseconds(pick(rng));
}

}  // namespace rlr::client
