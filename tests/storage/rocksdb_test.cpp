// RocksDbStorage-only behaviour: durability across reopen, space reclaimed by
// compaction, identity and format checks at open, and operating-system failures
// (missing, locked, unwritable directory; disk full through a fault-injecting file
// system).

#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <future>
#include <memory>
#include <mutex>
#include <string>

#include <catch2/catch.hpp>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>
#include <rocksdb/options.h>

#include "storage/rocksdb_storage.h"
#include "storage_test_util.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kAll = std::numeric_limits<std::size_t>::max();
namespace fs = std::filesystem;

RocksDbOptions options_at(const std::string& path, Identity id = {"alpha", NodeId{1}}) {
  RocksDbOptions o;
  o.path = path;
  o.identity = std::move(id);
  o.initial_config = config_of({1, 2, 3});
  o.sync = true;
  return o;
}

std::unique_ptr<RocksDbStorage> open_ok(const RocksDbOptions& o) {
  auto r = RocksDbStorage::open(o);
  RLR_REQUIRE_OK(r);
  return std::move(r).value();
}

bool contains_ci(std::string haystack, std::string needle) {
  auto lower = [](std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
  };
  return lower(std::move(haystack)).find(lower(std::move(needle))) != std::string::npos;
}

/// Relative path -> contents of every file under `dir` (the log's segments included)
/// except RocksDB's informational LOG files (a read-only open may rotate those; they
/// hold no data).
std::map<std::string, std::string> data_files(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& f : fs::recursive_directory_iterator(dir)) {
    if (!f.is_regular_file()) continue;
    const std::string name = fs::relative(f.path(), dir).string();
    if (f.path().filename().string().rfind("LOG", 0) == 0) continue;
    std::ifstream in(f.path(), std::ios::binary);
    out[name] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

// ---- a file system that runs out of space ------------------------------------------

/// Forwards everything to the default file system, except that once armed it accepts
/// only `budget` more bytes of appends; the append that crosses the budget writes what
/// fits (a torn write, as a real full disk may leave) and fails with NoSpace, and so does
/// every later append until space is freed.
class DiskFullFs final : public rocksdb::FileSystemWrapper {
 public:
  DiskFullFs() : FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "DiskFullFs"; }

  void fill_after(std::uint64_t budget_bytes) {
    budget_ = budget_bytes;
    armed_ = true;
  }
  void free_space() { armed_ = false; }
  [[nodiscard]] std::uint64_t failed_appends() const { return failed_appends_; }

  /// How many of `n` bytes may be written now.
  std::size_t admit(std::size_t n) {
    if (!armed_) return n;
    std::uint64_t left = budget_.load();
    while (true) {
      const std::uint64_t take = std::min<std::uint64_t>(left, n);
      if (budget_.compare_exchange_weak(left, left - take)) {
        if (take < n) ++failed_appends_;
        return static_cast<std::size_t>(take);
      }
    }
  }

  rocksdb::IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* dbg) override {
    auto s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  rocksdb::IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                                       std::unique_ptr<rocksdb::FSWritableFile>* r,
                                       rocksdb::IODebugContext* dbg) override {
    auto s = target()->ReopenWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }
  rocksdb::IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                                      const rocksdb::FileOptions& o,
                                      std::unique_ptr<rocksdb::FSWritableFile>* r,
                                      rocksdb::IODebugContext* dbg) override {
    auto s = target()->ReuseWritableFile(f, old, o, r, dbg);
    if (s.ok()) *r = std::make_unique<File>(std::move(*r), this);
    return s;
  }

 private:
  class File final : public rocksdb::FSWritableFileOwnerWrapper {
   public:
    File(std::unique_ptr<rocksdb::FSWritableFile>&& t, DiskFullFs* owner)
        : FSWritableFileOwnerWrapper(std::move(t)), owner_(owner) {}
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             rocksdb::IODebugContext* dbg) override {
      const std::size_t n = owner_->admit(data.size());
      if (n > 0) {
        auto s = target()->Append(rocksdb::Slice(data.data(), n), o, dbg);
        if (!s.ok()) return s;
      }
      return n == data.size() ? rocksdb::IOStatus::OK() : no_space();
    }
    rocksdb::IOStatus Append(const rocksdb::Slice& data, const rocksdb::IOOptions& o,
                             const rocksdb::DataVerificationInfo& /*info*/,
                             rocksdb::IODebugContext* dbg) override {
      return Append(data, o, dbg);
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                       const rocksdb::IOOptions& o,
                                       rocksdb::IODebugContext* dbg) override {
      const std::size_t n = owner_->admit(data.size());
      if (n > 0) {
        auto s = target()->PositionedAppend(rocksdb::Slice(data.data(), n), offset, o, dbg);
        if (!s.ok()) return s;
      }
      return n == data.size() ? rocksdb::IOStatus::OK() : no_space();
    }
    rocksdb::IOStatus PositionedAppend(const rocksdb::Slice& data, std::uint64_t offset,
                                       const rocksdb::IOOptions& o,
                                       const rocksdb::DataVerificationInfo& /*info*/,
                                       rocksdb::IODebugContext* dbg) override {
      return PositionedAppend(data, offset, o, dbg);
    }

   private:
    static rocksdb::IOStatus no_space() {
      return rocksdb::IOStatus::NoSpace("injected fault", "no space left on device");
    }
    DiskFullFs* owner_;
  };

  std::atomic<bool> armed_{false};
  std::atomic<std::uint64_t> budget_{0};
  std::atomic<std::uint64_t> failed_appends_{0};
};

}  // namespace

