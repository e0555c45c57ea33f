#include "testing/manual_cluster.h"

#include <algorithm>
#include <limits>
#include <optional>

#include <fmt/format.h>

#include "core/entry_payloads.h"
#include "core/subscriber_view.h"

namespace rlr::testing {

namespace {

node::Clock::time_point at(std::uint64_t ms) {
  return node::Clock::time_point{} + std::chrono::milliseconds(static_cast<std::int64_t>(ms));
}

std::uint64_t to_ms(std::chrono::milliseconds d) {
  return d.count() <= 0 ? 0 : static_cast<std::uint64_t>(d.count());
}

/// A committed entry the disk should hold and does not.
Status missing(LogIndex i) {
  return Status{ErrorCode::Corruption, fmt::format("committed entry {} is not on the disk", i.value())};
}

/// Rounds of "process what is ready, hand back drained marks" one input may take before
/// the node is declared stuck.
constexpr int kMaxRoundsPerInput = 10'000;

}  // namespace

// ---- ManualNode --------------------------------------------------------------------------

ManualNode::ManualNode(ManualCluster& cluster, NodeId id, NodeOptions options,
                       core::Configuration initial)
    : cluster_(cluster),
      id_(id),
      options_(std::move(options)),
      log_(cluster.sink(), "node", id),
      disk_(std::make_shared<storage::MemoryStorage>(storage::Identity{options_.cluster_id, id},
                                                     std::move(initial))) {}

Status ManualNode::boot() {
  ++boots_;
  core::RaftOptions raft = node::raft_options_for(options_);
  raft.random_seed = cluster_.seed_for(id_, boots_);
  auto opened = node::Replica::open(options_, raft, node::ReplicaParts{*disk_, *this, *this, this});
  if (!opened) return opened.status();
  replica_ = std::move(opened).value();
  broken_ = Status::ok();
  next_tick_ms_ = cluster_.now_ms() + to_ms(options_.tick);
  apps_.clear();
  Status first_error;
  for (std::size_t n = 0; n < cluster_.attachments().size(); ++n) {
    if (Status s = start_attachment(n); !s && first_error.is_ok()) first_error = s;
  }
  after_input();
  return first_error;
}

void ManualNode::crash() {
  replica_.reset();
  writes_.clear();
  deferred_marks_.clear();
  apps_.clear();
}

Status ManualNode::start_attachment(std::size_t n) {
  const auto& attachment = cluster_.attachments().at(n);
  if (apps_.size() <= n) apps_.resize(n + 1);
  App& app = apps_[n];
  app = App{};
  app.next_watermark_ms = cluster_.now_ms();
  auto fail = [&](Status s) {
    app.health = s;
    log_.logf(LogLevel::Error, {}, "state machine {} cannot start: {}", n, s.to_string());
    return s;
  };
  app.sm = attachment.make(id_);
  if (!app.sm) return fail(Status{ErrorCode::InvalidArgument, "the factory made no state machine"});
  const LogIndex checkpoint = app.sm->last_applied();
  auto snap = disk_->snapshot();
  if (!snap) return fail(snap.status());
  const core::SnapshotMeta& base = snap.value();
  if (checkpoint < base.index) {
    return fail(Status{ErrorCode::Compacted,
                       fmt::format("the state machine resumes after {} but the log starts after {}",
                                   checkpoint.value(), base.index.value())});
  }
  if (checkpoint > replica_->applied()) {
    return fail(Status{ErrorCode::InvalidArgument,
                       fmt::format("the state machine claims index {}, this node committed only {}",
                                   checkpoint.value(), replica_->applied().value())});
  }
  node::SessionTable sessions(options_.session_ttl_entries, options_.max_sessions);
  if (Status d = sessions.decode(base.data.span()); !d) return fail(d);
  ApplyOptions options = attachment.options;
  ManualNode* self = this;
  options.sink = std::make_shared<RecordingSink>(
      cluster_.records(), id_, attachment.options.sink, options.egress == EgressMode::LeaderOnly,
      [self] { return self->up() && self->replica_->core().role() == Role::Leader; });
  app.engine = std::make_unique<node::ApplyEngine>(
      id_, app.sm, options, std::move(sessions), base.config, false,
      [self](Term t) {
        return self->up() && self->replica_->core().role() == Role::Leader &&
               self->replica_->core().term() == t;
      },
      checkpoint);
  // RLR's own state (sessions, roles, watermark) up to the state machine's checkpoint.
  for (LogIndex i = base.index.next(); i <= checkpoint;) {
    auto batch = disk_->read(i, checkpoint, 4096, 8U << 20);
    if (!batch) return fail(batch.status());
    if (batch.value().empty()) return fail(missing(i));
    for (const Entry& e : batch.value()) app.engine->catch_up(e);
    i = batch.value().back().index.next();
  }
  auto records = cluster_.records();
  const NodeId id = id_;
  app.engine->on_checkpoint([records, id, n](const DigestCheckpoint& cp) { records->checkpoint(id, n, cp); });
  if (Status s = apply_from_disk(app, checkpoint, replica_->applied()); !s) return fail(s);
  return Status::ok();
}

Status ManualNode::apply_from_disk(App& app, LogIndex from, LogIndex to) {
  for (LogIndex i = from.next(); i <= to;) {
    auto batch = disk_->read(i, to, 4096, 8U << 20);
    if (!batch) return batch.status();
    if (batch.value().empty()) return missing(i);
    for (const Entry& e : batch.value()) app.engine->apply(e);
    i = batch.value().back().index.next();
  }
  return Status::ok();
}

Result<std::vector<CommittedEntry>> ManualNode::committed(LogIndex from) const {
  if (from.is_zero()) from = LogIndex{1};
  if (from < disk_->first_index()) {
    return Status{ErrorCode::Compacted, fmt::format("index {} is compacted (the log starts at {})",
                                                    from.value(), disk_->first_index().value())};
  }
  std::vector<CommittedEntry> out;
  const LogIndex to = replica_->applied();
  for (LogIndex i = from; i <= to;) {
    auto batch = disk_->read(i, to, 4096, 8U << 20);
    if (!batch) return batch.status();
    if (batch.value().empty()) return missing(i);
    const LogIndex start = i;
    i = batch.value().back().index.next();
    SubscriptionBatch b = core::subscriber_batch(std::move(batch).value(), start, SubscribeOptions{});
    for (CommittedEntry& e : b.entries) out.push_back(std::move(e));
  }
  return out;
}

std::shared_ptr<RoleAwareStateMachine> ManualNode::state_machine(std::size_t n) const {
  return up() && n < apps_.size() ? apps_[n].sm : nullptr;
}

std::optional<LogIndex> ManualNode::apps_applied() const {
  std::optional<LogIndex> low;
  for (const App& app : apps_) {
    if (!app.engine) continue;
    low = low ? std::min(*low, app.engine->applied()) : app.engine->applied();
  }
  return low;
}

void ManualNode::step(const core::Message& m) {
  replica_->step(m);
  after_input();
}

void ManualNode::on_clock(std::uint64_t now_ms) {
  if (now_ms >= next_tick_ms_) {
    next_tick_ms_ = now_ms + std::max<std::uint64_t>(1, to_ms(options_.tick));
    replica_->tick(at(now_ms));
    after_input();
    if (!up()) return;
  }
  if (replica_->core().role() != Role::Leader) return;
  for (std::size_t n = 0; n < apps_.size(); ++n) {
    App& app = apps_[n];
    if (!app.engine || now_ms < app.next_watermark_ms) continue;
    const auto interval = cluster_.attachments().at(n).options.watermark_interval;
    app.next_watermark_ms = now_ms + std::max<std::uint64_t>(1, to_ms(interval));
    const auto due = app.engine->watermark_to_propose(app.proposed_watermark);
    if (!due) continue;
    app.proposed_watermark = *due;
    std::vector<node::Proposal> props;
    props.push_back(node::Proposal{core::encode_watermark(*due), [](Result<ProposeResult>) {},
                                   EntryKind::Watermark, ClientSession{}});
    propose(props);
    if (!up()) return;
  }
}

void ManualNode::propose(std::vector<node::Proposal>& props) {
  replica_->propose(props, at(cluster_.now_ms()));
  after_input();
}

void ManualNode::complete_due_writes(std::uint64_t now_ms) {
  while (up() && !writes_.empty() && writes_.front().due_ms <= now_ms) complete_write(false);
}

void ManualNode::complete_write(bool deferred) {
  PendingWrite w = std::move(writes_.front());
  writes_.pop_front();
  storage::PersistRequest req;
  req.entries = w.step.entries;
  req.hard_state = w.step.hard_state;
  if (Status s = disk_->persist(req); !s) {
    // The in-memory disk refuses only a write that breaks the storage contract.
    log_.logf(LogLevel::Error, {}, "write refused by the disk: {}", s.to_string());
    broken_ = s;
    writes_.clear();
    if (!deferred) crash();  // outside the replica's calls: at once; else after them
    return;
  }
  for (core::Message& m : w.step.after_persist) cluster_.send(std::move(m));
  if (deferred) {
    deferred_marks_.push_back(w.step.mark);
    return;
  }
  const core::PersistMark mark = w.step.mark;
  replica_->persisted(std::span<const core::PersistMark>(&mark, 1));
  after_input();
}

void ManualNode::after_input() {
  for (int round = 0; up(); ++round) {
    replica_->process_ready();
    run_completions();
    if (!broken_.is_ok() || round > kMaxRoundsPerInput) {
      if (broken_.is_ok()) log_.log(LogLevel::Error, "the replica keeps producing work; node stopped");
      crash();
      return;
    }
    if (deferred_marks_.empty()) return;
    const std::vector<core::PersistMark> marks = std::exchange(deferred_marks_, {});
    replica_->persisted(marks);
  }
}

void ManualNode::run_completions() {
  if (replica_->completions().empty()) return;
  std::vector<node::Completion> done;
  done.swap(replica_->completions());
  for (node::Completion& c : done) c.run();
}

void ManualNode::on_committed(const std::vector<Entry>& entries) {
  for (App& app : apps_) {
    if (!app.engine) continue;
    for (const Entry& e : entries) {
      if (e.index > app.engine->applied()) app.engine->apply(e);
    }
  }
}

void ManualNode::on_snapshot_installed(LogIndex index) {
  for (std::size_t n = 0; n < apps_.size(); ++n) {
    App& app = apps_[n];
    if (!app.engine || app.engine->applied() >= index) continue;
    app.health = Status{ErrorCode::Compacted,
                        fmt::format("a snapshot at {} from the leader replaced the log the state "
                                    "machine needs after {}",
                                    index.value(), app.engine->applied().value())};
    log_.logf(LogLevel::Warn, {}, "state machine {} stopped: {}", n, app.health.to_string());
    app.engine.reset();
  }
}

LogIndex ManualNode::compaction_floor() {
  return apps_applied().value_or(LogIndex{std::numeric_limits<std::uint64_t>::max()});
}

void ManualNode::submit(node::WriteStep step) {
  std::uint64_t due = cluster_.now_ms() + cluster_.fsync_delay_ms();
  if (!writes_.empty()) due = std::max(due, writes_.back().due_ms);  // in order
  writes_.push_back(PendingWrite{due, std::move(step)});
}

void ManualNode::drain() {
  while (!writes_.empty() && broken_.is_ok()) complete_write(true);
}

void ManualNode::send(std::vector<core::Message>& msgs) {
  for (core::Message& m : msgs) cluster_.send(std::move(m));
  msgs.clear();
}

// ---- ManualCluster -----------------------------------------------------------------------

Result<std::unique_ptr<Cluster>> ManualCluster::create(ClusterOptions options) {
  auto cluster = std::make_unique<ManualCluster>(std::move(options));
  core::Configuration initial;
  initial.voters = cluster->ids();
  for (NodeId id : cluster->ids()) {
    NodeOptions o = cluster->options().node;
    o.id = id;
    o.listen = Address{"127.0.0.1", 0};
    o.storage = StorageKind::Memory;
    o.data_dir.clear();
    o.initial_members.clear();
    for (NodeId m : cluster->ids()) {
      o.initial_members.push_back(
          MemberAddress{m, Address{"127.0.0.1", static_cast<std::uint16_t>(9000 + m.value())}});
    }
    if (Status s = validate(o); !s) return s;
    cluster->nodes_[id] = std::make_unique<ManualNode>(*cluster, id, std::move(o), initial);
  }
  for (auto& [id, n] : cluster->nodes_) {
    if (Status s = n->boot(); !s) return s;
  }
  return std::unique_ptr<Cluster>(std::move(cluster));
}

ManualCluster::ManualCluster(ClusterOptions options) : Kit(std::move(options)), rng_(this->options().seed) {}

ManualNode* ManualCluster::find(NodeId id) const {
  const auto it = nodes_.find(id);
  return it == nodes_.end() ? nullptr : it->second.get();
}

std::uint64_t ManualCluster::uniform(std::uint64_t lo, std::uint64_t hi) {
  if (hi <= lo) return lo;
  return lo + rng_() % (hi - lo + 1);
}

bool ManualCluster::chance(double p) {
  if (p <= 0) return false;
  return static_cast<double>(rng_() >> 11) * 0x1.0p-53 < p;
}

std::uint64_t ManualCluster::fsync_delay_ms() {
  return uniform(to_ms(options().fsync_min), to_ms(options().fsync_max));
}

std::uint64_t ManualCluster::seed_for(NodeId id, std::uint64_t boot) const {
  return options().seed * 1'000'003 + id.value() * 7'919 + boot;
}

void ManualCluster::send(core::Message m) {
  if (is_cut(m.from, m.to) || chance(faults_.drop) || in_flight_.size() >= kMaxInFlight) return;
  const int copies = chance(faults_.duplicate) ? 2 : 1;
  for (int c = 0; c < copies; ++c) {
    const std::uint64_t latency =
        std::max<std::uint64_t>(1, to_ms(options().latency) +
                                       uniform(to_ms(faults_.delay_min), to_ms(faults_.delay_max)));
    if (c + 1 < copies) {
      in_flight_.emplace(std::make_pair(now_ms_ + latency, next_seq_++), m);
    } else {
      in_flight_.emplace(std::make_pair(now_ms_ + latency, next_seq_++), std::move(m));
    }
  }
}

void ManualCluster::step_ms() {
  ++now_ms_;
  while (!in_flight_.empty() && in_flight_.begin()->first.first <= now_ms_) {
    core::Message m = std::move(in_flight_.extract(in_flight_.begin()).mapped());
    if (is_cut(m.from, m.to)) continue;  // the link failed while the message was in flight
    ManualNode* n = find(m.to);
    if (n != nullptr && n->up()) n->step(m);
  }
  for (auto& [id, n] : nodes_) {
    if (n->up()) n->complete_due_writes(now_ms_);
  }
  for (auto& [id, n] : nodes_) {
    if (n->up()) n->on_clock(now_ms_);
  }
  for (auto& [id, n] : nodes_) {
    if (n->up()) n->complete_due_writes(now_ms_);
  }
}

void ManualCluster::advance(std::chrono::milliseconds d) {
  for (std::uint64_t k = to_ms(d); k > 0; --k) step_ms();
}

bool ManualCluster::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  if (done()) return true;
  for (std::uint64_t k = to_ms(timeout); k > 0; --k) {
    step_ms();
    if (done()) return true;
  }
  return false;
}

