#include "rlr/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <ctime>

#include <fmt/format.h>

#include "util/invariant.h"

namespace rlr {

std::string_view to_string(LogLevel level) noexcept {
  switch (level) {
    case LogLevel::Debug: return "debug";
    case LogLevel::Info: return "info";
    case LogLevel::Warn: return "warn";
    case LogLevel::Error: return "error";
  }
  return "unknown";
}

bool parse_log_level(std::string_view text, LogLevel& out) noexcept {
  for (LogLevel l : {LogLevel::Debug, LogLevel::Info, LogLevel::Warn, LogLevel::Error}) {
    if (text == to_string(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

namespace {

void append_time(std::string& out, std::chrono::system_clock::time_point t) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(t.time_since_epoch()).count();
  const std::time_t secs = static_cast<std::time_t>(us / 1'000'000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, us % 1'000'000);
}

/// Appends `s` with the escapes JSON requires (and C's, for text values that need
/// quoting: both use the same backslash forms for the characters escaped here).
void append_escaped(std::string& out, std::string_view s) {
  for (const char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(out), "\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
}

bool needs_quotes(std::string_view v) {
  if (v.empty()) return true;
  for (const char c : v) {
    if (c == ' ' || c == '"' || c == '=' || c == '\\' || static_cast<unsigned char>(c) < 0x20) return true;
  }
  return false;
}

void append_text_value(std::string& out, std::string_view v) {
  if (!needs_quotes(v)) {
    out += v;
    return;
  }
  out += '"';
  append_escaped(out, v);
  out += '"';
}

void append_json_string(std::string& out, std::string_view s) {
  out += '"';
  append_escaped(out, s);
  out += '"';
}

bool reserved_json_key(std::string_view k) {
  return k == "time" || k == "level" || k == "component" || k == "node" || k == "message";
}

}  // namespace

std::string format_log_record(const LogRecord& r, LogFormat format) {
  std::string out;
  out.reserve(96 + r.message.size());
  if (format == LogFormat::Text) {
    append_time(out, r.time);
    static constexpr std::string_view kNames[] = {"DEBUG", "INFO ", "WARN ", "ERROR"};
    const auto level = static_cast<std::size_t>(r.level);
    out += ' ';
    out += level < std::size(kNames) ? kNames[level] : std::string_view{"?    "};
    out += ' ';
    out += r.component.empty() ? std::string_view{"rlr"} : r.component;
    if (!r.node.is_zero()) fmt::format_to(std::back_inserter(out), " node={}", r.node.value());
    out += ": ";
    for (const char c : r.message) out += (c == '\n' || c == '\r') ? ' ' : c;
    for (const LogField& f : r.fields) {
      out += ' ';
      out += f.key;
      out += '=';
      append_text_value(out, f.value);
    }
    return out;
  }
  out += "{\"time\":\"";
  append_time(out, r.time);
  out += "\",\"level\":";
  append_json_string(out, to_string(r.level));
  out += ",\"component\":";
  append_json_string(out, r.component);
  fmt::format_to(std::back_inserter(out), ",\"node\":{},\"message\":", r.node.value());
  append_json_string(out, r.message);
  for (const LogField& f : r.fields) {
    out += ',';
    if (reserved_json_key(f.key)) {
      out += "\"field.";
      append_escaped(out, f.key);
      out += '"';
    } else {
      append_json_string(out, f.key);
    }
    out += ':';
    append_json_string(out, f.value);
  }
  out += '}';
  return out;
}

namespace {

/// Writes all of `line` to fd 2, retrying short writes and EINTR; gives up on any other
/// error (a closed or full stderr must not stop the node).
void write_stderr(std::string_view line) noexcept {
  while (!line.empty()) {
    const ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return;
    }
    line.remove_prefix(static_cast<std::size_t>(n));
  }
}

class StderrSink final : public LogSink {
 public:
  StderrSink(LogFormat format, LogLevel min_level) : format_(format), min_level_(min_level) {}

  void write(const LogRecord& record) noexcept override {
    try {
      std::string line = format_log_record(record, format_);
      line += '\n';
      write_stderr(line);
    } catch (...) {  // NOLINT(bugprone-empty-catch): out of memory formatting a log line
    }
  }

  [[nodiscard]] LogLevel min_level() const noexcept override { return min_level_; }

 private:
  const LogFormat format_;
  const LogLevel min_level_;
};

void default_fatal_handler(std::string_view report) noexcept { write_stderr(report); }

std::atomic<FatalHandler> g_fatal_handler{nullptr};

}  // namespace

std::shared_ptr<LogSink> make_stderr_log_sink(LogFormat format, LogLevel min_level) {
  return std::make_shared<StderrSink>(format, min_level);
}

FatalHandler set_fatal_handler(FatalHandler handler) noexcept {
  return g_fatal_handler.exchange(handler, std::memory_order_acq_rel);
}

}  // namespace rlr

namespace rlr::util {

void report_fatal(const char* report) noexcept {
  const FatalHandler h = g_fatal_handler.load(std::memory_order_acquire);
  const std::string_view text{report};
  if (h != nullptr) {
    h(text);
  } else {
    default_fatal_handler(text);
  }
}

}  // namespace rlr::util
