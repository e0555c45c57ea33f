#include "node/node_impl.h"

#include "node/apply_engine.h"
#include "util/thread_name.h"

#include <algorithm>
#include <cstdio>
#include <utility>
#include <future>
#include <random>

#include <fmt/format.h>

namespace rlr::node {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------
// Executor
// ---------------------------------------------------------------------------------

Executor::Executor(const char* thread_name)
    : thread_([this, thread_name] {
        util::set_thread_name(thread_name);
        run();
      }) {}

Executor::~Executor() { shutdown(); }

void Executor::post(std::function<void()> f) {
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back(Completion{{}, ProposeResult{}, std::move(f)});
    wake = std::exchange(idle_, false);
  }
  if (wake) cv_.notify_one();
}

void Executor::post_batch(std::vector<Completion>& batch) {
  if (batch.empty()) return;
  bool wake = false;
  {
    std::lock_guard lock(mu_);
    if (queue_.empty()) {
      queue_.swap(batch);  // the executor's spent vector comes back: capacity is reused
    } else {
      for (auto& c : batch) queue_.push_back(std::move(c));
    }
    wake = std::exchange(idle_, false);
  }
  batch.clear();
  if (wake) cv_.notify_one();
}

void Executor::shutdown() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_one();
  if (on_thread()) return;  // a completion called stop(): ~Executor joins later
  if (thread_.joinable()) thread_.join();
}

void Executor::run() {
  std::vector<Completion> batch;
  std::unique_lock lock(mu_);
  for (;;) {
    while (!stop_ && queue_.empty()) {
      idle_ = true;
      cv_.wait(lock);
      idle_ = false;
    }
    if (queue_.empty() && stop_) return;
    batch.swap(queue_);
    lock.unlock();
    for (auto& c : batch) c.run();
    batch.clear();
    lock.lock();
  }
}

// ---------------------------------------------------------------------------------
// CommittedCache
// ---------------------------------------------------------------------------------

void CommittedCache::append(const std::vector<Entry>& entries) {
  std::lock_guard lock(mu_);
  for (const Entry& e : entries) {
    if (!entries_.empty() && e.index != entries_.back().index.next()) entries_.clear();
    entries_.push_back(e);
    if (entries_.size() > capacity_) entries_.pop_front(1);  // the oldest goes
  }
}

void CommittedCache::reset(LogIndex /*index*/) {
  std::lock_guard lock(mu_);
  entries_.clear();
}

bool CommittedCache::read(LogIndex from, std::size_t max, std::vector<Entry>& out) const {
  std::lock_guard lock(mu_);
  if (entries_.empty() || from < entries_[0].index || from > entries_.back().index) return false;
  const std::size_t first = from.value() - entries_[0].index.value();
  const std::size_t room = out.size() < max ? max - out.size() : 0;
  entries_.copy_to(first, std::min(room, entries_.size() - first), out);
  return true;
}

// ---------------------------------------------------------------------------------
// Subscription
// ---------------------------------------------------------------------------------

namespace {

class NodeSubscription final : public Subscription {
 public:
  NodeSubscription(NodeImpl& node, LogIndex from) : node_(node), next_(from) {}
  Result<std::vector<Entry>> next(std::chrono::milliseconds timeout) override {
    auto r = node_.read_committed(next_, kBatch, timeout);
    if (r && !r.value().empty()) next_ = r.value().back().index.next();
    return r;
  }
  LogIndex position() const override { return next_; }

 private:
  static constexpr std::size_t kBatch = 4096;
  NodeImpl& node_;
  LogIndex next_;
};

/// Reads the entries the core evicted from memory back from the node's storage (on the
/// raft thread; the stores' reads are safe beside their writer).
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

}  // namespace

// ---------------------------------------------------------------------------------
// Construction
// ---------------------------------------------------------------------------------

