#include "node/node_impl.h"

#include <algorithm>
#include <future>
#include <limits>
#include <new>
#include <random>
#include <utility>

#include <fmt/format.h>

#include "core/subscriber_view.h"
#include "node/apply_engine.h"
#include "util/thread_name.h"

namespace rlr::node {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------
// Subscription
// ---------------------------------------------------------------------------------

namespace {

class NodeSubscription final : public Subscription {
 public:
  NodeSubscription(NodeImpl& node, LogIndex from, SubscribeOptions options)
      : node_(node), next_(from), options_(options), position_(node.register_reader(from)) {}
  Result<SubscriptionBatch> next(std::chrono::milliseconds timeout) override {
    auto r = node_.read_committed(next_, kBatch, timeout);
    if (!r) return r.status();
    SubscriptionBatch b = core::subscriber_batch(std::move(r).value(), next_, options_);
    next_ = b.next;
    position_->store(next_.value(), std::memory_order_relaxed);
    return b;
  }
  LogIndex position() const override { return next_; }

 private:
  static constexpr std::size_t kBatch = 4096;
  NodeImpl& node_;
  LogIndex next_;
  const SubscribeOptions options_;
  std::shared_ptr<std::atomic<std::uint64_t>> position_;
};

}  // namespace

// ---------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------

Result<std::unique_ptr<NodeImpl>> NodeImpl::start(NodeOptions options,
                                                  std::unique_ptr<storage::Storage> storage,
                                                  std::unique_ptr<transport::Transport> transport) {
  if (Status s = validate(options); !s) return s;
  const std::size_t trace_entries = options.trace_entries;
  std::unique_ptr<NodeImpl> node;
  try {
    node = std::make_unique<NodeImpl>(Key{}, std::move(options), std::move(storage), std::move(transport));
  } catch (const std::bad_alloc&) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("cannot allocate the node's buffers (trace_entries = {})", trace_entries)};
  }
  NodeImpl* n = node.get();
  if (n->options_.persist_thread) {
    n->writer_ = std::make_unique<LogWriter>(
        *n->storage_, *n->transport_,
        [n](std::vector<core::PersistMark>&& marks, std::chrono::nanoseconds took) {
          n->post([n, marks = std::move(marks), took] {
            n->replica_->persisted(marks);
            if (took.count() > 0) n->replica_->write_timed(took, Clock::now());
          });
        },
        [n](const Status& why) { n->post([n, why] { n->replica_->storage_failed(why); }); },
        &n->histograms_, n->tracer_.get());
  }
  core::RaftOptions ro = raft_options_for(n->options_);
  ro.random_seed = std::random_device{}() ^ (n->options_.id.value() * 0x9E3779B97F4A7C15ULL);
  auto replica = Replica::open(n->options_, ro, ReplicaParts{*n->storage_, *n->transport_, *n, n->writer_.get(), &n->histograms_, n->tracer_.get()});
  if (!replica) return replica.status();
  n->replica_ = std::move(replica).value();
  const core::Raft& core = n->replica_->core();
  n->term_ = core.term().value();
  n->role_ = static_cast<std::uint8_t>(core.role());
  n->leader_ = core.leader().value();
  n->applied_ = n->replica_->applied().value();
  n->record_role_change(core.term(), core.role(), core.leader(), RoleChangeReason::Started);
  if (Status s = n->transport_->start(*n); !s) return s;
  n->transport_started_ = true;
  n->thread_ = std::thread([n] {
    util::set_thread_name(fmt::format("rlr-raft-{}", n->id().value()));
    n->run();
  });
  return node;
}

NodeImpl::NodeImpl(Key /*key*/, NodeOptions options, std::unique_ptr<storage::Storage> storage,
                   std::unique_ptr<transport::Transport> transport)
    : options_(std::move(options)),
      storage_(std::move(storage)),
      transport_(std::move(transport)),
      log_(options_.log_sink ? options_.log_sink : make_stderr_log_sink(), "node", options_.id),
      tracer_(options_.trace_entries > 0 ? std::make_unique<Tracer>(options_.trace_entries) : nullptr),
      cache_(std::max<std::size_t>(options_.subscriber_buffer_entries, 1024)) {}

NodeImpl::~NodeImpl() { stop(); }

