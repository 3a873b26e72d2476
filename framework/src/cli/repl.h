// lmrun generate RUN_DIR --interactive and lmrun chat RUN_DIR: the loop, over any line source and
// output stream.
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
  // `lmrun chat`: each line is a user's turn, rendered with the run's chat format (the pipeline's
  // chat_format, which must be defined), and the model answers as the assistant until the
  // format's end marker. `system` is the system message; /system changes it.
  bool chat = false;
  std::string system;
};

// The system message `text` as the model is conditioned on it: the system turn rendered with
// p.chat_format and encoded, (1, S). Throws lmrun::Error when the run has no chat format.
Conditioning system_context(const Pipeline& p, const std::string& text);

// Shows a prompt and reads one line into `line`; false at the end of input.
using ReadLine = std::function<bool(const std::string& prompt, std::string& line)>;

// Reads lines with `read_line` until /quit or the end of input; returns the exit code (0).
int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  const ReadLine& read_line, std::ostream& out);

// The same over a stream (a script, a pipe): the prompt goes to `out`, a line's CR is dropped.
int generate_repl(Pipeline& p, const ReplSettings& settings, const PluginRegistry& registry,
                  std::istream& in, std::ostream& out);

}  // namespace lmrun::host