std::shared_ptr<RoleAwareStateMachine> ManualCluster::state_machine(NodeId id, std::size_t n) const {
  const ManualNode* node = find(id);
  return node != nullptr ? node->state_machine(n) : nullptr;
}

void ManualCluster::propose_async(NodeId id, Bytes command, ClientSession session, ProposeCallback done) {
  if (Status s = check_id(id); !s) {
    done(s);
    return;
  }
  ManualNode& n = *find(id);
  if (!n.up()) {
    done(Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())});
    return;
  }
  std::vector<node::Proposal> props;
  props.push_back(node::Proposal{std::move(command), std::move(done),
                                 session.client_id == 0 ? EntryKind::Normal : EntryKind::Session,
                                 session});
  n.propose(props);
}

Result<ProposeResult> ManualCluster::propose_at(NodeId id, Bytes command, ClientSession session,
                                                std::chrono::milliseconds timeout) {
  auto outcome = std::make_shared<std::optional<Result<ProposeResult>>>();
  propose_async(id, std::move(command), session,
                [outcome](Result<ProposeResult> r) { *outcome = std::move(r); });
  if (!run_until([&] { return outcome->has_value(); }, timeout)) {
    return Status{ErrorCode::Timeout,
                  fmt::format("no outcome from node {} within {} ms (it may still commit)", id.value(),
                              timeout.count())};
  }
  return std::move(**outcome);
}

