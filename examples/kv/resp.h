// RESP (the Redis serialization protocol, version 2): an incremental request parser and
// the reply encoders the kv server needs.
//
// Requests are either multibulk arrays ("*2\r\n$3\r\nGET\r\n$1\r\nk\r\n") or inline
// commands ("GET k\n"), as redis-cli and redis-benchmark send them. The parser takes bytes
// in whatever pieces the socket delivers, yields complete commands one at a time (several
// may be pipelined in one read), and reports malformed input as a protocol error instead
// of failing in any other way. Every size is bounded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rlr::kv::resp {

inline constexpr std::size_t kInlineBytesMax = 64 * 1024;
inline constexpr std::size_t kBulkBytesMax = 16 * 1024 * 1024;
inline constexpr std::size_t kArgsMax = 1024 * 1024;

class Parser {
 public:
  enum class State : std::uint8_t {
    NeedMore,  ///< no complete command buffered yet
    Command,   ///< `args` holds the next command
    Error,     ///< malformed input; `error` says why. The stream cannot be resynchronized.
  };

  /// Appends received bytes.
  void feed(std::string_view bytes);
  /// Takes the next complete command. After Error, every call returns Error.
  State next(std::vector<std::string>& args, std::string& error);
  /// Bytes buffered but not yet consumed.
  [[nodiscard]] std::size_t buffered() const { return buf_.size() - pos_; }

 private:
  enum class Stage : std::uint8_t { Start, BulkHeader, BulkBody };
  State fail(std::string& error, std::string message);
  /// Finds "\n" from pos_; the line without its "\r\n" / "\n", or false when incomplete.
  bool take_line(std::string_view& line);
  State parse_inline(std::vector<std::string>& args, std::string& error);

  std::string buf_;
  std::size_t pos_ = 0;
  Stage stage_ = Stage::Start;
  std::size_t args_left_ = 0;
  std::size_t bulk_len_ = 0;
  std::vector<std::string> partial_;
  std::string error_;  // set once failed
};

// Reply encoders.
[[nodiscard]] std::string simple(std::string_view s);          // +s
[[nodiscard]] std::string error(std::string_view s);           // -s
[[nodiscard]] std::string integer(std::int64_t v);             // :v
[[nodiscard]] std::string bulk(std::string_view s);            // $len s
[[nodiscard]] std::string null_bulk();                         // $-1
[[nodiscard]] std::string array(const std::vector<std::string>& encoded_items);

}  // namespace rlr::kv::resp
