#include "storage/rocksdb_storage.h"

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <limits>
#include <optional>
#include <thread>
#include <utility>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "util/crc32c.h"
#include "util/thread_name.h"

namespace rlr::storage {
namespace {

constexpr const char* kLogFamily = "log";
constexpr const char* kMetaFamily = "meta";
constexpr const char* kFormatKey = "format";
constexpr const char* kIdentityKey = "identity";
constexpr const char* kHardStateKey = "hard_state";
constexpr const char* kAppliedKey = "applied";
constexpr const char* kSnapshotKey = "snapshot";
constexpr std::size_t kRecordHeader = 4 + 4;      // crc, entry count
constexpr std::size_t kEntryHeader = 8 + 1 + 4;   // term, kind, payload size
/// At most this many entries in one record (the count field has 32 bits).
constexpr std::size_t kMaxRecordEntries = 1U << 16;
/// persist() keeps a batch buffer up to this size for good; a larger one only until
/// kBatchShrinkSteps steps in a row have needed less than a quarter of it.
constexpr std::size_t kBatchKeepBytes = 1U << 20;
constexpr int kBatchShrinkSteps = 64;

// ---- byte helpers (explicit, endian-independent) -----------------------------------

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

std::uint64_t get_u64(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::uint32_t get_u32(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v = (v << 8) | static_cast<std::uint8_t>(p[i]);
  return v;
}

std::string index_key(LogIndex i) {
  std::string k;
  k.reserve(8);
  put_u64(k, i.value());
  return k;
}

/// Prefixes `body` with its crc32c (seeded with `salt`, e.g. the key).
std::string seal(std::string_view salt, const std::string& body) {
  std::string out;
  out.reserve(4 + body.size());
  std::uint32_t crc = util::crc32c(0, salt.data(), salt.size());
  crc = util::crc32c(crc, body.data(), body.size());
  put_u32(out, crc);
  out += body;
  return out;
}

/// Checks and strips the crc prefix; nullopt when damaged.
std::optional<std::string_view> unseal(std::string_view salt, std::string_view sealed) {
  if (sealed.size() < 4) return std::nullopt;
  std::uint32_t crc = util::crc32c(0, salt.data(), salt.size());
  crc = util::crc32c(crc, sealed.data() + 4, sealed.size() - 4);
  if (crc != get_u32(sealed.data())) return std::nullopt;
  return sealed.substr(4);
}

void put_u64_at(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>((v >> (56 - 8 * i)) & 0xFF);
}

void put_u32_at(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
}

/// How persist() splits one step's entries into records: entries [begin, end) of the
/// step form one record. Filled by plan_records(), reused from step to step.
struct RecordSpan {
  std::size_t begin;
  std::size_t end;
};

/// Splits `entries` into records of at most `record_bytes` (headers included; a larger
/// entry gets a record of its own) and kMaxRecordEntries entries. Returns the bytes the
/// records take in a WriteBatch: per record a tag, a column family id, two length varints
/// (at most 1 + 5 + 1 + 5 bytes together), the key and the record header; per entry its
/// header and payload.
/// Errors: InvalidArgument for a payload of 4 GiB or more (its size field has 32 bits).
Result<std::size_t> plan_records(std::span<const Entry> entries, std::size_t record_bytes,
                                 std::vector<RecordSpan>& out) {
  out.clear();
  std::size_t total = 0;
  std::size_t i = 0;
  while (i < entries.size()) {
    std::size_t j = i;
    std::size_t bytes = kRecordHeader;
    do {
      if (entries[j].payload.size() > std::numeric_limits<std::uint32_t>::max()) {
        return Status{ErrorCode::InvalidArgument,
                      fmt::format("entry {} is larger than 4 GiB", entries[j].index.value())};
      }
      bytes += kEntryHeader + entries[j].payload.size();
      ++j;
    } while (j < entries.size() && j - i < kMaxRecordEntries &&
             bytes + kEntryHeader + entries[j].payload.size() <= record_bytes);
    out.push_back(RecordSpan{i, j});
    total += 12 + 8 + bytes;
    i = j;
  }
  return total;
}

/// Adds `entries` to `b` as the records `plan` describes, without a temporary value: the
/// record and entry headers are written to `headers` (sized once up front, so the slices
/// into it stay valid) and each payload is copied once, straight into the batch.
rocksdb::Status put_records(rocksdb::WriteBatch& b, rocksdb::ColumnFamilyHandle* cf,
                            std::span<const Entry> entries, std::span<const RecordSpan> plan,
                            std::string& headers, std::vector<rocksdb::Slice>& parts) {
  headers.resize(plan.size() * kRecordHeader + entries.size() * kEntryHeader);
  char* out = headers.data();
  for (const RecordSpan& r : plan) {
    char key[8];
    put_u64_at(key, entries[r.begin].index.value());
    char* header = out;
    out += kRecordHeader;
    put_u32_at(header + 4, static_cast<std::uint32_t>(r.end - r.begin));
    std::uint32_t crc = util::crc32c(0, key, sizeof key);
    crc = util::crc32c(crc, header + 4, kRecordHeader - 4);
    parts.clear();
    parts.emplace_back(header, kRecordHeader);
    for (std::size_t k = r.begin; k < r.end; ++k) {
      const Entry& e = entries[k];
      put_u64_at(out, e.term.value());
      out[8] = static_cast<char>(e.kind);
      put_u32_at(out + 9, static_cast<std::uint32_t>(e.payload.size()));
      crc = util::crc32c(crc, out, kEntryHeader);
      parts.emplace_back(out, kEntryHeader);
      out += kEntryHeader;
      if (!e.payload.empty()) {
        crc = util::crc32c(crc, e.payload.data(), e.payload.size());
        parts.emplace_back(reinterpret_cast<const char*>(e.payload.data()), e.payload.size());
      }
    }
    put_u32_at(header, crc);
    const rocksdb::Slice key_slice(key, sizeof key);
    auto s = b.Put(cf, rocksdb::SliceParts(&key_slice, 1),
                   rocksdb::SliceParts(parts.data(), static_cast<int>(parts.size())));
    if (!s.ok()) return s;
  }
  return rocksdb::Status::OK();
}

/// Payloads read back from the log, packed into shared blocks: one allocation per block
/// instead of two per entry (the bytes and their owner), which dominated start-up (the
/// core loads every retained entry). Blocks grow from 4 KiB to 1 MiB, so a short read
/// stays small; a payload larger than a quarter block gets a buffer of its own. An entry
/// keeps its block alive, and the log is dropped in index order, so blocks go with it.
class PayloadPacker {
 public:
  Bytes copy(const char* data, std::size_t n) {
    if (n > kMaxBlock / 4) return Bytes::copy_of(std::string_view(data, n));
    if (!block_ || used_ + n > size_) {
      size_ = std::min(kMaxBlock, std::max(size_ * 2, n));
      // Not zeroed: every byte handed out is copied in first.
      block_ = std::make_shared_for_overwrite<std::uint8_t[]>(size_);
      used_ = 0;
    }
    std::uint8_t* at = block_.get() + used_;
    std::memcpy(at, data, n);
    used_ += n;
    return Bytes(block_, at, n);
  }

 private:
  static constexpr std::size_t kMaxBlock = 1U << 20;
  std::shared_ptr<std::uint8_t[]> block_;
  std::size_t used_ = 0;
  std::size_t size_ = 2048;  ///< of block_
};

/// A log record whose key, checksum and layout have been checked: it holds entries
/// [first, last]; `body` is their headers and payloads, in order.
struct Record {
  LogIndex first;
  LogIndex last;
  std::string_view body;
};

/// Checks the record stored under `key`. `want` is the entry the caller is looking for,
/// named in the error: Corruption "log entry N: ...".
Result<Record> open_record(LogIndex want, const rocksdb::Slice& key, const rocksdb::Slice& value) {
  auto corrupt = [&](std::string_view what) {
    return Status{ErrorCode::Corruption, fmt::format("log entry {}: {}", want.value(), what)};
  };
  if (key.size() != 8) return corrupt("malformed record key");
  const std::uint64_t first = get_u64(key.data());
  if (value.size() < kRecordHeader) return corrupt(fmt::format("record {} truncated", first));
  std::uint32_t crc = util::crc32c(0, key.data(), key.size());
  crc = util::crc32c(crc, value.data() + 4, value.size() - 4);
  if (crc != get_u32(value.data())) {
    return corrupt(fmt::format("checksum mismatch in record {}", first));
  }
  const std::uint32_t count = get_u32(value.data() + 4);
  if (count == 0 || first == 0 || first > std::numeric_limits<std::uint64_t>::max() - count) {
    return corrupt(fmt::format("record {} has a bad entry count", first));
  }
  // The checksum matched, so this is what was written; the walk guards against a writer
  // bug ever turning into an out-of-bounds read.
  const std::string_view body(value.data() + kRecordHeader, value.size() - kRecordHeader);
  std::size_t at = 0;
  for (std::uint32_t k = 0; k < count; ++k) {
    if (body.size() - at < kEntryHeader) return corrupt(fmt::format("record {} truncated", first));
    if (static_cast<std::uint8_t>(body[at + 8]) > static_cast<std::uint8_t>(kLastEntryKind)) {
      return corrupt(fmt::format("unknown entry kind in record {}", first));
    }
    const std::size_t n = get_u32(body.data() + at + 9);
    at += kEntryHeader;
    if (body.size() - at < n) return corrupt(fmt::format("record {} truncated", first));
    at += n;
  }
  if (at != body.size()) return corrupt(fmt::format("record {} has trailing bytes", first));
  return Record{LogIndex{first}, LogIndex{first + count - 1}, body};
}

/// The record `value` stored under `key` cut down to its first `keep` entries (a record
/// already checked by open_record, with more than `keep` entries).
std::string truncate_record(std::string_view key, std::string_view value, std::uint64_t keep) {
  std::size_t at = kRecordHeader;
  for (std::uint64_t k = 0; k < keep; ++k) at += kEntryHeader + get_u32(value.data() + at + 9);
  std::string out(value.substr(0, at));
  put_u32_at(out.data() + 4, static_cast<std::uint32_t>(keep));
  std::uint32_t crc = util::crc32c(0, key.data(), key.size());
  crc = util::crc32c(crc, out.data() + 4, out.size() - 4);
  put_u32_at(out.data(), crc);
  return out;
}

std::string encode_hard_state(const HardState& hs) {
  std::string b;
  put_u64(b, hs.term.value());
  put_u64(b, hs.vote.value());
  put_u64(b, hs.commit.value());
  return seal(kHardStateKey, b);
}

std::string encode_u64_record(const char* key, std::uint64_t v) {
  std::string b;
  put_u64(b, v);
  return seal(key, b);
}

std::string encode_snapshot(const SnapshotMeta& s) {
  std::string b;
  put_u64(b, s.index.value());
  put_u64(b, s.term.value());
  // A node that joins later has no configuration yet: zero-length config.
  const bool empty = s.config.voters.empty() && s.config.voters_outgoing.empty() &&
                     s.config.learners.empty();
  const Bytes config = empty ? Bytes{} : core::encode_configuration(s.config);
  put_u32(b, static_cast<std::uint32_t>(config.size()));
  b.append(config.as_string_view());
  b.append(s.data.as_string_view());
  return seal(kSnapshotKey, b);
}

Result<SnapshotMeta> decode_snapshot(std::string_view sealed) {
  auto body = unseal(kSnapshotKey, sealed);
  if (!body || body->size() < 20) return Status{ErrorCode::Corruption, "snapshot metadata damaged"};
  SnapshotMeta s;
  s.index = LogIndex{get_u64(body->data())};
  s.term = Term{get_u64(body->data() + 8)};
  const std::uint32_t n = get_u32(body->data() + 16);
  if (body->size() < 20 + static_cast<std::size_t>(n)) {
    return Status{ErrorCode::Corruption, "snapshot metadata truncated"};
  }
  const std::string_view config = body->substr(20, n);
  if (n > 0) {
    std::vector<std::uint8_t> raw(config.begin(), config.end());
    auto c = core::decode_configuration(raw);
    if (!c) return Status{ErrorCode::Corruption, "snapshot " + c.status().message()};
    s.config = std::move(c).value();
  }
  s.data = Bytes::copy_of(body->substr(20 + n));
  return s;
}

std::string encode_identity(const Identity& id) {
  std::string b;
  put_u64(b, id.node_id.value());
  b += id.cluster_id;
  return seal(kIdentityKey, b);
}

Status from_rocks(const rocksdb::Status& s, std::string_view what) {
  if (s.ok()) return Status::ok();
  if (s.IsCorruption()) return {ErrorCode::Corruption, fmt::format("{}: {}", what, s.ToString())};
  if (s.IsNotFound()) return {ErrorCode::NotFound, fmt::format("{}: {}", what, s.ToString())};
  if (s.IsNoSpace()) return {ErrorCode::IoError, fmt::format("{}: disk full: {}", what, s.ToString())};
  return {ErrorCode::IoError, fmt::format("{}: {}", what, s.ToString())};
}

rocksdb::Options base_options(const RocksDbOptions& o) {
  rocksdb::Options opts;
  opts.create_if_missing = o.create_if_missing;
  opts.create_missing_column_families = o.create_if_missing;
  opts.max_background_jobs = 2;
  opts.compression = rocksdb::kNoCompression;  // log entries are short-lived
  opts.write_buffer_size = 64U << 20;
  opts.keep_log_file_num = 4;
  opts.paranoid_checks = true;
  if (o.env) opts.env = o.env.get();
  return opts;
}

std::vector<rocksdb::ColumnFamilyDescriptor> families(const rocksdb::Options& opts) {
  rocksdb::ColumnFamilyOptions cf(opts);
  return {{rocksdb::kDefaultColumnFamilyName, cf}, {kLogFamily, cf}, {kMetaFamily, cf}};
}

}  // namespace

/// Frees the space of compacted log entries on a thread of its own. The range tombstone
/// compact() writes hides the entries at once; rewriting the files they occupy
/// (CompactRange) took 0.2-0.75 s for a million entries, on the node's raft thread, which
/// then neither sent heartbeats nor answered them: every node compacts at the same index,
/// so all stalled together and followers started elections.
class SpaceReclaimer {
 public:
  SpaceReclaimer(rocksdb::DB* db, rocksdb::ColumnFamilyHandle* cf)
      : db_(db), cf_(cf), thread_([this] {
          util::set_thread_name("rlr-reclaim");
          run();
        }) {}
  SpaceReclaimer(const SpaceReclaimer&) = delete;
  SpaceReclaimer& operator=(const SpaceReclaimer&) = delete;
  /// Stops: a CompactRange under way is cancelled (it leaves the data as it was).
  ~SpaceReclaimer() {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    db_->DisableManualCompaction();
    cv_.notify_all();
    thread_.join();
  }
  /// Frees the space of the keys before `end`; one later call covers the earlier ones.
  void schedule(std::string end) {
    {
      std::lock_guard lock(mu_);
      pending_ = std::move(end);
    }
    cv_.notify_all();
  }
  /// Waits until nothing is scheduled or running.
  void wait_idle() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [this] { return (!pending_ && !busy_) || stopping_; });
  }
  /// The failure of a finished run, if any, once.
  [[nodiscard]] Status take_error() {
    std::lock_guard lock(mu_);
    return std::exchange(error_, Status::ok());
  }