Result<std::vector<CommittedEntry>> ManualCluster::committed(NodeId id, LogIndex from) const {
  if (Status s = check_id(id); !s) return s;
  const ManualNode& n = *find(id);
  if (!n.up()) return Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())};
  return n.committed(from);
}

Status ManualCluster::request(NodeId id, std::chrono::milliseconds timeout,
                              const std::function<void(node::Replica&, node::StatusCallback)>& call) {
  ManualNode& n = *find(id);
  auto outcome = std::make_shared<std::optional<Status>>();
  call(n.replica(), [outcome](Status s) {
    if (!outcome->has_value()) *outcome = std::move(s);
  });
  n.after_input();
  if (!run_until([&] { return outcome->has_value(); }, timeout)) {
    return Status{ErrorCode::Timeout, fmt::format("no outcome within {} ms", timeout.count())};
  }
  return **outcome;
}

Status ManualCluster::transfer_leadership(NodeId to, std::chrono::milliseconds timeout) {
  if (Status s = check_id(to); !s) return s;
  const NodeId l = leader();
  if (l == kNoNode) return Status{ErrorCode::Unavailable, "no leader to transfer from"};
  const auto deadline = at(now_ms_) + timeout;
  return request(l, timeout, [&](node::Replica& r, node::StatusCallback done) {
    r.transfer(to, deadline, std::move(done));
  });
}

