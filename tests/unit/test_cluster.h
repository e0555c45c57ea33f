// Test helpers for the Raft core unit tests: short constructors for ids, entries,
// configurations and messages, a synchronous "runtime" that drains one node's Readys,
// and a small in-memory cluster that wires several cores together.
//
// The cluster follows the Ready contract of core/ready.h to the letter: `messages` leave
// first, then the snapshot / entries / hard state are "persisted" into a Storage, then
// `messages_after_persist` leave and ack_persisted() is called. While doing so it checks
// the parts of the contract a runtime can observe (which messages may leave early,
// committed entries never ahead of the persisted index and applied in order, no
// committed entry ever truncated from storage).
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "core/configuration.h"
#include "core/message.h"
#include "core/raft.h"
#include "core/raft_log.h"
#include "rlr/status.h"
#include "rlr/types.h"

// ---- printing of the core's vocabulary in failed assertions ------------------------
namespace Catch {
template <>
struct StringMaker<rlr::NodeId> {
  static std::string convert(const rlr::NodeId& v) { return "node " + std::to_string(v.value()); }
};
template <>
struct StringMaker<rlr::Term> {
  static std::string convert(const rlr::Term& v) { return "term " + std::to_string(v.value()); }
};
template <>
struct StringMaker<rlr::LogIndex> {
  static std::string convert(const rlr::LogIndex& v) {
    return "index " + std::to_string(v.value());
  }
};
template <>
struct StringMaker<std::optional<rlr::Term>> {
  static std::string convert(const std::optional<rlr::Term>& v) {
    return v ? "term " + std::to_string(v->value()) : std::string("nullopt");
  }
};
template <>
struct StringMaker<std::optional<rlr::LogIndex>> {
  static std::string convert(const std::optional<rlr::LogIndex>& v) {
    return v ? "index " + std::to_string(v->value()) : std::string("nullopt");
  }
};
template <>
struct StringMaker<rlr::Role> {
  static std::string convert(const rlr::Role& r) { return std::string(rlr::to_string(r)); }
};
template <>
struct StringMaker<rlr::ErrorCode> {
  static std::string convert(const rlr::ErrorCode& c) { return std::string(rlr::to_string(c)); }
};
template <>
struct StringMaker<rlr::core::MessageType> {
  static std::string convert(const rlr::core::MessageType& t) {
    return std::string(rlr::core::to_string(t));
  }
};
template <>
struct StringMaker<rlr::core::Progress::State> {
  static std::string convert(const rlr::core::Progress::State& s) {
    switch (s) {
      case rlr::core::Progress::State::Probe: return "Probe";
      case rlr::core::Progress::State::Replicate: return "Replicate";
      case rlr::core::Progress::State::Snapshot: return "Snapshot";
    }
    return "?";
  }
};
}  // namespace Catch

