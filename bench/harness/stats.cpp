#include "stats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <sstream>

#include <fmt/format.h>

namespace rlrbench {

std::int64_t percentile_sorted(const std::vector<std::int64_t>& sorted, double q) {
  if (sorted.empty()) return 0;
  // Nearest rank: the smallest sample with at least q of the samples at or below it.
  const double rank = std::ceil(q * static_cast<double>(sorted.size()));
  std::size_t i = rank < 1 ? 0 : static_cast<std::size_t>(rank) - 1;
  i = std::min(i, sorted.size() - 1);
  return sorted[i];
}

Percentiles summarize(std::vector<std::int64_t>& samples_ns) {
  Percentiles p;
  p.count = samples_ns.size();
  if (samples_ns.empty()) return p;
  std::sort(samples_ns.begin(), samples_ns.end());
  const auto us = [](std::int64_t ns) { return static_cast<double>(ns) / 1000.0; };
  const long double sum =
      std::accumulate(samples_ns.begin(), samples_ns.end(), static_cast<long double>(0));
  p.mean_us = static_cast<double>(sum / static_cast<long double>(samples_ns.size())) / 1000.0;
  p.p50_us = us(percentile_sorted(samples_ns, 0.50));
  p.p90_us = us(percentile_sorted(samples_ns, 0.90));
  p.p99_us = us(percentile_sorted(samples_ns, 0.99));
  p.p999_us = us(percentile_sorted(samples_ns, 0.999));
  p.max_us = us(samples_ns.back());
  return p;
}

double self_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  const auto sec = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  return sec(ru.ru_utime) + sec(ru.ru_stime);
}

double proc_cpu_seconds(pid_t pid) {
  std::ifstream in(fmt::format("/proc/{}/stat", pid));
  std::string line;
  if (!std::getline(in, line)) return -1;
  // Fields after the command name (which may contain spaces): state is field 3,
  // utime 14 and stime 15.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream rest(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0;
  unsigned long long stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  const long hz = sysconf(_SC_CLK_TCK);
  return static_cast<double>(utime + stime) / static_cast<double>(hz > 0 ? hz : 100);
}

double peak_rss_mib(pid_t pid) {
  std::ifstream in(pid == 0 ? std::string("/proc/self/status") : fmt::format("/proc/{}/status", pid));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) {
      std::istringstream s(line.substr(6));
      double kib = 0;
      s >> kib;
      return kib / 1024.0;
    }
  }
  return -1;
}

void reset_peak_rss() {
  if (std::FILE* f = std::fopen("/proc/self/clear_refs", "w")) {
    std::fputs("5", f);
    std::fclose(f);
  }
}

// ---------------------------------------------------------------------------------
// Json
// ---------------------------------------------------------------------------------

Json Json::object() {
  Json j;
  j.kind_ = Kind::Object;
  return j;
}

Json Json::array() {
  Json j;
  j.kind_ = Kind::Array;
  return j;
}

Json Json::number(double v) {
  Json j;
  j.raw_ = std::isfinite(v) ? fmt::format("{:.6g}", v) : "null";
  // Large counts print in full rather than in exponent form.
  if (std::isfinite(v) && std::fabs(v) >= 1e6 && std::fabs(v) < 1e15) j.raw_ = fmt::format("{:.1f}", v);
  return j;
}

Json Json::integer(std::int64_t v) {
  Json j;
  j.raw_ = fmt::format("{}", v);
  return j;
}

Json Json::boolean(bool v) {
  Json j;
  j.raw_ = v ? "true" : "false";
  return j;
}

Json Json::string(const std::string& v) {
  Json j;
  std::string out = "\"";
  for (const char c : v) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(static_cast<unsigned char>(c)));
        } else {
          out += c;
        }
    }
  }
  out += '"';
  j.raw_ = std::move(out);
  return j;
}

Json& Json::set(const std::string& key, Json value) {
  items_.emplace_back(key, std::move(value));
  return *this;
}

Json& Json::push(Json value) {
  items_.emplace_back(std::string{}, std::move(value));
  return *this;
}

std::string Json::dump(int indent) const {
  if (kind_ == Kind::Raw) return raw_;
  const bool obj = kind_ == Kind::Object;
  if (items_.empty()) return obj ? "{}" : "[]";
  const std::string pad(static_cast<std::size_t>(indent + 2), ' ');
  std::string out = obj ? "{\n" : "[\n";
  for (std::size_t i = 0; i < items_.size(); ++i) {
    out += pad;
    if (obj) out += Json::string(items_[i].first).raw_ + ": ";
    out += items_[i].second.dump(indent + 2);
    out += i + 1 < items_.size() ? ",\n" : "\n";
  }
  out += std::string(static_cast<std::size_t>(indent), ' ') + (obj ? "}" : "]");
  return out;
}

Json to_json(const Percentiles& p) {
  Json j = Json::object();
  j.set("count", Json::integer(static_cast<std::int64_t>(p.count)));
  j.set("mean", Json::number(p.mean_us));
  j.set("p50", Json::number(p.p50_us));
  j.set("p90", Json::number(p.p90_us));
  j.set("p99", Json::number(p.p99_us));
  j.set("p99.9", Json::number(p.p999_us));
  j.set("max", Json::number(p.max_us));
  return j;
}

}  // namespace rlrbench
