// rlr::testing::check_storage (rlr/storage_conformance.h).
#include <atomic>
#include <filesystem>
#include <limits>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "rlr/storage_conformance.h"

namespace rlr::testing {

namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

/// Entry `index` of term `term`: its payload says both, in a size that varies with the
/// index (empty ones included).
Entry entry(std::uint64_t index, std::uint64_t term) {
  const std::size_t size = (index * 37) % 300;
  std::string payload = fmt::format("{}/{}:", index, term);
  payload.resize(index % 11 == 0 ? 0 : std::max(payload.size(), size), static_cast<char>('a' + index % 26));
  return Entry{LogIndex{index}, Term{term}, EntryKind::Normal, Bytes::copy_of(payload)};
}

std::vector<Entry> entries(std::uint64_t from, std::uint64_t to, std::uint64_t term) {
  std::vector<Entry> out;
  for (std::uint64_t i = from; i <= to; ++i) out.push_back(entry(i, term));
  return out;
}

Membership three() {
  Membership m;
  m.voters = {NodeId{1}, NodeId{2}, NodeId{3}};
  m.addresses = {MemberAddress{NodeId{1}, Address{"10.0.0.1", 7001}},
                 MemberAddress{NodeId{2}, Address{"10.0.0.2", 7001}},
                 MemberAddress{NodeId{3}, Address{"10.0.0.3", 7001}}};
  return m;
}

class Checker {
 public:
  explicit Checker(StorageFactory& factory) : factory_(factory) {}

  Status run() {
    const std::pair<const char*, Status (Checker::*)()> checks[] = {
        {"fresh store", &Checker::fresh},
        {"one step, read back", &Checker::write_read},
        {"bounded reads and typed errors", &Checker::bounded_reads},
        {"suffix replaced", &Checker::suffix},
        {"entries that do not continue the log", &Checker::gaps},
        {"compaction", &Checker::compaction},
        {"snapshot from the leader", &Checker::leader_snapshot},
        {"reads concurrent with a writer", &Checker::concurrent},
    };
    for (const auto& [name, check] : checks) {
      name_ = name;
      ++node_;
      if (Status s = (this->*check)(); !s) return s;
    }
    return Status::ok();
  }

 private:
  StorageIdentity identity() const { return StorageIdentity{"conformance", NodeId{node_}}; }

  Status fail(std::string what) const {
    return Status{ErrorCode::InvalidArgument, fmt::format("storage check '{}': {}", name_, what)};
  }
  Status unexpected(std::string_view call, const Status& s) const {
    return Status{s.code(), fmt::format("storage check '{}': {} failed: {}", name_, call, s.to_string())};
  }

  Status open(std::shared_ptr<Storage>& out) {
    out.reset();  // the previous handle goes first: a reopen
    auto s = factory_.open(identity());
    if (!s) return unexpected("open", s.status());
    if (!s.value()) return fail("the factory opened no store");
    out = std::move(s).value();
    return Status::ok();
  }

  /// The store holds exactly `want` in [first, last], with first_index() == first.
  Status holds(const Storage& st, std::uint64_t first, const std::vector<Entry>& want, std::string_view when) {
    const std::uint64_t last = first - 1 + want.size();
    if (st.first_index() != LogIndex{first} || st.last_index() != LogIndex{last}) {
      return fail(fmt::format("{}: the log spans {}..{}, expected {}..{}", when, st.first_index().value(),
                              st.last_index().value(), first, last));
    }
    if (want.empty()) return Status::ok();
    auto got = st.read(LogIndex{first}, LogIndex{last}, kAll, kAll);
    if (!got) return unexpected(fmt::format("{}: read({}, {})", when, first, last), got.status());
    if (got.value().size() != want.size()) {
      return fail(fmt::format("{}: read {} entries of {}", when, got.value().size(), want.size()));
    }
    for (std::size_t k = 0; k < want.size(); ++k) {
      if (!(got.value()[k] == want[k])) {
        return fail(fmt::format("{}: entry {} reads back as index {} term {} with {} payload bytes, "
                                "written as term {} with {}",
                                when, want[k].index.value(), got.value()[k].index.value(),
                                got.value()[k].term.value(), got.value()[k].payload.size(),
                                want[k].term.value(), want[k].payload.size()));
      }
    }
    return Status::ok();
  }