namespace rlr::test {

using core::Configuration;
using core::EntryId;
using core::HardState;
using core::Message;
using core::MessageType;
using core::PersistMark;
using core::Progress;
using core::Raft;
using core::RaftLog;
using core::RaftOptions;
using core::Ready;
using core::ReadState;
using core::RestoreState;
using core::SnapshotMeta;

// ---- vocabulary --------------------------------------------------------------------
inline NodeId N(std::uint64_t v) { return NodeId{v}; }
inline Term T(std::uint64_t v) { return Term{v}; }
inline LogIndex I(std::uint64_t v) { return LogIndex{v}; }

inline Configuration config_of(std::vector<std::uint64_t> voters,
                               std::vector<std::uint64_t> learners = {},
                               std::vector<std::uint64_t> outgoing = {}) {
  Configuration c;
  for (auto v : voters) c.voters.push_back(N(v));
  for (auto v : learners) c.learners.push_back(N(v));
  for (auto v : outgoing) c.voters_outgoing.push_back(N(v));
  c.normalize();
  return c;
}

inline Entry entry(std::uint64_t index, std::uint64_t term, std::string_view payload = {},
                   EntryKind kind = EntryKind::Normal) {
  Entry e;
  e.index = I(index);
  e.term = T(term);
  e.kind = kind;
  e.payload = Bytes::copy_of(payload);
  return e;
}

inline Entry config_entry(std::uint64_t index, std::uint64_t term, const Configuration& c) {
  Entry e;
  e.index = I(index);
  e.term = T(term);
  e.kind = EntryKind::Config;
  e.payload = core::encode_configuration(c);
  return e;
}

/// A log [first:terms[0], first+1:terms[1], ...] with payloads "e<index>t<term>".
inline std::vector<Entry> log_with_terms(std::initializer_list<std::uint64_t> terms,
                                         std::uint64_t first = 1) {
  std::vector<Entry> out;
  std::uint64_t i = first;
  for (auto t : terms) {
    out.push_back(entry(i, t, "e" + std::to_string(i) + "t" + std::to_string(t)));
    ++i;
  }
  return out;
}

inline HardState hard_state(std::uint64_t term, std::uint64_t vote = 0, std::uint64_t commit = 0) {
  return HardState{T(term), N(vote), I(commit)};
}

// ---- options -----------------------------------------------------------------------
inline constexpr std::uint32_t kElectionTicks = 10;

/// Options that follow the paper exactly: no pre-vote, no check-quorum (and so no lease).
inline RaftOptions paper_options(std::uint64_t id) {
  RaftOptions o;
  o.id = N(id);
  o.election_ticks = kElectionTicks;
  o.heartbeat_ticks = 1;
  o.pre_vote = false;
  o.check_quorum = false;
  o.random_seed = 7919 * id + 13;
  o.check_invariants = true;
  return o;
}

/// The core's default features: pre-vote and check-quorum on.
inline RaftOptions feature_options(std::uint64_t id) {
  RaftOptions o = paper_options(id);
  o.pre_vote = true;
  o.check_quorum = true;
  return o;
}

// ---- storage -----------------------------------------------------------------------
/// What a log store's read returns (the LogStore::read limits): the entries `entry_at(i)`
/// gives for i in [from, to], at most `max_entries` and about `max_bytes` of payload, but
/// at least one; it stops at the first index `entry_at` has nothing for (nullopt).
template <class EntryAt>
void read_limited(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
                  EntryAt entry_at, std::vector<Entry>& out) {
  out.clear();
  std::size_t bytes = 0;
  for (LogIndex i = from; i <= to && out.size() < max_entries; i = i.next()) {
    std::optional<Entry> e = entry_at(i);
    if (!e) break;
    bytes += e->payload.size();
    if (!out.empty() && bytes > max_bytes) break;
    out.push_back(std::move(*e));
  }
}

/// What a runtime would keep on disk for one node.
struct Storage {
  HardState hard_state;
  SnapshotMeta snapshot;
  std::vector<Entry> entries;  ///< after snapshot.index, contiguous
  LogIndex applied;

  [[nodiscard]] LogIndex last_index() const {
    return entries.empty() ? snapshot.index : entries.back().index;
  }

  /// Applies step 2 of the Ready contract, checking that no committed entry is lost.
  void persist(const Ready& rd) {
    if (rd.snapshot) {
      const SnapshotMeta& s = *rd.snapshot;
      std::vector<Entry> kept;
      bool keep_suffix = false;
      for (const auto& e : entries) {
        if (e.index == s.index && e.term == s.term) keep_suffix = true;
      }
      if (keep_suffix) {
        for (const auto& e : entries) {
          if (e.index > s.index) kept.push_back(e);
        }
      }
      entries = std::move(kept);
      snapshot = s;
      if (applied < s.index) applied = s.index;
    }
    if (!rd.entries.empty()) {
      const LogIndex first = rd.entries.front().index;
      INFO("Ready contract 2: persisted entries must continue the stored log without a gap");
      REQUIRE(first <= last_index().next());
      REQUIRE(first > snapshot.index);
      for (std::size_t k = 1; k < rd.entries.size(); ++k) {
        INFO("Ready contract 2: Ready::entries must be contiguous");
        REQUIRE(rd.entries[k].index == rd.entries[k - 1].index.next());
      }
      if (first <= last_index()) {
        INFO("Figure 2 / §5.4: an entry at or below the durable commit index was truncated");
        CHECK(first > hard_state.commit);
      }
      while (!entries.empty() && entries.back().index >= first) entries.pop_back();
      entries.insert(entries.end(), rd.entries.begin(), rd.entries.end());
    }
    if (rd.hard_state) {
      INFO("Figure 2: currentTerm never decreases on stable storage");
      CHECK(rd.hard_state->term >= hard_state.term);
      hard_state = *rd.hard_state;
    }
  }

