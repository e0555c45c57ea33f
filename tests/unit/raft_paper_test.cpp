// The Raft paper (Ongaro & Ousterhout, 2014), rule by rule: every rule of Figure 2 and
// the safety arguments of §5.4, each in a test named after the rule and its section.
// These tests run the core with pre-vote and check-quorum off, as the paper describes it.
#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "test_cluster.h"

namespace rlr::test {
namespace {

const Configuration kThree = config_of({1, 2, 3});

/// A follower of {1,2,3} (paper options) restored with the given state, Readys drained.
Raft paper_follower(std::uint64_t id, HardState hs, std::vector<Entry> log = {},
                    const Configuration& c = kThree) {
  Raft r = make_node(paper_options(id), c, hs, std::move(log));
  (void)drain(r);
  return r;
}

/// Ticks `r` until it becomes a candidate and drains what it sent.
Drained make_candidate(Raft& r) {
  const std::uint32_t ticks = ticks_until_campaign(r);
  INFO("node " << r.id().value() << " never started an election: " << r.describe());
  REQUIRE(ticks > 0);
  REQUIRE(r.role() == Role::Candidate);
  return drain(r);
}

std::vector<Message> responses_to(const Drained& d, std::uint64_t to, MessageType type) {
  return select(d.all(), type, to);
}

bool granted(const std::vector<Message>& vote_responses) {
  for (const auto& m : vote_responses) {
    if (!m.reject) return true;
  }
  return false;
}

}  // namespace

// ---- §5.1 terms -----------------------------------------------------------------------

TEST_CASE("5.1 reply false if term < currentTerm", "[paper][5.1]") {
  Raft r = paper_follower(1, hard_state(3), log_with_terms({1, 2}));

  SECTION("AppendEntries from a stale leader") {
    step_ok(r, append_msg(2, 1, 2, 2, 2, {entry(3, 2, "stale")}, 3));
    const Drained d = drain(r);
    INFO("§5.1: AppendEntries with term 2 < currentTerm 3 must be refused\n" << describe_all(d.all()));
    CHECK(r.term() == T(3));
    CHECK(r.log().last_index() == I(2));
    CHECK(r.commit_index() == I(0));
    CHECK(r.leader() == kNoNode);
    CHECK(d.entries.empty());
    for (const auto& m : select(d.all(), MessageType::AppendResponse, 2)) {
      INFO("an answer to a stale leader must carry the newer term (so it steps down)");
      CHECK(m.term == T(3));
    }
  }
  SECTION("Heartbeat from a stale leader") {
    step_ok(r, heartbeat_msg(2, 1, 2, 2));
    const Drained d = drain(r);
    INFO("§5.1: a heartbeat of term 2 < 3 must neither install a leader nor move commit");
    CHECK(r.leader() == kNoNode);
    CHECK(r.commit_index() == I(0));
    CHECK(r.term() == T(3));
    CHECK(d.committed.empty());
  }
  SECTION("RequestVote from a stale candidate") {
    step_ok(r, vote_msg(2, 1, 2, 9, 2));
    const Drained d = drain(r);
    INFO("§5.1: RequestVote with term 2 < currentTerm 3 must not be granted");
    CHECK(r.voted_for() == kNoNode);
    CHECK(r.term() == T(3));
    CHECK_FALSE(granted(responses_to(d, 2, MessageType::VoteResponse)));
  }
}

TEST_CASE("5.1 a node that sees a higher term becomes follower", "[paper][5.1]") {
  SECTION("a follower adopts the term and forgets its vote") {
    Raft r = paper_follower(1, hard_state(2, 3), log_with_terms({1}));
    step_ok(r, heartbeat_msg(2, 1, 5, 0));
    const Drained d = drain(r);
    INFO("Figure 2 (all servers): term 5 > 2, so currentTerm := 5 and votedFor resets");
    CHECK(r.role() == Role::Follower);
    CHECK(r.term() == T(5));
    CHECK(r.voted_for() == kNoNode);
    CHECK(r.leader() == N(2));
    REQUIRE_FALSE(d.hard_states.empty());
    CHECK(d.hard_states.back().term == T(5));
  }
  SECTION("a candidate that sees a higher term in a vote response steps down") {
    Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
    (void)make_candidate(r);
    REQUIRE(r.term() == T(2));
    step_ok(r, vote_resp(2, 1, 7, true));
    (void)drain(r);
    INFO("Figure 2 (all servers): a response with term 7 > 2 converts a candidate to follower");
    CHECK(r.role() == Role::Follower);
    CHECK(r.term() == T(7));
  }
  SECTION("a leader that sees a higher term in a response steps down") {
    Cluster c({1, 2, 3}, {}, true);
    c.elect(1);
    Raft& leader = c.node(1);
    const Term t = leader.term();
    // Node 2 has moved on to term t+2 and refuses the leader's AppendEntries.
    Message m = msg(MessageType::AppendResponse, 2, 1, t.value() + 2);
    m.reject = true;
    m.log_index = leader.log().last_index();
    step_ok(leader, m);
    c.process(1);
    INFO("Figure 2 (all servers): any RPC with a higher term converts a leader to follower");
    CHECK(leader.role() == Role::Follower);
    CHECK(leader.term() == T(t.value() + 2));
    CHECK(leader.voted_for() == kNoNode);
    CHECK(c.storage(1).hard_state.term == T(t.value() + 2));
  }
}

// ---- §5.2 leader election -------------------------------------------------------------

TEST_CASE("5.2 follower times out and starts an election", "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  const std::uint32_t ticks = ticks_until_campaign(r);
  INFO("Figure 2 (followers): without a leader, the election timeout must fire; ticks=" << ticks);
  CHECK(ticks >= kElectionTicks);
  CHECK(ticks < 2 * kElectionTicks);
  const Drained d = drain(r);
  INFO("Figure 2 (candidates): increment currentTerm, vote for self, send RequestVote to all\n"
       << describe_all(d.all()));
  CHECK(r.role() == Role::Candidate);
  CHECK(r.term() == T(2));
  CHECK(r.voted_for() == N(1));
  REQUIRE_FALSE(d.hard_states.empty());
  CHECK(d.hard_states.back() == hard_state(2, 1, 0));
  for (std::uint64_t peer : {2, 3}) {
    const auto votes = select(d.all(), MessageType::Vote, peer);
    REQUIRE(votes.size() == 1);
    CHECK(votes[0].term == T(2));
    CHECK(votes[0].log_index == I(1));
    CHECK(votes[0].log_term == T(1));
  }
}

TEST_CASE("5.2 receiving AppendEntries or granting a vote resets the election timer",
          "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  SECTION("heartbeats from the current leader") {
    for (int round = 0; round < 10; ++round) {
      for (std::uint32_t k = 0; k + 1 < kElectionTicks; ++k) r.tick();
      step_ok(r, heartbeat_msg(2, 1, 1, 0));
      (void)drain(r);
      INFO("round " << round << ": a follower that hears from its leader must not campaign");
      REQUIRE(r.role() == Role::Follower);
    }
    CHECK(r.term() == T(1));
  }
  SECTION("granting a vote (again) to the same candidate") {
    for (int round = 0; round < 10; ++round) {
      for (std::uint32_t k = 0; k + 1 < kElectionTicks; ++k) r.tick();
      step_ok(r, vote_msg(3, 1, 2, 1, 1));
      const Drained d = drain(r);
      INFO("round " << round << ": granting a vote must reset the election timer");
      REQUIRE(granted(responses_to(d, 3, MessageType::VoteResponse)));
      REQUIRE(r.role() == Role::Follower);
    }
    CHECK(r.term() == T(2));
  }
}

