// rlr-storage-bench: append throughput of RocksDbStorage::persist beside a raw RocksDB
// WriteBatch baseline measured in the same run.
//
// For every point (batch size x entry size x sync) two stores are opened in their own
// fresh directories: the librlr store, and a bare RocksDB with the store's first format's
// column families and options that receives, per batch, one Put per entry (8-byte
// big-endian index; 13-byte header plus payload: the store's first format) and the same
// sync setting. The two are run in alternating time slices (A B B A ...) so drift in the
// machine (page cache, compactions, other load) falls on both. The ratio rlr/raw (the
// median over pairs of adjacent slices) shows what the storage layer costs, or since the
// store packs a step's entries into records (format 2) and writes them to segment files
// of its own (format 3) gains, over one RocksDB key per entry; the goal is >= 0.9. Throughputs are totals over all slices. The CPU time the
// writing thread spends per entry is shown too: unlike wall-clock throughput it hardly
// moves when other processes load the machine.
//
//   rlr-storage-bench [--seconds-per-point S] [--dir DIR] [--json] [--quick]
//                     [--batch N,...] [--bytes N,...] [--sync on|off]

#include <stdlib.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "storage/rocksdb_storage.h"

namespace {

using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

constexpr std::size_t kValueHeader = 4 + 8 + 1;  // the store's crc, term, kind

struct Point {
  std::size_t batch_entries;
  std::size_t entry_bytes;
  bool sync;
};

struct Side {
  std::uint64_t entries = 0;
  std::uint64_t batches = 0;
  double seconds = 0;
  double cpu_seconds = 0;  ///< of the writing thread only (RocksDB's own threads excluded)
  [[nodiscard]] double entries_per_s() const { return seconds > 0 ? static_cast<double>(entries) / seconds : 0; }
};

struct Result {
  Point point;
  Side rlr;
  Side raw;
  /// rlr/raw of each pair of adjacent slices; their median is the reported ratio, which
  /// a burst of load from elsewhere on the machine moves less than the totals.
  std::vector<double> slice_ratios;
};

struct Args {
  double seconds_per_point = 1.0;
  bool seconds_given = false;
  std::string dir;
  bool json = false;
  bool quick = false;
  std::vector<std::size_t> batches;  ///< empty: the default set
  std::vector<std::size_t> sizes;    ///< empty: the default set
  std::vector<bool> syncs;           ///< empty: off and on
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "rlr-storage-bench: %s\n", what.c_str());
  std::exit(1);
}

void usage(int code) {
  std::fprintf(code == 0 ? stdout : stderr,
               "usage: rlr-storage-bench [--seconds-per-point S] [--dir DIR] [--json] [--quick]\n"
               "                         [--batch N,...] [--bytes N,...] [--sync on|off]\n"
               "  --seconds-per-point S  measuring time per point, split evenly between the\n"
               "                         librlr store and the raw RocksDB baseline (default 1)\n"
               "  --dir DIR              where the stores are created (default: a new\n"
               "                         directory under /tmp, removed at the end)\n"
               "  --json                 print the results as JSON instead of a table\n"
               "  --quick                a few short points (smoke test)\n"
               "  --batch N,...          entries per batch (default 1,10,100,1000)\n"
               "  --bytes N,...          payload bytes per entry (default 64,256,4096)\n"
               "  --sync on|off          only the synced or the unsynced points\n");
  std::exit(code);
}

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) die(fmt::format("{} needs a value", arg));
      return argv[++i];
    };
    if (arg == "--seconds-per-point") {
      const std::string v = value();
      char* end = nullptr;
      a.seconds_per_point = std::strtod(v.c_str(), &end);
      if (end == v.c_str() || *end != '\0' || !(a.seconds_per_point > 0)) {
        die("--seconds-per-point needs a positive number");
      }
      a.seconds_given = true;
    } else if (arg == "--dir") {
      a.dir = value();
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "--quick") {
      a.quick = true;
    } else if (arg == "--batch" || arg == "--bytes") {
      std::vector<std::size_t>& out = arg == "--batch" ? a.batches : a.sizes;
      const std::string v = value();
      for (std::size_t pos = 0; pos <= v.size();) {
        const std::size_t comma = std::min(v.find(',', pos), v.size());
        const std::string item = v.substr(pos, comma - pos);
        char* end = nullptr;
        const unsigned long long n = std::strtoull(item.c_str(), &end, 10);
        if (item.empty() || *end != '\0' || n == 0) die(fmt::format("{} needs positive integers", arg));
        out.push_back(static_cast<std::size_t>(n));
        pos = comma + 1;
      }
    } else if (arg == "--sync") {
      const std::string v = value();
      if (v != "on" && v != "off") die("--sync needs on or off");
      a.syncs = {v == "on"};
    } else if (arg == "--help" || arg == "-h") {
      usage(0);
    } else {
      std::fprintf(stderr, "unknown option %s\n", argv[i]);
      usage(2);
    }
  }
  if (a.quick && !a.seconds_given) a.seconds_per_point = 0.2;
  return a;
}

