// me-driver: proposes a seeded random stream of orders and cancels to a cluster running
// the matching engine, through rlr::Client (which finds the leader and follows it across
// failovers), and prints where each command was sequenced.
//
//   me-driver --bootstrap 127.0.0.1:7001,127.0.0.1:7002 --cluster demo --orders 20 --rate 10
//
// Exit status: 0 when every command was sequenced, 1 when some failed, 2 for bad usage.
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <fmt/format.h>

#include "matching_engine/order_book.h"
#include "rlr/client.h"

namespace {

constexpr std::string_view kUsage = R"(usage: me-driver --bootstrap HOST:PORT[,HOST:PORT...] [options]

Proposes a seeded random stream of limit orders and cancels to a cluster running the
matching engine and prints the log index each command was sequenced at.

  --bootstrap LIST    nodes to contact (comma separated host:port)        (required)
  --cluster ID        cluster id                                 (default: rlr-demo)
  --orders N          commands to propose                              (default: 20)
  --rate R            commands per second, 0 = as fast as possible     (default: 10)
  --seed S            random seed                                       (default: 1)
  --first-id ID       id of the first order (use distinct ranges per run) (default: 1)
  --symbols LIST      comma separated symbols                    (default: XYZ,ABC)
  --cancel-pct P      share of commands that cancel an earlier order     (default: 20)
  --timeout-ms MS     give up on one command after this long         (default: 30000)
  --auth-token T      shared secret of the cluster
  --duration-s S      stop after S seconds even if --orders are left; with it,
                      --orders 0 means no limit                         (default: off)
  --history FILE      append one line per command, for history checkers:
                      <invoked-ns> <completed-ns> ok|unknown <index> <term> <command-hex>
                      (CLOCK_MONOTONIC nanoseconds; index and term 0 when unknown;
                      any error leaves the outcome unknown: a retried command may still
                      commit)
  --quiet             print only the summary
)";

struct Options {
  std::vector<rlr::Address> bootstrap;
  std::string cluster = "rlr-demo";
  std::uint64_t orders = 20;
  std::uint64_t rate = 10;
  std::uint64_t seed = 1;
  std::uint64_t first_id = 1;
  std::vector<std::string> symbols{"XYZ", "ABC"};
  std::uint64_t cancel_pct = 20;
  std::uint64_t timeout_ms = 30000;
  std::string auth_token;
  std::uint64_t duration_s = 0;
  std::string history;
  bool quiet = false;
};

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t comma = s.find(',', start);
    const std::size_t end = comma == std::string_view::npos ? s.size() : comma;
    if (end > start) out.emplace_back(s.substr(start, end - start));
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

bool parse_u64(std::string_view s, std::uint64_t& v) {
  if (s.empty() || s.size() > 19) return false;
  std::uint64_t r = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    r = r * 10 + static_cast<std::uint64_t>(c - '0');
  }
  v = r;
  return true;
}

/// Parses argv; returns an error message ("" when fine).
std::string parse_args(int argc, char** argv, Options& o) {
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    if (a == "--quiet") {
      o.quiet = true;
      continue;
    }
    if (a == "--help" || a == "-h") return "help";
    if (i + 1 >= argc) return fmt::format("{}: missing value", a);
    const std::string_view v = argv[++i];
    bool ok = true;
    if (a == "--bootstrap") {
      auto parsed = rlr::Address::parse_list(v);
      if (!parsed) return fmt::format("--bootstrap: {}", parsed.status().message());
      o.bootstrap = std::move(parsed).value();
    } else if (a == "--cluster") {
      o.cluster = std::string(v);
    } else if (a == "--orders") {
      ok = parse_u64(v, o.orders);
    } else if (a == "--rate") {
      ok = parse_u64(v, o.rate);
    } else if (a == "--seed") {
      ok = parse_u64(v, o.seed);
    } else if (a == "--first-id") {
      ok = parse_u64(v, o.first_id) && o.first_id > 0;
    } else if (a == "--symbols") {
      o.symbols = split_list(v);
      ok = !o.symbols.empty();
      for (const auto& sym : o.symbols) {
        ok = ok && sym.size() <= rlr::me::kSymbolBytesMax &&
             sym.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789") == std::string::npos;
      }
    } else if (a == "--cancel-pct") {
      ok = parse_u64(v, o.cancel_pct) && o.cancel_pct <= 100;
    } else if (a == "--timeout-ms") {
      ok = parse_u64(v, o.timeout_ms) && o.timeout_ms > 0;
    } else if (a == "--auth-token") {
      o.auth_token = std::string(v);
    } else if (a == "--duration-s") {
      ok = parse_u64(v, o.duration_s);
    } else if (a == "--history") {
      o.history = std::string(v);
    } else {
      return fmt::format("unknown option {}", a);
    }
    if (!ok) return fmt::format("{} {}: bad value", a, v);
  }
  if (o.bootstrap.empty()) return "--bootstrap is required";
  return {};
}

/// The next command of the stream. Prices wander around 10000 ticks so that buys and
/// sells cross often; cancels pick an earlier order of this run (which may be gone).
rlr::me::Command next_command(std::mt19937_64& rng, const Options& o, std::uint64_t& next_id,
                              std::vector<std::uint64_t>& sent) {
  if (!sent.empty() && rng() % 100 < o.cancel_pct) {
    return rlr::me::CancelOrder{sent[rng() % sent.size()]};
  }
  rlr::me::NewOrder n;
  n.id = next_id++;
  n.side = rng() % 2 == 0 ? rlr::me::Side::Buy : rlr::me::Side::Sell;
  n.symbol = o.symbols[rng() % o.symbols.size()];
  n.price_ticks = 9990 + rng() % 21;
  n.qty = 1 + rng() % 100;
  sent.push_back(n.id);
  return n;
}

