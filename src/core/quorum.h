// Majority and joint-majority arithmetic (core-private), kept apart from the protocol so
// it can be tested against a brute-force model.
#pragma once

#include <functional>
#include <span>
#include <vector>

#include "core/configuration.h"
#include "rlr/types.h"

namespace rlr::core {

/// The largest index that a majority of `voters` has reached; `match(id)` gives each
/// voter's acknowledged index. An empty voter set yields a maximal index, so that in a
/// joint configuration an empty outgoing set never holds back the incoming one.
[[nodiscard]] LogIndex majority_committed(std::span<const NodeId> voters,
                                          const std::function<LogIndex(NodeId)>& match);

/// Commit index under `config`: the majority index of voters, and while joint the
/// minimum of the majority indexes of both voter sets (thesis §4.3).
[[nodiscard]] LogIndex committed_index(const Configuration& config,
                                       const std::function<LogIndex(NodeId)>& match);

enum class VoteResult { Pending, Won, Lost };

/// Outcome of an election given each voter's answer (true: granted, false: rejected,
/// absent: no answer yet). Joint configurations need both majorities.
[[nodiscard]] VoteResult vote_result(std::span<const NodeId> voters,
                                     const std::function<std::optional<bool>(NodeId)>& vote);
[[nodiscard]] VoteResult vote_result(const Configuration& config,
                                     const std::function<std::optional<bool>(NodeId)>& vote);

/// True when the nodes for which `yes(id)` holds form a quorum of `config`.
[[nodiscard]] bool has_quorum(const Configuration& config, const std::function<bool(NodeId)>& yes);

}  // namespace rlr::core
