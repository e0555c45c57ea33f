#include "core/raft_log.h"

#include <algorithm>
#include <cassert>

namespace rlr::core {

RaftLog::RaftLog(SnapshotMeta base, std::vector<Entry> entries) : snapshot_(std::move(base)) {
  for (auto& e : entries) push(std::move(e));
}

Term RaftLog::last_term() const noexcept {
  return entries_.empty() ? snapshot_.term : entries_.back().term;
}

std::optional<Term> RaftLog::term_at(LogIndex i) const noexcept {
  if (i == snapshot_.index) return snapshot_.term;
  if (i < snapshot_.index || i > last_index()) return std::nullopt;
  return entries_[i.value() - first_index().value()].term;
}

bool RaftLog::matches(LogIndex i, Term t) const noexcept {
  const auto term = term_at(i);
  return term && *term == t;
}

const Entry& RaftLog::at(LogIndex i) const {
  assert(i >= first_index() && i <= last_index());
  return entries_[i.value() - first_index().value()];
}

bool RaftLog::is_up_to_date(LogIndex last_index, Term last_term) const noexcept {
  const Term mine = this->last_term();
  return last_term > mine || (last_term == mine && last_index >= this->last_index());
}

std::optional<LogIndex> RaftLog::find_conflict(std::span<const Entry> entries) const {
  for (const Entry& e : entries) {
    const auto t = term_at(e.index);
    // Below the snapshot everything is committed and therefore matches.
    if (e.index <= snapshot_.index) continue;
    if (!t || *t != e.term) return e.index;
  }
  return std::nullopt;
}

std::optional<LogIndex> RaftLog::append(std::span<const Entry> entries) {
  const auto conflict = find_conflict(entries);
  if (!conflict) return std::nullopt;
  const LogIndex from = *conflict;
  assert(from > snapshot_.index && from <= last_index().next());
  // §5.3: delete the existing entry and all that follow it.
  entries_.truncate(from.value() - first_index().value());
  for (const Entry& e : entries) {
    if (e.index >= from) push(e);
  }
  return from;
}

void RaftLog::push(Entry e) {
  assert(e.index == last_index().next());
  assert(e.term >= last_term());
  entries_.push_back(std::move(e));
}

std::vector<Entry> RaftLog::slice(LogIndex from, LogIndex to, std::size_t max_entries,
                                  std::size_t max_bytes) const {
  std::vector<Entry> out;
  slice_into(from, to, max_entries, max_bytes, out);
  return out;
}

void RaftLog::slice_into(LogIndex from, LogIndex to, std::size_t max_entries,
                         std::size_t max_bytes, std::vector<Entry>& out) const {
  out.clear();
  if (from > to) return;
  assert(from >= first_index() && to <= last_index());
  const std::size_t begin = from.value() - first_index().value();
  const std::size_t count = std::min<std::uint64_t>(to.value() - from.value() + 1, max_entries);
  // Count first, then copy into a vector of the exact size: no reallocation moves the
  // entries (and their payload references) again.
  std::size_t n = 1;  // at least one entry
  std::size_t bytes = entries_[begin].payload.size();
  for (; n < count; ++n) {
    bytes += entries_[begin + n].payload.size();
    if (bytes > max_bytes) break;
  }
  out.reserve(n);
  entries_.copy_to(begin, n, out);
}

LogIndex RaftLog::first_index_of_term_at(LogIndex i) const {
  const auto t = term_at(i);
  if (!t) return i;
  LogIndex first = i;
  while (first > first_index()) {
    const auto prev = term_at(first.prev());
    if (!prev || *prev != *t) break;
    first = first.prev();
  }
  return first;
}

LogIndex RaftLog::last_index_with_term_at_most(LogIndex i, Term t) const {
  if (i > last_index()) i = last_index();
  while (i > snapshot_.index) {
    if (at(i).term <= t) return i;
    i = i.prev();
  }
  return snapshot_.index;
}

void RaftLog::compact(SnapshotMeta s) {
  assert(s.index >= snapshot_.index && s.index <= last_index());
  assert(matches(s.index, s.term));
  const std::size_t drop = s.index.value() - snapshot_.index.value();
  entries_.pop_front(drop);
  snapshot_ = std::move(s);
}

void RaftLog::restore(SnapshotMeta s) {
  entries_.clear();
  snapshot_ = std::move(s);
}

}  // namespace rlr::core