void NodeImpl::stop() {
  if (on_raft_thread()) {
    // From a callback on the raft thread (complete_on_raft_thread): joining ourselves
    // would deadlock. Only ask the loop to end; the destructor (or a stop() from another
    // thread) finishes the shutdown.
    {
      std::lock_guard lock(in_mu_);
      stopping_ = true;
    }
    return;
  }
  std::call_once(stop_once_, [&] {
    {
      std::lock_guard lock(in_mu_);
      stopping_ = true;
    }
    in_cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // What the raft thread handed over is written (a clean stop loses nothing queued).
    if (writer_) writer_->stop();
    if (transport_started_) transport_->stop();
    {
      std::lock_guard lock(applied_mu_);
      stopped_ = true;
    }
    applied_cv_.notify_all();
    // Apply loops hold a reference to this node: they end (and are joined) first.
    std::vector<std::shared_ptr<ApplyRunner>> runners;
    {
      std::lock_guard lock(runners_mu_);
      for (auto& w : runners_) {
        if (auto r = w.lock()) runners.push_back(std::move(r));
      }
      runners_.clear();
      primary_runner_ = nullptr;
    }
    for (auto& r : runners) r->stop();
    executor_.shutdown();
    if (tracer_) {
      if (Status s = tracer_->write(options_.trace_path); !s) {
        log_.log(LogLevel::Warn, fmt::format("commit-path trace not written: {}", s.to_string()));
      }
    }
  });
}

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

void NodeImpl::deliver(core::Message m) {
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) return;
    if (in_msgs_.size() >= kMaxQueuedMessages) {
      ++inbox_dropped_;  // the raft thread is far behind: Raft retransmits what is lost
      return;
    }
    in_msgs_.push_back(std::move(m));
    wake = std::exchange(raft_waiting_, false);
  }
  if (wake) in_cv_.notify_one();
}

void NodeImpl::peer_lost(NodeId peer) {
  // In order with the messages: a vote request that arrived after the loss must find the
  // leader already forgotten (as a task it ran after the whole batch of messages, so the
  // request was dropped under the old leader's lease and the election split).
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) return;
    in_lost_.emplace_back(in_msgs_.size(), peer);
    wake = std::exchange(raft_waiting_, false);
  }
  if (wake) in_cv_.notify_one();
}

void NodeImpl::post(std::function<void()> task) const {
  (void)queue_task(std::move(task), std::numeric_limits<std::size_t>::max());
}

Status NodeImpl::post_request(std::function<void()> task) const {
  return queue_task(std::move(task), kMaxQueuedRequests);
}

Status NodeImpl::queue_task(std::function<void()> task, std::size_t bound) const {
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) return Status{ErrorCode::ShuttingDown, "node is stopping"};
    if (in_tasks_.size() >= bound) {
      return Status{ErrorCode::Busy, "too many requests queued for the raft thread"};
    }
    in_tasks_.push_back(std::move(task));
    wake = std::exchange(raft_waiting_, false);
  }
  if (wake) in_cv_.notify_one();
  return Status::ok();
}

void NodeImpl::propose(Bytes command, ProposeCallback done) {
  enqueue(Proposal{std::move(command), std::move(done), EntryKind::Normal, ClientSession{}});
}

void NodeImpl::propose(Bytes command, ClientSession session, ProposeCallback done) {
  const EntryKind kind = session.client_id == 0 ? EntryKind::Normal : EntryKind::Session;
  enqueue(Proposal{std::move(command), std::move(done), kind, session});
}

void NodeImpl::propose_internal(EntryKind kind, Bytes payload, ProposeCallback done) {
  enqueue(Proposal{std::move(payload), std::move(done), kind, ClientSession{}});
}

void NodeImpl::enqueue(Proposal p) {
  if (tracer_) p.received_ns = Tracer::now();
  if (static_cast<Role>(role_.load()) != Role::Leader) {
    refused_not_leader_.fetch_add(1, std::memory_order_relaxed);
    p.done(Status::not_leader(NodeId{leader_.load()}));
    return;
  }
  Status refused;
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) {
      refused = Status{ErrorCode::ShuttingDown, "node is stopping"};
    } else if (in_props_.size() + pending_proposals_.load(std::memory_order_relaxed) +
                   executor_.backlog() >=
               options_.max_pending_proposals) {
      refused = Status{ErrorCode::Busy, "too many proposals pending"};
    } else {
      in_props_.push_back(std::move(p));
      wake = std::exchange(raft_waiting_, false);
    }
  }
  if (!refused.is_ok()) {
    (refused.code() == ErrorCode::Busy ? refused_busy_ : refused_stopping_)
        .fetch_add(1, std::memory_order_relaxed);
    p.done(refused);
    return;
  }
  if (wake) in_cv_.notify_one();
}

Result<ProposeResult> NodeImpl::propose_sync(Bytes command, std::chrono::milliseconds timeout) {
  if (on_raft_thread()) return refused_on_raft_thread("propose_sync");
  auto promise = std::make_shared<std::promise<Result<ProposeResult>>>();
  auto future = promise->get_future();
  propose(std::move(command), [promise](Result<ProposeResult> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "no outcome within the timeout; the entry may still commit"};
  }
  return future.get();
}

