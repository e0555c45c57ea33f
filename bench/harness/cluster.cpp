#include "cluster.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <thread>

#include <fmt/format.h>

#include "stats.h"

namespace rlrbench {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  std::uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    socklen_t len = sizeof a;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) port = ntohs(a.sin_port);
  }
  ::close(fd);
  return port;
}

// ---------------------------------------------------------------------------------
// InProcCluster
// ---------------------------------------------------------------------------------

std::string ClusterSpec::trace_file(std::uint64_t id) const { return fmt::format("{}/n{}.trace", trace_dir, id); }

rlr::NodeBuilder InProcCluster::builder(std::uint64_t id, std::uint16_t port) const {
  rlr::NodeBuilder b;
  b.cluster_id(spec_.cluster_id)
      .id(rlr::NodeId{id})
      .listen("127.0.0.1", port)
      .data_dir(fmt::format("{}/n{}", spec_.dir, id))
      .storage(spec_.storage)
      .sync(spec_.sync)
      .tick(std::chrono::milliseconds{spec_.tick_ms})
      .election_ticks(spec_.election_ticks)
      .heartbeat_ticks(spec_.heartbeat_ticks)
      .complete_on_raft_thread(spec_.complete_on_raft_thread)
      .persist_thread(spec_.persist_thread);
  if (spec_.compact_after_entries > 0) b.compact_after_entries(spec_.compact_after_entries);
  if (spec_.memory_log_entries) b.memory_log_entries(*spec_.memory_log_entries);
  if (spec_.memory_log_bytes) b.memory_log_bytes(*spec_.memory_log_bytes);
  if (!spec_.trace_dir.empty()) b.trace(spec_.trace_entries, spec_.trace_file(id));
  return b;
}

rlr::Status InProcCluster::start() {
  for (int i = 0; i < spec_.nodes; ++i) ports_.push_back(free_port());
  for (int i = 0; i < spec_.nodes; ++i) {
    const std::uint64_t id = static_cast<std::uint64_t>(i) + 1;
    auto b = builder(id, ports_[static_cast<std::size_t>(i)]);
    for (int j = 0; j < spec_.nodes; ++j) {
      b.member(rlr::NodeId{static_cast<std::uint64_t>(j) + 1}, "127.0.0.1", ports_[static_cast<std::size_t>(j)]);
    }
    std::error_code ec;
    fs::create_directories(b.options().data_dir, ec);
    auto n = b.build();
    if (!n) return n.status();
    nodes_.push_back(std::move(n).value());
  }
  return rlr::Status::ok();
}

rlr::Node* InProcCluster::wait_leader(std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    for (auto& n : nodes_) {
      if (n->role() != rlr::Role::Leader) continue;
      // Leadership is usable once an entry of its term commits.
      auto r = n->propose_sync(rlr::Bytes::copy_of("warm-up"), 2000ms);
      if (r) return n.get();
    }
    std::this_thread::sleep_for(10ms);
  }
  return nullptr;
}

rlr::Result<rlr::Node*> InProcCluster::start_joiner(rlr::MemberAddress& address) {
  const std::uint64_t id = nodes_.size() + 1;
  const std::uint16_t port = free_port();
  auto b = builder(id, port);
  std::error_code ec;
  fs::create_directories(b.options().data_dir, ec);
  auto n = b.build();
  if (!n) return n.status();
  nodes_.push_back(std::move(n).value());
  ports_.push_back(port);
  address = rlr::MemberAddress{rlr::NodeId{id}, {"127.0.0.1", port}};
  return nodes_.back().get();
}

void InProcCluster::stop() {
  for (auto& n : nodes_) n->stop();
  nodes_.clear();
}

// ---------------------------------------------------------------------------------
// ProcCluster
// ---------------------------------------------------------------------------------

rlr::Status ProcCluster::start() {
  if (spec_.node_binary.empty() || ::access(spec_.node_binary.c_str(), X_OK) != 0) {
    return rlr::Status{rlr::ErrorCode::NotFound,
                       fmt::format("rlr-node binary '{}' is not executable (see --node-binary)",
                                   spec_.node_binary)};
  }
  for (int i = 0; i < spec_.nodes; ++i) {
    procs_.push_back(Proc{static_cast<std::uint64_t>(i) + 1, free_port(), -1, false});
  }
  if (spec_.proxied_links) {
    proxies_ = std::make_unique<LinkProxies>();
    for (const auto& a : procs_) {
      for (const auto& b : procs_) {
        if (a.id == b.id) continue;
        const std::uint16_t port = proxies_->add(a.id, b.id, b.port);
        if (port == 0) return rlr::Status{rlr::ErrorCode::IoError, "cannot open a link proxy"};
        link_port_[{a.id, b.id}] = port;
      }
    }
  }
  for (auto& p : procs_) {
    if (rlr::Status s = spawn(p); !s) return s;
  }
  return rlr::Status::ok();
}

