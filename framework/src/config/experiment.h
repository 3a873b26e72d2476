// A resolved experiment: every section validated against its schema, typed, and defaulted.
//
//   PluginRegistry registry = ...;                        // plugins loaded from the plugin path
//   TomlDocument doc = load_document(file, overrides);
//   Experiment experiment = resolve_experiment(doc, registry);   // throws ConfigError
//
// Host sections ([experiment], [train], [generate], [plugins]) have option structs declared here
// with the same Schema mechanism plugins use; plugin sections ([data], [tokenizer], [model],
// [optimizer], [scheduler], [[callbacks]], [[metrics]], [[generate.samplers]]) are checked against
// the parameters their plugin declares. Relative paths in parameters resolve against the working
// directory; `base` and `[plugins] paths` resolve against the file that names them.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "config/toml_document.h"
#include "lmrun/params.h"
#include "lmrun/registry.h"
#include "lmrun/schema.h"
#include "registry/plugin_registry.h"

namespace lmrun::host {

// [experiment]
struct ExperimentOptions {
  std::string name;               // default: the file's stem
  std::int64_t seed = 1337;       // the one master seed
  std::filesystem::path out_dir;  // default: runs/<name>; never overwritten without --force
};

// [train]
struct TrainOptions {
  std::int64_t batch_size = 12;       // sequences per micro-batch
  std::int64_t grad_accum_steps = 1;  // micro-batches per optimizer step
  std::int64_t max_steps = 2000;      // optimizer steps
  double max_time = 0.0;  // seconds of training (resumed runs: all segments); 0: no limit
  std::int64_t eval_interval = 250;  // steps between evaluations; 0: only at the end
  std::int64_t eval_batches = 20;    // batches per split in each loss estimate
  double grad_clip = 1.0;            // max global gradient norm; 0 disables clipping
  std::int64_t log_interval = 10;    // steps between log lines
  std::string device = "auto";       // cpu, cuda, auto
  std::int64_t threads = 0;          // intra-op threads; 0: auto (one: OpenBLAS has its own)
  double peak_gflops = 0.0;  // MFU's denominator; 0: measure the fp32 matmul rate at the start
  std::string precision = "fp32";  // fp32, or bf16: forward and loss under CUDA autocast
};

// The most tokens one sample may ask for ([generate] max_new_tokens, --max-new-tokens): far past
// any context a model here attends to, and small enough that the buffers for it always fit (10^12
// failed with bad_alloc after training, issue 21).
inline constexpr std::int64_t kMaxNewTokens = 1'000'000;

// [generate] (the section is optional: without it a run draws no samples)
struct GenerateOptions {
  std::string prompt = "\n";
  std::int64_t max_new_tokens = 200;
  std::int64_t num_samples = 1;
  std::int64_t seed = -1;                 // -1: the experiment's seed
  std::vector<std::string> stop;          // stop strings, cut from the text
  std::vector<std::int64_t> stop_tokens;  // stop after one of these ids
  std::int64_t beam_width = 0;            // >= 2: beam search instead of the sampler chain
  double length_penalty = 1.0;            // beam search: score / length^length_penalty
};

// [model]'s own keys beside the plugin's parameters: where the weights start from, and which stay.
struct ModelInitOptions {
  std::string init_from;            // weights to start from (absolute); empty: the model's own init
  bool init_strict = true;          // every tensor must match; false: load what matches
  std::vector<std::string> freeze;  // parameter name patterns kept fixed in training
};
// The [model] keys the host takes; a model plugin cannot declare parameters of these names.
inline const std::vector<std::string> kModelHostKeys = {"init_from", "init_strict", "freeze"};

// [plugins]
struct PluginsOptions {
  std::vector<std::string> paths;      // folders of extra plugins, relative to the naming file
  std::vector<std::string> overrides;  // "override": KIND.NAMEs given to the last file that has it
};

const Schema<ExperimentOptions>& experiment_schema();
const Schema<TrainOptions>& train_schema();
const Schema<GenerateOptions>& generate_schema();
const Schema<PluginsOptions>& plugins_schema();
const Schema<ModelInitOptions>& model_init_schema();

// One plugin section, validated.
struct PluginSpec {
  Kind kind = Kind::kModel;
  std::string key;   // where it sits: "model", "callbacks.1", "generate.samplers.0"
  std::string type;  // the registered name
  Params params;     // every declared parameter, defaults filled in
};

struct Experiment {
  std::filesystem::path file;  // absolute
  ExperimentOptions experiment;
  TrainOptions train;
  std::optional<GenerateOptions> generate;
  PluginSpec data;
  PluginSpec tokenizer;
  PluginSpec model;
  ModelInitOptions model_init;
  PluginSpec optimizer;
  // [objective]; absent: the dataset's (Dataset::objective()) with its defaults, which the run
  // fills in once the dataset is built (default_objective) and writes to its config.toml.
  std::optional<PluginSpec> objective;
  std::optional<PluginSpec> scheduler;
  std::vector<PluginSpec> callbacks;
  std::vector<PluginSpec> metrics;   // [[metrics]]: computed at every evaluation
  std::vector<PluginSpec> samplers;  // [[generate.samplers]], in order
  // [plugins] paths, absolute. A run's resolved config adds the folders it loaded plugins from
  // (LMRUN_PLUGIN_PATH, --plugin-dir), so that commands on the run folder find them again.
  std::vector<std::filesystem::path> plugin_dirs;
  std::vector<std::string> plugin_overrides;  // [plugins] override: "model.transformer", ...
  // What validation changed and the user should hear of (keys dropped with a section's old type),
  // one sentence each; the command line prints them as notes.
  std::vector<std::string> notes;
};

// Which kinds of plugin a command needs. A section of another kind whose plugin is not loaded is
// left out, not an error: `lmrun generate` needs no callback plugin.
struct ResolveOptions {
  std::vector<Kind> needed;  // empty: every kind
};

// The `[plugins] paths` of a document, absolute, before anything else is validated: they decide
// what the registry holds. Throws ConfigError.
std::vector<std::filesystem::path> plugin_dirs_of(const TomlDocument& doc);

// The `[plugins] override` list as (kind, name), checked for shape. Throws ConfigError.
std::vector<std::pair<Kind, std::string>> plugin_overrides_of(const TomlDocument& doc);

// Validates the whole document; throws ConfigError listing every problem. `load_failures` (plugin
// files that failed to load, already formatted) are quoted when a `type` names nothing registered.
Experiment resolve_experiment(const TomlDocument& doc, const PluginRegistry& registry,
                              const std::vector<std::string>& load_failures = {},
                              const ResolveOptions& options = {});

// Section `key` of kind `kind` as if the experiment held `[key] type = "TYPE"` and nothing else:
// every parameter at its default. Throws ConfigError (an unknown type, a required parameter).
PluginSpec default_plugin_section(const std::string& key, Kind kind, const std::string& type,
                                  const PluginRegistry& registry);

// One plugin section ([tokenizer] for `lmrun tokenize`) validated alone, as resolve_experiment
// validates it. Throws ConfigError.
PluginSpec resolve_plugin_section(const TomlDocument& doc, const std::string& key, Kind kind,
                                  const PluginRegistry& registry,
                                  const std::vector<std::string>& load_failures = {});

}  // namespace lmrun::host
