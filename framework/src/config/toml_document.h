// An experiment file as a TOML tree: parsed, its `base` chain merged, command-line overrides
// applied.
//
//   TomlDocument doc = load_document("experiments/gpt_tiny.toml", {"train.max_steps=200"});
//
// Merging: a file's tables merge key by key over its base's; any other value, arrays of tables
// included, replaces the base's value whole. `base` is a path (or a list of paths, merged in
// order) relative to the file that names it. Every node keeps its source (file, line, column) for
// error messages; values set with --set report "--set KEY=VALUE" as their source.
//
// Changing a plugin section's `type` (a `base` child, --set model.type=lstm, a sweep) leaves the
// section holding keys meant for the old type. The document records them (`retyped`), so that
// validation drops those the new type does not take, with a note, instead of refusing them.
#pragma once

#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <vector>

#include <toml++/toml.h>

#include "config/diagnostics.h"

namespace lmrun::host {

struct TomlDocument {
  std::filesystem::path file;  // the file named on the command line, absolute
  toml::table root;            // `base` removed
  // Override text by dotted key ("model.n_layer", "callbacks.0.patience"), for string parameters
  // given a value that TOML reads as something else (--set experiment.name=123).
  std::map<std::string, std::string> raw_overrides;

  // A section whose `type` a later layer changed: "model" -> {transformer, lstm, "--set
  // model.type=lstm", {n_layer, n_head, ...}}. `keys` are the section's keys that came with the
  // old type and that no later layer set again.
  struct Retyped {
    std::string from;   // the type before the (last) change
    std::string to;     // the type after the change
    std::string where;  // what changed it: a file:line or "--set model.type=lstm"
    std::set<std::string> keys;
  };
  std::map<std::string, Retyped> retyped;  // by section key: "model", "callbacks.0"
};

// Throws ConfigError (syntax errors with line and column, missing or cyclic bases, bad overrides).
TomlDocument load_document(const std::filesystem::path& file,
                           const std::vector<std::string>& overrides);

// Sets a dotted key (model.n_layer, callbacks.0.patience) as `--set KEY=VALUE` does: `text` in
// TOML syntax (3, 1e-3, "gelu", [0.9, 0.95]) or, when it does not parse, as a string. `where`
// names the setting in errors and becomes the value's source. Throws ConfigError.
void set_key(TomlDocument& doc, const std::string& key, const std::string& text,
             const std::string& where);

// "file:line:column" of a node, or its file alone, or "" when the node has no source.
std::string location_of(const toml::node& node);
std::string location_of(const toml::source_region& source);

}  // namespace lmrun::host
