// Damage the store's files behind its back and check what the open makes of it. The log
// (storage/segment_log.h) is replayed and checked in full at open: damage fails the open
// with Corruption naming the segment and offset, and no wrong entry is ever served. The
// one exception is a torn write - the last record of the last segment cut short, or
// zeros where it should be - which a power failure during an unacknowledged step leaves:
// that record is dropped and the rest opens. Metadata damage fails the open too.

#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include <catch2/catch.hpp>
#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>

#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"
#include "util/crc32c.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
namespace fs = std::filesystem;

/// The store's database opened directly, column families "default" and "meta".
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::Options opts;
    opts.create_if_missing = false;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"meta", rocksdb::ColumnFamilyOptions()}};
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(opts, path, cfs, &handles_, &raw);
    INFO(s.ToString());
    REQUIRE(s.ok());
    db_.reset(raw);
  }
  ~RawDb() {
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  rocksdb::ColumnFamilyHandle* meta() { return handles_[1]; }

  std::string get(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    std::string v;
    auto s = db_->Get(rocksdb::ReadOptions(), cf, key, &v);
    INFO(s.ToString());
    REQUIRE(s.ok());
    return v;
  }
  void put(rocksdb::ColumnFamilyHandle* cf, const std::string& key, const std::string& v) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    REQUIRE(db_->Put(wo, cf, key, v).ok());
  }
  void flip(rocksdb::ColumnFamilyHandle* cf, const std::string& key, std::size_t at) {
    std::string v = get(cf, key);
    REQUIRE(at < v.size());
    v[at] = static_cast<char>(v[at] ^ 0x10);
    put(cf, key, v);
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
};

RocksDbOptions options_at(const std::string& path) {
  RocksDbOptions o;
  o.path = path;
  o.identity = Identity{"corrupt", NodeId{1}};
  o.initial_config = config_of({1, 2, 3});
  o.sync = true;
  return o;
}

// make_store() writes entries 1..20 of 64 bytes in four steps of five: four records of
// a 48-byte header and 5 x (13 + 64) bytes of entries, at these offsets of segment 1.
constexpr std::uint64_t kHeader = 48;
constexpr std::uint64_t kRecord = kHeader + 5 * (13 + 64);
constexpr std::uint64_t kRecordAt[] = {0, kRecord, 2 * kRecord, 3 * kRecord};
constexpr std::uint64_t kLogBytes = 4 * kRecord;

/// A closed store with entries 1..20 (term 1), a hard state and an applied checkpoint,
/// written in four steps.
std::vector<Entry> make_store(const RocksDbOptions& o) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  auto log = make_entries(1, 20, 1, 64);
  for (std::size_t first = 0; first < log.size(); first += 5) {
    PersistRequest req;
    req.entries = std::span<const Entry>(log).subspan(first, 5);
    req.hard_state = HardState{Term{1}, NodeId{1}, LogIndex{18}};
    req.applied = LogIndex{10};
    RLR_REQUIRE_OK(r.value()->persist(req));
  }
  return log;
}

fs::path segment(const RocksDbOptions& o, std::uint64_t seq) {
  return fs::path(o.path) / "log" / fmt::format("{:020}.seg", seq);
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

void spill(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  REQUIRE(out.good());
}

void flip_byte(const fs::path& p, std::uint64_t at) {
  std::string b = slurp(p);
  REQUIRE(at < b.size());
  b[at] = static_cast<char>(b[at] ^ 0x10);
  spill(p, b);
}

std::unique_ptr<RocksDbStorage> reopen(const RocksDbOptions& o) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  return std::move(r).value();
}

/// The open fails with Corruption whose message contains `what`.
void require_open_fails(const RocksDbOptions& o, const std::string& what) {
  auto r = RocksDbStorage::open(o);
  INFO("open: " << r.status().to_string());
  REQUIRE(r.status().code() == ErrorCode::Corruption);
  CHECK_THAT(r.status().message(), Catch::Contains(what));
}

}  // namespace

