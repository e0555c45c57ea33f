// The shared building blocks of the wire codecs (codec_support.h).
#include "wire/codec_support.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cassert>
#include <cstring>
#include <limits>
#include <utility>

#include "core/configuration.h"
#include "util/crc32c.h"

namespace rlr::wire::detail {
namespace {

static_assert(static_cast<int>(fb::EntryKind::Normal) == static_cast<int>(EntryKind::Normal));
static_assert(static_cast<int>(fb::EntryKind::Config) == static_cast<int>(EntryKind::Config));
static_assert(static_cast<int>(fb::EntryKind::Noop) == static_cast<int>(EntryKind::Noop));
static_assert(static_cast<int>(fb::EntryKind::Session) == static_cast<int>(EntryKind::Session));
static_assert(static_cast<int>(fb::EntryKind::Watermark) ==
              static_cast<int>(EntryKind::Watermark));
static_assert(static_cast<int>(fb::EntryKind::MAX) == static_cast<int>(kLastEntryKind));

static_assert(sizeof(fb::EntryMeta) == 24, "EntryMeta is 24 bytes on the wire");

/// The thread-local builder keeps at most this much memory between encodes.
constexpr std::size_t kBuilderKeepBytes = 4U << 20;
constexpr std::size_t kBuilderInitialBytes = 1024;
/// A frame at least this large keeps the buffer it was built in (no copy); a smaller one
/// is copied out and the builder's buffer reused (cheaper than an allocation).
constexpr std::size_t kHandOverBytes = 64U << 10;

/// One builder per thread, reused: a steady stream of small encodes allocates nothing.
/// A large frame is built in a buffer of its own, which the frame then keeps (see
/// finish_frame).
class BuilderCache {
 public:
  /// A cleared builder with room for about `bytes_hint` bytes.
  flatbuffers::FlatBufferBuilder& acquire(std::size_t bytes_hint) {
    if (bytes_hint >= kHandOverBytes) {
      // Sized for this frame (and its header, pushed in front at the end); lazily
      // allocated by the builder on first use.
      builder_ = flatbuffers::FlatBufferBuilder(bytes_hint + kHeaderBytes + 64);
      capacity_ = 0;  // the buffer leaves with the frame: make a new one next time
    } else if (bytes_hint > capacity_) {
      capacity_ = std::max(bytes_hint, 2 * capacity_);
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
    } else {
      builder_.Clear();
    }
    return builder_;
  }
  /// Called once the finished buffer has been copied out or handed over.
  void release() {
    if (capacity_ == 0) {
      capacity_ = kBuilderInitialBytes;
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
      return;
    }
    capacity_ = std::max<std::size_t>(capacity_, builder_.GetSize());
    if (capacity_ > kBuilderKeepBytes) {
      capacity_ = kBuilderInitialBytes;
      builder_ = flatbuffers::FlatBufferBuilder(capacity_);
    }
  }

