#include "testing/realtime_cluster.h"

#include <algorithm>
#include <future>
#include <thread>

#include <fmt/format.h>

namespace rlr::testing {

namespace {

/// A node's handle on its MemoryStorage: reads pass through; writes fail once the node
/// crashed (its process is gone, so nothing it would still write may land).
class GatedStorage final : public storage::Storage {
 public:
  GatedStorage(std::shared_ptr<storage::MemoryStorage> disk, std::shared_ptr<std::atomic<bool>> alive)
      : disk_(std::move(disk)), alive_(std::move(alive)) {}
  [[nodiscard]] LogIndex first_index() const override { return disk_->first_index(); }
  [[nodiscard]] LogIndex last_index() const override { return disk_->last_index(); }
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                                std::size_t max_bytes) const override {
    return disk_->read(from, to, max_entries, max_bytes);
  }
  [[nodiscard]] Result<storage::HardState> hard_state() const override { return disk_->hard_state(); }
  [[nodiscard]] Result<LogIndex> applied() const override { return disk_->applied(); }
  [[nodiscard]] storage::Identity identity() const override { return disk_->identity(); }
  [[nodiscard]] Result<storage::SnapshotMeta> snapshot() const override { return disk_->snapshot(); }
  [[nodiscard]] Status persist(const storage::PersistRequest& req) override {
    if (!alive_->load()) return crashed();
    return disk_->persist(req);
  }
  [[nodiscard]] Status compact(const storage::SnapshotMeta& s) override {
    if (!alive_->load()) return crashed();
    return disk_->compact(s);
  }

 private:
  static Status crashed() { return Status{ErrorCode::IoError, "the node crashed (test kit)"}; }
  std::shared_ptr<storage::MemoryStorage> disk_;
  std::shared_ptr<std::atomic<bool>> alive_;
};

}  // namespace

Result<std::unique_ptr<Cluster>> RealTimeCluster::create(ClusterOptions options) {
  auto cluster = std::make_unique<RealTimeCluster>(std::move(options));
  core::Configuration initial;
  initial.voters = cluster->ids();
  for (NodeId id : cluster->ids()) {
    auto m = std::make_unique<Member>();
    NodeOptions& o = m->options;
    o = cluster->options().node;
    o.id = id;
    o.listen = Address{"127.0.0.1", 0};
    o.storage = StorageKind::Memory;
    o.data_dir.clear();
    o.log_sink = cluster->sink();
    o.initial_members.clear();
    for (NodeId other : cluster->ids()) {
      o.initial_members.push_back(
          MemberAddress{other, Address{"127.0.0.1", static_cast<std::uint16_t>(9000 + other.value())}});
    }
    if (Status s = validate(o); !s) return s;
    m->disk = std::make_shared<storage::MemoryStorage>(storage::Identity{o.cluster_id, id}, initial);
    cluster->members_[id] = std::move(m);
  }
  for (NodeId id : cluster->ids()) {
    if (Status s = cluster->start(id); !s) return s;
  }
  return std::unique_ptr<Cluster>(std::move(cluster));
}

RealTimeCluster::RealTimeCluster(ClusterOptions options)
    : Kit(std::move(options)), net_(std::make_shared<transport::LocalNetwork>(this->options().seed)) {}

RealTimeCluster::~RealTimeCluster() {
  for (auto& [id, m] : members_) {
    for (auto& r : m->runners) r->stop();
    if (m->node) m->node->stop();
  }
}

RealTimeCluster::Member* RealTimeCluster::find(NodeId id) const {
  const auto it = members_.find(id);
  return it == members_.end() ? nullptr : it->second.get();
}

Status RealTimeCluster::start(NodeId id) {
  Member& m = *find(id);
  m.alive = std::make_shared<std::atomic<bool>>(true);
  auto n = node::NodeImpl::start(m.options, std::make_unique<GatedStorage>(m.disk, m.alive),
                                 std::make_unique<transport::LocalTransport>(net_, id));
  if (!n) return n.status();
  m.node = std::move(n).value();
  m.sms.clear();
  m.runners.clear();
  Status first_error;
  for (std::size_t k = 0; k < attachments().size(); ++k) {
    if (Status s = start_attachment(id, k); !s && first_error.is_ok()) first_error = s;
  }
  return first_error;
}

Status RealTimeCluster::start_attachment(NodeId id, std::size_t n) {
  Member& m = *find(id);
  const auto& attachment = attachments().at(n);
  if (m.sms.size() <= n) {
    m.sms.resize(n + 1);
    m.runners.resize(n + 1);
  }
  auto sm = attachment.make(id);
  if (!sm) return Status{ErrorCode::InvalidArgument, "the factory made no state machine"};
  ApplyOptions options = attachment.options;
  node::NodeImpl* node = m.node.get();
  options.sink = std::make_shared<RecordingSink>(records(), id, attachment.options.sink,
                                                 options.egress == EgressMode::LeaderOnly,
                                                 [node] { return node->role() == Role::Leader; });
  auto runner = m.node->attach(sm, options);
  if (!runner) return runner.status();
  m.sms[n] = std::move(sm);
  m.runners[n] = std::move(runner).value();
  return Status::ok();
}

std::chrono::milliseconds RealTimeCluster::now() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started_);
}

void RealTimeCluster::advance(std::chrono::milliseconds d) { std::this_thread::sleep_for(d); }

bool RealTimeCluster::run_until(const std::function<bool()>& done, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds{1});
  }
}

