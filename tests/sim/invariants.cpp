#include "invariants.h"
#include "core/entry_payloads.h"

#include "node/sessions.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

#include "sim_rng.h"

namespace rlr::sim {
namespace {

// Violations beyond this many in one run add nothing: the first one is what matters.
constexpr std::size_t kMaxViolationsKept = 16;

std::uint64_t fnv1a(std::span<const std::uint8_t> bytes) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL;
  for (std::uint8_t b : bytes) {
    h ^= b;
    h *= 0x100000001b3ULL;
  }
  return h;
}

std::string term_or_none(std::optional<Term> t) {
  return t ? fmt::format("term {}", t->value()) : std::string("nothing");
}

}  // namespace

std::uint64_t entry_digest(const Entry& e) noexcept {
  return mix64(fnv1a(e.payload.span()) ^ (static_cast<std::uint64_t>(e.kind) << 56));
}

std::uint64_t next_state_hash(std::uint64_t state_hash, const Entry& e) noexcept {
  return mix64(state_hash ^ mix64(e.index.value() ^ (e.term.value() << 32)) ^ entry_digest(e));
}

InvariantChecker::InvariantChecker() { written_.resize(1); }

void InvariantChecker::fail(std::string invariant, std::string detail) {
  if (violations_.size() >= kMaxViolationsKept) return;
  violations_.push_back(Violation{tick_, std::move(invariant), std::move(detail)});
}

const InvariantChecker::Committed* InvariantChecker::committed_at(LogIndex i) const noexcept {
  if (i.is_zero() || i.value() > committed_.size()) return nullptr;
  return &committed_[i.value() - 1];
}

InvariantChecker::Committed* InvariantChecker::committed_at(LogIndex i) noexcept {
  if (i.is_zero() || i.value() > committed_.size()) return nullptr;
  return &committed_[i.value() - 1];
}

std::optional<std::uint64_t> InvariantChecker::state_hash_at(LogIndex i) const noexcept {
  if (i.is_zero()) return kInitialStateHash;
  const Committed* c = committed_at(i);
  return c ? c->state_hash : std::nullopt;
}

// ---- leaders ----------------------------------------------------------------------

void InvariantChecker::on_leader(NodeId id, Term term, const core::RaftLog& log,
                                 const EntryLookup& entries) {
  ++stats_.leaders_elected;
  const auto [it, inserted] = leader_of_term_.emplace(term.value(), id);
  if (!inserted && it->second != id) {
    fail("election safety", fmt::format("nodes {} and {} were both leader in term {}",
                                        it->second.value(), id.value(), term.value()));
  }
  // Entries at or below the leader's snapshot are covered by it; the snapshot's own
  // index is checked through its term.
  const std::uint64_t first = std::max<std::uint64_t>(1, log.snapshot().index.value());
  for (std::uint64_t i = first; i <= committed_.size(); ++i) {
    const Committed& c = committed_[i - 1];
    if (c.commit_term < term) check_holds(id, term, log, entries, LogIndex{i}, c, "when elected");
    if (!ok()) return;
  }
}

void InvariantChecker::check_leader_holds(NodeId id, Term term, const core::RaftLog& log,
                                          const EntryLookup& entries, LogIndex from, LogIndex to) {
  for (LogIndex i = from; i <= to && ok(); i = i.next()) {
    const Committed* c = committed_at(i);
    if (c != nullptr && c->commit_term < term) check_holds(id, term, log, entries, i, *c, "(elected earlier)");
  }
}

const Entry* InvariantChecker::entry_or_fail(NodeId id, const EntryLookup& entries, LogIndex i) {
  const Entry* e = entries(i);
  if (e == nullptr) {
    fail("evicted entries are durable",
         fmt::format("node {} holds index {} in its log but neither its memory nor its disk has "
                     "that entry",
                     id.value(), i.value()));
  }
  return e;
}