 private:
  std::size_t capacity_ = kBuilderInitialBytes;
  flatbuffers::FlatBufferBuilder builder_{kBuilderInitialBytes};
};

BuilderCache& builders() {
  thread_local BuilderCache cache;
  return cache;
}

std::size_t payload_bytes(const std::vector<Entry>& entries) noexcept {
  std::size_t n = 0;
  for (const Entry& e : entries) n += e.payload.size();
  return n;
}

}  // namespace

Status invalid(std::string message) {
  return Status{ErrorCode::InvalidArgument, std::move(message)};
}

// ---- encoding -------------------------------------------------------------------------

flatbuffers::FlatBufferBuilder& acquire_builder(std::size_t bytes_hint) {
  return builders().acquire(bytes_hint);
}

Frame finish_frame(flatbuffers::FlatBufferBuilder& b, FrameType type, std::uint64_t tag) {
  const std::uint8_t* payload = b.GetBufferPointer();
  const std::size_t n = b.GetSize();
  assert(n <= std::numeric_limits<std::uint32_t>::max() && "frame payload over 4 GiB");
  std::array<std::uint8_t, kHeaderBytes> header{};
  encode_header(FrameHeader{kProtocolVersion, type, tag, static_cast<std::uint32_t>(n),
                            util::crc32c(0, payload, n)},
                header);
  Frame f;
  if (n >= kHandOverBytes) {
    b.PushBytes(header.data(), kHeaderBytes);
    f = Frame(b.Release());
  } else {
    std::vector<std::uint8_t> v;
    v.reserve(kHeaderBytes + n);
    v.insert(v.end(), header.begin(), header.end());
    v.insert(v.end(), payload, payload + n);
    f = Frame(std::move(v));
  }
  builders().release();
  return f;
}

flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> put_bytes(flatbuffers::FlatBufferBuilder& b,
                                                                 const Bytes& bytes) {
  if (bytes.empty()) return 0;
  return b.CreateVector(bytes.data(), bytes.size());
}

flatbuffers::Offset<flatbuffers::String> put_string(flatbuffers::FlatBufferBuilder& b,
                                                    std::string_view s) {
  if (s.empty()) return 0;
  return b.CreateString(s.data(), s.size());
}

std::size_t batch_bytes_hint(const std::vector<Entry>& entries) noexcept {
  return entries.size() * sizeof(fb::EntryMeta) + payload_bytes(entries) + 64;
}

flatbuffers::Offset<fb::EntryBatch> put_entries(flatbuffers::FlatBufferBuilder& b,
                                                const std::vector<Entry>& entries) {
  if (entries.empty()) return 0;
  std::uint8_t* blob = nullptr;
  const auto payloads = b.CreateUninitializedVector(payload_bytes(entries), 1, &blob);
  for (const Entry& e : entries) {
    if (e.payload.empty()) continue;
    std::memcpy(blob, e.payload.data(), e.payload.size());
    blob += e.payload.size();
  }
  const auto meta = b.CreateVectorOfStructs<fb::EntryMeta>(
      entries.size(),
      [](std::size_t i, fb::EntryMeta* out, const std::vector<Entry>* es) {
        const Entry& e = (*es)[i];
        assert(e.payload.size() <= std::numeric_limits<std::uint32_t>::max());
        *out = fb::EntryMeta(e.index.value(), e.term.value(),
                             static_cast<std::uint32_t>(e.payload.size()),
                             static_cast<fb::EntryKind>(e.kind));
      },
      &entries);
  return fb::CreateEntryBatch(b, meta, payloads);
}

// ---- decoding -------------------------------------------------------------------------

bool is_aligned(const std::uint8_t* p) noexcept {
  return std::bit_cast<std::uintptr_t>(p) % kPayloadAlign == 0;
}

Bytes aligned(const Bytes& payload) {
  return is_aligned(payload.data()) ? payload : Bytes::copy_of(payload.span());
}

std::span<const std::uint8_t> aligned(std::span<const std::uint8_t> bytes, Bytes& storage) {
  if (is_aligned(bytes.data())) return bytes;
  storage = Bytes::copy_of(bytes);
  return storage.span();
}

std::string get_string(const flatbuffers::String* s) {
  return s == nullptr ? std::string{} : std::string(s->string_view());
}

Status get_entries(const fb::EntryBatch* batch, Views& views, std::vector<Entry>& out,
                   std::string_view what) {
  if (batch == nullptr) return Status::ok();
  const auto* meta = batch->meta();
  const auto* blob = batch->payloads();
  const std::size_t count = meta == nullptr ? 0 : meta->size();
  const std::size_t blob_bytes = blob == nullptr ? 0 : blob->size();
  const std::uint8_t* blob_data = blob == nullptr ? nullptr : blob->data();
  if (meta != nullptr && !elements_aligned(meta->Data())) {
    return invalid(fmt::format("{}: misaligned entry vector", what));
  }
  out.reserve(out.size() + count);
  std::size_t offset = 0;
  for (std::size_t i = 0; i < count; ++i) {
    const fb::EntryMeta* m = meta->Get(static_cast<flatbuffers::uoffset_t>(i));
    const std::uint64_t index = m->index();
    if (index == 0) return invalid(fmt::format("{}: entry {} has index 0", what, i));
    if (i > 0 && index != out.back().index.value() + 1) {
      return invalid(fmt::format("{}: entry index {} does not follow {}", what, index,
                                 out.back().index.value()));
    }
    const auto kind = static_cast<std::uint8_t>(m->kind());
    if (kind > static_cast<std::uint8_t>(kLastEntryKind)) {
      return invalid(fmt::format("{}: entry {} has unknown kind {}", what, index, kind));
    }
    const std::size_t size = m->payload_bytes();
    if (size > blob_bytes - offset) {
      return invalid(fmt::format("{}: entry {} payload of {} bytes overruns the batch", what,
                                 index, size));
    }
    const std::uint8_t* data = blob_data + offset;
    if (kind == static_cast<std::uint8_t>(EntryKind::Config)) {
      if (auto c = core::decode_configuration({data, size}); !c) {
        return invalid(fmt::format("{}: config entry {} does not decode: {}", what, index,
                                   c.status().message()));
      }
    }
    out.push_back(Entry{LogIndex{index}, Term{m->term()}, static_cast<EntryKind>(kind),
                        views.view(data, size)});
    offset += size;
  }
  if (offset != blob_bytes) {
    return invalid(fmt::format("{}: {} payload bytes belong to no entry", what,
                               blob_bytes - offset));
  }
  return Status::ok();
}
}  // namespace rlr::wire::detail
