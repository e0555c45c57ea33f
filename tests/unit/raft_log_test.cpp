// RaftLog checked against a reference model (a snapshot point followed by a plain
// vector of terms), plus a few deterministic cases that read like §5.3.
#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <rapidcheck.h>
#include <rapidcheck/catch.h>

#include "test_cluster.h"

namespace rlr::test {
namespace {

/// The payload of entry (index, term): a pure function of both, so that two entries
/// with the same index and term are identical (Log Matching), with varied sizes.
std::string payload_of(std::uint64_t index, std::uint64_t term) {
  const std::size_t size = (index * 7 + term * 13) % 41;
  std::string s = "i" + std::to_string(index) + "t" + std::to_string(term);
  s.resize(std::max(size, s.size() / 2), '.');
  return s;
}

Entry model_entry(std::uint64_t index, std::uint64_t term) {
  return entry(index, term, payload_of(index, term));
}

/// Reference model: entries snap_index+1 .. snap_index+terms.size().
struct Model {
  std::uint64_t snap_index = 0;
  std::uint64_t snap_term = 0;
  std::vector<std::uint64_t> terms;

  [[nodiscard]] std::uint64_t first() const { return snap_index + 1; }
  [[nodiscard]] std::uint64_t last() const { return snap_index + terms.size(); }
  [[nodiscard]] std::uint64_t last_term() const { return terms.empty() ? snap_term : terms.back(); }
  [[nodiscard]] std::optional<std::uint64_t> term(std::uint64_t i) const {
    if (i == snap_index) return snap_term;
    if (i < snap_index || i > last()) return std::nullopt;
    return terms[i - snap_index - 1];
  }
  [[nodiscard]] std::vector<Entry> entries() const {
    std::vector<Entry> out;
    for (std::uint64_t i = first(); i <= last(); ++i) out.push_back(model_entry(i, *term(i)));
    return out;
  }
  [[nodiscard]] SnapshotMeta base() const {
    SnapshotMeta s;
    s.index = I(snap_index);
    s.term = T(snap_term);
    s.config = config_of({1, 2, 3});
    return s;
  }
  [[nodiscard]] RaftLog build() const { return RaftLog(base(), entries()); }
  /// The model after a compaction to `c` (snap_index <= c <= last()).
  [[nodiscard]] Model compacted(std::uint64_t c) const {
    Model after;
    after.snap_index = c;
    after.snap_term = *term(c);
    for (std::uint64_t i = c + 1; i <= last(); ++i) after.terms.push_back(*term(i));
    return after;
  }