 private:
  void run() {
    std::unique_lock lock(mu_);
    for (;;) {
      cv_.wait(lock, [this] { return pending_ || stopping_; });
      if (stopping_) return;
      const std::string end = std::move(*pending_);
      pending_.reset();
      busy_ = true;
      lock.unlock();
      const rocksdb::Slice hi(end);
      rocksdb::CompactRangeOptions cro;
      cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
      // RocksDB's own compactions go on meanwhile: pausing them could let level-0 files
      // pile up into a write stall on the raft thread.
      cro.exclusive_manual_compaction = false;
      const rocksdb::Status c = db_->CompactRange(cro, cf_, nullptr, &hi);
      lock.lock();
      busy_ = false;
      if (!c.ok() && !stopping_) {
        error_ = Status{ErrorCode::IoError, "freeing the space of compacted entries: " + c.ToString()};
      }
      cv_.notify_all();
    }
  }

  rocksdb::DB* db_;
  rocksdb::ColumnFamilyHandle* cf_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::optional<std::string> pending_;  ///< guarded by mu_, as are the next three
  bool busy_ = false;
  bool stopping_ = false;
  Status error_;
  std::thread thread_;  ///< last: starts once the rest is initialised
};

struct RocksDbStorage::Handles {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;  // owned by db until destroyed
  /// persist()'s batch, cleared and reused so its buffer keeps its capacity (one writer
  /// at a time: see Storage). `batch_reserved` is the capacity it was created with.
  rocksdb::WriteBatch batch;
  std::size_t batch_reserved = 0;
  std::vector<RecordSpan> plan;      ///< persist()'s split of a step into records
  std::string headers;               ///< record and entry headers of a step's records
  std::vector<rocksdb::Slice> parts; ///< one record's value, piece by piece
  std::string record;                ///< a record being cut down by a truncation
  int batch_small_steps = 0;  ///< steps in a row that needed < 1/4 of batch_reserved
  /// Started by the first compact().
  std::unique_ptr<SpaceReclaimer> reclaimer;
  rocksdb::ColumnFamilyHandle* log() const { return cfs[1]; }
  rocksdb::ColumnFamilyHandle* meta() const { return cfs[2]; }
  ~Handles() {
    reclaimer.reset();  // before the database it uses
    if (db) {
      for (auto* cf : cfs) (void)db->DestroyColumnFamilyHandle(cf);
      (void)db->Close();
    }
  }
};

