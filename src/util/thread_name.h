// Names for librlr's threads, so `top -H`, `perf report --sort comm` and debuggers tell a
// node's raft thread from its io thread and from the host's own threads.
#pragma once

#include <string_view>

namespace rlr::util {

/// Names the calling thread. Linux keeps at most 15 bytes: a longer name is cut, never
/// refused. Best effort: a platform without thread names ignores it.
void set_thread_name(std::string_view name) noexcept;

}  // namespace rlr::util
