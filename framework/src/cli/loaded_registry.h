// The plugin registry as the commands load it: the build's or install's plugin folder,
// LMRUN_PLUGIN_PATH, an experiment's [plugins] paths, then --plugin-dir, in that order.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "config/toml_document.h"
#include "registry/plugin_loader.h"
#include "registry/plugin_registry.h"

namespace lmrun::host {

struct LoadedRegistry {
  PluginRegistry registry;
  std::vector<LoadedPlugin> loaded;
  std::vector<LoadFailure> failures;
  // Every folder searched besides the built-in one, absolute, in order: what a run records so
  // that commands on its folder find the same plugins.
  std::vector<std::filesystem::path> dirs;
  std::vector<AppliedOverride> overrides;  // [plugins] override, as applied

  std::vector<std::string> failure_messages() const;
};

// `missing_ok`: an experiment folder that does not exist is a warning (a run's recorded folders).
std::unique_ptr<LoadedRegistry> load_registry(
    const CommonArgs& common, const std::vector<std::filesystem::path>& experiment_dirs,
    bool missing_ok = false);

// Applies the document's [plugins] override to the registry (recorded in `plugins.overrides`).
// Throws lmrun::Error for an override that names no conflict.
void apply_overrides(const TomlDocument& doc, LoadedRegistry& plugins);

// A warning for each KIND.NAME that several files register and nothing settled: the experiment
// does not use it (it would have been refused), but the next one may.
void warn_conflicts(const LoadedRegistry& plugins);

}  // namespace lmrun::host