Result<ClusterInfo> ManualCluster::cluster_info(NodeId id) const {
  if (Status s = check_id(id); !s) return s;
  const ManualNode& n = *find(id);
  if (!n.up()) return Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())};
  const core::Raft& raft = n.replica().core();
  ClusterInfo ci;
  ci.cluster_id = options().node.cluster_id;
  ci.id = id;
  ci.term = raft.term();
  ci.role = raft.role();
  ci.leader = raft.leader();
  ci.commit = raft.commit_index();
  ci.applied = n.replica().applied();
  ci.first_index = raft.log().first_index();
  ci.last_index = raft.log().last_index();
  ci.memory_log_entries = raft.log().memory_entries();
  ci.memory_log_bytes = raft.log().memory_bytes();
  for (NodeId m : raft.config().members()) {
    MemberInfo mi;
    mi.id = m;
    mi.address = Address::parse(raft.config().address_of(m)).value_or(Address{});
    mi.voter = raft.config().is_voter(m);
    mi.is_leader = m == raft.leader();
    if (raft.role() == Role::Leader) {
      if (m == id) {
        mi.match = raft.persisted_index();
      } else if (auto it = raft.progress().find(m); it != raft.progress().end()) {
        mi.match = it->second.match;
      }
      mi.lag = ci.last_index.value() > mi.match.value() ? ci.last_index.value() - mi.match.value() : 0;
    }
    ci.members.push_back(std::move(mi));
  }
  return ci;
}