namespace {

/// Checks format and identity of an existing store without writing to it. True when the
/// store was created but never initialised (a crash between creating the RocksDB and
/// writing our first records): it holds nothing and is initialised like a new one.
Result<bool> check_existing(const RocksDbOptions& o) {
  rocksdb::Options opts = base_options(o);
  opts.create_if_missing = false;
  opts.create_missing_column_families = false;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(opts, o.path, families(opts), &cfs, &raw);
  if (!s.ok()) {
    if (s.IsInvalidArgument()) {
      return Status{ErrorCode::Corruption,
                    fmt::format("{} is not a librlr store: {}", o.path, s.ToString())};
    }
    return from_rocks(s, fmt::format("opening {}", o.path));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  Status result = Status::ok();
  bool uninitialised = false;
  std::string value;
  auto g = db->Get(rocksdb::ReadOptions(), cfs[2], kFormatKey, &value);
  if (g.IsNotFound()) {
    auto empty = [&](rocksdb::ColumnFamilyHandle* cf) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
      it->SeekToFirst();
      return !it->Valid() && it->status().ok();
    };
    if (empty(cfs[1]) && empty(cfs[2])) {
      uninitialised = true;
    } else {
      result = {ErrorCode::Corruption, fmt::format("{} has no librlr format record", o.path)};
    }
  } else if (!g.ok()) {
    result = from_rocks(g, "reading format");
  } else {
    auto body = unseal(kFormatKey, value);
    if (!body || body->size() != 8) {
      result = {ErrorCode::Corruption, "format record damaged"};
    } else if (get_u64(body->data()) != RocksDbStorage::kFormatVersion) {
      result = {ErrorCode::Corruption,
                fmt::format("unsupported storage format version {} (this build reads {})",
                            get_u64(body->data()), RocksDbStorage::kFormatVersion)};
    }
  }
  if (result && !uninitialised) {
    g = db->Get(rocksdb::ReadOptions(), cfs[2], kIdentityKey, &value);
    auto body = g.ok() ? unseal(kIdentityKey, value) : std::nullopt;
    if (!body || body->size() < 8) {
      result = {ErrorCode::Corruption, "identity record missing or damaged"};
    } else {
      const Identity stored{std::string(body->substr(8)), NodeId{get_u64(body->data())}};
      if (stored != o.identity) {
        result = {ErrorCode::WrongCluster,
                  fmt::format("{} belongs to cluster '{}' node {}, not cluster '{}' node {}",
                              o.path, stored.cluster_id, stored.node_id.value(),
                              o.identity.cluster_id, o.identity.node_id.value())};
      }
    }
  }
  for (auto* cf : cfs) (void)db->DestroyColumnFamilyHandle(cf);
  if (!result) return result;
  return uninitialised;
}

}  // namespace

