// lmrun generate RUN_DIR --interactive: the loop, over any line source and output stream.
#pragma once

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <string>
#include <vector>

#include "config/experiment.h"
#include "registry/plugin_registry.h"
#include "train/pipeline.h"

namespace lmrun::host {

struct ReplSettings {
  std::string checkpoint;            // named in the banner
  std::vector<PluginSpec> samplers;  // the chain, changed by /temp, /top_k, /top_p
  std::int64_t seed = 0;             // the next turn's; each turn adds one
  std::int64_t max_new_tokens = 200;
  std::vector<std::string> stop;
  std::vector<std::int64_t> stop_tokens;
  std::int64_t beam_width = 0;  // >= 2: beam search
  double length_penalty = 1.0;
};

// Shows a prompt and reads one line into `line`; false at the end of input.
using ReadLine = std::function<bool(const std::string& prompt, std::string& line)>;

// Reads lines with `read_line` until /quit or the end of input; returns the exit code (0).
int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  const ReadLine& read_line, std::ostream& out);

// The same over a stream (a script, a pipe): the prompt goes to `out`, a line's CR is dropped.
int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  std::istream& in, std::ostream& out);

}  // namespace lmrun::host