TEST_CASE("rocksdb: reopening keeps term, vote, commit, applied, entries and snapshot",
          "[rocksdb]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  std::vector<Entry> log = make_entries(1, 30, 2, 100);
  log[4].kind = EntryKind::Noop;
  log[4].payload = Bytes{};
  log[9].kind = EntryKind::Config;
  log[9].payload = core::encode_configuration(config_of({1, 2, 3, 4}));
  const HardState hs{Term{5}, NodeId{3}, LogIndex{25}};
  SnapshotMeta snap;
  snap.index = LogIndex{12};
  snap.term = Term{2};
  snap.config = config_of({1, 2, 3, 4});
  snap.config.learners = {NodeId{8}};
  snap.data = Bytes::copy_of(std::string("sessions\0and bytes", 18));
  {
    auto s = open_ok(o);
    PersistRequest req;
    req.entries = log;
    req.hard_state = hs;
    req.applied = LogIndex{20};
    RLR_REQUIRE_OK(s->persist(req));
    RLR_REQUIRE_OK(s->compact(snap));
  }
  const std::vector<Entry> retained(log.begin() + 12, log.end());
  {
    auto s = open_ok(o);
    CHECK(s->first_index() == LogIndex{13});
    CHECK(s->last_index() == LogIndex{30});
    CHECK(s->hard_state().value() == hs);
    CHECK(s->applied().value() == LogIndex{20});
    CHECK(s->snapshot().value() == snap);
    CHECK(s->identity() == o.identity);
    CHECK(read_all(*s) == retained);
    // Keep going after the reopen, then install a snapshot from a leader.
    RLR_REQUIRE_OK(append(*s, make_entries(31, 35, 6), HardState{Term{6}, kNoNode, LogIndex{33}}));
  }
  SnapshotMeta leader_snap = snap;
  leader_snap.index = LogIndex{100};
  leader_snap.term = Term{7};
  leader_snap.config = config_of({2, 3, 4});
  {
    auto s = open_ok(o);
    CHECK(s->last_index() == LogIndex{35});
    CHECK(s->hard_state().value() == HardState{Term{6}, kNoNode, LogIndex{33}});
    PersistRequest req;
    req.snapshot = &leader_snap;
    RLR_REQUIRE_OK(s->persist(req));
  }
  {
    auto s = open_ok(o);
    CHECK(s->snapshot().value() == leader_snap);
    CHECK(s->first_index() == LogIndex{101});
    CHECK(s->last_index() == LogIndex{100});
    auto rs = s->load();
    RLR_REQUIRE_OK(rs);
    CHECK(rs.value().entries.empty());
  }
}

