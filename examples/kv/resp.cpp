#include "kv/resp.h"

#include <charconv>

#include <fmt/format.h>

namespace rlr::kv::resp {
namespace {

/// A decimal in [min, max] (a leading '-' allowed when min < 0).
bool parse_int(std::string_view s, std::int64_t min, std::int64_t max, std::int64_t& v) {
  if (s.empty() || s.size() > 20) return false;
  std::int64_t r = 0;
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), r);
  if (ec != std::errc{} || ptr != s.data() + s.size() || r < min || r > max) return false;
  v = r;
  return true;
}

/// Splits an inline command on blanks, honouring "double" and 'single' quotes the way
/// redis-cli users expect (no escapes beyond \" inside double quotes). False on an
/// unterminated quote.
bool split_inline(std::string_view line, std::vector<std::string>& args) {
  std::size_t i = 0;
  while (i < line.size()) {
    while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
    if (i == line.size()) break;
    std::string arg;
    if (line[i] == '"' || line[i] == '\'') {
      const char quote = line[i++];
      bool closed = false;
      while (i < line.size()) {
        if (quote == '"' && line[i] == '\\' && i + 1 < line.size()) {
          arg.push_back(line[i + 1]);
          i += 2;
          continue;
        }
        if (line[i] == quote) {
          closed = true;
          ++i;
          break;
        }
        arg.push_back(line[i++]);
      }
      if (!closed) return false;
      if (i < line.size() && line[i] != ' ' && line[i] != '\t') return false;
    } else {
      while (i < line.size() && line[i] != ' ' && line[i] != '\t') arg.push_back(line[i++]);
    }
    args.push_back(std::move(arg));
  }
  return true;
}

}  // namespace

void Parser::feed(std::string_view bytes) {
  // Drop what was consumed before growing the buffer.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

Parser::State Parser::fail(std::string& error, std::string message) {
  error_ = std::move(message);
  error = error_;
  return State::Error;
}

bool Parser::take_line(std::string_view& line) {
  const std::size_t nl = buf_.find('\n', pos_);
  if (nl == std::string::npos) return false;
  std::size_t end = nl;
  if (end > pos_ && buf_[end - 1] == '\r') --end;
  line = std::string_view(buf_).substr(pos_, end - pos_);
  pos_ = nl + 1;
  return true;
}

Parser::State Parser::parse_inline(std::vector<std::string>& args, std::string& error) {
  while (true) {
    const std::size_t nl = buf_.find('\n', pos_);
    if (nl == std::string::npos) {
      if (buffered() > kInlineBytesMax) return fail(error, "Protocol error: too big inline request");
      return State::NeedMore;
    }
    if (nl - pos_ > kInlineBytesMax) return fail(error, "Protocol error: too big inline request");
    std::string_view line;
    (void)take_line(line);
    args.clear();
    if (!split_inline(line, args)) return fail(error, "Protocol error: unbalanced quotes in request");
    if (!args.empty()) return State::Command;
    // An empty line is not a command (redis ignores it too); look at what follows.
    if (pos_ == buf_.size() || buf_[pos_] == '*') return State::NeedMore;
  }
}

Parser::State Parser::next(std::vector<std::string>& args, std::string& error) {
  if (!error_.empty()) {
    error = error_;
    return State::Error;
  }
  while (true) {
    switch (stage_) {
      case Stage::Start: {
        if (pos_ == buf_.size()) return State::NeedMore;
        if (buf_[pos_] != '*') {
          const State s = parse_inline(args, error);
          if (s != State::NeedMore || pos_ == buf_.size() || buf_[pos_] != '*') return s;
          continue;  // empty inline lines, then a multibulk request
        }
        const std::size_t nl = buf_.find('\n', pos_);
        if (nl == std::string::npos) {
          if (buffered() > 32) return fail(error, "Protocol error: invalid multibulk length");
          return State::NeedMore;
        }
        std::string_view line;
        (void)take_line(line);
        std::int64_t n = 0;
        if (!parse_int(line.substr(1), -1, static_cast<std::int64_t>(kArgsMax), n)) {
          return fail(error, "Protocol error: invalid multibulk length");
        }
        if (n <= 0) continue;  // "*0" and "*-1" carry no command
        args_left_ = static_cast<std::size_t>(n);
        partial_.clear();
        stage_ = Stage::BulkHeader;
        break;
      }
      case Stage::BulkHeader: {
        if (pos_ == buf_.size()) return State::NeedMore;
        if (buf_[pos_] != '$') {
          return fail(error, fmt::format("Protocol error: expected '$', got '{}'",
                                         buf_[pos_] >= 32 && buf_[pos_] < 127 ? buf_[pos_] : '?'));
        }
        const std::size_t nl = buf_.find('\n', pos_);
        if (nl == std::string::npos) {
          if (buffered() > 32) return fail(error, "Protocol error: invalid bulk length");
          return State::NeedMore;
        }
        std::string_view line;
        (void)take_line(line);
        std::int64_t len = 0;
        if (!parse_int(line.substr(1), 0, static_cast<std::int64_t>(kBulkBytesMax), len)) {
          return fail(error, "Protocol error: invalid bulk length");
        }
        bulk_len_ = static_cast<std::size_t>(len);
        stage_ = Stage::BulkBody;
        break;
      }
      case Stage::BulkBody: {
        if (buffered() < bulk_len_ + 2) return State::NeedMore;
        if (buf_[pos_ + bulk_len_] != '\r' || buf_[pos_ + bulk_len_ + 1] != '\n') {
          return fail(error, "Protocol error: bulk string not terminated by CRLF");
        }
        partial_.emplace_back(buf_, pos_, bulk_len_);
        pos_ += bulk_len_ + 2;
        stage_ = Stage::BulkHeader;
        if (--args_left_ == 0) {
          stage_ = Stage::Start;
          args = std::move(partial_);
          partial_.clear();
          return State::Command;
        }
        break;
      }
    }
  }
}

std::string simple(std::string_view s) { return fmt::format("+{}\r\n", s); }
std::string error(std::string_view s) { return fmt::format("-{}\r\n", s); }
std::string integer(std::int64_t v) { return fmt::format(":{}\r\n", v); }
std::string bulk(std::string_view s) {
  std::string out = fmt::format("${}\r\n", s.size());
  out.append(s);
  out.append("\r\n");
  return out;
}
std::string null_bulk() { return "$-1\r\n"; }
std::string array(const std::vector<std::string>& encoded_items) {
  std::string out = fmt::format("*{}\r\n", encoded_items.size());
  for (const auto& item : encoded_items) out.append(item);
  return out;
}

}  // namespace rlr::kv::resp