TEST_CASE("corruption: a flipped byte anywhere in a log record fails the open, naming where",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  // The second record, and the last one: a whole record that fails a check is damage
  // even at the end of the log (only a record cut short is a torn write).
  const std::uint64_t rec = GENERATE(kRecordAt[1], kRecordAt[3]);
  const auto [where, at, expect] = GENERATE(table<const char*, std::uint64_t, const char*>({
      {"size", 3, "header checksum mismatch"},
      {"first index", 4 + 7, "header checksum mismatch"},
      {"count", 12 + 3, "header checksum mismatch"},
      {"term", 16 + 7, "header checksum mismatch"},
      {"vote", 24 + 7, "header checksum mismatch"},
      {"commit", 32 + 7, "header checksum mismatch"},
      {"body checksum", 40 + 1, "header checksum mismatch"},
      {"header checksum", 44 + 2, "header checksum mismatch"},
      {"first entry's term", kHeader + 5, "checksum mismatch"},
      {"second entry's kind", kHeader + 77 + 8, "checksum mismatch"},
      {"third entry's size", kHeader + 2 * 77 + 11, "checksum mismatch"},
      {"last entry's payload", kHeader + 4 * 77 + 13 + 20, "checksum mismatch"},
  }));
  INFO("record at " << rec << ", damaged field: " << where);
  flip_byte(segment(o, 1), rec + at);
  require_open_fails(o, fmt::format("at offset {}: {}", rec, expect));
  // Nothing was cut or rewritten: the damage stays there for an operator to look at.
  CHECK(fs::file_size(segment(o, 1)) == kLogBytes);
}

TEST_CASE("corruption: a last record cut short is a torn write: only it is dropped",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  // Cut inside the header, right after it, and inside the entries.
  const std::uint64_t keep = GENERATE(std::uint64_t{1}, kHeader - 1, kHeader,
                                      std::uint64_t{100}, kRecord - 1);
  INFO("bytes of the last record kept: " << keep);
  fs::resize_file(segment(o, 1), kRecordAt[3] + keep);
  {
    auto s = reopen(o);
    CHECK(s->last_index() == LogIndex{15});
    CHECK(read_all(*s) == std::vector<Entry>(log.begin(), log.begin() + 15));
    CHECK(s->hard_state().value() == HardState{Term{1}, NodeId{1}, LogIndex{18}});
    // The torn bytes are gone from the file for good, and the log goes on.
    CHECK(fs::file_size(segment(o, 1)) == kRecordAt[3]);
    RLR_REQUIRE_OK(append(*s, std::vector<Entry>(log.begin() + 15, log.end())));
  }
  auto s = reopen(o);
  CHECK(read_all(*s) == log);
}

TEST_CASE("corruption: zeros where the last record should end are a torn write",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  std::string bytes = slurp(segment(o, 1));
  SECTION("zeros after the last record: every entry is there") {
    bytes.append(4096, '\0');
    spill(segment(o, 1), bytes);
    auto s = reopen(o);
    CHECK(read_all(*s) == log);
    CHECK(fs::file_size(segment(o, 1)) == kLogBytes);
  }
  SECTION("the last record's entries zeroed, its header intact: that record is dropped") {
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(kRecordAt[3] + kHeader), bytes.end(), '\0');
    spill(segment(o, 1), bytes);
    auto s = reopen(o);
    CHECK(read_all(*s) == std::vector<Entry>(log.begin(), log.begin() + 15));
  }
  SECTION("junk after the last record, with no unwritten sector in it, is damage") {
    for (int i = 0; i < 700; ++i) bytes.push_back(static_cast<char>(1 + i % 250));
    spill(segment(o, 1), bytes);
    require_open_fails(o, fmt::format("at offset {}: header checksum mismatch", kLogBytes));
  }
}

TEST_CASE("corruption: a large last record with a sector never written is a torn write",
          "[rocksdb][corruption]") {
  // A power failure can leave any of a write's sectors unwritten, not only its end: an
  // all-zero 512-byte sector inside the last record marks it torn. A flipped byte in the
  // same place is damage.
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  auto log = make_store(o);
  const auto big = make_entries(21, 25, 1, 1000);  // one record of ~5 KB
  {
    auto s = reopen(o);
    RLR_REQUIRE_OK(append(*s, big));
  }
  // Reopening started segment 2 for the new step.
  const fs::path seg2 = segment(o, 2);
  REQUIRE(fs::file_size(seg2) > 4096);
  std::string bytes = slurp(seg2);
  SECTION("a zeroed sector in the middle: the step is dropped") {
    std::fill(bytes.begin() + 2048, bytes.begin() + 2560, '\0');
    spill(seg2, bytes);
    auto s = reopen(o);
    CHECK(read_all(*s) == log);
    CHECK(fs::file_size(seg2) == 0);
  }
  SECTION("a flipped byte in the middle: Corruption") {
    flip_byte(seg2, 2100);
    require_open_fails(o, "at offset 0: checksum mismatch");
  }
}