TEST_CASE("rocksdb: a joiner's empty configuration survives a reopen", "[rocksdb]") {
  TempDir dir;
  auto o = options_at(dir.sub("db"));
  o.initial_config = core::Configuration{};
  { auto s = open_ok(o); }
  auto s = open_ok(o);
  CHECK(s->snapshot().value().config == core::Configuration{});
  CHECK(s->snapshot().value().index == LogIndex{0});
}

namespace {

constexpr std::uint64_t kEntries = 20000;

/// Appends entries 1..kEntries of 1 KiB (term 1) in steps of 1000; returns the bytes
/// of the log's segment files.
std::uint64_t fill(RocksDbStorage& s) {
  for (std::uint64_t first = 1; first <= kEntries; first += 1000) {
    RLR_REQUIRE_OK(append(s, make_entries(first, first + 999, 1, 1024)));
  }
  const std::uint64_t bytes = s.log_bytes();
  INFO("log bytes before compaction: " << bytes);
  REQUIRE(bytes >= kEntries * 1024);
  return bytes;
}

/// A snapshot taken locally at `index` (term 1) of the three-node configuration.
SnapshotMeta local_snapshot(std::uint64_t index) {
  SnapshotMeta snap;
  snap.index = LogIndex{index};
  snap.term = Term{1};
  snap.config = config_of({1, 2, 3});
  return snap;
}

/// The log's segment files on disk, by name.
std::set<std::string> segment_files(const std::string& db) {
  std::set<std::string> out;
  for (const auto& f : fs::directory_iterator(fs::path(db) / "log")) out.insert(f.path().filename().string());
  return out;
}

/// A store of kEntries entries in segments of 512 KiB (unsynced: these tests are about
/// which files a reopen replays), with a copy of its segment files, to put back later as
/// if their deletion had never happened.
struct SavedSegments {
  TempDir dir;
  RocksDbOptions o;
  std::unique_ptr<RocksDbStorage> s;
  fs::path saved;
  std::set<std::string> files;  ///< the segment files saved

  SavedSegments();
  /// Copies saved segment file `f` back into the store's log directory.
  void put_back(const std::string& f) const { fs::copy_file(saved / f, fs::path(o.path) / "log" / f); }
};

RocksDbOptions small_segments(const std::string& db) {
  auto o = options_at(db);
  o.sync = false;
  o.log_segment_bytes = 512U << 10;
  return o;
}

SavedSegments::SavedSegments() : o(small_segments(dir.sub("db"))), s(open_ok(o)), saved(dir.sub("saved")) {
  fill(*s);
  fs::create_directories(saved);
  files = segment_files(o.path);
  for (const auto& f : files) fs::copy_file(fs::path(o.path) / "log" / f, saved / f);
}

}  // namespace

TEST_CASE("rocksdb: compaction frees the space of the compacted entries", "[rocksdb]") {
  TempDir dir;
  auto o = options_at(dir.sub("db"));
  o.sync = false;
  o.log_segment_bytes = 512U << 10;  // a step (~1 MB) a segment: 20 of them
  auto s = open_ok(o);
  const std::uint64_t before = fill(*s);
  CHECK(s->log_segments().size() >= 15);

  RLR_REQUIRE_OK(s->compact(local_snapshot(19000)));
  const std::uint64_t after = s->log_bytes();
  INFO("log bytes after compacting 95% of the log: " << after);
  CHECK(after < before / 5);
  CHECK(segment_files(o.path).size() == s->log_segments().size());
  CHECK(read_all(*s) == make_entries(19001, kEntries, 1, 1024));

  s.reset();
  s = open_ok(o);
  CHECK(s->first_index() == LogIndex{19001});
  CHECK(s->last_index() == LogIndex{kEntries});
  CHECK(s->log_bytes() < before / 5);
  CHECK(read_all(*s) == make_entries(19001, kEntries, 1, 1024));
}

