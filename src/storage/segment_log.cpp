#include "storage/segment_log.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <limits>

#include <fmt/format.h>
#include <rocksdb/file_system.h>

#include "util/big_endian.h"
#include "util/crc32c.h"

namespace rlr::storage {
namespace {

// Record header: [size:4][first:8][count:4][term:8][vote:8][commit:8][body crc:4]
// [header crc:4].
constexpr std::size_t kHeader = 48;
constexpr std::size_t kBodyCrcAt = 40;
constexpr std::size_t kHeaderCrcAt = 44;
constexpr std::size_t kEntryHeader = 8 + 1 + 4;   // term, kind, payload size
/// A record's length field has 32 bits.
constexpr std::uint64_t kMaxRecord = std::numeric_limits<std::uint32_t>::max();
/// append() keeps a buffer up to this size for good; a larger one only until
/// kShrinkSteps steps in a row have needed less than a quarter of it.
constexpr std::size_t kBufferKeep = 4U << 20;
constexpr int kShrinkSteps = 64;
/// Reads at open go through a buffer of this size (a record larger than it is read whole).
constexpr std::size_t kReplayChunk = 4U << 20;

using util::get_u32_be;
using util::get_u64_be;
using util::put_u32_be;
using util::put_u64_be;

Status from_io(const rocksdb::IOStatus& s, std::string_view what) {
  if (s.ok()) return Status::ok();
  if (s.IsNoSpace()) return {ErrorCode::IoError, fmt::format("{}: disk full: {}", what, s.ToString())};
  if (s.IsCorruption()) return {ErrorCode::Corruption, fmt::format("{}: {}", what, s.ToString())};
  return {ErrorCode::IoError, fmt::format("{}: {}", what, s.ToString())};
}

/// A record's header fields, once its checksums and layout have been checked.
struct Checked {
  std::uint64_t first;
  std::uint32_t count;
  HardState hard_state;
  std::string_view body;  ///< the entries
};

bool header_ok(const char* h) {
  return util::crc32c(0, h, kHeaderCrcAt) == get_u32_be(h + kHeaderCrcAt);
}

/// Checks the whole record `rec` (its header already passed header_ok). The error text
/// names `where`.
Result<Checked> check_record(std::string_view rec, const std::string& where) {
  auto corrupt = [&](std::string_view what) {
    return Status{ErrorCode::Corruption, fmt::format("{}: {}", where, what)};
  };
  if (rec.size() < kHeader || !header_ok(rec.data())) return corrupt("header checksum mismatch");
  const std::uint64_t first = get_u64_be(rec.data() + 4);
  const std::uint32_t count = get_u32_be(rec.data() + 12);
  const HardState hs{Term{get_u64_be(rec.data() + 16)}, NodeId{get_u64_be(rec.data() + 24)},
                     LogIndex{get_u64_be(rec.data() + 32)}};
  if (get_u32_be(rec.data()) != rec.size()) return corrupt("record size mismatch");
  const std::string_view body = rec.substr(kHeader);
  if (util::crc32c(0, body.data(), body.size()) != get_u32_be(rec.data() + kBodyCrcAt)) {
    return corrupt("checksum mismatch");
  }
  if (first == 0 || first > std::numeric_limits<std::uint64_t>::max() - count) {
    return corrupt("bad first index");
  }
  // The checksums matched, so this is what was written; the walk guards against a
  // writer bug ever turning into an out-of-bounds read.
  std::size_t at = 0;
  for (std::uint32_t k = 0; k < count; ++k) {
    if (body.size() - at < kEntryHeader) return corrupt("record truncated");
    if (static_cast<std::uint8_t>(body[at + 8]) > static_cast<std::uint8_t>(kLastEntryKind)) {
      return corrupt("unknown entry kind");
    }
    const std::size_t n = get_u32_be(body.data() + at + 9);
    at += kEntryHeader;
    if (body.size() - at < n) return corrupt("record truncated");
    at += n;
  }
  if (at != body.size()) return corrupt("trailing bytes in record");
  return Checked{first, count, hs, body};
}

bool all_zero(std::string_view v) {
  return std::all_of(v.begin(), v.end(), [](char c) { return c == 0; });
}

/// Sectors a write never reached read back as zeros. True when `bytes`, which start at
/// file offset `at`, hold a whole all-zero 512-byte sector, or when they run to the end
/// of the file (`reaches_end`) and are all zeros, or all zeros from a sector boundary on.
bool holds_unwritten_sector(std::string_view bytes, std::uint64_t at, bool reaches_end) {
  constexpr std::uint64_t kSector = 512;
  std::uint64_t k = (kSector - at % kSector) % kSector;  // first sector boundary
  for (; k + kSector <= bytes.size(); k += kSector) {
    if (all_zero(bytes.substr(static_cast<std::size_t>(k), kSector))) return true;
  }
  // A last, partial sector (or a tail shorter than one) that was never written.
  if (!reaches_end) return false;
  return all_zero(bytes) || (k < bytes.size() && all_zero(bytes.substr(static_cast<std::size_t>(k))));
}

/// Payloads read back, packed into shared blocks: one allocation per block instead of
/// two per entry (the bytes and their owner), which dominated start-up (the core loads
/// every retained entry). Blocks grow from 4 KiB to 1 MiB, so a short read stays small;
/// a payload larger than a quarter block gets a buffer of its own.
class PayloadPacker {
 public:
  Bytes copy(const char* data, std::size_t n) {
    if (n > kMaxBlock / 4) return Bytes::copy_of(std::string_view(data, n));
    if (!block_ || used_ + n > size_) {
      size_ = std::min(kMaxBlock, std::max(size_ * 2, n));
      block_ = std::make_shared_for_overwrite<std::uint8_t[]>(size_);  // every byte is copied in
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
  std::size_t size_ = 2048;
};

}  // namespace

HardState newer_hard_state(const HardState& a, const HardState& b) {
  HardState r = a.term > b.term ? a : b.term > a.term ? b : (a.vote != kNoNode ? a : b);
  r.commit = std::max(a.commit, b.commit);
  return r;
}

struct SegmentLog::Segment {
  std::uint64_t seq = 0;
  std::string path;
  std::unique_ptr<rocksdb::FSRandomAccessFile> reader;
  std::uint64_t size = 0;       ///< bytes of whole records
  std::uint64_t max_index = 0;  ///< the highest index any of its records was written with
};

SegmentLog::SegmentLog(Key /*key*/, SegmentLogOptions options) : options_(std::move(options)) {}

SegmentLog::~SegmentLog() {
  if (active_) (void)active_->Close(rocksdb::IOOptions(), nullptr);
}

std::string SegmentLog::segment_path(std::uint64_t seq) const {
  return fmt::format("{}/{:020}.seg", options_.dir, seq);
}

Result<std::unique_ptr<SegmentLog>> SegmentLog::open(SegmentLogOptions options, LogStart start,
                                                     std::uint64_t newest) {
  if (!options.fs) options.fs = rocksdb::FileSystem::Default();
  options.record_bytes = std::max<std::size_t>(options.record_bytes, 1);
  auto log = std::make_unique<SegmentLog>(Key{}, std::move(options));
  if (Status s = log->replay(start, newest); !s) return s;
  return log;
}

Status SegmentLog::replay(LogStart start, std::uint64_t newest) {
  rocksdb::FileSystem& fs = *options_.fs;
  const rocksdb::IOOptions io;
  if (auto s = fs.CreateDirIfMissing(options_.dir, io, nullptr); !s.ok()) {
    return from_io(s, fmt::format("creating {}", options_.dir));
  }
  {
    // The directory's own name must survive a power failure too (once per open).
    const std::string parent = std::filesystem::path(options_.dir).parent_path().string();
    std::unique_ptr<rocksdb::FSDirectory> dir;
    auto d = fs.NewDirectory(parent.empty() ? "." : parent, io, &dir, nullptr);
    if (d.ok()) d = dir->Fsync(io, nullptr);
    if (!d.ok()) return from_io(d, fmt::format("syncing {}", parent));
  }
  std::vector<std::string> names;
  if (auto s = fs.GetChildren(options_.dir, io, &names, nullptr); !s.ok()) {
    return from_io(s, fmt::format("listing {}", options_.dir));
  }
  std::vector<std::uint64_t> seqs;
  for (const std::string& n : names) {
    if (n == "." || n == "..") continue;
    std::uint64_t seq = 0;
    bool ours = n.size() == 24 && n.ends_with(".seg") &&
                std::all_of(n.begin(), n.begin() + 20, [](char c) { return c >= '0' && c <= '9'; });
    if (ours) {
      const auto [end, ec] = std::from_chars(n.data(), n.data() + 20, seq);
      ours = ec == std::errc() && end == n.data() + 20;  // out of range: not ours
    }
    if (!ours || seq == 0) {
      return {ErrorCode::Corruption,
              fmt::format("{}: unexpected file '{}' in the log directory", options_.dir, n)};
    }
    seqs.push_back(seq);
  }
  std::sort(seqs.begin(), seqs.end());
  if (newest >= start.segment && (seqs.empty() || seqs.back() < newest)) {
    return {ErrorCode::Corruption,
            fmt::format("{}: log segment {} is missing (it was written; the newest here is {})",
                        options_.dir, newest, seqs.empty() ? 0 : seqs.back())};
  }
  first_ = start.next;
  last_ = LogIndex{start.next.value() - 1};
  next_seq_ = start.segment;
  // The first record replayed may start anywhere (older segments may have been dropped
  // after a compaction; the caller checks the result against its snapshot); every later
  // one must continue the log.
  bool started = false;
  for (std::size_t k = 0; k < seqs.size(); ++k) {
    if (seqs[k] < start.segment) {
      // Older than the last reset: garbage since the snapshot that replaced them.
      if (auto s = fs.DeleteFile(segment_path(seqs[k]), io, nullptr); !s.ok()) {
        return from_io(s, "deleting a segment replaced by a snapshot");
      }
      continue;
    }
    if (Status s = replay_segment(seqs[k], k + 1 == seqs.size(), started); !s) return s;
    next_seq_ = seqs[k] + 1;
  }
  return Status::ok();
}

Status SegmentLog::replay_segment(std::uint64_t seq, bool last_segment, bool& started) {
  rocksdb::FileSystem& fs = *options_.fs;
  const rocksdb::IOOptions io;
  auto seg = std::make_shared<Segment>();
  seg->seq = seq;
  seg->path = segment_path(seq);
  std::uint64_t file_size = 0;
  if (auto s = fs.GetFileSize(seg->path, io, &file_size, nullptr); !s.ok()) {
    return from_io(s, fmt::format("reading {}", seg->path));
  }
  if (auto s = fs.NewRandomAccessFile(seg->path, rocksdb::FileOptions(), &seg->reader, nullptr);
      !s.ok()) {
    return from_io(s, fmt::format("opening {}", seg->path));
  }
  // Records are read through a buffer refilled as the walk needs.
  std::string buf;
  std::uint64_t buf_at = 0;  // file offset of buf[0]
  auto fetch = [&](std::uint64_t off, std::size_t n) -> Result<std::string_view> {
    if (off < buf_at || off + n > buf_at + buf.size()) {
      const std::size_t want = static_cast<std::size_t>(
          std::min<std::uint64_t>(std::max(n, kReplayChunk), file_size - off));
      buf.resize(want);
      rocksdb::Slice got;
      if (auto s = seg->reader->Read(off, want, io, &got, buf.data(), nullptr); !s.ok()) {
        return from_io(s, fmt::format("reading {}", seg->path));
      }
      if (got.data() != buf.data()) std::memmove(buf.data(), got.data(), got.size());
      buf.resize(got.size());
      buf_at = off;
      if (got.size() < n) {
        return Status{ErrorCode::IoError, fmt::format("{}: short read at {}", seg->path, off)};
      }
    }
    return std::string_view(buf).substr(static_cast<std::size_t>(off - buf_at), n);
  };
  std::uint64_t off = 0;
  while (off < file_size) {
    const std::string where = fmt::format("log segment {} at offset {}", seg->path, off);
    auto corrupt = [&](std::string_view what) {
      return Status{ErrorCode::Corruption, fmt::format("{}: {}", where, what)};
    };
    // A torn write: the power failed while the last step was being written, so its
    // record is cut short by the end of the file (its header intact or itself cut), or
    // some of its sectors were never written and read back as zeros (how a file system
    // may leave an extended file). Only the last segment can end in one. Anything else
    // - a flipped byte, damage in an older segment - is Corruption.
    const std::uint64_t left = file_size - off;
    // Every path below that is not a torn write returns or moves to the next record.
    if (left >= kHeader) {
      auto head = fetch(off, kHeader);
      if (!head) return head.status();
      const std::uint64_t size = get_u32_be(head.value().data());
      if (!header_ok(head.value().data())) {
        auto rest = fetch(off, static_cast<std::size_t>(left));
        if (!rest) return rest.status();
        if (!last_segment || !holds_unwritten_sector(rest.value(), off, true)) {
          return corrupt("header checksum mismatch");
        }
      } else if (size < kHeader) {
        return corrupt("record size out of range");
      } else if (size <= left) {
        auto rec = fetch(off, static_cast<std::size_t>(size));
        if (!rec) return rec.status();
        auto c = check_record(rec.value(), where);
        if (!c) {
          if (!last_segment || !holds_unwritten_sector(rec.value(), off, off + size == file_size)) {
            return c.status();
          }
        } else {
          const Checked& ck = c.value();
          if (started && ck.first > last_.value() + 1) {
            return corrupt(fmt::format("record starts at entry {}, after a gap (the log ends at {})",
                                       ck.first, last_.value()));
          }
          attach(Record{ck.first, ck.count, seq, off, size});
          started = true;
          recovered_hard_state_ = newer_hard_state(recovered_hard_state_, ck.hard_state);
          if (ck.count > 0) seg->max_index = std::max(seg->max_index, ck.first + ck.count - 1);
          off += size;
          continue;
        }
      }
    }
    if (!last_segment) return corrupt("record truncated");
    // Cut the torn tail off for good, so a later segment never follows damage.
    std::unique_ptr<rocksdb::FSWritableFile> w;
    if (auto s = fs.ReopenWritableFile(seg->path, rocksdb::FileOptions(), &w, nullptr); !s.ok()) {
      return from_io(s, fmt::format("reopening {} to cut a torn write", seg->path));
    }
    auto t = w->Truncate(off, io, nullptr);
    if (t.ok()) t = w->Fsync(io, nullptr);
    if (t.ok()) t = w->Close(io, nullptr);
    if (!t.ok()) return from_io(t, fmt::format("cutting a torn write off {}", seg->path));
    break;
  }
  seg->size = off;
  std::lock_guard lock(mu_);
  segments_[seq] = std::move(seg);
  return Status::ok();
}

void SegmentLog::attach(const Record& r) {
  // Everything from r.first on is replaced.
  while (!records_.empty() && records_.back().first >= r.first) records_.pop_back();
  if (!records_.empty()) {
    Record& back = records_.back();
    if (back.first + back.count > r.first) back.count = static_cast<std::uint32_t>(r.first - back.first);
  }
  if (r.count > 0) records_.push_back(r);
  last_ = LogIndex{r.first + r.count - 1};
  first_ = records_.empty() ? last_.next() : LogIndex{records_.front().first};
}

LogIndex SegmentLog::first() const {
  std::lock_guard lock(mu_);
  return first_;
}

LogIndex SegmentLog::last() const {
  std::lock_guard lock(mu_);
  return last_;
}

Status SegmentLog::start_segment() {
  rocksdb::FileSystem& fs = *options_.fs;
  const rocksdb::IOOptions io;
  if (active_) {
    auto s = active_->Close(io, nullptr);
    active_.reset();
    if (!s.ok()) return from_io(s, "closing a log segment");
  }
  auto seg = std::make_shared<Segment>();
  seg->seq = next_seq_;
  seg->path = segment_path(seg->seq);
  std::unique_ptr<rocksdb::FSWritableFile> w;
  if (auto s = fs.NewWritableFile(seg->path, rocksdb::FileOptions(), &w, nullptr); !s.ok()) {
    return from_io(s, fmt::format("creating {}", seg->path));
  }
  if (auto s = fs.NewRandomAccessFile(seg->path, rocksdb::FileOptions(), &seg->reader, nullptr);
      !s.ok()) {
    return from_io(s, fmt::format("opening {}", seg->path));
  }
  // The new file's name must survive a power failure before anything in it counts.
  std::unique_ptr<rocksdb::FSDirectory> dir;
  auto d = fs.NewDirectory(options_.dir, io, &dir, nullptr);
  if (d.ok()) d = dir->Fsync(io, nullptr);
  if (!d.ok()) return from_io(d, fmt::format("syncing {}", options_.dir));
  if (options_.segment_started) {
    if (Status st = options_.segment_started(seg->seq); !st) return st;
  }
  active_ = std::move(w);
  active_size_ = 0;
  ++next_seq_;
  std::lock_guard lock(mu_);
  active_seq_ = seg->seq;
  segments_[seg->seq] = std::move(seg);
  return Status::ok();
}

Status SegmentLog::append(std::span<const Entry> entries, const HardState& hs) {
  if (entries.empty()) return Status::ok();
  if (failed_) {
    return {ErrorCode::IoError, "the log refused a write before; reopen the store"};
  }
  const std::uint64_t first = entries.front().index.value();
  {
    std::lock_guard lock(mu_);
    if (first == 0 || first > last_.value() + 1) {
      return {ErrorCode::InvalidArgument,
              fmt::format("entries starting at {} do not continue the log (last {})", first,
                          last_.value())};
    }
  }
  // Plan the records: [begin, end) of `entries` each, and the bytes of all.
  std::size_t total = 0;
  std::vector<std::pair<std::size_t, std::size_t>>& plan = plan_;
  plan.clear();
  for (std::size_t i = 0; i < entries.size();) {
    std::size_t j = i;
    std::uint64_t bytes = kHeader;
    do {
      bytes += kEntryHeader + entries[j].payload.size();
      ++j;
    } while (j < entries.size() && j - i < std::numeric_limits<std::uint32_t>::max() &&
             bytes + kEntryHeader + entries[j].payload.size() <= options_.record_bytes);
    if (bytes > kMaxRecord) {
      return {ErrorCode::InvalidArgument,
              fmt::format("entry {} is too large for a log record ({} bytes)",
                          entries[i].index.value(), bytes)};
    }
    plan.emplace_back(i, j);
    total += static_cast<std::size_t>(bytes);
    i = j;
  }
  if (total > buf_cap_) {
    buf_cap_ = std::max(total, 2 * buf_cap_);
    buf_ = std::make_unique_for_overwrite<char[]>(buf_cap_);
  }
  char* out = buf_.get();
  std::vector<Record>& recs = written_;
  recs.clear();
  if (!active_ || active_size_ >= options_.segment_bytes) {
    if (Status s = start_segment(); !s) {
      failed_ = true;
      return s;
    }
  }
  std::uint64_t off = active_size_;
  for (const auto& [b, e] : plan) {
    char* rec = out;
    out += kHeader;
    for (std::size_t k = b; k < e; ++k) {
      const Entry& en = entries[k];
      put_u64_be(out, en.term.value());
      out[8] = static_cast<char>(en.kind);
      put_u32_be(out + 9, static_cast<std::uint32_t>(en.payload.size()));
      out += kEntryHeader;
      if (!en.payload.empty()) {
        std::memcpy(out, en.payload.data(), en.payload.size());
        out += en.payload.size();
      }
    }
    const auto size = static_cast<std::uint64_t>(out - rec);
    put_u32_be(rec, static_cast<std::uint32_t>(size));
    put_u64_be(rec + 4, entries[b].index.value());
    put_u32_be(rec + 12, static_cast<std::uint32_t>(e - b));
    put_u64_be(rec + 16, hs.term.value());
    put_u64_be(rec + 24, hs.vote.value());
    put_u64_be(rec + 32, hs.commit.value());
    put_u32_be(rec + kBodyCrcAt, util::crc32c(0, rec + kHeader, size - kHeader));
    put_u32_be(rec + kHeaderCrcAt, util::crc32c(0, rec, kHeaderCrcAt));
    recs.push_back(Record{entries[b].index.value(), static_cast<std::uint32_t>(e - b), active_seq_, off, size});
    off += size;
  }
  const rocksdb::IOOptions io;
  auto w = active_->Append(rocksdb::Slice(buf_.get(), total), io, nullptr);
  if (w.ok() && options_.sync) w = active_->Sync(io, nullptr);
  // Keep the buffer while steps need a good part of it; give a large one back once they
  // have been much smaller for a while.
  small_steps_ = total * 4 < buf_cap_ ? small_steps_ + 1 : 0;
  if (buf_cap_ > kBufferKeep && small_steps_ >= kShrinkSteps) {
    buf_.reset();
    buf_cap_ = 0;
    small_steps_ = 0;
  }
  if (!w.ok()) {
    failed_ = true;
    return from_io(w, "writing the log");
  }
  active_size_ = off;
  std::lock_guard lock(mu_);
  Segment& seg = *segments_.at(active_seq_);
  seg.size = off;
  seg.max_index = std::max(seg.max_index, entries.back().index.value());
  for (const Record& r : recs) attach(r);
  return Status::ok();
}

Status SegmentLog::reset(LogStart start) {
  if (active_) {
    (void)active_->Close(rocksdb::IOOptions(), nullptr);  // every append to it was synced
    active_.reset();
  }
  {
    std::lock_guard lock(mu_);
    records_.clear();
    first_ = start.next;
    last_ = LogIndex{start.next.value() - 1};
  }
  next_seq_ = std::max(next_seq_, start.segment);
  return drop_before(start.segment);
}

std::uint64_t SegmentLog::first_kept(LogIndex through) const {
  std::lock_guard lock(mu_);
  // Only whole segments, oldest first, never the one being written: a later record may
  // attach to what an older segment holds, so none may go while an older one stays.
  for (const auto& [seq, seg] : segments_) {
    if (seq == active_seq_ || seg->max_index > through.value()) return seq;
  }
  return next_seq_;
}

Status SegmentLog::drop_before(std::uint64_t segment) {
  {
    std::lock_guard lock(mu_);
    for (auto it = segments_.begin(); it != segments_.end() && it->first < segment;) {
      garbage_.push_back(it->second->path);
      it = segments_.erase(it);
    }
    // Their records lie at the front of the log.
    while (!records_.empty() && !segments_.contains(records_.front().segment)) records_.pop_front();
    first_ = records_.empty() ? last_.next() : LogIndex{records_.front().first};
  }
  // Files that fail to go stay on the list for the next call (and the next open deletes
  // them anyway: the metadata says where the log starts).
  Status result = Status::ok();
  std::vector<std::string> left;
  for (std::string& p : garbage_) {
    auto st = options_.fs->DeleteFile(p, rocksdb::IOOptions(), nullptr);
    if (!st.ok() && !st.IsPathNotFound()) {
      if (result) result = from_io(st, fmt::format("deleting log segment {}", p));
      left.push_back(std::move(p));
    }
  }
  garbage_ = std::move(left);
  return result;
}

Result<std::vector<Entry>> SegmentLog::read(LogIndex from, LogIndex to, std::size_t max_entries,
                                            std::size_t max_bytes) const {
  std::vector<Entry> out;
  if (from > to) return out;
  out.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(
      to.value() - from.value() + 1, std::min<std::size_t>(max_entries, 1U << 22))));
  PayloadPacker packer;
  // Where each record is read to; not cleared first (the read fills it): clearing it cost
  // a memset of every record a catching-up follower's leader reads back.
  std::unique_ptr<char[]> scratch;
  std::size_t scratch_size = 0;
  const rocksdb::IOOptions io;
  std::size_t bytes = 0;
  LogIndex expect = from;
  while (expect <= to) {
    // The record holding `expect` and its file, looked up under the lock; the read goes
    // without it (records are never rewritten, and a deleted file stays readable while
    // it is open). One record at a time: a bounded read touches only what it returns.
    Record rec{};
    std::shared_ptr<Segment> seg;
    {
      std::lock_guard lock(mu_);
      if (expect < first_ || to > last_) {
        return Status{ErrorCode::NotFound,
                      fmt::format("entries {}..{} are no longer in the log ({}..{})",
                                  expect.value(), to.value(), first_.value(), last_.value())};
      }
      auto it = std::upper_bound(records_.begin(), records_.end(), expect.value(),
                                 [](std::uint64_t i, const Record& r) { return i < r.first; });
      if (it == records_.begin()) {
        return Status{ErrorCode::Corruption, fmt::format("log entry {}: missing", expect.value())};
      }
      rec = *std::prev(it);
      auto found = segments_.find(rec.segment);
      if (found == segments_.end()) {
        return Status{ErrorCode::Corruption,
                      fmt::format("log entry {}: its segment {} is gone", expect.value(), rec.segment)};
      }
      seg = found->second;
    }
    const std::string where = fmt::format("log entry {} (segment {} at offset {})", expect.value(),
                                          seg->path, rec.offset);
    if (expect.value() >= rec.first + rec.count) {
      return Status{ErrorCode::Corruption, fmt::format("{}: missing", where)};
    }
    const auto size = static_cast<std::size_t>(rec.size);
    if (size > scratch_size) {
      scratch = std::make_unique_for_overwrite<char[]>(size);
      scratch_size = size;
    }
    rocksdb::Slice got;
    if (auto st = seg->reader->Read(rec.offset, size, io, &got, scratch.get(), nullptr); !st.ok()) {
      return from_io(st, where);
    }
    if (got.size() != size) {
      return Status{ErrorCode::Corruption, fmt::format("{}: record truncated", where)};
    }
    auto c = check_record(std::string_view(got.data(), got.size()), where);
    if (!c) return c.status();
    if (c.value().first != rec.first || c.value().count < rec.count) {
      return Status{ErrorCode::Corruption, fmt::format("{}: not the record expected there", where)};
    }
    const char* q = c.value().body.data();
    const std::uint64_t end = rec.first + rec.count;  // live entries only
    for (std::uint64_t i = rec.first; i < end && expect <= to; ++i) {
      const std::size_t n = get_u32_be(q + 9);
      if (i == expect.value()) {
        if (!out.empty() && (out.size() >= max_entries || bytes + n > max_bytes)) return out;
        Entry& e = out.emplace_back();
        e.index = expect;
        e.term = Term{get_u64_be(q)};
        e.kind = static_cast<EntryKind>(static_cast<std::uint8_t>(q[8]));
        if (n > 0) e.payload = packer.copy(q + kEntryHeader, n);
        bytes += n;
        expect = expect.next();
      }
      q += kEntryHeader + n;
    }
  }
  return out;
}

std::uint64_t SegmentLog::bytes() const {
  std::lock_guard lock(mu_);
  std::uint64_t n = 0;
  for (const auto& [seq, s] : segments_) n += s->size;
  return n;
}

std::vector<std::uint64_t> SegmentLog::segments() const {
  std::lock_guard lock(mu_);
  std::vector<std::uint64_t> out;
  for (const auto& [seq, s] : segments_) out.push_back(seq);
  return out;
}

}  // namespace rlr::storage