std::string describe(const rlr::me::Command& c) {
  if (const auto* n = std::get_if<rlr::me::NewOrder>(&c)) {
    return fmt::format("NEW order {:>6} {:<4} {:>3} {:<4} @ {} ticks", n->id, to_string(n->side),
                       n->qty, n->symbol, n->price_ticks);
  }
  return fmt::format("CANCEL order {:>6}", std::get<rlr::me::CancelOrder>(c).id);
}

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000ULL + static_cast<std::uint64_t>(ts.tv_nsec);
}

std::string to_hex(std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(s.size() * 2);
  for (const char c : s) {
    out += kHex[static_cast<unsigned char>(c) >> 4];
    out += kHex[static_cast<unsigned char>(c) & 0xf];
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  if (std::string err = parse_args(argc, argv, o); !err.empty()) {
    if (err == "help") {
      std::fputs(kUsage.data(), stdout);
      return 0;
    }
    std::fprintf(stderr, "me-driver: %s\n\n%s", err.c_str(), kUsage.data());
    return 2;
  }

  rlr::ClientOptions co;
  co.cluster_id = o.cluster;
  co.bootstrap = o.bootstrap;
  co.auth_token = o.auth_token;
  co.total_timeout = std::chrono::milliseconds(o.timeout_ms);
  co.request_timeout = std::chrono::milliseconds(std::min<std::uint64_t>(o.timeout_ms, 2000));
  auto client = rlr::Client::connect(co);
  if (!client) {
    std::fprintf(stderr, "me-driver: cannot reach the cluster: %s\n",
                 client.status().to_string().c_str());
    return 1;
  }

  std::FILE* history = nullptr;
  if (!o.history.empty()) {
    history = std::fopen(o.history.c_str(), "a");
    if (history == nullptr) {
      std::fprintf(stderr, "me-driver: cannot open --history %s\n", o.history.c_str());
      return 2;
    }
  }
  const bool unlimited = o.duration_s > 0 && o.orders == 0;
  std::uint64_t proposed = 0;

  std::mt19937_64 rng(o.seed);
  std::uint64_t next_id = o.first_id;
  std::vector<std::uint64_t> sent;
  std::uint64_t failed = 0;
  std::uint64_t first_index = 0;
  std::uint64_t last_index = 0;
  std::uint64_t last_term = 0;
  const auto start = std::chrono::steady_clock::now();
  for (std::uint64_t i = 0; unlimited || i < o.orders; ++i) {
    if (o.rate > 0) {
      std::this_thread::sleep_until(start + std::chrono::microseconds(i * 1'000'000 / o.rate));
    }
    if (o.duration_s > 0 && std::chrono::steady_clock::now() - start >= std::chrono::seconds(o.duration_s)) break;
    ++proposed;
    const rlr::me::Command cmd = next_command(rng, o, next_id, sent);
    const std::string line = rlr::me::encode(cmd);
    const auto t0 = std::chrono::steady_clock::now();
    const std::uint64_t invoked_ns = monotonic_ns();
    auto r = client.value()->propose_sync(rlr::Bytes::copy_of(line));
    if (history != nullptr) {
      std::fprintf(history, "%llu %llu %s %llu %llu %s\n", static_cast<unsigned long long>(invoked_ns),
                   static_cast<unsigned long long>(monotonic_ns()), r ? "ok" : "unknown",
                   static_cast<unsigned long long>(r ? r.value().index.value() : 0),
                   static_cast<unsigned long long>(r ? r.value().term.value() : 0), to_hex(line).c_str());
      std::fflush(history);
    }
    const auto took_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - t0)
                             .count();
    if (!r) {
      ++failed;
      std::printf("  %-48s  FAILED: %s\n", describe(cmd).c_str(), r.status().to_string().c_str());
      std::fflush(stdout);
      continue;
    }
    const std::uint64_t index = r.value().index.value();
    if (first_index == 0) first_index = index;
    last_index = index;
    const std::uint64_t term = r.value().term.value();
    if (!o.quiet) {
      std::string note;
      if (last_term != 0 && term != last_term) {
        note = fmt::format("   <- term {}: a new leader (this command took {} ms)", term, took_ms);
      } else if (took_ms >= 250) {
        note = fmt::format("   (took {} ms)", took_ms);
      }
      std::printf("  %-48s  -> sequenced at index %5llu, term %llu%s\n", describe(cmd).c_str(),
                  static_cast<unsigned long long>(index),
                  static_cast<unsigned long long>(r.value().term.value()), note.c_str());
      std::fflush(stdout);
    }
    last_term = term;
  }
  if (history != nullptr) std::fclose(history);
  std::printf("me-driver: %llu of %llu commands sequenced (indexes %llu..%llu), %llu failed\n",
              static_cast<unsigned long long>(proposed - failed),
              static_cast<unsigned long long>(proposed),
              static_cast<unsigned long long>(first_index),
              static_cast<unsigned long long>(last_index),
              static_cast<unsigned long long>(failed));
  return failed == 0 ? 0 : 1;
}