Result<std::unique_ptr<RocksDbStorage>> RocksDbStorage::open(const RocksDbOptions& options) {
  if (options.path.empty()) return Status{ErrorCode::InvalidArgument, "empty data directory path"};
  if (options.identity.node_id == kNoNode || options.identity.cluster_id.empty()) {
    return Status{ErrorCode::InvalidArgument, "identity needs a cluster id and a node id"};
  }
  std::error_code ec;
  bool exists = std::filesystem::exists(std::filesystem::path(options.path) / "CURRENT", ec);
  if (exists) {
    auto checked = check_existing(options);
    if (!checked) return checked.status();
    if (checked.value()) exists = false;  // created but never initialised
  } else if (!options.create_if_missing) {
    return Status{ErrorCode::NotFound, fmt::format("no librlr store at {}", options.path)};
  }

  rocksdb::Options opts = base_options(options);
  auto handles = std::make_unique<Handles>();
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::Open(opts, options.path, families(opts), &handles->cfs, &raw);
  if (!s.ok()) return from_rocks(s, fmt::format("opening {}", options.path));
  handles->db.reset(raw);

  if (!exists) {
    // A new store: identity, format and the initial snapshot in one synced write.
    SnapshotMeta initial;
    initial.config = options.initial_config;
    initial.config.normalize();
    rocksdb::WriteBatch b;
    b.Put(handles->meta(), kFormatKey, encode_u64_record(kFormatKey, kFormatVersion));
    b.Put(handles->meta(), kIdentityKey, encode_identity(options.identity));
    b.Put(handles->meta(), kSnapshotKey, encode_snapshot(initial));
    b.Put(handles->meta(), kHardStateKey, encode_hard_state(HardState{}));
    b.Put(handles->meta(), kAppliedKey, encode_u64_record(kAppliedKey, 0));
    rocksdb::WriteOptions wo;
    wo.sync = true;
    if (auto w = handles->db->Write(wo, &b); !w.ok()) return from_rocks(w, "initialising store");
  }
  auto store = std::make_unique<RocksDbStorage>(Key{}, options, std::move(handles));
  if (Status ls = store->load_state(); !ls) return ls;
  return store;
}

