// Damage stored records behind the store's back (through RocksDB directly, and once in
// an SST file on disk) and check the store reports Corruption, naming the entry or
// record, and never serves a wrong entry. Log records hold several entries (see
// rocksdb_storage.h): damage to one makes all of its entries unreadable, none else.

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

std::string key_of(std::uint64_t index) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; ++i) {
    k[static_cast<std::size_t>(i)] = static_cast<char>((index >> (56 - 8 * i)) & 0xFF);
  }
  return k;
}

/// The store's database opened directly, column families "default", "log", "meta".
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    rocksdb::Options opts;
    opts.create_if_missing = false;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"log", rocksdb::ColumnFamilyOptions()},
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

  rocksdb::ColumnFamilyHandle* log() { return handles_[1]; }
  rocksdb::ColumnFamilyHandle* meta() { return handles_[2]; }

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
  void del(rocksdb::ColumnFamilyHandle* cf, const std::string& key) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    REQUIRE(db_->Delete(wo, cf, key).ok());
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

/// A closed store with entries 1..20 (term 1), a hard state and an applied checkpoint,
/// written in four steps, so the log holds four records: 1..5, 6..10, 11..15, 16..20.
std::vector<Entry> make_store(const RocksDbOptions& o, std::size_t payload = 64) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  auto log = make_entries(1, 20, 1, payload);
  for (std::size_t first = 0; first < log.size(); first += 5) {
    PersistRequest req;
    req.entries = std::span<const Entry>(log).subspan(first, 5);
    req.hard_state = HardState{Term{1}, NodeId{1}, LogIndex{18}};
    req.applied = LogIndex{10};
    RLR_REQUIRE_OK(r.value()->persist(req));
  }
  return log;
}

std::unique_ptr<RocksDbStorage> reopen(const RocksDbOptions& o) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  return std::move(r).value();
}

/// Entries [first, last] are unreadable: every read that needs one of them fails with
/// Corruption naming the first of them it needs; reads of the other entries return the
/// right entries; load() fails with Corruption.
void require_corruption(const RocksDbStorage& s, const std::vector<Entry>& log,
                        std::uint64_t first, std::uint64_t last) {
  for (std::uint64_t from = 1; from <= 20; ++from) {
    for (std::uint64_t to = from; to <= 20; ++to) {
      auto r = s.read(LogIndex{from}, LogIndex{to}, kAll, kAll);
      INFO("read [" << from << ", " << to << "]: " << r.status().to_string());
      if (to < first || from > last) {
        RLR_REQUIRE_OK(r);
        REQUIRE(r.value() == std::vector<Entry>(log.begin() + static_cast<std::ptrdiff_t>(from - 1),
                                                log.begin() + static_cast<std::ptrdiff_t>(to)));
      } else {
        REQUIRE(r.status().code() == ErrorCode::Corruption);
        REQUIRE_THAT(r.status().message(),
                     Catch::Contains("entry " + std::to_string(std::max(from, first)) + ":"));
      }
    }
  }
  auto rs = s.load();
  INFO("load: " << rs.status().to_string());
  CHECK(rs.status().code() == ErrorCode::Corruption);
}

}  // namespace

TEST_CASE("corruption: a flipped byte in a log record is reported, never served",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  // Record layout: [crc:4][count:4] then per entry [term:8][kind:1][size:4][payload].
  const auto [where, at] = GENERATE(table<const char*, std::size_t>({
      {"crc", 1},
      {"count", 7},
      {"first entry's term", 8 + 5},
      {"second entry's kind", 8 + 13 + 64 + 8},
      {"third entry's size", 8 + 2 * (13 + 64) + 11},
      {"last entry's payload", 8 + 4 * (13 + 64) + 13 + 20},
  }));
  INFO("damaged field: " << where);
  {
    RawDb raw(o.path);
    raw.flip(raw.log(), key_of(6), at);
  }
  auto s = reopen(o);
  require_corruption(*s, log, 6, 10);
}

TEST_CASE("corruption: a truncated log record is reported", "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  const std::size_t keep = GENERATE(std::size_t{3}, std::size_t{9}, std::size_t{8 + 13 + 64 + 5});
  INFO("bytes kept: " << keep);
  {
    RawDb raw(o.path);
    raw.put(raw.log(), key_of(11), raw.get(raw.log(), key_of(11)).substr(0, keep));
  }
  auto s = reopen(o);
  require_corruption(*s, log, 11, 15);
}

TEST_CASE("corruption: a damaged last record fails the open: it tells where the log ends",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  {
    RawDb raw(o.path);
    raw.flip(raw.log(), key_of(16), 30);
  }
  auto r = RocksDbStorage::open(o);
  INFO("open: " << r.status().to_string());
  REQUIRE(r.status().code() == ErrorCode::Corruption);
  CHECK_THAT(r.status().message(), Catch::Contains("checksum mismatch in record 16"));
}