Result<std::unique_ptr<NodeImpl>> NodeImpl::start(NodeOptions options,
                                                  std::unique_ptr<storage::Storage> storage,
                                                  std::unique_ptr<transport::Transport> transport) {
  if (Status s = validate(options); !s) return s;
  auto restored = storage->load();
  if (!restored) return restored.status();
  core::RestoreState rs = std::move(restored).value();
  // Committed entries are in storage; subscribers read them from there, so the core
  // need not hand them out again after a restart.
  rs.applied = std::max(rs.applied, rs.hard_state.commit);

  core::RaftOptions ro;
  ro.id = options.id;
  ro.election_ticks = options.election_ticks;
  ro.heartbeat_ticks = options.heartbeat_ticks;
  ro.disconnect_campaign_ticks = options.disconnect_campaign_ticks;
  ro.max_append_entries = options.max_append_entries;
  ro.max_append_bytes = options.max_append_bytes;
  ro.max_inflight_appends = options.max_inflight_appends;
  ro.random_seed = std::random_device{}() ^ (options.id.value() * 0x9E3779B97F4A7C15ULL);
  ro.max_memory_entries = options.memory_log_entries;
  ro.max_memory_bytes = options.memory_log_bytes;
  std::unique_ptr<core::LogReader> log_reader;  // none: the whole log stays in memory
  if (ro.max_memory_entries > 0 || ro.max_memory_bytes > 0) {
    log_reader = std::make_unique<StorageLogReader>(*storage);
    ro.log_reader = log_reader.get();
  }
  auto raft = core::Raft::create(ro, std::move(rs));
  if (!raft) return raft.status();

  auto node = std::make_unique<NodeImpl>(Key{}, std::move(options), std::move(storage),
                                         std::move(log_reader), std::move(transport),
                                         std::move(raft).value());
  if (Status s = node->restore_sessions(); !s) return s;
  // The points recorded before the restart are gone with the process; the table as of the
  // applied index is one, so a node that restarts often still compacts its log (it only
  // ever took points at multiples of compact_after_entries, and lost them every restart).
  if (node->options_.compact_after_entries > 0 &&
      LogIndex{node->applied_.load()} > node->raft_.log().snapshot().index) {
    node->snapshot_points_.emplace_back(LogIndex{node->applied_.load()}, node->sessions_.encode());
  }
  if (Status s = node->transport_->start(*node); !s) return s;
  if (node->options_.persist_thread) {
    NodeImpl* n = node.get();
    node->writer_ = std::make_unique<LogWriter>(
        *n->storage_, *n->transport_,
        [n](std::vector<core::PersistMark>&& marks) {
          n->post([n, marks = std::move(marks)] {
            if (n->failed_) return;
            for (const core::PersistMark& m : marks) n->raft_.ack_persisted(m);
          });
        },
        [n](const Status& why) { n->post([n, why] { n->storage_failed(why); }); });
  }
  node->thread_ = std::thread([n = node.get()] {
    util::set_thread_name(fmt::format("rlr-raft-{}", n->id().value()));
    n->run();
  });
  return node;
}

NodeImpl::NodeImpl(Key /*key*/, NodeOptions options, std::unique_ptr<storage::Storage> storage,
                   std::unique_ptr<core::LogReader> log_reader,
                   std::unique_ptr<transport::Transport> transport, core::Raft raft)
    : options_(std::move(options)),
      storage_(std::move(storage)),
      transport_(std::move(transport)),
      log_reader_(std::move(log_reader)),
      raft_(std::move(raft)),
      sessions_(options_.session_ttl_entries, options_.max_sessions),
      cache_(std::max<std::size_t>(options_.subscriber_buffer_entries, 1024)) {
  term_ = raft_.term().value();
  persisted_hard_state_ = core::HardState{raft_.term(), raft_.voted_for(), raft_.commit_index()};
  role_ = static_cast<std::uint8_t>(raft_.role());
  applied_ = raft_.commit_index().value();
  config_ = raft_.config();
  for (const auto& m : options_.initial_members) {
    if (config_.address_of(m.id).empty() && config_.is_member(m.id)) {
      config_.set_address(m.id, fmt::format("{}:{}", m.host, m.port));
    }
  }
  for (const auto& e : config_.addresses) {
    if (e.id != options_.id) transport_->set_peer(e.id, e.address);
  }
}

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
    transport_->stop();
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
  });
}

// ---------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------

void NodeImpl::deliver(core::Message m) {
  if (m.type == core::MessageType::DigestReport) {
    on_digest_report(m);
    return;
  }
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) return;
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

void NodeImpl::post(std::function<void()> task) const { (void)post_checked(std::move(task)); }

