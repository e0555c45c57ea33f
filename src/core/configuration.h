// Membership configuration and its binary codec (core-private).
//
// A configuration is either simple (one voter set) or joint (Raft §6 / thesis §4.3:
// `voters` is C_new and `voters_outgoing` is C_old while the change is in flight).
// Learners receive the log, never campaign and never count toward commit or elections.
// (A learner still answers a vote request: the candidate may know a newer configuration
// in which it is a voter; the candidate counts only the voters of its own configuration.)
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::core {

/// Where a member listens ("host:port"). Replicated with the configuration so that any
/// future leader can reach every member; the core itself never reads it.
struct MemberEndpoint {
  NodeId id;
  std::string address;
  friend auto operator<=>(const MemberEndpoint&, const MemberEndpoint&) = default;
};

struct Configuration {
  std::vector<NodeId> voters;           ///< C_new (or the only set when not joint); sorted
  std::vector<NodeId> voters_outgoing;  ///< C_old while joint; empty otherwise; sorted
  std::vector<NodeId> learners;         ///< sorted; disjoint from both voter sets
  std::vector<MemberEndpoint> addresses;  ///< sorted by id; only members; may be partial

  [[nodiscard]] bool is_joint() const noexcept { return !voters_outgoing.empty(); }
  [[nodiscard]] bool is_voter(NodeId id) const noexcept;
  [[nodiscard]] bool is_learner(NodeId id) const noexcept;
  [[nodiscard]] bool is_member(NodeId id) const noexcept { return is_voter(id) || is_learner(id); }
  /// Every voter of either set and every learner, sorted, without duplicates.
  [[nodiscard]] std::vector<NodeId> members() const;
  /// Sorts every set and removes duplicates; drops addresses of non-members.
  void normalize();
  /// The address of `id`, empty when unknown.
  [[nodiscard]] std::string address_of(NodeId id) const;
  /// Sets (or with an empty address, clears) the address of `id`.
  void set_address(NodeId id, std::string address);
  /// Checks the sets are disjoint as required and the voter set is non-empty.
  [[nodiscard]] Status validate() const;
  [[nodiscard]] std::string to_string() const;
  friend bool operator==(const Configuration&, const Configuration&) = default;
};

/// Encodes a configuration as an entry payload.
[[nodiscard]] Bytes encode_configuration(const Configuration& c);
/// Decodes an entry payload; a Corruption status on malformed input (never aborts).
[[nodiscard]] Result<Configuration> decode_configuration(std::span<const std::uint8_t> data);

}  // namespace rlr::core
