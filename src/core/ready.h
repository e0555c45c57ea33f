// What a core hands its driver and takes back (core-private): a Ready collects what the
// node must persist, send and apply; a PersistMark acknowledges what became durable.
//
// Ready contract (in this order for one Ready; Readys are handled in the order taken):
//   1. `messages` may be sent at once, before anything is persisted: the leader's
//      replication traffic (so the leader writes its log in parallel with replicating
//      it) and pre-votes (which promise nothing).
//   2. persist `snapshot`, then `entries` (truncating any stored suffix from the first
//      entry's index), then `hard_state`, atomically if the storage can.
//   3. only then send `messages_after_persist` (votes, acknowledgements), and call
//      ack_persisted(ready.persist_mark).
//   4. `committed` entries may be applied in order at any time; they are never ahead of
//      what this node has durably stored.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/message.h"
#include "core/state.h"
#include "rlr/types.h"

namespace rlr::core {

struct SoftState {
  Role role = Role::Follower;
  NodeId leader;
  Term term;
  friend bool operator==(const SoftState&, const SoftState&) = default;
};

/// Outcome of a ReadIndex request: when `ok`, reads may be served once `index` is applied.
/// Not ok when leadership was lost before the read was confirmed.
struct ReadState {
  std::uint64_t request_id = 0;
  LogIndex index;
  bool ok = true;
};

/// Where a Ready's persistence ends; hand it back through ack_persisted().
struct PersistMark {
  LogIndex index;       ///< last log index handed out for persistence (with its term)
  Term term;
  Term hard_state_term; ///< term of the Ready's hard state; 0 when it had none
};

struct Ready {
  std::optional<SoftState> soft_state;
  std::optional<HardState> hard_state;
  std::optional<SnapshotMeta> snapshot;
  std::vector<Entry> entries;
  std::vector<Message> messages;
  std::vector<Message> messages_after_persist;
  std::vector<Entry> committed;
  std::vector<ReadState> read_states;
  PersistMark persist_mark;
  /// True when something must be persisted before messages_after_persist leave.
  [[nodiscard]] bool must_persist() const noexcept {
    return hard_state.has_value() || snapshot.has_value() || !entries.empty();
  }
  [[nodiscard]] bool empty() const noexcept {
    return !soft_state && !must_persist() && messages.empty() &&
           messages_after_persist.empty() && committed.empty() && read_states.empty();
  }
};

}  // namespace rlr::core
