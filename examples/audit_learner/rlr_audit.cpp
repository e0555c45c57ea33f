// rlr-audit: reads what the audit learner wrote.
//
//   rlr-audit check --report FILE [--through N] [--wait-s S]
//       Waits (up to S seconds, default 30) until the learner's verification report
//       covers log index N (default: any report), prints it, and exits 0 when the table
//       matches the log, 1 when it does not, 3 when the wait timed out.
//   rlr-audit summary --db FILE [--through N]
//       Prints the table's row count, digest and acknowledged index (read-only).
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include <fmt/format.h>

#include "audit_learner/audit.h"

namespace {

constexpr std::string_view kUsage =
    "usage: rlr-audit check --report FILE [--through N] [--wait-s S]\n"
    "       rlr-audit summary --db FILE [--through N]\n";

std::map<std::string, std::string> read_report(const std::string& path) {
  std::map<std::string, std::string> kv;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto eq = line.find('=');
    if (eq != std::string::npos) kv[line.substr(0, eq)] = line.substr(eq + 1);
  }
  return kv;
}

bool to_u64(const std::string& s, std::uint64_t& v) {
  if (s.empty() || s.size() > 19 || s.find_first_not_of("0123456789") != std::string::npos) return false;
  v = std::stoull(s);
  return true;
}

int check(const std::string& report, std::uint64_t through, std::uint64_t wait_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(wait_s);
  std::map<std::string, std::string> kv;
  while (true) {
    kv = read_report(report);
    std::uint64_t covered = 0;
    if (kv.count("status") != 0 && to_u64(kv["through"], covered) && covered >= through) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      std::printf("rlr-audit: no verification covering index %llu in %s after %llu s\n",
                  static_cast<unsigned long long>(through), report.c_str(),
                  static_cast<unsigned long long>(wait_s));
      return 3;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  const bool ok = kv["status"] == "ok";
  if (kv["status"] == "error") {
    std::printf("audit: verification could not run: %s\n", kv["detail"].c_str());
    return 1;
  }
  std::printf("audit: log entries 1..%s replayed into a fresh matching engine\n", kv["through"].c_str());
  std::printf("audit:   order events recomputed from the log: %6s  digest %s\n", kv["log_rows"].c_str(),
              kv["log_digest"].c_str());
  std::printf("audit:   rows in the learner's SQLite table:    %6s  digest %s\n", kv["db_rows"].c_str(),
              kv["db_digest"].c_str());
  if (ok) {
    std::printf("audit: OK: the table matches the log row for row\n");
  } else {
    std::printf("audit: MISMATCH: first difference: %s\n", kv["first_difference"].c_str());
  }
  return ok ? 0 : 1;
}

int summary(const std::string& path, std::uint64_t through) {
  auto db = rlr::audit::AuditDb::open(path, /*read_only=*/true);
  if (!db) {
    std::fprintf(stderr, "rlr-audit: %s\n", db.status().to_string().c_str());
    return 1;
  }
  auto acked = db.value()->acked_through();
  if (!acked) {
    std::fprintf(stderr, "rlr-audit: %s\n", acked.status().to_string().c_str());
    return 1;
  }
  const rlr::LogIndex upto = through > 0 ? rlr::LogIndex{through} : acked.value();
  auto s = db.value()->summarize(upto);
  if (!s) {
    std::fprintf(stderr, "rlr-audit: %s\n", s.status().to_string().c_str());
    return 1;
  }
  std::printf("acked_through=%llu\nthrough=%llu\nrows=%llu\ndigest=%016llx\n",
              static_cast<unsigned long long>(acked.value().value()),
              static_cast<unsigned long long>(upto.value()),
              static_cast<unsigned long long>(s.value().rows),
              static_cast<unsigned long long>(s.value().digest));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage.data(), stderr);
    return 2;
  }
  const std::string cmd = argv[1];
  std::string report;
  std::string db;
  std::uint64_t through = 0;
  std::uint64_t wait_s = 30;
  for (int i = 2; i < argc; ++i) {
    const std::string a = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "rlr-audit: %s: missing value\n%s", a.c_str(), kUsage.data());
      return 2;
    }
    const std::string v = argv[++i];
    bool ok = true;
    if (a == "--report") {
      report = v;
    } else if (a == "--db") {
      db = v;
    } else if (a == "--through") {
      ok = to_u64(v, through);
    } else if (a == "--wait-s") {
      ok = to_u64(v, wait_s);
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr, "rlr-audit: bad option %s %s\n%s", a.c_str(), v.c_str(), kUsage.data());
      return 2;
    }
  }
  if (cmd == "check" && !report.empty()) return check(report, through, wait_s);
  if (cmd == "summary" && !db.empty()) return summary(db, through);
  std::fputs(kUsage.data(), stderr);
  return 2;
}
