#include "util/thread_name.h"

#include <pthread.h>

#include <algorithm>
#include <array>

namespace rlr::util {

void set_thread_name(std::string_view name) noexcept {
  std::array<char, 16> buf{};  // 15 bytes and the terminator: the kernel's limit
  const std::size_t n = std::min(name.size(), buf.size() - 1);
  std::copy_n(name.data(), n, buf.data());
  // The only failure is a name over the limit, which the copy above rules out.
  (void)pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace rlr::util
