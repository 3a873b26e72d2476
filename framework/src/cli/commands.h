// The lmrun subcommands, each a function from parsed arguments to an exit code.
// apps/lmrun.cpp parses the command line and holds the one catch that prints errors.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace lmrun::host {

struct CommonArgs {
  std::vector<std::filesystem::path> plugin_dirs;  // --plugin-dir, in order
  bool verbose = false;                            // -v: log each plugin file loaded
};

struct ExperimentArgs {
  std::filesystem::path file;
  std::vector<std::string> overrides;  // --set KEY=VALUE
  bool force = false;                  // --force: reuse an existing run folder
};

int command_run(const CommonArgs& common, const ExperimentArgs& args);
int command_check(const CommonArgs& common, const ExperimentArgs& args);
int command_plugins(const CommonArgs& common);
int command_describe(const CommonArgs& common, const std::string& name);

// Exit codes.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // invalid experiment, bad plugin, failed run
inline constexpr int kExitUsage = 2;  // bad command line

}  // namespace lmrun::host