RocksDbStorage::RocksDbStorage(Key /*unused*/, RocksDbOptions options,
                               std::unique_ptr<Handles> handles)
    : options_(std::move(options)), h_(std::move(handles)) {}

RocksDbStorage::~RocksDbStorage() = default;

Status RocksDbStorage::load_state() {
  std::string value;
  auto g = h_->db->Get(rocksdb::ReadOptions(), h_->meta(), kSnapshotKey, &value);
  if (!g.ok()) return from_rocks(g, "reading snapshot metadata");
  auto snap = decode_snapshot(value);
  if (!snap) return snap.status();
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = snap.value();
  }
  snapshot_index_ = snap.value().index.value();
  std::unique_ptr<rocksdb::Iterator> it(h_->db->NewIterator(rocksdb::ReadOptions(), h_->log()));
  it->SeekToLast();
  std::uint64_t last = snap.value().index.value();
  if (it->Valid()) {
    // The last record tells where the log ends, so it is checked in full here.
    const LogIndex key{it->key().size() == 8 ? get_u64(it->key().data()) : 0};
    auto rec = open_record(key, it->key(), it->value());
    if (!rec) return rec.status();
    last = std::max(last, rec.value().last.value());
  }
  if (!it->status().ok()) return from_rocks(it->status(), "scanning log");
  last_index_ = last;
  if (auto hs = hard_state(); !hs) return hs.status();
  if (auto ap = applied(); !ap) return ap.status();
  return Status::ok();
}