TEST_CASE("5.2 candidate wins with a majority", "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}), config_of({1, 2, 3, 4, 5}));
  const Drained asked = make_candidate(r);
  CHECK(select(asked.all(), MessageType::Vote).size() == 4);
  const std::uint64_t t = r.term().value();

  step_ok(r, vote_resp(2, 1, t, false));
  (void)drain(r);
  INFO("§5.2: 2 of 5 votes (self + node 2) is not a majority");
  CHECK(r.role() == Role::Candidate);

  step_ok(r, vote_resp(2, 1, t, false));
  (void)drain(r);
  INFO("§5.2: a duplicated grant from node 2 must be counted once");
  CHECK(r.role() == Role::Candidate);

  step_ok(r, vote_resp(4, 1, t, true));
  (void)drain(r);
  CHECK(r.role() == Role::Candidate);

  step_ok(r, vote_resp(3, 1, t, false));
  (void)drain(r);
  INFO("§5.2: self + nodes 2 and 3 are 3 of 5: the candidate becomes leader");
  CHECK(r.role() == Role::Leader);
  CHECK(r.leader() == N(1));
  CHECK(r.term() == T(t));
}

TEST_CASE("5.2 a candidate rejected by a majority does not become leader", "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}), config_of({1, 2, 3, 4, 5}));
  (void)make_candidate(r);
  const std::uint64_t t = r.term().value();
  step_ok(r, vote_resp(2, 1, t, false));
  for (std::uint64_t peer : {3, 4, 5}) step_ok(r, vote_resp(peer, 1, t, true));
  (void)drain(r);
  INFO("§5.2: 2 grants and 3 rejections of 5 can never be a majority");
  CHECK(r.role() != Role::Leader);
}

TEST_CASE("5.2 a candidate that hears from a leader of its term becomes follower",
          "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  (void)make_candidate(r);
  const std::uint64_t t = r.term().value();
  SECTION("AppendEntries") {
    step_ok(r, append_msg(2, 1, t, 1, 1, {}, 1));
  }
  SECTION("Heartbeat") {
    step_ok(r, heartbeat_msg(2, 1, t, 0));
  }
  (void)drain(r);
  INFO("Figure 2 (candidates): AppendEntries from the new leader converts to follower");
  CHECK(r.role() == Role::Follower);
  CHECK(r.leader() == N(2));
  CHECK(r.term() == T(t));
}

TEST_CASE("5.2 a candidate whose election times out starts a new election", "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  (void)make_candidate(r);
  REQUIRE(r.term() == T(2));
  Drained d;
  for (std::uint32_t k = 0; k < 2 * kElectionTicks && r.term() == T(2); ++k) {
    r.tick();
    d = drain(r);  // keep what the tick that ended the election sent
  }
  INFO("Figure 2 (candidates): if the election timeout elapses, start a new election");
  CHECK(r.role() == Role::Candidate);
  CHECK(r.term() == T(3));
  CHECK(r.voted_for() == N(1));
  const auto votes = select(d.all(), MessageType::Vote);
  CHECK(votes.size() == 2);
  for (const auto& m : votes) CHECK(m.term == T(3));
}

TEST_CASE("5.2 a node grants at most one vote per term", "[paper][5.2]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  step_ok(r, vote_msg(2, 1, 2, 1, 1));
  Drained d = drain(r);
  INFO("Figure 2 (RequestVote): votedFor is null, the log is up to date: grant");
  REQUIRE(granted(responses_to(d, 2, MessageType::VoteResponse)));
  CHECK(r.voted_for() == N(2));
  REQUIRE_FALSE(d.hard_states.empty());
  CHECK(d.hard_states.back().vote == N(2));

  step_ok(r, vote_msg(3, 1, 2, 5, 1));
  d = drain(r);
  {
    INFO("§5.2: node 1 already voted for 2 in term 2; node 3 must be refused even with a "
         "longer log");
    CHECK_FALSE(granted(responses_to(d, 3, MessageType::VoteResponse)));
    CHECK(r.voted_for() == N(2));
  }

  step_ok(r, vote_msg(2, 1, 2, 1, 1));
  d = drain(r);
  INFO("Figure 2: votedFor == candidateId, so a retransmitted request is granted again");
  CHECK(granted(responses_to(d, 2, MessageType::VoteResponse)));
}