  [[nodiscard]] RestoreState restore_state() const {
    RestoreState rs;
    rs.hard_state = hard_state;
    rs.snapshot = snapshot;
    rs.entries = entries;
    rs.applied = applied;
    return rs;
  }
};

/// Storage of a founding member: a snapshot at index 0 that lists the initial members.
inline Storage founding_storage(const Configuration& c, HardState hs = {},
                                std::vector<Entry> log = {}) {
  Storage s;
  s.snapshot.config = c;
  s.hard_state = hs;
  s.entries = std::move(log);
  return s;
}

inline Raft make_raft(const RaftOptions& o, RestoreState rs) {
  auto r = Raft::create(o, std::move(rs));
  INFO("Raft::create failed: " << r.status().to_string());
  REQUIRE(r.is_ok());
  return std::move(r).value();
}

/// A node of `members` (voters) restored from the given term / vote / log.
inline Raft make_node(const RaftOptions& o, const Configuration& members, HardState hs = {},
                      std::vector<Entry> log = {}) {
  return make_raft(o, founding_storage(members, hs, std::move(log)).restore_state());
}

// ---- messages ----------------------------------------------------------------------
inline Message msg(MessageType type, std::uint64_t from, std::uint64_t to, std::uint64_t term) {
  Message m;
  m.type = type;
  m.from = N(from);
  m.to = N(to);
  m.term = T(term);
  return m;
}

inline Message append_msg(std::uint64_t from, std::uint64_t to, std::uint64_t term,
                          std::uint64_t prev_index, std::uint64_t prev_term,
                          std::vector<Entry> entries, std::uint64_t commit) {
  Message m = msg(MessageType::Append, from, to, term);
  m.log_index = I(prev_index);
  m.log_term = T(prev_term);
  m.entries = std::move(entries);
  m.commit = I(commit);
  return m;
}

inline Message vote_msg(std::uint64_t from, std::uint64_t to, std::uint64_t term,
                        std::uint64_t last_index, std::uint64_t last_term, bool pre = false) {
  Message m = msg(pre ? MessageType::PreVote : MessageType::Vote, from, to, term);
  m.log_index = I(last_index);
  m.log_term = T(last_term);
  return m;
}

inline Message vote_resp(std::uint64_t from, std::uint64_t to, std::uint64_t term, bool reject,
                         bool pre = false) {
  Message m = msg(pre ? MessageType::PreVoteResponse : MessageType::VoteResponse, from, to, term);
  m.reject = reject;
  return m;
}

inline Message heartbeat_msg(std::uint64_t from, std::uint64_t to, std::uint64_t term,
                             std::uint64_t commit, std::uint64_t context = 0) {
  Message m = msg(MessageType::Heartbeat, from, to, term);
  m.commit = I(commit);
  m.context = context;
  return m;
}

inline std::vector<Message> select(const std::vector<Message>& ms, MessageType type,
                                   std::optional<std::uint64_t> to = std::nullopt) {
  std::vector<Message> out;
  for (const auto& m : ms) {
    if (m.type == type && (!to || m.to == N(*to))) out.push_back(m);
  }
  return out;
}

inline bool carries_index(const Message& m, LogIndex i) {
  return std::any_of(m.entries.begin(), m.entries.end(),
                     [i](const Entry& e) { return e.index == i; });
}

inline std::string describe_all(const std::vector<Message>& ms) {
  std::string s;
  for (const auto& m : ms) s += core::describe(m) + "\n";
  return s;
}

inline void step_ok(Raft& r, const Message& m) {
  Status st = r.step(m);
  INFO("step(" << core::describe(m) << ") on " << r.describe() << " -> " << st.to_string());
  REQUIRE(st.is_ok());
}

// ---- draining one node -------------------------------------------------------------
/// Everything a node produced while its Readys were handled synchronously.
struct Drained {
  std::vector<Message> early;  ///< Ready::messages (may leave before persistence)
  std::vector<Message> late;   ///< Ready::messages_after_persist
  std::vector<Entry> entries;  ///< Ready::entries, in order
  std::vector<Entry> committed;
  std::vector<ReadState> reads;
  std::vector<HardState> hard_states;
  std::vector<SnapshotMeta> snapshots;
  std::vector<core::SoftState> soft_states;
  [[nodiscard]] std::vector<Message> all() const {
    std::vector<Message> out = early;
    out.insert(out.end(), late.begin(), late.end());
    return out;
  }
};

inline bool is_leader_traffic(MessageType t) {
  return t == MessageType::Append || t == MessageType::Heartbeat ||
         t == MessageType::Snapshot || t == MessageType::TimeoutNow;
}

/// Checks the parts of the Ready contract visible to a runtime, before anything of `rd`
/// is persisted.
inline void check_ready_contract(const Raft& r, const Ready& rd) {
  INFO("node " << r.id().value() << ": " << r.describe());
  for (const auto& m : rd.messages) {
    // PreVote is tolerated here (it changes no state on either side); the dedicated test
    // "Ready contract 1: only the leader's replication traffic leaves before persistence"
    // holds the core to the header's exact wording.
    INFO("Ready contract 1: only the leader's replication traffic may leave before "
         "persistence, found "
         << core::describe(m));
    CHECK((is_leader_traffic(m.type) || m.type == MessageType::PreVote));
    CHECK(m.from == r.id());
  }
  for (const auto& m : rd.messages_after_persist) {
    INFO("messages must be sent by their node: " << core::describe(m));
    CHECK(m.from == r.id());
    CHECK(m.to != r.id());
  }
  for (const auto& e : rd.committed) {
    INFO("Ready contract 4: committed entry " << e.index.value()
                                              << " is ahead of the persisted index "
                                              << r.persisted_index().value());
    CHECK(e.index <= r.persisted_index());
  }
}

/// Handles every pending Ready of `r` synchronously (persisting into `storage` when
/// given) and returns what came out.
inline Drained drain(Raft& r, Storage* storage = nullptr) {
  Drained d;
  for (int guard = 0; r.has_ready(); ++guard) {
    REQUIRE(guard < 1000);
    Ready rd = r.ready();
    check_ready_contract(r, rd);
    d.early.insert(d.early.end(), rd.messages.begin(), rd.messages.end());
    if (storage != nullptr) storage->persist(rd);
    d.entries.insert(d.entries.end(), rd.entries.begin(), rd.entries.end());
    if (rd.hard_state) d.hard_states.push_back(*rd.hard_state);
    if (rd.snapshot) d.snapshots.push_back(*rd.snapshot);
    if (rd.soft_state) d.soft_states.push_back(*rd.soft_state);
    d.late.insert(d.late.end(), rd.messages_after_persist.begin(),
                  rd.messages_after_persist.end());
    r.ack_persisted(rd.persist_mark);
    d.committed.insert(d.committed.end(), rd.committed.begin(), rd.committed.end());
    if (storage != nullptr && !rd.committed.empty()) storage->applied = rd.committed.back().index;
    d.reads.insert(d.reads.end(), rd.read_states.begin(), rd.read_states.end());
  }
  return d;
}

/// Ticks `r` until it leaves the Follower role (at most `max_ticks`); returns the ticks.
inline std::uint32_t ticks_until_campaign(Raft& r, std::uint32_t max_ticks = 10 * kElectionTicks) {
  for (std::uint32_t k = 1; k <= max_ticks; ++k) {
    r.tick();
    if (r.role() != Role::Follower) return k;
  }
  return 0;
}

// ---- a cluster of cores --------------------------------------------------------------
class Cluster {
 public:
  using Tweak = std::function<void(RaftOptions&)>;

