// rlr::tune_allocator: the settings reach glibc's allocator, and refused values are
// reported.

#include <cstdlib>

#include <catch2/catch.hpp>

#include "rlr/allocator.h"

#if defined(__GLIBC__)
#include <malloc.h>
#endif

namespace rlr::test {
namespace {

#if defined(__GLIBC__)
/// Whether an allocation of `bytes` gets a mapping of its own (glibc counts them).
bool mapped_on_its_own(std::size_t bytes) {
  const std::size_t before = mallinfo2().hblks;
  void* volatile p = std::malloc(bytes);
  REQUIRE(p != nullptr);
  const bool mapped = mallinfo2().hblks > before;
  std::free(p);
  return mapped;
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
// A sanitizer's allocator replaces glibc's. TSan's accepts mallopt and ignores it; ASan's
// refuses it, and tune_allocator must then say so.
constexpr bool kGlibcAllocates = false;
#else
constexpr bool kGlibcAllocates = true;
#endif
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kMalloptAccepted = false;
#else
constexpr bool kMalloptAccepted = true;
#endif

TEST_CASE("tune_allocator: the settings reach glibc", "[allocator]") {
  AllocatorTuning small;
  small.top_pad = 0;
  small.mmap_threshold = std::size_t{1} << 20;
  if (!kMalloptAccepted) {
    const Status s = tune_allocator(small);
    CHECK(s.code() == ErrorCode::InvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("the allocator refused top_pad"));
    return;
  }
  REQUIRE(tune_allocator(small).is_ok());
  if (kGlibcAllocates) CHECK(mapped_on_its_own(std::size_t{4} << 20));

  REQUIRE(tune_allocator().is_ok());  // the defaults: 32 MiB, a 64 MiB top pad
  if (kGlibcAllocates) CHECK_FALSE(mapped_on_its_own(std::size_t{4} << 20));
}

TEST_CASE("tune_allocator: a value mallopt cannot take is an InvalidArgument naming it",
          "[allocator]") {
  AllocatorTuning bad;
  bad.trim_threshold = std::size_t{1} << 40;
  const Status s = tune_allocator(bad);
  CHECK(s.code() == ErrorCode::InvalidArgument);
  // Under ASan the first setting is already refused.
  CHECK_THAT(s.message(), Catch::Contains(kMalloptAccepted ? "trim_threshold" : "top_pad"));
  if (kMalloptAccepted) REQUIRE(tune_allocator().is_ok());
}
#endif

}  // namespace
}  // namespace rlr::test
