#include "trace.h"

#include <algorithm>
#include <array>
#include <optional>

#include <fmt/format.h>

#include "node/trace.h"

namespace rlrbench {
namespace {

using rlr::node::TraceRecord;

/// One node's records, sorted by index.
struct NodeTrace {
  std::uint64_t id = 0;
  std::vector<TraceRecord> records;

  [[nodiscard]] const TraceRecord* find(std::uint64_t index) const {
    auto it = std::lower_bound(records.begin(), records.end(), index,
                               [](const TraceRecord& r, std::uint64_t i) { return r.index < i; });
    return it != records.end() && it->index == index ? &*it : nullptr;
  }
};

/// A segment's name in the table, and in the slowest commits' lines.
struct SegmentName {
  const char* name;
  const char* brief;
};
// The chain: each segment ends at a stamp and runs from the latest earlier stamp present.
constexpr std::size_t kChain = 5;
constexpr std::array<SegmentName, kChain> kChainNames = {{
    {"to the leader (client queue and thread, TCP, decode)", "to leader"},
    {"to the raft thread (hand-off, batching)", "to raft thread"},
    {"to commit (see the branches below)", "to commit"},
    {"to the reply (completion hand-off to the connection)", "to reply"},
    {"to the client's callback (TCP back, client thread)", "to client"},
}};
// The commit wait's branches.
constexpr std::size_t kBranch = 6;
constexpr std::array<SegmentName, kBranch> kBranchNames = {{
    {"  leader's own write (appended -> synced)", "leader write"},
    {"  appends leave (appended -> sent)", "sent"},
    {"  to the follower (sent -> arrived)", "to follower"},
    {"  follower's write (arrived -> synced)", "follower write"},
    {"  ack back (follower synced -> leader stepped it)", "ack back"},
    {"  later branch -> committed", "then commit"},
}};

/// One joined commit: its latency and every segment it has (nullopt: a stamp missing).
struct Joined {
  std::uint64_t index = 0;
  std::int64_t total = 0;
  std::array<std::optional<std::int64_t>, kChain> chain;
  std::array<std::optional<std::int64_t>, kBranch> branch;
  std::optional<bool> leader_write_last;  ///< unknown without the follower's stamps
};

std::optional<std::int64_t> span(std::int64_t from, std::int64_t to) {
  if (from == 0 || to == 0) return std::nullopt;
  return to - from;
}

Joined join(const OpTrace& op, const TraceRecord& l, const TraceRecord* f) {
  Joined j;
  j.index = op.index;
  j.total = op.acked - op.proposed;
  const std::array<std::int64_t, kChain + 1> stamps = {op.proposed, l.received, l.appended,
                                                       l.committed, l.replied, op.acked};
  std::int64_t prev = stamps[0];
  for (std::size_t k = 1; k < stamps.size(); ++k) {
    if (stamps[k] == 0) continue;
    j.chain[k - 1] = stamps[k] - prev;
    prev = stamps[k];
  }
  j.branch[0] = span(l.appended, l.synced);
  j.branch[1] = span(l.appended, l.sent);
  if (f != nullptr) {
    j.branch[2] = span(l.sent, f->arrived);
    j.branch[3] = span(f->arrived, f->synced);
    j.branch[4] = span(f->synced, l.acked);
  }
  // A leader with a storage thread may commit on two followers' acknowledgements before
  // its own write ends (5 nodes: on more than the first one): then neither branch below
  // is what the commit waited for, and they are left out.
  const bool both_waited = l.synced != 0 && l.acked != 0 && l.committed >= std::max(l.synced, l.acked);
  if (both_waited) j.branch[5] = span(std::max(l.synced, l.acked), l.committed);
  // Which of the two writes ended last: the one the commit waited for. (Not the ack's
  // stamp: a leader that writes on its raft thread steps acknowledgements only after its
  // own write returns.)
  if (both_waited && f != nullptr && f->synced != 0) j.leader_write_last = l.synced >= f->synced;
  return j;
}

std::string us(double v) {
  if (v >= 10'000) return fmt::format("{:.1f} ms", v / 1000);
  if (v >= 1000) return fmt::format("{:.2f} ms", v / 1000);
  return fmt::format("{:.0f} us", v);
}

double to_us(std::int64_t ns) { return static_cast<double>(ns) / 1000.0; }

SegmentStats stats_of(const std::string& name, bool chain, const std::vector<Joined>& all, std::size_t tail,
                      auto pick) {
  SegmentStats s;
  s.name = name;
  s.chain = chain;
  std::vector<std::int64_t> v;
  for (const Joined& j : all) {
    if (auto x = pick(j)) v.push_back(*x);
  }
  s.count = v.size();
  std::sort(v.begin(), v.end());
  s.p50_us = to_us(percentile_sorted(v, 0.50));
  s.p99_us = to_us(percentile_sorted(v, 0.99));
  // `all` is sorted by latency: the tail is its last `tail` commits.
  double sum = 0;
  std::size_t n = 0;
  for (std::size_t k = all.size() - tail; k < all.size(); ++k) {
    if (auto x = pick(all[k])) {
      sum += to_us(*x);
      ++n;
    }
  }
  s.tail_mean_us = n > 0 ? sum / static_cast<double>(n) : 0;
  return s;
}

std::string render(const Joined& j) {
  std::string s = fmt::format("index {}: {} =", j.index, us(to_us(j.total)));
  const char* sep = " ";
  for (std::size_t k = 0; k < kChain; ++k) {
    if (!j.chain[k]) continue;
    s += fmt::format("{}{} {}", sep, kChainNames[k].brief, us(to_us(*j.chain[k])));
    sep = " + ";
  }
  s += " (commit wait:";
  for (std::size_t k = 0; k < kBranch; ++k) {
    if (j.branch[k]) s += fmt::format(" {} {}", kBranchNames[k].brief, us(to_us(*j.branch[k])));
  }
  s += ")";
  return s;
}

}  // namespace

rlr::Result<Breakdown> analyze_trace(const std::vector<std::string>& node_files, const std::vector<OpTrace>& ops) {
  std::vector<NodeTrace> nodes;
  for (std::size_t k = 0; k < node_files.size(); ++k) {
    auto recs = rlr::node::Tracer::read(node_files[k]);
    if (!recs) return recs.status();
    nodes.push_back(NodeTrace{k + 1, std::move(recs).value()});
  }
  Breakdown b;
  b.ops = ops.size();
  std::vector<Joined> joined;
  joined.reserve(ops.size());
  for (const OpTrace& op : ops) {
    const TraceRecord* leader = nullptr;
    for (const NodeTrace& n : nodes) {
      const TraceRecord* r = n.find(op.index);
      if (r != nullptr && r->appended != 0 && r->term == op.term) leader = r;
    }
    if (leader == nullptr) continue;
    const TraceRecord* follower = nullptr;
    for (const NodeTrace& n : nodes) {
      if (n.id == leader->acked_by) follower = n.find(op.index);
    }
    joined.push_back(join(op, *leader, follower));
  }
  b.traced = joined.size();
  if (joined.empty()) {
    return rlr::Status{rlr::ErrorCode::Unavailable,
                       fmt::format("none of the {} acknowledged proposals is in the nodes' traces", ops.size())};
  }
  std::sort(joined.begin(), joined.end(), [](const Joined& a, const Joined& c) { return a.total < c.total; });
  b.tail = std::max<std::size_t>(1, joined.size() / 100);
  b.tail_from_us = to_us(joined[joined.size() - b.tail].total);
  double sum = 0;
  for (std::size_t k = joined.size() - b.tail; k < joined.size(); ++k) {
    sum += to_us(joined[k].total);
    if (const auto& last = joined[k].leader_write_last) ++(*last ? b.tail_leader_write_last : b.tail_follower_write_last);
  }
  b.tail_mean_us = sum / static_cast<double>(b.tail);
  b.segments.push_back(stats_of("latency (propose call -> callback)", true, joined, b.tail,
                                [](const Joined& j) { return std::optional<std::int64_t>(j.total); }));
  for (std::size_t k = 0; k < kChain; ++k) {
    b.segments.push_back(stats_of(kChainNames[k].name, true, joined, b.tail, [k](const Joined& j) { return j.chain[k]; }));
  }
  for (std::size_t k = 0; k < kBranch; ++k) {
    b.segments.push_back(
        stats_of(kBranchNames[k].name, false, joined, b.tail, [k](const Joined& j) { return j.branch[k]; }));
  }
  for (std::size_t k = 0; k < std::min<std::size_t>(5, joined.size()); ++k) {
    b.slowest.push_back(render(joined[joined.size() - 1 - k]));
  }
  return b;
}

void print_breakdown(std::FILE* out, const Breakdown& b) {
  std::fprintf(out, "trace: where a commit's time goes (%zu of %zu acknowledged proposals traced; tail = the "
                    "slowest %zu, from %s, mean %s)\n",
               b.traced, b.ops, b.tail, us(b.tail_from_us).c_str(), us(b.tail_mean_us).c_str());
  std::fprintf(out, "  %-56s %10s %10s %10s\n", "segment", "p50", "p99", "tail mean");
  for (const SegmentStats& s : b.segments) {
    if (s.count == 0) continue;
    std::fprintf(out, "  %-56s %10s %10s %10s\n", s.name.c_str(), us(s.p50_us).c_str(), us(s.p99_us).c_str(),
                 us(s.tail_mean_us).c_str());
  }
  std::fprintf(out, "  the tail's commits whose last write to end was: the leader's %zu, the follower's %zu\n",
               b.tail_leader_write_last, b.tail_follower_write_last);
  std::fprintf(out, "  slowest:\n");
  for (const std::string& s : b.slowest) std::fprintf(out, "    %s\n", s.c_str());
}

Json to_json(const Breakdown& b) {
  Json j = Json::object();
  j.set("ops", Json::integer(static_cast<std::int64_t>(b.ops)));
  j.set("traced", Json::integer(static_cast<std::int64_t>(b.traced)));
  j.set("tail", Json::integer(static_cast<std::int64_t>(b.tail)));
  j.set("tail_from_us", Json::number(b.tail_from_us));
  j.set("tail_mean_us", Json::number(b.tail_mean_us));
  j.set("tail_leader_write_last", Json::integer(static_cast<std::int64_t>(b.tail_leader_write_last)));
  j.set("tail_follower_write_last", Json::integer(static_cast<std::int64_t>(b.tail_follower_write_last)));
  Json segs = Json::array();
  for (const SegmentStats& s : b.segments) {
    Json o = Json::object();
    o.set("name", Json::string(s.name));
    o.set("chain", Json::boolean(s.chain));
    o.set("count", Json::integer(static_cast<std::int64_t>(s.count)));
    o.set("p50_us", Json::number(s.p50_us));
    o.set("p99_us", Json::number(s.p99_us));
    o.set("tail_mean_us", Json::number(s.tail_mean_us));
    segs.push(std::move(o));
  }
  j.set("segments", std::move(segs));
  return j;
}

}  // namespace rlrbench