rlr::Status ProcCluster::spawn(Proc& p) {
  const std::string dir = fmt::format("{}/n{}", spec_.dir, p.id);
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::vector<std::string> args = {
      spec_.node_binary,
      "--cluster-id", spec_.cluster_id,
      "--id", std::to_string(p.id),
      "--listen", fmt::format("127.0.0.1:{}", p.port),
      "--data-dir", dir,
      "--storage", spec_.storage == rlr::StorageKind::Memory ? "memory" : "rocksdb",
      spec_.sync ? "--sync" : "--no-sync",
      "--tick-ms", std::to_string(spec_.tick_ms),
      "--election-ticks", std::to_string(spec_.election_ticks),
      "--heartbeat-ticks", std::to_string(spec_.heartbeat_ticks),
      "--log-level", spec_.node_log_level,
      "--app", "none",
      "--role", p.join ? "join" : "voter",
  };
  if (!spec_.trace_dir.empty()) {
    args.insert(args.end(), {"--trace", spec_.trace_file(p.id), "--trace-entries", std::to_string(spec_.trace_entries)});
  }
  for (const auto& q : procs_) {
    if (q.join) continue;
    args.push_back("--peer");
    const auto link = link_port_.find({p.id, q.id});
    args.push_back(fmt::format("{}=127.0.0.1:{}", q.id, link == link_port_.end() ? q.port : link->second));
  }
  std::vector<char*> argv;
  argv.reserve(args.size() + 1);
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  const std::string log = fmt::format("{}/n{}.log", spec_.dir, p.id);
  const int log_fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (log_fd < 0) return rlr::Status{rlr::ErrorCode::IoError, fmt::format("cannot open {}", log)};
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    ::close(log_fd);
    return rlr::Status{rlr::ErrorCode::IoError, fmt::format("fork: {}", std::strerror(errno))};
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until exec.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(127);
    ::dup2(log_fd, STDOUT_FILENO);
    ::dup2(log_fd, STDERR_FILENO);
    const int devnull = ::open("/dev/null", O_RDONLY);
    if (devnull >= 0) ::dup2(devnull, STDIN_FILENO);
    ::execv(argv[0], argv.data());
    ::_exit(127);
  }
  ::close(log_fd);
  p.pid = pid;
  return rlr::Status::ok();
}

std::vector<rlr::Address> ProcCluster::bootstrap() const {
  std::vector<rlr::Address> out;
  for (const auto& p : procs_) {
    if (!p.join) out.push_back(rlr::Address{"127.0.0.1", p.port});
  }
  return out;
}

std::string ProcCluster::address(std::uint64_t id) const {
  for (const auto& p : procs_) {
    if (p.id == id) return fmt::format("127.0.0.1:{}", p.port);
  }
  return {};
}

pid_t ProcCluster::pid(std::uint64_t id) const {
  for (const auto& p : procs_) {
    if (p.id == id) return p.pid;
  }
  return -1;
}

std::vector<pid_t> ProcCluster::pids() const {
  std::vector<pid_t> out;
  for (const auto& p : procs_) {
    if (p.pid > 0) out.push_back(p.pid);
  }
  return out;
}

void ProcCluster::kill9(std::uint64_t id) {
  for (auto& p : procs_) {
    if (p.id != id || p.pid <= 0) continue;
    ::kill(p.pid, SIGKILL);
    int status = 0;
    ::waitpid(p.pid, &status, 0);
    p.pid = -1;
  }
}

void ProcCluster::signal(std::uint64_t id, int sig) {
  for (const auto& p : procs_) {
    if (p.id == id && p.pid > 0) ::kill(p.pid, sig);
  }
}

void ProcCluster::isolate(std::uint64_t id, bool cut) {
  if (proxies_) proxies_->isolate(id, cut);
}

rlr::Status ProcCluster::restart(std::uint64_t id) {
  for (auto& p : procs_) {
    if (p.id == id && p.pid <= 0) return spawn(p);
  }
  return rlr::Status{rlr::ErrorCode::InvalidArgument, fmt::format("node {} is not stopped", id)};
}

rlr::Result<rlr::MemberAddress> ProcCluster::start_joiner() {
  Proc p{procs_.size() + 1, free_port(), -1, true};
  procs_.push_back(p);
  if (rlr::Status s = spawn(procs_.back()); !s) return s;
  return rlr::MemberAddress{rlr::NodeId{p.id}, {"127.0.0.1", p.port}};
}

void ProcCluster::stop() {
  for (auto& p : procs_) {
    if (p.pid > 0) ::kill(p.pid, SIGTERM);
  }
  const auto deadline = Clock::now() + 5s;
  for (auto& p : procs_) {
    if (p.pid <= 0) continue;
    int status = 0;
    while (::waitpid(p.pid, &status, WNOHANG) == 0) {
      if (Clock::now() > deadline) {
        ::kill(p.pid, SIGKILL);
        ::waitpid(p.pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(10ms);
    }
    p.pid = -1;
  }
}

rlr::ClientOptions ProcCluster::client_options() const {
  rlr::ClientOptions o;
  o.cluster_id = spec_.cluster_id;
  o.bootstrap = bootstrap();
  return o;
}

}  // namespace rlrbench
