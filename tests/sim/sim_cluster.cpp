#include "sim_cluster.h"

#include <algorithm>

#include <fmt/format.h>

#include "core/entry_payloads.h"
#include "node/sessions.h"

namespace rlr::sim {
namespace {

// A core that keeps reporting has_ready() without ever running dry is a bug; a bound on
// the Readys taken in one go turns that hang into a reported violation.
constexpr int kMaxReadysPerDrain = 10'000;
// Likewise for fsyncs completing within one tick (zero-delay writes can chain).
constexpr int kMaxWritesPerTick = 100'000;
// How long membership changes, transfers and reads may take before they time out.
constexpr std::uint64_t kRequestTimeoutTicks = 2'000;

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
    : options_(options),
      rng_(rng),
      checker_(checker),
      trace_(trace),
      network_(rng_.fork()),
      downstream_(checker) {
  std::vector<NodeId> voters;
  for (std::size_t i = 0; i < options_.initial_voters; ++i) voters.emplace_back(i + 1);
  core::Configuration initial;
  initial.voters = voters;
  checker_.set_initial_config(initial);
  slots_.resize(options_.slots);
  for (std::size_t slot = 0; slot < options_.initial_voters; ++slot) {
    const NodeId id{next_node_id_++};
    slots_[slot] = std::make_unique<SimNode>(*this, slot, id,
                                             SimStorage(initial_snapshot(voters), kInitialStateHash));
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
  return o;
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
    // A replica whose storage failed takes no requests, whatever its core still says.
    if (!n || !n->up() || n->replica->failed() || n->core().role() != Role::Leader) continue;
    if (best == nullptr || n->core().term() > best->core().term()) best = n.get();
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
    n->replica->tick(clock());
    after_input(*n);
    if (n->up() && n->leads()) propose_watermark(*n);
  }
  complete_due_writes();
  if (silence_notice_ticks_ > 0) notice_silences();
}

void SimCluster::notice_silences() {
  for (std::size_t slot = 0; slot < slots_.size(); ++slot) {
    SimNode* n = slots_[slot].get();
    if (n == nullptr || !n->up()) continue;
    const NodeId leader = n->core().leader();
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
  n->replica->step(m);  // a rejected message is a warning, which fails the run
  after_input(*n);
}

void SimCluster::complete_due_writes() {
  int completed = 0;
  bool progress = true;
  while (progress) {
    progress = false;
    for (auto& n : slots_) {
      while (n && n->up() && n->storage.has_due(now_tick_)) {
        complete_write(*n, false);
        progress = true;
        if (++completed > kMaxWritesPerTick) {
          checker_.fail("ready loop", "fsyncs keep completing within one tick");
          return;
        }
      }
    }
  }
}

void SimCluster::complete_write(SimNode& n, bool deferred) {
  if (n.disk_broken) {
    // The write fails; nothing queued behind it may become durable either.
    trace_.line(TraceLevel::Narrative, now_tick_, "node {}: a write failed on its disk; {} queued writes dropped",
                n.id.value(), n.storage.queued());
    n.storage.crash();
    if (deferred) {
      n.failure_pending = true;  // inside a replica call: told once it returns
      return;
    }
    fail_storage(n);
    after_input(n);
    return;
  }
  std::string error;
  PendingWrite w = n.storage.complete_next(error);
  ++stats_.fsyncs;
  if (!error.empty()) {
    checker_.fail("storage contract", fmt::format("node {}: {}", n.id.value(), error));
  }
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_,
                "n{} fsync done: entries {}..{} hard state {} -> ack {}/t{}", n.id.value(),
                w.entries.empty() ? 0 : w.entries.front().index.value(),
                w.entries.empty() ? 0 : w.entries.back().index.value(),
                w.hard_state ? fmt::format("t{} vote {} commit {}", w.hard_state->term.value(),
                                           w.hard_state->vote.value(),
                                           w.hard_state->commit.value())
                             : std::string("-"),
                w.mark.index.value(), w.mark.term.value());
  }
  for (core::Message& m : w.messages_after_persist) send(n, std::move(m));
  if (deferred) {
    n.deferred_marks.push_back(w.mark);
    return;
  }
  const core::PersistMark mark = w.mark;
  n.replica->persisted(std::span<const core::PersistMark>(&mark, 1));
  after_input(n);
}

// ---- one replica's inputs and outputs ---------------------------------------------------

void SimCluster::fail_storage(SimNode& n) {
  n.failure_pending = false;
  n.replica->storage_failed(Status{ErrorCode::IoError, "simulated disk: the write failed"});
}

void SimCluster::after_input(SimNode& n) {
  for (int round = 0; n.up(); ++round) {
    if (n.failure_pending) fail_storage(n);
    observe(n);
    n.replica->process_ready();
    if (!n.up()) return;
    if (n.core().has_ready() && !n.replica->failed()) {
      checker_.fail("ready loop", fmt::format("node {} reports has_ready() forever: {}",
                                              n.id.value(), n.core().describe()));
      return;
    }
    observe(n);
    run_completions(n);
    if (n.deferred_marks.empty()) return;
    if (round > kMaxReadysPerDrain) {
      checker_.fail("ready loop", fmt::format("node {}: drains keep completing writes", n.id.value()));
      return;
    }
    const std::vector<core::PersistMark> marks = std::exchange(n.deferred_marks, {});
    n.replica->persisted(marks);
  }
}

void SimCluster::run_completions(SimNode& n) {
  if (n.replica->completions().empty()) return;
  std::vector<node::Completion> done;
  done.swap(n.replica->completions());
  for (node::Completion& c : done) c.run();
  if (n.up() && n.replica->completions().empty()) {
    done.clear();
    done.swap(n.replica->completions());  // its capacity serves the next turn
  }
}

void SimCluster::on_soft_state(SimNode& n, const core::SoftState& s) {
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "n{} is {} in term {} (leader {})", n.id.value(),
                to_string(s.role), s.term.value(), s.leader.value());
  }
}