TEST_CASE("rocksdb: compaction keeps every segment a retained entry or a later one needs",
          "[rocksdb]") {
  // A segment goes only when every record in it lies at or below the snapshot, and only
  // the oldest ones: the segment being written and any holding a retained entry stay.
  TempDir dir;
  auto o = options_at(dir.sub("db"));
  o.sync = false;
  o.log_segment_bytes = 512U << 10;
  auto s = open_ok(o);
  fill(*s);
  const auto segments = s->log_segments();
  // Compacting through the first entry of the last segment keeps it (and nothing older
  // needs it); through the log's end keeps the segment being written.
  const std::uint64_t through = GENERATE(std::uint64_t{1}, std::uint64_t{10500}, kEntries);
  INFO("compacted through " << through);
  RLR_REQUIRE_OK(s->compact(local_snapshot(through)));
  CHECK(!s->log_segments().empty());
  CHECK(s->log_segments().back() == segments.back());
  if (through < kEntries) {
    CHECK(read_all(*s) == make_entries(through + 1, kEntries, 1, 1024));
  }
  s.reset();
  s = open_ok(o);
  CHECK(s->first_index() == LogIndex{through + 1});
  CHECK(s->last_index() == LogIndex{kEntries});
  if (through < kEntries) CHECK(read_all(*s) == make_entries(through + 1, kEntries, 1, 1024));
  // The log goes on after the reopen.
  RLR_REQUIRE_OK(append(*s, make_entries(kEntries + 1, kEntries + 5, 2, 10)));
  CHECK(s->last_index() == LogIndex{kEntries + 5});
}

TEST_CASE("rocksdb: segments a compaction dropped are never replayed, even if they come back",
          "[rocksdb]") {
  // The compaction records the first segment it keeps before deleting the older ones: a
  // crash before the deletions, a deletion that failed, or unlinks a file system kept
  // only in part all leave files that the next open deletes instead of replaying (an old
  // segment after a gap would otherwise fail the open).
  SavedSegments t;
  auto& [dir, o, s, saved, before] = t;
  RLR_REQUIRE_OK(s->compact(local_snapshot(19000)));
  const auto kept = segment_files(o.path);
  REQUIRE(kept.size() < before.size());
  s.reset();
  // Put back every other dropped segment: a gap among the old ones.
  int k = 0;
  for (const auto& f : before) {
    if (kept.count(f) == 0 && k++ % 2 == 0) t.put_back(f);
  }
  s = open_ok(o);
  CHECK(segment_files(o.path) == kept);
  CHECK(s->first_index() == LogIndex{19001});
  CHECK(read_all(*s) == make_entries(19001, kEntries, 1, 1024));
}

TEST_CASE("rocksdb: a snapshot that replaces the log leaves no old segment behind, "
          "even after a crash before their deletion",
          "[rocksdb]") {
  // Copies of the old segments, to put back as if the process had died between the
  // snapshot's write and their deletion.
  SavedSegments t;
  auto& [dir, o, s, saved, old_files] = t;

  SnapshotMeta leader_snap = local_snapshot(50000);
  leader_snap.term = Term{3};
  PersistRequest req;
  req.snapshot = &leader_snap;
  const auto after = make_entries(50001, 50010, 3, 100);
  req.entries = after;
  RLR_REQUIRE_OK(s->persist(req));
  CHECK(s->first_index() == LogIndex{50001});
  CHECK(read_all(*s) == after);
  for (const auto& f : segment_files(o.path)) CHECK(old_files.count(f) == 0);
  s.reset();

  for (const auto& f : old_files) t.put_back(f);
  s = open_ok(o);
  CHECK(s->first_index() == LogIndex{50001});
  CHECK(s->last_index() == LogIndex{50010});
  CHECK(read_all(*s) == after);
  for (const auto& f : segment_files(o.path)) CHECK(old_files.count(f) == 0);
}

