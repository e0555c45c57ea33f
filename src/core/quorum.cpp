#include "core/quorum.h"

#include <algorithm>
#include <limits>

namespace rlr::core {

LogIndex majority_committed(std::span<const NodeId> voters,
                            const std::function<LogIndex(NodeId)>& match) {
  if (voters.empty()) return LogIndex{std::numeric_limits<std::uint64_t>::max()};
  // Up to a few dozen voters: a small sort is cheaper than anything clever.
  std::vector<LogIndex> m;
  m.reserve(voters.size());
  for (NodeId id : voters) m.push_back(match(id));
  std::sort(m.begin(), m.end(), [](LogIndex a, LogIndex b) { return a > b; });
  // The (n/2+1)-th largest value is held by a majority.
  return m[voters.size() / 2];
}

LogIndex committed_index(const Configuration& config,
                         const std::function<LogIndex(NodeId)>& match) {
  const LogIndex incoming = majority_committed(config.voters, match);
  if (!config.is_joint()) return incoming;
  return std::min(incoming, majority_committed(config.voters_outgoing, match));
}

VoteResult vote_result(std::span<const NodeId> voters,
                       const std::function<std::optional<bool>(NodeId)>& vote) {
  if (voters.empty()) return VoteResult::Won;
  std::size_t yes = 0;
  std::size_t missing = 0;
  for (NodeId id : voters) {
    const auto v = vote(id);
    if (!v) {
      ++missing;
    } else if (*v) {
      ++yes;
    }
  }
  const std::size_t q = voters.size() / 2 + 1;
  if (yes >= q) return VoteResult::Won;
  if (yes + missing >= q) return VoteResult::Pending;
  return VoteResult::Lost;
}

VoteResult vote_result(const Configuration& config,
                       const std::function<std::optional<bool>(NodeId)>& vote) {
  const VoteResult in = vote_result(config.voters, vote);
  const VoteResult out = vote_result(config.voters_outgoing, vote);
  if (in == VoteResult::Lost || out == VoteResult::Lost) return VoteResult::Lost;
  if (in == VoteResult::Won && out == VoteResult::Won) return VoteResult::Won;
  return VoteResult::Pending;
}

bool has_quorum(const Configuration& config, const std::function<bool(NodeId)>& yes) {
  return vote_result(config, [&](NodeId id) -> std::optional<bool> { return yes(id); }) ==
         VoteResult::Won;
}

}  // namespace rlr::core
