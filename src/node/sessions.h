// Client sessions (private): exactly-once application of client commands.
//
// Every replica keeps the same table by applying the same Session entries in log order:
// a command whose (client id, sequence) was already applied is a duplicate and is not
// applied again; its proposer is answered with the original entry. Each client's newest
// kWindow sequences are remembered, so pipelined commands may commit out of order; a
// sequence older than that window is refused as a duplicate whose result is forgotten. Sessions expire by a
// deterministic rule evaluated at each Session entry: unused for `ttl_entries` log
// entries, or the least recently used one when the table is full. The table is part of
// RLR's snapshot data.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <vector>

#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr::node {

class SessionTable {
 public:
  SessionTable(std::uint64_t ttl_entries, std::size_t max_sessions)
      : ttl_entries_(ttl_entries), max_sessions_(max_sessions) {}

  struct Outcome {
    bool duplicate = false;
    LogIndex original_index;  ///< for a duplicate: the first copy (0 when forgotten)
    Term original_term;
  };
  /// Applies the Session entry at (index, term). Deterministic.
  Outcome apply(LogIndex index, Term term, std::uint64_t client_id, std::uint64_t sequence);
  /// Looks up a command without changing anything (leader side, before proposing).
  [[nodiscard]] std::optional<Outcome> find(std::uint64_t client_id, std::uint64_t sequence) const;

  [[nodiscard]] std::size_t size() const { return sessions_.size(); }
  [[nodiscard]] Bytes encode() const;
  /// Replaces the table; Corruption on malformed data.
  [[nodiscard]] Status decode(std::span<const std::uint8_t> data);
  friend bool operator==(const SessionTable& a, const SessionTable& b) {
    return a.sessions_ == b.sessions_;
  }

  /// Results remembered per client, for clients with several commands in flight.
  static constexpr std::size_t kWindow = 128;

 private:
  struct Session {
    std::uint64_t last_sequence = 0;
    LogIndex last_used;
    std::map<std::uint64_t, std::pair<LogIndex, Term>> recent;  // sequence -> entry
    friend bool operator==(const Session&, const Session&) = default;
  };
  void expire(LogIndex now);
  static bool is_duplicate(const Session& s, std::uint64_t sequence, Outcome& o);

  std::uint64_t ttl_entries_;
  std::size_t max_sessions_;
  std::map<std::uint64_t, Session> sessions_;
  std::set<std::pair<LogIndex, std::uint64_t>> by_use_;  // (last_used, client id)
};

}  // namespace rlr::node