TEST_CASE("rocksdb: a store of another cluster or node is refused and left untouched",
          "[rocksdb]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"), Identity{"alpha", NodeId{1}});
  const auto log = make_entries(1, 20, 3);
  const HardState hs{Term{3}, NodeId{1}, LogIndex{15}};
  {
    auto s = open_ok(o);
    RLR_REQUIRE_OK(append(*s, log, hs));
  }
  const auto files_before = data_files(o.path);

  auto wrong_cluster = o;
  wrong_cluster.identity = Identity{"beta", NodeId{1}};
  auto r1 = RocksDbStorage::open(wrong_cluster);
  RLR_REQUIRE_CODE(r1, ErrorCode::WrongCluster);
  CHECK_THAT(r1.status().message(), Catch::Contains("alpha") && Catch::Contains("beta"));

  auto wrong_node = o;
  wrong_node.identity = Identity{"alpha", NodeId{2}};
  RLR_REQUIRE_CODE(RocksDbStorage::open(wrong_node), ErrorCode::WrongCluster);

  auto wrong_both = o;
  wrong_both.identity = Identity{"alphaX", NodeId{1}};  // a prefix must not match
  RLR_REQUIRE_CODE(RocksDbStorage::open(wrong_both), ErrorCode::WrongCluster);

  CHECK(data_files(o.path) == files_before);

  auto s = open_ok(o);
  CHECK(read_all(*s) == log);
  CHECK(s->hard_state().value() == hs);
}

TEST_CASE("rocksdb: a crash while creating the store leaves a directory that opens",
          "[rocksdb][regression]") {
  // RocksDbStorage::open creates the RocksDB directory first and writes the format,
  // identity and initial snapshot records afterwards. A crash between the two leaves a
  // RocksDB directory (CURRENT and the two column families) without those records.
  // Recreate exactly that state and open again: the node should be able to start.
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    opts.create_missing_column_families = true;
    std::vector<rocksdb::ColumnFamilyDescriptor> cfs{
        {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
        {"meta", rocksdb::ColumnFamilyOptions()}};
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    auto st = rocksdb::DB::Open(opts, o.path, cfs, &handles, &raw);
    REQUIRE(st.ok());
    for (auto* h : handles) REQUIRE(raw->DestroyColumnFamilyHandle(h).ok());
    REQUIRE(raw->Close().ok());
    delete raw;
  }
  auto r = RocksDbStorage::open(o);
  INFO("open after an interrupted creation: " << r.status().to_string());
  CHECK(r.is_ok());
}

TEST_CASE("rocksdb: a RocksDB directory that is not a librlr store is refused", "[rocksdb]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  {
    rocksdb::Options opts;
    opts.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(opts, o.path, &raw).ok());
    REQUIRE(raw->Put(rocksdb::WriteOptions(), "someone else's", "data").ok());
    REQUIRE(raw->Close().ok());
    delete raw;
  }
  const auto before = data_files(o.path);
  auto r = RocksDbStorage::open(o);
  INFO(r.status().to_string());
  RLR_REQUIRE_CODE(r, ErrorCode::Corruption);
  CHECK_THAT(r.status().message(), Catch::Contains("not a librlr store"));
  CHECK(data_files(o.path) == before);
}

TEST_CASE("rocksdb: a missing directory without create_if_missing is NotFound", "[rocksdb]") {
  TempDir dir;
  auto o = options_at(dir.sub("absent"));
  o.create_if_missing = false;
  RLR_REQUIRE_CODE(RocksDbStorage::open(o), ErrorCode::NotFound);
  CHECK_FALSE(fs::exists(o.path));
  // An existing but empty directory is no store either.
  fs::create_directory(o.path);
  RLR_REQUIRE_CODE(RocksDbStorage::open(o), ErrorCode::NotFound);
}

