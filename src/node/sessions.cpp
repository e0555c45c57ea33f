#include "node/sessions.h"

#include "util/big_endian.h"

namespace rlr::node {
namespace {

void put_u64(std::vector<std::uint8_t>& out, std::uint64_t v) {
  const std::size_t at = out.size();
  out.resize(at + 8);
  util::put_u64_be(out.data() + at, v);
}

bool take_u64(std::span<const std::uint8_t>& in, std::uint64_t& v) {
  if (in.size() < 8) return false;
  v = util::get_u64_be(in.data());
  in = in.subspan(8);
  return true;
}

constexpr std::uint8_t kTableVersion = 1;

}  // namespace

void SessionTable::expire(LogIndex now) {
  while (!by_use_.empty()) {
    const auto [used, id] = *by_use_.begin();
    const bool stale = used.value() + ttl_entries_ < now.value();
    const bool full = sessions_.size() >= max_sessions_;
    if (!stale && !full) break;
    by_use_.erase(by_use_.begin());
    sessions_.erase(id);
  }
}

bool SessionTable::is_duplicate(const Session& s, std::uint64_t sequence, Outcome& o) {
  // A sequence is a duplicate when its result is remembered, or when it is so far below
  // the client's highest that it can no longer be told apart (it is refused then).
  // Sequences may arrive out of order (pipelined clients): a lower, unseen sequence
  // within the window is new.
  if (auto r = s.recent.find(sequence); r != s.recent.end()) {
    o.duplicate = true;
    o.original_index = r->second.first;
    o.original_term = r->second.second;
    return true;
  }
  if (sequence + kWindow <= s.last_sequence) {
    o.duplicate = true;  // forgotten: original unknown
    return true;
  }
  return false;
}

SessionTable::Outcome SessionTable::apply(LogIndex index, Term term, std::uint64_t client_id,
                                          std::uint64_t sequence) {
  auto it = sessions_.find(client_id);
  Outcome o;
  if (it != sessions_.end() && is_duplicate(it->second, sequence, o)) return o;
  if (it == sessions_.end()) {
    expire(index);
    it = sessions_.emplace(client_id, Session{}).first;
  } else {
    by_use_.erase({it->second.last_used, client_id});
  }
  Session& s = it->second;
  s.last_sequence = std::max(s.last_sequence, sequence);
  s.last_used = index;
  s.recent.emplace(sequence, std::make_pair(index, term));
  // Keep the results of the newest kWindow sequences.
  while (!s.recent.empty() && s.recent.begin()->first + kWindow <= s.last_sequence) {
    s.recent.erase(s.recent.begin());
  }
  by_use_.emplace(index, client_id);
  return Outcome{};
}

std::optional<SessionTable::Outcome> SessionTable::find(std::uint64_t client_id,
                                                        std::uint64_t sequence) const {
  auto it = sessions_.find(client_id);
  if (it == sessions_.end()) return std::nullopt;
  Outcome o;
  if (!is_duplicate(it->second, sequence, o)) return std::nullopt;
  return o;
}

Bytes SessionTable::encode() const {
  std::vector<std::uint8_t> out;
  out.push_back(kTableVersion);
  put_u64(out, sessions_.size());
  for (const auto& [id, s] : sessions_) {
    put_u64(out, id);
    put_u64(out, s.last_sequence);
    put_u64(out, s.last_used.value());
    put_u64(out, s.recent.size());
    for (const auto& [seq, e] : s.recent) {
      put_u64(out, seq);
      put_u64(out, e.first.value());
      put_u64(out, e.second.value());
    }
  }
  return Bytes(std::move(out));
}

Status SessionTable::decode(std::span<const std::uint8_t> in) {
  const Status corrupt{ErrorCode::Corruption, "session table: malformed snapshot data"};
  if (in.empty()) {
    sessions_.clear();
    by_use_.clear();
    return Status::ok();
  }
  if (in.front() != kTableVersion) return corrupt;
  in = in.subspan(1);
  std::map<std::uint64_t, Session> sessions;
  std::set<std::pair<LogIndex, std::uint64_t>> by_use;
  std::uint64_t n = 0;
  if (!take_u64(in, n) || n > in.size() / 32) return corrupt;
  for (std::uint64_t i = 0; i < n; ++i) {
    std::uint64_t id = 0, last = 0, used = 0, m = 0;
    if (!take_u64(in, id) || !take_u64(in, last) || !take_u64(in, used) || !take_u64(in, m) ||
        m > kWindow) {
      return corrupt;
    }
    Session s;
    s.last_sequence = last;
    s.last_used = LogIndex{used};
    for (std::uint64_t k = 0; k < m; ++k) {
      std::uint64_t seq = 0, idx = 0, term = 0;
      if (!take_u64(in, seq) || !take_u64(in, idx) || !take_u64(in, term)) return corrupt;
      s.recent.emplace(seq, std::make_pair(LogIndex{idx}, Term{term}));
    }
    by_use.emplace(s.last_used, id);
    sessions.emplace(id, std::move(s));
  }
  if (!in.empty()) return corrupt;
  sessions_ = std::move(sessions);
  by_use_ = std::move(by_use);
  return Status::ok();
}

}  // namespace rlr::node
