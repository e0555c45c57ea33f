// The narrated demo: a 5-node cluster through a scripted sequence of faults, printed so a
// person can follow it (the project README uses it until the real node runtime exists).
#pragma once

#include <cstddef>
#include <cstdint>

#include "trace.h"

namespace rlr::sim {

inline constexpr std::uint64_t kDemoTicks = 3000;

/// Runs the demo with the given seed (network delays and timers vary with it); returns
/// the number of invariant violations found.
std::size_t run_demo(std::uint64_t seed, Trace& trace);

}  // namespace rlr::sim
