#include "node/committed_cache.h"

namespace rlr::node {

void CommittedCache::append(const std::vector<Entry>& entries) {
  std::lock_guard lock(mu_);
  for (const Entry& e : entries) {
    if (!entries_.empty() && e.index != entries_.back().index.next()) entries_.clear();
    entries_.push_back(e);
    if (entries_.size() > capacity_) entries_.pop_front(1);  // the oldest goes
  }
}

void CommittedCache::reset() {
  std::lock_guard lock(mu_);
  entries_.clear();
}

bool CommittedCache::read(LogIndex from, std::size_t max, std::vector<Entry>& out) const {
  std::lock_guard lock(mu_);
  if (entries_.empty() || from < entries_[0].index || from > entries_.back().index) return false;
  const std::size_t first = from.value() - entries_[0].index.value();
  const std::size_t room = out.size() < max ? max - out.size() : 0;
  entries_.copy_to(first, std::min(room, entries_.size() - first), out);
  return true;
}

}  // namespace rlr::node