TEST_CASE("5.2 randomized election timeouts", "[paper][5.2]") {
  std::set<std::uint32_t> seen;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    RaftOptions o = paper_options(1);
    o.random_seed = seed;
    Raft r = make_node(o, kThree, hard_state(1), log_with_terms({1}));
    (void)drain(r);
    const std::uint32_t ticks = ticks_until_campaign(r);
    INFO("seed " << seed << ": each timeout must be drawn from [e, 2e) = [" << kElectionTicks
                 << ", " << 2 * kElectionTicks << "), got " << ticks);
    CHECK(ticks >= kElectionTicks);
    CHECK(ticks < 2 * kElectionTicks);
    seen.insert(ticks);
  }
  {
    INFO("§5.2: different seeds must spread the timeouts (split votes are rare)");
    CHECK(seen.size() >= 4);
  }
  // One node draws a fresh timeout for every election it starts.
  Raft r = make_node(paper_options(1), kThree, hard_state(1), log_with_terms({1}));
  (void)drain(r);
  REQUIRE(ticks_until_campaign(r) > 0);
  std::set<std::uint32_t> rounds;
  for (int round = 0; round < 20; ++round) {
    const Term before = r.term();
    std::uint32_t ticks = 0;
    while (r.term() == before && ticks < 4 * kElectionTicks) {
      r.tick();
      ++ticks;
    }
    INFO("a candidate's timeout must also lie in [e, 2e), got " << ticks);
    CHECK(ticks >= kElectionTicks);
    CHECK(ticks < 2 * kElectionTicks);
    rounds.insert(ticks);
    (void)drain(r);
  }
  INFO("§5.2: each new election must draw a new random timeout");
  CHECK(rounds.size() >= 2);
}

// ---- §5.3 log replication: AppendEntries receiver ----------------------------------------

TEST_CASE("5.3 reply false if log doesn't contain an entry at prevLogIndex whose term matches",
          "[paper][5.3]") {
  Raft r = paper_follower(1, hard_state(2), log_with_terms({1, 2}));
  std::uint64_t prev_index = 0;
  std::uint64_t prev_term = 0;
  SECTION("prevLogIndex beyond the end of the log") {
    prev_index = 3;
    prev_term = 2;
  }
  SECTION("an entry at prevLogIndex with another term") {
    prev_index = 2;
    prev_term = 1;
  }
  step_ok(r, append_msg(2, 1, 2, prev_index, prev_term, {entry(prev_index + 1, 2, "x")}, 0));
  const Drained d = drain(r);
  const auto resp = responses_to(d, 2, MessageType::AppendResponse);
  INFO("Figure 2 (AppendEntries 2): the follower lacks (" << prev_index << ", term " << prev_term
                                                          << ") so it must reply false\n"
                                                          << describe_all(d.all()));
  REQUIRE(resp.size() == 1);
  CHECK(resp[0].reject);
  CHECK(resp[0].term == T(2));
  CHECK(resp[0].log_index == I(prev_index));
  CHECK(r.log().last_index() == I(2));
  CHECK(r.log().term_at(I(2)) == std::optional<Term>(T(2)));
  CHECK(d.entries.empty());
  INFO("the conflict hint never points past the follower's log");
  CHECK(resp[0].hint_index <= I(2));
}

TEST_CASE("5.3 an AppendEntries whose previous entry matches is accepted", "[paper][5.3]") {
  Raft r = paper_follower(1, hard_state(2), log_with_terms({1, 2}));
  step_ok(r, append_msg(2, 1, 2, 2, 2, {entry(3, 2, "x")}, 0));
  const Drained d = drain(r);
  const auto resp = responses_to(d, 2, MessageType::AppendResponse);
  INFO("Figure 2 (AppendEntries): (2, term 2) matches, so the entry is appended\n"
       << describe_all(d.all()));
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].log_index == I(3));
  CHECK(r.log().last_index() == I(3));
  CHECK(r.leader() == N(2));
}

TEST_CASE("5.3 follower deletes a conflicting suffix", "[paper][5.3]") {
  Raft r = paper_follower(1, hard_state(3), log_with_terms({1, 1, 2, 2, 2}));
  Storage s = founding_storage(kThree, hard_state(3), log_with_terms({1, 1, 2, 2, 2}));
  step_ok(r, append_msg(2, 1, 3, 2, 1, {entry(3, 3, "a"), entry(4, 3, "b")}, 0));
  const Drained d = drain(r, &s);
  INFO("Figure 2 (AppendEntries 3): entry 3 of term 2 conflicts with term 3, so entries 3..5 "
       "must be deleted\n"
       << describe_all(d.all()));
  CHECK(r.log().last_index() == I(4));
  CHECK(r.log().term_at(I(3)) == std::optional<Term>(T(3)));
  CHECK(r.log().term_at(I(4)) == std::optional<Term>(T(3)));
  CHECK_FALSE(r.log().term_at(I(5)).has_value());
  CHECK(r.log().at(I(2)).payload == Bytes::copy_of("e2t1"));
  REQUIRE_FALSE(d.entries.empty());
  CHECK(d.entries.front().index == I(3));
  INFO("the runtime must be told to truncate the stored suffix too");
  CHECK(s.last_index() == I(4));
  const auto resp = responses_to(d, 2, MessageType::AppendResponse);
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  CHECK(resp[0].log_index == I(4));
}