void InvariantChecker::check_holds(NodeId id, Term term, const core::RaftLog& log,
                                   const EntryLookup& entries, LogIndex i, const Committed& c,
                                   const char* when) {
  if (i < log.snapshot().index) return;
  const auto t = log.term_at(i);
  bool holds = t && *t == c.term;
  if (holds && i > log.snapshot().index && c.digest_known) {
    const Entry* e = entry_or_fail(id, entries, i);
    if (e == nullptr) return;
    holds = entry_digest(*e) == c.digest;
  }
  if (holds) return;
  fail(c.acknowledged ? "acknowledged write lost" : "leader completeness",
       fmt::format("leader {} of term {} {} lacks entry {} (term {}, committed in term {}{}); "
                   "its log has {} there (log {}..{}, snapshot at {})",
                   id.value(), term.value(), when, i.value(), c.term.value(),
                   c.commit_term.value(), c.acknowledged ? ", acknowledged to the client" : "",
                   term_or_none(t), log.first_index().value(), log.last_index().value(),
                   log.snapshot().index.value()));
}

// ---- commits ----------------------------------------------------------------------

std::optional<std::pair<LogIndex, LogIndex>> InvariantChecker::on_commit_advanced(
    NodeId id, bool is_leader, Term term, const core::RaftLog& log, const EntryLookup& entries,
    LogIndex from, LogIndex to) {
  std::optional<std::pair<LogIndex, LogIndex>> newly;
  const LogIndex start = std::min(from, known_commit()).next();
  for (LogIndex i = start; i <= to; i = i.next()) {
    const auto t = log.term_at(i);
    if (const Committed* c = committed_at(i)) {
      // Everyone must agree with what was committed first.
      const bool term_ok = !t || *t == c->term;
      bool digest_ok = true;
      if (t && i > log.snapshot().index && c->digest_known) {
        const Entry* e = entry_or_fail(id, entries, i);
        if (e == nullptr) return newly;
        digest_ok = entry_digest(*e) == c->digest;
      }
      if (!term_ok || !digest_ok) {
        fail("state machine safety",
             fmt::format("node {} ({}, term {}) commits index {} holding {}{}, but index {} "
                         "was committed with term {} in term {}",
                         id.value(), is_leader ? "leader" : "not leader", term.value(),
                         i.value(), term_or_none(t), term_ok ? " with another payload" : "",
                         i.value(), c->term.value(), c->commit_term.value()));
        return newly;
      }
      continue;
    }
    if (!is_leader) {
      fail("commit ahead of leaders",
           fmt::format("node {} (not leader, term {}) commits index {}, beyond index {}, the "
                       "highest any leader committed",
                       id.value(), term.value(), i.value(), committed_.size()));
      return newly;
    }
    Committed c;
    c.term = t.value_or(Term{});
    c.commit_term = term;
    if (i > log.snapshot().index && i <= log.last_index()) {
      const Entry* found = entry_or_fail(id, entries, i);
      if (found == nullptr) return newly;
      const Entry& e = *found;
      c.digest = entry_digest(e);
      c.digest_known = true;
      if (e.kind == EntryKind::Config) {
        if (auto conf = core::decode_configuration(e.payload.span())) {
          committed_config_ = std::move(conf).value();
          committed_config_index_ = i;
        }
      }
    }
    committed_.push_back(c);
    if (!newly) newly.emplace(i, i);
    newly->second = i;
  }
  return newly;
}

// ---- logs -------------------------------------------------------------------------

