#include "probes.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>

#include <thread>

#include <fmt/format.h>

#include "stats.h"

namespace rlrbench {

std::vector<std::int64_t> probe_fdatasync(const std::string& dir, std::size_t bytes, int iterations,
                                          std::chrono::milliseconds budget, bool keep_cpus_awake, int writers) {
  std::vector<std::int64_t> out;
  std::atomic<bool> spin{keep_cpus_awake};
  std::vector<std::thread> spinners;
  if (keep_cpus_awake) {
    for (unsigned i = 0; i < std::max(1U, std::thread::hardware_concurrency()); ++i) {
      spinners.emplace_back([&spin] {
        sched_param sp{};
        ::sched_setscheduler(0, SCHED_IDLE, &sp);
        while (spin.load(std::memory_order_relaxed)) {
        }
      });
    }
  }
  struct Join {
    std::atomic<bool>& spin;
    std::vector<std::thread>& threads;
    ~Join() {
      spin = false;
      for (auto& t : threads) t.join();
    }
  } join{spin, spinners};
  const auto deadline = Clock::now() + budget;
  const auto one_writer = [&](int w, std::vector<std::int64_t>& samples) {
    const std::string path = fmt::format("{}/fdatasync-probe-{}", dir, w);
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return;
    const std::vector<char> buf(bytes, 'x');
    samples.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < iterations && Clock::now() < deadline; ++i) {
      const std::int64_t t0 = now_ns();
      if (::write(fd, buf.data(), buf.size()) != static_cast<ssize_t>(buf.size())) break;
      if (::fdatasync(fd) != 0) break;
      samples.push_back(now_ns() - t0);
    }
    ::close(fd);
    ::unlink(path.c_str());
  };
  std::vector<std::vector<std::int64_t>> per(static_cast<std::size_t>(std::max(1, writers)));
  std::vector<std::thread> threads;
  for (std::size_t w = 1; w < per.size(); ++w) {
    threads.emplace_back([&, w] { one_writer(static_cast<int>(w), per[w]); });
  }
  one_writer(0, per[0]);
  for (auto& t : threads) t.join();
  for (auto& p : per) out.insert(out.end(), p.begin(), p.end());
  return out;
}

namespace {

bool read_full(int fd, char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_full(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    const ssize_t r = ::write(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

void no_delay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

std::vector<std::int64_t> probe_loopback_rtt(std::size_t bytes, int iterations,
                                             std::chrono::milliseconds budget) {
  std::vector<std::int64_t> out;
  const int lfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (lfd < 0) return out;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(lfd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(lfd, 1) != 0 ||
      ::getsockname(lfd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(lfd);
    return out;
  }
  std::thread echo([lfd, bytes] {
    const int fd = ::accept(lfd, nullptr, nullptr);
    if (fd < 0) return;
    no_delay(fd);
    std::vector<char> buf(bytes);
    while (read_full(fd, buf.data(), buf.size()) && write_full(fd, buf.data(), buf.size())) {
    }
    ::close(fd);
  });
  const int cfd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (cfd >= 0 && ::connect(cfd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
    no_delay(cfd);
    std::vector<char> buf(bytes, 'p');
    const auto deadline = Clock::now() + budget;
    out.reserve(static_cast<std::size_t>(iterations));
    for (int i = 0; i < iterations && Clock::now() < deadline; ++i) {
      const std::int64_t t0 = now_ns();
      if (!write_full(cfd, buf.data(), buf.size()) || !read_full(cfd, buf.data(), buf.size())) break;
      out.push_back(now_ns() - t0);
    }
  }
  if (cfd >= 0) ::close(cfd);
  ::shutdown(lfd, SHUT_RDWR);
  echo.join();
  ::close(lfd);
  return out;
}

}  // namespace rlrbench
