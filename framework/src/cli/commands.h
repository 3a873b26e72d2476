// The lmrun subcommands, each a function from parsed arguments to an exit code.
// apps/lmrun.cpp parses the command line and holds the one catch that prints errors.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "lmrun/error.h"

namespace lmrun::host {

struct CommonArgs {
  std::vector<std::filesystem::path> plugin_dirs;  // --plugin-dir, in order
  bool verbose = false;                            // -v: log each plugin file loaded
};

struct ExperimentArgs {
  std::filesystem::path file;
  std::vector<std::string> overrides;  // --set KEY=VALUE
  bool force = false;                  // --force: reuse an existing run folder
  std::filesystem::path resume;        // --resume RUN_DIR or CHECKPOINT_DIR
  bool resume_changed = false;         // --resume-changed: continue with a changed experiment
  bool single_run = false;  // one run even when data.folds asks for cross-validation (its folds)
};

// lmrun generate | eval | predict | inspect RUN_DIR
struct RunDirArgs {
  std::filesystem::path run_dir;
  std::vector<std::string>
      overrides;           // --set on the run's config.toml (generate.samplers.0.value=...)
  std::string checkpoint;  // --checkpoint NAME; empty: last, else the newest
  std::optional<std::string> prompt;  // --prompt; default: [generate] prompt
  std::filesystem::path prompts;      // generate --prompts FILE: one prompt a line -> JSONL
  bool interactive = false;           // generate --interactive: a REPL
  bool chat = false;                  // lmrun chat: the REPL over conversation turns
  std::optional<std::string> system;  // generate, chat: --system, the system message
  std::optional<std::int64_t> max_new_tokens;
  std::optional<std::int64_t> num_samples;
  std::optional<std::int64_t> seed;
  std::string split = "val";       // eval, inspect: --split
  bool split_given = false;        // --split was on the command line, not the default
  std::vector<std::string> texts;  // predict: --text, in order
  std::filesystem::path input;     // predict: --input FILE, one text per line; "-": stdin
  std::filesystem::path output;    // predict: JSONL here (default stdout); eval: a JSON report
  std::string quantize;            // generate, eval, predict: --quantize int8; empty: fp32
};

// lmrun sweep FILE.toml / lmrun sweep --report DIR
struct SweepArgs {
  ExperimentArgs experiment;     // the sweep file and its --set overrides
  std::int64_t jobs = 1;         // --jobs: trials at once
  std::string shard;             // --shard I/N; empty: all trials
  bool dry_run = false;          // --dry-run: validate and list the trials, run nothing
  std::filesystem::path report;  // --report DIR: only merge and print what DIR holds
};

int command_sweep(const CommonArgs& common, const SweepArgs& args);

// lmrun tokenize [RUN_DIR] [--tokenizer TYPE [--set tokenizer.KEY=VALUE]... [--fit FILE]]
struct TokenizeArgs {
  std::filesystem::path run_dir;       // a run folder: its experiment's tokenizer, as saved
  std::string checkpoint;              // --checkpoint NAME in the run folder
  std::string tokenizer;               // --tokenizer TYPE instead of a run folder
  std::vector<std::string> overrides;  // --set tokenizer.KEY=VALUE
  std::filesystem::path fit;           // --fit FILE: fit the tokenizer on this text first
  std::vector<std::string> texts;      // --text, each one input
  std::filesystem::path input;         // --input FILE or - (the default without --text)
  std::filesystem::path output;        // --output FILE; default stdout
  bool whole = false;                  // --whole: the input is one text, not one per line
  bool decode = false;                 // --decode: ids in, text out
};

int command_tokenize(const CommonArgs& common, const TokenizeArgs& args);

// lmrun export RUN_DIR --format safetensors|nanogpt [-o OUT] [--checkpoint NAME] [--layout L]
//   [--dtype fp32|bf16|fp16] [--force]
struct ExportArgs {
  std::filesystem::path run_dir;
  std::string checkpoint;      // --checkpoint NAME; empty: last, else the newest
  std::string format;          // --format
  std::string layout;          // --layout: lmrun, gpt2; empty: gpt2 when the model has it
  std::string dtype = "fp32";  // --dtype (safetensors)
  std::filesystem::path out;   // -o; default RUN_DIR/export/FORMAT
  bool force = false;          // --force: replace OUT
  double prune = 0.0;          // --prune FRACTION of each linear layer's weights zeroed
  std::string prune_mode = "unstructured";  // --prune-mode: unstructured or rows
  std::string quantize;                     // --quantize int8 (onnx)
};

int command_export(const CommonArgs& common, const ExportArgs& args);

int command_run(const CommonArgs& common, const ExperimentArgs& args);
int command_check(const CommonArgs& common, const ExperimentArgs& args);
int command_plugins(const CommonArgs& common);
int command_generate(const CommonArgs& common, const RunDirArgs& args);
int command_eval(const CommonArgs& common, const RunDirArgs& args);
int command_predict(const CommonArgs& common, const RunDirArgs& args);
int command_inspect(const CommonArgs& common, const RunDirArgs& args);
int command_describe(const CommonArgs& common, const std::string& name);

// Exit codes. One rule: what the command line says wrong exits kExitUsage (an unknown option, an
// option's bad value, a --set that does not parse or that validation refuses); what the
// experiment file or the run gets wrong exits kExitError.
inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;  // invalid experiment, bad plugin, failed run
inline constexpr int kExitUsage = 2;  // bad command line

// An option's value or a combination of options lmrun cannot take ("--split must be train, val
// or test"): main exits kExitUsage for it.
class UsageError : public Error {
 public:
  using Error::Error;
};

// kExitUsage for a UsageError, and for a ConfigError whose every problem comes from the command
// line (located at an option: "--set KEY=VALUE"); kExitError for any other error.
int exit_code_of(const Error& error);

}  // namespace lmrun::host
