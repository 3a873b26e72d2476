// Trying a plugin file in a forked child before loading it for real, so that a file that crashes
// while it loads (a static initialiser, its entry point, its register function) or hangs there is
// skipped with a warning instead of ending lmrun. Verdicts are remembered by (path, size,
// modification time), so a file is tried once until it changes and start-up stays fast.
//
//   PluginProbe probe(default_probe_cache());
//   if (auto problem = probe.check(file, [&](PhaseSink phase) { load_steps(file, phase); })) ...
//
// The child runs the same load steps as the real load, into a registry it throws away, and reports
// each phase it enters through a pipe; the parent reads the last one when the child dies by a
// signal. The child's stderr is kept, and its last line quoted (std::terminate's "terminate called
// after throwing an instance of 'int'").
#pragma once

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>

namespace lmrun::host {

// The phases of loading a plugin file, as the child reports them.
enum class LoadPhase : char {
  kOpen = 'O',      // dlopen: the library's static initialisers and the libraries it needs
  kEntry = 'E',     // its lmrun_plugin() entry point
  kRegister = 'R',  // its register function
  kDone = 'D',
};

// "while loading (its static initialisers)", "in its register function", ...
const char* phase_words(LoadPhase phase);

// Called by the load steps as each phase begins.
using PhaseSink = std::function<void(LoadPhase)>;

class PluginProbe {
 public:
  // `cache` empty: verdicts are not remembered. `timeout`: how long the child may take.
  PluginProbe(std::filesystem::path cache, std::chrono::milliseconds timeout);

  // nullopt when `file` loads in a child without crashing or hanging (or it did so before and
  // has not changed); otherwise the problem, one sentence without the file's name ("crashed with
  // SIGSEGV (segmentation fault) in its register function"). `steps` is what the child runs.
  std::optional<std::string> check(const std::filesystem::path& file,
                                   const std::function<void(const PhaseSink&)>& steps);

  // Children started (files probed rather than found in the cache), for start-up measurements.
  int children() const { return children_; }

 private:
  struct Verdict {
    std::uintmax_t size = 0;
    std::int64_t mtime_ns = 0;
    std::string problem;  // empty: fine
  };
  void read_cache();
  void write_cache() const;
  std::string run_child(const std::function<void(const PhaseSink&)>& steps) const;

  std::filesystem::path cache_;
  std::chrono::milliseconds timeout_;
  std::map<std::string, Verdict> verdicts_;  // by canonical path
  bool cache_read_ = false;
  int children_ = 0;
};

// LMRUN_PLUGIN_CACHE (a file; "off" for none), else $XDG_CACHE_HOME/lmrun/plugin-probes.tsv, else
// ~/.cache/lmrun/plugin-probes.tsv; empty when there is no home either.
std::filesystem::path default_probe_cache();

// LMRUN_PLUGIN_PROBE_TIMEOUT (seconds), else 30 s.
std::chrono::milliseconds default_probe_timeout();

}  // namespace lmrun::host
