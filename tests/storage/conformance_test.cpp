// The Storage contract (src/storage/storage.h), checked against every implementation.
// Each TEMPLATE_TEST_CASE runs once with MemoryStorage and once with RocksDbStorage.

#include <atomic>
#include <chrono>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include <fmt/format.h>

#include <catch2/catch.hpp>

#include "core/raft.h"
#include "storage_fixtures.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

SnapshotMeta snapshot_at(std::uint64_t index, std::uint64_t term,
                         core::Configuration config = config_of({1, 2, 3}),
                         std::string_view data = "sessions") {
  SnapshotMeta s;
  s.index = LogIndex{index};
  s.term = Term{term};
  s.config = std::move(config);
  s.data = Bytes::copy_of(data);
  return s;
}

/// The log is exactly `expected`, both through read_all and first/last_index.
void require_log(const Storage& s, const std::vector<Entry>& expected, std::uint64_t first) {
  REQUIRE(s.first_index() == LogIndex{first});
  REQUIRE(s.last_index() == LogIndex{first - 1 + expected.size()});
  REQUIRE(read_all(s) == expected);
}

std::vector<Entry> concat(std::vector<Entry> a, const std::vector<Entry>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEMPLATE_TEST_CASE("a fresh store is empty with the initial configuration at index 0",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  // Unsorted voters with a duplicate: the store keeps the normalized configuration.
  core::Configuration initial;
  initial.voters = {NodeId{3}, NodeId{1}, NodeId{2}, NodeId{1}};
  auto s = fx.make(initial, Identity{"fresh", NodeId{7}});

  CHECK(s->first_index() == LogIndex{1});
  CHECK(s->last_index() == LogIndex{0});
  auto snap = s->snapshot();
  RLR_REQUIRE_OK(snap);
  CHECK(snap.value().index == LogIndex{0});
  CHECK(snap.value().term == Term{0});
  CHECK(snap.value().config == config_of({1, 2, 3}));
  CHECK(snap.value().data.empty());
  auto hs = s->hard_state();
  RLR_REQUIRE_OK(hs);
  CHECK(hs.value() == HardState{});
  auto applied = s->applied();
  RLR_REQUIRE_OK(applied);
  CHECK(applied.value() == LogIndex{0});
  CHECK(s->identity() == Identity{"fresh", NodeId{7}});
  // An empty range reads as empty; one past the end is out of range.
  auto empty = s->read(LogIndex{1}, LogIndex{0}, kAll, kAll);
  RLR_REQUIRE_OK(empty);
  CHECK(empty.value().empty());
  RLR_REQUIRE_CODE(s->read(LogIndex{1}, LogIndex{1}, kAll, kAll), ErrorCode::InvalidArgument);
}

TEMPLATE_TEST_CASE("a node that joins later starts with an empty configuration",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make(core::Configuration{});
  auto snap = s->snapshot();
  RLR_REQUIRE_OK(snap);
  CHECK(snap.value().index == LogIndex{0});
  CHECK(snap.value().config == core::Configuration{});
  CHECK(s->first_index() == LogIndex{1});
  CHECK(s->last_index() == LogIndex{0});
}

TEMPLATE_TEST_CASE("entries read back exactly as written", "[conformance]", MemoryFixture,
                   RocksFixture) {
  TestType fx;
  auto s = fx.make();
  core::Configuration joint = config_of({1, 2, 4});
  joint.voters_outgoing = {NodeId{1}, NodeId{2}, NodeId{3}};
  joint.learners = {NodeId{9}};
  std::vector<Entry> es;
  es.push_back(make_entry(1, 1, 0, EntryKind::Noop));                 // empty payload
  es.push_back(make_entry(2, 1, 1));                                  // one byte
  Entry cfg = make_entry(3, 1, 0, EntryKind::Config);
  cfg.payload = core::encode_configuration(joint);
  es.push_back(cfg);
  es.push_back(make_entry(4, 2, 3U << 20));                           // 3 MiB
  Entry zeros = make_entry(5, 2, 0);
  zeros.payload = Bytes(std::vector<std::uint8_t>(4096, 0));          // all-zero bytes
  es.push_back(zeros);
  es.push_back(make_entry(6, 7, 100, EntryKind::Normal));
  RLR_REQUIRE_OK(append(*s, es));

  require_log(*s, es, 1);
  auto mid = s->read(LogIndex{3}, LogIndex{4}, kAll, kAll);
  RLR_REQUIRE_OK(mid);
  REQUIRE(mid.value().size() == 2);
  CHECK(mid.value()[0] == es[2]);
  CHECK(mid.value()[1] == es[3]);
  auto decoded = core::decode_configuration(mid.value()[0].payload.span());
  RLR_REQUIRE_OK(decoded);
  CHECK(decoded.value() == joint);

  // Appending at last + 1 extends the log.
  auto more = make_entries(7, 9, 7, 32);
  RLR_REQUIRE_OK(append(*s, more));
  require_log(*s, concat(es, more), 1);
}

TEMPLATE_TEST_CASE("reads are bounded by count and bytes but return at least one entry",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  const auto es = make_entries(1, 10, 1, 100);
  RLR_REQUIRE_OK(append(*s, es));

  auto by_count = s->read(LogIndex{2}, LogIndex{10}, 3, kAll);
  RLR_REQUIRE_OK(by_count);
  CHECK(by_count.value() == std::vector<Entry>(es.begin() + 1, es.begin() + 4));

  auto exact_bytes = s->read(LogIndex{1}, LogIndex{10}, kAll, 300);
  RLR_REQUIRE_OK(exact_bytes);
  CHECK(exact_bytes.value().size() == 3);

  auto under_bytes = s->read(LogIndex{1}, LogIndex{10}, kAll, 299);
  RLR_REQUIRE_OK(under_bytes);
  CHECK(under_bytes.value().size() == 2);

  // A single entry larger than the byte budget is still returned.
  auto tiny = s->read(LogIndex{4}, LogIndex{10}, kAll, 1);
  RLR_REQUIRE_OK(tiny);
  REQUIRE(tiny.value().size() == 1);
  CHECK(tiny.value()[0] == es[3]);
  auto zero = s->read(LogIndex{4}, LogIndex{10}, kAll, 0);
  RLR_REQUIRE_OK(zero);
  CHECK(zero.value().size() == 1);

  // Both limits at once: the tighter one wins.
  auto both = s->read(LogIndex{1}, LogIndex{10}, 5, 250);
  RLR_REQUIRE_OK(both);
  CHECK(both.value().size() == 2);
  auto one = s->read(LogIndex{1}, LogIndex{10}, 1, kAll);
  RLR_REQUIRE_OK(one);
  CHECK(one.value() == std::vector<Entry>{es[0]});
}

TEMPLATE_TEST_CASE("entries from an index at or below the last replace the suffix",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  auto log = make_entries(1, 10, 1);
  RLR_REQUIRE_OK(append(*s, log));

  SECTION("a shorter conflicting suffix shortens the log") {
    const auto conflict = make_entries(6, 7, 2, 40);
    RLR_REQUIRE_OK(append(*s, conflict));
    auto expected = concat(std::vector<Entry>(log.begin(), log.begin() + 5), conflict);
    require_log(*s, expected, 1);
    RLR_REQUIRE_CODE(s->read(LogIndex{8}, LogIndex{8}, kAll, kAll), ErrorCode::InvalidArgument);
    // The log continues from the new end, not the old one.
    const auto next = make_entries(8, 8, 2);
    RLR_REQUIRE_OK(append(*s, next));
    require_log(*s, concat(expected, next), 1);
  }
  SECTION("a longer conflicting suffix extends past the old end") {
    const auto conflict = make_entries(9, 15, 3);
    RLR_REQUIRE_OK(append(*s, conflict));
    require_log(*s, concat(std::vector<Entry>(log.begin(), log.begin() + 8), conflict), 1);
  }
  SECTION("replacing only the last entry") {
    const auto conflict = make_entries(10, 10, 4, 0);
    RLR_REQUIRE_OK(append(*s, conflict));
    require_log(*s, concat(std::vector<Entry>(log.begin(), log.begin() + 9), conflict), 1);
  }
  SECTION("replacing the whole log from index 1") {
    const auto conflict = make_entries(1, 3, 5);
    RLR_REQUIRE_OK(append(*s, conflict));
    require_log(*s, conflict, 1);
  }
}

TEMPLATE_TEST_CASE("hard state, entries and applied checkpoint persist in one request",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  const auto es = make_entries(1, 5, 3);
  PersistRequest req;
  req.entries = es;
  req.hard_state = HardState{Term{3}, NodeId{2}, LogIndex{4}};
  req.applied = LogIndex{2};
  RLR_REQUIRE_OK(s->persist(req));
  require_log(*s, es, 1);
  CHECK(s->hard_state().value() == HardState{Term{3}, NodeId{2}, LogIndex{4}});
  CHECK(s->applied().value() == LogIndex{2});

  SECTION("a hard state alone leaves the log alone") {
    PersistRequest hs_only;
    hs_only.hard_state = HardState{Term{4}, kNoNode, LogIndex{5}};
    RLR_REQUIRE_OK(s->persist(hs_only));
    CHECK(s->hard_state().value() == HardState{Term{4}, kNoNode, LogIndex{5}});
    CHECK(s->applied().value() == LogIndex{2});
    require_log(*s, es, 1);
  }
  SECTION("the applied checkpoint alone moves without touching anything else") {
    PersistRequest ap;
    ap.applied = LogIndex{5};
    RLR_REQUIRE_OK(s->persist(ap));
    CHECK(s->applied().value() == LogIndex{5});
    CHECK(s->hard_state().value() == HardState{Term{3}, NodeId{2}, LogIndex{4}});
    require_log(*s, es, 1);
  }
  SECTION("an empty request changes nothing") {
    RLR_REQUIRE_OK(s->persist(PersistRequest{}));
    CHECK(s->hard_state().value() == HardState{Term{3}, NodeId{2}, LogIndex{4}});
    require_log(*s, es, 1);
  }
  SECTION("a rejected request writes none of its parts") {
    const auto gap = make_entries(7, 8, 3);
    PersistRequest bad;
    bad.entries = gap;
    bad.hard_state = HardState{Term{9}, NodeId{3}, LogIndex{8}};
    bad.applied = LogIndex{4};
    RLR_REQUIRE_CODE(s->persist(bad), ErrorCode::InvalidArgument);
    CHECK(s->hard_state().value() == HardState{Term{3}, NodeId{2}, LogIndex{4}});
    CHECK(s->applied().value() == LogIndex{2});
    require_log(*s, es, 1);
  }
}

TEMPLATE_TEST_CASE("entries that do not continue the log are rejected with InvalidArgument",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  const auto log = make_entries(1, 5, 1);
  RLR_REQUIRE_OK(append(*s, log));

  SECTION("a gap after the last index") {
    RLR_REQUIRE_CODE(append(*s, make_entries(7, 8, 1)), ErrorCode::InvalidArgument);
  }
  SECTION("a gap inside the batch") {
    std::vector<Entry> holey{make_entry(6, 1), make_entry(7, 1), make_entry(9, 1)};
    RLR_REQUIRE_CODE(append(*s, holey), ErrorCode::InvalidArgument);
  }
  SECTION("a repeated index inside the batch") {
    std::vector<Entry> twice{make_entry(6, 1), make_entry(6, 1)};
    RLR_REQUIRE_CODE(append(*s, twice), ErrorCode::InvalidArgument);
  }
  SECTION("a batch in descending order") {
    std::vector<Entry> down{make_entry(5, 2), make_entry(4, 2)};
    RLR_REQUIRE_CODE(append(*s, down), ErrorCode::InvalidArgument);
  }
  SECTION("index 0") {
    RLR_REQUIRE_CODE(append(*s, {make_entry(0, 1)}), ErrorCode::InvalidArgument);
  }
  SECTION("at or below the snapshot after compaction") {
    RLR_REQUIRE_OK(s->compact(snapshot_at(3, 1)));
    RLR_REQUIRE_CODE(append(*s, make_entries(3, 6, 2)), ErrorCode::InvalidArgument);
    RLR_REQUIRE_CODE(append(*s, make_entries(1, 6, 2)), ErrorCode::InvalidArgument);
    require_log(*s, std::vector<Entry>(log.begin() + 3, log.end()), 4);
    return;
  }
  require_log(*s, log, 1);
}

TEMPLATE_TEST_CASE("reads outside the retained log fail with typed errors", "[conformance]",
                   MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  RLR_REQUIRE_OK(append(*s, make_entries(1, 10, 1)));
  RLR_REQUIRE_CODE(s->read(LogIndex{1}, LogIndex{11}, kAll, kAll), ErrorCode::InvalidArgument);
  RLR_REQUIRE_CODE(s->read(LogIndex{11}, LogIndex{11}, kAll, kAll), ErrorCode::InvalidArgument);
  RLR_REQUIRE_CODE(s->read(LogIndex{0}, LogIndex{3}, kAll, kAll), ErrorCode::Compacted);
  RLR_REQUIRE_OK(s->compact(snapshot_at(4, 1)));
  RLR_REQUIRE_CODE(s->read(LogIndex{4}, LogIndex{6}, kAll, kAll), ErrorCode::Compacted);
  RLR_REQUIRE_CODE(s->read(LogIndex{1}, LogIndex{10}, kAll, kAll), ErrorCode::Compacted);
  RLR_REQUIRE_CODE(s->read(LogIndex{5}, LogIndex{12}, kAll, kAll), ErrorCode::InvalidArgument);
}

TEMPLATE_TEST_CASE("compaction drops the prefix and keeps the retained entries intact",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  auto log = concat(make_entries(1, 60, 1, 64), make_entries(61, 100, 2, 64));
  RLR_REQUIRE_OK(append(*s, log, HardState{Term{2}, NodeId{1}, LogIndex{90}}));

  const SnapshotMeta snap = snapshot_at(70, 2, config_of({1, 2, 3}), "client sessions");
  RLR_REQUIRE_OK(s->compact(snap));
  require_log(*s, std::vector<Entry>(log.begin() + 70, log.end()), 71);
  CHECK(s->snapshot().value() == snap);
  RLR_REQUIRE_CODE(s->read(LogIndex{70}, LogIndex{71}, kAll, kAll), ErrorCode::Compacted);
  CHECK(s->hard_state().value() == HardState{Term{2}, NodeId{1}, LogIndex{90}});

  SECTION("a compaction at or below the snapshot is a no-op") {
    RLR_REQUIRE_OK(s->compact(snapshot_at(50, 1)));
    RLR_REQUIRE_OK(s->compact(snapshot_at(70, 2)));
    CHECK(s->snapshot().value() == snap);
    require_log(*s, std::vector<Entry>(log.begin() + 70, log.end()), 71);
  }
  SECTION("a compaction with the wrong term or beyond the end is refused") {
    RLR_REQUIRE_CODE(s->compact(snapshot_at(80, 1)), ErrorCode::InvalidArgument);
    RLR_REQUIRE_CODE(s->compact(snapshot_at(101, 2)), ErrorCode::InvalidArgument);
    CHECK(s->snapshot().value() == snap);
    require_log(*s, std::vector<Entry>(log.begin() + 70, log.end()), 71);
  }
  SECTION("the log continues after compaction, also after compacting everything") {
    const auto more = make_entries(101, 110, 3);
    RLR_REQUIRE_OK(append(*s, more));
    RLR_REQUIRE_OK(s->compact(snapshot_at(110, 3)));
    CHECK(s->first_index() == LogIndex{111});
    CHECK(s->last_index() == LogIndex{110});
    CHECK(read_all(*s).empty());
    const auto after = make_entries(111, 115, 3);
    RLR_REQUIRE_OK(append(*s, after));
    require_log(*s, after, 111);
  }
  SECTION("a conflicting suffix right after the snapshot") {
    const auto conflict = make_entries(71, 72, 5);
    RLR_REQUIRE_OK(append(*s, conflict));
    require_log(*s, conflict, 71);
  }
}

TEMPLATE_TEST_CASE("a snapshot from the leader keeps the suffix only when the terms match",
                   "[conformance]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  auto log = concat(make_entries(1, 5, 1), make_entries(6, 10, 2));
  RLR_REQUIRE_OK(append(*s, log));
  core::Configuration next_config = config_of({1, 2, 3, 4, 5});
  next_config.learners = {NodeId{6}};

  SECTION("matching term at the snapshot index: later entries are kept") {
    const SnapshotMeta snap = snapshot_at(7, 2, next_config);
    PersistRequest req;
    req.snapshot = &snap;
    RLR_REQUIRE_OK(s->persist(req));
    CHECK(s->snapshot().value() == snap);
    require_log(*s, std::vector<Entry>(log.begin() + 7, log.end()), 8);
    RLR_REQUIRE_CODE(s->read(LogIndex{7}, LogIndex{7}, kAll, kAll), ErrorCode::Compacted);
  }
  SECTION("matching term at the last index: the log becomes empty") {
    const SnapshotMeta snap = snapshot_at(10, 2);
    PersistRequest req;
    req.snapshot = &snap;
    RLR_REQUIRE_OK(s->persist(req));
    CHECK(s->first_index() == LogIndex{11});
    CHECK(s->last_index() == LogIndex{10});
  }
  SECTION("different term at the snapshot index: everything is dropped") {
    const SnapshotMeta snap = snapshot_at(7, 3, next_config);
    PersistRequest req;
    req.snapshot = &snap;
    RLR_REQUIRE_OK(s->persist(req));
    CHECK(s->snapshot().value() == snap);
    CHECK(s->first_index() == LogIndex{8});
    CHECK(s->last_index() == LogIndex{7});
    RLR_REQUIRE_CODE(s->read(LogIndex{8}, LogIndex{8}, kAll, kAll), ErrorCode::InvalidArgument);
    const auto fresh = make_entries(8, 9, 3);
    RLR_REQUIRE_OK(append(*s, fresh));
    require_log(*s, fresh, 8);
  }
  SECTION("a snapshot beyond the log's end drops everything") {
    const SnapshotMeta snap = snapshot_at(20, 4, next_config);
    PersistRequest req;
    req.snapshot = &snap;
    req.hard_state = HardState{Term{4}, NodeId{2}, LogIndex{20}};
    RLR_REQUIRE_OK(s->persist(req));
    CHECK(s->first_index() == LogIndex{21});
    CHECK(s->last_index() == LogIndex{20});
    CHECK(s->hard_state().value() == HardState{Term{4}, NodeId{2}, LogIndex{20}});
    CHECK(s->snapshot().value() == snap);
  }
  SECTION("a snapshot followed by entries in the same request") {
    const SnapshotMeta snap = snapshot_at(20, 4, next_config);
    const auto after = make_entries(21, 25, 4);
    PersistRequest req;
    req.snapshot = &snap;
    req.entries = after;
    req.hard_state = HardState{Term{4}, NodeId{2}, LogIndex{23}};
    req.applied = LogIndex{20};
    RLR_REQUIRE_OK(s->persist(req));
    require_log(*s, after, 21);
    CHECK(s->applied().value() == LogIndex{20});
  }
  SECTION("a kept suffix overwritten by entries of the same request") {
    const SnapshotMeta snap = snapshot_at(6, 2);
    const auto conflict = make_entries(8, 9, 3);
    PersistRequest req;
    req.snapshot = &snap;
    req.entries = conflict;
    RLR_REQUIRE_OK(s->persist(req));
    require_log(*s, concat({log[6]}, conflict), 7);
  }
  SECTION("a joiner installs its first snapshot and gets its configuration") {
    auto joiner = fx.make(core::Configuration{});
    const SnapshotMeta snap = snapshot_at(40, 3, next_config, "");
    PersistRequest req;
    req.snapshot = &snap;
    RLR_REQUIRE_OK(joiner->persist(req));
    CHECK(joiner->snapshot().value() == snap);
    CHECK(joiner->first_index() == LogIndex{41});
    CHECK(joiner->last_index() == LogIndex{40});
  }
}

// After a snapshot whose term does not match, the log ends at the snapshot index, so
// entries must start right after it. Contract: "InvalidArgument (entries not contiguous
// with the stored log)".
TEMPLATE_TEST_CASE("entries after a snapshot that drops the log must start right after it",
                   "[conformance][regression]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  RLR_REQUIRE_OK(append(*s, make_entries(1, 10, 1)));
  const SnapshotMeta snap = snapshot_at(5, 9);  // the stored term at 5 is 1: drop all
  const auto gap = make_entries(8, 9, 9);
  PersistRequest req;
  req.snapshot = &snap;
  req.entries = gap;
  const Status st = s->persist(req);
  INFO("persist: " << st.to_string() << "; first " << s->first_index().value() << ", last "
                   << s->last_index().value());
  CHECK(st.code() == ErrorCode::InvalidArgument);
  // Whatever the answer, the store must never serve an entry that was not written.
  if (st) {
    const auto r = s->read(s->first_index(), s->last_index(), kAll, kAll);
    INFO("read after: " << r.status().to_string());
    CHECK(r.is_ok());  // an accepted request must not leave the store unreadable
    if (r) {
      for (const Entry& e : r.value()) {
        INFO("served " << Catch::StringMaker<Entry>::convert(e));
        CHECK(e.term == Term{9});
        CHECK(e.index >= LogIndex{8});
      }
    }
  }
}

// A snapshot older than the stored one carries no information; entries in the same
// request must still continue the stored log, never land below first_index().
TEMPLATE_TEST_CASE("a stale snapshot in a request does not let entries below the snapshot in",
                   "[conformance][regression]", MemoryFixture, RocksFixture) {
  TestType fx;
  auto s = fx.make();
  RLR_REQUIRE_OK(append(*s, make_entries(1, 20, 1)));
  RLR_REQUIRE_OK(s->compact(snapshot_at(10, 1)));
  const SnapshotMeta stale = snapshot_at(5, 1);
  const auto below = make_entries(6, 7, 2);
  PersistRequest req;
  req.snapshot = &stale;
  req.entries = below;
  Status st;
  REQUIRE_NOTHROW(st = s->persist(req));
  INFO("persist: " << st.to_string() << "; first " << s->first_index().value() << ", last "
                   << s->last_index().value());
  CHECK(st.code() == ErrorCode::InvalidArgument);
  CHECK(s->first_index() == LogIndex{11});
  CHECK(s->last_index() >= s->snapshot().value().index);
  // The retained entries 11..20 are untouched.
  CHECK(s->last_index() == LogIndex{20});
  if (s->last_index() == LogIndex{20}) CHECK(read_all(*s) == make_entries(11, 20, 1));
}

TEMPLATE_TEST_CASE("load() returns a RestoreState the core accepts", "[conformance]",
                   MemoryFixture, RocksFixture) {
  TestType fx;
  core::RaftOptions ro;
  ro.id = NodeId{1};

  SECTION("a fresh founding member") {
    auto s = fx.make();
    auto rs = s->load();
    RLR_REQUIRE_OK(rs);
    CHECK(rs.value().entries.empty());
    CHECK(rs.value().snapshot.config == config_of({1, 2, 3}));
    RLR_REQUIRE_OK(core::Raft::create(ro, rs.value()));
  }
  SECTION("a fresh joiner") {
    auto s = fx.make(core::Configuration{});
    auto rs = s->load();
    RLR_REQUIRE_OK(rs);
    RLR_REQUIRE_OK(core::Raft::create(ro, rs.value()));
  }
  SECTION("a log with a configuration change, compacted, with a hard state") {
    auto s = fx.make();
    std::vector<Entry> es = make_entries(1, 3, 1);
    Entry cfg = make_entry(4, 2, 0, EntryKind::Config);
    cfg.payload = core::encode_configuration(config_of({1, 2, 3, 4}));
    es.push_back(cfg);
    es.push_back(make_entry(5, 2, 0, EntryKind::Noop));
    for (const Entry& e : make_entries(6, 12, 3)) es.push_back(e);
    const HardState hs{Term{3}, NodeId{2}, LogIndex{10}};
    PersistRequest req;
    req.entries = es;
    req.hard_state = hs;
    req.applied = LogIndex{8};
    RLR_REQUIRE_OK(s->persist(req));
    RLR_REQUIRE_OK(s->compact(snapshot_at(2, 1)));

    auto rs = s->load();
    RLR_REQUIRE_OK(rs);
    CHECK(rs.value().hard_state == hs);
    CHECK(rs.value().applied == LogIndex{8});
    CHECK(rs.value().snapshot == snapshot_at(2, 1));
    CHECK(rs.value().entries == std::vector<Entry>(es.begin() + 2, es.end()));
    auto raft = core::Raft::create(ro, rs.value());
    RLR_REQUIRE_OK(raft);
  }
  SECTION("after installing a snapshot from the leader") {
    auto s = fx.make();
    RLR_REQUIRE_OK(append(*s, make_entries(1, 5, 1), HardState{Term{1}, NodeId{1}, LogIndex{3}}));
    const SnapshotMeta snap = snapshot_at(50, 4, config_of({1, 2, 3}), "state");
    const auto after = make_entries(51, 52, 4);
    PersistRequest req;
    req.snapshot = &snap;
    req.entries = after;
    req.hard_state = HardState{Term{4}, kNoNode, LogIndex{50}};
    RLR_REQUIRE_OK(s->persist(req));
    auto rs = s->load();
    RLR_REQUIRE_OK(rs);
    CHECK(rs.value().snapshot == snap);
    CHECK(rs.value().entries == after);
    RLR_REQUIRE_OK(core::Raft::create(ro, rs.value()));
  }
}

// Storage.h: "reads may run on any thread concurrently with one writer". A reader racing
// with appends, suffix truncations and compactions may see Compacted or InvalidArgument
// (the log moved under it) but never Corruption and never a wrong entry.
TEMPLATE_TEST_CASE("reads concurrent with one writer see consistent entries or typed errors",
                   "[conformance][concurrency]", MemoryFixture, RocksFixture) {
  TestType fx;
  fx.sync = false;
  auto s = fx.make();
  constexpr std::size_t kPayload = 24;
  RLR_REQUIRE_OK(append(*s, make_entries(1, 50, 1, kPayload)));

  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads_ok{0};
  std::atomic<std::uint64_t> reads_moved{0};
  std::mutex mu;
  std::vector<std::string> problems;  // guarded by mu
  auto reader = [&](std::uint64_t seed) {
    std::uint64_t x = seed;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };
    while (!stop.load()) {
      const std::uint64_t first = s->first_index().value();
      const std::uint64_t last = s->last_index().value();
      if (last < first) continue;
      const std::uint64_t from = first + next() % (last - first + 1);
      const std::uint64_t to = from + next() % (last - from + 1);
      auto r = s->read(LogIndex{from}, LogIndex{to}, kAll, kAll);
      if (!r) {
        const ErrorCode c = r.status().code();
        if (c == ErrorCode::Compacted || c == ErrorCode::InvalidArgument) {
          ++reads_moved;
          continue;
        }
        std::lock_guard lock(mu);
        problems.push_back(fmt::format("read [{}, {}] (log was {}..{}): {}", from, to, first,
                                       last, r.status().to_string()));
        continue;
      }
      std::uint64_t expect = from;
      for (const Entry& e : r.value()) {
        if (e.index != LogIndex{expect} || e.payload != payload_for(expect, kPayload)) {
          std::lock_guard lock(mu);
          problems.push_back(fmt::format("read [{}, {}] served a wrong entry at {}", from, to,
                                         expect));
          break;
        }
        ++expect;
      }
      ++reads_ok;
    }
  };
  std::thread r1(reader, 0x9E3779B97F4A7C15ULL);
  std::thread r2(reader, 0xD1B54A32D192ED03ULL);

  std::uint64_t term = 1;
  Status writer_status;
  // At least 600 steps and 0.5 s, and until the readers have done a fair number of reads.
  const auto start = std::chrono::steady_clock::now();
  for (int step = 0; writer_status.is_ok(); ++step) {
    const auto elapsed = std::chrono::steady_clock::now() - start;
    if (step >= 600 && elapsed > std::chrono::milliseconds(500) &&
        (reads_ok + reads_moved >= 2000 || elapsed > std::chrono::seconds(5))) {
      break;
    }
    const std::uint64_t last = s->last_index().value();
    const std::uint64_t first = s->first_index().value();
    if (step % 10 == 9 && last >= first + 3) {
      // A conflicting suffix: overwrite the last three entries with a new term.
      ++term;
      writer_status = append(*s, make_entries(last - 2, last - 1, term, kPayload));
    } else if (step % 25 == 24 && last > first + 20) {
      const LogIndex to{last - 20};
      auto t = s->read(to, to, 1, kAll);
      writer_status = t.status();
      if (t) {
        SnapshotMeta snap;
        snap.index = to;
        snap.term = t.value().front().term;
        snap.config = config_of({1, 2, 3});
        writer_status = s->compact(snap);
      }
    } else {
      writer_status = append(*s, make_entries(last + 1, last + 5, term, kPayload));
    }
  }
  stop = true;
  r1.join();
  r2.join();
  RLR_REQUIRE_OK(writer_status);
  INFO("reads ok " << reads_ok.load() << ", moved under the reader " << reads_moved.load());
  std::string first_problems;
  for (std::size_t i = 0; i < std::min<std::size_t>(problems.size(), 5); ++i) {
    first_problems += problems[i] + "\n";
  }
  INFO(problems.size() << " bad reads, first ones:\n" << first_problems);
  CHECK(problems.empty());
  CHECK(reads_ok.load() > 0);
}