  /// §5.3 append: skip entries already present, truncate at the first conflict.
  std::optional<std::uint64_t> append(const std::vector<Entry>& batch) {
    std::optional<std::uint64_t> first_written;
    for (const auto& e : batch) {
      const std::uint64_t i = e.index.value();
      if (i <= last()) {
        if (*term(i) == e.term.value()) continue;
        terms.resize(i - snap_index - 1);
      }
      terms.push_back(e.term.value());
      if (!first_written) first_written = i;
    }
    return first_written;
  }
};

Model gen_model() {
  Model m;
  m.snap_index = *rc::gen::inRange<std::uint64_t>(0, 8);
  m.snap_term = m.snap_index == 0 ? 0 : *rc::gen::inRange<std::uint64_t>(1, 3);
  const std::size_t n = *rc::gen::inRange<std::size_t>(0, 25);
  std::uint64_t t = std::max<std::uint64_t>(m.snap_term, 1);
  for (std::size_t k = 0; k < n; ++k) {
    if (*rc::gen::inRange(0, 4) == 0) t += *rc::gen::inRange<std::uint64_t>(1, 3);
    m.terms.push_back(t);
  }
  return m;
}

/// RaftLog::slice_into, returning the entries.
std::vector<Entry> slice(const RaftLog& log, LogIndex from, LogIndex to, std::size_t max_entries,
                         std::size_t max_bytes) {
  std::vector<Entry> out;
  log.slice_into(from, to, max_entries, max_bytes, out);
  return out;
}

/// Checks every observable of `log` against `m`.
void check_same(const RaftLog& log, const Model& m) {
  RC_ASSERT(log.first_index() == I(m.first()));
  RC_ASSERT(log.last_index() == I(m.last()));
  RC_ASSERT(log.last_term() == T(m.last_term()));
  for (std::uint64_t i = m.first(); i <= m.last(); ++i) {
    RC_ASSERT(log.term_at(I(i)) == std::optional<Term>(T(*m.term(i))));
    const Entry& e = log.at(I(i));
    RC_ASSERT(e.index == I(i));
    RC_ASSERT(e.term == T(*m.term(i)));
    RC_ASSERT(e.payload == Bytes::copy_of(payload_of(i, *m.term(i))));
  }
  RC_ASSERT(!log.term_at(I(m.last() + 1)).has_value());
}

}  // namespace

TEST_CASE("RaftLog: operations match a reference model", "[raft_log][property]") {
  rc::prop("construction reproduces the snapshot base and the entries", [] {
    const Model m = gen_model();
    check_same(m.build(), m);
  });

  rc::prop("append skips present entries, truncates at the first conflict (§5.3)", [] {
    Model m = gen_model();
    RaftLog log = m.build();
    const std::uint64_t start = *rc::gen::inRange<std::uint64_t>(m.first(), m.last() + 2);
    // Copy some existing entries (they match), then continue with arbitrary terms that
    // never decrease.
    const std::uint64_t copied = *rc::gen::inRange<std::uint64_t>(0, m.last() - start + 2);
    std::vector<Entry> batch;
    std::uint64_t t = *m.term(start - 1);
    for (std::uint64_t i = start; i < start + copied; ++i) {
      t = *m.term(i);
      batch.push_back(model_entry(i, t));
    }
    const int fresh = *rc::gen::inRange(0, 6);
    for (int k = 0; k < fresh; ++k) {
      t += *rc::gen::inRange<std::uint64_t>(0, 3);
      t = std::max<std::uint64_t>(t, 1);
      const std::uint64_t i = start + copied + static_cast<std::uint64_t>(k);
      batch.push_back(model_entry(i, t));
    }
    RC_PRE(!batch.empty());
    const auto expected_first = m.append(batch);
    const auto got = log.append(batch);
    RC_ASSERT(got.has_value() == expected_first.has_value());
    if (got) RC_ASSERT(got->value() == *expected_first);
    check_same(log, m);
  });

  rc::prop("find_conflict names the first entry whose term differs", [] {
    const Model m = gen_model();
    RC_PRE(m.last() >= m.first());
    const RaftLog log = m.build();
    const std::uint64_t from = *rc::gen::inRange<std::uint64_t>(m.first(), m.last() + 1);
    const std::uint64_t to = *rc::gen::inRange<std::uint64_t>(from, m.last() + 1);
    std::vector<Entry> batch;
    std::optional<std::uint64_t> expected;
    for (std::uint64_t i = from; i <= to; ++i) {
      std::uint64_t t = *m.term(i);
      if (*rc::gen::inRange(0, 5) == 0) t += 1;
      if (t != *m.term(i) && !expected) expected = i;
      batch.push_back(model_entry(i, t));
    }
    const auto got = log.find_conflict(batch);
    RC_ASSERT(got.has_value() == expected.has_value());
    if (got) RC_ASSERT(got->value() == *expected);
  });

  rc::prop("slice honours count and byte limits, is a prefix, never empty", [] {
    const Model m = gen_model();
    RC_PRE(m.last() >= m.first());
    const RaftLog log = m.build();
    const std::uint64_t from = *rc::gen::inRange<std::uint64_t>(m.first(), m.last() + 1);
    const std::uint64_t to = *rc::gen::inRange<std::uint64_t>(from, m.last() + 1);
    const std::size_t max_entries = *rc::gen::inRange<std::size_t>(1, 10);
    const std::size_t max_bytes = *rc::gen::inRange<std::size_t>(0, 150);
    const auto got = slice(log, I(from), I(to), max_entries, max_bytes);
    RC_ASSERT(!got.empty());
    RC_ASSERT(got.size() <= max_entries);
    RC_ASSERT(got.size() <= to - from + 1);
    std::size_t bytes = 0;
    for (std::size_t k = 0; k < got.size(); ++k) {
      const std::uint64_t i = from + k;
      RC_ASSERT(got[k].index == I(i));
      RC_ASSERT(got[k].term == T(*m.term(i)));
      RC_ASSERT(got[k].payload == Bytes::copy_of(payload_of(i, *m.term(i))));
      bytes += got[k].payload.size();
    }
    if (got.size() > 1) RC_ASSERT(bytes <= max_bytes);
    // Not shorter than the limits require: the next entry would break a limit.
    if (got.size() < to - from + 1 && got.size() < max_entries) {
      const std::uint64_t next = from + got.size();
      RC_ASSERT(bytes + payload_of(next, *m.term(next)).size() > max_bytes);
    }
  });

  rc::prop("term_at and matches follow the model, nullopt outside the log", [] {
    const Model m = gen_model();
    const RaftLog log = m.build();
    for (std::uint64_t i = 1; i <= m.last() + 3; ++i) {
      const auto mt = m.term(i);
      if (i < m.snap_index) {
        RC_ASSERT(!log.term_at(I(i)).has_value());
        continue;
      }
      if (mt) {
        RC_ASSERT(log.term_at(I(i)) == std::optional<Term>(T(*mt)));
        RC_ASSERT(log.matches(I(i), T(*mt)));
        RC_ASSERT(!log.matches(I(i), T(*mt + 1)));
      } else {
        RC_ASSERT(!log.term_at(I(i)).has_value());
        RC_ASSERT(!log.matches(I(i), T(1)));
      }
    }
    if (m.snap_index == 0) RC_ASSERT(log.term_at(I(0)) == std::optional<Term>(T(0)));
  });

  rc::prop("compact moves the base and keeps the suffix", [] {
    Model m = gen_model();
    RaftLog log = m.build();
    const std::uint64_t c = *rc::gen::inRange<std::uint64_t>(m.snap_index, m.last() + 1);
    SnapshotMeta s = m.base();
    s.index = I(c);
    s.term = T(*m.term(c));
    log.compact(s);
    const Model after = m.compacted(c);
    check_same(log, after);
    RC_ASSERT(log.snapshot().index == I(c));
    RC_ASSERT(log.snapshot().term == T(after.snap_term));
    for (std::uint64_t i = 1; i < c; ++i) RC_ASSERT(!log.term_at(I(i)).has_value());
  });

  rc::prop("restore replaces the whole log by the snapshot", [] {
    const Model m = gen_model();
    RaftLog log = m.build();
    SnapshotMeta s = m.base();
    s.index = I(*rc::gen::inRange<std::uint64_t>(m.snap_index + 1, m.last() + 10));
    s.term = T(m.last_term() + *rc::gen::inRange<std::uint64_t>(0, 3));
    log.restore(s);
    Model after;
    after.snap_index = s.index.value();
    after.snap_term = s.term.value();
    check_same(log, after);
  });

  rc::prop("is_up_to_date: later last term wins, then longer log (§5.4.1)", [] {
    const Model m = gen_model();
    const RaftLog log = m.build();
    const std::uint64_t li = *rc::gen::inRange<std::uint64_t>(0, 40);
    const std::uint64_t lt = *rc::gen::inRange<std::uint64_t>(0, 10);
    const bool expected = lt > m.last_term() || (lt == m.last_term() && li >= m.last());
    RC_ASSERT(log.is_up_to_date(I(li), T(lt)) == expected);
  });

  rc::prop("first_index_of_term_at walks back over the whole term", [] {
    const Model m = gen_model();
    RC_PRE(m.last() >= m.first());
    const RaftLog log = m.build();
    const std::uint64_t i = *rc::gen::inRange<std::uint64_t>(m.first(), m.last() + 1);
    const std::uint64_t t = *m.term(i);
    std::uint64_t j = i;
    while (j > m.first() && *m.term(j - 1) == t) --j;
    const std::uint64_t got = log.first_index_of_term_at(I(i)).value();
    if (j == m.first() && m.snap_term == t) {
      // The term may continue into the snapshot; either boundary is acceptable.
      RC_ASSERT(got == j || got == m.snap_index);
    } else {
      RC_ASSERT(got == j);
    }
  });

  rc::prop("last_index_with_term_at_most skips every entry of a later term", [] {
    const Model m = gen_model();
    const RaftLog log = m.build();
    const std::uint64_t i = *rc::gen::inRange<std::uint64_t>(m.snap_index, m.last() + 1);
    const std::uint64_t t = *rc::gen::inRange<std::uint64_t>(0, m.last_term() + 2);
    std::uint64_t expected = m.snap_index;
    for (std::uint64_t j = i; j >= m.first() && j > m.snap_index; --j) {
      if (*m.term(j) <= t) {
        expected = j;
        break;
      }
    }
    RC_ASSERT(log.last_index_with_term_at_most(I(i), T(t)).value() == expected);
  });
}

TEST_CASE("RaftLog: append keeps a longer matching suffix (§5.3 rule 4)", "[raft_log]") {
  RaftLog log(SnapshotMeta{}, log_with_terms({1, 1, 1, 2, 2}));
  const auto written = log.append(log_with_terms({1, 1}, 2));
  INFO("entries already present must be skipped without truncating what follows them");
  CHECK_FALSE(written.has_value());
  CHECK(log.last_index() == I(5));
  CHECK(log.term_at(I(5)) == std::optional<Term>(T(2)));
}

TEST_CASE("RaftLog: append truncates at the first conflict (§5.3 rule 3)", "[raft_log]") {
  RaftLog log(SnapshotMeta{}, log_with_terms({1, 1, 2, 2, 2}));
  const auto written = log.append(log_with_terms({1, 3}, 2));
  INFO("entry 3 (term 2) conflicts with the new entry 3 (term 3): 3..5 must be deleted");
  REQUIRE(written.has_value());
  CHECK(*written == I(3));
  CHECK(log.last_index() == I(3));
  CHECK(log.term_at(I(3)) == std::optional<Term>(T(3)));
  CHECK_FALSE(log.term_at(I(4)).has_value());
  CHECK(log.at(I(2)).payload == Bytes::copy_of("e2t1"));
}

TEST_CASE("RaftLog: slice returns one entry even when it exceeds max_bytes", "[raft_log]") {
  std::vector<Entry> es{entry(1, 1, std::string(100, 'x')), entry(2, 1, "y")};
  RaftLog log(SnapshotMeta{}, es);
  const auto got = slice(log, I(1), I(2), 10, 10);
  INFO("a non-empty range must always make progress: one entry even if over the limit");
  REQUIRE(got.size() == 1);
  CHECK(got[0].index == I(1));
  const auto both = slice(log, I(1), I(2), 10, 1000);
  CHECK(both.size() == 2);
  const auto counted = slice(log, I(1), I(2), 1, 1000);
  CHECK(counted.size() == 1);
}

TEST_CASE("RaftLog: the snapshot point answers term_at, compacted indexes do not",
          "[raft_log]") {
  SnapshotMeta base;
  base.index = I(10);
  base.term = T(4);
  RaftLog log(base, {entry(11, 4), entry(12, 5)});
  CHECK(log.first_index() == I(11));
  CHECK(log.last_index() == I(12));
  CHECK(log.term_at(I(10)) == std::optional<Term>(T(4)));
  CHECK(log.matches(I(10), T(4)));
  CHECK_FALSE(log.term_at(I(9)).has_value());
  CHECK_FALSE(log.term_at(I(13)).has_value());
  CHECK(log.last_term() == T(5));
  // An empty log on top of a snapshot takes its last term from the snapshot.
  RaftLog bare(base, {});
  CHECK(bare.last_index() == I(10));
  CHECK(bare.last_term() == T(4));
}

TEST_CASE("RaftLog: is_up_to_date compares last terms, then lengths (§5.4.1)", "[raft_log]") {
  const RaftLog log(SnapshotMeta{}, log_with_terms({1, 2, 2}));  // last = (3, term 2)
  CHECK(log.is_up_to_date(I(3), T(2)));        // identical
  CHECK(log.is_up_to_date(I(4), T(2)));        // same term, longer
  CHECK_FALSE(log.is_up_to_date(I(2), T(2)));  // same term, shorter
  CHECK(log.is_up_to_date(I(1), T(3)));        // later term, shorter
  CHECK_FALSE(log.is_up_to_date(I(9), T(1)));  // earlier term, longer
}

TEST_CASE("RaftLog: conflict hints skip a whole term", "[raft_log]") {
  // Follower: 1:1 2:2 3:2 4:2 5:3; leader would ask about index 4 with another term.
  const RaftLog log(SnapshotMeta{}, log_with_terms({1, 2, 2, 2, 3}));
  CHECK(log.first_index_of_term_at(I(4)) == I(2));
  CHECK(log.first_index_of_term_at(I(5)) == I(5));
  CHECK(log.last_index_with_term_at_most(I(5), T(2)) == I(4));
  CHECK(log.last_index_with_term_at_most(I(4), T(1)) == I(1));
  CHECK(log.last_index_with_term_at_most(I(5), T(0)) == I(0));
}

// ---- evicting a prefix from memory ---------------------------------------------------

namespace {

/// What a durable log store returns: the model's entries, with the store's limits.
class ModelReader final : public core::LogReader {
 public:
  explicit ModelReader(const Model& m) : m_(m) {}
  Status read(LogIndex from, LogIndex to, std::size_t max_entries, std::size_t max_bytes,
              std::vector<Entry>& out) override {
    ++reads;
    out.clear();
    if (!fail_with.is_ok()) return fail_with;
    read_limited(from, to, max_entries, max_bytes, [&](LogIndex i) -> std::optional<Entry> {
      return model_entry(i.value(), *m_.term(i.value()));
    }, out);
    if (wrong_term && !out.empty()) out.back().term = out.back().term.next();
    return Status::ok();
  }
  int reads = 0;
  Status fail_with;
  bool wrong_term = false;