bool NodeImpl::post_checked(std::function<void()> task) const {
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) return false;
    in_tasks_.push_back(std::move(task));
    wake = std::exchange(raft_waiting_, false);
  }
  if (wake) in_cv_.notify_one();
  return true;
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
  if (static_cast<Role>(role_.load()) != Role::Leader) {
    p.done(Status::not_leader(NodeId{leader_.load()}));
    return;
  }
  Status refused;
  bool wake = false;
  {
    std::lock_guard lock(in_mu_);
    if (stopping_) {
      refused = Status{ErrorCode::ShuttingDown, "node is stopping"};
    } else if (queued_proposals_ >= options_.max_pending_proposals) {
      refused = Status{ErrorCode::Busy, "too many proposals queued"};
    } else {
      in_props_.push_back(std::move(p));
      ++queued_proposals_;
      wake = std::exchange(raft_waiting_, false);
    }
  }
  if (!refused.is_ok()) {
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

Result<std::unique_ptr<Subscription>> NodeImpl::subscribe(LogIndex from) {
  if (from.is_zero()) from = LogIndex{1};
  if (from < storage_->first_index()) {
    return Status{ErrorCode::Compacted,
                  fmt::format("index {} is compacted; the first retained index is {}",
                              from.value(), storage_->first_index().value())};
  }
  return std::unique_ptr<Subscription>(std::make_unique<NodeSubscription>(*this, from));
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

Role NodeImpl::get_role() const { return static_cast<Role>(role_.load()); }
NodeId NodeImpl::get_leader() const { return NodeId{leader_.load()}; }

std::string NodeImpl::get_leader_address() const {
  const NodeId leader{leader_.load()};
  if (leader == kNoNode) return {};
  std::lock_guard lock(config_mu_);
  return config_.address_of(leader);
}

ClusterInfo NodeImpl::get_cluster_info() const {
  auto promise = std::make_shared<std::promise<ClusterInfo>>();
  auto future = promise->get_future();
  auto fill = [this, promise] {
    ClusterInfo ci;
    ci.cluster_id = options_.cluster_id;
    ci.id = options_.id;
    ci.term = raft_.term();
    ci.role = raft_.role();
    ci.leader = raft_.leader();
    ci.commit = raft_.commit_index();
    ci.applied = LogIndex{applied_.load()};
    ci.first_index = raft_.log().first_index();
    ci.last_index = raft_.log().last_index();
    ci.memory_log_entries = raft_.log().memory_entries();
    ci.memory_log_bytes = raft_.log().memory_bytes();
    const auto& config = raft_.config();
    for (NodeId id : config.members()) {
      MemberInfo m;
      m.id = id;
      m.address = config.address_of(id);
      if (m.address.empty()) {
        std::lock_guard lock(config_mu_);
        m.address = config_.address_of(id);
      }
      m.voter = config.is_voter(id);
      m.is_leader = id == raft_.leader();
      if (raft_.role() == Role::Leader) {
        if (id == options_.id) {
          m.match = raft_.persisted_index();
          m.last_contact_ms = 0;
        } else if (auto it = raft_.progress().find(id); it != raft_.progress().end()) {
          m.match = it->second.match;
          m.last_contact_ms = static_cast<std::int64_t>(
              (raft_.now_tick() - it->second.last_contact_tick) * options_.tick_ms);
        }
        m.lag = ci.last_index.value() > m.match.value() ? ci.last_index.value() - m.match.value() : 0;
      }
      ci.members.push_back(std::move(m));
    }
    {
      // Digest verification: compare every member's checkpoints with ours.
      std::lock_guard lock(digests_mu_);
      if (!my_digests_.empty()) ci.digest = my_digests_.back();
      std::map<LogIndex, std::uint64_t> mine;
      for (const auto& cp : my_digests_) mine.emplace(cp.index, cp.digest);
      for (auto& m : ci.members) {
        if (m.id == options_.id) {
          m.digest = ci.digest;
          continue;
        }
        auto it = peer_digests_.find(m.id);
        if (it == peer_digests_.end() || it->second.empty()) continue;
        m.digest = it->second.back();
        for (const auto& cp : it->second) {
          auto mit = mine.find(cp.index);
          if (mit != mine.end() && mit->second != cp.digest) {
            m.diverged_at = cp.index;
            ci.diverged = true;
            break;
          }
        }
      }
    }
    promise->set_value(std::move(ci));
  };
  if (on_raft_thread()) {
    fill();  // already where the core lives (a callback under complete_on_raft_thread)
  } else {
    post(std::move(fill));
  }
  if (future.wait_for(std::chrono::seconds(2)) == std::future_status::ready) return future.get();
  // The raft thread is stopped or stuck: report what is published.
  ClusterInfo ci;
  ci.cluster_id = options_.cluster_id;
  ci.id = options_.id;
  ci.term = Term{term_.load()};
  ci.role = get_role();
  ci.leader = get_leader();
  ci.applied = LogIndex{applied_.load()};
  return ci;
}

void NodeImpl::read_index_async(std::chrono::milliseconds timeout,
                                std::function<void(Result<LogIndex>)> done) {
  const auto deadline = Clock::now() + timeout;
  auto shared = std::make_shared<std::function<void(Result<LogIndex>)>>(std::move(done));
  if (!post_checked([this, shared, deadline] {
        const std::uint64_t id = next_read_id_++;
        if (Status s = raft_.read_index(id); !s) {
          completions_.push_back(Completion{{}, ProposeResult{}, [shared, s] { (*shared)(s); }});
          return;
        }
        reads_[id] = PendingRead{[this, shared](Result<LogIndex> r) {
                                   completions_.push_back(Completion{
                                       {}, ProposeResult{}, [shared, r = std::move(r)]() mutable {
                                         (*shared)(std::move(r));
                                       }});
                                 },
                                 deadline};
      })) {
    (*shared)(Status{ErrorCode::ShuttingDown, "node is stopping"});
  }
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

Status NodeImpl::change(std::function<Result<core::EntryId>(core::Raft&)> op,
                        std::chrono::milliseconds timeout) {
  if (on_raft_thread()) return refused_on_raft_thread("a membership change");
  auto promise = std::make_shared<std::promise<Status>>();
  auto future = promise->get_future();
  const auto deadline = Clock::now() + timeout;
  post([this, promise, deadline, op = std::move(op)] {
    auto r = op(raft_);
    if (!r) {
      promise->set_value(r.status());
      return;
    }
    // Done when the entry commits and the configuration it leads to is final (a joint
    // configuration is followed by C_new, appended by the leader).
    pending_.push_back(Pending{
        r.value(),
        [this, promise, deadline](Result<ProposeResult> res) {
          if (!res) {
            promise->set_value(res.status());
            return;
          }
          config_waiters_.push_back(ConfigWaiter{
              [promise](Status s) { promise->set_value(std::move(s)); }, deadline});
        },
        deadline, true});
  });
  if (future.wait_for(timeout + std::chrono::milliseconds(100)) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "membership change not committed in time"};
  }
  return future.get();
}

Status NodeImpl::add_learner(const MemberAddress& member, std::chrono::milliseconds timeout) {
  const std::string address = fmt::format("{}:{}", member.host, member.port);
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
  post([this, promise, deadline, to] {
    if (Status s = raft_.transfer_leadership(to); !s) {
      promise->set_value(s);
      return;
    }
    if (to == options_.id) {
      promise->set_value(Status::ok());
      return;
    }
    transfers_.push_back(PendingTransfer{to, [promise](Status s) { promise->set_value(std::move(s)); },
                                         deadline});
  });
  if (future.wait_for(timeout + std::chrono::milliseconds(100)) != std::future_status::ready) {
    return Status{ErrorCode::Timeout, "leadership transfer did not complete in time"};
  }
  return future.get();
}

// ---------------------------------------------------------------------------------
// The raft thread
// ---------------------------------------------------------------------------------

void NodeImpl::run() {
  const auto tick = std::chrono::milliseconds(options_.tick_ms);
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
      queued_proposals_ = 0;
    }
    if (!failed_) {
      std::size_t next_lost = 0;
      for (std::size_t k = 0; k < msgs.size(); ++k) {
        for (; next_lost < lost.size() && lost[next_lost].first <= k; ++next_lost) {
          raft_.peer_disconnected(lost[next_lost].second);
        }
        const core::Message& m = msgs[k];
        if (Status s = raft_.step(m); !s) {
          std::fprintf(stderr, "rlr node %lu: dropped message: %s\n",
                       static_cast<unsigned long>(options_.id.value()), s.to_string().c_str());
        }
      }
      for (; next_lost < lost.size(); ++next_lost) raft_.peer_disconnected(lost[next_lost].second);
    }
    msgs.clear();
    lost.clear();
    if (!props.empty()) {
      propose_queued(props);
      props.clear();
    }
    for (auto& t : tasks) t();
    tasks.clear();

    const auto now = Clock::now();
    if (now >= next_tick) {
      if (!failed_) raft_.tick();
      if (++ticks_ % 10 == 0) send_digest_report();
      next_tick += tick;
      if (next_tick < now) next_tick = now + tick;
      expire_pending(now);
    }
    if (raft_.log_read_failures() != log_read_failures_seen_) report_log_read_failures(now);
    while (!failed_ && raft_.has_ready()) {
      core::Ready rd = raft_.ready();
      handle_ready(rd);
      raft_.recycle(std::move(rd));
    }
    flush_completions();
  }
  fail_everything(Status{ErrorCode::ShuttingDown, "node is stopping"});
  // Proposals that raced with stop().
  {
    std::lock_guard lock(in_mu_);
    for (auto& p : in_props_) {
      complete(p.done, Status{ErrorCode::ShuttingDown, "node is stopping"});
    }
    in_props_.clear();
    in_tasks_.clear();
  }
  flush_completions();
}