void InvariantChecker::on_entries_written(NodeId id, std::span<const Entry> entries,
                                          std::optional<Term> prev_term, LogIndex node_commit) {
  std::optional<Term> prev = prev_term;
  for (const Entry& e : entries) {
    const std::size_t idx = static_cast<std::size_t>(e.index.value());
    if (written_.size() <= idx) written_.resize(idx + 1);
    const std::uint64_t digest = entry_digest(e);
    auto& pairs = written_[idx];
    auto it = std::find_if(pairs.begin(), pairs.end(), [&](const Written& w) { return w.term == e.term; });
    if (it == pairs.end()) {
      pairs.push_back(Written{e.term, prev, digest, id});
    } else {
      if (it->digest != digest) {
        fail("log matching",
             fmt::format("entry {} of term {} has different payloads on nodes {} and {}",
                         idx, e.term.value(), it->first_writer.value(), id.value()));
      } else if (prev && it->prev_term && *prev != *it->prev_term) {
        fail("log matching",
             fmt::format("entry {} of term {} follows term {} at index {} on node {} but term "
                         "{} on node {}",
                         idx, e.term.value(), prev->value(), idx - 1, id.value(),
                         it->prev_term->value(), it->first_writer.value()));
      } else if (!it->prev_term) {
        it->prev_term = prev;
      }
    }
    if (e.index <= node_commit) {
      const Committed* c = committed_at(e.index);
      if (c != nullptr && c->term != e.term) {
        fail("committed entry changed",
             fmt::format("node {} with commit index {} writes entry {} of term {} over the "
                         "committed entry of term {}",
                         id.value(), node_commit.value(), idx, e.term.value(), c->term.value()));
      }
    }
    prev = e.term;
  }
}

void InvariantChecker::check_logs_match(NodeId a, const core::RaftLog& la, const EntryLookup& fa,
                                        NodeId b, const core::RaftLog& lb, const EntryLookup& fb) {
  const LogIndex lo = std::max(la.first_index(), lb.first_index());
  LogIndex hi = std::min(la.last_index(), lb.last_index());
  while (hi >= lo && !hi.is_zero() && la.term_at(hi) != lb.term_at(hi)) hi = hi.prev();
  if (hi < lo || hi.is_zero()) return;
  // Both logs hold (hi, term): §5.3 log matching says they are identical up to there.
  for (LogIndex j = lo; j <= hi; j = j.next()) {
    const Entry* ea = fa(j);
    const Entry* eb = fb(j);
    if (ea == nullptr || eb == nullptr) {
      fail("evicted entries are durable",
           fmt::format("node {} holds index {} in its log but neither its memory nor its disk "
                       "has the entry",
                       (ea == nullptr ? a : b).value(), j.value()));
      return;
    }
    if (ea->term != eb->term || entry_digest(*ea) != entry_digest(*eb)) {
      fail("log matching",
           fmt::format("nodes {} and {} both hold entry {} of term {} but differ at index {}: "
                       "term {} vs term {}",
                       a.value(), b.value(), hi.value(), la.term_at(hi)->value(), j.value(),
                       ea->term.value(), eb->term.value()));
      return;
    }
  }
}

// ---- state machines ---------------------------------------------------------------

void InvariantChecker::on_apply(NodeId id, LogIndex applied_before, const Entry& e,
                                std::uint64_t state_hash) {
  if (e.index != applied_before.next()) {
    fail("applied order", fmt::format("node {} applied index {} right after index {}",
                                      id.value(), e.index.value(), applied_before.value()));
    return;
  }
  Committed* c = committed_at(e.index);
  if (c == nullptr) {
    fail("applied beyond commit",
         fmt::format("node {} applied index {} (term {}) but no leader committed beyond {}",
                     id.value(), e.index.value(), e.term.value(), committed_.size()));
    return;
  }
  if (c->term != e.term || (c->digest_known && c->digest != entry_digest(e))) {
    fail("state machine safety",
         fmt::format("node {} applied entry {} of term {}, but the entry committed there has "
                     "term {}{}",
                     id.value(), e.index.value(), e.term.value(), c->term.value(),
                     c->term == e.term ? " and another payload" : ""));
    return;
  }
  if (c->state_hash && *c->state_hash != state_hash) {
    fail("state machine safety",
         fmt::format("node {}'s state after applying index {} differs from other nodes'",
                     id.value(), e.index.value()));
    return;
  }
  c->state_hash = state_hash;
  if (e.kind == EntryKind::Session) {
    if (auto cmd = core::decode_session_command(e.payload)) {
      session_copies_[{cmd->client_id, cmd->sequence}].insert(e.index);
    }
  }
}