Result<LogIndex> NodeImpl::subscription_start(LogIndex from) const {
  if (from.is_zero()) from = LogIndex{1};
  if (from < storage_->first_index()) {
    return Status{ErrorCode::Compacted,
                  fmt::format("index {} is compacted; the first retained index is {}",
                              from.value(), storage_->first_index().value())};
  }
  return from;
}

Result<std::unique_ptr<Subscription>> NodeImpl::subscribe(LogIndex from, SubscribeOptions options) {
  auto start = subscription_start(from);
  if (!start) return start.status();
  return std::unique_ptr<Subscription>(std::make_unique<NodeSubscription>(*this, start.value(), options));
}

Result<std::vector<Entry>> NodeImpl::read_committed(LogIndex from, std::size_t max,
                                                    std::chrono::milliseconds timeout) {
  {
    std::unique_lock lock(applied_mu_);
    const bool ready = applied_cv_.wait_for(lock, timeout, [&] {
      return applied_.load() >= from.value() || stopped_.load();
    });
    if (!ready) return std::vector<Entry>{};
  }
  if (applied_.load() < from.value()) {
    return Status{ErrorCode::ShuttingDown, "node stopped"};
  }
  std::vector<Entry> out;
  if (cache_.read(from, max, out)) return out;
  const LogIndex last{std::min(applied_.load(), from.value() + max - 1)};
  return storage_->read(from, last, max, 8U << 20);
}

Role NodeImpl::role() const { return static_cast<Role>(role_.load()); }
NodeId NodeImpl::leader() const { return NodeId{leader_.load()}; }

Address NodeImpl::leader_address() const {
  const NodeId leader{leader_.load()};
  if (leader == kNoNode) return {};
  std::lock_guard lock(config_mu_);
  return Address::parse(config_.address_of(leader)).value_or(Address{});
}

void NodeImpl::read_index_async(std::chrono::milliseconds timeout, ReadCallback done) {
  const auto started = Clock::now();
  const auto deadline = started + timeout;
  auto shared = std::make_shared<ReadCallback>(std::move(done));
  const Status queued = post_request([this, shared, deadline, started] {
    // The answer runs on the completion thread, like a proposal's.
    replica_->read_index(deadline, [this, shared, started](Result<LogIndex> r) {
      replica_->completions().push_back(Completion{
          {}, ProposeResult{}, [this, shared, started, r = std::move(r)]() mutable {
            if (r) {
              histograms_.read_latency.observe(static_cast<std::uint64_t>(
                  std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - started).count()));
            }
            (*shared)(std::move(r));
          }});
    });
  });
  if (!queued) (*shared)(queued);
}

Result<LogIndex> NodeImpl::read_index(std::chrono::milliseconds timeout) {
  if (on_raft_thread()) return refused_on_raft_thread("read_index");
  auto promise = std::make_shared<std::promise<Result<LogIndex>>>();
  auto future = promise->get_future();
  read_index_async(timeout, [promise](Result<LogIndex> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout + std::chrono::milliseconds(200)) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "read index not confirmed in time"};
  }
  return future.get();
}

Status NodeImpl::change(Replica::ChangeOp op, std::chrono::milliseconds timeout) {
  if (on_raft_thread()) return refused_on_raft_thread("a membership change");
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  const auto deadline = Clock::now() + timeout;
  if (Status s = post_request([this, promise, deadline, op = std::move(op)] {
        replica_->change(op, deadline, [promise](Status st) { promise->set_value(std::move(st)); });
      });
      !s) {
    return s;
  }
  if (future.wait_for(timeout + std::chrono::milliseconds(100)) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "membership change not committed in time"};
  }
  return future.get();
}

Status NodeImpl::add_learner(const MemberAddress& member, std::chrono::milliseconds timeout) {
  const std::string address = member.address.to_string();
  return change([id = member.id, address](core::Raft& r) { return r.add_learner(id, address); },
                timeout);
}

Status NodeImpl::promote(NodeId id, std::chrono::milliseconds timeout) {
  return change([id](core::Raft& r) { return r.promote_learner(id); }, timeout);
}

Status NodeImpl::remove(NodeId id, std::chrono::milliseconds timeout) {
  return change([id](core::Raft& r) { return r.remove_member(id); }, timeout);
}

