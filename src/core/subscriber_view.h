// What a subscriber sees of committed log entries (rlr/subscription.h): users' commands
// with their session taken out of the payload, the runtime's own entries only when asked
// for. Shared by Node::subscribe (in process) and Client::subscribe (over TCP), which
// both read raw entries.
#pragma once

#include <utility>
#include <vector>

#include "core/entry_payloads.h"
#include "rlr/subscription.h"

namespace rlr::core {

/// The batch covering `raw`, which are consecutive committed entries starting at `from`
/// (from == next when raw is empty). A Session entry whose payload is too short for its
/// header cannot have been appended by the runtime; it is passed on as it is, with kind
/// Session, so that it is seen rather than silently dropped.
[[nodiscard]] inline SubscriptionBatch subscriber_batch(std::vector<Entry>&& raw, LogIndex from,
                                                        const SubscribeOptions& options) {
  SubscriptionBatch b;
  b.from = from;
  b.next = raw.empty() ? from : raw.back().index.next();
  b.entries.reserve(raw.size());
  for (Entry& e : raw) {
    CommittedEntry c;
    c.index = e.index;
    c.term = e.term;
    switch (e.kind) {
      case EntryKind::Normal:
        c.payload = std::move(e.payload);
        break;
      case EntryKind::Session:
        if (auto s = decode_session_command(e.payload)) {
          c.client_id = s->client_id;
          c.sequence = s->sequence;
          c.payload = std::move(s->command);
        } else {
          c.kind = EntryKind::Session;
          c.payload = std::move(e.payload);
        }
        break;
      case EntryKind::Noop:
      case EntryKind::Config:
      case EntryKind::Watermark:
        if (!options.include_internal) continue;
        c.kind = e.kind;
        c.payload = std::move(e.payload);
        break;
    }
    b.entries.push_back(std::move(c));
  }
  return b;
}

}  // namespace rlr::core
