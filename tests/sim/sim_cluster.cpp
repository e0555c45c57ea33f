#include "sim_cluster.h"

#include <algorithm>

#include <fmt/format.h>

namespace rlr::sim {
namespace {

// A core that keeps reporting has_ready() without ever running dry is a bug; a bound on
// the Readys taken in one go turns that hang into a reported violation.
constexpr int kMaxReadysPerDrain = 10'000;
// Likewise for fsyncs completing within one tick (zero-delay writes can chain).
constexpr int kMaxWritesPerTick = 100'000;

core::SnapshotMeta initial_snapshot(const std::vector<NodeId>& voters) {
  core::SnapshotMeta s;
  s.config.voters = voters;
  return s;
}

}  // namespace

std::string_view progress_state_name(core::Progress::State state) noexcept {
  switch (state) {
    case core::Progress::State::Probe: return "probe";
    case core::Progress::State::Replicate: return "replicate";
    case core::Progress::State::Snapshot: return "snapshot";
  }
  return "?";
}

SimCluster::SimCluster(const ClusterOptions& options, SimRng rng, InvariantChecker& checker,
                       Trace& trace)
    : options_(options), rng_(rng), checker_(checker), trace_(trace), network_(rng_.fork()) {
  std::vector<NodeId> voters;
  for (std::size_t i = 0; i < options_.initial_voters; ++i) voters.emplace_back(i + 1);
  core::Configuration initial;
  initial.voters = voters;
  checker_.set_initial_config(initial);
  slots_.resize(options_.slots);
  for (std::size_t slot = 0; slot < options_.initial_voters; ++slot) {
    const NodeId id{next_node_id_++};
    slots_[slot] = std::make_unique<SimNode>(slot, id, SimStorage(initial_snapshot(voters),
                                                                  kInitialStateHash));
    slot_of_[id] = slot;
    ++stats_.nodes_started;
  }
  for (std::size_t slot = 0; slot < options_.initial_voters; ++slot) {
    if (boot(*slots_[slot])) after_input(*slots_[slot]);
  }
}

core::RaftOptions SimCluster::options_for(SimNode& n) {
  core::RaftOptions o = options_.raft;
  o.id = n.id;
  o.random_seed = rng_.next();
  o.log_reader = &n.reader;
  n.reader.count_into(&stats_.entries_read_back);
  return o;
}

Status SimLogReader::read(LogIndex from, LogIndex to, std::size_t max_entries,
                          std::size_t max_bytes, std::vector<Entry>& out) {
  out.clear();
  std::size_t bytes = 0;
  for (LogIndex i = from; i <= to && out.size() < max_entries; i = i.next()) {
    const Entry* e = storage_.entry_at(i);
    if (e == nullptr) {
      if (miss_.empty()) {
        miss_ = fmt::format("entries {}..{} asked for, entry {} is not on the disk (disk log ..{})",
                            from.value(), to.value(), i.value(), storage_.last_index().value());
      }
      out.clear();
      return {ErrorCode::Corruption, miss_};
    }
    bytes += e->payload.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(*e);
  }
  if (total_ != nullptr) *total_ += out.size();
  return Status::ok();
}

SimNode* SimCluster::find(NodeId id) noexcept {
  const auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : slots_[it->second].get();
}

const SimNode* SimCluster::find(NodeId id) const noexcept {
  const auto it = slot_of_.find(id);
  return it == slot_of_.end() ? nullptr : slots_[it->second].get();
}

SimNode* SimCluster::leader() noexcept {
  SimNode* best = nullptr;
  for (auto& n : slots_) {
    if (!n || !n->up() || n->raft->role() != Role::Leader) continue;
    if (best == nullptr || n->raft->term() > best->raft->term()) best = n.get();
  }
  return best;
}

std::vector<NodeId> SimCluster::hosted_ids() const {
  std::vector<NodeId> ids;
  for (const auto& n : slots_) {
    if (n) ids.push_back(n->id);
  }
  return ids;
}

std::size_t SimCluster::up_count() const noexcept {
  return static_cast<std::size_t>(
      std::count_if(slots_.begin(), slots_.end(), [](const auto& n) { return n && n->up(); }));
}

// ---- time -------------------------------------------------------------------------

void SimCluster::tick() {
  ++now_tick_;
  checker_.set_tick(now_tick_);
  while (auto m = network_.pop_due(now_tick_)) deliver(*m);
  complete_due_writes();
  for (auto& n : slots_) {
    if (!n || !n->up()) continue;
    n->raft->tick();
    after_input(*n);
  }
  complete_due_writes();
  if (silence_notice_ticks_ > 0) notice_silences();
}

void SimCluster::notice_silences() {
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    SimNode* n = slots_[slot].get();
    if (n == nullptr || !n->up()) continue;
    const NodeId leader = n->raft->leader();
    if (leader == kNoNode || leader == n->id) continue;
    const auto key = std::make_pair(n->id.value(), leader.value());
    // A node that never heard from its leader in this process learned of it just now.
    const std::uint64_t heard = heard_tick_.try_emplace(key, now_tick_).first->second;
    if (now_tick_ - heard >= silence_notice_ticks_ && silence_noticed_.insert(key).second) {
      ++stats_.silence_notices;
      notify_disconnect(slot, leader);
    }
  }
}

