#include "crash_workload.h"

namespace rlr::storage::test {
namespace {

constexpr std::size_t kHeader = 16;  // [batch_end:8][index:8] in every payload

std::size_t body_size(std::uint64_t index) { return (index * 37) % 301; }

void put_be(std::vector<std::uint8_t>& out, std::uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(static_cast<std::uint8_t>(v >> shift));
}

std::uint64_t get_be(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
  return v;
}

Bytes workload_payload(std::uint64_t index, std::uint64_t batch_end) {
  std::vector<std::uint8_t> b;
  put_be(b, batch_end);
  put_be(b, index);
  const Bytes body = payload_for(index, body_size(index));
  b.insert(b.end(), body.data(), body.data() + body.size());
  return Bytes(std::move(b));
}

}  // namespace

NodeId vote_for(std::uint64_t term) { return term == 0 ? kNoNode : NodeId{1 + term % 3}; }

std::vector<Entry> workload_batch(std::uint64_t last, std::uint64_t n, std::uint64_t term) {
  std::vector<Entry> entries;
  entries.reserve(n);
  for (std::uint64_t i = last + 1; i <= last + n; ++i) {
    Entry e;
    e.index = LogIndex{i};
    e.term = Term{term};
    e.payload = workload_payload(i, last + n);
    entries.push_back(std::move(e));
  }
  return entries;
}

HardState workload_hard_state(std::uint64_t term, std::uint64_t commit) {
  return HardState{Term{term}, vote_for(term), LogIndex{commit}};
}

std::string check_workload_entries(const std::vector<Entry>& entries, Term snapshot_term,
                                   Term hs_term, std::uint64_t last) {
  Term prev = snapshot_term;
  for (const Entry& e : entries) {
    const std::uint64_t i = e.index.value();
    const std::string at = "entry " + std::to_string(i) + ": ";
    if (e.payload.size() != kHeader + body_size(i)) return at + "payload size";
    const std::uint64_t batch_end = get_be(e.payload.data());
    if (get_be(e.payload.data() + 8) != i) return at + "payload names another index";
    if (e.payload != workload_payload(i, batch_end)) return at + "payload damaged";
    if (batch_end < i) return at + "batch ends before the entry";
    if (batch_end > last) {
      return at + "part of a torn batch ending at " + std::to_string(batch_end);
    }
    if (e.term < prev) return at + "term went down";
    if (e.term > hs_term) return at + "term ahead of the stored hard state";
    prev = e.term;
  }
  if (!entries.empty() && get_be(entries.back().payload.data()) != last) {
    return "the log ends inside a batch";
  }
  return "";
}

RocksDbOptions workload_options(const std::string& path) {
  RocksDbOptions o;
  o.path = path;
  o.identity = Identity{"crash", NodeId{1}};
  o.initial_config = config_of({1, 2, 3});
  o.sync = true;
  return o;
}

}  // namespace rlr::storage::test
