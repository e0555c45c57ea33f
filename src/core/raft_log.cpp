#include "core/raft_log.h"

#include <algorithm>
#include <cassert>

#include <fmt/format.h>

namespace rlr::core {

RaftLog::RaftLog(SnapshotMeta base, std::vector<Entry> entries)
    : snapshot_(std::move(base)), memory_first_(snapshot_.index.next()) {
  for (auto& e : entries) push(std::move(e));
}

Term RaftLog::last_term() const noexcept {
  if (!entries_.empty()) return entries_.back().term;
  if (!evicted_terms_.empty()) return evicted_terms_.back().second;
  return snapshot_.term;
}

Term RaftLog::evicted_term(LogIndex i) const noexcept {
  // The last run that starts at or before i.
  auto it = std::upper_bound(evicted_terms_.begin(), evicted_terms_.end(), i,
                             [](LogIndex x, const auto& run) { return x < run.first; });
  assert(it != evicted_terms_.begin());
  return std::prev(it)->second;
}

std::optional<Term> RaftLog::term_at(LogIndex i) const noexcept {
  if (i == snapshot_.index) return snapshot_.term;
  if (i < snapshot_.index || i > last_index()) return std::nullopt;
  if (i < memory_first_) return evicted_term(i);
  return entries_[i.value() - memory_first_.value()].term;
}

bool RaftLog::matches(LogIndex i, Term t) const noexcept {
  const auto term = term_at(i);
  return term && *term == t;
}

const Entry& RaftLog::at(LogIndex i) const {
  assert(i >= memory_first_ && i <= last_index());
  return entries_[i.value() - memory_first_.value()];
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
  // Evicted entries are committed, and the caller never overwrites a committed one.
  assert(from >= memory_first_ && from <= last_index().next());
  // §5.3: delete the existing entry and all that follow it.
  const std::size_t keep = from.value() - memory_first_.value();
  for (std::size_t k = keep; k < entries_.size(); ++k) memory_bytes_ -= entries_[k].payload.size();
  entries_.truncate(keep);
  for (const Entry& e : entries) {
    if (e.index >= from) push(e);
  }
  return from;
}

void RaftLog::push(Entry e) {
  assert(e.index == last_index().next());
  assert(e.term >= last_term());
  memory_bytes_ += e.payload.size();
  entries_.push_back(std::move(e));
}

void RaftLog::slice_into(LogIndex from, LogIndex to, std::size_t max_entries,
                         std::size_t max_bytes, std::vector<Entry>& out) const {
  out.clear();
  if (from > to) return;
  assert(from >= memory_first_ && to <= last_index());
  const std::size_t begin = from.value() - memory_first_.value();
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

Status RaftLog::read_into(LogIndex from, LogIndex to, std::size_t max_entries,
                          std::size_t max_bytes, LogReader* reader,
                          std::vector<Entry>& out) const {
  if (from > to || from >= memory_first_) {
    slice_into(from, to, max_entries, max_bytes, out);
    return Status::ok();
  }
  assert(from >= first_index() && to <= last_index());
  out.clear();
  if (reader == nullptr) {
    return {ErrorCode::InvalidArgument,
            fmt::format("entry {} was evicted from memory and no log reader is set", from.value())};
  }
  const LogIndex last = std::min(to, memory_first_.prev());
  if (Status s = reader->read(from, last, max_entries, max_bytes, out); !s) {
    out.clear();
    return s;
  }
  // What comes back is checked against what this log knows: contiguous from `from`,
  // within the range, each with the term kept for its index.
  LogIndex expect = from;
  for (const Entry& e : out) {
    if (e.index != expect || e.index > last || e.term != evicted_term(e.index)) {
      const std::string what = fmt::format(
          "log reader returned entry {} (term {}) where entry {} (term {}) was expected",
          e.index.value(), e.term.value(), expect.value(),
          expect <= last ? evicted_term(expect).value() : 0);
      out.clear();
      return {ErrorCode::Corruption, what};
    }
    expect = expect.next();
  }
  if (out.empty()) {
    return {ErrorCode::Corruption,
            fmt::format("log reader returned nothing for entries {}..{}", from.value(), last.value())};
  }
  return Status::ok();
}

void RaftLog::evict(LogIndex upto) {
  if (upto < memory_first_) return;
  assert(upto <= last_index());
  const std::size_t n = upto.value() - memory_first_.value() + 1;
  for (std::size_t k = 0; k < n; ++k) {
    const Entry& e = entries_[k];
    if (evicted_terms_.empty() || evicted_terms_.back().second != e.term) {
      evicted_terms_.emplace_back(e.index, e.term);
    }
  }
  drop_front(n);
}

void RaftLog::drop_front(std::size_t n) {
  for (std::size_t k = 0; k < n; ++k) memory_bytes_ -= entries_[k].payload.size();
  entries_.pop_front(n);
  memory_first_ = memory_first_.plus(n);
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
    if (*term_at(i) <= t) return i;
    i = i.prev();
  }
  return snapshot_.index;
}

void RaftLog::compact(SnapshotMeta s) {
  assert(s.index >= snapshot_.index && s.index <= last_index());
  assert(matches(s.index, s.term));
  const LogIndex first = s.index.next();  // the new first_index()
  if (first >= memory_first_) {
    drop_front(first.value() - memory_first_.value());
    evicted_terms_.clear();
  } else {
    // The new base is among the evicted entries: drop the runs before it, and start the
    // run that holds its successor there.
    const Term t = evicted_term(first);
    std::erase_if(evicted_terms_, [&](const auto& run) { return run.first <= first; });
    evicted_terms_.insert(evicted_terms_.begin(), {first, t});
  }
  snapshot_ = std::move(s);
}

void RaftLog::restore(SnapshotMeta s) {
  memory_bytes_ = 0;
  entries_.clear();
  evicted_terms_.clear();
  memory_first_ = s.index.next();
  snapshot_ = std::move(s);
}

}  // namespace rlr::core
