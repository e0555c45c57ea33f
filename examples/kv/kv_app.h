// The "kv" rlr-node app: the KvStore state machine plus its RESP front end.
#pragma once

#include <memory>

#include "apps/apps.h"

namespace rlr::kv {

/// Settings ([app] table):
///   listen           host:port of the RESP listener (default 127.0.0.1:6379)
///   resp_peers       "id=host:port,..." RESP addresses of the other nodes; when the
///                    leader's is known, a redirect is "-MOVED 0 host:port" (redis-cli -c
///                    follows it); otherwise "-ERR not leader; leader is N at host:port"
///                    names the leader's replication address
///   digest_interval  entries between digest checkpoints (default 1000)
[[nodiscard]] std::unique_ptr<apps::App> make_app();

}  // namespace rlr::kv