std::shared_ptr<RoleAwareStateMachine> RealTimeCluster::state_machine(NodeId id, std::size_t n) const {
  const Member* m = find(id);
  if (m == nullptr || !m->node || n >= m->sms.size()) return nullptr;
  return m->sms[n];
}

void RealTimeCluster::harvest_checkpoints(const Member& m, NodeId id) const {
  for (std::size_t n = 0; n < m.runners.size(); ++n) {
    if (!m.runners[n]) continue;
    for (const DigestCheckpoint& cp : m.runners[n]->checkpoints()) records()->checkpoint(id, n, cp);
  }
}

Status RealTimeCluster::digests_agree() const {
  for (const auto& [id, m] : members_) {
    if (m->node) harvest_checkpoints(*m, id);
  }
  return Kit::digests_agree();
}

void RealTimeCluster::propose_async(NodeId id, Bytes command, ClientSession session,
                                    ProposeCallback done) {
  if (Status s = check_id(id); !s) {
    done(s);
    return;
  }
  Member& m = *find(id);
  if (!m.node) {
    done(Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())});
    return;
  }
  m.node->propose(std::move(command), session, std::move(done));
}

Result<ProposeResult> RealTimeCluster::propose_at(NodeId id, Bytes command, ClientSession session,
                                                  std::chrono::milliseconds timeout) {
  auto promise = std::make_shared<std::promise<Result<ProposeResult>>>();
  auto future = promise->get_future();
  propose_async(id, std::move(command), session,
                [promise](Result<ProposeResult> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(timeout) != std::future_status::ready) {
    return Status{ErrorCode::Timeout,
                  fmt::format("no outcome from node {} within {} ms (it may still commit)", id.value(),
                              timeout.count())};
  }
  return future.get();
}

Result<std::vector<CommittedEntry>> RealTimeCluster::committed(NodeId id, LogIndex from) const {
  if (Status s = check_id(id); !s) return s;
  const Member& m = *find(id);
  if (!m.node) return Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())};
  const LogIndex to = m.node->cluster_info().applied;
  auto sub = m.node->subscribe(from);
  if (!sub) return sub.status();
  std::vector<CommittedEntry> out;
  while (sub.value()->position() <= to) {
    auto batch = sub.value()->next(std::chrono::milliseconds{0});
    if (!batch) return batch.status();
    if (batch.value().next == batch.value().from) break;  // nothing more is available
    for (CommittedEntry& e : batch.value().entries) out.push_back(std::move(e));
  }
  return out;
}

Status RealTimeCluster::transfer_leadership(NodeId to, std::chrono::milliseconds timeout) {
  if (Status s = check_id(to); !s) return s;
  const NodeId l = leader();
  if (l == kNoNode) return Status{ErrorCode::Unavailable, "no leader to transfer from"};
  return find(l)->node->transfer_leadership(to, timeout);
}

Result<ClusterInfo> RealTimeCluster::cluster_info(NodeId id) const {
  if (Status s = check_id(id); !s) return s;
  const Member& m = *find(id);
  if (!m.node) return Status{ErrorCode::Unavailable, fmt::format("node {} is down", id.value())};
  return m.node->cluster_info();
}

Node* RealTimeCluster::node(NodeId id) {
  Member* m = find(id);
  return m != nullptr ? m->node.get() : nullptr;
}

void RealTimeCluster::set_network_faults(const NetworkFaults& faults) {
  net_->set_drop_rate(faults.drop);
  net_->set_duplicate_rate(faults.duplicate);
  net_->set_delay(faults.delay_min, faults.delay_max);
}

void RealTimeCluster::apply_cuts() {
  net_->heal();
  for (const auto& [from, to] : cuts()) net_->block(from, to);
}

Status RealTimeCluster::crash(NodeId id) {
  if (Status s = check_id(id); !s) return s;
  Member& m = *find(id);
  if (!m.node) return Status{ErrorCode::Unavailable, fmt::format("node {} is already down", id.value())};
  kit_log().logf(LogLevel::Info, {}, "crash node {} at {} ms", id.value(), now().count());
  m.alive->store(false);
  harvest_checkpoints(m, id);
  for (auto& r : m.runners) {
    if (r) r->stop();
  }
  m.node->stop();
  m.node.reset();
  m.sms.clear();
  m.runners.clear();
  return Status::ok();
}

Status RealTimeCluster::restart(NodeId id) {
  if (Status s = check_id(id); !s) return s;
  if (find(id)->node) return Status{ErrorCode::Unavailable, fmt::format("node {} is running", id.value())};
  kit_log().logf(LogLevel::Info, {}, "restart node {} at {} ms", id.value(), now().count());
  return start(id);
}

bool RealTimeCluster::running(NodeId id) const {
  const Member* m = find(id);
  return m != nullptr && m->node != nullptr;
}

Kit::NodeView RealTimeCluster::view(NodeId id) const {
  NodeView v;
  const Member* m = find(id);
  if (m == nullptr || !m->node) return v;
  const ClusterInfo ci = m->node->cluster_info();
  v.up = true;
  v.role = ci.role;
  v.leader = ci.leader;
  v.term = ci.term;
  v.commit = ci.commit;
  v.applied = ci.applied;
  for (const auto& r : m->runners) {
    if (!r) continue;
    v.applied = v.has_state_machines ? std::min(v.applied, r->applied()) : r->applied();
    v.has_state_machines = true;
  }
  return v;
}

}  // namespace rlr::testing
