// The plugin registry as the commands load it: the build's or install's plugin folder,
// LMRUN_PLUGIN_PATH, an experiment's [plugins] paths, then --plugin-dir, in that order.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.h"
#include "registry/plugin_loader.h"
#include "registry/plugin_registry.h"

namespace lmrun::host {

struct LoadedRegistry {
  PluginRegistry registry;
  std::vector<LoadedPlugin> loaded;
  std::vector<LoadFailure> failures;

  std::vector<std::string> failure_messages() const;
};

std::unique_ptr<LoadedRegistry> load_registry(
    const CommonArgs& common, const std::vector<std::filesystem::path>& experiment_dirs);

}  // namespace lmrun::host
