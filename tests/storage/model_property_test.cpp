// Property: a random sequence of persist / compact / snapshot-install steps applied to
// MemoryStorage, RocksDbStorage (sync off) and a trivial reference model leaves all
// three in agreement on every read. Operations are drawn against the model's current
// state so most of them are meaningful; RocksDbStorage is also reopened at random.
//
// Two properties: one with well-formed requests only, one that mixes in malformed
// requests (gaps, indexes below the snapshot, stale snapshots, entries after a
// snapshot that drops the log), which must all be refused without effect.

#include <limits>
#include <memory>
#include <optional>
#include <sstream>

#include <catch2/catch.hpp>
#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "storage/memory_storage.h"
#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();

/// The reference: a vector after a snapshot, with the contract written out plainly.
class Model {
 public:
  explicit Model(core::Configuration initial) { snap_.config = std::move(initial); }

  [[nodiscard]] LogIndex first() const { return snap_.index.next(); }
  [[nodiscard]] LogIndex last() const { return snap_.index.plus(log_.size()); }
  [[nodiscard]] const SnapshotMeta& snapshot() const { return snap_; }
  [[nodiscard]] const HardState& hard_state() const { return hs_; }
  [[nodiscard]] LogIndex applied() const { return applied_; }
  [[nodiscard]] std::optional<Term> term_at(LogIndex i) const {
    if (i == snap_.index) return snap_.term;
    if (i < first() || i > last()) return std::nullopt;
    return log_[i.value() - first().value()].term;
  }

  Status persist(const PersistRequest& req) {
    Model next = *this;
    if (req.snapshot != nullptr && req.snapshot->index > snap_.index) {
      const SnapshotMeta& s = *req.snapshot;
      if (s.index <= last() && term_at(s.index) == s.term) {
        next.log_.erase(next.log_.begin(),
                        next.log_.begin() + static_cast<std::ptrdiff_t>(s.index.value() - snap_.index.value()));
      } else {
        next.log_.clear();
      }
      next.snap_ = s;
    }
    if (!req.entries.empty()) {
      const LogIndex first_new = req.entries.front().index;
      if (first_new <= next.snap_.index || first_new > next.last().next()) {
        return {ErrorCode::InvalidArgument, "entries do not continue the log"};
      }
      for (std::size_t i = 0; i < req.entries.size(); ++i) {
        if (req.entries[i].index != first_new.plus(i)) {
          return {ErrorCode::InvalidArgument, "entries not contiguous"};
        }
      }
      next.log_.resize(first_new.value() - next.snap_.index.value() - 1);
      next.log_.insert(next.log_.end(), req.entries.begin(), req.entries.end());
    }
    if (req.hard_state) next.hs_ = *req.hard_state;
    if (req.applied) next.applied_ = *req.applied;
    *this = std::move(next);
    return Status::ok();
  }

  Status compact(const SnapshotMeta& s) {
    if (s.index <= snap_.index) return Status::ok();
    if (s.index > last() || term_at(s.index) != s.term) {
      return {ErrorCode::InvalidArgument, "snapshot not in the log"};
    }
    log_.erase(log_.begin(), log_.begin() + static_cast<std::ptrdiff_t>(s.index.value() - snap_.index.value()));
    snap_ = s;
    return Status::ok();
  }

  Result<std::vector<Entry>> read(LogIndex from, LogIndex to, std::size_t max_entries,
                                  std::size_t max_bytes) const {
    if (from < first()) return Status{ErrorCode::Compacted, "compacted"};
    if (to > last()) return Status{ErrorCode::InvalidArgument, "beyond last"};
    std::vector<Entry> out;
    std::size_t bytes = 0;
    for (LogIndex i = from; i <= to; i = i.next()) {
      const Entry& e = log_[i.value() - first().value()];
      if (!out.empty() && (out.size() >= max_entries || bytes + e.payload.size() > max_bytes)) break;
      bytes += e.payload.size();
      out.push_back(e);
    }
    return out;
  }

 private:
  SnapshotMeta snap_;
  std::vector<Entry> log_;
  HardState hs_;
  LogIndex applied_;
};

std::string describe(const Status& s) { return s.is_ok() ? "ok" : s.to_string(); }

std::string describe(const std::vector<Entry>& es) {
  std::ostringstream out;
  out << "[";
  for (const Entry& e : es) out << " " << Catch::StringMaker<Entry>::convert(e);
  out << " ]";
  return out.str();
}

