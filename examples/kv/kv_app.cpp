#include "kv/kv_app.h"

#include <cstdio>

#include <fmt/format.h>

#include "apps/app_util.h"
#include "kv/kv_store.h"
#include "kv/resp_server.h"

namespace rlr::kv {
namespace {

/// Parses "1=127.0.0.1:6379,2=127.0.0.1:6380".
Result<std::map<NodeId, std::string>> parse_peers(std::string_view s) {
  std::map<NodeId, std::string> out;
  std::size_t start = 0;
  while (start < s.size()) {
    std::size_t comma = s.find(',', start);
    if (comma == std::string_view::npos) comma = s.size();
    const std::string_view item = s.substr(start, comma - start);
    const std::size_t eq = item.find('=');
    std::uint64_t id = 0;
    std::string host;
    std::uint16_t port = 0;
    bool ok = eq != std::string_view::npos && eq > 0;
    if (ok) {
      for (char c : item.substr(0, eq)) {
        ok = ok && c >= '0' && c <= '9';
        id = id * 10 + static_cast<std::uint64_t>(c - '0');
      }
      ok = ok && id > 0 && apps::split_host_port(item.substr(eq + 1), "resp_peers", host, port).is_ok();
    }
    if (!ok) {
      return Status{ErrorCode::InvalidArgument,
                    fmt::format("[app] resp_peers: \"{}\" is not id=host:port", item)};
    }
    out[NodeId{id}] = std::string(item.substr(eq + 1));
    start = comma + 1;
  }
  return out;
}

class KvApp final : public apps::App {
 public:
  ~KvApp() override { stop(); }

  Status start(apps::AppContext& ctx) override {
    std::string host;
    std::uint16_t port = 0;
    if (Status s = apps::split_host_port(apps::setting(ctx, "listen", "127.0.0.1:6379"),
                                         "[app] listen", host, port);
        !s) {
      return s;
    }
    auto peers = parse_peers(apps::setting(ctx, "resp_peers"));
    if (!peers) return peers.status();
    auto interval = apps::setting_u64(ctx, "digest_interval", 1000, 1, 1'000'000'000);
    if (!interval) return interval.status();

    auto store = std::make_shared<KvStore>();
    ApplyOptions options;
    options.egress = ctx.egress;
    options.digest_interval = interval.value();
    auto runner = ctx.node.attach(store, options);
    if (!runner) return runner.status();
    runner_ = std::move(runner).value();
    std::shared_ptr<ApplyRunner> r = runner_;
    service_ = std::make_unique<KvService>(ctx.node, store, [r] { return r->applied(); },
                                           std::move(peers).value());
    auto server = RespServer::start(*service_, host, port);
    if (!server) {
      stop();
      return server.status();
    }
    server_ = std::move(server).value();
    std::fprintf(stderr, "[kv] serving the Redis protocol (RESP) on %s:%u\n", host.c_str(),
                 static_cast<unsigned>(server_->port()));
    return Status::ok();
  }

  void stop() override {
    if (server_) server_->stop();
    if (service_) service_->stop();
    if (runner_) runner_->stop();
    server_.reset();
    service_.reset();
    runner_.reset();
  }

 private:
  std::shared_ptr<ApplyRunner> runner_;
  std::unique_ptr<KvService> service_;
  std::unique_ptr<RespServer> server_;
};

}  // namespace

std::unique_ptr<apps::App> make_app() { return std::make_unique<KvApp>(); }

}  // namespace rlr::kv
