// The most recent committed entries, shared by every subscriber (private).
#pragma once

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <vector>

#include "core/entry_deque.h"
#include "rlr/types.h"

namespace rlr::node {

/// The most recent committed entries, shared by every subscriber. Kept in a
/// core::EntryDeque, whose blocks are reused once it is full: appending allocates
/// nothing then, and the memory is taken a block at a time as it first fills, not all at
/// once at the first commit. Bounded by `capacity` entries: the oldest go first.
/// Thread-safe: the raft thread appends, subscribers read.
class CommittedCache {
 public:
  explicit CommittedCache(std::size_t capacity) : capacity_(std::max<std::size_t>(capacity, 1)) {}
  /// Appends `entries`; entries that do not continue the cached ones replace them.
  void append(const std::vector<Entry>& entries);
  /// Empties the cache (e.g. after a snapshot was installed).
  void reset();
  /// Copies entries from `from` (at most max), if the cache holds `from`.
  [[nodiscard]] bool read(LogIndex from, std::size_t max, std::vector<Entry>& out) const;

 private:
  mutable std::mutex mu_;
  std::size_t capacity_;
  core::EntryDeque entries_;  // guarded by mu_
};

}  // namespace rlr::node
