// node::Replica on its own: no threads, a memory store, a transport that records what
// leaves, and a clock the test moves. Each case drives the step object directly.

#include <catch2/catch.hpp>
#include "core/entry_payloads.h"

#include <chrono>
#include <memory>
#include <optional>
#include <vector>

#include "node/replica.h"
#include "node/sessions.h"
#include "storage/memory_storage.h"

namespace rlr::node {
namespace {

using namespace std::chrono_literals;

/// Keeps what the replica sends, for the test to answer.
class RecordingTransport final : public transport::Transport {
 public:
  Status start(transport::Inbox& /*inbox*/) override { return Status::ok(); }
  void send(std::vector<core::Message>& msgs) override {
    for (auto& m : msgs) sent.push_back(std::move(m));
    msgs.clear();
  }
  void send_digests(wire::DigestReport /*report*/) override {}  // a replica sends none
  void set_peer(NodeId /*id*/, const std::string& /*address*/) override {}
  void stop() override {}
  std::vector<core::Message> sent;
};

class QuietObserver final : public ReplicaObserver {
 public:
  void on_soft_state(const core::SoftState& /*s*/) override {}
  void on_committed(const std::vector<Entry>& entries) override {
    committed.insert(committed.end(), entries.begin(), entries.end());
  }
  void on_snapshot_installed(LogIndex index) override { snapshot_at = index; }
  void on_config(const core::Configuration& /*config*/) override {}
  LogIndex compaction_floor() override { return LogIndex{~std::uint64_t{0}}; }
  void log(LogLevel, std::string_view line) override { warnings.emplace_back(line); }
  std::vector<Entry> committed;
  std::optional<LogIndex> snapshot_at;
  std::vector<std::string> warnings;
};

/// Node 1 of a two-voter cluster {1, 2}; the test plays node 2.
struct Harness {
  explicit Harness() {
    core::Configuration config;
    config.voters = {NodeId{1}, NodeId{2}};
    store = std::make_unique<storage::MemoryStorage>(storage::Identity{"test", NodeId{1}}, config);
    options.id = NodeId{1};
    options.check_invariants = true;
    core::RaftOptions ro = raft_options_for(options);
    ro.random_seed = 7;
    auto r = Replica::open(options, ro, ReplicaParts{*store, transport, observer, nullptr});
    REQUIRE(r.is_ok());
    replica = std::move(r).value();
  }

  /// Node 2 answers everything node 1 sent: grants votes, accepts appends.
  void answer_peer() {
    std::vector<core::Message> sent = std::move(transport.sent);
    transport.sent.clear();
    for (const core::Message& m : sent) {
      core::Message reply;
      reply.from = NodeId{2};
      reply.to = NodeId{1};
      reply.term = m.term;
      switch (m.type) {
        case core::MessageType::PreVote: reply.type = core::MessageType::PreVoteResponse; break;
        case core::MessageType::Vote: reply.type = core::MessageType::VoteResponse; break;
        case core::MessageType::Append:
          reply.type = core::MessageType::AppendResponse;
          reply.log_index = m.entries.empty() ? m.log_index : m.entries.back().index;
          break;
        case core::MessageType::Heartbeat:
          reply.type = core::MessageType::HeartbeatResponse;
          reply.context = m.context;
          break;
        default: continue;
      }
      replica->step(reply);
    }
    replica->process_ready();
  }

  /// Ticks until node 1 leads (node 2 grants every vote).
  void elect() {
    for (int i = 0; i < 200 && replica->core().role() != Role::Leader; ++i) {
      now += 10ms;
      replica->tick(now);
      replica->process_ready();
      answer_peer();
    }
    REQUIRE(replica->core().role() == Role::Leader);
  }

  /// Proposes one session command alone, as leader, and handles what became ready.
  void propose_session(std::uint64_t client, std::uint64_t sequence,
                       std::vector<Result<ProposeResult>>& results);

  /// Runs the completions produced so far.
  void complete() {
    std::vector<Completion> done = std::move(replica->completions());
    replica->completions().clear();
    for (auto& c : done) c.run();
  }

