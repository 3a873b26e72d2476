// lmrun generate RUN_DIR --interactive: the loop, over any input and output stream.
#pragma once

#include <cstdint>
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

// Reads lines until /quit or the end of `in`; returns the exit code (0).
int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  std::istream& in, std::ostream& out);

}  // namespace lmrun::host
