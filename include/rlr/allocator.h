/// \file
/// Allocator settings for a process whose main job is running librlr nodes.
#pragma once

#include <cstddef>

#include "rlr/export.h"
#include "rlr/status.h"

namespace rlr {

/// glibc malloc parameters (see mallopt(3)). The defaults suit a replicator: its retained
/// log grows steadily and its steps come and go in tens of megabytes.
struct RLR_API AllocatorTuning {
  /// Extra bytes to request whenever a heap grows (M_TOP_PAD). glibc's 128 KiB makes a
  /// growing log extend its heaps tens of thousands of times (an mprotect system call
  /// each); address space is reserved, memory is only used when touched.
  std::size_t top_pad = std::size_t{64} << 20;
  /// Allocations at least this large get their own mapping (M_MMAP_THRESHOLD; at most
  /// 32 MiB). Setting it also stops glibc from moving the threshold by itself, so the
  /// multi-megabyte buffers of large steps reuse heap memory instead of being mapped,
  /// faulted in page by page and unmapped every time.
  std::size_t mmap_threshold = std::size_t{32} << 20;
  /// Free memory at the top of a heap is given back to the system beyond this
  /// (M_TRIM_THRESHOLD): memory freed after a burst is kept for the next one.
  std::size_t trim_threshold = std::size_t{256} << 20;
};

/// Applies `tuning` to the C library's allocator. Process-wide and opt-in: a host calls
/// it once at start-up, before it starts threads; librlr never calls it by itself (the
/// rlr-node binary does). Measured on a catching-up learner: +13% entries/s (bench/README).
/// Errors: InvalidArgument when the C library is not glibc, or a value is refused (above
/// INT_MAX, or by mallopt); settings applied before the refused one stay.
///
/// Transparent huge pages are the other half, and only the environment can ask for them:
/// glibc reads `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` before main() (glibc >= 2.35, with
/// /sys/kernel/mm/transparent_hugepage/enabled at `madvise` or `always`). A node's
/// retained log then grows in 2 MiB pages instead of faulting in 4 KiB at a time: on the
/// 2-vCPU VM of bench/README, a catching-up learner 1.00-1.15M -> 1.26-1.40M entries/s and
/// the first two million entries of a fresh cluster 0.50-0.54M -> 0.71-0.73M entries/s;
/// steady throughput unchanged. The cost: up to 2 MiB more memory per heap, and a fault
/// may wait while the kernel clears or assembles a huge page (defrag `madvise`); the
/// one-at-a-time commit latency was no better and its ratio to the fsync floor somewhat
/// worse in alternating runs, so measure it for a latency-bound deployment.
///
/// Example:
/// \code{.cpp}
///   int main() {
///     if (rlr::Status s = rlr::tune_allocator(); !s) std::fprintf(stderr, "%s\n", s.to_string().c_str());
///     ...
///   }
/// \endcode
[[nodiscard]] RLR_API Status tune_allocator(const AllocatorTuning& tuning = {});

}  // namespace rlr