TEST_CASE("rocksdb: a directory held by another open instance is refused with IoError",
          "[rocksdb]") {
  TempDir dir;
  const auto o = options_at(dir.sub("db"));
  auto first = open_ok(o);
  RLR_REQUIRE_OK(append(*first, make_entries(1, 5, 1)));

  auto second = RocksDbStorage::open(o);
  RLR_REQUIRE_CODE(second, ErrorCode::IoError);
  INFO(second.status().message());
  CHECK(contains_ci(second.status().message(), "lock"));

  // The first instance is unaffected and keeps working.
  RLR_REQUIRE_OK(append(*first, make_entries(6, 8, 1)));
  CHECK(read_all(*first) == make_entries(1, 8, 1));
  first.reset();
  auto again = open_ok(o);
  CHECK(again->last_index() == LogIndex{8});
}

TEST_CASE("rocksdb: an unwritable location fails with a clear IoError, no crash",
          "[rocksdb]") {
  TempDir dir;
  SECTION("the parent of the data directory is a regular file") {
    // We run as root in CI, where permission bits are not enforced; a path that goes
    // through a regular file fails with ENOTDIR for every user.
    const std::string file = dir.sub("file");
    std::ofstream(file) << "not a directory";
    const auto o = options_at(file + "/db");
    auto r = RocksDbStorage::open(o);
    INFO(r.status().to_string());
    RLR_REQUIRE_CODE(r, ErrorCode::IoError);
    CHECK_THAT(r.status().message(), Catch::Contains(o.path));
  }
  SECTION("a directory the kernel refuses to create, even for root (/proc)") {
    const auto o = options_at("/proc/self/rlr-storage-test-db");
    auto r = RocksDbStorage::open(o);
    INFO(r.status().to_string());
    RLR_REQUIRE_CODE(r, ErrorCode::IoError);
    CHECK_THAT(r.status().message(), Catch::Contains(o.path));
  }
  SECTION("a read-only directory (only meaningful when not root)") {
    const std::string ro = dir.sub("readonly");
    fs::create_directory(ro);
    fs::permissions(ro, fs::perms::owner_read | fs::perms::owner_exec |
                            fs::perms::group_read | fs::perms::group_exec |
                            fs::perms::others_read | fs::perms::others_exec);
    if (::geteuid() == 0) {
      WARN("running as root: permission bits are not enforced, skipping chmod 0555 check");
    } else {
      auto r = RocksDbStorage::open(options_at(ro));
      INFO(r.status().to_string());
      RLR_REQUIRE_CODE(r, ErrorCode::IoError);
    }
  }
}

