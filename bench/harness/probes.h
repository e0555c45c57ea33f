// rlr-bench: the physical floor of a commit on this machine, measured in the same run —
// the latency of one durable append (write + fdatasync) and of one loopback TCP round trip.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace rlrbench {

/// Appends `bytes` to a fresh file in `dir` and fdatasyncs it, `iterations` times (or until
/// `budget` has passed). Returns one sample (ns) per append; empty when the file cannot be
/// written (the file is removed afterwards).
///
/// `writers` > 1: that many threads append and fdatasync their own files at the same
/// time (as the replicas of an in-process cluster do on one disk); every sample is kept.
/// `keep_cpus_awake`: one SCHED_IDLE thread per CPU spins meanwhile. On this VM a vCPU that
/// halts while the only thread waits for the disk notices the completion ~4 ms late, while a
/// busy one (as in a cluster under load, where several threads fsync at once) sees it in
/// ~0.3-0.7 ms; SCHED_IDLE spinners keep the vCPUs out of halt without taking CPU from
/// anything else.
[[nodiscard]] std::vector<std::int64_t> probe_fdatasync(const std::string& dir, std::size_t bytes,
                                                        int iterations,
                                                        std::chrono::milliseconds budget,
                                                        bool keep_cpus_awake, int writers = 1);

/// Ping-pongs `bytes` over a TCP connection on 127.0.0.1 (TCP_NODELAY, blocking sockets, an
/// echo thread on the other end). Returns one round trip (ns) per sample.
[[nodiscard]] std::vector<std::int64_t> probe_loopback_rtt(std::size_t bytes, int iterations,
                                                           std::chrono::milliseconds budget);

}  // namespace rlrbench
