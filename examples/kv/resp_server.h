// The kv store's front end: Redis commands over RESP, served by Boost.Asio.
//
// KvService holds the command logic and no socket: writes are proposed to the node and
// answered once applied locally; reads wait for a ReadIndex barrier (batched: one barrier
// serves every read that arrived while the previous one was in flight) and for the local
// store to apply through it, then read the local map. A node that does not lead answers
// writes (and reads it cannot confirm) with an error naming the leader.
//
// RespServer owns the listening socket and one io thread. Each connection answers in
// request order, pipelining allowed; a connection's reads wait for its earlier writes and
// its writes for its earlier reads, so one connection sees its own commands in order.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kv/kv_store.h"
#include "rlr/node.h"

namespace rlr::kv {

enum class CommandKind : std::uint8_t { Local, Read, Write };

class KvService {
 public:
  /// `reply`: the encoded RESP reply; `close`: close the connection after it.
  using Done = std::function<void(std::string reply, bool close)>;

  /// `progress`: the apply runner's position. `resp_peers`: the RESP address of other
  /// nodes (node id -> "host:port"), used to redirect with -MOVED; may be empty.
  KvService(Node& node, std::shared_ptr<KvStore> store, std::function<LogIndex()> progress,
            std::map<NodeId, std::string> resp_peers);
  ~KvService();
  KvService(const KvService&) = delete;
  KvService& operator=(const KvService&) = delete;

  [[nodiscard]] static CommandKind classify(const std::vector<std::string>& args);
  /// Executes one command; `done` runs exactly once, possibly on another thread.
  void execute(std::vector<std::string> args, Done done);
  /// Fails pending reads and stops the read thread. Idempotent.
  void stop();

  /// The error a node that does not lead answers with.
  [[nodiscard]] std::string redirect(NodeId hint) const;

 private:
  struct PendingRead {
    std::vector<std::string> args;
    Done done;
  };
  void local(const std::vector<std::string>& args, const Done& done);
  void write(std::vector<std::string> args, Done done);
  [[nodiscard]] std::string read_now(const std::vector<std::string>& args) const;
  [[nodiscard]] std::string error_reply(const Status& s) const;
  void read_loop();

  Node& node_;
  std::shared_ptr<KvStore> store_;
  std::function<LogIndex()> progress_;
  std::map<NodeId, std::string> resp_peers_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<PendingRead> reads_;  // guarded by mu_
  bool stopping_ = false;           // guarded by mu_
  std::thread reader_;
};

class RespServer {
 public:
  /// Binds host:port (port 0: any) and starts serving. Errors: IoError.
  [[nodiscard]] static Result<std::unique_ptr<RespServer>> start(KvService& service,
                                                                 const std::string& host,
                                                                 std::uint16_t port);
  ~RespServer();
  RespServer(const RespServer&) = delete;
  RespServer& operator=(const RespServer&) = delete;

  [[nodiscard]] std::uint16_t port() const { return port_; }
  /// Closes the listener and every connection; joins the io thread. Idempotent.
  void stop();

  struct Impl;  // defined in resp_server.cpp
  RespServer(std::unique_ptr<Impl> impl, std::uint16_t port);

 private:
  std::unique_ptr<Impl> impl_;
  std::uint16_t port_;
};

}  // namespace rlr::kv
