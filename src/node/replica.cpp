#include "node/replica.h"

#include <algorithm>
#include <limits>
#include <utility>

#include <fmt/format.h>

#include "core/entry_payloads.h"
#include "util/invariant.h"

namespace rlr::node {
namespace {

/// Reads the entries the core evicted from memory back from the node's storage (on the
/// replica's thread; the stores' reads are safe beside their writer).
class StorageLogReader final : public core::LogReader {
 public:
  explicit StorageLogReader(const storage::Storage& storage) : storage_(storage) {}
  Status read(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
              std::vector<Entry>& out) override {
    auto r = storage_.read(from, to, max_entries, max_bytes);
    if (!r) return r.status();
    out = std::move(r).value();
    return Status::ok();
  }

 private:
  const storage::Storage& storage_;
};

/// What a replica whose storage failed answers every request.
Status failed_status() { return Status{ErrorCode::IoError, "node failed: its storage refused a write"}; }

Result<ProposeResult> forgotten_duplicate(std::uint64_t client_id, std::uint64_t sequence) {
  return Status{ErrorCode::InvalidArgument,
                fmt::format("sequence {} of client {} was applied long ago; its result is no "
                            "longer kept",
                            sequence, client_id)};
}

}  // namespace

// ---- construction -------------------------------------------------------------------

core::RaftOptions raft_options_for(const NodeOptions& options) {
  core::RaftOptions ro;
  ro.id = options.id;
  ro.election_ticks = options.election_ticks;
  ro.heartbeat_ticks = options.heartbeat_ticks;
  ro.disconnect_campaign_ticks = options.disconnect_campaign_ticks;
  ro.max_append_entries = options.max_append_entries;
  ro.max_append_bytes = options.max_append_bytes;
  ro.max_inflight_appends = options.max_inflight_appends;
  ro.max_memory_entries = options.memory_log_entries;
  ro.max_memory_bytes = options.memory_log_bytes;
  ro.check_invariants = options.check_invariants;
  return ro;
}

Result<std::unique_ptr<Replica>> Replica::open(const NodeOptions& options, core::RaftOptions ro,
                                               ReplicaParts parts) {
  auto restored = parts.storage.load();
  if (!restored) return restored.status();
  core::RestoreState rs = std::move(restored).value();
  // Committed entries are in storage; subscribers read them from there, so the core
  // need not hand them out again after a restart.
  rs.applied = std::max(rs.applied, rs.hard_state.commit);

  std::unique_ptr<core::LogReader> log_reader;  // none: the whole log stays in memory
  if (ro.max_memory_entries > 0 || ro.max_memory_bytes > 0) {
    log_reader = std::make_unique<StorageLogReader>(parts.storage);
    ro.log_reader = log_reader.get();
  }
  auto raft = core::Raft::create(ro, std::move(rs));
  if (!raft) return raft.status();
  auto replica = std::make_unique<Replica>(Key{}, options, parts, std::move(log_reader),
                                           std::move(raft).value());
  if (Status s = replica->restore_sessions(); !s) return s;
  // The points recorded before a restart are gone with the process; the table as of the
  // applied index is one, so a node that restarts often still compacts its log.
  if (options.compact_after_entries > 0 && replica->applied_ > replica->raft_.log().snapshot().index) {
    replica->snapshot_points_.emplace_back(replica->applied_, replica->sessions_.encode());
  }
  replica->config_index_seen_ = replica->raft_.config_index();
  replica->update_peers();  // the transport learns where the members are
  return replica;
}

Replica::Replica(Key /*key*/, const NodeOptions& options, ReplicaParts parts,
                 std::unique_ptr<core::LogReader> log_reader, core::Raft raft)
    : options_(options),
      storage_(parts.storage),
      transport_(parts.transport),
      observer_(parts.observer),
      persister_(parts.persister),
      histograms_(parts.histograms),
      tracer_(parts.tracer),
      log_reader_(std::move(log_reader)),
      raft_(std::move(raft)),
      applied_(raft_.commit_index()),
      persisted_hard_state_{raft_.term(), raft_.voted_for(), raft_.commit_index()},
      sessions_(options_.session_ttl_entries, options_.max_sessions),
      checking_(raft_.options().check_invariants) {}

/// Brackets every input. With invariant checks on, it asserts that no other input is
/// running (one thread at a time owns the replica, and inputs do not nest), and checks
/// the replica's invariants once the input is handled.
class Replica::Turn {
 public:
  explicit Turn(Replica& r) : r_(r) {
    if (!r_.checking_) return;
    RLR_INVARIANT(!r_.in_turn_.exchange(true, std::memory_order_acquire),
                  "a Replica input ran while another was running (two threads, or nested)");
  }
  ~Turn() {
    if (!r_.checking_) return;
    r_.check_invariants();
    r_.in_turn_.store(false, std::memory_order_release);
  }
  Turn(const Turn&) = delete;
  Turn& operator=(const Turn&) = delete;

