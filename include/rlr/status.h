/// \file
/// librlr — the error model. No exception crosses the public API; every fallible call
/// returns a `Status` or a `Result<T>`.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

#include "rlr/export.h"
#include "rlr/types.h"

namespace rlr {

/// Typed error codes. Callers branch on the code; the message is for people.
enum class ErrorCode : std::uint8_t {
  /// Success: not an error.
  Ok = 0,
  NotLeader,           ///< this node cannot accept the request; see Status::leader_hint()
  Timeout,             ///< the operation did not complete in time; it may still take effect
  ShuttingDown,        ///< the node is stopping
  InvalidArgument,     ///< the request is malformed or not allowed in this state
  ChangeInProgress,    ///< a membership change is already in flight
  TransferInProgress,  ///< a leadership transfer is under way; proposals are refused
  Compacted,           ///< the requested index is below the first retained entry
  Corruption,          ///< stored or received data failed an integrity check
  IoError,             ///< the operating system reported an error
  /// What was looked up does not exist (e.g. no librlr store where one was to be opened).
  NotFound,
  Busy,                ///< a bounded queue is full; retry later
  Unavailable,         ///< no quorum / no leader known
  WrongCluster,        ///< data or peer belongs to another cluster or node
};

/// The code's name as the enum spells it ("NotLeader"); "?" for a value outside it.
[[nodiscard]] RLR_API std::string_view to_string(ErrorCode c) noexcept;

/// Success, or an error code with a message. `NotLeader` errors carry the id of the
/// leader this node knows of (kNoNode when none).
class [[nodiscard]] RLR_API Status {
 public:
  Status() = default;
  /// `code` with a message for people; `leader_hint` matters with NotLeader only.
  Status(ErrorCode code, std::string message, NodeId leader_hint = kNoNode)
      : code_(code), message_(std::move(message)), leader_hint_(leader_hint) {}

  /// Success.
  static Status ok() { return {}; }
  /// A NotLeader error naming the leader this node knows of (kNoNode when none).
  static Status not_leader(NodeId leader, std::string message = "not the leader") {
    return {ErrorCode::NotLeader, std::move(message), leader};
  }

  /// True on success.
  [[nodiscard]] bool is_ok() const noexcept { return code_ == ErrorCode::Ok; }
  /// is_ok(): `if (!status)` tests for an error.
  explicit operator bool() const noexcept { return is_ok(); }
  /// What went wrong, for callers to branch on; Ok on success.
  [[nodiscard]] ErrorCode code() const noexcept { return code_; }
  /// What went wrong, for people (empty on success); not meant to be parsed.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  /// With NotLeader: the leader this node knows of; kNoNode when none, and for other codes.
  [[nodiscard]] NodeId leader_hint() const noexcept { return leader_hint_; }
  /// "NotLeader: not the leader (leader=3)".
  [[nodiscard]] std::string to_string() const;

 private:
  ErrorCode code_ = ErrorCode::Ok;
  std::string message_;
  NodeId leader_hint_ = kNoNode;
};

/// A value of type T or an error Status.
template <class T>
class [[nodiscard]] Result {
 public:
  /// Holds `value`.
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  /// Holds `error`. REQUIRES: !error.is_ok() (asserted in debug builds).
  Result(Status error) : v_(std::move(error)) {  // NOLINT: implicit by design
    assert(!std::get<Status>(v_).is_ok() && "Result built from an ok Status");
  }

  /// True when it holds a value.
  [[nodiscard]] bool is_ok() const noexcept { return v_.index() == 0; }
  /// is_ok(): `if (!result)` tests for an error.
  explicit operator bool() const noexcept { return is_ok(); }
  /// The value. REQUIRES: is_ok().
  [[nodiscard]] T& value() & { return std::get<T>(v_); }
  /// The value. REQUIRES: is_ok().
  [[nodiscard]] const T& value() const& { return std::get<T>(v_); }
  /// The value, moved out of an rvalue Result. REQUIRES: is_ok().
  [[nodiscard]] T&& value() && { return std::get<T>(std::move(v_)); }
  /// The value, or `fallback` when this holds an error.
  [[nodiscard]] T value_or(T fallback) const& { return is_ok() ? std::get<T>(v_) : std::move(fallback); }
  /// The error; an ok Status when is_ok().
  [[nodiscard]] Status status() const { return is_ok() ? Status{} : std::get<Status>(v_); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace rlr
