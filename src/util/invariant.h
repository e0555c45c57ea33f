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

/// Hands `report` to the process's fatal handler (rlr/log.h: set_fatal_handler; by
/// default it is written to stderr). Defined in src/log.cpp.
void report_fatal(const char* report) noexcept;

/// Reports the violated invariant and aborts. The report is formatted into a static
/// buffer, so nothing is allocated from a state already known to be wrong.
[[noreturn, gnu::cold, gnu::noinline]] inline void invariant_failed(const char* file, int line,
                                                                    const char* expression,
                                                                    const char* message) noexcept {
  static char report[1024];
  std::snprintf(report, sizeof report, "%s:%d: invariant violated: %s [%s]\n", file, line,
                message, expression);
  report_fatal(report);
  std::abort();
}

}  // namespace rlr::util

#define RLR_INVARIANT(cond, message)                                                   \
  do {                                                                                 \
    if (!(cond)) [[unlikely]] {                                                        \
      ::rlr::util::invariant_failed(__FILE__, __LINE__, #cond, (message));             \
    }                                                                                  \
  } while (false)