  /// Founding members: `voters` and `learners`. `paper` selects paper_options (no
  /// pre-vote, no check-quorum), otherwise feature_options; `tweak` adjusts either.
  Cluster(std::vector<std::uint64_t> voters, std::vector<std::uint64_t> learners = {},
          bool paper = false, Tweak tweak = {})
      : paper_(paper), tweak_(std::move(tweak)) {
    const Configuration c = config_of(voters, learners);
    for (auto id : voters) add(id, founding_storage(c));
    for (auto id : learners) add(id, founding_storage(c));
  }

  [[nodiscard]] RaftOptions options_for(std::uint64_t id) const {
    RaftOptions o = paper_ ? paper_options(id) : feature_options(id);
    if (tweak_) tweak_(o);
    return o;
  }

  /// Adds (or replaces) node `id` with the given storage and starts it.
  void add(std::uint64_t id, Storage storage, std::optional<RaftOptions> options = std::nullopt) {
    Member& m = members_[id];
    m.options = options ? *options : options_for(id);
    m.storage = std::move(storage);
    m.applied.clear();
    start(id);
  }

  /// Replaces a node's options (for example a testing bug) and restarts it from storage.
  void set_options(std::uint64_t id, const RaftOptions& o) {
    member(id).options = o;
    start(id);
  }

  Raft& node(std::uint64_t id) {
    Member& m = member(id);
    REQUIRE(m.raft.has_value());
    return *m.raft;
  }
  Storage& storage(std::uint64_t id) { return member(id).storage; }
  const std::vector<Entry>& applied(std::uint64_t id) { return member(id).applied; }
  [[nodiscard]] bool up(std::uint64_t id) const {
    auto it = members_.find(id);
    return it != members_.end() && it->second.raft.has_value();
  }