TEST_CASE("5.3 append any new entries not already in the log", "[paper][5.3]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1, 1, 1}));
  step_ok(r, append_msg(2, 1, 1, 1, 1, log_with_terms({1, 1, 1, 1}, 2), 0));
  Drained d = drain(r);
  {
    INFO("Figure 2 (AppendEntries 4): entries 4 and 5 are new and appended, 2 and 3 kept");
    CHECK(r.log().last_index() == I(5));
    for (const auto& e : d.entries) CHECK(e.index >= I(4));
  }
  // A delayed, shorter AppendEntries of the same term arrives after the longer one.
  step_ok(r, append_msg(2, 1, 1, 1, 1, log_with_terms({1}, 2), 0));
  d = drain(r);
  INFO("§5.3: entries already present must not be truncated by an older AppendEntries\n"
       << describe_all(d.all()));
  CHECK(r.log().last_index() == I(5));
  CHECK(d.entries.empty());
  const auto resp = responses_to(d, 2, MessageType::AppendResponse);
  REQUIRE(resp.size() == 1);
  CHECK_FALSE(resp[0].reject);
  INFO("the acknowledgement may only claim what this message proved: prev + 1 entry = 2");
  CHECK(resp[0].log_index == I(2));
}

TEST_CASE("5.3 leaderCommit > commitIndex sets commitIndex = min(leaderCommit, index of last new "
          "entry)",
          "[paper][5.3]") {
  // Entries 3 and 4 come from an older leader and may not match the current one.
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1, 1, 1, 1}));
  step_ok(r, append_msg(2, 1, 2, 1, 1, {entry(2, 1, "e2t1")}, 4));
  Drained d = drain(r);
  {
    INFO("Figure 2 (AppendEntries 5): leaderCommit 4, last new entry 2 -> commitIndex 2");
    CHECK(r.commit_index() == I(2));
    REQUIRE(d.committed.size() == 2);
    CHECK(d.committed.back().index == I(2));
  }
  step_ok(r, append_msg(2, 1, 2, 2, 1, {entry(3, 1, "e3t1")}, 4));
  d = drain(r);
  {
    INFO("leaderCommit 4, last new entry 3 -> commitIndex 3");
    CHECK(r.commit_index() == I(3));
  }
  step_ok(r, append_msg(2, 1, 2, 3, 1, {}, 1));
  d = drain(r);
  INFO("a smaller leaderCommit never moves commitIndex backwards");
  CHECK(r.commit_index() == I(3));
  CHECK(d.committed.empty());
}

TEST_CASE("5.3 heartbeat commit is bounded by the follower's matchIndex", "[paper][5.3]") {
  Cluster c({1, 2, 3}, {}, true);
  c.elect(1);
  c.cut(1, 3);
  for (int k = 0; k < 3; ++k) c.propose(1, "x" + std::to_string(k));
  c.stabilize();
  Raft& leader = c.node(1);
  REQUIRE(leader.commit_index() == leader.log().last_index());
  c.heal();
  c.drop_if = [](const Message& m) { return m.type == MessageType::Append && m.to == N(3); };
  const std::size_t mark = c.history.size();
  c.settle(1, 3);
  const auto beats = c.sent(MessageType::Heartbeat, 1, 3, mark);
  REQUIRE_FALSE(beats.empty());
  for (const auto& m : beats) {
    INFO("a heartbeat carries no log check, so its commit must not exceed the follower's match "
         << leader.progress().at(N(3)).match.value() << ": " << core::describe(m));
    CHECK(m.commit <= leader.progress().at(N(3)).match);
  }
  INFO("node 3 must never commit entries it does not hold");
  CHECK(c.node(3).commit_index() <= c.node(3).log().last_index());
  CHECK(c.node(3).commit_index() < leader.commit_index());
}

// ---- §5.3 log replication: leader rules --------------------------------------------------

TEST_CASE("5.3 a client command is appended to the leader's log and answered once applied",
          "[paper][5.3]") {
  Cluster c({1, 2, 3}, {}, true);
  c.elect(1);
  Raft& leader = c.node(1);
  const LogIndex last = leader.log().last_index();
  const EntryId id = c.propose(1, "cmd");
  INFO("Figure 2 (leaders): a command is appended to the local log at the next index");
  CHECK(id.index == last.next());
  CHECK(id.term == leader.term());
  REQUIRE(leader.log().last_index() == id.index);
  CHECK(leader.log().at(id.index).payload == Bytes::copy_of("cmd"));
  c.stabilize();
  const auto& applied = c.applied(1);
  REQUIRE_FALSE(applied.empty());
  CHECK(applied.back().index == id.index);
  CHECK(applied.back().term == id.term);
  CHECK(applied.back().payload == Bytes::copy_of("cmd"));
  // Followers learn the new commit index from the leader's next AppendEntries (Figure 2,
  // leaderCommit); with nothing more to replicate that goes out on the next tick.
  c.settle(1, 1);
  for (std::uint64_t f : {2, 3}) {
    REQUIRE_FALSE(c.applied(f).empty());
    CHECK(c.applied(f).back().payload == Bytes::copy_of("cmd"));
  }
}

