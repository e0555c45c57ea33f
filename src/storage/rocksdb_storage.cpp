#include "storage/rocksdb_storage.h"

#include <condition_variable>
#include <cstdarg>
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

#include "storage/segment_log.h"
#include "util/big_endian.h"
#include "util/crc32c.h"

namespace rlr::storage {
namespace {

constexpr const char* kMetaFamily = "meta";
constexpr const char* kFormatKey = "format";
constexpr const char* kIdentityKey = "identity";
constexpr const char* kHardStateKey = "hard_state";
constexpr const char* kAppliedKey = "applied";
constexpr const char* kSnapshotKey = "snapshot";
constexpr const char* kLogStartKey = "log_start";
constexpr const char* kLogNewestKey = "log_newest";

// ---- byte helpers (explicit, endian-independent) -----------------------------------

void put_u64(std::string& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

void put_u32(std::string& out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(static_cast<char>((v >> shift) & 0xFF));
}

using util::get_u32_be;
using util::get_u64_be;

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
  if (crc != get_u32_be(sealed.data())) return std::nullopt;
  return sealed.substr(4);
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
  s.index = LogIndex{get_u64_be(body->data())};
  s.term = Term{get_u64_be(body->data() + 8)};
  const std::uint32_t n = get_u32_be(body->data() + 16);
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

std::string encode_log_start(const LogStart& ls) {
  std::string b;
  put_u64(b, ls.segment);
  put_u64(b, ls.next.value());
  return seal(kLogStartKey, b);
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

/// RocksDB's own informational log (a "LOG" file in the data directory) is not kept: a
/// store must close cleanly on a full or failing disk, and that file's writer may not
/// (Debian's RocksDB keeps its assertions, one of which fires on an append after a failed
/// one). What the store must report reaches the node as a Status.
class QuietLogger final : public rocksdb::Logger {
 public:
  QuietLogger() : rocksdb::Logger(rocksdb::InfoLogLevel::HEADER_LEVEL) {}
  using rocksdb::Logger::Logv;
  void Logv(const char* /*format*/, va_list /*ap*/) override {}
};

rocksdb::Options base_options(const RocksDbOptions& o) {
  rocksdb::Options opts;
  opts.info_log = std::make_shared<QuietLogger>();
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
  return {{rocksdb::kDefaultColumnFamilyName, cf}, {kMetaFamily, cf}};
}

}  // namespace

struct RocksDbStorage::Handles {
  std::unique_ptr<rocksdb::DB> db;
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;  // owned by db until destroyed
  std::unique_ptr<SegmentLog> log;
  /// The hard state as last written to the metadata (term and vote changes go there; a
  /// step that only moves the commit index carries it in its log record).
  HardState meta_hard_state;
  rocksdb::ColumnFamilyHandle* meta() const { return cfs[1]; }
  ~Handles() {
    log.reset();
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
  // Whatever families the store has (older formats had more), to read its format record.
  std::vector<std::string> names;
  if (auto l = rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(opts), o.path, &names); !l.ok()) {
    return Status{ErrorCode::Corruption,
                  fmt::format("{} is not a librlr store: {}", o.path, l.ToString())};
  }
  if (std::find(names.begin(), names.end(), kMetaFamily) == names.end()) {
    return Status{ErrorCode::Corruption,
                  fmt::format("{} is not a librlr store: no '{}' column family", o.path, kMetaFamily)};
  }
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const std::string& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions(opts));
  const std::size_t meta_at = static_cast<std::size_t>(
      std::find(names.begin(), names.end(), kMetaFamily) - names.begin());
  std::vector<rocksdb::ColumnFamilyHandle*> cfs;
  rocksdb::DB* raw = nullptr;
  auto s = rocksdb::DB::OpenForReadOnly(opts, o.path, descs, &cfs, &raw);
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
  auto g = db->Get(rocksdb::ReadOptions(), cfs[meta_at], kFormatKey, &value);
  if (g.IsNotFound()) {
    auto empty = [&](rocksdb::ColumnFamilyHandle* cf) {
      std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions(), cf));
      it->SeekToFirst();
      return !it->Valid() && it->status().ok();
    };
    if (std::all_of(cfs.begin(), cfs.end(), empty)) {
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
    } else if (get_u64_be(body->data()) != RocksDbStorage::kFormatVersion) {
      result = {ErrorCode::Corruption,
                fmt::format("unsupported storage format version {} (this build reads {})",
                            get_u64_be(body->data()), RocksDbStorage::kFormatVersion)};
    }
  }
  if (result && !uninitialised) {
    g = db->Get(rocksdb::ReadOptions(), cfs[meta_at], kIdentityKey, &value);
    auto body = g.ok() ? unseal(kIdentityKey, value) : std::nullopt;
    if (!body || body->size() < 8) {
      result = {ErrorCode::Corruption, "identity record missing or damaged"};
    } else {
      const Identity stored{std::string(body->substr(8)), NodeId{get_u64_be(body->data())}};
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
    b.Put(handles->meta(), kLogStartKey, encode_log_start(LogStart{}));
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
  const LogIndex snap_index = snap.value().index;
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = snap.value();
  }
  snapshot_index_ = snap_index.value();
  auto hs = read_meta(kHardStateKey, 24, "hard state");
  if (!hs) return hs.status();
  const char* h = hs.value().data();
  h_->meta_hard_state =
      HardState{Term{get_u64_be(h)}, NodeId{get_u64_be(h + 8)}, LogIndex{get_u64_be(h + 16)}};
  auto ls = read_meta(kLogStartKey, 16, "log start");
  if (!ls) return ls.status();
  LogStart start{get_u64_be(ls.value().data()), LogIndex{get_u64_be(ls.value().data() + 8)}};
  if (start.segment == 0 || start.next.is_zero()) {
    return Status{ErrorCode::Corruption, "log start record out of range"};
  }
  // With no records the log is empty right after the snapshot.
  start.next = std::max(start.next, snap_index.next());
  // Absent until the first segment is started.
  std::uint64_t newest = 0;
  if (auto n = read_meta(kLogNewestKey, 8, "log newest-segment"); n) {
    newest = get_u64_be(n.value().data());
  } else if (n.status().code() != ErrorCode::NotFound) {
    return n.status();
  }
  SegmentLogOptions lo;
  lo.dir = (std::filesystem::path(options_.path) / "log").string();
  if (options_.env) lo.fs = options_.env->GetFileSystem();
  lo.sync = options_.sync;
  lo.record_bytes = options_.log_record_bytes;
  lo.segment_bytes = options_.log_segment_bytes;
  rocksdb::DB* db = h_->db.get();
  rocksdb::ColumnFamilyHandle* meta = h_->meta();
  const bool sync = options_.sync;
  lo.segment_started = [db, meta, sync](std::uint64_t seq) {
    rocksdb::WriteOptions wo;
    wo.sync = sync;
    return from_rocks(db->Put(wo, meta, kLogNewestKey, encode_u64_record(kLogNewestKey, seq)),
                      "recording a new log segment");
  };
  auto log = SegmentLog::open(std::move(lo), start, newest);
  if (!log) return log.status();
  h_->log = std::move(log).value();
  const LogIndex first = h_->log->first();
  const LogIndex last = h_->log->last();
  if (first > snap_index.next() || last < snap_index) {
    return Status{ErrorCode::Corruption,
                  fmt::format("the log holds entries {}..{}, which do not continue the snapshot at {}",
                              first.value(), last.value(), snap_index.value())};
  }
  last_index_ = last.value();
  {
    std::lock_guard lock(hard_state_mu_);
    hard_state_ = newer_hard_state(h_->meta_hard_state, h_->log->recovered_hard_state());
  }
  if (auto ap = applied(); !ap) return ap.status();
  return Status::ok();
}

LogIndex RocksDbStorage::first_index() const { return LogIndex{snapshot_index_.load() + 1}; }
LogIndex RocksDbStorage::last_index() const { return LogIndex{last_index_.load()}; }

Result<std::vector<Entry>> RocksDbStorage::read(LogIndex from, LogIndex to,
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
  auto r = h_->log->read(from, to, max_entries, max_bytes);
  if (r || r.status().code() != ErrorCode::NotFound) return r;
  // The log moved between the checks above and the read: say how.
  if (from < first_index()) {
    return Status{ErrorCode::Compacted,
                  fmt::format("index {} was compacted during the read", from.value())};
  }
  return Status{ErrorCode::InvalidArgument,
                fmt::format("entries {}..{} were truncated during the read (last is now {})",
                            from.value(), to.value(), last_index().value())};
}

Result<Term> RocksDbStorage::stored_term(LogIndex i) const {
  auto r = read(i, i, 1, std::numeric_limits<std::size_t>::max());
  if (!r) return r.status();
  return r.value().front().term;
}

Result<HardState> RocksDbStorage::hard_state() const {
  std::lock_guard lock(hard_state_mu_);
  return hard_state_;
}

Result<LogIndex> RocksDbStorage::applied() const {
  auto body = read_meta(kAppliedKey, 8, "applied");
  if (!body) return body.status();
  return LogIndex{get_u64_be(body.value().data())};
}

Result<std::string> RocksDbStorage::read_meta(const char* key, std::size_t size,
                                              std::string_view what) const {
  std::string value;
  auto g = h_->db->Get(rocksdb::ReadOptions(), h_->meta(), key, &value);
  if (!g.ok()) return from_rocks(g, fmt::format("reading the {} record", what));
  auto body = unseal(key, value);
  if (!body || body->size() != size) {
    return Status{ErrorCode::Corruption, fmt::format("{} record damaged", what)};
  }
  return std::string(*body);
}

Result<SnapshotMeta> RocksDbStorage::snapshot() const {
  std::lock_guard lock(snapshot_mu_);
  return snapshot_;
}

Status RocksDbStorage::persist(const PersistRequest& req) {
  const LogIndex snap_index{snapshot_index_.load()};
  const LogIndex last{last_index_.load()};
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
  // The metadata part of the step - a snapshot, a checkpoint, or a hard state without
  // entries - is one RocksDB write, before the entries; entries carry the hard state in
  // their log record (one write for the common step). A crash between the two writes
  // leaves the step without its entries, which the core may restart from.
  const HardState hs = req.hard_state ? *req.hard_state : hard_state().value();
  rocksdb::WriteBatch b;
  std::optional<LogStart> reset;
  std::optional<std::uint64_t> drop_before;
  if (install) {
    b.Put(h_->meta(), kSnapshotKey, encode_snapshot(*req.snapshot));
    if (!keep_suffix) {
      // The log starts over after the snapshot, in a new segment: the older ones become
      // garbage in the same write that records the snapshot.
      reset = LogStart{h_->log->next_segment(), req.snapshot->index.next()};
      b.Put(h_->meta(), kLogStartKey, encode_log_start(*reset));
    } else {
      // As a compaction: segments wholly below the snapshot go (see compact()).
      drop_before = h_->log->first_kept(req.snapshot->index);
      b.Put(h_->meta(), kLogStartKey,
            encode_log_start(LogStart{*drop_before, req.snapshot->index.next()}));
    }
  }
  if (req.applied) b.Put(h_->meta(), kAppliedKey, encode_u64_record(kAppliedKey, req.applied->value()));
  // The hard state goes to the metadata when there are no entries to carry it, and with
  // any metadata write (segments may be deleted after it, and with them the records
  // that held the newest hard state).
  std::optional<HardState> meta_hs;
  if ((req.hard_state && req.entries.empty()) || (b.Count() > 0 && hs != h_->meta_hard_state)) {
    b.Put(h_->meta(), kHardStateKey, encode_hard_state(hs));
    meta_hs = hs;
  }

  // Entries about to go stop being readable before the writes, so a concurrent reader
  // that misses them knows the log moved (it reports Compacted or a truncation, never
  // Corruption): the prefix a snapshot covers, the suffix a truncation or reset drops.
  const std::uint64_t old_snapshot_index = snapshot_index_.load();
  const std::uint64_t old_last_index = last_index_.load();
  if (install) snapshot_index_ = req.snapshot->index.value();
  {
    std::uint64_t keep_through = old_last_index;
    if (reset) keep_through = std::min(keep_through, old_snapshot_index);
    if (!req.entries.empty()) keep_through = std::min(keep_through, req.entries.front().index.value() - 1);
    if (keep_through < old_last_index) last_index_ = keep_through;
  }
  auto restore = [&] {
    snapshot_index_ = old_snapshot_index;  // nothing of the step is visible
    last_index_ = old_last_index;
  };
  if (b.Count() > 0) {
    rocksdb::WriteOptions wo;
    wo.sync = options_.sync;
    if (auto w = h_->db->Write(wo, &b); !w.ok()) {
      restore();
      return from_rocks(w, "persisting");
    }
    // The metadata holds from here on, whatever happens to the entries.
    if (meta_hs) {
      h_->meta_hard_state = *meta_hs;
      std::lock_guard lock(hard_state_mu_);
      hard_state_ = *meta_hs;
    }
    if (install) {
      std::lock_guard lock(snapshot_mu_);
      snapshot_ = *req.snapshot;
    }
  }
  LogIndex new_last = last;
  if (reset) {
    // The metadata names the new start: the old segments are garbage from here on. A
    // failure to delete them does not fail the step (it is durable); they are tried
    // again later, and the next open deletes them.
    new_last = req.snapshot->index;
    last_index_ = new_last.value();
    (void)h_->log->reset(*reset);
  }
  if (!req.entries.empty()) {
    if (Status w = h_->log->append(req.entries, hs); !w) {
      // The log's entries are as they were (after a reset: none).
      last_index_ = reset ? req.snapshot->index.value() : old_last_index;
      return w;
    }
    new_last = req.entries.back().index;
  }
  if (req.hard_state) {
    std::lock_guard lock(hard_state_mu_);
    hard_state_ = *req.hard_state;
  }
  last_index_ = new_last.value();
  // As above: the step is durable whatever happens to the deletions.
  if (drop_before) (void)h_->log->drop_before(*drop_before);
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
  b.Put(h_->meta(), kSnapshotKey, encode_snapshot(s));
  // The log starts in the first segment kept: if the process dies before the older ones
  // are deleted (or a deletion fails, or the file system reorders the unlinks), the
  // next open deletes them instead of replaying them.
  const std::uint64_t keep_from = h_->log->first_kept(s.index);
  b.Put(h_->meta(), kLogStartKey, encode_log_start(LogStart{keep_from, s.index.next()}));
  // Segments are deleted below: the records among them may hold the newest hard state.
  const HardState hs = hard_state().value();
  const bool write_hs = hs != h_->meta_hard_state;
  if (write_hs) b.Put(h_->meta(), kHardStateKey, encode_hard_state(hs));
  // The covered entries stop being readable before the write (see persist()): a reader
  // that then misses them finds them below first_index() and reports Compacted.
  snapshot_index_ = s.index.value();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync;
  if (auto w = h_->db->Write(wo, &b); !w.ok()) {
    snapshot_index_ = snap_index.value();
    return from_rocks(w, "compacting");
  }
  if (write_hs) h_->meta_hard_state = hs;
  {
    std::lock_guard lock(snapshot_mu_);
    snapshot_ = s;
  }
  // Whole segments below the snapshot go now; the rest of the space with later ones.
  // Errors: as documented, the compaction holds even when freeing the space failed.
  return h_->log->drop_before(keep_from);
}

std::uint64_t RocksDbStorage::log_bytes() const { return h_->log->bytes(); }

std::vector<std::uint64_t> RocksDbStorage::log_segments() const { return h_->log->segments(); }

}  // namespace rlr::storage
