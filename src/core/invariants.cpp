// The core's invariants: the pure checks of core/invariants.h, and the Raft members
// that apply them to a live core (declared in raft.h, called where the state they
// guard is written and where it is read back).
#include "core/invariants.h"

#include <algorithm>

#include "core/raft.h"
#include "util/invariant.h"

namespace rlr::core {

const char* violated_invariant(const LogMarks& m) noexcept {
  if (m.snapshot > m.applied) return "snapshot <= applied: a snapshot covers only applied entries";
  if (m.applied > m.commit) return "applied <= commit: only committed entries are applied";
  if (m.commit > m.last) return "commit <= last: the commit index never passes the log's end";
  if (m.applied > m.persisted && m.applied != m.snapshot) {
    return "applied <= persisted: entries are applied only once durable (an installed "
           "snapshot excepted)";
  }
  if (m.persisted > m.last) return "persisted <= last: only entries in the log are durable";
  if (m.persisted >= m.unstable) {
    return "persisted < unstable: only entries handed out to persist are acknowledged";
  }
  if (m.unstable > m.last.next()) {
    return "unstable <= last + 1: nothing is handed out beyond the log";
  }
  return nullptr;
}

const char* violated_invariant(const Progress& pr, std::size_t max_inflight) noexcept {
  if (pr.match >= pr.next) return "match < next: the next append follows what the follower holds";
  if (pr.inflight.size() > max_inflight) return "inflight <= max_inflight_appends";
  LogIndex prev = pr.match;
  for (LogIndex i : pr.inflight) {
    if (i <= prev) return "inflight appends end above match, in ascending order";
    prev = i;
  }
  if (!pr.inflight.empty() && pr.inflight.back() >= pr.next) {
    return "inflight appends end below next";
  }
  return nullptr;
}

void Raft::check_state() const {
  if (!options_.check_invariants) return;
  const LogMarks marks{log_.snapshot().index, applied_, commit_, persisted_, unstable_,
                       log_.last_index()};
  const char* broken = violated_invariant(marks);
  RLR_INVARIANT(broken == nullptr, broken);
  RLR_INVARIANT(role_ == Role::Leader || progress_.empty(),
                "only a leader tracks its followers' progress");
  for (const auto& [id, pr] : progress_) check_progress(pr);
}

void Raft::check_progress(const Progress& pr) const {
  if (!options_.check_invariants) return;
  const char* broken = violated_invariant(pr, options_.max_inflight_appends);
  RLR_INVARIANT(broken == nullptr, broken);
}

void Raft::check_ready(const Ready& rd, LogIndex applied_before) const {
  if (!options_.check_invariants) return;
  // What is handed out to persist is the log's unpersisted tail, in order, and the mark
  // names its end.
  if (!rd.entries.empty()) {
    RLR_INVARIANT(rd.entries.back().index == log_.last_index(),
                  "Ready::entries end at the log's last index");
    RLR_INVARIANT(rd.entries.front().index >= log_.first_index(),
                  "Ready::entries start after the snapshot");
    for (std::size_t i = 1; i < rd.entries.size(); ++i) {
      RLR_INVARIANT(rd.entries[i].index == rd.entries[i - 1].index.next(),
                    "Ready::entries are contiguous");
    }
  }
  if (rd.snapshot || !rd.entries.empty()) {
    RLR_INVARIANT(rd.persist_mark.index == log_.last_index(),
                  "a Ready that persists log state marks the log's last index");
  } else {
    RLR_INVARIANT(rd.persist_mark.index == persisted_,
                  "a Ready that persists no log state marks what is already durable");
  }
  if (rd.hard_state) {
    RLR_INVARIANT(rd.hard_state->commit <= log_.last_index(),
                  "the hard state's commit index is within the log");
    RLR_INVARIANT(rd.persist_mark.hard_state_term == rd.hard_state->term,
                  "the persist mark carries the hard state's term");
  } else {
    RLR_INVARIANT(rd.persist_mark.hard_state_term.is_zero(),
                  "the persist mark carries no term without a hard state");
  }
  // What is handed out to apply continues what was applied, and is committed and durable.
  if (!rd.committed.empty()) {
    RLR_INVARIANT(rd.committed.front().index == applied_before.next(),
                  "Ready::committed continues from the last applied index");
    RLR_INVARIANT(rd.committed.back().index == applied_,
                  "Ready::committed ends at the applied index");
    RLR_INVARIANT(applied_ <= std::min(commit_, persisted_),
                  "Ready::committed holds only committed, durable entries");
    for (std::size_t i = 1; i < rd.committed.size(); ++i) {
      RLR_INVARIANT(rd.committed[i].index == rd.committed[i - 1].index.next(),
                    "Ready::committed is contiguous");
    }
  }
  check_state();
}

}  // namespace rlr::core
