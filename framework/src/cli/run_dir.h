// What the commands share: an experiment resolved against the loaded plugins, and a run folder
// opened for generate, eval, predict and inspect.
#pragma once

#include <filesystem>
#include <limits>
#include <memory>
#include <vector>

#include "cli/commands.h"
#include "cli/loaded_registry.h"
#include "config/experiment.h"
#include "lmrun/common.h"
#include "train/pipeline.h"

namespace lmrun::host {

struct Resolved {
  std::unique_ptr<LoadedRegistry> plugins;
  Experiment experiment;
};

// Loads the plugins the experiment file (with its --set overrides) needs and validates it.
// `needed`: the kinds the command uses (empty: all); a section of another kind whose plugin is
// not loaded is left out. `from_run_folder`: the file is a run's config.toml, whose recorded plugin
// folders may have gone (a warning, not an error).
Resolved resolve(const CommonArgs& common, const ExperimentArgs& args,
                 const std::vector<Kind>& needed = {}, bool from_run_folder = false);

// A run folder's experiment, re-validated with the current plugins, and its checkpoint.
struct RunDir {
  Resolved resolved;
  std::filesystem::path checkpoint;
};

// Throws lmrun::Error when the folder has no config.toml or the checkpoint asked for is missing.
// Only the plugins of the `needed` kinds must be loadable (see resolve).
RunDir open_run_dir(const CommonArgs& common, const RunDirArgs& args,
                    const std::vector<Kind>& needed);

// What the commands on a run folder need: generation (tokenizer, model, samplers); a trained
// pipeline for eval, predict and inspect (the dataset and metrics too); a tokenizer alone.
inline const std::vector<Kind> kGenerateKinds = {Kind::kTokenizer, Kind::kModel, Kind::kObjective,
                                                 Kind::kSampler};
inline const std::vector<Kind> kTrainedPipelineKinds = {Kind::kDataset, Kind::kTokenizer,
                                                        Kind::kModel,   Kind::kObjective,
                                                        Kind::kMetric,  Kind::kSampler};
inline const std::vector<Kind> kTokenizerKinds = {Kind::kTokenizer};

// The run's dataset, saved tokenizer and model with the checkpoint's weights, for inference
// (eval, inspect); the runtime configured as the experiment asks.
Pipeline trained_pipeline(const RunDir& run, const std::filesystem::path& run_dir);

// --quantize: the model's quantized inference (Model::quantize), on the CPU, reported on stderr.
// Nothing without the option. Throws lmrun::Error for a model without it or a CUDA run.
void apply_quantize(Pipeline& p, const RunDirArgs& args);

// "train", "val", "test" (--split); throws lmrun::Error otherwise.
Split parse_split(const std::string& name);

// Every metric of the run folder's checkpoint over each of `splits` the dataset has, whole
// (lmrun eval without the printing).
Metrics evaluate_run(const CommonArgs& common, const RunDirArgs& args,
                     const std::vector<Split>& splits);

// The dataset's cross-validation parameters: the names it declares with ParamRole::kFolds and
// kFold (empty when it declares none), and the experiment's fold count (0 without).
struct FoldParams {
  std::string folds;  // "folds"
  std::string fold;   // "fold"
  std::int64_t count = 0;
};
FoldParams fold_params(const Experiment& e, const PluginRegistry& registry);

// One metric over the folds: mean and sample standard deviation of its finite values (a diverged
// fold's NaN loss is counted out), `count` of them; NaN where there are too few.
struct FoldStatistic {
  double mean = std::numeric_limits<double>::quiet_NaN();
  double sd = std::numeric_limits<double>::quiet_NaN();
  std::size_t count = 0;
};
FoldStatistic fold_statistic(const std::vector<double>& values);

// lmrun FILE.toml when the dataset's fold count is >= 2: one run per fold, then the folds'
// statistics.
int command_cross_validate(const CommonArgs& common, const ExperimentArgs& args,
                           const Experiment& e, const FoldParams& fold_params);

}  // namespace lmrun::host