/// The three stores under test, with the RocksDB one reopenable.
struct Stores {
  TempDir dir{"rlr-model", memory_backed_base()};
  RocksDbOptions rocks_options;
  Model model{config_of({1, 2, 3})};
  MemoryStorage memory{Identity{"model", NodeId{1}}, config_of({1, 2, 3})};
  std::unique_ptr<RocksDbStorage> rocks;

  /// `record_bytes`: RocksDbStorage's log record size, small ones so that records split
  /// steps and truncations, compactions and snapshots cut through records.
  /// `segment_bytes`: its log segment size, small ones so that segments roll often and
  /// compactions delete them.
  Stores(std::size_t record_bytes, std::uint64_t segment_bytes) {
    rocks_options.log_record_bytes = record_bytes;
    rocks_options.log_segment_bytes = segment_bytes;
    rocks_options.path = dir.sub("db");
    rocks_options.identity = Identity{"model", NodeId{1}};
    rocks_options.initial_config = config_of({1, 2, 3});
    rocks_options.sync = false;
    reopen();
  }
  void reopen() {
    rocks.reset();
    auto r = RocksDbStorage::open(rocks_options);
    RC_ASSERT(r.is_ok());
    rocks = std::move(r).value();
  }
};

void require_same_status(const char* what, const Status& model, const Status& memory,
                         const Status& rocks) {
  RC_LOG() << what << ": model " << describe(model) << " | memory " << describe(memory)
           << " | rocks " << describe(rocks) << "\n";
  RC_ASSERT(memory.code() == model.code());
  RC_ASSERT(rocks.code() == model.code());
}

void require_same_read(Stores& st, LogIndex from, LogIndex to, std::size_t max_entries,
                       std::size_t max_bytes) {
  const auto m = st.model.read(from, to, max_entries, max_bytes);
  const auto a = st.memory.read(from, to, max_entries, max_bytes);
  const auto b = st.rocks->read(from, to, max_entries, max_bytes);
  if (m.status().code() != a.status().code() || m.status().code() != b.status().code()) {
    RC_LOG() << "read [" << from.value() << ", " << to.value() << "] max " << max_entries
             << "/" << max_bytes << "\n";
  }
  require_same_status("read", m.status(), a.status(), b.status());
  if (m) {
    if (!(a.value() == m.value() && b.value() == m.value())) {
      RC_LOG() << "read [" << from.value() << ", " << to.value() << "]\n model  "
               << describe(m.value()) << "\n memory " << describe(a.value()) << "\n rocks  "
               << describe(b.value()) << "\n";
    }
    RC_ASSERT(a.value() == m.value());
    RC_ASSERT(b.value() == m.value());
  }
}

void require_agreement(Stores& st) {
  const Model& m = st.model;
  RC_LOG() << "model: first " << m.first().value() << " last " << m.last().value()
           << "; memory " << st.memory.first_index().value() << ".."
           << st.memory.last_index().value() << "; rocks " << st.rocks->first_index().value()
           << ".." << st.rocks->last_index().value() << "\n";
  RC_ASSERT(st.memory.first_index() == m.first());
  RC_ASSERT(st.memory.last_index() == m.last());
  RC_ASSERT(st.rocks->first_index() == m.first());
  RC_ASSERT(st.rocks->last_index() == m.last());
  RC_ASSERT(st.memory.hard_state().value() == m.hard_state());
  RC_ASSERT(st.rocks->hard_state().value() == m.hard_state());
  RC_ASSERT(st.memory.applied().value() == m.applied());
  RC_ASSERT(st.rocks->applied().value() == m.applied());
  RC_ASSERT(st.memory.snapshot().value() == m.snapshot());
  RC_ASSERT(st.rocks->snapshot().value() == m.snapshot());
  require_same_read(st, m.first(), m.last(), kAll, kAll);
  // One random bounded read, sometimes straddling either end.
  const std::uint64_t lo = m.first().value() > 2 ? m.first().value() - 2 : 0;
  const std::uint64_t from = *rc::gen::inRange<std::uint64_t>(lo, m.last().value() + 2);
  const std::uint64_t to = *rc::gen::inRange<std::uint64_t>(from == 0 ? 0 : from - 1, m.last().value() + 3);
  const auto max_entries = *rc::gen::inRange<std::size_t>(1, 6);
  const auto max_bytes = *rc::gen::inRange<std::size_t>(0, 200);
  require_same_read(st, LogIndex{from}, LogIndex{to}, max_entries, max_bytes);
}

