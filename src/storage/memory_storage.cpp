#include "storage/memory_storage.h"

#include <fmt/format.h>

namespace rlr::storage {

MemoryStorage::MemoryStorage(Identity identity, core::Configuration initial)
    : identity_(std::move(identity)) {
  initial.normalize();
  snapshot_.config = std::move(initial);
}

LogIndex MemoryStorage::first_index() const {
  std::lock_guard lock(mu_);
  return snapshot_.index.next();
}

LogIndex MemoryStorage::last_index() const {
  std::lock_guard lock(mu_);
  return snapshot_.index.plus(entries_.size());
}

Result<std::vector<Entry>> MemoryStorage::read(LogIndex from, LogIndex to,
                                               std::size_t max_entries,
                                               std::size_t max_bytes) const {
  std::lock_guard lock(mu_);
  if (from <= snapshot_.index) {
    return Status{ErrorCode::Compacted, fmt::format("index {} is compacted (first retained {})",
                                                    from.value(), snapshot_.index.next().value())};
  }
  const LogIndex last = snapshot_.index.plus(entries_.size());
  if (to > last) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("read to {} beyond last index {}", to.value(), last.value())};
  }
  std::vector<Entry> out;
  std::size_t bytes = 0;
  for (LogIndex i = from; i <= to; i = i.next()) {
    const Entry& e = entries_[i.value() - snapshot_.index.value() - 1];
    if (!out.empty() && (out.size() >= max_entries || bytes + e.payload.size() > max_bytes)) break;
    bytes += e.payload.size();
    out.push_back(e);
  }
  return out;
}

Result<HardState> MemoryStorage::hard_state() const {
  std::lock_guard lock(mu_);
  return hard_state_;
}

Result<LogIndex> MemoryStorage::applied() const {
  std::lock_guard lock(mu_);
  return applied_;
}

Result<SnapshotMeta> MemoryStorage::snapshot() const {
  std::lock_guard lock(mu_);
  return snapshot_;
}

Status MemoryStorage::persist(const PersistRequest& req) {
  std::lock_guard lock(mu_);
  const LogIndex last = snapshot_.index.plus(entries_.size());
  // A snapshot older than ours is ignored; a newer one keeps the stored suffix only when
  // the stored entry at its index has its term.
  const bool install = req.snapshot != nullptr && req.snapshot->index > snapshot_.index;
  bool keep_suffix = false;
  if (install) {
    const SnapshotMeta& s = *req.snapshot;
    keep_suffix = s.index <= last &&
                  entries_[s.index.value() - snapshot_.index.value() - 1].term == s.term;
  }
  const LogIndex base = install ? req.snapshot->index : snapshot_.index;
  const LogIndex end = install && !keep_suffix ? req.snapshot->index : std::max(last, base);
  if (Status st = check_entries(req.entries, base, end); !st) return st;
  if (install) {
    const SnapshotMeta& s = *req.snapshot;
    if (keep_suffix) {
      entries_.erase(entries_.begin(),
                     entries_.begin() +
                         static_cast<std::ptrdiff_t>(s.index.value() - snapshot_.index.value()));
    } else {
      entries_.clear();
    }
    snapshot_ = s;
  }
  if (!req.entries.empty()) {
    const LogIndex first = req.entries.front().index;
    entries_.resize(first.value() - snapshot_.index.value() - 1);
    entries_.insert(entries_.end(), req.entries.begin(), req.entries.end());
  }
  if (req.hard_state) hard_state_ = *req.hard_state;
  if (req.applied) applied_ = *req.applied;
  return Status::ok();
}

Status MemoryStorage::compact(const SnapshotMeta& s) {
  std::lock_guard lock(mu_);
  const LogIndex last = snapshot_.index.plus(entries_.size());
  if (s.index <= snapshot_.index) return Status::ok();
  if (s.index > last || entries_[s.index.value() - snapshot_.index.value() - 1].term != s.term) {
    return {ErrorCode::InvalidArgument,
            fmt::format("snapshot {}/t{} is not in the log", s.index.value(), s.term.value())};
  }
  entries_.erase(entries_.begin(),
                 entries_.begin() +
                     static_cast<std::ptrdiff_t>(s.index.value() - snapshot_.index.value()));
  snapshot_ = s;
  return Status::ok();
}

}  // namespace rlr::storage