 private:
  const Model& m_;
};

/// Every observable of a log whose entries up to `evicted` left memory, against `m`;
/// evicted entries are read back through `reader`.
void check_windowed(const RaftLog& log, const Model& m, std::uint64_t evicted, ModelReader& reader) {
  RC_ASSERT(log.first_index() == I(m.first()));
  RC_ASSERT(log.last_index() == I(m.last()));
  RC_ASSERT(log.last_term() == T(m.last_term()));
  RC_ASSERT(log.memory_first() == I(std::max(evicted, m.snap_index) + 1));
  std::size_t bytes = 0;
  for (std::uint64_t i = log.memory_first().value(); i <= m.last(); ++i) {
    RC_ASSERT(log.at(I(i)).term == T(*m.term(i)));
    bytes += payload_of(i, *m.term(i)).size();
  }
  RC_ASSERT(log.memory_entries() == m.last() + 1 - log.memory_first().value());
  RC_ASSERT(log.memory_bytes() == bytes);
  for (std::uint64_t i = m.snap_index; i <= m.last() + 1; ++i) {
    RC_ASSERT(log.term_at(I(i)) == (m.term(i) ? std::optional<Term>(T(*m.term(i))) : std::nullopt));
  }
  // read_into from every index: the model's entries, a prefix of the range, at least one,
  // ending before memory_first() when it starts below it.
  for (std::uint64_t from = m.first(); from <= m.last(); ++from) {
    std::vector<Entry> got{model_entry(999, 9)};  // replaced, not appended to
    const std::size_t max_entries = *rc::gen::inRange<std::size_t>(1, 8);
    const std::size_t max_bytes = *rc::gen::inRange<std::size_t>(1, 120);
    RC_ASSERT(log.read_into(I(from), I(m.last()), max_entries, max_bytes, &reader, got).is_ok());
    RC_ASSERT(!got.empty());
    RC_ASSERT(got.size() <= max_entries);
    for (std::size_t k = 0; k < got.size(); ++k) {
      const std::uint64_t i = from + k;
      RC_ASSERT(got[k].index == I(i));
      RC_ASSERT(got[k].term == T(*m.term(i)));
      RC_ASSERT(got[k].payload == Bytes::copy_of(payload_of(i, *m.term(i))));
    }
    if (I(from) < log.memory_first()) RC_ASSERT(got.back().index < log.memory_first());
  }
}

}  // namespace

TEST_CASE("RaftLog: an evicted prefix keeps its terms and reads back (model)",
          "[raft_log][property][evict]") {
  rc::prop("evict, append above it, compact and evict again agree with the model", [] {
    Model m = gen_model();
    RaftLog log = m.build();
    ModelReader reader(m);
    std::uint64_t evicted = m.snap_index;
    const int steps = *rc::gen::inRange(1, 8);
    for (int step = 0; step < steps; ++step) {
      // Compaction may have moved the base past what was evicted.
      evicted = std::max(evicted, m.snap_index);
      switch (*rc::gen::inRange(0, 3)) {
        case 0: {  // evict a prefix of what is in memory
          const std::uint64_t upto = *rc::gen::inRange<std::uint64_t>(evicted, m.last() + 1);
          log.evict(I(upto));
          evicted = std::max(evicted, upto);
          break;
        }
        case 1: {  // a leader's batch from somewhere in memory on, maybe conflicting
          const std::uint64_t start = *rc::gen::inRange<std::uint64_t>(evicted + 1, m.last() + 2);
          std::uint64_t t = *m.term(start - 1);
          if (*rc::gen::inRange(0, 2) == 0) t += *rc::gen::inRange<std::uint64_t>(1, 3);
          std::vector<Entry> batch;
          const std::size_t n = *rc::gen::inRange<std::size_t>(1, 6);
          for (std::size_t k = 0; k < n; ++k) {
            const std::uint64_t i = start + k;
            // Entries the log has keep their term unless the batch's term is later.
            const std::uint64_t ti = (m.term(i) && *m.term(i) >= t) ? *m.term(i) : t;
            batch.push_back(model_entry(i, ti));
            t = ti;
          }
          const auto want = m.append(batch);
          const auto got = log.append(batch);
          RC_ASSERT(got.has_value() == want.has_value());
          if (got) RC_ASSERT(got->value() == *want);
          break;
        }
        default: {  // compact to anywhere in the log, evicted or not
          const std::uint64_t c = *rc::gen::inRange<std::uint64_t>(m.snap_index, m.last() + 1);
          SnapshotMeta s = m.base();
          s.index = I(c);
          s.term = T(*m.term(c));
          log.compact(s);
          m = m.compacted(c);
          break;
        }
      }
      check_windowed(log, m, evicted, reader);
    }
  });
}

TEST_CASE("RaftLog: reading evicted entries reports a missing reader and a bad store",
          "[raft_log][evict]") {
  Model m;
  m.terms = {1, 1, 2, 2, 3};
  RaftLog log = m.build();
  log.evict(I(3));
  REQUIRE(log.memory_first() == I(4));
  std::vector<Entry> out{model_entry(9, 9)};

  INFO("no reader: the evicted entries cannot be had");
  Status s = log.read_into(I(2), I(5), 10, 1000, nullptr, out);
  CHECK(s.code() == ErrorCode::InvalidArgument);
  CHECK(out.empty());

  ModelReader reader(m);
  INFO("the store's error comes back as it is, with nothing in `out`");
  reader.fail_with = Status{ErrorCode::IoError, "disk on fire"};
  out = {model_entry(9, 9)};
  s = log.read_into(I(2), I(5), 10, 1000, &reader, out);
  CHECK(s.code() == ErrorCode::IoError);
  CHECK(out.empty());

  INFO("an entry whose term differs from the one the log kept is refused");
  reader.fail_with = Status::ok();
  reader.wrong_term = true;
  s = log.read_into(I(1), I(5), 10, 1000, &reader, out);
  CHECK(s.code() == ErrorCode::Corruption);
  CHECK(out.empty());

  INFO("a good read stops at memory_first() - 1; from memory_first() on, no read at all");
  reader.wrong_term = false;
  REQUIRE(log.read_into(I(2), I(5), 10, 1000, &reader, out).is_ok());
  REQUIRE(out.size() == 2);
  CHECK(out.back().index == I(3));
  const int reads = reader.reads;
  REQUIRE(log.read_into(I(4), I(5), 10, 1000, &reader, out).is_ok());
  CHECK(out.size() == 2);
  CHECK(reader.reads == reads);
}

}  // namespace rlr::test