void SimCluster::on_entries_written(SimNode& n, std::span<const Entry> entries) {
  if (entries.empty()) return;
  const core::Raft& r = n.core();
  checker_.on_entries_written(n.id, entries, r.log().term_at(entries.front().index.prev()),
                              r.commit_index());
  if (r.role() != Role::Leader) return;
  // Exactly once, at the source: a leader appends a session command only when it knows of
  // no copy of it, neither applied nor appended by itself in this term.
  if (n.appended_term != r.term()) {
    n.appended_term = r.term();
    n.appended_sessions.clear();
  }
  for (const Entry& e : entries) {
    if (e.kind != EntryKind::Session || e.term != r.term()) continue;
    const auto cmd = core::decode_session_command(e.payload);
    if (!cmd) continue;
    const std::pair<std::uint64_t, std::uint64_t> key{cmd->client_id, cmd->sequence};
    if (const auto it = n.appended_sessions.find(key);
        it != n.appended_sessions.end() && it->second < e.index && r.log().matches(it->second, e.term)) {
      checker_.fail("exactly once",
                    fmt::format("leader {} appended sequence {} of client {} at {}, and again at {} "
                                "in the same term",
                                n.id.value(), key.second, key.first, it->second.value(), e.index.value()));
    }
    if (const auto first = checker_.first_session_copy(key); first && *first <= n.replica->applied()) {
      checker_.fail("exactly once",
                    fmt::format("leader {} appended sequence {} of client {} at {}, though its "
                                "copy at {} is committed and applied there",
                                n.id.value(), key.second, key.first, e.index.value(), first->value()));
    }
    n.appended_sessions[key] = e.index;
  }
}

void SimCluster::on_write_submitted(SimNode& n, node::WriteStep step) {
  on_entries_written(n, step.entries);
  PendingWrite w;
  w.complete_tick = now_tick_ + fsync_delay();
  w.entries = std::move(step.entries);
  w.hard_state = step.hard_state;
  w.messages_after_persist = std::move(step.after_persist);
  w.must_ack = true;
  w.mark = step.mark;
  n.storage.enqueue(std::move(w));
}

