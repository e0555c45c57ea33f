#include "storage/rocksdb_storage.h"

#include <cstring>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include "util/crc32c.h"

namespace rlr::storage {
namespace {

constexpr const char* kLogFamily = "log";
constexpr const char* kMetaFamily = "meta";
constexpr const char* kFormatKey = "format";
constexpr const char* kIdentityKey = "identity";
constexpr const char* kHardStateKey = "hard_state";
constexpr const char* kAppliedKey = "applied";
constexpr const char* kSnapshotKey = "snapshot";
constexpr std::size_t kEntryHeader = 4 + 8 + 1;  // crc, term, kind
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

/// Adds entry `e` to `b` without a temporary buffer: the key and the value header are
/// built on the stack and the payload is copied once, straight into the batch.
rocksdb::Status put_entry(rocksdb::WriteBatch& b, rocksdb::ColumnFamilyHandle* cf,
                          const Entry& e) {
  char key[8];
  put_u64_at(key, e.index.value());
  char header[kEntryHeader];
  put_u64_at(header + 4, e.term.value());
  header[12] = static_cast<char>(e.kind);
  std::uint32_t crc = util::crc32c(0, key, sizeof key);
  crc = util::crc32c(crc, header + 4, kEntryHeader - 4);
  crc = util::crc32c(crc, e.payload.data(), e.payload.size());
  put_u32_at(header, crc);
  const rocksdb::Slice key_slice(key, sizeof key);
  const rocksdb::Slice value_parts[2] = {
      rocksdb::Slice(header, kEntryHeader),
      rocksdb::Slice(reinterpret_cast<const char*>(e.payload.data()), e.payload.size())};
  return b.Put(cf, rocksdb::SliceParts(&key_slice, 1), rocksdb::SliceParts(value_parts, 2));
}

/// Bytes an entry takes in a WriteBatch: tag, column family id, two length varints (at
/// most 1 + 5 + 1 + 5 bytes together), key and value.
std::size_t batch_bytes(const Entry& e) { return 12 + 8 + kEntryHeader + e.payload.size(); }

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

Result<Entry> decode_entry(LogIndex expect, const rocksdb::Slice& key, const rocksdb::Slice& value,
                           PayloadPacker& packer) {
  auto corrupt = [&](std::string_view what) {
    return Status{ErrorCode::Corruption, fmt::format("log entry {}: {}", expect.value(), what)};
  };
  if (key.size() != 8) return corrupt("malformed key");
  if (get_u64(key.data()) != expect.value()) {
    return corrupt(fmt::format("missing (next stored key is {})", get_u64(key.data())));
  }
  if (value.size() < kEntryHeader) return corrupt("truncated value");
  std::uint32_t crc = util::crc32c(0, key.data(), key.size());
  crc = util::crc32c(crc, value.data() + 4, value.size() - 4);
  if (crc != get_u32(value.data())) return corrupt("checksum mismatch");
  const auto kind = static_cast<std::uint8_t>(value.data()[12]);
  if (kind > static_cast<std::uint8_t>(kLastEntryKind)) return corrupt("unknown entry kind");
  Entry e;
  e.index = expect;
  e.term = Term{get_u64(value.data() + 4)};
  e.kind = static_cast<EntryKind>(kind);
  const std::size_t n = value.size() - kEntryHeader;
  if (n > 0) e.payload = packer.copy(value.data() + kEntryHeader, n);
  return e;
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

struct RocksDbStorage::Handles {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;  // owned by db until destroyed
  /// persist()'s batch, cleared and reused so its buffer keeps its capacity (one writer
  /// at a time: see Storage). `batch_reserved` is the capacity it was created with.
  rocksdb::WriteBatch batch;
  std::size_t batch_reserved = 0;
  int batch_small_steps = 0;  ///< steps in a row that needed < 1/4 of batch_reserved
  rocksdb::ColumnFamilyHandle* log() const { return cfs[1]; }
  rocksdb::ColumnFamilyHandle* meta() const { return cfs[2]; }
  ~Handles() {
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
    if (it->key().size() != 8) return {ErrorCode::Corruption, "log has a malformed key"};
    last = std::max(last, get_u64(it->key().data()));
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
  for (it->Seek(lower); it->Valid() && expect <= to; it->Next(), expect = expect.next()) {
    auto e = decode_entry(expect, it->key(), it->value(), packer);
    if (!e) {
      if (expect < first_index() || expect > last_index()) break;  // log changed: reported below
      return e.status();
    }
    if (!out.empty() && (out.size() >= max_entries || bytes + e.value().payload.size() > max_bytes)) {
      limited = true;
      break;
    }
    bytes += e.value().payload.size();
    out.push_back(std::move(e).value());
  }
  if (!it->status().ok()) return from_rocks(it->status(), "reading log");
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
  std::size_t need = 256;
  for (const Entry& e : req.entries) need += batch_bytes(e);
  if (install) need += req.snapshot->data.size();
  if (need > h_->batch_reserved) {
    h_->batch_reserved = std::max(need, 2 * h_->batch_reserved);
    h_->batch = rocksdb::WriteBatch(h_->batch_reserved);
  }
  rocksdb::WriteBatch& b = h_->batch;
  b.Clear();
  if (install) {
    const SnapshotMeta& s = *req.snapshot;
    const LogIndex drop_to = keep_suffix ? s.index : std::max(last, s.index);
    if (snap_index.next() <= drop_to) {
      b.DeleteRange(h_->log(), index_key(snap_index.next()), index_key(drop_to.next()));
    }
    b.Put(h_->meta(), kSnapshotKey, encode_snapshot(s));
    if (!keep_suffix) last = s.index;
    snap_index = s.index;
  }
  if (!req.entries.empty()) {
    const LogIndex first = req.entries.front().index;
    if (first <= last) b.DeleteRange(h_->log(), index_key(first), index_key(last.next()));
    for (const Entry& e : req.entries) {
      if (auto p = put_entry(b, h_->log(), e); !p.ok()) return from_rocks(p, "batching entries");
    }
    last = req.entries.back().index;
  }
  if (req.hard_state) b.Put(h_->meta(), kHardStateKey, encode_hard_state(*req.hard_state));
  if (req.applied) b.Put(h_->meta(), kAppliedKey, encode_u64_record(kAppliedKey, req.applied->value()));
  // Entries about to be deleted stop being readable before the write, so a concurrent
  // reader that misses them knows the log moved (and never reports Corruption).
  bool deletes = install;
  {
    std::uint64_t keep_through = last_index_.load();
    if (install && !keep_suffix) keep_through = std::min(keep_through, snapshot_index_.load());
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
  if (!w.ok()) return from_rocks(w, "persisting");
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
  rocksdb::WriteBatch b;
  const std::string begin = index_key(snap_index.next());
  const std::string end = index_key(s.index.next());
  b.DeleteRange(h_->log(), begin, end);
  b.Put(h_->meta(), kSnapshotKey, encode_snapshot(s));
  ++log_version_;
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  auto w = h_->db->Write(wo, &b);
  ++log_version_;  // before and after: see read()
  if (!w.ok()) return from_rocks(w, "compacting");
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = s;
  }
  snapshot_index_ = s.index.value();
  // Range tombstones hide the entries at once; compacting the range frees the space.
  rocksdb::Slice lo(begin);
  rocksdb::Slice hi(end);
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  if (auto c = h_->db->CompactRange(cro, h_->log(), &lo, &hi); !c.ok()) {
    return from_rocks(c, "compacting log range");
  }
  return Status::ok();
}

std::uint64_t RocksDbStorage::log_sst_bytes() const {
  std::uint64_t v = 0;
  (void)h_->db->GetIntProperty(h_->log(), "rocksdb.live-sst-files-size", &v);
  return v;
}

Status RocksDbStorage::flush() {
  rocksdb::FlushOptions fo;
  fo.wait = true;
  return from_rocks(h_->db->Flush(fo, {h_->log(), h_->meta()}), "flushing");
}

}  // namespace rlr::storage