  /// The node stops: it loses everything not persisted and receives nothing.
  void crash(std::uint64_t id) { member(id).raft.reset(); }
  /// The node restarts from what its storage holds.
  void restart(std::uint64_t id) { start(id); }

  // -- network control --
  void cut(std::uint64_t a, std::uint64_t b) {
    cuts_.insert({a, b});
    cuts_.insert({b, a});
  }
  void isolate(std::uint64_t id) {
    for (const auto& [other, m] : members_) {
      if (other != id) cut(id, other);
    }
  }
  void heal() {
    cuts_.clear();
    drop_if = nullptr;
    mutate = nullptr;
  }
  /// Extra filter: messages for which it returns true are lost.
  std::function<bool(const Message&)> drop_if;
  /// Rewrites messages on the wire (for example: a shorter AppendEntries).
  std::function<void(Message&)> mutate;
  /// Called for every message a node sends (before any filter).
  std::function<void(const Message&)> on_send;

  /// Every message sent so far (including dropped ones).
  std::vector<Message> history;
  /// Messages sent and not yet delivered (or dropped).
  std::vector<Message> in_flight;

  [[nodiscard]] std::vector<Message> sent(MessageType type, std::uint64_t from,
                                          std::optional<std::uint64_t> to = std::nullopt,
                                          std::size_t since = 0) const {
    std::vector<Message> out;
    for (std::size_t k = since; k < history.size(); ++k) {
      const Message& m = history[k];
      if (m.type == type && m.from == N(from) && (!to || m.to == N(*to))) out.push_back(m);
    }
    return out;
  }

  // -- driving --
  /// Handles every pending Ready of node `id` following the Ready contract.
  void process(std::uint64_t id) {
    if (!up(id)) return;
    Raft& r = node(id);
    for (int guard = 0; r.has_ready(); ++guard) {
      REQUIRE(guard < 1000);
      Ready rd = r.ready();
      check_ready_contract(r, rd);
      send_all(rd.messages);
      complete_ready(id, rd);
    }
  }

  /// Steps 2-4 of the Ready contract for a Ready taken by the test itself: persist, send
  /// messages_after_persist, acknowledge, apply.
  void complete_ready(std::uint64_t id, const Ready& rd) {
    Member& mem = member(id);
    Raft& r = *mem.raft;
    mem.storage.persist(rd);
    if (rd.snapshot && mem.applied_index < rd.snapshot->index) {
      mem.applied_index = rd.snapshot->index;
    }
    send_all(rd.messages_after_persist);
    r.ack_persisted(rd.persist_mark);
    for (const auto& e : rd.committed) {
      INFO("Figure 2: entries are applied in log order, each exactly once (node " << id << ")");
      CHECK(e.index == mem.applied_index.next());
      mem.applied_index = e.index;
      mem.applied.push_back(e);
    }
    if (!rd.committed.empty()) mem.storage.applied = rd.committed.back().index;
    for (const auto& rs : rd.read_states) mem.reads.push_back(rs);
  }

  /// Puts messages on the network (subject to cuts and drop_if).
  void send_all(const std::vector<Message>& ms) {
    for (const auto& m : ms) send(m);
  }

  /// Removes and returns the in-flight messages matching `pred` (to deliver by hand).
  std::vector<Message> take_in_flight(const std::function<bool(const Message&)>& pred) {
    std::vector<Message> out;
    std::vector<Message> rest;
    for (auto& m : in_flight) (pred(m) ? out : rest).push_back(m);
    in_flight.swap(rest);
    return out;
  }

  void process_all() {
    for (auto& [id, m] : members_) process(id);
  }

  /// Delivers every message currently in flight once; returns how many were delivered.
  std::size_t deliver_round() {
    std::vector<Message> batch;
    batch.swap(in_flight);
    std::size_t delivered = 0;
    for (const auto& m : batch) {
      const std::uint64_t to = m.to.value();
      if (!up(to) || dropped(m)) continue;
      Status st = node(to).step(m);
      if (!st.is_ok()) step_errors.push_back(core::describe(m) + " -> " + st.to_string());
      ++delivered;
      process(to);
    }
    return delivered;
  }

  /// Processes and delivers until no message is in flight and no node has a Ready.
  void stabilize() {
    process_all();
    for (int round = 0; !in_flight.empty(); ++round) {
      INFO("the cluster did not quiesce");
      REQUIRE(round < 10000);
      deliver_round();
      process_all();
    }
  }