std::vector<Entry> gen_entries(std::uint64_t first, std::size_t n) {
  std::vector<Entry> es;
  const auto term = *rc::gen::inRange<std::uint64_t>(1, 5);
  const auto salt = *rc::gen::arbitrary<std::uint32_t>();
  for (std::size_t i = 0; i < n; ++i) {
    const auto kind = static_cast<EntryKind>(*rc::gen::inRange(0, 3));
    const auto size = *rc::gen::inRange<std::size_t>(0, 64);
    Entry e = make_entry(first + i, term, 0, kind);
    e.payload = payload_for((first + i) ^ (std::uint64_t{salt} << 32), size);
    es.push_back(std::move(e));
  }
  return es;
}

SnapshotMeta gen_snapshot(std::uint64_t index, std::uint64_t term) {
  SnapshotMeta s;
  s.index = LogIndex{index};
  s.term = Term{term};
  std::vector<std::uint64_t> voters;
  for (std::uint64_t id = 1; id <= 5; ++id) {
    if (*rc::gen::inRange(0, 2) == 1) voters.push_back(id);
  }
  if (voters.empty()) voters.push_back(1);
  s.config = config_of(voters);
  s.data = payload_for(index * 7 + term, *rc::gen::inRange<std::size_t>(0, 24));
  return s;
}

/// Sometimes a successor of `hs`, as the core makes them (storage.h: PersistRequest):
/// the term never goes down, a vote once cast stays for its term, commit never goes down.
std::optional<HardState> gen_hard_state(const HardState& hs) {
  if (*rc::gen::inRange(0, 2) == 0) return std::nullopt;
  HardState next = hs;
  if (*rc::gen::inRange(0, 3) == 0) {
    next.term = Term{hs.term.value() + *rc::gen::inRange<std::uint64_t>(1, 3)};
    next.vote = NodeId{*rc::gen::inRange<std::uint64_t>(0, 4)};
  } else if (hs.vote == kNoNode) {
    next.vote = NodeId{*rc::gen::inRange<std::uint64_t>(0, 4)};
  }
  next.commit = LogIndex{hs.commit.value() + *rc::gen::inRange<std::uint64_t>(0, 8)};
  return next;
}

std::optional<LogIndex> gen_applied() {
  if (*rc::gen::inRange(0, 3) != 0) return std::nullopt;
  return LogIndex{*rc::gen::inRange<std::uint64_t>(0, 60)};
}

void apply_persist(Stores& st, const PersistRequest& req, const char* what) {
  RC_LOG() << what << ": snapshot "
           << (req.snapshot != nullptr
                   ? std::to_string(req.snapshot->index.value()) + "/t" +
                         std::to_string(req.snapshot->term.value())
                   : std::string("-"))
           << ", entries " << describe(std::vector<Entry>(req.entries.begin(), req.entries.end()))
           << (req.hard_state ? ", hard state" : "") << (req.applied ? ", applied" : "") << "\n";
  const Status m = st.model.persist(req);
  const Status a = st.memory.persist(req);
  const Status b = st.rocks->persist(req);
  require_same_status(what, m, a, b);
}

