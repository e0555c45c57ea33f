// rlr-ctl dump. Output (one record per line, fields separated by one space):
//
//   # rlr-dump v1 cluster=<id> node=<id>
//   hardstate term=<t> vote=<id> commit=<index>
//   snapshot index=<i> term=<t>
//   range first=<index> last=<index>
//   entry <index> <term> <kind> <client> <sequence> <payload-hex>
//   ...
//   end entries=<count>
//
// <kind> is rlr::to_string(EntryKind): normal, config, noop, session or watermark. For
// session entries <client> and <sequence> come from the payload's 16-byte header and
// <payload-hex> is the command without it; for every other kind both are 0 and
// <payload-hex> is the whole payload ("-" when empty). The store is opened as a node opens it, so a torn last write is cut
// exactly as the node's next start would cut it; the node must not be running (the store
// is locked by a running node and the open fails with IoError).
#include "ctl/dump.h"

#include <cstdio>
#include <string>

#include "core/entry_payloads.h"
#include "rlr/status.h"
#include "storage/rocksdb_storage.h"

namespace rlr::ctl {
namespace {

void print_entry(const Entry& e, std::string& line) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::span<const std::uint8_t> body = e.payload.span();
  std::uint64_t client = 0;
  std::uint64_t sequence = 0;
  if (e.kind == EntryKind::Session) {
    if (const auto c = core::decode_session_command(e.payload)) {
      client = c->client_id;
      sequence = c->sequence;
      body = c->command.span();
    }
  }
  line.clear();
  line += "entry " + std::to_string(e.index.value()) + ' ' + std::to_string(e.term.value()) + ' ' +
          std::string(to_string(e.kind)) + ' ' + std::to_string(client) + ' ' + std::to_string(sequence) + ' ';
  if (body.empty()) line += '-';
  for (std::uint8_t b : body) {
    line += kHex[b >> 4];
    line += kHex[b & 0xf];
  }
  line += '\n';
  std::fputs(line.c_str(), stdout);
}

}  // namespace

int dump_data_dir(const DumpOptions& o) {
  storage::RocksDbOptions ro;
  ro.path = o.data_dir;
  ro.identity = storage::Identity{o.cluster_id, NodeId{o.node_id}};
  ro.create_if_missing = false;
  ro.sync = false;
  auto opened = storage::RocksDbStorage::open(ro);
  if (!opened) {
    std::fprintf(stderr, "rlr-ctl: dump: cannot open '%s': %s\n", o.data_dir.c_str(),
                 opened.status().to_string().c_str());
    return 1;
  }
  const storage::RocksDbStorage& s = *opened.value();
  auto hs = s.hard_state();
  auto snap = s.snapshot();
  if (!hs || !snap) {
    std::fprintf(stderr, "rlr-ctl: dump: '%s': %s\n", o.data_dir.c_str(),
                 (!hs ? hs.status() : snap.status()).to_string().c_str());
    return 1;
  }
  const LogIndex first = s.first_index();
  const LogIndex last = s.last_index();
  std::printf("# rlr-dump v1 cluster=%s node=%llu\n", o.cluster_id.c_str(),
              static_cast<unsigned long long>(o.node_id));
  std::printf("hardstate term=%llu vote=%llu commit=%llu\n",
              static_cast<unsigned long long>(hs.value().term.value()),
              static_cast<unsigned long long>(hs.value().vote.value()),
              static_cast<unsigned long long>(hs.value().commit.value()));
  std::printf("snapshot index=%llu term=%llu\n", static_cast<unsigned long long>(snap.value().index.value()),
              static_cast<unsigned long long>(snap.value().term.value()));
  std::printf("range first=%llu last=%llu\n", static_cast<unsigned long long>(first.value()),
              static_cast<unsigned long long>(last.value()));
  std::uint64_t from = o.from == 0 ? first.value() : std::max(o.from, first.value());
  const std::uint64_t to = o.to == 0 ? last.value() : std::min(o.to, last.value());
  std::uint64_t printed = 0;
  std::string line;
  while (from <= to && from <= last.value() && last.value() > 0) {
    auto batch = s.read(LogIndex{from}, LogIndex{to}, 4096, 16U << 20);
    if (!batch) {
      std::fprintf(stderr, "rlr-ctl: dump: reading from index %llu: %s\n", static_cast<unsigned long long>(from),
                   batch.status().to_string().c_str());
      return 1;
    }
    if (batch.value().empty()) break;
    for (const Entry& e : batch.value()) {
      print_entry(e, line);
      ++printed;
    }
    from = batch.value().back().index.value() + 1;
  }
  std::printf("end entries=%llu\n", static_cast<unsigned long long>(printed));
  return std::fflush(stdout) == 0 ? 0 : 1;
}

}  // namespace rlr::ctl
