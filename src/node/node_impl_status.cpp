// What a node reports about itself: NodeImpl::cluster_info() and NodeImpl::metrics()
// (the public NodeMetrics, rlr/metrics.h). The list of metrics, their names and help
// texts, lives here and in docs/metrics.md.
#include <future>
#include <map>

#include <fmt/format.h>

#include "node/apply_engine.h"
#include "node/node_impl.h"
#include "rlr/version.h"

namespace rlr::node {

namespace {

std::string id_label(NodeId id) { return std::to_string(id.value()); }

constexpr double kNanos = 1e-9;

}  // namespace

ClusterInfo NodeImpl::cluster_info() const {
  auto promise = std::make_shared<std::promise<ClusterInfo>>();
  auto future = promise->get_future();
  auto fill = [this, promise] { promise->set_value(cluster_info_here()); };
  bool queued = true;
  if (on_raft_thread()) {
    fill();  // already where the core lives (a callback under complete_on_raft_thread)
  } else {
    queued = post_request(std::move(fill)).is_ok();  // refused: the published state below
  }
  if (queued && future.wait_for(std::chrono::seconds(2)) == std::future_status::ready) return future.get();
  // The raft thread is stopped or stuck: report what is published.
  ClusterInfo ci;
  ci.cluster_id = options_.cluster_id;
  ci.id = options_.id;
  ci.term = Term{term_.load()};
  ci.role = role();
  ci.leader = leader();
  ci.applied = LogIndex{applied_.load()};
  return ci;
}

ClusterInfo NodeImpl::cluster_info_here() const {
  const core::Raft& raft = replica_->core();
  ClusterInfo ci;
  ci.cluster_id = options_.cluster_id;
  ci.id = options_.id;
  ci.term = raft.term();
  const bool failed = replica_->failed();
  ci.role = failed ? Role::Follower : raft.role();
  ci.leader = failed ? kNoNode : raft.leader();
  ci.storage_error = storage_error_;
  ci.commit = raft.commit_index();
  ci.applied = LogIndex{applied_.load()};
  ci.first_index = raft.log().first_index();
  ci.last_index = raft.log().last_index();
  ci.memory_log_entries = raft.log().memory_entries();
  ci.memory_log_bytes = raft.log().memory_bytes();
  const auto& config = raft.config();
  for (NodeId id : config.members()) {
    MemberInfo m;
    m.id = id;
    std::string address = config.address_of(id);
    if (address.empty()) {
      std::lock_guard lock(config_mu_);
      address = config_.address_of(id);
    }
    m.address = Address::parse(address).value_or(Address{});
    m.voter = config.is_voter(id);
    m.is_leader = id == ci.leader;
    if (ci.role == Role::Leader) {
      if (id == options_.id) {
        m.match = raft.persisted_index();
        m.last_contact = std::chrono::milliseconds{0};
      } else if (auto it = raft.progress().find(id); it != raft.progress().end()) {
        m.match = it->second.match;
        m.last_contact = static_cast<std::int64_t>(raft.now_tick() - it->second.last_contact_tick) *
                         options_.tick;
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
  return ci;
}

void NodeImpl::raft_metrics_here(MetricsBuilder& b, const ClusterInfo& ci) const {
  const core::Raft& raft = replica_->core();
  const ReplicaStats& st = replica_->stats();
  const core::Raft::Events& ev = raft.events();
  const Waiters& w = replica_->waiters();

  b.counter("rlr_proposals_accepted_total", "Proposals appended to the log by this node as leader.",
            static_cast<double>(st.proposals_accepted));
  const auto rejected = [&](const char* reason, std::uint64_t n) {
    b.counter("rlr_proposals_rejected_total",
              "Proposals answered with an error, by reason (the entry may still commit for "
              "timeout and leadership_lost).",
              static_cast<double>(n), {{"reason", reason}});
  };
  rejected("not_leader", refused_not_leader_.load(std::memory_order_relaxed));
  rejected("busy", refused_busy_.load(std::memory_order_relaxed) + st.proposals_busy);
  rejected("shutting_down", refused_stopping_.load(std::memory_order_relaxed));
  rejected("refused", st.proposals_refused);
  rejected("storage_failed", st.proposals_failed);
  rejected("timeout", w.timed_out);
  rejected("leadership_lost", w.released);
  rejected("superseded", st.proposals_superseded);
  b.counter("rlr_entries_committed_total", "Log entries this node saw commit (all kinds).",
            static_cast<double>(st.entries_committed));
  b.counter("rlr_committed_payload_bytes_total", "Payload bytes of the entries this node saw commit.",
            static_cast<double>(st.bytes_committed));
  b.counter("rlr_elections_started_total", "Elections this node started (its term went up).",
            static_cast<double>(ev.elections_started));
  b.counter("rlr_elections_won_total", "Elections this node won.", static_cast<double>(ev.elections_won));
  b.counter("rlr_pre_votes_started_total", "Pre-vote rounds this node started (thesis 9.6).",
            static_cast<double>(ev.pre_votes_started));
  b.counter("rlr_leader_changes_total", "Changes of the leader this node knows of (to none included).",
            static_cast<double>(leader_changes_));
  b.counter("rlr_session_duplicates_total",
            "Client-session retries answered with the original entry instead of appending again.",
            static_cast<double>(st.session_duplicates));
  b.counter("rlr_snapshots_installed_total", "Snapshots from the leader installed by this node.",
            static_cast<double>(st.snapshots_installed));
  b.counter("rlr_storage_errors_total", "Writes the storage refused (the node then stops taking part).",
            static_cast<double>(st.storage_errors));
  b.counter("rlr_invalid_messages_total", "Peer messages the Raft core refused as invalid.",
            static_cast<double>(st.messages_invalid));

  b.gauge("rlr_term", "The current Raft term.", static_cast<double>(ci.term.value()));
  for (Role r : {Role::Follower, Role::PreCandidate, Role::Candidate, Role::Leader, Role::Learner}) {
    b.gauge("rlr_role", "1 for this node's current role, 0 for the others.", r == ci.role ? 1 : 0,
            {{"role", std::string(to_string(r))}});
  }
  b.gauge("rlr_leader_id", "The leader this node knows of; 0 when none.",
          static_cast<double>(ci.leader.value()));
  b.gauge("rlr_commit_index", "The highest log index this node knows to be committed.",
          static_cast<double>(ci.commit.value()));
  b.gauge("rlr_leader_commit_index",
          "On a follower: the highest commit index its leader sent it this term (0 before any).",
          static_cast<double>(raft.leader_commit().value()));
  b.gauge("rlr_last_index", "The last log index, committed or not.", static_cast<double>(ci.last_index.value()));
  b.gauge("rlr_first_index", "The first retained log index.", static_cast<double>(ci.first_index.value()));
  b.gauge("rlr_memory_log_entries", "Log entries held in memory.", static_cast<double>(ci.memory_log_entries));
  b.gauge("rlr_memory_log_bytes", "Payload bytes of the log entries held in memory.",
          static_cast<double>(ci.memory_log_bytes));
  b.gauge("rlr_pending_proposals", "Proposals waiting to commit.", static_cast<double>(w.pending_proposals()));
  b.gauge("rlr_pending_reads", "Read-index requests waiting to be confirmed.", static_cast<double>(w.reads.size()));
  b.gauge("rlr_storage_failed", "1 once a write failed and the node stopped taking part; 0 otherwise.",
          replica_->failed() ? 1 : 0);
  b.gauge("rlr_members", "Members of the current configuration, by kind.",
          static_cast<double>(raft.config().voters.size()), {{"kind", "voter"}});
  b.gauge("rlr_members", "Members of the current configuration, by kind.",
          static_cast<double>(raft.config().learners.size()), {{"kind", "learner"}});
  b.gauge("rlr_divergence_detected",
          "1 when a member's output digest differs from this node's at a common checkpoint.",
          ci.diverged ? 1 : 0);
  b.declare("rlr_follower_match_index", "On the leader: the highest index known replicated on each member.",
            MetricType::Gauge);
  if (ci.role == Role::Leader) {
    for (const MemberInfo& m : ci.members) {
      if (m.id == options_.id) continue;
      const std::vector<MetricLabel> peer{{"peer", id_label(m.id)}, {"voter", m.voter ? "true" : "false"}};
      b.gauge("rlr_follower_match_index",
              "On the leader: the highest index known replicated on each member.",
              static_cast<double>(m.match.value()), peer);
      b.gauge("rlr_follower_lag_entries", "On the leader: its last index minus each member's match index.",
              static_cast<double>(m.lag), peer);
      if (m.last_contact.count() >= 0) {
        b.gauge("rlr_follower_last_contact_seconds",
                "On the leader: how long ago it last heard from each member.",
                static_cast<double>(m.last_contact.count()) / 1000.0, peer);
      }
    }
  }
}

NodeMetrics NodeImpl::metrics() const {
  MetricsBuilder b(options_.cluster_id, options_.id);
  // The core's and the replica's numbers are read on the raft thread, in one turn.
  auto promise = std::make_shared<std::promise<MetricsBuilder>>();
  auto future = promise->get_future();
  auto fill = [this, promise, cluster = options_.cluster_id] {
    MetricsBuilder here(cluster, options_.id);
    raft_metrics_here(here, cluster_info_here());
    promise->set_value(std::move(here));
  };
  bool queued = true;
  if (on_raft_thread()) {
    fill();
  } else {
    queued = post_request(std::move(fill)).is_ok();  // refused: the node is stopping or swamped
  }
  if (queued && future.wait_for(std::chrono::seconds(2)) == std::future_status::ready) b = future.get();

  b.gauge("rlr_build_info", "Always 1; the labels say which librlr this node runs.", 1,
          {{"version", std::string(version())},
           {"storage_format", std::to_string(storage_format_version())},
           {"wire_protocol", std::to_string(wire_protocol_version())}});
  b.gauge("rlr_applied_index", "The highest committed index handed to subscribers and state machines.",
          static_cast<double>(applied_.load()));
  {
    std::lock_guard lock(in_mu_);
    b.counter("rlr_inbox_dropped_messages_total",
              "Peer messages dropped because the raft thread's queue was full (Raft retransmits).",
              static_cast<double>(inbox_dropped_));
  }
  b.histogram("rlr_proposal_commit_duration_seconds",
              "From a proposal reaching the raft thread to its entry committing (leader).",
              histograms_.commit_latency, kNanos);
  b.histogram("rlr_storage_persist_duration_seconds",
              "One durable write of the log: the append and its fsync (group commit batch).",
              histograms_.persist_latency, kNanos);
  b.histogram("rlr_read_index_duration_seconds", "From a read_index() call to its confirmed answer.",
              histograms_.read_latency, kNanos);
  b.histogram("rlr_append_batch_entries", "Entries written to the log in one durable write.",
              histograms_.batch_entries, 1);
  b.histogram("rlr_append_batch_bytes", "Payload bytes written to the log in one durable write.",
              histograms_.batch_bytes, 1);

  for (const transport::PeerTraffic& t : transport_->traffic()) {
    const std::vector<MetricLabel> peer{{"peer", id_label(t.peer)}};
    b.counter("rlr_peer_sent_messages_total", "Frames to each peer accepted for sending.",
              static_cast<double>(t.frames_sent), peer);
    b.counter("rlr_peer_sent_bytes_total", "Bytes of the frames to each peer accepted for sending.",
              static_cast<double>(t.bytes_sent), peer);
    b.counter("rlr_peer_received_messages_total", "Frames received from each peer.",
              static_cast<double>(t.frames_received), peer);
    b.counter("rlr_peer_received_bytes_total", "Bytes received from each peer.",
              static_cast<double>(t.bytes_received), peer);
    b.counter("rlr_peer_dropped_messages_total",
              "Frames to each peer dropped because its send queue was full (Raft retransmits).",
              static_cast<double>(t.frames_dropped), peer);
    b.counter("rlr_snapshots_sent_total", "Snapshot transfers started to each peer.",
              static_cast<double>(t.snapshots_sent), peer);
  }
  b.counter("rlr_peer_refused_frames_total",
            "Connections and frames refused on arrival (handshake, cluster, token, malformed).",
            static_cast<double>(transport_->frames_refused()));

  std::vector<std::shared_ptr<ApplyRunnerImpl>> runners;
  {
    std::lock_guard lock(runners_mu_);
    for (const auto& r : runners_) {
      if (auto p = r.lock()) runners.push_back(std::move(p));
    }
  }
  for (const auto& r : runners) {
    const std::vector<MetricLabel> sm{{"state_machine", r->name()}};
    b.gauge("rlr_state_machine_applied_index", "The last index each attached state machine applied.",
            static_cast<double>(r->applied().value()), sm);
    b.gauge("rlr_state_machine_healthy", "1 while each attached state machine's loop runs; 0 once it failed.",
            r->health().is_ok() ? 1 : 0, sm);
    b.histogram("rlr_apply_duration_seconds",
                "Time to apply one entry, per state machine (each batch records its mean).",
                r->apply_latency(), kNanos, sm);
    b.counter("rlr_egress_outputs_emitted_total", "Outputs handed to each state machine's egress sink.",
              static_cast<double>(r->outputs_emitted()), sm);
    b.counter("rlr_egress_outputs_reemitted_total",
              "Outputs handed to the sink again by a new leader (above the egress watermark).",
              static_cast<double>(r->outputs_reemitted()), sm);
  }

  const std::uint64_t applied = applied_.load();
  std::size_t subscribers = 0;
  {
    std::lock_guard lock(readers_mu_);
    for (const auto& [id, w] : readers_) {
      auto position = w.lock();
      if (!position) continue;
      ++subscribers;
      const std::uint64_t next = position->load(std::memory_order_relaxed);
      b.gauge("rlr_subscriber_lag_entries", "Committed entries each subscription has not read yet.",
              static_cast<double>(applied + 1 > next ? applied + 1 - next : 0),
              {{"subscription", std::to_string(id)}});
    }
  }
  b.gauge("rlr_subscribers", "Open subscriptions to the committed log (local and remote).",
          static_cast<double>(subscribers));

  std::vector<RoleChange> changes;
  {
    std::lock_guard lock(role_changes_mu_);
    changes.assign(role_changes_.begin(), role_changes_.end());
  }
  return std::move(b).finish(std::move(changes));
}

}  // namespace rlr::node