void NodeImpl::flush_completions() {
  if (completions_.empty()) return;
  if (!options_.complete_on_raft_thread) {
    executor_.post_batch(completions_);
    return;
  }
  // No lock is held here: a callback may propose (that only queues for the next turn)
  // or call anything that does not wait for the raft thread.
  running_.swap(completions_);
  for (auto& c : running_) c.run();
  running_.clear();
}

Status NodeImpl::refused_on_raft_thread(const char* what) {
  return Status{ErrorCode::InvalidArgument,
                fmt::format("{} waits for the raft thread and cannot be called from a callback "
                            "that runs on it (complete_on_raft_thread); use the asynchronous form",
                            what)};
}

void NodeImpl::propose_queued(std::vector<Proposal>& props) {
  std::vector<Bytes>& commands = prop_commands_;
  std::vector<EntryKind>& kinds = prop_kinds_;
  std::vector<Proposal*>& accepted = prop_accepted_;
  commands.clear();
  kinds.clear();
  accepted.clear();
  const auto deadline = Clock::now() + std::chrono::milliseconds(options_.proposal_timeout_ms);
  for (auto& p : props) {
    if (failed_) {
      complete(p.done, Status{ErrorCode::IoError, "node failed: its storage refused a write"});
      continue;
    }
    if (p.kind == EntryKind::Session) {
      const auto key = std::make_pair(p.session.client_id, p.session.sequence);
      if (auto o = sessions_.find(key.first, key.second)) {
        // Exactly-once: a retry of a committed command gets the original entry.
        Result<ProposeResult> r =
            o->original_index.is_zero()
                ? Result<ProposeResult>(Status{ErrorCode::InvalidArgument,
                                               fmt::format("sequence {} of client {} was applied long ago; its result is no longer kept",
                                                           key.second, key.first)})
                : Result<ProposeResult>(ProposeResult{o->original_index, o->original_term});
        complete(p.done, std::move(r));
        continue;
      }
      if (auto it = inflight_sessions_.find(key); it != inflight_sessions_.end()) {
        // Already in the log, not yet committed: wait for that entry.
        session_waiters_.emplace(it->second, SessionWaiter{key, std::move(p.done), deadline});
        continue;
      }
      commands.push_back(encode_session_command(key.first, key.second, p.command));
    } else {
      commands.push_back(std::move(p.command));
    }
    kinds.push_back(p.kind);
    accepted.push_back(&p);
  }
  if (accepted.empty()) return;
  auto r = raft_.propose_batch(commands, kinds);
  commands.clear();  // drop the payload references now; the log holds its own
  if (!r) {
    const Status s = r.status();
    for (Proposal* p : accepted) complete(p->done, s);
    return;
  }
  // One batch, consecutive indexes: the first got last - n + 1.
  LogIndex index{r.value().index.value() - accepted.size() + 1};
  for (Proposal* p : accepted) {
    if (p->kind == EntryKind::Session) {
      inflight_sessions_[{p->session.client_id, p->session.sequence}] = index;
    }
    pending_.push_back(Pending{core::EntryId{index, r.value().term}, std::move(p->done), deadline, false});
    index = index.next();
  }
}