Status NodeImpl::transfer_leadership(NodeId to, std::chrono::milliseconds timeout) {
  if (on_raft_thread()) return refused_on_raft_thread("transfer_leadership");
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  const auto deadline = Clock::now() + timeout;
  if (Status s = post_request([this, promise, deadline, to] {
        replica_->transfer(to, deadline, [promise](Status st) { promise->set_value(std::move(st)); });
      });
      !s) {
    return s;
  }
  if (future.wait_for(timeout + std::chrono::milliseconds(100)) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "leadership transfer did not complete in time"};
  }
  return future.get();
}

// ---------------------------------------------------------------------------------
// The raft thread
// ---------------------------------------------------------------------------------

void NodeImpl::run() {
  const auto tick = options_.tick;
  auto next_tick = Clock::now() + tick;
  std::vector<core::Message> msgs;
  std::vector<std::pair<std::size_t, NodeId>> lost;
  std::vector<Proposal> props;
  std::vector<std::function<void()>> tasks;
  raft_thread_id_.store(std::this_thread::get_id());
  for (;;) {
    {
      std::unique_lock lock(in_mu_);
      // raft_waiting_ tells producers to notify: only the first one after we went to
      // sleep does (one futex wake per sleep, none while this thread is busy).
      while (!stopping_ && in_msgs_.empty() && in_props_.empty() && in_tasks_.empty() &&
             in_lost_.empty()) {
        raft_waiting_ = true;
        const bool timed_out = in_cv_.wait_until(lock, next_tick) == std::cv_status::timeout;
        raft_waiting_ = false;
        if (timed_out) break;
      }
      if (stopping_) break;
      msgs.swap(in_msgs_);
      lost.swap(in_lost_);
      props.swap(in_props_);
      tasks.swap(in_tasks_);
    }
    std::size_t next_lost = 0;
    for (std::size_t k = 0; k < msgs.size(); ++k) {
      for (; next_lost < lost.size() && lost[next_lost].first <= k; ++next_lost) {
        replica_->peer_lost(lost[next_lost].second);
      }
      replica_->step(msgs[k]);
    }
    for (; next_lost < lost.size(); ++next_lost) replica_->peer_lost(lost[next_lost].second);
    msgs.clear();
    lost.clear();
    const auto now = Clock::now();
    if (!props.empty()) replica_->propose(props, now);
    for (auto& t : tasks) t();
    tasks.clear();

    if (now >= next_tick) {
      replica_->tick(now);
      if (++ticks_ % 10 == 0) send_digest_report();
      next_tick += tick;
      if (next_tick < now) next_tick = now + tick;
    }
    replica_->process_ready(now);
    pending_proposals_.store(replica_->waiters().pending_proposals(), std::memory_order_relaxed);
    flush_completions();
  }
  const Status stopping{ErrorCode::ShuttingDown, "node is stopping"};
  replica_->shutdown(stopping);
  // Proposals that raced with stop().
  {
    std::lock_guard lock(in_mu_);
    for (auto& p : in_props_) Waiters::complete(replica_->completions(), p.done, stopping);
    in_props_.clear();
    in_tasks_.clear();
  }
  flush_completions();
}

void NodeImpl::flush_completions() {
  std::vector<Completion>& completions = replica_->completions();
  if (completions.empty()) return;
  if (!options_.complete_on_raft_thread) {
    executor_.post_batch(completions);
    return;
  }
  // No lock is held here: a callback may propose (that only queues for the next turn)
  // or call anything that does not wait for the raft thread.
  running_.swap(completions);
  for (auto& c : running_) c.run();
  running_.clear();
}

Status NodeImpl::refused_on_raft_thread(const char* what) {
  return Status{ErrorCode::InvalidArgument,
                fmt::format("{} waits for the raft thread and cannot be called from a callback "
                            "that runs on it (complete_on_raft_thread); use the asynchronous form",
                            what)};
}

// ---------------------------------------------------------------------------------
// What the replica reports (raft thread)
// ---------------------------------------------------------------------------------

void NodeImpl::on_soft_state(const core::SoftState& s) {
  if (s.leader.value() != leader_.load(std::memory_order_relaxed)) ++leader_changes_;
  role_ = static_cast<std::uint8_t>(s.role);
  leader_ = s.leader.value();
  term_ = s.term.value();
  const RoleChangeReason why = replica_ ? replica_->core().events().last_reason : RoleChangeReason::Started;
  record_role_change(s.term, s.role, s.leader, why);
}

void NodeImpl::record_role_change(Term term, Role role, NodeId leader, RoleChangeReason why) {
  std::lock_guard lock(role_changes_mu_);
  role_changes_.push_back(RoleChange{std::chrono::system_clock::now(), term, role, leader, why});
  while (role_changes_.size() > kRoleChangesKept) role_changes_.pop_front();
}