void SimCluster::deliver(const core::Message& m) {
  SimNode* n = find(m.to);
  if (n == nullptr || !n->up()) {
    if (trace_.enabled(TraceLevel::Verbose)) {
      trace_.line(TraceLevel::Verbose, now_tick_, "drop (node down) {}", core::describe(m));
    }
    return;
  }
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "recv {}", core::describe(m));
  }
  if (silence_notice_ticks_ > 0) {
    const auto key = std::make_pair(m.to.value(), m.from.value());
    heard_tick_[key] = now_tick_;
    silence_noticed_.erase(key);
  }
  if (Status s = n->raft->step(m); !s) {
    checker_.fail("message rejected", fmt::format("node {} rejected {}: {}", n->id.value(),
                                                  core::describe(m), s.to_string()));
  }
  after_input(*n);
}

void SimCluster::complete_due_writes() {
  int completed = 0;
  bool progress = true;
  while (progress) {
    progress = false;
    for (auto& n : slots_) {
      while (n && n->up() && n->storage.has_due(now_tick_)) {
        complete_write(*n);
        progress = true;
        if (++completed > kMaxWritesPerTick) {
          checker_.fail("ready loop", "fsyncs keep completing within one tick");
          return;
        }
      }
    }
  }
}

void SimCluster::complete_write(SimNode& n) {
  std::string error;
  PendingWrite w = n.storage.complete_next(error);
  ++stats_.fsyncs;
  if (!error.empty()) {
    checker_.fail("storage contract", fmt::format("node {}: {}", n.id.value(), error));
  }
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_,
                "n{} fsync done: snapshot {} entries {}..{} hard state {} -> ack {}/t{}",
                n.id.value(), w.snapshot ? w.snapshot->index.value() : 0,
                w.entries.empty() ? 0 : w.entries.front().index.value(),
                w.entries.empty() ? 0 : w.entries.back().index.value(),
                w.hard_state ? fmt::format("t{} vote {} commit {}", w.hard_state->term.value(),
                                           w.hard_state->vote.value(),
                                           w.hard_state->commit.value())
                             : std::string("-"),
                w.mark.index.value(), w.mark.term.value());
  }
  if (w.snapshot) restore_state_machine(n, *w.snapshot);
  for (core::Message& m : w.messages_after_persist) send(n, std::move(m));
  if (w.must_ack) {
    n.raft->ack_persisted(w.mark);
    after_input(n);
  }
}

// ---- one core's outputs -------------------------------------------------------------

void SimCluster::after_input(SimNode& n) {
  observe(n);
  drain(n);
}

void SimCluster::drain(SimNode& n) {
  int readys = 0;
  while (n.up() && n.raft->has_ready()) {
    if (++readys > kMaxReadysPerDrain) {
      checker_.fail("ready loop", fmt::format("node {} reports has_ready() forever: {}",
                                              n.id.value(), n.raft->describe()));
      return;
    }
    handle_ready(n, n.raft->ready());
    observe(n);
  }
}

