#include "sim_storage.h"

#include <algorithm>

#include <fmt/format.h>

namespace rlr::sim {

SimStorage::SimStorage(core::SnapshotMeta initial, std::uint64_t initial_state_hash) {
  durable_.checkpoint = StateMachineCheckpoint{initial.index, initial_state_hash};
  durable_.snapshot = std::move(initial);
}

void SimStorage::enqueue(PendingWrite w) {
  if (!queue_.empty()) w.complete_tick = std::max(w.complete_tick, queue_.back().complete_tick);
  queue_.push_back(std::move(w));
}

PendingWrite SimStorage::complete_next(std::string& error) {
  PendingWrite w = std::move(queue_.front());
  queue_.pop_front();
  if (w.snapshot) install_snapshot(*w.snapshot);
  if (!w.entries.empty()) write_entries(w.entries, error);
  if (w.hard_state) durable_.hard_state = *w.hard_state;
  return w;
}

void SimStorage::install_snapshot(const core::SnapshotMeta& s) {
  if (s.index <= durable_.snapshot.index) return;  // already covered
  if (holds(s.index, s.term) && s.index <= last_index()) {
    // The stored log continues the snapshot: keep the suffix after it.
    const auto drop = static_cast<std::ptrdiff_t>(s.index.value() - durable_.snapshot.index.value());
    durable_.entries.erase(durable_.entries.begin(), durable_.entries.begin() + drop);
  } else {
    durable_.entries.clear();
  }
  durable_.snapshot = s;
}

void SimStorage::save_snapshot(const core::SnapshotMeta& s) { install_snapshot(s); }

void SimStorage::write_entries(const std::vector<Entry>& entries, std::string& error) {
  auto first = entries.begin();
  // Entries the stored snapshot already covers are not written again.
  while (first != entries.end() && first->index <= durable_.snapshot.index) ++first;
  if (first == entries.end()) return;
  if (first->index > last_index().next()) {
    error = fmt::format("entries start at {} but the stored log ends at {}",
                        first->index.value(), last_index().value());
    return;
  }
  // Truncate the stored suffix from the first new entry, then append.
  durable_.entries.resize(first->index.value() - durable_.snapshot.index.value() - 1);
  durable_.entries.insert(durable_.entries.end(), first, entries.end());
}

std::optional<Term> SimStorage::term_at(LogIndex i) const noexcept {
  if (i == durable_.snapshot.index) return durable_.snapshot.term;
  if (i < durable_.snapshot.index || i > last_index()) return std::nullopt;
  return durable_.entries[i.value() - durable_.snapshot.index.value() - 1].term;
}

const Entry* SimStorage::entry_at(LogIndex i) const noexcept {
  if (i <= durable_.snapshot.index || i > last_index()) return nullptr;
  return &durable_.entries[i.value() - durable_.snapshot.index.value() - 1];
}

bool SimStorage::holds(LogIndex i, Term t) const noexcept {
  if (i < durable_.snapshot.index) return true;  // compacted: committed, term not kept
  const auto stored = term_at(i);
  return stored && *stored == t;
}

core::RestoreState SimStorage::restore_state(LogIndex applied) const {
  core::RestoreState r;
  r.hard_state = durable_.hard_state;
  r.snapshot = durable_.snapshot;
  r.entries.assign(durable_.entries.begin(), durable_.entries.end());
  r.applied = applied;
  return r;
}

}  // namespace rlr::sim