// The narrowest form of the race above: the log's end flips between N and N + 1 (a
// suffix truncation each time) while readers read up to N + 1 whenever it is there.
TEMPLATE_TEST_CASE("a read racing with a truncation of the log's end never reports Corruption",
                   "[conformance][concurrency][regression]", MemoryFixture, RocksFixture) {
  TestType fx;
  fx.sync = false;
  auto s = fx.make();
  constexpr std::uint64_t kN = 100;
  RLR_REQUIRE_OK(append(*s, make_entries(1, kN + 1, 1)));
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> reads{0};
  std::mutex mu;
  std::string problem;  // guarded by mu
  auto reader = [&] {
    while (!stop.load()) {
      if (s->last_index() != LogIndex{kN + 1}) continue;
      auto r = s->read(LogIndex{kN - 1}, LogIndex{kN + 1}, kAll, kAll);
      ++reads;
      if (!r && r.status().code() != ErrorCode::InvalidArgument) {
        std::lock_guard lock(mu);
        problem = r.status().to_string();
        stop = true;
      }
    }
  };
  std::thread r1(reader);
  std::thread r2(reader);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(1);
  Status writer_status;
  for (std::uint64_t i = 0; !stop.load() && writer_status.is_ok() &&
                            std::chrono::steady_clock::now() < deadline;
       ++i) {
    // Even steps: replace entry N, dropping N + 1. Odd steps: append N + 1 again.
    writer_status = i % 2 == 0 ? append(*s, make_entries(kN, kN, 1))
                               : append(*s, make_entries(kN + 1, kN + 1, 1));
  }
  stop = true;
  r1.join();
  r2.join();
  RLR_REQUIRE_OK(writer_status);
  INFO("reads racing with the truncation: " << reads.load());
  INFO("first bad read: " << problem);
  CHECK(problem.empty());
}

}  // namespace rlr::storage::test