  void tick(std::uint64_t id, std::uint32_t n = 1) {
    for (std::uint32_t k = 0; k < n; ++k) {
      if (!up(id)) return;
      node(id).tick();
      process(id);
    }
  }
  /// Ticks every running node once, `n` times, stabilizing after each round.
  void tick_all(std::uint32_t n = 1) {
    for (std::uint32_t k = 0; k < n; ++k) {
      for (auto& [id, m] : members_) {
        if (m.raft) {
          m.raft->tick();
          process(id);
        }
      }
      stabilize();
    }
  }
  /// Ticks the leader `n` times, stabilizing after each tick (heartbeats, catch-up).
  void settle(std::uint64_t leader, std::uint32_t n = 3) {
    for (std::uint32_t k = 0; k < n; ++k) {
      tick(leader);
      stabilize();
    }
  }

  /// Ticks only node `id` until it is leader (stabilizing after every tick).
  void elect(std::uint64_t id) {
    stabilize();
    for (int k = 0; k < 50 * static_cast<int>(kElectionTicks); ++k) {
      if (node(id).role() == Role::Leader) break;
      tick(id);
      stabilize();
    }
    INFO("node " << id << " failed to win an election: " << node(id).describe());
    REQUIRE(node(id).role() == Role::Leader);
    stabilize();
  }

  /// Ticks every node until some running node is leader; returns it (0 if none).
  std::uint64_t wait_for_leader(std::uint32_t max_ticks = 50 * kElectionTicks) {
    for (std::uint32_t k = 0; k < max_ticks; ++k) {
      if (auto l = leader()) return l;
      tick_all();
    }
    return leader();
  }

  /// The running leader with the highest term (0 if none).
  std::uint64_t leader() {
    std::uint64_t best = 0;
    Term best_term;
    for (auto& [id, m] : members_) {
      if (m.raft && m.raft->role() == Role::Leader && (best == 0 || m.raft->term() > best_term)) {
        best = id;
        best_term = m.raft->term();
      }
    }
    return best;
  }

  EntryId propose(std::uint64_t id, std::string_view command) {
    auto r = node(id).propose(Bytes::copy_of(command));
    INFO("propose on node " << id << ": " << r.status().to_string());
    REQUIRE(r.is_ok());
    return r.value();
  }

  /// Compacts node `id` up to `index` and records the snapshot in its storage.
  void compact(std::uint64_t id, LogIndex index, std::string_view data = "snapshot") {
    Status st = node(id).compact(index, Bytes::copy_of(data));
    INFO("compact: " << st.to_string());
    REQUIRE(st.is_ok());
    Storage& s = storage(id);
    s.snapshot = node(id).log().snapshot();
    std::vector<Entry> kept;
    for (const auto& e : s.entries) {
      if (e.index > index) kept.push_back(e);
    }
    s.entries = std::move(kept);
    process(id);
  }

  const std::vector<ReadState>& reads(std::uint64_t id) { return member(id).reads; }

  std::vector<std::string> step_errors;

 private:
  struct Member {
    RaftOptions options;
    Storage storage;
    std::optional<Raft> raft;
    std::vector<Entry> applied;
    LogIndex applied_index;
    std::vector<ReadState> reads;
  };

  Member& member(std::uint64_t id) {
    auto it = members_.find(id);
    INFO("no node " << id << " in the test cluster");
    REQUIRE(it != members_.end());
    return it->second;
  }

  void start(std::uint64_t id) {
    Member& m = member(id);
    m.raft.reset();
    m.raft.emplace(make_raft(m.options, m.storage.restore_state()));
    m.applied_index = std::max(m.storage.applied, m.storage.snapshot.index);
    // Messages in flight to a restarted node from before the crash are lost.
    std::erase_if(in_flight, [id](const Message& msg) { return msg.to == N(id); });
  }

  bool dropped(const Message& m) const {
    if (cuts_.count({m.from.value(), m.to.value()}) != 0) return true;
    return drop_if && drop_if(m);
  }

  void send(const Message& m) {
    history.push_back(m);
    if (on_send) on_send(m);
    if (dropped(m)) return;
    in_flight.push_back(m);
    if (mutate) mutate(in_flight.back());
  }

  bool paper_;
  Tweak tweak_;
  std::map<std::uint64_t, Member> members_;
  std::set<std::pair<std::uint64_t, std::uint64_t>> cuts_;
};

}  // namespace rlr::test
