#include "testing/kit.h"

#include <algorithm>
#include <limits>

#include <fmt/format.h>

#include "testing/manual_cluster.h"
#include "testing/realtime_cluster.h"

namespace rlr::testing {

NodeOptions ClusterOptions::default_node_options() {
  NodeOptions o;
  o.cluster_id = "test";
  o.tick = std::chrono::milliseconds{10};
  o.election_ticks = 15;
  o.heartbeat_ticks = 3;
  o.proposal_timeout = std::chrono::milliseconds{3000};
  o.compact_after_entries = 0;
  o.check_invariants = true;
  return o;
}

Result<std::unique_ptr<Cluster>> Cluster::create(ClusterOptions options) {
  if (options.voters < 1 || options.voters > 7) {
    return Status{ErrorCode::InvalidArgument,
                  fmt::format("a test cluster has 1 to 7 voters, not {}", options.voters)};
  }
  if (options.fsync_max < options.fsync_min || options.fsync_min.count() < 0 ||
      options.latency.count() < 0) {
    return Status{ErrorCode::InvalidArgument,
                  "fsync_min..fsync_max must be a range of non-negative durations, latency non-negative"};
  }
  if (options.clock == ClockMode::Manual) return ManualCluster::create(std::move(options));
  return RealTimeCluster::create(std::move(options));
}

Kit::Kit(ClusterOptions options) : options_(std::move(options)) {
  if (options_.node.log_sink) {
    sink_ = options_.node.log_sink;
  } else {
    lines_ = std::make_shared<LineSink>();
    sink_ = lines_;
  }
  kit_log_ = util::Logger(sink_, "testing", kNoNode);
}

std::vector<NodeId> Kit::ids() const {
  std::vector<NodeId> out;
  for (std::size_t i = 1; i <= options_.voters; ++i) out.push_back(NodeId{i});
  return out;
}

Status Kit::check_id(NodeId id) const {
  if (id.value() >= 1 && id.value() <= options_.voters) return Status::ok();
  return Status{ErrorCode::InvalidArgument,
                fmt::format("node {} is not in this cluster (nodes 1..{})", id.value(), options_.voters)};
}

std::vector<std::string> Kit::log_lines() const {
  return lines_ ? lines_->lines() : std::vector<std::string>{};
}

Status Kit::attach(StateMachineFactory make, ApplyOptions options) {
  if (!make) return Status{ErrorCode::InvalidArgument, "attach() needs a state machine factory"};
  attachments_.push_back(Attachment{std::move(make), std::move(options)});
  for (NodeId id : ids()) {
    if (!view(id).up) continue;
    if (Status s = start_attachment(id, attachments_.size() - 1); !s) return s;
  }
  return Status::ok();
}

NodeId Kit::leader() const {
  NodeId best = kNoNode;
  Term best_term;
  for (NodeId id : ids()) {
    const NodeView v = view(id);
    if (v.up && v.role == Role::Leader && (best == kNoNode || v.term > best_term)) {
      best = id;
      best_term = v.term;
    }
  }
  return best;
}

NodeId Kit::settled_leader() const {
  const NodeId l = leader();
  if (l == kNoNode) return kNoNode;
  const Term term = view(l).term;
  for (NodeId id : ids()) {
    const NodeView v = view(id);
    if (!v.up || id == l || is_cut(l, id)) continue;
    if (v.leader != l || v.term != term) return kNoNode;
  }
  return l;
}

Result<NodeId> Kit::wait_for_leader(std::chrono::milliseconds timeout) {
  NodeId found = kNoNode;
  if (run_until([&] { return (found = settled_leader()) != kNoNode; }, timeout)) return found;
  return Status{ErrorCode::Timeout, fmt::format("no leader that every reachable node knows within {} ms",
                                                timeout.count())};
}

Result<ProposeResult> Kit::propose(Bytes command, ClientSession session,
                                   std::chrono::milliseconds timeout) {
  const auto deadline = now() + timeout;
  for (;;) {
    const auto left = deadline - now();
    if (left.count() <= 0) return Status{ErrorCode::Timeout, "no leader took the proposal in time"};
    auto l = wait_for_leader(left);
    if (!l) return l.status();
    auto r = propose_at(l.value(), command, session, deadline - now());
    // Refused before anything was appended: safe to offer again, once a leader settles.
    if (!r && (r.status().code() == ErrorCode::NotLeader ||
               r.status().code() == ErrorCode::TransferInProgress)) {
      advance(std::chrono::milliseconds{1});
      continue;
    }
    return r;
  }
}

LogIndex Kit::last_committed() const {
  LogIndex best;
  for (NodeId id : ids()) {
    const NodeView v = view(id);
    if (v.up) best = std::max(best, v.commit);
  }
  return best;
}

LogIndex Kit::min_applied() const {
  LogIndex low{std::numeric_limits<std::uint64_t>::max()};
  bool any = false;
  for (NodeId id : ids()) {
    const NodeView v = view(id);
    if (!v.up || !v.has_state_machines) continue;
    low = std::min(low, v.applied);
    any = true;
  }
  return any ? low : LogIndex{};
}

bool Kit::wait_applied(LogIndex index, std::chrono::milliseconds timeout) {
  return run_until(
      [&] {
        for (NodeId id : ids()) {
          const NodeView v = view(id);
          if (v.up && v.applied < index) return false;
        }
        return true;
      },
      timeout);
}

Role Kit::role(NodeId id) const {
  if (!check_id(id)) return Role::Follower;
  const NodeView v = view(id);
  return v.up ? v.role : Role::Follower;
}

void Kit::partition(const std::vector<std::vector<NodeId>>& groups) {
  std::map<NodeId, std::size_t> group_of;
  for (std::size_t g = 0; g < groups.size(); ++g) {
    for (NodeId id : groups[g]) group_of[id] = g;
  }
  cuts_.clear();
  for (NodeId a : ids()) {
    for (NodeId b : ids()) {
      if (a == b) continue;
      const auto ga = group_of.find(a);
      const auto gb = group_of.find(b);
      // A node no group names is a group of its own.
      const bool same = ga != group_of.end() && gb != group_of.end() && ga->second == gb->second;
      if (!same) cuts_.emplace(a, b);
    }
  }
  kit_log_.logf(LogLevel::Info, {}, "partition into {} group(s)", groups.size());
  apply_cuts();
}

void Kit::isolate(NodeId id) {
  for (NodeId other : ids()) {
    if (other == id) continue;
    cuts_.emplace(id, other);
    cuts_.emplace(other, id);
  }
  kit_log_.logf(LogLevel::Info, {}, "isolate node {}", id.value());
  apply_cuts();
}

void Kit::heal() {
  cuts_.clear();
  kit_log_.log(LogLevel::Info, "heal every cut");
  apply_cuts();
}

}  // namespace rlr::testing
