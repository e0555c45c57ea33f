// rlr-bench: load generators. Each client is one thread that keeps up to `outstanding`
// proposals in flight (1: propose, wait for the commit acknowledgement, repeat). The
// latency of a proposal runs from the propose call to its callback; every sample whose
// acknowledgement falls inside the measurement window is kept.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <chrono>
#include <condition_variable>
#include <string>
#include <thread>
#include <vector>

#include "rlr/client.h"
#include "rlr/node.h"

namespace rlrbench {

/// The proposals a client may still issue, on a bare futex. The client takes every free
/// permit at once; when none is free it sleeps until `wake_at` are (1 for a closed loop),
/// so a deep pipeline wakes its client once per batch of acknowledgements rather than
/// once per acknowledgement. Waiting and waking are one syscall each, without the
/// spinning and sched_yield of std::counting_semaphore (costly on this VM).
class Window {
 public:
  Window(int permits, int wake_at) : permits_(permits), wake_at_(wake_at) {}
  /// Takes every free permit, waiting for `wake_at` when there is none; 0 once interrupted.
  int take();
  void release(int n = 1);
  /// Makes take() return 0 from now on.
  void interrupt();
  [[nodiscard]] int available() const { return permits_.load(); }

 private:
  std::atomic<int> permits_;
  std::atomic<int> waiters_{0};
  std::atomic<bool> interrupted_{false};
  const int wake_at_;
};

/// Where one client sends its proposals.
class Target {
 public:
  virtual ~Target() = default;
  virtual void propose(rlr::Bytes command, rlr::ProposeCallback done) = 0;
};

/// In process, straight into a node (the leader).
class NodeTarget final : public Target {
 public:
  explicit NodeTarget(rlr::Node& node) : node_(node) {}
  void propose(rlr::Bytes command, rlr::ProposeCallback done) override {
    node_.propose(std::move(command), std::move(done));
  }

 private:
  rlr::Node& node_;
};

/// Over TCP through rlr::Client (leader discovery, redirects, sessions).
class ClientTarget final : public Target {
 public:
  explicit ClientTarget(std::unique_ptr<rlr::Client> client) : client_(std::move(client)) {}
  void propose(rlr::Bytes command, rlr::ProposeCallback done) override {
    client_->propose(std::move(command), std::move(done));
  }
  [[nodiscard]] rlr::Client& client() { return *client_; }

 private:
  std::unique_ptr<rlr::Client> client_;
};

/// No cluster: a server thread acknowledges every proposal at once, in batches, the way a
/// node's completion thread does. Calibrates what the client threads and the operating
/// system cost by themselves (the ceiling of a closed loop on this machine).
class NullTarget final : public Target {
 public:
  NullTarget();
  ~NullTarget() override;
  NullTarget(const NullTarget&) = delete;
  NullTarget& operator=(const NullTarget&) = delete;
  void propose(rlr::Bytes command, rlr::ProposeCallback done) override;

 private:
  void run();
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<rlr::ProposeCallback> queue_;  // guarded by mu_
  bool stop_ = false;                         // guarded by mu_
  std::uint64_t next_index_ = 1;              // server thread only
  std::thread thread_;
};

/// Failover timing: once armed with the term of a killed leader, remembers the time of
/// the first acknowledgement of an entry of a later term (one committed by the new leader).
struct FailoverWatch {
  std::atomic<std::uint64_t> after_term{0};  ///< 0: disarmed
  std::atomic<std::int64_t> first_ack_ns{0};
};

struct LoadOptions {
  int clients = 1;
  int outstanding = 1;
  std::size_t payload_bytes = 256;
  /// false: every proposal gets a buffer of its own, as a real client's command does (a
  /// copy of one of the client's template payloads, made on the client thread). true: the
  /// client proposes its 64 template buffers over and over, so every entry shares one of
  /// a few payload buffers that stay in cache.
  bool shared_payloads = false;
  FailoverWatch* watch = nullptr;
  /// Keep every acknowledged proposal of the window as an OpTrace (for --trace).
  bool trace = false;
};

/// One acknowledged proposal as its client saw it (steady-clock nanoseconds).
struct OpTrace {
  std::uint64_t index = 0;      ///< where it committed
  std::uint64_t term = 0;       ///< and in which term
  std::int64_t proposed = 0;    ///< the propose call
  std::int64_t acked = 0;       ///< its callback
};

class Load {
 public:
  static constexpr int kMaxOutstanding = 1 << 20;

  /// One target per client (targets.size() == options.clients); the targets outlive the Load.
  Load(LoadOptions options, std::vector<Target*> targets);
  ~Load();
  Load(const Load&) = delete;
  Load& operator=(const Load&) = delete;

  /// Starts the client threads; acknowledgements in [begin_ns, end_ns) are measured.
  void start(std::int64_t window_begin_ns, std::int64_t window_end_ns);
  /// Moves the measurement window while the clients run (a warm-up that ends when the
  /// cluster reaches a state, not at a time fixed in advance).
  void set_window(std::int64_t window_begin_ns, std::int64_t window_end_ns);
  /// Stops issuing and waits (up to `timeout`) for every outstanding proposal's outcome.
  /// False when some are still outstanding: the callbacks may still run, so the Load must
  /// then outlive whatever calls them (stop the nodes or clients first).
  bool stop(std::chrono::milliseconds timeout);

  /// Acknowledged (committed) proposals so far, in and out of the window.
  [[nodiscard]] std::uint64_t acked_total() const;
  [[nodiscard]] std::uint64_t acked_in_window() const;
  [[nodiscard]] std::uint64_t errors() const;
  /// "Code: message" of the first error seen (empty when none).
  [[nodiscard]] std::string first_error() const;
  /// Every latency sample of the window, merged (nanoseconds).
  [[nodiscard]] std::vector<std::int64_t> take_samples();
  /// Every OpTrace of the window (LoadOptions::trace), merged.
  [[nodiscard]] std::vector<OpTrace> take_ops();
  /// Bytes held by the latency samples (they count in this process's RSS).
  [[nodiscard]] std::size_t sample_bytes() const;

 private:
  struct ClientState {
    ClientState(int outstanding, int wake_at) : window(outstanding, wake_at) {}
    Load* load = nullptr;
    Target* target = nullptr;
    Window window;
    std::mutex mu;
    std::vector<std::int64_t> samples;  // guarded by mu
    std::vector<OpTrace> ops;           // guarded by mu
    std::atomic<std::uint64_t> acked{0};
    std::atomic<std::uint64_t> in_window{0};
    std::atomic<std::uint64_t> errors{0};
    std::atomic<bool> backoff{false};
    std::vector<rlr::Bytes> payloads;
    std::thread thread;
  };
  void run(ClientState& st);
  void on_outcome(ClientState& st, std::int64_t t0, const rlr::Result<rlr::ProposeResult>& r);

  LoadOptions options_;
  std::vector<std::unique_ptr<ClientState>> clients_;
  std::atomic<bool> stop_{false};
  std::atomic<std::int64_t> begin_ns_{0};
  std::atomic<std::int64_t> end_ns_{0};
  mutable std::mutex err_mu_;
  std::string first_error_;  // guarded by err_mu_
};

}  // namespace rlrbench