void SimCluster::on_drain(SimNode& n) {
  while (n.storage.queued() != 0) complete_write(n, true);
}

void SimCluster::on_committed(SimNode& n, const std::vector<Entry>& entries) {
  observe(n);  // the checker learns of the commit before it sees the entries applied
  for (const Entry& e : entries) {
    if (e.index > n.applied) apply(n, e);
  }
}

void SimCluster::on_snapshot_installed(SimNode& n, LogIndex index) {
  observe(n);
  const core::SnapshotMeta& s = n.core().log().snapshot();
  trace_.line(TraceLevel::Narrative, now_tick_,
              "node {} installed a snapshot at index {} (term {}) from the leader", n.id.value(),
              index.value(), s.term.value());
  if (s.index != index) {
    checker_.fail("snapshot install", fmt::format("node {} reported a snapshot at {}, its log's is at {}",
                                                  n.id.value(), index.value(), s.index.value()));
  }
  if (index > n.applied) {
    restore_state_machine(n, index, "snapshot installed");
    if (const auto hash = checker_.state_hash_at(index)) checker_.on_snapshot_restored(n.id, s, *hash);
    start_app(n, s, index);
  }
}

void SimCluster::on_storage_failed(SimNode& n) {
  ++stats_.storage_failures;
  if (n.core().role() == Role::Leader) ++stats_.leader_storage_failures;
}

void SimCluster::on_warn(SimNode& n, std::string_view line) {
  if (n.disk_broken && (line.starts_with("storage failed") || line.starts_with("handing leadership") ||
                        line.starts_with("compaction failed"))) {
    // What the replica says of its broken disk is expected: the failed write (Error), a
    // leader's hand-off and a refused compaction (Warn). Narrated, not failures.
    trace_.line(TraceLevel::Narrative, now_tick_, "node {} says: {}", n.id.value(), line);
    return;
  }
  checker_.fail("runtime warning", fmt::format("node {}: {}", n.id.value(), line));
}

void SimCluster::observe(SimNode& n) {
  const core::Raft& r = n.core();
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
  if (!n.store.miss().empty()) {
    checker_.fail("evicted entries are durable",
                  fmt::format("node {} read back an entry its disk does not have: {}",
                              n.id.value(), n.store.miss()));
  }
  if (n.replica->waiters().pending_proposals() > n.options.max_pending_proposals) {
    checker_.fail("bounded queues",
                  fmt::format("node {} has {} proposals pending, its bound is {}", n.id.value(),
                              n.replica->waiters().pending_proposals(),
                              n.options.max_pending_proposals));
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
    const core::Raft& o = other->core();
    if (o.role() == Role::Leader && o.term() > term) {
      checker_.check_leader_holds(other->id, o.term(), o.log(), lookup(*other), newly->first,
                                  newly->second);
    }
  }
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
  if (n.engine) {
    n.engine->apply(e);
    downstream_.on_applied(n.id, e.index, n.app->state(), n.app->take_outputs());
  }
  if (trace_.enabled(TraceLevel::Verbose)) {
    trace_.line(TraceLevel::Verbose, now_tick_, "n{} apply {}/t{} {}", n.id.value(),
                e.index.value(), e.term.value(), to_string(e.kind));
  }
}

void SimCluster::restore_state_machine(SimNode& n, LogIndex index, std::string_view why) {
  const auto hash = index.is_zero() ? std::optional<std::uint64_t>(kInitialStateHash)
                                    : checker_.state_hash_at(index);
  if (!hash) {
    checker_.fail("state machine restore",
                  fmt::format("node {} must restore its state machine at index {} ({}), which no "
                              "node has applied",
                              n.id.value(), index.value(), why));
    return;
  }
  trace_.line(TraceLevel::Verbose, now_tick_, "n{} state machine restored at index {} ({})",
              n.id.value(), index.value(), why);
  n.applied = index;
  n.state_hash = *hash;
  n.storage.save_checkpoint(StateMachineCheckpoint{n.applied, n.state_hash});
}

