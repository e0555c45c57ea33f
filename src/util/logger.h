// A component's handle on a node's LogSink (rlr/log.h): stamps every record with the
// component, the node id and the time, and skips records below the sink's level before
// anything is formatted.
#pragma once

#include <initializer_list>
#include <memory>
#include <string_view>
#include <utility>

#include <fmt/format.h>

#include "rlr/log.h"

namespace rlr::util {

class Logger {
 public:
  /// A logger that drops everything (no sink).
  Logger() = default;
  /// `component` must outlive the logger (a string literal).
  Logger(std::shared_ptr<LogSink> sink, std::string_view component, NodeId node)
      : sink_(std::move(sink)), component_(component), node_(node) {}

  [[nodiscard]] bool enabled(LogLevel level) const noexcept {
    return sink_ != nullptr && level >= sink_->min_level();
  }

  /// Thread-safe as the sink is (LogSink's contract).
  void log(LogLevel level, std::string_view message, std::initializer_list<LogField> fields = {}) const noexcept {
    if (!enabled(level)) return;
    LogRecord r;
    r.level = level;
    r.component = component_;
    r.node = node_;
    r.message = message;
    r.fields = std::span<const LogField>(fields.begin(), fields.size());
    r.time = std::chrono::system_clock::now();
    sink_->write(r);
  }

  /// Formats the message only when the level is enabled. Formatting errors (out of
  /// memory) drop the line.
  template <class... Args>
  void logf(LogLevel level, std::initializer_list<LogField> fields, fmt::format_string<Args...> f,
            Args&&... args) const noexcept {
    if (!enabled(level)) return;
    try {
      const std::string message = fmt::format(f, std::forward<Args>(args)...);
      log(level, message, fields);
    } catch (...) {  // NOLINT(bugprone-empty-catch): a log line is never worth failing for
    }
  }

  [[nodiscard]] const std::shared_ptr<LogSink>& sink() const noexcept { return sink_; }

 private:
  std::shared_ptr<LogSink> sink_;
  std::string_view component_;
  NodeId node_;
};

}  // namespace rlr::util
