// me-replay: recomputes the matching engine's outputs from a log dump, with no cluster
// and no librlr runtime: the chaos suite's reference for what downstream must receive.
//
//   rlr-ctl --cluster C dump --data-dir DIR --id N > n1.dump
//   me-replay n1.dump [--through INDEX] > expected.outputs
//
// Every `normal` and `session` entry of the dump (see examples/ctl/dump.cpp) through
// INDEX is executed by a fresh OrderBook in index order; a session entry whose (client,
// sequence) appeared earlier in the dump is a retry that the cluster applies once, so it
// is skipped. (This is the session rule for clients whose sessions never expired, which
// holds for every run that stays within the node's session TTL.) Each output is printed
// as the matching engine's output_log writes it:
//
//   <index>.<position> <topic> <payload>
//
// Exit status: 0 on success, 1 for an unreadable or malformed dump, 2 for bad usage.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "matching_engine/order_book.h"

namespace {

bool parse_u64(const std::string& s, std::uint64_t& v) {
  if (s.empty() || s.size() > 20 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  v = std::stoull(s);
  return true;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

bool unhex(const std::string& h, std::string& out) {
  out.clear();
  if (h == "-") return true;
  if (h.size() % 2 != 0) return false;
  for (std::size_t i = 0; i < h.size(); i += 2) {
    const int hi = hex_digit(h[i]);
    const int lo = hex_digit(h[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out += static_cast<char>((hi << 4) | lo);
  }
  return true;
}

}  // namespace

int main(int argc, char** argv) {
  std::string path;
  std::uint64_t through = UINT64_MAX;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--through" && i + 1 < argc) {
      if (!parse_u64(argv[++i], through)) {
        std::fprintf(stderr, "me-replay: --through: not a number\n");
        return 2;
      }
    } else if (path.empty() && a.rfind("--", 0) != 0) {
      path = a;
    } else {
      std::fprintf(stderr, "usage: me-replay DUMP_FILE [--through INDEX]\n");
      return 2;
    }
  }
  if (path.empty()) {
    std::fprintf(stderr, "usage: me-replay DUMP_FILE [--through INDEX]\n");
    return 2;
  }
  std::ifstream in(path);
  if (!in) {
    std::fprintf(stderr, "me-replay: cannot read %s\n", path.c_str());
    return 1;
  }
  rlr::me::OrderBook book;
  std::set<std::pair<std::uint64_t, std::uint64_t>> sessions_seen;
  std::vector<rlr::me::Event> events;
  std::string line;
  std::string command;
  std::uint64_t line_no = 0;
  std::uint64_t previous = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.rfind("entry ", 0) != 0) continue;
    std::istringstream fields(line);
    std::string tag, index_s, term_s, kind, client_s, seq_s, payload;
    fields >> tag >> index_s >> term_s >> kind >> client_s >> seq_s >> payload;
    std::uint64_t index = 0, client = 0, seq = 0, term = 0;
    if (!parse_u64(index_s, index) || !parse_u64(term_s, term) || !parse_u64(client_s, client) ||
        !parse_u64(seq_s, seq) || payload.empty() || !unhex(payload, command) ||
        (previous != 0 && index != previous + 1)) {
      std::fprintf(stderr, "me-replay: %s:%llu: malformed or out-of-order entry line\n", path.c_str(),
                   static_cast<unsigned long long>(line_no));
      return 1;
    }
    previous = index;
    if (index > through) break;
    if (kind == "session") {
      if (!sessions_seen.insert({client, seq}).second) continue;
    } else if (kind != "normal") {
      continue;
    }
    events.clear();
    book.execute(command, events);
    for (std::size_t pos = 0; pos < events.size(); ++pos) {
      std::printf("%llu.%zu %.*s %s\n", static_cast<unsigned long long>(index), pos,
                  static_cast<int>(events[pos].topic.size()), events[pos].topic.data(),
                  events[pos].payload.c_str());
    }
  }
  return std::fflush(stdout) == 0 ? 0 : 1;
}
