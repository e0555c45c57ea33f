/// \file
/// librlr — subscriptions: the committed log as a stream, for readers outside the state
/// machines (an audit tap, a drop copy, a tool). Node::subscribe() reads a node in
/// process; Client::subscribe() reads a cluster over TCP and survives failovers.
///
/// A subscription yields what users proposed: each command with its index, term and the
/// client session it came in (if any), the payload exactly as proposed. The runtime's own
/// entries (a new leader's no-op, membership configurations, egress watermarks) are
/// skipped unless SubscribeOptions::include_internal asks for them. Batches cover the log
/// without gaps: each says which indexes it covers, so a skipped index is told apart from
/// a lost one.
///
/// Example:
/// \code{.cpp}
///   auto sub = node->subscribe(rlr::LogIndex{1});
///   rlr::LogIndex expect{1};
///   for (;;) {
///     auto batch = sub.value()->next(std::chrono::milliseconds(100));
///     if (!batch) break;                       // Busy: resubscribe from `expect`
///     assert(batch.value().from == expect);    // always: batches are contiguous
///     for (const rlr::CommittedEntry& e : batch.value().entries) audit(e.index, e.payload);
///     expect = batch.value().next;
///   }
/// \endcode
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "rlr/export.h"
#include "rlr/status.h"
#include "rlr/types.h"

namespace rlr {

/// What a subscription yields besides users' commands.
struct RLR_API SubscribeOptions {
  /// Also yield the runtime's own entries (kind Noop, Config or Watermark, with their raw
  /// payloads; see EntryKind), for tools that read the whole log. Off: only commands.
  bool include_internal = false;
};

/// One committed entry as a subscriber receives it.
struct RLR_API CommittedEntry {
  /// The entry's index.
  LogIndex index;
  /// The term of the leader that appended it.
  Term term;
  /// Normal for a user's command, with or without a session (never Session: the session
  /// is in client_id / sequence). Noop, Config, Watermark only with include_internal.
  EntryKind kind = EntryKind::Normal;
  /// The client session the command was proposed in (rlr::Client proposes with one);
  /// 0 and 0 when it came without one, and for internal entries.
  std::uint64_t client_id = 0;
  /// The session's sequence number (0 when none).
  std::uint64_t sequence = 0;
  /// The command as proposed (shares the log entry's buffer: no copy); for an internal
  /// entry, its raw payload.
  Bytes payload;
  /// Every field equal, the payload byte by byte.
  friend bool operator==(const CommittedEntry&, const CommittedEntry&) = default;
};

/// A stretch of the committed log: every index in [from, next) was committed, and each
/// is either in `entries` (ascending) or was an internal entry that the subscription
/// skipped. The next batch starts at `next`. An empty batch has from == next.
struct RLR_API SubscriptionBatch {
  /// The first index covered: the previous batch's `next`.
  LogIndex from;
  /// The index after the last one covered: where the next batch starts.
  LogIndex next;
  /// The entries of [from, next) the subscription yields, ascending.
  std::vector<CommittedEntry> entries;
};

/// A stream of committed entries in log order, from a chosen index, without gaps. The
/// consumer reads at its own pace: entries come from the node's cache of recent commits
/// or, for a consumer further behind, from its log on disk; nothing waits for it.
/// Thread-safety: one consumer thread at a time.
class RLR_API Subscription {
 public:
  virtual ~Subscription() = default;
  /// Waits up to `timeout` for entries; returns the stretch that is available (possibly
  /// an empty one, from == next == position()). After an error, position() is unchanged:
  /// subscribing again from it loses nothing.
  /// Errors, in process (Node::subscribe): ShuttingDown (the node stopped), Compacted
  /// (the entries at position() were compacted away while the consumer lagged), IoError
  /// or Corruption (reading the log); over TCP: see Client::subscribe.
  [[nodiscard]] virtual Result<SubscriptionBatch> next(std::chrono::milliseconds timeout) = 0;
  /// The first index not yet covered by a batch.
  [[nodiscard]] virtual LogIndex position() const = 0;
};

}  // namespace rlr