LogIndex RocksDbStorage::first_index() const { return LogIndex{snapshot_index_.load() + 1}; }
LogIndex RocksDbStorage::last_index() const { return LogIndex{last_index_.load()}; }

Result<std::vector<Entry>> RocksDbStorage::read(LogIndex from, LogIndex to,
                                                std::size_t max_entries,
                                                std::size_t max_bytes) const {
  // A read that raced with a write deleting entries sees a gap that is not corruption:
  // the log version tells, and the read is tried again on the new log.
  for (int attempt = 0;; ++attempt) {
    const std::uint64_t version = log_version_.load();
    auto r = read_once(from, to, max_entries, max_bytes);
    if (r || r.status().code() != ErrorCode::Corruption || attempt == 3 ||
        log_version_.load() == version) {
      return r;
    }
  }
}

Result<std::vector<Entry>> RocksDbStorage::read_once(LogIndex from, LogIndex to,
                                                     std::size_t max_entries,
                                                     std::size_t max_bytes) const {
  if (from < first_index()) {
    return Status{ErrorCode::Compacted, fmt::format("index {} is compacted (first retained {})",
                                                    from.value(), first_index().value())};
  }
  if (to > last_index()) {
    return Status{ErrorCode::InvalidArgument, fmt::format("read to {} beyond last index {}",
                                                          to.value(), last_index().value())};
  }
  std::vector<Entry> out;
  if (from > to) return out;
  out.reserve(static_cast<std::size_t>(
      std::min<std::uint64_t>(to.value() - from.value() + 1, std::min<std::size_t>(max_entries, 1U << 22))));
  PayloadPacker packer;
  const std::string lower = index_key(from);
  const std::string upper = index_key(to.next());
  rocksdb::Slice upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper_slice;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(h_->db->NewIterator(ro, h_->log()));
  std::size_t bytes = 0;
  LogIndex expect = from;
  bool limited = false;
  // The record holding `from` is the last one whose key is at or before it; records
  // after it must follow one another without a gap.
  for (it->SeekForPrev(lower); it->Valid() && expect <= to && !limited; it->Next()) {
    auto rec = open_record(expect, it->key(), it->value());
    if (rec && (expect < rec.value().first || expect > rec.value().last)) {
      rec = Status{ErrorCode::Corruption,
                   fmt::format("log entry {}: missing (the record at {} holds {}..{})",
                               expect.value(), rec.value().first.value(),
                               rec.value().first.value(), rec.value().last.value())};
    }
    if (!rec) {
      if (expect < first_index() || expect > last_index()) break;  // log changed: reported below
      return rec.status();
    }
    const char* p = rec.value().body.data();
    for (LogIndex i = rec.value().first; i <= rec.value().last && expect <= to; i = i.next()) {
      const std::size_t n = get_u32(p + 9);
      if (i == expect) {
        if (!out.empty() && (out.size() >= max_entries || bytes + n > max_bytes)) {
          limited = true;
          break;
        }
        Entry& e = out.emplace_back();
        e.index = i;
        e.term = Term{get_u64(p)};
        e.kind = static_cast<EntryKind>(static_cast<std::uint8_t>(p[8]));
        if (n > 0) e.payload = packer.copy(p + kEntryHeader, n);
        bytes += n;
        expect = expect.next();
      }
      p += kEntryHeader + n;
    }
  }
  if (!it->status().ok()) {
    return from_rocks(it->status(), fmt::format("reading log entry {}", expect.value()));
  }
  if (!limited && expect <= to) {
    // The range should have been there in full, unless the log changed under us.
    if (expect < first_index()) {
      return Status{ErrorCode::Compacted,
                    fmt::format("index {} was compacted during the read", expect.value())};
    }
    if (expect > last_index()) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("index {} was truncated during the read (last is now {})",
                                expect.value(), last_index().value())};
    }
    return Status{ErrorCode::Corruption, fmt::format("log entry {}: missing", expect.value())};
  }
  return out;
}

