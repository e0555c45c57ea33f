// The payloads of RLR's own log entries, encoded and decoded here and nowhere else.
//
//   Noop       8 bytes: the id of the leader that appended it (big-endian). Every
//              replica learns from the log alone who led each term.
//   Watermark  8 bytes: the log index up to which the leader's egress sink acknowledged
//              outputs (big-endian).
//   Session    16-byte header: client id, sequence (big-endian), then the client's
//              command, unchanged.
// (Config entries carry core::encode_configuration, core/configuration.h.)
// A payload that does not have its kind's shape decodes to nullopt; nothing is read past
// its end.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "rlr/types.h"
#include "util/big_endian.h"

namespace rlr::core {

[[nodiscard]] inline Bytes encode_noop(NodeId leader) {
  std::vector<std::uint8_t> out(8);
  util::put_u64_be(out.data(), leader.value());
  return Bytes(std::move(out));
}
[[nodiscard]] inline std::optional<NodeId> decode_noop(const Bytes& payload) {
  if (payload.size() != 8) return std::nullopt;
  return NodeId{util::get_u64_be(payload.data())};
}

[[nodiscard]] inline Bytes encode_watermark(LogIndex acknowledged) {
  std::vector<std::uint8_t> out(8);
  util::put_u64_be(out.data(), acknowledged.value());
  return Bytes(std::move(out));
}
[[nodiscard]] inline std::optional<LogIndex> decode_watermark(const Bytes& payload) {
  if (payload.size() != 8) return std::nullopt;
  return LogIndex{util::get_u64_be(payload.data())};
}

/// The bytes of a Session entry's header.
inline constexpr std::size_t kSessionHeaderBytes = 16;

/// A Session entry's payload: the header, then `command`.
[[nodiscard]] inline Bytes encode_session_command(std::uint64_t client_id, std::uint64_t sequence,
                                                  const Bytes& command) {
  std::vector<std::uint8_t> out(kSessionHeaderBytes + command.size());
  util::put_u64_be(out.data(), client_id);
  util::put_u64_be(out.data() + 8, sequence);
  if (command.size() > 0) std::copy(command.data(), command.data() + command.size(), out.data() + 16);
  return Bytes(std::move(out));
}

struct SessionCommand {
  std::uint64_t client_id = 0;
  std::uint64_t sequence = 0;
  Bytes command;  ///< a view into the entry's payload (shares its buffer; no copy)
};
[[nodiscard]] inline std::optional<SessionCommand> decode_session_command(const Bytes& payload) {
  if (payload.size() < kSessionHeaderBytes) return std::nullopt;
  SessionCommand c;
  c.client_id = util::get_u64_be(payload.data());
  c.sequence = util::get_u64_be(payload.data() + 8);
  c.command = payload.slice(kSessionHeaderBytes, payload.size() - kSessionHeaderBytes);
  return c;
}

}  // namespace rlr::core
