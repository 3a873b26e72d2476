// What the commands share: an experiment resolved against the loaded plugins, and a run folder
// opened for generate, eval, predict and inspect.
#pragma once

#include <filesystem>
#include <memory>

#include "cli/commands.h"
#include "cli/loaded_registry.h"
#include "config/experiment.h"

namespace lmrun::host {

struct Resolved {
  std::unique_ptr<LoadedRegistry> plugins;
  Experiment experiment;
};

// Loads the plugins the experiment file (with its --set overrides) needs and validates it.
Resolved resolve(const CommonArgs& common, const ExperimentArgs& args);

// A run folder's experiment, re-validated with the current plugins, and its checkpoint.
struct RunDir {
  Resolved resolved;
  std::filesystem::path checkpoint;
};

// Throws lmrun::Error when the folder has no config.toml or the checkpoint asked for is missing.
RunDir open_run_dir(const CommonArgs& common, const RunDirArgs& args);

}  // namespace lmrun::host
