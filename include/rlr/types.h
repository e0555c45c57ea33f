/// \file
/// librlr — basic vocabulary types: strong ids, terms, log indexes, entries, bytes.
///
/// Every id, term and index is its own type so that a term can never be passed where
/// an index is expected. All are 64-bit unsigned values; 0 means "none" for NodeId and
/// "before the first entry" for LogIndex and Term.
#pragma once

#include <compare>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "rlr/export.h"

/// The librlr public API: the node, the client, state machines, subscriptions, and the
/// storage and transport seams. No exception crosses it (rlr/status.h).
namespace rlr {

/// A 64-bit value with its own type. `Tag` only distinguishes instantiations.
template <class Tag>
class StrongU64 {
 public:
  /// Zero.
  constexpr StrongU64() noexcept = default;
  /// From a raw value; explicit, so that no bare integer converts by accident.
  constexpr explicit StrongU64(std::uint64_t v) noexcept : v_(v) {}
  /// The raw value.
  [[nodiscard]] constexpr std::uint64_t value() const noexcept { return v_; }
  /// Ordered by value; comparable only with the same type.
  constexpr auto operator<=>(const StrongU64&) const noexcept = default;
  /// True for 0: "none" for a NodeId, "before the first entry" for a LogIndex or Term.
  [[nodiscard]] constexpr bool is_zero() const noexcept { return v_ == 0; }

 private:
  std::uint64_t v_ = 0;
};

/// Tag of NodeId.
struct NodeIdTag {};
/// Tag of Term's base.
struct TermTag {};
/// Tag of LogIndex's base.
struct LogIndexTag {};

/// Identifies a cluster member. 0 is "no node" (for example: no known leader).
using NodeId = StrongU64<NodeIdTag>;
/// No node: the NodeId 0.
inline constexpr NodeId kNoNode{0};

/// A Raft term (election epoch). Terms only grow.
class RLR_API Term : public StrongU64<TermTag> {
 public:
  using StrongU64::StrongU64;
  /// From the base type, e.g. a value another Term's arithmetic produced.
  constexpr Term(StrongU64 v) noexcept : StrongU64(v) {}  // NOLINT: implicit from base
  /// The following term.
  [[nodiscard]] constexpr Term next() const noexcept { return Term{value() + 1}; }
};

/// A position in the replicated log; the first entry has index 1.
class RLR_API LogIndex : public StrongU64<LogIndexTag> {
 public:
  using StrongU64::StrongU64;
  /// From the base type, e.g. a value another LogIndex's arithmetic produced.
  constexpr LogIndex(StrongU64 v) noexcept : StrongU64(v) {}  // NOLINT: implicit from base
  /// The index after this one.
  [[nodiscard]] constexpr LogIndex next() const noexcept { return LogIndex{value() + 1}; }
  /// REQUIRES: value() > 0.
  [[nodiscard]] constexpr LogIndex prev() const noexcept { return LogIndex{value() - 1}; }
  /// The index `n` entries after this one.
  [[nodiscard]] constexpr LogIndex plus(std::uint64_t n) const noexcept {
    return LogIndex{value() + n};
  }
};

/// Immutable, reference-counted bytes. Copying a `Bytes` copies a pointer, never the data,
/// so an entry's payload travels from the network buffer to storage to the state machine
/// without being copied. A `Bytes` may view part of a larger buffer it keeps alive.
class RLR_API Bytes {
 public:
  Bytes() = default;
  /// Takes ownership of `data`.
  explicit Bytes(std::vector<std::uint8_t> data);
  /// Copies `s`.
  static Bytes copy_of(std::string_view s);
  /// Copies `s` (one allocation for the bytes and their reference count).
  static Bytes copy_of(std::span<const std::uint8_t> s);
  /// A view of `size` bytes at `data`, kept alive by `owner`.
  Bytes(std::shared_ptr<const void> owner, const std::uint8_t* data, std::size_t size) noexcept
      : owner_(std::move(owner)), data_(data), size_(size) {}

  /// The first byte; may be null when empty().
  [[nodiscard]] const std::uint8_t* data() const noexcept { return data_; }
  /// The number of bytes.
  [[nodiscard]] std::size_t size() const noexcept { return size_; }
  /// True when size() is 0.
  [[nodiscard]] bool empty() const noexcept { return size_ == 0; }
  /// The bytes as a span; valid while this Bytes (or a copy) lives.
  [[nodiscard]] std::span<const std::uint8_t> span() const noexcept { return {data_, size_}; }
  /// The bytes as characters (no copy); valid while this Bytes (or a copy) lives.
  [[nodiscard]] std::string_view as_string_view() const noexcept;
  /// `count` bytes from `offset`, sharing this buffer (no copy, no allocation).
  /// REQUIRES: offset + count <= size().
  [[nodiscard]] Bytes slice(std::size_t offset, std::size_t count) const noexcept {
    return Bytes(owner_, data_ + offset, count);
  }
  /// Equal content, byte by byte, wherever the bytes live.
  friend bool operator==(const Bytes& a, const Bytes& b) noexcept;

 private:
  std::shared_ptr<const void> owner_;
  const std::uint8_t* data_ = nullptr;
  std::size_t size_ = 0;
};

/// What an entry is for. Only `Normal` entries carry application commands.
enum class EntryKind : std::uint8_t {
  Normal = 0,     ///< an application command, proposed through propose()
  Config = 1,     ///< a membership configuration (payload: encoded Configuration)
  Noop = 2,       ///< a new leader's first entry (Raft §8); payload: its node id (8 bytes BE)
  Session = 3,    ///< a command with a client session; payload: client id, sequence (8
                  ///< bytes BE each), then the command
  Watermark = 4,  ///< egress watermark: downstream acknowledged through an index (8 bytes BE)
};
/// The highest EntryKind; a decoder refuses a kind above it.
inline constexpr EntryKind kLastEntryKind = EntryKind::Watermark;

/// One log entry.
struct RLR_API Entry {
  /// Its position in the log (1 = the first entry).
  LogIndex index;
  /// The term of the leader that appended it.
  Term term;
  /// What it is for; the payload's layout depends on it.
  EntryKind kind = EntryKind::Normal;
  /// The bytes; for Normal, the command exactly as proposed.
  Bytes payload;
  /// Every field equal, the payload byte by byte.
  friend bool operator==(const Entry&, const Entry&) = default;
};

/// The role of a node, as seen by that node.
enum class Role : std::uint8_t {
  /// follows a leader, or waits to hear from one
  Follower = 0,
  PreCandidate = 1,  ///< running a pre-vote (thesis §9.6); the term is unchanged
  /// running an election in a new term
  Candidate = 2,
  /// accepts proposals and replicates the log
  Leader = 3,
  Learner = 4,  ///< receives the log, never votes, never counts toward commit
};

/// "follower", "pre-candidate", "candidate", "leader", "learner".
[[nodiscard]] RLR_API std::string_view to_string(Role r) noexcept;
/// "normal", "config", "noop", "session", "watermark".
[[nodiscard]] RLR_API std::string_view to_string(EntryKind k) noexcept;

}  // namespace rlr
