#include "apps/apps.h"

#include "audit_learner/audit.h"
#include "kv/kv_app.h"
#include "matching_engine/matching_engine.h"

namespace rlr::apps {
namespace {

/// "none": the node replicates and applies nothing of its own.
class NoApp final : public App {
 public:
  Status start(AppContext& /*ctx*/) override { return Status::ok(); }
  void stop() override {}
};

}  // namespace

std::unique_ptr<App> make_app(std::string_view name) {
  if (name == "matching-engine") return me::make_app();
  if (name == "kv") return kv::make_app();
  if (name == "audit") return audit::make_app();
  if (name == "none") return std::make_unique<NoApp>();
  return nullptr;
}

std::vector<std::string> app_names() { return {"matching-engine", "kv", "audit", "none"}; }

}  // namespace rlr::apps