Result<LogIndex> RocksDbStorage::record_holding(LogIndex i, std::string* value) const {
  rocksdb::ReadOptions ro;
  ro.verify_checksums = true;
  std::unique_ptr<rocksdb::Iterator> it(h_->db->NewIterator(ro, h_->log()));
  it->SeekForPrev(index_key(i));
  if (!it->status().ok()) return from_rocks(it->status(), fmt::format("reading log entry {}", i.value()));
  if (!it->Valid()) {
    return Status{ErrorCode::Corruption, fmt::format("log entry {}: missing", i.value())};
  }
  auto rec = open_record(i, it->key(), it->value());
  if (!rec) return rec.status();
  if (i > rec.value().last) {
    return Status{ErrorCode::Corruption,
                  fmt::format("log entry {}: missing (the record at {} ends at {})", i.value(),
                              rec.value().first.value(), rec.value().last.value())};
  }
  if (value != nullptr) value->assign(it->value().data(), it->value().size());
  return rec.value().first;
}

Result<Term> RocksDbStorage::stored_term(LogIndex i) const {
  auto r = read(i, i, 1, std::numeric_limits<std::size_t>::max());
  if (!r) return r.status();
  return r.value().front().term;
}

Result<HardState> RocksDbStorage::hard_state() const {
  std::string value;
  auto g = h_->db->Get(rocksdb::ReadOptions(), h_->meta(), kHardStateKey, &value);
  if (!g.ok()) return from_rocks(g, "reading hard state");
  auto body = unseal(kHardStateKey, value);
  if (!body || body->size() != 24) return Status{ErrorCode::Corruption, "hard state record damaged"};
  return HardState{Term{get_u64(body->data())}, NodeId{get_u64(body->data() + 8)},
                   LogIndex{get_u64(body->data() + 16)}};
}

Result<LogIndex> RocksDbStorage::applied() const {
  std::string value;
  auto g = h_->db->Get(rocksdb::ReadOptions(), h_->meta(), kAppliedKey, &value);
  if (!g.ok()) return from_rocks(g, "reading applied checkpoint");
  auto body = unseal(kAppliedKey, value);
  if (!body || body->size() != 8) return Status{ErrorCode::Corruption, "applied record damaged"};
  return LogIndex{get_u64(body->data())};
}

Result<SnapshotMeta> RocksDbStorage::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

Status RocksDbStorage::persist(const PersistRequest& req) {
  LogIndex snap_index{snapshot_index_.load()};
  LogIndex last{last_index_.load()};
  // A snapshot older than ours is ignored; a newer one keeps the stored suffix only when
  // the stored entry at its index has its term.
  const bool install = req.snapshot != nullptr && req.snapshot->index > snap_index;
  bool keep_suffix = false;
  if (install && req.snapshot->index <= last) {
    auto t = stored_term(req.snapshot->index);
    if (!t) return t.status();
    keep_suffix = t.value() == req.snapshot->term;
  }
  {
    const LogIndex base = install ? req.snapshot->index : snap_index;
    const LogIndex end = install && !keep_suffix ? req.snapshot->index : std::max(last, base);
    if (Status st = check_entries(req.entries, base, end); !st) return st;
  }
  // Size the batch once for the whole step: growing it entry by entry copies the buffer
  // again and again (and faults in fresh pages every time).
  auto planned = plan_records(req.entries, options_.log_record_bytes, h_->plan);
  if (!planned) return planned.status();
  std::size_t need = 512 + planned.value();
  if (install) need += req.snapshot->data.size();
  if (need > h_->batch_reserved) {
    h_->batch_reserved = std::max(need, 2 * h_->batch_reserved);
    h_->batch = rocksdb::WriteBatch(h_->batch_reserved);
  }
  rocksdb::WriteBatch& b = h_->batch;
  b.Clear();
  if (install) {
    // Records wholly covered by the snapshot go; a record that straddles it stays, its
    // covered entries unread from now on.
    const SnapshotMeta& s = *req.snapshot;
    LogIndex cut = (keep_suffix ? s.index : std::max(last, s.index)).next();
    if (cut <= last) {
      auto holder = record_holding(cut, nullptr);
      if (!holder) return holder.status();
      cut = holder.value();
    }
    b.DeleteRange(h_->log(), index_key(LogIndex{0}), index_key(cut));
    b.Put(h_->meta(), kSnapshotKey, encode_snapshot(s));
    if (!keep_suffix) last = s.index;
    snap_index = s.index;
  }
  if (!req.entries.empty()) {
    const LogIndex first = req.entries.front().index;
    if (first <= last) {
      // The entries replace the log from `first` on: the record holding `first` keeps
      // only the entries before it, and the records after it go.
      std::string& old = h_->record;
      auto holder = record_holding(first, &old);
      if (!holder) return holder.status();
      if (holder.value() < first) {
        const std::string key = index_key(holder.value());
        b.Put(h_->log(), key, truncate_record(key, old, first.value() - holder.value().value()));
      }
      b.DeleteRange(h_->log(), index_key(first), index_key(last.next()));
    }
    auto p = put_records(b, h_->log(), req.entries, h_->plan, h_->headers, h_->parts);
    if (!p.ok()) return from_rocks(p, "batching entries");
    last = req.entries.back().index;
  }
  if (req.hard_state) b.Put(h_->meta(), kHardStateKey, encode_hard_state(*req.hard_state));
  if (req.applied) b.Put(h_->meta(), kAppliedKey, encode_u64_record(kAppliedKey, req.applied->value()));
  // Entries about to be deleted stop being readable before the write, so a concurrent
  // reader that misses them knows the log moved (and never reports Corruption): the
  // suffix a truncation or a snapshot drops, and the prefix a snapshot covers.
  const std::uint64_t old_snapshot_index = snapshot_index_.load();
  const std::uint64_t old_last_index = last_index_.load();
  bool deletes = install;
  if (install) snapshot_index_ = req.snapshot->index.value();
  {
    std::uint64_t keep_through = last_index_.load();
    if (install && !keep_suffix) keep_through = std::min(keep_through, old_snapshot_index);
    if (!req.entries.empty()) {
      keep_through = std::min(keep_through, req.entries.front().index.value() - 1);
    }
    if (keep_through < last_index_.load()) {
      last_index_ = keep_through;
      deletes = true;
    }
    if (deletes) ++log_version_;
  }
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  auto w = h_->db->Write(wo, &b);
  // Readers that started between the first bump and the write must also see a change.
  if (deletes) ++log_version_;
  // Keep the buffer while steps need a good part of it (a catch-up sends one large step
  // after another, and faulting in fresh pages for each costs more than the copy); give
  // it back once they have been much smaller for a while.
  h_->batch_small_steps = need * 4 < h_->batch_reserved ? h_->batch_small_steps + 1 : 0;
  if (h_->batch_reserved > kBatchKeepBytes && h_->batch_small_steps >= kBatchShrinkSteps) {
    h_->batch = rocksdb::WriteBatch();
    h_->batch_reserved = 0;
    h_->batch_small_steps = 0;
  }
  if (!w.ok()) {
    snapshot_index_ = old_snapshot_index;  // nothing of the step is there
    last_index_ = old_last_index;
    return from_rocks(w, "persisting");
  }
  if (install) {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = *req.snapshot;
  }
  snapshot_index_ = snap_index.value();
  last_index_ = last.value();
  return Status::ok();
}