std::shared_ptr<std::atomic<std::uint64_t>> NodeImpl::register_reader(LogIndex next) {
  auto position = std::make_shared<std::atomic<std::uint64_t>>(next.value());
  std::lock_guard lock(readers_mu_);
  std::erase_if(readers_, [](const auto& r) { return r.second.expired(); });
  readers_.emplace_back(next_reader_id_++, position);
  return position;
}

void NodeImpl::on_committed(const std::vector<Entry>& entries) {
  cache_.append(entries);
  publish_applied(entries.back().index);
}

void NodeImpl::on_snapshot_installed(LogIndex index) {
  cache_.reset();
  publish_applied(LogIndex{std::max(applied_.load(), index.value())});
}

void NodeImpl::publish_applied(LogIndex index) {
  {
    std::lock_guard lock(applied_mu_);
    applied_ = index.value();
  }
  applied_cv_.notify_all();
}

void NodeImpl::on_storage_failed(const Status& why) {
  storage_error_ = why.to_string();
  // The node takes no part any more: callers and clients must look elsewhere.
  if (leader_.load(std::memory_order_relaxed) != 0) ++leader_changes_;
  role_ = static_cast<std::uint8_t>(Role::Follower);
  leader_ = 0;
  record_role_change(Term{term_.load()}, Role::Follower, kNoNode, RoleChangeReason::StorageFailed);
}

void NodeImpl::on_config(const core::Configuration& config) {
  std::lock_guard lock(config_mu_);
  config_ = config;
}

LogIndex NodeImpl::compaction_floor() {
  LogIndex floor{std::numeric_limits<std::uint64_t>::max()};
  std::lock_guard lock(runners_mu_);
  for (const auto& w : runners_) {
    if (auto r = w.lock()) {
      if (r->health().is_ok()) floor = std::min(floor, r->applied());
    }
  }
  return floor;
}

void NodeImpl::log(LogLevel level, std::string_view line) { log_.log(level, line); }

Result<std::shared_ptr<ApplyRunner>> NodeImpl::attach(std::shared_ptr<RoleAwareStateMachine> sm,
                                                      ApplyOptions options) {
  if (!sm) return Status{ErrorCode::InvalidArgument, "no state machine"};
  auto runner = std::make_shared<ApplyRunnerImpl>(*this, *this, std::move(sm), std::move(options));
  {
    std::lock_guard lock(runners_mu_);
    if (runner->name().empty()) runner->set_name(fmt::format("sm{}", runners_attached_));
    ++runners_attached_;
    runners_.push_back(runner);
    if (primary_runner_ == nullptr) primary_runner_ = runner.get();
  }
  if (Status s = runner->start(); !s) {
    std::lock_guard lock(runners_mu_);
    if (primary_runner_ == runner.get()) primary_runner_ = nullptr;
    std::erase_if(runners_, [&](const auto& w) { return w.lock() == runner; });
    return s;
  }
  return std::shared_ptr<ApplyRunner>(runner);
}

Result<std::vector<DigestCheckpoint>> NodeImpl::replay(RoleAwareStateMachine& sm, LogIndex from,
                                                       LogIndex to, std::uint64_t digest_interval) {
  return replay_log(*this, sm, from, to, digest_interval);
}

void NodeImpl::publish_checkpoint(const ApplyRunner* runner, const DigestCheckpoint& cp) {
  {
    std::lock_guard lock(runners_mu_);
    if (runner != primary_runner_) return;
  }
  std::lock_guard lock(digests_mu_);
  my_digests_.push_back(cp);
  while (my_digests_.size() > kDigestsKept) my_digests_.pop_front();
}

void NodeImpl::send_digest_report() {
  std::vector<DigestCheckpoint> recent;
  {
    std::lock_guard lock(digests_mu_);
    const std::size_t n = std::min(my_digests_.size(), wire::kDigestReportSendCheckpointsMax);
    recent.assign(my_digests_.end() - static_cast<std::ptrdiff_t>(n), my_digests_.end());
  }
  if (recent.empty()) return;
  for (NodeId id : replica_->core().config().members()) {
    if (id == options_.id) continue;
    transport_->send_digests(wire::DigestReport{options_.id, id, recent});
  }
}

void NodeImpl::deliver_digests(wire::DigestReport report) {
  std::lock_guard lock(digests_mu_);
  auto& q = peer_digests_[report.from];
  for (const auto& cp : report.digests) {
    if (!q.empty() && cp.index <= q.back().index) continue;
    q.push_back(cp);
  }
  while (q.size() > kDigestsKept) q.pop_front();
}

}  // namespace rlr::node