TEST_CASE("corruption: damage in an older segment is never taken for a torn write",
          "[rocksdb][corruption]") {
  TempDir dir;
  auto o = options_at(dir.sub("db"));
  o.log_segment_bytes = 2 * kRecord;  // records 1-2 in segment 1, 3-4 in segment 2
  make_store(o);
  REQUIRE(fs::file_size(segment(o, 1)) == 2 * kRecord);
  REQUIRE(fs::file_size(segment(o, 2)) == 2 * kRecord);
  SECTION("segment 1 cut short") {
    fs::resize_file(segment(o, 1), 2 * kRecord - 10);
    require_open_fails(o, "record truncated");
  }
  SECTION("zeros at the end of segment 1") {
    std::string bytes = slurp(segment(o, 1));
    std::fill(bytes.begin() + static_cast<std::ptrdiff_t>(kRecord), bytes.end(), '\0');
    spill(segment(o, 1), bytes);
    require_open_fails(o, "header checksum mismatch");
  }
  SECTION("segment 1 missing: the log no longer continues the snapshot") {
    fs::remove(segment(o, 1));
    require_open_fails(o, "do not continue the snapshot");
  }
  SECTION("segment 2, the newest, missing: its acknowledged entries are not silently dropped") {
    fs::remove(segment(o, 2));
    require_open_fails(o, "log segment 2 is missing (it was written; the newest here is 1)");
  }
}

TEST_CASE("corruption: a record missing from the middle of a segment is a gap",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  std::string bytes = slurp(segment(o, 1));
  bytes.erase(kRecordAt[1], kRecord);  // entries 6..10
  spill(segment(o, 1), bytes);
  require_open_fails(o, "record starts at entry 11, after a gap (the log ends at 5)");
}

TEST_CASE("corruption: a stray file in the log directory is refused", "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  const std::string name = GENERATE(std::string("notes.txt"), std::string("00000000000000000000.seg"),
                                    std::string("0000000000000000000x.seg"));
  spill(fs::path(o.path) / "log" / name, "x");
  require_open_fails(o, fmt::format("unexpected file '{}'", name));
}

TEST_CASE("corruption: damaged metadata records fail the open with Corruption",
          "[rocksdb][corruption]") {
  // The store reads and checks its metadata at open, so a damaged record stops open()
  // itself (documented: "Corruption (unknown format version, damaged metadata)") and
  // load() is never reached with bad data.
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  const auto [record, expect] = GENERATE(table<const char*, const char*>({
      {"hard_state", "hard state"},
      {"applied", "applied"},
      {"snapshot", "snapshot"},
      {"identity", "identity"},
      {"format", "format"},
      {"log_start", "log start"},
      {"log_newest", "newest-segment"},
  }));
  INFO("damaged record: " << record);
  {
    RawDb raw(o.path);
    raw.flip(raw.meta(), record, 6);
  }
  require_open_fails(o, expect);
}

TEST_CASE("corruption: an unknown format version is refused", "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  // 1: one RocksDB key per entry; 2: records in RocksDB; 4: from a newer build.
  const int version = GENERATE(1, 2, 4);
  {
    // A correctly sealed record of the version: [crc32c(key, body)][u64 BE version].
    std::string body(8, '\0');
    body[7] = static_cast<char>(version);
    std::uint32_t crc = util::crc32c(0, "format", 6);
    crc = util::crc32c(crc, body.data(), body.size());
    std::string sealed;
    for (int shift = 24; shift >= 0; shift -= 8) sealed.push_back(static_cast<char>((crc >> shift) & 0xFF));
    sealed += body;
    RawDb raw(o.path);
    raw.put(raw.meta(), "format", sealed);
  }
  require_open_fails(o, fmt::format("version {} (this build reads 3)", version));
}

TEST_CASE("corruption: a store of format 2 (the log in RocksDB) is refused, not misread",
          "[rocksdb][corruption]") {
  // Format 2 had a "log" column family beside "meta": the check must open whatever
  // families the store has to find its format record.
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  {
    rocksdb::Options opts;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"meta", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(opts, o.path, cfs, &handles, &raw).ok());
    std::unique_ptr<rocksdb::DB> db(raw);
    rocksdb::ColumnFamilyHandle* log = nullptr;
    REQUIRE(db->CreateColumnFamily(rocksdb::ColumnFamilyOptions(), "log", &log).ok());
    handles.push_back(log);
    std::string body(8, '\0');
    body[7] = 2;
    std::uint32_t crc = util::crc32c(0, "format", 6);
    crc = util::crc32c(crc, body.data(), body.size());
    std::string sealed;
    for (int shift = 24; shift >= 0; shift -= 8) sealed.push_back(static_cast<char>((crc >> shift) & 0xFF));
    sealed += body;
    rocksdb::WriteOptions wo;
    wo.sync = true;
    REQUIRE(db->Put(wo, handles[1], "format", sealed).ok());
    for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
    (void)db->Close();
  }
  require_open_fails(o, "unsupported storage format version 2 (this build reads 3)");
}

}  // namespace rlr::storage::test