Status RocksDbStorage::compact(const SnapshotMeta& s) {
  const LogIndex snap_index{snapshot_index_.load()};
  if (s.index <= snap_index) return Status::ok();
  if (s.index > last_index()) {
    return {ErrorCode::InvalidArgument,
            fmt::format("snapshot {} is beyond the log's end {}", s.index.value(),
                        last_index().value())};
  }
  auto t = stored_term(s.index);
  if (!t) return t.status();
  if (t.value() != s.term) {
    return {ErrorCode::InvalidArgument,
            fmt::format("snapshot {}/t{} does not match the stored term {}", s.index.value(),
                        s.term.value(), t.value().value())};
  }
  // Records wholly at or below s.index go; one that straddles it stays whole.
  LogIndex cut = s.index.next();
  if (cut <= last_index()) {
    auto holder = record_holding(cut, nullptr);
    if (!holder) return holder.status();
    cut = holder.value();
  }
  rocksdb::WriteBatch b;
  const std::string begin = index_key(LogIndex{0});
  const std::string end = index_key(cut);
  b.DeleteRange(h_->log(), begin, end);
  b.Put(h_->meta(), kSnapshotKey, encode_snapshot(s));
  // The covered entries stop being readable before the write (see persist()): a reader
  // that then misses them finds them below first_index() and reports Compacted.
  snapshot_index_ = s.index.value();
  ++log_version_;
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  auto w = h_->db->Write(wo, &b);
  ++log_version_;  // before and after: see read()
  if (!w.ok()) {
    snapshot_index_ = snap_index.value();
    return from_rocks(w, "compacting");
  }
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = s;
  }
  snapshot_index_ = s.index.value();
  // The range tombstone hides the entries at once; rewriting their files to free the
  // space happens on the reclaimer's thread.
  if (!h_->reclaimer) h_->reclaimer = std::make_unique<SpaceReclaimer>(h_->db.get(), h_->log());
  h_->reclaimer->schedule(end);
  return h_->reclaimer->take_error();
}

std::uint64_t RocksDbStorage::log_sst_bytes() const {
  std::uint64_t v = 0;
  (void)h_->db->GetIntProperty(h_->log(), "rocksdb.live-sst-files-size", &v);
  return v;
}

Status RocksDbStorage::flush() {
  if (h_->reclaimer) {
    h_->reclaimer->wait_idle();
    if (Status e = h_->reclaimer->take_error(); !e) return e;
  }
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return from_rocks(h_->db->Flush(fo, {h_->log(), h_->meta()}), "flushing");
}

}  // namespace rlr::storage