TEST_CASE("Figure 2 upon election the leader sends AppendEntries to every server and "
          "heartbeats while idle",
          "[paper][5.2]") {
  Cluster c({1, 2, 3}, {}, true);
  c.elect(1);
  const Term t = c.node(1).term();
  for (std::uint64_t f : {2, 3}) {
    std::size_t first = 0;
    for (const auto& m : c.history) {
      if (m.from == N(1) && m.to == N(f) && m.term == t &&
          (m.type == MessageType::Append || m.type == MessageType::Heartbeat)) {
        ++first;
      }
    }
    INFO("Figure 2 (leaders): upon election send AppendEntries to each server (node " << f
                                                                                       << ")");
    CHECK(first >= 1);
  }
  const std::size_t mark = c.history.size();
  for (std::uint32_t k = 1; k <= 5; ++k) {
    c.tick(1);
    c.stabilize();
    for (std::uint64_t f : {2, 3}) {
      const std::size_t beats = c.sent(MessageType::Heartbeat, 1, f, mark).size() +
                                c.sent(MessageType::Append, 1, f, mark).size();
      INFO("Figure 2 (leaders): repeat during idle periods; heartbeat_ticks=1, tick " << k);
      CHECK(beats >= k);
    }
  }
  // With heartbeats flowing, nobody's election timer ever fires.
  for (std::uint32_t k = 0; k < 10 * kElectionTicks; ++k) c.tick_all();
  INFO("§5.2: followers that hear heartbeats never start an election");
  CHECK(c.node(1).role() == Role::Leader);
  CHECK(c.node(1).term() == t);
  CHECK(c.node(2).term() == t);
  CHECK(c.node(3).term() == t);
}

TEST_CASE("Figure 2 if last log index >= nextIndex send AppendEntries starting at nextIndex",
          "[paper][5.3]") {
  Cluster c({1, 2, 3}, {}, true);
  c.elect(1);
  c.settle(1, 1);
  Raft& leader = c.node(1);
  {
    // Idle: last log index < nextIndex, so no entries are sent.
    const std::size_t mark = c.history.size();
    c.settle(1, 3);
    for (const auto& m : c.sent(MessageType::Append, 1, 2, mark)) {
      INFO("nothing to send when last log index < nextIndex: " << core::describe(m));
      CHECK(m.entries.empty());
    }
  }
  const LogIndex next = leader.progress().at(N(2)).next;
  REQUIRE(next == leader.log().last_index().next());
  const std::size_t mark = c.history.size();
  const EntryId id = c.propose(1, "x");
  c.process(1);
  const auto appends = c.sent(MessageType::Append, 1, 2, mark);
  INFO("Figure 2 (leaders): last log index " << id.index.value() << " >= nextIndex "
                                             << next.value() << " so AppendEntries must go out");
  REQUIRE_FALSE(appends.empty());
  const Message& m = appends.front();
  CHECK(m.log_index == next.prev());
  CHECK(leader.log().term_at(m.log_index) == std::optional<Term>(m.log_term));
  REQUIRE_FALSE(m.entries.empty());
  CHECK(m.entries.front().index == next);
  CHECK(carries_index(m, id.index));
  CHECK(m.term == leader.term());
  CHECK(m.commit == leader.commit_index());
}

TEST_CASE("Figure 2 if successful update nextIndex and matchIndex", "[paper][5.3]") {
  Cluster c({1, 2, 3}, {}, true);
  c.elect(1);
  Raft& leader = c.node(1);
  std::vector<Message> held;
  c.drop_if = [&held](const Message& m) {
    if (m.type == MessageType::AppendResponse && m.from == N(2)) {
      held.push_back(m);
      return true;
    }
    return false;
  };
  const LogIndex match_before = leader.progress().at(N(2)).match;
  EntryId last{};
  for (int k = 0; k < 3; ++k) last = c.propose(1, "x" + std::to_string(k));
  c.stabilize();
  REQUIRE_FALSE(held.empty());
  REQUIRE(c.node(2).log().last_index() == last.index);
  CHECK(leader.progress().at(N(2)).match == match_before);
  c.drop_if = nullptr;
  for (const auto& m : held) step_ok(leader, m);
  c.process(1);
  const Progress& pr = leader.progress().at(N(2));
  INFO("Figure 2 (leaders): a successful AppendEntries sets matchIndex to the acknowledged "
       "index and nextIndex beyond it");
  CHECK(pr.match == last.index);
  CHECK(pr.next == last.index.next());
}

TEST_CASE("Figure 2 if AppendEntries fails decrement nextIndex and retry", "[paper][5.3]") {
  Cluster c({1, 2, 3}, {}, true);
  // Node 2 holds an entry 3 of term 2 that the leader's log replaced by term 3.
  c.add(1, founding_storage(kThree, hard_state(3), log_with_terms({1, 1, 3})));
  c.add(2, founding_storage(kThree, hard_state(2), log_with_terms({1, 1, 2})));
  c.add(3, founding_storage(kThree, hard_state(3), log_with_terms({1, 1, 3})));
  c.elect(1);
  c.settle(1, 3);
  const auto& h = c.history;
  std::optional<std::size_t> reject_at;
  for (std::size_t k = 0; k < h.size(); ++k) {
    if (h[k].type == MessageType::AppendResponse && h[k].from == N(2) && h[k].reject) {
      reject_at = k;
      break;
    }
  }
  INFO("node 2's entry 3 (term 2) conflicts, so the first probe must be refused");
  REQUIRE(reject_at.has_value());
  const LogIndex rejected = h[*reject_at].log_index;
  const auto retries = c.sent(MessageType::Append, 1, 2, *reject_at);
  INFO("Figure 2 (leaders): after a failure nextIndex decreases and AppendEntries is retried");
  REQUIRE_FALSE(retries.empty());
  CHECK(retries.front().log_index < rejected);
  Raft& f = c.node(2);
  CHECK(f.log().term_at(I(3)) == std::optional<Term>(T(3)));
  CHECK(f.log().last_index() == c.node(1).log().last_index());
  CHECK(c.node(1).progress().at(N(2)).match == c.node(1).log().last_index());
}

