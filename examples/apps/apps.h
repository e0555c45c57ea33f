// The applications rlr-node can host next to the replicator in one process (the host
// process shape of the design): each is a RoleAwareStateMachine plus whatever front end
// it needs (the kv store's RESP listener, the audit learner's SQLite sink).
//
// rlr-node creates the node, then the app named in its config (`app = "..."`), calls
// start() and, on shutdown, stop() before stopping the node.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "rlr/node.h"
#include "rlr/state_machine.h"
#include "rlr/status.h"

namespace rlr::apps {

struct AppContext {
  Node& node;
  std::string data_dir;                         ///< the node's data dir (apps may use a subdir)
  std::map<std::string, std::string> settings;  ///< the [app] table of the config, as strings
  EgressMode egress = EgressMode::LeaderOnly;   ///< from the node's config
};

class App {
 public:
  virtual ~App() = default;
  /// Attaches the state machine (Node::attach) and starts any front end.
  /// Errors: InvalidArgument for a bad setting, IoError for a front end that can't bind.
  [[nodiscard]] virtual Status start(AppContext& ctx) = 0;
  virtual void stop() = 0;
};

/// "matching-engine", "kv", "audit" or "none". nullptr for an unknown name.
[[nodiscard]] std::unique_ptr<App> make_app(std::string_view name);
/// The names make_app() knows, for error messages.
[[nodiscard]] std::vector<std::string> app_names();

}  // namespace rlr::apps
