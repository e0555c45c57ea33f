/// \file
/// librlr — where the library's log lines go.
///
/// The library never writes to stdout or stderr itself: every line it has to say (a peer
/// link that failed, a refused connection, a storage failure, a dropped message) is a
/// LogRecord handed to the node's LogSink. A host routes them into its own logging by
/// giving NodeBuilder::log_sink() a sink of its own; without one, a node writes one line
/// per record to stderr (make_stderr_log_sink()).
///
/// Example: a sink that forwards to the host's logger.
/// \code{.cpp}
///   class HostSink final : public rlr::LogSink {
///    public:
///     void write(const rlr::LogRecord& r) noexcept override {
///       host_log(r.level, rlr::format_log_record(r, rlr::LogFormat::Json));
///     }
///     rlr::LogLevel min_level() const noexcept override { return rlr::LogLevel::Info; }
///   };
///   auto node = rlr::NodeBuilder()...log_sink(std::make_shared<HostSink>()).build();
/// \endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "rlr/export.h"
#include "rlr/types.h"

namespace rlr {

/// How much a record matters. Debug: detail for whoever chases a problem; Info: a change
/// an operator may want to see (a link came up); Warn: something failed and the node
/// copes (a dial timed out, a frame was refused); Error: the node lost a capability (its
/// storage failed and it stopped participating).
enum class LogLevel : std::uint8_t { Debug = 0, Info = 1, Warn = 2, Error = 3 };

/// "debug", "info", "warn", "error".
[[nodiscard]] RLR_API std::string_view to_string(LogLevel level) noexcept;

/// Parses what to_string(LogLevel) returns. Errors: false for anything else (`out` is
/// left unchanged).
[[nodiscard]] RLR_API bool parse_log_level(std::string_view text, LogLevel& out) noexcept;

/// One structured detail of a record, such as {"peer", "2"}. Keys are lower_snake_case
/// words the library keeps stable across releases; values are text.
struct RLR_API LogField {
  /// A lower_snake_case name, e.g. "peer".
  std::string_view key;
  /// The value as text, e.g. "2".
  std::string_view value;
};

/// One log line, before formatting. Every view is valid only during LogSink::write: a
/// sink that keeps a record past the call copies what it needs.
struct RLR_API LogRecord {
  /// How much the record matters.
  LogLevel level = LogLevel::Info;
  /// Which part of the library speaks: "node" (the runtime), "transport" (peer links and
  /// inbound connections), or a host's own name when the host logs through the sink.
  std::string_view component;
  NodeId node;  ///< the node the line is about; kNoNode when none
  /// What happened, in words for people; details go in `fields`.
  std::string_view message;
  /// Structured details, in the order the library added them.
  std::span<const LogField> fields;
  /// When the record was made (wall clock).
  std::chrono::system_clock::time_point time;
};

/// Receives a node's log records.
///
/// Thread-safety: write() is called from several of the node's threads at once (its raft
/// thread, its transport's io thread, apply threads), so an implementation synchronises
/// itself. It must return promptly (the raft thread may be the caller), must not throw,
/// and must not call back into the node that logs through it.
class RLR_API LogSink {
 public:
  virtual ~LogSink() = default;
  /// Takes one record at or above min_level().
  virtual void write(const LogRecord& record) noexcept = 0;
  /// Records below this level are neither formatted nor passed to write(). Read on every
  /// record: a sink may change it at any time (the read must be thread-safe).
  [[nodiscard]] virtual LogLevel min_level() const noexcept { return LogLevel::Info; }
};

/// How make_stderr_log_sink() and format_log_record() lay a record out.
enum class LogFormat : std::uint8_t {
  /// `2026-12-07T10:00:00.123456Z WARN  transport node=1: no answer to the dial peer=2`;
  /// a value with a space, a quote or an `=` is double-quoted with C-style escapes.
  Text,
  /// One JSON object per line: {"time":..., "level":"warn", "component":"transport",
  /// "node":1, "message":..., then each field as a string member}. A field whose key
  /// is one of those five names is written as "field.<key>".
  Json,
};

/// The record as one line, without the trailing newline.
[[nodiscard]] RLR_API std::string format_log_record(const LogRecord& record, LogFormat format);

/// The default sink: each record at or above `min_level` as one line on stderr, written
/// with a single write(2) so that lines from concurrent threads never interleave.
/// Errors writing stderr are ignored (a log line is never worth failing the node for).
[[nodiscard]] RLR_API std::shared_ptr<LogSink> make_stderr_log_sink(LogFormat format = LogFormat::Text,
                                                                   LogLevel min_level = LogLevel::Info);

/// Called with the report of a violated internal invariant (a librlr bug: the state is
/// already wrong) just before the process aborts. Process-wide, because an invariant has
/// no node to log through. The default writes the report to stderr. The handler must not
/// return control to librlr by other means than returning (no throw, no longjmp); the
/// abort follows whatever it does.
using FatalHandler = void (*)(std::string_view report) noexcept;

/// Installs `handler` (nullptr: the default) and returns the one it replaces.
/// Thread-safe.
RLR_API FatalHandler set_fatal_handler(FatalHandler handler) noexcept;

}  // namespace rlr
