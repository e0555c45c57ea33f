// Damage stored records behind the store's back (through RocksDB directly, and once in
// an SST file on disk) and check the store reports Corruption, naming the entry or
// record, and never serves a wrong entry.

#include <filesystem>
#include <fstream>
#include <limits>
#include <memory>
#include <string>

#include <catch2/catch.hpp>
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

/// A closed store with entries 1..20 (term 1), a hard state and an applied checkpoint.
std::vector<Entry> make_store(const RocksDbOptions& o, std::size_t payload = 64) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  auto log = make_entries(1, 20, 1, payload);
  PersistRequest req;
  req.entries = log;
  req.hard_state = HardState{Term{1}, NodeId{1}, LogIndex{18}};
  req.applied = LogIndex{10};
  RLR_REQUIRE_OK(r.value()->persist(req));
  return log;
}

std::unique_ptr<RocksDbStorage> reopen(const RocksDbOptions& o) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  return std::move(r).value();
}

/// Every read that covers `bad` fails with Corruption naming it; reads around it still
/// return the right entries; load() fails with Corruption.
void require_entry_corruption(const RocksDbStorage& s, const std::vector<Entry>& log,
                              std::uint64_t bad) {
  const std::string name = "entry " + std::to_string(bad);
  for (auto [from, to] : {std::pair<std::uint64_t, std::uint64_t>{bad, bad},
                          {1, 20},
                          {bad, 20},
                          {bad > 1 ? bad - 1 : 1, bad}}) {
    auto r = s.read(LogIndex{from}, LogIndex{to}, kAll, kAll);
    INFO("read [" << from << ", " << to << "]: " << r.status().to_string());
    REQUIRE(r.status().code() == ErrorCode::Corruption);
    CHECK_THAT(r.status().message(), Catch::Contains(name));
  }
  if (bad > 1) {
    auto before = s.read(LogIndex{1}, LogIndex{bad - 1}, kAll, kAll);
    RLR_REQUIRE_OK(before);
    CHECK(before.value() == std::vector<Entry>(log.begin(), log.begin() + static_cast<std::ptrdiff_t>(bad - 1)));
  }
  auto rs = s.load();
  INFO("load: " << rs.status().to_string());
  CHECK(rs.status().code() == ErrorCode::Corruption);
}

}  // namespace

TEST_CASE("corruption: a flipped byte in an entry is reported, never served",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  // Value layout: [crc:4][term:8][kind:1][payload].
  const auto [where, at] = GENERATE(table<const char*, std::size_t>({
      {"payload", 13 + 20},
      {"crc", 1},
      {"term", 11},
      {"kind", 12},
  }));
  INFO("damaged field: " << where);
  {
    RawDb raw(o.path);
    raw.flip(raw.log(), key_of(7), at);
  }
  auto s = reopen(o);
  require_entry_corruption(*s, log, 7);
  auto after = s->read(LogIndex{8}, LogIndex{20}, kAll, kAll);
  RLR_REQUIRE_OK(after);
  CHECK(after.value() == std::vector<Entry>(log.begin() + 7, log.end()));
}

TEST_CASE("corruption: a truncated entry value is reported", "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);
  {
    RawDb raw(o.path);
    raw.put(raw.log(), key_of(12), raw.get(raw.log(), key_of(12)).substr(0, 9));
  }
  auto s = reopen(o);
  require_entry_corruption(*s, log, 12);
}

TEST_CASE("corruption: an entry stored under a damaged key is caught by the key's checksum",
          "[rocksdb][corruption]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  const auto log = make_store(o);

  SECTION("entry 9 moved onto key 10: 9 is missing and 10 fails its checksum") {
    {
      RawDb raw(o.path);
      const std::string v9 = raw.get(raw.log(), key_of(9));
      raw.del(raw.log(), key_of(9));
      raw.put(raw.log(), key_of(10), v9);
    }
    auto s = reopen(o);
    require_entry_corruption(*s, log, 9);
    auto r10 = s->read(LogIndex{10}, LogIndex{10}, kAll, kAll);
    INFO(r10.status().to_string());
    REQUIRE(r10.status().code() == ErrorCode::Corruption);
    CHECK_THAT(r10.status().message(), Catch::Contains("entry 10"));
  }
  SECTION("entry 5 copied over key 6: 6 fails its checksum") {
    {
      RawDb raw(o.path);
      raw.put(raw.log(), key_of(6), raw.get(raw.log(), key_of(5)));
    }
    auto s = reopen(o);
    require_entry_corruption(*s, log, 6);
  }
  SECTION("a key with a flipped high bit: the entry is missing at its index") {
    {
      RawDb raw(o.path);
      const std::string v = raw.get(raw.log(), key_of(14));
      raw.del(raw.log(), key_of(14));
      raw.put(raw.log(), key_of(14 | (1ULL << 40)), v);
    }
    auto s = reopen(o);
    auto r = s->read(LogIndex{1}, LogIndex{20}, kAll, kAll);
    INFO(r.status().to_string());
    REQUIRE(r.status().code() == ErrorCode::Corruption);
    CHECK_THAT(r.status().message(), Catch::Contains("entry 14"));
    auto rs = s->load();
    INFO("load: " << rs.status().to_string());
    CHECK(rs.status().code() == ErrorCode::Corruption);
  }
  SECTION("a key of the wrong length") {
    {
      RawDb raw(o.path);
      raw.put(raw.log(), key_of(3) + "x", raw.get(raw.log(), key_of(4)));
      raw.del(raw.log(), key_of(4));
    }
    auto s = reopen(o);
    require_entry_corruption(*s, log, 4);
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
  {
    // A correctly sealed record of version 2: [crc32c(key, body)][u64 BE 2].
    std::string body(8, '\0');
    body[7] = 2;
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
  CHECK_THAT(r.status().message(), Catch::Contains("version 2"));
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