void SimCluster::start_app(SimNode& n, const core::SnapshotMeta& base, LogIndex start_after) {
  if (!n.app) {
    n.app = std::make_shared<SimStateMachine>(downstream_, n.id);
    SimNode* node = &n;
    n.sink = std::make_shared<SimSink>(downstream_, n.id, [node] { return node->leads(); });
  }
  const auto state = downstream_.state_at(start_after);
  if (!state) {
    checker_.fail("state machine restore",
                  fmt::format("node {}'s application resumes after index {}, which no node has "
                              "applied",
                              n.id.value(), start_after.value()));
    return;
  }
  n.app->reset(start_after, *state);
  node::SessionTable sessions(n.options.session_ttl_entries, n.options.max_sessions);
  if (Status st = sessions.decode(base.data.span()); !st) {
    checker_.fail("durable state", fmt::format("node {}'s snapshot at {} has no session table: {}",
                                               n.id.value(), base.index.value(), st.to_string()));
    return;
  }
  ApplyOptions ao;
  ao.egress = EgressMode::LeaderOnly;
  ao.sink = n.sink;
  ao.digest_interval = options_.digest_interval;
  SimNode* node = &n;
  n.engine = std::make_unique<node::ApplyEngine>(
      n.id, n.app, ao, std::move(sessions), base.config, false,
      [node](Term t) { return node->leads() && node->core().term() == t; }, start_after);
  n.engine->set_testing_bug(options_.apply_bug);
  n.engine->on_checkpoint([this, node](const DigestCheckpoint& cp) {
    downstream_.on_checkpoint(node->id, cp);
  });
  // RLR's own state (sessions, roles, watermark) up to the state machine's checkpoint.
  for (LogIndex i = base.index.next(); i <= start_after; i = i.next()) {
    const Entry* e = n.storage.entry_at(i);
    if (e == nullptr) {
      checker_.fail("durable state",
                    fmt::format("node {}'s application resumes after {}, but entry {} is not on "
                                "its disk",
                                n.id.value(), start_after.value(), i.value()));
      n.engine.reset();
      return;
    }
    n.engine->catch_up(*e);
  }
  n.engine_start = start_after;
  n.proposed_watermark = LogIndex{};
}

void SimCluster::propose_watermark(SimNode& n) {
  if (!n.engine || now_tick_ < n.next_watermark_tick) return;
  n.next_watermark_tick = now_tick_ + options_.watermark_ticks;
  const auto due = n.engine->watermark_to_propose(n.proposed_watermark);
  if (!due) return;
  n.proposed_watermark = *due;
  std::vector<node::Proposal> props;
  props.push_back(node::Proposal{core::encode_watermark(*due), [](Result<ProposeResult>) {},
                                 EntryKind::Watermark, ClientSession{}});
  n.replica->propose(props, clock());
  after_input(n);
}

void SimCluster::check_egress_complete() {
  SimNode* l = leader();
  if (l == nullptr || !l->engine) return;
  downstream_.check_complete(l->id, l->engine_start, l->engine->applied());
}

// ---- requests -------------------------------------------------------------------------

void SimCluster::propose(NodeId id, std::vector<SimProposal> batch) {
  SimNode& n = *find(id);
  std::vector<node::Proposal> props;
  props.reserve(batch.size());
  const std::uint64_t submitted = now_tick_;
  for (SimProposal& p : batch) {
    const ClientSession session = p.session;
    const EntryKind kind = session.client_id == 0 ? EntryKind::Normal : EntryKind::Session;
    props.push_back(node::Proposal{
        std::move(p.command),
        [this, id, session, submitted](Result<ProposeResult> r) {
          if (!r) {
            ++stats_.proposals_failed;
            return;
          }
          checker_.on_acknowledged(id, r.value(), submitted, session);
        },
        kind, session});
  }
  n.replica->propose(props, clock());
  after_input(n);
}