/// The options RocksDbStorage opens its database with (src/storage/rocksdb_storage.cpp),
/// repeated here so the baseline runs on the same engine configuration.
rocksdb::Options baseline_options() {
  rocksdb::Options opts;
  opts.create_if_missing = true;
  opts.create_missing_column_families = true;
  opts.max_background_jobs = 2;
  opts.compression = rocksdb::kNoCompression;
  opts.write_buffer_size = 64U << 20;
  opts.keep_log_file_num = 4;
  opts.paranoid_checks = true;
  return opts;
}

double thread_cpu_seconds() {
  timespec ts{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

/// A writer of one side of a point: runs batches until a slice of time is over.
class Writer {
 public:
  virtual ~Writer() = default;
  /// Appends whole batches for at least `slice`; adds what it did to `side`.
  void run_slice(std::chrono::duration<double> slice, Side& side) {
    const double cpu_start = thread_cpu_seconds();
    const auto start = Clock::now();
    const auto end = start + std::chrono::duration_cast<Clock::duration>(slice);
    std::uint64_t batches = 0;
    auto now = start;
    do {
      write_batch();
      ++batches;
      now = Clock::now();
    } while (now < end);
    side.batches += batches;
    side.entries += batches * batch_entries_;
    side.seconds += std::chrono::duration<double>(now - start).count();
    side.cpu_seconds += thread_cpu_seconds() - cpu_start;
  }

 protected:
  explicit Writer(std::size_t batch_entries) : batch_entries_(batch_entries) {}
  virtual void write_batch() = 0;
  std::size_t batch_entries_;
  std::uint64_t next_index_ = 1;
};

class RlrWriter final : public Writer {
 public:
  RlrWriter(const std::string& path, const Point& p) : Writer(p.batch_entries) {
    rlr::storage::RocksDbOptions o;
    o.path = path;
    o.identity = rlr::storage::Identity{"bench", rlr::NodeId{1}};
    o.initial_config.voters = {rlr::NodeId{1}};
    o.sync = p.sync;
    auto r = rlr::storage::RocksDbStorage::open(o);
    if (!r) die("opening the librlr store: " + r.status().to_string());
    store_ = std::move(r).value();
    std::vector<std::uint8_t> bytes(p.entry_bytes);
    for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<std::uint8_t>(i * 131 + 7);
    const rlr::Bytes payload(std::move(bytes));  // shared by every entry, as the runtime would
    entries_.resize(p.batch_entries);
    for (rlr::Entry& e : entries_) {
      e.term = rlr::Term{1};
      e.payload = payload;
    }
  }

 private:
  void write_batch() override {
    for (rlr::Entry& e : entries_) e.index = rlr::LogIndex{next_index_++};
    rlr::storage::PersistRequest req;
    req.entries = entries_;
    if (rlr::Status s = store_->persist(req); !s) die("persist: " + s.to_string());
  }

  std::unique_ptr<rlr::storage::RocksDbStorage> store_;
  std::vector<rlr::Entry> entries_;
};

class RawWriter final : public Writer {
 public:
  RawWriter(const std::string& path, const Point& p)
      : Writer(p.batch_entries), value_(kValueHeader + p.entry_bytes, '\0') {
    const rocksdb::Options opts = baseline_options();
    rocksdb::ColumnFamilyOptions cf(opts);
    std::vector<rocksdb::ColumnFamilyDescriptor> families{
        {rocksdb::kDefaultColumnFamilyName, cf}, {"log", cf}, {"meta", cf}};
    rocksdb::DB* raw = nullptr;
    auto s = rocksdb::DB::Open(opts, path, families, &handles_, &raw);
    if (!s.ok()) die("opening the baseline database: " + s.ToString());
    db_.reset(raw);
    for (std::size_t i = 0; i < value_.size(); ++i) value_[i] = static_cast<char>(i * 131 + 7);
    write_options_.sync = p.sync;
  }
  ~RawWriter() override {
    for (auto* h : handles_) (void)db_->DestroyColumnFamilyHandle(h);
    (void)db_->Close();
  }
  RawWriter(const RawWriter&) = delete;
  RawWriter& operator=(const RawWriter&) = delete;

 private:
  void write_batch() override {
    rocksdb::WriteBatch b;
    char key[8];
    for (std::size_t n = 0; n < batch_entries_; ++n) {
      const std::uint64_t index = next_index_++;
      for (int i = 0; i < 8; ++i) key[i] = static_cast<char>((index >> (56 - 8 * i)) & 0xFF);
      b.Put(handles_[1], rocksdb::Slice(key, sizeof key), value_);
    }
    if (auto s = db_->Write(write_options_, &b); !s.ok()) die("baseline write: " + s.ToString());
  }

  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  std::string value_;
  rocksdb::WriteOptions write_options_;
};

Result measure(const Point& p, const std::string& root, double seconds, int id) {
  const std::string rlr_dir = fmt::format("{}/p{}-rlr", root, id);
  const std::string raw_dir = fmt::format("{}/p{}-raw", root, id);
  Result r{p, {}, {}, {}};
  {
    RlrWriter rlr(rlr_dir, p);
    RawWriter raw(raw_dir, p);
    // Warm both up briefly (file creation, first WAL segment), not measured.
    Side scratch;
    raw.run_slice(std::chrono::duration<double>(0.02), scratch);
    rlr.run_slice(std::chrono::duration<double>(0.02), scratch);
    // A B B A, repeated in short slices so load changes hit both sides alike; each side
    // gets `seconds / 2` in total.
    constexpr int kRounds = 10;
    const std::chrono::duration<double> slice(seconds / (2 * kRounds));
    for (int round = 0; round < kRounds; ++round) {
      Side rlr_slice;
      Side raw_slice;
      if (round % 2 == 0) {
        raw.run_slice(slice, raw_slice);
        rlr.run_slice(slice, rlr_slice);
      } else {
        rlr.run_slice(slice, rlr_slice);
        raw.run_slice(slice, raw_slice);
      }
      if (raw_slice.entries_per_s() > 0) {
        r.slice_ratios.push_back(rlr_slice.entries_per_s() / raw_slice.entries_per_s());
      }
      for (auto [total, part] : {std::pair<Side*, Side*>{&r.rlr, &rlr_slice}, {&r.raw, &raw_slice}}) {
        total->entries += part->entries;
        total->batches += part->batches;
        total->seconds += part->seconds;
        total->cpu_seconds += part->cpu_seconds;
      }
    }
  }
  std::error_code ec;
  fs::remove_all(rlr_dir, ec);
  fs::remove_all(raw_dir, ec);
  return r;
}

double mb_per_s(const Side& s, std::size_t entry_bytes) {
  return s.entries_per_s() * static_cast<double>(entry_bytes) / 1e6;
}

/// Microseconds of the writing thread's CPU per entry.
double cpu_us_per_entry(const Side& s) {
  return s.entries > 0 ? s.cpu_seconds * 1e6 / static_cast<double>(s.entries) : 0;
}

double ratio_of_totals(const Result& r) {
  const double raw = r.raw.entries_per_s();
  return raw > 0 ? r.rlr.entries_per_s() / raw : 0;
}

double ratio(const Result& r) {
  if (r.slice_ratios.empty()) return 0;
  std::vector<double> v = r.slice_ratios;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

void print_table_header() {
  std::printf("%-4s %6s %6s | %13s %9s | %13s %9s | %7s %7s | %13s\n", "sync", "batch",
              "bytes", "rlr entries/s", "rlr MB/s", "raw entries/s", "raw MB/s", "rlr/raw",
              "totals", "cpu us/entry");
  std::printf("%-4s %6s %6s | %13s %9s | %13s %9s | %7s %7s | %6s %6s\n", "", "", "", "", "",
              "", "", "median", "", "rlr", "raw");
  std::printf("%s\n", std::string(107, '-').c_str());
}

void print_row(const Result& r) {
  const double q = ratio(r);
  std::printf("%-4s %6zu %6zu | %13.0f %9.2f | %13.0f %9.2f | %7.3f %7.3f | %6.2f %6.2f%s\n",
              r.point.sync ? "on" : "off", r.point.batch_entries, r.point.entry_bytes,
              r.rlr.entries_per_s(), mb_per_s(r.rlr, r.point.entry_bytes),
              r.raw.entries_per_s(), mb_per_s(r.raw, r.point.entry_bytes), q,
              ratio_of_totals(r), cpu_us_per_entry(r.rlr), cpu_us_per_entry(r.raw),
              q < 0.9 ? "  < goal" : "");
  std::fflush(stdout);
}

void print_json(const std::vector<Result>& results, double seconds) {
  std::printf("{\n  \"seconds_per_point\": %g,\n  \"goal_ratio\": 0.9,\n  \"points\": [\n", seconds);
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf(
        "    {\"sync\": %s, \"batch_entries\": %zu, \"entry_bytes\": %zu, "
        "\"rlr_entries_per_s\": %.1f, \"rlr_mb_per_s\": %.3f, \"rlr_batches\": %llu, "
        "\"raw_entries_per_s\": %.1f, \"raw_mb_per_s\": %.3f, \"raw_batches\": %llu, "
        "\"ratio\": %.4f, \"ratio_of_totals\": %.4f, \"rlr_cpu_us_per_entry\": %.3f, "
        "\"raw_cpu_us_per_entry\": %.3f}%s\n",
        r.point.sync ? "true" : "false", r.point.batch_entries, r.point.entry_bytes,
        r.rlr.entries_per_s(), mb_per_s(r.rlr, r.point.entry_bytes),
        static_cast<unsigned long long>(r.rlr.batches), r.raw.entries_per_s(),
        mb_per_s(r.raw, r.point.entry_bytes), static_cast<unsigned long long>(r.raw.batches),
        ratio(r), ratio_of_totals(r), cpu_us_per_entry(r.rlr), cpu_us_per_entry(r.raw),
        i + 1 < results.size() ? "," : "");
  }
  std::printf("  ]\n}\n");
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);

  std::string root;
  bool remove_root = false;
  if (args.dir.empty()) {
    std::string tmpl = "/tmp/rlr-storage-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) die("cannot create a directory under /tmp");
    root = tmpl;
    remove_root = true;
  } else {
    std::error_code ec;
    fs::create_directories(args.dir, ec);
    if (ec) die(fmt::format("cannot create {}: {}", args.dir, ec.message()));
    root = args.dir;
  }

  std::vector<Point> points;
  std::vector<std::size_t> batches =
      args.quick ? std::vector<std::size_t>{1, 100} : std::vector<std::size_t>{1, 10, 100, 1000};
  std::vector<std::size_t> sizes =
      args.quick ? std::vector<std::size_t>{256} : std::vector<std::size_t>{64, 256, 4096};
  if (!args.batches.empty()) batches = args.batches;
  if (!args.sizes.empty()) sizes = args.sizes;
  const std::vector<bool> syncs = args.syncs.empty() ? std::vector<bool>{false, true} : args.syncs;
  for (bool sync : syncs) {
    for (std::size_t b : batches) {
      for (std::size_t sz : sizes) points.push_back(Point{b, sz, sync});
    }
  }

  if (!args.json) {
    std::printf("rlr-storage-bench: %zu points, %.2f s each (half librlr, half raw RocksDB, "
                "interleaved), in %s\n\n",
                points.size(), args.seconds_per_point, root.c_str());
    print_table_header();
  }
  std::vector<Result> results;
  int id = 0;
  for (const Point& p : points) {
    results.push_back(measure(p, root, args.seconds_per_point, id++));
    if (!args.json) print_row(results.back());
  }
  if (args.json) {
    print_json(results, args.seconds_per_point);
  } else {
    std::size_t met = 0;
    for (const Result& r : results) met += ratio(r) >= 0.9 ? 1 : 0;
    std::printf("\n%zu of %zu points meet the goal rlr/raw >= 0.9\n", met, results.size());
  }
  if (remove_root) {
    std::error_code ec;
    fs::remove_all(root, ec);
  }
  return 0;
}
