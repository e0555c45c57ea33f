// The node's storage thread (node/log_writer.h) on its own: group commit, order, failure.
#include <catch2/catch.hpp>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <vector>

#include "node/log_writer.h"
#include "storage/memory_storage.h"

using namespace rlr;
using namespace std::chrono_literals;

namespace {

std::vector<Entry> entries(std::uint64_t from, std::uint64_t to, std::uint64_t term) {
  std::vector<Entry> out;
  for (std::uint64_t i = from; i <= to; ++i) {
    out.push_back(Entry{LogIndex{i}, Term{term}, EntryKind::Normal, Bytes::copy_of("x")});
  }
  return out;
}

std::vector<std::uint64_t> indexes(const std::vector<Entry>& es) {
  std::vector<std::uint64_t> out;
  for (const auto& e : es) out.push_back(e.index.value());
  return out;
}

/// A MemoryStorage whose persist() can be held at a gate and made to fail.
class GatedStorage final : public storage::Storage {
 public:
  GatedStorage() : inner_(storage::Identity{"writer", NodeId{1}}, core::Configuration{}) {}
  [[nodiscard]] LogIndex first_index() const override { return inner_.first_index(); }
  [[nodiscard]] LogIndex last_index() const override { return inner_.last_index(); }
  [[nodiscard]] Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t n,
                                                std::size_t bytes) const override {
    return inner_.read(from, to, n, bytes);
  }
  [[nodiscard]] Result<storage::HardState> hard_state() const override { return inner_.hard_state(); }
  [[nodiscard]] Result<LogIndex> applied() const override { return inner_.applied(); }
  [[nodiscard]] storage::Identity identity() const override { return inner_.identity(); }
  [[nodiscard]] Result<storage::SnapshotMeta> snapshot() const override { return inner_.snapshot(); }
  [[nodiscard]] Status compact(const storage::SnapshotMeta& s) override { return inner_.compact(s); }
  [[nodiscard]] Status persist(const storage::PersistRequest& req) override {
    std::unique_lock lock(mu_);
    ++entered_;
    cv_.notify_all();
    cv_.wait(lock, [&] { return open_; });
    ++persists_;
    writes_.push_back(indexes(std::vector<Entry>(req.entries.begin(), req.entries.end())));
    if (fail_) return Status{ErrorCode::IoError, "disk full (test)"};
    return inner_.persist(req);
  }
  void close_gate() {
    std::lock_guard lock(mu_);
    open_ = false;
  }
  void open_gate() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void fail_from_now() {
    std::lock_guard lock(mu_);
    fail_ = true;
  }
  /// Waits until `n` calls to persist() have begun.
  bool wait_entered(int n) {
    std::unique_lock lock(mu_);
    return cv_.wait_for(lock, 10s, [&] { return entered_ >= n; });
  }
  std::vector<std::vector<std::uint64_t>> writes() {
    std::lock_guard lock(mu_);
    return writes_;
  }

 private:
  storage::MemoryStorage inner_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  bool fail_ = false;
  int entered_ = 0;
  int persists_ = 0;
  std::vector<std::vector<std::uint64_t>> writes_;
};

/// Records what is sent, and the storage's last index at that moment.
class Recorder final : public transport::Transport {
 public:
  explicit Recorder(const storage::Storage& s) : storage_(s) {}
  Status start(transport::Inbox& /*inbox*/) override { return Status::ok(); }
  void send(std::vector<core::Message>& msgs) override {
    std::lock_guard lock(mu_);
    for (auto& m : msgs) sent.emplace_back(m.log_index.value(), storage_.last_index().value());
    msgs.clear();
  }
  void send_digests(wire::DigestReport /*report*/) override {}  // a replica sends none
  void set_peer(NodeId /*id*/, const std::string& /*address*/) override {}
  void stop() override {}
  std::mutex mu_;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> sent;  ///< (message index, stored last index)

 private:
  const storage::Storage& storage_;
};

/// Collects the writer's callbacks.
struct Acks {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::uint64_t> marks;
  std::vector<Status> failures;
  bool wait_marks(std::size_t n) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, 10s, [&] { return marks.size() >= n; });
  }
};

/// A writer on a GatedStorage, its callbacks recorded in `acks`.
struct Rig {
  GatedStorage storage;
  Recorder transport{storage};
  Acks acks;
  node::LogWriter writer{storage, transport,
                         [this](std::vector<core::PersistMark>&& marks, std::chrono::nanoseconds /*took*/) {
                           std::lock_guard lock(acks.mu);
                           for (auto& m : marks) acks.marks.push_back(m.index.value());
                           acks.cv.notify_all();
                         },
                         [this](const Status& s) {
                           std::lock_guard lock(acks.mu);
                           acks.failures.push_back(s);
                         }};
};

