#include "storage/storage.h"

#include <cstdint>
#include <limits>

#include <fmt/format.h>

namespace rlr::storage {

Result<RestoreState> Storage::load() const {
  RestoreState rs;
  auto hs = hard_state();
  if (!hs) return hs.status();
  auto snap = snapshot();
  if (!snap) return snap.status();
  auto applied_index = applied();
  if (!applied_index) return applied_index.status();
  rs.hard_state = hs.value();
  rs.snapshot = std::move(snap).value();
  rs.applied = applied_index.value();
  if (last_index() >= first_index()) {
    auto entries = read(first_index(), last_index(), std::numeric_limits<std::size_t>::max(),
                        std::numeric_limits<std::size_t>::max());
    if (!entries) return entries.status();
    rs.entries = std::move(entries).value();
  }
  return rs;
}

Status check_entries(std::span<const Entry> entries, LogIndex base, LogIndex end) {
  if (entries.empty()) return Status::ok();
  const LogIndex first = entries.front().index;
  if (first <= base || first > end.next()) {
    return {ErrorCode::InvalidArgument,
            fmt::format("entries starting at {} do not continue the log ({}..{}]",
                        first.value(), base.value(), end.value())};
  }
  LogIndex expect = first;
  for (const Entry& e : entries) {
    if (e.index != expect) {
      return {ErrorCode::InvalidArgument,
              fmt::format("entries are not contiguous at {}", e.index.value())};
    }
    expect = expect.next();
  }
  return Status::ok();
}

}  // namespace rlr::storage