Status NodeImpl::restore_sessions() {
  auto snap = storage_->snapshot();
  if (!snap) return snap.status();
  if (Status s = sessions_.decode(snap.value().data.span()); !s) return s;
  // Committed entries after the snapshot were applied before the restart; the core
  // does not hand them out again, so replay their sessions here.
  LogIndex i = snap.value().index.next();
  const LogIndex last = LogIndex{applied_.load()};
  auto replay = [&](const Entry& e) {
    if (e.kind != EntryKind::Session) return;
    if (auto c = decode_session_command(e.payload)) {
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
    auto batch = storage_->read(i, last, 4096, 8U << 20);
    if (!batch) return batch.status();
    for (const Entry& e : batch.value()) replay(e);
    i = batch.value().back().index.next();
  }
  return Status::ok();
}

void NodeImpl::report_log_read_failures(Clock::time_point now) {
  // A leader retries every turn: say it at most once a second, with how many failed.
  if (now - log_read_failure_logged_ < std::chrono::seconds(1)) return;
  std::fprintf(stderr, "rlr node %lu: %llu appends not sent: evicted entries could not be read back: %s\n",
               static_cast<unsigned long>(options_.id.value()),
               static_cast<unsigned long long>(raft_.log_read_failures() - log_read_failures_seen_),
               raft_.last_log_read_error().to_string().c_str());
  log_read_failures_seen_ = raft_.log_read_failures();
  log_read_failure_logged_ = now;
}

void NodeImpl::handle_ready(core::Ready& rd) {
  if (rd.soft_state) {
    if (static_cast<Role>(role_.load()) == Role::Leader && rd.soft_state->role != Role::Leader) {
      release_pending_on_step_down();
    }
    role_ = static_cast<std::uint8_t>(rd.soft_state->role);
    leader_ = rd.soft_state->leader.value();
    term_ = rd.soft_state->term.value();
  }
  // The leader's appends leave before its own write: it replicates while it fsyncs.
  if (!rd.messages.empty()) transport_->send(rd.messages);
  // A step that only moves the commit index needs no write: the stored commit is a
  // hint (the core recomputes it after a restart), and syncing it would put a second
  // fsync between every commit and its acknowledgement. It rides along with the next
  // write that carries entries, a term or a vote.
  const bool commit_only = !rd.snapshot && rd.entries.empty() && rd.hard_state &&
                           rd.hard_state->term == persisted_hard_state_.term &&
                           rd.hard_state->vote == persisted_hard_state_.vote;
  const bool must_write = rd.must_persist() && !commit_only;
  if (writer_ && !rd.snapshot && (must_write || !writer_->idle())) {
    // The storage thread writes it, then sends the acknowledgements and posts
    // ack_persisted back; a step with nothing to write still queues behind the others,
    // since its mark and messages claim everything before it is durable.
    WriteStep step;
    if (must_write) {
      step.hard_state = hard_state_to_write(rd);
      step.entries = std::move(rd.entries);
    }
    step.after_persist = std::move(rd.messages_after_persist);
    step.mark = rd.persist_mark;
    writer_->submit(std::move(step));
  } else {
    handle_ready_persistence(rd, must_write);
  }
  after_ready(rd);
}

std::optional<core::HardState> NodeImpl::hard_state_to_write(const core::Ready& rd) {
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

void NodeImpl::storage_failed(const Status& why) {
  if (failed_) return;
  // Memory is now ahead of disk: this node can no longer take part safely.
  std::fprintf(stderr, "rlr node %lu: storage failed, node stops participating: %s\n",
               static_cast<unsigned long>(options_.id.value()), why.to_string().c_str());
  failed_ = true;
  fail_everything(why);
}

void NodeImpl::handle_ready_persistence(core::Ready& rd, bool must_write) {
  // A snapshot to install (rare) is written here, after everything queued before it.
  if (writer_) writer_->drain();
  if (must_write) {
    storage::PersistRequest req;
    req.snapshot = rd.snapshot ? &*rd.snapshot : nullptr;
    req.entries = rd.entries;
    req.hard_state = hard_state_to_write(rd);
    if (Status s = storage_->persist(req); !s) {
      storage_failed(s);
      return;
    }
  }
  if (rd.snapshot) {
    cache_.reset(rd.snapshot->index);
    {
      std::lock_guard lock(applied_mu_);
      applied_ = std::max(applied_.load(), rd.snapshot->index.value());
    }
    applied_cv_.notify_all();
  }
  if (!rd.messages_after_persist.empty()) transport_->send(rd.messages_after_persist);
  raft_.ack_persisted(rd.persist_mark);
}

void NodeImpl::after_ready(core::Ready& rd) {
  if (failed_) return;
  if (!rd.committed.empty()) on_committed(rd.committed);
  for (const auto& rs : rd.read_states) {
    auto it = reads_.find(rs.request_id);
    if (it == reads_.end()) continue;
    auto done = std::move(it->second.done);
    reads_.erase(it);
    if (rs.ok) {
      done(rs.index);
    } else {
      done(Status::not_leader(raft_.leader(), "leadership lost before the read was confirmed"));
    }
  }
  if (raft_.config().voters != config_.voters || raft_.config().learners != config_.learners ||
      raft_.config().voters_outgoing != config_.voters_outgoing ||
      raft_.config_index() != config_index_seen_) {
    config_index_seen_ = raft_.config_index();
    update_peers();
  }
  // Membership changes complete once a final (non-joint) configuration is committed.
  if (!config_waiters_.empty() && !raft_.config().is_joint() &&
      raft_.config_index() <= raft_.commit_index()) {
    for (auto& w : config_waiters_) w.done(Status::ok());
    config_waiters_.clear();
  }
  if (!transfers_.empty()) {
    for (auto it = transfers_.begin(); it != transfers_.end();) {
      if (raft_.leader() == it->target) {
        it->done(Status::ok());
        it = transfers_.erase(it);
      } else {
        ++it;
      }
    }
  }
}

void NodeImpl::on_committed(std::vector<Entry>& committed) {
  cache_.append(committed);
  {
    std::lock_guard lock(applied_mu_);
    applied_ = committed.back().index.value();
  }
  applied_cv_.notify_all();
  auto finish = [this](std::function<void(Result<ProposeResult>)>& done, bool internal,
                       Result<ProposeResult> r) {
    if (internal) {
      done(std::move(r));
    } else {
      complete(done, std::move(r));
    }
  };
  for (const Entry& e : committed) {
    // The outcome of this entry for whoever proposed it.
    Result<ProposeResult> outcome = ProposeResult{e.index, e.term};
    if (e.kind == EntryKind::Session) {
      if (auto c = decode_session_command(e.payload)) {
        const auto key = std::make_pair(c->client_id, c->sequence);
        if (auto it = inflight_sessions_.find(key); it != inflight_sessions_.end() && it->second == e.index) {
          inflight_sessions_.erase(it);
        }
        const auto o = sessions_.apply(e.index, e.term, c->client_id, c->sequence);
        if (o.duplicate) {
          outcome = o.original_index.is_zero()
                        ? Result<ProposeResult>(Status{ErrorCode::InvalidArgument,
                                                       "duplicate of a command whose result is no longer kept"})
                        : Result<ProposeResult>(ProposeResult{o.original_index, o.original_term});
        }
      }
    }
    while (!pending_.empty() && pending_.front().id.index <= e.index) {
      Pending p = std::move(pending_.front());
      pending_.pop_front();
      Result<ProposeResult> r =
          p.id.index == e.index && p.id.term == e.term
              ? outcome
              : Result<ProposeResult>(Status::not_leader(
                    raft_.leader(), "leadership changed; the proposal was not committed"));
      finish(p.done, p.internal, std::move(r));
    }
    for (auto it = session_waiters_.find(e.index); it != session_waiters_.end() && it->first == e.index;
         it = session_waiters_.erase(it)) {
      SessionWaiter& w = it->second;
      Result<ProposeResult> r = Status::not_leader(raft_.leader(), "the proposal was not committed");
      if (auto o = sessions_.find(w.key.first, w.key.second); o && !o->original_index.is_zero()) {
        r = ProposeResult{o->original_index, o->original_term};
      }
      finish(w.done, false, std::move(r));
    }
    if (options_.compact_after_entries > 0 && e.index.value() % options_.compact_after_entries == 0) {
      // The session table as of this index: RLR's snapshot data if we compact here.
      snapshot_points_.emplace_back(e.index, sessions_.encode());
      while (snapshot_points_.size() > 16) snapshot_points_.pop_front();
    }
  }
  maybe_compact();
}

void NodeImpl::expire_pending(Clock::time_point now) {
  const Status timeout{ErrorCode::Timeout, "no outcome within the timeout; the entry may still commit"};
  while (!pending_.empty() && pending_.front().deadline <= now) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    if (p.internal) {
      p.done(timeout);
    } else {
      complete(p.done, timeout);
    }
  }
  for (auto it = reads_.begin(); it != reads_.end();) {
    if (it->second.deadline <= now) {
      it->second.done(Status{ErrorCode::Timeout, "read index not confirmed in time"});
      it = reads_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = transfers_.begin(); it != transfers_.end();) {
    if (it->deadline <= now) {
      it->done(Status{ErrorCode::Timeout, "leadership transfer did not complete in time"});
      it = transfers_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = session_waiters_.begin(); it != session_waiters_.end();) {
    if (it->second.deadline <= now) {
      complete(it->second.done, timeout);
      it = session_waiters_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = config_waiters_.begin(); it != config_waiters_.end();) {
    if (it->deadline <= now) {
      it->done(Status{ErrorCode::Timeout, "configuration change not final in time"});
      it = config_waiters_.erase(it);
    } else {
      ++it;
    }
  }
}

void NodeImpl::release_pending_on_step_down() {
  // A former leader cannot learn these outcomes before its proposers would time out
  // (cut off from the others, it may never learn them): tell them now, as a timeout,
  // since each entry may still commit under the next leader. A client with a session
  // retries at the new leader and gets the original entry if it did.
  const Status why{ErrorCode::Timeout, "leadership lost before the entry committed; it may still commit"};
  std::deque<Pending> kept;
  for (auto& p : pending_) {
    if (p.internal) {
      kept.push_back(std::move(p));  // membership bookkeeping: resolved by commit or timeout
    } else {
      complete(p.done, why);
    }
  }
  pending_ = std::move(kept);
}

void NodeImpl::fail_everything(const Status& why) {
  for (auto& p : pending_) {
    if (p.internal) {
      p.done(why);
    } else {
      complete(p.done, why);
    }
  }
  pending_.clear();
  for (auto& [id, r] : reads_) r.done(why);
  reads_.clear();
  for (auto& t : transfers_) t.done(why);
  transfers_.clear();
  for (auto& w : config_waiters_) w.done(why);
  config_waiters_.clear();
  for (auto& [index, w] : session_waiters_) {
    complete(w.done, why);
  }
  session_waiters_.clear();
  inflight_sessions_.clear();
}

void NodeImpl::update_peers() {
  core::Configuration next = raft_.config();
  for (const auto& m : options_.initial_members) {
    if (next.is_member(m.id) && next.address_of(m.id).empty()) {
      next.set_address(m.id, fmt::format("{}:{}", m.host, m.port));
    }
  }
  {
    std::lock_guard lock(config_mu_);
    for (const auto& e : config_.addresses) {
      if (!next.is_member(e.id)) transport_->set_peer(e.id, {});
    }
    config_ = next;
  }
  for (const auto& e : next.addresses) {
    if (e.id != options_.id) transport_->set_peer(e.id, e.address);
  }
}

void NodeImpl::maybe_compact() {
  const std::uint64_t keep = options_.compact_after_entries;
  if (keep == 0 || snapshot_points_.empty()) return;
  const LogIndex applied{applied_.load()};
  // Keep `keep` entries behind the applied index for lagging followers and subscribers,
  // and never compact what an attached state machine has not applied yet.
  std::uint64_t allowed = applied.value() > keep ? applied.value() - keep : 0;
  {
    std::lock_guard lock(runners_mu_);
    for (const auto& w : runners_) {
      if (auto r = w.lock()) {
        if (r->health().is_ok()) allowed = std::min(allowed, r->applied().value());
      }
    }
  }
  std::optional<std::pair<LogIndex, Bytes>> point;
  while (!snapshot_points_.empty() && snapshot_points_.front().first.value() <= allowed) {
    point = std::move(snapshot_points_.front());
    snapshot_points_.pop_front();
  }
  if (!point || point->first <= raft_.log().snapshot().index) return;
  if (Status s = raft_.compact(point->first, point->second); !s) return;
  if (writer_) writer_->drain();  // compact() must not run while a write does
  if (Status s = storage_->compact(raft_.log().snapshot()); !s) {
    std::fprintf(stderr, "rlr node %lu: compaction failed: %s\n",
                 static_cast<unsigned long>(options_.id.value()), s.to_string().c_str());
  }
}

Result<std::shared_ptr<ApplyRunner>> NodeImpl::attach(std::shared_ptr<RoleAwareStateMachine> sm,
                                                      ApplyOptions options) {
  if (!sm) return Status{ErrorCode::InvalidArgument, "no state machine"};
  auto runner = std::make_shared<ApplyRunnerImpl>(*this, std::move(sm), std::move(options));
  {
    std::lock_guard lock(runners_mu_);
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

void NodeImpl::publish_checkpoint(const ApplyRunner* runner, const DigestCheckpoint& cp) {
  {
    std::lock_guard lock(runners_mu_);
    if (runner != primary_runner_) return;
  }
  std::lock_guard lock(digests_mu_);
  my_digests_.push_back(cp);
  while (my_digests_.size() > 256) my_digests_.pop_front();
}

void NodeImpl::send_digest_report() {
  std::vector<DigestCheckpoint> recent;
  {
    std::lock_guard lock(digests_mu_);
    const std::size_t n = std::min<std::size_t>(my_digests_.size(), 16);
    recent.assign(my_digests_.end() - static_cast<std::ptrdiff_t>(n), my_digests_.end());
  }
  if (recent.empty()) return;
  std::vector<core::Message> msgs;
  for (NodeId id : raft_.config().members()) {
    if (id == options_.id) continue;
    core::Message m;
    m.type = core::MessageType::DigestReport;
    m.from = options_.id;
    m.to = id;
    m.term = raft_.term();
    m.digests = recent;
    msgs.push_back(std::move(m));
  }
  if (!msgs.empty()) transport_->send(msgs);
}

void NodeImpl::on_digest_report(const core::Message& m) {
  std::lock_guard lock(digests_mu_);
  auto& q = peer_digests_[m.from];
  for (const auto& cp : m.digests) {
    if (!q.empty() && cp.index <= q.back().index) continue;
    q.push_back(cp);
  }
  while (q.size() > 256) q.pop_front();
}

}  // namespace rlr::node