node::WriteStep step(std::vector<Entry> es, std::uint64_t mark, std::uint64_t ack_index) {
  node::WriteStep s;
  s.mark.index = LogIndex{mark};
  s.mark.term = Term{1};
  if (!es.empty()) s.hard_state = core::HardState{Term{1}, NodeId{}, LogIndex{}};
  s.entries = std::move(es);
  core::Message m;
  m.type = core::MessageType::AppendResponse;
  m.from = NodeId{1};
  m.to = NodeId{2};
  m.log_index = LogIndex{ack_index};
  s.after_persist.push_back(m);
  return s;
}

}  // namespace

TEST_CASE("merge_entries: a later step replaces the suffix it overlaps", "[log-writer]") {
  std::vector<Entry> into;
  node::merge_entries(into, entries(5, 7, 1));
  CHECK(indexes(into) == std::vector<std::uint64_t>{5, 6, 7});
  node::merge_entries(into, entries(8, 9, 1));  // appends
  CHECK(indexes(into) == std::vector<std::uint64_t>{5, 6, 7, 8, 9});
  node::merge_entries(into, entries(7, 7, 2));  // §5.3: a conflict truncates from 7
  CHECK(indexes(into) == std::vector<std::uint64_t>{5, 6, 7});
  CHECK(into.back().term == Term{2});
  node::merge_entries(into, entries(3, 4, 3));  // starts before: replaces all of it
  CHECK(indexes(into) == std::vector<std::uint64_t>{3, 4});
  node::merge_entries(into, {});
  CHECK(indexes(into) == std::vector<std::uint64_t>{3, 4});
}

TEST_CASE("LogWriter: steps queued during a write go out in one write, acknowledged in order",
          "[log-writer]") {
  Rig rig;
  GatedStorage& storage = rig.storage;
  Recorder& transport = rig.transport;
  Acks& acks = rig.acks;
  node::LogWriter& writer = rig.writer;

  storage.close_gate();
  writer.submit(step(entries(1, 3, 1), 3, 3));
  REQUIRE(storage.wait_entered(1));  // the first write is under way (and held)
  CHECK_FALSE(writer.idle());
  writer.submit(step(entries(4, 6, 1), 6, 6));
  writer.submit(step({}, 6, 6));                 // nothing to write: waits its turn
  writer.submit(step(entries(6, 8, 2), 8, 8));  // replaces 6 (new term)
  {
    std::lock_guard lock(acks.mu);
    INFO("nothing is acknowledged before it is durable");
    CHECK(acks.marks.empty());
  }
  {
    std::lock_guard lock(transport.mu_);
    CHECK(transport.sent.empty());
  }
  storage.open_gate();
  REQUIRE(acks.wait_marks(4));
  writer.drain();
  CHECK(writer.idle());

  const auto writes = storage.writes();
  INFO("group commit: the three queued steps are one write, merged");
  REQUIRE(writes.size() == 2);
  CHECK(writes[0] == std::vector<std::uint64_t>{1, 2, 3});
  CHECK(writes[1] == std::vector<std::uint64_t>{4, 5, 6, 7, 8});
  CHECK(writer.writes() == 2);
  CHECK(writer.steps_written() == 4);
  {
    std::lock_guard lock(acks.mu);
    CHECK(acks.marks == std::vector<std::uint64_t>{3, 6, 6, 8});
    CHECK(acks.failures.empty());
  }
  auto stored = storage.read(LogIndex{1}, LogIndex{8}, 100, 1U << 20);
  REQUIRE(stored.is_ok());
  CHECK(stored.value().size() == 8);
  CHECK(stored.value()[5].term == Term{2});  // index 6 was replaced
  std::lock_guard lock(transport.mu_);
  REQUIRE(transport.sent.size() == 4);
  for (const auto& [acked, stored_last] : transport.sent) {
    INFO("an acknowledgement of index " << acked << " left when storage held " << stored_last);
    CHECK(stored_last >= acked);
  }
}

TEST_CASE("LogWriter: after a failed write nothing more is acknowledged", "[log-writer]") {
  Rig rig;
  GatedStorage& storage = rig.storage;
  Recorder& transport = rig.transport;
  Acks& acks = rig.acks;
  node::LogWriter& writer = rig.writer;
  writer.submit(step(entries(1, 2, 1), 2, 2));
  REQUIRE(acks.wait_marks(1));
  writer.drain();
  storage.fail_from_now();
  writer.submit(step(entries(3, 4, 1), 4, 4));
  writer.drain();
  writer.submit(step(entries(5, 5, 1), 5, 5));
  writer.submit(step({}, 5, 5));
  writer.drain();
  writer.stop();
  std::lock_guard lock(acks.mu);
  CHECK(acks.marks == std::vector<std::uint64_t>{2});
  REQUIRE(acks.failures.size() == 1);
  CHECK(acks.failures[0].code() == ErrorCode::IoError);
  INFO("steps after the failure are dropped, not written");
  CHECK(storage.writes().size() == 2);
  std::lock_guard tlock(transport.mu_);
  CHECK(transport.sent.size() == 1);
}
