#include "node/trace.h"

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>
#include <fstream>

#include <fmt/format.h>

namespace rlr::node {

Tracer::Tracer(std::size_t capacity) : ring_(capacity) {}

std::int64_t Tracer::now() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

TraceRecord* Tracer::at(std::uint64_t index) {
  TraceRecord& r = ring_[index % ring_.size()];
  if (r.index > index) return nullptr;  // the slot holds a later entry: keep it
  if (r.index != index) r = TraceRecord{index};
  return &r;
}

namespace {

/// The first index of [from, to] a ring of `size` slots can hold a record of.
std::uint64_t ring_start(std::uint64_t from, std::uint64_t to, std::size_t size) {
  return std::max(from, to >= size ? to - size + 1 : 1);
}

}  // namespace

TraceRecord* Tracer::find(std::uint64_t index) {
  TraceRecord& r = ring_[index % ring_.size()];
  return r.index == index ? &r : nullptr;
}

void Tracer::appended(LogIndex first, Term term, std::span<const std::int64_t> received) {
  const std::int64_t t = now();
  std::lock_guard lock(mu_);
  // A new leader's entries: whatever was recorded at these indexes (another term's
  // entries, or this node's view as a follower) starts over.
  for (std::size_t k = received.size() > ring_.size() ? received.size() - ring_.size() : 0; k < received.size();
       ++k) {
    TraceRecord& r = ring_[(first.value() + k) % ring_.size()];
    r = TraceRecord{first.value() + k, term.value(), received[k], t};
  }
  if (acked_upto_ >= first.value()) acked_upto_ = first.value() - 1;
}

void Tracer::stamp_first(LogIndex from, LogIndex to, std::int64_t TraceRecord::*field, bool create) {
  const std::int64_t t = now();
  std::lock_guard lock(mu_);
  for (std::uint64_t i = ring_start(from.value(), to.value(), ring_.size()); i <= to.value(); ++i) {
    TraceRecord* r = create ? at(i) : find(i);
    if (r != nullptr && r->*field == 0) r->*field = t;
  }
}

// A record is stamped sent only if it exists (appended here as leader, or seen here
// before as a follower); a retransmission finds the first stamp.
void Tracer::sent(LogIndex from, LogIndex to) { stamp_first(from, to, &TraceRecord::sent, false); }

void Tracer::arrived(LogIndex from, LogIndex to) { stamp_first(from, to, &TraceRecord::arrived, true); }

void Tracer::synced(LogIndex from, LogIndex to) { stamp_first(from, to, &TraceRecord::synced, true); }

void Tracer::acked(LogIndex match, NodeId peer) {
  const std::int64_t t = now();
  std::lock_guard lock(mu_);
  if (match.value() <= acked_upto_) return;
  // Only the ring's span can hold records (a follower far behind acknowledges far more).
  for (std::uint64_t i = ring_start(acked_upto_ + 1, match.value(), ring_.size()); i <= match.value(); ++i) {
    if (TraceRecord* r = find(i); r != nullptr && r->appended != 0 && r->acked == 0) {
      r->acked = t;
      r->acked_by = peer.value();
    }
  }
  acked_upto_ = match.value();
}

void Tracer::committed(LogIndex from, LogIndex to) {
  const std::int64_t t = now();
  std::lock_guard lock(mu_);
  for (std::uint64_t i = ring_start(from.value(), to.value(), ring_.size()); i <= to.value(); ++i) {
    if (TraceRecord* r = at(i)) r->committed = t;
  }
}

void Tracer::replied(LogIndex index) {
  const std::int64_t t = now();
  std::lock_guard lock(mu_);
  if (TraceRecord* r = find(index.value()); r != nullptr && r->replied == 0) r->replied = t;
}

std::vector<TraceRecord> Tracer::records() const {
  std::vector<TraceRecord> out;
  {
    std::lock_guard lock(mu_);
    for (const TraceRecord& r : ring_) {
      if (r.index != 0) out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end(), [](const TraceRecord& a, const TraceRecord& b) { return a.index < b.index; });
  return out;
}

Status Tracer::write(const std::string& path) const {
  const std::vector<TraceRecord> recs = records();
  std::ofstream out(path, std::ios::trunc);
  if (!out) return {ErrorCode::IoError, fmt::format("cannot create trace file {}: {}", path, std::strerror(errno))};
  out << kTraceHeader << '\n';
  std::string line;
  for (const TraceRecord& r : recs) {
    line.clear();
    fmt::format_to(std::back_inserter(line), "{} {} {} {} {} {} {} {} {} {} {}\n", r.index, r.term, r.received,
                   r.appended, r.sent, r.arrived, r.synced, r.acked, r.acked_by, r.committed, r.replied);
    out << line;
  }
  out.flush();
  if (!out) return {ErrorCode::IoError, fmt::format("cannot write trace file {}", path)};
  return Status::ok();
}

namespace {

bool parse_field(std::string_view& rest, auto& v) {
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  const auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), v);
  if (ec != std::errc{} || end == rest.data()) return false;
  rest.remove_prefix(static_cast<std::size_t>(end - rest.data()));
  return true;
}

}  // namespace

Result<std::vector<TraceRecord>> Tracer::read(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status{ErrorCode::IoError, fmt::format("cannot open trace file {}: {}", path, std::strerror(errno))};
  std::vector<TraceRecord> out;
  std::string line;
  std::size_t number = 0;
  while (std::getline(in, line)) {
    ++number;
    if (number == 1) {
      if (line != kTraceHeader) {
        return Status{ErrorCode::Corruption, fmt::format("{}: not an rlr trace (first line: {:?})", path, line)};
      }
      continue;
    }
    std::string_view rest = line;
    TraceRecord r;
    const bool ok = parse_field(rest, r.index) && parse_field(rest, r.term) && parse_field(rest, r.received) &&
                    parse_field(rest, r.appended) && parse_field(rest, r.sent) && parse_field(rest, r.arrived) &&
                    parse_field(rest, r.synced) && parse_field(rest, r.acked) && parse_field(rest, r.acked_by) &&
                    parse_field(rest, r.committed) && parse_field(rest, r.replied) && rest.empty();
    if (!ok) return Status{ErrorCode::Corruption, fmt::format("{}:{}: malformed trace record", path, number)};
    out.push_back(r);
  }
  if (number == 0) return Status{ErrorCode::Corruption, fmt::format("{}: empty trace file", path)};
  return out;
}

}  // namespace rlr::node