Status ManualCluster::crash(NodeId id) {
  if (Status s = check_id(id); !s) return s;
  ManualNode& n = *find(id);
  if (!n.up()) return Status{ErrorCode::Unavailable, fmt::format("node {} is already down", id.value())};
  kit_log().logf(LogLevel::Info, {}, "crash node {} at {} ms", id.value(), now_ms_);
  n.crash();
  return Status::ok();
}

Status ManualCluster::restart(NodeId id) {
  if (Status s = check_id(id); !s) return s;
  ManualNode& n = *find(id);
  if (n.up()) return Status{ErrorCode::Unavailable, fmt::format("node {} is running", id.value())};
  kit_log().logf(LogLevel::Info, {}, "restart node {} at {} ms", id.value(), now_ms_);
  return n.boot();
}

bool ManualCluster::running(NodeId id) const {
  const ManualNode* n = find(id);
  return n != nullptr && n->up();
}

Kit::NodeView ManualCluster::view(NodeId id) const {
  NodeView v;
  const ManualNode* n = find(id);
  if (n == nullptr || !n->up()) return v;
  const core::Raft& raft = n->replica().core();
  v.up = true;
  v.role = raft.role();
  v.leader = raft.leader();
  v.term = raft.term();
  v.commit = raft.commit_index();
  const auto apps = n->apps_applied();
  v.has_state_machines = apps.has_value();
  v.applied = apps.value_or(n->replica().applied());
  return v;
}

Status ManualCluster::start_attachment(NodeId id, std::size_t n) {
  ManualNode& node = *find(id);
  Status s = node.start_attachment(n);
  node.after_input();
  return s;
}

}  // namespace rlr::testing
