// RLR_INVARIANT(cond, "message"): states a property the code relies on, and aborts the
// process when it is false (TigerBeetle style). A violated invariant means the state is
// already wrong; going on would turn a local bug into a replicated one.
//
// The condition is always evaluated. Checks that cost more than a comparison are gated
// by their caller (core::RaftOptions::check_invariants: on in tests and the simulator,
// off by default).
#pragma once

#include <cstdio>
#include <cstdlib>

namespace rlr::util {

/// Reports the violated invariant and aborts. The process is about to abort: this is the
/// one place the library writes to stderr. The report is formatted into a static buffer,
/// so nothing is allocated from a state already known to be wrong.
[[noreturn, gnu::cold, gnu::noinline]] inline void invariant_failed(const char* file, int line,
                                                                    const char* expression,
                                                                    const char* message) noexcept {
  static char report[1024];
  std::snprintf(report, sizeof report, "%s:%d: invariant violated: %s [%s]\n", file, line,
                message, expression);
  std::fputs(report, stderr);
  std::abort();
}

}  // namespace rlr::util

#define RLR_INVARIANT(cond, message)                                                   \
  do {                                                                                 \
    if (!(cond)) [[unlikely]] {                                                        \
      ::rlr::util::invariant_failed(__FILE__, __LINE__, #cond, (message));             \
    }                                                                                  \
  } while (false)