  NodeOptions options;
  std::unique_ptr<storage::MemoryStorage> store;
  RecordingTransport transport;
  QuietObserver observer;
  std::unique_ptr<Replica> replica;
  Clock::time_point now{};
};

Proposal session_proposal(std::uint64_t client, std::uint64_t sequence,
                          std::vector<Result<ProposeResult>>& results) {
  return Proposal{Bytes::copy_of("order"),
                  [&results](Result<ProposeResult> r) { results.push_back(std::move(r)); },
                  EntryKind::Session, ClientSession{client, sequence}};
}

void Harness::propose_session(std::uint64_t client, std::uint64_t sequence,
                              std::vector<Result<ProposeResult>>& results) {
  std::vector<Proposal> batch;
  batch.push_back(session_proposal(client, sequence, results));
  replica->propose(batch, now);
  replica->process_ready();
}

std::size_t session_copies(const std::vector<Entry>& log, std::uint64_t client, std::uint64_t sequence) {
  std::size_t n = 0;
  for (const Entry& e : log) {
    if (e.kind != EntryKind::Session) continue;
    const auto c = core::decode_session_command(e.payload);
    if (c && c->client_id == client && c->sequence == sequence) ++n;
  }
  return n;
}

/// Node 2, leading term 2, sends its snapshot at index 10 carrying `data`.
core::Message snapshot_from_node2(Bytes data) {
  core::Message snap;
  snap.type = core::MessageType::Snapshot;
  snap.from = NodeId{2};
  snap.to = NodeId{1};
  snap.term = Term{2};
  snap.snapshot = core::SnapshotMeta{};
  snap.snapshot->index = LogIndex{10};
  snap.snapshot->term = Term{2};
  snap.snapshot->config.voters = {NodeId{1}, NodeId{2}};
  snap.snapshot->data = std::move(data);
  return snap;
}

TEST_CASE("a session command twice in one batch is appended once and both answers name it",
          "[replica][sessions]") {
  Harness h;
  h.elect();
  std::vector<Result<ProposeResult>> results;
  std::vector<Proposal> batch;
  batch.push_back(session_proposal(9, 1, results));
  batch.push_back(session_proposal(9, 1, results));
  h.replica->propose(batch, h.now);
  h.replica->process_ready();
  for (int i = 0; i < 5; ++i) h.answer_peer();
  h.complete();
  REQUIRE(results.size() == 2);
  REQUIRE(results[0].is_ok());
  REQUIRE(results[1].is_ok());
  CHECK(results[0].value().index == results[1].value().index);
  CHECK(session_copies(h.observer.committed, 9, 1) == 1);
}

TEST_CASE("a retry after a snapshot install finds the original entry in the snapshot's "
          "session table",
          "[replica][sessions]") {
  Harness h;
  // Node 2, leading term 2, sends a snapshot at index 10 whose session table holds
  // sequence 1 of client 7, committed at index 5.
  SessionTable table(h.options.session_ttl_entries, h.options.max_sessions);
  (void)table.apply(LogIndex{5}, Term{2}, 7, 1);
  h.replica->step(snapshot_from_node2(table.encode()));
  h.replica->process_ready();
  REQUIRE(h.observer.snapshot_at == LogIndex{10});
  REQUIRE(h.observer.warnings.empty());

  h.elect();
  std::vector<Result<ProposeResult>> results;
  std::vector<Proposal> batch;
  batch.push_back(session_proposal(7, 1, results));
  const LogIndex last = h.replica->core().log().last_index();
  h.replica->propose(batch, h.now);
  h.replica->process_ready();
  h.complete();
  REQUIRE(results.size() == 1);
  REQUIRE(results[0].is_ok());
  CHECK(results[0].value().index == LogIndex{5});
  CHECK(h.replica->core().log().last_index() == last);  // nothing appended
}

TEST_CASE("a snapshot with a malformed session table stops the replica with Corruption",
          "[replica][sessions]") {
  Harness h;
  h.replica->step(snapshot_from_node2(Bytes::copy_of("not a session table")));
  h.replica->process_ready();
  CHECK(h.replica->failed());
  REQUIRE(h.observer.warnings.size() == 1);
  CHECK(h.observer.warnings.front().find("malformed session table") != std::string::npos);
}

TEST_CASE("max_pending_proposals bounds what waits for commit, across turns", "[replica][bounds]") {
  Harness h;
  h.options.max_pending_proposals = 3;
  // Re-open with the bound (the harness opened with the default).
  core::RaftOptions ro = raft_options_for(h.options);
  ro.random_seed = 7;
  auto r = Replica::open(h.options, ro, ReplicaParts{*h.store, h.transport, h.observer, nullptr});
  REQUIRE(r.is_ok());
  h.replica = std::move(r).value();
  h.elect();
  h.transport.sent.clear();  // node 2 stops answering: nothing commits
  std::vector<Result<ProposeResult>> results;
  for (int turn = 0; turn < 3; ++turn) {
    std::vector<Proposal> batch;
    batch.push_back(Proposal{Bytes::copy_of("x"),
                             [&results](Result<ProposeResult> res) { results.push_back(std::move(res)); },
                             EntryKind::Normal, ClientSession{}});
    batch.push_back(Proposal{Bytes::copy_of("y"),
                             [&results](Result<ProposeResult> res) { results.push_back(std::move(res)); },
                             EntryKind::Normal, ClientSession{}});
    h.replica->propose(batch, h.now);
    h.replica->process_ready();
    h.complete();
  }
  CHECK(h.replica->waiters().pending_proposals() == 3);
  REQUIRE(results.size() == 3);  // the other three were refused
  for (const auto& res : results) CHECK(res.status().code() == ErrorCode::Busy);
}

TEST_CASE("waiters time out at their deadline and a stop answers the rest", "[replica][waiters]") {
  Harness h;
  h.elect();
  h.transport.sent.clear();
  std::vector<Result<ProposeResult>> results;
  std::vector<Proposal> batch;
  batch.push_back(Proposal{Bytes::copy_of("x"),
                           [&results](Result<ProposeResult> res) { results.push_back(std::move(res)); },
                           EntryKind::Normal, ClientSession{}});
  h.replica->propose(batch, h.now);
  std::optional<Status> read;
  h.replica->read_index(h.now + 1h, [&read](Result<LogIndex> res) { read = res.status(); });
  h.replica->process_ready();
  h.replica->tick(h.now + h.options.proposal_timeout);
  h.complete();
  REQUIRE(results.size() == 1);
  CHECK(results[0].status().code() == ErrorCode::Timeout);
  CHECK_FALSE(read.has_value());  // its deadline is later
  h.replica->shutdown(Status{ErrorCode::ShuttingDown, "stop"});
  REQUIRE(read.has_value());
  CHECK(read->code() == ErrorCode::ShuttingDown);
  CHECK(h.replica->waiters().size() == 0);
}

TEST_CASE("losing leadership answers waiting proposals and session retries at once",
          "[replica][waiters]") {
  Harness h;
  h.elect();
  h.transport.sent.clear();  // node 2 goes quiet: nothing commits
  std::vector<Result<ProposeResult>> results;
  h.propose_session(5, 1, results);
  h.propose_session(5, 1, results);  // the client's retry waits for it
  REQUIRE(h.replica->waiters().pending_proposals() == 2);
  // Node 2 leads a later term: node 1 hears its heartbeat and steps down.
  core::Message heartbeat;
  heartbeat.type = core::MessageType::Heartbeat;
  heartbeat.from = NodeId{2};
  heartbeat.to = NodeId{1};
  heartbeat.term = h.replica->core().term().next();
  h.replica->step(heartbeat);
  h.replica->process_ready();
  h.complete();
  REQUIRE(h.replica->core().role() != Role::Leader);
  REQUIRE(results.size() == 2);
  for (const auto& r : results) CHECK(r.status().code() == ErrorCode::Timeout);
  CHECK(h.replica->waiters().pending_proposals() == 0);
}

TEST_CASE("a session command whose entry another leader replaced is appended again on its "
          "retry, once this node leads again",
          "[replica][sessions]") {
  Harness h;
  h.elect();
  h.transport.sent.clear();  // node 2 goes quiet: nothing commits
  std::vector<Result<ProposeResult>> results;
  h.propose_session(7, 1, results);
  const LogIndex lost = h.replica->core().log().last_index();
  const Term before = h.replica->core().log().term_at(lost.prev()).value();
  // Node 2 leads the next term, replaces that entry with its own no-op, and commits it.
  core::Message append;
  append.type = core::MessageType::Append;
  append.from = NodeId{2};
  append.to = NodeId{1};
  append.term = h.replica->core().term().next();
  append.log_index = lost.prev();
  append.log_term = before;
  append.entries.push_back(Entry{lost, append.term, EntryKind::Noop, core::encode_noop(NodeId{2})});
  append.commit = lost;
  h.replica->step(append);
  h.replica->process_ready();
  h.complete();
  REQUIRE(h.replica->applied() == lost);
  REQUIRE(session_copies(h.observer.committed, 7, 1) == 0);
  // Node 1 leads again; the client's retry must be appended and commit.
  h.transport.sent.clear();
  h.elect();
  h.propose_session(7, 1, results);
  for (int i = 0; i < 5; ++i) h.answer_peer();
  h.complete();
  CHECK(session_copies(h.observer.committed, 7, 1) == 1);
  REQUIRE(results.size() == 2);  // the first answer: leadership lost
  REQUIRE(results[1].is_ok());
  CHECK(results[1].value().index > lost);
}

}  // namespace
}  // namespace rlr::node