TEST_CASE("5.3 fast back-off: the conflict hint skips a whole term per round trip",
          "[paper][5.3]") {
  std::vector<std::uint64_t> leader_terms{1};
  std::vector<std::uint64_t> follower_terms{1};
  SECTION("a long divergent suffix of one term") {
    for (int k = 0; k < 29; ++k) {
      leader_terms.push_back(3);
      follower_terms.push_back(2);
    }
  }
  SECTION("a follower far behind") {
    for (int k = 0; k < 29; ++k) leader_terms.push_back(3);
  }
  auto build = [](const std::vector<std::uint64_t>& terms) {
    std::vector<Entry> out;
    for (std::size_t k = 0; k < terms.size(); ++k) {
      const std::uint64_t i = k + 1;
      out.push_back(entry(i, terms[k], "e" + std::to_string(i) + "t" + std::to_string(terms[k])));
    }
    return out;
  };
  Cluster c({1, 2, 3}, {}, true);
  c.add(1, founding_storage(kThree, hard_state(3), build(leader_terms)));
  c.add(2, founding_storage(kThree, hard_state(2), build(follower_terms)));
  c.add(3, founding_storage(kThree, hard_state(3), build(leader_terms)));
  c.elect(1);
  c.settle(1, 3);
  std::size_t rejects = 0;
  for (const auto& m : c.history) {
    if (m.type == MessageType::AppendResponse && m.from == N(2) && m.reject) ++rejects;
  }
  INFO("§5.3 optimisation: with hint_index/hint_term the leader needs one rejection per "
       "conflicting term, not one per entry (29 entries diverge); rejects="
       << rejects);
  CHECK(rejects >= 1);
  CHECK(rejects <= 2);
  CHECK(c.node(2).log().last_index() == c.node(1).log().last_index());
  CHECK(c.node(2).log().term_at(I(30)) == std::optional<Term>(T(3)));
}

TEST_CASE("Figure 2 leader commits N when a majority has matchIndex >= N and log[N].term == "
          "currentTerm",
          "[paper][5.3]") {
  Cluster c({1, 2, 3, 4, 5}, {}, true);
  c.elect(1);
  c.settle(1, 1);
  Raft& leader = c.node(1);
  // Everything for 4 and 5 is lost; what goes to 3 is delayed (held) until released.
  std::vector<Message> held;
  c.drop_if = [&held](const Message& m) {
    const auto to = m.to.value();
    if (m.from != N(1)) return false;
    if (to == 3) held.push_back(m);
    return to == 3 || to == 4 || to == 5;
  };
  const EntryId id = c.propose(1, "x");
  c.stabilize();
  {
    INFO("only nodes 1 and 2 hold entry " << id.index.value() << ": 2 of 5 is not a majority");
    CHECK(leader.progress().at(N(2)).match == id.index);
    CHECK(leader.commit_index() < id.index);
  }
  c.drop_if = [](const Message& m) {
    return m.from == N(1) && (m.to == N(4) || m.to == N(5));
  };
  REQUIRE_FALSE(held.empty());
  c.in_flight.insert(c.in_flight.end(), held.begin(), held.end());
  c.stabilize();
  INFO("Figure 2 (leaders): nodes 1, 2, 3 have matchIndex >= N and log[N] is of the current "
       "term, so commitIndex = N");
  CHECK(leader.progress().at(N(3)).match >= id.index);
  CHECK(leader.commit_index() == id.index);
  c.settle(1, 1);
  CHECK(c.node(2).commit_index() == id.index);
}

TEST_CASE("5.3 the leader retries AppendEntries until every follower stores every entry",
          "[paper][5.3]") {
  Cluster c({1, 2, 3, 4, 5}, {}, true);
  c.elect(1);
  c.settle(1, 1);
  Raft& leader = c.node(1);
  // The AppendEntries carrying the command to nodes 3, 4 and 5 are lost in the network.
  c.drop_if = [](const Message& m) {
    return m.type == MessageType::Append && m.from == N(1) && m.to.value() >= 3;
  };
  const EntryId id = c.propose(1, "x");
  c.stabilize();
  REQUIRE(leader.commit_index() < id.index);
  c.drop_if = nullptr;
  c.settle(1, 2 * kElectionTicks);
  INFO("§5.3: if network packets are lost, the leader retries AppendEntries indefinitely until "
       "all followers eventually store all log entries\n"
       << leader.describe());
  for (std::uint64_t f : {3, 4, 5}) {
    INFO("node " << f << ": " << c.node(f).describe());
    CHECK(c.node(f).log().last_index() >= id.index);
  }
  CHECK(leader.commit_index() >= id.index);
}

TEST_CASE("Figure 2 persistent state is on stable storage before the node answers",
          "[paper][5.1]") {
  Raft r = paper_follower(1, hard_state(1), log_with_terms({1}));
  step_ok(r, vote_msg(2, 1, 2, 1, 1));
  Ready rd = r.ready();
  INFO("Figure 2: currentTerm and votedFor are persisted before responding to RequestVote");
  REQUIRE(rd.hard_state.has_value());
  CHECK(rd.hard_state->term == T(2));
  CHECK(rd.hard_state->vote == N(2));
  CHECK(select(rd.messages, MessageType::VoteResponse).empty());
  CHECK(select(rd.messages_after_persist, MessageType::VoteResponse, 2).size() == 1);
  r.ack_persisted(rd.persist_mark);
  (void)drain(r);

  step_ok(r, append_msg(2, 1, 2, 1, 1, {entry(2, 2, "x")}, 0));
  rd = r.ready();
  INFO("Figure 2: log[] is persisted before responding to AppendEntries");
  REQUIRE(rd.entries.size() == 1);
  CHECK(rd.entries[0].index == I(2));
  CHECK(select(rd.messages, MessageType::AppendResponse).empty());
  CHECK(select(rd.messages_after_persist, MessageType::AppendResponse, 2).size() == 1);
  r.ack_persisted(rd.persist_mark);
  CHECK(r.persisted_index() == I(2));
}

