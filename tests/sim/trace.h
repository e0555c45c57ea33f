// Human-readable output of a simulation run, at three levels: nothing (the default for
// seed sweeps), the narrative of the demo (elections, faults, commit summaries), and a
// line per event for replaying a failing seed with --verbose.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <utility>

#include <fmt/format.h>

namespace rlr::sim {

enum class TraceLevel : std::uint8_t {
  Quiet = 0,    ///< no trace at all
  Narrative,    ///< elections, faults, membership, periodic commit summaries
  Verbose,      ///< additionally every message, persistence and apply
};

class Trace {
 public:
  Trace() = default;
  explicit Trace(TraceLevel level, std::FILE* out = stdout) : level_(level), out_(out) {}

  /// Formatting a line costs time; callers test this before building arguments.
  [[nodiscard]] bool enabled(TraceLevel level) const noexcept {
    return level != TraceLevel::Quiet && level <= level_ && out_ != nullptr;
  }

  template <class... Args>
  void line(TraceLevel level, std::uint64_t tick, fmt::format_string<Args...> format,
            Args&&... args) {
    if (!enabled(level)) return;
    const std::string text = fmt::format(format, std::forward<Args>(args)...);
    fmt::print(out_, "t={:>6}  {}\n", tick, text);
  }

  [[nodiscard]] TraceLevel level() const noexcept { return level_; }

 private:
  TraceLevel level_ = TraceLevel::Quiet;
  std::FILE* out_ = nullptr;
};

}  // namespace rlr::sim