  Status persist(Storage& st, const PersistRequest& r, std::string_view what) {
    if (Status s = st.persist(r); !s) return unexpected(what, s);
    return Status::ok();
  }

  Status fresh() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    if (!(st->identity() == identity())) {
      return fail(fmt::format("identity is '{}' node {}", st->identity().cluster_id, st->identity().node_id.value()));
    }
    auto snap = st->snapshot();
    if (!snap) return unexpected("snapshot()", snap.status());
    if (!snap.value().index.is_zero() || !snap.value().membership.voters.empty()) {
      return fail(fmt::format("a fresh store's snapshot is at {} with {} voters, not at 0 with none",
                              snap.value().index.value(), snap.value().membership.voters.size()));
    }
    auto hs = st->hard_state();
    if (!hs) return unexpected("hard_state()", hs.status());
    if (!(hs.value() == HardState{})) return fail("a fresh store's hard state is not zero");
    auto applied = st->applied();
    if (!applied || !applied.value().is_zero()) return fail("a fresh store's applied checkpoint is not 0");
    return holds(*st, 1, {}, "fresh");
  }

  Status write_read() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto want = entries(1, 60, 2);
    PersistRequest r;
    r.entries = want;
    r.hard_state = HardState{Term{2}, NodeId{1}, LogIndex{40}};
    r.applied = LogIndex{30};
    if (Status s = persist(*st, r, "persist(entries 1..60, hard state, applied)"); !s) return s;
    for (int round = 0; round < 2; ++round) {
      const char* when = round == 0 ? "after the write" : "after reopening";
      if (Status s = holds(*st, 1, want, when); !s) return s;
      auto hs = st->hard_state();
      if (!hs || !(hs.value() == *r.hard_state)) return fail(fmt::format("{}: the hard state differs", when));
      auto applied = st->applied();
      if (!applied || applied.value() != LogIndex{30}) return fail(fmt::format("{}: applied is not 30", when));
      if (Status s = open(st); !s) return s;
    }
    // A later hard state replaces the earlier one.
    PersistRequest h;
    h.hard_state = HardState{Term{3}, NodeId{2}, LogIndex{55}};
    if (Status s = persist(*st, h, "persist(hard state)"); !s) return s;
    if (Status s = open(st); !s) return s;
    auto hs = st->hard_state();
    if (!hs || !(hs.value() == *h.hard_state)) return fail("a later hard state did not replace the earlier");
    return holds(*st, 1, want, "after a hard-state-only write");
  }

  Status bounded_reads() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto want = entries(1, 50, 1);
    PersistRequest r;
    r.entries = want;
    if (Status s = persist(*st, r, "persist(entries 1..50)"); !s) return s;
    auto ten = st->read(LogIndex{5}, LogIndex{50}, 10, kAll);
    if (!ten || ten.value().size() != 10 || ten.value().front().index != LogIndex{5}) {
      return fail("read(5, 50, max_entries 10) did not return entries 5..14");
    }
    auto one = st->read(LogIndex{7}, LogIndex{50}, kAll, 1);
    if (!one || one.value().empty() || one.value().front().index != LogIndex{7}) {
      return fail("read(7, 50, max_bytes 1) did not return at least entry 7");
    }
    if (one.value().size() > 2) return fail("read(..., max_bytes 1) returned more than about 1 byte of payload");
    auto below = st->read(LogIndex{0}, LogIndex{3}, kAll, kAll);
    if (below || below.status().code() != ErrorCode::Compacted) {
      return fail("read(0, 3) below the first index did not fail with Compacted");
    }
    auto beyond = st->read(LogIndex{40}, LogIndex{51}, kAll, kAll);
    if (beyond || beyond.status().code() != ErrorCode::InvalidArgument) {
      return fail("read(40, 51) beyond the last index did not fail with InvalidArgument");
    }
    return Status::ok();
  }

  Status suffix() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto first = entries(1, 50, 1);
    PersistRequest r;
    r.entries = first;
    if (Status s = persist(*st, r, "persist(entries 1..50)"); !s) return s;
    const auto later = entries(40, 45, 4);
    PersistRequest t;
    t.entries = later;
    if (Status s = persist(*st, t, "persist(entries 40..45 of a later term)"); !s) return s;
    auto want = entries(1, 39, 1);
    want.insert(want.end(), later.begin(), later.end());
    if (Status s = holds(*st, 1, want, "after replacing 40..50 with 40..45"); !s) return s;
    if (Status s = open(st); !s) return s;
    return holds(*st, 1, want, "after reopening");
  }

  Status gaps() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto first = entries(1, 20, 1);
    PersistRequest r;
    r.entries = first;
    if (Status s = persist(*st, r, "persist(entries 1..20)"); !s) return s;
    const auto gap = entries(22, 25, 1);
    PersistRequest g;
    g.entries = gap;
    g.hard_state = HardState{Term{9}, NodeId{}, LogIndex{}};
    const Status refused = st->persist(g);
    if (refused.code() != ErrorCode::InvalidArgument) {
      return fail(fmt::format("entries 22..25 after a log ending at 20 were answered {}, not InvalidArgument",
                              refused.to_string()));
    }
    std::vector<Entry> holey = entries(21, 24, 1);
    holey.erase(holey.begin() + 2);
    PersistRequest h;
    h.entries = holey;
    if (st->persist(h).code() != ErrorCode::InvalidArgument) {
      return fail("entries 21, 22, 24 (not contiguous) were not refused with InvalidArgument");
    }
    auto hs = st->hard_state();
    if (!hs || !(hs.value() == HardState{})) return fail("a refused step left its hard state behind");
    return holds(*st, 1, first, "after refused steps");
  }

  Status compaction() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto all = entries(1, 80, 3);
    PersistRequest r;
    r.entries = all;
    if (Status s = persist(*st, r, "persist(entries 1..80)"); !s) return s;
    const SnapshotMeta snap{LogIndex{50}, Term{3}, three(), Bytes::copy_of("sessions at 50")};
    if (Status s = st->compact(snap); !s) return unexpected("compact(50)", s);
    const std::vector<Entry> rest(all.begin() + 50, all.end());
    for (int round = 0; round < 2; ++round) {
      const char* when = round == 0 ? "after compact(50)" : "after reopening";
      if (Status s = holds(*st, 51, rest, when); !s) return s;
      auto got = st->snapshot();
      if (!got) return unexpected("snapshot()", got.status());
      if (!(got.value() == snap)) {
        return fail(fmt::format("{}: the snapshot reads back at {} term {} with {} voters and {} data bytes",
                                when, got.value().index.value(), got.value().term.value(),
                                got.value().membership.voters.size(), got.value().data.size()));
      }
      auto below = st->read(LogIndex{40}, LogIndex{60}, kAll, kAll);
      if (below || below.status().code() != ErrorCode::Compacted) {
        return fail(fmt::format("{}: read(40, 60) did not fail with Compacted", when));
      }
      if (Status s = open(st); !s) return s;
    }
    // Appending goes on after the compacted prefix.
    const auto more = entries(81, 90, 3);
    PersistRequest m;
    m.entries = more;
    if (Status s = persist(*st, m, "persist(entries 81..90) after compaction"); !s) return s;
    auto want = rest;
    want.insert(want.end(), more.begin(), more.end());
    return holds(*st, 51, want, "after appending to a compacted log");
  }

  Status leader_snapshot() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    const auto all = entries(1, 40, 2);
    PersistRequest r;
    r.entries = all;
    if (Status s = persist(*st, r, "persist(entries 1..40)"); !s) return s;
    // The stored entry at 30 has the snapshot's term: the suffix after it stays.
    const SnapshotMeta matching{LogIndex{30}, Term{2}, three(), Bytes::copy_of("at 30")};
    PersistRequest a;
    a.snapshot = &matching;
    if (Status s = persist(*st, a, "persist(snapshot at 30, matching term)"); !s) return s;
    if (Status s = holds(*st, 31, std::vector<Entry>(all.begin() + 30, all.end()), "after a matching snapshot"); !s) {
      return s;
    }
    // A snapshot beyond the log, or whose term differs, replaces the whole log.
    const SnapshotMeta beyond{LogIndex{100}, Term{5}, three(), Bytes::copy_of("at 100")};
    PersistRequest b;
    b.snapshot = &beyond;
    const auto after = entries(101, 105, 5);
    b.entries = after;
    b.hard_state = HardState{Term{5}, NodeId{}, LogIndex{100}};
    if (Status s = persist(*st, b, "persist(snapshot at 100 with entries 101..105)"); !s) return s;
    if (Status s = open(st); !s) return s;
    if (Status s = holds(*st, 101, after, "after a snapshot beyond the log, reopened"); !s) return s;
    auto got = st->snapshot();
    if (!got || !(got.value() == beyond)) return fail("the leader's snapshot does not read back as written");
    return Status::ok();
  }

  Status concurrent() {
    std::shared_ptr<Storage> st;
    if (Status s = open(st); !s) return s;
    std::atomic<bool> done{false};
    std::string problem;  // written by the reader only, read after join
    std::thread reader([&] {
      while (!done.load() && problem.empty()) {
        const LogIndex first = st->first_index();
        const LogIndex last = st->last_index();
        if (last < first) continue;
        auto got = st->read(first, last, 512, kAll);
        if (!got) {
          const ErrorCode c = got.status().code();
          if (c != ErrorCode::Compacted && c != ErrorCode::InvalidArgument) problem = got.status().to_string();
          continue;
        }
        LogIndex expect = first;
        for (const Entry& e : got.value()) {
          if (e.index != expect || !(e == entry(e.index.value(), e.term.value()))) {
            problem = fmt::format("a read during writes returned entry {} (expected index {}) with "
                                  "other contents than written",
                                  e.index.value(), expect.value());
            break;
          }
          expect = expect.next();
        }
      }
    });
    Status written = Status::ok();
    for (std::uint64_t i = 1; i <= 2000 && written; i += 50) {
      const auto batch = entries(i, i + 49, 1);
      PersistRequest r;
      r.entries = batch;
      written = st->persist(r);
      if (written && i > 500 && i % 500 == 1) {
        written = st->compact(SnapshotMeta{LogIndex{i - 200}, Term{1}, three(), Bytes{}});
      }
    }
    done.store(true);
    reader.join();
    if (!written) return unexpected("a write during reads", written);
    if (!problem.empty()) return fail(problem);
    return Status::ok();
  }

  StorageFactory& factory_;
  std::string name_;
  std::uint64_t node_ = 0;
};

}  // namespace

Status check_storage(StorageFactory& factory) { return Checker(factory).run(); }

Result<std::shared_ptr<Storage>> MemoryStorageFactory::open(const StorageIdentity& identity) {
  auto& s = stores_[identity.node_id];
  if (!s) s = make_memory_storage(identity);
  return s;
}

Result<std::shared_ptr<Storage>> RocksDbStorageFactory::open(const StorageIdentity& identity) {
  return open_rocksdb_storage((std::filesystem::path(directory_) / fmt::format("node-{}", identity.node_id.value())).string(),
                              identity);
}

}  // namespace rlr::testing