TEST_CASE("rocksdb: a full disk fails persist with IoError and loses nothing acknowledged",
          "[rocksdb][fault]") {
  TempDir dir;
  auto fault_fs = std::make_shared<DiskFullFs>();
  std::shared_ptr<rocksdb::Env> env(rocksdb::NewCompositeEnv(fault_fs));
  auto o = options_at(dir.sub("db"));
  o.env = env;

  std::uint64_t acked_last = 0;
  std::vector<Entry> acked;
  HardState acked_hs;
  auto s = open_ok(o);
  auto persist_batch = [&](std::uint64_t term) {
    const auto batch = make_entries(acked_last + 1, acked_last + 10, term, 200);
    const HardState hs{Term{term}, NodeId{2}, LogIndex{acked_last}};
    Status st = append(*s, batch, hs);
    if (st) {
      acked_last += 10;
      acked_hs = hs;
      acked.insert(acked.end(), batch.begin(), batch.end());
    }
    return st;
  };
  for (std::uint64_t term = 1; term <= 20; ++term) RLR_REQUIRE_OK(persist_batch(term));

  fault_fs->fill_after(5000);  // about two more batches
  Status failure;
  std::uint64_t term = 21;
  for (; term < 60 && failure.is_ok(); ++term) failure = persist_batch(term);
  INFO("first failed persist: " << failure.to_string());
  REQUIRE_FALSE(failure.is_ok());
  CHECK(failure.code() == ErrorCode::IoError);
  CHECK((contains_ci(failure.message(), "no space") || contains_ci(failure.message(), "disk full")));
  CHECK(fault_fs->failed_appends() > 0);
  const std::uint64_t failed_from = acked_last + 1;

  // Nothing of the failed step is visible, in memory either.
  CHECK(s->last_index() == LogIndex{acked_last});
  CHECK(s->hard_state().value() == acked_hs);
  RLR_REQUIRE_CODE(s->read(LogIndex{failed_from}, LogIndex{failed_from}, kAll, kAll),
                   ErrorCode::InvalidArgument);

  // Still full: the next step fails too.
  Status still_full = persist_batch(term++);
  INFO("persist while still full: " << still_full.to_string());
  CHECK(still_full.code() == ErrorCode::IoError);

  // Space comes back. Whether this store recovers by itself is not part of the
  // contract, but whatever it acknowledges must be durable.
  fault_fs->free_space();
  Status after_free = persist_batch(term++);
  INFO("persist after space is freed: " << after_free.to_string());
  s.reset();

  o.env = nullptr;
  auto reopened = open_ok(o);
  CHECK(reopened->last_index() == LogIndex{acked_last});
  CHECK(reopened->hard_state().value() == acked_hs);
  CHECK(read_all(*reopened) == acked);
  // The store works normally again.
  RLR_REQUIRE_OK(append(*reopened, make_entries(acked_last + 1, acked_last + 3, 99)));
}

/// The child of the next test, in a process of its own (rlr-storage-tests
/// --full-disk-child DIR: main.cpp): opens a store at DIR, acknowledges 20 entries, drops
/// its soft RLIMIT_FSIZE to 1 byte (every file refuses to grow, as on a full disk: EFBIG
/// for ENOSPC), fails a write, and closes the store. Exit status 0 when all went so.
int full_disk_child_main(const std::string& dir) {
  ::signal(SIGXFSZ, SIG_IGN);
  auto s = RocksDbStorage::open(options_at(dir));
  if (!s || !append(*s.value(), make_entries(1, 20, 1, 200), HardState{Term{1}, NodeId{1}, LogIndex{0}})) return 10;
  rlimit lim{};
  if (::getrlimit(RLIMIT_FSIZE, &lim) != 0) return 11;
  lim.rlim_cur = 1;
  if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) return 11;
  if (append(*s.value(), make_entries(21, 30, 1, 200), HardState{Term{1}, NodeId{1}, LogIndex{20}})) return 12;
  s.value().reset();  // closed while the disk is still full
  return 0;
}

TEST_CASE("rocksdb: a store closed while its disk is still full closes without aborting",
          "[rocksdb][fault]") {
  // A node whose write failed stops, and closes its store, while the disk is still full.
  // The child runs in a fresh process (exec of this binary), with a clean RocksDB runtime.
  TempDir dir;
  const std::string db = dir.sub("db");
  char exe[4096];
  const ssize_t n = ::readlink("/proc/self/exe", exe, sizeof exe - 1);
  REQUIRE(n > 0);
  exe[n] = '\0';
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    char mode[] = "--full-disk-child";
    char* const args[] = {exe, mode, const_cast<char*>(db.c_str()), nullptr};
    ::execv(exe, args);
    ::_exit(6);
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  INFO("child status " << status << (WIFSIGNALED(status) ? " (killed by a signal)" : ""));
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  auto reopened = open_ok(options_at(db));
  CHECK(read_all(*reopened) == make_entries(1, 20, 1, 200));
}

}  // namespace rlr::storage::test