 private:
  Replica& r_;
};

void Replica::check_invariants() const {
  RLR_INVARIANT(applied_ <= raft_.commit_index(), "handed out an entry beyond the commit index");
  RLR_INVARIANT(persisted_hard_state_.term <= raft_.term(), "wrote a term the core has not reached");
  RLR_INVARIANT(waiters_.pending_proposals() <= options_.max_pending_proposals,
                "more proposals pending than max_pending_proposals");
  RLR_INVARIANT(waiters_.reads.size() <= options_.max_pending_proposals,
                "more reads pending than max_pending_proposals");
  for (const auto& [key, index] : inflight_sessions_) {
    RLR_INVARIANT(index > applied_, "a committed session command is still in flight");
  }
  if (failed_) {
    RLR_INVARIANT(waiters_.pending_proposals() == 0 && inflight_sessions_.empty(),
                  "a failed replica still holds waiters");
  }
}

Replica::~Replica() = default;

Status Replica::restore_sessions() {
  auto snap = storage_.snapshot();
  if (!snap) return snap.status();
  if (Status s = sessions_.decode(snap.value().data.span()); !s) return s;
  // Committed entries after the snapshot were applied before the restart; the core
  // does not hand them out again, so replay their sessions here.
  LogIndex i = snap.value().index.next();
  const LogIndex last = applied_;
  auto replay = [&](const Entry& e) {
    if (e.kind != EntryKind::Session) return;
    if (auto c = core::decode_session_command(e.payload)) {
      (void)sessions_.apply(e.index, e.term, c->client_id, c->sequence);
    }
  };
  const core::RaftLog& log = raft_.log();
  if (i >= log.memory_first() && last <= log.last_index()) {
    // The core loaded these entries already: no second pass over the disk at start-up.
    for (; i <= last; i = i.next()) replay(log.at(i));
    return Status::ok();
  }
  while (i <= last) {
    auto batch = storage_.read(i, last, 4096, 8U << 20);
    if (!batch) return batch.status();
    if (batch.value().empty()) {
      return Status{ErrorCode::Corruption,
                    fmt::format("committed entry {} is missing from the log", i.value())};
    }
    for (const Entry& e : batch.value()) replay(e);
    i = batch.value().back().index.next();
  }
  return Status::ok();
}

// ---- inputs -------------------------------------------------------------------------

void Replica::step(const core::Message& m) {
  const Turn turn(*this);
  if (failed_) return;
  if (Status s = raft_.step(m); !s) {
    ++stats_.messages_invalid;
    observer_.log(LogLevel::Warn, fmt::format("dropped message: {}", s.to_string()));
    return;
  }
  if (tracer_ != nullptr) {
    if (m.type == core::MessageType::Append && !m.entries.empty()) {
      tracer_->arrived(m.entries.front().index, m.entries.back().index);
    } else if (m.type == core::MessageType::AppendResponse && !m.reject && raft_.role() == Role::Leader &&
               m.term == raft_.term()) {
      tracer_->acked(m.log_index, m.from);
    }
  }
}

void Replica::peer_lost(NodeId peer) {
  const Turn turn(*this);
  if (failed_) return;
  raft_.peer_disconnected(peer);
}

void Replica::propose(std::vector<Proposal>& props, Clock::time_point now) {
  const Turn turn(*this);
  now_ = std::max(now_, now);
  std::vector<Bytes>& commands = prop_commands_;
  std::vector<EntryKind>& kinds = prop_kinds_;
  std::vector<Proposal*>& accepted = prop_accepted_;
  commands.clear();
  kinds.clear();
  accepted.clear();
  batch_repeats_.clear();
  prop_received_.clear();
  const auto deadline = now + options_.proposal_timeout;
  const std::size_t limit = options_.max_pending_proposals;
  const bool check_sessions = bug_ != ReplicaBug::SkipSessionCheck;
  // An accepted batch is appended as consecutive entries from here: a session command
  // is recorded in flight at its index as it is accepted, so a repeat later in the same
  // batch finds it like one already in the log.
  const LogIndex first = raft_.log().last_index().next();
  for (auto& p : props) {
    if (failed_) {
      ++stats_.proposals_failed;
      Waiters::complete(completions_, p.done, failed_status());
      continue;
    }
    if (waiters_.pending_proposals() + accepted.size() + batch_repeats_.size() >= limit) {
      ++stats_.proposals_busy;
      Waiters::complete(completions_, p.done,
                        Status{ErrorCode::Busy, "too many proposals pending"});
      continue;
    }
    if (p.kind == EntryKind::Session) {
      const SessionKey key{p.session.client_id, p.session.sequence};
      if (check_sessions) {
        if (auto o = sessions_.find(key.first, key.second)) {
          // Exactly-once: a retry of a committed command gets the original entry.
          ++stats_.session_duplicates;
          Waiters::complete(completions_, p.done,
                            o->original_index.is_zero()
                                ? forgotten_duplicate(key.first, key.second)
                                : Result<ProposeResult>(ProposeResult{o->original_index, o->original_term}));
          continue;
        }
        if (auto it = inflight_sessions_.find(key); it != inflight_sessions_.end()) {
          if (it->second >= first) {
            ++stats_.session_duplicates;
            batch_repeats_.emplace_back(&p, it->second);  // its first copy is in this batch
          } else {
            // Already in the log, not yet committed: wait for that entry.
            ++stats_.session_duplicates;
            waiters_.sessions.emplace(it->second, Waiters::Session{key, std::move(p.done), deadline});
          }
          continue;
        }
      }
      inflight_sessions_[key] = first.plus(accepted.size());
      commands.push_back(core::encode_session_command(key.first, key.second, p.command));
    } else {
      commands.push_back(std::move(p.command));
    }
    kinds.push_back(p.kind);
    accepted.push_back(&p);
    if (tracer_ != nullptr) prop_received_.push_back(p.received_ns);
  }
  if (!accepted.empty()) {
    auto r = raft_.propose_batch(commands, kinds);
    commands.clear();  // drop the payload references now; the log holds its own
    if (!r) {
      const Status s = r.status();
      stats_.proposals_refused += accepted.size() + batch_repeats_.size();
      for (Proposal* p : accepted) {
        if (p->kind == EntryKind::Session) {
          inflight_sessions_.erase({p->session.client_id, p->session.sequence});
        }
        Waiters::complete(completions_, p->done, s);
      }
      for (auto& [p, index] : batch_repeats_) Waiters::complete(completions_, p->done, s);
    } else {
      RLR_INVARIANT(r.value().index.value() + 1 == first.value() + accepted.size(),
                    "a proposed batch was not appended right after the last entry");
      stats_.proposals_accepted += accepted.size();
      if (tracer_ != nullptr) tracer_->appended(first, r.value().term, prop_received_);
      LogIndex index = first;
      for (Proposal* p : accepted) {
        waiters_.proposals.push_back(
            Waiters::Proposal{core::EntryId{index, r.value().term}, std::move(p->done), deadline, false});
        index = index.next();
      }
      for (auto& [p, at] : batch_repeats_) {
        waiters_.sessions.emplace(at, Waiters::Session{{p->session.client_id, p->session.sequence},
                                                       std::move(p->done), deadline});
      }
    }
  }
  accepted.clear();
  batch_repeats_.clear();
  props.clear();
}

void Replica::tick(Clock::time_point now) {
  const Turn turn(*this);
  now_ = std::max(now_, now);
  if (!failed_) raft_.tick();
  waiters_.expire(now, completions_);
}

void Replica::persisted(std::span<const core::PersistMark> marks) {
  const Turn turn(*this);
  if (failed_) return;
  for (const core::PersistMark& m : marks) raft_.ack_persisted(m);
}

void Replica::storage_failed(const Status& why) {
  const Turn turn(*this);
  fail(why);
}

void Replica::write_timed(Clock::duration took, Clock::time_point now) {
  const Turn turn(*this);
  now_ = std::max(now_, now);
  if (!failed_) note_write(took, now);
}

void Replica::read_index(Clock::time_point deadline, ReadCallback done) {
  const Turn turn(*this);
  if (failed_) {
    done(failed_status());
    return;
  }
  if (waiters_.reads.size() >= options_.max_pending_proposals) {
    done(Status{ErrorCode::Busy, "too many reads pending"});
    return;
  }
  const std::uint64_t id = next_read_id_++;
  if (Status s = raft_.read_index(id); !s) {
    done(s);
    return;
  }
  waiters_.reads.emplace(id, Waiters::Read{std::move(done), deadline});
}

void Replica::change(const ChangeOp& op, Clock::time_point deadline, StatusCallback done) {
  const Turn turn(*this);
  if (failed_) {
    done(failed_status());
    return;
  }
  if (waiters_.pending_proposals() >= options_.max_pending_proposals) {
    done(Status{ErrorCode::Busy, "too many proposals pending"});
    return;
  }
  auto r = op(raft_);
  if (!r) {
    done(r.status());
    return;
  }
  // Done when the entry commits and the configuration it leads to is final (a joint
  // configuration is followed by C_new, appended by the leader).
  waiters_.proposals.push_back(Waiters::Proposal{
      r.value(),
      [this, done = std::move(done), deadline](Result<ProposeResult> res) mutable {
        if (!res) {
          done(res.status());
          return;
        }
        waiters_.configs.push_back(Waiters::Config{std::move(done), deadline});
      },
      deadline, true});
}

void Replica::transfer(NodeId to, Clock::time_point deadline, StatusCallback done) {
  const Turn turn(*this);
  if (failed_) {
    done(failed_status());
    return;
  }
  if (Status s = raft_.transfer_leadership(to); !s) {
    done(s);
    return;
  }
  if (to == options_.id) {
    done(Status::ok());
    return;
  }
  waiters_.transfers.push_back(Waiters::Transfer{to, std::move(done), deadline});
}

void Replica::shutdown(const Status& why) {
  const Turn turn(*this);
  waiters_.fail_all(why, completions_);
  inflight_sessions_.clear();
}

// ---- the Ready loop -------------------------------------------------------------------

void Replica::process_ready() {
  const Turn turn(*this);
  if (raft_.log_read_failures() != log_read_failures_seen_) report_log_read_failures(now_);
  for (int n = 0; n < kMaxReadysPerCall && !failed_ && raft_.has_ready(); ++n) {
    core::Ready rd = raft_.ready();
    handle_ready(rd);
    raft_.recycle(std::move(rd));
  }
}

void Replica::report_log_read_failures(Clock::time_point now) {
  // A leader retries every turn: say it at most once a second, with how many failed.
  if (now - log_read_failure_logged_ < std::chrono::seconds(1)) return;
  observer_.log(LogLevel::Warn,
                fmt::format("{} appends not sent: evicted entries could not be read back: {}",
                            raft_.log_read_failures() - log_read_failures_seen_,
                            raft_.last_log_read_error().to_string()));
  log_read_failures_seen_ = raft_.log_read_failures();
  log_read_failure_logged_ = now;
}

void Replica::handle_ready(core::Ready& rd) {
  if (rd.soft_state) {
    const bool leader = rd.soft_state->role == Role::Leader;
    if (leader_ && !leader) {
      waiters_.release_proposals(completions_);
      // Its entries of the lost term may be replaced: a retry of one of these commands,
      // once this node leads again, is appended anew (the session table answers it if
      // the old entry did commit after all).
      inflight_sessions_.clear();
    }
    leader_ = leader;
    observer_.on_soft_state(*rd.soft_state);
  }
  // The leader's appends leave before its own write: it replicates while it fsyncs.
  if (!rd.messages.empty()) {
    if (tracer_ != nullptr) trace_sent(rd.messages);
    transport_.send(rd.messages);
  }
  // A step that only moves the commit index needs no write: the stored commit is a
  // hint (the core recomputes it after a restart), and syncing it would put a second
  // fsync between every commit and its acknowledgement. It rides along with the next
  // write that carries entries, a term or a vote.
  const bool commit_only = !rd.snapshot && rd.entries.empty() && rd.hard_state &&
                           rd.hard_state->term == persisted_hard_state_.term &&
                           rd.hard_state->vote == persisted_hard_state_.vote;
  const bool must_write = rd.must_persist() && !commit_only;
  if (persister_ != nullptr && !rd.snapshot && (must_write || !persister_->idle())) {
    // The Persister writes it, then sends the acknowledgements and reports the mark; a
    // step with nothing to write still queues behind the others, since its mark and
    // messages claim everything before it is durable.
    WriteStep step;
    if (must_write) {
      step.hard_state = hard_state_to_write(rd);
      step.entries = std::move(rd.entries);
    }
    step.after_persist = std::move(rd.messages_after_persist);
    step.mark = rd.persist_mark;
    persister_->submit(std::move(step));
    if (bug_ == ReplicaBug::AckBeforeDurable) raft_.ack_persisted(rd.persist_mark);
  } else {
    persist_here(rd, must_write);
  }
  after_ready(rd);
}

std::optional<core::HardState> Replica::hard_state_to_write(const core::Ready& rd) {
  if (rd.hard_state) {
    persisted_hard_state_ = *rd.hard_state;
    return rd.hard_state;
  }
  if (raft_.commit_index() > persisted_hard_state_.commit) {
    // Carry the latest commit index along with these entries.
    persisted_hard_state_.commit = raft_.commit_index();
    return persisted_hard_state_;
  }
  return std::nullopt;
}

void Replica::persist_here(core::Ready& rd, bool must_write) {
  // A snapshot to install (rare) is written here, after everything queued before it.
  if (persister_ != nullptr) persister_->drain();
  if (must_write) {
    storage::PersistRequest req;
    req.snapshot = rd.snapshot ? &*rd.snapshot : nullptr;
    req.entries = rd.entries;
    req.hard_state = hard_state_to_write(rd);
    // The only clock this replica reads: a node's metrics and its slow-disk policy time
    // its writes (a replica without histograms, as in the simulator, reads none).
    const auto started = histograms_ != nullptr ? Clock::now() : Clock::time_point{};
    if (Status s = storage_.persist(req); !s) {
      fail(s);
      return;
    }
    if (histograms_ != nullptr) {
      const auto ended = Clock::now();
      record_write(histograms_, ended - started, rd.entries);
      note_write(ended - started, ended);
    }
    if (tracer_ != nullptr && !rd.entries.empty()) {
      tracer_->synced(rd.entries.front().index, rd.entries.back().index);
    }
  }
  if (rd.snapshot) {
    // The session table comes with the snapshot: the commands it covers were never
    // applied here, and a retry of one must still find its original entry.
    SessionTable installed(options_.session_ttl_entries, options_.max_sessions);
    if (Status s = installed.decode(rd.snapshot->data.span()); !s) {
      fail(Status{ErrorCode::Corruption,
                            fmt::format("the snapshot at index {} carries a malformed session "
                                        "table: {}",
                                        rd.snapshot->index.value(), s.to_string())});
      return;
    }
    if (bug_ != ReplicaBug::ForgetSessionsOnSnapshot) sessions_ = std::move(installed);
    std::erase_if(inflight_sessions_, [&](const auto& kv) { return kv.second <= rd.snapshot->index; });
    applied_ = std::max(applied_, rd.snapshot->index);
    ++stats_.snapshots_installed;
    observer_.on_snapshot_installed(rd.snapshot->index);
  }
  if (!rd.messages_after_persist.empty()) transport_.send(rd.messages_after_persist);
  raft_.ack_persisted(rd.persist_mark);
}

void Replica::after_ready(core::Ready& rd) {
  if (failed_) return;
  if (!rd.committed.empty()) on_committed(rd.committed);
  for (const auto& rs : rd.read_states) {
    auto it = waiters_.reads.find(rs.request_id);
    if (it == waiters_.reads.end()) continue;
    ReadCallback done = std::move(it->second.done);
    waiters_.reads.erase(it);
    if (rs.ok) {
      done(rs.index);
    } else {
      done(Status::not_leader(raft_.leader(), "leadership lost before the read was confirmed"));
    }
  }
  const core::Configuration& config = raft_.config();
  if (config.voters != config_seen_.voters || config.learners != config_seen_.learners ||
      config.voters_outgoing != config_seen_.voters_outgoing ||
      raft_.config_index() != config_index_seen_) {
    config_index_seen_ = raft_.config_index();
    update_peers();
  }
  // Membership changes complete once a final (non-joint) configuration is committed.
  if (!waiters_.configs.empty() && !config.is_joint() && raft_.config_index() <= raft_.commit_index()) {
    for (auto& w : waiters_.configs) w.done(Status::ok());
    waiters_.configs.clear();
  }
  std::erase_if(waiters_.transfers, [&](Waiters::Transfer& w) {
    if (raft_.leader() != w.target) return false;
    w.done(Status::ok());
    return true;
  });
}

void Replica::trace_sent(const std::vector<core::Message>& msgs) {
  for (const core::Message& m : msgs) {
    if (m.type == core::MessageType::Append && !m.entries.empty()) {
      tracer_->sent(m.entries.front().index, m.entries.back().index);
    }
  }
}

void Replica::on_committed(std::vector<Entry>& committed) {
  applied_ = committed.back().index;
  if (tracer_ != nullptr) tracer_->committed(committed.front().index, committed.back().index);
  observer_.on_committed(committed);
  stats_.entries_committed += committed.size();
  // Proposals of one propose() batch share a deadline, so their commit latency is
  // recorded once per run of equal deadlines.
  Clock::time_point run_deadline{};
  std::uint64_t run_length = 0;
  const auto record_run = [&] {
    if (run_length == 0 || histograms_ == nullptr) return;
    const auto proposed = run_deadline - options_.proposal_timeout;
    const auto took = now_ > proposed ? now_ - proposed : Clock::duration{0};
    histograms_->commit_latency.observe(
        static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(took).count()),
        run_length);
  };
  for (const Entry& e : committed) {
    stats_.bytes_committed += e.payload.size();
    // The outcome of this entry for whoever proposed it.
    Result<ProposeResult> outcome = ProposeResult{e.index, e.term};
    if (e.kind == EntryKind::Session) {
      if (auto c = core::decode_session_command(e.payload)) {
        const SessionKey key{c->client_id, c->sequence};
        if (auto it = inflight_sessions_.find(key); it != inflight_sessions_.end() && it->second == e.index) {
          inflight_sessions_.erase(it);
        }
        const auto o = sessions_.apply(e.index, e.term, c->client_id, c->sequence);
        if (o.duplicate) {
          outcome = o.original_index.is_zero()
                        ? forgotten_duplicate(c->client_id, c->sequence)
                        : Result<ProposeResult>(ProposeResult{o.original_index, o.original_term});
        }
      }
    }
    auto& proposals = waiters_.proposals;
    while (!proposals.empty() && proposals.front().id.index <= e.index) {
      Waiters::Proposal p = std::move(proposals.front());
      proposals.pop_front();
      const bool committed_it = p.id.index == e.index && p.id.term == e.term;
      if (!committed_it) {
        if (!p.internal) ++stats_.proposals_superseded;
      } else if (!p.internal) {
        if (p.deadline != run_deadline) {
          record_run();
          run_deadline = p.deadline;
          run_length = 0;
        }
        ++run_length;
      }
      Result<ProposeResult> r =
          committed_it ? outcome
                       : Result<ProposeResult>(Status::not_leader(
                             raft_.leader(), "leadership changed; the proposal was not committed"));
      Waiters::finish(completions_, p, std::move(r));
    }
    auto& sessions = waiters_.sessions;
    for (auto it = sessions.find(e.index); it != sessions.end() && it->first == e.index;
         it = sessions.erase(it)) {
      Waiters::Session& w = it->second;
      Result<ProposeResult> r = Status::not_leader(raft_.leader(), "the proposal was not committed");
      if (auto o = sessions_.find(w.key.first, w.key.second); o && !o->original_index.is_zero()) {
        r = ProposeResult{o->original_index, o->original_term};
      }
      Waiters::complete(completions_, w.done, std::move(r));
    }
    if (options_.compact_after_entries > 0 && e.index.value() % options_.compact_after_entries == 0) {
      // The session table as of this index: RLR's snapshot data if we compact here.
      snapshot_points_.emplace_back(e.index, sessions_.encode());
      while (snapshot_points_.size() > 16) snapshot_points_.pop_front();
    }
  }
  record_run();
  maybe_compact();
}

