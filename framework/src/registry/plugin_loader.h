// Finds plugin shared libraries, checks them, and registers what they provide.
//
//   PluginRegistry registry;
//   PluginLoader loader(registry);
//   for (const auto& dir : plugin_search_path(extra_dirs)) loader.load_directory(dir);
//   for (const auto& failure : loader.failures()) warn(failure.message);
//
// A file is checked in order: it does not crash or hang while loading in a forked child (probe.h;
// the verdict is cached), it loads as a shared library, it exports `lmrun_plugin`, its API
// version matches, its build ABI (LibTorch version, C++11 ABI) matches, its register function
// succeeds, and none of its names is taken. Each failure is one lmrun::Error naming the file and,
// for versions, both sides. Libraries stay loaded until the process exits.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "registry/plugin_registry.h"

namespace lmrun::host {

struct LoadedPlugin {
  std::string name;
  std::string version;
  std::filesystem::path file;
};

struct LoadFailure {
  std::filesystem::path file;
  std::string message;   // complete, names the file
  bool crashed = false;  // the file crashed or hung while loading in the probe's child
};

// What load_file throws for a file that crashed or hung in the probe: every command warns of it.
class CrashedPlugin : public Error {
 public:
  explicit CrashedPlugin(const Error& error) : Error(error) {}
};

class PluginProbe;

class PluginLoader {
 public:
  // Each file is first tried in a forked child (probe.h), with the default cache and timeout.
  explicit PluginLoader(PluginRegistry& registry);
  ~PluginLoader();

  // Another probe, or none (nullptr: files load in this process directly).
  void set_probe(std::unique_ptr<PluginProbe> probe);
  PluginProbe* probe() const { return probe_.get(); }

  // Loads one plugin file. Throws lmrun::Error on any failure; the registry is then unchanged.
  // A file already loaded (same canonical path) is skipped.
  void load_file(const std::filesystem::path& file);

  // Loads every *.so directly in `dir`, in name order. A failing file is recorded in failures()
  // and the rest still load. Throws lmrun::Error when `dir` does not exist or is not a folder.
  void load_directory(const std::filesystem::path& dir);

  const std::vector<LoadedPlugin>& loaded() const { return loaded_; }
  const std::vector<LoadFailure>& failures() const { return failures_; }

 private:
  PluginRegistry& registry_;
  std::unique_ptr<PluginProbe> probe_;
  std::vector<LoadedPlugin> loaded_;
  std::vector<LoadFailure> failures_;
};

// The folder of plugins built or installed with this lmrun: <exe>/../lib/lmrun/plugins.
std::filesystem::path builtin_plugin_dir();

// Folders named by LMRUN_PLUGIN_PATH (colon-separated; empty entries ignored).
std::vector<std::filesystem::path> env_plugin_dirs();

}  // namespace lmrun::host