TEST_CASE("corruption: a record stored under a damaged key is caught by the key's checksum",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);

  SECTION("record 6..10 moved onto key 7: 6 is missing and 7..10 fail the checksum") {
    {
      RawDb raw(o.path);
      const std::string v6 = raw.get(raw.log(), key_of(6));
      raw.del(raw.log(), key_of(6));
      raw.put(raw.log(), key_of(7), v6);
    }
    auto s = reopen(o);
    require_corruption(*s, log, 6, 10);
    auto r7 = s->read(LogIndex{7}, LogIndex{7}, kAll, kAll);
    INFO(r7.status().to_string());
    CHECK_THAT(r7.status().message(), Catch::Contains("checksum mismatch in record 7"));
  }
  SECTION("record 1..5 copied over key 6: 6..10 fail the checksum") {
    {
      RawDb raw(o.path);
      raw.put(raw.log(), key_of(6), raw.get(raw.log(), key_of(1)));
    }
    auto s = reopen(o);
    require_corruption(*s, log, 6, 10);
  }
  SECTION("a key with a flipped high bit: its entries are missing, the log ends there") {
    {
      RawDb raw(o.path);
      const std::string v = raw.get(raw.log(), key_of(11));
      raw.del(raw.log(), key_of(11));
      raw.put(raw.log(), key_of(11 | (1ULL << 40)), v);
    }
    // The moved record sorts last: the open checks the last record and refuses.
    auto r = RocksDbStorage::open(o);
    INFO("open: " << r.status().to_string());
    REQUIRE(r.status().code() == ErrorCode::Corruption);
    CHECK_THAT(r.status().message(), Catch::Contains("checksum mismatch"));
  }
  SECTION("a key of the wrong length") {
    {
      RawDb raw(o.path);
      raw.put(raw.log(), key_of(5) + "x", raw.get(raw.log(), key_of(6)));
      raw.del(raw.log(), key_of(6));
    }
    auto s = reopen(o);
    require_corruption(*s, log, 6, 10);
  }
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
  }));
  INFO("damaged record: " << record);
  {
    RawDb raw(o.path);
    raw.flip(raw.meta(), record, 6);
  }
  auto r = RocksDbStorage::open(o);
  INFO("open: " << r.status().to_string());
  REQUIRE(r.status().code() == ErrorCode::Corruption);
  CHECK_THAT(r.status().message(), Catch::Contains(expect));
}

TEST_CASE("corruption: an unknown format version is refused", "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  make_store(o);
  // 1: a store of one key per entry, from before records; 3: from a newer build.
  const int version = GENERATE(1, 3);
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
  auto r = RocksDbStorage::open(o);
  INFO("open: " << r.status().to_string());
  REQUIRE(r.status().code() == ErrorCode::Corruption);
  CHECK_THAT(r.status().message(),
             Catch::Contains(fmt::format("version {} (this build reads 2)", version)));
}

TEST_CASE("corruption: a flipped bit inside an SST file is reported, never served",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  std::vector<Entry> log;
  {
    auto s = reopen(o);
    log = make_entries(1, 400, 1, 4096);  // ~1.6 MB: many data blocks
    RLR_REQUIRE_OK(append(*s, log));
    RLR_REQUIRE_OK(s->flush());
  }
  // The largest SST file is the log column family's.
  fs::path sst;
  std::uintmax_t largest = 0;
  for (const auto& f : fs::directory_iterator(o.path)) {
    if (f.path().extension() == ".sst" && f.file_size() > largest) {
      largest = f.file_size();
      sst = f.path();
    }
  }
  REQUIRE(largest > 1000000);
  {
    std::fstream file(sst, std::ios::in | std::ios::out | std::ios::binary);
    file.seekg(static_cast<std::streamoff>(largest / 3));
    char c = 0;
    file.read(&c, 1);
    c = static_cast<char>(c ^ 0x01);
    file.seekp(static_cast<std::streamoff>(largest / 3));
    file.write(&c, 1);
  }
  auto opened = RocksDbStorage::open(o);
  if (!opened) {
    INFO("open: " << opened.status().to_string());
    CHECK(opened.status().code() == ErrorCode::Corruption);
    return;
  }
  auto& s = *opened.value();
  auto all = s.read(LogIndex{1}, LogIndex{400}, kAll, kAll);
  INFO("read: " << all.status().to_string());
  REQUIRE(all.status().code() == ErrorCode::Corruption);
  if (all.status().message().find("entry") == std::string::npos) {
    WARN("the block-checksum error does not name the log index it was reading: "
         << all.status().message());
  }
  // Entry by entry: each one is either correct or reported, never wrong.
  std::size_t reported = 0;
  for (std::uint64_t i = 1; i <= 400; ++i) {
    auto r = s.read(LogIndex{i}, LogIndex{i}, kAll, kAll);
    if (r) {
      REQUIRE(r.value() == std::vector<Entry>{log[i - 1]});
    } else {
      REQUIRE(r.status().code() == ErrorCode::Corruption);
      ++reported;
    }
  }
  CHECK(reported > 0);
  CHECK(s.load().status().code() == ErrorCode::Corruption);
}

}  // namespace rlr::storage::test
