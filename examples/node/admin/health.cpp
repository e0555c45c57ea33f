#include "health.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace rlr::admin {

std::string probe_durable_write(const std::string& dir) {
  const std::string path = dir + "/.rlr-health-probe";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("cannot create {}: {}", path, std::strerror(errno));
  const char data[512] = "rlr health probe";
  std::string error;
  if (::write(fd, data, sizeof data) != static_cast<ssize_t>(sizeof data)) {
    error = fmt::format("cannot write {}: {}", path, std::strerror(errno));
  } else if (::fdatasync(fd) != 0) {
    error = fmt::format("cannot sync {}: {}", path, std::strerror(errno));
  }
  ::close(fd);
  ::unlink(path.c_str());
  return error;
}

bool raft_thread_answered(const NodeMetrics& m) { return m.value("rlr_term").has_value(); }

std::string DiskProbe::check(std::chrono::steady_clock::time_point now) {
  if (dir_.empty()) return "";
  if (!ran_ || now - last_ >= std::chrono::seconds(1)) {
    result_ = probe_durable_write(dir_);
    last_ = now;
    ran_ = true;
  }
  return result_;
}

Verdict check_health(const NodeMetrics& m, DiskProbe& disk) {
  Verdict v{true, ""};
  if (!raft_thread_answered(m)) {
    v.ok = false;
    v.detail += "failed: the node's raft thread did not answer within 2 s (stuck, or stopping)\n";
  } else if (m.value("rlr_storage_failed").value_or(0) != 0) {
    v.ok = false;
    v.detail += "failed: the storage refused a write; the node stopped taking part\n";
  } else {
    v.detail += "ok: no storage error\n";
  }
  if (disk.enabled()) {
    if (std::string e = disk.check(std::chrono::steady_clock::now()); !e.empty()) {
      v.ok = false;
      v.detail += "failed: data directory not writable: " + e + "\n";
    } else {
      v.detail += "ok: data directory takes a durable write\n";
    }
  }
  return v;
}

Verdict check_ready(const Node& node, const NodeMetrics& m, const Verdict& health, std::uint64_t max_lag) {
  Verdict v{health.ok, health.ok ? "ok: healthy\n" : "failed: not healthy\n"};
  const NodeId leader = node.leader();
  if (leader == kNoNode) {
    v.ok = false;
    v.detail += "failed: no leader known\n";
    return v;
  }
  if (node.role() == Role::Leader) {
    v.detail += "ok: this node leads\n";
    return v;
  }
  const double leader_commit = m.value("rlr_leader_commit_index").value_or(0);
  const double applied = m.value("rlr_applied_index").value_or(0);
  const double lag = leader_commit > applied ? leader_commit - applied : 0;
  if (lag > static_cast<double>(max_lag)) {
    v.ok = false;
    v.detail += fmt::format("failed: {} entries behind leader {} (at most {})\n", lag, leader.value(), max_lag);
  } else {
    v.detail += fmt::format("ok: {} entries behind leader {} (at most {})\n", lag, leader.value(), max_lag);
  }
  return v;
}

}  // namespace rlr::admin
