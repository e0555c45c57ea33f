#include "rlr/allocator.h"

#include <climits>

#include <fmt/format.h>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rlr {

Status tune_allocator(const AllocatorTuning& tuning) {
#if defined(__GLIBC__)
  struct Setting {
    int param;
    const char* name;
    std::size_t value;
  };
  const Setting settings[] = {
      {M_TOP_PAD, "top_pad", tuning.top_pad},
      {M_MMAP_THRESHOLD, "mmap_threshold", tuning.mmap_threshold},
      {M_TRIM_THRESHOLD, "trim_threshold", tuning.trim_threshold},
  };
  for (const Setting& s : settings) {
    if (s.value > static_cast<std::size_t>(INT_MAX) || mallopt(s.param, static_cast<int>(s.value)) != 1) {
      return {ErrorCode::InvalidArgument,
              fmt::format("the allocator refused {} = {}", s.name, s.value)};
    }
  }
  return Status::ok();
#else
  (void)tuning;
  return {ErrorCode::InvalidArgument, "allocator tuning needs glibc"};
#endif
}

}  // namespace rlr