Status SimCluster::request(NodeId id, std::string what,
                           const std::function<void(node::Replica&, node::StatusCallback)>& call) {
  SimNode& n = *find(id);
  // A refusal is answered inside the call; the outcome of an accepted request comes later.
  auto outcome = std::make_shared<std::optional<Status>>();
  call(*n.replica, [this, outcome, id, what = std::move(what)](Status s) {
    if (!outcome->has_value()) *outcome = s;
    trace_.line(TraceLevel::Verbose, now_tick_, "n{} {}: {}", id.value(), what, s.to_string());
  });
  const Status refused = outcome->value_or(Status::ok());
  after_input(n);
  return refused;
}

Status SimCluster::change(NodeId id, const node::Replica::ChangeOp& op, std::string what) {
  const auto deadline = clock() + std::chrono::milliseconds(kRequestTimeoutTicks);
  return request(id, fmt::format("membership change ({})", what),
                 [&](node::Replica& r, node::StatusCallback done) { r.change(op, deadline, std::move(done)); });
}

Status SimCluster::transfer(NodeId id, NodeId to) {
  const auto deadline = clock() + std::chrono::milliseconds(kRequestTimeoutTicks);
  return request(id, fmt::format("transfer to {}", to.value()),
                 [&](node::Replica& r, node::StatusCallback done) { r.transfer(to, deadline, std::move(done)); });
}

void SimCluster::read_index(NodeId id, std::uint64_t request_id) {
  SimNode& n = *find(id);
  checker_.on_read_requested(request_id, id);
  n.replica->read_index(clock() + std::chrono::milliseconds(kRequestTimeoutTicks),
                        [this, id, request_id](Result<LogIndex> r) {
                          if (r) {
                            checker_.on_read_state(id, core::ReadState{request_id, r.value(), true});
                          } else {
                            checker_.on_read_cancelled(request_id);
                          }
                        });
  after_input(n);
}

// ---- faults -----------------------------------------------------------------------

void SimCluster::crash(std::size_t slot, std::string_view why) {
  SimNode& n = *slots_[slot];
  if (!n.up()) return;
  std::size_t kept = 0;
  if (n.storage.queued() > 0 && rng_.chance(options_.crash_keeps_writes_chance)) {
    kept = rng_.uniform(1, n.storage.queued());
    for (std::size_t k = 0; k < kept; ++k) {
      std::string error;
      (void)n.storage.complete_next(error);
      if (!error.empty()) checker_.fail("storage contract", fmt::format("node {}: {}", n.id.value(), error));
    }
    stats_.writes_kept += kept;
  }
  const std::size_t lost = n.storage.queued();
  trace_.line(TraceLevel::Narrative, now_tick_, "CRASH node {} ({}{}){}{}", n.id.value(),
              to_string(n.core().role()), why.empty() ? "" : fmt::format(", {}", why),
              lost == 0 ? "" : fmt::format(": {} unsynced writes lost", lost),
              kept == 0 ? "" : fmt::format(", {} reached the disk unacknowledged", kept));
  n.replica.reset();
  n.engine.reset();
  n.deferred_marks.clear();
  n.storage.crash();
  n.disk_broken = false;  // it comes back on a mended disk
  n.failure_pending = false;
  n.seen_leader = false;
  n.down_since_tick = now_tick_;
  stats_.writes_lost += lost;
  ++stats_.crashes;
}

void SimCluster::break_disk(std::size_t slot) {
  SimNode& n = *slots_[slot];
  if (!n.up() || n.disk_broken) return;
  n.disk_broken = true;
  trace_.line(TraceLevel::Narrative, now_tick_, "DISK node {} ({}): its writes fail from now on", n.id.value(),
              to_string(n.core().role()));
}

void SimCluster::notify_disconnect(std::size_t slot, NodeId lost) {
  SimNode& n = *slots_[slot];
  if (!n.up()) return;
  trace_.line(TraceLevel::Narrative, now_tick_, "DISCONNECT node {} loses its connection to node {}",
              n.id.value(), lost.value());
  n.replica->peer_lost(lost);
  after_input(n);
}