void SimCluster::observe(SimNode& n) {
  const core::Raft& r = *n.raft;
  const bool is_leader = r.role() == Role::Leader;
  const Term term = r.term();
  if (is_leader && !(n.seen_leader && n.seen_term == term)) {
    trace_.line(TraceLevel::Narrative, now_tick_, "node {} became leader in term {}",
                n.id.value(), term.value());
    checker_.on_leader(n.id, term, r.log(), lookup(n));
  } else if (!is_leader && n.seen_leader) {
    trace_.line(TraceLevel::Narrative, now_tick_, "node {} stepped down (now {} in term {})",
                n.id.value(), to_string(r.role()), term.value());
  }
  if (!n.reader.miss().empty()) {
    checker_.fail("evicted entries are durable",
                  fmt::format("node {} read back an evicted entry its disk does not have: {}",
                              n.id.value(), n.reader.miss()));
  }
  // A leader may commit and step down within one call (a leader outside C_new steps
  // down as C_new commits): the commit was still the leader's.
  const bool committed_as_leader = is_leader || (n.seen_leader && n.seen_term == term);
  n.seen_leader = is_leader;
  n.seen_term = term;
  const LogIndex commit = r.commit_index();
  if (commit <= n.seen_commit) return;
  const auto newly = checker_.on_commit_advanced(n.id, committed_as_leader, term, r.log(), lookup(n),
                                                 n.seen_commit, commit);
  n.seen_commit = commit;
  if (!newly || !committed_as_leader) return;
  leader_commits_.push_back(n.slot);
  // Leaders of later terms elected before this commit was observed must hold it too.
  for (auto& other : slots_) {
    if (!other || other.get() == &n || !other->up()) continue;
    const core::Raft& o = *other->raft;
    if (o.role() == Role::Leader && o.term() > term) {
      checker_.check_leader_holds(other->id, o.term(), o.log(), lookup(*other), newly->first,
                                  newly->second);
    }
  }
}

void SimCluster::handle_ready(SimNode& n, core::Ready rd) {
  core::Raft& r = *n.raft;
  if (rd.soft_state && trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "n{} is {} in term {} (leader {})", n.id.value(),
                to_string(rd.soft_state->role), rd.soft_state->term.value(),
                rd.soft_state->leader.value());
  }
  if (!rd.entries.empty()) {
    checker_.on_entries_written(n.id, rd.entries, r.log().term_at(rd.entries.front().index.prev()),
                                r.commit_index());
  }
  for (core::Message& m : rd.messages) send(n, std::move(m));
  for (const Entry& e : rd.committed) apply(n, e);
  for (const core::ReadState& rs : rd.read_states) {
    if (trace_.enabled(TraceLevel::Verbose)) {
      trace_.line(TraceLevel::Verbose, now_tick_, "n{} read {} {} at index {}", n.id.value(),
                  rs.request_id, rs.ok ? "confirmed" : "failed", rs.index.value());
    }
    checker_.on_read_state(n.id, rs);
  }
  if (!rd.must_persist() && rd.messages_after_persist.empty()) return;
  PendingWrite w;
  w.complete_tick = now_tick_ + rng_.uniform(options_.fsync_min_ticks, options_.fsync_max_ticks);
  w.snapshot = std::move(rd.snapshot);
  w.entries = std::move(rd.entries);
  w.hard_state = rd.hard_state;
  w.messages_after_persist = std::move(rd.messages_after_persist);
  w.must_ack = w.snapshot.has_value() || !w.entries.empty() || w.hard_state.has_value();
  w.mark = rd.persist_mark;
  n.storage.enqueue(std::move(w));
}

void SimCluster::send(SimNode& from, core::Message m) {
  if (m.type == core::MessageType::VoteResponse && !m.reject) vote_grants_.push_back(from.slot);
  if ((m.type == core::MessageType::Append && !m.entries.empty()) ||
      m.type == core::MessageType::Snapshot) {
    replication_tick_[{m.from.value(), m.to.value()}] = now_tick_;
  }
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "send {}", core::describe(m));
  }
  network_.send(std::move(m), now_tick_);
}

void SimCluster::apply(SimNode& n, const Entry& e) {
  // Ready contract, point 4: committed entries are never ahead of durable storage.
  if (!n.storage.holds(e.index, e.term)) {
    checker_.fail("apply before durable",
                  fmt::format("node {} was handed entry {} (term {}) to apply, but its disk "
                              "holds {} there",
                              n.id.value(), e.index.value(), e.term.value(),
                              n.storage.term_at(e.index)
                                  ? fmt::format("term {}", n.storage.term_at(e.index)->value())
                                  : std::string("nothing")));
  }
  const std::uint64_t next = next_state_hash(n.state_hash, e);
  checker_.on_apply(n.id, n.applied, e, next);
  n.applied = e.index;
  n.state_hash = next;
  n.storage.save_checkpoint(StateMachineCheckpoint{n.applied, n.state_hash});
  ++stats_.applied_entries;
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "n{} apply {}/t{} {}", n.id.value(),
                e.index.value(), e.term.value(), to_string(e.kind));
  }
}

