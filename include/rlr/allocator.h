// Allocator settings for a process whose main job is running librlr nodes.
#pragma once

#include <cstddef>

#include "rlr/status.h"

namespace rlr {

/// glibc malloc parameters (see mallopt(3)). The defaults suit a replicator: its retained
/// log grows steadily and its steps come and go in tens of megabytes.
struct AllocatorTuning {
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
/// Example:
///   int main() {
///     if (rlr::Status s = rlr::tune_allocator(); !s) std::fprintf(stderr, "%s\n", s.to_string().c_str());
///     ...
///   }
[[nodiscard]] Status tune_allocator(const AllocatorTuning& tuning = {});

}  // namespace rlr