void InvariantChecker::on_snapshot_restored(NodeId id, const core::SnapshotMeta& s,
                                            std::uint64_t state_hash) {
  ++stats_.snapshots_installed;
  Committed* c = committed_at(s.index);
  if (c == nullptr) {
    fail("snapshot beyond commit",
         fmt::format("node {} installed a snapshot at index {} but no leader committed beyond {}",
                     id.value(), s.index.value(), committed_.size()));
    return;
  }
  if (c->term != s.term) {
    fail("state machine safety",
         fmt::format("node {} installed a snapshot at index {} of term {}, but the entry "
                     "committed there has term {}",
                     id.value(), s.index.value(), s.term.value(), c->term.value()));
    return;
  }
  if (c->state_hash && *c->state_hash != state_hash) {
    fail("state machine safety",
         fmt::format("node {} installed a snapshot at index {} whose state differs from the "
                     "state other nodes reached there",
                     id.value(), s.index.value()));
    return;
  }
  c->state_hash = state_hash;
}

// ---- clients ----------------------------------------------------------------------

std::optional<LogIndex> InvariantChecker::first_session_copy(
    const std::pair<std::uint64_t, std::uint64_t>& key) const {
  const auto it = session_copies_.find(key);
  if (it == session_copies_.end()) return std::nullopt;
  return *it->second.begin();
}

void InvariantChecker::on_acknowledged(NodeId id, const ProposeResult& result,
                                       std::uint64_t submit_tick, const ClientSession& session) {
  Committed* c = committed_at(result.index);
  if (c == nullptr || c->term != result.term) {
    fail("acknowledged proposals",
         fmt::format("node {} acknowledged a proposal as entry {} of term {}, but {}", id.value(),
                     result.index.value(), result.term.value(),
                     c == nullptr ? fmt::format("no leader committed beyond {}", committed_.size())
                                  : fmt::format("the entry committed there has term {}",
                                                c->term.value())));
    return;
  }
  if (!c->acknowledged) ++stats_.acknowledged;
  c->acknowledged = true;
  last_ack_submit_tick_ = std::max(last_ack_submit_tick_, submit_tick);
  if (session.client_id == 0) return;
  const auto it = session_copies_.find({session.client_id, session.sequence});
  if (it == session_copies_.end()) return;  // no node applied it yet (restored past it)
  if (*it->second.begin() < result.index) {
    fail("exactly once",
         fmt::format("node {} acknowledged sequence {} of client {} as entry {}, but its first "
                     "copy committed at {}",
                     id.value(), session.sequence, session.client_id, result.index.value(),
                     it->second.begin()->value()));
  } else if (!it->second.contains(result.index)) {
    fail("exactly once",
         fmt::format("node {} acknowledged sequence {} of client {} as entry {}, which holds "
                     "another command",
                     id.value(), session.sequence, session.client_id, result.index.value()));
  }
}

void InvariantChecker::on_read_requested(std::uint64_t request_id, NodeId node) {
  reads_[request_id] = PendingRead{node, known_commit()};
}

void InvariantChecker::on_read_state(NodeId node, const core::ReadState& rs) {
  const auto it = reads_.find(rs.request_id);
  if (it == reads_.end() || it->second.node != node) {
    fail("linearizable read", fmt::format("node {} answered read {} that it was never asked",
                                          node.value(), rs.request_id));
    return;
  }
  if (rs.ok) {
    ++stats_.reads_confirmed;
    if (rs.index < it->second.commit_at_request) {
      fail("linearizable read",
           fmt::format("node {} confirmed read {} at index {}, but index {} was committed "
                       "before the read was requested",
                       node.value(), rs.request_id, rs.index.value(),
                       it->second.commit_at_request.value()));
    }
  } else {
    ++stats_.reads_failed;
  }
  reads_.erase(it);
}

}  // namespace rlr::sim
