// rlr-node's configuration options as data: one table that the parser takes its known
// keys from, that --print-default-config prints as a commented TOML file, and that
// --print-config-reference prints as docs/configuration.md. A test compares those outputs
// with examples/config/voter.toml and docs/configuration.md, so an option cannot exist
// in the code without its documentation, or the other way round.
#pragma once

#include <set>
#include <span>
#include <string>

#include "config.h"

namespace rlr::nodecfg {

/// One option of the TOML file.
struct OptionDoc {
  const char* table;        ///< "" for top-level keys, else the [table] it belongs to
  const char* key;          ///< the TOML key
  const char* flag;         ///< the command-line flag that overrides it ("" when none)
  const char* type;         ///< "string", "integer", "boolean", "array of tables", ...
  const char* default_doc;  ///< the default in words ("required", "10", "this node's peer address")
  const char* unit;         ///< "ms", "ticks" or ""
  const char* example;      ///< the value printed in the default config (TOML text)
  bool commented;           ///< printed commented out (no default to show, e.g. listen)
  const char* doc;          ///< what it does and what it trades
};

/// Every option, in the order the default config lists them.
[[nodiscard]] std::span<const OptionDoc> config_options();

/// The keys the parser accepts in `table` ("" for the top level).
[[nodiscard]] std::set<std::string> known_keys(const std::string& table);

/// A founding voter's configuration: every option with its default and its doc.
[[nodiscard]] std::string default_config_toml();

/// docs/configuration.md.
[[nodiscard]] std::string config_reference_markdown();

/// The configuration a node runs with, every option included, as TOML (what --check
/// prints after its summary line). Two configs with equal effective values print the
/// same text.
[[nodiscard]] std::string effective_config_toml(const Config& c);

}  // namespace rlr::nodecfg
