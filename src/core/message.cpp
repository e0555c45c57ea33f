// Rendering of core messages for logs and traces.
#include <string>
#include <string_view>

#include <fmt/format.h>

#include "core/message.h"

namespace rlr::core {

std::string_view to_string(MessageType t) noexcept {
  switch (t) {
    case MessageType::PreVote: return "PreVote";
    case MessageType::PreVoteResponse: return "PreVoteResponse";
    case MessageType::Vote: return "Vote";
    case MessageType::VoteResponse: return "VoteResponse";
    case MessageType::Append: return "Append";
    case MessageType::AppendResponse: return "AppendResponse";
    case MessageType::Heartbeat: return "Heartbeat";
    case MessageType::HeartbeatResponse: return "HeartbeatResponse";
    case MessageType::Snapshot: return "Snapshot";
    case MessageType::SnapshotResponse: return "SnapshotResponse";
    case MessageType::TimeoutNow: return "TimeoutNow";
  }
  return "?";
}

std::string describe(const Message& m) {
  std::string s = fmt::format("{} {}->{} t{}", to_string(m.type), m.from.value(), m.to.value(),
                              m.term.value());
  switch (m.type) {
    case MessageType::PreVote:
    case MessageType::Vote:
      s += fmt::format(" last={}/t{}{}", m.log_index.value(), m.log_term.value(),
                       m.transfer ? " transfer" : "");
      break;
    case MessageType::PreVoteResponse:
    case MessageType::VoteResponse:
      s += m.reject ? " reject" : " grant";
      break;
    case MessageType::Append:
      s += fmt::format(" prev={}/t{} n={} commit={}", m.log_index.value(), m.log_term.value(),
                       m.entries.size(), m.commit.value());
      if (!m.entries.empty()) {
        s += fmt::format(" [{}..{}]", m.entries.front().index.value(),
                         m.entries.back().index.value());
      }
      break;
    case MessageType::AppendResponse:
      s += m.reject ? fmt::format(" reject prev={} hint={}/t{}", m.log_index.value(),
                                  m.hint_index.value(), m.hint_term.value())
                    : fmt::format(" ok match={}", m.log_index.value());
      break;
    case MessageType::Heartbeat:
      s += fmt::format(" commit={} ctx={}", m.commit.value(), m.context);
      break;
    case MessageType::HeartbeatResponse:
      s += fmt::format(" ctx={}", m.context);
      break;
    case MessageType::Snapshot:
      if (m.snapshot) {
        s += fmt::format(" snap={}/t{}", m.snapshot->index.value(), m.snapshot->term.value());
      }
      break;
    case MessageType::SnapshotResponse:
      s += fmt::format(" {} last={}", m.reject ? "reject" : "ok", m.log_index.value());
      break;
    case MessageType::TimeoutNow:
      break;
  }
  return s;
}

}  // namespace rlr::core
