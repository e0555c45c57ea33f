/// \file
/// librlr — the values the node API and the client protocol share: members, cluster
/// status, client sessions and proposal outcomes. Plain data; no behaviour.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "rlr/export.h"
#include "rlr/address.h"
#include "rlr/state_machine.h"
#include "rlr/types.h"

namespace rlr {

/// A member and where it listens.
struct RLR_API MemberAddress {
  /// The member (positive).
  NodeId id;
  /// Where peers and clients reach it.
  Address address;
  /// Same id and address.
  friend bool operator==(const MemberAddress&, const MemberAddress&) = default;
};

/// What a node knows about one member of the cluster.
struct RLR_API MemberInfo {
  /// The member this is about.
  NodeId id;
  Address address;            ///< empty when unknown
  bool voter = false;         ///< false: learner
  /// True for the member this node believes leads.
  bool is_leader = false;
  LogIndex match;             ///< leader's view of the member's replicated index
  std::uint64_t lag = 0;      ///< leader's last index minus match
  /// How long ago the leader last heard from it; negative when unknown.
  std::chrono::milliseconds last_contact{-1};
  /// The member's latest output-digest checkpoint as last reported to this node.
  DigestCheckpoint digest;
  /// The first checkpoint index at which the member's digest differs from this node's
  /// (0: no divergence seen).
  LogIndex diverged_at;
};

/// A snapshot of the node's view of the cluster.
struct RLR_API ClusterInfo {
  /// The answering node's NodeOptions::cluster_id.
  std::string cluster_id;
  /// The answering node.
  NodeId id;
  /// Its current term.
  Term term;
  /// Its role, as it sees itself. A node whose storage failed (storage_error) says
  /// Follower: it takes no part any more, whatever role it had.
  Role role = Role::Follower;
  /// The leader it knows of; kNoNode when none (and once its storage failed).
  NodeId leader;
  /// The highest index it knows to be committed.
  LogIndex commit;
  /// The highest committed index its runtime has taken in: what subscribers and state
  /// machines can read up to (a state machine may trail it, see ApplyRunner::applied()).
  LogIndex applied;
  LogIndex first_index;       ///< first retained log index
  /// Its last log index, committed or not.
  LogIndex last_index;
  /// Log entries this node holds in memory (at most about
  /// NodeOptions::memory_log_entries; the rest is read from storage).
  std::size_t memory_log_entries = 0;
  /// Payload bytes of those entries (at most about NodeOptions::memory_log_bytes).
  std::size_t memory_log_bytes = 0;
  std::vector<MemberInfo> members;  ///< per-member details are the leader's view
  /// This node's latest output-digest checkpoint (0 when no state machine is attached).
  DigestCheckpoint digest;
  /// True when some member's digest differs from ours at a common checkpoint.
  bool diverged = false;
  /// Empty while its storage works. Otherwise why a write failed ("IoError: ... disk
  /// full ..."): memory is ahead of disk, so the node stopped taking part (no votes, no
  /// acknowledgements, no proposals; a leader handed leadership to its most caught-up
  /// voter first) until it is restarted, which recovers what is durable.
  std::string storage_error;
};

/// A client session: retries of the same (client_id, sequence) are applied once, and a
/// retry of a committed proposal returns the original index.
struct RLR_API ClientSession {
  std::uint64_t client_id = 0;  ///< 0: no session
  std::uint64_t sequence = 0;   ///< increases with each new command of the client
};

/// Outcome of a committed proposal.
struct RLR_API ProposeResult {
  /// Where the command sits in the log: its place in the cluster's total order.
  LogIndex index;
  /// The term of the leader that appended it; with `index`, it names the entry.
  Term term;
};

}  // namespace rlr
