// The simulation's only source of randomness: xoshiro256** seeded through splitmix64.
// Every random choice of a run (network delays, faults, client traffic, the cores' own
// election timers) derives from the one 64-bit seed given on the command line, so a run
// replays exactly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rlr::sim {

/// One step of splitmix64: advances `state` and returns a well-mixed value.
constexpr std::uint64_t splitmix64(std::uint64_t& state) noexcept {
  state += 0x9e3779b97f4a7c15ULL;
  std::uint64_t z = state;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

/// A stateless 64-bit mixer (a splitmix64 finaliser), for hashing.
constexpr std::uint64_t mix64(std::uint64_t v) noexcept {
  std::uint64_t state = v;
  return splitmix64(state);
}

class SimRng {
 public:
  explicit SimRng(std::uint64_t seed) noexcept {
    std::uint64_t sm = seed;
    for (std::uint64_t& word : s_) word = splitmix64(sm);
  }

  std::uint64_t next() noexcept {
    const std::uint64_t result = rotl(s_[1] * 5, 7) * 9;
    const std::uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = rotl(s_[3], 45);
    return result;
  }

  /// Uniform in [lo, hi], both inclusive. REQUIRES lo <= hi.
  std::uint64_t uniform(std::uint64_t lo, std::uint64_t hi) noexcept {
    const std::uint64_t span = hi - lo;
    if (span == UINT64_MAX) return next();
    return lo + next() % (span + 1);  // the modulo bias is irrelevant at these ranges
  }

  /// True with probability `p` (p <= 0: never; p >= 1: always).
  bool chance(double p) noexcept { return unit() < p; }

  /// Uniform in [0, 1).
  double unit() noexcept { return static_cast<double>(next() >> 11) * 0x1.0p-53; }

  /// A uniformly chosen position in a sequence of `n` elements. REQUIRES n > 0.
  std::size_t index(std::size_t n) noexcept { return static_cast<std::size_t>(next() % n); }

  /// An independent generator for a sub-component, so that the number of draws one
  /// component makes does not shift the choices of another.
  SimRng fork() noexcept { return SimRng(next()); }

 private:
  static constexpr std::uint64_t rotl(std::uint64_t x, int k) noexcept {
    return (x << k) | (x >> (64 - k));
  }
  std::uint64_t s_[4] = {};
};

}  // namespace rlr::sim