void SimCluster::restore_state_machine(SimNode& n, const core::SnapshotMeta& s) {
  if (s.index <= n.applied) return;
  const auto hash = decode_snapshot_data(s);
  if (!hash) {
    checker_.fail("snapshot data", fmt::format("node {} got a snapshot at index {} whose data "
                                               "is not a state machine snapshot",
                                               n.id.value(), s.index.value()));
    return;
  }
  trace_.line(TraceLevel::Narrative, now_tick_,
              "node {} installed a snapshot at index {} (term {}) from the leader", n.id.value(),
              s.index.value(), s.term.value());
  checker_.on_snapshot_restored(n.id, s, *hash);
  n.applied = s.index;
  n.state_hash = *hash;
  n.storage.save_checkpoint(StateMachineCheckpoint{n.applied, n.state_hash});
}

// ---- faults -----------------------------------------------------------------------

void SimCluster::crash(std::size_t slot, std::string_view why) {
  SimNode& n = *slots_[slot];
  if (!n.up()) return;
  const std::size_t lost = n.storage.queued();
  trace_.line(TraceLevel::Narrative, now_tick_, "CRASH node {} ({}{}){}", n.id.value(),
              to_string(n.raft->role()), why.empty() ? "" : fmt::format(", {}", why),
              lost == 0 ? "" : fmt::format(": {} unsynced writes lost", lost));
  n.raft.reset();
  n.storage.crash();
  n.seen_leader = false;
  n.down_since_tick = now_tick_;
  stats_.writes_lost += lost;
  ++stats_.crashes;
}

void SimCluster::notify_disconnect(std::size_t slot, NodeId lost) {
  SimNode& n = *slots_[slot];
  if (!n.up()) return;
  trace_.line(TraceLevel::Narrative, now_tick_, "DISCONNECT node {} loses its connection to node {}",
              n.id.value(), lost.value());
  n.raft->peer_disconnected(lost);
  after_input(n);
}

void SimCluster::restart(std::size_t slot) {
  SimNode& n = *slots_[slot];
  if (n.up() || !boot(n)) return;
  ++stats_.restarts;
  trace_.line(TraceLevel::Narrative, now_tick_,
              "RESTART node {} after {} ticks down: term {}, log {}..{}, commit {}",
              n.id.value(), now_tick_ - n.down_since_tick, n.raft->term().value(),
              n.raft->log().first_index().value(), n.raft->log().last_index().value(),
              n.raft->commit_index().value());
  after_input(n);
}

bool SimCluster::boot(SimNode& n) {
  const DurableState& d = n.storage.durable();
  if (d.hard_state.commit > n.storage.last_index()) {
    checker_.fail("durable state",
                  fmt::format("node {}'s disk holds commit index {} beyond its last entry {}",
                              n.id.value(), d.hard_state.commit.value(),
                              n.storage.last_index().value()));
  }
  // The state machine resumes from its own checkpoint or replays from the snapshot;
  // the core clamps it to the durable commit index.
  const LogIndex snapshot_index = d.snapshot.index;
  const LogIndex commit = std::clamp(d.hard_state.commit, snapshot_index, n.storage.last_index());
  LogIndex applied = rng_.chance(0.5) ? d.checkpoint.applied : snapshot_index;
  applied = std::clamp(applied, snapshot_index, commit);
  std::optional<std::uint64_t> hash;
  if (applied == d.checkpoint.applied) {
    hash = d.checkpoint.state_hash;
  } else if (applied == snapshot_index) {
    hash = decode_snapshot_data(d.snapshot);
  } else {
    hash = checker_.state_hash_at(applied);
  }
  if (!hash) {
    applied = snapshot_index;
    hash = decode_snapshot_data(d.snapshot);
  }
  auto created = core::Raft::create(options_for(n), n.storage.restore_state(applied));
  if (!created) {
    checker_.fail("restart", fmt::format("node {} cannot restart from its disk: {}",
                                         n.id.value(), created.status().to_string()));
    return false;
  }
  n.raft.emplace(std::move(created).value());
  n.applied = applied;
  n.state_hash = hash.value_or(kInitialStateHash);
  if (n.raft->applied_index() != applied) {
    checker_.fail("restart", fmt::format("node {} resumed applying after {}, its state machine "
                                         "after {}",
                                         n.id.value(), n.raft->applied_index().value(),
                                         applied.value()));
  }
  n.seen_leader = false;
  n.seen_term = n.raft->term();
  n.seen_commit = d.snapshot.index;
  return true;
}