TEST_CASE("Figure 2 if commitIndex > lastApplied apply", "[paper][5.3]") {
  Raft r = paper_follower(1, hard_state(1));
  step_ok(r, append_msg(2, 1, 1, 0, 0, {entry(1, 1, "a"), entry(2, 1, "b"), entry(3, 1, "c")}, 2));
  Drained d = drain(r);
  {
    INFO("Figure 2 (all servers): commitIndex 2 > lastApplied 0: apply entries 1 and 2, in "
         "order");
    REQUIRE(d.committed.size() == 2);
    CHECK(d.committed[0].index == I(1));
    CHECK(d.committed[0].payload == Bytes::copy_of("a"));
    CHECK(d.committed[1].index == I(2));
    CHECK(d.committed[1].payload == Bytes::copy_of("b"));
    CHECK(r.applied_index() == I(2));
  }
  step_ok(r, heartbeat_msg(2, 1, 1, 3));
  d = drain(r);
  {
    INFO("commitIndex 3 > lastApplied 2: apply entry 3");
    REQUIRE(d.committed.size() == 1);
    CHECK(d.committed[0].index == I(3));
    CHECK(r.applied_index() == I(3));
  }
  step_ok(r, heartbeat_msg(2, 1, 1, 3));
  d = drain(r);
  INFO("commitIndex == lastApplied: nothing is applied twice");
  CHECK(d.committed.empty());
}

// ---- §5.4 safety ------------------------------------------------------------------------

TEST_CASE("5.4.1 election restriction: deny vote to a candidate with a less up-to-date log",
          "[paper][5.4.1]") {
  // The voter's log ends at (index 2, term 2).
  struct Case {
    std::uint64_t last_index;
    std::uint64_t last_term;
    bool grant;
    const char* why;
  };
  const Case cases[] = {
      {1, 2, false, "same last term, shorter log"},
      {9, 1, false, "longer log but older last term"},
      {0, 0, false, "empty log"},
      {2, 2, true, "identical last entry"},
      {3, 2, true, "same last term, longer log"},
      {1, 3, true, "newer last term, shorter log"},
  };
  for (const Case& k : cases) {
    Raft r = paper_follower(1, hard_state(2), log_with_terms({1, 2}));
    step_ok(r, vote_msg(3, 1, 3, k.last_index, k.last_term));
    const Drained d = drain(r);
    const auto resp = responses_to(d, 3, MessageType::VoteResponse);
    INFO("§5.4.1 candidate log (" << k.last_index << ", term " << k.last_term << "): " << k.why
                                  << " -> expected " << (k.grant ? "grant" : "deny"));
    REQUIRE(resp.size() == 1);
    CHECK(resp[0].reject == !k.grant);
    CHECK(r.voted_for() == (k.grant ? N(3) : kNoNode));
    CHECK(r.term() == T(3));
  }
}

TEST_CASE("5.4.1 the election restriction test detects TestingBug::GrantVoteWithoutLogCheck",
          "[paper][5.4.1]") {
  RaftOptions o = paper_options(1);
  o.testing_bug = core::TestingBug::GrantVoteWithoutLogCheck;
  Raft r = make_node(o, kThree, hard_state(2), log_with_terms({1, 2}));
  (void)drain(r);
  step_ok(r, vote_msg(3, 1, 3, 9, 1));
  const Drained d = drain(r);
  INFO("with the deliberate bug the stale candidate gets the vote; if not, the test above "
       "could not tell a correct core from a broken one");
  CHECK(granted(responses_to(d, 3, MessageType::VoteResponse)));
}

namespace {

/// The five servers of Figure 8 after step (b): S1 led term 2 and replicated 2:2 to S2;
/// S5 won term 3 with votes from S3, S4 and itself and wrote 2:3. Entry 1 is committed.
/// S1 sends one entry per AppendEntries so that replication can be stopped exactly.
void build_figure8(Cluster& c, core::TestingBug bug) {
  const Configuration five = config_of({1, 2, 3, 4, 5});
  RaftOptions s1 = paper_options(1);
  s1.max_append_entries = 1;
  s1.testing_bug = bug;
  c.add(1, founding_storage(five, hard_state(2, 1, 1), log_with_terms({1, 2})), s1);
  c.add(2, founding_storage(five, hard_state(2, 1, 1), log_with_terms({1, 2})));
  c.add(3, founding_storage(five, hard_state(3, 5, 1), log_with_terms({1})));
  c.add(4, founding_storage(five, hard_state(3, 5, 1), log_with_terms({1})));
  c.add(5, founding_storage(five, hard_state(3, 5, 1), log_with_terms({1, 3})));
}

/// Step (c): S5 is down, S1 restarts and wins term 4 (S2, S3), replicates 2:2 to S3 and its
/// own term-4 entry (the no-op at 3) to S2 only; S4 is cut off from S1. Index 3 is kept
/// from S3 by shortening S1's AppendEntries to S3 on the wire (as if S1 had sent less);
/// the originals are kept in `delayed` so that step (e) can deliver them late.
void run_figure8_c(Cluster& c, std::vector<Message>& delayed) {
  c.crash(5);
  c.cut(1, 4);
  c.on_send = [&delayed](const Message& m) {
    if (m.type == MessageType::Append && m.from == N(1) && m.to == N(3) &&
        carries_index(m, I(3))) {
      delayed.push_back(m);
    }
  };
  c.mutate = [](Message& m) {
    if (m.type == MessageType::Append && m.from == N(1) && m.to == N(3)) {
      std::erase_if(m.entries, [](const Entry& e) { return e.index >= I(3); });
    }
  };
  c.elect(1);
  c.settle(1, 5);
  c.on_send = nullptr;
}

/// S1 has crashed; the survivors restart from their durable state, so none of them still
/// honours S1's leader lease (thesis §4.2.3) while only `candidate` is ticked.
void restart_survivors(Cluster& c) {
  c.crash(1);
  c.heal();
  for (std::uint64_t id : {2, 3, 4, 5}) c.restart(id);
}

}  // namespace