void SimCluster::restart(std::size_t slot) {
  SimNode& n = *slots_[slot];
  if (n.up() || !boot(n)) return;
  ++stats_.restarts;
  trace_.line(TraceLevel::Narrative, now_tick_,
              "RESTART node {} after {} ticks down: term {}, log {}..{}, commit {}, state machine at {}",
              n.id.value(), now_tick_ - n.down_since_tick, n.core().term().value(),
              n.core().log().first_index().value(), n.core().log().last_index().value(),
              n.core().commit_index().value(), n.applied.value());
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
  n.options = options_.node;
  n.options.id = n.id;
  n.use_disk_thread = rng_.chance(options_.disk_thread_chance);
  auto opened = node::Replica::open(n.options, options_for(n),
                                    node::ReplicaParts{n.store, n.wire, n,
                                                       n.use_disk_thread ? &n.disk : nullptr});
  if (!opened) {
    checker_.fail("restart", fmt::format("node {} cannot open its replica on its disk: {}",
                                         n.id.value(), opened.status().to_string()));
    return false;
  }
  n.replica = std::move(opened).value();
  n.replica->set_testing_bug(options_.replica_bug);
  n.seen_leader = false;
  n.seen_term = n.core().term();
  n.seen_commit = d.snapshot.index;
  // The state machine resumes from its own checkpoint, or from its own snapshot at the
  // log's snapshot index (the log cannot replay what it compacted), then replays the
  // committed entries the replica will not hand out again.
  const LogIndex snapshot_index = d.snapshot.index;
  if (d.checkpoint.applied >= snapshot_index && rng_.chance(0.5)) {
    n.applied = d.checkpoint.applied;
    n.state_hash = d.checkpoint.state_hash;
  } else {
    restore_state_machine(n, snapshot_index, "restart");
  }
  start_app(n, d.snapshot, n.applied);
  for (LogIndex i = n.applied.next(); i <= n.replica->applied(); i = i.next()) {
    const Entry* e = n.storage.entry_at(i);
    if (e == nullptr) {
      checker_.fail("durable state", fmt::format("node {} restarted with commit {} but entry {} "
                                                 "is not on its disk",
                                                 n.id.value(), n.replica->applied().value(),
                                                 i.value()));
      return true;
    }
    apply(n, *e);
  }
  return true;
}

NodeId SimCluster::start_new_node(std::size_t slot) {
  const NodeId id{next_node_id_++};
  slots_[slot] = std::make_unique<SimNode>(*this, slot, id,
                                           SimStorage(core::SnapshotMeta{}, kInitialStateHash));
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
  stats_.entries_read_back += n.store.entries_read();
  stats_.compactions += n.store.compactions();
  slot_of_.erase(n.id);
  slots_[slot].reset();
  ++stats_.nodes_retired;
}

// ---- checks -----------------------------------------------------------------------

std::uint64_t SimCluster::last_replication_tick(NodeId from, NodeId to) const {
  const auto it = replication_tick_.find({from.value(), to.value()});
  return it == replication_tick_.end() ? 0 : it->second;
}

ClusterStats SimCluster::stats() const noexcept {
  ClusterStats s = stats_;
  for (const auto& n : slots_) {
    if (!n) continue;
    s.entries_read_back += n->store.entries_read();
    s.compactions += n->store.compactions();
  }
  return s;
}

InvariantChecker::EntryLookup SimCluster::lookup(const SimNode& n) {
  return [&n](LogIndex i) -> const Entry* {
    const core::RaftLog& log = n.core().log();
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
      checker_.check_logs_match(slots_[a]->id, slots_[a]->core().log(), lookup(*slots_[a]),
                                slots_[b]->id, slots_[b]->core().log(), lookup(*slots_[b]));
    }
  }
}

std::string SimCluster::describe_nodes() const {
  std::string out;
  for (const auto& n : slots_) {
    if (!n) continue;
    if (n->up()) {
      out += fmt::format("  {} | state machine at {}, {} waiting, {}\n", n->core().describe(),
                         n->applied.value(), n->replica->waiters().size(),
                         n->use_disk_thread ? "disk thread" : "writes inline");
      for (const auto& [peer, pr] : n->core().progress()) {
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