NodeId SimCluster::start_new_node(std::size_t slot) {
  const NodeId id{next_node_id_++};
  slots_[slot] = std::make_unique<SimNode>(slot, id, SimStorage(core::SnapshotMeta{},
                                                                kInitialStateHash));
  slot_of_[id] = slot;
  ++stats_.nodes_started;
  trace_.line(TraceLevel::Narrative, now_tick_, "node {} started empty, waiting to be added",
              id.value());
  SimNode& n = *slots_[slot];
  if (boot(n)) after_input(n);
  return id;
}

void SimCluster::retire(std::size_t slot) {
  SimNode& n = *slots_[slot];
  trace_.line(TraceLevel::Narrative, now_tick_, "node {} retired (no longer in any configuration)",
              n.id.value());
  slot_of_.erase(n.id);
  slots_[slot].reset();
  ++stats_.nodes_retired;
}

// ---- requests ---------------------------------------------------------------------

Status SimCluster::compact(NodeId id, LogIndex index) {
  SimNode& n = *find(id);
  const auto hash = checker_.state_hash_at(index);
  if (!hash) return Status{ErrorCode::NotFound, "no state known at that index"};
  Status s = n.raft->compact(index, encode_snapshot_data(index, *hash));
  if (s) {
    // The application keeps its snapshot durably before it lets the log go.
    n.storage.save_snapshot(n.raft->log().snapshot());
    if (trace_.enabled(TraceLevel::Verbose)) {
      trace_.line(TraceLevel::Verbose, now_tick_, "n{} compacted its log up to {}", id.value(),
                  index.value());
    }
  }
  after_input(n);
  return s;
}

// ---- checks -----------------------------------------------------------------------

std::uint64_t SimCluster::last_replication_tick(NodeId from, NodeId to) const {
  const auto it = replication_tick_.find({from.value(), to.value()});
  return it == replication_tick_.end() ? 0 : it->second;
}

InvariantChecker::EntryLookup SimCluster::lookup(const SimNode& n) {
  return [&n](LogIndex i) -> const Entry* {
    const core::RaftLog& log = n.raft->log();
    if (i < log.first_index() || i > log.last_index()) return nullptr;
    if (i >= log.memory_first()) return &log.at(i);
    // Evicted: the disk must hold it, with the term the log kept for it.
    const Entry* e = n.storage.entry_at(i);
    return e != nullptr && e->term == log.term_at(i) ? e : nullptr;
  };
}

void SimCluster::check_all_logs() {
  for (std::size_t a = 0; a < slots_.size(); ++a) {
    if (!slots_[a] || !slots_[a]->up()) continue;
    for (std::size_t b = a + 1; b < slots_.size(); ++b) {
      if (!slots_[b] || !slots_[b]->up()) continue;
      checker_.check_logs_match(slots_[a]->id, slots_[a]->raft->log(), lookup(*slots_[a]),
                                slots_[b]->id, slots_[b]->raft->log(), lookup(*slots_[b]));
    }
  }
}

std::string SimCluster::describe_nodes() const {
  std::string out;
  for (const auto& n : slots_) {
    if (!n) continue;
    if (n->up()) {
      out += fmt::format("  {}\n", n->raft->describe());
      for (const auto& [peer, pr] : n->raft->progress()) {
        out += fmt::format("      progress of {}: {} match {} next {} inflight {}{}{}\n",
                           peer.value(), progress_state_name(pr.state), pr.match.value(),
                           pr.next.value(), pr.inflight.size(),
                           pr.probe_sent ? " probe-sent" : "",
                           pr.recent_active ? " active" : "");
      }
    } else {
      out += fmt::format("  node {} down since t={} (disk: term {} vote {} commit {}, log ..{})\n",
                         n->id.value(), n->down_since_tick, n->storage.durable().hard_state.term.value(),
                         n->storage.durable().hard_state.vote.value(),
                         n->storage.durable().hard_state.commit.value(),
                         n->storage.last_index().value());
    }
  }
  return out;
}

}  // namespace rlr::sim