TEST_CASE("5.4.2 never commit a previous-term entry by counting replicas", "[paper][5.4.2]") {
  Cluster c({1, 2, 3, 4, 5}, {}, true);
  build_figure8(c, core::TestingBug::None);
  std::vector<Message> delayed;
  run_figure8_c(c, delayed);
  Raft& s1 = c.node(1);
  // The scenario is exactly Figure 8 (c).
  REQUIRE(s1.term() == T(4));
  REQUIRE(s1.log().last_index() == I(3));
  REQUIRE(s1.log().at(I(3)).term == T(4));
  REQUIRE(c.node(2).log().term_at(I(2)) == std::optional<Term>(T(2)));
  REQUIRE(c.node(3).log().term_at(I(2)) == std::optional<Term>(T(2)));
  REQUIRE(c.node(3).log().last_index() == I(2));
  REQUIRE(s1.progress().at(N(2)).match >= I(2));
  REQUIRE(s1.progress().at(N(3)).match == I(2));
  {
    INFO("§5.4.2 / Figure 8 (c): entry 2 (term 2) is on S1, S2, S3 - a majority - but is from "
         "an older term and must not be committed by counting replicas");
    CHECK(s1.commit_index() == I(1));
    for (std::uint64_t id : {1, 2, 3}) CHECK(c.node(id).commit_index() == I(1));
  }
  // Figure 8 (d): S1 crashes, S5 comes back and is elected by S3, S4 and itself.
  restart_survivors(c);
  c.elect(5);
  c.settle(5, 5);
  INFO("Figure 8 (d): S5 overwrites entry 2 everywhere - had S1 committed it, a committed "
       "entry would now be lost");
  CHECK(c.node(5).term() >= T(5));
  CHECK(c.node(3).log().term_at(I(2)) == std::optional<Term>(T(3)));
  CHECK(c.node(2).log().term_at(I(2)) == std::optional<Term>(T(3)));
  CHECK(c.node(4).log().term_at(I(2)) == std::optional<Term>(T(3)));
}

TEST_CASE("5.4.2 committing a current-term entry commits the prior ones", "[paper][5.4.2]") {
  Cluster c({1, 2, 3, 4, 5}, {}, true);
  build_figure8(c, core::TestingBug::None);
  std::vector<Message> delayed;
  run_figure8_c(c, delayed);
  Raft& s1 = c.node(1);
  REQUIRE(s1.commit_index() == I(1));
  // Figure 8 (e): S1 replicates its term-4 entry to a majority (S1, S2, S3) before crashing:
  // the delayed AppendEntries carrying entry 3 finally reaches S3.
  c.mutate = nullptr;
  REQUIRE_FALSE(delayed.empty());
  c.in_flight.push_back(delayed.back());
  c.stabilize();
  INFO("§5.4.2: once entry 3 of the current term is on a majority, it and every entry before "
       "it are committed (Log Matching)");
  CHECK(s1.commit_index() == I(3));
  const auto& applied = c.applied(1);
  REQUIRE(applied.size() >= 2);
  CHECK(applied[applied.size() - 2].index == I(2));
  CHECK(applied[applied.size() - 2].term == T(2));
  CHECK(applied.back().index == I(3));
  CHECK(applied.back().term == T(4));
  // Now S5 can no longer win: S2 and S3 hold a newer last term than S5.
  restart_survivors(c);
  for (std::uint32_t k = 0; k < 20 * kElectionTicks; ++k) {
    c.tick(5);
    c.stabilize();
  }
  INFO("§5.4.1: after 2:2 and 3:4 committed, S5 (last term 3) can gather at most S4's vote");
  CHECK(c.node(5).role() != Role::Leader);
  CHECK(c.node(3).log().term_at(I(2)) == std::optional<Term>(T(2)));
}

TEST_CASE("5.4.2 the Figure 8 scenario detects TestingBug::CommitPreviousTermByCount",
          "[paper][5.4.2]") {
  Cluster c({1, 2, 3, 4, 5}, {}, true);
  build_figure8(c, core::TestingBug::CommitPreviousTermByCount);
  std::vector<Message> delayed;
  run_figure8_c(c, delayed);
  INFO("with the deliberate bug S1 commits entry 2 by counting replicas; if it does not, the "
       "Figure 8 test could not tell a correct core from a broken one");
  CHECK(c.node(1).commit_index() >= I(2));
}

// ---- §8 client interaction ----------------------------------------------------------------

TEST_CASE("8 leader appends a no-op at the start of its term", "[paper][8]") {
  Cluster c({1, 2, 3}, {}, true);
  // Entries 1 and 2 of term 1 are on every server but were never known to be committed.
  for (std::uint64_t id : {1, 2, 3}) {
    c.add(id, founding_storage(kThree, hard_state(1), log_with_terms({1, 1})));
  }
  c.elect(1);
  Raft& leader = c.node(1);
  REQUIRE(leader.log().last_index() >= I(3));
  const Entry& noop = leader.log().at(I(3));
  {
    INFO("§8: a new leader appends a blank no-op entry of its own term at the start of its "
         "term");
    CHECK(noop.kind == EntryKind::Noop);
    CHECK(noop.term == leader.term());
  }
  c.settle(1, 1);  // the next AppendEntries tells the followers the commit index
  INFO("§8/§5.4.2: committing the no-op commits the earlier entries without any client "
       "request, on every server");
  for (std::uint64_t id : {1, 2, 3}) {
    CHECK(c.node(id).commit_index() == I(3));
    REQUIRE(c.applied(id).size() == 3);
    CHECK(c.applied(id)[0].payload == Bytes::copy_of("e1t1"));
    CHECK(c.applied(id)[2].kind == EntryKind::Noop);
  }
}

}  // namespace rlr::test