/// One random step; `malformed` allows requests the stores must refuse.
void random_step(Stores& st, bool malformed) {
  const Model& m = st.model;
  const std::uint64_t snap = m.snapshot().index.value();
  const std::uint64_t last = m.last().value();
  switch (*rc::gen::inRange(0, malformed ? 9 : 6)) {
    case 0:
    case 1: {  // append or overwrite a suffix
      const auto first = *rc::gen::inRange<std::uint64_t>(snap + 1, last + 2);
      const auto es = gen_entries(first, *rc::gen::inRange<std::size_t>(1, 7));
      PersistRequest req;
      req.entries = es;
      req.hard_state = gen_hard_state(m.hard_state());
      req.applied = gen_applied();
      apply_persist(st, req, "append");
      break;
    }
    case 2: {  // hard state and/or applied only
      PersistRequest req;
      req.hard_state = gen_hard_state(m.hard_state());
      req.applied = gen_applied();
      apply_persist(st, req, "metadata");
      break;
    }
    case 3: {  // local compaction, mostly valid
      const auto index = *rc::gen::inRange<std::uint64_t>(snap > 0 ? snap - 1 : 0, last + 3);
      const auto stored = m.term_at(LogIndex{index});
      const bool right_term = stored && *rc::gen::inRange(0, 4) != 0;
      const SnapshotMeta s = gen_snapshot(
          index, right_term ? stored->value() : *rc::gen::inRange<std::uint64_t>(0, 5));
      RC_LOG() << "compact " << index << "/t" << s.term.value() << "\n";
      const Status a = st.model.compact(s);
      const Status b = st.memory.compact(s);
      const Status c = st.rocks->compact(s);
      require_same_status("compact", a, b, c);
      break;
    }
    case 4: {  // snapshot from the leader, possibly with entries after it
      const auto index = *rc::gen::inRange<std::uint64_t>(snap + 1, last + 5);
      const auto stored = m.term_at(LogIndex{index});
      const bool match = stored && *rc::gen::inRange(0, 2) == 0;
      const SnapshotMeta s =
          gen_snapshot(index, match ? stored->value() : *rc::gen::inRange<std::uint64_t>(1, 6));
      const bool keeps = index <= last && stored == s.term;
      std::vector<Entry> es;
      if (*rc::gen::inRange(0, 2) == 0) {
        const std::uint64_t end = keeps ? last : index;
        es = gen_entries(*rc::gen::inRange<std::uint64_t>(index + 1, end + 2),
                         *rc::gen::inRange<std::size_t>(1, 5));
      }
      PersistRequest req;
      req.snapshot = &s;
      req.entries = es;
      req.hard_state = gen_hard_state(m.hard_state());
      req.applied = gen_applied();
      apply_persist(st, req, "install snapshot");
      break;
    }
    case 5: {
      RC_LOG() << "reopen rocks\n";
      st.reopen();
      break;
    }
    case 6: {  // malformed: entries starting anywhere, maybe with a hole
      const auto first = *rc::gen::inRange<std::uint64_t>(0, last + 4);
      auto es = gen_entries(first, *rc::gen::inRange<std::size_t>(1, 5));
      if (es.size() > 2 && *rc::gen::inRange(0, 2) == 0) es[1].index = es[1].index.plus(1);
      PersistRequest req;
      req.entries = es;
      req.hard_state = gen_hard_state(m.hard_state());
      apply_persist(st, req, "append anywhere");
      break;
    }
    case 7: {  // malformed: a stale snapshot with entries below the current one
      const auto index = *rc::gen::inRange<std::uint64_t>(0, snap + 1);
      const SnapshotMeta s = gen_snapshot(index, *rc::gen::inRange<std::uint64_t>(0, 5));
      const auto es = gen_entries(*rc::gen::inRange<std::uint64_t>(index + 1, last + 2),
                                  *rc::gen::inRange<std::size_t>(1, 4));
      PersistRequest req;
      req.snapshot = &s;
      req.entries = es;
      apply_persist(st, req, "stale snapshot");
      break;
    }
    case 8: {  // malformed: a snapshot that drops the log, entries starting past it
      const auto index = *rc::gen::inRange<std::uint64_t>(snap + 1, last + 3);
      const SnapshotMeta s = gen_snapshot(index, *rc::gen::inRange<std::uint64_t>(1, 6));
      const auto es = gen_entries(*rc::gen::inRange<std::uint64_t>(index + 1, std::max(index, last) + 2),
                                  *rc::gen::inRange<std::size_t>(1, 4));
      PersistRequest req;
      req.snapshot = &s;
      req.entries = es;
      apply_persist(st, req, "snapshot then entries anywhere");
      break;
    }
    default:
      break;
  }
  require_agreement(st);
}

void run_sequence(bool malformed) {
  const auto record_bytes = *rc::gen::element<std::size_t>(1, 60, 120, 64U << 10);
  const auto segment_bytes = *rc::gen::element<std::uint64_t>(1, 200, 64U << 20);
  RC_LOG() << "log records of at most " << record_bytes << " bytes, segments of "
           << segment_bytes << "\n";
  Stores st(record_bytes, segment_bytes);
  require_agreement(st);
  const auto steps = *rc::gen::inRange(1, 40);
  for (int i = 0; i < steps; ++i) random_step(st, malformed);
}

}  // namespace

TEST_CASE("model: memory, rocksdb and the reference agree on every read", "[model]") {
  rc::prop("well-formed persist/compact/snapshot sequences", [] { run_sequence(false); });
}

TEST_CASE("model: malformed requests are refused by every store alike", "[model][regression]") {
  rc::prop("sequences mixing in malformed requests", [] { run_sequence(true); });
}

}  // namespace rlr::storage::test
