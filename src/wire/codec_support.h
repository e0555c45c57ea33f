// Building blocks shared by the wire codecs (private to src/wire): the per-thread
// flatbuffers builder and frame finishing, verified decoding, and entry batches, which
// both the peer and the client codec carry.
//
// Trust model: every byte handed to a decoder may come from a hostile or broken peer.
// Every payload goes through the flatbuffers Verifier (verified_root) before any field
// is read; enum values, ids and cross-field invariants are checked before a C++ value is
// built. Decoders return errors, never abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <fmt/format.h>

#include "rlr/status.h"
#include "rlr/types.h"
#include "rlr_generated.h"
#include "wire/frame.h"

namespace rlr::wire::detail {

// ---- limits ---------------------------------------------------------------------------
/// Our schema nests at most five levels (reply > cluster info > members > member).
inline constexpr flatbuffers::uoffset_t kVerifierDepthMax = 16;
/// Bounds the verifier's work on buffers that reference one table many times.
inline constexpr flatbuffers::uoffset_t kVerifierTablesMax = 1U << 20;
/// Members listed in one ClusterInfo, and addresses in one configuration (the
/// configuration codec allows 1024 ids per set).
inline constexpr std::size_t kClusterMembersMax = 4096;
/// Payload offsets are 8-byte aligned so 64-bit fields are read at aligned addresses.
inline constexpr std::size_t kPayloadAlign = 8;

/// InvalidArgument with `message`: what every decoder returns for a malformed value.
[[nodiscard]] Status invalid(std::string message);

// ---- encoding -------------------------------------------------------------------------
/// This thread's builder, cleared, with room for about `bytes_hint` bytes. One builder
/// per thread, reused: a steady stream of small encodes allocates nothing; a large frame
/// is built in a buffer of its own, which the frame then keeps (see finish_frame).
/// REQUIRES: the frame built in it is finished (finish_frame) before the next call.
[[nodiscard]] flatbuffers::FlatBufferBuilder& acquire_builder(std::size_t bytes_hint);
/// Header + the finished payload of `b` (from acquire_builder), as one buffer ready to
/// write. A large payload is not copied: the header goes in front of it, in the
/// builder's own buffer (built back to front, so the room is there), and the frame
/// takes that buffer over.
[[nodiscard]] Frame finish_frame(flatbuffers::FlatBufferBuilder& b, FrameType type, std::uint64_t tag);

/// Absent (offset 0) when empty.
[[nodiscard]] flatbuffers::Offset<flatbuffers::Vector<std::uint8_t>> put_bytes(
    flatbuffers::FlatBufferBuilder& b, const Bytes& bytes);
/// Absent (offset 0) when empty.
[[nodiscard]] flatbuffers::Offset<flatbuffers::String> put_string(flatbuffers::FlatBufferBuilder& b,
                                                                  std::string_view s);
/// Room an entry batch takes in a builder (for the size hint).
[[nodiscard]] std::size_t batch_bytes_hint(const std::vector<Entry>& entries) noexcept;
/// One struct vector and one byte vector, whatever the number of entries; absent when
/// there are none.
[[nodiscard]] flatbuffers::Offset<fb::EntryBatch> put_entries(flatbuffers::FlatBufferBuilder& b,
                                                              const std::vector<Entry>& entries);

// ---- decoding -------------------------------------------------------------------------
/// The verified root table of `buf`, or InvalidArgument. No field of `buf` is read
/// before the Verifier has accepted the whole buffer.
template <class Table>
Result<const Table*> verified_root(std::span<const std::uint8_t> buf, std::string_view what) {
  if (buf.empty()) return invalid(fmt::format("{}: empty payload", what));
  if (buf.size() >= FLATBUFFERS_MAX_BUFFER_SIZE) {
    return invalid(fmt::format("{}: payload of {} bytes is too large", what, buf.size()));
  }
  flatbuffers::Verifier::Options opts;
  opts.max_depth = kVerifierDepthMax;
  opts.max_tables = kVerifierTablesMax;
  opts.check_alignment = true;
  opts.check_nested_flatbuffers = true;
  flatbuffers::Verifier verifier(buf.data(), buf.size(), opts);
  if (!verifier.VerifyBuffer<Table>(nullptr)) {
    return invalid(fmt::format("{}: payload is not a valid flatbuffer ({} bytes)", what,
                               buf.size()));
  }
  return flatbuffers::GetRoot<Table>(buf.data());
}

/// True when `p` is kPayloadAlign-aligned in memory.
[[nodiscard]] bool is_aligned(const std::uint8_t* p) noexcept;

/// `payload` itself when its first byte is 8-byte aligned in memory (always the case for
/// FrameReader payloads), otherwise an aligned copy: flatbuffers reads scalars in place.
[[nodiscard]] Bytes aligned(const Bytes& payload);
/// The same for a span; a copy, when needed, lives in `storage`.
[[nodiscard]] std::span<const std::uint8_t> aligned(std::span<const std::uint8_t> bytes, Bytes& storage);

/// Hands out Bytes that view the payload buffer and keep it alive. The shared owner is
/// created once per decoded frame, on the first non-empty view.
class Views {
 public:
  explicit Views(const Bytes& payload) : payload_(payload) {}
  Bytes view(const std::uint8_t* data, std::size_t size) {
    if (size == 0) return Bytes{};
    if (!owner_) owner_ = std::make_shared<const Bytes>(payload_);
    return Bytes(owner_, data, size);
  }
  Bytes view(const flatbuffers::Vector<std::uint8_t>* v) {
    return v == nullptr ? Bytes{} : view(v->data(), v->size());
  }

 private:
  const Bytes& payload_;
  std::shared_ptr<const Bytes> owner_;
};

/// The string's bytes; empty when absent.
[[nodiscard]] std::string get_string(const flatbuffers::String* s);

/// The flatbuffers Verifier checks the alignment of a vector's length but not of its
/// elements; a builder always aligns 8-byte elements, so a vector whose elements are not
/// is malformed (and reading them in place would be a misaligned load).
[[nodiscard]] inline bool elements_aligned(const std::uint8_t* data) noexcept { return is_aligned(data); }

/// Appends the entries of `batch` (may be null) to `out`, payloads as views. Checks
/// kinds, that indexes are consecutive and non-zero, that config payloads decode and
/// that the payload lengths account for the blob exactly. `what` names the message in
/// errors.
[[nodiscard]] Status get_entries(const fb::EntryBatch* batch, Views& views, std::vector<Entry>& out,
                                 std::string_view what);

}  // namespace rlr::wire::detail