void Replica::update_peers() {
  core::Configuration next = raft_.config();
  for (const auto& m : options_.initial_members) {
    if (next.is_member(m.id) && next.address_of(m.id).empty()) {
      next.set_address(m.id, m.address.to_string());
    }
  }
  for (const auto& e : config_seen_.addresses) {
    if (!next.is_member(e.id)) transport_.set_peer(e.id, {});
  }
  for (const auto& e : next.addresses) {
    if (e.id != options_.id) transport_.set_peer(e.id, e.address);
  }
  config_seen_ = next;
  observer_.on_config(next);
}

void Replica::maybe_compact() {
  const std::uint64_t keep = options_.compact_after_entries;
  if (keep == 0 || snapshot_points_.empty()) return;
  // Keep `keep` entries behind the applied index for lagging followers and subscribers,
  // and never compact what an attached state machine has not applied yet.
  std::uint64_t allowed = applied_.value() > keep ? applied_.value() - keep : 0;
  allowed = std::min(allowed, observer_.compaction_floor().value());
  std::optional<std::pair<LogIndex, Bytes>> point;
  while (!snapshot_points_.empty() && snapshot_points_.front().first.value() <= allowed) {
    point = std::move(snapshot_points_.front());
    snapshot_points_.pop_front();
  }
  if (!point || point->first <= raft_.log().snapshot().index) return;
  if (Status s = raft_.compact(point->first, point->second); !s) return;
  if (persister_ != nullptr) persister_->drain();  // compact() must not run while a write does
  if (Status s = storage_.compact(raft_.log().snapshot()); !s) {
    observer_.log(LogLevel::Warn, fmt::format("compaction failed: {}", s.to_string()));
  }
}

}  // namespace rlr::node
