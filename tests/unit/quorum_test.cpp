// Majority and joint-majority arithmetic checked against a brute-force model that
// enumerates every subset of the voters: a quorum is a subset with strictly more than
// half of the voters; a joint configuration needs a quorum of both voter sets.
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "core/quorum.h"
#include "test_cluster.h"

namespace rlr::test {
namespace {

using core::VoteResult;

bool is_quorum_subset(std::size_t subset_size, std::size_t n) { return 2 * subset_size > n; }

/// Largest index N such that some quorum Q has match(v) >= N for every v in Q.
std::uint64_t model_majority_index(const std::vector<NodeId>& voters,
                                   const std::map<NodeId, LogIndex>& match) {
  const std::size_t n = voters.size();
  if (n == 0) return std::numeric_limits<std::uint64_t>::max();
  std::uint64_t best = 0;
  for (std::uint32_t mask = 1; mask < (1U << n); ++mask) {
    std::size_t size = 0;
    std::uint64_t lowest = std::numeric_limits<std::uint64_t>::max();
    for (std::size_t k = 0; k < n; ++k) {
      if ((mask & (1U << k)) == 0) continue;
      ++size;
      lowest = std::min(lowest, match.at(voters[k]).value());
    }
    if (is_quorum_subset(size, n)) best = std::max(best, lowest);
  }
  return best;
}

/// Won if the granted voters contain a quorum; Lost if even granted + unanswered do not.
VoteResult model_vote(const std::vector<NodeId>& voters,
                      const std::map<NodeId, std::optional<bool>>& votes) {
  const std::size_t n = voters.size();
  if (n == 0) return VoteResult::Won;
  bool can_win = false;
  bool won = false;
  for (std::uint32_t mask = 1; mask < (1U << n); ++mask) {
    std::size_t size = 0;
    bool all_granted = true;
    bool none_rejected = true;
    for (std::size_t k = 0; k < n; ++k) {
      if ((mask & (1U << k)) == 0) continue;
      ++size;
      const auto& v = votes.at(voters[k]);
      if (!(v && *v)) all_granted = false;
      if (v && !*v) none_rejected = false;
    }
    if (!is_quorum_subset(size, n)) continue;
    if (all_granted) won = true;
    if (none_rejected) can_win = true;
  }
  if (won) return VoteResult::Won;
  return can_win ? VoteResult::Pending : VoteResult::Lost;
}

VoteResult model_joint_vote(VoteResult a, VoteResult b) {
  if (a == VoteResult::Lost || b == VoteResult::Lost) return VoteResult::Lost;
  if (a == VoteResult::Won && b == VoteResult::Won) return VoteResult::Won;
  return VoteResult::Pending;
}

bool model_has_quorum(const std::vector<NodeId>& voters, const std::map<NodeId, bool>& yes) {
  const std::size_t n = voters.size();
  if (n == 0) return true;
  for (std::uint32_t mask = 1; mask < (1U << n); ++mask) {
    std::size_t size = 0;
    bool all_yes = true;
    for (std::size_t k = 0; k < n; ++k) {
      if ((mask & (1U << k)) == 0) continue;
      ++size;
      if (!yes.at(voters[k])) all_yes = false;
    }
    if (all_yes && is_quorum_subset(size, n)) return true;
  }
  return false;
}

const char* name(VoteResult r) {
  switch (r) {
    case VoteResult::Pending: return "Pending";
    case VoteResult::Won: return "Won";
    case VoteResult::Lost: return "Lost";
  }
  return "?";
}

/// A random configuration over nodes 1..9: a non-empty incoming voter set, optionally an
/// outgoing set (which may overlap the incoming one, as in a real C_old,new), and learners
/// disjoint from both.
Configuration gen_config(bool joint) {
  Configuration c;
  for (std::uint64_t id = 1; id <= 9; ++id) {
    const int role = *rc::gen::inRange(0, 6);
    // 0,1: incoming voter; 2: outgoing only; 3: both; 4: learner; 5: absent.
    if (role == 0 || role == 1 || role == 3) c.voters.push_back(N(id));
    if (joint && (role == 2 || role == 3)) c.voters_outgoing.push_back(N(id));
    if (role == 4) c.learners.push_back(N(id));
  }
  if (c.voters.empty()) c.voters.push_back(N(10));
  if (joint && c.voters_outgoing.empty()) c.voters_outgoing.push_back(N(11));
  c.normalize();
  return c;
}

std::vector<NodeId> all_ids() {
  std::vector<NodeId> out;
  for (std::uint64_t id = 1; id <= 11; ++id) out.push_back(N(id));
  return out;
}

}  // namespace

TEST_CASE("quorum: majority_committed equals the best index held by some quorum",
          "[quorum][property]") {
  rc::prop("simple majority against subset enumeration", [] {
    const int n = *rc::gen::inRange(1, 8);
    std::vector<NodeId> voters;
    std::map<NodeId, LogIndex> match;
    for (int k = 0; k < n; ++k) {
      voters.push_back(N(static_cast<std::uint64_t>(k + 1)));
      match[voters.back()] = I(*rc::gen::inRange<std::uint64_t>(0, 20));
    }
    const LogIndex got =
        core::majority_committed(voters, [&](NodeId id) { return match.at(id); });
    RC_ASSERT(got.value() == model_majority_index(voters, match));
  });
}

TEST_CASE("quorum: majority_committed of an empty voter set never holds anything back",
          "[quorum]") {
  const std::vector<NodeId> none;
  const LogIndex got = core::majority_committed(none, [](NodeId) { return I(5); });
  INFO("an empty voter set must yield a maximal index (header contract of quorum.h)");
  CHECK(got.value() == std::numeric_limits<std::uint64_t>::max());
}

TEST_CASE("quorum: committed_index needs a majority of each voter set and ignores learners",
          "[quorum][property]") {
  rc::prop("committed_index against subset enumeration (simple and joint)", [] {
    const bool joint = *rc::gen::arbitrary<bool>();
    const Configuration c = gen_config(joint);
    std::map<NodeId, LogIndex> match;
    for (NodeId id : all_ids()) match[id] = I(*rc::gen::inRange<std::uint64_t>(0, 20));
    // Learners lag or lead arbitrarily; they must never matter.
    const LogIndex got = core::committed_index(c, [&](NodeId id) { return match.at(id); });
    std::uint64_t expected = model_majority_index(c.voters, match);
    if (c.is_joint()) {
      expected = std::min(expected, model_majority_index(c.voters_outgoing, match));
    }
    RC_LOG() << c.to_string();
    RC_ASSERT(got.value() == expected);
  });
}

TEST_CASE("quorum: a learner's acknowledgement never changes the commit index", "[quorum]") {
  const Configuration c = config_of({1, 2, 3}, {4, 5});
  std::map<NodeId, LogIndex> match{{N(1), I(9)}, {N(2), I(3)}, {N(3), I(1)},
                                   {N(4), I(9)}, {N(5), I(9)}};
  INFO("learners 4 and 5 at index 9 must not lift the commit index above voter majority 3");
  CHECK(core::committed_index(c, [&](NodeId id) { return match.at(id); }) == I(3));
}

TEST_CASE("quorum: joint commit index is the minimum of both majorities", "[quorum]") {
  // C_new = {4,5,6} has a majority at 7; C_old = {1,2,3} only at 2.
  const Configuration c = config_of({4, 5, 6}, {}, {1, 2, 3});
  std::map<NodeId, LogIndex> match{{N(1), I(2)}, {N(2), I(2)}, {N(3), I(0)},
                                   {N(4), I(7)}, {N(5), I(7)}, {N(6), I(0)}};
  INFO("thesis §4.3: an entry commits in C_old,new only with a majority of both sets");
  CHECK(core::committed_index(c, [&](NodeId id) { return match.at(id); }) == I(2));
}

TEST_CASE("quorum: vote_result against subset enumeration", "[quorum][property]") {
  rc::prop("vote_result (simple and joint)", [] {
    const bool joint = *rc::gen::arbitrary<bool>();
    const Configuration c = gen_config(joint);
    std::map<NodeId, std::optional<bool>> votes;
    for (NodeId id : all_ids()) {
      const int v = *rc::gen::inRange(0, 3);
      votes[id] = v == 0 ? std::optional<bool>() : std::optional<bool>(v == 1);
    }
    auto fn = [&](NodeId id) { return votes.at(id); };
    const VoteResult simple = core::vote_result(std::span<const NodeId>(c.voters), fn);
    RC_ASSERT(std::string(name(simple)) == name(model_vote(c.voters, votes)));
    VoteResult expected = model_vote(c.voters, votes);
    if (c.is_joint()) expected = model_joint_vote(expected, model_vote(c.voters_outgoing, votes));
    RC_LOG() << c.to_string();
    RC_ASSERT(std::string(name(core::vote_result(c, fn))) == name(expected));
  });
}

TEST_CASE("quorum: has_quorum against subset enumeration", "[quorum][property]") {
  rc::prop("has_quorum (simple and joint)", [] {
    const bool joint = *rc::gen::arbitrary<bool>();
    const Configuration c = gen_config(joint);
    std::map<NodeId, bool> yes;
    for (NodeId id : all_ids()) yes[id] = *rc::gen::arbitrary<bool>();
    bool expected = model_has_quorum(c.voters, yes);
    if (c.is_joint()) expected = expected && model_has_quorum(c.voters_outgoing, yes);
    RC_LOG() << c.to_string();
    RC_ASSERT(core::has_quorum(c, [&](NodeId id) { return yes.at(id); }) == expected);
  });
}

TEST_CASE("quorum: a tie is not a majority", "[quorum]") {
  const std::vector<NodeId> four{N(1), N(2), N(3), N(4)};
  std::map<NodeId, std::optional<bool>> votes{
      {N(1), true}, {N(2), true}, {N(3), false}, {N(4), false}};
  INFO("§5.2: 2 of 4 votes is not a majority, and with no vote outstanding it is lost");
  CHECK(core::vote_result(four, [&](NodeId id) { return votes.at(id); }) == VoteResult::Lost);
  votes[N(4)] = std::nullopt;
  CHECK(core::vote_result(four, [&](NodeId id) { return votes.at(id); }) ==
        VoteResult::Pending);
  const Configuration c = config_of({1, 2, 3, 4});
  CHECK_FALSE(core::has_quorum(c, [](NodeId id) { return id.value() <= 2; }));
  CHECK(core::has_quorum(c, [](NodeId id) { return id.value() <= 3; }));
}

}  // namespace rlr::test
